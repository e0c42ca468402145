/**
 * proggan: train image-completion and detector-simulation GANs in Node.js.
 *
 * The public API mirrors the CLI: pick a backend, open data, build a model, train it, use it.
 */
export { initBackend, activeBackend, parseBackendName, BackendUnavailableError, BACKEND_NAMES } from './backend/index.js';
export type { BackendInfo, BackendOptions, BackendKind, BackendRequest } from './backend/index.js';

export * from './data/index.js';
export { cornerTiles } from './data/corner-dataset.js';

export { buildWae, buildWaeEncoder, buildWaeDecoder, defaultWaeArgs } from './models/wae/networks.js';
export type { WaeArgs } from './models/wae/networks.js';
export { mmd, pairwiseSquaredDistances } from './losses/mmd.js';
export type { MmdKernel, MmdOptions } from './losses/mmd.js';

export { defaultDataConfig, mergeConfig, resolveConfig } from './training/config.js';
export type { DataConfig, OptimConfig, LoopConfig, PartialConfig, ConfigLayers } from './training/config.js';
export { defaultWaeTrainConfig, resolveWaeConfig, WAE_PRESETS } from './models/wae/config.js';
export type { WaeTrainConfig, WaeModelConfig, WaeLossConfig } from './models/wae/config.js';
export { MODELS, findModel, modelNames } from './models/registry.js';
export { defineModel } from './models/unit.js';
export type { ModelDescriptor, ModelRuntime, ModelTrainOptions, ModelConfig, ModelFlag } from './models/unit.js';
export { waeModel } from './models/wae/index.js';
export { proganModel } from './models/progan/index.js';
export type { Objective, Phase, PhaseResult, StepContext } from './training/objective.js';
export { train, NonFiniteError } from './training/trainer.js';
export type { TrainOptions, TrainResult } from './training/trainer.js';
export { trainWae, loadWae, openImages } from './models/wae/run.js';
export type { TrainWaeOptions, LoadedWae } from './models/wae/run.js';
export { WaeObjective } from './models/wae/objective.js';
export { saveCheckpoint, loadLatestCheckpoint, listCheckpoints } from './training/checkpoint.js';
export type { CheckpointState, TensorRecord } from './training/checkpoint.js';
export { writeImageGrid, writeRowsGrid, renderImageGrid, renderRowsGrid, writePng } from './training/samples.js';
export type { GridOptions, ImageGridOptions, RenderedGrid } from './training/samples.js';

export * from './layers/index.js';
export { ProGanGenerator, ProGanDiscriminator, createGlobalDiscriminator, createLocalDiscriminator, fadeRealImages, proganChannelsAt } from './models/progan/networks.js';
export { discriminatorLoss, generatorLoss } from './losses/wgan-gp.js';
export { schedule, defaultScheduleConfig } from './models/progan/schedule.js';
export type { ScheduleConfig } from './models/progan/schedule.js';
export { ExponentialMovingAverage } from './training/ema.js';
export { ProGanObjective } from './models/progan/objective.js';
export { resolveProGanConfig, defaultProGanTrainConfig, PROGAN_PRESETS } from './models/progan/config.js';
export type { ProGanTrainConfig } from './models/progan/config.js';
export { trainProgan, loadProgan } from './models/progan/run.js';
export type { TrainProganOptions, ProGanTrainResult, LoadedProgan } from './models/progan/run.js';
export * from './completion/index.js';
export * from './metrics/index.js';

export * from './distributed/index.js';

export { Rng, hashSeed } from './util/random.js';
export type { RngState } from './util/random.js';
export { createLogger, silentLogger } from './util/logger.js';
export type { Logger } from './util/logger.js';
export { UsageError } from './util/errors.js';
