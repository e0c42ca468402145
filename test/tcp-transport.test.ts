import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  Collectives,
  TcpTransport,
  TransportError,
  connectTcpTransport,
  ringAllReduce,
  type TcpTransportOptions,
} from '../src/distributed/index.js';
import { jobKey, macOf } from '../src/distributed/auth.js';
import type { Logger } from '../src/util/logger.js';

const here = dirname(fileURLToPath(import.meta.url));
const open: TcpTransport[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

function listen(port = 0): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function portOf(server: net.Server): number {
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('no port');
  return a.port;
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const s = await listen();
  const port = portOf(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function frame(type: number, payload: Uint8Array, announce = payload.length): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt32LE(type, 0);
  header.writeUInt32LE(announce % 2 ** 32, 4);
  header.writeUInt32LE(Math.floor(announce / 2 ** 32), 8);
  return Buffer.concat([header, payload]);
}

/** A hello frame tagged over `challenge` with `key`, as a rank holding that key would send it. */
function helloFrame(key: Buffer, challenge: Buffer, body: object): Buffer {
  const json = Buffer.from(JSON.stringify(body));
  return frame(1, Buffer.concat([macOf(key, 'hello', challenge, json), json]));
}

/** A raw client that sends the preamble and collects what comes back (the challenge first). */
async function rawPeer(port: number): Promise<{ socket: net.Socket; challenge: Promise<Buffer>; received: () => Buffer; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((r) => socket.once('connect', () => r()));
  let got = Buffer.alloc(0);
  let gotChallenge!: (b: Buffer) => void;
  const challenge = new Promise<Buffer>((r) => (gotChallenge = r));
  socket.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d]);
    if (got.length >= 12 + 32 && got.readUInt32LE(0) === 6) gotChallenge(got.subarray(12, 44));
  });
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.write(Buffer.from('PROGGAN\u0002', 'latin1'));
  return { socket, challenge, received: () => got, closed };
}

/** `n` ranks on loopback, each listening on an ephemeral port bound up front. */
async function tcpGroup(n: number, opts: Partial<TcpTransportOptions> = {}): Promise<TcpTransport[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => listen()));
  const addresses = servers.map((s) => `127.0.0.1:${portOf(s)}`);
  const group = await Promise.all(
    servers.map((server, rank) =>
      connectTcpTransport({ rank, worldSize: n, jobId: 'test', addresses, server, connectTimeoutMs: 10_000, opTimeoutMs: 10_000, ...opts }),
    ),
  );
  open.push(...group);
  return group;
}

function intData(rank: number, len: number, salt = 0): Float32Array {
  return Float32Array.from({ length: len }, (_, i) => ((i * 7 + rank * 13 + salt) % 41) - 20);
}

function naive(inputs: Float32Array[], op: 'sum' | 'mean'): number[] {
  const out = new Array<number>(inputs[0]?.length ?? 0).fill(0);
  for (const a of inputs) a.forEach((v, i) => (out[i] = out[i]! + v));
  return Array.from(Float32Array.from(op === 'mean' ? out.map((v) => v / inputs.length) : out));
}

function settle<T>(ps: Promise<T>[]): Promise<Array<TransportError | undefined>> {
  return Promise.allSettled(ps).then((rs) => rs.map((r) => (r.status === 'rejected' ? (r.reason as TransportError) : undefined)));
}

