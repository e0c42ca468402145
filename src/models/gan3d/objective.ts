/**
 * The 3DGAN objective: phases D on a real batch, D on a generated batch, then G twice through the
 * (frozen) D, with the losses of `losses/calo.ts` and RMSprop. It implements the trainer's
 * `Objective` interface with the batch as named tensors ({@link Gan3dBatch}); wiring it into the
 * model registry is phase 2 of issue #10.
 *
 * Batch norm: the moving statistics of G and D are replica-local state (each replica updates them
 * from its own shard; the trainer averages them before checkpoints). D runs in training mode in
 * every phase (batch statistics, dropout), as the reference's Keras model did; only the variables
 * of the phase being trained receive gradients. Dropout masks come from `Math.random`, seeded per
 * step and phase from the run's rng, so a run (and a resumed run) is reproducible.
 */
import * as tf from '@tensorflow/tfjs';
import type { Objective, Phase, PhaseResult, StepContext } from '../../training/objective.js';
import { caloLoss, type CaloLossWeights, defaultCaloWeights, flippedLabels, softHitCount } from '../../losses/calo.js';
import { hashSeed } from '../../util/random.js';
import { withSeededMathRandom } from '../../util/seeded.js';
import {
  buildGan3dDiscriminator,
  buildGan3dGenerator,
  conditionSize,
  countParams,
  defaultGan3dArgs,
  discriminate,
  type Gan3dArgs,
  imageShape,
  undoPower,
} from './networks.js';

/**
 * One batch as named tensors: `ecal` [N, X, Y, Z, 1] preprocessed cells (E_cell^0.85), `energy` [N]
 * primary energy / 100 GeV, `theta` [N] entry angle in rad (ignored by the fixed-angle geometry).
 */
export type Gan3dBatch = Readonly<Record<'ecal' | 'energy' | 'theta', tf.Tensor>>;

/** Everything that configures a 3DGAN run. */
export interface Gan3dConfig {
  /** Networks. */
  model: Gan3dArgs;
  /** Loss weights (reference: [3, 0.1, 25, 0.1], fixed-angle [2, 0.1, 0.1]). */
  weights: CaloLossWeights;
  /** Probability of flipping a real/fake label in the D phases. Default 0.05. */
  labelFlip: number;
  /** RMSprop learning rate of G and D. Default 1e-3. */
  lr: number;
  /** RMSprop decay (Keras `rho`). Default 0.9. */
  rho: number;
  /** Events per replica and step. Default 64. */
  batchSize: number;
  /** ECAL sum target of generated showers per unit of E/100 (sampling fraction x 100 GeV). Default 2. */
  ecalPerEnergy: number;
  /** Seed of the initial weights. Default 0. */
  seed: number;
}

/** Named presets: `tiny` (seconds, tests), `small` (a first physics result on a 2-core CPU), `paper`. */
export type Gan3dPreset = 'tiny' | 'small' | 'paper';

/** The paper's configuration with any fields overridden. */
export function defaultGan3dConfig(partial: Partial<Gan3dConfig> = {}): Gan3dConfig {
  const model = partial.model ?? defaultGan3dArgs();
  const cfg: Gan3dConfig = {
    model,
    weights: partial.weights ?? defaultCaloWeights(model.geometry),
    labelFlip: partial.labelFlip ?? 0.05,
    lr: partial.lr ?? 1e-3,
    rho: partial.rho ?? 0.9,
    batchSize: partial.batchSize ?? 64,
    ecalPerEnergy: partial.ecalPerEnergy ?? 2,
    seed: partial.seed ?? 0,
  };
  if (!(cfg.labelFlip >= 0 && cfg.labelFlip < 0.5)) throw new Error(`Gan3dConfig.labelFlip must be in [0, 0.5), got ${cfg.labelFlip}`);
  if (!(cfg.lr > 0)) throw new Error(`Gan3dConfig.lr must be positive, got ${cfg.lr}`);
  if (!(Number.isInteger(cfg.batchSize) && cfg.batchSize > 0)) throw new Error(`Gan3dConfig.batchSize must be a positive integer, got ${cfg.batchSize}`);
  if (model.geometry === 'fixed-angle' && cfg.weights.angle !== 0) throw new Error('Gan3dConfig.weights.angle must be 0 for the fixed-angle geometry');
  return cfg;
}

/**
 * A preset. `small` keeps the paper's layer structure and image size but cuts the filters
 * (G dense channels 8 -> 2, G convs 8/6 -> 4, D convs 16/8 -> 8/4) and the batch (64 -> 16), which
 * cuts the generator's first convolution (the dominant cost) by 8x; `tiny` cuts everything to 1-2
 * channels, latent 16 and batch 2.
 */
