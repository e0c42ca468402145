/**
 * The WAE-MMD objective: one phase (`AE`) minimising reconstruction MSE + lambda * MMD(q(z), N(0, I)).
 */
import * as tf from '@tensorflow/tfjs';
import { ResumableAdam } from '../../training/resumable-adam.js';
import type { ImageDataset } from '../../data/images.js';
import { mmd, type MmdKernel } from '../../losses/mmd.js';
import { buildWae, defaultWaeArgs, type WaeArgs, type WaeCornerEncoder } from './networks.js';
import { writeRowsGrid } from '../../training/samples.js';
import { batchField, replicaRows, type Batch, type Objective, type Phase, type PhaseResult, type StepContext } from '../../training/objective.js';
import { hashSeed } from '../../util/random.js';
import { withSeededMathRandom } from '../../util/seeded.js';
import { modelVariables, trainableVariables } from '../../training/variables.js';

/** Options of {@link WaeObjective}. */
export interface WaeObjectiveArgs {
  /** Network shape (resolution = corner side). */
  model: WaeArgs;
  /** MMD kernel. */
  kernel: MmdKernel;
  /** Weight of the MMD term. */
  lambda: number;
  /** Adam settings. */
  optim: { lr: number; beta1: number; beta2: number; epsilon: number };
  /** Corner tiles shown in sample grids (fixed, so grids are comparable across steps); may be empty. */
  sampleImages?: Float32Array[];
  /** Seed of the initial weights and of the fixed prior samples drawn in sample grids. */
  seed: number;
}

/** The encoder/decoder pair and its training objective. */
export class WaeObjective implements Objective, WaeCornerEncoder {
  readonly name = 'wae';
  readonly encoder: tf.LayersModel;
  readonly decoder: tf.LayersModel;
  readonly args: WaeObjectiveArgs;
  private readonly phase: Phase;
  private readonly fixedPrior: tf.Tensor2D;

  constructor(args: WaeObjectiveArgs) {
    this.args = args;
    const nets = withSeededMathRandom(`wae/${args.seed}`, () => buildWae(args.model));
    this.encoder = nets.encoder;
    this.decoder = nets.decoder;
    this.phase = {
      name: 'AE',
      vars: [...trainableVariables(this.encoder), ...trainableVariables(this.decoder)],
      optimizer: new ResumableAdam(args.optim.lr, args.optim.beta1, args.optim.beta2, args.optim.epsilon),
    };
    const n = args.sampleImages?.length ?? 0;
    this.fixedPrior = tf.randomNormal([Math.max(n, 1), args.model.latentSize], 0, 1, 'float32', args.seed);
  }

  phases(): Phase[] {
    return [this.phase];
  }

  /** The batch-norm moving statistics: every state variable the optimiser does not train. */
  replicaLocalVariables(): tf.Variable[] {
    const trained = new Set<tf.Variable>(this.phase.vars);
    return this.stateVariables().map(([, v]) => v).filter((v) => !trained.has(v));
  }

  stateVariables(): Array<[string, tf.Variable]> {
    return [...modelVariables('encoder', this.encoder), ...modelVariables('decoder', this.decoder)];
  }