describe('TCP transport on loopback', () => {
  for (const n of [1, 2, 3, 5]) {
    it(`all-reduce (ring and direct, sum and mean) matches naive sums for world size ${n}`, async () => {
      const group = await tcpGroup(n);
      for (const smallBytes of [0, Number.POSITIVE_INFINITY]) {
        const colls = group.map((t) => new Collectives(t, { smallBytes, chunkBytes: 40 }));
        for (const len of [0, 1, 2, 3, 7, 13, 1031]) {
          for (const op of ['sum', 'mean'] as const) {
            const inputs = group.map((_, r) => intData(r, len, len));
            const bufs = inputs.map((a) => a.slice());
            await Promise.all(colls.map((c, r) => c.allReduce([bufs[r]!], op)));
            const want = naive(inputs, op);
            for (const b of bufs) expect(Array.from(b)).toEqual(want);
          }
        }
      }
    });
  }

  it('moves a multi-megabyte buffer in pipelined pieces and gets every element right', async () => {
    const n = 3;
    const group = await tcpGroup(n, { chunkBytes: 256 * 1024 });
    const len = 1_500_001;
    const inputs = group.map((_, r) => intData(r, len));
    const bufs = inputs.map((a) => a.slice());
    await Promise.all(group.map((t, r) => ringAllReduce(t, bufs[r]!, 'sum', 1 << 20)));
    const want = naive(inputs, 'sum');
    for (const b of bufs) {
      let bad = 0;
      for (let i = 0; i < len; i++) if (b[i] !== want[i]) bad++;
      expect(bad).toBe(0);
    }
  });

  it('broadcasts, gathers and holds a barrier', async () => {
    const n = 3;
    const group = await tcpGroup(n);
    const colls = group.map((t) => new Collectives(t, { bucketBytes: 100 }));
    const bufs = group.map((_, r) => [intData(r, 10), intData(r, 100), intData(r, 3)]);
    await Promise.all(colls.map((c, r) => c.broadcast(bufs[r]!, 2)));
    for (const b of bufs) expect(b.map((x) => Array.from(x))).toEqual(bufs[2]!.map((x) => Array.from(x)));
    const gathered = await Promise.all(colls.map((c, r) => c.allGather(intData(r, r + 1))));
    for (const g of gathered) expect(g.map((x) => Array.from(x))).toEqual([0, 1, 2].map((r) => Array.from(intData(r, r + 1))));
    let arrived = 0;
    const early: number[] = [];
    await Promise.all(
      colls.map(async (c, r) => {
        await new Promise((res) => setTimeout(res, r === 1 ? 80 : 0));
        arrived++;
        await c.barrier();
        if (arrived !== n) early.push(r);
      }),
    );
    expect(early).toEqual([]);
  });

  it('rendezvous via rank 0 gathers listen addresses, with ranks starting out of order', async () => {
    const n = 4;
    const master = `127.0.0.1:${await freePort()}`;
    const starts = [300, 100, 0, 50]; // rank 0 last: the others must retry
    const group = await Promise.all(
      starts.map(async (delay, rank) => {
        await new Promise((res) => setTimeout(res, delay));
        return connectTcpTransport({ rank, worldSize: n, jobId: 'rdv', addresses: [master], connectTimeoutMs: 10_000 });
      }),
    );
    open.push(...group);
    for (const t of group) {
      expect(t.addresses).toHaveLength(n);
      expect(t.addresses).toEqual(group[0]!.addresses);
      expect(t.addresses[0]).toBe(master);
    }
    const inputs = group.map((_, r) => intData(r, 999));
    const bufs = inputs.map((a) => a.slice());
    await Promise.all(group.map((t, r) => ringAllReduce(t, bufs[r]!, 'mean', 128)));
    for (const b of bufs) expect(Array.from(b)).toEqual(naive(inputs, 'mean'));
  });

  it('keeps data a peer sends right after the welcome (same TCP read as the welcome)', async () => {
    // Rank 0 finishes its rendezvous first and sends at once; the welcome and these frames reach
    // rank 1 together, before rank 1's rendezvous has returned.
    for (let round = 0; round < 5; round++) {
      const master = `127.0.0.1:${await freePort()}`;
      const opts = { worldSize: 2, jobId: `early-${round}`, addresses: [master], connectTimeoutMs: 5000, opTimeoutMs: 3000 };
      const first = connectTcpTransport({ rank: 0, ...opts }).then(async (t) => {
        await Promise.all([1, 2, 3].map((v) => t.send(1, Uint8Array.of(v))));
        return t;
      });
      const second = connectTcpTransport({ rank: 1, ...opts });
      const [a, b] = await Promise.all([first, second]);
      open.push(a, b);
      const got = [await b.recv(0), await b.recv(0), await b.recv(0)].map((m) => m[0]);
      expect(got).toEqual([1, 2, 3]);
    }
  });

  it('drops a stray connection without the preamble and still forms the group', async () => {
    const servers = await Promise.all([listen(), listen()]);
    const addresses = servers.map((s) => `127.0.0.1:${portOf(s)}`);
    const stray = net.connect(portOf(servers[0]!), '127.0.0.1');
    stray.on('error', () => {});
    stray.write('GET / HTTP/1.0\r\n\r\n');
    const group = await Promise.all(
      servers.map((server, rank) => connectTcpTransport({ rank, worldSize: 2, jobId: 'j', addresses, server, connectTimeoutMs: 5000 })),
    );
    open.push(...group);
    await group[0]!.send(1, Uint8Array.of(7));
    expect(Array.from(await group[1]!.recv(0))).toEqual([7]);
    stray.destroy();
  });

  it('refuses a peer of another job: it fails loudly, rank 0 logs it and waits on for its own rank 1', async () => {
    const servers = await Promise.all([listen(), listen()]);
    const addresses = servers.map((s) => `127.0.0.1:${portOf(s)}`);
    const errs = await settle(
      servers.map((server, rank) =>
        connectTcpTransport({ rank, worldSize: 2, jobId: rank === 1 ? 'job-b' : 'job-a', addresses, server, connectTimeoutMs: 1500 }),
      ),
    );
    expect(errs[1]?.code).toBe('handshake');
    expect(errs[1]?.message).toMatch(/rank 1: rank 0 at .* refused us: .*belongs to job 'job-b'/);
    // Rank 0 is not killed by the stranger: it gives up only at its connect timeout, and says why.
    expect(errs[0]?.code).toBe('handshake');
    expect(errs[0]?.message).toMatch(/did not finish within 1500 ms; no connection with rank\(s\) 1.*refused 1 connection.*belongs to job 'job-b'/);
  });

  it('refuses a peer that disagrees on the world size or the address table', async () => {
    const servers = await Promise.all([listen(), listen(), listen()]);
    const addresses = servers.map((s) => `127.0.0.1:${portOf(s)}`);
    const errs = await settle([
      connectTcpTransport({ rank: 0, worldSize: 2, jobId: 'j', addresses: addresses.slice(0, 2), server: servers[0]!, connectTimeoutMs: 5000 }),
      connectTcpTransport({ rank: 1, worldSize: 3, jobId: 'j', addresses, server: servers[1]!, connectTimeoutMs: 5000 }),
    ]);
    expect(errs[0]?.message).toMatch(/says world size 3/);
    expect(errs[1]?.message).toMatch(/refused us/);
    servers[2]!.close();
  });

  it('fails a rendezvous in progress at once when an established peer dies', async () => {
    const servers = await Promise.all([listen(), listen(), listen()]);
    const addresses = servers.map((s) => `127.0.0.1:${portOf(s)}`);
    servers[2]!.close();
    const opts = { worldSize: 3, jobId: 'mid', addresses, connectTimeoutMs: 20_000 };
    const r0 = connectTcpTransport({ rank: 0, server: servers[0]!, ...opts });
    const r1 = connectTcpTransport({ rank: 1, server: servers[1]!, ...opts }).catch((e: unknown) => e);
    // A fake rank 2 (it knows the job's key) joins at rank 0 (so rank 0 hands out the table) but never connects to rank 1.
    const fake = await rawPeer(portOf(servers[0]!));
    await fake.challenge;
    fake.socket.write(helloFrame(jobKey('mid', undefined), await fake.challenge, { v: 2, jobId: 'mid', worldSize: 3, rank: 2, to: 0, listenPort: 1, addresses, nonce: 'ab'.repeat(32) }));
    const fakeSocket = fake.socket;
    const t0 = await r0;
    const start = Date.now();
    t0.destroy();
    const err = (await r1) as TransportError;
    fakeSocket.destroy();
    expect(Date.now() - start).toBeLessThan(3000);
    expect(err).toBeInstanceOf(TransportError);
    expect(err.peer).toBe(0);
    expect(err.message).toMatch(/rank 0/);
  });

  it('gives up connecting after the connect timeout, naming the missing rank', async () => {
    const addresses = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const t0 = Date.now();
    const err = await connectTcpTransport({ rank: 1, worldSize: 2, jobId: 'j', addresses, connectTimeoutMs: 600 }).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).peer).toBe(0);
    expect((err as TransportError).message).toMatch(/rank 0/);
  });

  it('a peer whose sockets are destroyed makes the others reject, naming it', async () => {
    const group = await tcpGroup(3);
    const len = 2_000_000;
    const bufs = group.map((_, r) => intData(r, len));
    const t0 = Date.now();
    // Rank 2 takes part in the all-reduce and dies in the middle of it.
    const pending = group.map((t, r) => ringAllReduce(t, bufs[r]!, 'sum', 64 * 1024));
    const victim = pending[2]!.catch((e: unknown) => e);
    setTimeout(() => group[2]!.destroy(), 5);
    const errs = await settle(pending.slice(0, 2));
    expect(Date.now() - t0).toBeLessThan(5000);
    for (const e of errs) {
      expect(e).toBeInstanceOf(TransportError);
      expect(e?.peer).toBe(2);
      expect(e?.message).toMatch(/rank 2/);
    }
    expect(await victim).toMatchObject({ code: 'closed', peer: 2 });
    // Later operations reject at once.
    await expect(group[0]!.send(1, new Uint8Array(4))).rejects.toMatchObject({ peer: 2 });
    await expect(group[1]!.recv(0)).rejects.toMatchObject({ peer: 2 });
  });

  it('a stalled peer makes the others time out, naming it', async () => {
    const group = await tcpGroup(3, { opTimeoutMs: 500 });
    const t0 = Date.now();
    const errs = await settle([0, 1].map((r) => ringAllReduce(group[r]!, new Float32Array(100), 'sum')));
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(3000);
    // Rank 0 waits on rank 2 directly and names it; rank 1 waits on rank 0 (which waits on rank 2)
    // and names whichever rank's silence or abort reached it first.
    expect(errs[0]?.peer).toBe(2);
    expect(errs[0]?.message).toMatch(/no message from rank 2 within 500 ms/);
    expect(errs[1]).toBeInstanceOf(TransportError);
    expect(errs[1]?.message).toMatch(/rank [02]/);
  });

  it('an orderly close delivers what was sent, then reports the peer closed', async () => {
    const [a, b] = await tcpGroup(2, { chunkBytes: 64 * 1024 });
    await a!.send(1, Uint8Array.of(1, 2, 3));
    // A large send still in flight when close is called goes out whole before the goodbye.
    const big = new Uint8Array(5_000_000).map((_, i) => i % 251);
    const sending = a!.send(1, big);
    await a!.close();
    await sending;
    await expect(a!.send(1, Uint8Array.of(9))).rejects.toMatchObject({ code: 'closed' });
    expect(Array.from(await b!.recv(0))).toEqual([1, 2, 3]);
    expect(Buffer.from(await b!.recv(0)).equals(Buffer.from(big))).toBe(true);
    await expect(b!.recv(0)).rejects.toMatchObject({ code: 'peer_closed', peer: 0 });
  });
});

