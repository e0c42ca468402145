import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultShmRingBytes, shmSegmentName, transportKindFromEnv } from '../src/distributed/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const addonPath = join(here, '..', 'build', 'Release', 'proggan_shm.node');

/** Whether the addon is built with shared memory support (it needs oneDNN to load at all). */
function addonHasShm(): boolean {
  if (process.platform !== 'linux' || !existsSync(addonPath)) return false;
  try {
    const mod = createRequire(import.meta.url)(addonPath) as Record<string, unknown>;
    return typeof mod['shmOpen'] === 'function' && typeof mod['shmWait'] === 'function';
  } catch {
    return false;
  }
}
const haveShm = addonHasShm();

describe('shared memory transport: configuration', () => {
  it('reads PROGGAN_TRANSPORT and rejects unknown values naming the variable', () => {
    expect(transportKindFromEnv({})).toBe('auto');
    expect(transportKindFromEnv({ PROGGAN_TRANSPORT: 'SHM' })).toBe('shm');
    expect(transportKindFromEnv({ PROGGAN_TRANSPORT: 'tcp' })).toBe('tcp');
    expect(() => transportKindFromEnv({ PROGGAN_TRANSPORT: 'nccl' })).toThrow(/PROGGAN_TRANSPORT/);
  });

  it('sizes rings as powers of two and names segments after the job, rank and pid', () => {
    for (const n of [2, 3, 4, 8, 64]) {
      const b = defaultShmRingBytes(n);
      expect(b & (b - 1)).toBe(0);
      expect(b).toBeGreaterThanOrEqual(64 * 1024);
      expect(b).toBeLessThanOrEqual(4 * 1024 * 1024);
    }
    expect(shmSegmentName('launch 1/2', 3, 77)).toMatch(/^\/proggan-launch_1_2-[0-9a-f]{8}-r3-p77$/);
  });
});

