/**
 * Configuration of a conditional ProGAN run (`proggan train progan`): typed defaults (the reference's
 * numbers), named presets, precedence defaults < preset < saved run config < --config file < flags,
 * and validation that names the flag to fix.
 */
import type { LossCombination } from '../../losses/wgan-gp.js';
import { UsageError } from '../../util/errors.js';
import { defaultDataConfig, resolveConfig, validateLoopAndAdam, type ConfigLayers, type DataConfig, type LoopConfig, type PartialConfig } from '../../training/config.js';
import { resolveWaeConfig, WAE_PRESETS, type WaeTrainConfig } from '../wae/config.js';
import { CERN_SCHEDULE, defaultScheduleConfig, type ScheduleConfig } from './schedule.js';

/** The generator and the two discriminators. */
export interface ProGanModelConfig {
  /** Largest generated corner side R (full images are 2R); a power of two >= 8. Default 128 (256x256 images). */
  maxCornerResolution: number;
  /** Noise size of the generator input. Default 2048 (reference). */
  zDim: number;
  /** Size of one corner latent; must equal the WAE encoder's latent size. Default 2048 (reference). */
  latentDim: number;
  /** Channel-table base: nf(stage) = min(fmapBase / 2^stage, fmapMax). Default 8192. */
  fmapBase: number;
  /** Channel-table cap. Default 512. */
  fmapMax: number;
  /** Minibatch-stddev group size of both discriminators (0 disables). Default 4. */
  mbstdGroupSize: number;
  /** Generator output: 'linear' (reference) or 'tanh'. Default 'linear'. */
  generatorOutput: 'linear' | 'tanh';
  /** Discriminator output: 'linear' (reference) or 'lrelu' (CERN variant). Default 'linear'. */
  discriminatorOutput: 'linear' | 'lrelu';
  /**
   * How the known corners condition the generator: 'latent' (the paper: their WAE latents only) or
   * 'spatial' (the latents plus the neighbours' pixels mirrored onto the corner, entering every
   * generator block at its resolution; the local critic sees the corner beside that context). Default 'latent'.
   */
  conditioning: 'latent' | 'spatial';
}

/** The WGAN-GP objective of the two discriminators. */
export interface ProGanLossConfig {
  /** Weight of the global discriminator; the local one gets 1 - globalWeight. Default 0.5 (the reference's (L_g + L_l) / 2). */
  globalWeight: number;
  /** Gradient-penalty weight lambda. Default 10. */
  gpWeight: number;
  /** Drift weight (mean D(real)^2). Default 0.001. */
  drift: number;
  /** 'reference' (weighted sum) or 'cern' (each term squared before weighting). Default 'reference'. */
  combination: LossCombination;
}

/** Adam settings shared by both optimisers (learning rates are in the schedule). */
export interface ProGanOptimConfig {
  /** Adam beta1. Default 0 (ProGAN). */
  beta1: number;
  /** Adam beta2. Default 0.99 (ProGAN). */
  beta2: number;
  /** Adam epsilon. Default 1e-8. */
  epsilon: number;
  /**
   * When both optimisers start afresh: at each new resolution ('resolution', default), also when a
   * fade ends ('phase', what ProGAN's code does), or never ('never').
   */
  reset: 'resolution' | 'phase' | 'never';
}

/** The progressive schedule; maxResolution comes from the model section. */
export interface ProGanScheduleConfig extends Omit<ScheduleConfig, 'maxResolution'> {
  /**
   * Steps between re-evaluations of the schedule (alpha, resolution, learning rates). Default 4. This
   * is what ProGAN's minibatch_repeats does: its training loop runs that many minibatches, each with
   * fresh reals, between schedule updates; it does not reuse one real batch.
   */
  minibatchRepeats: number;
}

/** The generator's moving average (used for samples and completion). */
export interface ProGanEmaConfig {
  /** Decay per step. Default 0.999 (ProGAN). */
  decay: number;
  /** Half-life in kimg; when set it replaces decay by 0.5^(global batch / (halfLifeKimg * 1000)). Default unset. */
  halfLifeKimg?: number;
}

/** The frozen corner encoder. */
export interface ProGanEncoderConfig {
  /** A trained WAE run directory (`--encoder`); unset: train one into <run>/encoder first. Default unset. */
  runDir?: string;
  /** WAE preset used to train that encoder (its corner resolution and latent size come from the model). Default 'paper'. */
  preset: string;
  /** Training steps of that encoder; unset = the preset's. Default unset. */
  steps?: number;
}