describe('strangers on the rendezvous (authenticated handshake)', () => {
  /** A logger that keeps its JSON lines. */
  function captureLogger(): { logger: Logger; lines: () => string } {
    const out: string[] = [];
    const logger: Logger = pino({ level: 'debug' }, { write: (line: string) => void out.push(line) });
    return { logger, lines: () => out.join('') };
  }

  /** Rank 0 of a 2-rank job waiting for its rank 1; `join` starts the real rank 1. */
  async function job(opts: { secret?: string; jobId?: string } = {}) {
    const servers = await Promise.all([listen(), listen()]);
    const addresses = servers.map((s) => `127.0.0.1:${portOf(s)}`);
    const log = captureLogger();
    const base = { worldSize: 2, jobId: opts.jobId ?? 'job-a', addresses, connectTimeoutMs: 10_000, ...(opts.secret !== undefined ? { secret: opts.secret } : {}) };
    const r0 = connectTcpTransport({ rank: 0, server: servers[0]!, logger: log.logger, ...base });
    r0.catch(() => {});
    const join = async (secret = opts.secret): Promise<TcpTransport[]> => {
      const r1 = connectTcpTransport({ rank: 1, server: servers[1]!, ...base, ...(secret !== undefined ? { secret } : {}) });
      const group = await Promise.all([r0, r1]);
      open.push(...group);
      return group;
    };
    return { port: portOf(servers[0]!), log, join, r0 };
  }

  async function expectWorks(group: TcpTransport[]): Promise<void> {
    const bufs = group.map((_, r) => Float32Array.of(r + 1, 10));
    await Promise.all(group.map((t, r) => ringAllReduce(t, bufs[r]!, 'sum')));
    expect(Array.from(bufs[0]!)).toEqual([3, 20]);
  }

  it('a hello with a wrong job id is refused and logged; the job still forms', async () => {
    const j = await job();
    const s = await rawPeer(j.port);
    s.socket.write(helloFrame(jobKey('job-x', undefined), await s.challenge, { v: 2, jobId: 'job-x', worldSize: 2, rank: 1, to: 0, listenPort: 1, nonce: 'cd'.repeat(32) }));
    await s.closed;
    expect(s.received().toString('latin1')).toMatch(/refused a connection .*belongs to job 'job-x'/);
    await expectWorks(await j.join());
    expect(j.log.lines()).toMatch(/refused a connection from 127\.0\.0\.1:\d+: it belongs to job 'job-x'/);
  });

  it('a 4 GB length header is refused at the header, before any allocation; the job still forms', async () => {
    const j = await job();
    const rss0 = process.memoryUsage().rss;
    // Before authentication (a data frame where the hello belongs) ...
    const a = await rawPeer(j.port);
    await a.challenge;
    a.socket.write(frame(3, new Uint8Array(64 * 1024), 4 * 2 ** 30));
    // ... and a hello that announces 4 GB.
    const b = await rawPeer(j.port);
    await b.challenge;
    b.socket.write(frame(1, new Uint8Array(1024), 4 * 2 ** 30));
    await Promise.all([a.closed, b.closed]);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(256 * 2 ** 20);
    await expectWorks(await j.join());
    expect(j.log.lines()).toMatch(/announces 4294967296 bytes, more than the 65536 allowed/);
  });

  it('a client that knows the job id but not the secret is refused; the real rank 1 joins', async () => {
    const j = await job({ secret: 'correct horse battery staple' });
    const s = await rawPeer(j.port);
    s.socket.write(helloFrame(jobKey('job-a', undefined), await s.challenge, { v: 2, jobId: 'job-a', worldSize: 2, rank: 1, to: 0, listenPort: 1, nonce: 'ef'.repeat(32) }));
    await s.closed;
    expect(s.received().toString('latin1')).toMatch(/did not prove it knows this job's secret/);
    await expectWorks(await j.join());
    expect(j.log.lines()).toMatch(/refused a connection .*wrong or missing PROGGAN_JOB_SECRET/);
  });

  it("a rank with the wrong secret fails loudly on its side; a replayed hello is refused", async () => {
    const j = await job({ secret: 'right' });
    const servers1 = await listen();
    const err = await connectTcpTransport({ rank: 1, worldSize: 2, jobId: 'job-a', addresses: [`127.0.0.1:${j.port}`], server: servers1, secret: 'wrong', connectTimeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).message).toMatch(/refused us: .*did not prove it knows this job's secret/);
    // A hello tagged for one challenge is worthless for the next connection's challenge.
    const first = await rawPeer(j.port);
    const replay = helloFrame(jobKey('job-a', 'right'), await first.challenge, { v: 2, jobId: 'job-a', worldSize: 2, rank: 1, to: 0, listenPort: 1, nonce: '01'.repeat(32) });
    first.socket.destroy();
    const second = await rawPeer(j.port);
    await second.challenge;
    second.socket.write(replay);
    await second.closed;
    expect(second.received().toString('latin1')).toMatch(/did not prove/);
    await expectWorks(await j.join());
  });

  it('a rank refuses a fake rank 0 that cannot prove the secret (the address table is not taken from it)', async () => {
    // A squatter on rank 0's port: sends a challenge, then welcomes anyone with an untagged table.
    const squatter = net.createServer((c) => {
      c.on('error', () => {});
      c.once('data', () => {
        c.write(frame(6, Buffer.alloc(32, 7)));
        c.once('data', () => {
          const json = Buffer.from(JSON.stringify({ ok: true, addresses: ['127.0.0.1:1', '127.0.0.1:2'] }));
          c.write(frame(2, Buffer.concat([Buffer.alloc(32), json])));
        });
      });
    });
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', () => r()));
    const port = (squatter.address() as net.AddressInfo).port;
    const err = await connectTcpTransport({ rank: 1, worldSize: 2, jobId: 'j', addresses: [`127.0.0.1:${port}`], secret: 's', connectTimeoutMs: 5000 }).catch((e: unknown) => e);
    squatter.close();
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).message).toMatch(/handshake with rank 0 .* failed: its welcome did not prove it knows this job's secret/);
  });

  it('the secret never crosses the wire', async () => {
    const secret = 'a-very-distinctive-secret-string';
    const servers = await Promise.all([listen(), listen()]);
    const addresses = servers.map((s) => `127.0.0.1:${portOf(s)}`);
    // A relay in front of rank 0 records every byte rank 1 sends and receives.
    const seen: Buffer[] = [];
    const relay = net.createServer((c) => {
      const up = net.connect(portOf(servers[0]!), '127.0.0.1');
      c.on('data', (d: Buffer) => (seen.push(d), up.write(d)));
      up.on('data', (d: Buffer) => (seen.push(d), c.write(d)));
      c.on('close', () => up.destroy());
      up.on('close', () => c.destroy());
      c.on('error', () => {});
      up.on('error', () => {});
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
    const a = relay.address() as net.AddressInfo;
    servers[1]!.close();
    // Rendezvous mode: rank 1 knows only rank 0's address (the relay's) and learns the table there.
    const group = await Promise.all([
      connectTcpTransport({ rank: 0, worldSize: 2, jobId: 'j', addresses: [addresses[0]!], server: servers[0]!, secret, connectTimeoutMs: 10_000 }),
      connectTcpTransport({ rank: 1, worldSize: 2, jobId: 'j', addresses: [`127.0.0.1:${a.port}`], secret, connectTimeoutMs: 10_000 }),
    ]);
    open.push(...group);
    await expectWorks(group);
    relay.close();
    const wire = Buffer.concat(seen).toString('latin1');
    expect(wire).toMatch(/"jobId":"j"/);
    expect(wire).not.toContain(secret);
  });
});

describe('separate processes over TCP', () => {
  let distDir = '';

  beforeAll(() => {
    // A forked child cannot import .ts: transpile this folder's modules (no type check, no
    // dependence on a dist/ build) into a temporary directory the child imports from.
    distDir = mkdtempSync(join(tmpdir(), 'proggan-dist-'));
    // Only the tfjs-free, dependency-free modules the child needs (index.js also pulls in the launcher).
    for (const name of ['strategy', 'transport', 'collectives', 'tcp', 'cluster', 'mirrored', 'auth', 'supervised']) {
      const src = readFileSync(join(here, '..', 'src', 'distributed', `${name}.ts`), 'utf8');
      const out = ts.transpileModule(src, {
        compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
      });
      writeFileSync(join(distDir, `${name}.js`), out.outputText);
    }
  });

  afterAll(() => {
    if (distDir) rmSync(distDir, { recursive: true, force: true });
  });

  interface Msg {
    type: string;
    rank: number;
    bad?: number;
    loss?: number[];
    gathered?: number[];
    message?: string;
    peer?: number;
  }

  async function launch(n: number, mode: string): Promise<{ children: ChildProcess[]; messages: Msg[]; exits: Promise<number | null>[] }> {
    const port = await freePort();
    const messages: Msg[] = [];
    const children: ChildProcess[] = [];
    const exits: Promise<number | null>[] = [];
    for (let rank = 0; rank < n; rank++) {
      const child = fork(join(here, 'fixtures', 'dist-worker.mjs'), [], {
        env: {
          PATH: process.env['PATH'] ?? '',
          PROGGAN_DIST_DIR: distDir,
          RANK: String(rank),
          WORLD_SIZE: String(n),
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(port),
          PROGGAN_JOB_ID: `fork-${port}`,
          PROGGAN_COLLECTIVE_TIMEOUT_MS: '20000',
          DIST_MODE: mode,
        },
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      });
      child.on('message', (m) => messages.push(m as Msg));
      exits.push(new Promise((resolve) => child.on('exit', (code) => resolve(code))));
      children.push(child);
    }
    return { children, messages, exits };
  }

  async function waitFor(cond: () => boolean, ms: number): Promise<void> {
    const t0 = Date.now();
    while (!cond()) {
      if (Date.now() - t0 > ms) throw new Error('timed out waiting');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('three processes agree on all-reduce, scalars, broadcast and all-gather', async () => {
    const { children, messages, exits } = await launch(3, 'check');
    try {
      const codes = await Promise.race([
        Promise.all(exits),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`children did not finish: ${JSON.stringify(messages)}`)), 30_000)),
      ]);
      expect(codes).toEqual([0, 0, 0]);
      const results = messages.filter((m) => m.type === 'result').sort((a, b) => a.rank - b.rank);
      expect(results.map((m) => m.rank)).toEqual([0, 1, 2]);
      for (const m of results) {
        expect(m.bad).toBe(0);
        expect(m.loss).toEqual([0.5 + 1.5 + 2.5, 3]);
        expect(m.gathered).toEqual([0, 1, 2]);
      }
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    }
  });

  it('when one process is killed with SIGKILL the others exit with an error naming it', async () => {
    const { children, messages, exits } = await launch(3, 'loop');
    try {
      await waitFor(() => messages.filter((m) => m.type === 'ready').length === 3, 30_000);
      const t0 = Date.now();
      children[1]!.kill('SIGKILL');
      const codes = await Promise.race([
        Promise.all(exits),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error('survivors did not exit')), 10_000)),
      ]);
      const elapsed = Date.now() - t0;
      expect(codes[0]).toBe(3);
      expect(codes[2]).toBe(3);
      expect(elapsed).toBeLessThan(5000);
      const errors = messages.filter((m) => m.type === 'error');
      expect(errors.map((m) => m.rank).sort()).toEqual([0, 2]);
      for (const e of errors) {
        expect(e.peer).toBe(1);
        expect(e.message).toMatch(/rank 1\b/);
      }
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    }
  });
});
