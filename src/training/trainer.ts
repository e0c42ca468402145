/**
 * The one training loop for every objective: data -> per-phase gradients -> strategy.allReduceMean ->
 * optimiser -> upkeep (status line, stats.jsonl, checkpoints, sample grids) once per tick.
 */
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Pipeline, PipelineState } from '../data/pipeline.js';
import { agreeToStop, OneDeviceStrategy, shareFromRoot, type Strategy } from '../distributed/strategy.js';
import { broadcastState, checkReplicasInSync, reduceGradients, reduceTick } from './replicas.js';
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/logger.js';
import { Rng, type RngState } from '../util/random.js';
import {
  listCheckpoints,
  loadLatestCheckpoint,
  NonFiniteCheckpointError,
  readBestMetric,
  saveBestCheckpoint,
  saveCheckpoint,
  type CheckpointState,
  type TensorRecord,
} from './checkpoint.js';
import type { LoopConfig } from './config.js';
import type { Batch, Objective, Phase, StepContext } from './objective.js';
import { defaultStats, Stats, StatsJsonlWriter, formatStatusLine } from './stats.js';
import { Timeline } from './timeline.js';
import { flattenHParams, TensorBoardWriter } from './tensorboard.js';
import { createProgress, EtaEstimator, type Progress, type StepStage } from './progress.js';
import { writeRunConfig } from './run-dir.js';

/** Options of {@link train}. */
export interface TrainOptions {
  /** The model and its losses. */
  objective: Objective;
  /** Batches of this replica's shard. */
  pipeline: Pipeline;
  /** Loop settings (steps, seed, upkeep intervals). */
  loop: LoopConfig;
  /** Directory for checkpoints, stats.jsonl and sample grids. */
  runDir: string;
  /** Continue from the newest good checkpoint in runDir. Default false. */
  resume?: boolean;
  /** Data-parallel strategy; default one device. */
  strategy?: Strategy;
  /** JSON logger; default silent. */
  logger?: Logger;
  /** Show a progress bar on stderr when it is a TTY. Default true. */
  progress?: boolean;
  /** The resolved config: written to each checkpoint's meta, and to runDir/config.json once the run is accepted. */
  config?: unknown;
  /** Stop after this step even if loop.steps is larger (for tests of interruption). */
  stopAfterStep?: number;
  /** Handle SIGINT/SIGTERM by checkpointing and returning. Default true. */
  handleSignals?: boolean;
  /** Write a Chrome trace of every step's parts to this file (rank r writes `<file>.rank<r>` when r > 0). */
  timeline?: string;
  /**
   * Called on every rank once the run is accepted (a resume's checkpoint loaded and restored),
   * before anything is written into runDir.
   */
  onAccepted?: (info: { step: number; resumedFrom: number }) => void;
  /** Called after every completed step (skipped non-finite ones included) with the step count. */
  onStepDone?: (step: number) => void;
  /**
   * Keep the checkpoint with the best value of this `evaluate()` metric in `runDir/checkpoints/best/`
   * (outside `keepCheckpoints`); non-finite values and non-finite weights never count.
   */
  bestMetric?: { name: string; mode: 'min' | 'max' };
  /**
   * Statistics shown in the status line besides step, kimg, img/s and the ETA (e.g. the model
   * descriptor's `statusMetrics`); default every `loss/*`. All statistics still go to stats.jsonl,
   * TensorBoard and the log record.
   */
  statusMetrics?: readonly string[];
  /** Show every statistic in the status line. Default false. */
  verbose?: boolean;
}

/** How a {@link train} call ended. */
export interface TrainResult {
  /** Steps completed in total (including before a resume). */
  step: number;
  /** Images shown in total. */
  nimg: number;
  /** Step the run resumed from (0 for a fresh run). */
  resumedFrom: number;
  /** Steps skipped because a loss or gradient was not finite. */
  skippedSteps: number;
  /** Why the loop ended. */
  stoppedBy: 'steps' | 'signal' | 'stopAfterStep';
  /** The last status record. */
  last: Record<string, number>;
}

