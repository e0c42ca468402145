/**
 * Corner completion (REFERENCE.md section 2, "Iterative completion"): a 2R x 2R image with one R x R
 * corner missing gets that corner generated from the other three.
 *
 * The conditional ProGAN is trained in one configuration only: top-left, top-right and bottom-left
 * known, bottom-right generated. Any other missing corner is moved to the bottom-right by mirroring
 * the whole image (see `cornerFlips` in data/corners.ts), completed there and mirrored back:
 *
 * | missing | flips           | the generator's (tl, tr, bl) are the original |
 * |---------|-----------------|------------------------------------------------|
 * | br      | none            | (tl, tr, bl)                                   |
 * | bl      | left-right      | (tr, tl, br), each mirrored left-right         |
 * | tr      | top-bottom      | (bl, br, tl), each mirrored top-bottom         |
 * | tl      | both            | (br, bl, tr), each rotated by 180 degrees      |
 *
 * The model-facing part is the small {@link CornerCompleter} interface, so completion and extension
 * (extend.ts) work with any model, and tests can record exactly what a completer was given.
 *
 * Images are HWC Float32Arrays with values in [-1, 1], as everywhere in proggan.
 */
import * as tf from '@tensorflow/tfjs';
import { CORNERS, cornerFlips, flipH, flipV, orientCorner, splitCorners, type Corner } from '../data/corners.js';
import { mirroredContext, type ProGanGenerator } from '../models/progan/networks.js';
import type { WaeCornerEncoder } from '../models/wae/networks.js';
import { hashSeed } from '../util/random.js';

/** Something that generates the bottom-right corner of 2R x 2R images from their other three corners. */
export interface CornerCompleter {
  /** Side R of one corner in pixels. */
  readonly cornerResolution: number;
  /** Channels per pixel. */
  readonly channels: 1 | 3;
  /**
   * Generate the bottom-right corners [N, R, R, C] from the known top-left, top-right and
   * bottom-left corners (each [N, R, R, C]). Equal inputs and `seed` give equal outputs. The caller
   * owns (and disposes) the returned tensor; the inputs are not disposed.
   */
  completeBottomRight(tl: tf.Tensor4D, tr: tf.Tensor4D, bl: tf.Tensor4D, seed: number): tf.Tensor4D;
}

/** The known corners, in the order their latents are concatenated after the noise. */
export type ConditionOrder = readonly [Exclude<Corner, 'br'>, Exclude<Corner, 'br'>, Exclude<Corner, 'br'>];

/**
 * Default order of the condition latents: the known corners in row-major order. It must equal the
 * order the generator was trained with.
 */
export const DEFAULT_CONDITION_ORDER: ConditionOrder = ['tl', 'tr', 'bl'];

/** Options of {@link completerFromModels}. */
export interface ModelCompleterOptions {
  /** Noise size; must equal the generator's `zDim`. Default: the generator's `zDim`. */
  zDim?: number;
  /** Corner side R the generator runs at (power of two <= its maxResolution). Default: the generator's `maxResolution`. */
  resolution?: number;
  /** Base seed mixed into every call's noise seed. Default 0. */
  seed?: number;
  /** Order of the condition latents after the noise, as in training. Default {@link DEFAULT_CONDITION_ORDER}. */
  conditionOrder?: ConditionOrder;
  /** Fade-in alpha of the newest block (below 1 only for a run stopped during a fade). Default 1. */
  alpha?: number;
  /** Clip generated pixels to [-1, 1], the data range (the generator's output is linear). Default true. */
  clip?: boolean;
}