  computeGradients(phase: Phase, input: Batch, ctx: StepContext): PhaseResult {
    const batch = batchField<tf.Tensor4D>(input, 'images', 4); // corner tiles [N, R, R, C]
    const noiseSeed = hashSeed(ctx.rng.seed()) >>> 1;
    return tf.tidy(() => {
      const parts: { rec?: tf.Scalar; mmd?: tf.Scalar } = {};
      const { value, grads } = tf.variableGrads(() => {
        const z = this.encoder.apply(batch, { training: true }) as tf.Tensor2D; // [N, latent]
        const xr = this.decoder.apply(z, { training: true }) as tf.Tensor4D; // [N, R, R, C]
        const r = tf.losses.meanSquaredError(batch, xr) as tf.Scalar;
        // Draw the prior for the whole global batch and keep this replica's rows, as the pipeline
        // shards the images: N replicas see the samples one process of the global batch would.
        const [n, latent] = z.shape;
        const pz = replicaRows((rows) => tf.randomNormal([rows, latent], 0, 1, 'float32', noiseSeed), n, ctx) as tf.Tensor2D; // [N, latent]
        const m = mmd(z, pz, { kernel: this.args.kernel });
        // variableGrads disposes the forward pass's intermediates; keep the parts we report.
        parts.rec = tf.keep(r);
        parts.mmd = tf.keep(m);
        return tf.add(r, tf.mul(m, this.args.lambda)) as tf.Scalar;
      }, phase.vars);
      const losses: Record<string, tf.Scalar> = { total: value };
      if (parts.rec) losses['rec'] = parts.rec;
      if (parts.mmd) losses['mmd'] = parts.mmd;
      return { losses, grads: phase.vars.map((v) => grads[v.name] as tf.Tensor) };
    });
  }

  /** Encode corner tiles [N, R, R, C] to latents [N, latent] with batch-norm moving statistics (inference). */
  /** Input side, channels and latent size of the encoder. */
  get encoderSpec(): Pick<WaeArgs, 'resolution' | 'channels' | 'latentSize'> {
    const { resolution, channels, latentSize } = this.args.model;
    return { resolution, channels, latentSize };
  }

  encode(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => this.encoder.apply(x, { training: false }) as tf.Tensor2D);
  }

  /** Decode latents [N, latent] to corner tiles [N, R, R, C] in inference mode. */
  decode(z: tf.Tensor2D): tf.Tensor4D {
    return tf.tidy(() => this.decoder.apply(z, { training: false }) as tf.Tensor4D);
  }

  /** Rows: real corners, their reconstructions, decodes of fixed prior samples. */
  async writeSamples(path: string): Promise<void> {
    const imgs = this.args.sampleImages ?? [];
    if (imgs.length === 0) return;
    const { resolution: r, channels: c } = this.args.model;
    const n = imgs.length;
    const real = new Float32Array(n * r * r * c);
    imgs.forEach((img, i) => real.set(img, i * r * r * c));
    const [recon, prior] = tf.tidy(() => {
      const x = tf.tensor4d(real, [n, r, r, c]);
      return [this.decode(this.encode(x)), this.decode(this.fixedPrior.slice([0, 0], [n, -1]))];
    });
    try {
      const rows = [real, (await recon.data()) as Float32Array, (await prior.data()) as Float32Array];
      await writeRowsGrid(path, rows, [r, r, c], { scale: Math.max(1, Math.floor(64 / r)) });
    } finally {
      recon.dispose();
      prior.dispose();
    }
  }

  dispose(): void {
    this.encoder.dispose();
    this.decoder.dispose();
    this.phase.optimizer.dispose();
    this.fixedPrior.dispose();
  }
}

/** Build the objective's network args from the run config's WAE section. */
export function waeArgsFromConfig(cfg: { cornerResolution: number; latentSize: number; filters?: number[]; tanhOutput: boolean; batchNorm?: boolean }, channels: 1 | 3): WaeArgs {
  return defaultWaeArgs({
    resolution: cfg.cornerResolution,
    channels,
    latentSize: cfg.latentSize,
    tanhOutput: cfg.tanhOutput,
    ...(cfg.batchNorm !== undefined ? { batchNorm: cfg.batchNorm } : {}),
    ...(cfg.filters ? { filters: cfg.filters } : {}),
  });
}

/** Read `n` evenly spaced items of a dataset (the fixed sample set of grids). */
export async function fixedSamples(ds: ImageDataset, n: number): Promise<Float32Array[]> {
  const count = Math.min(n, ds.size);
  const out: Float32Array[] = [];
  for (let i = 0; i < count; i++) out.push(await ds.get(Math.floor((i * ds.size) / count)));
  return out;
}
