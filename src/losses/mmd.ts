/**
 * Maximum mean discrepancy (MMD) between encoded codes q(z) and prior samples p(z), the latent
 * regulariser of the Wasserstein autoencoder (WAE-MMD, Tolstikhin et al., ICLR 2018).
 *
 * Three variants:
 * - `rbf`: Tolstikhin's unbiased estimator with a Gaussian kernel whose width comes from a median
 *   heuristic ({@link medianHeuristicSigma2}).
 * - `imq`: Tolstikhin's unbiased estimator with inverse multiquadratic kernels summed over scales.
 * - `cern`: the estimator of the CERN satellite-completion code (biased means with the diagonal
 *   included, a per-dimension-averaged Gaussian kernel and a built-in weight).
 *
 * Every variant returns a value the caller multiplies by its own lambda: loss = MSE + lambda * mmd.
 * For `rbf` and `imq` that lambda is the paper's (100 on CelebA); `cern` already carries
 * `cernWeight / (n (n - 1))` (100 / (n (n - 1)) by default), so lambda = 1 reproduces that code.
 */
import * as tf from '@tensorflow/tfjs';

/** Which MMD estimator and kernel to use; see the module comment. */
export type MmdKernel = 'rbf' | 'imq' | 'cern';

/** Options of {@link mmd}. */
export interface MmdOptions {
  /** Estimator and kernel: 'rbf', 'imq' or 'cern'. */
  kernel: MmdKernel;
  /** rbf only: the kernel's sigma^2; undefined (default) = {@link medianHeuristicSigma2}. */
  sigma2?: number;
  /** imq only: multipliers of the base constant C, summed over; default [0.1, 0.2, 0.5, 1, 2, 5, 10]. */
  scales?: number[];
  /** imq only: variance sigma_p^2 of the Gaussian prior p(z) = N(0, sigma_p^2 I); default 1. */
  priorVariance?: number;
  /** cern only: the latent variance zVar in the kernel's denominator 2 * D * zVar; default 2. */
  zVar?: number;
  /** cern only: the weight w of the built-in factor w / (n (n - 1)); default 100. */
  cernWeight?: number;
}

/** Default IMQ scales from Tolstikhin et al. */
export const DEFAULT_IMQ_SCALES: readonly number[] = [0.1, 0.2, 0.5, 1, 2, 5, 10];

/** Smallest sigma^2 the median heuristic returns, so identical codes give 0 rather than NaN. */
const MIN_SIGMA2 = 1e-8;

/**
 * Squared Euclidean distances between the rows of x [n, d] and y [m, d], as an [n, m] matrix.
 * Computed as |x|^2 + |y|^2 - 2 x.y and clamped at 0, since rounding can push the expansion below
 * zero for nearby rows (float32 cancellation also loses precision for rows far from the origin
 * relative to their separation; latent codes are O(1)). Differentiable (the clamp passes no
 * gradient where it bites).
 */
