/**
 * Minibatch standard deviation (Karras et al., ICLR 2018, section 3): one extra feature map that
 * tells the discriminator how varied the samples of a small group are.
 *
 * The batch of N samples is split into M = N / G groups of G consecutive samples (a reshape to
 * [M, G, ...]): sample n belongs to group floor(n / G). Per group: the population standard
 * deviation over its G samples of every feature, sqrt(mean_g((x - mean_g x)^2) + 1e-8), averaged
 * over H, W and C into one number, which is appended as a constant (H, W) map to each sample of that
 * group.
 *
 * The ProGAN reference reshapes to [G, M, ...] instead, so a group takes every M-th sample. That
 * layout depends on N: the groups of a replica's shard of a global batch are not groups of the
 * global batch. With consecutive groups, N replicas whose local batch is divisible by G form exactly
 * the groups one process forms on the global batch (data-parallel parity). Statistically the two
 * layouts are the same, since batches are shuffled.
 *
 * Group size: G = min(groupSize, N). When N is not divisible by that, G becomes the largest divisor
 * of N not above it (N = 6, groupSize 4 -> G = 3; a prime N above groupSize -> G = 1, where the
 * statistic degenerates to sqrt(1e-8) = 1e-4 for every sample). The reference fails in that case;
 * a smaller group is preferred here so that a ragged last batch or an odd per-replica shard still
 * runs (though then its groups are no longer those of the global batch: data-parallel parity needs
 * a group size that divides the per-replica batch). Use {@link minibatchGroupSize} to see which G a
 * batch gets.
 */
import * as tf from '@tensorflow/tfjs';
import { type BaseLayerArgs, LAYER_PACKAGE, type LayerKwargs, singleInput, singleShape } from './common.js';

/** Default group size, as in ProGAN. */
export const DEFAULT_MBSTD_GROUP_SIZE = 4;

/** The group size actually used for a batch of `batchSize` samples (see the module comment). */
export function minibatchGroupSize(batchSize: number, groupSize = DEFAULT_MBSTD_GROUP_SIZE): number {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`invalid batch size ${batchSize}`);
  if (!Number.isInteger(groupSize) || groupSize < 1) throw new Error(`invalid group size ${groupSize}`);
  let g = Math.min(groupSize, batchSize);
  while (batchSize % g !== 0) g--;
  return g;
}

/** Append the minibatch standard deviation map to an NHWC tensor: [N, H, W, C] -> [N, H, W, C + 1]. */
export function minibatchStdDev(
  x: tf.Tensor4D,
  groupSize = DEFAULT_MBSTD_GROUP_SIZE,
  epsilon = 1e-8,
): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const g = minibatchGroupSize(n, groupSize);
  const m = n / g;
  return tf.tidy(() => {
    const grouped = tf.reshape(x, [m, g, h, w, c]); // sample n = mi * G + gi
    const centred = tf.sub(grouped, tf.mean(grouped, 1, true));
    const variance = tf.mean(tf.square(centred), 1); // [M, H, W, C]
    const std = tf.sqrt(tf.add(variance, epsilon));
    const perGroup = tf.reshape(tf.mean(std, [1, 2, 3]), [m, 1]); // [M, 1]
    // (A rank-2 tile: tfjs differentiates tile only up to rank 4.)
    const map = tf.reshape(tf.tile(perGroup, [1, g * h * w]), [n, h, w, 1]); // [N, H, W, 1], row mi * G + gi = group mi
    return tf.concat([x, map], 3) as tf.Tensor4D; // [N, H, W, C + 1]
  });
}

/** Options of {@link MinibatchStdDev}. */
export interface MinibatchStdDevArgs extends BaseLayerArgs {
  /** Samples per group; reduced to min(groupSize, N), then to a divisor of N. Default 4. */
  groupSize?: number;
}

/** Layer form of {@link minibatchStdDev}; no weights. */
export class MinibatchStdDev extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'MinibatchStdDev';
  /** Requested samples per group. */
  readonly groupSize: number;

  constructor(args: MinibatchStdDevArgs = {}) {
    super(args);
    this.groupSize = args.groupSize ?? DEFAULT_MBSTD_GROUP_SIZE;
    minibatchGroupSize(this.groupSize, this.groupSize);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: LayerKwargs): tf.Tensor {
    const x = singleInput(inputs, 'MinibatchStdDev');
    if (x.rank !== 4) throw new Error(`MinibatchStdDev expects NHWC input, got rank ${x.rank}`);
    return minibatchStdDev(x as tf.Tensor4D, this.groupSize);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [n, h, w, c] = singleShape(inputShape, 'MinibatchStdDev');
    return [n ?? null, h ?? null, w ?? null, c == null ? null : c + 1];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), groupSize: this.groupSize };
  }
}
tf.serialization.registerClass(MinibatchStdDev, LAYER_PACKAGE);
