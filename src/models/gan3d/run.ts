/**
 * `trainGan3d`: everything `proggan train 3dgan` does, as a library call — shower files (or the
 * embedded MC-like showers written to HDF5), the streaming pipeline, the objective, physics
 * validation in the loop (stats.jsonl / TensorBoard through the trainer's evaluate hook, PNG plots
 * at sample ticks, the best checkpoint by the physics selection metric in `run/best/`).
 * `loadGan3d`, `validateGan3d`, `generateGan3d`: a trained run's generator, its physics report, and
 * showers written to HDF5 in the data's layout.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Pipeline } from '../../data/pipeline.js';
import {
  listShowerFiles,
  readHeldOut,
  scanShowerFiles,
  ShowerExampleDataset,
  splitShowerFiles,
  writeMcShowerFiles,
  type HeldOutShowers,
  type ShowerScanCounts,
} from '../../data/showers-dataset.js';
import { defaultShowerPreprocess, writeShowers, type ShowerLayout, type ShowerPreprocessOptions } from '../../data/showers-hdf5.js';
import { OneDeviceStrategy } from '../../distributed/strategy.js';
import { comparePhysics, quantileEnergyBins, type PhysicsBin, type PhysicsComparison } from '../../metrics/physics.js';
import { loadLatestCheckpoint, saveCheckpoint, type TensorRecord } from '../../training/checkpoint.js';
import { loopOptions, writeRunConfig } from '../../training/run-dir.js';
import type { StepContext } from '../../training/objective.js';
import { train, type TrainResult } from '../../training/trainer.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { ModelTrainOptions } from '../unit.js';
import type { Gan3dTrainConfig } from './config.js';
import { defaultGan3dArgs } from './networks.js';
import { Gan3dObjective, type Gan3dConfig } from './objective.js';
import { writePhysicsPlots } from './plots.js';

/** The objective settings of a run config for a data layout. */
export function gan3dObjectiveConfig(c: Gan3dTrainConfig, layout: ShowerLayout): Gan3dConfig {
  const g = c.gan3d;
  const tuple6 = g.gFilters as [number, number, number, number, number, number];
  const tuple4 = g.dFilters as [number, number, number, number];
  return {
    model: defaultGan3dArgs({ geometry: layout, latentSize: g.latentSize, gDenseChannels: g.gDenseChannels, gFilters: tuple6, dFilters: tuple4, dropout: g.dropout, power: g.power }),
    weights: { bce: c.loss.bce, energy: c.loss.energy, angle: layout === 'fixed-angle' ? 0 : c.loss.angle, ecal: c.loss.ecal, hits: c.loss.hits },
    labelFlip: c.loss.labelFlip,
    lr: c.optim.lr,
    rho: c.optim.rho,
    batchSize: c.loop.batchSize,
    ecalPerEnergy: c.loss.ecalPerEnergy,
    seed: c.loop.seed,
  };
}

/** The preprocessing of a run config. */
export function gan3dPreprocess(c: Gan3dTrainConfig): ShowerPreprocessOptions {
  return defaultShowerPreprocess({ threshold: c.data.threshold, minSum: c.data.minSum, power: c.gan3d.power });
}

/** A run's opened data. */
export interface Gan3dData {
  train: ShowerExampleDataset;
  heldOut: HeldOutShowers;
  layout: ShowerLayout;
  counts: { train: ShowerScanCounts; heldOut: ShowerScanCounts };
}

/**
 * Open the data of a run: `--data` (file or folder; 90/10 split by file unless `--eval-data`) or the
 * embedded MC-like showers, written once to `runDir/showers/` (HDF5, the last file held out).
 */
