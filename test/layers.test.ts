import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  applyLayer,
  DownscaleBox2D,
  downscale2d,
  EqualizedConv2D,
  EqualizedDense,
  FadeIn,
  fadeIn,
  lrelu,
  MinibatchStdDev,
  minibatchGroupSize,
  minibatchStdDev,
  PixelNorm,
  pixelNorm,
  ProGanLeakyReLU,
  UpscaleNearest2D,
  upscale2d,
} from '../src/layers/index.js';

beforeAll(async () => {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
});

function values(t: tf.Tensor): number[] {
  return Array.from(t.dataSync());
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] ?? Number.NaN;
    const e = expected[i] ?? Number.NaN;
    if (Math.abs(a - e) > tol * Math.max(1, Math.abs(e))) {
      throw new Error(`element ${i}: got ${a}, expected ${e} (tol ${tol})`);
    }
  }
}

/** Set a layer's weights by short name ('kernel', 'bias'). */
function setWeight(layer: tf.layers.Layer, short: string, value: tf.Tensor): void {
  const v = layer.weights.find((w) => w.originalName.endsWith(`/${short}`) || w.originalName === short);
  if (v === undefined) throw new Error(`no weight ${short} in ${layer.name}`);
  v.write(value);
}

describe('EqualizedConv2D', () => {
  it('scales an N(0,1) kernel by gain/sqrt(k*k*cin) at run time, with a separate bias', () => {
    const layer = new EqualizedConv2D({ filters: 1, kernelSize: 3 });
    layer.build([null, 3, 3, 2]);
    // fanIn = 3*3*2 = 18 -> scale sqrt(2)/sqrt(18) = 1/3.
    expect(layer.scale).toBeCloseTo(1 / 3, 7);
    setWeight(layer, 'kernel', tf.ones([3, 3, 2, 1]));
    setWeight(layer, 'bias', tf.tensor1d([0.5]));
    const y = applyLayer(layer, tf.ones([1, 3, 3, 2]));
    expect(y.shape).toEqual([1, 3, 3, 1]);
    // 'same' padding: corner sees 4 taps, edge 6, centre 9; each tap sums 2 channels, times 1/3.
    const c = 8 / 3 + 0.5;
    const e = 4 + 0.5;
    const m = 6 + 0.5;
    expectClose(values(y), [c, e, c, e, m, e, c, e, c]);
  });

  it('initialises the kernel N(0,1) and the bias to zero; ToRGB gain 1', () => {
    const layer = new EqualizedConv2D({ filters: 16, kernelSize: 3, seed: 7 });
    layer.build([null, 4, 4, 16]);
    const [kernel, bias] = layer.getWeights();
    if (kernel === undefined || bias === undefined) throw new Error('weights missing');
    expect(kernel.shape).toEqual([3, 3, 16, 16]);
    const k = values(kernel);
    const mean = k.reduce((s, v) => s + v, 0) / k.length;
    const std = Math.sqrt(k.reduce((s, v) => s + (v - mean) ** 2, 0) / k.length);
    expect(Math.abs(mean)).toBeLessThan(0.1);
    expect(std).toBeGreaterThan(0.9);
    expect(std).toBeLessThan(1.1);
    expect(values(bias).every((v) => v === 0)).toBe(true);

    const toRgb = new EqualizedConv2D({ filters: 3, kernelSize: 1, gain: 1 });
    toRgb.build([null, 4, 4, 16]);
    expect(toRgb.scale).toBeCloseTo(1 / 4, 7);
  });

  it('supports valid padding and reports its output shape', () => {
    const layer = new EqualizedConv2D({ filters: 5, kernelSize: 3, padding: 'valid' });
    expect(layer.computeOutputShape([null, 6, 6, 2])).toEqual([null, 4, 4, 5]);
    expect(applyLayer(layer, tf.zeros([2, 6, 6, 2])).shape).toEqual([2, 4, 4, 5]);
  });
});

describe('EqualizedDense', () => {
  it('computes x (w * gain/sqrt(in)) + b', () => {
    const layer = new EqualizedDense({ units: 2 });
    layer.build([null, 4]);
    expect(layer.scale).toBeCloseTo(Math.SQRT2 / 2, 7);
    setWeight(layer, 'kernel', tf.tensor2d([1, 0, 1, 0, 1, 0, 1, -1], [4, 2]));
    setWeight(layer, 'bias', tf.tensor1d([1, -1]));
    const y = applyLayer(layer, tf.tensor2d([[1, 2, 3, 4]]));
    // unit 0: (1+2+3+4) * 0.70711 + 1; unit 1: (-4) * 0.70711 - 1.
    expectClose(values(y), [10 * Math.SQRT1_2 + 1, -4 * Math.SQRT1_2 - 1]);
  });
});

