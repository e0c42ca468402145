/** The body of `proggan train`, loaded only when a training command actually runs. */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../backend/index.js';
import { listCheckpoints } from '../training/checkpoint.js';
import { writeRunConfig } from '../training/run-dir.js';
import { checkConfigLayer } from '../models/check-config.js';
import { findModel, MODELS } from '../models/registry.js';
import type { ModelConfig } from '../models/unit.js';
import { readConfigFile, resolveConfig } from '../training/config.js';
import { UsageError } from '../util/errors.js';
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
  if (!req.resume && (await listCheckpoints(runDir)).length > 0) {
    throw new UsageError(`--run-dir ${runDir} already holds checkpoints: add --resume to continue it, or choose another --run-dir`);
  }
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
  try {
    // Every model's run directory starts with its resolved config (what --resume reads back).
    if (strategy.rank === 0) {
      mkdirSync(runDir, { recursive: true });
      writeRunConfig(runDir, config);
    }
    const runtime = await findModel(req.model, models).load();
    const unit = findModel(req.model, models);
    result = await runtime.train({
      config, runDir, resume: req.resume, logger: log, strategy,
      ...(req.timeline ? { timeline: resolve(req.timeline) } : {}),
      ...(unit.statusMetrics ? { statusMetrics: unit.statusMetrics } : {}),
      ...(req.verbose ? { verbose: true } : {}),
    });
  } finally {
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
