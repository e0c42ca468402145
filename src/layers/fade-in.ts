/**
 * Fade-in blend of two paths during progressive growing: lerp(a, b, alpha) = a + (b - a) * alpha,
 * where `a` is the old (lower-resolution) path and `b` the new one. Alpha is data (an input tensor),
 * so a schedule drives it and the networks never read a clock.
 */
import * as tf from '@tensorflow/tfjs';
import { type BaseLayerArgs, LAYER_PACKAGE, type LayerKwargs, singleShape } from './common.js';

/**
 * Broadcast an alpha tensor against `like`: a scalar stays a scalar; [N], [N, 1], [1] or [1, 1]
 * (one weight per sample, or one for all) becomes [N or 1, 1, ..., 1] of `like`'s rank.
 */
function alphaFor(alpha: tf.Tensor, like: tf.Tensor): tf.Tensor {
  if (alpha.rank === 0) return alpha;
  const first = alpha.shape[0] ?? 1;
  if (alpha.size !== first) {
    throw new Error(`fade-in alpha must be a scalar or one value per sample, got shape [${alpha.shape.join(', ')}]`);
  }
  const shape = [first, ...new Array<number>(Math.max(like.rank - 1, 0)).fill(1)];
  return tf.reshape(alpha, shape);
}

/**
 * lerp(a, b, alpha), computed as a * (1 - alpha) + b * alpha so that alpha 0 gives exactly `a` and
 * alpha 1 exactly `b` (and the other path then gets an exactly zero gradient).
 */
export function fadeIn<T extends tf.Tensor>(a: T, b: T, alpha: tf.Tensor | number): T {
  return tf.tidy(() => {
    const t = typeof alpha === 'number' ? tf.scalar(alpha) : alphaFor(alpha, a);
    return tf.add(tf.mul(a, tf.sub(1, t)), tf.mul(b, t)) as T;
  });
}

/** Options of {@link FadeIn}. */
export type FadeInArgs = BaseLayerArgs;

/** Layer form of {@link fadeIn}: inputs `[a, b, alpha]`, output shaped like `a`; no weights. */
export class FadeIn extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'FadeIn';

  constructor(args: FadeInArgs = {}) {
    super(args);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    if (!Array.isArray(inputs) || inputs.length !== 3) {
      throw new Error('FadeIn expects three inputs: [a, b, alpha]');
    }
    const [a, b, alpha] = inputs as [tf.Tensor, tf.Tensor, tf.Tensor];
    return fadeIn(a, b, alpha);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    if (inputShape.length !== 3 || !Array.isArray(inputShape[0])) {
      throw new Error('FadeIn expects three input shapes: [a, b, alpha]');
    }
    return singleShape([inputShape[0]], 'FadeIn');
  }
}
tf.serialization.registerClass(FadeIn, LAYER_PACKAGE);