/** Sample grids. */
export interface ProGanSamplesConfig {
  /** Held-out images shown in each grid. Default 8. */
  count: number;
  /** Held-out images on which SWD is measured every `loop.evalEvery` steps (synthetic data; a folder uses the sample set). Default 64. */
  evalCount: number;
}

/** Everything a `proggan train progan` run needs; written to run-dir/config.json. */
export interface ProGanTrainConfig {
  /** Model tag. */
  model: 'progan';
  /** Training images (full 2R x 2R images). */
  data: DataConfig;
  /** Networks. */
  progan: ProGanModelConfig;
  /** Frozen corner encoder. */
  encoder: ProGanEncoderConfig;
  /** WGAN-GP settings. */
  loss: ProGanLossConfig;
  /** Adam settings. */
  optim: ProGanOptimConfig;
  /** Progressive schedule and learning rates. */
  schedule: ProGanScheduleConfig;
  /** Generator EMA. */
  ema: ProGanEmaConfig;
  /** Sample grids. */
  samples: ProGanSamplesConfig;
  /** Loop, upkeep and reproducibility (batchSize = full images per step per replica). */
  loop: LoopConfig;
}

/** The reference's settings: 256x256 images (corners 128), latents 2048, ProGAN schedule. */
export function defaultProGanTrainConfig(): ProGanTrainConfig {
  const { maxResolution: _unused, ...sched } = defaultScheduleConfig(128);
  return {
    model: 'progan',
    data: defaultDataConfig(),
    progan: {
      maxCornerResolution: 128,
      zDim: 2048,
      latentDim: 2048,
      fmapBase: 8192,
      fmapMax: 512,
      mbstdGroupSize: 4,
      generatorOutput: 'linear',
      discriminatorOutput: 'linear',
      conditioning: 'latent',
    },
    encoder: { preset: 'paper' },
    loss: { globalWeight: 0.5, gpWeight: 10, drift: 0.001, combination: 'reference' },
    optim: { beta1: 0, beta2: 0.99, epsilon: 1e-8, reset: 'resolution' },
    schedule: { ...sched, minibatchRepeats: 4 },
    ema: { decay: 0.999 },
    samples: { count: 8, evalCount: 64 },
    // 6600 kimg grow corners 4 -> 128 at 600 + 600 kimg; then the last resolution keeps training.
    loop: { steps: 500000, batchSize: 16, seed: 1, checkpointEvery: 2000, sampleEvery: 2000, tickEvery: 100, evalEvery: 2000, maxNonFinite: 10, keepCheckpoints: 2 },
  };
}

/**
 * Named presets, smallest first. `tiny` runs in seconds on the pure-JS backend (corners 4 -> 8, about
 * 20 s with its encoder); `small` gives a first visible result on a CPU (corners 4 -> 16, minutes on the
 * native backend); `paper` is the
 * reference (256x256 images); `cern` is `paper` with the CERN code's schedule and learning rates.
 */
export const PROGAN_PRESETS: Record<string, PartialConfig<ProGanTrainConfig>> = {
  tiny: {
    data: { syntheticCount: 256 },
    progan: { maxCornerResolution: 8, zDim: 8, latentDim: 16, fmapBase: 16, fmapMax: 8 },
    encoder: { preset: 'tiny', steps: 100 },
    // Corner 4 for 8 steps, corner 8 fades in over 16 steps, then 16 stable steps (batch 4).
    schedule: { fadeKimg: 0.064, stableKimg: 0.032, minibatchRepeats: 1 },
    ema: { decay: 0.9 },
    loop: { steps: 40, batchSize: 4, checkpointEvery: 20, sampleEvery: 10, tickEvery: 4, evalEvery: 20 },
  },
  small: {
    data: { syntheticCount: 2048 },
    // Corners up to 16 (32x32 images): what the README's first command trains, minutes on the native backend.
    progan: { maxCornerResolution: 16, zDim: 32, latentDim: 64, fmapBase: 64, fmapMax: 16 },
    encoder: { preset: 'small', steps: 500 },
    // 375 steps per phase at batch 8: corner 16 fades in from step 1125 and is stable from step 1500.
    schedule: { fadeKimg: 3, stableKimg: 3, minibatchRepeats: 1 },
    ema: { decay: 0.99 },
    loop: { steps: 2000, batchSize: 8, checkpointEvery: 250, sampleEvery: 250, tickEvery: 10, evalEvery: 250 },
  },
  paper: {
    progan: { maxCornerResolution: 128, zDim: 2048, latentDim: 2048, fmapBase: 8192, fmapMax: 512 },
    encoder: { preset: 'paper' },
  },
  cern: {
    progan: { maxCornerResolution: 128, zDim: 2048, latentDim: 2048, fmapBase: 8192, fmapMax: 512 },
    encoder: { preset: 'paper' },
    schedule: { ...CERN_SCHEDULE },
    // 9300 kimg grow corners 4 -> 128 at 1500 + 300 kimg.
    loop: { steps: 700000 },
  },
};