export async function openGan3dData(c: Gan3dTrainConfig, runDir: string, log: Logger): Promise<Gan3dData> {
  const forced = c.data.layout === 'auto' ? undefined : c.data.layout;
  let trainFiles: string[];
  let heldFiles: string[];
  if (c.data.dir === undefined) {
    const layout = forced ?? 'variable-angle';
    const lo = c.data.energyRange[0] ?? 2;
    const hi = c.data.energyRange[1] ?? 500;
    log.info({ files: c.data.syntheticFiles, events: c.data.syntheticEvents, seed: c.loop.seed, layout, energyRange: [lo, hi] },
      'data: embedded MC-like showers (deterministic per seed, written to HDF5 under the run dir; pass --data for Geant4 files)');
    const files = await writeMcShowerFiles(join(runDir, 'showers'), { files: c.data.syntheticFiles, events: c.data.syntheticEvents, seed: c.loop.seed, layout, energyRange: [lo, hi], logger: log });
    trainFiles = files.slice(0, -1);
    heldFiles = files.slice(-1);
  } else {
    const files = listShowerFiles(c.data.dir, '--data');
    if (c.data.evalData !== undefined) {
      trainFiles = files;
      heldFiles = listShowerFiles(c.data.evalData, '--eval-data');
    } else ({ train: trainFiles, heldOut: heldFiles } = splitShowerFiles(files, '--data'));
  }
  const preprocess = gan3dPreprocess(c);
  const common = { preprocess, chunkEvents: c.data.chunkEvents, badFiles: c.data.badFiles, logger: log };
  const tr = await scanShowerFiles(trainFiles, { ...common, ...(forced ? { layout: forced } : {}), what: 'train' });
  log.info({ layout: tr.layout, forced: forced !== undefined }, `layout: ${tr.layout}${forced ? ' (--layout)' : ' (detected)'}`);
  const ho = await scanShowerFiles(heldFiles, { ...common, layout: tr.layout, what: 'held-out' });
  const heldOut = await readHeldOut(ho.sources, c.data.evalEvents, { preprocess, chunkEvents: c.data.chunkEvents });
  const train = new ShowerExampleDataset(tr.sources, { preprocess, chunkEvents: c.data.chunkEvents, cacheChunks: c.data.cacheChunks });
  return { train, heldOut, layout: tr.layout, counts: { train: tr.counts, heldOut: ho.counts } };
}

/** The best checkpoint so far by the physics selection metric (lower is better). */
export interface BestRecord {
  metric: number;
  step: number;
}

/** Generated showers as raw cells (GeV): ReLU output with the power undone and the data's threshold applied. */
export async function generateCells(obj: Gan3dObjective, energyGeV: ArrayLike<number>, theta: ArrayLike<number>, opts: { seed: number; threshold: number; energyScale?: number; batch?: number }): Promise<Float32Array> {
  const n = energyGeV.length;
  const [x, y, z] = obj.config.model.geometry === 'variable-angle' ? [51, 51, 25] : [25, 25, 25];
  const per = x * y * z;
  const out = new Float32Array(n * per);
  const b = opts.batch ?? 8;
  const scale = opts.energyScale ?? 100;
  const inv = 1 / obj.config.model.power;
  for (let s = 0; s < n; s += b) {
    const m = Math.min(b, n - s);
    const cells = tf.tidy(() => {
      const e = tf.tensor1d(Array.from({ length: m }, (_, i) => (energyGeV[s + i] ?? 0) / scale));
      const t = tf.tensor1d(Array.from({ length: m }, (_, i) => theta[s + i] ?? Math.PI / 2));
      const raw = tf.pow(tf.relu(obj.generate(e, t, opts.seed + s)), inv);
      return tf.where(tf.less(raw, opts.threshold), tf.zerosLike(raw), raw);
    });
    out.set((await cells.data()) as Float32Array, s * per);
    cells.dispose();
  }
  return out;
}

/** Compare generated showers (for the held-out events' own energies and angles) with the held-out MC. */
export async function comparePhysicsOf(obj: Gan3dObjective, held: HeldOutShowers, bins: PhysicsBin[], threshold: number, seed: number): Promise<PhysicsComparison> {
  const gan = await generateCells(obj, held.energy, held.theta, { seed, threshold });
  return comparePhysics(
    { cells: held.cells, shape: held.shape, energy: held.energy, theta: held.theta },
    { cells: gan, shape: held.shape, energy: held.energy, theta: held.theta },
    bins,
  );
}

/** The numbers of a comparison as flat stats keys (`physics/metric`, `physics/sf_err/<bin>`, ...). */
export function physicsMetrics(cmp: PhysicsComparison): Record<string, number> {
  const out: Record<string, number> = { 'physics/metric': cmp.metric };
  cmp.bins.forEach((b, i) => {
    const m = cmp.mc[i];
    const g = cmp.gan[i];
    if (!m?.events || !g?.events) return;
    out[`physics/sf_err/${b.label}`] = cmp.samplingFractionError[i] ?? Number.NaN;
    out[`physics/sf_gan/${b.label}`] = g.samplingFraction.mean;
    out[`physics/sf_mc/${b.label}`] = m.samplingFraction.mean;
    out[`physics/hits_ratio/${b.label}`] = m.hits > 0 ? g.hits / m.hits : Number.NaN;
  });
  return out;
}

/**
 * The 3DGAN objective of a run: the networks and losses of {@link Gan3dObjective} plus the physics
 * validation on a fixed held-out set (every `--eval-every` steps), physics plots at sample ticks and
 * the best checkpoint by the selection metric, kept in `runDir/best/` apart from the newest ones.
 */
