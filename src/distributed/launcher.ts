/**
 * A local launcher in the manner of torchrun: start N copies of the same command line as ranks
 * 0..N-1 of one job (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), one device or thread budget each,
 * and supervise them as a group. Any worker that exits non-zero or dies by a signal takes the whole
 * group down; the group is started again with `--resume` (continuing from the last checkpoint) until
 * the restart budget is spent. Nothing here knows tfjs or the models: workers are plain processes.
 *
 * Each group start gets a fresh job id and a fresh random secret (PROGGAN_JOB_SECRET) that
 * authenticates the workers' rendezvous connections. Each worker has an IPC channel to the
 * launcher (PROGGAN_SUPERVISED=1; see `supervised.ts`): over it a rank whose collective failed
 * says which rank it blames, so a failure is pinned on the rank that stalled or died, not on the
 * first rank to exit (usually the one that timed out waiting for it); and through it the workers
 * notice when the launcher itself dies, even by SIGKILL, and stop instead of running on unsupervised.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger, type Logger } from '../util/logger.js';
import { JOB_SECRET_ENV, generateJobSecret } from './auth.js';
import { SUPERVISED_ENV, isFaultReport, type FaultReport } from './supervised.js';

/** Default restart budget of {@link launchWorkers} (torchrun's `--max-restarts` defaults to 0; we allow a few). */
export const DEFAULT_MAX_RESTARTS = 3;
/** Default time between SIGTERM and SIGKILL when a group is torn down, in ms. */
export const DEFAULT_KILL_GRACE_MS = 10_000;
/** Name of the file in the run directory where the launcher records its workers' pids. */
export const WORKERS_FILE = 'workers.json';

/** How one worker process ended. */
export interface WorkerExit {
  /** The worker's rank. */
  rank: number;
  /** Exit code, or null when it died by a signal. */
  code: number | null;
  /** The signal that ended it, or null when it exited. */
  signal: NodeJS.Signals | null;
  /** The last lines it wrote to stderr (only for ranks whose output is piped). */
  tail: string[];
  /** What it reported over the IPC channel when its collectives failed: the rank it blamed and why. */
  fault?: FaultReport;
}

/** The rank a group failure is pinned on, and how it was found. */
export interface Culprit {
  /** The rank that stalled, died or failed. */
  rank: number;
  /** `rank 1 stalled: it is stopped ...; rank 0 reported: ...` / `rank 0 exited with code 1`. */
  description: string;
  /** The first clause alone: `rank 1 stalled (stopped)`, `rank 2 died (killed by SIGKILL)`. */
  summary: string;
}

/** One start of the worker group. */
export interface AttemptRecord {
  /** 0 for the first start, then 1, 2, ... for restarts. */
  attempt: number;
  /** The rendezvous port rank 0 listened on. */
  port: number;
  /** Whether this attempt was started with the resume flag. */
  resumed: boolean;
  /** The first worker that failed, if any (a failure the launcher caused while tearing down is not counted). */
  failure?: WorkerExit;
  /** The rank to blame for `failure`: the rank the failed worker reported it lost or timed out on, else itself. */
  culprit?: Culprit;
  /** How every worker ended, by rank. */
  exits: WorkerExit[];
}

/** How {@link launchWorkers} ended when it did not throw. */
export interface LaunchResult {
  /** `done`: every worker exited 0; `signal`: the launcher was asked to stop and passed it on. */
  status: 'done' | 'signal';
  /** Restarts used. */
  restarts: number;
  /** Every start of the group, in order. */
  attempts: AttemptRecord[];
}

