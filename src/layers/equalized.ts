/**
 * Equalized-learning-rate convolution and dense layers (Karras et al., ICLR 2018, section 4.1).
 *
 * The stored weights are drawn from N(0, 1) and multiplied at run time by the He constant
 * `gain / sqrt(fanIn)`, so Adam's per-parameter step sizes act on weights of one common scale. The
 * bias is a separate, zero-initialised variable and is not scaled.
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

/** Default gain: sqrt(2), the He constant for (leaky) ReLU networks. ToRGB layers use 1. */
export const DEFAULT_GAIN = Math.SQRT2;

/** Options shared by the equalized layers. */
interface EqualizedCommonArgs extends BaseLayerArgs {
  /** Gain of the run-time scale gain / sqrt(fanIn). Default sqrt(2); use 1 for ToRGB and linear outputs. */
  gain?: number;
  /** Whether to add a (zero-initialised, unscaled) bias. Default true. */
  useBias?: boolean;
  /** Seed of the N(0, 1) kernel initialiser; leave unset for a fresh random draw. Default unset. */
  seed?: number;
}

/** Options of {@link EqualizedConv2D}. */
export interface EqualizedConv2DArgs extends EqualizedCommonArgs {
  /** Number of output channels. Required. */
  filters: number;
  /** Side of the square kernel. Default 3. */
  kernelSize?: number;
  /** Padding mode of the stride-1 convolution. Default 'same'. */
  padding?: 'same' | 'valid';
}

/** Options of {@link EqualizedDense}. */
export interface EqualizedDenseArgs extends EqualizedCommonArgs {
  /** Number of output features. Required. */
  units: number;
}

function lastDim(shape: LayerShape, layer: string): number {
  const c = shape[shape.length - 1];
  if (c == null) throw new Error(`${layer}: the last (channel) dimension must be known`);
  return c;
}

function normalInit(seed: number | undefined): ReturnType<typeof tf.initializers.randomNormal> {
  return seed === undefined
    ? tf.initializers.randomNormal({ mean: 0, stddev: 1 })
    : tf.initializers.randomNormal({ mean: 0, stddev: 1, seed });
}

/**
 * Stride-1 NHWC 2D convolution with equalized learning rate: y = conv(x, w * gain / sqrt(k*k*Cin)) + b,
 * w ~ N(0, 1), b = 0 at initialisation.
 */
export class EqualizedConv2D extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'EqualizedConv2D';
  /** Output channels. */
  readonly filters: number;
  /** Kernel side. */
  readonly kernelSize: number;
  /** Gain of the run-time weight scale. */
  readonly gain: number;
  /** Whether a bias is added. */
  readonly useBias: boolean;
  /** Padding mode. */
  readonly padding: 'same' | 'valid';
  /** Kernel initialiser seed, if any. */
  readonly seed: number | undefined;
  private kernel: tf.LayerVariable | null = null;
  private bias: tf.LayerVariable | null = null;
  private runtimeScale = 1;

  constructor(args: EqualizedConv2DArgs) {
    super(args);
    if (!Number.isInteger(args.filters) || args.filters < 1) {
      throw new Error(`EqualizedConv2D: filters must be a positive integer, got ${args.filters}`);
    }
    this.filters = args.filters;
    this.kernelSize = args.kernelSize ?? 3;
    this.gain = args.gain ?? DEFAULT_GAIN;
    this.useBias = args.useBias ?? true;
    this.padding = args.padding ?? 'same';
    this.seed = args.seed;
  }

  /** The run-time multiplier gain / sqrt(fanIn) (valid after build). */
  get scale(): number {
    return this.runtimeScale;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape, 'EqualizedConv2D');
    const cin = lastDim(shape, 'EqualizedConv2D');
    const k = this.kernelSize;
    this.runtimeScale = this.gain / Math.sqrt(k * k * cin);
    this.kernel = this.addWeight('kernel', [k, k, cin, this.filters], 'float32', normalInit(this.seed));
    if (this.useBias) {
      this.bias = this.addWeight('bias', [this.filters], 'float32', tf.initializers.zeros());
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleInput(inputs, 'EqualizedConv2D') as tf.Tensor4D;
      if (this.kernel === null) throw new Error('EqualizedConv2D called before build');
      const w = tf.mul(this.kernel.read(), this.runtimeScale) as tf.Tensor4D;
      const y = tf.conv2d(x, w, 1, this.padding); // [N, H', W', filters]
      return this.bias === null ? y : tf.add(y, this.bias.read());
    });
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [n, h, w] = singleShape(inputShape, 'EqualizedConv2D');
    const shrink = this.padding === 'valid' ? this.kernelSize - 1 : 0;
    return [n ?? null, h == null ? null : h - shrink, w == null ? null : w - shrink, this.filters];
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      ...super.getConfig(),
      filters: this.filters,
      kernelSize: this.kernelSize,
      gain: this.gain,
      useBias: this.useBias,
      padding: this.padding,
    };
    if (this.seed !== undefined) config['seed'] = this.seed;
    return config;
  }
}
tf.serialization.registerClass(EqualizedConv2D, LAYER_PACKAGE);

/**
 * Dense layer with equalized learning rate on rank-2 input [N, in]:
 * y = x (w * gain / sqrt(in)) + b, w ~ N(0, 1), b = 0 at initialisation.
 */
export class EqualizedDense extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'EqualizedDense';
  /** Output features. */
  readonly units: number;
  /** Gain of the run-time weight scale. */
  readonly gain: number;
  /** Whether a bias is added. */
  readonly useBias: boolean;
  /** Kernel initialiser seed, if any. */
  readonly seed: number | undefined;
  private kernel: tf.LayerVariable | null = null;
  private bias: tf.LayerVariable | null = null;
  private runtimeScale = 1;

  constructor(args: EqualizedDenseArgs) {
    super(args);
    if (!Number.isInteger(args.units) || args.units < 1) {
      throw new Error(`EqualizedDense: units must be a positive integer, got ${args.units}`);
    }
    this.units = args.units;
    this.gain = args.gain ?? DEFAULT_GAIN;
    this.useBias = args.useBias ?? true;
    this.seed = args.seed;
  }

  /** The run-time multiplier gain / sqrt(fanIn) (valid after build). */
  get scale(): number {
    return this.runtimeScale;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape, 'EqualizedDense');
    if (shape.length !== 2) {
      throw new Error(`EqualizedDense expects rank-2 input [N, features], got rank ${shape.length}`);
    }
    const fanIn = lastDim(shape, 'EqualizedDense');
    this.runtimeScale = this.gain / Math.sqrt(fanIn);
    this.kernel = this.addWeight('kernel', [fanIn, this.units], 'float32', normalInit(this.seed));
    if (this.useBias) {
      this.bias = this.addWeight('bias', [this.units], 'float32', tf.initializers.zeros());
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleInput(inputs, 'EqualizedDense') as tf.Tensor2D;
      if (this.kernel === null) throw new Error('EqualizedDense called before build');
      const w = tf.mul(this.kernel.read(), this.runtimeScale) as tf.Tensor2D;
      const y = tf.matMul(x, w); // [N, units]
      return this.bias === null ? y : tf.add(y, this.bias.read());
    });
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [n] = singleShape(inputShape, 'EqualizedDense');
    return [n ?? null, this.units];
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      ...super.getConfig(),
      units: this.units,
      gain: this.gain,
      useBias: this.useBias,
    };
    if (this.seed !== undefined) config['seed'] = this.seed;
    return config;
  }
}
tf.serialization.registerClass(EqualizedDense, LAYER_PACKAGE);
