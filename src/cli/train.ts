/**
 * `proggan train [model]`: flags -> a typed request; the handler imports the heavy code lazily so that
 * `--help` and parsing never load tfjs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { BACKEND_NAMES, type BackendRequest } from '../backend/names.js';
import { findModel, MODELS } from '../models/registry.js';
import type { ModelConfig, ModelDescriptor, ModelFlag } from '../models/unit.js';
import { withSuggestions } from './suggest.js';
import { UsageError } from '../util/errors.js';

/** The models of `proggan train` (the registry, or the list a test passes). */
export type ModelList = readonly ModelDescriptor<ModelConfig>[];

/** A parsed `proggan train` invocation. */
export interface TrainRequest {
  /** Which model to train (a registry name). */
  model: string;
  /** Run directory; unset means runs/<model>-<timestamp>. */
  runDir?: string;
  /** Continue from the run directory's newest good checkpoint. */
  resume: boolean;
  /** Move the run directory's old contents aside (named in the log) and start at step 0. */
  restartFromScratch?: boolean;
  /** Print the resolved config and exit. */
  dryRun: boolean;
  /** Backend request. */
  backend?: BackendRequest;
  /** Threads for the native backend. */
  threads?: number;
  /** Named preset. */
  preset?: string;
  /** JSON config file. */
  configFile?: string;
  /** Log level. */
  logLevel: string;
  /** Chrome trace file of every step's parts. */
  timeline?: string;
  /** Every statistic in the status line (default: the model's few). */
  verbose?: boolean;
  /** Local worker processes to launch (`--workers N`); unset: train in this process (alone, or as a rank of a job). */
  workers?: number;
  /** With --workers: restarts of the whole group after a worker failure; default 3. */
  maxRestarts?: number;
  /** With --workers: one GPU per worker (CUDA_VISIBLE_DEVICES = rank). */
  gpus?: boolean;
  /** Config values given as flags (highest precedence), shaped like the chosen model's config. */
  flags: Record<string, unknown>;
}

/** Every model flag once, in registry order; a flag only some models read says which in its help. */
function modelFlags(models: ModelList): Array<{ flag: ModelFlag; owners: string[] }> {
  const out = new Map<string, { flag: ModelFlag; owners: string[] }>();
  for (const m of models) {
    for (const f of m.flags) {
      const seen = out.get(f.name);
      if (seen) seen.owners.push(m.name);
      else out.set(f.name, { flag: f, owners: [m.name] });
    }
  }
  return [...out.values()];
}