/** The group failed and the restart budget is spent; names the rank and how it ended. */
export class WorkerGroupError extends Error {
  override name = 'WorkerGroupError';
  /** The first failure of the last attempt. */
  readonly failure: WorkerExit;
  /** The rank the last attempt's failure is pinned on (see {@link AttemptRecord.culprit}). */
  readonly culprit: Culprit;
  /** Restarts used before giving up. */
  readonly restarts: number;
  /** Every start of the group. */
  readonly attempts: AttemptRecord[];
  constructor(failure: WorkerExit, restarts: number, attempts: AttemptRecord[], reason = 'budget spent', culprit?: Culprit) {
    const blame = culprit ?? { rank: failure.rank, description: describeExit(failure), summary: describeExit(failure) };
    const history = attempts.map((a) => (a.failure ? (a.culprit?.summary ?? describeExit(a.failure)) : 'ok')).join('; ');
    const tail = failure.tail.length > 0 ? ` Last output of rank ${failure.rank}: ${failure.tail.join(' | ')}` : '';
    const first = blame.rank !== failure.rank ? ` (first to exit: ${describeExit(failure)})` : '';
    super(`worker ${blame.description}${first} after ${restarts} restart(s) (${reason}; attempts: ${history}).${tail}`);
    this.failure = failure;
    this.culprit = blame;
    this.restarts = restarts;
    this.attempts = attempts;
  }
}

/** `rank 1 exited with code 3` / `rank 0 was killed by SIGKILL`. */
export function describeExit(e: Pick<WorkerExit, 'rank' | 'code' | 'signal'>): string {
  return e.signal !== null ? `rank ${e.rank} was killed by ${e.signal}` : `rank ${e.rank} exited with code ${String(e.code)}`;
}

/** Options of {@link launchWorkers}. */
export interface LaunchOptions {
  /** Arguments of each worker's command line (for proggan: the CLI args without `--workers`). Required. */
  argv: string[];
  /** Number of worker processes (the world size). Required, >= 1. */
  workers: number;
  /** Run directory shared by the ranks; the launcher writes its pid table there. Required. */
  runDir: string;
  /** Base environment of the workers; default `process.env` (TF_CONFIG is removed so the launcher's ranks win). */
  env?: NodeJS.ProcessEnv;
  /** Restarts of the whole group allowed after failures; default {@link DEFAULT_MAX_RESTARTS}. */
  maxRestarts?: number;
  /** Where progress, restarts and failures are logged; default silent. */
  logger?: Logger;
  /** Threads per worker for the native backend, passed as `--threads`; default floor(cores / workers), at least 1. */
  threadsPerWorker?: number;
  /**
   * One GPU per worker through CUDA_VISIBLE_DEVICES: `true` gives rank r the r-th entry of the
   * parent's CUDA_VISIBLE_DEVICES (or device r when unset); a list gives rank r `gpus[r]`.
   * Default false (CPU: a thread budget per worker instead).
   */
  gpus?: boolean | string[];
  /** The program and its leading arguments; default `[process.execPath, <package>/bin/proggan.js]`. */
  command?: string[];
  /** Exit codes that a restart cannot cure (the same arguments fail again): no restart; default [2] (usage error). */
  fatalExitCodes?: number[];
  /** Flag appended on restarts; default `--resume`. */
  resumeFlag?: string;
  /** Whether a restart may add the resume flag (e.g. only once the run directory exists); default always. */
  canResume?: () => boolean;
  /** Address of rank 0 given to the workers; default 127.0.0.1. */
  masterAddr?: string;
  /** Rendezvous port; default a free port, chosen afresh for every attempt. */
  masterPort?: number;
  /** Time between SIGTERM and SIGKILL when tearing the group down, in ms; default {@link DEFAULT_KILL_GRACE_MS}. */
  killGraceMs?: number;
  /** Pass SIGINT/SIGTERM sent to this process on to the workers; default true. */
  handleSignals?: boolean;
  /** Where rank 0's stdout goes; default inherited (rank 0 writes to this process's terminal as a plain run would). */
  stdout?: NodeJS.WritableStream;
  /** Where rank 0's stderr and the other ranks' `[rank r]`-prefixed output go; default process.stderr (rank 0: inherited). */
  stderr?: NodeJS.WritableStream;
  /** Called after each group start with the workers' pids by rank (tests, tooling). */
  onStart?: (info: { attempt: number; pids: number[] }) => void;
}

