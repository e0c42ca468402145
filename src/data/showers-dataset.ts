/**
 * The 3DGAN's input: HDF5 shower files (see showers-hdf5.ts) as a streaming {@link ExampleDataset}
 * of `{ ecal: [X, Y, Z, 1], energy: [], theta: [] }` examples, preprocessed as the reference
 * (threshold, ECAL-sum cut, X^power, E/scale). Files are validated and indexed up front (one pass by
 * chunks, each preprocessing step counted); afterwards an example is read from its file by chunks of
 * `chunkEvents` events with a small LRU cache, so the data may be larger than memory. The
 * {@link Pipeline} shuffles, shards across replicas and prefetches.
 *
 * Also: listing and splitting a `--data` path (90/10 by file), the held-out set of the physics
 * validation (raw GeV cells in memory), and the embedded MC-like showers written to HDF5.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import type { Example, ExampleDataset, ExampleSpec } from './pipeline.js';
import {
  inspectShowerFile,
  preprocessShowers,
  readShowerChunks,
  readShowerRange,
  ShowerFileError,
  writeShowers,
  type AngleName,
  type ShowerChunk,
  type ShowerFileInfo,
  type ShowerLayout,
  type ShowerPreprocessOptions,
} from './showers-hdf5.js';
import { generateShowers } from './showers-synthetic.js';

/** The angle dataset used as the network's theta (rad), in order of preference; pi/2 when none. */
const THETA_SOURCES: readonly AngleName[] = ['theta', 'mtheta'];

/** Entry angle (rad) of event i of a chunk: `theta`, else `mtheta`, else 90 degrees. */
export function chunkTheta(c: Pick<ShowerChunk, 'angles'>, i: number): number {
  for (const a of THETA_SOURCES) {
    const v = c.angles[a]?.[i];
    if (v !== undefined) return v;
  }
  return Math.PI / 2;
}

/** Files of a `--data` path: the file itself, or the `.h5`/`.hdf5` files of a folder, sorted. */
export function listShowerFiles(path: string, flag = '--data'): string[] {
  if (!existsSync(path)) throw new ShowerFileError(path, `not found (check ${flag})`);
  if (statSync(path).isFile()) return [path];
  const files = readdirSync(path).filter((f) => /\.(h5|hdf5)$/i.test(f)).sort().map((f) => join(path, f));
  if (files.length === 0) throw new ShowerFileError(path, `no .h5/.hdf5 files in this folder (check ${flag})`);
  return files;
}

/** Split files 90/10 by file (at least one held out): the last ~10 % of the sorted list are held out. */
export function splitShowerFiles(files: string[], flag = '--data'): { train: string[]; heldOut: string[] } {
  if (files.length < 2) throw new ShowerFileError(files[0] ?? '(none)', `the held-out set is split by file and ${flag} has only one file: give a folder of several files, or --eval-data FILE.h5`);
  const nHeld = Math.max(1, Math.round(files.length * 0.1));
  return { train: files.slice(0, files.length - nHeld), heldOut: files.slice(files.length - nHeld) };
}

/** One validated, indexed file. */
export interface ShowerSource {
  info: ShowerFileInfo;
  /** File event indices kept by the preprocessing, ascending. */
  kept: Int32Array;
}

/** Preprocessing counts summed over files (each step of the reference preprocessing). */
export interface ShowerScanCounts {
  files: number;
  events: number;
  cellsZeroed: number;
  droppedLowSum: number;
  kept: number;
  skippedFiles: number;
}

/** Options of {@link scanShowerFiles}. */
export interface ScanOptions {
  /** Force a layout (`--layout`); files of another layout are bad files. Default: detect (all files must agree). */
  layout?: ShowerLayout;
  preprocess: ShowerPreprocessOptions;
  /** Events read at a time. */
  chunkEvents: number;
  /** Invalid files: throw one error listing them all, or skip each with a warning. */
  badFiles: 'error' | 'skip';
  logger?: Logger;
  /** Name of the set in logs (`train`, `held-out`). */
  what: string;
}

/**
 * Validate and index files: every event is read once by chunks (NaN/Inf, negative cells, bad
 * energies, truncation are caught here), the preprocessing decides which events are kept, and each
 * step is counted. Bad files are all named in one error (`badFiles: 'error'`) or skipped with a log line.
 */
