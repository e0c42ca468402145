/**
 * A lock file in the run directory, so two independent runs (two `proggan train` commands, two
 * `mpirun` jobs, a `--resume` while the first run still trains) never write into one directory.
 *
 * Taken by the one process of a run that writes the directory (a single process, or rank 0 of a
 * multi-process job; not the `--workers` launcher, whose rank 0 takes it). The file holds the
 * holder's pid, host, start time and command line; a lock whose holder is a dead process on this
 * host (or a live process that started after the lock was written: the pid was reused) is stale
 * and taken over; a holder on another host cannot be checked from here and is reported with what
 * to do. Hand-written rather than `proper-lockfile`: that package decides staleness by file age
 * (it must keep touching the file) and records no holder to name, while a run's lock must survive
 * hours without a heartbeat and must say who holds it.
 */
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './errors.js';

/** Name of the lock file inside the run directory. */
export const RUN_LOCK_FILE = 'run.lock';

/** Who holds a run directory. */
export interface RunLockHolder {
  /** The holder's process id. */
  pid: number;
  /** The host it runs on (`os.hostname()`). */
  host: string;
  /** When it took the lock, ISO 8601. */
  startedAt: string;
  /** Its process start time in clock ticks since boot (/proc/<pid>/stat), to detect a reused pid; absent off Linux. */
  procStart?: number;
  /** Its command line, for the message. */
  command: string;
}

/** The run directory is locked by another live run; names the holder. Exits 2 (a restart cannot cure it). */
export class RunLockedError extends UsageError {
  override name = 'RunLockedError';
  /** The lock file. */
  readonly path: string;
  /** Who holds it. */
  readonly holder: RunLockHolder;
  constructor(path: string, holder: RunLockHolder, local: boolean) {
    const who = `pid ${holder.pid} on ${holder.host}, started ${holder.startedAt}${holder.command ? `: ${holder.command}` : ''}`;
    const fix = local
      ? 'wait for it to finish or stop it, or choose another --run-dir'
      : `it runs on another host, so it cannot be checked from here; if it is gone, delete ${path}; else choose another --run-dir`;
    super(`run directory ${join(path, '..')} is in use by another run (${who}); ${fix}`);
    this.path = path;
    this.holder = holder;
  }
}

/** A held run lock. */
export interface RunLock {
  /** The lock file. */
  readonly path: string;
  /** What it records. */
  readonly holder: RunLockHolder;
  /** A lock that was taken over from a dead holder: who that was. */
  readonly replaced: RunLockHolder | undefined;
  /** Remove the lock file if it is still ours (also done at process exit). */
  release(): void;
}

/** The start time of process `pid` in clock ticks since boot, or undefined when unknown. */
export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Field 22 of stat is starttime; the slice starts at field 3.
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `holder` is certainly gone: on this host, and its pid dead or reused. */
function isStale(holder: RunLockHolder, host: string): boolean {
  if (holder.host !== host) return false;
  if (!pidAlive(holder.pid)) return true;
  if (holder.procStart === undefined) return false;
  const now = processStartTicks(holder.pid);
  return now !== undefined && now !== holder.procStart;
}

function readHolder(path: string): RunLockHolder | undefined {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<RunLockHolder>;
    if (typeof v.pid !== 'number' || typeof v.host !== 'string') return undefined;
    return { pid: v.pid, host: v.host, startedAt: String(v.startedAt ?? '?'), command: String(v.command ?? ''), ...(typeof v.procStart === 'number' ? { procStart: v.procStart } : {}) };
  } catch {
    return undefined;
  }
}

function tryCreate(path: string, holder: RunLockHolder): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new UsageError(`cannot create the run lock ${path}: ${(err as Error).message}`);
  }
  try {
    writeSync(fd, `${JSON.stringify(holder)}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Lock `runDir` (created if missing) for this process, or throw a {@link RunLockedError} naming
 * the live holder. A stale lock (holder dead on this host, or its pid reused) is taken over and
 * returned in `replaced`. An unreadable lock file (a crash while writing it) counts as stale only
 * when `takeUnreadable` is set; otherwise it is reported with its path.
 */
export function acquireRunLock(runDir: string, opts: { takeUnreadable?: boolean } = {}): RunLock {
  mkdirSync(runDir, { recursive: true });
  const path = join(runDir, RUN_LOCK_FILE);
  const host = hostname();
  const procStart = processStartTicks(process.pid);
  const holder: RunLockHolder = {
    pid: process.pid,
    host,
    startedAt: new Date().toISOString(),
    ...(procStart !== undefined ? { procStart } : {}),
    command: process.argv.slice(1).join(' ').slice(0, 500),
  };
  let replaced: RunLockHolder | undefined;
  for (let attempt = 0; ; attempt++) {
    if (tryCreate(path, holder)) break;
    const current = readHolder(path);
    if (current === undefined && !opts.takeUnreadable) {
      throw new UsageError(`run lock ${path} is unreadable (a crash while it was written?); if no run uses this directory, delete it`);
    }
    if (current !== undefined && current.pid === process.pid && current.host === host) {
      throw new UsageError(`run lock ${path} is already held by this process`);
    }
    if (current !== undefined && !isStale(current, host)) throw new RunLockedError(path, current, current.host === host);
    if (attempt >= 3) throw new UsageError(`could not take over the stale run lock ${path}: another process keeps replacing it`);
    // Take over atomically: move the stale file aside; if what we moved is not what we judged
    // stale (another process took over first), put it back and look again.
    const aside = `${path}.stale-${process.pid}`;
    try {
      renameSync(path, aside);
    } catch {
      continue;
    }
    const moved = readHolder(aside);
    if (current !== undefined && (moved?.pid !== current.pid || moved.startedAt !== current.startedAt)) {
      try {
        linkSync(aside, path);
      } catch {
        // Someone else created a lock meanwhile: theirs stands; the loop re-reads it.
      }
      unlinkSync(aside);
      continue;
    }
    unlinkSync(aside);
    replaced = current;
  }
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off('exit', release);
    const now = readHolder(path);
    if (now?.pid === holder.pid && now.host === holder.host && now.startedAt === holder.startedAt) {
      try {
        unlinkSync(path);
      } catch {
        // Already gone.
      }
    }
  };
  process.on('exit', release);
  return { path, holder, replaced, release };
}
