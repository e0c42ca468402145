/**
 * Structural similarity: single-scale SSIM and multi-scale MS-SSIM (Wang, Simoncelli, Bovik 2003),
 * used by progressive GANs as a diversity measure: the mean MS-SSIM over random pairs of generated
 * images (lower = more diverse).
 *
 * Conventions:
 * - Inputs are NHWC Float32Arrays in [-1, 1]. They are clipped to [-1, 1] and mapped to [0, 255]
 *   (x + 1) * 127.5, without rounding, and the dynamic range is L = 255 (the uint8 convention of the
 *   reference code). The mapping matters: the luminance term is not shift-invariant.
 * - Local statistics use a Gaussian window (11 x 11, sigma 1.5 by default) over the valid region (no
 *   padding), per channel; the per-scale SSIM and contrast-structure (cs) values are means over all
 *   valid positions and all channels.
 * - Between scales images are average-pooled by 2 (odd trailing rows/columns dropped).
 * - MS-SSIM = prod_{j < M-1} cs_j^w_j * ssim_{M-1}^w_{M-1} over the M scales used, each factor
 *   clamped at 0 first (cs can be negative for anti-correlated images; a fractional power of it would
 *   be NaN). Result in [0, 1].
 * - Scale count ({@link msSsimScales}): scale j (side floor(side / 2^j)) is used while its smaller
 *   side is at least the window size, up to the number of weights; the first scale is always used.
 *   When fewer scales than weights are used, the used weights are renormalised to sum 1: 64 x 64
 *   images use 3 scales (64, 32, 16) with weights [0.0448, 0.2856, 0.3001] / 0.6305, a single scale
 *   reduces to SSIM; 176 x 176 or larger use all 5 with the weights as given.
 * - An image smaller than the window (single scale) uses a window clipped to the image's smaller side
 *   with sigma scaled by the same ratio.
 */
import { Rng } from '../util/random.js';
import { assertImages, type ImageShape } from './swd.js';

/** Standard MS-SSIM exponents per scale, finest first (Wang et al. 2003). */
export const MS_SSIM_WEIGHTS: readonly number[] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

/** Options of {@link ssim} and {@link msSsim}. */
export interface SsimOptions {
  /** Side of the Gaussian window; default 11. */
  windowSize?: number;
  /** Standard deviation of the Gaussian window in pixels; default 1.5. */
  sigma?: number;
  /** Luminance stabiliser K1 (C1 = (K1 L)^2); default 0.01. */
  k1?: number;
  /** Contrast stabiliser K2 (C2 = (K2 L)^2); default 0.03. */
  k2?: number;
}

/** Options of {@link msSsim}. */
export interface MsSsimOptions extends SsimOptions {
  /** Exponent per scale, finest first; its length is the most scales used; default {@link MS_SSIM_WEIGHTS}. */
  weights?: readonly number[];
}

/** Options of {@link meanPairwiseMsSsim}. */
export interface MeanPairwiseMsSsimOptions extends MsSsimOptions {
  /** Random pairs (i != j, drawn with replacement) to average over; default 1000. */
  pairs?: number;
  /** Seed of the pair draws; default 0. */
  seed?: number;
}

/** Dynamic range after mapping [-1, 1] to [0, 255]. */
const DYNAMIC_RANGE = 255;

/** Resolved settings shared by every pair. */
interface SsimContext {
  windowSize: number;
  sigma: number;
  c1: number;
  c2: number;
}

function resolveContext(opts: SsimOptions): SsimContext {
  const windowSize = opts.windowSize ?? 11;
  const sigma = opts.sigma ?? 1.5;
  if (!Number.isInteger(windowSize) || windowSize < 1) throw new RangeError(`ssim: windowSize ${windowSize} must be a positive integer`);
  if (!(sigma > 0)) throw new RangeError(`ssim: sigma ${sigma} must be positive`);
  const k1 = opts.k1 ?? 0.01;
  const k2 = opts.k2 ?? 0.03;
  return { windowSize, sigma, c1: (k1 * DYNAMIC_RANGE) ** 2, c2: (k2 * DYNAMIC_RANGE) ** 2 };
}

/** Normalised 1-D Gaussian taps of `size`, centred between the middle samples for even sizes. */
function gaussianTaps(size: number, sigma: number): Float64Array {
  const g = new Float64Array(size);
  const centre = (size - 1) / 2;
  let sum = 0;
  for (let t = 0; t < size; t++) {
    const v = Math.exp(-((t - centre) ** 2) / (2 * sigma * sigma));
    g[t] = v;
    sum += v;
  }
  for (let t = 0; t < size; t++) g[t] = g[t]! / sum;
  return g;
}