export async function scanShowerFiles(files: string[], opts: ScanOptions): Promise<{ sources: ShowerSource[]; layout: ShowerLayout; counts: ShowerScanCounts }> {
  const sources: ShowerSource[] = [];
  const bad: ShowerFileError[] = [];
  const counts: ShowerScanCounts = { files: 0, events: 0, cellsZeroed: 0, droppedLowSum: 0, kept: 0, skippedFiles: 0 };
  let layout = opts.layout;
  for (const path of files) {
    try {
      const info = await inspectShowerFile(path);
      if (layout === undefined) layout = info.layout;
      else if (info.layout !== layout) {
        throw new ShowerFileError(path, `has the ${info.layout} layout (ECAL ${info.shape.join('x')}) but the run uses ${layout}${opts.layout ? ' (--layout)' : ' (detected from the first file)'}`);
      }
      const per = info.shape[0] * info.shape[1] * info.shape[2];
      const kept: number[] = [];
      const c = { events: 0, cellsZeroed: 0, droppedLowSum: 0, kept: 0 };
      for await (const chunk of readShowerChunks(path, opts.chunkEvents)) {
        const p = preprocessShowers(chunk, per, opts.preprocess);
        for (const k of p.kept) kept.push(chunk.start + k);
        c.events += p.counts.events;
        c.cellsZeroed += p.counts.cellsZeroed;
        c.droppedLowSum += p.counts.droppedLowSum;
        c.kept += p.counts.kept;
      }
      sources.push({ info, kept: Int32Array.from(kept) });
      counts.files++;
      counts.events += c.events;
      counts.cellsZeroed += c.cellsZeroed;
      counts.droppedLowSum += c.droppedLowSum;
      counts.kept += c.kept;
      opts.logger?.debug({ file: path, layout: info.layout, ...c }, `${opts.what} file ${path}: ${c.kept}/${c.events} events kept`);
    } catch (e) {
      if (!(e instanceof ShowerFileError)) throw e;
      if (opts.badFiles === 'skip') {
        counts.skippedFiles++;
        opts.logger?.warn({ file: e.file, reason: e.reason }, `skipping bad file ${e.message}`);
      } else bad.push(e);
    }
  }
  if (bad.length > 0) {
    throw new ShowerFileError(bad.length === 1 ? (bad[0]?.file ?? '') : `${bad.length} bad files`,
      `${bad.length === 1 ? (bad[0]?.reason ?? '') : bad.map((b) => `\n  ${b.message}`).join('')}\n(fix or remove them, or pass --bad-files skip)`);
  }
  if (layout === undefined || sources.length === 0) throw new ShowerFileError(files.join(', '), `no usable ${opts.what} shower file`);
  opts.logger?.info({ set: opts.what, layout, ...counts, threshold: opts.preprocess.threshold, minSum: opts.preprocess.minSum, power: opts.preprocess.power, energyScale: opts.preprocess.energyScale },
    `${opts.what} data: ${counts.files} file(s), layout ${layout}; preprocessing: ${counts.cellsZeroed} cells below ${opts.preprocess.threshold} GeV zeroed, ` +
    `${counts.droppedLowSum} of ${counts.events} events dropped (ECAL sum <= ${opts.preprocess.minSum} GeV), X^${opts.preprocess.power}, E/${opts.preprocess.energyScale}: ${counts.kept} events`);
  return { sources, layout, counts };
}

interface CachedChunk {
  ecal: Float32Array;
  energy: Float32Array;
  theta: Float32Array;
  /** File event index -> row in the chunk (preprocessed, kept events only). */
  rows: Map<number, number>;
}

/**
 * A streaming {@link ExampleDataset} of preprocessed showers: example i is a kept event of one of
 * the files; reading it loads (and caches) the chunk of `chunkEvents` events around it.
 */
export class ShowerExampleDataset implements ExampleDataset {
  readonly size: number;
  readonly spec: ExampleSpec;
  private readonly starts: number[] = [];
  private readonly cache = new Map<string, Promise<CachedChunk>>();

  constructor(
    private readonly sources: ShowerSource[],
    private readonly opts: { preprocess: ShowerPreprocessOptions; chunkEvents: number; cacheChunks: number },
  ) {
    let n = 0;
    for (const s of sources) { this.starts.push(n); n += s.kept.length; }
    this.size = n;
    const shape = sources[0]?.info.shape ?? [51, 51, 25];
    this.spec = { ecal: { shape: [...shape, 1], dtype: 'float32' }, energy: { shape: [], dtype: 'float32' }, theta: { shape: [], dtype: 'float32' } };
  }