/** The schedule of a run, with maxResolution from the model. */
export function scheduleConfigOf(c: ProGanTrainConfig): ScheduleConfig {
  const { minibatchRepeats: _unused, ...rest } = c.schedule;
  return { ...rest, maxResolution: c.progan.maxCornerResolution };
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Throw a {@link UsageError} naming the flag of the first invalid field. */
export function validateProGanConfig(c: ProGanTrainConfig): void {
  const fail = (flag: string, msg: string): never => {
    throw new UsageError(`${flag}: ${msg}`);
  };
  const posInt = (flag: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) fail(flag, `must be a positive integer, got ${v}`);
  };
  if (c.data.channels !== 1 && c.data.channels !== 3) fail('--channels', `must be 1 or 3, got ${String(c.data.channels)}`);
  if (c.data.badFiles !== 'error' && c.data.badFiles !== 'skip') fail('--bad-files', `must be error or skip, got ${String(c.data.badFiles)}`);
  const p = c.progan;
  if (!isPow2(p.maxCornerResolution) || p.maxCornerResolution < 8) {
    fail('--resolution', `the largest corner side must be a power of two >= 8 (the encoder needs 8), got ${p.maxCornerResolution}`);
  }
  posInt('--z-dim', p.zDim);
  posInt('--latent-dim', p.latentDim);
  posInt('--fmap-base', p.fmapBase);
  posInt('--fmap-max', p.fmapMax);
  if (!Number.isInteger(p.mbstdGroupSize) || p.mbstdGroupSize < 0) fail('--mbstd-group-size', `must be an integer >= 0, got ${p.mbstdGroupSize}`);
  if (p.conditioning !== 'latent' && p.conditioning !== 'spatial') fail('--conditioning', `must be latent or spatial, got ${String(p.conditioning)}`);
  if (p.generatorOutput !== 'linear' && p.generatorOutput !== 'tanh') fail('--g-output', `must be linear or tanh, got ${String(p.generatorOutput)}`);
  if (p.discriminatorOutput !== 'linear' && p.discriminatorOutput !== 'lrelu') fail('--d-output', `must be linear or lrelu, got ${String(p.discriminatorOutput)}`);
  const s = c.schedule;
  if (!isPow2(s.startResolution) || s.startResolution < 4 || s.startResolution > p.maxCornerResolution) {
    fail('--start-resolution', `must be a power of two between 4 and the largest corner side ${p.maxCornerResolution}, got ${s.startResolution}`);
  }
  if (!(Number.isFinite(s.fadeKimg) && s.fadeKimg >= 0)) fail('--fade-kimg', `must be a number >= 0, got ${s.fadeKimg}`);
  if (!(Number.isFinite(s.stableKimg) && s.stableKimg >= 0)) fail('--stable-kimg', `must be a number >= 0, got ${s.stableKimg}`);
  if (!(s.lrG > 0)) fail('--lr-g', `must be > 0, got ${s.lrG}`);
  if (!(s.lrD > 0)) fail('--lr-d', `must be > 0, got ${s.lrD}`);
  posInt('--minibatch-repeats', s.minibatchRepeats);
  const tables: Array<[string, Record<string, number>]> = [
    ['fadeKimgByResolution', s.fadeKimgByResolution],
    ['stableKimgByResolution', s.stableKimgByResolution],
    ['lrGByResolution', s.lrGByResolution],
    ['lrDByResolution', s.lrDByResolution],
  ];
  for (const [name, table] of tables) {
    for (const [key, v] of Object.entries(table)) {
      const r = Number(key);
      if (!isPow2(r) || r < 4 || r > p.maxCornerResolution) fail('--config', `schedule.${name}: "${key}" is not a corner side between 4 and ${p.maxCornerResolution}`);
      const ok = name.startsWith('lr') ? v > 0 : Number.isFinite(v) && v >= 0;
      if (!ok) fail('--config', `schedule.${name}[${key}] is out of range: ${v}`);
    }
  }
  const l = c.loss;
  if (!(l.globalWeight >= 0 && l.globalWeight <= 1)) fail('--global-weight', `must be in [0, 1], got ${l.globalWeight}`);
  if (!(l.gpWeight >= 0)) fail('--gp-weight', `must be >= 0, got ${l.gpWeight}`);
  if (!(l.drift >= 0)) fail('--drift', `must be >= 0, got ${l.drift}`);
  if (l.combination !== 'reference' && l.combination !== 'cern') fail('--loss-combination', `must be reference or cern, got ${String(l.combination)}`);
  const o = c.optim;
  if (!(o.beta1 >= 0 && o.beta1 < 1)) fail('--beta1', `must be in [0, 1), got ${o.beta1}`);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) fail('--beta2', `must be in [0, 1), got ${o.beta2}`);
  if (!(o.epsilon > 0)) fail('--epsilon', `must be > 0, got ${o.epsilon}`);
  if (!['resolution', 'phase', 'never'].includes(o.reset)) fail('--optimizer-reset', `must be resolution, phase or never, got ${String(o.reset)}`);
  if (!(c.ema.decay >= 0 && c.ema.decay <= 1)) fail('--ema-decay', `must be in [0, 1], got ${c.ema.decay}`);
  if (c.ema.halfLifeKimg !== undefined && !(c.ema.halfLifeKimg > 0)) fail('--ema-kimg', `must be > 0, got ${c.ema.halfLifeKimg}`);
  if (c.encoder.runDir === undefined && WAE_PRESETS[c.encoder.preset] === undefined) {
    fail('--encoder-preset', `must be one of ${Object.keys(WAE_PRESETS).join(', ')}; got "${c.encoder.preset}"`);
  }
  if (c.encoder.steps !== undefined && (!Number.isInteger(c.encoder.steps) || c.encoder.steps < 0)) {
    fail('--encoder-steps', `must be a non-negative integer, got ${c.encoder.steps}`);
  }
  if (!Number.isInteger(c.samples.count) || c.samples.count < 0) fail('--sample-count', `must be an integer >= 0, got ${c.samples.count}`);
  if (!Number.isInteger(c.loop.steps) || c.loop.steps < 0) fail('--steps', `must be a non-negative integer, got ${c.loop.steps}`);
  posInt('--batch-size', c.loop.batchSize);
  validateLoopAndAdam(c.loop);
  if (!Number.isInteger(c.loop.seed)) fail('--seed', `must be an integer, got ${c.loop.seed}`);
  for (const [flag, v] of [['--checkpoint-every', c.loop.checkpointEvery], ['--sample-every', c.loop.sampleEvery], ['--tick-every', c.loop.tickEvery]] as const) {
    posInt(flag, v);
  }
  if (!Number.isInteger(c.data.syntheticCount) || c.data.syntheticCount < c.loop.batchSize) {
    fail('--synthetic-count', `must be an integer >= the batch size (${c.loop.batchSize}), got ${c.data.syntheticCount}`);
  }
}

