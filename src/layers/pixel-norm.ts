/**
 * Pixel-wise feature vector normalisation (Karras et al., ICLR 2018, section 4.2): every pixel's
 * channel vector is scaled to unit root-mean-square, y = x * rsqrt(mean_c(x^2) + epsilon).
 */
import * as tf from '@tensorflow/tfjs';
import { type BaseLayerArgs, LAYER_PACKAGE, type LayerKwargs, singleInput, singleShape } from './common.js';

/** Default epsilon inside the square root. */
export const PIXEL_NORM_EPSILON = 1e-8;

/** Normalise over the last axis: x * rsqrt(mean(x^2, -1) + epsilon). Works for any rank >= 1. */
export function pixelNorm<T extends tf.Tensor>(x: T, epsilon = PIXEL_NORM_EPSILON): T {
  return tf.tidy(() => {
    const meanSquare = tf.mean(tf.square(x), -1, true); // [..., 1]
    return tf.mul(x, tf.rsqrt(tf.add(meanSquare, epsilon))) as T;
  });
}

/** Options of {@link PixelNorm}. */
export interface PixelNormArgs extends BaseLayerArgs {
  /** Added to the mean square before the reciprocal square root. Default 1e-8. */
  epsilon?: number;
}

/** Layer form of {@link pixelNorm}; no weights. */
export class PixelNorm extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'PixelNorm';
  /** Epsilon inside the square root. */
  readonly epsilon: number;

  constructor(args: PixelNormArgs = {}) {
    super(args);
    this.epsilon = args.epsilon ?? PIXEL_NORM_EPSILON;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    return pixelNorm(singleInput(inputs, 'PixelNorm'), this.epsilon);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return singleShape(inputShape, 'PixelNorm');
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}
tf.serialization.registerClass(PixelNorm, LAYER_PACKAGE);