export function pairwiseSquaredDistances(x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D {
  if (x.rank !== 2 || y.rank !== 2) {
    throw new Error(`pairwiseSquaredDistances: expected rank-2 inputs, got [${x.shape}] and [${y.shape}]`);
  }
  if (x.shape[1] !== y.shape[1]) {
    throw new Error(`pairwiseSquaredDistances: feature sizes differ: [${x.shape}] vs [${y.shape}]`);
  }
  return tf.tidy(() => {
    const xx = tf.sum(tf.square(x), 1, true); // [n, 1]
    const yy = tf.reshape(tf.sum(tf.square(y), 1), [1, -1]); // [1, m]
    const xy = tf.matMul(x, y, false, true); // [n, m]
    const d = tf.sub(tf.add(xx, yy), tf.mul(2, xy)); // [n, m]
    return tf.relu(d) as tf.Tensor2D; // [n, m], >= 0
  });
}

/**
 * Sigma^2 of the RBF kernel by Tolstikhin's median heuristic, treated as a constant (no gradient
 * flows through it; the original code let one flow through its top-k).
 *
 * With n rows each and h = floor((n^2 - n) / 2):
 *   sigma^2 = (h-th largest of the n^2 cross distances |q_i - p_j|^2)
 *           + (h-th largest of the n^2 distances |q_i - q_j|^2, zero diagonal included).
 * The second term is the upper median of the n(n-1)/2 distinct q-q pair distances (each pair
 * appears twice, the n zeros sort last); the first is just above the median of the cross distances.
 * Floored at 1e-8 so identical codes give a finite kernel.
 */
export function medianHeuristicSigma2(qz: tf.Tensor2D, pz: tf.Tensor2D): tf.Scalar {
  checkPair(qz, pz, 'medianHeuristicSigma2');
  const n = qz.shape[0];
  const h = Math.floor((n * n - n) / 2);
  // customGrad with zero gradients acts as stop-gradient (tfjs has none) and keeps TopK, which has
  // no registered gradient, off the tape.
  const constant = tf.customGrad((...inputs) => {
    const [q, p] = inputs;
    if (!(q instanceof tf.Tensor) || !(p instanceof tf.Tensor)) {
      throw new Error('medianHeuristicSigma2: expected two tensors');
    }
    const value = tf.tidy(() => {
      const hthLargest = (d: tf.Tensor2D): tf.Tensor => {
        const { values } = tf.topk(tf.reshape(d, [-1]), h); // [h], descending
        return tf.slice(values, [h - 1], [1]); // [1]
      };
      const dqp = pairwiseSquaredDistances(q as tf.Tensor2D, p as tf.Tensor2D); // [n, n]
      const dqq = pairwiseSquaredDistances(q as tf.Tensor2D, q as tf.Tensor2D); // [n, n]
      const s = tf.add(hthLargest(dqp), hthLargest(dqq)); // [1]
      return tf.reshape(tf.maximum(s, MIN_SIGMA2), []) as tf.Scalar; // []
    });
    return { value, gradFunc: () => [tf.zerosLike(q), tf.zerosLike(p)] };
  });
  return constant(qz, pz);
}

/**
 * MMD between codes qz [n, D] and prior samples pz [n, D] (same n >= 2, same D), as a scalar that
 * is differentiable with respect to qz (and pz).
 *
 * - rbf / imq (Tolstikhin's unbiased U-statistic), with kernel matrices K:
 *     mmd = (sum_{i != j} Kqq_ij + sum_{i != j} Kpp_ij) / (n (n - 1)) - 2 sum_{i,j} Kqp_ij / n^2
 *   rbf: k(x, y) = exp(-|x - y|^2 / (2 sigma^2)), sigma^2 = `opts.sigma2` or
 *   {@link medianHeuristicSigma2}. imq: k(x, y) = sum over scales s of C_s / (C_s + |x - y|^2),
 *   C_s = 2 * D * sigma_p^2 * s; the statistic is summed over the scales.
 * - cern: k(x, y) = exp(-mean_d (x_d - y_d)^2 / (2 D zVar)) (the dimension enters twice, as in that
 *   code), means over all n^2 entries with the diagonal included, times the built-in weight:
 *     mmd = cernWeight / (n (n - 1)) * (mean Kqq + mean Kpp - 2 mean Kqp)
 *
 * The caller's lambda multiplies the returned value (see the module comment).
 */
export function mmd(qz: tf.Tensor2D, pz: tf.Tensor2D, opts: MmdOptions): tf.Scalar {
  checkPair(qz, pz, 'mmd');
  const [n, d] = qz.shape;
  switch (opts.kernel) {
    case 'rbf':
      return rbfMmd(qz, pz, n, opts.sigma2);
    case 'imq':
      return imqMmd(qz, pz, n, d, opts.scales ?? DEFAULT_IMQ_SCALES, opts.priorVariance ?? 1);
    case 'cern':
      return cernMmd(qz, pz, n, d, opts.zVar ?? 2, opts.cernWeight ?? 100);
    default: {
      const bad: never = opts.kernel;
      throw new Error(`mmd: MmdOptions.kernel must be 'rbf', 'imq' or 'cern', got ${String(bad)}`);
    }
  }
}

/** Tolstikhin's estimator from three kernel matrices [n, n]: off-diagonal means minus 2 x cross mean. */
function unbiasedStatistic(kqq: tf.Tensor2D, kpp: tf.Tensor2D, kqp: tf.Tensor2D, n: number): tf.Scalar {
  return tf.tidy(() => {
    const offDiag = tf.sub(1, tf.eye(n)); // [n, n]
    const within = tf.div(tf.sum(tf.mul(tf.add(kqq, kpp), offDiag)), n * (n - 1)); // []
    const cross = tf.div(tf.mul(2, tf.sum(kqp)), n * n); // []
    return tf.sub(within, cross) as tf.Scalar; // []
  });
}

function rbfMmd(qz: tf.Tensor2D, pz: tf.Tensor2D, n: number, sigma2?: number): tf.Scalar {
  if (sigma2 !== undefined && !(Number.isFinite(sigma2) && sigma2 > 0)) {
    throw new Error(`mmd: MmdOptions.sigma2 must be a positive number, got ${sigma2}`);
  }
  return tf.tidy(() => {
    const s2 = sigma2 === undefined ? medianHeuristicSigma2(qz, pz) : tf.scalar(sigma2); // []
    const k = (x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D =>
      tf.exp(tf.div(tf.neg(pairwiseSquaredDistances(x, y)), tf.mul(2, s2))) as tf.Tensor2D; // [n, n]
    return unbiasedStatistic(k(qz, qz), k(pz, pz), k(qz, pz), n);
  });
}

function imqMmd(
  qz: tf.Tensor2D,
  pz: tf.Tensor2D,
  n: number,
  d: number,
  scales: readonly number[],
  priorVariance: number,
): tf.Scalar {
  if (scales.length === 0 || !scales.every((s) => Number.isFinite(s) && s > 0)) {
    throw new Error(`mmd: MmdOptions.scales must be a non-empty list of positive numbers, got [${scales}]`);
  }
  if (!(Number.isFinite(priorVariance) && priorVariance > 0)) {
    throw new Error(`mmd: MmdOptions.priorVariance must be a positive number, got ${priorVariance}`);
  }
  return tf.tidy(() => {
    const dqq = pairwiseSquaredDistances(qz, qz); // [n, n]
    const dpp = pairwiseSquaredDistances(pz, pz); // [n, n]
    const dqp = pairwiseSquaredDistances(qz, pz); // [n, n]
    const cBase = 2 * d * priorVariance;
    // The statistic is linear in the kernel, so summing kernels over scales equals summing statistics.
    const k = (dist: tf.Tensor2D): tf.Tensor2D =>
      tf.addN(scales.map((s) => tf.div(cBase * s, tf.add(cBase * s, dist)))) as tf.Tensor2D; // [n, n]
    return unbiasedStatistic(k(dqq), k(dpp), k(dqp), n);
  });
}

function cernMmd(
  qz: tf.Tensor2D,
  pz: tf.Tensor2D,
  n: number,
  d: number,
  zVar: number,
  weight: number,
): tf.Scalar {
  if (!(Number.isFinite(zVar) && zVar > 0)) {
    throw new Error(`mmd: MmdOptions.zVar must be a positive number, got ${zVar}`);
  }
  if (!Number.isFinite(weight)) {
    throw new Error(`mmd: MmdOptions.cernWeight must be a finite number, got ${weight}`);
  }
  return tf.tidy(() => {
    // mean_d (x_d - y_d)^2 = |x - y|^2 / D, then divided again by 2 * D * zVar.
    const denom = d * 2 * d * zVar;
    const k = (x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor =>
      tf.exp(tf.div(tf.neg(pairwiseSquaredDistances(x, y)), denom)); // [n, n]
    const stat = tf.sub(tf.add(tf.mean(k(qz, qz)), tf.mean(k(pz, pz))), tf.mul(2, tf.mean(k(qz, pz)))); // []
    return tf.mul(weight / (n * (n - 1)), stat) as tf.Scalar; // []
  });
}

function checkPair(qz: tf.Tensor, pz: tf.Tensor, where: string): void {
  if (qz.rank !== 2 || pz.rank !== 2) {
    throw new Error(`${where}: qz and pz must be rank 2 [n, D], got [${qz.shape}] and [${pz.shape}]`);
  }
  if (qz.shape[0] !== pz.shape[0] || qz.shape[1] !== pz.shape[1]) {
    throw new Error(`${where}: qz and pz must have the same shape, got [${qz.shape}] and [${pz.shape}]`);
  }
  const n = qz.shape[0] ?? 0;
  if (n < 2) {
    throw new Error(`${where}: need at least 2 samples, got ${n}`);
  }
}
