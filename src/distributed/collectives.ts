/**
 * Collective operations on typed arrays over any {@link Transport}: all-reduce (ring and direct),
 * broadcast, all-gather and barrier, plus {@link Collectives}, which fuses many small arrays into
 * buckets and runs one collective at a time.
 *
 * Every rank must call the same collectives in the same order with arrays of the same sizes; a
 * size mismatch is detected from message lengths and fails the group with an error naming the
 * rank. Results are bitwise identical on every rank: each element is reduced once, in one fixed
 * order, and the result is copied to all.
 */
import { TransportError, type Transport } from './transport.js';

/** How elements are combined across ranks. */
export type ReduceOp = 'sum' | 'mean';

/** Float arrays the collectives reduce. */
export type FloatArray = Float32Array | Float64Array;

/** Default bucket size: PyTorch DDP's 25 MiB. */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;
/** Default piece size the ring pipelines its segments in. */
export const DEFAULT_RING_CHUNK_BYTES = 1024 * 1024;
/**
 * Default size up to which the one-round direct exchange is used instead of the ring, as a
 * function of the world size: 64 KiB / n. On loopback TCP (2 shared cores) the direct exchange
 * won up to 16-64 KiB with 2-4 processes and 4-16 KiB with 8 (see test/bench/ALLREDUCE.md): it
 * sends (n-1)x the buffer against the ring's 2(n-1)/n, but in one round instead of 2(n-1).
 */
export function defaultSmallBytes(worldSize: number): number {
  return Math.floor((64 * 1024) / Math.max(1, worldSize));
}

/** Options of {@link Collectives}. */
export interface CollectiveOptions {
  /** Fuse consecutive arrays into buckets of at most this many bytes; default 25 MiB. */
  bucketBytes?: number;
  /** Piece size the ring all-reduce pipelines in; default 1 MiB. */
  chunkBytes?: number;
  /** Buckets of at most this many bytes use the direct exchange instead of the ring; default 64 KiB / world size. */
  smallBytes?: number;
}

/** Which all-reduce algorithm to run. */
export type AllReduceAlgorithm = 'ring' | 'direct';

const mod = (i: number, n: number): number => ((i % n) + n) % n;

/** Mark a promise handled now (it is awaited later), so an early rejection is not reported as unhandled. */
function later<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/** The bytes of elements [start, end) of `a`, without copying. */
function bytesOf(a: FloatArray, start = 0, end = a.length): Uint8Array {
  const bpe = a.BYTES_PER_ELEMENT;
  return new Uint8Array(a.buffer, a.byteOffset + start * bpe, (end - start) * bpe);
}

/** Read `msg` as `count` elements of `like`'s type; throws a protocol error on a size mismatch. */
function viewAs<T extends FloatArray>(t: Transport, msg: Uint8Array, like: T, count: number, peer: number, what: string): T {
  const bpe = like.BYTES_PER_ELEMENT;
  if (msg.byteLength !== count * bpe) {
    const err = new TransportError(
      'protocol',
      `rank ${t.rank}: in ${what}, rank ${peer} sent ${msg.byteLength} bytes where ${count * bpe} were expected ` +
        `(arrays differ in size or order across ranks)`,
      peer,
    );
    t.abort(err);
    throw err;
  }
  const ctor = like.constructor as { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; new (length: number): T };
  if (msg.byteOffset % bpe === 0) return new ctor(msg.buffer, msg.byteOffset, count);
  const copy = new Uint8Array(msg.byteLength);
  copy.set(msg);
  return new ctor(copy.buffer, 0, count);
}

/** Split `[start, end)` into pieces of at most `size` elements (none when empty). */
function pieces(start: number, end: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = start; s < end; s += size) out.push([s, Math.min(s + size, end)]);
  return out;
}

/**
 * Ring all-reduce in place: reduce-scatter then all-gather around the ring, each segment cut into
 * pieces of `chunkBytes` so that sending, receiving and adding overlap. Each rank sends and
 * receives 2(n-1)/n of the buffer. Lengths need not divide by n; empty segments send nothing.
 */