export function gan3dPreset(name: Gan3dPreset, geometry: Gan3dArgs['geometry'] = 'variable-angle'): Gan3dConfig {
  switch (name) {
    case 'paper':
      return defaultGan3dConfig({ model: defaultGan3dArgs({ geometry }) });
    case 'small':
      return defaultGan3dConfig({
        model: defaultGan3dArgs({ geometry, gDenseChannels: 2, gFilters: [4, 4, 4, 4, 4, 4], dFilters: [8, 4, 4, 4] }),
        batchSize: 16,
      });
    case 'tiny':
      return defaultGan3dConfig({
        model: defaultGan3dArgs({ geometry, latentSize: 16, gDenseChannels: 1, gFilters: [2, 2, 2, 2, 2, 2], dFilters: [2, 2, 2, 2] }),
        batchSize: 2,
      });
    default:
      throw new Error(`unknown 3DGAN preset "${String(name)}" (use tiny, small or paper)`);
  }
}

type Gan3dObjectiveShape = Omit<Objective, 'computeGradients'> & {
  computeGradients(phase: Phase, batch: Gan3dBatch, ctx: StepContext): PhaseResult;
};

/** The 3DGAN's networks, optimisers and losses. */
export class Gan3dObjective implements Gan3dObjectiveShape {
  readonly name = 'gan3d';
  readonly config: Gan3dConfig;
  readonly generator: tf.LayersModel;
  readonly discriminator: tf.LayersModel;
  private readonly phaseList: Phase[];

  constructor(config: Gan3dConfig) {
    this.config = config;
    this.generator = withSeededMathRandom(`gan3d/g/${config.seed}`, () => buildGan3dGenerator(config.model));
    this.discriminator = withSeededMathRandom(`gan3d/d/${config.seed}`, () => buildGan3dDiscriminator(config.model));
    const dVars = trainable(this.discriminator);
    const gVars = trainable(this.generator);
    const dOpt = tf.train.rmsprop(config.lr, config.rho);
    const gOpt = tf.train.rmsprop(config.lr, config.rho);
    // D sees a real batch, then a fake one (two updates, like the reference's two train_on_batch calls);
    // G is updated twice per step.
    this.phaseList = [
      { name: 'D_real', vars: dVars, optimizer: dOpt },
      { name: 'D_fake', vars: dVars, optimizer: dOpt },
      { name: 'G1', vars: gVars, optimizer: gOpt },
      { name: 'G2', vars: gVars, optimizer: gOpt },
    ];
  }

  /** Trainable parameters of G and D. */
  paramCounts(): { generator: number; discriminator: number } {
    return { generator: countParams(this.generator), discriminator: countParams(this.discriminator) };
  }

  phases(): Phase[] {
    return this.phaseList;
  }

  stateVariables(): Array<[string, tf.Variable]> {
    return [...named('generator', this.generator), ...named('discriminator', this.discriminator)];
  }

  /** Batch-norm moving statistics of G and D (every non-trainable weight). */
  replicaLocalVariables(): tf.Variable[] {
    const trained = new Set<tf.Variable>([...trainable(this.generator), ...trainable(this.discriminator)]);
    return this.stateVariables().map(([, v]) => v).filter((v) => !trained.has(v));
  }

  /** Latent vectors [n, latentSize]: conditions (E/100, theta) then N(0, 1) noise from `seed` (this replica's rows). */
  latent(energy: tf.Tensor, theta: tf.Tensor, seed: number, ctx: Pick<StepContext, 'replica' | 'replicas'>): tf.Tensor2D {
    return tf.tidy(() => {
      const n = energy.shape[0] ?? 0;
      const geo = this.config.model.geometry;
      const k = this.config.model.latentSize - conditionSize(geo);
      const rows = ctx.replicas === 1 ? n : n * ctx.replicas;
      let noise = tf.randomNormal([rows, k], 0, 1, 'float32', seed);
      if (ctx.replicas > 1) noise = tf.slice(noise, ctx.replica * n, n);
      const cond = geo === 'variable-angle' ? [tf.reshape(energy, [n, 1]), tf.reshape(theta, [n, 1])] : [tf.reshape(energy, [n, 1])];
      return tf.concat([...cond, noise], 1) as tf.Tensor2D; // [N, latent]
    });
  }

  /** Generate preprocessed showers [n, X, Y, Z, 1] for conditions (E/100 [n], theta [n] rad); inference mode. */
  generate(energy: tf.Tensor, theta: tf.Tensor, seed: number): tf.Tensor5D {
    return tf.tidy(() => this.generator.apply(this.latent(energy, theta, seed, { replica: 0, replicas: 1 }), { training: false }) as tf.Tensor5D);
  }

