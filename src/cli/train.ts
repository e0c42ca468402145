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
import type { PartialConfig, WaeTrainConfig } from '../training/config.js';
import type { ProGanTrainConfig } from '../training/config-progan.js';
import { UsageError } from '../util/errors.js';

/** Models `proggan train` knows. */
export const TRAIN_MODELS = ['wae', 'progan'] as const;
/** A trainable model name. */
export type TrainModel = (typeof TRAIN_MODELS)[number];

/** A parsed `proggan train` invocation. */
export interface TrainRequest {
  /** Which model to train. */
  model: TrainModel;
  /** Run directory; unset means runs/<model>-<timestamp>. */
  runDir?: string;
  /** Continue from the run directory's newest good checkpoint. */
  resume: boolean;
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
  /** Local worker processes to launch (`--workers N`); unset: train in this process (alone, or as a rank of a job). */
  workers?: number;
  /** With --workers: restarts of the whole group after a worker failure; default 3. */
  maxRestarts?: number;
  /** With --workers: one GPU per worker (CUDA_VISIBLE_DEVICES = rank). */
  gpus?: boolean;
  /** Config values given as flags (highest precedence), shaped like the chosen model's config. */
  flags: PartialConfig<WaeTrainConfig> | PartialConfig<ProGanTrainConfig>;
}

