import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyLayer, EqualizedConv2D, EqualizedDense, lrelu } from '../src/layers/index.js';
import {
  combineLosses,
  discriminatorLoss,
  generatorLoss,
  inputGradient,
  interpolate,
} from '../src/losses/wgan-gp.js';

beforeAll(async () => {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
});

function scalar(t: tf.Tensor): number {
  const v = t.dataSync()[0];
  if (v === undefined) throw new Error('empty tensor');
  return v;
}

/** A tiny critic: 3x3 equalized conv (1 -> 3) + lrelu, 2x2-strided mean, equalized dense -> 1. */
function tinyCritic() {
  const conv = new EqualizedConv2D({ filters: 3, kernelSize: 3, seed: 21, name: 'c' });
  const dense = new EqualizedDense({ units: 1, gain: 1, seed: 22, name: 'o' });
  const d = (x: tf.Tensor4D): tf.Tensor =>
    tf.tidy(() => {
      const h = lrelu(applyLayer(conv, x)); // [N, 4, 4, 3]
      const pooled = tf.mean(tf.reshape(h, [x.shape[0], 2, 2, 2, 2, 3]), [2, 4]); // [N, 2, 2, 3]
      return applyLayer(dense, tf.reshape(pooled, [x.shape[0], 12])); // [N, 1]
    });
  d(tf.zeros([1, 4, 4, 1]) as tf.Tensor4D).dispose(); // build the weights
  // Non-zero biases so that they take part in the checks.
  for (const w of [...conv.weights, ...dense.weights]) {
    if (w.originalName.endsWith('bias')) w.write(tf.fill(w.shape as number[], 0.1));
  }
  const vars = [...conv.trainableWeights, ...dense.trainableWeights].map((w) => w.read() as tf.Variable);
  return { d, vars };
}

describe('WGAN-GP with a linear critic (hand-computed)', () => {
  // D(x) = sum(w * x) per sample: the input gradient is w for every sample, ||w|| = 3.
  const w = () => tf.tensor4d([1, 2, 2, 0], [1, 2, 2, 1]);
  const d = (x: tf.Tensor4D) => tf.sum(tf.mul(x, w()), [1, 2, 3]);

  it('computes each part', () => {
    const real = tf.ones([2, 2, 2, 1]) as tf.Tensor4D; // D(real) = 5
    const fake = tf.zeros([2, 2, 2, 1]) as tf.Tensor4D; // D(fake) = 0
    const out = discriminatorLoss({ d, real, fake, epsilon: tf.tensor1d([0.3, 0.9]) });
    expect(scalar(out.wasserstein)).toBeCloseTo(-5, 5);
    expect(scalar(out.penalty)).toBeCloseTo(10 * (3 - 1) ** 2, 4);
    expect(scalar(out.drift)).toBeCloseTo(0.001 * 25, 6);
    expect(scalar(out.gradNorm)).toBeCloseTo(3, 5);
    expect(scalar(out.loss)).toBeCloseTo(-5 + 40 + 0.025, 4);
    expect(out.loss.shape).toEqual([]);

    const scaled = discriminatorLoss({ d, real, fake, epsilon: tf.tensor1d([0.3, 0.9]), lambda: 4, drift: 0, target: 2 });
    expect(scalar(scaled.penalty)).toBeCloseTo((4 / 4) * (3 - 2) ** 2, 5);
    expect(scalar(scaled.drift)).toBe(0);
  });

  it('mixes per sample and checks epsilon', () => {
    const real = tf.fill([2, 1, 1, 2], 2) as tf.Tensor4D;
    const fake = tf.fill([2, 1, 1, 2], 6) as tf.Tensor4D;
    expect(Array.from(interpolate(real, fake, tf.tensor2d([[0], [0.25]])).dataSync())).toEqual([2, 2, 3, 3]);
    expect(() => interpolate(real, fake, tf.tensor1d([0.5]))).toThrow(/one weight per sample/);
  });

  it('generator loss and combinations', () => {
    expect(scalar(generatorLoss(tf.tensor2d([[1], [2], [3]])))).toBeCloseTo(-2, 6);
    const a = tf.scalar(-3);
    const b = tf.scalar(5);
    expect(scalar(combineLosses([{ loss: a, weight: 0.5 }, { loss: b, weight: 0.5 }]))).toBeCloseTo(1, 6);
    expect(scalar(combineLosses([{ loss: a, weight: 0.5 }, { loss: b, weight: 0.5 }], 'cern'))).toBeCloseTo(17, 5);
  });
});

