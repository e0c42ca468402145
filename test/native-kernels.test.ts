// The native (oneDNN) backend against the pure-JS cpu backend: every overridden kernel on
// randomised shapes, gradients through tf.grad, and tensor accounting.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  NativeBackendUnavailableError,
  clearNativeBufferPool,
  nativeAddon,
  nativeBackendStatus,
  nativeKernelCounts,
  registerNativeBackend,
  setNativeThreads,
} from '../src/backend/native.js';
import { Rng } from '../src/util/random.js';

tf.env().set('PROD', true);

const status = nativeBackendStatus();
const required = process.env['PROGGAN_REQUIRE_NATIVE'] === '1';
const TOL = 1e-4;

describe('native backend availability', () => {
  it.runIf(required)('is built and loads (PROGGAN_REQUIRE_NATIVE=1)', () => {
    expect(status.reason).toBeUndefined();
    expect(status.available).toBe(true);
  });

  it.runIf(!status.available)('explains how to get it when missing', async () => {
    await expect(registerNativeBackend()).rejects.toBeInstanceOf(NativeBackendUnavailableError);
    await expect(registerNativeBackend()).rejects.toThrow(/libdnnl-dev/);
  });
});

/** A random input: shape and values (uniform in [-1, 1), or positive when asked). */
interface Arg {
  shape: number[];
  values: Float32Array;
}

function arg(rng: Rng, shape: number[], positive = false): Arg {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; ++i) values[i] = positive ? 0.5 + rng.next() : rng.next() * 2 - 1;
  return { shape, values };
}

/** Runs `fn` on fresh tensors of `args` under `backend`; returns every output's values. */
function runOn(backend: string, args: Arg[], fn: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[]): Float32Array[] {
  tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = args.map((a) => tf.tensor(a.values, a.shape, 'float32'));
    const out = fn(...xs);
    return (Array.isArray(out) ? out : [out]).map((t) => t.dataSync() as Float32Array);
  });
}

/** max |a - b| / max(|b|), the normwise relative error of `a` against reference `b`. */
function relErr(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; ++i) {
    diff = Math.max(diff, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
    scale = Math.max(scale, Math.abs(b[i] ?? 0));
  }
  return diff / scale;
}

