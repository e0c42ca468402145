/**
 * `trainProgan`: everything `proggan train progan` does, as a library call: the frozen corner
 * encoder (a given WAE run, or one trained first into <run>/encoder), data, networks, the loop.
 * `loadProgan`: the EMA generator and the encoder of a run directory, for completion.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ImageDataset } from '../../data/pipeline.js';
import { Pipeline } from '../../data/pipeline.js';
import { horizontalFlip, imageExamples } from '../../data/examples.js';
import { syntheticTiles } from '../../data/synthetic.js';
import { OneDeviceStrategy, shareFromRoot, type Strategy } from '../../distributed/strategy.js';
import { ProGanGenerator } from './networks.js';
import { UsageError } from '../../util/errors.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { hashSeed } from '../../util/random.js';
import { loadLatestCheckpoint } from '../../training/checkpoint.js';
import { loopOptions, readRun, writeRunConfig, type RunLoopOptions } from '../../training/run-dir.js';
import { encoderWaeConfig, scheduleConfigOf, type ProGanTrainConfig } from './config.js';
import { emaDecayFromHalfLife } from '../../training/ema.js';
import { ProGanObjective } from './objective.js';
import type { WaeObjective } from '../wae/objective.js';
import { loadWae, trainWae, waeObjectiveOf, withMapping } from '../wae/run.js';
import { openSceneData, type SceneData } from '../../data/scene-data.js';
import { schedule } from './schedule.js';
import { assignValues, readValues } from '../../training/variables.js';
import { train, type TrainResult } from '../../training/trainer.js';

/** Options of {@link trainProgan}. */
export interface TrainProganOptions extends RunLoopOptions {
  /** The resolved configuration (see `resolveProGanConfig`). Required. */
  config: ProGanTrainConfig;
  /** Run directory: config.json, checkpoints/, samples/, stats.jsonl, encoder/ (when trained here). Required. */
  runDir: string;
  /** Continue from the newest good checkpoint in runDir (and of its own encoder run). Default false. */
  resume?: boolean;
  /** A trained WAE run directory to use as the frozen encoder; overrides config.encoder.runDir. Default unset. */
  encoderRunDir?: string;
  /** JSON logger. Default silent. */
  logger?: Logger;
  /** Data-parallel strategy. Default one device. */
  strategy?: Strategy;
}

/** How a {@link trainProgan} call ended. */
export interface ProGanTrainResult extends TrainResult {
  /** The encoder run directory used. */
  encoderRunDir: string;
  /** Whether the encoder was trained (or continued) by this call. */
  trainedEncoder: boolean;
}


/** Items [start, start + size) of another dataset. */
function subset(ds: ImageDataset, start: number, size: number): ImageDataset {
  return {
    size,
    resolution: ds.resolution,
    channels: ds.channels,
    get: (i: number) => ds.get(start + i),
    name: (i: number) => ds.name(start + i),
  };
}

/**
 * The training images at 2R (random windows of the training scenes, or the procedural tiles) and,
 * for scenes, the fixed held-out windows of the held-out scenes.
 */
async function openTrainingImages(config: ProGanTrainConfig, withHeld: boolean, log: Logger): Promise<{ images: ImageDataset; scenes: SceneData | null }> {
  const d = config.data;
  const side = 2 * config.progan.maxCornerResolution;
  if (d.dir !== undefined) {
    const scenes = await openSceneData({ ...d, dir: d.dir }, side, config.loop.seed, withHeld, log);
    return { images: scenes.train, scenes };
  }
  log.info({ count: d.syntheticCount, resolution: side, channels: d.channels }, 'data: embedded procedural satellite-like tiles (pass --data DIR for your own images)');
  return { images: syntheticTiles({ count: d.syntheticCount, resolution: side, channels: d.channels, seed: config.loop.seed, cache: d.cache }), scenes: null };
}