describe('PixelNorm', () => {
  it('normalises each pixel over channels to unit RMS', () => {
    const x = tf.tensor4d([3, 4, 0, 0], [1, 1, 2, 2]);
    const y = values(pixelNorm(x));
    const r = 1 / Math.sqrt(12.5 + 1e-8);
    expectClose(y, [3 * r, 4 * r, 0, 0]);
    expectClose(values(applyLayer(new PixelNorm(), x)), y);
  });
});

describe('MinibatchStdDev', () => {
  it('appends the per-group std (groups of consecutive samples) as one map', () => {
    // N = 4, groupSize 2 -> G = 2, M = 2: groups {0, 1} and {2, 3}.
    const x = tf.tensor4d([1, 2, 3, 6, 0, 0, 0, 4], [4, 1, 1, 2]);
    const y = minibatchStdDev(x, 2);
    expect(y.shape).toEqual([4, 1, 1, 3]);
    const s = (v: number) => Math.sqrt(v + 1e-8);
    // group {0,1}: per-channel std |3-1|/2 = 1 and |6-2|/2 = 2 -> mean 1.5.
    // group {2,3}: std 0 and |4-0|/2 = 2 -> mean (1e-4 + 2) / 2.
    const g0 = (s(1) + s(4)) / 2;
    const g1 = (s(0) + s(4)) / 2;
    const out = values(y);
    expectClose([out[2] ?? 0, out[5] ?? 0, out[8] ?? 0, out[11] ?? 0], [g0, g0, g1, g1], 1e-6);
    expectClose([out[0] ?? 0, out[1] ?? 0, out[3] ?? 0, out[4] ?? 0], [1, 2, 3, 6]);
  });

  it('gives a shard of consecutive whole groups the same maps as the whole batch (data-parallel parity)', () => {
    const x = tf.randomNormal([12, 2, 2, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const whole = values(minibatchStdDev(x, 2));
    const shards = [0, 1, 2].flatMap((r) => values(minibatchStdDev(tf.slice(x, r * 4, 4), 2)));
    expect(shards).toEqual(whole);
  });

  it('is twice differentiable (the gradient penalty differentiates through it)', () => {
    const x = tf.tensor4d([0.5, -1, 2, 0.25, 1.5, -0.5, 0, 1], [4, 1, 1, 2]);
    const w = tf.tensor1d([0.3, -0.7]);
    // Penalty-like loss of w: mean over samples of |d/dx sum(mbstd(x * w) . v)|^2.
    const v = tf.tensor4d([1, 2, -1, 0.5, 3, -2, 1, 1, 0.5, -1, 2, 1], [4, 1, 1, 3]);
    const loss = (wv: tf.Tensor) =>
      tf.tidy(() => {
        const gx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(minibatchStdDev(tf.mul(t, wv) as tf.Tensor4D, 2), v)))(x);
        return tf.mean(tf.sum(tf.square(gx), [1, 2, 3])) as tf.Scalar;
      });
    const analytic = values(tf.grad(loss)(w));
    const h = 1e-2;
    const numeric = [0, 1].map((i) => {
      const d = tf.oneHot(i, 2).mul(h);
      return ((loss(w.add(d)).dataSync()[0] as number) - (loss(w.sub(d)).dataSync()[0] as number)) / (2 * h);
    });
    expectClose(analytic, numeric, 2e-2);
    expect(analytic.some((g) => Math.abs(g) > 1e-3)).toBe(true);
  });

  it('averages over H, W, C and tiles the value over the spatial map', () => {
    // Two samples, one group: per-element std = |a-b|/2.
    const a = [0, 0, 0, 0, 0, 0, 0, 0];
    const b = [2, 2, 2, 2, 4, 4, 4, 4];
    const y = minibatchStdDev(tf.tensor4d([...a, ...b], [2, 2, 2, 2]), 4);
    const extra = values(tf.slice(y, [0, 0, 0, 2], [2, 2, 2, 1]));
    expectClose(extra, new Array<number>(8).fill(1.5), 1e-6);
  });

  it('falls back to the largest divisor of N when N is not divisible by the group size', () => {
    expect(minibatchGroupSize(8, 4)).toBe(4);
    expect(minibatchGroupSize(2, 4)).toBe(2);
    expect(minibatchGroupSize(6, 4)).toBe(3);
    expect(minibatchGroupSize(5, 4)).toBe(1);
    // N = 6, G = 3, M = 2: samples 0, 1, 2 form group 0 (values 0, 3, 6 -> population std sqrt(6)).
    const x = tf.tensor4d([0, 3, 6, 1, 1, 1], [6, 1, 1, 1]);
    const out = values(tf.slice(minibatchStdDev(x, 4), [0, 0, 0, 1], [6, 1, 1, 1]));
    const g0 = Math.sqrt(6 + 1e-8);
    const g1 = Math.sqrt(1e-8);
    expectClose(out, [g0, g0, g0, g1, g1, g1], 1e-6);
    // Prime N above the group size: groups of one, a constant sqrt(1e-8) map.
    const single = values(tf.slice(minibatchStdDev(tf.randomNormal([5, 2, 2, 3]), 4), [0, 0, 0, 3], [5, 2, 2, 1]));
    expectClose(single, new Array<number>(20).fill(1e-4), 1e-3);
  });
});

