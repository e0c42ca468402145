import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { medianHeuristicSigma2, mmd, pairwiseSquaredDistances, type MmdOptions } from '../src/losses/mmd.js';
import { Rng } from '../src/util/random.js';

beforeAll(async () => {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
});

// ---- plain-JS reference, written from the formulas, loop by loop ----
type Mat = number[][];

function sqDist(a: number[], b: number[]): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += ((a[k] ?? 0) - (b[k] ?? 0)) ** 2;
  return s;
}

function at(m: Mat, i: number): number[] {
  const row = m[i];
  if (!row) throw new Error(`row ${i} missing`);
  return row;
}

/** Tolstikhin: sum_{i!=j}(kqq + kpp) / (n(n-1)) - 2 sum_{ij} kqp / n^2. */
function jsUnbiased(q: Mat, p: Mat, k: (a: number[], b: number[]) => number): number {
  const n = q.length;
  let within = 0;
  let cross = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i !== j) within += k(at(q, i), at(q, j)) + k(at(p, i), at(p, j));
      cross += k(at(q, i), at(p, j));
    }
  }
  return within / (n * (n - 1)) - (2 * cross) / (n * n);
}

/** h-th largest (h = (n^2 - n) / 2) of all n^2 cross and all n^2 q-q squared distances, summed. */
function jsMedianSigma2(q: Mat, p: Mat): number {
  const n = q.length;
  const h = Math.floor((n * n - n) / 2);
  const cross: number[] = [];
  const within: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      cross.push(sqDist(at(q, i), at(p, j)));
      within.push(sqDist(at(q, i), at(q, j)));
    }
  }
  const hth = (v: number[]): number => v.sort((a, b) => b - a)[h - 1] ?? NaN;
  return hth(cross) + hth(within);
}

function jsRbf(q: Mat, p: Mat, sigma2?: number): number {
  const s2 = sigma2 ?? jsMedianSigma2(q, p);
  return jsUnbiased(q, p, (a, b) => Math.exp(-sqDist(a, b) / (2 * s2)));
}

function jsImq(q: Mat, p: Mat, scales = [0.1, 0.2, 0.5, 1, 2, 5, 10], priorVar = 1): number {
  const d = at(q, 0).length;
  let total = 0;
  for (const s of scales) {
    const c = 2 * d * priorVar * s;
    total += jsUnbiased(q, p, (a, b) => c / (c + sqDist(a, b)));
  }
  return total;
}

/** CERN: exp(-mean_d (x-y)^2 / (2 D zVar)), plain means with the diagonal, times 100 / (n(n-1)). */
function jsCern(q: Mat, p: Mat, zVar = 2, weight = 100): number {
  const n = q.length;
  const d = at(q, 0).length;
  const k = (a: number[], b: number[]): number => {
    let m = 0;
    for (let t = 0; t < d; t++) m += ((a[t] ?? 0) - (b[t] ?? 0)) ** 2;
    m /= d;
    return Math.exp(-m / (2 * d * zVar));
  };
  let qq = 0;
  let pp = 0;
  let qp = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      qq += k(at(q, i), at(q, j));
      pp += k(at(p, i), at(p, j));
      qp += k(at(q, i), at(p, j));
    }
  }
  return (weight / (n * (n - 1))) * (qq / (n * n) + pp / (n * n) - (2 * qp) / (n * n));
}

function normals(rng: Rng, n: number, d: number, shift = 0): Mat {
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal() + shift));
}

function mmdValue(q: Mat, p: Mat, opts: MmdOptions): number {
  return tf.tidy(() => mmd(tf.tensor2d(q), tf.tensor2d(p), opts).dataSync()[0] ?? NaN);
}

const Q3: Mat = [
  [0.5, -1.0],
  [1.5, 0.25],
  [-0.75, 2.0],
];
const P3: Mat = [
  [0.1, 0.2],
  [-1.2, 0.4],
  [0.9, -0.6],
];
const Q4: Mat = [
  [0.3, -0.2, 1.1],
  [-0.5, 0.8, 0.0],
  [1.4, 0.6, -0.9],
  [0.2, -1.3, 0.4],
];
const P4: Mat = [
  [-0.1, 0.5, -0.4],
  [0.9, -0.7, 0.3],
  [-1.1, 0.2, 0.8],
  [0.6, 1.0, -0.2],
];