export async function ringAllReduce(
  t: Transport,
  buf: FloatArray,
  op: ReduceOp = 'sum',
  chunkBytes = DEFAULT_RING_CHUNK_BYTES,
): Promise<void> {
  const n = t.worldSize;
  const r = t.rank;
  if (n === 1) return;
  const len = buf.length;
  const base = Math.floor(len / n);
  const rem = len % n;
  const segStart = (i: number): number => i * base + Math.min(i, rem);
  const segPieces = (i: number): Array<[number, number]> =>
    pieces(segStart(i), segStart(i + 1), Math.max(1, Math.floor(chunkBytes / buf.BYTES_PER_ELEMENT)));
  const right = mod(r + 1, n);
  const left = mod(r - 1, n);
  const sends: Promise<void>[] = [];
  // Sends of the reduce-scatter, per segment and piece: the all-gather overwrites those regions
  // and must wait until the transport no longer reads them.
  const rsSent: Array<Array<Promise<void>>> = Array.from({ length: n }, () => []);
  const send = (a: number, b: number): Promise<void> => {
    const p = later(t.send(right, bytesOf(buf, a, b)));
    sends.push(p);
    return p;
  };

  // Reduce-scatter: after step s, segment r-s-1 holds the sum of s+2 ranks; after n-1 steps
  // segment r+1 is complete here.
  segPieces(r).forEach(([a, b], k) => (rsSent[r]![k] = send(a, b)));
  for (let s = 0; s < n - 1; s++) {
    const seg = mod(r - s - 1, n);
    const ps = segPieces(seg);
    for (let k = 0; k < ps.length; k++) {
      const [a, b] = ps[k]!;
      const incoming = viewAs(t, await t.recv(left), buf, b - a, left, 'all-reduce (reduce-scatter)');
      for (let i = 0; i < incoming.length; i++) buf[a + i] = buf[a + i]! + incoming[i]!;
      if (s < n - 2) {
        rsSent[seg]![k] = send(a, b);
      } else {
        if (op === 'mean') for (let i = a; i < b; i++) buf[i] = buf[i]! / n;
        // First step of the all-gather, started as soon as each piece is final.
        send(a, b);
      }
    }
  }

  // All-gather: receive the final segment r-s and pass it on.
  for (let s = 0; s < n - 1; s++) {
    const seg = mod(r - s, n);
    const ps = segPieces(seg);
    for (let k = 0; k < ps.length; k++) {
      const [a, b] = ps[k]!;
      const incoming = viewAs(t, await t.recv(left), buf, b - a, left, 'all-reduce (all-gather)');
      await rsSent[seg]![k];
      buf.set(incoming, a);
      if (s < n - 2) send(a, b);
    }
  }
  await Promise.all(sends);
}

/**
 * Direct all-reduce in place: every rank sends its whole buffer to every other and adds all
 * contributions in rank order. One round of latency and (n-1)x the bytes: the better choice for
 * small buffers.
 */
export async function directAllReduce(t: Transport, buf: FloatArray, op: ReduceOp = 'sum'): Promise<void> {
  const n = t.worldSize;
  const r = t.rank;
  if (n === 1) return;
  const mine = bytesOf(buf);
  const sends: Promise<void>[] = [];
  const recvs: Array<Promise<Uint8Array> | undefined> = [];
  for (let q = 0; q < n; q++) {
    if (q === r) {
      recvs.push(undefined);
      continue;
    }
    sends.push(later(t.send(q, mine)));
    recvs.push(later(t.recv(q)));
  }
  const acc = buf instanceof Float32Array ? new Float32Array(buf.length) : new Float64Array(buf.length);
  for (let q = 0; q < n; q++) {
    const pending = recvs[q];
    const part = pending === undefined ? buf : viewAs(t, await pending, buf, buf.length, q, 'all-reduce (direct)');
    for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + part[i]!;
  }
  await Promise.all(sends);
  if (op === 'mean') for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! / n;
  buf.set(acc);
}

/**
 * Overwrite `buf` on every rank with `root`'s: the root sends it to each rank directly.
 */
export async function broadcastArray(t: Transport, buf: FloatArray, root = 0): Promise<void> {
  const n = t.worldSize;
  if (n === 1) return;
  checkRoot(t, root);
  if (t.rank === root) {
    const bytes = bytesOf(buf);
    const sends: Promise<void>[] = [];
    for (let q = 0; q < n; q++) if (q !== root) sends.push(later(t.send(q, bytes)));
    await Promise.all(sends);
  } else {
    buf.set(viewAs(t, await t.recv(root), buf, buf.length, root, 'broadcast'));
  }
}

/** Every rank's `data`, indexed by rank (sizes may differ). Entry `rank` is `data` itself. */
export async function allGatherBytes(t: Transport, data: Uint8Array): Promise<Uint8Array[]> {
  const n = t.worldSize;
  const sends: Promise<void>[] = [];
  const recvs: Array<Promise<Uint8Array>> = [];
  for (let q = 0; q < n; q++) {
    if (q === t.rank) {
      recvs.push(Promise.resolve(data));
      continue;
    }
    sends.push(later(t.send(q, data)));
    recvs.push(later(t.recv(q)));
  }
  const out: Uint8Array[] = [];
  for (const p of recvs) out.push(await p);
  await Promise.all(sends);
  return out;
}

/** Wait until every rank has called `barrier` (dissemination barrier: ceil(log2 n) rounds). */
export async function barrier(t: Transport): Promise<void> {
  const n = t.worldSize;
  const empty = new Uint8Array(0);
  for (let k = 1; k < n; k *= 2) {
    const sent = later(t.send(mod(t.rank + k, n), empty));
    const from = mod(t.rank - k, n);
    const msg = await t.recv(from);
    if (msg.byteLength !== 0) {
      const err = new TransportError('protocol', `rank ${t.rank}: rank ${from} sent data where a barrier was expected`, from);
      t.abort(err);
      throw err;
    }
    await sent;
  }
}

function checkRoot(t: Transport, root: number): void {
  if (!Number.isInteger(root) || root < 0 || root >= t.worldSize) {
    throw new RangeError(`broadcast root ${root} is out of range for world size ${t.worldSize}`);
  }
}

