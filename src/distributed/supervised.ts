/**
 * The worker's side of the launcher's supervision, over the IPC channel the launcher opens to each
 * worker (only when `PROGGAN_SUPERVISED=1`, which the launcher sets, so a process forked by some
 * other parent never writes to that parent's channel):
 * - {@link reportFault}: a rank whose transport fails tells the launcher which rank it blames
 *   (the one it timed out on or lost) before it exits, so the launcher names the rank that stalled
 *   or died rather than the first rank to exit, which is usually the messenger;
 * - {@link watchLauncher}: Node has no prctl(PR_SET_PDEATHSIG); instead the worker watches the
 *   channel, which the kernel closes when the launcher dies by any means (SIGKILL, OOM killer),
 *   and stops itself: SIGTERM to itself (the trainer saves a checkpoint and exits), then a hard
 *   exit after a grace period.
 */
import type { Logger } from '../util/logger.js';

/** Environment variable the launcher sets in its workers to say an IPC channel leads to it. */
export const SUPERVISED_ENV = 'PROGGAN_SUPERVISED';
/** Default time a worker whose launcher died gets to save and exit before it exits hard, in ms. */
export const DEFAULT_ORPHAN_GRACE_MS = 15_000;
/** Exit code of a worker that outlived its launcher and had to exit hard. */
export const ORPHAN_EXIT_CODE = 129;

/** What a worker tells its launcher when its transport fails. */
export interface FaultReport {
  /** Tag telling these messages apart from anything else on the channel. */
  proggan: 'fault';
  /** The reporting rank. */
  rank: number;
  /** The rank it blames, when known. */
  peer: number | undefined;
  /** The transport error code (`timeout`, `peer_lost`, ...). */
  code: string;
  /** The error message. */
  message: string;
}

/** Whether `value` is a {@link FaultReport}. */
export function isFaultReport(value: unknown): value is FaultReport {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return v['proggan'] === 'fault' && typeof v['rank'] === 'number' && typeof v['code'] === 'string' && typeof v['message'] === 'string';
}

/** Whether this process runs under the proggan launcher with an IPC channel to it. */
export function isSupervised(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[SUPERVISED_ENV] === '1' && typeof process.send === 'function' && process.connected;
}

/** Tell the launcher (if any) which rank this rank blames for a transport failure; never throws. */
export function reportFault(rank: number, err: { code: string; peer: number | undefined; message: string }): void {
  if (!isSupervised()) return;
  const msg: FaultReport = { proggan: 'fault', rank, peer: err.peer, code: err.code, message: err.message };
  try {
    process.send?.(msg, undefined, {}, () => {});
  } catch {
    // The launcher is gone: the watch below deals with that.
  }
}

let watching = false;

/**
 * Stop this worker when its launcher dies: on the IPC channel's disconnect, send SIGTERM to itself
 * and exit with {@link ORPHAN_EXIT_CODE} if still alive after `graceMs`. The channel does not keep
 * the process alive. No-op unless supervised; installing twice is harmless.
 */
export function watchLauncher(opts: { graceMs?: number; logger?: Logger } = {}): void {
  if (watching || !isSupervised()) return;
  watching = true;
  const grace = opts.graceMs ?? DEFAULT_ORPHAN_GRACE_MS;
  const parent = process.ppid;
  process.once('disconnect', () => {
    opts.logger?.error({ launcherPid: parent, graceMs: grace }, `the launcher (pid ${parent}) is gone: stopping this worker`);
    setTimeout(() => process.exit(ORPHAN_EXIT_CODE), grace).unref();
    process.kill(process.pid, 'SIGTERM');
  });
  // A 'disconnect' listener refs the channel; the watch must not keep a finished worker alive.
  process.channel?.unref();
}