/**
 * Number of scales MS-SSIM uses for h x w images: scale j is used while min(h, w) >> j is at least the
 * window size, at most `weights.length`, at least 1.
 */
export function msSsimScales(h: number, w: number, opts: MsSsimOptions = {}): number {
  const weights = opts.weights ?? MS_SSIM_WEIGHTS;
  const windowSize = opts.windowSize ?? 11;
  let scales = 1;
  let side = Math.min(h, w);
  while (scales < weights.length && Math.floor(side / 2) >= windowSize) {
    side = Math.floor(side / 2);
    scales++;
  }
  return scales;
}

/** One image's pixels mapped to [0, 255] as doubles (HWC). */
function toPixelRange(src: Float32Array, offset: number, len: number): Float64Array {
  const out = new Float64Array(len);
  for (let i = 0; i < len; i++) {
    const v = src[offset + i]!;
    out[i] = (Math.min(1, Math.max(-1, v)) + 1) * 127.5;
  }
  return out;
}

/** 2 x 2 average pooling of an HWC image: [h, w, c] -> [floor(h/2), floor(w/2), c]. */
function avgPool2(x: Float64Array, h: number, w: number, c: number): Float64Array {
  const h2 = Math.floor(h / 2);
  const w2 = Math.floor(w / 2);
  const out = new Float64Array(h2 * w2 * c);
  for (let y = 0; y < h2; y++) {
    for (let xx = 0; xx < w2; xx++) {
      for (let ch = 0; ch < c; ch++) {
        const i00 = ((2 * y) * w + 2 * xx) * c + ch;
        const i10 = i00 + w * c;
        out[(y * w2 + xx) * c + ch] = 0.25 * (x[i00]! + x[i00 + c]! + x[i10]! + x[i10 + c]!);
      }
    }
  }
  return out;
}

/**
 * Mean SSIM and mean contrast-structure term of two HWC images at one scale, over the valid window
 * positions and all channels.
 */
function ssimAtScale(x: Float64Array, y: Float64Array, h: number, w: number, c: number, ctx: SsimContext): { ssim: number; cs: number } {
  // Clip the window to the image, scaling sigma with it.
  const size = Math.min(ctx.windowSize, h, w);
  const g = gaussianTaps(size, (ctx.sigma * size) / ctx.windowSize);
  const wo = w - size + 1;
  const ho = h - size + 1;
  // Filter along rows: five moment maps [h, wo, c].
  const len = h * wo * c;
  const mx = new Float64Array(len);
  const my = new Float64Array(len);
  const mxx = new Float64Array(len);
  const myy = new Float64Array(len);
  const mxy = new Float64Array(len);
  for (let r = 0; r < h; r++) {
    for (let col = 0; col < wo; col++) {
      for (let ch = 0; ch < c; ch++) {
        let sx = 0;
        let sy = 0;
        let sxx = 0;
        let syy = 0;
        let sxy = 0;
        let idx = (r * w + col) * c + ch;
        for (let t = 0; t < size; t++, idx += c) {
          const gt = g[t]!;
          const a = x[idx]!;
          const b = y[idx]!;
          sx += gt * a;
          sy += gt * b;
          sxx += gt * a * a;
          syy += gt * b * b;
          sxy += gt * a * b;
        }
        const o = (r * wo + col) * c + ch;
        mx[o] = sx;
        my[o] = sy;
        mxx[o] = sxx;
        myy[o] = syy;
        mxy[o] = sxy;
      }
    }
  }
  // Filter along columns and combine the moments into the SSIM and cs maps, summed.
  let ssimSum = 0;
  let csSum = 0;
  const stride = wo * c;
  for (let r = 0; r < ho; r++) {
    for (let j = 0; j < stride; j++) {
      let ux = 0;
      let uy = 0;
      let exx = 0;
      let eyy = 0;
      let exy = 0;
      let idx = r * stride + j;
      for (let t = 0; t < size; t++, idx += stride) {
        const gt = g[t]!;
        ux += gt * mx[idx]!;
        uy += gt * my[idx]!;
        exx += gt * mxx[idx]!;
        eyy += gt * myy[idx]!;
        exy += gt * mxy[idx]!;
      }
      const vx = exx - ux * ux;
      const vy = eyy - uy * uy;
      const cov = exy - ux * uy;
      const cs = (2 * cov + ctx.c2) / (vx + vy + ctx.c2);
      const lum = (2 * ux * uy + ctx.c1) / (ux * ux + uy * uy + ctx.c1);
      csSum += cs;
      ssimSum += lum * cs;
    }
  }
  const count = ho * stride;
  return { ssim: ssimSum / count, cs: csSum / count };
}

