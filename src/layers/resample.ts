/**
 * Nearest-neighbour upscaling and box (average) downscaling by an integer factor, written with
 * reshape, broadcasting multiply and mean only.
 *
 * Why not `tf.image.resizeNearestNeighbor` / `tf.avgPool`: their gradients are the kernels
 * `ResizeNearestNeighborGrad` and `AvgPoolGrad`, which have no registered gradient in tfjs 4.22, so
 * the WGAN-GP penalty (a gradient of a gradient through the discriminator) cannot pass through
 * them. `tf.tile` and `tf.broadcastTo` are no way out either: their gradient only handles rank <= 4.
 * Reshape, Mul (broadcast) and Mean have gradients made of differentiable ops, so any order works.
 */
import * as tf from '@tensorflow/tfjs';
import {
  type BaseLayerArgs,
  LAYER_PACKAGE,
  type LayerKwargs,
  type LayerShape,
  singleInput,
  singleShape,
} from './common.js';

function checkFactor(factor: number): void {
  if (!Number.isInteger(factor) || factor < 1) {
    throw new Error(`resampling factor must be a positive integer, got ${factor}`);
  }
}

function dims4(x: tf.Tensor): [number, number, number, number] {
  const [n, h, w, c] = x.shape;
  if (x.rank !== 4 || n === undefined || h === undefined || w === undefined || c === undefined) {
    throw new Error(`expected an NHWC rank-4 tensor, got shape [${x.shape.join(', ')}]`);
  }
  return [n, h, w, c];
}

/**
 * Nearest-neighbour upscaling of an NHWC tensor: every pixel becomes a `factor` x `factor` block.
 * Differentiable to any order.
 */
export function upscale2d(x: tf.Tensor4D, factor = 2): tf.Tensor4D {
  checkFactor(factor);
  if (factor === 1) return x;
  const [n, h, w, c] = dims4(x);
  return tf.tidy(() => {
    const expanded = tf.reshape(x, [n, h, 1, w, 1, c]);
    const copies = tf.mul(expanded, tf.ones([1, 1, factor, 1, factor, 1])); // [N, H, f, W, f, C]
    return tf.reshape(copies, [n, h * factor, w * factor, c]);
  });
}

/**
 * Box downscaling of an NHWC tensor: the mean of each `factor` x `factor` block (average pooling
 * with stride = size = factor). Height and width must be divisible by `factor`. Differentiable to
 * any order.
 */
export function downscale2d(x: tf.Tensor4D, factor = 2): tf.Tensor4D {
  checkFactor(factor);
  if (factor === 1) return x;
  const [n, h, w, c] = dims4(x);
  if (h % factor !== 0 || w % factor !== 0) {
    throw new Error(`downscale2d: ${h}x${w} is not divisible by ${factor}`);
  }
  return tf.tidy(() => {
    const blocks = tf.reshape(x, [n, h / factor, factor, w / factor, factor, c]);
    return tf.mean(blocks, [2, 4]) as tf.Tensor4D; // [N, H/f, W/f, C]
  });
}

/** Options of {@link UpscaleNearest2D} and {@link DownscaleBox2D}. */
export interface ResampleArgs extends BaseLayerArgs {
  /** Integer scale factor for height and width. Default 2. */
  factor?: number;
}

/** Layer form of {@link upscale2d}. */
export class UpscaleNearest2D extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'UpscaleNearest2D';
  /** Integer scale factor. */
  readonly factor: number;

  constructor(args: ResampleArgs = {}) {
    super(args);
    this.factor = args.factor ?? 2;
    checkFactor(this.factor);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    return upscale2d(singleInput(inputs, 'UpscaleNearest2D') as tf.Tensor4D, this.factor);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [n, h, w, c] = singleShape(inputShape, 'UpscaleNearest2D');
    return [n ?? null, h == null ? null : h * this.factor, w == null ? null : w * this.factor, c ?? null];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), factor: this.factor };
  }
}
tf.serialization.registerClass(UpscaleNearest2D, LAYER_PACKAGE);

/** Layer form of {@link downscale2d}. */
export class DownscaleBox2D extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'DownscaleBox2D';
  /** Integer scale factor. */
  readonly factor: number;

  constructor(args: ResampleArgs = {}) {
    super(args);
    this.factor = args.factor ?? 2;
    checkFactor(this.factor);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    return downscale2d(singleInput(inputs, 'DownscaleBox2D') as tf.Tensor4D, this.factor);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [n, h, w, c] = singleShape(inputShape, 'DownscaleBox2D');
    const f = this.factor;
    return [n ?? null, h == null ? null : h / f, w == null ? null : w / f, c ?? null] as LayerShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), factor: this.factor };
  }
}
tf.serialization.registerClass(DownscaleBox2D, LAYER_PACKAGE);
