/**
 * Configuration of a 3DGAN run (`proggan train 3dgan`): typed defaults (the reference's networks and
 * losses), presets `tiny` / `small` / `paper`, and validation naming the flag to fix. tfjs-free: the
 * CLI reads it for `--help`.
 */
import { UsageError } from '../../util/errors.js';
import { validateLoopAndAdam, type ConfigFlag, type LoopConfig, type PartialConfig } from '../../training/config.js';

/** Where the showers come from and how they are prepared. */
export interface Gan3dDataConfig {
  /** A folder of HDF5 files or one `.h5` file; unset means the embedded MC-like showers. */
  dir?: string;
  /** Held-out HDF5 file or folder; unset holds out 10 % of the files (at least one) of `dir`. */
  evalData?: string;
  /** `auto` (detected from the files and logged), `variable-angle` (51x51x25) or `fixed-angle` (25^3). Default auto. */
  layout: 'auto' | 'variable-angle' | 'fixed-angle';
  /** Unreadable or invalid files: stop with the list (`error`, default) or skip each with a log line. */
  badFiles: 'error' | 'skip';
  /** Batches assembled ahead of the step. Default 2. */
  prefetch: number;
  /** Events read from a file at a time (the unit of streaming). Default 64. */
  chunkEvents: number;
  /** Chunks kept in memory per dataset. Default 8. */
  cacheChunks: number;
  /** Cells below this energy (GeV) are zeroed. Default 1e-6 (the reference). */
  threshold: number;
  /** Events whose ECAL sum (GeV) is not above this are dropped. Default 0.01 (see docs/3dgan.md on the reference's `> 10`). */
  minSum: number;
  /** Embedded showers: number of HDF5 files written (the last one is held out). Default 10. */
  syntheticFiles: number;
  /** Embedded showers: events per file. Default 512. */
  syntheticEvents: number;
  /** Embedded showers: primary energy range, GeV. Default [2, 500]. */
  energyRange: number[];
  /** Held-out events the in-loop physics validation compares against. Default 512. */
  evalEvents: number;
  /** Energy bins (quantiles of the held-out energies) of the physics validation. Default 4. */
  evalBins: number;
}

/** The networks (see Gan3dArgs in networks.ts). */
export interface Gan3dNetConfig {
  /** Latent size including the conditions. Default 256. */
  latentSize: number;
  /** Channels of the generator's dense volume. Default 8. */
  gDenseChannels: number;
  /** Generator conv filters (6). Default [8, 6, 6, 6, 6, 6]. */
  gFilters: number[];
  /** Discriminator conv filters (4). Default [16, 8, 8, 8]. */
  dFilters: number[];
  /** Discriminator dropout. Default 0.2. */
  dropout: number;
  /** Power preprocessing of the cells. Default 0.85. */
  power: number;
}

/** The objective. */
export interface Gan3dLossConfig {
  /** Weight of the real/fake BCE. Default 3 (fixed-angle reference: 2). */
  bce: number;
  /** Weight of the energy-regression MAPE. Default 0.1. */
  energy: number;
  /** Weight of the angle MAE (ignored for the fixed-angle layout). Default 25. */
  angle: number;
  /** Weight of the ECAL-sum MAPE. Default 0.1. */
  ecal: number;
  /** Weight of the optional hit-count loss. Default 0. */
  hits: number;
  /** Probability of a flipped real/fake label. Default 0.05. */
  labelFlip: number;
  /** ECAL sum target per unit of E/100 (sampling fraction x 100 GeV). Default 2 (2 % sampling fraction). */
  ecalPerEnergy: number;
}

/** RMSprop. */
export interface Gan3dOptimConfig {
  /** Learning rate of G and D. Default 1e-3. */
  lr: number;
  /** Decay (Keras rho). Default 0.9. */
  rho: number;
}

/** Everything a `proggan train 3dgan` run needs; written to run-dir/config.json. */
export interface Gan3dTrainConfig {
  model: '3dgan';
  data: Gan3dDataConfig;
  gan3d: Gan3dNetConfig;
  loss: Gan3dLossConfig;
  optim: Gan3dOptimConfig;
  loop: LoopConfig;
}