/** Resolve a ProGAN config from its layers, lowest precedence first. */
export function resolveProGanConfig(layers: ConfigLayers<ProGanTrainConfig>): ProGanTrainConfig {
  return resolveConfig(defaultProGanTrainConfig(), PROGAN_PRESETS, layers, validateProGanConfig);
}

/** Stride-2 blocks of a WAE at corner side r (down to 4x4). */
function waeBlocks(r: number): number {
  return Math.round(Math.log2(r / 4));
}

/**
 * The WAE config of the encoder a ProGAN run trains for itself: the encoder preset, with the corner
 * resolution, latent size, channels, data and seed of the GAN run. A preset filter list that does not
 * fit the corner resolution is cut or extended (doubling, capped at 512).
 */
export function encoderWaeConfig(c: ProGanTrainConfig): WaeTrainConfig {
  const preset = WAE_PRESETS[c.encoder.preset];
  if (!preset) throw new UsageError(`--encoder-preset must be one of ${Object.keys(WAE_PRESETS).join(', ')}; got "${c.encoder.preset}"`);
  const r = c.progan.maxCornerResolution;
  const k = waeBlocks(r);
  const presetFilters = preset.wae?.filters;
  let filters: number[] | undefined;
  if (presetFilters !== undefined && presetFilters.length > 0) {
    filters = presetFilters.slice(0, k);
    while (filters.length < k) filters.push(Math.min(512, 2 * (filters[filters.length - 1] as number)));
  }
  return resolveWaeConfig({
    preset: c.encoder.preset,
    flags: {
      data: c.data,
      wae: { cornerResolution: r, latentSize: c.progan.latentDim, ...(filters ? { filters } : {}) },
      loop: { seed: c.loop.seed, ...(c.encoder.steps !== undefined ? { steps: c.encoder.steps } : {}) },
    },
  });
}
