/**
 * The two hooks that make `proggan train` distributed:
 * - in a parent started with `--workers N`: {@link runWithWorkers} launches N local ranks of the same
 *   command line and supervises them (restart the group from the last checkpoint on any failure);
 * - in a rank (RANK/WORLD_SIZE, TF_CONFIG or Slurm variables describe a multi-process job):
 *   {@link processStrategy} joins the job and returns the strategy to train with.
 * Loaded lazily by the train handler; nothing here imports tfjs.
 */
import { join, resolve } from 'node:path';
import { resolveCluster, type ClusterSpec } from '../distributed/cluster.js';
import { launchWorkers, runStarted, DEFAULT_MAX_RESTARTS, type LaunchResult } from '../distributed/launcher.js';
import { createStrategy } from '../distributed/mirrored.js';
import { OneDeviceStrategy, type Strategy } from '../distributed/strategy.js';
import { watchLauncher } from '../distributed/supervised.js';
import { UsageError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { createCliLogger } from './logging.js';

/** Flags that only the launching parent understands, with whether each takes a value. */
const LAUNCHER_FLAGS: Record<string, boolean> = { workers: true, 'max-restarts': true, gpus: false };

/** The run directory `proggan train` picks when none is given: runs/<model>-<local time>. */
export function defaultRunDir(model: string, d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
  return resolve(join('runs', `${model}-${stamp}`));
}

/**
 * The workers' command line from the parent's: the launcher's own flags (`--workers`, `--max-restarts`,
 * `--gpus`, also in `--flag=value` and `--no-gpus` forms) removed, and `--run-dir` set so every rank
 * and every restart shares one run directory.
 */
export function workerArgv(argv: string[], runDir: string): string[] {
  const out: string[] = [];
  let hasRunDir = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const m = /^--(no-)?([a-z-]+)(=.*)?$/.exec(a);
    const name = m?.[2];
    if (m && name !== undefined && name in LAUNCHER_FLAGS) {
      // Skip the value of `--flag value` (not of `--flag=value`, `--no-flag` or a boolean flag).
      if (LAUNCHER_FLAGS[name] && m[3] === undefined && m[1] === undefined) i++;
      continue;
    }
    if (a === '--run-dir' || a.startsWith('--run-dir=')) hasRunDir = true;
    out.push(a);
  }
  if (!hasRunDir) out.push('--run-dir', runDir);
  return out;
}

/** Whether `env` makes this process one rank of a job of more than one process. */
export function clusterFromEnv(env: NodeJS.ProcessEnv = process.env): ClusterSpec | undefined {
  const spec = resolveCluster(env);
  return spec.worldSize > 1 ? spec : undefined;
}

/** Options of {@link runWithWorkers}. */
export interface RunWithWorkersOptions {
  /** The full CLI arguments of this process (e.g. `hideBin(process.argv)`: `train wae --workers 2 ...`). Required. */
  argv: string[];
  /** Number of local worker processes. Required, >= 1. */
  workers: number;
  /** Model name, for the default run directory. Required. */
  model: string;
  /** Run directory; default runs/<model>-<time>, resolved here once so all ranks share it. */
  runDir?: string;
  /** Group restarts allowed after a failure; default 3. */
  maxRestarts?: number;
  /** One GPU per worker (CUDA_VISIBLE_DEVICES = rank); default false (a thread budget per worker). */
  gpus?: boolean;
  /** Threads per worker when not on GPUs; default floor(cores / workers), at least 1 (`--threads` if given). */
  threads?: number;
  /** Log level of the launcher's own lines; default info. */
  logLevel?: string;
  /** Logger for the launcher; default the CLI logger. */
  logger?: Logger;
  /** Worker program and leading arguments; default this package's bin/proggan.js under the current Node. */
  command?: string[];
  /** Time between SIGTERM and SIGKILL when the group is torn down, in ms; default 10000. */
  killGraceMs?: number;
}

/**
 * `proggan train ... --workers N`: run N local ranks of the same command and supervise them. Sets
 * `process.exitCode` to 130 when stopped by a signal; throws the launcher's error (naming the rank
 * and its exit code or signal) when the restart budget is spent.
 */
export async function runWithWorkers(opts: RunWithWorkersOptions): Promise<LaunchResult> {
  if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new UsageError('--workers must be a positive integer');
  const maxRestarts = opts.maxRestarts ?? DEFAULT_MAX_RESTARTS;
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0) throw new UsageError('--max-restarts must be a non-negative integer');
  const outer = clusterFromEnv();
  if (outer) {
    throw new UsageError(
      `--workers starts its own ranks, but this process already is rank ${outer.rank} of a ${outer.worldSize}-process job ` +
        `(from ${outer.source} variables); drop --workers, or unset those variables`,
    );
  }
  const runDir = resolve(opts.runDir ?? defaultRunDir(opts.model));
  const log = opts.logger ?? createCliLogger({ level: opts.logLevel ?? 'info', runDir });
  const argv = workerArgv(opts.argv, runDir);
  log.info({ workers: opts.workers, runDir, maxRestarts }, `launching ${opts.workers} worker(s) into ${runDir}`);
  const result = await launchWorkers({
    argv,
    workers: opts.workers,
    runDir,
    maxRestarts,
    logger: log,
    // Restart with --resume only once rank 0 has written the run's config; before that, start afresh.
    canResume: () => runStarted(runDir),
    ...(opts.gpus ? { gpus: true } : {}),
    ...(opts.threads !== undefined ? { threadsPerWorker: opts.threads } : {}),
    ...(opts.command ? { command: opts.command } : {}),
    ...(opts.killGraceMs !== undefined ? { killGraceMs: opts.killGraceMs } : {}),
  });
  if (result.status === 'signal') process.exitCode = 130;
  else log.info({ restarts: result.restarts, runDir }, `done: ${opts.workers} worker(s), ${result.restarts} restart(s)`);
  return result;
}

/**
 * The strategy of this process: a {@link OneDeviceStrategy} for a single process, else the mirrored
 * strategy of the job that TF_CONFIG, RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT or Slurm's variables
 * describe (joins the rendezvous; bounded by PROGGAN_CONNECT_TIMEOUT_MS). Under the proggan launcher
 * it also starts watching the launcher (see `watchLauncher`).
 */
export async function processStrategy(opts: { env?: NodeJS.ProcessEnv; logger?: Logger } = {}): Promise<Strategy> {
  // A worker of `--workers N` stops when its launcher dies (even by SIGKILL) instead of running on unsupervised.
  watchLauncher(opts.logger ? { logger: opts.logger } : {});
  const spec = clusterFromEnv(opts.env ?? process.env);
  if (!spec) return new OneDeviceStrategy();
  const log = opts.logger ?? silentLogger();
  log.info({ rank: spec.rank, worldSize: spec.worldSize, source: spec.source, master: spec.addresses[0] },
    `rank ${spec.rank} of ${spec.worldSize}: joining the job (${spec.source})`);
  const strategy = await createStrategy(spec, { logger: log });
  log.info({ rank: strategy.rank, worldSize: strategy.worldSize }, `rank ${strategy.rank} of ${strategy.worldSize}: connected`);
  return strategy;
}

/** Close a strategy, waiting at most `timeoutMs` (a dead peer must not hang the exit). */
export async function closeStrategy(strategy: Strategy, timeoutMs = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      strategy.close().catch(() => undefined),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
        timer.unref();
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}
