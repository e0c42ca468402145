/**
 * 3D (volumetric) layers that tfjs 4.22 lacks: nearest-neighbour upsampling with a factor per axis
 * (Keras `UpSampling3D`) and zero padding per axis (Keras `ZeroPadding3D`), on NDHWC tensors.
 *
 * tfjs 4.22 has `conv3d` and `averagePooling3d`, but its `batchNormalization` layer throws
 * "not implemented for array of rank 5", so {@link BatchNorm3D} is added too. Both are written with reshape, a
 * broadcasting multiply (rank <= 4, which every backend handles) and `tf.pad`, whose gradients are
 * registered, so they are differentiable to any order on the cpu and native backends.
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

/** Three per-axis values (depth/x, height/y, width/z of an NDHWC tensor). */
export type Triple = [number, number, number];

function dims5(x: tf.Tensor, op: string): [number, number, number, number, number] {
  const [n, a, b, c, ch] = x.shape;
  if (x.rank !== 5 || n === undefined || a === undefined || b === undefined || c === undefined || ch === undefined) {
    throw new Error(`${op}: expected a rank-5 [N, D1, D2, D3, C] tensor, got shape [${x.shape.join(', ')}]`);
  }
  return [n, a, b, c, ch];
}

function asTriple(v: number | Triple, what: string): Triple {
  const t: Triple = typeof v === 'number' ? [v, v, v] : v;
  if (t.length !== 3 || t.some((k) => !Number.isInteger(k))) throw new Error(`${what} must be an integer or three integers, got ${JSON.stringify(v)}`);
  return t;
}

/** Repeat every element `f` times along one axis of a tensor seen as [outer, d, inner]. */
function repeatAxis(x: tf.Tensor, outer: number, d: number, inner: number, f: number): tf.Tensor {
  if (f === 1) return x;
  const r = tf.reshape(x, [outer, d, 1, inner]);
  return tf.mul(r, tf.ones([1, 1, f, 1])); // [outer, d, f, inner]
}

/**
 * Nearest-neighbour upsampling of an NDHWC tensor: each voxel becomes an f1 x f2 x f3 block
 * (Keras `UpSampling3D(size=(f1, f2, f3))`).
 */
export function upsample3d(x: tf.Tensor5D, size: number | Triple = 2): tf.Tensor5D {
  const [f1, f2, f3] = asTriple(size, 'UpSampling3D size');
  if (f1 < 1 || f2 < 1 || f3 < 1) throw new Error(`UpSampling3D size must be positive, got ${JSON.stringify(size)}`);
  const [n, a, b, c, ch] = dims5(x, 'upsample3d');
  return tf.tidy(() => {
    let y = repeatAxis(x, n, a, b * c * ch, f1);
    y = repeatAxis(y, n * a * f1, b, c * ch, f2);
    y = repeatAxis(y, n * a * f1 * b * f2, c, ch, f3);
    return tf.reshape(y, [n, a * f1, b * f2, c * f3, ch]); // [N, D1*f1, D2*f2, D3*f3, C]
  });
}

/**
 * Zero padding of an NDHWC tensor on the three spatial axes; `padding` is per axis, symmetric
 * (Keras `ZeroPadding3D(padding=(p1, p2, p3))`), or [before, after] pairs per axis.
 */
export function zeroPad3d(x: tf.Tensor5D, padding: number | Triple | [[number, number], [number, number], [number, number]] = 1): tf.Tensor5D {
  dims5(x, 'zeroPad3d');
  const pairs = padPairs(padding);
  return tf.pad(x, [[0, 0], ...pairs, [0, 0]]); // [N, D1+p, D2+p, D3+p, C]
}

function padPairs(padding: number | Triple | [[number, number], [number, number], [number, number]]): Array<[number, number]> {
  if (typeof padding !== 'number' && Array.isArray(padding[0])) {
    const pairs = padding as Array<[number, number]>;
    if (pairs.length !== 3 || pairs.some((p) => p.length !== 2 || p.some((k) => !Number.isInteger(k) || k < 0))) {
      throw new Error(`ZeroPadding3D padding pairs must be three [before, after] non-negative integers, got ${JSON.stringify(padding)}`);
    }
    return pairs;
  }
  const t = asTriple(padding as number | Triple, 'ZeroPadding3D padding');
  if (t.some((k) => k < 0)) throw new Error(`ZeroPadding3D padding must be non-negative, got ${JSON.stringify(padding)}`);
  return t.map((k) => [k, k] as [number, number]);
}

/** Options of {@link UpSampling3D}. */
export interface UpSampling3DArgs extends BaseLayerArgs {
  /** Upsampling factor per spatial axis (or one for all). Default 2. */
  size?: number | Triple;
}

/** Layer form of {@link upsample3d}. */
export class UpSampling3D extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'UpSampling3D';
  /** Factor per spatial axis. */
  readonly size: Triple;

  constructor(args: UpSampling3DArgs = {}) {
    super(args);
    this.size = asTriple(args.size ?? 2, 'UpSampling3D size');
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    return upsample3d(singleInput(inputs, 'UpSampling3D') as tf.Tensor5D, this.size);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s: LayerShape = singleShape(inputShape, 'UpSampling3D');
    return [s[0] ?? null, ...this.size.map((f, i) => { const d = s[i + 1]; return d == null ? null : d * f; }), s[4] ?? null];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), size: [...this.size] };
  }
}