/** Ask the OS for a free TCP port on `host`. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolvePort(port) : reject(new Error('could not find a free port'))));
    });
  });
}

/** The default program: this package's CLI entry run by the current Node. */
export function defaultCommand(): string[] {
  return [process.execPath, fileURLToPath(new URL('../../bin/proggan.js', import.meta.url))];
}

/** Whether `argv` already carries `--name` or `--name=value`. */
export function hasFlag(argv: string[], name: string): boolean {
  return argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
}

/** The environment and extra arguments of one rank, without starting anything (exported for tests). */
export function workerSetup(
  rank: number,
  opts: Pick<LaunchOptions, 'workers' | 'env' | 'gpus' | 'threadsPerWorker' | 'masterAddr' | 'argv'> & { port: number; jobId: string; secret?: string },
): { env: NodeJS.ProcessEnv; extraArgs: string[] } {
  const base = opts.env ?? process.env;
  const env: NodeJS.ProcessEnv = { ...base };
  // A TF_CONFIG inherited from an operator would take precedence over the ranks set here.
  delete env['TF_CONFIG'];
  env['RANK'] = String(rank);
  env['LOCAL_RANK'] = String(rank);
  env['WORLD_SIZE'] = String(opts.workers);
  env['LOCAL_WORLD_SIZE'] = String(opts.workers);
  env['MASTER_ADDR'] = opts.masterAddr ?? '127.0.0.1';
  env['MASTER_PORT'] = String(opts.port);
  env['PROGGAN_JOB_ID'] = opts.jobId;
  // The rendezvous secret of this group start; an inherited secret file must not override it.
  if (opts.secret !== undefined) env[JOB_SECRET_ENV] = opts.secret;
  delete env['PROGGAN_JOB_SECRET_FILE'];
  env[SUPERVISED_ENV] = '1';
  const extraArgs: string[] = [];
  if (opts.gpus !== undefined && opts.gpus !== false) {
    // tfjs-node-gpu has no device placement: each process sees exactly one GPU, as device 0.
    const list = Array.isArray(opts.gpus) ? opts.gpus : (base['CUDA_VISIBLE_DEVICES'] ?? '').split(',').filter((s) => s.trim() !== '');
    const device = list.length > 0 ? list[rank] : String(rank);
    if (device === undefined) {
      throw new RangeError(`launchWorkers: ${opts.workers} workers need ${opts.workers} GPUs, but only ${list.length} are listed (${list.join(',')})`);
    }
    env['CUDA_VISIBLE_DEVICES'] = device.trim();
  } else {
    // Split the cores: N workers each using every core would oversubscribe the machine N-fold.
    const threads = opts.threadsPerWorker ?? Math.max(1, Math.floor(availableParallelism() / opts.workers));
    env['OMP_NUM_THREADS'] = String(threads);
    env['TF_NUM_INTRAOP_THREADS'] = String(threads);
    if (!hasFlag(opts.argv, 'threads')) extraArgs.push('--threads', String(threads));
  }
  return { env, extraArgs };
}

