import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildWae, buildWaeDecoder, buildWaeEncoder, defaultWaeArgs, type WaeArgs } from '../src/models/wae/networks.js';
import { Rng } from '../src/util/random.js';

beforeAll(async () => {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
});

function disposeModels(...models: tf.LayersModel[]): void {
  for (const m of models) m.dispose();
}

function seededImages(seed: string, shape: [number, number, number, number]): tf.Tensor4D {
  const rng = new Rng(seed);
  return tf.tensor4d(rng.normalArray(shape.reduce((a, b) => a * b, 1)), shape);
}

function variablesOf(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => {
    const v = w.read();
    if (!(v instanceof tf.Variable)) throw new Error(`${w.name} is not a tf.Variable`);
    return v;
  });
}

describe('defaultWaeArgs and validation', () => {
  it('derives filters so the encoder ends at 4x4', () => {
    expect(defaultWaeArgs({ resolution: 8, channels: 1 }).filters).toEqual([32]);
    expect(defaultWaeArgs({ resolution: 16, channels: 3 }).filters).toEqual([32, 64]);
    expect(defaultWaeArgs({ resolution: 128, channels: 1 }).filters).toEqual([32, 64, 128, 256, 512]);
    expect(defaultWaeArgs({ resolution: 512, channels: 1 }).filters).toEqual([32, 64, 128, 256, 512, 512, 512]);
    const a = defaultWaeArgs({ resolution: 32, channels: 1, filters: [5, 6, 7] });
    expect(a).toEqual({
      resolution: 32,
      channels: 1,
      latentSize: 2048,
      filters: [5, 6, 7],
      leak: 0.2,
      stemFilters: 5,
      tanhOutput: false,
      batchNormMomentum: 0.99,
      batchNorm: true,
    });
  });

  it('throws errors naming the bad field', () => {
    expect(() => defaultWaeArgs({ resolution: 12, channels: 1 })).toThrow(/WaeArgs\.resolution/);
    expect(() => defaultWaeArgs({ resolution: 4, channels: 1 })).toThrow(/WaeArgs\.resolution/);
    expect(() => defaultWaeArgs({ resolution: 16, channels: 2 as 1 })).toThrow(/WaeArgs\.channels/);
    expect(() => defaultWaeArgs({ resolution: 16, channels: 1, latentSize: 0 })).toThrow(/WaeArgs\.latentSize/);
    expect(() => defaultWaeArgs({ resolution: 16, channels: 1, filters: [8] })).toThrow(/WaeArgs\.filters/);
    expect(() => defaultWaeArgs({ resolution: 16, channels: 1, filters: [8, 0] })).toThrow(/WaeArgs\.filters/);
    expect(() => defaultWaeArgs({ resolution: 16, channels: 1, leak: -1 })).toThrow(/WaeArgs\.leak/);
    expect(() => defaultWaeArgs({ resolution: 16, channels: 1, stemFilters: 1.5 })).toThrow(/WaeArgs\.stemFilters/);
    expect(() => defaultWaeArgs({ resolution: 16, channels: 1, batchNormMomentum: 1 })).toThrow(
      /WaeArgs\.batchNormMomentum/,
    );
    const bad: WaeArgs = { ...defaultWaeArgs({ resolution: 8, channels: 1 }), resolution: 24 };
    expect(() => buildWaeEncoder(bad)).toThrow(/WaeArgs\.resolution/);
    expect(() => buildWaeDecoder(bad)).toThrow(/WaeArgs\.resolution/);
  });
});

