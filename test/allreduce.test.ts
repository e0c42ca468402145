import { describe, expect, it } from 'vitest';
import {
  Collectives,
  LocalTransport,
  MirroredStrategy,
  OneDeviceStrategy,
  TransportError,
  barrier,
  broadcastArray,
  checksum,
  createLocalGroup,
  createStrategy,
  directAllReduce,
  makeBuckets,
  ringAllReduce,
  type ReduceOp,
  type Transport,
} from '../src/distributed/index.js';

/** Run `fn` on every rank of the group at once. */
function onAll<T>(group: Transport[], fn: (t: Transport, rank: number) => Promise<T>): Promise<T[]> {
  return Promise.all(group.map((t, r) => fn(t, r)));
}

/** Small-integer data, so float32 sums are exact and any summation order gives the same bits. */
function intData(rank: number, len: number, salt = 0): Float32Array {
  return Float32Array.from({ length: len }, (_, i) => ((i * 7 + rank * 13 + salt) % 41) - 20);
}

/** A seeded generator of floats in [-1, 1). */
function randomData(seed: number, len: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: len }, () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 31 - 1;
  });
}

function naive(inputs: Float32Array[], op: ReduceOp): Float64Array {
  const n = inputs.length;
  const out = new Float64Array(inputs[0]?.length ?? 0);
  for (const a of inputs) a.forEach((v, i) => (out[i] = out[i]! + v));
  if (op === 'mean') out.forEach((v, i) => (out[i] = v / n));
  return out;
}

const WORLD_SIZES = [1, 2, 3, 5];
const LENGTHS = [0, 1, 2, 3, 4, 5, 7, 13, 101, 1031];

describe('all-reduce over LocalTransport', () => {
  for (const n of WORLD_SIZES) {
    for (const algo of ['ring', 'direct'] as const) {
      for (const op of ['sum', 'mean'] as const) {
        it(`${algo} ${op} matches the naive ${op} for world size ${n} and odd lengths`, async () => {
          for (const len of LENGTHS) {
            const group = createLocalGroup(n, { opTimeoutMs: 5000 });
            const inputs = group.map((_, r) => intData(r, len));
            const bufs = inputs.map((a) => a.slice());
            // 12-byte pieces make the ring pipeline segments in several pieces.
            await onAll(group, (t, r) => (algo === 'ring' ? ringAllReduce(t, bufs[r]!, op, 12) : directAllReduce(t, bufs[r]!, op)));
            const want = Float32Array.from(naive(inputs, op));
            for (const b of bufs) expect(Array.from(b)).toEqual(Array.from(want));
          }
        });
      }
    }
  }

  it('ring sends 2(n-1)/n of the buffer per rank; direct sends (n-1)x', async () => {
    for (const n of [2, 3, 5]) {
      const len = 60 * n;
      const bytes = len * 4;
      const ring = createLocalGroup(n, { opTimeoutMs: 5000 });
      await onAll(ring, (t, r) => ringAllReduce(t, intData(r, len), 'sum', 16));
      for (const t of ring) expect((t as LocalTransport).bytesSent).toBe((2 * (n - 1) * bytes) / n);
      const direct = createLocalGroup(n, { opTimeoutMs: 5000 });
      await onAll(direct, (t, r) => directAllReduce(t, intData(r, len), 'sum'));
      for (const t of direct) expect((t as LocalTransport).bytesSent).toBe((n - 1) * bytes);
    }
  });

  it('gives bitwise identical results on every rank for random floats, close to the float64 sum', async () => {
    for (const n of [3, 5]) {
      const len = 4099;
      const group = createLocalGroup(n, { opTimeoutMs: 5000 });
      const inputs = group.map((_, r) => randomData(r + 1, len));
      const bufs = inputs.map((a) => a.slice());
      await onAll(group, (t, r) => ringAllReduce(t, bufs[r]!, 'mean', 1000));
      const want = naive(inputs, 'mean');
      for (const b of bufs) expect(Buffer.from(b.buffer).equals(Buffer.from(bufs[0]!.buffer))).toBe(true);
      let maxErr = 0;
      bufs[0]!.forEach((v, i) => (maxErr = Math.max(maxErr, Math.abs(v - want[i]!))));
      expect(maxErr).toBeLessThan(1e-6);
    }
  });

  it('reduces Float64 scalars exactly in float64', async () => {
    const group = createLocalGroup(3, { opTimeoutMs: 5000 });
    const vals = group.map((_, r) => Float64Array.from([0.1 * (r + 1), 1e-12 * r, 1 + r]));
    await onAll(group, (t, r) => new MirroredStrategy(t).allReduceScalars(vals[r]!, 'sum'));
    for (const v of vals) {
      expect(v[0]).toBe(0.1 + 0.2 + 0.30000000000000004);
      expect(v[1]).toBe(0 + 1e-12 + 2e-12);
      expect(v[2]).toBe(6);
    }
  });
});

