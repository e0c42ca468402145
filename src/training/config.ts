/**
 * The model-independent parts of a run configuration (image data, Adam, the loop) and the precedence
 * defaults < preset < saved run config < --config file < flags. Validation names the flag to fix.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../util/errors.js';

/** Where training images come from and how they are prepared. */
export interface DataConfig {
  /** Image folder; unset means the embedded procedural satellite-like tiles. */
  dir?: string;
  /** Image channels the models see: 1 (SAR-like) or 3 (RGB). Default 1. */
  channels: 1 | 3;
  /** What to do with unreadable images: stop with a list (`error`, default) or skip each with a log line. */
  badFiles: 'error' | 'skip';
  /** Random horizontal flips. Default true. */
  flip: boolean;
  /** Keep decoded images in memory. Default true. */
  cache: boolean;
  /** Number of procedural tiles when no `dir` is given. Default 4096. */
  syntheticCount: number;
  /** Batches decoded ahead of the step that uses them. Default 2. */
  prefetch: number;
  /** Held-out scene folder (`--eval-data`); unset: a seeded split of `dir` by scene. */
  evalDir?: string;
  /** Fraction of `dir`'s scenes held out when no `evalDir` is given. Default 0.25. */
  evalFraction: number;
  /** Seed of the split by scene (kept apart from the loop seed so the encoder and the GAN split alike). Default 1. */
  splitSeed: number;
  /** 1-based bands to read, e.g. `1,2,3`; unset: every non-alpha band (converted to `channels`). */
  bands?: string;
  /** Window pixels per source pixel: 1 native, 0.5 = half the ground resolution. Default 1. */
  scale: number;
  /** Value mapping spec: `fixed:LO,HI`, `percentiles:P1,P2`, `db`, `db:amplitude`, `db:power`; unset: fixed 0..255 for 8-bit, percentiles 2,98 otherwise. */
  valueMap?: string;
  /** The computed mapping's per-channel low (written by the run, reused by resume/evaluate/complete). */
  mappingLow?: number[];
  /** The computed mapping's per-channel high. */
  mappingHigh?: number[];
  /** Random training windows per epoch (drawn afresh each epoch). Default 4096. */
  windows: number;
  /** Held-out windows used by in-run metrics and `evaluate` (a fixed grid, the same every time). Default 256. */
  evalWindows: number;
  /** Scenes smaller than a window: `reject` (listed) or `pad` with invalid pixels. Default reject. */
  smallImages: 'reject' | 'pad';
}

/** Adam settings. */
export interface OptimConfig {
  /** Learning rate. Default 5e-5 (the reference WAE); presets raise it for short runs. */
  lr: number;
  /** Adam beta1. Default 0.9. */
  beta1: number;
  /** Adam beta2. Default 0.999. */
  beta2: number;
  /** Adam epsilon. Default 1e-8. */
  epsilon: number;
}

/** Loop, upkeep and reproducibility. */
export interface LoopConfig {
  /** Training steps to reach (a resumed run continues to this count). */
  steps: number;
  /** Images (WAE: corner tiles) per step on each replica. */
  batchSize: number;
  /** Seed of every random choice: weights, data order, noise. */
  seed: number;
  /** Save a checkpoint every N steps (and at the end). */
  checkpointEvery: number;
  /** Write a sample grid every N steps (and at the end). */
  sampleEvery: number;
  /** Status line / stats.jsonl record every N steps. */
  tickEvery: number;
  /** Evaluate held-out metrics (e.g. SWD) every N steps into stats.jsonl; 0 = never. */
  evalEvery: number;
  /** Stop after this many non-finite steps in a row. */
  maxNonFinite: number;
  /** Good checkpoints kept on disk. */
  keepCheckpoints: number;
}

/** A deep-partial config as given by presets, files and flags. */
export type PartialConfig<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : PartialConfig<T[K]>) : T[K] };

