/**
 * Trivial completions of the bottom-right corner of 2R x 2R windows, and the metrics that compare
 * any completion with the real corner: the bar a corner-completion GAN has to beat.
 *
 * Windows are NHWC Float32Arrays (values in [-1, 1]); the known corners are top-left (tl),
 * top-right (tr) and bottom-left (bl), the corner to complete is bottom-right (br).
 *
 * Baselines:
 * - `mirror-bl`: bl reflected across the vertical line between bl and br (br(y, x) = bl(y, R-1-x)),
 *   so the seam on that line is continuous;
 * - `mirror-tr`: tr reflected across the horizontal line between tr and br (br(y, x) = tr(R-1-y, x));
 * - `flat`: every pixel the mean colour of the three known corners (per image, per channel);
 * - `real-other`: the real br corner of another window (window i gets window (i+1) mod N's): the
 *   real-vs-real floor — what a perfect generator that ignores the context would score.
 *
 * Metrics (all over the br corner unless said otherwise):
 * - `l1`, `l2`: mean absolute / squared difference to the real corner (paired);
 * - `channelMeanError`: per channel, the mean over images of |mean(pred) - mean(real)|;
 * - `seam`: mean squared difference across the corner's two inner edges (between column R-1 and R
 *   of rows R..2R-1, and between row R-1 and R of columns R..2R-1) of the completed window;
 *   `seamReal` is the same on the real windows and `seamRatio` = seam / seamReal (1 = as smooth
 *   as real imagery; larger = a visible boundary);
 * - `swd`: sliced Wasserstein distance (x 1e3) of the completed corners to the real corners;
 * - `msSsim`: mean pairwise MS-SSIM among the completed corners (diversity; lower is more diverse).
 */

import { meanPairwiseMsSsim, msSsimScales } from './ms-ssim.js';
import { slicedWassersteinDistance, type ImageShape, type SwdOptions } from './swd.js';

/** Names of the baselines. */
export type BaselineName = 'mirror-bl' | 'mirror-tr' | 'flat' | 'real-other';

/** Every baseline, in report order. */
export const BASELINES: readonly BaselineName[] = ['mirror-bl', 'mirror-tr', 'flat', 'real-other'];

function checkWindows(windows: Float32Array, shape: ImageShape, who: string): void {
  const [n, h, w, c] = shape;
  if (h !== w || h % 2 !== 0) throw new RangeError(`${who}: windows must be square with an even side, got ${h}x${w}`);
  if (windows.length !== n * h * w * c) throw new RangeError(`${who}: ${windows.length} values for shape [${shape}]`);
}

/** The bottom-right corners of NHWC windows, as [N, R, R, C]. */
export function bottomRightCorners(windows: Float32Array, shape: ImageShape): Float32Array {
  checkWindows(windows, shape, 'bottomRightCorners');
  const [n, s, , c] = shape;
  const r = s / 2;
  const out = new Float32Array(n * r * r * c);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < r; y++) {
      const from = ((i * s + r + y) * s + r) * c;
      out.set(windows.subarray(from, from + r * c), ((i * r + y) * r) * c);
    }
  }
  return out;
}

/** Windows with their bottom-right corner replaced by `corners` ([N, R, R, C]). */
export function pasteBottomRight(windows: Float32Array, shape: ImageShape, corners: Float32Array): Float32Array {
  checkWindows(windows, shape, 'pasteBottomRight');
  const [n, s, , c] = shape;
  const r = s / 2;
  if (corners.length !== n * r * r * c) throw new RangeError(`pasteBottomRight: ${corners.length} corner values for ${n} corners of ${r}x${r}x${c}`);
  const out = Float32Array.from(windows);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < r; y++) {
      const to = ((i * s + r + y) * s + r) * c;
      out.set(corners.subarray(((i * r + y) * r) * c, ((i * r + y + 1) * r) * c), to);
    }
  }
  return out;
}

/** The bottom-right corners a baseline puts in each window, [N, R, R, C]. */
export function baselineCorners(name: BaselineName, windows: Float32Array, shape: ImageShape): Float32Array {
  checkWindows(windows, shape, 'baselineCorners');
  const [n, s, , c] = shape;
  const r = s / 2;
  const out = new Float32Array(n * r * r * c);
  const px = (i: number, y: number, x: number, k: number): number => windows[((i * s + y) * s + x) * c + k] as number;
  for (let i = 0; i < n; i++) {
    const mean = new Float64Array(c);
    if (name === 'flat') {
      for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) if (y < r || x < r) for (let k = 0; k < c; k++) mean[k] = (mean[k] as number) + px(i, y, x, k);
      for (let k = 0; k < c; k++) mean[k] = (mean[k] as number) / (3 * r * r);
    }
    const j = (i + 1) % n;
    for (let y = 0; y < r; y++) {
      for (let x = 0; x < r; x++) {
        for (let k = 0; k < c; k++) {
          let v: number;
          if (name === 'mirror-bl') v = px(i, r + y, r - 1 - x, k);
          else if (name === 'mirror-tr') v = px(i, r - 1 - y, r + x, k);
          else if (name === 'flat') v = mean[k] as number;
          else v = px(j, r + y, r + x, k);
          out[((i * r + y) * r + x) * c + k] = v;
        }
      }
    }
  }
  return out;
}