/** Add the train flags (the command's own and every registered model's) to a yargs instance. */
export function trainBuilder<T>(y: Argv<T>, models: ModelList = MODELS) {
  const presets = models.map((m) => `${m.name}: ${Object.keys(m.presets).join(', ')}`).join('; ');
  let out = y
    .positional('model', {
      describe: `model to train (default: ${models[0]?.name ?? 'none'}, or the model of the run that --resume continues): ` +
        models.map((m) => `${m.name} = ${m.summary}`).join('; '),
      choices: models.map((m) => m.name),
    })
    .option('preset', { type: 'string', describe: `named configuration (${presets})` })
    .option('config', { type: 'string', describe: 'JSON config file (overrides the preset; flags override it)' })
    .option('run-dir', { type: 'string', describe: 'run directory for checkpoints, grids, stats.jsonl (default runs/<model>-<time>)' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue from the newest good checkpoint in --run-dir (stops with a list if none can be loaded)' })
    .option('restart-from-scratch', { type: 'boolean', describe: 'start --run-dir over at step 0, moving its old contents aside to <run-dir>.old-<time> (with --resume: keep its config)' })
    .option('backend', { type: 'string', choices: BACKEND_NAMES, describe: 'tensorflow | native | cpu | auto (default: PROGGAN_BACKEND or auto)' })
    .option('threads', { type: 'number', describe: 'threads for the native backend (default: all cores)' })
    .option('workers', { type: 'number', describe: 'launch N local worker processes (data-parallel ranks); a failed worker restarts the group from the last checkpoint' })
    .option('max-restarts', { type: 'number', describe: 'with --workers: group restarts allowed after a worker failure (default 3)' })
    .option('gpus', { type: 'boolean', describe: 'with --workers: one GPU per worker (CUDA_VISIBLE_DEVICES = rank)' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'print the resolved config and exit' })
    .option('verbose', { type: 'boolean', describe: 'show every statistic in the status line (they all go to stats.jsonl either way)' })
    .option('timeline', { type: 'string', describe: 'write a Chrome trace (chrome://tracing) of every step to this file' })
    .option('log-level', { type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error'], describe: 'log level' });
  for (const { flag, owners } of modelFlags(models)) {
    const prefix = owners.length < models.length ? `${owners.join(', ')}: ` : '';
    out = out.option(flag.name, {
      type: flag.type,
      describe: prefix + flag.describe,
      ...(flag.choices ? { choices: [...flag.choices] } : {}),
    });
  }
  return out;
}

type Parsed = Awaited<ReturnType<ReturnType<typeof trainBuilder>['parse']>>;

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * The model `proggan train` trains when none is named: the registry's first, or, when resuming, the
 * model recorded in the run directory's config.json.
 */
function modelOfRun(runDir: string | undefined, models: ModelList): string {
  const fallback = models[0]?.name ?? 'progan';
  if (runDir === undefined) return fallback;
  const path = join(runDir, 'config.json');
  if (!existsSync(path)) return fallback; // runTrain reports the missing config.json
  let saved: unknown;
  try {
    saved = (JSON.parse(readFileSync(path, 'utf8')) as { model?: unknown }).model;
  } catch {
    return fallback; // runTrain reports the unreadable config.json
  }
  return models.some((m) => m.name === saved) ? (saved as string) : fallback;
}

/** Set `value` at a dotted `path` of `target`, creating the objects on the way. */
function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = target;
  for (const k of keys.slice(0, -1)) {
    const next = cur[k];
    if (typeof next === 'object' && next !== null) cur = next as Record<string, unknown>;
    else cur = cur[k] = {};
  }
  cur[keys[keys.length - 1] as string] = value;
}

/** Turn parsed flags into a {@link TrainRequest}, checking the combinations yargs cannot. */
export function toTrainRequest(a: Parsed, models: ModelList = MODELS): TrainRequest {
  const num = (v: number | undefined, flag: string): number | undefined => {
    if (v !== undefined && !Number.isFinite(v)) throw new UsageError(`--${flag} must be a number`);
    return v;
  };
  if (a.resume && a['run-dir'] === undefined) throw new UsageError('--resume needs --run-dir DIR (the run directory to continue)');
  if (a['restart-from-scratch'] && a['run-dir'] === undefined) throw new UsageError('--restart-from-scratch needs --run-dir DIR (the run directory to start over)');
  const args = a as Record<string, unknown>;
  const model = (a.model as string | undefined) ?? modelOfRun(a.resume ? a['run-dir'] : undefined, models);
  const unit = findModel(model, models);
  const mine = new Set(unit.flags.map((f) => f.name));
  for (const { flag, owners } of modelFlags(models)) {
    if (args[flag.name] !== undefined && !mine.has(flag.name)) {
      throw new UsageError(`--${flag.name} applies to ${owners.map((o) => `\`proggan train ${o}\``).join(' or ')}, not ${model}`);
    }
  }
  // The chosen model's flags, shaped like its config (flags have the highest precedence).
  const flags: Record<string, unknown> = {};
  for (const f of unit.flags) {
    const v = args[f.name];
    if (v === undefined) continue;
    setPath(flags, f.path, f.type === 'number' ? num(v as number, f.name) : v);
  }
  const threads = num(a.threads, 'threads');
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) throw new UsageError('--threads must be a positive integer');
  const workers = num(a.workers, 'workers');
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1)) throw new UsageError('--workers must be a positive integer');
  const maxRestarts = num(a['max-restarts'], 'max-restarts');
  if (maxRestarts !== undefined && (!Number.isInteger(maxRestarts) || maxRestarts < 0)) throw new UsageError('--max-restarts must be a non-negative integer');
  if ((maxRestarts !== undefined || a.gpus !== undefined) && workers === undefined) throw new UsageError('--max-restarts and --gpus need --workers N');
  if (a['restart-from-scratch'] && workers !== undefined) {
    throw new UsageError('--restart-from-scratch cannot be combined with --workers (a group restart would start over again): move the run directory aside yourself, or choose another --run-dir');
  }
  return defined({
    model,
    workers,
    maxRestarts,
    gpus: a.gpus,
    runDir: a['run-dir'],
    resume: a.resume,
    restartFromScratch: a['restart-from-scratch'],
    dryRun: a['dry-run'],
    backend: a.backend as BackendRequest | undefined,
    threads,
    preset: a.preset,
    configFile: a.config,
    logLevel: a['log-level'],
    timeline: a.timeline,
    verbose: a.verbose,
    flags,
  });
}

/** Every flag `proggan train` knows (long names, without dashes), for did-you-mean hints. */
export function trainFlagNames(models: ModelList = MODELS): string[] {
  // yargs keeps its option table behind getOptions(), present at run time but not in @types/yargs.
  const y = trainBuilder(yargs([]), models) as unknown as { getOptions?: () => { key: Record<string, unknown> } };
  return Object.keys(y.getOptions?.().key ?? {}).filter((k) => k.length > 1);
}

/** Parse `proggan train ...` arguments (without the leading `train`) without running anything. */
export function parseTrainArgs(argv: string[], models: ModelList = MODELS): TrainRequest {
  const y = trainBuilder(
    yargs(argv)
      .command('$0 [model]', 'train')
      .strict()
      .exitProcess(false)
      .fail((msg, err) => {
        throw err ?? new UsageError(withSuggestions(msg, trainFlagNames(models)));
      }),
    models,
  );
  return toTrainRequest(y.parseSync() as Parsed, models);
}

/** The yargs command module for `proggan train`. */
export const trainCommand: CommandModule<object, Parsed> = {
  command: 'train [model]',
  describe: `train a model (${MODELS.map((m) => m.name).join(', ')}; the first by default)`,
  builder: (y) => trainBuilder(y) as unknown as Argv<Parsed>,
  handler: async (argv) => {
    const req = toTrainRequest(argv);
    if (req.workers !== undefined && !req.dryRun) {
      const { runWithWorkers } = await import('./workers.js');
      await runWithWorkers({
        argv: hideBin(process.argv),
        workers: req.workers,
        model: req.model,
        logLevel: req.logLevel,
        ...(req.runDir !== undefined ? { runDir: req.runDir } : {}),
        ...(req.maxRestarts !== undefined ? { maxRestarts: req.maxRestarts } : {}),
        ...(req.gpus ? { gpus: true } : {}),
        ...(req.threads !== undefined ? { threads: req.threads } : {}),
      });
      return;
    }
    const { runTrain } = await import('./run-train.js');
    await runTrain(req);
  },
};