export class Gan3dRunObjective extends Gan3dObjective {
  private step = 0;
  private nimg = 0;
  private best: BestRecord | null = null;
  private last: { step: number; cmp: PhysicsComparison } | null = null;

  constructor(
    config: Gan3dConfig,
    private readonly run: { runDir: string; heldOut: HeldOutShowers | null; bins: PhysicsBin[]; threshold: number; runConfig: unknown; logger: Logger },
  ) {
    super(config);
  }

  /** The best record so far (null before the first evaluation). */
  bestRecord(): BestRecord | null {
    return this.best;
  }

  beginStep(ctx: StepContext): void {
    this.step = ctx.step;
    this.nimg = ctx.nimg;
  }

  afterStep(ctx: StepContext): void {
    this.step = ctx.step + 1;
    this.nimg = ctx.nimg + this.config.batchSize * ctx.replicas;
  }

  private async compare(): Promise<PhysicsComparison> {
    if (this.last?.step === this.step) return this.last.cmp;
    if (!this.run.heldOut) throw new Error('3DGAN: no held-out set on this replica');
    const cmp = await comparePhysicsOf(this, this.run.heldOut, this.run.bins, this.run.threshold, 7919);
    this.last = { step: this.step, cmp };
    return cmp;
  }

  async evaluate(): Promise<Record<string, number>> {
    const cmp = await this.compare();
    const metrics = physicsMetrics(cmp);
    if (Number.isFinite(cmp.metric) && (this.best === null || cmp.metric < this.best.metric)) {
      this.best = { metric: cmp.metric, step: this.step };
      await this.saveBest();
    }
    metrics['physics/best_metric'] = this.best?.metric ?? Number.NaN;
    metrics['physics/best_step'] = this.best?.step ?? Number.NaN;
    return metrics;
  }

  private async saveBest(): Promise<void> {
    const tensors: Record<string, TensorRecord> = {};
    for (const [name, v] of this.stateVariables()) tensors[`model/${name}`] = { shape: v.shape.slice(), dtype: 'float32', data: (await v.data()) as Float32Array };
    const dir = join(this.run.runDir, 'best');
    await saveCheckpoint(dir, { step: this.step, nimg: this.nimg, tensors, meta: { best: this.best, config: this.run.runConfig } }, { keep: 1 });
    writeFileSync(join(dir, 'best.json'), `${JSON.stringify({ metric: this.best?.metric, step: this.best?.step, selection: 'physics/metric (lower is better)' }, null, 2)}\n`);
    this.run.logger.info({ best: this.best }, `best checkpoint by the physics metric: step ${this.step}, metric ${this.best?.metric.toFixed(4) ?? ''}`);
  }

  async writeSamples(path: string): Promise<void> {
    if (!this.run.heldOut) return;
    mkdirSync(dirname(path), { recursive: true });
    const cmp = await this.compare();
    await writePhysicsPlots(path.replace(/\.png$/, '-'), cmp, `step ${this.step}`);
  }

  getMeta(): Record<string, unknown> {
    return { best: this.best };
  }

  setMeta(meta: Record<string, unknown>): void {
    const b = meta['best'] as BestRecord | null | undefined;
    this.best = b && typeof b.metric === 'number' ? b : null;
  }
}

/** Train (or continue training) a 3DGAN. */
export async function trainGan3d(opts: ModelTrainOptions<Gan3dTrainConfig>): Promise<TrainResult> {
  const { runDir } = opts;
  const log = opts.logger ?? silentLogger();
  const strategy = opts.strategy ?? new OneDeviceStrategy();
  mkdirSync(runDir, { recursive: true });
  const data = await openGan3dData(opts.config, runDir, log);
  // The resolved layout is part of the run: a resume (and validate/generate) rebuild the same networks.
  const config: Gan3dTrainConfig = { ...opts.config, data: { ...opts.config.data, layout: data.layout } };
  if (strategy.rank === 0) writeRunConfig(runDir, config);
  if (data.train.size < config.loop.batchSize * strategy.worldSize) {
    throw new Error(`${data.train.size} training showers are fewer than one global batch (${config.loop.batchSize} x ${strategy.worldSize} replicas)`);
  }
  const bins = quantileEnergyBins(data.heldOut.energy, config.data.evalBins);
  log.info({ bins: bins.map((b) => b.label), heldOutEvents: data.heldOut.energy.length }, 'physics validation bins (quantiles of the held-out energies)');
  const pipeline = new Pipeline(data.train, {
    batchSize: config.loop.batchSize,
    seed: config.loop.seed,
    rank: strategy.rank,
    worldSize: strategy.worldSize,
    prefetch: config.data.prefetch,
  });
  const objective = new Gan3dRunObjective(gan3dObjectiveConfig(config, data.layout), {
    runDir, heldOut: strategy.rank === 0 ? data.heldOut : null, bins, threshold: config.data.threshold, runConfig: config, logger: log,
  });
  const p = objective.paramCounts();
  log.info({ ...p, layout: data.layout }, `3DGAN: G ${p.generator} and D ${p.discriminator} parameters (${data.layout})`);
  try {
    return await train({ objective, pipeline, loop: config.loop, runDir, resume: opts.resume ?? false, strategy, logger: log, config, ...loopOptions(opts) });
  } finally {
    pipeline.close();
    objective.dispose();
  }
}