/** The run stopped because too many steps in a row had non-finite losses or gradients. */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
}

/** A named tensor as optimisers save and load their slots. */
type NamedTensor = Awaited<ReturnType<tf.Optimizer['getWeights']>>[number];

interface TrainerMeta {
  rng: RngState;
  pipeline: PipelineState;
  skippedSteps: number;
  objective?: Record<string, unknown>;
  optimizerWeightNames: Record<string, string[]>;
  config?: unknown;
  model: string;
}

async function snapshot(objective: Objective, phases: Phase[]): Promise<{ tensors: Record<string, TensorRecord>; optNames: Record<string, string[]> }> {
  const tensors: Record<string, TensorRecord> = {};
  for (const [name, v] of objective.stateVariables()) {
    tensors[`model/${name}`] = { shape: v.shape.slice(), dtype: 'float32', data: (await v.data()) as Float32Array };
  }
  const optNames: Record<string, string[]> = {};
  for (const phase of phases) {
    const weights = await phase.optimizer.getWeights();
    optNames[phase.name] = weights.map((w) => w.name);
    weights.forEach((w, i) => {
      const isInt = w.tensor.dtype === 'int32';
      tensors[`opt/${phase.name}/${i}`] = {
        shape: w.tensor.shape.slice(),
        dtype: isInt ? 'int32' : 'float32',
        data: isInt ? (w.tensor.dataSync() as Int32Array) : (w.tensor.dataSync() as Float32Array),
      };
      // getWeights() makes a fresh tensor for the iteration count on every call; the slots are variables it keeps.
      if (!(w.tensor instanceof tf.Variable)) w.tensor.dispose();
    });
  }
  return { tensors, optNames };
}

async function restore(objective: Objective, phases: Phase[], state: CheckpointState, optNames: Record<string, string[]>): Promise<void> {
  for (const [name, v] of objective.stateVariables()) {
    const rec = state.tensors[`model/${name}`];
    if (!rec) throw new Error(`checkpoint has no tensor for model variable ${name}: it was saved by a different model or config`);
    if (rec.shape.join(',') !== v.shape.join(',')) {
      throw new Error(`checkpoint tensor ${name} has shape [${rec.shape}] but the model expects [${v.shape}]: the config changed since the checkpoint`);
    }
    tf.tidy(() => v.assign(tf.tensor(rec.data, rec.shape, 'float32')));
  }
  for (const phase of phases) {
    const names = optNames[phase.name] ?? [];
    const named: NamedTensor[] = names.map((n, i) => {
      const rec = state.tensors[`opt/${phase.name}/${i}`];
      if (!rec) throw new Error(`checkpoint lacks optimizer slot ${i} of phase ${phase.name}`);
      return { name: n, tensor: tf.tensor(rec.data, rec.shape, rec.dtype) };
    });
    if (named.length > 0) await phase.optimizer.setWeights(named);
    for (const n of named) n.tensor.dispose();
  }
}

/**
 * Keep only stats.jsonl records up to `step` (none when starting at step 0, whose initial evaluation
 * runs again), so a resumed or restarted run neither repeats nor loses a line.
 */
function truncateStats(runDir: string, step: number): void {
  const path = join(runDir, 'stats.jsonl');
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8').split('\n').filter((line) => {
    if (line.trim() === '') return false;
    try {
      const rec = JSON.parse(line) as { step?: number };
      return typeof rec.step === 'number' && step > 0 && rec.step <= step;
    } catch {
      return false; // a line torn by a crash
    }
  });
  writeFileSync(`${path}.tmp`, kept.map((l) => `${l}\n`).join(''));
  renameSync(`${path}.tmp`, path);
}

function globalNormAndLosses(grads: tf.Tensor[], losses: tf.Scalar[]): tf.Tensor1D {
  return tf.tidy(() => {
    const sq = grads.length > 0 ? tf.addN(grads.map((g) => tf.sum(tf.square(g)))) : tf.scalar(0);
    return tf.concat([tf.sqrt(sq).reshape([1]), ...losses.map((l) => l.reshape([1]))]) as tf.Tensor1D;
  });
}

