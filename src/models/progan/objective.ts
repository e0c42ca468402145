/**
 * The conditional progressive GAN objective (corner completion, REFERENCE.md section 2).
 *
 * A batch holds full real images [N, 2R, 2R, C] at the largest resolution (R = largest corner
 * side). Each step:
 * 1. the schedule (a pure function of the images shown) gives the current corner side R', the
 *    fade alpha and the learning rates; a new resolution gets a fresh pair of optimisers;
 * 2. the known corners tl, tr, bl of the full-resolution reals are encoded by the frozen WAE
 *    encoder (inference mode; its weights are in no phase) into the generator's conditions;
 * 3. the reals are box-downscaled to 2R' and, during a fade, blended like ProGAN's reals;
 * 4. phase `D`: WGAN-GP for the global D (the 2R' image with the generated corner pasted in at the
 *    bottom right) and the local D (the R' corner alone), weighted (default (L_g + L_l) / 2);
 * 5. phase `G`: -(w_g D_g(fake) + w_l D_l(fake));
 * 6. after the step, the generator's EMA is updated (it draws the sample grids).
 *
 * Every random draw (noise, penalty mixing weights) takes its seed from the step context's RNG,
 * which is checkpointed, so a resumed run draws the same numbers as an uninterrupted one. Draws
 * cover the whole global batch and each replica keeps its own rows, so N processes train exactly
 * what one process with the global batch would (up to the order of float additions).
 */
import * as tf from '@tensorflow/tfjs';
import { slicedWassersteinDistance } from '../../metrics/swd.js';
import { downscale2d, upscale2d } from '../../layers/index.js';
import { combineLosses, discriminatorLoss, generatorLoss } from '../../losses/wgan-gp.js';
import {
  createGlobalDiscriminator,
  createLocalDiscriminator,
  fadeRealImages,
  mirroredContext,
  type ProGanDiscriminator,
  ProGanGenerator,
} from './networks.js';
import type { Logger } from '../../util/logger.js';
import { hashSeed } from '../../util/random.js';
import type { ProGanLossConfig, ProGanModelConfig, ProGanOptimConfig } from './config.js';
import { ExponentialMovingAverage } from '../../training/ema.js';
import { batchField, replicaRows, type Batch, type Objective, type Phase, type PhaseResult, type StepContext } from '../../training/objective.js';
import { writeRowsGrid } from '../../training/samples.js';
import { schedule, validateScheduleConfig, type ScheduleConfig, type ScheduleState } from './schedule.js';

import { ResumableAdam } from '../../training/resumable-adam.js';

// ---------------------------------------------------------------------------------------------
// Corner plumbing

/** Something that maps R x R corner tiles [N, R, R, C] to latents [N, latentDim] (e.g. a trained WAE). */
export interface CornerEncoder {
  /** Encode in inference mode; the result is a new tensor the caller owns. */
  encode(x: tf.Tensor4D): tf.Tensor2D;
}

/** The four R' x R' corners of images [N, 2R', 2R', C]. */
export function imageCorners(x: tf.Tensor4D): { tl: tf.Tensor4D; tr: tf.Tensor4D; bl: tf.Tensor4D; br: tf.Tensor4D } {
  const [n, h, w, c] = x.shape;
  if (h !== w || h % 2 !== 0) throw new Error(`corners need square images of even side, got ${h}x${w}`);
  const r = h / 2;
  const at = (y: number, xo: number) => tf.slice(x, [0, y, xo, 0], [n, r, r, c]); // [N, R', R', C]
  return { tl: at(0, 0), tr: at(0, r), bl: at(r, 0), br: at(r, r) };
}

/** Assemble corners [N, R', R', C] into images [N, 2R', 2R', C] (inverse of {@link imageCorners}). */
export function assembleCorners(tl: tf.Tensor4D, tr: tf.Tensor4D, bl: tf.Tensor4D, br: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.concat([tf.concat([tl, tr], 2), tf.concat([bl, br], 2)], 1)); // [N, 2R', 2R', C]
}

