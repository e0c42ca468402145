import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downscale2d, upscale2d } from '../src/layers/index.js';
import { discriminatorLoss } from '../src/losses/wgan-gp.js';
import {
  createGlobalDiscriminator,
  createLocalDiscriminator,
  fadeRealImages,
  ProGanDiscriminator,
  ProGanGenerator,
  proganChannelsAt,
  proganResolutions,
} from '../src/models/progan/networks.js';

beforeAll(async () => {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
});

// Tiny channel table: nf(stage) = min(32 / 2^stage, 8) -> 4x4: 8, 8x8: 8, 16x16: 4, 32x32: 2.
const tiny = { fmapBase: 32, fmapMax: 8, channels: 3 } as const;
const N = 4;

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] ?? Number.NaN);
}

function perturb(v: tf.Variable): tf.Tensor {
  const saved = v.clone();
  v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 1, 'float32', 99)));
  return saved;
}

describe('channel table', () => {
  it('nf(stage) = min(fmapBase / 2^stage, fmapMax) with stage = log2(res) - 1', () => {
    const ref = [4, 8, 16, 32, 64, 128, 256].map((r) => proganChannelsAt(r, 8192, 512));
    expect(ref).toEqual([512, 512, 512, 512, 256, 128, 64]); // ProGAN's table
    expect([4, 8, 16, 32].map((r) => proganChannelsAt(r, 32, 8))).toEqual([8, 8, 4, 2]);
    expect(proganResolutions(32)).toEqual([4, 8, 16, 32]);
    expect(() => proganResolutions(24)).toThrow(/power of two/);
  });
});