/** The reference's settings (the `paper` preset). */
export function defaultGan3dTrainConfig(): Gan3dTrainConfig {
  return {
    model: '3dgan',
    data: {
      layout: 'auto', badFiles: 'error', prefetch: 2, chunkEvents: 64, cacheChunks: 8, threshold: 1e-6, minSum: 0.01,
      syntheticFiles: 10, syntheticEvents: 512, energyRange: [2, 500], evalEvents: 512, evalBins: 4,
    },
    gan3d: { latentSize: 256, gDenseChannels: 8, gFilters: [8, 6, 6, 6, 6, 6], dFilters: [16, 8, 8, 8], dropout: 0.2, power: 0.85 },
    loss: { bce: 3, energy: 0.1, angle: 25, ecal: 0.1, hits: 0, labelFlip: 0.05, ecalPerEnergy: 2 },
    optim: { lr: 1e-3, rho: 0.9 },
    loop: { steps: 20000, batchSize: 64, seed: 1, checkpointEvery: 500, sampleEvery: 500, tickEvery: 10, evalEvery: 500, maxNonFinite: 10, keepCheckpoints: 2 },
  };
}

/**
 * Presets, smallest first. `tiny`: 1-2 filters, latent 16, batch 2, a few tiny files (seconds per
 * step; tests). `small`: the paper's layer structure and 51x51x25 image size with 2-4 filters per
 * conv (G dense 8 -> 1 channel, G convs 8/6 -> 3/2, D convs 16/8 -> 4/2), latent 64 and batch 4, so a
 * step takes tens of seconds on one loaded CPU core (the paper's filters at batch 16 took ~4 min for
 * the D_real phase alone here): a first physics-visible result in about 30 minutes.
 * `paper`: the reference.
 */
export const GAN3D_PRESETS: Record<string, PartialConfig<Gan3dTrainConfig>> = {
  tiny: {
    data: { syntheticFiles: 2, syntheticEvents: 24, evalEvents: 24, evalBins: 2, chunkEvents: 8, energyRange: [50, 250] },
    gan3d: { latentSize: 16, gDenseChannels: 1, gFilters: [2, 2, 2, 2, 2, 2], dFilters: [2, 2, 2, 2] },
    loop: { steps: 6, batchSize: 2, checkpointEvery: 3, sampleEvery: 6, tickEvery: 1, evalEvery: 3 },
  },
  small: {
    data: { syntheticFiles: 5, syntheticEvents: 256, evalEvents: 96, evalBins: 3, chunkEvents: 16, energyRange: [10, 300] },
    gan3d: { latentSize: 64, gDenseChannels: 1, gFilters: [3, 2, 2, 2, 2, 2], dFilters: [4, 2, 2, 2] },
    loop: { steps: 2000, batchSize: 4, checkpointEvery: 25, sampleEvery: 50, tickEvery: 5, evalEvery: 25 },
  },
  paper: {},
};

/** The `proggan train 3dgan` flags. */
export const GAN3D_FLAGS: readonly ConfigFlag[] = [
  { name: 'data', path: 'data.dir', type: 'string', describe: 'HDF5 shower file or folder of them (default: embedded MC-like showers, written to HDF5 in the run dir)' },
  { name: 'eval-data', path: 'data.evalData', type: 'string', describe: 'held-out HDF5 file or folder (default: 10% of the --data files)' },
  { name: 'layout', path: 'data.layout', type: 'string', choices: ['auto', 'variable-angle', 'fixed-angle'], describe: 'HDF5 layout: detect, or force variable-angle (51x51x25) / fixed-angle (25^3)' },
  { name: 'bad-files', path: 'data.badFiles', type: 'string', choices: ['error', 'skip'], describe: 'invalid files: stop with the list, or skip each with a log line' },
  { name: 'min-sum', path: 'data.minSum', type: 'number', describe: 'drop events whose ECAL sum (GeV) is not above this' },
  { name: 'synthetic-files', path: 'data.syntheticFiles', type: 'number', describe: 'embedded showers: HDF5 files to write (the last is held out)' },
  { name: 'synthetic-events', path: 'data.syntheticEvents', type: 'number', describe: 'embedded showers: events per file' },
  { name: 'eval-events', path: 'data.evalEvents', type: 'number', describe: 'held-out events of the in-loop physics validation' },
  { name: 'steps', path: 'loop.steps', type: 'number', describe: 'train until this many steps (a resumed run continues to it)' },
  { name: 'seed', path: 'loop.seed', type: 'number', describe: 'seed of weights, data order, noise and embedded showers' },
  { name: 'batch-size', path: 'loop.batchSize', type: 'number', describe: 'showers per step per replica' },
  { name: 'checkpoint-every', path: 'loop.checkpointEvery', type: 'number', describe: 'steps between checkpoints' },
  { name: 'sample-every', path: 'loop.sampleEvery', type: 'number', describe: 'steps between physics plots (PNG, GAN vs MC)' },
  { name: 'eval-every', path: 'loop.evalEvery', type: 'number', describe: 'steps between physics validations on the held-out set (stats.jsonl, best checkpoint); 0 = never' },
  { name: 'tick-every', path: 'loop.tickEvery', type: 'number', describe: 'steps between status lines' },
  { name: 'lr', path: 'optim.lr', type: 'number', describe: 'RMSprop learning rate' },
  { name: 'latent-size', path: 'gan3d.latentSize', type: 'number', describe: 'latent size including the conditions' },
  { name: 'label-flip', path: 'loss.labelFlip', type: 'number', describe: 'probability of a flipped real/fake label' },
  { name: 'hits-weight', path: 'loss.hits', type: 'number', describe: 'weight of the hit-count loss (0 = off)' },
];