describe('shared memory transport between processes', () => {
  let distDir = '';

  beforeAll(() => {
    // A forked child cannot import .ts: transpile the tfjs-free distributed modules it needs.
    // Laid out as src/ is (distributed/ beside util/), so relative imports resolve.
    const root = mkdtempSync(join(tmpdir(), 'proggan-shm-dist-'));
    distDir = join(root, 'distributed');
    const modules = [...['strategy', 'transport', 'collectives', 'tcp', 'cluster', 'mirrored', 'shm', 'auth', 'supervised'].map((n) => `distributed/${n}`), 'util/addon'];
    for (const name of modules) {
      const src = readFileSync(join(here, '..', 'src', `${name}.ts`), 'utf8');
      const out = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } });
      mkdirSync(dirname(join(root, `${name}.js`)), { recursive: true });
      writeFileSync(join(root, `${name}.js`), out.outputText);
    }
  });

  afterAll(() => {
    if (distDir) rmSync(dirname(distDir), { recursive: true, force: true });
  });

  interface Msg {
    type: string;
    rank: number;
    transport?: string;
    segment?: string;
    bad?: number;
    problems?: string[];
    gathered?: number[];
    message?: string;
    peer?: number;
    code?: string;
  }

  async function freePort(): Promise<number> {
    return new Promise((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
      });
    });
  }

  async function launch(n: number, env: Record<string, string>) {
    const port = await freePort();
    const jobId = `shmtest-${port}`;
    const messages: Msg[] = [];
    const children: ChildProcess[] = [];
    const exits: Promise<number | null>[] = [];
    for (let rank = 0; rank < n; rank++) {
      const child = fork(join(here, 'fixtures', 'shm-worker.mjs'), [], {
        env: {
          PATH: process.env['PATH'] ?? '',
          PROGGAN_DIST_DIR: distDir,
          PROGGAN_SHM_ADDON: addonPath,
          // The transport is its own addon: it must work where the oneDNN backend is not built.
          PROGGAN_NATIVE_ADDON: join(tmpdir(), 'no-such-native-addon.node'),
          RANK: String(rank),
          WORLD_SIZE: String(n),
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(port),
          PROGGAN_JOB_ID: jobId,
          PROGGAN_COLLECTIVE_TIMEOUT_MS: '20000',
          ...env,
        },
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      });
      child.on('message', (m) => messages.push(m as Msg));
      exits.push(new Promise((resolve) => child.on('exit', (code) => resolve(code))));
      children.push(child);
    }
    return { jobId, children, messages, exits };
  }

  function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
    return Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(what())), ms))]);
  }

  async function waitFor(cond: () => boolean, ms: number): Promise<void> {
    const t0 = Date.now();
    while (!cond()) {
      if (Date.now() - t0 > ms) throw new Error('timed out waiting');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Names in /dev/shm that belong to `jobId`. */
  const leftovers = (jobId: string): string[] => readdirSync('/dev/shm').filter((e) => e.includes(jobId));

  it('without the addon, auto falls back to TCP and shm fails naming the rank that lacks it', async () => {
    const missing = join(tmpdir(), 'no-such-addon.node');
    const auto = await launch(2, { SHM_TRANSPORT: 'auto', PROGGAN_SHM_ADDON: missing });
    const shm = await launch(2, { SHM_TRANSPORT: 'shm', PROGGAN_SHM_ADDON: missing });
    try {
      const [autoCodes, shmCodes] = await within(Promise.all([Promise.all(auto.exits), Promise.all(shm.exits)]), 20_000, () => 'children did not finish');
      expect(autoCodes).toEqual([0, 0]);
      expect(auto.messages.filter((m) => m.type === 'setup').map((m) => m.transport)).toEqual(['TcpTransport', 'TcpTransport']);
      expect(auto.messages.filter((m) => m.type === 'result').map((m) => m.bad)).toEqual([0, 0]);
      expect(shmCodes).toEqual([3, 3]);
      for (const e of shm.messages.filter((m) => m.type === 'error')) {
        expect(e.code).toBe('handshake');
        expect(e.peer).toBe(0);
        expect(e.message).toMatch(/PROGGAN_TRANSPORT=shm but rank 0 cannot use shared memory: the shared-memory transport addon is not built/);
      }
    } finally {
      for (const c of [...auto.children, ...shm.children]) if (c.exitCode === null) c.kill('SIGKILL');
    }
  });

  describe.skipIf(!haveShm)('with the addon', () => {
    for (const n of [2, 3]) {
      it(`${n} processes: messages of 0, 1, 7, ring-1 .. 3x ring bytes, all-reduce vs naive sums, broadcast, all-gather; nothing left in /dev/shm`, async () => {
        // A stale segment of a dead process (as a crash during setup leaves) is swept at startup.
        const dead = spawnSync(process.execPath, ['-e', '0']).pid ?? 0;
        const stale = `proggan-stale-00000000-r0-p${dead}`;
        writeFileSync(join('/dev/shm', stale), 'x');
        const ring = 4096;
        const { jobId, children, messages, exits } = await launch(n, { SHM_RING: String(ring) });
        try {
          const codes = await within(Promise.all(exits), 20_000, () => `children did not finish: ${JSON.stringify(messages)}`);
          expect(messages.filter((m) => m.type === 'error')).toEqual([]);
          expect(codes).toEqual(new Array(n).fill(0));
          const setups = messages.filter((m) => m.type === 'setup');
          expect(setups.map((m) => m.transport)).toEqual(new Array(n).fill('ShmTransport'));
          const results = messages.filter((m) => m.type === 'result').sort((a, b) => a.rank - b.rank);
          expect(results.map((m) => m.rank)).toEqual(Array.from({ length: n }, (_, r) => r));
          for (const m of results) {
            expect(m.problems).toEqual([]);
            expect(m.bad).toBe(0);
            expect(m.gathered).toEqual(Array.from({ length: n }, (_, r) => r));
          }
          // Every rank closed and then exited on its own (nothing kept its event loop busy).
          expect(messages.filter((m) => m.type === 'closed').length).toBe(n);
          expect(leftovers(jobId)).toEqual([]);
          expect(existsSync(join('/dev/shm', stale))).toBe(false);
        } finally {
          for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
          rmSync(join('/dev/shm', stale), { force: true });
        }
      });
    }

    for (const keepTcp of [true, false]) {
      it(`a peer killed with SIGKILL makes the others fail naming it (${keepTcp ? 'TCP lifeline' : 'pid checks alone'})`, async () => {
        const { jobId, children, messages, exits } = await launch(3, { SHM_MODE: 'loop', SHM_RING: '65536', SHM_KEEP_TCP: keepTcp ? '1' : '0' });
        try {
          await waitFor(() => messages.filter((m) => m.type === 'ready').length === 3, 20_000);
          const t0 = Date.now();
          children[1]!.kill('SIGKILL');
          const codes = await within(Promise.all(exits), 10_000, () => 'survivors did not exit');
          const elapsed = Date.now() - t0;
          expect(codes[0]).toBe(3);
          expect(codes[2]).toBe(3);
          expect(elapsed).toBeLessThan(5000);
          const errors = messages.filter((m) => m.type === 'error').sort((a, b) => a.rank - b.rank);
          expect(errors.map((m) => m.rank)).toEqual([0, 2]);
          for (const e of errors) {
            expect(e.peer).toBe(1);
            expect(e.message).toMatch(/rank 1/);
          }
          expect(leftovers(jobId)).toEqual([]);
        } finally {
          for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
        }
      });
    }

    it('a send to a peer that stops reading fails with a timeout naming it', async () => {
      const { children, messages, exits } = await launch(2, { SHM_MODE: 'stall', SHM_RING: '4096', PROGGAN_COLLECTIVE_TIMEOUT_MS: '700' });
      try {
        await within(exits[0]!, 10_000, () => `rank 0 did not fail: ${JSON.stringify(messages)}`);
        const err = messages.find((m) => m.type === 'error' && m.rank === 0);
        expect(err?.code).toBe('timeout');
        expect(err?.peer).toBe(1);
        expect(err?.message).toMatch(/rank 1 is not reading/);
      } finally {
        for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      }
    });
  });
});