/** Throw unless a loaded WAE can encode this run's corners. */
function checkEncoder(wae: WaeObjective, config: ProGanTrainConfig, dir: string): void {
  const m = wae.args.model;
  const want = { resolution: config.progan.maxCornerResolution, channels: config.data.channels, latent: config.progan.latentDim };
  if (m.resolution !== want.resolution) {
    throw new UsageError(`--encoder ${dir}: the WAE encodes ${m.resolution}px corners, the GAN's largest corner is ${want.resolution}px (--resolution)`);
  }
  if (m.channels !== want.channels) throw new UsageError(`--encoder ${dir}: the WAE reads ${m.channels} channel(s), the data has ${want.channels} (--channels)`);
  if (m.latentSize !== want.latent) {
    throw new UsageError(`--encoder ${dir}: the WAE's latent size is ${m.latentSize}, the GAN expects ${want.latent} (--latent-dim)`);
  }
}

/**
 * Make sure `dir` holds a finished encoder of `config`: train it, continue it (resume), or reuse a
 * finished one (resume). Returns whether training ran and whether it was interrupted by a signal.
 */
async function ensureEncoder(config: ProGanTrainConfig, dir: string, strategy: Strategy, opts: TrainProganOptions, log: Logger): Promise<{ trained: boolean; interrupted: boolean }> {
  const waeConfig = encoderWaeConfig(config);
  if (opts.resume) {
    // Rank 0 decides (the others may not see the directory).
    const found = strategy.rank === 0 && existsSync(dir) ? await loadLatestCheckpoint(dir, { logger: log }) : null;
    const finishedAt = await shareFromRoot(strategy, found && found.state.step >= waeConfig.loop.steps ? found.state.step : null);
    if (finishedAt !== null) {
      log.info({ encoder: dir, step: finishedAt }, `encoder: reusing the finished WAE in ${dir}`);
      return { trained: false, interrupted: false };
    }
  }
  log.info({ encoder: dir, steps: waeConfig.loop.steps }, `encoder: training a WAE on ${config.progan.maxCornerResolution}px corners into ${dir}`);
  const res = await trainWae({
    config: waeConfig,
    runDir: dir,
    resume: opts.resume ?? false,
    logger: log,
    strategy,
    ...(opts.progress !== undefined ? { progress: opts.progress } : {}),
    ...(opts.handleSignals !== undefined ? { handleSignals: opts.handleSignals } : {}),
  });
  return { trained: true, interrupted: res.stoppedBy === 'signal' };
}

/**
 * The frozen encoder on every rank: rank 0 reads the WAE run; the others receive its config and
 * weights, so only rank 0 needs to see the encoder's directory.
 */
async function loadEncoder(dir: string, strategy: Strategy, log: Logger): Promise<WaeObjective> {
  if (strategy.worldSize === 1) return (await loadWae(dir, { logger: log })).wae;
  const loaded = strategy.rank === 0 ? await loadWae(dir, { logger: log }) : null;
  const config = await shareFromRoot(strategy, loaded ? loaded.config : null);
  if (config === null) throw new Error(`rank 0 sent no encoder config for ${dir}`);
  const wae = loaded?.wae ?? waeObjectiveOf(config);
  try {
    const vars = wae.stateVariables().map(([, v]) => v);
    const buffers = await readValues(vars);
    await strategy.broadcast(buffers, 0);
    if (strategy.rank !== 0) assignValues(vars, buffers);
    return wae;
  } catch (err) {
    wae.dispose();
    throw err;
  }
}