/** MS-SSIM of one pair of HWC images already mapped to [0, 255]. */
function msSsimPair(x0: Float64Array, y0: Float64Array, h0: number, w0: number, c: number, ctx: SsimContext, weights: readonly number[]): number {
  const scales = msSsimScales(h0, w0, { weights, windowSize: ctx.windowSize });
  // Fewer scales than weights: renormalise the used ones to sum 1; all scales: the weights as given.
  let usedWeight = 0;
  for (let j = 0; j < scales; j++) usedWeight += weights[j]!;
  const rescale = scales < weights.length ? 1 / usedWeight : 1;
  let x = x0;
  let y = y0;
  let h = h0;
  let w = w0;
  let result = 1;
  for (let j = 0; j < scales; j++) {
    const { ssim, cs } = ssimAtScale(x, y, h, w, c, ctx);
    const factor = j === scales - 1 ? ssim : cs;
    result *= Math.max(0, factor) ** (weights[j]! * rescale);
    if (j < scales - 1) {
      x = avgPool2(x, h, w, c);
      y = avgPool2(y, h, w, c);
      h = Math.floor(h / 2);
      w = Math.floor(w / 2);
    }
  }
  return result;
}

/** Check two batches of equal shape. */
function assertPairs(name: string, a: Float32Array, b: Float32Array, shape: ImageShape): void {
  assertImages(`${name} (a)`, a, shape);
  assertImages(`${name} (b)`, b, shape);
}

/**
 * Single-scale SSIM of image pairs (a[i], b[i]), NHWC in [-1, 1]: the mean over valid window positions
 * and channels of l * cs (see the module comment). Returns one value per pair, in [-1, 1].
 */
export function ssim(a: Float32Array, b: Float32Array, shape: ImageShape, opts: SsimOptions = {}): Float32Array {
  assertPairs('ssim', a, b, shape);
  const [n, h, w, c] = shape;
  const ctx = resolveContext(opts);
  const len = h * w * c;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = ssimAtScale(toPixelRange(a, i * len, len), toPixelRange(b, i * len, len), h, w, c, ctx).ssim;
  }
  return out;
}

/**
 * MS-SSIM of image pairs (a[i], b[i]), NHWC in [-1, 1], channels averaged. Returns one value per pair
 * in [0, 1]; 1 for identical images. Scale count and weights: see the module comment.
 */
export function msSsim(a: Float32Array, b: Float32Array, shape: ImageShape, opts: MsSsimOptions = {}): Float32Array {
  assertPairs('msSsim', a, b, shape);
  const [n, h, w, c] = shape;
  const ctx = resolveContext(opts);
  const weights = opts.weights ?? MS_SSIM_WEIGHTS;
  if (weights.length === 0) throw new RangeError('msSsim: weights must not be empty');
  const len = h * w * c;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = msSsimPair(toPixelRange(a, i * len, len), toPixelRange(b, i * len, len), h, w, c, ctx, weights);
  }
  return out;
}

/**
 * Mean MS-SSIM over `pairs` random pairs (i, j), i != j, of one image set (NHWC in [-1, 1]): ProGAN's
 * diversity measure of generated images (lower = more diverse). Needs at least two images.
 */
export function meanPairwiseMsSsim(images: Float32Array, shape: ImageShape, opts: MeanPairwiseMsSsimOptions = {}): number {
  assertImages('meanPairwiseMsSsim', images, shape);
  const [n, h, w, c] = shape;
  if (n < 2) throw new RangeError(`meanPairwiseMsSsim: needs at least 2 images, got ${n}`);
  const pairs = opts.pairs ?? 1000;
  if (!Number.isInteger(pairs) || pairs < 1) throw new RangeError(`meanPairwiseMsSsim: pairs ${pairs} must be a positive integer`);
  const ctx = resolveContext(opts);
  const weights = opts.weights ?? MS_SSIM_WEIGHTS;
  if (weights.length === 0) throw new RangeError('meanPairwiseMsSsim: weights must not be empty');
  const rng = new Rng(opts.seed ?? 0);
  const len = h * w * c;
  // Map each image to [0, 255] once; images recur across pairs.
  const pixels = new Map<number, Float64Array>();
  const image = (i: number): Float64Array => {
    let px = pixels.get(i);
    if (!px) {
      px = toPixelRange(images, i * len, len);
      pixels.set(i, px);
    }
    return px;
  };
  let sum = 0;
  for (let p = 0; p < pairs; p++) {
    const i = rng.int(n);
    let j = rng.int(n - 1);
    if (j >= i) j++;
    sum += msSsimPair(image(i), image(j), h, w, c, ctx, weights);
  }
  return sum / pairs;
}