describe('pairwiseSquaredDistances', () => {
  it('matches loops and never goes negative for nearly equal rows', () => {
    // In float32, |x|^2 + |y|^2 - 2 x.y gives -0.5 for every entry here without the clamp.
    const x = [
      [1000.1, 1000.3, -999.7],
      [1000.1, 1000.3, -999.7],
      [1000.1000001, 1000.3, -999.7],
    ];
    const d = tf.tidy(() => pairwiseSquaredDistances(tf.tensor2d(x), tf.tensor2d(x)).arraySync());
    for (const row of d) for (const v of row) expect(v).toBeGreaterThanOrEqual(0);
    const e = tf.tidy(() => pairwiseSquaredDistances(tf.tensor2d(Q4), tf.tensor2d(P4)).arraySync());
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) expect(e[i]?.[j]).toBeCloseTo(sqDist(at(Q4, i), at(P4, j)), 5);
    }
  });
});

describe('mmd against hand-computed values', () => {
  it('rbf with a fixed sigma^2: closed form on two 1-D points (the estimator can be negative)', () => {
    // within = (2 e^-1 + 2 e^-4) / 2; cross = 2/4 (1 + e^-4 + e^-1 + e^-1) => 0.5 e^-4 - 0.5
    const v = mmdValue([[0], [1]], [[0], [2]], { kernel: 'rbf', sigma2: 0.5 });
    expect(v).toBeCloseTo(0.5 * Math.exp(-4) - 0.5, 6);
  });

  it('median heuristic sigma^2 equals the h-th largest cross + within distances', () => {
    for (const [q, p] of [
      [Q3, P3],
      [Q4, P4],
    ] as const) {
      const s = tf.tidy(() => medianHeuristicSigma2(tf.tensor2d(q), tf.tensor2d(p)).dataSync()[0]);
      expect(s).toBeCloseTo(jsMedianSigma2(q, p), 4);
    }
    // 3x2 by hand: h = 3. q-q pair differences (1, 1.25) -> 2.5625, (1.25, 3) -> 10.5625,
    // (2.25, 1.75) -> 8.125, each twice, plus three zeros on the diagonal. Sorted descending:
    // 10.5625, 10.5625, 8.125, ... -> the 3rd largest is 8.125. Cross distances (row-major):
    // 0.16+1.44=1.6, 2.89+1.96=4.85, 0.16+0.16=0.32, 1.96+0.0025=1.9625, 7.29+0.0225=7.3125,
    // 0.36+0.7225=1.0825, 0.7225+3.24=3.9625, 0.2025+2.56=2.7625, 2.7225+6.76=9.4825;
    // 3rd largest 4.85. So sigma^2 = 8.125 + 4.85 = 12.975.
    const s3 = tf.tidy(() => medianHeuristicSigma2(tf.tensor2d(Q3), tf.tensor2d(P3)).dataSync()[0]);
    expect(s3).toBeCloseTo(12.975, 4);
  });

  it.each([
    ['3x2', Q3, P3],
    ['4x3', Q4, P4],
  ] as const)('rbf, imq and cern on %s inputs', (_name, q, p) => {
    expect(mmdValue(q, p, { kernel: 'rbf' })).toBeCloseTo(jsRbf(q, p), 5);
    expect(mmdValue(q, p, { kernel: 'rbf', sigma2: 0.7 })).toBeCloseTo(jsRbf(q, p, 0.7), 5);
    expect(mmdValue(q, p, { kernel: 'imq' })).toBeCloseTo(jsImq(q, p), 5);
    expect(mmdValue(q, p, { kernel: 'imq', scales: [0.5, 3], priorVariance: 2 })).toBeCloseTo(
      jsImq(q, p, [0.5, 3], 2),
      5,
    );
    expect(mmdValue(q, p, { kernel: 'cern' })).toBeCloseTo(jsCern(q, p), 5);
    expect(mmdValue(q, p, { kernel: 'cern', zVar: 0.5, cernWeight: 1 })).toBeCloseTo(jsCern(q, p, 0.5, 1), 6);
  });

  it('is symmetric in its sign convention: identical samples give a non-positive unbiased value', () => {
    // With qz == pz the within terms exclude the diagonal (value 1) that the cross term includes.
    expect(mmdValue(Q4, Q4, { kernel: 'imq' })).toBeLessThan(0);
    expect(mmdValue(Q4, Q4, { kernel: 'cern' })).toBeCloseTo(0, 7);
  });

  it('rejects mismatched or too small inputs and bad options, naming the field', () => {
    expect(() => mmdValue(Q3, P4, { kernel: 'imq' })).toThrow(/same shape/);
    expect(() => mmdValue([[1, 2]], [[3, 4]], { kernel: 'imq' })).toThrow(/at least 2/);
    expect(() => mmdValue(Q3, P3, { kernel: 'rbf', sigma2: -1 })).toThrow(/sigma2/);
    expect(() => mmdValue(Q3, P3, { kernel: 'imq', scales: [] })).toThrow(/scales/);
    expect(() => mmdValue(Q3, P3, { kernel: 'cern', zVar: 0 })).toThrow(/zVar/);
  });
});

