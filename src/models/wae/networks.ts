/**
 * Wasserstein autoencoder (WAE-MMD) networks: the corner encoder of the conditional progressive GAN
 * and its decoder. Reads bottom-up: arguments and channel table, blocks, then networks.
 *
 * Encoder: 3x3 stride-1 "colour" conv -> k x (3x3 stride-2 conv, batch norm, LeakyReLU) down to 4x4
 * -> flatten -> dense latent. Decoder: the mirror image, with transposed convs, so its feature map at
 * each resolution has the shape of the encoder's; a final 3x3 conv maps to the image channels.
 *
 * Layer names carry the block's resolution (`wae_enc_b64_conv`, `wae_dec_b8_deconv`, ...): encoder
 * blocks are named by the resolution they read, decoder blocks by the one they produce. Weight
 * `originalName`s (`wae_enc_b64_conv/kernel`) are therefore identical across builds; tfjs-layers
 * appends `_1`, `_2`, ... to the variables' `name` when a second model with the same layer names is
 * built in one process, so key checkpoints by `originalName` (as `LayersModel.save` and
 * `loadWeights` do) and match variables across replicas by position in `model.weights`.
 *
 * Batch norm: `apply(x, { training: true })` normalises with batch statistics and updates the
 * moving mean/variance in place (moving = momentum * moving + (1 - momentum) * batch);
 * `{ training: false }` (the default of `predict`) uses the moving statistics and updates nothing.
 * The encoder is frozen for the GAN in the latter mode.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * A trained WAE's encoder as a plain model, for code that encodes corners without training them
 * (completion, the ProGAN's conditions): its input/output sizes and `encode`.
 */
export interface WaeCornerEncoder {
  /** Input side R, channels and latent size of the encoder. */
  readonly encoderSpec: Pick<WaeArgs, 'resolution' | 'channels' | 'latentSize'>;
  /** Encode images [N, R, R, C] in inference mode; the caller owns the result [N, latentSize]. */
  encode(x: tf.Tensor4D): tf.Tensor2D;
}

/** Arguments of the WAE encoder and decoder. */
export interface WaeArgs {
  /** Side R of the square input/output image in pixels; a power of two >= 8. Required. */
  resolution: number;
  /** Image channels: 1 (SAR, greyscale) or 3 (RGB). Required. */
  channels: 1 | 3;
  /** Size of the latent code per image; default 2048. */
  latentSize: number;
  /** Filters of the stride-2 blocks, first (R -> R/2) to last (8 -> 4); log2(R/4) entries; default the first log2(R/4) of [32, 64, 128, 256, 512, 512, ...]. */
  filters: number[];
  /** Negative slope of every LeakyReLU; default 0.2. */
  leak: number;
  /** Filters of the 3x3 stride-1 "colour" conv at full resolution (and of the decoder's last block); default filters[0]. */
  stemFilters: number;
  /** Whether the decoder ends in tanh (for data in [-1, 1]) instead of a linear output; default false. */
  tanhOutput: boolean;
  /** Batch-norm momentum of the moving statistics (Keras convention: weight of the old value); default 0.99. */
  batchNormMomentum: number;
  /**
   * Batch norm after each strided conv (the reference); default true. Without it the blocks' convs
   * get biases, and every replica of a data-parallel run computes exactly the single-process function.
   */
  batchNorm: boolean;
}

/** Number of stride-2 blocks between resolution R and 4x4: log2(R / 4). */
function numBlocks(resolution: number): number {
  return Math.round(Math.log2(resolution / 4));
}

/** Default filter list for a resolution: 32, 64, ... capped at 512, one per stride-2 block. */
function defaultFilters(resolution: number): number[] {
  return Array.from({ length: numBlocks(resolution) }, (_, i) => Math.min(32 * 2 ** i, 512));
}

const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

function checkResolution(r: unknown): void {
  if (!isPositiveInt(r) || r < 8 || !Number.isInteger(Math.log2(r))) {
    throw new Error(`WaeArgs.resolution must be a power of two >= 8, got ${String(r)}`);
  }
}

