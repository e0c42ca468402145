/**
 * proggan: train image-completion and detector-simulation GANs in Node.js.
 *
 * The public API mirrors the CLI: pick a backend, open data, build a model, train it, use it.
 */
export { initBackend, activeBackend, parseBackendName, BackendUnavailableError, BACKEND_NAMES } from './backend/index.js';
export type { BackendInfo, BackendOptions, BackendKind, BackendRequest } from './backend/index.js';

export * from './data/index.js';
export { cornerTiles } from './data/corner-dataset.js';

export { buildWae, buildWaeEncoder, buildWaeDecoder, defaultWaeArgs } from './models/wae.js';
export type { WaeArgs } from './models/wae.js';
export { mmd, pairwiseSquaredDistances } from './losses/mmd.js';
export type { MmdKernel, MmdOptions } from './losses/mmd.js';

export {
  defaultWaeTrainConfig,
  defaultDataConfig,
  resolveWaeConfig,
  mergeConfig,
  WAE_PRESETS,
} from './training/config.js';
export type { WaeTrainConfig, DataConfig, WaeModelConfig, WaeLossConfig, OptimConfig, LoopConfig, PartialConfig } from './training/config.js';
export type { Objective, Phase, PhaseResult, StepContext } from './training/objective.js';
export { train, NonFiniteError } from './training/trainer.js';
export type { TrainOptions, TrainResult } from './training/trainer.js';
export { trainWae, loadWae, openImages } from './training/run-wae.js';
export type { TrainWaeOptions, LoadedWae } from './training/run-wae.js';
export { WaeObjective } from './training/objectives/wae.js';
export { saveCheckpoint, loadLatestCheckpoint, listCheckpoints } from './training/checkpoint.js';
export type { CheckpointState, TensorRecord } from './training/checkpoint.js';
export { writeImageGrid } from './training/samples.js';

export { OneDeviceStrategy } from './distributed/strategy.js';
export type { Strategy } from './distributed/strategy.js';

export { Rng, hashSeed } from './util/random.js';
export type { RngState } from './util/random.js';
export { createLogger, silentLogger } from './util/logger.js';
export type { Logger } from './util/logger.js';
export { UsageError } from './util/errors.js';