/** A trained 3DGAN loaded from a run directory. */
export interface LoadedGan3d {
  objective: Gan3dObjective;
  config: Gan3dTrainConfig;
  layout: ShowerLayout;
  step: number;
  /** The checkpoint directory loaded. */
  dir: string;
  /** Whether it is the best-by-physics checkpoint (`run/best/`). */
  best: boolean;
}

/** Load a 3DGAN run: its best-by-physics checkpoint when there is one (unless `newest`), else the newest. */
export async function loadGan3d(runDir: string, opts: { newest?: boolean; logger?: Logger } = {}): Promise<LoadedGan3d> {
  const cfgPath = join(runDir, 'config.json');
  if (!existsSync(cfgPath)) throw new Error(`--checkpoint ${runDir}: not a proggan run directory (no config.json)`);
  const config = JSON.parse(readFileSync(cfgPath, 'utf8')) as Gan3dTrainConfig;
  if (config.model !== '3dgan') throw new Error(`--checkpoint ${runDir}: holds a ${String(config.model)} run, not a 3DGAN`);
  const layout: ShowerLayout = config.data.layout === 'fixed-angle' ? 'fixed-angle' : 'variable-angle';
  const lopts = opts.logger ? { logger: opts.logger } : {};
  let found = opts.newest ? null : await loadLatestCheckpoint(join(runDir, 'best'), lopts);
  const best = found !== null;
  found ??= await loadLatestCheckpoint(runDir, lopts);
  if (!found) throw new Error(`--checkpoint ${runDir}: no readable checkpoint`);
  const objective = new Gan3dObjective(gan3dObjectiveConfig(config, layout));
  for (const [name, v] of objective.stateVariables()) {
    const rec = found.state.tensors[`model/${name}`];
    if (!rec) throw new Error(`${found.dir} lacks ${name}`);
    tf.tidy(() => v.assign(tf.tensor(rec.data, rec.shape, 'float32')));
  }
  return { objective, config, layout, step: found.state.step, dir: found.dir, best };
}

/** Options of {@link validateGan3d}. */
export interface ValidateGan3dOptions {
  /** Held-out HDF5 file or folder; default the run's own held-out set. */
  data?: string;
  /** Output folder of report.json and the PNGs; default `<run>/validation`. */
  out?: string;
  /** Events compared; default the run's `data.evalEvents`. */
  events?: number;
  /** Use the newest checkpoint rather than the best by physics. */
  newest?: boolean;
  logger?: Logger;
}