/** Mean squared difference across the bottom-right corner's two inner edges, per window set. */
export function seamEnergy(windows: Float32Array, shape: ImageShape): number {
  checkWindows(windows, shape, 'seamEnergy');
  const [n, s, , c] = shape;
  const r = s / 2;
  let sum = 0;
  let cnt = 0;
  for (let i = 0; i < n; i++) {
    for (let t = r; t < s; t++) {
      for (let k = 0; k < c; k++) {
        const dv = (windows[((i * s + t) * s + r) * c + k] as number) - (windows[((i * s + t) * s + r - 1) * c + k] as number);
        const dh = (windows[((i * s + r) * s + t) * c + k] as number) - (windows[((i * s + r - 1) * s + t) * c + k] as number);
        sum += dv * dv + dh * dh;
        cnt += 2;
      }
    }
  }
  return sum / cnt;
}

/** Scores of one completion set. */
export interface CompletionScores {
  /** Mean absolute error to the real corner. */
  l1: number;
  /** Mean squared error to the real corner. */
  l2: number;
  /** Per channel: mean over images of |mean(pred) - mean(real)|. */
  channelMeanError: number[];
  /** Cross-edge energy of the completed windows. */
  seam: number;
  /** Cross-edge energy of the real windows. */
  seamReal: number;
  /** seam / seamReal. */
  seamRatio: number;
  /** SWD (x 1e3) of completed corners to real corners; null when skipped. */
  swd: number | null;
  /** Mean pairwise MS-SSIM among completed corners; null when skipped or too small. */
  msSsim: number | null;
}

/** Options of {@link scoreCompletion}. */
export interface ScoreOptions {
  /** Compute SWD (default true); options passed through. */
  swd?: boolean | SwdOptions;
  /** Compute MS-SSIM diversity (default true; needs corners of at least the MS-SSIM minimum size). */
  msSsim?: boolean;
  /** Seed for SWD and MS-SSIM pairs; default 0. */
  seed?: number;
}

/**
 * Score completed bottom-right corners `pred` ([N, R, R, C]) of the real `windows` ([N, 2R, 2R, C]).
 */
export function scoreCompletion(windows: Float32Array, shape: ImageShape, pred: Float32Array, opts: ScoreOptions = {}): CompletionScores {
  const [n, s, , c] = shape;
  const r = s / 2;
  const real = bottomRightCorners(windows, shape);
  if (pred.length !== real.length) throw new RangeError(`scoreCompletion: ${pred.length} predicted values for ${n} corners of ${r}x${r}x${c}`);
  let l1 = 0;
  let l2 = 0;
  for (let k = 0; k < real.length; k++) {
    const d = (pred[k] as number) - (real[k] as number);
    l1 += Math.abs(d);
    l2 += d * d;
  }
  const per = r * r;
  const cme = new Array<number>(c).fill(0);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < c; k++) {
      let a = 0;
      let b = 0;
      for (let p = 0; p < per; p++) {
        a += pred[(i * per + p) * c + k] as number;
        b += real[(i * per + p) * c + k] as number;
      }
      cme[k] = (cme[k] as number) + Math.abs(a - b) / per / n;
    }
  }
  const seam = seamEnergy(pasteBottomRight(windows, shape, pred), shape);
  const seamReal = seamEnergy(windows, shape);
  const seed = opts.seed ?? 0;
  const cornerShape: ImageShape = [n, r, r, c];
  let swd: number | null = null;
  if (opts.swd !== false) {
    const swdOpts: SwdOptions = typeof opts.swd === 'object' ? opts.swd : {};
    swd = slicedWassersteinDistance(pred, real, cornerShape, { seed, ...swdOpts }).mean;
  }
  let msSsim: number | null = null;
  if (opts.msSsim !== false && n >= 2) {
    try {
      if (msSsimScales(r, r) >= 1) msSsim = meanPairwiseMsSsim(pred, cornerShape, { seed });
    } catch {
      msSsim = null;
    }
  }
  return { l1: l1 / real.length, l2: l2 / real.length, channelMeanError: cme, seam, seamReal, seamRatio: seamReal > 0 ? seam / seamReal : Number.NaN, swd, msSsim };
}

/** Every baseline scored on the same windows. */
export function scoreBaselines(windows: Float32Array, shape: ImageShape, opts: ScoreOptions = {}): Record<BaselineName, CompletionScores> {
  const out = {} as Record<BaselineName, CompletionScores>;
  for (const b of BASELINES) out[b] = scoreCompletion(windows, shape, baselineCorners(b, windows, shape), opts);
  return out;
}