/**
 * Train `objective` on `pipeline` up to `loop.steps`, resuming from runDir when asked. Every tensor
 * created by a step is released by the end of the step.
 */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  const { objective, pipeline, loop, runDir } = opts;
  const strategy = opts.strategy ?? new OneDeviceStrategy();
  const log = opts.logger ?? silentLogger();
  const isChief = strategy.rank === 0;
  const rng = new Rng(`${loop.seed}/trainer`);
  let step = 0;
  let nimg = 0;
  let skippedSteps = 0;
  let resumedFrom = 0;

  // Resume: weights, optimiser slots, counters, RNG and data position. Rank 0 reads the checkpoint
  // and hands it to the others (broadcastState below), so only rank 0 needs to see the run directory.
  if (opts.resume) {
    // Strict: checkpoints that exist but none loads is an error listing each, never a restart.
    const found = isChief ? await loadLatestCheckpoint(runDir, { logger: log, strict: true }) : null;
    const shared = await shareFromRoot(strategy, found ? { dir: found.dir, step: found.state.step, nimg: found.state.nimg, meta: found.state.meta } : null);
    if (shared) {
      const meta = shared.meta as unknown as TrainerMeta;
      if (meta.model !== objective.name) throw new Error(`${shared.dir} holds a ${meta.model} checkpoint, not ${objective.name}`);
      step = shared.step;
      nimg = shared.nimg;
      // Objective state first: the current phases (and so the optimiser slots to fill) depend on it.
      if (meta.objective && objective.setMeta) objective.setMeta(meta.objective);
      objective.beginStep?.({ step, nimg, rng, replica: strategy.rank, replicas: strategy.worldSize });
      if (found) await restore(objective, objective.phases(), found.state, meta.optimizerWeightNames);
      rng.setState(meta.rng);
      pipeline.setState(meta.pipeline);
      skippedSteps = meta.skippedSteps;
      resumedFrom = step;
      log.info({ checkpoint: shared.dir, step, nimg }, `resumed from ${shared.dir} at step ${step}`);
    } else {
      log.info({ runDir }, 'no checkpoint to resume from (the run stopped before its first one): starting at step 0');
    }
  }
  await broadcastState(strategy, objective);
  // The run is accepted: only from here on does anything get written into runDir, starting with
  // its config (what --resume reads back).
  if (isChief && opts.config !== undefined) writeRunConfig(runDir, opts.config);
  opts.onAccepted?.({ step, resumedFrom });
  if (isChief) truncateStats(runDir, step);
  let best = isChief && opts.bestMetric ? await readBestMetric(runDir) : null;
  if (best && opts.bestMetric && (best.name !== opts.bestMetric.name || best.mode !== opts.bestMetric.mode)) best = null;

  const stats = new Stats();
  defaultStats.drain(); // values reported before this run belong to no tick of it
  const jsonl = isChief ? new StatsJsonlWriter(runDir) : null;
  const tb = isChief ? new TensorBoardWriter(join(runDir, 'tensorboard')) : null;
  if (tb && opts.config !== undefined) {
    // The resolved config as text and as hyper-parameters, so runs can be told apart in TensorBoard.
    tb.text('config', `\`\`\`json\n${JSON.stringify(opts.config, null, 2)}\n\`\`\``, step);
    tb.hparams(flattenHParams(opts.config), objective.name);
  }
  const timeline = opts.timeline ? new Timeline(strategy.rank === 0 ? opts.timeline : `${opts.timeline}.rank${strategy.rank}`, strategy.rank) : null;
  // Every rank reports the same names each tick, so the all-reduced arrays line up.
  stats.declare('time/input', 'time/compute', 'time/apply', 'skipped_steps');
  // One process has nothing to all-reduce: no time/allreduce column of zeros.
  if (strategy.worldSize > 1) stats.declare('time/allreduce');
  const globalBatch = () => loop.batchSize * strategy.worldSize;
  const target = Math.min(loop.steps, opts.stopAfterStep ?? Infinity);
  const progress: Progress | null = isChief && opts.progress !== false ? createProgress(target, step) : null;
  let stopRequested = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    log.warn({ signal: sig }, `${sig}: finishing the current step, then saving a checkpoint (send again to abort without saving)`);
  };
  if (opts.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  const stateNow = async (): Promise<CheckpointState> => {
    const snap = await snapshot(objective, objective.phases());
    const meta: TrainerMeta = {
      model: objective.name,
      rng: rng.getState(),
      pipeline: pipeline.getState(),
      skippedSteps,
      optimizerWeightNames: snap.optNames,
      config: opts.config,
      ...(objective.getMeta ? { objective: objective.getMeta() } : {}),
    };
    return { step, nimg, tensors: snap.tensors, meta: meta as unknown as Record<string, unknown> };
  };
  const checkpoint = async () => {
    await checkReplicasInSync(strategy, objective);
    if (!isChief) return;
    try {
      const dir = await saveCheckpoint(runDir, await stateNow(), { keep: loop.keepCheckpoints });
      log.info({ checkpoint: dir, step }, `checkpoint ${dir}`);
    } catch (err) {
      if (!(err instanceof NonFiniteCheckpointError)) throw err;
      // Diverged weights are never saved: the good checkpoints stay the newest ones.
      log.error({ step, tensors: err.tensors }, `${err.message}; the older checkpoints are kept`);
    }
  };
  const keepIfBest = async (metrics: Record<string, number>) => {
    const want = opts.bestMetric;
    if (!want) return;
    const value = metrics[want.name];
    if (value === undefined || !Number.isFinite(value)) return;
    if (best && !(want.mode === 'min' ? value < best.value : value > best.value)) return;
    try {
      const dir = await saveBestCheckpoint(runDir, await stateNow(), { ...want, value });
      best = { ...want, value };
      log.info({ checkpoint: dir, step, [want.name]: value }, `best ${want.name} so far (${value}): ${dir}`);
    } catch (err) {
      if (!(err instanceof NonFiniteCheckpointError)) throw err;
      log.error({ step, tensors: err.tensors }, `${err.message}; best checkpoint kept`);
    }
  };
  const samples = async () => {
    if (!isChief || !objective.writeSamples) return;
    const path = join(runDir, 'samples', `step-${String(step).padStart(8, '0')}.png`);
    await objective.writeSamples(path);
    // The same grid in TensorBoard's Images tab, one image per sample tick.
    if (tb && existsSync(path)) tb.image('samples', readFileSync(path), step);
    log.info({ path, step }, `samples ${path}`);
  };

  const evaluate = async () => {
    if (!isChief || !objective.evaluate) return;
    const t0 = performance.now();
    const metrics = await objective.evaluate();
    const record = { step, kimg: nimg / 1000, kind: 'eval', ...metrics, 'eval/seconds': (performance.now() - t0) / 1000 };
    jsonl?.write({ ...record, time: Date.now() / 1000 });
    tb?.scalars({ ...metrics }, step);
    log.info(record, formatStatusLine({ eval: `step ${step}`, ...metrics }));
    await keepIfBest(metrics);
  };

  // The ETA prices the remaining schedule stage by stage, measuring each stage's cost as the run goes.
  const stageAt = (s: number): StepStage => objective.stageAt?.(s, nimg + (s - step) * globalBatch()) ?? { name: 'run', cost: 1 };
  const eta = new EtaEstimator(stageAt);
  let tickStage = stageAt(step);
  const statusKeys = (record: Record<string, number>): string[] => {
    if (opts.verbose) return Object.keys(record);
    const chosen = opts.statusMetrics ?? Object.keys(record).filter((k) => k.startsWith('loss/'));
    return chosen.filter((k) => k in record);
  };
  let nonFiniteRun = 0;
  let stageStart = performance.now();
  let stageSteps = 0;
  let tickStart = performance.now();
  let tickSteps = 0;
  let last: Record<string, number> = {};
  const startStep = step;
  let stoppedBy: TrainResult['stoppedBy'] = 'steps';

  try {
    // A fresh run measures the untrained model once, so its metric curve starts from initialisation.
    if (step === 0 && loop.evalEvery > 0 && target > 0) await evaluate();
    while (step < target) {
      // Let the event loop run once per step: with a prefetched batch every await below resolves as a
      // microtask, and signal handlers and background I/O would otherwise wait for the next file write.
      await new Promise<void>((resolve) => setImmediate(resolve));
      // Agree on stopping: a signal reaches the ranks at different moments, and a rank that stopped
      // alone would leave its peers waiting in the next all-reduce.
      stopRequested = await agreeToStop(strategy, stopRequested);
      if (stopRequested) {
        stoppedBy = 'signal';
        break;
      }
      // Fetch this replica's batch (decoded ahead while the previous step computed).
      const tInput = performance.now();
      const batch = await pipeline.next();
      let tCompute = performance.now();
      let computeMs = 0;
      let reduceMs = 0;
      let applyMs = 0;
      timeline?.span('input', tInput, tCompute, { step });
      // The step's named tensors, after the dataset's example spec.
      const x: Batch = Object.fromEntries(Object.entries(batch.fields).map(([name, f]) => [name, tf.tensor(f.data, f.shape, f.dtype)]));
      const ctx: StepContext = { step, nimg, rng, replica: strategy.rank, replicas: strategy.worldSize };
      objective.beginStep?.(ctx);
      let stepFinite = true;
      try {
        for (const phase of objective.phases()) {
          if (phase.interval !== undefined && step % phase.interval !== 0) continue;
          // Compute this phase's loss and gradients, then average them over the replicas.
          tCompute = performance.now();
          const result = objective.computeGradients(phase, x, ctx);
          const names = Object.keys(result.losses);
          let grads = result.grads;
          const tReduce = performance.now();
          grads = await reduceGradients(strategy, grads);
          const tReduced = performance.now();
          const checks = globalNormAndLosses(grads, names.map((n) => result.losses[n] as tf.Scalar));
          const values = (await checks.data()) as Float32Array;
          checks.dispose();
          const tChecked = performance.now();
          computeMs += tReduce - tCompute + (tChecked - tReduced);
          reduceMs += tReduced - tReduce;
          timeline?.span(`compute ${phase.name}`, tCompute, tReduce, { step });
          if (strategy.worldSize > 1) timeline?.span(`allreduce ${phase.name}`, tReduce, tReduced, { step, tensors: grads.length });
          tf.dispose(Object.values(result.losses));
          const finite = values.every((v) => Number.isFinite(v));
          if (finite) {
            // Apply the averaged gradients; variable order is the phase's, the same on every replica.
            const tApply = performance.now();
            phase.optimizer.applyGradients(phase.vars.map((v, i) => ({ name: v.name, tensor: grads[i] as tf.Tensor })));
            applyMs += performance.now() - tApply;
            timeline?.span(`apply ${phase.name}`, tApply, performance.now(), { step });
            stats.report(`grad_norm/${phase.name}`, values[0] as number);
            names.forEach((n, i) => stats.report(`loss/${n}`, values[i + 1] as number));
          } else {
            stepFinite = false;
            log.warn({ step, phase: phase.name, values: Array.from(values) }, `non-finite loss or gradient in phase ${phase.name} at step ${step}: step skipped`);
          }
          tf.dispose(grads);
          if (!stepFinite) break;
        }
      } finally {
        tf.dispose(Object.values(x));
      }
      // Values that any module reported during the step through report() / defaultStats.
      stats.absorb(defaultStats);
      stats.report('time/input', (tCompute - tInput) / 1000);
      stats.report('time/compute', computeMs / 1000);
      if (strategy.worldSize > 1) stats.report('time/allreduce', reduceMs / 1000);
      stats.report('time/apply', applyMs / 1000);
      if (stepFinite) {
        nonFiniteRun = 0;
        objective.afterStep?.(ctx);
      } else {
        skippedSteps++;
        nonFiniteRun++;
        stats.report('skipped_steps', 1);
        if (nonFiniteRun >= loop.maxNonFinite) {
          const good = isChief ? await listCheckpoints(runDir) : [];
          const lastGood = good[good.length - 1];
          const resume = lastGood !== undefined
            ? `resume from the last good checkpoint (${lastGood}) with --resume and a lower --lr`
            : 'no checkpoint was saved before the divergence, so start again with a lower --lr';
          throw new NonFiniteError(`${nonFiniteRun} steps in a row had non-finite losses or gradients (last at step ${step}); ` +
            `stopping. Check the input data for NaN/Inf, and ${resume}.`);
        }
      }
      step++;
      nimg += globalBatch();
      tickSteps++;
      opts.onStepDone?.(step);
      progress?.update(step);
      // A stage boundary closes the ETA's measurement of the stage just left.
      const nextStage = step < target ? stageAt(step) : tickStage;
      const stageChanged = nextStage.name !== tickStage.name;

      // Upkeep: status line and stats once per tick, checkpoints and samples on their intervals.
      stageSteps++;
      if (stageChanged || step % loop.tickEvery === 0 || step === target) {
        const now = performance.now();
        eta.record(tickStage, stageSteps, (now - stageStart) / 1000);
        tickStage = nextStage;
        stageSteps = 0;
        stageStart = now;
      }
      if (step % loop.tickEvery === 0 || step === target) {
        const now = performance.now();
        const secPerStep = (now - tickStart) / 1000 / Math.max(1, tickSteps);
        const tick = await reduceTick(strategy, stats);
        // A name with no value this tick (reported on another rank, or in earlier ticks only) is left out.
        const means = Object.fromEntries(Object.entries(tick).flatMap(([k, v]) => (k === 'skipped_steps' ? [[k, v.count]] : v.count > 0 ? [[k, v.mean]] : [])));
        last = {
          step,
          kimg: nimg / 1000,
          ...means,
          'sec/step': secPerStep,
          'img/s': globalBatch() / secPerStep,
          tensors: tf.memory().numTensors,
          skipped: skippedSteps,
        };
        if (isChief) {
          jsonl?.write({ ...last, time: Date.now() / 1000 });
          tb?.scalars(last, step);
          const left = eta.remaining(step, target);
          const shown: Record<string, number> = {};
          for (const k of statusKeys(last)) if (k !== 'step' && k !== 'kimg') shown[k] = last[k] as number;
          log.info({ ...last, eta: left, kind: 'status' }, formatStatusLine({
            step: { of: [step, target] },
            kimg: last['kimg'],
            ...shown,
            'img/s': opts.verbose ? undefined : last['img/s'],
            // Live tensors: a count that grows from tick to tick is a leak (DESIGN: always shown).
            tensors: opts.verbose ? undefined : last['tensors'],
            eta: { seconds: left },
          }));
        }
        tickStart = now;
        tickSteps = 0;
      }
      if (step % loop.checkpointEvery === 0) await checkpoint();
      if (step % loop.sampleEvery === 0) await samples();
      if (loop.evalEvery > 0 && step % loop.evalEvery === 0) await evaluate();
    }
    if (stopRequested && stoppedBy === 'steps' && step < target) stoppedBy = 'signal';
    if (step >= target && opts.stopAfterStep !== undefined && opts.stopAfterStep < loop.steps) stoppedBy = 'stopAfterStep';
    // Always end with a checkpoint and a picture of where the run stands.
    if (step % loop.checkpointEvery !== 0) await checkpoint();
    if (step % loop.sampleEvery !== 0 && step > startStep) await samples();
  } finally {
    progress?.stop();
    jsonl?.close();
    tb?.close();
    timeline?.close();
    if (opts.handleSignals !== false) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
  return { step, nimg, resumedFrom, skippedSteps, stoppedBy, last };
}