/** Write `value` as JSON via a temp file and rename, so readers never see a torn file. */
function writeJsonAtomic(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

/** Forward a stream line by line with a prefix, keeping the last few lines. */
function pipeLines(src: NodeJS.ReadableStream, dest: NodeJS.WritableStream, prefix: string, tail: string[]): () => void {
  let pending = '';
  const emit = (line: string) => {
    dest.write(`${prefix}${line}\n`);
    if (line.trim() !== '') {
      tail.push(line.length > 300 ? `${line.slice(0, 300)}...` : line);
      if (tail.length > 5) tail.shift();
    }
  };
  src.setEncoding('utf8');
  src.on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      emit(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  return () => {
    if (pending !== '') emit(pending);
    pending = '';
  };
}

/** The state letter of a process from /proc (R, S, D, T, Z, ...), or undefined when it is gone or unknown. */
export function processState(pid: number | undefined): string | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/**
 * The rank to blame for a group failure. The first worker to exit is often only the messenger: a
 * rank that timed out waiting for a stopped peer, or lost a killed one, exits with code 1 before
 * the peer's own exit is seen (a stopped peer does not exit at all). So when the failed worker
 * reported over IPC which rank it blames, that rank is named, with what became of it.
 */
export function findCulprit(failed: WorkerExit, exits: ReadonlyArray<WorkerExit | undefined>, pids: ReadonlyArray<number | undefined>): Culprit {
  const fault = failed.fault;
  const blamed = fault?.peer;
  const n = pids.length;
  if (fault && blamed !== undefined && Number.isInteger(blamed) && blamed >= 0 && blamed < n && blamed !== failed.rank) {
    const exit = exits[blamed];
    let what: string;
    let short: string;
    if (exit) {
      short = what = `died (${exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${String(exit.code)}`})`;
    } else {
      const state = processState(pids[blamed]);
      if (state === 'T' || state === 't') {
        short = 'stalled (stopped)';
        what = 'stalled: it is stopped (SIGSTOP, SIGTSTP or a debugger)';
      } else if (state === undefined || state === 'Z' || state === 'X') {
        short = what = 'died';
      } else if (fault.code === 'timeout') {
        short = 'stalled';
        what = 'stalled: it is running but stopped taking part in the collectives';
      } else {
        short = what = 'dropped its connections';
      }
    }
    const reported = fault.message.replace(/^rank \d+: /, '');
    return { rank: blamed, summary: `rank ${blamed} ${short}`, description: `rank ${blamed} ${what}; rank ${failed.rank} reported: ${reported}` };
  }
  const own = describeExit(failed);
  return { rank: failed.rank, summary: own, description: `${own}${fault ? `: ${fault.message.replace(/^rank \d+: /, '')}` : ''}` };
}

/** Send `sig` to a worker's process group (it leads one), falling back to the process itself. */
function signalWorker(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      // Already gone.
    }
  }
}

interface Group {
  children: ChildProcess[];
  done: Promise<{ exits: WorkerExit[]; failure: WorkerExit | undefined; culprit: Culprit | undefined }>;
  /** Ask every live worker to stop: `sig` now, SIGKILL after the grace period. */
  stop(sig: NodeJS.Signals): void;
}

/** Start the N workers of one attempt and watch them: the first failure tears the rest down. */
function startGroup(opts: LaunchOptions, args: string[], port: number, jobId: string, secret: string, log: Logger): Group {
  const n = opts.workers;
  const command = opts.command ?? defaultCommand();
  const [program, ...lead] = command;
  if (program === undefined) throw new RangeError('launchWorkers: command must not be empty');
  const grace = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const stderr = opts.stderr ?? process.stderr;
  const children: ChildProcess[] = [];
  const exits: Array<WorkerExit | undefined> = new Array<WorkerExit | undefined>(n).fill(undefined);
  const tails: string[][] = Array.from({ length: n }, () => []);
  const faults: Array<FaultReport | undefined> = new Array<FaultReport | undefined>(n).fill(undefined);
  let failure: WorkerExit | undefined;
  let culprit: Culprit | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let stopping = false;

  const stop = (sig: NodeJS.Signals) => {
    for (const c of children) signalWorker(c, sig);
    // A stopped worker cannot act on SIGTERM/SIGINT until it is continued.
    if (sig !== 'SIGKILL') for (const c of children) signalWorker(c, 'SIGCONT');
    if (sig !== 'SIGKILL' && !stopping) {
      stopping = true;
      killTimer = setTimeout(() => {
        const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
        if (alive.length > 0) log.warn({ grace }, `${alive.length} worker(s) still running ${grace} ms after ${sig}: sending SIGKILL`);
        for (const c of alive) signalWorker(c, 'SIGKILL');
      }, grace);
      killTimer.unref();
    }
  };

  // Every rank's setup first: a bad GPU list must fail before any process starts.
  const setups = Array.from({ length: n }, (_, rank) => workerSetup(rank, { ...opts, port, jobId, secret }));
  const done = new Promise<{ exits: WorkerExit[]; failure: WorkerExit | undefined; culprit: Culprit | undefined }>((resolveDone) => {
    let remaining = n;
    for (let rank = 0; rank < n; rank++) {
      const { env, extraArgs } = setups[rank] as { env: NodeJS.ProcessEnv; extraArgs: string[] };
      const piped = rank !== 0 || opts.stdout !== undefined || opts.stderr !== undefined;
      // Each worker leads its own process group: a terminal's Ctrl-C reaches only the launcher, which
      // passes it on exactly once (the trainer treats a second signal as "abort without saving").
      const child = spawn(program, [...lead, ...args, ...extraArgs], {
        env,
        detached: true,
        // The IPC channel carries fault reports, and its closing tells the worker the launcher died.
        stdio: piped ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.push(child);
      child.on('message', (m: unknown) => {
        if (isFaultReport(m) && faults[rank] === undefined) faults[rank] = m;
      });
      // A worker that exits while the launcher writes to it must not crash the launcher.
      child.on('error', () => {});
      const flushers: Array<() => void> = [];
      if (piped && child.stdout && child.stderr) {
        const tail = tails[rank] as string[];
        if (rank === 0) {
          flushers.push(pipeLines(child.stdout, opts.stdout ?? process.stdout, '', []));
          flushers.push(pipeLines(child.stderr, stderr, '', tail));
        } else {
          flushers.push(pipeLines(child.stdout, stderr, `[rank ${rank}] `, []));
          flushers.push(pipeLines(child.stderr, stderr, `[rank ${rank}] `, tail));
        }
      }
      let closed = false;
      const onEnd = (code: number | null, signal: NodeJS.Signals | null) => {
        if (closed) return;
        closed = true;
        for (const f of flushers) f();
        const fault = faults[rank];
        const exit: WorkerExit = { rank, code, signal, tail: tails[rank] ?? [], ...(fault ? { fault } : {}) };
        const ok = code === 0 && signal === null;
        if (!ok && failure === undefined && !stopping) {
          failure = exit;
          // Before this exit is recorded and anyone is signalled: is the blamed rank stopped, dead, or running?
          culprit = findCulprit(exit, exits, children.map((c) => c.pid));
          exits[rank] = exit;
          log.error({ rank, code, signal, pid: child.pid, culprit: culprit.rank }, `worker ${culprit.description}: stopping the other workers`);
          stop('SIGTERM');
        } else if (!ok) {
          log.debug({ rank, code, signal }, `worker ${describeExit(exit)}`);
        }
        exits[rank] = exit;
        if (--remaining === 0) {
          if (killTimer) clearTimeout(killTimer);
          resolveDone({ exits: exits.map((e, r) => e ?? { rank: r, code: null, signal: null, tail: [] }), failure, culprit });
        }
      };
      // 'close' waits for the stdio pipes to drain, so the last lines are forwarded before we decide.
      child.once('close', onEnd);
      child.once('error', (err) => {
        log.error({ rank, err: err.message }, `worker ${rank} could not be started: ${err.message}`);
        onEnd(127, null);
      });
    }
  });
  return { children, done, stop };
}

/**
 * Launch `workers` processes of the same command line as one data-parallel job and supervise them.
 * Resolves when every worker exited 0 (`done`), or when the launcher was told to stop by SIGINT/SIGTERM
 * and passed the signal on (`signal`). Throws a {@link WorkerGroupError} naming the failed rank once
 * `maxRestarts` restarts have been used.
 */
export async function launchWorkers(opts: LaunchOptions): Promise<LaunchResult> {
  const n = opts.workers;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`launchWorkers: workers must be a positive integer, got ${n}`);
  const maxRestarts = opts.maxRestarts ?? DEFAULT_MAX_RESTARTS;
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0) throw new RangeError(`launchWorkers: maxRestarts must be a non-negative integer, got ${maxRestarts}`);
  const log = opts.logger ?? silentLogger();
  const runDir = resolve(opts.runDir);
  const resumeFlag = opts.resumeFlag ?? '--resume';
  const attempts: AttemptRecord[] = [];
  let current: Group | undefined;
  let signalled: NodeJS.Signals | undefined;
  let signalCount = 0;

  // Stop requests: pass each on to the workers (they checkpoint and exit); a third one kills them.
  const onSignal = (sig: NodeJS.Signals) => {
    signalled = sig;
    signalCount++;
    log.warn({ signal: sig }, `${sig}: passing it on to the workers`);
    current?.stop(signalCount >= 3 ? 'SIGKILL' : sig);
  };
  // Never leave workers behind, whatever ends this process.
  const onExit = () => current?.stop('SIGKILL');
  if (opts.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  process.on('exit', onExit);

  try {
    for (let attempt = 0; ; attempt++) {
      const resumed = attempt > 0 && (opts.canResume?.() ?? true);
      const args = resumed && !opts.argv.includes(resumeFlag) ? [...opts.argv, resumeFlag] : [...opts.argv];
      const port = opts.masterPort ?? (await freePort(opts.masterAddr ?? '127.0.0.1'));
      // A fresh job id per attempt: a straggler of the previous attempt cannot join this one.
      const jobId = `launch-${process.pid}-${Date.now().toString(36)}-${attempt}`;
      // And a fresh secret: only this attempt's workers can authenticate at its rendezvous.
      const secret = generateJobSecret();
      log.info({ attempt, workers: n, port, resumed }, `starting ${n} worker(s)${attempt > 0 ? ` (restart ${attempt} of ${maxRestarts})` : ''}`);
      mkdirSync(runDir, { recursive: true });
      const group = startGroup(opts, args, port, jobId, secret, log);
      current = group;
      const pids = group.children.map((c) => c.pid ?? -1);
      writeJsonAtomic(join(runDir, WORKERS_FILE), { launcherPid: process.pid, attempt, port, pids });
      opts.onStart?.({ attempt, pids });
      if (signalled !== undefined) group.stop(signalled);
      const { exits, failure, culprit } = await group.done;
      current = undefined;
      attempts.push({ attempt, port, resumed, exits, ...(failure ? { failure } : {}), ...(culprit ? { culprit } : {}) });
      if (signalled !== undefined) {
        log.warn({ signal: signalled, exits: exits.map((e) => describeExit(e)) }, `stopped by ${signalled}`);
        return { status: 'signal', restarts: attempt, attempts };
      }
      if (!failure) {
        log.info({ attempt }, `all ${n} worker(s) finished`);
        return { status: 'done', restarts: attempt, attempts };
      }
      if (failure.code !== null && (opts.fatalExitCodes ?? [2]).includes(failure.code)) {
        throw new WorkerGroupError(failure, attempt, attempts, `exit code ${failure.code} is not retried`, culprit);
      }
      if (attempt >= maxRestarts) throw new WorkerGroupError(failure, attempt, attempts, 'budget spent', culprit);
      log.warn({ rank: culprit?.rank ?? failure.rank, code: failure.code, signal: failure.signal, restart: attempt + 1, maxRestarts },
        `worker ${culprit?.description ?? describeExit(failure)}; restarting the group from the last checkpoint (${attempt + 1}/${maxRestarts})`);
    }
  } finally {
    if (opts.handleSignals !== false) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    process.off('exit', onExit);
  }
}

/** Whether `runDir` looks like a started proggan run (its config.json exists), i.e. `--resume` can work. */
export function runStarted(runDir: string): boolean {
  return existsSync(join(runDir, 'config.json'));
}