describe('ProGanGenerator', () => {
  // Built in beforeAll, after the backend is set (building at collection time would run first).
  let g: ProGanGenerator;
  beforeAll(() => {
    g = new ProGanGenerator({ ...tiny, maxResolution: 16, zDim: 4, latentDim: 3, seed: 1 });
  });
  const inputs = () => ({
    noise: tf.randomNormal([N, 4], 0, 1, 'float32', 2) as tf.Tensor2D,
    conditions: [3, 4, 5].map((s) => tf.randomNormal([N, 3], 0, 1, 'float32', s) as tf.Tensor2D),
  });
  afterAll(() => g.dispose());

  it('names blocks by resolution and keeps a fixed variable order', () => {
    expect(g.usesDense).toBe(true); // 4 + 3*3 = 13 != 16 * 8
    expect(g.layerNames()).toEqual([
      'g_b4_dense',
      'g_b4_conv',
      'g_b4_torgb',
      'g_b8_conv0',
      'g_b8_conv1',
      'g_b8_torgb',
      'g_b16_conv0',
      'g_b16_conv1',
      'g_b16_torgb',
    ]);
    const names = g.variables().map(([name]) => name);
    expect(names.slice(0, 4)).toEqual(['g_b4_dense/kernel', 'g_b4_dense/bias', 'g_b4_conv/kernel', 'g_b4_conv/bias']);
    expect(new Set(names).size).toBe(names.length);
    const shapes = new Map(g.variables().map(([name, v]) => [name, v.shape]));
    expect(shapes.get('g_b4_dense/kernel')).toEqual([13, 128]);
    expect(shapes.get('g_b16_conv0/kernel')).toEqual([3, 3, 8, 4]);
    expect(shapes.get('g_b16_torgb/kernel')).toEqual([1, 1, 4, 3]);
    // A second network in the same process gets the same names (checkpoints stay portable).
    const other = new ProGanGenerator({ ...tiny, maxResolution: 16, zDim: 4, latentDim: 3 });
    expect(other.variables().map(([name]) => name)).toEqual(names);
    other.dispose();
    // Active variables at 8x8: input dense, 4x4 conv, 8x8 block, ToRGB at 8 and at 4 (fade-in).
    const active = g.trainableVariables(8);
    const all = g.trainableVariables();
    expect(all.length).toBe(18);
    expect(active.length).toBe(12);
    expect(active.every((v, i) => i === 0 || all.indexOf(v) > all.indexOf(active[i - 1] as tf.Variable))).toBe(true);
  });

  it('reshapes without a dense layer when the input size is 16 * nf(4x4)', () => {
    const plain = new ProGanGenerator({ ...tiny, maxResolution: 8, zDim: 32, latentDim: 32, seed: 3 });
    expect(plain.inputSize).toBe(128);
    expect(plain.usesDense).toBe(false);
    expect(plain.layerNames()[0]).toBe('g_b4_conv');
    const z = tf.randomNormal([2, 128]) as tf.Tensor2D;
    expect(plain.apply(z, { resolution: 8, alpha: 0.5 }).shape).toEqual([2, 8, 8, 3]);
    plain.dispose();
  });

  it('gives [N, r, r, C] at every resolution and alpha', () => {
    for (const resolution of [4, 8, 16]) {
      for (const alpha of [0, 0.5, 1]) {
        const out = tf.tidy(() => g.apply(inputs(), { resolution, alpha }));
        expect(out.shape).toEqual([N, resolution, resolution, 3]);
        expect(Array.from(out.dataSync()).every(Number.isFinite)).toBe(true);
        out.dispose();
      }
    }
    expect(() => g.apply(inputs(), { resolution: 32 })).toThrow(/maxResolution/);
    expect(() => g.apply({ noise: inputs().noise, conditions: [] }, { resolution: 8 })).toThrow(/corner latents/);
  });

  it('alpha 1 is the grown path, alpha 0 the upsampled lower-resolution path', () => {
    tf.tidy(() => {
      const x = inputs();
      const grown = g.apply(x, { resolution: 16, alpha: 1 });
      const faded = g.apply(x, { resolution: 16, alpha: 0 });
      const half = g.apply(x, { resolution: 16, alpha: tf.scalar(0.5) });
      const torgb16 = g.getLayer('g_b16_torgb').apply(g.features(x, 16)) as tf.Tensor;
      expect(maxAbsDiff(grown, torgb16)).toBeLessThan(1e-5);
      const lower = g.apply(x, { resolution: 8, alpha: 1 });
      expect(maxAbsDiff(faded, upscale2d(lower))).toBeLessThan(1e-5);
      expect(maxAbsDiff(grown, faded)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(half, tf.mul(tf.add(grown, faded), 0.5))).toBeLessThan(1e-5);
      // Per-sample alpha: sample 0 faded, sample 1 grown.
      const mixed = g.apply(x, { resolution: 16, alpha: tf.tensor1d([0, 1, 1, 0]) });
      expect(maxAbsDiff(tf.slice(mixed, [0], [1]), tf.slice(faded, [0], [1]))).toBeLessThan(1e-5);
      expect(maxAbsDiff(tf.slice(mixed, [1], [1]), tf.slice(grown, [1], [1]))).toBeLessThan(1e-5);
    });
  });

  it('at alpha 1 the previous ToRGB does not matter; at alpha 0 it does', () => {
    const x = inputs();
    const v = new Map(g.variables()).get('g_b8_torgb/kernel');
    if (v === undefined) throw new Error('missing variable');
    const before1 = g.apply(x, { resolution: 16, alpha: 1 });
    const before0 = g.apply(x, { resolution: 16, alpha: 0 });
    const saved = perturb(v);
    expect(maxAbsDiff(g.apply(x, { resolution: 16, alpha: 1 }), before1)).toBe(0);
    expect(maxAbsDiff(g.apply(x, { resolution: 16, alpha: 0 }), before0)).toBeGreaterThan(1e-3);
    v.assign(saved);
  });

  it('restores from its named variables (checkpoint format) and leaks nothing per forward', () => {
    const x = inputs();
    const copy = new ProGanGenerator({ ...tiny, maxResolution: 16, zDim: 4, latentDim: 3, seed: 77 });
    const ref = g.apply(x, { resolution: 16, alpha: 0.3 });
    expect(maxAbsDiff(copy.apply(x, { resolution: 16, alpha: 0.3 }), ref)).toBeGreaterThan(1e-3);
    copy.assignVariables(g.variables());
    expect(maxAbsDiff(copy.apply(x, { resolution: 16, alpha: 0.3 }), ref)).toBe(0);
    expect(() => copy.assignVariables([['g_b99_conv/kernel', tf.zeros([1])]])).toThrow(/unknown variable/);

    tf.tidy(() => g.apply(x, { resolution: 16, alpha: 0.3 })).dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) tf.tidy(() => g.apply(x, { resolution: 16, alpha: tf.scalar(0.3) })).dispose();
    expect(tf.memory().numTensors).toBe(before);
    const withCopy = tf.memory().numTensors;
    const owned = copy.variables().length;
    copy.dispose();
    expect(tf.memory().numTensors).toBe(withCopy - owned);
  });
});