/** Encode the known corners tl, tr, bl of full-resolution images in one encoder call: three [N, latent]. */
function encodeKnownCorners(encoder: CornerEncoder, images: tf.Tensor4D): tf.Tensor2D[] {
  return tf.tidy(() => {
    const n = images.shape[0];
    const { tl, tr, bl } = imageCorners(images);
    const z = encoder.encode(tf.concat([tl, tr, bl], 0)); // [3N, latent]
    if (z.rank !== 2 || z.shape[0] !== 3 * n) throw new Error(`the encoder returned shape [${z.shape.join(', ')}] for ${3 * n} corners`);
    return tf.split(z, 3, 0) as tf.Tensor2D[];
  });
}

// ---------------------------------------------------------------------------------------------
// The objective

/** Options of {@link ProGanObjective}. */
export interface ProGanObjectiveArgs {
  /** Networks (maxCornerResolution, zDim, latentDim, fmaps, outputs). Required. */
  model: ProGanModelConfig;
  /** Image channels. Required. */
  channels: 1 | 3;
  /** Progressive schedule with maxResolution = model.maxCornerResolution. Required. */
  schedule: ScheduleConfig;
  /** Steps between re-evaluations of the schedule (ProGAN's minibatch_repeats). Default 1. */
  minibatchRepeats?: number;
  /** WGAN-GP settings. Required. */
  loss: ProGanLossConfig;
  /** Adam settings and reset policy. Required. */
  optim: ProGanOptimConfig;
  /** EMA decay of the generator per step. Default 0.999. */
  emaDecay?: number;
  /** The frozen corner encoder at resolution maxCornerResolution; owned by the caller. Required. */
  encoder: CornerEncoder;
  /** Full images [2R, 2R, C] (HWC) shown in sample grids; fixed, ideally held out. Default none. */
  sampleImages?: Float32Array[];
  /** Held-out full images [2R, 2R, C] on which {@link ProGanObjective.evaluate} measures SWD. Default none. */
  evalImages?: Float32Array[];
  /** Seed of the initial weights and of the sample grids' fixed noise. Required. */
  seed: number;
  /** Logs resolution changes. Default none. */
  logger?: Logger;
}

/** Which optimiser pair is live: the resolution (and phase, with reset 'phase') it was made for. */
export interface OptimizerStage {
  /** Corner side the optimisers were made for. */
  resolution: number;
  /** Schedule phase they were made in (only distinguishes stages with reset 'phase'). */
  phase: 'fade' | 'stable';
}

/** Tensors shared by the D and G phases of one step (one batch). */
interface StepInputs {
  batch: tf.Tensor4D;
  /** Downscaled (and, during a fade, blended) reals [N, 2R', 2R', C]. */
  reals: tf.Tensor4D;
  /** Latents of tl, tr, bl, each [N, latentDim]. */
  conditions: tf.Tensor2D[];
  /** Spatial conditioning: the mirrored neighbours [N, R', R', 3C] of the reals. */
  context?: tf.Tensor4D;
}

/** State of {@link ProGanObjective} beyond variables, stored in checkpoints. */
export interface ProGanMeta {
  /** Images shown when the schedule was last evaluated (it is evaluated every minibatchRepeats steps). */
  scheduleNimg: number | null;
  /** The stage the live optimisers belong to (their slots are in the checkpoint). */
  optimizerStage: OptimizerStage | null;
}

/** The conditional ProGAN: generator, global and local discriminators, generator EMA. */
export class ProGanObjective implements Objective {
  readonly name = 'progan';
  /** The generator (training weights). */
  readonly generator: ProGanGenerator;
  /** The global discriminator (full 2R' images). */
  readonly dGlobal: ProGanDiscriminator;
  /** The local discriminator (R' corners). */
  readonly dLocal: ProGanDiscriminator;
  /** Moving average of every generator variable. */
  readonly ema: ExponentialMovingAverage;
  private readonly args: ProGanObjectiveArgs;
  private readonly repeats: number;
  private current: ScheduleState;
  private scheduleNimg: number | null = null;
  private opt: { stage: OptimizerStage; key: string; phases: Phase[] } | null = null;
  private pinned: OptimizerStage | null = null;
  private cache: StepInputs | null = null;
  private readonly samples: { reals: tf.Tensor4D; conditions: tf.Tensor2D[]; noise: tf.Tensor2D[] } | null;

