/**
 * Scenes and windows: large rasters (GeoTIFF or PNG/JPEG) sampled as square windows at native
 * resolution, for training and held-out evaluation on real satellite imagery.
 *
 * - Listing: folders are walked by real path, so symlink loops and duplicate files are detected;
 *   every skipped entry (dangling link, FIFO/socket/device, unreadable, non-UTF-8 name, loop,
 *   duplicate) is counted and named with the reason.
 * - Windows: random per epoch (window `index` of `epoch` depends only on (seed, epoch, index), so a
 *   resumed run draws the same windows), or a fixed grid. An optional `scale` reads
 *   `round(window / scale)` source pixels per window side and resamples (area average) to the window,
 *   for a chosen ground resolution. Images smaller than what a window needs are rejected with a
 *   message, or padded (as invalid pixels) when asked; never stretched.
 * - Windows mostly invalid (nodata / NaN / alpha 0) or constant are skipped and counted.
 * - Memory: regions are decoded per window (geotiff reads only the tiles/strips touched; sharp
 *   extracts in its streaming pipeline); whole scenes are cached only while the cache stays under
 *   `cacheBytes` (default 256 MiB), least recently used first out.
 * - A seeded split by scene ({@link splitScenes}); a separate evaluation folder is simply another
 *   {@link openScenes} call given the training set's mapping.
 */