describe('WAE shapes', () => {
  it.each([
    [8, 1, 8],
    [8, 3, 5],
    [16, 1, 12],
    [16, 3, 8],
    [32, 1, 6],
    [32, 3, 16],
  ] as const)('resolution %i, %i channel(s), latent %i', (resolution, channels, latentSize) => {
    const args = defaultWaeArgs({ resolution, channels, latentSize, filters: undefined });
    const { encoder, decoder } = buildWae(args);
    try {
      expect(encoder.outputShape).toEqual([null, latentSize]);
      expect(decoder.outputShape).toEqual([null, resolution, resolution, channels]);
      const [zShape, yShape] = tf.tidy(() => {
        const x = seededImages(`shape${resolution}`, [2, resolution, resolution, channels]);
        const z = encoder.predict(x) as tf.Tensor;
        const y = decoder.predict(z) as tf.Tensor;
        return [z.shape, y.shape];
      });
      expect(zShape).toEqual([2, latentSize]);
      expect(yShape).toEqual([2, resolution, resolution, channels]);
    } finally {
      disposeModels(encoder, decoder);
    }
  });

  it('resolution 128 (paper size, default args) by output shape; feature maps mirror each other', () => {
    const args = defaultWaeArgs({ resolution: 128, channels: 3 });
    const { encoder, decoder } = buildWae(args);
    try {
      expect(encoder.outputShape).toEqual([null, 2048]);
      expect(decoder.outputShape).toEqual([null, 128, 128, 3]);
      const enc = (name: string): unknown => encoder.getLayer(name).outputShape;
      const dec = (name: string): unknown => decoder.getLayer(name).outputShape;
      expect(enc('wae_enc_b128_stem')).toEqual([null, 128, 128, 32]);
      expect(enc('wae_enc_b128_lrelu')).toEqual([null, 64, 64, 32]);
      expect(enc('wae_enc_b8_lrelu')).toEqual([null, 4, 4, 512]);
      expect(dec('wae_dec_b4_reshape')).toEqual([null, 4, 4, 512]);
      expect(dec('wae_dec_b8_lrelu')).toEqual([null, 8, 8, 256]);
      expect(dec('wae_dec_b64_lrelu')).toEqual([null, 64, 64, 32]);
      expect(dec('wae_dec_b128_lrelu')).toEqual([null, 128, 128, 32]);
      // 8192 -> 2048 dense dominates: 8192 * 2048 + 2048 weights.
      expect(encoder.getLayer('wae_enc_b4_dense').countParams()).toBe(8192 * 2048 + 2048);
    } finally {
      disposeModels(encoder, decoder);
    }
  });

  it('tanhOutput bounds the decoder output', () => {
    const args = defaultWaeArgs({ resolution: 8, channels: 1, latentSize: 4, filters: [4], tanhOutput: true });
    const decoder = buildWaeDecoder(args);
    try {
      const maxAbs = tf.tidy(() => tf.max(tf.abs(decoder.predict(tf.mul(tf.ones([3, 4]), 1e3)) as tf.Tensor)).dataSync()[0]);
      expect(maxAbs).toBeLessThanOrEqual(1);
      expect(decoder.getLayer('wae_dec_b8_out').getConfig()['activation']).toBe('tanh');
    } finally {
      decoder.dispose();
    }
  });
});

describe('WAE naming', () => {
  const args = defaultWaeArgs({ resolution: 16, channels: 1, latentSize: 4, filters: [4, 8] });

  it('names layers by resolution', () => {
    const { encoder, decoder } = buildWae(args);
    try {
      expect(encoder.name).toBe('wae_encoder');
      expect(decoder.name).toBe('wae_decoder');
      expect(encoder.layers.map((l) => l.name)).toEqual([
        'wae_enc_input',
        'wae_enc_b16_stem',
        'wae_enc_b16_conv',
        'wae_enc_b16_bn',
        'wae_enc_b16_lrelu',
        'wae_enc_b8_conv',
        'wae_enc_b8_bn',
        'wae_enc_b8_lrelu',
        'wae_enc_b4_flatten',
        'wae_enc_b4_dense',
      ]);
      expect(decoder.layers.map((l) => l.name)).toEqual([
        'wae_dec_input',
        'wae_dec_b4_dense',
        'wae_dec_b4_reshape',
        'wae_dec_b8_deconv',
        'wae_dec_b8_bn',
        'wae_dec_b8_lrelu',
        'wae_dec_b16_deconv',
        'wae_dec_b16_bn',
        'wae_dec_b16_lrelu',
        'wae_dec_b16_out',
      ]);
    } finally {
      disposeModels(encoder, decoder);
    }
  });

  it('gives two builds in one process the same layer names and weight originalNames, in the same order', () => {
    const a = buildWae(args);
    const b = buildWae(args);
    try {
      for (const [m1, m2] of [
        [a.encoder, b.encoder],
        [a.decoder, b.decoder],
      ] as const) {
        expect(m2.layers.map((l) => l.name)).toEqual(m1.layers.map((l) => l.name));
        expect(m2.weights.map((w) => w.originalName)).toEqual(m1.weights.map((w) => w.originalName));
        expect(m2.weights.map((w) => w.shape)).toEqual(m1.weights.map((w) => w.shape));
        // tfjs-layers uniquifies the variables' `name` (suffix _1, _2, ...): never key by it.
        const n1 = new Set(m1.weights.map((w) => w.name));
        expect(m2.weights.some((w) => n1.has(w.name))).toBe(false);
      }
      expect(a.encoder.weights.map((w) => w.originalName)).toEqual([
        'wae_enc_b16_stem/kernel',
        'wae_enc_b16_conv/kernel',
        'wae_enc_b16_bn/gamma',
        'wae_enc_b16_bn/beta',
        'wae_enc_b8_conv/kernel',
        'wae_enc_b8_bn/gamma',
        'wae_enc_b8_bn/beta',
        'wae_enc_b4_dense/kernel',
        'wae_enc_b4_dense/bias',
        'wae_enc_b16_bn/moving_mean',
        'wae_enc_b16_bn/moving_variance',
        'wae_enc_b8_bn/moving_mean',
        'wae_enc_b8_bn/moving_variance',
      ]);
    } finally {
      disposeModels(a.encoder, a.decoder, b.encoder, b.decoder);
    }
  });
});

