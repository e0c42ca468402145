/**
 * Sliced Wasserstein distance (SWD) between two image sets on a Laplacian pyramid, the image-quality
 * metric of progressive GANs (Karras et al., ICLR 2018).
 *
 * Per set: build a Laplacian pyramid of every image (5-tap binomial filter, mirror boundaries,
 * factor-2 decimation) down to `minResolution`, the coarsest level being the Gaussian residual; draw
 * `descriptorsPerImage` random `patchSize` x `patchSize` patches per image per level (a descriptor is
 * the patch's p * p * c values); normalise each level's descriptors per channel over the whole set
 * (subtract the mean, divide by the standard deviation). Per level: project both sets on
 * `dirRepeats` x `dirsPerRepeat` random unit directions, sort each projection and take the 1-D
 * Wasserstein-1 distance between the sorted sets (the mean absolute difference for equal sizes),
 * averaged over directions. Results are reported x 1e3, as ProGAN does.
 *
 * Determinism: every draw comes from {@link Rng}s derived from `seed`. Set A and set B draw their
 * patch positions from two generators seeded alike (common random numbers), so image i of A and image
 * i of B are cut at the same places: two identical sets give exactly 0, and the noise of the estimate
 * between different sets is smaller than with independent positions. The directions are shared by
 * both sets, as they must be.
 *
 * Images are NHWC Float32Arrays (any range: the per-channel normalisation makes the metric invariant
 * to a per-channel affine change of the data). Sizes: see {@link swdResolutions}; an image smaller than
 * `minResolution` gives one level (the image itself), and patches are clipped to the level's size.
 *
 * Speed: the projections (descriptors x 512 directions, most of the work) run in a small WebAssembly
 * SIMD kernel assembled at load time, summing in float32; `kernel: 'js'` selects the plain-JS kernel
 * (float64 sums; also the fallback where WebAssembly SIMD is missing). The projections are sorted by
 * radix sort on their bit patterns. Memory: both descriptor sets are held at once, n *
 * descriptorsPerImage * patchSize^2 * c * 4 bytes each (19 MiB for 256 images of 64x64x3), twice
 * with the wasm kernel's copy.
 */
import { Rng, hashSeed } from '../util/random.js';

/** NHWC shape of an image batch: [n, height, width, channels]. */
export type ImageShape = [number, number, number, number];

/** Options of {@link slicedWassersteinDistance}. */
export interface SwdOptions {
  /** Random patches (descriptors) drawn per image per pyramid level; default 128. */
  descriptorsPerImage?: number;
  /** Side of the square patches; default 7 (clipped to a level's height and width when larger). */
  patchSize?: number;
  /** Batches of random projection directions per level; default 4. */
  dirRepeats?: number;
  /** Random unit directions per batch; default 128. */
  dirsPerRepeat?: number;
  /** Smallest pyramid level side; default 16 (the full-resolution level is always kept). */
  minResolution?: number;
  /** Seed of the patch positions and the directions; default 0. */
  seed?: number;
  /** Projection kernel, 'wasm' or 'js' (same metric, float32 vs float64 sums); default 'wasm'. */
  kernel?: SwdKernel;
}

/** SWD of one pyramid level. */
export interface SwdLevel {
  /** Height of the level in pixels (64, 32, 16 for 64x64 images). */
  resolution: number;
  /** Width of the level in pixels (equal to `resolution` for square images). */
  width: number;
  /** Sliced Wasserstein distance x 1e3. */
  swd: number;
}

/** Result of {@link slicedWassersteinDistance}: finest level first. */
export interface SwdResult {
  /** One entry per pyramid level, finest first. */
  perLevel: SwdLevel[];
  /** Mean of the per-level values (x 1e3). */
  mean: number;
}

/** One level of a pyramid over a batch: NHWC data of n images of h x w x c. */
export interface PyramidLevel {
  /** NHWC values, n * h * w * c. */
  data: Float32Array;
  /** Height of the level. */
  h: number;
  /** Width of the level. */
  w: number;
}