import { constants as fsc, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { silentLogger, type Logger } from '../util/logger.js';
import { hashSeed, Rng } from '../util/random.js';
import {
  applyMapping,
  channelSamples,
  defaultMappingSpec,
  isCompleteMapping,
  mappedSpread,
  mappingFromSamples,
  openRaster,
  reasonOf,
  UnusableImage,
  validateMapping,
  type MappingSpec,
  type RasterHeader,
  type RasterOptions,
  type RasterRegion,
  type RasterSource,
  type ValueMapping,
} from './raster.js';

/** File extensions read as scenes by default. */
export const SCENE_EXTENSIONS: readonly string[] = ['tif', 'tiff', 'png', 'jpg', 'jpeg', 'webp'];

/** A folder entry that was not used, and why. */
export interface SkippedEntry {
  /** The path as found (non-UTF-8 bytes shown as \xNN). */
  path: string;
  /** What is wrong, e.g. `dangling symlink`, `permission denied`, `name is not valid UTF-8`. */
  reason: string;
}

/** Result of {@link listSceneFiles}. */
export interface SceneListing {
  /** Usable files (paths under the folder), sorted. */
  files: string[];
  /** Their real paths (same order), the scenes' identity. */
  realPaths: string[];
  /** Entries not used, with reasons. */
  skipped: SkippedEntry[];
  /** Files with other extensions (not counted as skipped). */
  ignored: string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function showName(buf: Buffer): string {
  let s = '';
  for (const b of buf) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return s;
}

/**
 * List the raster files under `dir` (recursively by default), following symlinks once by real
 * path. Nothing is dropped silently: see {@link SceneListing.skipped}.
 *
 * @throws Error naming `dir` when it does not exist or is not a folder.
 */
export async function listSceneFiles(dir: string, opts: { recursive?: boolean; extensions?: readonly string[] } = {}): Promise<SceneListing> {
  const exts = new Set((opts.extensions ?? SCENE_EXTENSIONS).map((e) => e.replace(/^\./, '').toLowerCase()));
  const recursive = opts.recursive ?? true;
  const st = await fs.stat(dir).catch(() => null);
  if (st === null) throw new Error(`scene folder ${dir} does not exist`);
  if (!st.isDirectory()) throw new Error(`scene folder ${dir} is not a folder`);
  const seenDirs = new Set<string>();
  const seenFiles = new Map<string, string>();
  const files: Array<{ p: string; real: string }> = [];
  const skipped: SkippedEntry[] = [];
  const ignored: string[] = [];

  const walk = async (abs: string): Promise<void> => {
    const real = await fs.realpath(abs);
    if (seenDirs.has(real)) {
      skipped.push({ path: abs, reason: `folder already visited as ${real} (a symlink loop or a second link to it); skipped` });
      return;
    }
    seenDirs.add(real);
    let entries: Buffer[];
    try {
      entries = await fs.readdir(abs, { encoding: 'buffer' });
    } catch (err) {
      skipped.push({ path: abs, reason: `folder cannot be listed: ${reasonOf(err)}` });
      return;
    }
    entries.sort(Buffer.compare);
    for (const nameBuf of entries) {
      let name: string;
      try {
        name = utf8.decode(nameBuf);
      } catch {
        skipped.push({ path: path.join(abs, showName(nameBuf)), reason: 'name is not valid UTF-8 (bytes shown as \\xNN); rename the file to a UTF-8 name' });
        continue;
      }
      const p = path.join(abs, name);
      const lst = await fs.lstat(p).catch(() => null);
      if (lst === null) {
        skipped.push({ path: p, reason: 'vanished while listing' });
        continue;
      }
      let s = lst;
      if (lst.isSymbolicLink()) {
        try {
          s = await fs.stat(p);
        } catch (err) {
          const link = await fs.readlink(p).catch(() => '?');
          const code = (err as { code?: string }).code;
          skipped.push({ path: p, reason: code === 'ELOOP' ? `symlink loop (-> ${link})` : code === 'ENOENT' ? `dangling symlink (-> ${link} does not exist)` : `symlink cannot be followed: ${reasonOf(err)}` });
          continue;
        }
      }
      if (s.isDirectory()) {
        if (recursive) await walk(p);
        continue;
      }
      if (!s.isFile()) {
        const kind = s.isFIFO() ? 'a FIFO (named pipe)' : s.isSocket() ? 'a socket' : s.isCharacterDevice() || s.isBlockDevice() ? 'a device' : 'not a regular file';
        skipped.push({ path: p, reason: `${kind}, not an image file` });
        continue;
      }
      const ext = path.extname(name).slice(1).toLowerCase();
      if (!exts.has(ext)) {
        ignored.push(p);
        continue;
      }
      const denied = await fs.access(p, fsc.R_OK).then(
        () => null,
        (e: unknown) => reasonOf(e),
      );
      if (denied !== null) {
        skipped.push({ path: p, reason: denied });
        continue;
      }
      const real = await fs.realpath(p);
      const first = seenFiles.get(real);
      if (first !== undefined) {
        skipped.push({ path: p, reason: `duplicate of ${first} (same real path ${real}); skipped` });
        continue;
      }
      seenFiles.set(real, p);
      files.push({ p, real });
    }
  };
  await walk(dir);
  files.sort((a, b) => (a.p < b.p ? -1 : a.p > b.p ? 1 : 0));
  return { files: files.map((f) => f.p), realPaths: files.map((f) => f.real), skipped, ignored };
}

/**
 * Split scenes into training and held-out sets by a seeded hash of each scene's identity (its real
 * path, or name), so every window of a scene is on one side only, and the split of a scene does
 * not change when others are added.
 *
 * @param evalFraction fraction of scenes (groups) held out (at least one when there are two or more).
 * @param group optional key putting scenes together (e.g. the before/after images of one place, two
 *   dates of one tile): scenes of one group always land on the same side.
 */
export function splitScenes<T extends string>(scenes: readonly T[], evalFraction: number, seed: number, group?: (scene: T) => string): { train: T[]; held: T[] } {
  if (!(evalFraction >= 0 && evalFraction < 1)) throw new RangeError(`splitScenes: evalFraction must be in [0, 1), got ${evalFraction}`);
  const keyOf = group ?? ((s: T): string => s);
  const groups = [...new Set(scenes.map(keyOf))];
  const keyed = groups.map((g) => ({ g, k: hashSeed(seed, 'scene-split', g) })).sort((a, b) => a.k - b.k || (a.g < b.g ? -1 : 1));
  let nHeld = Math.round(evalFraction * groups.length);
  if (evalFraction > 0 && nHeld === 0 && groups.length >= 2) nHeld = 1;
  const heldGroups = new Set(keyed.slice(0, nHeld).map((x) => x.g));
  const held = new Set(scenes.filter((s) => heldGroups.has(keyOf(s))));
  return { train: scenes.filter((s) => !held.has(s)), held: scenes.filter((s) => held.has(s)) };
}

/** Options of {@link openScenes}. */
export interface SceneOptions extends RasterOptions {
  /** Window side in pixels (2R for corner side R). */
  window: number;
  /** Source pixels per window pixel = 1 / scale: `scale` 0.5 reads 2x the window and averages down. Default 1 (native). */
  scale?: number;
  /** Images smaller than a window: 'reject' (listed in `skipped`) or 'pad' with invalid pixels; default 'reject'. */
  smallImages?: 'reject' | 'pad';
  /** Value mapping, or a spec computed once over the scenes (default: fixed 0..255 for uint8, 2-98 % percentiles otherwise). */
  mapping?: MappingSpec;
  /** Windows with more than this fraction of invalid pixels are skipped; default 0.25. */
  maxInvalidFraction?: number;
  /** Windows whose mapped values have a standard deviation below this are skipped as constant; default 0.01. */
  minStd?: number;
  /** Cache budget for whole decoded scenes, in bytes; default 256 MiB. Larger scenes are read per window. */
  cacheBytes?: number;
  /** Source windows sampled per scene to compute percentile mappings; default 16. */
  statsWindowsPerScene?: number;
  /** Mapped spread (0..1 of the [-1, 1] range) under which a scene is named in the low-range warning; default 0.15. */
  lowRangeSpread?: number;
  /** Where warnings go. */
  logger?: Logger;
}

/** One window. */
export interface SceneWindow {
  /** HWC values in [-1, 1] (invalid pixels -1), window x window x channels. */
  data: Float32Array;
  /** 1 where valid. */
  valid: Uint8Array;
  /** Index of the scene in {@link SceneSet.files}. */
  scene: number;
  /** Top-left corner in source pixels. */
  x: number;
  /** Top-left corner in source pixels. */
  y: number;
}

/** Counters of a {@link SceneSet}. */
export interface SceneCounters {
  /** Windows returned. */
  windows: number;
  /** Windows skipped because mostly invalid. */
  skippedInvalid: number;
  /** Windows skipped because constant. */
  skippedConstant: number;
}

/** Scenes opened for window sampling. */
export interface SceneSet {
  /** Usable scene files. */
  readonly files: readonly string[];
  /** Their headers. */
  readonly headers: readonly RasterHeader[];
  /** Entries and files not used, with reasons. */
  readonly skipped: readonly SkippedEntry[];
  /** Channels of every window. */
  readonly channels: number;
  /** Window side. */
  readonly window: number;
  /** The value mapping (store it; pass it to the evaluation set and to completion). */
  readonly mapping: ValueMapping;
  /** Scenes whose mapped values use little of the range. */
  readonly lowRange: readonly string[];
  /** Window counters so far. */
  readonly counters: Readonly<SceneCounters>;
  /** Random window `index` of `epoch`: depends only on (seed, epoch, index). Null if 64 draws were all skipped. */
  randomWindow(seed: number, epoch: number, index: number): Promise<SceneWindow | null>;
  /** Number of fixed-grid windows (stride = window, in source pixels). */
  gridSize(): number;
  /** Grid window `i` (row-major per scene, scenes in order); null when skipped (counted). */
  gridWindow(i: number): Promise<SceneWindow | null>;
  /** Up to `count` usable grid windows, evenly spread over the grid (deterministic). */
  gridWindows(count?: number): Promise<SceneWindow[]>;
  /** Release files. */
  close(): Promise<void>;
}

/**
 * Open the scenes of `dirOrFiles` (a folder, or a list of files, e.g. one side of
 * {@link splitScenes}) for window sampling, computing the value mapping once when it is a spec.
 *
 * @throws Error when no scene is usable (every reason listed), or a given mapping does not fit.
 */
export async function openScenes(dirOrFiles: string | readonly string[], opts: SceneOptions): Promise<SceneSet> {
  const { window } = opts;
  if (!Number.isInteger(window) || window < 2) throw new RangeError(`openScenes: window must be an integer >= 2, got ${window}`);
  const scale = opts.scale ?? 1;
  if (!(scale > 0 && scale <= 1)) throw new RangeError(`openScenes: scale must be in (0, 1] (1 = native resolution, 0.5 = half), got ${scale}`);
  const logger = opts.logger ?? silentLogger();
  const listing =
    typeof dirOrFiles === 'string' ? await listSceneFiles(dirOrFiles) : { files: [...dirOrFiles], realPaths: [...dirOrFiles], skipped: [] as SkippedEntry[], ignored: [] };
  const skipped: SkippedEntry[] = [...listing.skipped];
  const src = Math.round(window / scale);
  const sources: RasterSource[] = [];
  const files: string[] = [];
  for (const file of listing.files) {
    let s: RasterSource;
    try {
      s = await openRaster(file, opts);
    } catch (err) {
      skipped.push({ path: file, reason: err instanceof UnusableImage ? err.message : reasonOf(err) });
      continue;
    }
    const { width, height } = s.header;
    if ((width < src || height < src) && (opts.smallImages ?? 'reject') === 'reject') {
      skipped.push({
        path: file,
        reason: `is ${width}x${height}, smaller than the ${src}x${src} source pixels a ${window}x${window} window needs${scale !== 1 ? ` at scale ${scale}` : ''}; use larger images, a smaller scale, or smallImages: 'pad'`,
      });
      await s.close();
      continue;
    }
    sources.push(s);
    files.push(file);
  }
  const where = typeof dirOrFiles === 'string' ? dirOrFiles : `${dirOrFiles.length} files`;
  for (const e of skipped) logger.warn({ file: e.path, reason: e.reason }, `skipping ${e.path}: ${e.reason}`);
  if (sources.length === 0) {
    throw new Error(`scenes in ${where}: none usable${skipped.length ? `:\n${skipped.map((e) => `  ${e.path}: ${e.reason}`).join('\n')}` : ' (no image files)'}`);
  }
  const channels = (sources[0] as RasterSource).channels;
  const bad = sources.find((s) => s.channels !== channels);
  if (bad) throw new Error(`scenes in ${where}: ${bad.header.file} gives ${bad.channels} channels where ${files[0]} gives ${channels}; choose bands/channels so all match`);

  const set = new Scenes(files, sources, skipped, channels, window, src, opts);
  await set.init(opts.mapping ?? defaultMappingSpec((sources[0] as RasterSource).header.sampleType, channels), opts.statsWindowsPerScene ?? 16, opts.lowRangeSpread ?? 0.15);
  if (set.lowRange.length > 0) {
    logger.warn(
      { files: set.lowRange, mapping: set.mapping },
      `${set.lowRange.length} scene(s) use little of the value range after mapping (${set.mapping.kind}); check the mapping or bit depth: ${set.lowRange.join(', ')}`,
    );
  }
  logger.info({ scenes: files.length, skipped: skipped.length, channels, window, scale, mapping: set.mapping }, 'scenes opened');
  return set;
}

class Scenes implements SceneSet {
  readonly headers: RasterHeader[];
  mapping!: ValueMapping;
  lowRange: string[] = [];
  readonly counters: SceneCounters = { windows: 0, skippedInvalid: 0, skippedConstant: 0 };
  private readonly cache = new Map<number, RasterRegion>();
  private cacheUsed = 0;
  private readonly grid: Array<{ scene: number; nx: number; ny: number; start: number }> = [];
  private gridTotal = 0;
  private readonly weights: number[];

  constructor(
    readonly files: string[],
    private readonly sources: RasterSource[],
    readonly skipped: SkippedEntry[],
    readonly channels: number,
    readonly window: number,
    private readonly src: number,
    private readonly opts: SceneOptions,
  ) {
    this.headers = sources.map((s) => s.header);
    let start = 0;
    const w: number[] = [];
    this.headers.forEach((h, scene) => {
      const nx = Math.max(1, Math.floor(h.width / src));
      const ny = Math.max(1, Math.floor(h.height / src));
      this.grid.push({ scene, nx, ny, start });
      start += nx * ny;
      w.push(Math.max(1, h.width - src + 1) * Math.max(1, h.height - src + 1));
    });
    this.gridTotal = start;
    let acc = 0;
    this.weights = w.map((v) => (acc += v));
  }

  async init(spec: MappingSpec, perScene: number, lowSpread: number): Promise<void> {
    const samples: number[][] = Array.from({ length: this.channels }, () => []);
    const perFile: Array<{ raw: RasterRegion[] }> = [];
    const rng = new Rng(hashSeed('scene-stats', this.files.length));
    // Sample source windows of every scene (bounded memory); used for percentiles and the range check.
    for (let s = 0; s < this.sources.length; s++) {
      const h = this.headers[s] as RasterHeader;
      const side = Math.min(this.src, h.width, h.height);
      const regs: RasterRegion[] = [];
      for (let k = 0; k < perScene; k++) {
        const x = rng.int(h.width - side + 1);
        const y = rng.int(h.height - side + 1);
        const reg = await this.readSource(s, x, y, side, side);
        regs.push(reg);
        if (!isCompleteMapping(spec)) channelSamples(reg, spec, samples);
      }
      perFile.push({ raw: regs });
    }
    if (isCompleteMapping(spec)) this.mapping = validateMapping(spec, this.channels);
    else {
      // Keep at most 2^20 samples per channel for the sort.
      for (let c = 0; c < samples.length; c++) {
        const a = samples[c] as number[];
        if (a.length > 1 << 20) {
          const step = a.length / (1 << 20);
          samples[c] = Array.from({ length: 1 << 20 }, (_, i) => a[Math.floor(i * step)] as number);
        }
      }
      this.mapping = mappingFromSamples(spec, samples);
    }
    perFile.forEach((f, s) => {
      let spread = 0;
      let n = 0;
      for (const reg of f.raw) {
        const valid = Uint8Array.from(reg.valid);
        const mapped = applyMapping(reg.data, this.channels, this.mapping, valid);
        if (valid.some((v) => v !== 0)) {
          spread += mappedSpread(mapped, this.channels, valid);
          n++;
        }
      }
      if (n === 0 || spread / n < lowSpread) this.lowRange.push(this.files[s] as string);
    });
  }

  /** Raw source region, through the whole-scene cache when the scene fits it. */
  private async readSource(s: number, x: number, y: number, w: number, h: number): Promise<RasterRegion> {
    const hd = this.headers[s] as RasterHeader;
    const bytes = hd.width * hd.height * (this.channels * 4 + 1);
    const budget = this.opts.cacheBytes ?? 256 * 2 ** 20;
    if (bytes > budget) return (this.sources[s] as RasterSource).read(x, y, w, h);
    let whole = this.cache.get(s);
    if (whole) {
      this.cache.delete(s);
      this.cache.set(s, whole);
    } else {
      while (this.cacheUsed + bytes > budget && this.cache.size > 0) {
        const [k, r] = this.cache.entries().next().value as [number, RasterRegion];
        this.cache.delete(k);
        this.cacheUsed -= r.data.length * 4 + r.valid.length;
      }
      whole = await (this.sources[s] as RasterSource).read(0, 0, hd.width, hd.height);
      this.cache.set(s, whole);
      this.cacheUsed += bytes;
    }
    const c = this.channels;
    const data = new Float32Array(w * h * c);
    const valid = new Uint8Array(w * h);
    for (let r = 0; r < h; r++) {
      const from = ((y + r) * hd.width + x) * c;
      data.set(whole.data.subarray(from, from + w * c), r * w * c);
      valid.set(whole.valid.subarray((y + r) * hd.width + x, (y + r) * hd.width + x + w), r * w);
    }
    return { width: w, height: h, channels: c, data, valid };
  }

  /** The window at source (x, y) of scene s (padding with invalid pixels where the scene ends); null when skipped. */
  private async windowAt(s: number, x: number, y: number): Promise<SceneWindow | null> {
    const hd = this.headers[s] as RasterHeader;
    const src = this.src;
    const c = this.channels;
    const rw = Math.min(src, hd.width - x);
    const rh = Math.min(src, hd.height - y);
    const reg = await this.readSource(s, x, y, rw, rh);
    let raw = reg.data;
    let valid = reg.valid;
    if (rw !== src || rh !== src) {
      raw = new Float32Array(src * src * c);
      valid = new Uint8Array(src * src);
      for (let r = 0; r < rh; r++) {
        raw.set(reg.data.subarray(r * rw * c, (r + 1) * rw * c), r * src * c);
        valid.set(reg.valid.subarray(r * rw, (r + 1) * rw), r * src);
      }
    }
    let mapped = applyMapping(raw, c, this.mapping, valid);
    if (src !== this.window) ({ data: mapped, valid } = areaResample(mapped, valid, src, this.window, c));
    const n = this.window * this.window;
    let bad = 0;
    for (let p = 0; p < n; p++) if (valid[p] === 0) bad++;
    if (bad > (this.opts.maxInvalidFraction ?? 0.25) * n) {
      this.counters.skippedInvalid++;
      return null;
    }
    let sum = 0;
    let sq = 0;
    let m = 0;
    for (let p = 0; p < n; p++) {
      if (valid[p] === 0) continue;
      for (let k = 0; k < c; k++) {
        const v = mapped[p * c + k] as number;
        sum += v;
        sq += v * v;
        m++;
      }
    }
    const mean = sum / Math.max(1, m);
    const std = Math.sqrt(Math.max(0, sq / Math.max(1, m) - mean * mean));
    if (std < (this.opts.minStd ?? 0.01)) {
      this.counters.skippedConstant++;
      return null;
    }
    this.counters.windows++;
    return { data: mapped, valid, scene: s, x, y };
  }

  async randomWindow(seed: number, epoch: number, index: number): Promise<SceneWindow | null> {
    const total = this.weights[this.weights.length - 1] as number;
    for (let attempt = 0; attempt < 64; attempt++) {
      const rng = new Rng(hashSeed(seed, 'scene-window', epoch, index, attempt));
      const t = rng.int(total);
      let s = 0;
      while ((this.weights[s] as number) <= t) s++;
      const hd = this.headers[s] as RasterHeader;
      const x = rng.int(Math.max(1, hd.width - this.src + 1));
      const y = rng.int(Math.max(1, hd.height - this.src + 1));
      const w = await this.windowAt(s, x, y);
      if (w) return w;
    }
    return null;
  }

  gridSize(): number {
    return this.gridTotal;
  }

  async gridWindow(i: number): Promise<SceneWindow | null> {
    if (!Number.isInteger(i) || i < 0 || i >= this.gridTotal) throw new RangeError(`gridWindow: index ${i} out of range [0, ${this.gridTotal})`);
    let g = this.grid[0] as (typeof this.grid)[number];
    for (const e of this.grid) if (e.start <= i) g = e;
    const k = i - g.start;
    return this.windowAt(g.scene, (k % g.nx) * this.src, Math.floor(k / g.nx) * this.src);
  }

  async gridWindows(count?: number): Promise<SceneWindow[]> {
    const out: SceneWindow[] = [];
    const n = this.gridTotal;
    const want = Math.min(count ?? n, n);
    const step = n / want;
    const seen = new Set<number>();
    for (let j = 0; j < want; j++) seen.add(Math.floor(j * step));
    for (const i of seen) {
      const w = await this.gridWindow(i);
      if (w) out.push(w);
    }
    return out;
  }

  async close(): Promise<void> {
    this.cache.clear();
    for (const s of this.sources) await s.close();
  }
}

/** Average `src x src` pixels down to `dst x dst` (area weights; invalid pixels excluded). */
function areaResample(data: Float32Array, valid: Uint8Array, src: number, dst: number, c: number): { data: Float32Array; valid: Uint8Array } {
  const out = new Float32Array(dst * dst * c).fill(-1);
  const ov = new Uint8Array(dst * dst);
  const f = src / dst;
  const acc = new Float64Array(c);
  for (let oy = 0; oy < dst; oy++) {
    const y0 = Math.floor(oy * f);
    const y1 = Math.max(y0 + 1, Math.floor((oy + 1) * f));
    for (let ox = 0; ox < dst; ox++) {
      const x0 = Math.floor(ox * f);
      const x1 = Math.max(x0 + 1, Math.floor((ox + 1) * f));
      acc.fill(0);
      let n = 0;
      let tot = 0;
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          tot++;
          const p = y * src + x;
          if (valid[p] === 0) continue;
          n++;
          for (let k = 0; k < c; k++) acc[k] = (acc[k] as number) + (data[p * c + k] as number);
        }
      }
      if (n * 2 >= tot && n > 0) {
        ov[oy * dst + ox] = 1;
        for (let k = 0; k < c; k++) out[(oy * dst + ox) * c + k] = (acc[k] as number) / n;
      }
    }
  }
  return { data: out, valid: ov };
}