describe('ProGanDiscriminator', () => {
  let dl: ProGanDiscriminator;
  let dg: ProGanDiscriminator;
  beforeAll(() => {
    dl = createLocalDiscriminator({ ...tiny, maxCornerResolution: 8, seed: 5 });
    dg = createGlobalDiscriminator({ ...tiny, maxCornerResolution: 8, seed: 6 });
  });
  afterAll(() => {
    dl.dispose();
    dg.dispose();
  });
  const images = (r: number, seed = 7) => tf.randomNormal([N, r, r, 3], 0, 1, 'float32', seed) as tf.Tensor4D;

  it('names the global and local blocks by resolution', () => {
    expect(dg.config.maxResolution).toBe(16);
    expect(dl.config.maxResolution).toBe(8);
    expect(dg.layerNames()).toEqual([
      'dg_b4_fromrgb',
      'dg_b4_conv',
      'dg_b4_dense0',
      'dg_b4_dense1',
      'dg_b8_fromrgb',
      'dg_b8_conv0',
      'dg_b8_conv1',
      'dg_b16_fromrgb',
      'dg_b16_conv0',
      'dg_b16_conv1',
    ]);
    expect(dl.layerNames().every((n) => n.startsWith('dl_b'))).toBe(true);
    const shapes = new Map(dg.variables().map(([name, v]) => [name, v.shape]));
    expect(shapes.get('dg_b4_conv/kernel')).toEqual([3, 3, 9, 8]); // nf(4) + 1 stddev map
    expect(shapes.get('dg_b4_dense0/kernel')).toEqual([128, 8]);
    expect(shapes.get('dg_b16_conv1/kernel')).toEqual([3, 3, 4, 8]);
  });

  it('scores [N, 1] at every resolution and alpha', () => {
    for (const r of [4, 8, 16]) {
      for (const alpha of [0, 0.5, 1]) {
        const s = tf.tidy(() => dg.apply(images(r), { alpha }));
        expect(s.shape).toEqual([N, 1]);
        expect(Array.from(s.dataSync()).every(Number.isFinite)).toBe(true);
        s.dispose();
      }
    }
    expect(() => dl.apply(images(16))).toThrow(/maxResolution/);
    expect(() => dl.apply(tf.zeros([N, 8, 8, 1]) as tf.Tensor4D)).toThrow(/channels/);
  });

  it('alpha 0 judges the downscaled image with the lower-resolution path; alpha 1 ignores it', () => {
    const x = images(16);
    const faded = dg.apply(x, { alpha: 0 });
    expect(maxAbsDiff(faded, dg.apply(downscale2d(x), { alpha: 1 }))).toBeLessThan(1e-5);
    const grown = dg.apply(x, { alpha: 1 });
    expect(maxAbsDiff(grown, faded)).toBeGreaterThan(1e-4);
    const v = new Map(dg.variables()).get('dg_b8_fromrgb/kernel');
    if (v === undefined) throw new Error('missing variable');
    const saved = perturb(v);
    expect(maxAbsDiff(dg.apply(x, { alpha: 1 }), grown)).toBe(0);
    expect(maxAbsDiff(dg.apply(x, { alpha: 0 }), faded)).toBeGreaterThan(1e-4);
    v.assign(saved);
  });

  it('offers the CERN lrelu output', () => {
    const d = new ProGanDiscriminator({ ...tiny, maxResolution: 4, seed: 8, outputActivation: 'lrelu', prefix: 'dx' });
    const lin = new ProGanDiscriminator({ ...tiny, maxResolution: 4, seed: 8, prefix: 'dx' });
    const x = images(4);
    const a = Array.from(d.apply(x).dataSync());
    const b = Array.from(lin.apply(x).dataSync());
    a.forEach((v, i) => expect(v).toBeCloseTo((b[i] ?? 0) > 0 ? (b[i] ?? 0) : 0.2 * (b[i] ?? 0), 5));
    d.dispose();
    lin.dispose();
  });

  it('second-order WGAN-GP gradients flow through the faded discriminator', () => {
    const real = images(8, 11);
    const fake = images(8, 12);
    const vars = dl.trainableVariables(8);
    const { value, grads } = tf.variableGrads(
      () => discriminatorLoss({ d: (t) => dl.apply(t, { alpha: 0.4 }), real, fake, epsilon: tf.tensor1d([0.1, 0.4, 0.6, 0.9]) }).loss,
      vars,
    );
    expect(Number.isFinite(value.dataSync()[0] ?? Number.NaN)).toBe(true);
    expect(Object.keys(grads).length).toBe(vars.length);
    for (const v of vars) {
      const g = grads[v.name];
      if (g === undefined) throw new Error(`no gradient for ${v.name}`);
      expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
    }
    // FromRGB at 4x4 feeds the faded path: its gradient is non-zero at alpha 0.4.
    const from4 = new Map(dl.variables()).get('dl_b4_fromrgb/kernel');
    if (from4 === undefined) throw new Error('missing variable');
    expect(tf.max(tf.abs(grads[from4.name] as tf.Tensor)).dataSync()[0]).toBeGreaterThan(0);
    // Central differences of the total loss on the weight with the largest gradient in the newest
    // block, the faded FromRGB and the head (the loss is piecewise smooth through lrelu; a 1e-3
    // step stays on one piece here).
    const lossAt = () =>
      discriminatorLoss({ d: (t) => dl.apply(t, { alpha: 0.4 }), real, fake, epsilon: tf.tensor1d([0.1, 0.4, 0.6, 0.9]) })
        .loss.dataSync()[0] ?? Number.NaN;
    const byName = new Map(dl.variables());
    for (const name of ['dl_b8_conv0/kernel', 'dl_b4_fromrgb/kernel', 'dl_b4_dense0/kernel']) {
      const v = byName.get(name);
      if (v === undefined) throw new Error(`missing ${name}`);
      const g = Array.from(grads[v.name]?.dataSync() ?? []);
      const index = g.reduce((best, x, i) => (Math.abs(x) > Math.abs(g[best] ?? 0) ? i : best), 0);
      const analytic = g[index] ?? Number.NaN;
      expect(Math.abs(analytic)).toBeGreaterThan(0.05);
      const original = v.clone();
      const at = (delta: number) => {
        const flat = Float32Array.from(original.dataSync());
        flat[index] = (flat[index] ?? 0) + delta;
        v.assign(tf.tensor(flat, v.shape));
        return lossAt();
      };
      const h = 1e-3;
      const numeric = (at(h) - at(-h)) / (2 * h);
      v.assign(original);
      expect(Math.abs(numeric - analytic)).toBeLessThan(0.05 * Math.abs(analytic) + 2e-3);
    }
    value.dispose();
    tf.dispose(grads);
  });

  it('leaks nothing per forward in tf.tidy', () => {
    const x = images(16);
    tf.tidy(() => dg.apply(x, { alpha: 0.5 })).dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) tf.tidy(() => dg.apply(x, { alpha: tf.scalar(0.5) })).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('generator step through both discriminators', () => {
  it('gives finite, non-zero gradients for every active generator variable', () => {
    const g = new ProGanGenerator({ ...tiny, maxResolution: 8, zDim: 4, latentDim: 3, seed: 41 });
    const dl = createLocalDiscriminator({ ...tiny, maxCornerResolution: 8, seed: 42 });
    const dg = createGlobalDiscriminator({ ...tiny, maxCornerResolution: 8, seed: 43 });
    const noise = tf.randomNormal([N, 4], 0, 1, 'float32', 44) as tf.Tensor2D;
    const conditions = [45, 46, 47].map((s) => tf.randomNormal([N, 3], 0, 1, 'float32', s) as tf.Tensor2D);
    const known = tf.randomNormal([N, 8, 8, 9], 0, 1, 'float32', 48);
    const vars = g.trainableVariables(8);
    const { value, grads } = tf.variableGrads(() => {
      const corner = g.apply({ noise, conditions }, { resolution: 8, alpha: 0.5 }); // [N, 8, 8, 3]
      // Assemble a 16x16 image: top-left, top-right / bottom-left, generated bottom-right.
      const [tl, tr, bl] = tf.split(known, 3, 3) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
      const full = tf.concat([tf.concat([tl, tr], 2), tf.concat([bl, corner], 2)], 1) as tf.Tensor4D;
      const scores = tf.add(dg.apply(full, { alpha: 0.5 }), dl.apply(corner, { alpha: 0.5 }));
      return tf.neg(tf.mean(tf.mul(scores, 0.5))) as tf.Scalar;
    }, vars);
    expect(Number.isFinite(value.dataSync()[0] ?? Number.NaN)).toBe(true);
    for (const v of vars) {
      const gv = grads[v.name];
      if (gv === undefined) throw new Error(`no gradient for ${v.name}`);
      const values = Array.from(gv.dataSync());
      expect(values.every(Number.isFinite)).toBe(true);
      expect(values.some((x) => x !== 0)).toBe(true);
    }
    value.dispose();
    tf.dispose(grads);
    for (const net of [g, dl, dg]) net.dispose();
  });
});

describe('fadeRealImages', () => {
  it('blends reals between their blurred and full versions', () => {
    const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    expect(Array.from(fadeRealImages(x, 0).dataSync())).toEqual([2.5, 2.5, 2.5, 2.5]);
    expect(Array.from(fadeRealImages(x, 1).dataSync())).toEqual([1, 2, 3, 4]);
    expect(Array.from(fadeRealImages(x, 0.5).dataSync())).toEqual([1.75, 2.25, 2.75, 3.25]);
  });
});
