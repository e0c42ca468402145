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

export * from './layers/index.js';
export { ProGanGenerator, ProGanDiscriminator, createGlobalDiscriminator, createLocalDiscriminator, fadeRealImages, proganChannelsAt } from './models/progan.js';
export { discriminatorLoss, generatorLoss } from './losses/wgan-gp.js';
export { schedule, defaultScheduleConfig } from './training/schedule.js';
export type { ScheduleConfig } from './training/schedule.js';
export { ExponentialMovingAverage } from './training/ema.js';
export { ProGanObjective } from './training/objectives/progan.js';
export { resolveProGanConfig, defaultProGanTrainConfig, PROGAN_PRESETS } from './training/config-progan.js';
export type { ProGanTrainConfig } from './training/config-progan.js';
export { trainProgan, loadProgan } from './training/run-progan.js';
export * from './completion/index.js';
export * from './metrics/index.js';

export * from './distributed/index.js';

export { Rng, hashSeed } from './util/random.js';
export type { RngState } from './util/random.js';
export { createLogger, silentLogger } from './util/logger.js';
export type { Logger } from './util/logger.js';
export { UsageError } from './util/errors.js';