/** Throw a {@link UsageError} naming the flag (or config key) of the first invalid field. */
export function validateGan3dConfig(c: Gan3dTrainConfig): void {
  const fail = (flag: string, msg: string): never => {
    throw new UsageError(`${flag}: ${msg}`);
  };
  const posInt = (flag: string, v: number, min = 1): void => {
    if (!Number.isInteger(v) || v < min) fail(flag, `must be an integer >= ${min}, got ${v}`);
  };
  const d = c.data;
  if (!['auto', 'variable-angle', 'fixed-angle'].includes(d.layout)) fail('--layout', `must be auto, variable-angle or fixed-angle, got ${String(d.layout)}`);
  if (d.badFiles !== 'error' && d.badFiles !== 'skip') fail('--bad-files', `must be error or skip, got ${String(d.badFiles)}`);
  if (d.evalData !== undefined && d.dir === undefined) fail('--eval-data', 'needs --data (the embedded showers hold out their own file)');
  posInt('data.prefetch', d.prefetch, 0);
  posInt('data.chunkEvents', d.chunkEvents);
  posInt('data.cacheChunks', d.cacheChunks);
  if (!(d.threshold >= 0)) fail('data.threshold', `must be >= 0, got ${d.threshold}`);
  if (!(d.minSum >= 0)) fail('--min-sum', `must be >= 0, got ${d.minSum}`);
  posInt('--synthetic-files', d.syntheticFiles, 2);
  posInt('--synthetic-events', d.syntheticEvents);
  const er = d.energyRange;
  if (!(Array.isArray(er) && er.length === 2 && (er[0] ?? 0) > 0 && (er[1] ?? 0) > (er[0] ?? 0))) fail('data.energyRange', `must be [lo, hi] GeV with 0 < lo < hi, got ${JSON.stringify(er)}`);
  posInt('--eval-events', d.evalEvents);
  posInt('data.evalBins', d.evalBins);
  const g = c.gan3d;
  posInt('--latent-size', g.latentSize, 3);
  posInt('gan3d.gDenseChannels', g.gDenseChannels);
  if (g.gFilters.length !== 6 || !g.gFilters.every((f) => Number.isInteger(f) && f > 0)) fail('gan3d.gFilters', `must be 6 positive integers, got ${JSON.stringify(g.gFilters)}`);
  if (g.dFilters.length !== 4 || !g.dFilters.every((f) => Number.isInteger(f) && f > 0)) fail('gan3d.dFilters', `must be 4 positive integers, got ${JSON.stringify(g.dFilters)}`);
  if (!(g.dropout >= 0 && g.dropout < 1)) fail('gan3d.dropout', `must be in [0, 1), got ${g.dropout}`);
  if (!(g.power > 0)) fail('gan3d.power', `must be > 0, got ${g.power}`);
  for (const k of ['bce', 'energy', 'angle', 'ecal', 'hits'] as const) if (!(c.loss[k] >= 0)) fail(k === 'hits' ? '--hits-weight' : `loss.${k}`, `must be >= 0, got ${c.loss[k]}`);
  if (!(c.loss.labelFlip >= 0 && c.loss.labelFlip < 0.5)) fail('--label-flip', `must be in [0, 0.5), got ${c.loss.labelFlip}`);
  if (!(c.loss.ecalPerEnergy > 0)) fail('loss.ecalPerEnergy', `must be > 0, got ${c.loss.ecalPerEnergy}`);
  if (!(c.optim.lr > 0)) fail('--lr', `must be > 0, got ${c.optim.lr}`);
  if (!(c.optim.rho > 0 && c.optim.rho < 1)) fail('optim.rho', `must be in (0, 1), got ${c.optim.rho}`);
  validateLoopAndAdam(c.loop);
  posInt('--steps', c.loop.steps, 0);
  posInt('--batch-size', c.loop.batchSize);
  if (!Number.isInteger(c.loop.seed)) fail('--seed', `must be an integer, got ${c.loop.seed}`);
  for (const [flag, v] of [['--checkpoint-every', c.loop.checkpointEvery], ['--sample-every', c.loop.sampleEvery], ['--tick-every', c.loop.tickEvery]] as const) posInt(flag, v);
  posInt('--eval-every', c.loop.evalEvery, 0);
}