  /** Whether the generator and the local critic see the known neighbours' pixels. */
  get spatial(): boolean {
    return this.args.model.conditioning === 'spatial';
  }

  /** The local critic's input: the corner, beside its context when spatially conditioned. */
  private localInput(corner: tf.Tensor4D, context: tf.Tensor4D | undefined): tf.Tensor4D {
    return context === undefined ? corner : (tf.concat([corner, context], 3) as tf.Tensor4D);
  }

  constructor(args: ProGanObjectiveArgs) {
    this.args = args;
    const m = args.model;
    if (args.schedule.maxResolution !== m.maxCornerResolution) {
      throw new Error(`schedule.maxResolution ${args.schedule.maxResolution} differs from model.maxCornerResolution ${m.maxCornerResolution}`);
    }
    validateScheduleConfig(args.schedule);
    this.repeats = args.minibatchRepeats ?? 1;
    if (!Number.isInteger(this.repeats) || this.repeats < 1) throw new Error(`minibatchRepeats must be a positive integer, got ${this.repeats}`);
    const common = { channels: args.channels, fmapBase: m.fmapBase, fmapMax: m.fmapMax };
    this.generator = new ProGanGenerator({
      ...common,
      maxResolution: m.maxCornerResolution,
      zDim: m.zDim,
      latentDim: m.latentDim,
      numConditions: 3,
      outputActivation: m.generatorOutput,
      seed: hashSeed('progan/G', args.seed),
      contextChannels: this.spatial ? 3 * args.channels : 0,
    });
    const dArgs = { ...common, maxCornerResolution: m.maxCornerResolution, mbstdGroupSize: m.mbstdGroupSize, outputActivation: m.discriminatorOutput };
    this.dGlobal = createGlobalDiscriminator({ ...dArgs, seed: hashSeed('progan/Dg', args.seed) });
    // Spatial conditioning: the local critic reads the corner beside its mirrored known context (4C channels).
    this.dLocal = createLocalDiscriminator({ ...dArgs, channels: this.spatial ? 4 * args.channels : args.channels, seed: hashSeed('progan/Dl', args.seed) });
    this.ema = new ExponentialMovingAverage(this.generator.variables(), { decay: args.emaDecay ?? 0.999, prefix: 'ema' });
    this.current = schedule(0, args.schedule);
    this.samples = this.prepareSamples();
  }

  /** Where the schedule stood at the last {@link beginStep}. */
  get state(): ScheduleState {
    return this.current;
  }

  phases(): Phase[] {
    if (this.opt === null) this.startOptimizers(this.stageOf(this.current));
    return (this.opt as { phases: Phase[] }).phases;
  }

  /**
   * The ETA's cost class of a step: corner side and phase, priced by the pixels of a whole image
   * (a fade step runs both the new block and the upsampled old one: about 1.25x).
   */
  stageAt(_step: number, nimg: number): { name: string; cost: number } {
    const s = schedule(nimg, this.args.schedule);
    return { name: `r${s.resolution}/${s.phase}`, cost: 4 * s.resolution * s.resolution * (s.phase === 'fade' ? 1.25 : 1) };
  }

  beginStep(ctx: StepContext): void {
    this.clearCache();
    // Evaluate the schedule once per minibatchRepeats steps (ProGAN's minibatch_repeats).
    if (this.scheduleNimg === null || ctx.step % this.repeats === 0) this.scheduleNimg = ctx.nimg;
    const s = schedule(this.scheduleNimg, this.args.schedule);
    if (s.resolution !== this.current.resolution || s.phase !== this.current.phase) {
      this.args.logger?.info(
        { resolution: s.resolution, phase: s.phase, kimg: ctx.nimg / 1000, lrG: s.lrG, lrD: s.lrD },
        `corner resolution ${s.resolution}: ${s.phase === 'fade' ? 'fade-in' : 'stable'} from ${(ctx.nimg / 1000).toFixed(1)} kimg`,
      );
    }
    this.current = s;
    // After a resume the trainer restores the optimiser slots saved by the stage that wrote the
    // checkpoint; keep that stage's optimisers for this one call, so the slots land where they belong
    // (the next beginStep moves on to a fresh pair if the stage changed at this step).
    const pinned = this.pinned;
    this.pinned = null;
    const want = pinned ?? this.stageOf(s);
    if (this.opt === null || this.opt.key !== this.keyOf(want)) this.startOptimizers(want);
  }