/** A group of arrays reduced as one. */
interface Bucket {
  items: FloatArray[];
  elements: number;
}

/** Group consecutive arrays of one type into buckets of at most `bucketBytes` (a larger array is a bucket alone). */
export function makeBuckets(buffers: FloatArray[], bucketBytes: number): FloatArray[][] {
  const out: Bucket[] = [];
  let cur: Bucket | undefined;
  for (const b of buffers) {
    const sameType = cur !== undefined && cur.items[0]?.constructor === b.constructor;
    const bpe = b.BYTES_PER_ELEMENT;
    if (!cur || !sameType || (cur.elements + b.length) * bpe > bucketBytes) {
      cur = { items: [], elements: 0 };
      out.push(cur);
    }
    cur.items.push(b);
    cur.elements += b.length;
  }
  return out.map((bk) => bk.items);
}

/**
 * Collectives over one transport, one at a time in call order, with many small arrays fused into
 * buckets. Every rank must make the same calls with arrays of the same sizes in the same order.
 */
export class Collectives {
  /** Bucket size in bytes. */
  readonly bucketBytes: number;
  /** Ring piece size in bytes. */
  readonly chunkBytes: number;
  /** Direct-exchange threshold in bytes. */
  readonly smallBytes: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly transport: Transport,
    opts: CollectiveOptions = {},
  ) {
    this.bucketBytes = opts.bucketBytes ?? DEFAULT_BUCKET_BYTES;
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_RING_CHUNK_BYTES;
    this.smallBytes = opts.smallBytes ?? defaultSmallBytes(transport.worldSize);
    if (!(this.bucketBytes > 0)) throw new RangeError(`bucketBytes must be > 0, got ${this.bucketBytes}`);
    if (!(this.chunkBytes >= 8)) throw new RangeError(`chunkBytes must be >= 8, got ${this.chunkBytes}`);
  }

  /** This rank. */
  get rank(): number {
    return this.transport.rank;
  }

  /** Number of ranks. */
  get worldSize(): number {
    return this.transport.worldSize;
  }

  /** The algorithm used for a bucket of `bytes` bytes. */
  algorithmFor(bytes: number): AllReduceAlgorithm {
    return bytes <= this.smallBytes ? 'direct' : 'ring';
  }

  /** Reduce every array element-wise across ranks, in place, bucket by bucket. */
  allReduce(buffers: FloatArray[], op: ReduceOp = 'sum'): Promise<void> {
    return this.serial(async () => {
      if (this.worldSize === 1) return;
      for (const bucket of makeBuckets(buffers, this.bucketBytes)) {
        const first = bucket[0];
        if (!first) continue;
        const flat = bucket.length === 1 ? first : pack(bucket);
        if (flat.byteLength <= this.smallBytes) await directAllReduce(this.transport, flat, op);
        else await ringAllReduce(this.transport, flat, op, this.chunkBytes);
        if (flat !== first) unpack(flat, bucket);
      }
    });
  }

  /** Overwrite every rank's arrays with `root`'s, in place, bucket by bucket. */
  broadcast(buffers: FloatArray[], root = 0): Promise<void> {
    return this.serial(async () => {
      if (this.worldSize === 1) return;
      checkRoot(this.transport, root);
      for (const bucket of makeBuckets(buffers, this.bucketBytes)) {
        const first = bucket[0];
        if (!first) continue;
        const flat = bucket.length === 1 ? first : pack(bucket);
        await broadcastArray(this.transport, flat, root);
        if (flat !== first) unpack(flat, bucket);
      }
    });
  }

  /** Every rank's `data`, indexed by rank (lengths may differ). */
  allGather(data: Float32Array): Promise<Float32Array[]> {
    return this.serial(async () => {
      const parts = await allGatherBytes(this.transport, bytesOf(data));
      return parts.map((p, q) => (q === this.rank ? data : viewAs(this.transport, p, data, Math.floor(p.byteLength / 4), q, 'all-gather')));
    });
  }

  /** Every rank's bytes, indexed by rank. */
  allGatherBytes(data: Uint8Array): Promise<Uint8Array[]> {
    return this.serial(() => allGatherBytes(this.transport, data));
  }

  /** Wait until every rank reaches this call. */
  barrier(): Promise<void> {
    return this.serial(() => barrier(this.transport));
  }

  /** Close the transport after the queued collectives. */
  async close(): Promise<void> {
    await this.queue;
    await this.transport.close();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => {});
    return p;
  }
}

function pack(bucket: FloatArray[]): FloatArray {
  let total = 0;
  for (const b of bucket) total += b.length;
  const flat = bucket[0] instanceof Float64Array ? new Float64Array(total) : new Float32Array(total);
  let off = 0;
  for (const b of bucket) {
    flat.set(b, off);
    off += b.length;
  }
  return flat;
}

function unpack(flat: FloatArray, bucket: FloatArray[]): void {
  let off = 0;
  for (const b of bucket) {
    b.set(flat.subarray(off, off + b.length));
    off += b.length;
  }
}