/** Add the train flags to a yargs instance. */
export function trainBuilder<T>(y: Argv<T>) {
  return y
    .positional('model', { describe: 'model to train (default: progan, or the model of the run that --resume continues)', choices: TRAIN_MODELS })
    .option('data', { type: 'string', describe: 'folder of training images (default: embedded procedural satellite-like tiles)' })
    .option('preset', { type: 'string', describe: 'named configuration: tiny (seconds), small, medium, paper' })
    .option('config', { type: 'string', describe: 'JSON config file (overrides the preset; flags override it)' })
    .option('steps', { type: 'number', describe: 'train until this many steps (a resumed run continues to it)' })
    .option('run-dir', { type: 'string', describe: 'run directory for checkpoints, grids, stats.jsonl (default runs/<model>-<time>)' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue from the newest good checkpoint in --run-dir' })
    .option('seed', { type: 'number', describe: 'seed of weights, data order and noise' })
    .option('backend', { type: 'string', choices: BACKEND_NAMES, describe: 'tensorflow | native | cpu | auto (default: PROGGAN_BACKEND or auto)' })
    .option('threads', { type: 'number', describe: 'threads for the native backend (default: all cores)' })
    .option('workers', { type: 'number', describe: 'launch N local worker processes (data-parallel ranks); a failed worker restarts the group from the last checkpoint' })
    .option('max-restarts', { type: 'number', describe: 'with --workers: group restarts allowed after a worker failure (default 3)' })
    .option('gpus', { type: 'boolean', describe: 'with --workers: one GPU per worker (CUDA_VISIBLE_DEVICES = rank)' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'print the resolved config and exit' })
    .option('channels', { type: 'number', choices: [1, 3], describe: 'image channels: 1 or 3' })
    .option('batch-size', { type: 'number', describe: 'images per step per replica' })
    .option('resolution', { type: 'number', describe: 'corner tile side in pixels (power of two)' })
    .option('latent-size', { type: 'number', describe: 'latent size per corner' })
    .option('lr', { type: 'number', describe: 'learning rate' })
    .option('mmd-kernel', { type: 'string', choices: ['imq', 'rbf', 'cern'], describe: 'MMD kernel' })
    .option('mmd-weight', { type: 'number', describe: 'weight lambda of the MMD term' })
    .option('checkpoint-every', { type: 'number', describe: 'steps between checkpoints' })
    .option('sample-every', { type: 'number', describe: 'steps between sample grids' })
    .option('eval-every', { type: 'number', describe: 'steps between held-out evaluations (progan: SWD) written to stats.jsonl; 0 = never' })
    .option('tick-every', { type: 'number', describe: 'steps between status lines' })
    .option('bad-files', { type: 'string', choices: ['error', 'skip'], describe: 'unreadable images: stop with a list, or skip each with a log line' })
    .option('flip', { type: 'boolean', describe: 'random horizontal flips (--no-flip to disable)' })
    .option('synthetic-count', { type: 'number', describe: 'number of procedural tiles when no --data is given' })
    .option('timeline', { type: 'string', describe: 'write a Chrome trace (chrome://tracing) of every step to this file' })
    .option('batch-norm', { type: 'boolean', describe: 'wae: batch norm in the blocks (default on; --no-batch-norm for exact data-parallel parity)' })
    .option('encoder', { type: 'string', describe: 'progan: a trained WAE run directory used as the frozen encoder (default: train one first)' })
    .option('encoder-steps', { type: 'number', describe: 'progan: training steps of the encoder trained first (default: its preset\'s)' })
    .option('start-resolution', { type: 'number', describe: 'progan: corner side the growth starts at' })
    .option('fade-kimg', { type: 'number', describe: 'progan: thousands of images per fade-in phase' })
    .option('stable-kimg', { type: 'number', describe: 'progan: thousands of images per stabilising phase' })
    .option('lr-g', { type: 'number', describe: 'progan: generator learning rate' })
    .option('lr-d', { type: 'number', describe: 'progan: discriminators\' learning rate' })
    .option('global-weight', { type: 'number', describe: 'progan: weight of the global discriminator vs the local one (0..1)' })
    .option('fmap-base', { type: 'number', describe: 'progan: channel table base, nf = min(base / 2^stage, max)' })
    .option('fmap-max', { type: 'number', describe: 'progan: channel table maximum' })
    .option('z-dim', { type: 'number', describe: 'progan: noise size' })
    .option('mbstd-group-size', { type: 'number', describe: 'progan: minibatch-stddev group size of both discriminators (0 disables)' })
    .option('log-level', { type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error'], describe: 'log level' });
}

type Parsed = Awaited<ReturnType<ReturnType<typeof trainBuilder>['parse']>>;

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * The model `proggan train` trains when none is named: the conditional ProGAN, or, when resuming, the
 * model recorded in the run directory's config.json.
 */
function modelOfRun(runDir: string | undefined): TrainModel {
  if (runDir === undefined) return 'progan';
  const path = join(runDir, 'config.json');
  if (!existsSync(path)) return 'progan'; // runTrain reports the missing config.json
  const saved = (JSON.parse(readFileSync(path, 'utf8')) as { model?: unknown }).model;
  return (TRAIN_MODELS as readonly unknown[]).includes(saved) ? (saved as TrainModel) : 'progan';
}

/** Turn parsed flags into a {@link TrainRequest}, checking the combinations yargs cannot. */
export function toTrainRequest(a: Parsed): TrainRequest {
  const num = (v: number | undefined, flag: string): number | undefined => {
    if (v !== undefined && !Number.isFinite(v)) throw new UsageError(`--${flag} must be a number`);
    return v;
  };
  if (a.resume && a['run-dir'] === undefined) throw new UsageError('--resume needs --run-dir DIR (the run directory to continue)');
  const data = defined({
    dir: a.data,
    channels: a.channels as 1 | 3 | undefined,
    badFiles: a['bad-files'] as 'error' | 'skip' | undefined,
    flip: a.flip,
    syntheticCount: num(a['synthetic-count'], 'synthetic-count'),
  });
  const loop = defined({
    steps: num(a.steps, 'steps'),
    batchSize: num(a['batch-size'], 'batch-size'),
    seed: num(a.seed, 'seed'),
    checkpointEvery: num(a['checkpoint-every'], 'checkpoint-every'),
    sampleEvery: num(a['sample-every'], 'sample-every'),
    tickEvery: num(a['tick-every'], 'tick-every'),
    evalEvery: num(a['eval-every'], 'eval-every'),
  });
  const model = (a.model as TrainModel | undefined) ?? modelOfRun(a.resume ? a['run-dir'] : undefined);
  const onlyFor = (m: TrainModel, names: string[]) => {
    for (const n of names) if (a[n] !== undefined && model !== m) throw new UsageError(`--${n} applies to \`proggan train ${m}\`, not ${model}`);
  };
  onlyFor('wae', ['lr', 'mmd-kernel', 'mmd-weight', 'batch-norm']);
  onlyFor('progan', ['encoder', 'encoder-steps', 'start-resolution', 'fade-kimg', 'stable-kimg', 'lr-g', 'lr-d', 'global-weight', 'fmap-base', 'fmap-max', 'z-dim', 'mbstd-group-size']);
  const flags: PartialConfig<WaeTrainConfig> | PartialConfig<ProGanTrainConfig> =
    model === 'wae'
      ? {
          data,
          loop,
          wae: defined({ cornerResolution: num(a.resolution, 'resolution'), latentSize: num(a['latent-size'], 'latent-size'), batchNorm: a['batch-norm'] }),
          loss: defined({ kernel: a['mmd-kernel'] as 'imq' | 'rbf' | 'cern' | undefined, lambda: num(a['mmd-weight'], 'mmd-weight') }),
          optim: defined({ lr: num(a.lr, 'lr') }),
        }
      : {
          data,
          loop,
          progan: defined({
            maxCornerResolution: num(a.resolution, 'resolution'),
            latentDim: num(a['latent-size'], 'latent-size'),
            zDim: num(a['z-dim'], 'z-dim'),
            fmapBase: num(a['fmap-base'], 'fmap-base'),
            fmapMax: num(a['fmap-max'], 'fmap-max'),
            mbstdGroupSize: num(a['mbstd-group-size'], 'mbstd-group-size'),
          }),
          encoder: defined({ runDir: a.encoder, steps: num(a['encoder-steps'], 'encoder-steps') }),
          loss: defined({ globalWeight: num(a['global-weight'], 'global-weight') }),
          schedule: defined({
            startResolution: num(a['start-resolution'], 'start-resolution'),
            fadeKimg: num(a['fade-kimg'], 'fade-kimg'),
            stableKimg: num(a['stable-kimg'], 'stable-kimg'),
            lrG: num(a['lr-g'], 'lr-g'),
            lrD: num(a['lr-d'], 'lr-d'),
          }),
        };
  const threads = num(a.threads, 'threads');
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) throw new UsageError('--threads must be a positive integer');
  const workers = num(a.workers, 'workers');
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1)) throw new UsageError('--workers must be a positive integer');
  const maxRestarts = num(a['max-restarts'], 'max-restarts');
  if (maxRestarts !== undefined && (!Number.isInteger(maxRestarts) || maxRestarts < 0)) throw new UsageError('--max-restarts must be a non-negative integer');
  if ((maxRestarts !== undefined || a.gpus !== undefined) && workers === undefined) throw new UsageError('--max-restarts and --gpus need --workers N');
  return defined({
    model,
    workers,
    maxRestarts,
    gpus: a.gpus,
    runDir: a['run-dir'],
    resume: a.resume,
    dryRun: a['dry-run'],
    backend: a.backend as BackendRequest | undefined,
    threads,
    preset: a.preset,
    configFile: a.config,
    logLevel: a['log-level'],
    timeline: a.timeline,
    flags,
  });
}

/** Parse `proggan train ...` arguments (without the leading `train`) without running anything. */
export function parseTrainArgs(argv: string[]): TrainRequest {
  const y = trainBuilder(
    yargs(argv)
      .command('$0 [model]', 'train')
      .strict()
      .exitProcess(false)
      .fail((msg, err) => {
        throw err ?? new UsageError(msg);
      }),
  );
  return toTrainRequest(y.parseSync() as Parsed);
}

/** The yargs command module for `proggan train`. */
export const trainCommand: CommandModule<object, Parsed> = {
  command: 'train [model]',
  describe: 'train a model (progan by default, or wae) on an image folder or the embedded synthetic tiles',
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
