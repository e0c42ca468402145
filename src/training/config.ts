/**
 * Typed run configuration: one `defaultXxxConfig()` per component, named presets, and the precedence
 * defaults < preset < saved run config < --config file < flags. Validation names the flag to fix.
 */
import { readFileSync } from 'node:fs';
import type { MmdKernel } from '../losses/mmd.js';
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
}

/** The WAE network. */
export interface WaeModelConfig {
  /** Side of one corner tile in pixels (the full image is twice that). Default 128. */
  cornerResolution: number;
  /** Latent size per corner. Default 2048 (the reference). */
  latentSize: number;
  /** Filters per stride-2 block; unset derives 32, 64, ... from the resolution. */
  filters?: number[];
  /** tanh on the decoder output. Default false (the reference has none). */
  tanhOutput: boolean;
  /** Batch norm in the blocks (the reference). Default true; off makes N replicas compute exactly one process's function. */
  batchNorm?: boolean;
}

/** The WAE objective. */
export interface WaeLossConfig {
  /** MMD kernel: `imq` (multi-scale, Tolstikhin; default), `rbf` (median heuristic) or `cern`. */
  kernel: MmdKernel;
  /** Weight lambda of the MMD term. Default 100 (Tolstikhin, CelebA). */
  lambda: number;
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

/** Everything a `proggan train wae` run needs; written to run-dir/config.json. */
export interface WaeTrainConfig {
  model: 'wae';
  data: DataConfig;
  wae: WaeModelConfig;
  loss: WaeLossConfig;
  optim: OptimConfig;
  loop: LoopConfig;
}

/** A deep-partial config as given by presets, files and flags. */
export type PartialConfig<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : PartialConfig<T[K]>) : T[K] };

/** Default data settings. */
export function defaultDataConfig(): DataConfig {
  return { channels: 1, badFiles: 'error', flip: true, cache: true, syntheticCount: 4096, prefetch: 2 };
}

/** Default WAE settings (the reference's sizes). */
export function defaultWaeTrainConfig(): WaeTrainConfig {
  return {
    model: 'wae',
    data: defaultDataConfig(),
    wae: { cornerResolution: 128, latentSize: 2048, tanhOutput: false },
    loss: { kernel: 'imq', lambda: 100 },
    optim: { lr: 5e-5, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
    loop: { steps: 20000, batchSize: 16, seed: 1, checkpointEvery: 500, sampleEvery: 500, tickEvery: 50, evalEvery: 0, maxNonFinite: 10, keepCheckpoints: 2 },
  };
}

/** Named WAE presets, smallest first. `tiny` runs in seconds on the pure-JS backend. */
export const WAE_PRESETS: Record<string, PartialConfig<WaeTrainConfig>> = {
  tiny: {
    data: { syntheticCount: 512 },
    wae: { cornerResolution: 16, latentSize: 32, filters: [16, 32] },
    optim: { lr: 2e-3 },
    loop: { steps: 300, batchSize: 16, checkpointEvery: 50, sampleEvery: 100, tickEvery: 10 },
  },
  small: {
    data: { syntheticCount: 2048 },
    wae: { cornerResolution: 32, latentSize: 128, filters: [32, 64, 128] },
    optim: { lr: 1e-3 },
    loop: { steps: 2000, batchSize: 16, checkpointEvery: 200, sampleEvery: 200, tickEvery: 20 },
  },
  medium: {
    wae: { cornerResolution: 64, latentSize: 512 },
    optim: { lr: 3e-4 },
    loop: { steps: 10000, batchSize: 16, checkpointEvery: 500, sampleEvery: 500, tickEvery: 50 },
  },
  paper: {
    wae: { cornerResolution: 128, latentSize: 2048 },
    optim: { lr: 5e-5 },
    loop: { steps: 100000, batchSize: 16 },
  },
};

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

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Throw a {@link UsageError} naming the flag of the first invalid field. */
export function validateWaeConfig(c: WaeTrainConfig): void {
  const fail = (flag: string, msg: string): never => {
    throw new UsageError(`${flag}: ${msg}`);
  };
  if (c.data.channels !== 1 && c.data.channels !== 3) fail('--channels', `must be 1 or 3, got ${String(c.data.channels)}`);
  if (c.data.badFiles !== 'error' && c.data.badFiles !== 'skip') fail('--bad-files', `must be error or skip, got ${String(c.data.badFiles)}`);
  if (!isPow2(c.wae.cornerResolution) || c.wae.cornerResolution < 8) fail('--resolution', `the corner resolution must be a power of two >= 8, got ${c.wae.cornerResolution}`);
  if (!Number.isInteger(c.wae.latentSize) || c.wae.latentSize < 1) fail('--latent-size', `must be a positive integer, got ${c.wae.latentSize}`);
  if (!['imq', 'rbf', 'cern'].includes(c.loss.kernel)) fail('--mmd-kernel', `must be imq, rbf or cern, got ${String(c.loss.kernel)}`);
  if (!(c.loss.lambda >= 0)) fail('--mmd-weight', `must be >= 0, got ${c.loss.lambda}`);
  if (!(c.optim.lr > 0)) fail('--lr', `must be > 0, got ${c.optim.lr}`);
  if (!Number.isInteger(c.loop.steps) || c.loop.steps < 0) fail('--steps', `must be a non-negative integer, got ${c.loop.steps}`);
  if (!Number.isInteger(c.loop.batchSize) || c.loop.batchSize < 2) fail('--batch-size', `must be an integer >= 2 (MMD compares pairs), got ${c.loop.batchSize}`);
  if (!Number.isInteger(c.loop.seed)) fail('--seed', `must be an integer, got ${c.loop.seed}`);
  for (const [flag, v] of [['--checkpoint-every', c.loop.checkpointEvery], ['--sample-every', c.loop.sampleEvery], ['--tick-every', c.loop.tickEvery]] as const) {
    if (!Number.isInteger(v) || v < 1) fail(flag, `must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(c.loop.evalEvery) || c.loop.evalEvery < 0) fail('--eval-every', `must be a non-negative integer, got ${c.loop.evalEvery}`);
  if (!Number.isInteger(c.data.syntheticCount) || c.data.syntheticCount < c.loop.batchSize) {
    fail('--synthetic-count', `must be an integer >= the batch size (${c.loop.batchSize}), got ${c.data.syntheticCount}`);
  }
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

/** Resolve a WAE config from its layers, lowest precedence first. */
export function resolveWaeConfig(layers: ConfigLayers<WaeTrainConfig>): WaeTrainConfig {
  return resolveConfig(defaultWaeTrainConfig(), WAE_PRESETS, layers, validateWaeConfig);
}