  computeGradients(phase: Phase, batch: Gan3dBatch, ctx: StepContext): PhaseResult {
    const { ecal, energy, theta } = batch;
    checkBatch(batch, this.config.model);
    const n = energy.shape[0] ?? 0;
    const seed = hashSeed(ctx.rng.seed()) >>> 1;
    const cfg = this.config;
    const power = cfg.model.power;
    const withHits = cfg.weights.hits !== 0;
    return withSeededMathRandom(`gan3d/${phase.name}/${seed}`, () => tf.tidy(() => {
      // Generated showers for D_fake are made before the tape starts: no gradient flows into G.
      const fakeForD = phase.name === 'D_fake' ? (this.generator.apply(this.latent(energy, theta, seed, ctx), { training: true }) as tf.Tensor5D) : null;
      const fakeTargets = (): { energy: tf.Tensor; ecal: tf.Tensor; angle: tf.Tensor } => ({ energy, ecal: tf.mul(energy, cfg.ecalPerEnergy), angle: theta });
      let parts: ReturnType<typeof caloLoss> | undefined;
      const { grads } = tf.variableGrads(() => {
        let images: tf.Tensor5D;
        let label: tf.Tensor;
        let target: { energy: tf.Tensor; ecal: tf.Tensor; angle: tf.Tensor };
        if (phase.name === 'D_real') {
          // Real showers: the targets are the batch's own conditions and measured ECAL sum.
          images = ecal as tf.Tensor5D;
          label = flippedLabels(n, 1, cfg.labelFlip, seed);
          target = { energy, ecal: tf.sum(undoPower(images, power), [1, 2, 3, 4]), angle: theta };
        } else if (phase.name === 'D_fake') {
          // Generated showers for the batch's conditions, no gradient into G.
          if (!fakeForD) throw new Error('3DGAN: no generated batch');
          images = fakeForD;
          label = flippedLabels(n, 0, cfg.labelFlip, seed);
          target = fakeTargets();
        } else {
          // G through the frozen D: only G's variables are differentiated.
          images = this.generator.apply(this.latent(energy, theta, seed, ctx), { training: true }) as tf.Tensor5D;
          label = tf.ones([n]);
          target = fakeTargets();
        }
        const out = discriminate(this.discriminator, images, cfg.model, true);
        const hitsOut = withHits ? softHitCount(undoPower(images, power)) : undefined;
        const hitsTarget = withHits ? softHitCount(undoPower(ecal as tf.Tensor5D, power)) : undefined;
        const l = caloLoss(
          { logit: out.logit, energy: out.energy, ecal: out.ecal, ...(out.angle ? { angle: out.angle } : {}), ...(hitsOut ? { hits: hitsOut } : {}) },
          { label, energy: target.energy, ecal: target.ecal, angle: target.angle, ...(hitsTarget ? { hits: hitsTarget } : {}) },
          cfg.weights,
        );
        parts = { ...l };
        for (const t of Object.values(l)) tf.keep(t as tf.Tensor);
        return l.total;
      }, phase.vars);
      if (!parts) throw new Error('3DGAN: loss not computed');
      const losses: Record<string, tf.Scalar> = {};
      for (const [k, v] of Object.entries(parts)) if (v) losses[k] = v;
      return { losses, grads: phase.vars.map((v) => {
        const g = grads[v.name];
        if (!g) throw new Error(`3DGAN: no gradient for ${v.name} in phase ${phase.name}`);
        return g;
      }) };
    }));
  }

  dispose(): void {
    this.generator.dispose();
    this.discriminator.dispose();
    const opts = new Set(this.phaseList.map((p) => p.optimizer));
    for (const o of opts) o.dispose();
  }
}

function asVariable(w: tf.LayerVariable): tf.Variable {
  const v = w.read();
  if (!(v instanceof tf.Variable)) throw new Error(`layer weight ${w.originalName} is not backed by a tf.Variable`);
  return v;
}

function trainable(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map(asVariable);
}

function named(prefix: string, model: tf.LayersModel): Array<[string, tf.Variable]> {
  return model.weights.map((w) => [`${prefix}/${w.originalName}`, asVariable(w)]);
}

function checkBatch(batch: Gan3dBatch, args: Gan3dArgs): void {
  const [x, y, z] = imageShape(args.geometry);
  const s = batch.ecal.shape;
  const n = s[0];
  if (s.length !== 5 || s[1] !== x || s[2] !== y || s[3] !== z || s[4] !== 1) throw new Error(`3DGAN batch "ecal" has shape [${s.join(', ')}], expected [N, ${x}, ${y}, ${z}, 1]`);
  for (const k of ['energy', 'theta'] as const) {
    if (batch[k].rank !== 1 || batch[k].shape[0] !== n) throw new Error(`3DGAN batch "${k}" has shape [${batch[k].shape.join(', ')}], expected [${n}]`);
  }
}