type Fn = (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/**
 * Asserts native `fn` == cpu `refFn` (default `fn`), no tensor leaks on native, and returns
 * the error.
 */
function compare(args: Arg[], fn: Fn, refFn: Fn = fn): number {
  const ref = runOn('cpu', args, refFn);
  tf.setBackend('native');
  const before = tf.memory().numTensors;
  const got = runOn('native', args, fn);
  expect(tf.memory().numTensors).toBe(before);
  expect(got.length).toBe(ref.length);
  let worst = 0;
  got.forEach((g, i) => {
    const r = ref[i];
    if (r === undefined) throw new Error('missing reference output');
    for (const v of g) expect(Number.isFinite(v)).toBe(true);
    worst = Math.max(worst, relErr(g, r));
  });
  expect(worst).toBeLessThan(TOL);
  return worst;
}

/** Sum of all outputs times fixed random weights: a scalar loss whose gradient is non-trivial. */
function weightedSum(y: tf.Tensor, seed: number): tf.Scalar {
  const w = tf.randomUniform(y.shape, -1, 1, 'float32', seed);
  return tf.sum(tf.mul(y, w));
}

const pick = <T,>(rng: Rng, xs: readonly T[]): T => {
  const v = xs[rng.int(xs.length)];
  if (v === undefined) throw new Error('empty choice');
  return v;
};

describe.skipIf(!status.available)('native kernels vs cpu', () => {
  const rng = new Rng(1234);

  beforeAll(async () => {
    await registerNativeBackend({ threads: 2 });
    await registerNativeBackend(); // idempotent
  });
  afterAll(() => {
    tf.setBackend('cpu');
  });

  it('registers every cpu kernel for native', () => {
    const cpu = tf.getKernelsForBackend('cpu').map((c) => c.kernelName).sort();
    const native = tf.getKernelsForBackend('native').map((c) => c.kernelName).sort();
    expect(native).toEqual(cpu);
    const s = nativeBackendStatus();
    expect(s.threads).toBe(2);
    expect(s.dnnlVersion).toMatch(/^\d+\.\d+\.\d+$/);
    setNativeThreads(1);
    expect(nativeBackendStatus().threads).toBe(1);
    expect(() => setNativeThreads(0)).toThrow(RangeError);
    setNativeThreads(2);
    expect(nativeBackendStatus().threads).toBe(2);
  });

  it('conv2d forward: random shapes, strides, padding, dilation', () => {
    for (let t = 0; t < 12; ++t) {
      const n = 1 + rng.int(8);
      const h = 3 + rng.int(12);
      const w = 3 + rng.int(12);
      const ci = 1 + rng.int(9);
      const co = 1 + rng.int(17);
      const kh = 1 + rng.int(3);
      const kw = 1 + rng.int(3);
      const dil = t % 4 === 3 ? 2 : 1;
      const stride = dil === 1 ? pick(rng, [1, 2] as const) : 1;
      const pad = pick(rng, ['same', 'valid', 1] as const);
      if ((pad === 'valid' || pad === 1) && (h < (kh - 1) * dil + 1 || w < (kw - 1) * dil + 1)) continue;
      compare([arg(rng, [n, h, w, ci]), arg(rng, [kh, kw, ci, co])], (x, f) =>
        tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, stride, pad, 'NHWC', dil),
      );
    }
  });

  it('conv2d gradients (dx, dw) through tf.grads', () => {
    for (let t = 0; t < 8; ++t) {
      const n = 1 + rng.int(8);
      const h = 4 + rng.int(11);
      const w = 4 + rng.int(11);
      const ci = 1 + rng.int(8);
      const co = 1 + rng.int(12);
      const k = pick(rng, [1, 3, 4] as const);
      const stride = pick(rng, [1, 2] as const);
      const pad = pick(rng, ['same', 'valid'] as const);
      compare([arg(rng, [n, h, w, ci]), arg(rng, [k, k, ci, co])], (x, f) =>
        tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          weightedSum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), t),
        )([x as tf.Tensor, f as tf.Tensor]),
      );
    }
  });

  it('conv2dTranspose forward and gradients', () => {
    for (let t = 0; t < 6; ++t) {
      const n = 1 + rng.int(4);
      const h = 2 + rng.int(7);
      const w = 2 + rng.int(7);
      const ci = 1 + rng.int(12);
      const co = 1 + rng.int(8);
      const stride = pick(rng, [1, 2] as const);
      const k = 3;
      const outShape: [number, number, number, number] = [n, h * stride, w * stride, co];
      compare([arg(rng, [n, h, w, ci]), arg(rng, [k, k, co, ci])], (x, f) => {
        const y = tf.conv2dTranspose(x as tf.Tensor4D, f as tf.Tensor4D, outShape, stride, 'same');
        const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          weightedSum(tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, outShape, stride, 'same'), t),
        )([x as tf.Tensor, f as tf.Tensor]);
        return [y, dx as tf.Tensor, df as tf.Tensor];
      });
    }
  });

  it('fused conv2d with bias and activations, and its gradients', () => {
    const acts = ['linear', 'relu', 'relu6', 'elu', 'leakyrelu', 'sigmoid'] as const;
    for (const activation of acts) {
      const n = 1 + rng.int(4);
      const ci = 1 + rng.int(6);
      const co = 1 + rng.int(9);
      const stride = pick(rng, [1, 2] as const);
      compare([arg(rng, [n, 9, 7, ci]), arg(rng, [3, 3, ci, co]), arg(rng, [co])], (x, f, b) => {
        const run = (a: tf.Tensor, w: tf.Tensor, bias: tf.Tensor): tf.Tensor =>
          tf.fused.conv2d({
            x: a as tf.Tensor4D,
            filter: w as tf.Tensor4D,
            bias,
            strides: stride,
            pad: 'same',
            activation,
            leakyreluAlpha: 0.2,
          });
        const grads = tf.grads((a: tf.Tensor, w: tf.Tensor, bias: tf.Tensor) => weightedSum(run(a, w, bias), 7))([
          x as tf.Tensor,
          f as tf.Tensor,
          b as tf.Tensor,
        ]);
        return [run(x as tf.Tensor, f as tf.Tensor, b as tf.Tensor), ...grads];
      });
    }
  });

  it('conv3d forward and gradients (2D-like and 3DGAN-like kernels)', () => {
    const cases = [
      { x: [2, 7, 8, 5, 2], f: [3, 3, 2, 2, 4], stride: 1, pad: 'same', dil: 1 },
      { x: [1, 9, 9, 6, 3], f: [3, 3, 3, 3, 5], stride: 2, pad: 'valid', dil: 1 },
      { x: [3, 8, 7, 6, 1], f: [4, 4, 3, 1, 6], stride: 1, pad: 'valid', dil: 1 },
      { x: [2, 11, 11, 7, 2], f: [5, 6, 6, 2, 3], stride: 1, pad: 'same', dil: 1 },
      { x: [1, 9, 8, 7, 2], f: [2, 2, 2, 2, 3], stride: 1, pad: 'valid', dil: 2 },
    ] as const;
    for (const c of cases) {
      compare([arg(rng, [...c.x]), arg(rng, [...c.f])], (x, f) =>
        tf.conv3d(x as tf.Tensor5D, f as tf.Tensor5D, c.stride, c.pad, 'NDHWC', c.dil),
      );
      if (c.dil !== 1) continue;
      compare([arg(rng, [...c.x]), arg(rng, [...c.f])], (x, f) =>
        tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          weightedSum(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, c.stride, c.pad), 3),
        )([x as tf.Tensor, f as tf.Tensor]),
      );
    }
  });

  it('every convolution layout candidate is correct (policies 0-2, then auto)', () => {
    const addon = nativeAddon();
    try {
      for (const policy of [0, 1, 2] as const) {
        addon.setLayoutPolicy(policy);
        compare([arg(rng, [3, 9, 10, 20]), arg(rng, [3, 3, 20, 17])], (x, f) =>
          tf.grads((a: tf.Tensor, b: tf.Tensor) => weightedSum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'), 1))([
            x as tf.Tensor,
            f as tf.Tensor,
          ]),
        );
        compare([arg(rng, [2, 6, 7, 5, 16]), arg(rng, [3, 3, 2, 16, 16])], (x, f) =>
          tf.grads((a: tf.Tensor, b: tf.Tensor) => weightedSum(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, 1, 'same'), 1))([
            x as tf.Tensor,
            f as tf.Tensor,
          ]),
        );
      }
    } finally {
      addon.setLayoutPolicy(3);
    }
  });

  it('matMul / batched matMul with transposes and broadcast, and gradients', () => {
    for (let t = 0; t < 10; ++t) {
      const m = 1 + rng.int(20);
      const kk = 1 + rng.int(20);
      const n = 1 + rng.int(20);
      const ta = rng.next() < 0.5;
      const tb = rng.next() < 0.5;
      const batch = t < 4 ? [] : t < 7 ? [1 + rng.int(4)] : [2, 3];
      const bBatch = t === 9 ? [] : batch;
      const aShape = [...batch, ...(ta ? [kk, m] : [m, kk])];
      const bShape = [...bBatch, ...(tb ? [n, kk] : [kk, n])];
      compare([arg(rng, aShape), arg(rng, bShape)], (a, b) => {
        const y = tf.matMul(a as tf.Tensor, b as tf.Tensor, ta, tb);
        // tfjs's own BatchMatMul gradient cannot reduce a broadcast operand: forward only.
        if (bShape.length !== aShape.length) return [y];
        const g = tf.grads((p: tf.Tensor, q: tf.Tensor) => weightedSum(tf.matMul(p, q, ta, tb), 5))([
          a as tf.Tensor,
          b as tf.Tensor,
        ]);
        return [y, ...g];
      });
    }
  });

  it('fused matMul (dense layer) with bias and activations, and gradients', () => {
    for (const activation of ['linear', 'relu', 'leakyrelu', 'sigmoid', 'elu', 'relu6'] as const) {
      const m = 1 + rng.int(16);
      const kk = 1 + rng.int(33);
      const n = 1 + rng.int(17);
      compare([arg(rng, [m, kk]), arg(rng, [kk, n]), arg(rng, [n])], (a, b, bias) => {
        const run = (p: tf.Tensor, q: tf.Tensor, r: tf.Tensor): tf.Tensor =>
          tf.fused.matMul({ a: p as tf.Tensor2D, b: q as tf.Tensor2D, bias: r, activation, leakyreluAlpha: 0.2 });
        const g = tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => weightedSum(run(p, q, r), 9))([
          a as tf.Tensor,
          b as tf.Tensor,
          bias as tf.Tensor,
        ]);
        return [run(a as tf.Tensor, b as tf.Tensor, bias as tf.Tensor), ...g];
      });
    }
  });

  it('2D pooling (max, avg; same/valid; strides) and gradients', () => {
    for (let t = 0; t < 8; ++t) {
      const n = 1 + rng.int(4);
      const h = 3 + rng.int(10);
      const w = 3 + rng.int(10);
      const c = 1 + rng.int(6);
      const size = pick(rng, [2, 3] as const);
      const stride = pick(rng, [1, 2] as const);
      const pad = t < 4 ? 'valid' : 'same';
      const kind = t % 2 === 0 ? 'max' : 'avg';
      const op = (x: tf.Tensor): tf.Tensor =>
        kind === 'max'
          ? tf.maxPool(x as tf.Tensor4D, size, stride, pad)
          : tf.avgPool(x as tf.Tensor4D, size, stride, pad);
      const grad = (x: tf.Tensor): tf.Tensor => tf.grad((a: tf.Tensor) => weightedSum(op(a), 4))(x);
      compare([arg(rng, [n, h, w, c])], (x) => op(x as tf.Tensor));
      if (kind === 'avg' && pad === 'same') {
        // The cpu AvgPoolGrad divides border windows by the full window size although its
        // forward pass divides by the in-bounds count; native returns the exact gradient, so
        // the reference is the gradient of avg pool written as sum-pool / count on cpu.
        const ones = tf.ones([size, size, c, 1]);
        const sumPool = (a: tf.Tensor): tf.Tensor => tf.depthwiseConv2d(a as tf.Tensor4D, ones as tf.Tensor4D, stride, pad);
        const exact = (x: tf.Tensor): tf.Tensor =>
          tf.grad((a: tf.Tensor) => weightedSum(tf.div(sumPool(a), sumPool(tf.onesLike(a))), 4))(x);
        compare([arg(rng, [n, h, w, c])], (x) => grad(x as tf.Tensor), (x) => exact(x as tf.Tensor));
        ones.dispose();
      } else {
        compare([arg(rng, [n, h, w, c])], (x) => grad(x as tf.Tensor));
      }
    }
  });

  it('3D pooling (max, avg) and gradients', () => {
    const c = 3;
    for (let t = 0; t < 4; ++t) {
      const kind = t % 2 === 0 ? 'max' : 'avg';
      const pad = t < 2 ? 'valid' : 'same';
      const op = (x: tf.Tensor): tf.Tensor =>
        kind === 'max' ? tf.maxPool3d(x as tf.Tensor5D, 2, 2, pad) : tf.avgPool3d(x as tf.Tensor5D, 2, 2, pad);
      const grad = (x: tf.Tensor): tf.Tensor => tf.grad((a: tf.Tensor) => weightedSum(op(a), 4))(x);
      const args = [arg(rng, [2, 7, 6, 5, c])];
      compare(args, (x) => op(x as tf.Tensor));
      if (kind === 'avg' && pad === 'same') {
        // As in 2D: reference = gradient of sum-pool / in-bounds count (see above).
        const eye = tf.tile(tf.reshape(tf.eye(c), [1, 1, 1, c, c]), [2, 2, 2, 1, 1]);
        const sumPool = (a: tf.Tensor): tf.Tensor => tf.conv3d(a as tf.Tensor5D, eye as tf.Tensor5D, 2, pad);
        const exact = (x: tf.Tensor): tf.Tensor =>
          tf.grad((a: tf.Tensor) => weightedSum(tf.div(sumPool(a), sumPool(tf.onesLike(a))), 4))(x);
        compare(args, (x) => grad(x as tf.Tensor), (x) => exact(x as tf.Tensor));
        eye.dispose();
      } else {
        compare(args, (x) => grad(x as tf.Tensor));
      }
    }
  });

  it('elementwise unary ops', () => {
    const x = arg(rng, [3, 5, 7, 4]);
    const pos = arg(rng, [3, 5, 7, 4], true);
    compare([x], (a) => [
      tf.relu(a as tf.Tensor),
      tf.leakyRelu(a as tf.Tensor, 0.2),
      tf.square(a as tf.Tensor),
      tf.neg(a as tf.Tensor),
      tf.exp(a as tf.Tensor),
      tf.abs(a as tf.Tensor),
      tf.tanh(a as tf.Tensor),
      tf.sigmoid(a as tf.Tensor),
      tf.elu(a as tf.Tensor),
      tf.relu6(tf.mul(a as tf.Tensor, 8)),
    ]);
    compare([pos], (a) => [tf.sqrt(a as tf.Tensor), tf.rsqrt(a as tf.Tensor), tf.log(a as tf.Tensor), tf.reciprocal(a as tf.Tensor)]);
    compare([x], (a) => tf.grad((t: tf.Tensor) => weightedSum(tf.leakyRelu(tf.mul(t, 3), 0.2), 2))(a as tf.Tensor));
  });

  it('broadcasting binary ops and comparisons on random shape pairs', () => {
    const shapes: Array<[number[], number[]]> = [
      [[4, 5, 6, 3], [4, 5, 6, 3]],
      [[4, 5, 6, 3], [3]],
      [[4, 5, 6, 3], [1, 1, 1, 3]],
      [[4, 5, 6, 3], []],
      [[], [2, 3]],
      [[4, 1, 6, 1], [1, 5, 1, 3]],
      [[2, 1, 3], [4, 2, 5, 1]],
      [[7, 1], [1, 9]],
      [[3, 4, 5], [3, 1, 5]],
      [[2, 3, 2, 3, 2, 3, 2], [3, 1, 3, 1, 3, 2]],
    ];
    for (const [sa, sb] of shapes) {
      compare([arg(rng, sa), arg(rng, sb, true)], (a, b) => {
        const [p, q] = [a as tf.Tensor, b as tf.Tensor];
        return [tf.add(p, q), tf.sub(p, q), tf.mul(p, q), tf.div(p, q), tf.maximum(p, q), tf.minimum(p, q), tf.squaredDifference(p, q)];
      });
      compare([arg(rng, sa), arg(rng, sb)], (a, b) => {
        const [p, q] = [a as tf.Tensor, b as tf.Tensor];
        const f = (t: tf.Tensor): tf.Tensor => tf.cast(t, 'float32');
        return [f(tf.greater(p, q)), f(tf.greaterEqual(p, q)), f(tf.less(p, q)), f(tf.lessEqual(p, q)), f(tf.equal(p, p)), f(tf.notEqual(p, q)), tf.where(tf.greater(p, 0), p, tf.mul(p, -1))];
      });
    }
  });

  it('reductions (sum, mean, max, min) over contiguous and split axes', () => {
    const x = arg(rng, [4, 6, 5, 3]);
    const axesList: Array<number | number[]> = [0, 1, 3, -1, [0, 1, 2], [1, 2], [0, 2], [0, 1, 2, 3], [2, 3]];
    for (const axis of axesList) {
      for (const keepDims of [false, true]) {
        compare([x], (a) => {
          const t = a as tf.Tensor;
          return [tf.sum(t, axis, keepDims), tf.mean(t, axis, keepDims), tf.max(t, axis, keepDims), tf.min(t, axis, keepDims)];
        });
      }
    }
    // Split axes as a 2x average pool writes them ([N, H/2, 2, W/2, 2, C] over [2, 4]): reduced natively block by block.
    const pooled = arg(rng, [2, 3, 2, 4, 2, 5]);
    for (const axis of [[2, 4], [0, 2, 4], [1, 3, 5]]) {
      compare([pooled], (a) => {
        const t = a as tf.Tensor;
        return [tf.sum(t, axis), tf.mean(t, axis, true), tf.max(t, axis), tf.min(t, axis)];
      });
    }
    // Many short middle-axis reductions, threaded (the gradient of UpSampling3D's broadcast).
    compare([arg(rng, [2000, 6, 3])], (a) => [tf.sum(a as tf.Tensor, 1), tf.mean(a as tf.Tensor, 1, true)]);
    // A long reduction (batch-norm moments of a 64x64x8 map) still matches to 1e-4.
    compare([arg(rng, [8, 64, 64, 8])], (a) => {
      const m = tf.moments(a as tf.Tensor, [0, 1, 2]);
      return [m.mean, m.variance, tf.sum(a as tf.Tensor)];
    });
  });

  it('tile, batch norm (layers, training and inference) and their gradients', () => {
    compare([arg(rng, [2, 3, 4])], (a) => [tf.tile(a as tf.Tensor, [2, 1, 3]), tf.tile(a as tf.Tensor, [1, 4, 1])]);
    const x = arg(rng, [4, 6, 5, 3]);
    const mean = arg(rng, [3]);
    const variance = arg(rng, [3], true);
    const offset = arg(rng, [3]);
    const scale = arg(rng, [3], true);
    compare([x, mean, variance, offset, scale], (a, m, v, o, s) => {
      const bn = (p: tf.Tensor, q: tf.Tensor, r: tf.Tensor): tf.Tensor =>
        tf.batchNorm(p as tf.Tensor4D, m as tf.Tensor1D, v as tf.Tensor1D, q as tf.Tensor1D, r as tf.Tensor1D, 1e-3);
      const g = tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => weightedSum(bn(p, q, r), 6))([
        a as tf.Tensor,
        o as tf.Tensor,
        s as tf.Tensor,
      ]);
      return [bn(a as tf.Tensor, o as tf.Tensor, s as tf.Tensor), tf.batchNorm(a as tf.Tensor4D, m as tf.Tensor1D, v as tf.Tensor1D), ...g];
    });
    // Batch norm in training mode (as tf.layers does it): moments + normalisation + gradients.
    compare([x, offset, scale], (a, o, sc) => {
      const f = (t: tf.Tensor, q: tf.Tensor, r: tf.Tensor): tf.Tensor => {
        const m = tf.moments(t, [0, 1, 2]);
        return tf.batchNorm(t as tf.Tensor4D, m.mean as tf.Tensor1D, m.variance as tf.Tensor1D, q as tf.Tensor1D, r as tf.Tensor1D, 1e-3);
      };
      const g = tf.grads((t: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => weightedSum(f(t, q, r), 8))([a as tf.Tensor, o as tf.Tensor, sc as tf.Tensor]);
      return [f(a as tf.Tensor, o as tf.Tensor, sc as tf.Tensor), ...g];
    });
  });

  it('pad and strided slice on random rank-1..6 shapes, and their gradients (ZeroPadding3D)', () => {
    for (let trial = 0; trial < 12; ++trial) {
      const rank = 1 + rng.int(6);
      const shape = Array.from({ length: rank }, () => 1 + rng.int(5));
      const paddings = shape.map(() => [rng.int(3), rng.int(3)] as [number, number]);
      const value = trial % 3 === 0 ? 0.5 : 0;
      // A slice that is neither the whole tensor nor (usually) contiguous.
      const begin = shape.map((d) => rng.int(d));
      const size = shape.map((d, i) => 1 + rng.int(d - (begin[i] ?? 0)));
      compare([arg(rng, shape)], (a) => {
        const t = a as tf.Tensor;
        const padG = tf.grad((u: tf.Tensor) => weightedSum(tf.pad(u, paddings, value), 20 + trial))(t);
        const sliceG = tf.grad((u: tf.Tensor) => weightedSum(tf.slice(u, begin, size), 40 + trial))(t);
        return [tf.pad(t, paddings, value), tf.slice(t, begin, size), padG, sliceG];
      });
    }
    // The 3DGAN's depth padding of [N, X, Y, Z, C] (whole trailing dims merged) and its gradient.
    const x5 = arg(rng, [2, 4, 3, 5, 3]);
    compare([x5], (a) => {
      const t = a as tf.Tensor;
      const p: Array<[number, number]> = [[0, 0], [0, 0], [0, 0], [1, 1], [0, 0]];
      return [tf.pad(t, p), tf.grad((u: tf.Tensor) => weightedSum(tf.pad(u, p), 60))(t)];
    });
    // Zero-size pieces: an empty slice and padding of an empty tensor.
    compare([arg(rng, [3, 4])], (a) => [tf.slice(a as tf.Tensor, [1, 1], [0, 2]), tf.pad(tf.slice(a as tf.Tensor, [0, 0], [0, 4]), [[1, 1], [0, 0]], 2)]);
    nativeKernelCounts(true);
    tf.setBackend('native');
    tf.tidy(() => tf.slice(tf.pad(tf.ones([2, 3, 4]), [[0, 0], [1, 2], [0, 1]]), [0, 1, 1], [2, 2, 3]));
    const c = nativeKernelCounts(true);
    expect(c['PadV2']).toEqual({ native: 1, fallback: 0 });
    expect(c['Slice']).toEqual({ native: 1, fallback: 0 });
  });

  it('step, floor and pow (with the gradients that use them)', () => {
    const x = arg(rng, [3, 5, 4, 2]);
    const pos = arg(rng, [3, 5, 4, 2], true);
    compare([x], (a) => {
      const t = tf.mul(a as tf.Tensor, 3);
      return [tf.step(t), tf.step(t, 0.3), tf.floor(t), tf.grad((u: tf.Tensor) => weightedSum(tf.relu(u), 70))(t)];
    });
    for (const [sa, sb] of [[[3, 5, 4, 2], []], [[3, 5, 4, 2], [2]], [[3, 5, 4, 2], [3, 5, 4, 2]]] as Array<[number[], number[]]>) {
      compare([pos, arg(rng, sb)], (a, b) => {
        const base = tf.reshape(a as tf.Tensor, sa);
        const g = tf.grads((u: tf.Tensor, v: tf.Tensor) => weightedSum(tf.pow(u, v), 80))([base, b as tf.Tensor]);
        return [tf.pow(base, b as tf.Tensor), ...g];
      });
    }
    // The 3DGAN's undoPower: relu then x^(1/0.85), forward and gradient.
    compare([x], (a) => {
      const f = (u: tf.Tensor): tf.Tensor => tf.pow(tf.relu(u), 1 / 0.85);
      return [f(a as tf.Tensor), tf.grad((u: tf.Tensor) => weightedSum(f(u), 90))(a as tf.Tensor)];
    });
  });

  it('nearest-neighbour resize and its gradient (all corner/centre modes)', () => {
    const x = arg(rng, [2, 5, 7, 3]);
    for (const [size, alignCorners, halfPixelCenters] of [
      [[10, 14], false, false],
      [[8, 9], false, true],
      [[9, 13], true, false],
      [[3, 4], false, false],
    ] as Array<[[number, number], boolean, boolean]>) {
      const f = (t: tf.Tensor): tf.Tensor => tf.image.resizeNearestNeighbor(t as tf.Tensor4D, size, alignCorners, halfPixelCenters);
      compare([x], (a) => f(a as tf.Tensor));
      // tfjs's cpu ResizeNearestNeighborGrad mis-indexes every batch entry after the first, so
      // the reference gradient is that of the same resize written as two gathers (whose
      // forward equals the cpu resize, checked above).
      const srcIndex = (oldSize: number, newSize: number): number[] => {
        const effIn = alignCorners && newSize > 1 ? oldSize - 1 : oldSize;
        const effOut = alignCorners && newSize > 1 ? newSize - 1 : newSize;
        return Array.from({ length: newSize }, (_, i) => {
          const frac = (effIn / effOut) * (halfPixelCenters ? i + 0.5 : i);
          const src = Math.min(oldSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
          return halfPixelCenters ? Math.max(0, src) : src;
        });
      };
      const rows = srcIndex(5, size[0]);
      const cols = srcIndex(7, size[1]);
      const gathered = (t: tf.Tensor): tf.Tensor => tf.gather(tf.gather(t, rows, 1), cols, 2);
      compare([x], (a) => f(a as tf.Tensor), (a) => gathered(a as tf.Tensor));
      compare(
        [x],
        (a) => tf.grad((t: tf.Tensor) => weightedSum(f(t), 3))(a as tf.Tensor),
        (a) => tf.grad((t: tf.Tensor) => weightedSum(gathered(t), 3))(a as tf.Tensor),
      );
    }
  });

  it('recycled output arrays never clobber live data (dataSync results, slice views)', () => {
    tf.setBackend('native');
    const n = 1 << 15; // above the pool's size threshold
    const x = tf.fill([n], 1.5);
    const y = tf.mul(x, 2);
    const seen = y.dataSync();
    const view = tf.slice(tf.mul(x, 3), [0], [100]);
    y.dispose();
    tf.tidy(() => {
      for (let i = 0; i < 4; ++i) tf.mul(x, 5 + i);
    });
    const z = tf.add(x, 1); // may reuse a recycled array: must be fully overwritten
    expect(seen[0]).toBe(3);
    expect(seen[n - 1]).toBe(3);
    expect(Array.from(view.dataSync()).every((v) => v === 4.5)).toBe(true);
    expect(Array.from(z.dataSync()).every((v) => v === 2.5)).toBe(true);
    tf.dispose([x, view, z]);
    tf.tidy(() => tf.mul(tf.fill([n], 1), 2));
    expect(clearNativeBufferPool()).toBeGreaterThan(0);
    expect(clearNativeBufferPool()).toBe(0);
  });

  it('runs the overridden kernels natively (no silent fallback)', () => {
    nativeKernelCounts(true);
    tf.setBackend('native');
    tf.tidy(() => {
      const x = tf.randomNormal([2, 8, 8, 3]);
      const f = tf.randomNormal([3, 3, 3, 4]);
      tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.leakyRelu(tf.maxPool(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), 2, 2, 'valid'), 0.2)),
      )([x, f]);
      tf.matMul(tf.randomNormal([3, 4]), tf.randomNormal([4, 5]));
      tf.mean(tf.randomNormal([2, 4, 2, 4, 2, 3]), [2, 4]); // split axes (ProGAN's 2x downscale)
    });
    const c = nativeKernelCounts();
    for (const name of ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MaxPool', 'MaxPoolGrad', 'LeakyRelu', 'BatchMatMul', 'Sum', 'Mean']) {
      expect(c[name]?.native ?? 0, name).toBeGreaterThan(0);
      expect(c[name]?.fallback ?? 0, name).toBe(0);
    }
  });

  it('falls back to the cpu kernel for NCHW and int32', () => {
    compare([arg(rng, [2, 3, 6, 5]), arg(rng, [3, 3, 3, 4])], (x, f) =>
      tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same', 'NCHW'),
    );
    tf.setBackend('native');
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2]], [1, 2], 'int32'), tf.tensor2d([[3], [4]], [2, 1], 'int32')));
    expect(y.dtype).toBe('int32');
    expect(Array.from(y.dataSync())).toEqual([11]);
    y.dispose();
  });
});
