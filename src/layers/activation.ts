/**
 * A leaky ReLU whose gradient is itself differentiable.
 *
 * Why not `tf.leakyRelu`: its gradient builds the mask with `tf.greater`, and `Greater` has no
 * registered gradient in tfjs 4.22, so a second backward pass (the WGAN-GP penalty differentiated
 * with respect to the discriminator's weights) throws. Here the slope comes from `tf.step(x, alpha)`
 * (1 where x > 0, alpha elsewhere), whose gradient is registered as zero, so
 * d/dx [x * step(x)] = step(x) and every higher derivative is well defined.
 */
import * as tf from '@tensorflow/tfjs';
import { type BaseLayerArgs, LAYER_PACKAGE, type LayerKwargs, singleInput, singleShape } from './common.js';

/** Negative slope used by ProGAN everywhere. */
export const LRELU_ALPHA = 0.2;

/** Leaky ReLU, `x` for x > 0 and `alpha * x` otherwise, differentiable to any order. */
export function lrelu<T extends tf.Tensor>(x: T, alpha = LRELU_ALPHA): T {
  return tf.tidy(() => tf.mul(x, tf.step(x, alpha)) as T);
}

/** Options of {@link ProGanLeakyReLU}. */
export interface ProGanLeakyReLUArgs extends BaseLayerArgs {
  /** Slope for negative inputs. Default 0.2. */
  alpha?: number;
}

/** Layer form of {@link lrelu}. */
export class ProGanLeakyReLU extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'ProGanLeakyReLU';
  /** Slope for negative inputs. */
  readonly alpha: number;

  constructor(args: ProGanLeakyReLUArgs = {}) {
    super(args);
    this.alpha = args.alpha ?? LRELU_ALPHA;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    return lrelu(singleInput(inputs, 'ProGanLeakyReLU'), this.alpha);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return singleShape(inputShape, 'ProGanLeakyReLU');
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), alpha: this.alpha };
  }
}
tf.serialization.registerClass(ProGanLeakyReLU, LAYER_PACKAGE);