describe('FadeIn', () => {
  it('lerps with a scalar or per-sample alpha tensor', () => {
    const a = tf.tensor4d([0, 10, 0, 10], [2, 1, 1, 2]);
    const b = tf.tensor4d([10, 20, 10, 20], [2, 1, 1, 2]);
    expectClose(values(fadeIn(a, b, tf.scalar(0.25))), [2.5, 12.5, 2.5, 12.5]);
    expectClose(values(fadeIn(a, b, tf.tensor2d([[0], [1]]))), [0, 10, 10, 20]);
    expect(values(fadeIn(a, b, 0))).toEqual(values(a));
    expect(values(fadeIn(a, b, 1))).toEqual(values(b));
    const layer = new FadeIn();
    expectClose(values(applyLayer(layer, [a, b, tf.tensor1d([0.5, 0.1])])), [5, 15, 1, 11]);
    expect(() => fadeIn(a, b, tf.ones([2, 2]))).toThrow(/alpha/);
  });
});

describe('resampling', () => {
  it('upscales by nearest neighbour and downscales by block means', () => {
    const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    const up = upscale2d(x);
    expect(values(up)).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    const big = tf.tensor4d(
      [1, 3, 0, 0, 5, 7, 0, 4, 2, 2, 1, 1, 2, 2, 1, 1].flatMap((v) => [v, -v]),
      [1, 4, 4, 2],
    );
    const down = downscale2d(big);
    expect(down.shape).toEqual([1, 2, 2, 2]);
    expectClose(values(down), [4, -4, 1, -1, 2, -2, 1, -1]);
    expect(values(downscale2d(upscale2d(x, 3), 3))).toEqual([1, 2, 3, 4]);
    expect(values(applyLayer(new UpscaleNearest2D(), x))).toEqual(values(up));
    expect(values(applyLayer(new DownscaleBox2D(), up))).toEqual([1, 2, 3, 4]);
    expect(new DownscaleBox2D({ factor: 4 }).computeOutputShape([null, 16, 8, 3])).toEqual([null, 4, 2, 3]);
    expect(() => downscale2d(tf.zeros([1, 3, 4, 1]) as tf.Tensor4D)).toThrow(/divisible/);
  });

  it('supports second-order gradients (tf.grad of tf.grad)', () => {
    const x = tf.tensor4d([1, -2, 3, 0.5, 2, 1, -1, 4, 0, 1, 2, 3, -3, 1, 1, 2], [1, 4, 4, 1]);
    // F(x) = sum(up(x)^3) = 4 sum(x^3); sum(dF/dx) = 12 sum(x^2); its gradient is 24 x.
    const upF = (t: tf.Tensor) => tf.sum(tf.pow(upscale2d(t as tf.Tensor4D), 3));
    const upSecond = tf.grad((t: tf.Tensor) => tf.sum(tf.grad(upF)(t)))(x);
    expectClose(values(upSecond), values(x).map((v) => 24 * v), 1e-5);
    // F(x) = sum(down(x)^3); sum(dF/dx) = 3 sum(d^2) over blocks; its gradient is 1.5 d(block).
    const downF = (t: tf.Tensor) => tf.sum(tf.pow(downscale2d(t as tf.Tensor4D), 3));
    const downSecond = tf.grad((t: tf.Tensor) => tf.sum(tf.grad(downF)(t)))(x);
    const expected = tf.mul(upscale2d(downscale2d(x)), 1.5);
    expectClose(values(downSecond), values(expected), 1e-5);
  });

  it('documents why: tfjs avgPool / resizeNearestNeighbor have no second-order gradient', () => {
    const x = tf.ones([1, 4, 4, 1]) as tf.Tensor4D;
    const pool = (t: tf.Tensor) => tf.sum(tf.square(tf.avgPool(t as tf.Tensor4D, 2, 2, 'valid')));
    expect(() => tf.grad((t: tf.Tensor) => tf.sum(tf.grad(pool)(t)))(x)).toThrow(/AvgPoolGrad/);
    const resize = (t: tf.Tensor) => tf.sum(tf.square(tf.image.resizeNearestNeighbor(t as tf.Tensor4D, [8, 8])));
    expect(() => tf.grad((t: tf.Tensor) => tf.sum(tf.grad(resize)(t)))(x)).toThrow(/ResizeNearestNeighborGrad/);
  });
});