  stateVariables(): Array<[string, tf.Variable]> {
    return [...this.generator.variables(), ...this.dGlobal.variables(), ...this.dLocal.variables(), ...this.ema.variables()];
  }

  computeGradients(phase: Phase, batch: Batch, ctx: StepContext): PhaseResult {
    const inputs = this.stepInputs(batchField<tf.Tensor4D>(batch, 'images', 4)); // full images [N, 2R, 2R, C]
    if (phase.name === 'D') return this.discriminatorGradients(phase, inputs, ctx);
    if (phase.name === 'G') return this.generatorGradients(phase, inputs, ctx);
    throw new Error(`unknown phase ${phase.name}`);
  }

  afterStep(_ctx: StepContext): void {
    this.clearCache();
    this.ema.update();
  }

  getMeta(): Record<string, unknown> {
    const meta: ProGanMeta = { scheduleNimg: this.scheduleNimg, optimizerStage: this.opt ? { ...this.opt.stage } : null };
    return { ...meta };
  }

  setMeta(meta: Record<string, unknown>): void {
    const n = meta['scheduleNimg'];
    this.scheduleNimg = typeof n === 'number' ? n : null;
    const st = meta['optimizerStage'] as Partial<OptimizerStage> | null | undefined;
    this.pinned =
      st && typeof st.resolution === 'number' && (st.phase === 'fade' || st.phase === 'stable') ? { resolution: st.resolution, phase: st.phase } : null;
  }

  /**
   * Generate the bottom-right corners of full-resolution images [N, 2R, 2R, C] from their other three
   * corners at the current resolution and alpha: [N, R', R', C], with the EMA weights unless
   * `ema` is false. For metrics and inspection; the noise comes from `seed`.
   */
  generateCorners(images: tf.Tensor4D, seed: number, opts: { ema?: boolean } = {}): tf.Tensor4D {
    const { resolution: r, alpha } = this.current;
    const run = () =>
      tf.tidy(() => {
        const conditions = encodeKnownCorners(this.args.encoder, images);
        const noise = tf.randomNormal([images.shape[0], this.args.model.zDim], 0, 1, 'float32', seed) as tf.Tensor2D;
        const context = this.contextOf(images, r);
        return this.generator.apply({ noise, conditions, ...(context ? { context } : {}) }, { resolution: r, alpha }); // [N, R', R', C]
      });
    return opts.ema === false ? run() : this.ema.apply(run);
  }

  /**
   * Sliced Wasserstein distance (x1e3, ProGAN's Laplacian-pyramid version) between the bottom-right
   * corners the EMA generator completes for the held-out images and those images' real corners, both
   * at the current resolution; plus the resolution and alpha it was measured at.
   */
  async evaluate(): Promise<Record<string, number>> {
    const imgs = this.args.evalImages ?? [];
    if (imgs.length < 2) return {};
    const side = 2 * this.args.model.maxCornerResolution;
    const c = this.args.channels;
    const flat = new Float32Array(imgs.length * side * side * c);
    imgs.forEach((img, i) => flat.set(img, i * side * side * c));
    const { resolution: r, alpha } = this.current;
    const [fake, real] = tf.tidy(() => {
      const x = tf.tensor4d(flat, [imgs.length, side, side, c]);
      const factor = this.args.model.maxCornerResolution / r;
      const br = imageCorners(x).br; // [N, R, R, C]
      return [this.generateCorners(x, hashSeed('progan/eval', this.args.seed) >>> 1), factor > 1 ? downscale2d(br, factor) : br];
    });
    try {
      const shape: [number, number, number, number] = [imgs.length, r, r, c];
      const swd = slicedWassersteinDistance((await fake.data()) as Float32Array, (await real.data()) as Float32Array, shape, { seed: 1 });
      return { 'swd/mean': swd.mean, ...Object.fromEntries(swd.perLevel.map((l) => [`swd/${l.resolution}`, l.swd])), 'eval/resolution': r, 'eval/alpha': alpha };
    } finally {
      tf.dispose([fake, real]);
    }
  }