describe('WGAN-GP with a tiny conv critic', () => {
  const real = () => tf.randomNormal([2, 4, 4, 1], 0, 1, 'float32', 31) as tf.Tensor4D;
  const fake = () => tf.randomNormal([2, 4, 4, 1], 0.5, 1.5, 'float32', 32) as tf.Tensor4D;
  const epsilon = () => tf.tensor1d([0.25, 0.7]);

  it('input gradient and penalty match central finite differences of D around xhat', () => {
    const { d } = tinyCritic();
    const xhat = interpolate(real(), fake(), epsilon());
    const { grad, norm } = inputGradient(d, xhat);
    const analytic = grad.dataSync();
    const base = xhat.dataSync();
    // D is piecewise linear in x (lrelu); 1e-3 stays on one linear piece for these seeds.
    const h = 1e-3;
    const numeric = new Float32Array(base.length);
    const sumD = (values: Float32Array) => scalar(tf.sum(d(tf.tensor4d(values, xhat.shape))));
    for (let i = 0; i < base.length; i++) {
      const plus = Float32Array.from(base);
      const minus = Float32Array.from(base);
      plus[i] = (plus[i] ?? 0) + h;
      minus[i] = (minus[i] ?? 0) - h;
      numeric[i] = (sumD(plus) - sumD(minus)) / (2 * h);
      expect(Math.abs((numeric[i] ?? 0) - (analytic[i] ?? Number.NaN))).toBeLessThan(2e-3);
    }
    // The penalty computed from the finite-difference gradients.
    const perSample = 16;
    let penaltyFd = 0;
    const norms: number[] = [];
    for (let n = 0; n < 2; n++) {
      let s = 0;
      for (let j = 0; j < perSample; j++) s += (numeric[n * perSample + j] ?? 0) ** 2;
      norms.push(Math.sqrt(s));
      penaltyFd += (10 * (Math.sqrt(s) - 1) ** 2) / 2;
    }
    const normValues = Array.from(norm.dataSync());
    expect(normValues[0]).toBeCloseTo(norms[0] ?? Number.NaN, 2);
    expect(normValues[1]).toBeCloseTo(norms[1] ?? Number.NaN, 2);
    const out = discriminatorLoss({ d, real: real(), fake: fake(), epsilon: epsilon() });
    expect(Math.abs(scalar(out.penalty) - penaltyFd)).toBeLessThan(1e-2 * Math.max(1, penaltyFd));
  });

  it("the total loss's gradient w.r.t. D's weights (second order) matches finite differences", () => {
    const { d, vars } = tinyCritic();
    const lossValue = () => scalar(discriminatorLoss({ d, real: real(), fake: fake(), epsilon: epsilon() }).loss);
    const { value, grads } = tf.variableGrads(
      () => discriminatorLoss({ d, real: real(), fake: fake(), epsilon: epsilon() }).loss,
      vars,
    );
    expect(Number.isFinite(scalar(value))).toBe(true);
    for (const v of vars) {
      const g = grads[v.name];
      if (g === undefined) throw new Error(`no gradient for ${v.name}`);
      expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
    }
    // Central differences on a few weights: conv kernel, conv bias, dense kernel, dense bias.
    const h = 1e-3;
    const picks: Array<[number, number]> = [
      [0, 4],
      [0, 20],
      [1, 2],
      [2, 5],
      [3, 0],
    ];
    for (const [vi, index] of picks) {
      const v = vars[vi];
      if (v === undefined) throw new Error('variable missing');
      const original = v.clone();
      const bumped = (delta: number) => {
        const buf = original.bufferSync();
        const flat = Float32Array.from(buf.values as Float32Array);
        flat[index] = (flat[index] ?? 0) + delta;
        v.assign(tf.tensor(flat, v.shape));
        return lossValue();
      };
      const numeric = (bumped(h) - bumped(-h)) / (2 * h);
      v.assign(original);
      const analytic = grads[v.name]?.dataSync()[index] ?? Number.NaN;
      expect(Math.abs(numeric - analytic)).toBeLessThan(2e-2 * Math.max(1, Math.abs(analytic)));
    }
  });

  it('leaks no tensors across a D step', () => {
    const { d, vars } = tinyCritic();
    const r = real();
    const f = fake();
    const e = epsilon();
    const step = () => {
      const { value, grads } = tf.variableGrads(() => discriminatorLoss({ d, real: r, fake: f, epsilon: e }).loss, vars);
      value.dispose();
      tf.dispose(grads);
    };
    step();
    const before = tf.memory().numTensors;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
  });
});
