/**
 * WGAN-GP objective (Gulrajani et al. 2017) with the ProGAN drift term (Karras et al. 2018):
 *
 *   D loss = mean D(fake) - mean D(real)
 *          + lambda / target^2 * mean_i (||grad_xhat D(xhat_i)||_2 - target)^2
 *          + drift * mean D(real)^2
 *   G loss = -mean D(fake)
 *
 * with xhat = real + epsilon * (fake - real), epsilon ~ U(0, 1) per sample. With target = 1 (the
 * default) the penalty is lambda * (||g|| - 1)^2; other targets are scaled by 1 / target^2 as in the
 * ProGAN code, so lambda keeps its meaning.
 *
 * The discriminator is passed as a function so one implementation serves the global and the local
 * discriminator. The penalty differentiates D with respect to its input inside the loss, so the
 * gradient of this loss with respect to D's weights is second order: every op inside D must have a
 * differentiable gradient (see src/layers: lrelu, upscale2d, downscale2d) and must not rely on a
 * saved output in its gradient (tfjs 4.22 drops that dependence: tanh, sigmoid, exp, elu, softmax).
 *
 * The input gradient is taken of sum_i D(xhat_i). When D mixes samples (minibatch stddev), that is
 * not exactly the per-sample gradient; ProGAN does the same.
 */
import * as tf from '@tensorflow/tfjs';

/** A discriminator as a function of an NHWC batch; returns one score per sample ([N] or [N, 1]). */
export type Critic = (x: tf.Tensor4D) => tf.Tensor;

/** Inputs of {@link discriminatorLoss}. */
export interface WganGpDiscriminatorArgs {
  /** The discriminator (global or local). Required. */
  d: Critic;
  /** Real batch [N, H, W, C]. Required. */
  real: tf.Tensor4D;
  /** Generated batch, same shape as `real`; no gradient flows to the generator's weights unless asked. Required. */
  fake: tf.Tensor4D;
  /** Per-sample mixing weights in [0, 1], shape [N], [N, 1] or [N, 1, 1, 1] (draw U(0, 1) per step). Required. */
  epsilon: tf.Tensor;
  /** Weight of the gradient penalty. Default 10. */
  lambda?: number;
  /** Weight of the drift term mean D(real)^2 that keeps scores near 0. Default 0.001. */
  drift?: number;
  /** Target gradient norm. Default 1. */
  target?: number;
}

/** The discriminator loss and its parts, each a scalar: loss = wasserstein + penalty + drift. */
export interface WganGpDiscriminatorLoss {
  /** Total loss to minimise. */
  loss: tf.Scalar;
  /** mean D(fake) - mean D(real) (the negated critic estimate of the Wasserstein distance). */
  wasserstein: tf.Scalar;
  /** The weighted gradient penalty, lambda / target^2 * mean (||g|| - target)^2. */
  penalty: tf.Scalar;
  /** The weighted drift term, drift * mean D(real)^2. */
  drift: tf.Scalar;
  /** Mean input-gradient norm at xhat, for monitoring. */
  gradNorm: tf.Scalar;
}

/** Added under the square root of the gradient norm so that a zero gradient has a finite derivative. */
const NORM_EPSILON = 1e-12;

function perSampleWeights(epsilon: tf.Tensor, n: number): tf.Tensor4D {
  if (epsilon.size !== n) {
    throw new Error(`epsilon must hold one weight per sample (${n}), got shape [${epsilon.shape.join(', ')}]`);
  }
  return tf.reshape(epsilon, [n, 1, 1, 1]);
}

/** xhat = real + epsilon * (fake - real), epsilon per sample. */
export function interpolate(real: tf.Tensor4D, fake: tf.Tensor4D, epsilon: tf.Tensor): tf.Tensor4D {
  if (!tf.util.arraysEqual(real.shape, fake.shape)) {
    throw new Error(`real ${JSON.stringify(real.shape)} and fake ${JSON.stringify(fake.shape)} differ in shape`);
  }
  return tf.tidy(() => {
    const e = perSampleWeights(epsilon, real.shape[0]);
    return tf.add(real, tf.mul(e, tf.sub(fake, real))) as tf.Tensor4D;
  });
}

/**
 * Gradient of sum_i D(x_i) with respect to x and its per-sample L2 norm ([N]). Recorded on the
 * active tape, so an enclosing `tf.variableGrads` differentiates through it.
 */
export function inputGradient(d: Critic, x: tf.Tensor4D): { grad: tf.Tensor4D; norm: tf.Tensor1D } {
  return tf.tidy(() => {
    const grad = tf.grad((t: tf.Tensor) => tf.sum(d(t as tf.Tensor4D)))(x) as tf.Tensor4D; // [N, H, W, C]
    const norm = tf.sqrt(tf.add(tf.sum(tf.square(grad), [1, 2, 3]), NORM_EPSILON)) as tf.Tensor1D; // [N]
    return { grad, norm };
  });
}

/** WGAN-GP discriminator loss with drift; see the module comment for the formula. */
export function discriminatorLoss(args: WganGpDiscriminatorArgs): WganGpDiscriminatorLoss {
  const lambda = args.lambda ?? 10;
  const driftWeight = args.drift ?? 0.001;
  const target = args.target ?? 1;
  if (!(target > 0)) throw new Error(`target must be positive, got ${target}`);
  return tf.tidy(() => {
    const dReal = tf.reshape(args.d(args.real), [-1]); // [N]
    const dFake = tf.reshape(args.d(args.fake), [-1]); // [N]
    const wasserstein = tf.sub(tf.mean(dFake), tf.mean(dReal)) as tf.Scalar;

    const xhat = interpolate(args.real, args.fake, args.epsilon);
    const { norm } = inputGradient(args.d, xhat);
    const penalty = tf.mul(tf.mean(tf.square(tf.sub(norm, target))), lambda / (target * target)) as tf.Scalar;

    const drift = tf.mul(tf.mean(tf.square(dReal)), driftWeight) as tf.Scalar;
    const loss = tf.addN([wasserstein, penalty, drift]) as tf.Scalar;
    return { loss, wasserstein, penalty, drift, gradNorm: tf.mean(norm) as tf.Scalar };
  });
}

/** WGAN generator loss, -mean D(fake). */
export function generatorLoss(dFake: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(dFake)) as tf.Scalar);
}

/**
 * How the losses of several discriminators (global and local) are combined:
 * - 'reference': sum_k w_k * L_k (the paper's G loss is -(D_global + D_local) / 2, i.e. weights 0.5);
 * - 'cern': sum_k w_k * L_k^2, each term squared before weighting, as the CERN code does. Offered
 *   for reproducing that code only: squaring a Wasserstein term changes the objective.
 */
export type LossCombination = 'reference' | 'cern';

/** One weighted term of {@link combineLosses}. */
export interface WeightedLoss {
  /** A scalar loss (e.g. one discriminator's D or G loss). */
  loss: tf.Scalar;
  /** Its weight. */
  weight: number;
}

/** Combine per-discriminator losses; see {@link LossCombination}. Default 'reference'. */
export function combineLosses(terms: WeightedLoss[], variant: LossCombination = 'reference'): tf.Scalar {
  if (terms.length === 0) throw new Error('combineLosses needs at least one term');
  return tf.tidy(() => {
    const parts = terms.map(({ loss, weight }) =>
      tf.mul(variant === 'cern' ? tf.square(loss) : loss, weight),
    );
    return tf.addN(parts) as tf.Scalar;
  });
}