/** Throw an error naming the first invalid field of `args`. */
export function validateWaeArgs(args: WaeArgs): void {
  const r = args.resolution;
  checkResolution(r);
  if (args.channels !== 1 && args.channels !== 3) {
    throw new Error(`WaeArgs.channels must be 1 or 3, got ${String(args.channels)}`);
  }
  if (!isPositiveInt(args.latentSize)) {
    throw new Error(`WaeArgs.latentSize must be a positive integer, got ${String(args.latentSize)}`);
  }
  const k = numBlocks(r);
  if (!Array.isArray(args.filters) || args.filters.length !== k || !args.filters.every(isPositiveInt)) {
    throw new Error(
      `WaeArgs.filters must be ${k} positive integers for resolution ${r} (one per stride-2 block down to 4x4), got [${String(args.filters)}]`,
    );
  }
  if (!(typeof args.leak === 'number' && Number.isFinite(args.leak) && args.leak >= 0)) {
    throw new Error(`WaeArgs.leak must be a finite number >= 0, got ${String(args.leak)}`);
  }
  if (!isPositiveInt(args.stemFilters)) {
    throw new Error(`WaeArgs.stemFilters must be a positive integer, got ${String(args.stemFilters)}`);
  }
  if (typeof args.tanhOutput !== 'boolean') {
    throw new Error(`WaeArgs.tanhOutput must be a boolean, got ${String(args.tanhOutput)}`);
  }
  const m = args.batchNormMomentum;
  if (!(typeof m === 'number' && m >= 0 && m < 1)) {
    throw new Error(`WaeArgs.batchNormMomentum must be in [0, 1), got ${String(m)}`);
  }
}

/** Fill the defaults of {@link WaeArgs} around a resolution and channel count, then validate. */
export function defaultWaeArgs(partial: Partial<WaeArgs> & { resolution: number; channels: 1 | 3 }): WaeArgs {
  const resolution = partial.resolution;
  // Check the resolution first: the default filter list depends on it.
  checkResolution(resolution);
  const filters = [...(partial.filters ?? defaultFilters(resolution))];
  const args: WaeArgs = {
    resolution,
    channels: partial.channels,
    latentSize: partial.latentSize ?? 2048,
    filters,
    leak: partial.leak ?? 0.2,
    stemFilters: partial.stemFilters ?? filters[0] ?? 32,
    tanhOutput: partial.tanhOutput ?? false,
    batchNormMomentum: partial.batchNormMomentum ?? 0.99,
    batchNorm: partial.batchNorm ?? true,
  };
  validateWaeArgs(args);
  return args;
}

/**
 * Channels of the feature map at resolution `res` (shared by encoder and decoder): `stemFilters` at
 * full resolution, `filters[i]` after the (i+1)-th stride-2 block, i.e. at R / 2^(i+1).
 */