describe('double backward through activations and convolutions', () => {
  it('lrelu is leaky ReLU and twice differentiable; tf.leakyRelu is not', () => {
    const x = tf.tensor1d([-2, -0.5, 0.5, 3]);
    expectClose(values(lrelu(x)), [-0.4, -0.1, 0.5, 3]);
    expectClose(values(applyLayer(new ProGanLeakyReLU({ alpha: 0.1 }), x)), [-0.2, -0.05, 0.5, 3]);
    // F = sum(lrelu(x)^2): dF/dx = 2 lrelu(x) s(x) = 2 s^2 x; d/dx sum(dF/dx) = 2 s^2.
    const f = (t: tf.Tensor) => tf.sum(tf.square(lrelu(t)));
    const second = tf.grad((t: tf.Tensor) => tf.sum(tf.grad(f)(t)))(x);
    expectClose(values(second), [0.08, 0.08, 2, 2]);
    // tfjs's own leakyRelu gradient uses Greater, which has no gradient.
    const g = (t: tf.Tensor) => tf.sum(tf.square(tf.leakyRelu(t, 0.2)));
    expect(() => tf.grad((t: tf.Tensor) => tf.sum(tf.grad(g)(t)))(x)).toThrow(/Greater/);
  });

  it('conv2d + lrelu: d/dW of a function of dD/dx matches finite differences', () => {
    const x = tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 11) as tf.Tensor4D;
    const w0 = tf.randomNormal([3, 3, 2, 3], 0, 0.5, 'float32', 12) as tf.Tensor4D;
    // P(W) = sum((dD/dx)^2), D(x) = sum(lrelu(conv(x, W)) * c): the WGAN-GP shape of computation.
    const c = tf.randomNormal([2, 4, 4, 3], 0, 1, 'float32', 13);
    const penalty = (w: tf.Tensor) => {
      const d = (t: tf.Tensor) => tf.sum(tf.mul(lrelu(tf.conv2d(t as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')), c));
      return tf.sum(tf.square(tf.grad(d)(x)));
    };
    const analytic = values(tf.grad(penalty)(w0));
    expect(analytic.every(Number.isFinite)).toBe(true);
    // lrelu makes the penalty piecewise smooth: a step small enough not to cross a kink (1e-3 here).
    const h = 1e-3;
    for (const index of [0, 17, 40]) {
      const bump = (sign: number) => {
        const buf = w0.bufferSync();
        const flat = buf.values as Float32Array;
        const copy = Float32Array.from(flat);
        copy[index] = (copy[index] ?? 0) + sign * h;
        return penalty(tf.tensor4d(copy, w0.shape)).dataSync()[0] ?? Number.NaN;
      };
      const numeric = (bump(1) - bump(-1)) / (2 * h);
      expect(Math.abs(numeric - (analytic[index] ?? Number.NaN))).toBeLessThan(2e-2 * Math.max(1, Math.abs(numeric)));
    }
  });
});

describe('tfjs 4.22 pitfall (canary)', () => {
  it('second-order gradients through ops that save their OUTPUT (tanh) are silently wrong', () => {
    // The engine clones saved outputs before the op's own tape node exists, so the outer tape loses
    // the dependence of the saved y on W. Keep tanh / sigmoid / exp / elu / softmax out of D.
    const x = tf.tensor2d([[0.3, -0.7], [1.1, 0.2]]);
    const w0 = tf.tensor2d([[0.5, -0.4], [0.3, 0.8]]);
    const penalty = (w: tf.Tensor) =>
      tf.sum(tf.square(tf.grad((t: tf.Tensor) => tf.sum(tf.tanh(tf.matMul(t as tf.Tensor2D, w as tf.Tensor2D))))(x)));
    const analytic = tf.grad(penalty)(w0).dataSync()[0] ?? Number.NaN;
    const h = 1e-3;
    const at = (d: number) => penalty(tf.tensor2d([[0.5 + d, -0.4], [0.3, 0.8]])).dataSync()[0] ?? Number.NaN;
    const numeric = (at(h) - at(-h)) / (2 * h);
    // If this fails, tfjs fixed it: tanh becomes usable in discriminators.
    expect(Math.abs(numeric - analytic)).toBeGreaterThan(0.1);
  });
});

describe('serialisation', () => {
  it('round-trips a model built from every layer, weights and config included', async () => {
    const image = tf.input({ shape: [4, 4, 2] });
    const oldPath = tf.input({ shape: [4, 4, 2] });
    const alpha = tf.input({ shape: [1] });
    let h = new EqualizedConv2D({ filters: 3, kernelSize: 3, name: 'conv', seed: 1 }).apply(image);
    h = new ProGanLeakyReLU({ name: 'act' }).apply(h);
    h = new PixelNorm({ name: 'pn' }).apply(h);
    h = new MinibatchStdDev({ groupSize: 2, name: 'mbstd' }).apply(h);
    h = new EqualizedConv2D({ filters: 2, kernelSize: 1, gain: 1, name: 'torgb', seed: 2 }).apply(h);
    h = new FadeIn({ name: 'fade' }).apply([oldPath, h as tf.SymbolicTensor, alpha]);
    h = new DownscaleBox2D({ name: 'down' }).apply(h);
    h = new UpscaleNearest2D({ name: 'up' }).apply(h);
    const flat = tf.layers.flatten().apply(h);
    const out = new EqualizedDense({ units: 1, gain: 1, name: 'dense', seed: 3 }).apply(flat);
    const model = tf.model({ inputs: [image, oldPath, alpha], outputs: out as tf.SymbolicTensor });
    // Give the biases non-zero values so that the round trip checks them too.
    for (const w of model.weights) {
      if (w.originalName.endsWith('bias')) w.write(tf.fill(w.shape as number[], 0.3));
    }

    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    if (saved === undefined) throw new Error('nothing saved');
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved));

    const inputs = [
      tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 5),
      tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 6),
      tf.tensor2d([[0.3], [0.8]]),
    ];
    const a = model.predict(inputs) as tf.Tensor;
    const b = loaded.predict(inputs) as tf.Tensor;
    expect(b.shape).toEqual([2, 1]);
    expectClose(values(b), values(a), 1e-6);
    for (const name of ['conv', 'act', 'pn', 'mbstd', 'torgb', 'fade', 'down', 'up', 'dense']) {
      expect(loaded.getLayer(name).getConfig()).toEqual(model.getLayer(name).getConfig());
    }
    expect(loaded.getLayer('conv').getClassName()).toBe('EqualizedConv2D');
  });
});

describe('tensor hygiene', () => {
  it('layers leak no tensors per call inside tf.tidy', () => {
    const conv = new EqualizedConv2D({ filters: 2 });
    const dense = new EqualizedDense({ units: 2 });
    const x = tf.ones([2, 4, 4, 2]);
    tf.tidy(() => applyLayer(dense, applyLayer(conv, x).reshape([2, -1]))); // build once
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.tidy(() => {
        const h = applyLayer(conv, x);
        const m = minibatchStdDev(pixelNorm(lrelu(h)) as tf.Tensor4D, 2);
        const f = fadeIn(upscale2d(downscale2d(m)), m, tf.scalar(0.5));
        return applyLayer(dense, tf.reshape(f, [2, -1]).slice([0, 0], [2, 32]));
      }).dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