/** Resample square corners [N, r, r, C] to side `size` (powers of two): box average down, nearest up. */
function resampleSquare(x: tf.Tensor4D, size: number): tf.Tensor4D {
  const r = x.shape[1];
  if (r === size) return x;
  if (r > size) {
    const f = r / size;
    return tf.avgPool(x, [f, f], [f, f], 'valid'); // [N, size, size, C]
  }
  return tf.image.resizeNearestNeighbor(x, [size, size]); // [N, size, size, C]
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

/**
 * A {@link CornerCompleter} from a trained conditional ProGAN generator (use its EMA weights) and the
 * frozen WAE encoder: noise ~ N(0, I) [N, zDim] from a seed, the three known corners encoded in
 * inference mode, concatenated in `conditionOrder` (tl, tr, bl, as the ProGAN objective does), and
 * the generator run at `resolution` with `alpha`. When the encoder was trained at another corner side than `resolution`, corners are
 * box-downsampled (or nearest-upsampled) to the encoder's side first.
 */
export function completerFromModels(generator: ProGanGenerator, encoder: WaeCornerEncoder, opts: ModelCompleterOptions = {}): CornerCompleter {
  const g = generator.config;
  const zDim = opts.zDim ?? g.zDim;
  const resolution = opts.resolution ?? g.maxResolution;
  const baseSeed = opts.seed ?? 0;
  const order = opts.conditionOrder ?? DEFAULT_CONDITION_ORDER;
  const clip = opts.clip ?? true;
  const alpha = opts.alpha ?? 1;
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`completerFromModels: alpha must be in [0, 1], got ${alpha}`);
  const enc = encoder.encoderSpec;
  if (zDim !== g.zDim) throw new Error(`completerFromModels: zDim ${zDim} does not match the generator's zDim ${g.zDim}`);
  if (!isPowerOfTwo(resolution) || resolution < 4 || resolution > g.maxResolution) {
    throw new Error(`completerFromModels: resolution must be a power of two in [4, ${g.maxResolution}] (the generator's maxResolution), got ${resolution}`);
  }
  if (g.channels !== 1 && g.channels !== 3) throw new Error(`completerFromModels: the generator makes ${g.channels} channels; completion supports 1 or 3`);
  if (enc.channels !== g.channels) throw new Error(`completerFromModels: the encoder reads ${enc.channels} channels but the generator makes ${g.channels}`);
  if (enc.latentSize !== g.latentDim) {
    throw new Error(`completerFromModels: the encoder's latent size ${enc.latentSize} does not match the generator's latentDim ${g.latentDim}`);
  }
  if (g.numConditions !== 3) throw new Error(`completerFromModels: the generator takes ${g.numConditions} corner latents; completion needs 3`);
  if (new Set(order).size !== 3 || order.some((c) => !['tl', 'tr', 'bl'].includes(c))) {
    throw new Error(`completerFromModels: conditionOrder must hold tl, tr and bl once each, got [${order.join(', ')}]`);
  }
  const channels = g.channels;
  return {
    cornerResolution: resolution,
    channels,
    completeBottomRight(tl: tf.Tensor4D, tr: tf.Tensor4D, bl: tf.Tensor4D, seed: number): tf.Tensor4D {
      const known = { tl, tr, bl };
      const n = tl.shape[0];
      for (const [name, t] of Object.entries(known)) {
        if (!tf.util.arraysEqual(t.shape, [n, resolution, resolution, channels])) {
          throw new Error(`completeBottomRight: corner ${name} must be [${n}, ${resolution}, ${resolution}, ${channels}], got [${t.shape.join(', ')}]`);
        }
      }
      const noiseSeed = hashSeed('proggan-complete', baseSeed, seed) >>> 1;
      return tf.tidy(() => {
        // Encode each known corner at the encoder's side, in training's condition order.
        const conditions = order.map((c) => encoder.encode(resampleSquare(known[c], enc.resolution))); // 3 x [N, latent]
        const noise = tf.randomNormal([n, zDim], 0, 1, 'float32', noiseSeed) as tf.Tensor2D; // [N, zDim]
        // Spatially conditioned generators also read the neighbours' pixels mirrored onto the corner.
        const context = g.contextChannels > 0 ? mirroredContext(tl, tr, bl) : undefined; // [N, R, R, 3C]
        const out = generator.apply({ noise, conditions, ...(context ? { context } : {}) }, { resolution, alpha }); // [N, R, R, C]
        return clip ? tf.clipByValue(out, -1, 1) : out;
      });
    },
  };
}