/** Train (or continue training) the conditional ProGAN. */
export async function trainProgan(opts: TrainProganOptions): Promise<ProGanTrainResult> {
  const { runDir } = opts;
  const log = opts.logger ?? silentLogger();
  const strategy = opts.strategy ?? new OneDeviceStrategy();
  const external = opts.encoderRunDir ?? opts.config.encoder.runDir;
  const given: ProGanTrainConfig = external === undefined ? opts.config : { ...opts.config, encoder: { ...opts.config.encoder, runDir: resolve(external) } };
  // Scenes first: the value mapping is computed on the training scenes once and recorded in the
  // config, so the encoder trained below, a resume, evaluate and complete all use the same numbers.
  const opened = await openTrainingImages(given, strategy.rank === 0, log);
  const config: ProGanTrainConfig = { ...given, data: withMapping(given.data, opened.scenes) };
  const encoderDir = config.encoder.runDir ?? join(runDir, 'encoder');
  const r = config.progan.maxCornerResolution;
  // A resumed run's config.json is rewritten by the trainer only once the resume is accepted (a
  // rejected one, e.g. another --latent-size, must leave it as it was).
  if (strategy.rank === 0 && !opts.resume) {
    mkdirSync(runDir, { recursive: true });
    writeRunConfig(runDir, config);
  }

  // The frozen encoder: a given run, or a WAE trained here first.
  let trainedEncoder = false;
  if (config.encoder.runDir === undefined) {
    const enc = await ensureEncoder(config, encoderDir, strategy, opts, log);
    trainedEncoder = enc.trained;
    if (enc.interrupted) {
      await opened.scenes?.close();
      log.warn({ encoder: encoderDir }, 'stopped while training the encoder; resume to continue');
      return { step: 0, nimg: 0, resumedFrom: 0, skippedSteps: 0, stoppedBy: 'signal', last: {}, encoderRunDir: encoderDir, trainedEncoder };
    }
  }
  let wae: WaeObjective;
  try {
    wae = await loadEncoder(encoderDir, strategy, log);
  } catch (err) {
    await opened.scenes?.close();
    throw err;
  }
  let pipeline: Pipeline | null = null;
  let objective: ProGanObjective | null = null;
  try {
    checkEncoder(wae, config, encoderDir);

    // Full 2R x 2R images; a fixed held-out set for the sample grids and the in-run metrics.
    const images = opened.images;
    const globalBatch = config.loop.batchSize * strategy.worldSize;
    const n = config.samples.count;
    let held: ImageDataset | null = null;
    if (n > 0 && config.data.dir === undefined) {
      held = syntheticTiles({ count: n, resolution: 2 * r, channels: config.data.channels, seed: hashSeed('progan/held-out', config.loop.seed) });
    } else if (n > 0 && opened.scenes?.held) {
      const h = opened.scenes.held;
      held = subset(h, 0, Math.min(n, h.size));
    } else if (n > 0 && strategy.rank === 0) {
      log.warn({}, 'samples: no held-out scene (--eval-fraction 0 and no --eval-data): no sample grids, no in-run metrics');
    }
    if (images.size < globalBatch) {
      throw new UsageError(`--batch-size: ${images.size} training images are fewer than one global batch (${config.loop.batchSize} x ${strategy.worldSize} replicas)`);
    }
    pipeline = new Pipeline(imageExamples(images), {
      batchSize: config.loop.batchSize,
      seed: config.loop.seed,
      rank: strategy.rank,
      worldSize: strategy.worldSize,
      augment: config.data.flip ? [horizontalFlip()] : [],
      prefetch: config.data.prefetch,
    });
    const sampleImages: Float32Array[] = [];
    if (held !== null && strategy.rank === 0) for (let i = 0; i < held.size; i++) sampleImages.push(await held.get(i));
    // SWD needs more images than a grid shows: procedural data draws its own held-out set.
    const evalImages: Float32Array[] = [];
    if (strategy.rank === 0 && config.loop.evalEvery > 0) {
      // Scenes: every held-out window (data.evalWindows, a fixed grid), the set `proggan evaluate` uses.
      const evalSet = config.data.dir === undefined
        ? syntheticTiles({ count: config.samples.evalCount, resolution: 2 * r, channels: config.data.channels, seed: hashSeed('progan/eval', config.loop.seed) })
        : (opened.scenes?.held ?? null);
      if (evalSet !== null) for (let i = 0; i < evalSet.size; i++) evalImages.push(await evalSet.get(i));
      if (evalSet !== null) log.info({ evalWindows: evalSet.size }, `in-run metrics: ${evalSet.size} held-out images`);
    }
    const emaDecay = config.ema.halfLifeKimg !== undefined ? emaDecayFromHalfLife(config.ema.halfLifeKimg * 1000, globalBatch) : config.ema.decay;
    objective = new ProGanObjective({
      model: config.progan,
      channels: config.data.channels,
      schedule: scheduleConfigOf(config),
      minibatchRepeats: config.schedule.minibatchRepeats,
      loss: config.loss,
      optim: config.optim,
      emaDecay,
      encoder: wae,
      sampleImages,
      evalImages,
      seed: config.loop.seed,
      logger: log,
    });
    const res = await train({
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
    return { ...res, encoderRunDir: encoderDir, trainedEncoder };
  } finally {
    pipeline?.close();
    objective?.dispose();
    wae.dispose();
    await opened.scenes?.close();
  }
}

/** A trained conditional ProGAN loaded from a run directory. */
export interface LoadedProgan {
  /** The generator with the EMA weights of the checkpoint (call `dispose()` when done). */
  generator: ProGanGenerator;
  /** The frozen corner encoder (call `dispose()` when done). */
  encoder: WaeObjective;
  /** The run's configuration. */
  config: ProGanTrainConfig;
  /** Step of the checkpoint that was loaded. */
  step: number;
  /** Images shown at that step. */
  nimg: number;
  /** Corner side the generator had grown to at that step (below maxCornerResolution while still growing). */
  resolution: number;
  /** Fade alpha of that resolution at that step (1 when stable). */
  alpha: number;
}

/** Load the newest good checkpoint of a ProGAN run directory: EMA generator and encoder. */
export async function loadProgan(runDir: string, opts: { logger?: Logger } = {}): Promise<LoadedProgan> {
  const found = await readRun<ProGanTrainConfig>(runDir, 'progan', 'a conditional ProGAN', opts);
  const config = found.config;
  const m = config.progan;
  const generator = new ProGanGenerator({
    maxResolution: m.maxCornerResolution,
    channels: config.data.channels,
    zDim: m.zDim,
    latentDim: m.latentDim,
    numConditions: 3,
    fmapBase: m.fmapBase,
    fmapMax: m.fmapMax,
    outputActivation: m.generatorOutput,
    // Runs from before spatial conditioning have no `conditioning` key: latent.
    contextChannels: m.conditioning === 'spatial' ? 3 * config.data.channels : 0,
  });
  let encoder: WaeObjective | null = null;
  try {
    // The EMA shadows are saved as model/ema/<generator variable>.
    const values: Array<[string, tf.Tensor]> = [];
    try {
      for (const [name] of generator.variables()) {
        const rec = found.state.tensors[`model/ema/${name}`];
        if (!rec) throw new Error(`${found.dir} lacks the EMA weights of ${name}: it was not written by trainProgan with this config`);
        values.push([name, tf.tensor(rec.data, rec.shape, 'float32')]);
      }
      generator.assignVariables(values);
    } finally {
      tf.dispose(values.map(([, t]) => t));
    }
    const encoderDir = config.encoder.runDir ?? join(runDir, 'encoder');
    encoder = (await loadWae(encoderDir, opts)).wae;
    checkEncoder(encoder, config, encoderDir);
    const s = schedule(found.state.nimg, scheduleConfigOf(config));
    return { generator, encoder, config, step: found.state.step, nimg: found.state.nimg, resolution: s.resolution, alpha: s.alpha };
  } catch (err) {
    generator.dispose();
    encoder?.dispose();
    throw err;
  }
}
