/**
 * Training and held-out image sets cut from large scenes (GeoTIFF/PNG) at native resolution:
 * the data of `proggan train --data SCENES/ [--eval-data HELD/]`.
 *
 * - Training images are random 2R x 2R windows of the training scenes, drawn afresh each epoch from
 *   (seed, epoch, index): seeded and resumable with the pipeline's position.
 * - Held-out images are a fixed, evenly spread grid of windows of the held-out scenes (`--eval-data`,
 *   or a seeded split of `--data` by scene, never by window), the same every time they are opened.
 * - The value mapping is computed once, on the training scenes only, and returned as plain numbers
 *   for the run's config; a run that has them reuses them exactly.
 */
import { UsageError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { ImageDataset } from './pipeline.js';
import type { MappingSpec, ValueMapping } from './raster.js';
import { listSceneFiles, openScenes, splitScenes, type SceneSet } from './scenes.js';

/** The data settings {@link openSceneData} reads (a subset of the run's `data` config). */
export interface SceneDataOptions {
  /** Scene folder (`--data`). */
  dir: string;
  /** Held-out scene folder (`--eval-data`); unset: split `dir` by scene. */
  evalDir?: string;
  /** Fraction of scenes held out when splitting. */
  evalFraction: number;
  /** Seed of the split. */
  splitSeed: number;
  /** Channels the models see. */
  channels: 1 | 3;
  /** 1-based bands, e.g. `1,2,3`. */
  bands?: string;
  /** Window pixels per source pixel (1 native). */
  scale: number;
  /** Mapping spec string (see {@link parseValueMap}). */
  valueMap?: string;
  /** A mapping computed before (per channel); with `mappingHigh` it is used as is. */
  mappingLow?: number[];
  /** See `mappingLow`. */
  mappingHigh?: number[];
  /** Random training windows per epoch. */
  windows: number;
  /** Held-out windows (fixed grid). */
  evalWindows: number;
  /** Scenes smaller than a window. */
  smallImages: 'reject' | 'pad';
}

/** What {@link openSceneData} opened. */
export interface SceneData {
  /** Random training windows (size = windows per epoch; `get(i, epoch)` draws window i of that epoch). */
  train: ImageDataset;
  /** The held-out windows, in memory (fixed), or null when `withHeld` was false or none was usable. */
  held: ImageDataset | null;
  /** The mapping in use (store `low`/`high` in the run's config as data.mappingLow/High). */
  mapping: ValueMapping;
  /** The spec string the mapping came from (store as data.valueMap). */
  valueMap: string;
  /** Training scene files. */
  trainScenes: string[];
  /** Held-out scene files. */
  heldScenes: string[];
  /** Window counters of the training scenes (skipped mostly-invalid and constant windows). */
  counters(): { windows: number; skippedInvalid: number; skippedConstant: number };
  /** Release the scenes. */
  close(): Promise<void>;
}

/** Parse `--bands 1,2,3` into 1-based band numbers. */
export function parseBands(text: string): number[] {
  const bands = text.split(',').map((s) => s.trim());
  const out = bands.map(Number);
  if (bands.length === 0 || out.some((b, i) => bands[i] === '' || !Number.isInteger(b) || b < 1)) {
    throw new UsageError(`--bands ${text}: expected 1-based band numbers separated by commas, e.g. 1,2,3 or 1`);
  }
  return out;
}

/**
 * Parse a `--value-map` spec: `fixed:LO,HI` (the same range for every channel), `percentiles:P1,P2`
 * (per channel, over the training scenes), `db` (samples already in dB; 2-98 % of them), `db:amplitude`
 * or `db:power` (converted to dB first). With `low`/`high` (a stored mapping) the result is complete.
 */
export function parseValueMap(text: string, channels: number, low?: number[], high?: number[]): MappingSpec {
  const bad = (why: string): never => {
    throw new UsageError(`--value-map ${text}: ${why}; expected fixed:LO,HI | percentiles:2,98 | db | db:amplitude | db:power`);
  };
  const [kind, arg] = text.split(':', 2) as [string, string | undefined];
  const pair = (): [number, number] => {
    const parts = (arg ?? '').split(',').map(Number);
    if (parts.length !== 2 || !parts.every(Number.isFinite) || !((parts[1] as number) > (parts[0] as number))) bad('needs two numbers LO,HI with LO < HI');
    return [parts[0] as number, parts[1] as number];
  };
  const stored = low !== undefined && high !== undefined;
  if (kind === 'fixed') {
    const [lo, hi] = pair();
    return { kind: 'fixed', low: stored ? low : new Array<number>(channels).fill(lo), high: stored ? high : new Array<number>(channels).fill(hi) };
  }
  if (kind === 'percentiles') {
    const [p1, p2] = arg === undefined ? [2, 98] : pair();
    if (p1 < 0 || p2 > 100) bad('percentiles must lie in 0..100');
    return stored ? { kind: 'percentile', lowPercent: p1, highPercent: p2, low, high } : { kind: 'percentile', lowPercent: p1, highPercent: p2 };
  }
  if (kind === 'db') {
    const input = arg ?? 'db';
    if (input !== 'db' && input !== 'amplitude' && input !== 'power') bad(`unknown dB input "${input}"`);
    const i = input as 'db' | 'amplitude' | 'power';
    return stored ? { kind: 'db', input: i, low, high } : { kind: 'db', input: i, lowPercent: 2, highPercent: 98 };
  }
  return bad(`unknown mapping "${kind}"`);
}

/** The spec string of a complete mapping (what {@link parseValueMap} reads back with its low/high). */
export function valueMapString(m: ValueMapping): string {
  if (m.kind === 'fixed') return `fixed:${m.low[0]},${m.high[0]}`;
  if (m.kind === 'percentile') return `percentiles:${m.lowPercent},${m.highPercent}`;
  return m.input === 'db' ? 'db' : `db:${m.input}`;
}

/** Every usable held-out window, decoded once, as an in-memory dataset. */
async function heldWindows(set: SceneSet, count: number, files: readonly string[]): Promise<ImageDataset> {
  const wins = await set.gridWindows(count);
  if (wins.length === 0) throw new UsageError(`held-out scenes (${files.join(', ')}): no usable ${set.window}x${set.window} window (all mostly nodata or constant)`);
  const channels = set.channels as 1 | 3;
  return {
    size: wins.length,
    resolution: set.window,
    channels,
    get: async (i) => (wins[i] as (typeof wins)[number]).data,
    name: (i) => {
      const w = wins[i] as (typeof wins)[number];
      return `${set.files[w.scene]}@${w.x},${w.y}`;
    },
  };
}

/**
 * Open the training scenes of `opts.dir` (minus the held-out ones) and, when `withHeld`, the held-out
 * windows, for windows of `window` x `window` pixels.
 *
 * @throws UsageError naming the flag when the folders, bands, mapping or sizes do not fit.
 */
export async function openSceneData(opts: SceneDataOptions, window: number, seed: number, withHeld: boolean, logger: Logger = silentLogger()): Promise<SceneData> {
  if (!(opts.evalFraction >= 0 && opts.evalFraction < 1)) throw new UsageError(`--eval-fraction: must be in [0, 1), got ${opts.evalFraction}`);
  if (!(opts.scale > 0 && opts.scale <= 1)) throw new UsageError(`--scale: must be in (0, 1] (1 = native resolution; windows are never stretched), got ${opts.scale}`);
  if (!Number.isInteger(opts.windows) || opts.windows < 1) throw new UsageError(`--windows-per-epoch: must be an integer >= 1, got ${opts.windows}`);
  if (!Number.isInteger(opts.evalWindows) || opts.evalWindows < 1) throw new UsageError(`--eval-windows: must be an integer >= 1, got ${opts.evalWindows}`);
  const listing = await listSceneFiles(opts.dir).catch((err: Error) => {
    throw new UsageError(`--data ${opts.dir}: ${err.message}`);
  });
  if (listing.files.length === 0) {
    throw new UsageError(`--data ${opts.dir} holds no image files (PNG, JPEG, WebP or TIFF/GeoTIFF); point --data at a folder of training images, or leave it out for the built-in procedural tiles`);
  }
  let trainFiles = listing.files;
  let heldFiles: string[] = [];
  if (opts.evalDir !== undefined) {
    const h = await listSceneFiles(opts.evalDir).catch((err: Error) => {
      throw new UsageError(`--eval-data ${opts.evalDir}: ${err.message}`);
    });
    heldFiles = h.files;
    const heldReal = new Set(h.realPaths);
    const both = listing.files.filter((_, i) => heldReal.has(listing.realPaths[i] as string));
    if (both.length > 0) throw new UsageError(`--eval-data ${opts.evalDir}: ${both.length} scene(s) are also in --data (${both.slice(0, 3).join(', ')}); held-out scenes must not be trained on`);
  } else if (opts.evalFraction > 0) {
    // One group per place: before/after pairs and two dates of one tile stay on one side.
    // Keyed by file name (not the path as typed), so `--data x/` and `--data ./x` split alike.
    const place = (f: string): string =>
      (f.split('/').pop() as string)
        .replace(/\.[a-z]+$/i, '')
        .replace(/_(before|after|mask)$/i, '')
        .replace(/_(S1Hand|S2Hand|LabelHand)$/, '')
        .replace(/_(19|20)\d{6}(?=_|$)/, '');
    const split = splitScenes(listing.files, opts.evalFraction, opts.splitSeed, place);
    trainFiles = split.train;
    heldFiles = split.held;
  }
  if (trainFiles.length === 0) throw new UsageError(`--data ${opts.dir}: no training scene left after holding out ${heldFiles.length}; add scenes or lower --eval-fraction`);
  const bands = opts.bands !== undefined ? parseBands(opts.bands) : undefined;
  const spec: MappingSpec | undefined = opts.valueMap !== undefined ? parseValueMap(opts.valueMap, opts.channels, opts.mappingLow, opts.mappingHigh) : undefined;
  const common = { window, scale: opts.scale, channels: opts.channels, smallImages: opts.smallImages, logger, ...(bands ? { bands } : {}) };
  let train: SceneSet;
  try {
    train = await openScenes(trainFiles, { ...common, ...(spec ? { mapping: spec } : {}) });
  } catch (err) {
    throw err instanceof UsageError ? err : new UsageError(`--data ${opts.dir}: ${(err as Error).message}`);
  }
  const mapping = train.mapping;
  logger.info(
    { train: train.files, held: heldFiles, mapping, window, scale: opts.scale },
    `data: ${train.files.length} training scene(s), ${heldFiles.length} held out (${opts.evalDir !== undefined ? `--eval-data ${opts.evalDir}` : `split by scene, seed ${opts.splitSeed}`}); ${window}x${window} windows; mapping ${valueMapString(mapping)} low ${mapping.low.map((v) => +v.toFixed(3)).join(',')} high ${mapping.high.map((v) => +v.toFixed(3)).join(',')}`,
  );
  let held: ImageDataset | null = null;
  let heldSet: SceneSet | null = null;
  if (withHeld && heldFiles.length > 0) {
    try {
      heldSet = await openScenes(heldFiles, { ...common, mapping });
    } catch (err) {
      await train.close();
      throw err instanceof UsageError ? err : new UsageError(`held-out scenes: ${(err as Error).message}`);
    }
    held = await heldWindows(heldSet, opts.evalWindows, heldSet.files);
    logger.info({ heldWindows: held.size, skippedInvalid: heldSet.counters.skippedInvalid, skippedConstant: heldSet.counters.skippedConstant }, `data: ${held.size} held-out windows (fixed grid)`);
  }
  const names = train.files;
  const trainSet = train;
  const ds: ImageDataset = {
    size: opts.windows,
    resolution: window,
    channels: opts.channels,
    async get(i: number, epoch = 0): Promise<Float32Array> {
      const w = await trainSet.randomWindow(seed, epoch, i);
      if (w === null) throw new Error(`scenes ${names.join(', ')}: 64 random windows in a row were mostly nodata or constant; check --bands/--value-map or the scenes`);
      return w.data;
    },
    name: (i) => `random window ${i} of ${names.length} scene(s)`,
  };
  return {
    train: ds,
    held,
    mapping,
    valueMap: valueMapString(mapping),
    trainScenes: [...train.files],
    heldScenes: heldFiles,
    counters: () => ({ ...trainSet.counters }),
    close: async () => {
      await trainSet.close();
      await heldSet?.close();
    },
  };
}

/**
 * The held-out windows of a run's data settings, exactly as training's in-run metrics cut them: the
 * run's held-out scenes (its `evalDir`, or the same seeded split of `dir`), or the scenes of
 * `otherDir` when given, with the run's stored value mapping; `count` windows of a fixed grid.
 *
 * @throws UsageError when the settings hold no computed mapping or no held-out scene.
 */
export async function openHeldOutWindows(opts: SceneDataOptions, window: number, count: number, otherDir?: string, logger: Logger = silentLogger()): Promise<ImageDataset> {
  if (opts.mappingLow === undefined || opts.mappingHigh === undefined || opts.valueMap === undefined) {
    throw new UsageError('the run\'s config.json has no stored value mapping (data.valueMap/mappingLow/mappingHigh); it was not trained on scenes with this version');
  }
  const mapping = parseValueMap(opts.valueMap, opts.channels, opts.mappingLow, opts.mappingHigh) as ValueMapping;
  let files: string[];
  if (otherDir !== undefined) {
    files = (await listSceneFiles(otherDir).catch((err: Error) => {
      throw new UsageError(`--data ${otherDir}: ${err.message}`);
    })).files;
  } else {
    // The same split as training: open the data without the training scenes' windows.
    const d = await openSceneData({ ...opts, windows: 1 }, window, 0, false, logger);
    files = d.heldScenes;
    await d.close();
  }
  if (files.length === 0) throw new UsageError(`no held-out scene: the run had none (--eval-fraction 0 and no --eval-data); pass --data HELD/`);
  const bands = opts.bands !== undefined ? parseBands(opts.bands) : undefined;
  const set = await openScenes(files, { window, scale: opts.scale, channels: opts.channels, smallImages: opts.smallImages, logger, mapping, ...(bands ? { bands } : {}) });
  try {
    return await heldWindows(set, count, set.files);
  } finally {
    await set.close();
  }
}