  private locate(i: number): { s: ShowerSource; event: number } {
    if (!(Number.isInteger(i) && i >= 0 && i < this.size)) throw new RangeError(`shower example ${i} is out of range [0, ${this.size})`);
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.starts[mid] ?? 0) <= i) lo = mid; else hi = mid - 1;
    }
    const s = this.sources[lo];
    if (!s) throw new RangeError(`shower example ${i}: no file`);
    return { s, event: s.kept[i - (this.starts[lo] ?? 0)] ?? 0 };
  }

  name(i: number): string {
    const { s, event } = this.locate(i);
    return `${s.info.path}#${event}`;
  }

  async get(i: number): Promise<Example> {
    const { s, event } = this.locate(i);
    const ce = this.opts.chunkEvents;
    const start = Math.floor(event / ce) * ce;
    const key = `${s.info.path}#${start}`;
    let p = this.cache.get(key);
    if (p) {
      this.cache.delete(key);
      this.cache.set(key, p); // most recently used last
    } else {
      p = this.load(s, start, start + ce);
      this.cache.set(key, p);
      p.catch(() => this.cache.delete(key));
      while (this.cache.size > this.opts.cacheChunks) {
        const oldest = this.cache.keys().next().value;
        if (oldest === undefined) break;
        this.cache.delete(oldest);
      }
    }
    const c = await p;
    const row = c.rows.get(event);
    if (row === undefined) throw new Error(`${key}: event ${event} missing from its chunk`);
    const per = c.ecal.length / Math.max(1, c.energy.length);
    return {
      ecal: c.ecal.subarray(row * per, (row + 1) * per),
      energy: c.energy.subarray(row, row + 1),
      theta: c.theta.subarray(row, row + 1),
    };
  }

  private async load(s: ShowerSource, start: number, end: number): Promise<CachedChunk> {
    const raw = await readShowerRange(s.info.path, start, end);
    const per = s.info.shape[0] * s.info.shape[1] * s.info.shape[2];
    const p = preprocessShowers(raw, per, this.opts.preprocess);
    const rows = new Map<number, number>();
    p.kept.forEach((k, r) => rows.set(start + k, r));
    return { ecal: p.ecal, energy: p.energy, theta: Float32Array.from(p.kept, (k) => chunkTheta(raw, k)), rows };
  }
}

/** Held-out showers in memory for the physics validation: raw cells (GeV, thresholded), energies (GeV), angles (rad). */
export interface HeldOutShowers {
  cells: Float32Array;
  shape: [number, number, number];
  energy: Float32Array;
  theta: Float32Array;
  /** Where they came from, for the report. */
  files: string[];
}

/** The first `max` kept events of `sources` (thresholded raw GeV cells, the same cut as training). */
export async function readHeldOut(sources: ShowerSource[], max: number, opts: { preprocess: ShowerPreprocessOptions; chunkEvents: number }): Promise<HeldOutShowers> {
  const shape = sources[0]?.info.shape ?? [51, 51, 25];
  const per = shape[0] * shape[1] * shape[2];
  const total = Math.min(max, sources.reduce((a, s) => a + s.kept.length, 0));
  const cells = new Float32Array(total * per);
  const energy = new Float32Array(total);
  const theta = new Float32Array(total);
  let n = 0;
  const files: string[] = [];
  for (const s of sources) {
    if (n >= total) break;
    files.push(s.info.path);
    const keep = new Set(s.kept);
    for await (const chunk of readShowerChunks(s.info.path, opts.chunkEvents)) {
      for (let k = 0; k < chunk.energy.length && n < total; k++) {
        if (!keep.has(chunk.start + k)) continue;
        for (let c = 0; c < per; c++) {
          const v = chunk.ecal[k * per + c] ?? 0;
          cells[n * per + c] = v < opts.preprocess.threshold ? 0 : v;
        }
        energy[n] = chunk.energy[k] ?? 0;
        theta[n] = chunkTheta(chunk, k);
        n++;
      }
      if (n >= total) break;
    }
  }
  return { cells, shape, energy, theta, files };
}

/** Options of {@link writeMcShowerFiles}. */
export interface McFilesOptions {
  /** Number of files. */
  files: number;
  /** Events per file. */
  events: number;
  /** Seed: file f holds the showers of seed `seed * 1000 + f`. */
  seed: number;
  layout: ShowerLayout;
  /** Primary energies, GeV. Default [2, 500]. */
  energyRange?: [number, number];
  logger?: Logger;
}

/**
 * Write MC-like shower files `mc-s<seed>-<f>.h5` into `dir` (created), deterministic per seed; a file
 * that already exists is kept (written once, read by every later run with the same settings).
 * Returns the paths.
 */
export async function writeMcShowerFiles(dir: string, o: McFilesOptions): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const [lo, hi] = o.energyRange ?? [2, 500];
  const out: string[] = [];
  for (let f = 0; f < o.files; f++) {
    const path = join(dir, `mc-${o.layout}-s${o.seed}-e${lo}-${hi}-n${o.events}-${String(f).padStart(3, '0')}.h5`);
    out.push(path);
    if (existsSync(path)) continue;
    const ev = generateShowers({ n: o.events, seed: o.seed * 1000 + f, geometry: o.layout, energyRange: [lo, hi] });
    const tmp = `${path}.tmp`;
    await writeShowers(tmp, o.layout, { ecal: ev.ecal, energy: ev.energy, ...(o.layout === 'variable-angle' ? { angles: { theta: ev.theta } } : {}) });
    renameSync(tmp, path);
    o.logger?.info({ file: path, events: o.events }, `wrote MC-like showers ${path}`);
  }
  return out;
}