/** Where the R x R corner `c` starts in a 2R x 2R image: [row, column] in pixels. */
export function cornerOrigin(c: Corner, r: number): [number, number] {
  return [c === 'bl' || c === 'br' ? r : 0, c === 'tr' || c === 'br' ? r : 0];
}

/** Throw unless `corner` is one of tl, tr, bl, br (values from the command line or JSON). */
export function checkCorner(corner: string): asserts corner is Corner {
  if (!(CORNERS as readonly string[]).includes(corner)) throw new RangeError(`missing corner must be one of ${CORNERS.join(', ')}, got "${corner}"`);
}

/**
 * Complete a batch of 2R x 2R HWC images that all miss the same corner. Each output is a copy of its
 * input with the missing corner replaced by the generated one; every other value is unchanged
 * (bitwise: those values are copied, never recomputed). What the input holds in the missing corner
 * is ignored. One completer call serves the whole batch (noise from `seed`).
 */
export function completeImages(images: readonly Float32Array[], missing: Corner, completer: CornerCompleter, seed: number): Float32Array[] {
  checkCorner(missing);
  const r = completer.cornerResolution;
  const c = completer.channels;
  const size = 2 * r;
  const n = images.length;
  if (n === 0) return [];
  images.forEach((img, i) => {
    if (img.length !== size * size * c) {
      throw new RangeError(`completeImages: image ${i} has ${img.length} values; the completer needs ${size}x${size}x${c} = ${size * size * c} (corners of ${r} px)`);
    }
  });

  // Mirror every image so that the missing corner sits at the bottom-right, and stack the known corners.
  const per = r * r * c;
  const stacked = { tl: new Float32Array(n * per), tr: new Float32Array(n * per), bl: new Float32Array(n * per) };
  images.forEach((img, i) => {
    const parts = splitCorners(orientCorner(img, size, c, missing), size, c);
    stacked.tl.set(parts.tl, i * per);
    stacked.tr.set(parts.tr, i * per);
    stacked.bl.set(parts.bl, i * per);
  });

  // Generate the bottom-right corners.
  const generated = tf.tidy(() => {
    const t = (a: Float32Array) => tf.tensor4d(a, [n, r, r, c]);
    const tl = t(stacked.tl);
    const tr = t(stacked.tr);
    const bl = t(stacked.bl);
    const out = completer.completeBottomRight(tl, tr, bl, seed);
    if (!tf.util.arraysEqual(out.shape, [n, r, r, c])) {
      throw new Error(`completer returned [${out.shape.join(', ')}], expected [${n}, ${r}, ${r}, ${c}]`);
    }
    return out;
  });
  let data: Float32Array;
  try {
    data = generated.dataSync() as Float32Array;
  } finally {
    generated.dispose();
  }

  // Mirror each generated corner back (each flip is its own inverse) and write it over the missing one.
  const flips = cornerFlips(missing);
  const [oy, ox] = cornerOrigin(missing, r);
  const rowLen = r * c;
  return images.map((img, i) => {
    let tile: Float32Array = data.slice(i * per, (i + 1) * per);
    if (flips.h) tile = flipH(tile, r, r, c);
    if (flips.v) tile = flipV(tile, r, r, c);
    const out = img.slice();
    for (let y = 0; y < r; y++) out.set(tile.subarray(y * rowLen, (y + 1) * rowLen), ((oy + y) * size + ox) * c);
    return out;
  });
}

/**
 * Complete one 2R x 2R HWC image (R = the completer's corner side): a copy with the `missing` corner
 * generated from the other three; every other value is unchanged bitwise.
 */
export function completeImage(img: Float32Array, missing: Corner, completer: CornerCompleter, seed: number): Float32Array {
  return completeImages([img], missing, completer, seed)[0] as Float32Array;
}