describe('WAE batch norm: training vs inference', () => {
  it('training:false uses moving statistics, training:true batch statistics and updates them', () => {
    const args = defaultWaeArgs({ resolution: 8, channels: 1, latentSize: 6, filters: [4], batchNormMomentum: 0.9 });
    const encoder = buildWaeEncoder(args);
    try {
      const bn = encoder.getLayer('wae_enc_b8_bn');
      const readStats = (): number[][] => bn.getWeights().slice(2).map((t) => Array.from(t.dataSync()));
      const x1 = seededImages('bn-a', [4, 8, 8, 1]);
      // Same first sample, different companions.
      const x2 = tf.concat([tf.slice(x1, [0, 0, 0, 0], [1, 8, 8, 1]), seededImages('bn-b', [3, 8, 8, 1])]);
      const first = (x: tf.Tensor, training: boolean): Float32Array =>
        tf.tidy(() => tf.slice(encoder.apply(x, { training }) as tf.Tensor, [0, 0], [1, 6]).dataSync() as Float32Array);

      // Inference: sample 0's code ignores the rest of the batch; no statistic moves.
      const stats0 = readStats();
      const a = first(x1, false);
      const b = first(x2, false);
      for (let i = 0; i < 6; i++) expect(a[i]).toBeCloseTo(b[i] ?? NaN, 5);
      expect(readStats()).toEqual(stats0);

      // Training: moving = 0.9 * old + 0.1 * batch moment (tfjs uses the biased batch variance).
      const conv = tf.model({ inputs: encoder.inputs, outputs: encoder.getLayer('wae_enc_b8_conv').output as tf.SymbolicTensor });
      const [mean, variance] = tf.tidy(() => {
        const m = tf.moments(conv.predict(x1) as tf.Tensor, [0, 1, 2]);
        return [Array.from(m.mean.dataSync()), Array.from(m.variance.dataSync())];
      });
      const c = first(x1, true);
      const [mm, mv] = readStats();
      for (let ch = 0; ch < 4; ch++) {
        expect(mm?.[ch]).toBeCloseTo(0.9 * 0 + 0.1 * (mean[ch] ?? NaN), 5);
        expect(mv?.[ch]).toBeCloseTo(0.9 * 1 + 0.1 * (variance[ch] ?? NaN), 5);
      }
      // Batch statistics: sample 0's code depends on its companions.
      const d = first(x2, true);
      const diff = Math.max(...Array.from(c, (v, i) => Math.abs(v - (d[i] ?? NaN))));
      expect(diff).toBeGreaterThan(1e-3);
      tf.dispose([x1, x2]);
    } finally {
      encoder.dispose();
    }
  });
});

