import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeBackendStatus, registerNativeBackend } from '../src/backend/native.js';
import { BatchNorm3D, UpSampling3D, upsample3d, ZeroPadding3D, zeroPad3d } from '../src/layers/index.js';

const backends = ['cpu', ...(nativeBackendStatus().available ? ['native'] : [])];

afterAll(async () => {
  await tf.setBackend('cpu');
});

/** Central finite difference of scalar f at x, element by element. */
function finiteDiff(f: (x: tf.Tensor) => tf.Scalar, x: Float32Array, shape: number[], h = 1e-2): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const p = x.slice();
    const m = x.slice();
    p[i] = (p[i] ?? 0) + h;
    m[i] = (m[i] ?? 0) - h;
    const fp = tf.tidy(() => f(tf.tensor(p, shape)).dataSync()[0] ?? 0);
    const fm = tf.tidy(() => f(tf.tensor(m, shape)).dataSync()[0] ?? 0);
    out[i] = (fp - fm) / (2 * h);
  }
  return out;
}

describe.each(backends)('3D layers on %s', (backend) => {
  it('UpSampling3D repeats each voxel per axis', async () => {
    if (backend === 'native') await registerNativeBackend();
    await tf.setBackend(backend);
    const x = tf.tensor5d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2, 1]);
    const y = upsample3d(x, [2, 1, 3]);
    expect(y.shape).toEqual([1, 4, 2, 6, 1]);
    const v = await y.array();
    // y[a, b, c] = x[floor(a/2), b, floor(c/3)]
    for (let a = 0; a < 4; a++) for (let b = 0; b < 2; b++) for (let c = 0; c < 6; c++) {
      expect(v[0]?.[a]?.[b]?.[c]?.[0]).toBe(1 + Math.floor(a / 2) * 4 + b * 2 + Math.floor(c / 3));
    }
    const layer = new UpSampling3D({ size: [6, 6, 6] });
    expect(layer.computeOutputShape([null, 9, 9, 8, 8])).toEqual([null, 54, 54, 48, 8]);
    tf.dispose([x, y]);
  });

  it('UpSampling3D gradient sums each block (hand values and finite differences)', () => {
    const x = tf.tensor5d([1, 2, 3, 4], [1, 2, 1, 2, 1]);
    const w = tf.range(0, 2 * 2 * 3 * 1 * 2, 1, 'float32').reshape([1, 4, 3, 2, 1]);
    const f = (t: tf.Tensor): tf.Scalar => tf.sum(tf.mul(upsample3d(t as tf.Tensor5D, [2, 3, 1]), w));
    const g = tf.grad(f)(x);
    // Voxel (a, 0, c) gets sum over its 2x3x1 block of w[a', b', c] with a' in {2a, 2a+1}, b' in 0..2.
    const wv = w.dataSync();
    const hand = [0, 1].flatMap((a) => [0, 1].map((c) => {
      let s = 0;
      for (const ai of [2 * a, 2 * a + 1]) for (let b = 0; b < 3; b++) s += wv[(ai * 3 + b) * 2 + c] ?? 0;
      return s;
    }));
    expect(Array.from(g.dataSync())).toEqual(hand);
    const fd = finiteDiff(f, x.dataSync() as Float32Array, x.shape);
    Array.from(g.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(fd[i] ?? 0, 1));
    tf.dispose([x, w, g]);
  });

  it('ZeroPadding3D pads per axis and its gradient is the inner slice', () => {
    const x = tf.randomNormal([2, 2, 3, 1, 2], 0, 1, 'float32', 3) as tf.Tensor5D;
    const y = zeroPad3d(x, [2, 2, 1]);
    expect(y.shape).toEqual([2, 6, 7, 3, 2]);
    const sy = y.sum().dataSync()[0] ?? 0;
    expect(sy).toBeCloseTo(x.sum().dataSync()[0] ?? 0, 4);
    expect(new ZeroPadding3D({ padding: [1, 1, 0] }).computeOutputShape([null, 52, 52, 28, 6])).toEqual([null, 54, 54, 28, 6]);
    const w = tf.randomNormal(y.shape, 0, 1, 'float32', 4);
    const f = (t: tf.Tensor): tf.Scalar => tf.sum(tf.mul(zeroPad3d(t as tf.Tensor5D, [2, 2, 1]), w));
    const g = tf.grad(f)(x);
    const inner = w.slice([0, 2, 2, 1, 0], [2, 2, 3, 1, 2]);
    const gv = g.dataSync();
    inner.dataSync().forEach((v, i) => expect(gv[i]).toBeCloseTo(v, 5));
    const fd = finiteDiff(f, x.dataSync() as Float32Array, x.shape);
    gv.forEach((v, i) => expect(v).toBeCloseTo(fd[i] ?? 0, 1));
    tf.dispose([x, y, w, g, inner]);
  });

  it('BatchNorm3D: batch statistics in training, moving statistics updated by hand values', () => {
    const bn = new BatchNorm3D({ momentum: 0.5, epsilon: 0 });
    // Channel 0 holds 1..4, channel 1 holds 10 everywhere: mean [2.5, 10], variance [1.25, 0].
    const x = tf.tensor5d([1, 10, 2, 10, 3, 10, 4, 10], [1, 2, 2, 1, 2]);
    const y = bn.apply(x, { training: true }) as tf.Tensor;
    const yv = Array.from(y.dataSync());
    [-1.5, -0.5, 0.5, 1.5].forEach((d, i) => expect(yv[2 * i]).toBeCloseTo(d / Math.sqrt(1.25), 4));
    const [, , mm, mv] = bn.getWeights().map((w) => Array.from(w.dataSync()));
    expect(mm?.[0]).toBeCloseTo(0.5 * 0 + 0.5 * 2.5, 5);
    expect(mv?.[0]).toBeCloseTo(0.5 * 1 + 0.5 * 1.25 * (4 / 3), 5);
    const inf = bn.apply(x, { training: false }) as tf.Tensor;
    expect(inf.dataSync()[0]).toBeCloseTo((1 - 1.25) / Math.sqrt(0.5 + 0.5 * (5 / 3)), 4);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(bn.apply(t, { training: false }) as tf.Tensor, t)))(x);
    expect(g.shape).toEqual(x.shape);
    tf.dispose([x, y, inf, g]);
  });

  it('rejects bad arguments with the reason', () => {
    expect(() => upsample3d(tf.zeros([1, 2, 2, 2]) as unknown as tf.Tensor5D)).toThrow(/rank-5/);
    expect(() => new UpSampling3D({ size: [2, 0, 2] })).not.toThrow();
    expect(() => upsample3d(tf.zeros([1, 1, 1, 1, 1]) as tf.Tensor5D, [2, 0, 2])).toThrow(/positive/);
    expect(() => new ZeroPadding3D({ padding: [1, -1, 0] })).toThrow(/non-negative/);
  });
});