describe('Collectives', () => {
  it('fuses many small arrays into buckets: same results, fewer messages', async () => {
    const n = 3;
    const lens = Array.from({ length: 60 }, (_, i) => (i * 37) % 23);
    lens.push(700); // bigger than a bucket: reduced on its own, in place
    const run = async (bucketBytes: number): Promise<{ bufs: Float32Array[][]; messages: number }> => {
      const group = createLocalGroup(n, { opTimeoutMs: 5000 });
      const bufs = group.map((_, r) => lens.map((len, k) => intData(r, len, k)));
      await onAll(group, (t, r) => new Collectives(t, { bucketBytes, smallBytes: 0 }).allReduce(bufs[r]!, 'sum'));
      const messages = group.reduce((acc, t) => acc + (t as LocalTransport).messagesSent, 0);
      return { bufs, messages };
    };
    const fused = await run(256);
    const unfused = await run(1);
    for (let k = 0; k < lens.length; k++) {
      const want = Float32Array.from(naive([0, 1, 2].map((r) => intData(r, lens[k]!, k)), 'sum'));
      for (let r = 0; r < n; r++) {
        expect(Array.from(fused.bufs[r]![k]!)).toEqual(Array.from(want));
        expect(Array.from(unfused.bufs[r]![k]!)).toEqual(Array.from(want));
      }
    }
    expect(fused.messages).toBeLessThan(unfused.messages / 3);
  });

  it('picks the direct exchange for small buckets and the ring for large ones', () => {
    const [t2] = createLocalGroup(2);
    const [t8] = createLocalGroup(8);
    expect(new Collectives(t2!).algorithmFor(32 * 1024)).toBe('direct');
    expect(new Collectives(t2!).algorithmFor(32 * 1024 + 1)).toBe('ring');
    expect(new Collectives(t8!).algorithmFor(8 * 1024)).toBe('direct');
    expect(new Collectives(t8!).algorithmFor(16 * 1024)).toBe('ring');
    expect(new Collectives(t8!, { smallBytes: 0 }).algorithmFor(4)).toBe('ring');
  });

  it('makes buckets of bounded byte size and never mixes array types', () => {
    const a = [new Float32Array(10), new Float32Array(10), new Float32Array(30), new Float64Array(2), new Float32Array(1)];
    const buckets = makeBuckets(a, 80);
    expect(buckets.map((b) => b.map((x) => x.length))).toEqual([[10, 10], [30], [2], [1]]);
    expect(makeBuckets([], 80)).toEqual([]);
  });

  it('broadcasts from any root, bucketed', async () => {
    for (const n of [1, 2, 3, 5]) {
      for (let root = 0; root < n; root++) {
        const group = createLocalGroup(n, { opTimeoutMs: 5000 });
        const bufs = group.map((_, r) => [intData(r, 5), intData(r, 0), intData(r, 333)]);
        const want = bufs[root]!.map((b) => Array.from(b));
        await onAll(group, (t, r) => new Collectives(t, { bucketBytes: 64 }).broadcast(bufs[r]!, root));
        for (const b of bufs) expect(b.map((x) => Array.from(x))).toEqual(want);
      }
    }
  });

  it('rejects a broadcast root out of range', async () => {
    const [t] = createLocalGroup(2, { opTimeoutMs: 5000 });
    await expect(broadcastArray(t!, new Float32Array(2), 2)).rejects.toThrow(/root 2/);
  });

  it('gathers arrays of different lengths from every rank', async () => {
    const n = 5;
    const group = createLocalGroup(n, { opTimeoutMs: 5000 });
    const parts = await onAll(group, (t, r) => new Collectives(t).allGather(intData(r, r * 3)));
    for (const got of parts) {
      expect(got.map((p) => Array.from(p))).toEqual(group.map((_, r) => Array.from(intData(r, r * 3))));
    }
  });

  it('holds every rank in the barrier until the last one arrives', async () => {
    for (const n of [2, 3, 5]) {
      const group = createLocalGroup(n, { opTimeoutMs: 5000 });
      let arrived = 0;
      const passedEarly: number[] = [];
      await onAll(group, async (t, r) => {
        await new Promise((res) => setTimeout(res, r === n - 1 ? 50 : 0));
        arrived++;
        await barrier(t);
        if (arrived !== n) passedEarly.push(r);
      });
      expect(passedEarly).toEqual([]);
    }
  });

  it('runs concurrent calls one at a time in call order', async () => {
    const group = createLocalGroup(3, { opTimeoutMs: 5000 });
    const bufs = group.map((_, r) => [intData(r, 50), intData(r, 7000, 1)]);
    await onAll(group, async (t, r) => {
      const c = new Collectives(t, { smallBytes: 1024, chunkBytes: 4096 });
      // Fired without awaiting in between: the queue keeps the messages of the two apart.
      await Promise.all([c.allReduce([bufs[r]![0]!], 'sum'), c.allReduce([bufs[r]![1]!], 'mean'), c.barrier()]);
    });
    const want0 = Float32Array.from(naive([0, 1, 2].map((r) => intData(r, 50)), 'sum'));
    const want1 = Float32Array.from(naive([0, 1, 2].map((r) => intData(r, 7000, 1)), 'mean'));
    for (const b of bufs) {
      expect(Array.from(b[0]!)).toEqual(Array.from(want0));
      expect(Array.from(b[1]!)).toEqual(Array.from(want1));
    }
  });
});