  /** The mirrored context of full images [N, 2R, 2R, C] at corner side `r` (undefined without spatial conditioning). */
  contextOf(images: tf.Tensor4D, r: number): tf.Tensor4D | undefined {
    if (!this.spatial) return undefined;
    return tf.tidy(() => {
      const side = images.shape[1];
      const small = side === 2 * r ? images : downscale2d(images, side / (2 * r));
      const { tl, tr, bl } = imageCorners(small);
      return mirroredContext(tl, tr, bl);
    });
  }

  /** Rows: real images (held out), then the same with the corner generated by the EMA generator, for two fixed noises. */
  async writeSamples(path: string): Promise<void> {
    const samples = this.samples;
    if (samples === null) return;
    const { resolution: r, alpha } = this.current;
    const big = this.args.model.maxCornerResolution;
    const up = big / r;
    const rowsT = tf.tidy(() => {
      const reals = downscale2d(samples.reals, up); // [n, 2R', 2R', C]
      const { tl, tr, bl } = imageCorners(reals);
      const context = this.spatial ? mirroredContext(tl, tr, bl) : undefined;
      const completed = this.ema.apply(() =>
        samples.noise.map((noise) => {
          const fake = this.generator.apply({ noise, conditions: samples.conditions, ...(context ? { context } : {}) }, { resolution: r, alpha }); // [n, R', R', C]
          return assembleCorners(tl, tr, bl, fake);
        }),
      );
      // Show every resolution at the full size so grids from a run line up.
      // (A clone at full size: the rows are disposed below, the fixed reals must survive.)
      return [reals, ...completed].map((x) => (up === 1 ? tf.clone(x) : upscale2d(x, up))); // [n, 2R, 2R, C]
    });
    try {
      const rows = await Promise.all(rowsT.map(async (t) => (await t.data()) as Float32Array));
      const side = 2 * big;
      await writeRowsGrid(path, rows, [side, side, this.args.channels], { scale: Math.max(1, Math.floor(128 / side)) });
    } finally {
      tf.dispose(rowsT);
    }
  }

  dispose(): void {
    this.clearCache();
    if (this.opt) for (const p of this.opt.phases) p.optimizer.dispose();
    this.opt = null;
    if (this.samples) tf.dispose([this.samples.reals, ...this.samples.conditions, ...this.samples.noise]);
    this.ema.dispose();
    this.generator.dispose();
    this.dGlobal.dispose();
    this.dLocal.dispose();
  }

  // -------------------------------------------------------------------------------------------
  // Optimisers per stage

  private stageOf(s: ScheduleState): OptimizerStage {
    return { resolution: s.resolution, phase: s.phase };
  }

  private keyOf(stage: OptimizerStage): string {
    return this.args.optim.reset === 'phase' ? `${stage.resolution}/${stage.phase}` : `${stage.resolution}`;
  }

  /** Dispose the live optimisers and make a fresh pair (with that resolution's learning rates). */
  private startOptimizers(stage: OptimizerStage): void {
    if (this.opt) for (const p of this.opt.phases) p.optimizer.dispose();
    const r = stage.resolution;
    const lrG = this.args.schedule.lrGByResolution[String(r)] ?? this.args.schedule.lrG;
    const lrD = this.args.schedule.lrDByResolution[String(r)] ?? this.args.schedule.lrD;
    const o = this.args.optim;
    const adam = (rate: number) => new ResumableAdam(rate, o.beta1, o.beta2, o.epsilon);
    const phases: Phase[] = [
      { name: 'D', vars: [...this.dGlobal.trainableVariables(2 * r), ...this.dLocal.trainableVariables(r)], optimizer: adam(lrD) },
      { name: 'G', vars: this.generator.trainableVariables(r), optimizer: adam(lrG) },
    ];
    this.opt = { stage: { ...stage }, key: this.keyOf(stage), phases };
  }

