/**
 * What a model must provide to be trained by the one trainer loop: its phases (as data) and, per phase,
 * the gradients of its loss on a batch. The WAE, the conditional ProGAN and the 3DGAN differ only here.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/random.js';

/**
 * One step's input on this replica: named tensors with the batch axis first, built by the trainer from
 * the dataset's example spec (images are `batch.images` [N, H, W, C]; a shower could be
 * `{ ecal: [N, 51, 51, 25, 1], energy: [N], theta: [N] }`). The trainer owns and disposes them.
 */
export type Batch = Readonly<Record<string, tf.Tensor>>;

/** One optimiser step of a training step, e.g. `D` then `G` for a GAN. */
export interface Phase {
  /** Short name used in logs, stats and checkpoint keys (`AE`, `D`, `G`). */
  name: string;
  /** Variables this phase updates, in a fixed order that is the same on every replica. */
  vars: tf.Variable[];
  /** The optimiser that applies this phase's (reduced) gradients. */
  optimizer: tf.Optimizer;
  /** Run this phase on steps where `step % interval === 0`; default every step. */
  interval?: number;
}

/** What a phase's gradient computation may read. */
export interface StepContext {
  /** Steps completed before this one. */
  step: number;
  /** Real images shown so far, over all replicas. */
  nimg: number;
  /** Seeded source of noise seeds; part of the checkpoint, so a resumed run draws the same noise. */
  rng: Rng;
  /**
   * This replica's rank (0 in a single process). The rng stream is the same on every replica: draw
   * the noise of the whole global batch and keep this replica's rows (see `replicas`), so that
   * replicas draw different noise, exactly as one process with the global batch would.
   */
  replica: number;
  /**
   * Number of replicas taking part (1 in a single process). An objective that draws the noise of the
   * whole global batch from the shared stream and keeps rows [replica * b, (replica + 1) * b) makes
   * N replicas of batch b draw exactly what one process of batch N * b would.
   */
  replicas: number;
}

/** Gradients and loss parts of one phase on one batch; the trainer owns and disposes every tensor. */
export interface PhaseResult {
  /** Loss parts reported as `loss/<name>` (the first one is the optimised total). */
  losses: Record<string, tf.Scalar>;
  /** Gradients in the order of `phase.vars`. */
  grads: tf.Tensor[];
}

/** A trainable model with its losses. */
export interface Objective {
  /** Model name written into checkpoints (`wae`, `progan`, `gan3d`). */
  readonly name: string;
  /**
   * The phases of one training step, in execution order. Read again at every step (after
   * {@link beginStep}), so a growing model may change a phase's variables and replace its optimiser
   * (e.g. a fresh Adam at each new resolution); the trainer checkpoints whatever phases are current.
   */
  phases(): Phase[];
  /** Bring step-dependent state (resolution, fade alpha) up to `ctx` before the step's phases are read. */
  beginStep?(ctx: StepContext): void;
  /** Every variable that defines the model's state (weights and e.g. batch-norm statistics), by stable name. */
  stateVariables(): Array<[string, tf.Variable]>;
  /**
   * State each replica updates from its own shard rather than through the averaged gradients
   * (batch-norm moving statistics): averaged over the replicas before every checkpoint. Default none;
   * everything else is identical on every replica by construction and is left untouched.
   */
  replicaLocalVariables?(): tf.Variable[];
  /** Compute one phase's loss and gradients on a batch of named tensors. Synchronous tensor code only. */
  computeGradients(phase: Phase, batch: Batch, ctx: StepContext): PhaseResult;
  /** Called after each applied step (e.g. EMA updates); synchronous. */
  afterStep?(ctx: StepContext): void;
  /**
   * The cost class of step `step` (at `nimg` images shown), for an ETA that knows the schedule: a
   * progressive GAN names its resolution and phase, with cost ~ pixels per image. Default: every
   * step costs the same.
   */
  stageAt?(step: number, nimg: number): { name: string; cost: number };
  /** Measure the model on held-out data (e.g. SWD); run on rank 0 every `loop.evalEvery` steps. */
  evaluate?(): Promise<Record<string, number>>;
  /** Write a picture of the model's current behaviour (e.g. reconstructions) to a PNG path. */
  writeSamples?(path: string): Promise<void>;
  /** JSON state beyond variables (schedules, counters), saved in checkpoints. */
  getMeta?(): Record<string, unknown>;
  /** Restore {@link getMeta}'s state. */
  setMeta?(meta: Record<string, unknown>): void;
  /** Release every tensor the objective owns. */
  dispose(): void;
}

/**
 * This replica's rows [replica * n, (replica + 1) * n) of a draw for the whole global batch
 * (`draw(n * replicas)`, seeded identically on every replica), so that N replicas of batch n use
 * exactly the noise one process of batch N * n would (the pipeline shards the images the same way).
 */
export function replicaRows(draw: (rows: number) => tf.Tensor, n: number, ctx: Pick<StepContext, 'replica' | 'replicas'>): tf.Tensor {
  if (ctx.replicas === 1) return draw(n);
  return tf.tidy(() => tf.slice(draw(n * ctx.replicas), ctx.replica * n, n));
}

/**
 * The tensor `name` of a batch, checked to have `rank` axes (batch axis included); a clear error names
 * the fields the batch does have (a model opened with another dataset's spec).
 */
export function batchField<T extends tf.Tensor>(batch: Batch, name: string, rank: number): T {
  const t = batch[name];
  if (t === undefined) throw new Error(`the batch has no field "${name}" (it has ${Object.keys(batch).join(', ') || 'none'}): the dataset's example spec must declare it`);
  if (t.rank !== rank) throw new Error(`batch field "${name}" must have ${rank} axes, got [${t.shape.join(', ')}]`);
  return t as T;
}
