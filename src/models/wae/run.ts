/**
 * `trainWae`: everything `proggan train wae` does, as a library call — data, networks, loop, run directory.
 * `loadWae`: the trained encoder/decoder of a run directory, for encoding corners (e.g. by the GAN).
 */
import { mkdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { cornerTiles } from '../../data/corner-dataset.js';
import type { ImageDataset } from '../../data/images.js';
import { openSceneData, type SceneData } from '../../data/scene-data.js';
import { Pipeline } from '../../data/pipeline.js';
import { horizontalFlip, imageExamples } from '../../data/examples.js';
import { syntheticTiles } from '../../data/synthetic.js';
import { OneDeviceStrategy, type Strategy } from '../../distributed/strategy.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { loopOptions, readRun, writeRunConfig, type RunLoopOptions } from '../../training/run-dir.js';
import type { DataConfig } from '../../training/config.js';
import type { WaeTrainConfig } from './config.js';
import { WaeObjective, fixedSamples, waeArgsFromConfig } from './objective.js';
import { train, type TrainResult } from '../../training/trainer.js';

/** Options of {@link trainWae}. */
export interface TrainWaeOptions extends RunLoopOptions {
  /** The resolved configuration (see `resolveWaeConfig`). */
  config: WaeTrainConfig;
  /** Run directory: config.json, checkpoints/, samples/, stats.jsonl. */
  runDir: string;
  /** Continue from the newest good checkpoint in runDir. */
  resume?: boolean;
  /** JSON logger; default silent. */
  logger?: Logger;
  /** Data-parallel strategy; default one device. */
  strategy?: Strategy;
}

/** The training images: random windows of the scenes in `data.dir` (held-out scenes excluded), or the embedded procedural tiles. */
export async function openImages(data: DataConfig, resolution: number, seed: number, logger: Logger): Promise<{ images: ImageDataset; scenes: SceneData | null }> {
  if (data.dir === undefined) {
    logger.info({ count: data.syntheticCount, resolution, channels: data.channels }, 'data: embedded procedural satellite-like tiles (pass --data DIR for your own images)');
    // Rendering a tile costs ~25 ms at 256 px and every tile is read four times (once per corner): keep them.
    return { images: syntheticTiles({ count: data.syntheticCount, resolution, channels: data.channels, seed, cache: data.cache }), scenes: null };
  }
  const scenes = await openSceneData({ ...data, dir: data.dir }, resolution, seed, false, logger);
  return { images: scenes.train, scenes };
}

/** `data` with the computed value mapping recorded, so resume, evaluate and complete reuse it exactly. */
export function withMapping<D extends DataConfig>(data: D, scenes: SceneData | null): D {
  if (scenes === null) return data;
  return { ...data, valueMap: scenes.valueMap, mappingLow: [...scenes.mapping.low], mappingHigh: [...scenes.mapping.high] };
}

/** Train (or continue training) a WAE on corner tiles. */
export async function trainWae(opts: TrainWaeOptions): Promise<TrainResult> {
  const { runDir } = opts;
  const log = opts.logger ?? silentLogger();
  const strategy = opts.strategy ?? new OneDeviceStrategy();
  // Images at twice the corner side; the WAE sees their four corners as separate tiles.
  const { images, scenes } = await openImages(opts.config.data, 2 * opts.config.wae.cornerResolution, opts.config.loop.seed, log);
  const config: WaeTrainConfig = { ...opts.config, data: withMapping(opts.config.data, scenes) };
  // A resumed run's config.json is rewritten by the trainer only once the resume is accepted (a
  // rejected one, e.g. another --latent-size, must leave it as it was).
  if (strategy.rank === 0 && !opts.resume) {
    mkdirSync(runDir, { recursive: true });
    writeRunConfig(runDir, config);
  }
  const corners = cornerTiles(images);
  if (corners.size < config.loop.batchSize * strategy.worldSize) {
    throw new Error(`${corners.size} corner tiles are fewer than one global batch (${config.loop.batchSize} x ${strategy.worldSize} replicas)`);
  }
  const pipeline = new Pipeline(imageExamples(corners), {
    batchSize: config.loop.batchSize,
    seed: config.loop.seed,
    rank: strategy.rank,
    worldSize: strategy.worldSize,
    augment: config.data.flip ? [horizontalFlip()] : [],
    prefetch: config.data.prefetch,
  });
  const objective = new WaeObjective({
    model: waeArgsFromConfig(config.wae, config.data.channels),
    kernel: config.loss.kernel,
    lambda: config.loss.lambda,
    optim: config.optim,
    seed: config.loop.seed,
    sampleImages: strategy.rank === 0 ? await fixedSamples(corners, 8) : [],
  });
  try {
    return await train({
      objective,
      pipeline,
      loop: config.loop,
      runDir,
      resume: opts.resume ?? false,
      strategy,
      logger: log,
      config,
      ...loopOptions(opts),
    });
  } finally {
    pipeline.close();
    objective.dispose();
    await scenes?.close();
  }
}

/** A trained WAE loaded from a run directory. */
export interface LoadedWae {
  /** The objective holding encoder and decoder (call `dispose()` when done). */
  wae: WaeObjective;
  /** The run's configuration. */
  config: WaeTrainConfig;
  /** Step of the checkpoint that was loaded. */
  step: number;
}

/** An untrained WAE objective of `config` (the networks and optimiser a run of it builds). */
export function waeObjectiveOf(config: WaeTrainConfig): WaeObjective {
  return new WaeObjective({
    model: waeArgsFromConfig(config.wae, config.data.channels),
    kernel: config.loss.kernel,
    lambda: config.loss.lambda,
    optim: config.optim,
    seed: config.loop.seed,
  });
}

/** Load the newest good checkpoint of a WAE run directory. */
export async function loadWae(runDir: string, opts: { logger?: Logger } = {}): Promise<LoadedWae> {
  const found = await readRun<WaeTrainConfig>(runDir, 'wae', 'a WAE', opts);
  const config = found.config;
  const wae = waeObjectiveOf(config);
  for (const [name, v] of wae.stateVariables()) {
    const rec = found.state.tensors[`model/${name}`];
    if (!rec) throw new Error(`${found.dir} lacks ${name}`);
    tf.tidy(() => v.assign(tf.tensor(rec.data, rec.shape, 'float32')));
  }
  return { wae, config, step: found.state.step };
}