describe('faults over LocalTransport', () => {
  it('rejects with an error naming the rank when array sizes differ across ranks', async () => {
    const group = createLocalGroup(3, { opTimeoutMs: 5000 });
    const results = await Promise.allSettled(
      group.map((t, r) => ringAllReduce(t, new Float32Array(r === 1 ? 31 : 30), 'sum', 16)),
    );
    const reasons = results.map((s) => (s.status === 'rejected' ? (s.reason as TransportError) : undefined));
    expect(reasons.every((e) => e instanceof TransportError)).toBe(true);
    // Whoever notices first names the sender of the odd-sized message and tells the others.
    for (const e of reasons) expect(e?.message).toMatch(/rank \d sent \d+ bytes where \d+ were expected/);
    expect(reasons.some((e) => e?.code === 'protocol')).toBe(true);
  });

  it('a rank that dies makes every pending and later op of the others reject naming it', async () => {
    const n = 4;
    const group = createLocalGroup(n, { opTimeoutMs: 10_000 });
    const t0 = Date.now();
    const pending = group.slice(0, 3).map((t) => ringAllReduce(t, new Float32Array(1000), 'sum', 64));
    setTimeout(() => group[3]!.abort(new Error('killed by test')), 20);
    const results = await Promise.allSettled(pending);
    expect(Date.now() - t0).toBeLessThan(2000);
    for (const s of results) {
      expect(s.status).toBe('rejected');
      const err = (s as PromiseRejectedResult).reason as TransportError;
      expect(err.peer).toBe(3);
      expect(err.message).toMatch(/rank 3/);
    }
    // Later operations fail at once, still naming rank 3.
    await expect(group[0]!.recv(1)).rejects.toMatchObject({ peer: 3 });
    await expect(group[1]!.send(2, new Uint8Array(1))).rejects.toMatchObject({ peer: 3 });
  });

  it('a stalled rank makes the others time out with an error naming it', async () => {
    const group = createLocalGroup(3, { opTimeoutMs: 300 });
    const t0 = Date.now();
    // Rank 2 never joins.
    const results = await Promise.allSettled([0, 1].map((r) => directAllReduce(group[r]!, new Float32Array(8), 'sum')));
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2000);
    for (const s of results) {
      expect(s.status).toBe('rejected');
      const err = (s as PromiseRejectedResult).reason as TransportError;
      expect(err.peer).toBe(2);
      expect(err.message).toMatch(/rank 2/);
    }
  });

  it('an orderly close leaves sent messages readable, then reports the peer closed', async () => {
    const [a, b] = createLocalGroup(2, { opTimeoutMs: 5000 });
    await a!.send(1, Uint8Array.of(1, 2, 3));
    await a!.close();
    expect(Array.from(await b!.recv(0))).toEqual([1, 2, 3]);
    await expect(b!.recv(0)).rejects.toMatchObject({ code: 'peer_closed', peer: 0 });
    await expect(a!.recv(1)).rejects.toMatchObject({ code: 'closed' });
  });
});

describe('MirroredStrategy over LocalTransport', () => {
  it('averages gradients, broadcasts weights and checks replicas are in sync', async () => {
    const n = 3;
    const group = createLocalGroup(n, { opTimeoutMs: 5000 });
    const strategies = group.map((t) => new MirroredStrategy(t, { bucketBytes: 1024 }));
    const grads = strategies.map((_, r) => [intData(r, 300), intData(r, 17, 3)]);
    const weights = strategies.map((_, r) => [randomData(r + 10, 200)]);
    await Promise.all(strategies.map((s, r) => s.allReduceMean(grads[r]!)));
    const want = Float32Array.from(naive([0, 1, 2].map((r) => intData(r, 300)), 'mean'));
    for (const g of grads) expect(Array.from(g[0]!)).toEqual(Array.from(want));
    // Diverged weights are caught on every rank ...
    const diverged = await Promise.allSettled(strategies.map((s, r) => s.checkInSync(weights[r]!)));
    for (const d of diverged) expect(d.status === 'rejected' && /rank\(s\) 1, 2 differ/.test(String(d.reason))).toBe(true);
    // ... and a broadcast from rank 0 makes them agree.
    await Promise.all(strategies.map((s, r) => s.broadcast(weights[r]!, 0)));
    await Promise.all(strategies.map((s, r) => s.checkInSync(weights[r]!)));
    expect(checksum(weights[2]!)).toBe(checksum(weights[0]!));
    await Promise.all(strategies.map((s) => s.barrier()));
    await Promise.all(strategies.map((s) => s.close()));
  });

  it('createStrategy gives OneDeviceStrategy for a world of one', async () => {
    const s = await createStrategy({ rank: 0, worldSize: 1, jobId: 'x', addresses: [], source: 'single' });
    expect(s).toBeInstanceOf(OneDeviceStrategy);
    const data = Float32Array.of(1, 2);
    await s.allReduceMean([data]);
    expect(Array.from(data)).toEqual([1, 2]);
    expect((await s.allGather(data))[0]).toBe(data);
  });
});
