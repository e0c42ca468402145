// Multi-host tests: two or three "hosts" are network namespaces the test creates (a bridge in a
// switch namespace, 10.200.0.x; see fixtures/netns.ts) and removes afterwards, even on failure.
// Ranks join over TCP from torchrun variables or TF_CONFIG: a normal run (a tiny WAE training and
// exact collectives), a rank killed, a link cut, a late DNS name, a name that never resolves, and
// an all-reduce on a link shaped with `tc tbf`. Each case must end in success or in an error that
// names the peer, within a bound. Skipped (with a message) unless root with iproute2 and network
// namespaces; PROGGAN_REQUIRE_NETNS=1 (CI) makes that a failure.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { haveTc, NetLab, netnsUnavailable, type LabProcess } from './fixtures/netns.js';
import { transpileToTemp } from './fixtures/transpile.js';

const root = join(import.meta.dirname, '..');
const worker = join(root, 'test', 'fixtures', 'netns-worker.mjs');
const required = process.env['PROGGAN_REQUIRE_NETNS'] === '1';
const unavailable = netnsUnavailable();
if (unavailable && !required) console.warn(`test/netns.test.ts: skipping the multi-host tests: ${unavailable}; set PROGGAN_REQUIRE_NETNS=1 to make this a failure`);
const PORT = 29400;

interface Report {
  rank?: number;
  n?: number;
  bad?: number;
  gathered?: number[];
  joinedMs?: number;
  message?: string;
  code?: string;
  peer?: number;
  afterMs?: number;
  times?: number[];
  bytes?: number;
}

/** The JSON after the last `tag ` line of a process's output, if any. */
function report(p: LabProcess, tag: 'RESULT' | 'ERROR' | 'READY'): Report | undefined {
  const lines = p.out().split('\n').filter((l) => l.startsWith(`${tag} `));
  const last = lines[lines.length - 1];
  return last === undefined ? undefined : (JSON.parse(last.slice(tag.length + 1)) as Report);
}

