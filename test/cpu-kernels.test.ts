import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { originalCpuBackpropFilter, registerFastCpuKernels } from '../src/backend/cpu-kernels.js';
import { Rng } from '../src/util/random.js';

beforeAll(async () => {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
  registerFastCpuKernels();
});

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += ((a[i] as number) - (b[i] as number)) ** 2;
    den += (b[i] as number) ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

describe('fast cpu Conv2DBackpropFilter', () => {
  const rng = new Rng('cpu-kernels');
  const cases: Array<{ n: number; h: number; w: number; ci: number; co: number; k: number; s: number; pad: 'same' | 'valid' | number }> = [];
  for (let i = 0; i < 12; i++) {
    cases.push({
      n: 1 + rng.int(4), h: 3 + rng.int(9), w: 3 + rng.int(9), ci: 1 + rng.int(6), co: 1 + rng.int(7),
      k: 1 + rng.int(3), s: 1 + rng.int(2), pad: (['same', 'valid', 1] as const)[rng.int(3)] ?? 'same',
    });
  }
  it.each(cases)('matches tfjs on %o', (c) => {
    const orig = originalCpuBackpropFilter();
    expect(orig).toBeDefined();
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.randomNormal([c.n, c.h, c.w, c.ci], 0, 1, 'float32', 1) as tf.Tensor4D;
      const filterShape: [number, number, number, number] = [c.k, c.k, c.ci, c.co];
      const y = tf.conv2d(x, tf.zeros(filterShape) as tf.Tensor4D, c.s, c.pad);
      const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 2) as tf.Tensor4D;
      const attrs = { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape };
      const fast = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs) as tf.Tensor;
      const backend = tf.backend();
      const ref = orig?.kernelFunc({ inputs: { x, dy }, backend, attrs }) as tf.TensorInfo;
      const refT = tf.engine().makeTensorFromTensorInfo(ref);
      expect(fast.shape).toEqual(filterShape);
      expect(relErr(fast.dataSync() as Float32Array, refT.dataSync() as Float32Array)).toBeLessThan(1e-5);
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gives the filter gradient of conv2d that finite differences give', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([2, 5, 5, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
      const w = tf.randomNormal([3, 3, 2, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
      const f = (wt: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x, wt as tf.Tensor4D, 2, 'same')));
      const g = tf.grad(f)(w).dataSync();
      const wv = w.dataSync().slice();
      const eps = 1e-2;
      for (const idx of [0, 7, 31, 53]) {
        const plus = wv.slice();
        plus[idx] = (plus[idx] as number) + eps;
        const minus = wv.slice();
        minus[idx] = (minus[idx] as number) - eps;
        const fd = (f(tf.tensor4d(plus, w.shape)).dataSync()[0]! - f(tf.tensor4d(minus, w.shape)).dataSync()[0]!) / (2 * eps);
        expect(g[idx]).toBeCloseTo(fd, 1);
      }
    });
  });
});