/** Options of {@link ZeroPadding3D}. */
export interface ZeroPadding3DArgs extends BaseLayerArgs {
  /** Symmetric padding per spatial axis (or one for all). Default 1. */
  padding?: number | Triple;
}

/** Layer form of {@link zeroPad3d} (symmetric per-axis padding). */
export class ZeroPadding3D extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'ZeroPadding3D';
  /** Padding per spatial axis, on each side. */
  readonly padding: Triple;

  constructor(args: ZeroPadding3DArgs = {}) {
    super(args);
    this.padding = asTriple(args.padding ?? 1, 'ZeroPadding3D padding');
    if (this.padding.some((k) => k < 0)) throw new Error(`ZeroPadding3D padding must be non-negative, got ${JSON.stringify(args.padding)}`);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    return zeroPad3d(singleInput(inputs, 'ZeroPadding3D') as tf.Tensor5D, this.padding);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s: LayerShape = singleShape(inputShape, 'ZeroPadding3D');
    return [s[0] ?? null, ...this.padding.map((p, i) => { const d = s[i + 1]; return d == null ? null : d + 2 * p; }), s[4] ?? null];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), padding: [...this.padding] };
  }
}

/** Options of {@link BatchNorm3D}. */
export interface BatchNorm3DArgs extends BaseLayerArgs {
  /** Momentum of the moving statistics (Keras convention: new = m * old + (1 - m) * batch). Default 0.99. */
  momentum?: number;
  /** Added to the variance. Default 1e-3. */
  epsilon?: number;
}

/**
 * Batch normalisation of the channel (last) axis of an NDHWC tensor, as Keras `BatchNormalization`:
 * in training, batch statistics over N, D, H, W normalise the input and update the moving mean and
 * the (Bessel-corrected) moving variance; in inference the moving statistics are used. Written with
 * differentiable elementwise ops (tfjs' own layer throws on rank 5).
 */
export class BatchNorm3D extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'BatchNorm3D';
  readonly momentum: number;
  readonly epsilon: number;
  private gamma: tf.LayerVariable | null = null;
  private beta: tf.LayerVariable | null = null;
  private movingMean: tf.LayerVariable | null = null;
  private movingVariance: tf.LayerVariable | null = null;

  constructor(args: BatchNorm3DArgs = {}) {
    super(args);
    this.momentum = args.momentum ?? 0.99;
    this.epsilon = args.epsilon ?? 1e-3;
    if (!(this.momentum >= 0 && this.momentum < 1)) throw new Error(`BatchNorm3D momentum must be in [0, 1), got ${this.momentum}`);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const s = singleShape(inputShape, 'BatchNorm3D');
    const c = s[s.length - 1];
    if (s.length !== 5 || c == null) throw new Error(`BatchNorm3D expects [N, D1, D2, D3, C] with known C, got [${s.join(', ')}]`);
    this.gamma = this.addWeight('gamma', [c], 'float32', tf.initializers.ones());
    this.beta = this.addWeight('beta', [c], 'float32', tf.initializers.zeros());
    this.movingMean = this.addWeight('moving_mean', [c], 'float32', tf.initializers.zeros(), undefined, false);
    this.movingVariance = this.addWeight('moving_variance', [c], 'float32', tf.initializers.ones(), undefined, false);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: LayerKwargs): tf.Tensor {
    const x = singleInput(inputs, 'BatchNorm3D');
    const { gamma, beta, movingMean, movingVariance } = this;
    if (!gamma || !beta || !movingMean || !movingVariance) throw new Error('BatchNorm3D called before build');
    const training = (kwargs as { training?: boolean } | undefined)?.training === true;
    return tf.tidy(() => {
      let mean: tf.Tensor;
      let variance: tf.Tensor;
      if (training) {
        ({ mean, variance } = tf.moments(x, [0, 1, 2, 3]));
        const n = x.size / (x.shape[4] ?? 1);
        const m = this.momentum;
        // Update the moving statistics outside the gradient (they are state, not parameters).
        const newMean = tf.add(tf.mul(movingMean.read(), m), tf.mul(mean, 1 - m));
        const newVar = tf.add(tf.mul(movingVariance.read(), m), tf.mul(variance, ((1 - m) * n) / Math.max(n - 1, 1)));
        movingMean.write(newMean);
        movingVariance.write(newVar);
      } else {
        mean = movingMean.read();
        variance = movingVariance.read();
      }
      const scale = tf.mul(gamma.read(), tf.rsqrt(tf.add(variance, this.epsilon)));
      return tf.add(tf.mul(tf.sub(x, mean), scale), beta.read()); // [N, D1, D2, D3, C]
    });
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return singleShape(inputShape, 'BatchNorm3D');
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), momentum: this.momentum, epsilon: this.epsilon };
  }
}

tf.serialization.registerClass(BatchNorm3D, LAYER_PACKAGE);
tf.serialization.registerClass(UpSampling3D, LAYER_PACKAGE);
tf.serialization.registerClass(ZeroPadding3D, LAYER_PACKAGE);
