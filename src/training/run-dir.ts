/** The files every run directory shares: its config.json, and reading a finished run back. */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import { resolveCheckpoint, splitCheckpointSpec, type CheckpointState } from './checkpoint.js';
import type { TrainOptions } from './trainer.js';

/** Write `runDir/config.json` atomically (temp file, rename). */
export function writeRunConfig(runDir: string, config: unknown): void {
  mkdirSync(runDir, { recursive: true });
  const path = join(runDir, 'config.json');
  writeFileSync(`${path}.tmp`, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

/**
 * Read a run's config (checking it is a `model` run) and one of its checkpoints: `spec` is
 * `RUN[/step-N|best|latest]` (see {@link resolveCheckpoint}); a bare `RUN` is its newest good one.
 */
export async function readRun<C extends { model: string }>(
  spec: string,
  model: C['model'],
  what: string,
  opts: { logger?: Logger } = {},
): Promise<{ config: C; state: CheckpointState; dir: string }> {
  const { runDir } = splitCheckpointSpec(spec);
  const cfgPath = join(runDir, 'config.json');
  if (!existsSync(cfgPath)) throw new Error(`${runDir} is not a proggan run directory (no config.json)`);
  const config = JSON.parse(readFileSync(cfgPath, 'utf8')) as C;
  if (config.model !== model) throw new Error(`${runDir} holds a ${String(config.model)} run, not ${what}`);
  const found = await resolveCheckpoint(spec, opts.logger ? { logger: opts.logger } : {});
  return { config, state: found.state, dir: found.dir };
}

/** How a run's loop behaves, shared by every `trainXxx` call and handed on to {@link TrainOptions}. */
export interface RunLoopOptions {
  /** Progress bar on a TTY. Default true. */
  progress?: boolean;
  /** Stop early after this step (tests). Default unset. */
  stopAfterStep?: number;
  /** Handle SIGINT/SIGTERM (checkpoint, then return). Default true. */
  handleSignals?: boolean;
  /** Chrome trace file of every step's parts. Default none. */
  timeline?: string;
  /**
   * Called once the run is accepted (a resume's checkpoint loaded and restored into the model),
   * before the trainer writes anything into the run directory; the CLI writes config.json here so a
   * rejected start leaves the directory as it was.
   */
  onAccepted?: (info: { step: number; resumedFrom: number }) => void;
  /** Called after every completed step with the step count. */
  onStepDone?: (step: number) => void;
  /** Keep the best checkpoint by this metric of `evaluate()` in checkpoints/best/ (the model descriptor's `bestMetric`). */
  bestMetric?: { name: string; mode: 'min' | 'max' };
  /** Statistics the status line shows (a model descriptor's `statusMetrics`). Default every `loss/*`. */
  statusMetrics?: readonly string[];
  /** Every statistic in the status line. Default false. */
  verbose?: boolean;
}

/** The options of {@link RunLoopOptions} that are set, ready to spread into `train()`'s options. */
export function loopOptions(o: RunLoopOptions): Pick<TrainOptions, keyof RunLoopOptions> {
  const out: Pick<TrainOptions, keyof RunLoopOptions> = {};
  if (o.progress !== undefined) out.progress = o.progress;
  if (o.stopAfterStep !== undefined) out.stopAfterStep = o.stopAfterStep;
  if (o.handleSignals !== undefined) out.handleSignals = o.handleSignals;
  if (o.timeline !== undefined) out.timeline = o.timeline;
  if (o.onAccepted !== undefined) out.onAccepted = o.onAccepted;
  if (o.onStepDone !== undefined) out.onStepDone = o.onStepDone;
  if (o.bestMetric !== undefined) out.bestMetric = o.bestMetric;
  if (o.statusMetrics !== undefined) out.statusMetrics = o.statusMetrics;
  if (o.verbose !== undefined) out.verbose = o.verbose;
  return out;
}
