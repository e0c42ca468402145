import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { RUN_LOCK_FILE, RunLockedError, acquireRunLock, processStartTicks, type RunLockHolder } from '../src/util/run-lock.js';
import { UsageError } from '../src/util/errors.js';

const here = dirname(fileURLToPath(import.meta.url));
const dirs: string[] = [];
function runDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'proggan-lock-'));
  dirs.push(d);
  return join(d, 'run');
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function writeLock(dir: string, holder: Partial<RunLockHolder>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, RUN_LOCK_FILE), JSON.stringify({ host: hostname(), startedAt: '2026-01-01T00:00:00.000Z', command: 'proggan train wae', ...holder }));
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('did not throw');
}

describe('run directory lock', () => {
  it('records the holder and releases only its own lock', () => {
    const dir = runDir();
    const lock = acquireRunLock(dir);
    const file = JSON.parse(readFileSync(join(dir, RUN_LOCK_FILE), 'utf8')) as RunLockHolder;
    expect(file).toMatchObject({ pid: process.pid, host: hostname() });
    expect(file.procStart).toBe(processStartTicks(process.pid));
    expect(lock.replaced).toBeUndefined();
    lock.release();
    expect(existsSync(join(dir, RUN_LOCK_FILE))).toBe(false);
    // A release after someone else took the directory leaves their lock alone.
    const again = acquireRunLock(dir);
    writeLock(dir, { pid: process.ppid, procStart: processStartTicks(process.ppid) });
    again.release();
    expect(existsSync(join(dir, RUN_LOCK_FILE))).toBe(true);
  });

  it('refuses a second run while the holder lives, naming its pid, host and start time', () => {
    const dir = runDir();
    writeLock(dir, { pid: process.ppid, procStart: processStartTicks(process.ppid) });
    const err = thrown(() => acquireRunLock(dir)) as RunLockedError;
    expect(err).toBeInstanceOf(RunLockedError);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.holder.pid).toBe(process.ppid);
    expect(err.message).toContain(`pid ${process.ppid} on ${hostname()}, started 2026-01-01T00:00:00.000Z: proggan train wae`);
    expect(err.message).toMatch(/choose another --run-dir/);
  });

  it('takes over a stale lock: holder dead on this host, or its pid reused by a later process', () => {
    const dir = runDir();
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    writeLock(dir, { pid: deadPid });
    const lock = acquireRunLock(dir);
    expect(lock.replaced?.pid).toBe(deadPid);
    lock.release();
    // The pid is alive, but it is not the process that wrote the lock (another start time).
    writeLock(dir, { pid: process.ppid, procStart: (processStartTicks(process.ppid) ?? 0) + 12345 });
    const lock2 = acquireRunLock(dir);
    expect(lock2.replaced?.pid).toBe(process.ppid);
    lock2.release();
  });

  it('does not take over a lock held on another host, and says what to do', () => {
    const dir = runDir();
    writeLock(dir, { pid: 1, host: 'gpu-node-7' });
    const err = thrown(() => acquireRunLock(dir)) as RunLockedError;
    expect(err).toBeInstanceOf(RunLockedError);
    expect(err.message).toMatch(/pid 1 on gpu-node-7.*another host.*delete .*run\.lock/);
    expect(JSON.parse(readFileSync(join(dir, RUN_LOCK_FILE), 'utf8'))).toMatchObject({ host: 'gpu-node-7' });
  });

  it('reports an unreadable lock file by path unless told to take it', () => {
    const dir = runDir();
    acquireRunLock(dir).release();
    writeFileSync(join(dir, RUN_LOCK_FILE), '{"pid": 12');
    expect(() => acquireRunLock(dir)).toThrow(/run lock .*run\.lock is unreadable/);
    acquireRunLock(dir, { takeUnreadable: true }).release();
  });

  it('between two processes: the second is refused while the first lives, and gets the lock once it is SIGKILLed', async () => {
    const dir = runDir();
    // The first run, from the compiled module (dist/, built by `npm test`), holds the lock until killed.
    const script = `
      const { acquireRunLock } = await import(${JSON.stringify(join(here, '..', 'dist', 'util', 'run-lock.js'))});
      acquireRunLock(${JSON.stringify(dir)});
      process.stdout.write('locked\\n');
      setTimeout(() => {}, 30000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => (String(d).includes('locked') ? resolve() : undefined));
        child.once('exit', () => reject(new Error('lock holder exited early')));
      });
      const err = thrown(() => acquireRunLock(dir)) as RunLockedError;
      expect(err).toBeInstanceOf(RunLockedError);
      expect(err.holder.pid).toBe(child.pid);
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGKILL');
      await gone;
      const lock = acquireRunLock(dir);
      expect(lock.replaced?.pid).toBe(child.pid);
      lock.release();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