describe('WAE without batch norm', () => {
  it('has no batch-norm layers, gives the block convs biases, and treats each sample independently in training', () => {
    const { encoder, decoder } = buildWae(defaultWaeArgs({ resolution: 16, channels: 1, latentSize: 8, filters: [4, 8], batchNorm: false }));
    try {
      const names = [...encoder.layers, ...decoder.layers].map((l) => l.name);
      expect(names.some((n) => n.endsWith('_bn'))).toBe(false);
      expect(encoder.getLayer('wae_enc_b16_conv').weights.map((w) => w.originalName)).toEqual(['wae_enc_b16_conv/kernel', 'wae_enc_b16_conv/bias']);
      tf.tidy(() => {
        const x = tf.randomNormal([4, 16, 16, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
        const all = encoder.apply(x, { training: true }) as tf.Tensor;
        const one = encoder.apply(x.slice([0, 0, 0, 0], [1, 16, 16, 1]), { training: true }) as tf.Tensor;
        expect(Array.from(one.dataSync())).toEqual(Array.from(all.slice([0, 0], [1, 8]).dataSync()));
      });
    } finally {
      encoder.dispose();
      decoder.dispose();
    }
  });
});

describe('WAE tensors and gradients', () => {
  it('leaks no tensors across a forward pass in tf.tidy (training and inference)', () => {
    const { encoder, decoder } = buildWae(defaultWaeArgs({ resolution: 16, channels: 3, latentSize: 8, filters: [4, 8] }));
    try {
      const x = seededImages('leak', [2, 16, 16, 3]);
      for (const training of [true, false]) {
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const y = decoder.apply(encoder.apply(x, { training }), { training }) as tf.Tensor;
          expect(y.shape).toEqual([2, 16, 16, 3]);
        });
        expect(tf.memory().numTensors).toBe(before);
      }
      x.dispose();
    } finally {
      disposeModels(encoder, decoder);
    }
  });

  it('a few Adam steps on 8 images of 16x16 lower the reconstruction MSE', () => {
    const args = defaultWaeArgs({ resolution: 16, channels: 1, latentSize: 16, filters: [8, 16] });
    const { encoder, decoder } = buildWae(args);
    const optimizer = tf.train.adam(3e-3);
    try {
      // Smooth images in [-1, 1]: products of random sinusoids.
      const rng = new Rng('wae-adam');
      const data = new Float32Array(8 * 16 * 16);
      for (let n = 0; n < 8; n++) {
        const [fx, fy, ph] = [1 + rng.int(3), 1 + rng.int(3), rng.next() * 6.28];
        for (let i = 0; i < 16; i++) {
          for (let j = 0; j < 16; j++) data[n * 256 + i * 16 + j] = Math.sin((fx * i) / 5 + ph) * Math.cos((fy * j) / 5);
        }
      }
      const x = tf.tensor4d(data, [8, 16, 16, 1]);
      const vars = [...variablesOf(encoder), ...variablesOf(decoder)];
      const reconstruction = (): tf.Scalar => {
        const z = encoder.apply(x, { training: true }) as tf.Tensor; // [8, 16]
        const y = decoder.apply(z, { training: true }) as tf.Tensor4D; // [8, 16, 16, 1]
        return tf.losses.meanSquaredError(x, y) as tf.Scalar;
      };
      // Every trainable variable of both networks gets a finite, non-zero gradient.
      const gradNorms = tf.tidy(() => {
        const { grads } = tf.variableGrads(reconstruction, vars);
        return vars.map((v) => tf.norm(grads[v.name] ?? tf.scalar(NaN)).dataSync()[0] ?? NaN);
      });
      // Encoder: stem kernel, 2 x (conv kernel, gamma, beta), dense kernel + bias = 9.
      // Decoder: dense kernel + bias, 2 x (deconv kernel, gamma, beta), out kernel + bias = 10.
      expect(gradNorms).toHaveLength(9 + 10);
      for (const g of gradNorms) {
        expect(Number.isFinite(g)).toBe(true);
        expect(g).toBeGreaterThan(1e-6);
      }
      const losses: number[] = [];
      const before = tf.memory().numTensors;
      for (let step = 0; step < 12; step++) {
        const cost = optimizer.minimize(reconstruction, true, vars);
        losses.push(cost?.dataSync()[0] ?? NaN);
        cost?.dispose();
        // Adam's two moment slots per variable appear on the first step; nothing else may stay.
        expect(tf.memory().numTensors).toBe(before + 2 * vars.length);
      }
      expect(losses.every(Number.isFinite)).toBe(true);
      const first = losses[0] ?? NaN;
      const last = losses[losses.length - 1] ?? NaN;
      expect(last).toBeLessThan(0.7 * first);
      x.dispose();
    } finally {
      optimizer.dispose();
      disposeModels(encoder, decoder);
    }
  });
});
