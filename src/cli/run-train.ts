/** The body of `proggan train`, loaded only when a training command actually runs. */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, type Dirent } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../backend/index.js';
import { listCheckpoints } from '../training/checkpoint.js';
import { checkConfigLayer } from '../models/check-config.js';
import { findModel, MODELS } from '../models/registry.js';
import type { ModelConfig } from '../models/unit.js';
import { readConfigFile, resolveConfig } from '../training/config.js';
import { UsageError } from '../util/errors.js';
import { acquireRunLock, type RunLock } from '../util/run-lock.js';
import { createCliLogger } from './logging.js';
import { closeStrategy, processStrategy } from './workers.js';
import type { ModelList, TrainRequest } from './train.js';

function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/**
 * The command that continues a run, spelled as it runs from here: `npx proggan` when proggan is an
 * installed package (this file lies under node_modules), `node <path>/bin/proggan.js` in a clone
 * (where `proggan` is not on PATH).
 */
export function continueCommand(model: string, runDir: string, steps?: number, cliFile: string = fileURLToPath(import.meta.url)): string {
  const pkgRoot = resolve(dirname(cliFile), '..', '..');
  const installed = pkgRoot.split(sep).includes('node_modules');
  const bin = installed ? 'npx proggan' : `node ${relative(process.cwd(), join(pkgRoot, 'bin', 'proggan.js')) || join(pkgRoot, 'bin', 'proggan.js')}`;
  const quote = (p: string) => (/^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`);
  return `${bin} train ${model} --run-dir ${quote(runDir)} --resume${steps !== undefined ? ` --steps ${steps}` : ''}`;
}

/** Resolve the config of a train request (defaults < preset < saved run config < --config < flags). */
export function resolveTrainConfig(req: TrainRequest, runDir: string, models: ModelList = MODELS): ModelConfig {
  let saved: Record<string, unknown> | undefined;
  const savedPath = join(runDir, 'config.json');
  if (req.resume) {
    if (!existsSync(savedPath)) throw new UsageError(`--resume: ${runDir} is not a proggan run directory (no config.json); check --run-dir`);
    saved = JSON.parse(readFileSync(savedPath, 'utf8')) as Record<string, unknown>;
    if (saved['model'] !== req.model) throw new UsageError(`--resume: ${runDir} holds a ${String(saved['model'])} run, not ${req.model}`);
  }
  const unit = findModel(req.model, models);
  if (saved) checkConfigLayer(unit, saved, savedPath, models);
  const file = req.configFile !== undefined ? readConfigFile(req.configFile) : undefined;
  if (file) checkConfigLayer(unit, file, `--config ${req.configFile}`, models);
  const layers = {
    ...(req.preset !== undefined ? { preset: req.preset } : {}),
    ...(saved ? { saved } : {}),
    ...(file ? { file } : {}),
  };
  // toTrainRequest shaped the flags after req.model's config.
  return resolveConfig(unit.defaults(), unit.presets, { ...layers, flags: req.flags }, (c) => unit.validate(c));
}

/** Whether `runDir` or one of its subdirectories (e.g. the ProGAN's `encoder/`) holds a committed checkpoint. */
async function holdsCheckpoints(runDir: string): Promise<boolean> {
  if ((await listCheckpoints(runDir)).length > 0) return true;
  let subdirs: Dirent[] = [];
  try {
    subdirs = readdirSync(runDir, { withFileTypes: true }).filter((d) => d.isDirectory());
  } catch {
    return false;
  }
  for (const d of subdirs) {
    if ((await listCheckpoints(join(runDir, d.name))).length > 0) return true;
  }
  return false;
}

/** Whether `runDir/stats.jsonl` has content (a unit that does not forward `onStepDone` still trained). */
function holdsStats(runDir: string): boolean {
  try {
    return statSync(join(runDir, 'stats.jsonl')).size > 0;
  } catch {
    return false;
  }
}

/** Run a parsed `proggan train` request. */
export async function runTrain(req: TrainRequest, models: ModelList = MODELS): Promise<void> {
  const runDir = resolve(req.runDir ?? join('runs', `${req.model}-${timestamp()}`));
  const config = resolveTrainConfig(req, runDir, models) as ModelConfig & { loop: { steps: number } };
  // A data folder that is not there fails now, not after the backend and the encoder have started.
  const dataDir = (config as { data?: { dir?: unknown } }).data?.dir;
  if (typeof dataDir === 'string' && !(existsSync(dataDir) && statSync(dataDir).isDirectory())) {
    throw new UsageError(`--data ${dataDir}: no such folder (give a folder of training images, or leave --data out for the built-in procedural tiles)`);
  }
  if (req.dryRun) {
    const plan = findModel(req.model, models).plan?.(config) ?? [];
    process.stdout.write(`${JSON.stringify({ runDir, resume: req.resume, backend: req.backend ?? 'auto', config, ...(plan.length > 0 ? { plan } : {}) }, null, 2)}\n`);
    if (plan.length > 0 && process.stderr.isTTY) process.stderr.write(`${plan.join('\n')}\n`);
    return;
  }
  if (!req.resume && !req.restartFromScratch && (await listCheckpoints(runDir)).length > 0) {
    throw new UsageError(`--run-dir ${runDir} already holds checkpoints: add --resume to continue it, --restart-from-scratch to start it over (the old one is moved aside), or choose another --run-dir`);
  }
  // Whether this start creates the run directory: if it fails before its first step, it removes it again.
  const existed = existsSync(runDir);
  const log = createCliLogger({ level: req.logLevel, runDir });
  const backend = await initBackend({
    ...(req.backend !== undefined ? { backend: req.backend } : {}),
    ...(req.threads !== undefined ? { threads: req.threads } : {}),
    logger: log,
  });
  log.info({ runDir, model: req.model, steps: config.loop.steps, backend: backend.kind }, `training ${req.model} into ${runDir}`);
  // A rank of a multi-process job (RANK/WORLD_SIZE, TF_CONFIG or Slurm variables) joins it here.
  const strategy = await processStrategy({ logger: log });
  let result;
  let lock: RunLock | null = null;
  let movedAside: string | null = null;
  let stepped = false;
  const chief = strategy.rank === 0;
  const unit = findModel(req.model, models);
  try {
    if (chief) {
      // One writer per run directory: this process (or rank 0 of a job), never the --workers launcher.
      if (req.restartFromScratch && existed) {
        // Not from under a live run: its lock must be free (or stale) first.
        acquireRunLock(runDir).release();
        movedAside = `${runDir}.old-${timestamp()}`;
        renameSync(runDir, movedAside);
        log.warn({ runDir, movedAside }, `--restart-from-scratch: the old run directory was moved to ${movedAside}; starting ${runDir} at step 0`);
      }
      lock = acquireRunLock(runDir);
    }
    const runtime = await unit.load();
    result = await runtime.train({
      config,
      runDir,
      resume: req.resume && !req.restartFromScratch,
      logger: log,
      strategy,
      ...(req.timeline ? { timeline: resolve(req.timeline) } : {}),
      ...(unit.bestMetric ? { bestMetric: unit.bestMetric } : {}),
      ...(unit.statusMetrics ? { statusMetrics: unit.statusMetrics } : {}),
      ...(req.verbose ? { verbose: true } : {}),
      // The trainer writes config.json (what --resume reads back) only once the resume or the new
      // run is accepted, so a rejected start leaves the old one in place.
      onStepDone: () => {
        stepped = true;
      },
    });
  } catch (err) {
    // A start that fails before its first step leaves things as they were: a directory it created
    // is removed, and one moved aside by --restart-from-scratch comes back. Never when it already
    // holds a checkpoint of some stage (the ProGAN's encoder trains into runDir/encoder first).
    if (chief && !stepped && (!existed || movedAside !== null) && !(await holdsCheckpoints(runDir)) && !holdsStats(runDir)) {
      lock?.release();
      lock = null;
      rmSync(runDir, { recursive: true, force: true });
      if (movedAside !== null) renameSync(movedAside, runDir);
    }
    throw err;
  } finally {
    lock?.release();
    await closeStrategy(strategy);
  }
  const how = result.stoppedBy === 'signal' ? 'interrupted; checkpoint saved' : 'done';
  const finished = result.step >= config.loop.steps;
  // A finished run continues only to a higher --steps; an interrupted one resumes to the same target.
  const cont = continueCommand(req.model, runDir, finished ? 2 * config.loop.steps : undefined);
  log.info({ ...result, runDir, continueWith: cont }, `${how}: step ${result.step}/${config.loop.steps}. Samples in ${join(runDir, 'samples')}, ` +
    `stats in ${join(runDir, 'stats.jsonl')}. ${finished ? 'To train further, raise --steps' : 'Continue with'}: ${cont}`);
  if (result.stoppedBy === 'signal') process.exitCode = 130;
}