/** Default data settings. */
export function defaultDataConfig(): DataConfig {
  return { channels: 1, badFiles: 'error', flip: true, cache: true, syntheticCount: 4096, prefetch: 2, evalFraction: 0.25, splitSeed: 1, scale: 1, windows: 4096, evalWindows: 256, smallImages: 'reject' };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merge `over` into a copy of `base`, recursing into plain objects; `undefined` leaves a value alone. */
export function mergeConfig<T>(base: T, over: PartialConfig<T> | Record<string, unknown> | undefined): T {
  if (over === undefined) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const cur = out[k];
    out[k] = isPlainObject(cur) && isPlainObject(v) ? mergeConfig(cur, v) : v;
  }
  return out as T;
}

/** Read a JSON config file; errors name the file. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--config ${path}: cannot read the file (${(err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--config ${path}: not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(parsed)) throw new UsageError(`--config ${path}: expected a JSON object at the top level`);
  return parsed;
}

/** The layers a run's config is made of, lowest precedence first (after the typed defaults). */
export interface ConfigLayers<T> {
  /** A named preset. */
  preset?: string;
  /** The run directory's own config.json (when resuming). */
  saved?: Record<string, unknown>;
  /** A --config file. */
  file?: Record<string, unknown>;
  /** Values given as flags. */
  flags?: PartialConfig<T>;
}

/** defaults < preset < saved < file < flags, then `validate` (which names the flag to fix). */
export function resolveConfig<T>(defaults: T, presets: Record<string, PartialConfig<T>>, layers: ConfigLayers<T>, validate: (c: T) => void): T {
  let c = defaults;
  if (layers.preset !== undefined) {
    const p = presets[layers.preset];
    if (!p) throw new UsageError(`--preset must be one of ${Object.keys(presets).join(', ')}; got "${layers.preset}"`);
    c = mergeConfig(c, p);
  }
  c = mergeConfig(c, layers.saved);
  c = mergeConfig(c, layers.file);
  c = mergeConfig(c, layers.flags);
  validate(c);
  return c;
}


/** One command-line flag of `proggan train` and the config value it sets (models list theirs in their descriptor). */
export interface ConfigFlag {
  /** Flag name without dashes, e.g. `latent-size`. */
  name: string;
  /** Dotted path of the config value it sets, e.g. `wae.latentSize`. */
  path: string;
  /** Value type (yargs parses it). */
  type: 'number' | 'string' | 'boolean';
  /** Allowed values, when closed. */
  choices?: ReadonlyArray<string | number>;
  /** One-line help text. */
  describe: string;
}

/** Flags of {@link LoopConfig}, shared by every model. */
export const LOOP_FLAGS: readonly ConfigFlag[] = [
  { name: 'steps', path: 'loop.steps', type: 'number', describe: 'train until this many steps (a resumed run continues to it)' },
  { name: 'seed', path: 'loop.seed', type: 'number', describe: 'seed of weights, data order and noise' },
  { name: 'batch-size', path: 'loop.batchSize', type: 'number', describe: 'images per step per replica' },
  { name: 'checkpoint-every', path: 'loop.checkpointEvery', type: 'number', describe: 'steps between checkpoints' },
  { name: 'keep', path: 'loop.keepCheckpoints', type: 'number', describe: 'step checkpoints kept on disk, >= 1 (default 2; the best-by-metric one is kept apart)' },
  { name: 'sample-every', path: 'loop.sampleEvery', type: 'number', describe: 'steps between sample grids' },
  { name: 'eval-every', path: 'loop.evalEvery', type: 'number', describe: 'steps between held-out evaluations (progan: SWD) written to stats.jsonl; 0 = never' },
  { name: 'tick-every', path: 'loop.tickEvery', type: 'number', describe: 'steps between status lines' },
];

