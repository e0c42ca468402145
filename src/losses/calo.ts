/**
 * The 3DGAN's losses (REFERENCE.md §3): binary cross-entropy on the real/fake head, MAPE on the
 * regressed energy, MAE on the measured angle and MAPE on the ECAL sum, weighted [3, 0.1, 25, 0.1]
 * (fixed-angle: [2, 0.1, 0.1], no angle term); an optional hit-count term; label flipping.
 *
 * MAPE follows Keras `mean_absolute_percentage_error` (the reference's loss): a percentage,
 * `100 * mean(|y - p| / max(|y|, 1e-7))`, which is what the 0.1 weights were tuned for.
 */
import * as tf from '@tensorflow/tfjs';

/** Weights of the loss terms. */
export interface CaloLossWeights {
  /** Binary cross-entropy of the real/fake head. */
  bce: number;
  /** MAPE of the regressed energy. */
  energy: number;
  /** MAE of the measured angle (rad); 0 for the fixed-angle geometry. */
  angle: number;
  /** MAPE of the ECAL sum. */
  ecal: number;
  /** Hit-count term (see {@link softHitCount}); 0 turns it off. */
  hits: number;
}

/** The reference's weights: variable-angle [3, 0.1, 25, 0.1], fixed-angle [2, 0.1, 0.1]; no hit term. */
export function defaultCaloWeights(geometry: 'variable-angle' | 'fixed-angle'): CaloLossWeights {
  return geometry === 'variable-angle'
    ? { bce: 3, energy: 0.1, angle: 25, ecal: 0.1, hits: 0 }
    : { bce: 2, energy: 0.1, angle: 0, ecal: 0.1, hits: 0 };
}

/** Keras-style mean absolute percentage error (a percentage) of [N] predictions. */
export function mape(pred: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mul(100, tf.mean(tf.div(tf.abs(tf.sub(target, pred)), tf.maximum(tf.abs(target), 1e-7)))) as tf.Scalar);
}

/** Mean absolute error. */
export function mae(pred: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.abs(tf.sub(target, pred))) as tf.Scalar);
}

/** Binary cross-entropy of logits against labels in [0, 1] (mean over the batch), numerically stable. */
export function bceWithLogits(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    // max(x, 0) - x y + log(1 + exp(-|x|))
    const x = logits;
    return tf.mean(tf.add(tf.sub(tf.relu(x), tf.mul(x, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))))) as tf.Scalar;
  });
}

/**
 * Real/fake labels of a batch: `value` (1 real, 0 fake), each flipped with probability `p`, drawn
 * from a seeded uniform (so a run is reproducible). Returns [N].
 */
export function flippedLabels(n: number, value: 0 | 1, p: number, seed: number): tf.Tensor1D {
  if (!(p >= 0 && p <= 1)) throw new Error(`label flip probability must be in [0, 1], got ${p}`);
  return tf.tidy(() => {
    const base = tf.fill([n], value);
    if (p === 0) return base as tf.Tensor1D;
    const flip = tf.less(tf.randomUniform([n], 0, 1, 'float32', seed), p);
    return tf.where(flip, tf.sub(1, base), base) as tf.Tensor1D;
  });
}

/**
 * Differentiable count of cells above `threshold` GeV per shower: `sum sigmoid((E - t) / width)`
 * over cells of [N, X, Y, Z, 1] cell energies, [N]. `width` (GeV) sets how soft the step is.
 */
export function softHitCount(cells: tf.Tensor5D, threshold = 3e-4, width = 3e-5): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.sigmoid(tf.div(tf.sub(cells, threshold), width)), [1, 2, 3, 4]) as tf.Tensor1D);
}

/** The discriminator's outputs on a batch (all [N]); `angle` only for the variable-angle geometry. */
export interface CaloOutputs {
  logit: tf.Tensor;
  energy: tf.Tensor;
  ecal: tf.Tensor;
  angle?: tf.Tensor;
  /** Soft hit counts (needed when the hit weight is not 0). */
  hits?: tf.Tensor;
}

/** Targets of a batch (all [N]): labels in [0, 1], E/100, ECAL sum (GeV), angle (rad), hit counts. */
export interface CaloTargets {
  label: tf.Tensor;
  energy: tf.Tensor;
  ecal: tf.Tensor;
  angle?: tf.Tensor;
  hits?: tf.Tensor;
}

/** The loss parts and their weighted total. */
export interface CaloLoss {
  total: tf.Scalar;
  bce: tf.Scalar;
  energy: tf.Scalar;
  ecal: tf.Scalar;
  angle?: tf.Scalar;
  hits?: tf.Scalar;
}

/** Weighted sum of the 3DGAN's loss terms; terms with weight 0 are left out of the total. */
export function caloLoss(out: CaloOutputs, target: CaloTargets, w: CaloLossWeights): CaloLoss {
  // Returned from the tidy (not tf.keep'd), so an enclosing tidy or gradient scope still owns them.
  const named = tf.tidy(() => {
    const bce = bceWithLogits(out.logit, target.label);
    const energy = mape(out.energy, target.energy);
    const ecal = mape(out.ecal, target.ecal);
    let total = tf.addN([tf.mul(w.bce, bce), tf.mul(w.energy, energy), tf.mul(w.ecal, ecal)]);
    const r: Record<string, tf.Scalar> = { bce, energy, ecal };
    if (w.angle !== 0) {
      if (!out.angle || !target.angle) throw new Error('caloLoss: the angle weight is set but the angle output or target is missing');
      const angle = mae(out.angle, target.angle);
      total = tf.add(total, tf.mul(w.angle, angle));
      r['angle'] = angle;
    }
    if (w.hits !== 0) {
      if (!out.hits || !target.hits) throw new Error('caloLoss: the hit weight is set but hit counts are missing');
      const hits = mape(tf.mean(out.hits), tf.mean(target.hits));
      total = tf.add(total, tf.mul(w.hits, hits));
      r['hits'] = hits;
    }
    r['total'] = total as tf.Scalar;
    return r;
  });
  const { total, bce, energy, ecal, angle, hits } = named;
  if (!total || !bce || !energy || !ecal) throw new Error('caloLoss: missing part');
  return { total, bce, energy, ecal, ...(angle ? { angle } : {}), ...(hits ? { hits } : {}) };
}