  // -------------------------------------------------------------------------------------------
  // Losses

  /** Conditions and current-resolution reals of a batch, computed once and shared by both phases. */
  private stepInputs(batch: tf.Tensor4D): StepInputs {
    if (this.cache !== null && this.cache.batch === batch) return this.cache;
    this.clearCache();
    const big = this.args.model.maxCornerResolution;
    const [, h, w, c] = batch.shape;
    if (h !== 2 * big || w !== 2 * big || c !== this.args.channels) {
      throw new Error(`ProGAN batches must be full images [N, ${2 * big}, ${2 * big}, ${this.args.channels}], got [${batch.shape.join(', ')}]`);
    }
    const { resolution: r, alpha } = this.current;
    const made = tf.tidy(() => {
      // Encode the known corners at the encoder's own (full) resolution.
      const conditions = encodeKnownCorners(this.args.encoder, batch);
      // Bring the reals to 2R' and blend them like the networks during a fade.
      const small = downscale2d(batch, big / r); // [N, 2R', 2R', C]
      // (A clone when nothing was resampled: the cache must not own the trainer's batch tensor.)
      const reals = alpha < 1 ? fadeRealImages(small, alpha) : small === batch ? tf.clone(batch) : small;
      let context: tf.Tensor4D | undefined;
      if (this.spatial) {
        const k = imageCorners(reals);
        context = mirroredContext(k.tl, k.tr, k.bl); // [N, R', R', 3C]
      }
      return { reals, conditions, ...(context ? { context } : {}) };
    });
    this.cache = { batch, ...made };
    return this.cache;
  }

  private clearCache(): void {
    if (this.cache === null) return;
    tf.dispose([this.cache.reals, ...this.cache.conditions, ...(this.cache.context ? [this.cache.context] : [])]);
    this.cache = null;
  }

  private weights(): { g: number; l: number } {
    return { g: this.args.loss.globalWeight, l: 1 - this.args.loss.globalWeight };
  }

  private discriminatorGradients(phase: Phase, inputs: StepInputs, ctx: StepContext): PhaseResult {
    const noiseSeed = hashSeed(ctx.rng.seed()) >>> 1;
    const epsGlobalSeed = hashSeed(ctx.rng.seed()) >>> 1;
    const epsLocalSeed = hashSeed(ctx.rng.seed()) >>> 1;
    const { resolution: r, alpha } = this.current;
    const loss = this.args.loss;
    const w = this.weights();
    return tf.tidy(() => {
      const n = inputs.reals.shape[0];
      const { tl, tr, bl, br } = imageCorners(inputs.reals);
      // Fakes are constants here: generated outside the gradient tape.
      const noise = replicaRows((rows) => tf.randomNormal([rows, this.args.model.zDim], 0, 1, 'float32', noiseSeed), n, ctx) as tf.Tensor2D;
      const ctxIn = inputs.context ? { context: inputs.context } : {};
      const fake = this.generator.apply({ noise, conditions: inputs.conditions, ...ctxIn }, { resolution: r, alpha }); // [N, R', R', C]
      const fakeFull = assembleCorners(tl, tr, bl, fake); // [N, 2R', 2R', C]
      const epsGlobal = replicaRows((rows) => tf.randomUniform([rows], 0, 1, 'float32', epsGlobalSeed), n, ctx);
      const epsLocal = replicaRows((rows) => tf.randomUniform([rows], 0, 1, 'float32', epsLocalSeed), n, ctx);
      const parts: Record<string, tf.Scalar> = {};
      const { value, grads } = tf.variableGrads(() => {
        const common = { lambda: loss.gpWeight, drift: loss.drift };
        const g = discriminatorLoss({ ...common, d: (x) => this.dGlobal.apply(x, { alpha }), real: inputs.reals, fake: fakeFull, epsilon: epsGlobal });
        const l = discriminatorLoss({
          ...common,
          d: (x) => this.dLocal.apply(x, { alpha }),
          real: this.localInput(br, inputs.context),
          fake: this.localInput(fake, inputs.context),
          epsilon: epsLocal,
        });
        // variableGrads disposes the forward pass's intermediates; keep the parts we report.
        parts['d_global'] = tf.keep(g.loss);
        parts['d_local'] = tf.keep(l.loss);
        parts['gp_global'] = tf.keep(g.penalty);
        parts['gp_local'] = tf.keep(l.penalty);
        parts['w_global'] = tf.keep(tf.neg(g.wasserstein));
        parts['w_local'] = tf.keep(tf.neg(l.wasserstein));
        return combineLosses([{ loss: g.loss, weight: w.g }, { loss: l.loss, weight: w.l }], loss.combination);
      }, phase.vars);
      return { losses: { d: value, ...parts }, grads: orderedGrads(phase, grads) };
    });
  }