describe('mmd on samples', () => {
  const rng = new Rng('mmd-samples');
  const n = 200;
  const d = 4;
  const p = normals(rng, n, d);
  const qSame = normals(rng, n, d);
  const qShift = normals(rng, n, d, 1.0);

  it.each(['rbf', 'imq', 'cern'] as const)('%s: ~0 for the same distribution, clearly > 0 when shifted', (kernel) => {
    const same = mmdValue(qSame, p, { kernel });
    const shifted = mmdValue(qShift, p, { kernel });
    expect(shifted).toBeGreaterThan(0);
    expect(Math.abs(same)).toBeLessThan(shifted / 10);
  });
});

describe('mmd gradients', () => {
  const rng = new Rng('mmd-grad');
  const n = 16;
  const d = 3;
  const p = normals(rng, n, d);
  const q = normals(rng, n, d, 0.8);
  const direction = normals(rng, n, d);

  const cases: Array<[string, MmdOptions]> = [
    ['rbf (median heuristic)', { kernel: 'rbf' }],
    ['rbf (fixed sigma2)', { kernel: 'rbf', sigma2: 3 }],
    ['imq', { kernel: 'imq' }],
    ['cern', { kernel: 'cern' }],
  ];

  it.each(cases)('%s: finite, a step along -grad lowers MMD, no leaks', (_name, opts) => {
    const before = tf.memory().numTensors;
    const [v0, v1, finite] = tf.tidy(() => {
      const pz = tf.tensor2d(p);
      const qz = tf.tensor2d(q);
      const g = tf.grad((x: tf.Tensor) => mmd(x as tf.Tensor2D, pz, opts))(qz);
      const gv = Array.from(g.dataSync());
      const norm = Math.sqrt(gv.reduce((s, x) => s + x * x, 0));
      // Step of fixed length 0.1 in the descent direction.
      const stepped = tf.sub(qz, tf.mul(g, 0.1 / norm)) as tf.Tensor2D;
      return [
        mmd(qz, pz, opts).dataSync()[0] ?? NaN,
        mmd(stepped, pz, opts).dataSync()[0] ?? NaN,
        gv.every(Number.isFinite) && norm > 0,
      ] as const;
    });
    expect(finite).toBe(true);
    expect(v1).toBeLessThan(v0);
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each(cases.filter(([name]) => name !== 'rbf (median heuristic)'))(
    '%s: gradient matches a central finite difference along a direction',
    (_name, opts) => {
      const [analytic, numeric] = tf.tidy(() => {
        const pz = tf.tensor2d(p);
        const qz = tf.tensor2d(q);
        const v = tf.tensor2d(direction);
        const g = tf.grad((x: tf.Tensor) => mmd(x as tf.Tensor2D, pz, opts))(qz);
        const eps = 1e-2;
        const f = (x: tf.Tensor): number => mmd(x as tf.Tensor2D, pz, opts).dataSync()[0] ?? NaN;
        const fd = (f(tf.add(qz, tf.mul(v, eps))) - f(tf.sub(qz, tf.mul(v, eps)))) / (2 * eps);
        return [tf.sum(tf.mul(g, v)).dataSync()[0] ?? NaN, fd];
      });
      expect(Math.abs(analytic - numeric)).toBeLessThan(2e-2 * Math.abs(numeric) + 1e-6);
    },
  );

  it('median heuristic passes no gradient through sigma^2', () => {
    const g = tf.tidy(() => {
      const pz = tf.tensor2d(p);
      return tf.grad((x: tf.Tensor) => medianHeuristicSigma2(x as tf.Tensor2D, pz))(tf.tensor2d(q)).dataSync();
    });
    expect(Array.from(g).every((v) => v === 0)).toBe(true);
  });
});