/** Flags of {@link DataConfig}, shared by the models trained on images. */
export const IMAGE_DATA_FLAGS: readonly ConfigFlag[] = [
  { name: 'data', path: 'data.dir', type: 'string', describe: 'folder of training images (default: embedded procedural satellite-like tiles)' },
  { name: 'channels', path: 'data.channels', type: 'number', choices: [1, 3], describe: 'image channels: 1 or 3' },
  { name: 'bad-files', path: 'data.badFiles', type: 'string', choices: ['error', 'skip'], describe: 'unreadable images: stop with a list, or skip each with a log line' },
  { name: 'flip', path: 'data.flip', type: 'boolean', describe: 'random horizontal flips (--no-flip to disable)' },
  { name: 'synthetic-count', path: 'data.syntheticCount', type: 'number', describe: 'number of procedural tiles when no --data is given' },
  { name: 'eval-data', path: 'data.evalDir', type: 'string', describe: 'folder of held-out scenes for in-run metrics and evaluate (default: hold out --eval-fraction of --data\'s scenes, whole scenes only)' },
  { name: 'eval-fraction', path: 'data.evalFraction', type: 'number', describe: 'without --eval-data: fraction of --data\'s scenes held out (seeded by --split-seed)' },
  { name: 'split-seed', path: 'data.splitSeed', type: 'number', describe: 'seed of the split of --data into training and held-out scenes' },
  { name: 'bands', path: 'data.bands', type: 'string', describe: '1-based bands to read, e.g. 1,2,3 or 1 (default: every non-alpha band)' },
  { name: 'scale', path: 'data.scale', type: 'number', describe: 'window pixels per source pixel: 1 = native resolution, 0.5 = averaged to half (never stretched)' },
  { name: 'value-map', path: 'data.valueMap', type: 'string', describe: 'raw values -> [-1, 1]: fixed:LO,HI | percentiles:2,98 | db | db:amplitude | db:power (default: fixed:0,255 for 8-bit, percentiles:2,98 otherwise); computed once on the training scenes and stored in config.json' },
  { name: 'windows-per-epoch', path: 'data.windows', type: 'number', describe: 'random training windows (2R x 2R, native resolution) drawn per epoch' },
  { name: 'eval-windows', path: 'data.evalWindows', type: 'number', describe: 'held-out windows (a fixed grid) for in-run metrics and evaluate' },
  { name: 'small-images', path: 'data.smallImages', type: 'string', choices: ['reject', 'pad'], describe: 'scenes smaller than a window: reject (listed) or pad with nodata' },
];

/** Optional keys of {@link DataConfig} (absent from its defaults). */
export const IMAGE_DATA_OPTIONAL_KEYS = {
  'data.dir': 'string',
  'data.evalDir': 'string',
  'data.bands': 'string',
  'data.valueMap': 'string',
  'data.mappingLow': 'number[]',
  'data.mappingHigh': 'number[]',
} as const;

/**
 * Range checks every model's loop and Adam settings share; throws a UsageError naming the flag (or
 * the config key when no flag sets it).
 */
export function validateLoopAndAdam(loop: LoopConfig, adam?: { beta1: number; beta2: number; epsilon: number }): void {
  const fail = (flag: string, msg: string): never => {
    throw new UsageError(`${flag}: ${msg}`);
  };
  if (!Number.isInteger(loop.keepCheckpoints) || loop.keepCheckpoints < 1) fail('loop.keepCheckpoints', `must be an integer >= 1 (flag --keep), got ${loop.keepCheckpoints}`);
  if (!Number.isInteger(loop.maxNonFinite) || loop.maxNonFinite < 1) fail('loop.maxNonFinite', `must be an integer >= 1, got ${loop.maxNonFinite}`);
  if (adam) {
    if (!(adam.beta1 >= 0 && adam.beta1 < 1)) fail('optim.beta1', `must be in [0, 1), got ${adam.beta1}`);
    if (!(adam.beta2 >= 0 && adam.beta2 < 1)) fail('optim.beta2', `must be in [0, 1), got ${adam.beta2}`);
    if (!(adam.epsilon > 0)) fail('optim.epsilon', `must be > 0, got ${adam.epsilon}`);
  }
}