/** Options of {@link slicedWasserstein} (the SWD of two descriptor sets). */
export interface SlicedWassersteinOptions {
  /** Batches of random directions; default 4. */
  dirRepeats?: number;
  /** Directions per batch; default 128. */
  dirsPerRepeat?: number;
  /** Source of the directions; default `new Rng(0)`. */
  rng?: Rng;
  /** Projection kernel: 'wasm' (WebAssembly SIMD, float32 sums; 'js' where unavailable) or 'js' (float64 sums); default 'wasm'. */
  kernel?: SwdKernel;
}

/** Projection kernel of the sliced Wasserstein distance; see {@link SlicedWassersteinOptions.kernel}. */
export type SwdKernel = 'wasm' | 'js';

/** Binomial taps [1, 4, 6, 4, 1] / 16; the 2-D filter is their outer product (sum 1). */
const BINOMIAL = [1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16] as const;

/** Directions projected together by the inner kernel (one register accumulator each). */
const DIR_BLOCK = 8;

/** Throw unless `data` holds an NHWC batch of `shape`. */
export function assertImages(name: string, data: Float32Array, shape: ImageShape): void {
  const [n, h, w, c] = shape;
  for (const v of shape) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name}: shape [${shape}] must hold positive integers`);
  }
  if (data.length !== n * h * w * c) {
    throw new RangeError(`${name}: ${data.length} values do not fill shape [${shape}] (${n * h * w * c})`);
  }
}

/**
 * Pyramid level sizes for an h x w image: h, h/2, ... while the next level's sides are at least
 * `minResolution` and the current sides are even. At least one level (the image itself).
 */
export function swdResolutions(h: number, w: number, minResolution = 16): Array<[number, number]> {
  const out: Array<[number, number]> = [[h, w]];
  let ch = h;
  let cw = w;
  while (ch % 2 === 0 && cw % 2 === 0 && Math.min(ch, cw) / 2 >= minResolution) {
    ch /= 2;
    cw /= 2;
    out.push([ch, cw]);
  }
  return out;
}

/** Mirror an index into [0, n) without repeating the edge sample (... 2 1 | 0 1 2 ... n-1 | n-2 ...). */
function mirror(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let j = i % period;
  if (j < 0) j += period;
  return j < n ? j : period - j;
}

/** Blur with the binomial filter and keep every second row and column: [n, h, w, c] -> [n, h/2, w/2, c]. */
function pyrDown(src: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const h2 = h / 2;
  const w2 = w / 2;
  // Filter rows at even columns only, then columns at even rows only.
  const tmp = new Float32Array(n * h * w2 * c);
  for (let img = 0; img < n; img++) {
    const base = img * h * w * c;
    const tbase = img * h * w2 * c;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w2; x++) {
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let t = 0; t < 5; t++) {
            s += BINOMIAL[t]! * src[base + (y * w + mirror(2 * x + t - 2, w)) * c + ch]!;
          }
          tmp[tbase + (y * w2 + x) * c + ch] = s;
        }
      }
    }
  }
  const out = new Float32Array(n * h2 * w2 * c);
  for (let img = 0; img < n; img++) {
    const tbase = img * h * w2 * c;
    const obase = img * h2 * w2 * c;
    for (let y = 0; y < h2; y++) {
      for (let x = 0; x < w2; x++) {
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let t = 0; t < 5; t++) {
            s += BINOMIAL[t]! * tmp[tbase + (mirror(2 * y + t - 2, h) * w2 + x) * c + ch]!;
          }
          out[obase + (y * w2 + x) * c + ch] = s;
        }
      }
    }
  }
  return out;
}

/**
 * Insert zeros between samples and blur with 4 x the binomial filter: [n, h, w, c] -> [n, 2h, 2w, c].
 * Mirroring keeps parity on an even-sized grid, so only the taps that land on a source sample count.
 */
function pyrUp(src: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const H = 2 * h;
  const W = 2 * w;
  // Upsample rows (x direction) into [n, h, W, c], then columns into [n, H, W, c]; gain 2 per axis.
  const tmp = new Float32Array(n * h * W * c);
  for (let img = 0; img < n; img++) {
    const base = img * h * w * c;
    const tbase = img * h * W * c;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < W; x++) {
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let t = 0; t < 5; t++) {
            const xs = mirror(x + t - 2, W);
            if (xs % 2 === 0) s += 2 * BINOMIAL[t]! * src[base + (y * w + xs / 2) * c + ch]!;
          }
          tmp[tbase + (y * W + x) * c + ch] = s;
        }
      }
    }
  }
  const out = new Float32Array(n * H * W * c);
  for (let img = 0; img < n; img++) {
    const tbase = img * h * W * c;
    const obase = img * H * W * c;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let t = 0; t < 5; t++) {
            const ys = mirror(y + t - 2, H);
            if (ys % 2 === 0) s += 2 * BINOMIAL[t]! * tmp[tbase + ((ys / 2) * W + x) * c + ch]!;
          }
          out[obase + (y * W + x) * c + ch] = s;
        }
      }
    }
  }
  return out;
}

/**
 * Laplacian pyramid of a batch, finest level first: level k = G_k - up(G_{k+1}), the last level is the
 * Gaussian residual G_last. Level sizes come from {@link swdResolutions}.
 */
export function laplacianPyramid(images: Float32Array, shape: ImageShape, minResolution = 16): PyramidLevel[] {
  assertImages('laplacianPyramid', images, shape);
  const [n, h, w, c] = shape;
  const sizes = swdResolutions(h, w, minResolution);
  const levels: PyramidLevel[] = [];
  let cur = images;
  for (let k = 0; k < sizes.length; k++) {
    const [lh, lw] = sizes[k]!;
    if (k === sizes.length - 1) {
      levels.push({ data: cur === images ? Float32Array.from(images) : cur, h: lh, w: lw });
      break;
    }
    const down = pyrDown(cur, n, lh, lw, c);
    const up = pyrUp(down, n, lh / 2, lw / 2, c);
    const lap = new Float32Array(cur.length);
    for (let i = 0; i < lap.length; i++) lap[i] = cur[i]! - up[i]!;
    levels.push({ data: lap, h: lh, w: lw });
    cur = down;
  }
  return levels;
}

/** Invert {@link laplacianPyramid}: G_last, then G_k = L_k + up(G_{k+1}) up to the full image. */
export function collapseLaplacianPyramid(levels: readonly PyramidLevel[], n: number, c: number): Float32Array {
  const last = levels[levels.length - 1];
  if (!last) throw new RangeError('collapseLaplacianPyramid: no levels');
  let cur: Float32Array = Float32Array.from(last.data);
  for (let k = levels.length - 2; k >= 0; k--) {
    const lvl = levels[k]!;
    const up = pyrUp(cur, n, lvl.h / 2, lvl.w / 2, c);
    for (let i = 0; i < up.length; i++) up[i] = up[i]! + lvl.data[i]!;
    cur = up;
  }
  return cur;
}

/**
 * Cut `perImage` random p x p patches from every image of a level: [n * perImage, p * p * c], each
 * patch in HWC order. Positions come from `rng`, image by image.
 */
function extractDescriptors(level: PyramidLevel, n: number, c: number, p: number, perImage: number, rng: Rng): Float32Array {
  const { data, h, w } = level;
  const dim = p * p * c;
  const out = new Float32Array(n * perImage * dim);
  const rowLen = p * c;
  let o = 0;
  for (let img = 0; img < n; img++) {
    const base = img * h * w * c;
    for (let s = 0; s < perImage; s++) {
      const y0 = rng.int(h - p + 1);
      const x0 = rng.int(w - p + 1);
      for (let y = 0; y < p; y++) {
        const start = base + ((y0 + y) * w + x0) * c;
        out.set(data.subarray(start, start + rowLen), o);
        o += rowLen;
      }
    }
  }
  return out;
}

/**
 * Normalise descriptors in place per channel: subtract the channel's mean and divide by its
 * (population) standard deviation, both over every value of that channel in the set. A channel with
 * zero spread (constant images) is only centred.
 */
function normalizePerChannel(desc: Float32Array, c: number): void {
  const sum = new Float64Array(c);
  const sumSq = new Float64Array(c);
  for (let i = 0; i < desc.length; i++) {
    const ch = i % c;
    const v = desc[i]!;
    sum[ch] = sum[ch]! + v;
    sumSq[ch] = sumSq[ch]! + v * v;
  }
  const count = desc.length / c;
  const mean = new Float64Array(c);
  const inv = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    const m = sum[ch]! / count;
    const variance = Math.max(0, sumSq[ch]! / count - m * m);
    mean[ch] = m;
    // Why 1e-12 relative: rounding leaves a tiny variance for constant channels; treat it as zero.
    inv[ch] = variance > 1e-12 * Math.max(1, m * m) ? 1 / Math.sqrt(variance) : 1;
  }
  for (let i = 0; i < desc.length; i++) {
    const ch = i % c;
    desc[i] = (desc[i]! - mean[ch]!) * inv[ch]!;
  }
}

/**
 * Project every descriptor row [rows, dim] on the directions packed as [blocks][dim][8] (zero-padded
 * past the last real one) and write the projections direction-major into `out` [blocks * 8, rows].
 */
function project(desc: Float32Array, rows: number, dim: number, packed: Float64Array, blocks: number, out: Float32Array): void {
  for (let b = 0; b < blocks; b++) {
    const woff = b * dim * DIR_BLOCK;
    const d0 = b * DIR_BLOCK;
    for (let i = 0; i < rows; i++) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let s4 = 0;
      let s5 = 0;
      let s6 = 0;
      let s7 = 0;
      let p = i * dim;
      let q = woff;
      for (let d = 0; d < dim; d++, p++, q += DIR_BLOCK) {
        const v = desc[p]!;
        s0 += v * packed[q]!;
        s1 += v * packed[q + 1]!;
        s2 += v * packed[q + 2]!;
        s3 += v * packed[q + 3]!;
        s4 += v * packed[q + 4]!;
        s5 += v * packed[q + 5]!;
        s6 += v * packed[q + 6]!;
        s7 += v * packed[q + 7]!;
      }
      const o = d0 * rows + i;
      out[o] = s0;
      out[o + rows] = s1;
      out[o + 2 * rows] = s2;
      out[o + 3 * rows] = s3;
      out[o + 4 * rows] = s4;
      out[o + 5 * rows] = s5;
      out[o + 6 * rows] = s6;
      out[o + 7 * rows] = s7;
    }
  }
}

/** Computes projections of one descriptor set (0 = a, 1 = b) into `out` [blocks * 8, rows]. */
interface Projector {
  project(which: 0 | 1, packed: Float64Array, blocks: number, out: Float32Array): void;
}

/** Append the unsigned LEB128 encoding of `v` to `bytes`. */
function leb(bytes: number[], v: number): void {
  let x = v >>> 0;
  do {
    const byte = x & 0x7f;
    x >>>= 7;
    bytes.push(x !== 0 ? byte | 0x80 : byte);
  } while (x !== 0);
}

/** A wasm section: id, byte length, content. */
function section(id: number, content: number[]): number[] {
  const out = [id];
  leb(out, content.length);
  return out.concat(content);
}

/**
 * Bytes of a WebAssembly module (SIMD) exporting `mem` and
 * `proj(desc, rows, dim, w, out)`: for every row i of the f32 matrix at `desc` [rows, dim], the 8 dot
 * products with the f32 directions at `w` [dim][8], written to `out` [rows][8]. Assembled here by hand
 * (opcodes from the WebAssembly core and SIMD specifications) to avoid a build step.
 */
function projectionModuleBytes(): Uint8Array {
  const I32 = 0x7f;
  const V128 = 0x7b;
  const get = (i: number): number[] => [0x20, i];
  const set = (i: number): number[] => [0x21, i];
  const tee = (i: number): number[] => [0x22, i];
  const i32const = (v: number): number[] => {
    const b = [0x41];
    leb(b, v); // small non-negative constants only: unsigned LEB equals signed LEB below 64
    return b;
  };
  const ADD = [0x6a];
  const SHL = [0x74];
  const NE = [0x47];
  const EQZ = [0x45];
  const simd = (op: number, ...rest: number[]): number[] => {
    const b = [0xfd];
    leb(b, op);
    return b.concat(rest);
  };
  const v128load = (offset: number): number[] => simd(0x00, 2, offset);
  const v128store = (offset: number): number[] => simd(0x0b, 2, offset);
  const load32Splat = simd(0x09, 2, 0);
  const zero = simd(0x0c, ...new Array<number>(16).fill(0));
  const f32x4Add = simd(0xe4);
  const f32x4Mul = simd(0xe6);
  // Params: 0 desc, 1 rows, 2 dim, 3 w, 4 out. Locals: 5 i, 6 p, 7 q, 8 end (i32); 9 acc0, 10 acc1, 11 v (v128).
  const code = [
    ...[0x02, 0x40], // block
    ...get(1), ...EQZ, ...[0x0d, 0], // rows == 0: done
    ...get(0), ...set(6),
    ...i32const(0), ...set(5),
    ...[0x03, 0x40], // loop over rows
    ...zero, ...set(9),
    ...zero, ...set(10),
    ...get(3), ...set(7),
    ...get(6), ...get(2), ...i32const(2), ...SHL, ...ADD, ...set(8),
    ...[0x03, 0x40], // loop over the descriptor's values
    ...get(6), ...load32Splat, ...set(11),
    ...get(9), ...get(11), ...get(7), ...v128load(0), ...f32x4Mul, ...f32x4Add, ...set(9),
    ...get(10), ...get(11), ...get(7), ...v128load(16), ...f32x4Mul, ...f32x4Add, ...set(10),
    ...get(7), ...i32const(32), ...ADD, ...set(7),
    ...get(6), ...i32const(4), ...ADD, ...tee(6), ...get(8), ...NE, ...[0x0d, 0],
    0x0b, // end loop over values
    ...get(4), ...get(9), ...v128store(0),
    ...get(4), ...get(10), ...v128store(16),
    ...get(4), ...i32const(32), ...ADD, ...set(4),
    ...get(5), ...i32const(1), ...ADD, ...tee(5), ...get(1), ...NE, ...[0x0d, 0],
    0x0b, // end loop over rows
    0x0b, // end block
    0x0b, // end function
  ];
  const body = [2, 4, I32, 3, V128, ...code];
  const funcBody: number[] = [];
  leb(funcBody, body.length);
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 5, I32, I32, I32, I32, I32, 0]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x00, 1]),
    ...section(7, [2, 4, ...'proj'.split('').map((ch) => ch.charCodeAt(0)), 0x00, 0, 3, ...'mem'.split('').map((ch) => ch.charCodeAt(0)), 0x02, 0]),
    ...section(10, [1, ...funcBody, ...body]),
  ];
  return Uint8Array.from(bytes);
}

/** The slice of the WebAssembly JS API used here (the project's TypeScript libs do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
  Memory: abstract new (...args: never[]) => WasmMemory;
}

/** The runtime's WebAssembly object, if any. */
const wasmApi: WasmApi | undefined = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

/** The compiled projection module, or null where WebAssembly SIMD is unavailable; built on first use. */
let projectionModule: object | null | undefined;

function getProjectionModule(): object | null {
  if (projectionModule === undefined) {
    const bytes = projectionModuleBytes();
    projectionModule = wasmApi && wasmApi.validate(bytes) ? new wasmApi.Module(bytes) : null;
  }
  return projectionModule;
}

/** Whether the WebAssembly SIMD projection kernel is available in this runtime. */
export function wasmSwdKernelAvailable(): boolean {
  return getProjectionModule() !== null;
}

/** Plain-JS projector (double accumulation). */
function jsProjector(a: Float32Array, b: Float32Array, dim: number): Projector {
  return {
    project(which, packed, blocks, out) {
      const desc = which === 0 ? a : b;
      project(desc, desc.length / dim, dim, packed, blocks, out);
    },
  };
}

/** WebAssembly SIMD projector (float32 accumulation): both sets copied once into its own memory. */
function wasmProjector(api: WasmApi, mod: object, a: Float32Array, b: Float32Array, dim: number): Projector {
  const instance = new api.Instance(mod, {});
  const mem = instance.exports['mem'];
  const proj = instance.exports['proj'];
  if (!(mem instanceof api.Memory) || typeof proj !== 'function') throw new Error('swd: malformed projection module');
  const align = (x: number): number => Math.ceil(x / 16) * 16;
  const rowsMax = Math.max(a.length, b.length) / dim;
  const offA = 0;
  const offB = align(offA + a.byteLength);
  const offW = align(offB + b.byteLength);
  const offOut = align(offW + dim * DIR_BLOCK * 4);
  const needed = offOut + rowsMax * DIR_BLOCK * 4;
  const pages = Math.ceil(needed / 65536) - mem.buffer.byteLength / 65536;
  if (pages > 0) mem.grow(pages);
  const heap = new Float32Array(mem.buffer);
  heap.set(a, offA / 4);
  heap.set(b, offB / 4);
  const wView = heap.subarray(offW / 4, offW / 4 + dim * DIR_BLOCK);
  return {
    project(which, packed, blocks, out) {
      const rows = (which === 0 ? a.length : b.length) / dim;
      const outView = heap.subarray(offOut / 4, offOut / 4 + rows * DIR_BLOCK);
      for (let blk = 0; blk < blocks; blk++) {
        wView.set(packed.subarray(blk * dim * DIR_BLOCK, (blk + 1) * dim * DIR_BLOCK));
        proj(which === 0 ? offA : offB, rows, dim, offW, offOut);
        // Transpose [rows][8] into direction-major rows of `out`.
        for (let j = 0; j < DIR_BLOCK; j++) {
          const o = (blk * DIR_BLOCK + j) * rows;
          for (let i = 0; i < rows; i++) out[o + i] = outView[i * DIR_BLOCK + j]!;
        }
      }
    },
  };
}

/**
 * Sort a Float32Array ascending in place by LSD radix sort on its bit patterns (three 11-bit digits,
 * histograms of all three gathered in one pass); `scratch` must be at least as long and `counts`
 * hold 3 * 2048 entries. Much faster than `TypedArray.prototype.sort` at these sizes. NaNs are not
 * expected.
 */
function radixSortFloat32(values: Float32Array, scratch: Int32Array, counts: Int32Array): void {
  const n = values.length;
  const keys = new Int32Array(values.buffer, values.byteOffset, n);
  const tmp = scratch.subarray(0, n);
  // Map float bits to keys whose unsigned order is the float order (flip negatives, set the sign bit
  // of positives), counting the three digits on the way.
  counts.fill(0);
  for (let i = 0; i < n; i++) {
    const k = keys[i]!;
    const m = k < 0 ? ~k : k ^ -0x80000000;
    keys[i] = m;
    counts[m & 2047]!++;
    counts[2048 + ((m >>> 11) & 2047)]!++;
    counts[4096 + (m >>> 22)]!++;
  }
  // Turn each histogram into start offsets.
  for (let d = 0; d < 3; d++) {
    let total = 0;
    for (let b = d * 2048; b < (d + 1) * 2048; b++) {
      const c = counts[b]!;
      counts[b] = total;
      total += c;
    }
  }
  // Scatter by digit 0 (keys -> tmp), digit 1 (tmp -> keys), digit 2 (keys -> tmp).
  for (let i = 0; i < n; i++) {
    const m = keys[i]!;
    tmp[counts[m & 2047]!++] = m;
  }
  for (let i = 0; i < n; i++) {
    const m = tmp[i]!;
    keys[counts[2048 + ((m >>> 11) & 2047)]!++] = m;
  }
  for (let i = 0; i < n; i++) {
    const m = keys[i]!;
    tmp[counts[4096 + (m >>> 22)]!++] = m;
  }
  // Copy back, undoing the key mapping.
  for (let i = 0; i < n; i++) {
    const m = tmp[i]!;
    keys[i] = m < 0 ? m ^ -0x80000000 : ~m;
  }
}

/**
 * Wasserstein-1 distance between two 1-D empirical distributions given sorted: the integral of
 * |F_a^-1(t) - F_b^-1(t)| over t in [0, 1]; for equal sizes, the mean of |a_i - b_i|.
 */
export function wasserstein1Sorted(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) throw new RangeError('wasserstein1Sorted: empty input');
  let s = 0;
  if (n === m) {
    for (let i = 0; i < n; i++) s += Math.abs(a[i]! - b[i]!);
    return s / n;
  }
  // Walk the merged quantile breakpoints i/n and j/m.
  let i = 0;
  let j = 0;
  let t = 0;
  while (i < n && j < m) {
    const ti = (i + 1) / n;
    const tj = (j + 1) / m;
    const next = Math.min(ti, tj);
    s += (next - t) * Math.abs(a[i]! - b[j]!);
    t = next;
    if (ti <= tj) i++;
    if (tj <= ti) j++;
  }
  return s;
}

/**
 * Sliced Wasserstein distance between two descriptor sets a [na, dim] and b [nb, dim] (row-major):
 * the mean over `dirRepeats` x `dirsPerRepeat` random unit directions of the 1-D Wasserstein-1
 * distance between the projected sets. Not scaled (the pyramid metric multiplies by 1e3).
 */
export function slicedWasserstein(a: Float32Array, b: Float32Array, dim: number, opts: SlicedWassersteinOptions = {}): number {
  const dirRepeats = opts.dirRepeats ?? 4;
  const dirsPerRepeat = opts.dirsPerRepeat ?? 128;
  const rng = opts.rng ?? new Rng(0);
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`slicedWasserstein: dim ${dim} must be a positive integer`);
  if (a.length % dim !== 0 || b.length % dim !== 0 || a.length === 0 || b.length === 0) {
    throw new RangeError(`slicedWasserstein: ${a.length} and ${b.length} values are not non-empty multiples of dim ${dim}`);
  }
  if (!(dirRepeats >= 1 && dirsPerRepeat >= 1)) throw new RangeError('slicedWasserstein: dirRepeats and dirsPerRepeat must be >= 1');
  const na = a.length / dim;
  const nb = b.length / dim;
  const k = dirsPerRepeat;
  const blocks = Math.ceil(k / DIR_BLOCK);
  const packed = new Float64Array(blocks * dim * DIR_BLOCK);
  const projA = new Float32Array(blocks * DIR_BLOCK * na);
  const projB = new Float32Array(blocks * DIR_BLOCK * nb);
  const scratch = new Int32Array(Math.max(na, nb));
  const counts = new Int32Array(3 * 2048);
  const mod = opts.kernel === 'js' ? null : getProjectionModule();
  let projector = jsProjector(a, b, dim);
  if (mod && wasmApi) {
    try {
      projector = wasmProjector(wasmApi, mod, a, b, dim);
    } catch (err) {
      // Why: a wasm32 memory stops at 4 GiB; huge descriptor sets fall back to the JS kernel.
      if (!(err instanceof RangeError)) throw err;
    }
  }
  let total = 0;
  for (let r = 0; r < dirRepeats; r++) {
    // Draw k Gaussian directions, normalise each to unit length, pack them for the kernel.
    packed.fill(0);
    for (let j = 0; j < k; j++) {
      const dir = new Float64Array(dim);
      let norm = 0;
      for (let d = 0; d < dim; d++) {
        const v = rng.normal();
        dir[d] = v;
        norm += v * v;
      }
      const inv = 1 / Math.sqrt(norm);
      const base = Math.floor(j / DIR_BLOCK) * dim * DIR_BLOCK + (j % DIR_BLOCK);
      for (let d = 0; d < dim; d++) packed[base + d * DIR_BLOCK] = dir[d]! * inv;
    }
    // Project both sets, sort every projection, accumulate the 1-D distances.
    projector.project(0, packed, blocks, projA);
    projector.project(1, packed, blocks, projB);
    for (let j = 0; j < k; j++) {
      const pa = projA.subarray(j * na, (j + 1) * na);
      const pb = projB.subarray(j * nb, (j + 1) * nb);
      radixSortFloat32(pa, scratch, counts);
      radixSortFloat32(pb, scratch, counts);
      total += wasserstein1Sorted(pa, pb);
    }
  }
  return total / (dirRepeats * k);
}

/**
 * ProGAN's sliced Wasserstein distance between image sets `a` and `b` (NHWC, same h, w, c; the
 * number of images may differ), per Laplacian-pyramid level and averaged, x 1e3. Lower is closer.
 * See the module comment for the procedure and its determinism.
 */
export function slicedWassersteinDistance(
  a: Float32Array,
  b: Float32Array,
  shape: ImageShape,
  opts: SwdOptions = {},
  shapeB?: ImageShape,
): SwdResult {
  const sb: ImageShape = shapeB ?? shape;
  assertImages('slicedWassersteinDistance (a)', a, shape);
  assertImages('slicedWassersteinDistance (b)', b, sb);
  const [na, h, w, c] = shape;
  const nb = sb[0];
  if (sb[1] !== h || sb[2] !== w || sb[3] !== c) {
    throw new RangeError(`slicedWassersteinDistance: image sizes differ: [${shape}] vs [${sb}]`);
  }
  const perImage = opts.descriptorsPerImage ?? 128;
  const patchSize = opts.patchSize ?? 7;
  const minResolution = opts.minResolution ?? 16;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(perImage) || perImage < 1) throw new RangeError('slicedWassersteinDistance: descriptorsPerImage must be >= 1');
  if (!Number.isInteger(patchSize) || patchSize < 1) throw new RangeError('slicedWassersteinDistance: patchSize must be >= 1');

  // Build both pyramids; A and B cut patches with identically seeded position streams.
  const pyrA = laplacianPyramid(a, shape, minResolution);
  const pyrB = laplacianPyramid(b, sb, minResolution);
  const posA = new Rng(hashSeed(seed, 'swd-patches'));
  const posB = new Rng(hashSeed(seed, 'swd-patches'));
  const dirs = new Rng(hashSeed(seed, 'swd-directions'));
  const perLevel: SwdLevel[] = [];
  for (let k = 0; k < pyrA.length; k++) {
    const la = pyrA[k]!;
    const lb = pyrB[k]!;
    const p = Math.min(patchSize, la.h, la.w);
    const descA = extractDescriptors(la, na, c, p, perImage, posA);
    const descB = extractDescriptors(lb, nb, c, p, perImage, posB);
    normalizePerChannel(descA, c);
    normalizePerChannel(descB, c);
    const swd = slicedWasserstein(descA, descB, p * p * c, {
      dirRepeats: opts.dirRepeats ?? 4,
      dirsPerRepeat: opts.dirsPerRepeat ?? 128,
      rng: dirs,
      kernel: opts.kernel ?? 'wasm',
    });
    perLevel.push({ resolution: la.h, width: la.w, swd: swd * 1e3 });
  }
  const mean = perLevel.reduce((s, l) => s + l.swd, 0) / perLevel.length;
  return { perLevel, mean };
}