/** Wait until `cond` holds, polling, at most `ms`; throws `what` otherwise. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The exit of `p`, or a failure naming `what` after `ms`. */
async function exitWithin(p: LabProcess, ms: number, what: string): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms; output:\n${p.out().slice(-2000)}`)), ms);
  });
  try {
    return await Promise.race([p.exited, t]);
  } finally {
    clearTimeout(timer);
  }
}

describe.skipIf(unavailable !== undefined && !required)('ranks on separate hosts (network namespaces)', () => {
  let dist = '';
  let lab: NetLab | undefined;
  const temps: string[] = [];
  const secret = randomBytes(16).toString('hex');

  beforeAll(() => {
    if (unavailable) throw new Error(`PROGGAN_REQUIRE_NETNS=1 but ${unavailable}`);
    dist = transpileToTemp('proggan-netns-dist-');
    temps.push(dist);
  });

  afterEach(() => {
    if (!lab) return;
    const l = lab;
    lab = undefined;
    l.destroy();
    expect(l.leftovers()).toEqual([]);
  });

  afterAll(() => {
    for (const d of temps) rmSync(d, { recursive: true, force: true });
  });

  function baseEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    return {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: process.env['HOME'] ?? '/root',
      PROGGAN_DIST_DIR: dist,
      // Every namespace shares the host name and boot id: without this the ranks would pick shared memory.
      PROGGAN_TRANSPORT: 'tcp',
      PROGGAN_JOB_SECRET: secret,
      PROGGAN_CONNECT_TIMEOUT_MS: '20000',
      PROGGAN_COLLECTIVE_TIMEOUT_MS: '20000',
      ...extra,
    };
  }

  function torchrun(rank: number, n: number, master: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return baseEnv({ RANK: String(rank), WORLD_SIZE: String(n), MASTER_ADDR: master, MASTER_PORT: String(PORT), ...extra });
  }

  const haveDist = existsSync(join(root, 'dist', 'cli', 'main.js'));
  it.skipIf(!haveDist && !required)('torchrun env, 3 hosts: train wae --preset tiny runs as one job over TCP, every step once', async () => {
    lab = NetLab.create(3);
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-netns-run-'));
    temps.push(runDir);
    const args = ['train', 'wae', '--preset', 'tiny', '--steps', '4', '--tick-every', '1', '--checkpoint-every', '2', '--sample-every', '100000', '--threads', '1', '--run-dir', runDir];
    const ranks = [0, 1, 2].map((r) => lab!.spawnIn(r, [process.execPath, join(root, 'bin', 'proggan.js'), ...args], torchrun(r, 3, lab!.ip(0))));
    const codes = await Promise.all(ranks.map((p, r) => exitWithin(p, 100_000, `rank ${r}`)));
    expect(codes, ranks.map((p) => p.out().slice(-1500)).join('\n----\n')).toEqual([0, 0, 0]);
    const log0 = ranks[0]!.out();
    expect(log0).toMatch(/transport: tcp/);
    // The mesh really spans the three hosts' addresses.
    expect(log0).toMatch(/mesh connected/);
    for (const r of [1, 2]) expect(log0).toContain(lab.ip(r));
    const steps = readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    expect(steps).toEqual([1, 2, 3, 4]);
  });

  it('TF_CONFIG, 3 hosts (chief + 2 workers): all-reduce, broadcast and all-gather are exact', async () => {
    lab = NetLab.create(3);
    const cluster = { chief: [`${lab.ip(0)}:${PORT}`], worker: [`${lab.ip(1)}:${PORT}`, `${lab.ip(2)}:${PORT}`] };
    const tasks = [{ type: 'chief', index: 0 }, { type: 'worker', index: 0 }, { type: 'worker', index: 1 }];
    const ranks = tasks.map((task, h) => lab!.spawnIn(h, [process.execPath, worker], baseEnv({ TF_CONFIG: JSON.stringify({ cluster, task }), NETNS_MODE: 'check' })));
    const codes = await Promise.all(ranks.map((p, r) => exitWithin(p, 60_000, `rank ${r}`)));
    expect(codes, ranks.map((p) => p.out()).join('\n----\n')).toEqual([0, 0, 0]);
    ranks.forEach((p, r) => {
      const res = report(p, 'RESULT');
      expect(res).toMatchObject({ rank: r, n: 3, bad: 0, gathered: [0, 1, 2] });
    });
  });

  it('a rank killed (SIGKILL): the others stop within 10 s with an error naming it', async () => {
    lab = NetLab.create(3);
    const ranks = [0, 1, 2].map((r) => lab!.spawnIn(r, [process.execPath, worker], torchrun(r, 3, lab!.ip(0), { NETNS_MODE: 'loop' })));
    await until(() => ranks.every((p) => report(p, 'READY') !== undefined), 30_000, 'every rank READY');
    ranks[2]!.child.kill('SIGKILL');
    for (const r of [0, 1]) {
      expect(await exitWithin(ranks[r]!, 10_000, `rank ${r}`)).toBe(3);
      const err = report(ranks[r]!, 'ERROR');
      expect(err?.message, ranks[r]!.out()).toMatch(/rank 2\b/);
      expect(err?.afterMs).toBeLessThan(10_000);
    }
  });

  it('a link cut (ip link set down): the others report the cut-off rank within the op timeout', async () => {
    lab = NetLab.create(3);
    const opMs = 3000;
    const ranks = [0, 1, 2].map((r) =>
      lab!.spawnIn(r, [process.execPath, worker], torchrun(r, 3, lab!.ip(0), { NETNS_MODE: 'loop', PROGGAN_COLLECTIVE_TIMEOUT_MS: String(opMs) })),
    );
    await until(() => ranks.every((p) => report(p, 'READY') !== undefined), 30_000, 'every rank READY');
    const cutAt = Date.now();
    lab.linkDown(2);
    const messages: string[] = [];
    for (const r of [0, 1]) {
      expect(await exitWithin(ranks[r]!, opMs + 10_000, `rank ${r}`)).toBe(3);
      const err = report(ranks[r]!, 'ERROR');
      expect(err?.message, ranks[r]!.out()).toMatch(/rank [0-2]\b/);
      messages.push(err?.message ?? '');
    }
    expect(Date.now() - cutAt).toBeLessThan(opMs + 10_000);
    // Rank 0 receives from rank 2 in the ring and blames it. Rank 1 waits on rank 0, which is
    // itself stuck on rank 2: if rank 1's timer fires before rank 0's abort frame arrives, rank 1
    // blames rank 0 (a stall is seen only by the rank waiting on it), so only "someone names 2".
    expect(messages.some((m) => /rank 2\b/.test(m)), messages.join('\n')).toBe(true);
    // The cut-off rank itself cannot reach anyone: it too ends with an error naming a peer.
    expect(await exitWithin(ranks[2]!, opMs + 10_000, 'rank 2')).toBe(3);
    expect(report(ranks[2]!, 'ERROR')?.message).toMatch(/rank [01]\b/);
  });

  it('a late DNS name: MASTER_ADDR resolves only after the ranks started, and they are retried into the job', async () => {
    lab = NetLab.create(2);
    const name = `${lab.tag}-master`;
    const ranks = [0, 1].map((r) => lab!.spawnIn(r, [process.execPath, worker], torchrun(r, 2, name, { NETNS_MODE: 'check' })));
    await new Promise((r) => setTimeout(r, 2500));
    // Neither has finished: rank 1 cannot find rank 0 yet.
    expect(report(ranks[1]!, 'RESULT')).toBeUndefined();
    for (const h of [0, 1]) lab.addHostsEntry(h, `${lab.ip(0)} ${name}`);
    const codes = await Promise.all(ranks.map((p, r) => exitWithin(p, 30_000, `rank ${r}`)));
    expect(codes, ranks.map((p) => p.out()).join('\n----\n')).toEqual([0, 0]);
    expect(report(ranks[1]!, 'RESULT')).toMatchObject({ rank: 1, n: 2, bad: 0 });
    expect(report(ranks[1]!, 'RESULT')!.joinedMs).toBeGreaterThanOrEqual(2000);
  });

  it('a name that never resolves: both ranks give up within the connect timeout, naming the peer', async () => {
    lab = NetLab.create(2);
    const name = `${lab.tag}-nowhere`;
    const connectMs = 4000;
    const env = { NETNS_MODE: 'check', PROGGAN_CONNECT_TIMEOUT_MS: String(connectMs) };
    const ranks = [0, 1].map((r) => lab!.spawnIn(r, [process.execPath, worker], torchrun(r, 2, name, env)));
    const t0 = Date.now();
    const codes = await Promise.all(ranks.map((p, r) => exitWithin(p, connectMs + 10_000, `rank ${r}`)));
    expect(codes).toEqual([3, 3]);
    expect(Date.now() - t0).toBeLessThan(connectMs + 10_000);
    const r1 = report(ranks[1]!, 'ERROR');
    const e1 = r1?.message ?? '';
    expect(e1, ranks[1]!.out()).toMatch(/rank(\(s\))? 0\b/);
    expect(r1?.peer).toBe(0);
    const e0 = report(ranks[0]!, 'ERROR');
    expect(e0?.message, ranks[0]!.out()).toMatch(/rank(\(s\))? 1\b/);
    expect(e0?.peer).toBe(1);
    console.log(`netns unresolvable name: rank 1: ${e1}`);
  });

  // 100 Mbit/s by default so that a loaded CI machine still keeps up; PROGGAN_NETNS_RATE_MBIT and
  // PROGGAN_NETNS_BENCH_MIB measure other points (the report quotes 1000 Mbit/s, 64 MiB).
  const rateMbit = Number(process.env['PROGGAN_NETNS_RATE_MBIT'] ?? 100);
  const benchMiB = Number(process.env['PROGGAN_NETNS_BENCH_MIB'] ?? 16);
  it.skipIf(!haveTc() && !required)(`bandwidth: a ${benchMiB} MiB all-reduce runs at >= 85 % of a ${rateMbit} Mbit/s tbf-shaped link`, async () => {
    lab = NetLab.create(2);
    const rateBits = rateMbit * 1e6;
    for (const h of [0, 1]) lab.shape(h, `${rateMbit}mbit`);
    const bytes = benchMiB * 1024 * 1024;
    const ranks = [0, 1].map((r) =>
      lab!.spawnIn(r, [process.execPath, worker], torchrun(r, 2, lab!.ip(0), { NETNS_MODE: 'bench', BENCH_BYTES: String(bytes), BENCH_REPS: '4' })),
    );
    const codes = await Promise.all(ranks.map((p, r) => exitWithin(p, 90_000, `rank ${r}`)));
    expect(codes, ranks.map((p) => p.out()).join('\n----\n')).toEqual([0, 0]);
    const res = report(ranks[0]!, 'RESULT')!;
    expect(res.bad).toBe(0);
    // Ring all-reduce of 2 ranks: each rank sends (and receives) the whole buffer once, half in
    // the reduce-scatter and half in the all-gather, both directions at once.
    const best = Math.min(...res.times!);
    const achieved = (bytes * 8) / best;
    const share = achieved / rateBits;
    console.log(`netns bandwidth: ${benchMiB} MiB all-reduce over a ${rateMbit} Mbit/s tbf link: times ${res.times!.map((t) => t.toFixed(3)).join(', ')} s; best ${(achieved / 1e6).toFixed(1)} Mbit/s = ${(share * 100).toFixed(1)} % of the link`);
    expect(share).toBeGreaterThanOrEqual(0.85);
    expect(share).toBeLessThan(1.05); // the shaping took effect
  });
});
