/**
 * Configuration of a WAE run (`proggan train wae`): typed defaults (the reference's sizes), named
 * presets and validation that names the flag to fix. tfjs-free: the CLI reads it for `--help`.
 */
import type { MmdKernel } from '../../losses/mmd.js';
import { UsageError } from '../../util/errors.js';
import { defaultDataConfig, resolveConfig, validateLoopAndAdam, type ConfigLayers, type DataConfig, type LoopConfig, type OptimConfig, type PartialConfig } from '../../training/config.js';
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

/** Everything a `proggan train wae` run needs; written to run-dir/config.json. */
export interface WaeTrainConfig {
  model: 'wae';
  data: DataConfig;
  wae: WaeModelConfig;
  loss: WaeLossConfig;
  optim: OptimConfig;
  loop: LoopConfig;
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
  validateLoopAndAdam(c.loop, c.optim);
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

/** Resolve a WAE config from its layers, lowest precedence first. */
export function resolveWaeConfig(layers: ConfigLayers<WaeTrainConfig>): WaeTrainConfig {
  return resolveConfig(defaultWaeTrainConfig(), WAE_PRESETS, layers, validateWaeConfig);
}