export function waeChannelsAt(args: WaeArgs, res: number): number {
  if (res === args.resolution) return args.stemFilters;
  const c = args.filters[numBlocks(args.resolution) - numBlocks(res) - 1];
  if (c === undefined || res < 4) {
    throw new Error(`waeChannelsAt: resolution ${res} is not between 4 and ${args.resolution}`);
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------------------------

/** Narrow a layer's output on a symbolic input to one SymbolicTensor. */
function sym(out: tf.Tensor | tf.Tensor[] | tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor {
  if (out instanceof tf.SymbolicTensor) return out;
  throw new Error('wae: expected a single symbolic tensor from a layer');
}

/** Assert a symbolic tensor's shape (batch dimension null) at a block boundary. */
function expectShape(t: tf.SymbolicTensor, shape: number[], where: string): tf.SymbolicTensor {
  const want = [null, ...shape];
  if (t.shape.length !== want.length || t.shape.some((v, i) => v !== want[i])) {
    throw new Error(`wae: ${where} has shape [${t.shape}], expected [${want}]`);
  }
  return t;
}

/** Batch norm then LeakyReLU, named `${prefix}_bn` and `${prefix}_lrelu`. */
function bnLeaky(x: tf.SymbolicTensor, prefix: string, args: WaeArgs): tf.SymbolicTensor {
  const y = args.batchNorm ? sym(tf.layers.batchNormalization({ momentum: args.batchNormMomentum, name: `${prefix}_bn` }).apply(x)) : x;
  return sym(tf.layers.leakyReLU({ alpha: args.leak, name: `${prefix}_lrelu` }).apply(y));
}

/** Encoder block reading resolution `res`: 3x3 stride-2 conv, batch norm, LeakyReLU -> res / 2. */
function encoderBlock(x: tf.SymbolicTensor, res: number, args: WaeArgs): tf.SymbolicTensor {
  const prefix = `wae_enc_b${res}`;
  const conv = tf.layers.conv2d({
    filters: waeChannelsAt(args, res / 2),
    kernelSize: 3,
    strides: 2,
    padding: 'same',
    // The bias would be cancelled by the batch norm's mean subtraction; its beta plays that role.
    useBias: !args.batchNorm,
    name: `${prefix}_conv`,
  });
  const y = bnLeaky(sym(conv.apply(x)), prefix, args); // [N, res/2, res/2, C(res/2)]
  return expectShape(y, [res / 2, res / 2, waeChannelsAt(args, res / 2)], `${prefix} output`);
}

/** Decoder block producing resolution `res`: 3x3 stride-2 transposed conv, batch norm, LeakyReLU. */
function decoderBlock(x: tf.SymbolicTensor, res: number, args: WaeArgs): tf.SymbolicTensor {
  const prefix = `wae_dec_b${res}`;
  const deconv = tf.layers.conv2dTranspose({
    filters: waeChannelsAt(args, res),
    kernelSize: 3,
    strides: 2,
    padding: 'same',
    useBias: !args.batchNorm,
    name: `${prefix}_deconv`,
  });
  const y = bnLeaky(sym(deconv.apply(x)), prefix, args); // [N, res, res, C(res)]
  return expectShape(y, [res, res, waeChannelsAt(args, res)], `${prefix} output`);
}

// ---------------------------------------------------------------------------------------------
// Networks
// ---------------------------------------------------------------------------------------------

/** Build the encoder: images [N, R, R, C] -> codes [N, latentSize]. Model name `wae_encoder`. */
export function buildWaeEncoder(args: WaeArgs): tf.LayersModel {
  validateWaeArgs(args);
  const R = args.resolution;
  const input = tf.input({ shape: [R, R, args.channels], name: 'wae_enc_input' }); // [N, R, R, C]

  // Extract colour with a stride-1 conv; linear, as in the reference. No bias: a per-channel
  // constant here passes through the next (linear) conv as a per-channel constant that its batch
  // norm removes, so it would receive no gradient.
  const stem = tf.layers.conv2d({
    filters: args.stemFilters,
    kernelSize: 3,
    strides: 1,
    padding: 'same',
    useBias: false,
    name: `wae_enc_b${R}_stem`,
  });
  let x = expectShape(sym(stem.apply(input)), [R, R, args.stemFilters], 'encoder stem'); // [N, R, R, Cs]

  // Halve the resolution down to 4x4.
  for (let res = R; res > 4; res /= 2) {
    x = encoderBlock(x, res, args); // [N, res/2, res/2, C(res/2)]
  }

  // Flatten the 4x4 map into the latent code.
  const flat = sym(tf.layers.flatten({ name: 'wae_enc_b4_flatten' }).apply(x)); // [N, 16 * C(4)]
  const z = sym(tf.layers.dense({ units: args.latentSize, name: 'wae_enc_b4_dense' }).apply(flat)); // [N, latent]
  expectShape(z, [args.latentSize], 'encoder output');
  return tf.model({ inputs: input, outputs: z, name: 'wae_encoder' });
}

/** Build the decoder: codes [N, latentSize] -> images [N, R, R, C]. Model name `wae_decoder`. */
export function buildWaeDecoder(args: WaeArgs): tf.LayersModel {
  validateWaeArgs(args);
  const R = args.resolution;
  const c4 = waeChannelsAt(args, 4);
  const input = tf.input({ shape: [args.latentSize], name: 'wae_dec_input' }); // [N, latent]

  // Map the code onto a 4x4 feature map.
  const dense = sym(tf.layers.dense({ units: 16 * c4, name: 'wae_dec_b4_dense' }).apply(input)); // [N, 16 * C(4)]
  let x = sym(tf.layers.reshape({ targetShape: [4, 4, c4], name: 'wae_dec_b4_reshape' }).apply(dense)); // [N, 4, 4, C(4)]

  // Double the resolution up to R.
  for (let res = 8; res <= R; res *= 2) {
    x = decoderBlock(x, res, args); // [N, res, res, C(res)]
  }

  // Map features to image channels.
  const out = tf.layers.conv2d({
    filters: args.channels,
    kernelSize: 3,
    strides: 1,
    padding: 'same',
    activation: args.tanhOutput ? 'tanh' : 'linear',
    name: `wae_dec_b${R}_out`,
  });
  const img = expectShape(sym(out.apply(x)), [R, R, args.channels], 'decoder output'); // [N, R, R, C]
  return tf.model({ inputs: input, outputs: img, name: 'wae_decoder' });
}

/** Build both halves of the WAE from one set of arguments. */
export function buildWae(args: WaeArgs): { encoder: tf.LayersModel; decoder: tf.LayersModel } {
  return { encoder: buildWaeEncoder(args), decoder: buildWaeDecoder(args) };
}
