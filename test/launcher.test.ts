import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync as mkdtempRaw, readFileSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { processStrategy, runWithWorkers, workerArgv } from '../src/cli/workers.js';
import { OneDeviceStrategy } from '../src/distributed/strategy.js';
import { UsageError } from '../src/util/errors.js';
import { silentLogger } from '../src/util/logger.js';
import { WORKERS_FILE, WorkerGroupError, describeExit, launchWorkers, workerSetup, type LaunchOptions } from '../src/distributed/launcher.js';


/** Temporary directories of this file, removed when it ends. */
const tempDirs: string[] = [];
function mkdtempSync(prefix: string): string {
  const dir = mkdtempRaw(prefix);
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

const here = dirname(fileURLToPath(import.meta.url));
const WORKER = join(here, 'fixtures', 'launch-worker.mjs');

interface WorkerRecord {
  argv: string[];
  pid: number;
  env: { [k: string]: string | undefined };
}

/** A sink that keeps what was written (the launcher's forwarded worker output). */
function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

function launch(mode: string, extra: Partial<LaunchOptions> = {}) {
  const out = mkdtempSync(join(tmpdir(), 'proggan-launch-'));
  const stdout = sink();
  const stderr = sink();
  const run = launchWorkers({
    argv: ['train', 'wae'],
    workers: 2,
    runDir: out,
    command: [process.execPath, WORKER],
    env: { ...process.env, LAUNCH_OUT: out, LAUNCH_MODE: mode, TF_CONFIG: '{"cluster":{}}' },
    killGraceMs: 2000,
    handleSignals: false,
    stdout: stdout.stream,
    stderr: stderr.stream,
    ...extra,
  });
  const read = (attempt: number, rank: number) => JSON.parse(readFileSync(join(out, `attempt-${attempt}-rank-${rank}.json`), 'utf8')) as WorkerRecord;
  const attempts = () => new Set(readdirSync(out).filter((f) => f.startsWith('attempt-')).map((f) => f.split('-')[1])).size;
  return { out, run, read, attempts, stdout, stderr };
}

describe('launchWorkers', () => {
  it('starts N ranks with the torchrun variables and a thread budget; all exit 0 -> done', async () => {
    const t0 = Date.now();
    const l = launch('ok', { workers: 3 });
    const res = await l.run;
    expect(res.status).toBe('done');
    expect(res.restarts).toBe(0);
    const recs = [0, 1, 2].map((r) => l.read(0, r));
    const threads = String(Math.max(1, Math.floor(availableParallelism() / 3)));
    recs.forEach((rec, r) => {
      expect(rec.env['RANK']).toBe(String(r));
      expect(rec.env['WORLD_SIZE']).toBe('3');
      expect(rec.env['MASTER_ADDR']).toBe('127.0.0.1');
      expect(Number(rec.env['MASTER_PORT'])).toBeGreaterThan(0);
      expect(rec.env['MASTER_PORT']).toBe(recs[0]?.env['MASTER_PORT']);
      expect(rec.env['PROGGAN_JOB_ID']).toBe(recs[0]?.env['PROGGAN_JOB_ID']);
      expect(rec.env['TF_CONFIG']).toBeUndefined();
      expect(rec.env['OMP_NUM_THREADS']).toBe(threads);
      expect(rec.argv).toEqual(['train', 'wae', '--threads', threads]);
    });
    // The pid table names this attempt's workers.
    const table = JSON.parse(readFileSync(join(l.out, WORKERS_FILE), 'utf8')) as { pids: number[]; attempt: number };
    expect(table.attempt).toBe(0);
    expect(table.pids).toEqual(recs.map((r) => r.pid));
    // Rank 0's output is passed through as is, the others' prefixed.
    expect(l.stdout.text()).toContain('hello from rank 0 attempt 0\n');
    expect(l.stderr.text()).toContain('[rank 1] hello from rank 1 attempt 0\n');
    expect(l.stderr.text()).toContain('[rank 2] hello from rank 2 attempt 0\n');
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('restarts the whole group with --resume after a worker exits 1, then names the rank when the budget is spent', async () => {
    const t0 = Date.now();
    const l = launch('fail:1:all', { maxRestarts: 2 });
    const err = await l.run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkerGroupError);
    const e = err as WorkerGroupError;
    expect(e.failure.rank).toBe(1);
    expect(e.failure.code).toBe(1);
    expect(e.restarts).toBe(2);
    expect(e.message).toMatch(/worker rank 1 exited with code 1 after 2 restart\(s\)/);
    expect(e.message).toContain('rank 1 failing on purpose');
    expect(l.attempts()).toBe(3);
    expect(l.read(0, 0).argv).not.toContain('--resume');
    for (const a of [1, 2]) for (const r of [0, 1]) expect(l.read(a, r).argv).toContain('--resume');
    // The healthy rank 0 was stopped by the launcher (SIGTERM) in every attempt: not counted as the failure.
    expect(e.attempts.map((a) => a.failure?.rank)).toEqual([1, 1, 1]);
    expect(e.attempts.map((a) => a.exits[0]?.code)).toEqual([130, 130, 130]);
    expect(readFileSync(join(l.out, 'signals-rank-0.txt'), 'utf8')).toBe('SIGTERM\nSIGTERM\nSIGTERM\n');
    // Each attempt uses a fresh port and job id.
    expect(new Set([0, 1, 2].map((a) => l.read(a, 0).env['PROGGAN_JOB_ID'])).size).toBe(3);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('restarts after a worker is SIGKILLed and succeeds when the restarted group finishes', async () => {
    const l = launch('kill:0:1', { maxRestarts: 3 });
    const res = await l.run;
    expect(res.status).toBe('done');
    expect(res.restarts).toBe(1);
    expect(res.attempts[0]?.failure).toMatchObject({ rank: 0, code: null, signal: 'SIGKILL' });
    expect(describeExit(res.attempts[0]?.failure ?? { rank: -1, code: 0, signal: null })).toBe('rank 0 was killed by SIGKILL');
    expect(res.attempts[1]?.failure).toBeUndefined();
    expect(l.read(1, 1).argv).toContain('--resume');
  });

  it('a SIGKILLed worker with no restart budget fails at once, naming the rank and the signal', async () => {
    const l = launch('kill:1:all', { maxRestarts: 0 });
    await expect(l.run).rejects.toThrow(/worker rank 1 was killed by SIGKILL after 0 restart/);
    expect(l.attempts()).toBe(1);
  });

  it('does not restart after a usage error (exit code 2): the same arguments would fail again', async () => {
    const out = mkdtempSync(join(tmpdir(), 'proggan-launch-usage-'));
    const err = (await launchWorkers({
      argv: ['-e', 'process.exit(Number(process.env.RANK) === 1 ? 2 : 0)', '--'],
      workers: 2,
      runDir: out,
      command: [process.execPath],
      threadsPerWorker: 1,
      handleSignals: false,
      maxRestarts: 3,
      stdout: sink().stream,
      stderr: sink().stream,
    }).catch((e: unknown) => e)) as WorkerGroupError;
    expect(err).toBeInstanceOf(WorkerGroupError);
    expect(err.message).toMatch(/worker rank 1 exited with code 2 after 0 restart\(s\) \(exit code 2 is not retried/);
    expect(err.attempts.length).toBe(1);
  });

  it('SIGKILLs a worker that ignores SIGTERM after the grace period', async () => {
    const t0 = Date.now();
    const s = launch('stubborn:1', { maxRestarts: 0, killGraceMs: 500 });
    // Nobody fails by itself in this mode: stop the group as a failure of rank 0 would, by killing rank 0.
    const deadline = Date.now() + 15_000;
    while (!existsSync(join(s.out, 'attempt-0-rank-0.json')) || !existsSync(join(s.out, 'attempt-0-rank-1.json'))) {
      if (Date.now() > deadline) throw new Error('workers did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    process.kill(s.read(0, 0).pid, 'SIGKILL');
    const err = (await s.run.catch((e: unknown) => e)) as WorkerGroupError;
    expect(err.failure).toMatchObject({ rank: 0, signal: 'SIGKILL' });
    expect(err.attempts[0]?.exits[1]).toMatchObject({ rank: 1, code: null, signal: 'SIGKILL' });
    expect(readFileSync(join(s.out, 'signals-rank-1.txt'), 'utf8')).toBe('SIGTERM\n');
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('passes SIGTERM sent to the launcher on to every worker once and exits 130', async () => {
    const out = mkdtempSync(join(tmpdir(), 'proggan-launch-sig-'));
    const sup = spawn(process.execPath, [join(here, 'fixtures', 'launch-supervisor.mjs')], {
      env: { ...process.env, LAUNCH_OUT: out, LAUNCH_MODE: 'wait', LAUNCH_WORKERS: '3' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    sup.stdout.on('data', (c: Buffer) => (stdout += String(c)));
    const exited = new Promise<number | null>((r) => sup.on('exit', (code) => r(code)));
    const deadline = Date.now() + 20_000;
    while (![0, 1, 2].every((r) => existsSync(join(out, `attempt-0-rank-${r}.json`)))) {
      if (Date.now() > deadline) {
        sup.kill('SIGKILL');
        throw new Error('workers did not start');
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const pids = [0, 1, 2].map((r) => (JSON.parse(readFileSync(join(out, `attempt-0-rank-${r}.json`), 'utf8')) as WorkerRecord).pid);
    sup.kill('SIGTERM');
    expect(await exited).toBe(130);
    expect(stdout).toContain('"result":"signal"');
    for (const r of [0, 1, 2]) expect(readFileSync(join(out, `signals-rank-${r}.txt`), 'utf8')).toBe('SIGTERM\n');
    // No worker is left running.
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    expect(existsSync(join(out, 'attempt-1-rank-0.json'))).toBe(false);
  });
});

describe('launcher faults: blame, parent death', () => {
  const DIST = join(here, '..', 'dist', 'distributed');
  const STALL = join(here, 'fixtures', 'stall-worker.mjs');

  async function waitForFiles(paths: string[], ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!paths.every((p) => existsSync(p))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${paths.join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  function alive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  it('names the stopped rank, not the rank that timed out waiting for it and exited first', async () => {
    const out = mkdtempSync(join(tmpdir(), 'proggan-launch-stall-'));
    const errOut = sink();
    const run = launchWorkers({
      argv: [],
      workers: 2,
      runDir: out,
      command: [process.execPath, STALL],
      env: { ...process.env, LAUNCH_OUT: out, PROGGAN_DIST_DIR: DIST, PROGGAN_TRANSPORT: 'tcp', PROGGAN_COLLECTIVE_TIMEOUT_MS: '1000', STALL_WORKER_MS: '20000' },
      maxRestarts: 0,
      killGraceMs: 3000,
      handleSignals: false,
      stdout: errOut.stream,
      stderr: errOut.stream,
    }).catch((e: unknown) => e);
    await waitForFiles([0, 1].map((r) => join(out, `ready-${r}`)), 20_000);
    const pid1 = Number(readFileSync(join(out, 'ready-1'), 'utf8'));
    process.kill(pid1, 'SIGSTOP');
    const err = (await run) as WorkerGroupError;
    expect(err).toBeInstanceOf(WorkerGroupError);
    // Rank 0 timed out and exited first; the launcher pins it on rank 1 and says how it was found.
    expect(err.failure).toMatchObject({ rank: 0, code: 1 });
    expect(err.failure.fault).toMatchObject({ rank: 0, peer: 1, code: 'timeout' });
    expect(err.culprit.rank).toBe(1);
    expect(err.message).toMatch(/^worker rank 1 stalled: it is stopped \(SIGSTOP.*rank 0 reported: .*no message from rank 1 within 1000 ms.*first to exit: rank 0 exited with code 1/);
    // The stopped rank was continued so it could act on SIGTERM, and nothing is left running.
    expect(err.attempts[0]?.exits[1]).toMatchObject({ rank: 1, signal: 'SIGTERM' });
    expect(alive(pid1)).toBe(false);
  });

  it('workers stop when their launcher is SIGKILLed', async () => {
    const out = mkdtempSync(join(tmpdir(), 'proggan-launch-orphan-'));
    const sup = spawn(process.execPath, [join(here, 'fixtures', 'launch-supervisor.mjs')], {
      env: { ...process.env, LAUNCH_OUT: out, LAUNCH_WORKER: 'stall-worker.mjs', PROGGAN_DIST_DIR: DIST, PROGGAN_TRANSPORT: 'tcp', STALL_WORKER_MS: '30000', ORPHAN_GRACE_MS: '2000' },
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    const supExit = new Promise<void>((r) => sup.once('exit', () => r()));
    let pids: number[] = [];
    try {
      await waitForFiles([0, 1].map((r) => join(out, `ready-${r}`)), 20_000);
      pids = [0, 1].map((r) => Number(readFileSync(join(out, `ready-${r}`), 'utf8')));
      expect(pids.every(alive)).toBe(true);
      sup.kill('SIGKILL');
      await supExit;
      // Bounded: the channel closes at once; SIGTERM ends these workers (the trainer would checkpoint first).
      const deadline = Date.now() + 10_000;
      while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(pids.filter(alive)).toEqual([]);
    } finally {
      if (sup.exitCode === null && sup.signalCode === null) sup.kill('SIGKILL');
      for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('gives each group start its own rendezvous secret and marks the workers supervised', () => {
    const a = workerSetup(0, { workers: 2, argv: [], port: 1, jobId: 'j', secret: 's1', env: { PROGGAN_JOB_SECRET_FILE: '/x' } });
    expect(a.env['PROGGAN_JOB_SECRET']).toBe('s1');
    expect(a.env['PROGGAN_JOB_SECRET_FILE']).toBeUndefined();
    expect(a.env['PROGGAN_SUPERVISED']).toBe('1');
  });
});

describe('worker setup', () => {
  const base = { workers: 2, port: 1234, jobId: 'j', argv: ['train'] };
  it('gives rank r GPU r, or the r-th of the parent CUDA_VISIBLE_DEVICES, and no --threads', () => {
    expect(workerSetup(1, { ...base, gpus: true, env: {} })).toEqual({
      env: expect.objectContaining({ CUDA_VISIBLE_DEVICES: '1', RANK: '1', WORLD_SIZE: '2', MASTER_PORT: '1234' }) as unknown,
      extraArgs: [],
    });
    expect(workerSetup(1, { ...base, gpus: true, env: { CUDA_VISIBLE_DEVICES: '4,6' } }).env['CUDA_VISIBLE_DEVICES']).toBe('6');
    expect(workerSetup(0, { ...base, gpus: ['7', '3'], env: {} }).env['CUDA_VISIBLE_DEVICES']).toBe('7');
    expect(() => workerSetup(1, { ...base, gpus: true, env: { CUDA_VISIBLE_DEVICES: '4' } })).toThrow(/need 2 GPUs/);
  });
  it('splits the cores into a thread budget unless --threads is given', () => {
    expect(workerSetup(0, { ...base, threadsPerWorker: 3, env: {} }).extraArgs).toEqual(['--threads', '3']);
    expect(workerSetup(0, { ...base, threadsPerWorker: 3, env: {}, argv: ['train', '--threads=2'] }).extraArgs).toEqual([]);
    expect(workerSetup(0, { ...base, workers: 64, env: {} }).extraArgs).toEqual(['--threads', String(Math.max(1, Math.floor(availableParallelism() / 64)))]);
  });
  it('workerArgv drops the launcher flags and pins the run directory', () => {
    expect(workerArgv(['train', 'wae', '--workers', '2', '--max-restarts=1', '--gpus', '--steps', '4'], '/r')).toEqual(['train', 'wae', '--steps', '4', '--run-dir', '/r']);
    expect(workerArgv(['train', '--workers=2', '--run-dir', 'x', '--no-gpus'], '/r')).toEqual(['train', '--run-dir', 'x']);
  });
});

describe('runWithWorkers / processStrategy (the train command hooks)', () => {
  it('launches the worker command with the launcher flags removed and the run directory pinned', async () => {
    const out = mkdtempSync(join(tmpdir(), 'proggan-rww-'));
    const prev = { out: process.env['LAUNCH_OUT'], mode: process.env['LAUNCH_MODE'] };
    process.env['LAUNCH_OUT'] = out;
    process.env['LAUNCH_MODE'] = 'ok';
    try {
      const res = await runWithWorkers({
        argv: ['train', 'wae', '--workers', '2', '--max-restarts', '1', '--steps', '3'],
        workers: 2,
        model: 'wae',
        runDir: out,
        maxRestarts: 1,
        threads: 1,
        logger: silentLogger(),
        command: [process.execPath, WORKER],
      });
      expect(res.status).toBe('done');
      const rec = JSON.parse(readFileSync(join(out, 'attempt-0-rank-1.json'), 'utf8')) as WorkerRecord;
      expect(rec.argv).toEqual(['train', 'wae', '--steps', '3', '--run-dir', out, '--threads', '1']);
    } finally {
      process.env['LAUNCH_OUT'] = prev.out;
      process.env['LAUNCH_MODE'] = prev.mode;
      if (prev.out === undefined) delete process.env['LAUNCH_OUT'];
      if (prev.mode === undefined) delete process.env['LAUNCH_MODE'];
    }
  });

  it('refuses --workers inside a process that already is a rank of a job', async () => {
    const keys = ['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'] as const;
    const prev = keys.map((k) => process.env[k]);
    Object.assign(process.env, { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29999' });
    try {
      await expect(runWithWorkers({ argv: ['train'], workers: 2, model: 'wae', logger: silentLogger() })).rejects.toThrow(UsageError);
      await expect(runWithWorkers({ argv: ['train'], workers: 2, model: 'wae', logger: silentLogger() })).rejects.toThrow(/already is rank 1 of a 2-process job/);
    } finally {
      keys.forEach((k, i) => {
        if (prev[i] === undefined) delete process.env[k];
        else process.env[k] = prev[i];
      });
    }
  });

  it('a single process trains on one device', async () => {
    expect(await processStrategy({ env: {} })).toBeInstanceOf(OneDeviceStrategy);
    expect(await processStrategy({ env: { RANK: '0', WORLD_SIZE: '1' } })).toBeInstanceOf(OneDeviceStrategy);
  });
});