  private generatorGradients(phase: Phase, inputs: StepInputs, ctx: StepContext): PhaseResult {
    const noiseSeed = hashSeed(ctx.rng.seed()) >>> 1;
    const { resolution: r, alpha } = this.current;
    const w = this.weights();
    return tf.tidy(() => {
      const n = inputs.reals.shape[0];
      const { tl, tr, bl } = imageCorners(inputs.reals);
      const noise = replicaRows((rows) => tf.randomNormal([rows, this.args.model.zDim], 0, 1, 'float32', noiseSeed), n, ctx) as tf.Tensor2D;
      const parts: Record<string, tf.Scalar> = {};
      const { value, grads } = tf.variableGrads(() => {
        const fake = this.generator.apply({ noise, conditions: inputs.conditions, ...(inputs.context ? { context: inputs.context } : {}) }, { resolution: r, alpha }); // [N, R', R', C]
        const g = generatorLoss(this.dGlobal.apply(assembleCorners(tl, tr, bl, fake), { alpha }));
        const l = generatorLoss(this.dLocal.apply(this.localInput(fake, inputs.context), { alpha }));
        parts['g_global'] = tf.keep(g);
        parts['g_local'] = tf.keep(l);
        return combineLosses([{ loss: g, weight: w.g }, { loss: l, weight: w.l }], this.args.loss.combination);
      }, phase.vars);
      return { losses: { g: value, ...parts }, grads: orderedGrads(phase, grads) };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Sample grids

  private prepareSamples(): { reals: tf.Tensor4D; conditions: tf.Tensor2D[]; noise: tf.Tensor2D[] } | null {
    const imgs = this.args.sampleImages ?? [];
    if (imgs.length === 0) return null;
    const side = 2 * this.args.model.maxCornerResolution;
    const c = this.args.channels;
    const per = side * side * c;
    const flat = new Float32Array(imgs.length * per);
    imgs.forEach((img, i) => {
      if (img.length !== per) throw new Error(`sample image ${i} has ${img.length} values, expected ${side}x${side}x${c}`);
      flat.set(img, i * per);
    });
    const reals = tf.tensor4d(flat, [imgs.length, side, side, c]);
    const conditions = encodeKnownCorners(this.args.encoder, reals);
    const noise = [1, 2].map((k) => tf.randomNormal([imgs.length, this.args.model.zDim], 0, 1, 'float32', hashSeed('progan/samples', this.args.seed, k) >>> 1) as tf.Tensor2D);
    return { reals, conditions, noise };
  }
}

/** Gradients in the order of `phase.vars`; a missing one means the variable is not on the loss's path. */
function orderedGrads(phase: Phase, grads: tf.NamedTensorMap): tf.Tensor[] {
  return phase.vars.map((v) => {
    const g = grads[v.name];
    if (g === undefined) throw new Error(`phase ${phase.name}: no gradient for ${v.name}; it is not used by the loss at this resolution`);
    return g;
  });
}