/** The physics report of a run against MC: JSON and PNG figures (GAN vs MC overlaid). */
export async function validateGan3d(runDir: string, opts: ValidateGan3dOptions = {}): Promise<{ report: Record<string, unknown>; files: string[] }> {
  const log = opts.logger ?? silentLogger();
  const loaded = await loadGan3d(runDir, { ...(opts.newest ? { newest: true } : {}), logger: log });
  try {
    const c = loaded.config;
    const preprocess = gan3dPreprocess(c);
    let files: string[];
    if (opts.data !== undefined) files = listShowerFiles(opts.data, '--data');
    else if (c.data.evalData !== undefined) files = listShowerFiles(c.data.evalData, '--eval-data');
    else if (c.data.dir !== undefined) files = splitShowerFiles(listShowerFiles(c.data.dir, '--data'), '--data').heldOut;
    else {
      const lo = c.data.energyRange[0] ?? 2;
      const hi = c.data.energyRange[1] ?? 500;
      files = (await writeMcShowerFiles(join(runDir, 'showers'), { files: c.data.syntheticFiles, events: c.data.syntheticEvents, seed: c.loop.seed, layout: loaded.layout, energyRange: [lo, hi], logger: log })).slice(-1);
    }
    const scan = await scanShowerFiles(files, { layout: loaded.layout, preprocess, chunkEvents: c.data.chunkEvents, badFiles: c.data.badFiles, logger: log, what: 'validation' });
    const held = await readHeldOut(scan.sources, opts.events ?? c.data.evalEvents, { preprocess, chunkEvents: c.data.chunkEvents });
    const bins = quantileEnergyBins(held.energy, c.data.evalBins);
    const cmp = await comparePhysicsOf(loaded.objective, held, bins, c.data.threshold, 7919);
    const out = opts.out ?? join(runDir, 'validation');
    mkdirSync(out, { recursive: true });
    const pngs = await writePhysicsPlots(`${out}/`, cmp, `3DGAN step ${loaded.step} vs MC`);
    const report = {
      run: runDir,
      checkpoint: loaded.dir,
      bestByPhysics: loaded.best,
      step: loaded.step,
      data: held.files,
      events: held.energy.length,
      metric: cmp.metric,
      bins: cmp.bins.map((b, i) => ({
        label: b.label,
        energy: b.energy,
        events: cmp.mc[i]?.events ?? 0,
        samplingFraction: { mc: cmp.mc[i]?.samplingFraction, gan: cmp.gan[i]?.samplingFraction, relativeError: cmp.samplingFractionError[i] },
        hits: { mc: cmp.mc[i]?.hits, gan: cmp.gan[i]?.hits },
        measuredAngle: { mc: cmp.mc[i]?.angle, gan: cmp.gan[i]?.angle },
        momentsZ: { mc: cmp.mc[i]?.momentsZ, gan: cmp.gan[i]?.momentsZ },
        momentsX: { mc: cmp.mc[i]?.momentsX, gan: cmp.gan[i]?.momentsX },
        momentsY: { mc: cmp.mc[i]?.momentsY, gan: cmp.gan[i]?.momentsY },
      })),
      comparison: cmp,
      plots: pngs,
    };
    const reportPath = join(out, 'report.json');
    writeFileSync(reportPath, `${JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
    log.info({ report: reportPath, metric: cmp.metric, step: loaded.step, best: loaded.best }, `validation: metric ${cmp.metric.toFixed(4)} on ${held.energy.length} events; ${reportPath}`);
    return { report, files: [reportPath, ...pngs] };
  } finally {
    loaded.objective.dispose();
  }
}

/** Options of {@link generateGan3d}. */
export interface GenerateGan3dOptions {
  /** Primary energies, GeV. */
  energies: number[];
  /** Entry angles, degrees (ignored by the fixed-angle layout). Default [90]. */
  anglesDeg?: number[];
  /** Showers per (energy, angle). */
  n: number;
  /** Output HDF5 file. */
  out: string;
  /** Noise seed. Default 0. */
  seed?: number;
  newest?: boolean;
  logger?: Logger;
}

/** Write generated showers (raw GeV cells) to HDF5 in the run's data layout. */
export async function generateGan3d(runDir: string, o: GenerateGan3dOptions): Promise<{ events: number; layout: ShowerLayout }> {
  if (o.energies.length === 0 || !o.energies.every((e) => Number.isFinite(e) && e > 0)) throw new Error(`--energies: give positive energies in GeV, e.g. 50,100,200 (got ${o.energies.join(',')})`);
  if (!(Number.isInteger(o.n) && o.n > 0)) throw new Error(`--n: must be a positive integer, got ${o.n}`);
  const loaded = await loadGan3d(runDir, { ...(o.newest ? { newest: true } : {}), ...(o.logger ? { logger: o.logger } : {}) });
  try {
    const angles = loaded.layout === 'fixed-angle' ? [90] : (o.anglesDeg ?? [90]);
    if (!angles.every((a) => Number.isFinite(a) && a > 0 && a < 180)) throw new Error(`--angles: give angles in degrees in (0, 180), got ${angles.join(',')}`);
    const energy: number[] = [];
    const theta: number[] = [];
    for (const e of o.energies) for (const a of angles) for (let i = 0; i < o.n; i++) { energy.push(e); theta.push((a * Math.PI) / 180); }
    const cells = await generateCells(loaded.objective, energy, theta, { seed: o.seed ?? 0, threshold: loaded.config.data.threshold });
    mkdirSync(dirname(o.out), { recursive: true });
    await writeShowers(o.out, loaded.layout, { ecal: cells, energy: Float32Array.from(energy), ...(loaded.layout === 'variable-angle' ? { angles: { theta: Float32Array.from(theta) } } : {}) });
    o.logger?.info({ out: o.out, events: energy.length, layout: loaded.layout, step: loaded.step, best: loaded.best }, `wrote ${energy.length} generated showers to ${o.out}`);
    return { events: energy.length, layout: loaded.layout };
  } finally {
    loaded.objective.dispose();
  }
}
