/**
 * The seam between one process and N: everything that differs between them goes through a
 * {@link Strategy} and the helpers below (gradient reduction, broadcast, replica-local state, the
 * in-sync checksum, the stop vote, reduced tick statistics); each is the identity for one device.
 * Nothing here knows tfjs: values cross it as Float32Arrays in a fixed order that is the same on
 * every replica (training/replicas.ts turns tensors into them).
 */

/** How one replica takes part in synchronous data-parallel training. */
export interface Strategy {
  /** This replica's index, 0-based; rank 0 writes files. */
  readonly rank: number;
  /** Number of replicas taking part. */
  readonly worldSize: number;
  /** Average each buffer element-wise across replicas, in place. Same order and sizes on every rank. */
  allReduceMean(buffers: Float32Array[]): Promise<void>;
  /** Sum each buffer element-wise across replicas, in place. Same order and sizes on every rank. */
  allReduceSum(buffers: Float32Array[]): Promise<void>;
  /** Combine a few float64 values (loss sums, counts) across replicas, in place; default `sum`. */
  allReduceScalars(values: Float64Array, op?: 'sum' | 'mean'): Promise<void>;
  /** Every replica's `data`, indexed by rank; lengths may differ. */
  allGather(data: Float32Array): Promise<Float32Array[]>;
  /** Overwrite every rank's buffers with rank `root`'s, in place. */
  broadcast(buffers: Float32Array[], root?: number): Promise<void>;
  /** Wait until every replica reaches this point. */
  barrier(): Promise<void>;
  /** Release connections. */
  close(): Promise<void>;
}

/** The single-process strategy: every collective is the identity. */
export class OneDeviceStrategy implements Strategy {
  readonly rank = 0;
  readonly worldSize = 1;
  async allReduceMean(_buffers: Float32Array[]): Promise<void> {}
  async allReduceSum(_buffers: Float32Array[]): Promise<void> {}
  async allReduceScalars(_values: Float64Array, _op: 'sum' | 'mean' = 'sum'): Promise<void> {}
  async allGather(data: Float32Array): Promise<Float32Array[]> {
    return [data];
  }
  async broadcast(_buffers: Float32Array[], _root = 0): Promise<void> {}
  async barrier(): Promise<void> {}
  async close(): Promise<void> {}
}

/**
 * Rank `root`'s JSON value on every rank (the others pass anything, e.g. null): small control data
 * such as a checkpoint's metadata, so that only one rank needs to read files. Sent one byte per
 * float, exact, through `allGather` (whose lengths may differ).
 */
export async function shareFromRoot<T>(strategy: Strategy, value: T, root = 0): Promise<T> {
  if (strategy.worldSize === 1) return value;
  const mine = strategy.rank === root ? Float32Array.from(Buffer.from(JSON.stringify(value) ?? 'null', 'utf8')) : new Float32Array(0);
  const all = await strategy.allGather(mine);
  const bytes = all[root] ?? new Float32Array(0);
  return JSON.parse(Buffer.from(Uint8Array.from(bytes)).toString('utf8')) as T;
}

/** Replicas whose state differs, found by {@link checkInSync}. */
export class ReplicaDivergenceError extends Error {
  /** Ranks whose checksum differs from rank 0's. */
  readonly ranks: number[];
  constructor(ranks: number[], checksums: string[]) {
    super(`replicas diverged: rank(s) ${ranks.join(', ')} differ from rank 0 (checksums ${checksums.join(', ')})`);
    this.name = 'ReplicaDivergenceError';
    this.ranks = ranks;
  }
}

/** 32-bit FNV-1a over the 32-bit words of every buffer, in order. */
export function checksum(buffers: Float32Array[]): number {
  let h = 0x811c9dc5;
  for (const b of buffers) {
    const words = new Uint32Array(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i]!, 0x01000193) >>> 0;
    h = Math.imul(h ^ b.length, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * Throw a {@link ReplicaDivergenceError} on every rank unless all ranks hold bitwise identical
 * `buffers` (compared by a 32-bit checksum); run before writing a checkpoint. No-op for one replica.
 */
export async function checkInSync(strategy: Strategy, buffers: Float32Array[]): Promise<void> {
  if (strategy.worldSize === 1) return;
  const mine = new Float32Array(new Uint32Array([checksum(buffers)]).buffer);
  const all = await strategy.allGather(mine);
  const words = all.map((a) => (a.length === 1 ? (new Uint32Array(a.buffer, a.byteOffset, 1)[0] as number) : -1));
  const bad = words.flatMap((w, r) => (w !== words[0] ? [r] : []));
  if (bad.length > 0) throw new ReplicaDivergenceError(bad, words.map((w) => w.toString(16)));
}

/**
 * The stop vote: true on every rank when any rank asks to stop (a signal reaches the ranks at
 * different moments, and a rank that stopped alone would leave its peers waiting in an all-reduce).
 */
export async function agreeToStop(strategy: Strategy, stopHere: boolean): Promise<boolean> {
  if (strategy.worldSize === 1) return stopHere;
  const flag = Float64Array.of(stopHere ? 1 : 0);
  await strategy.allReduceScalars(flag, 'sum');
  return (flag[0] as number) > 0;
}

/**
 * Sum per-name sums and counts over the replicas, in place (a tick's statistics); every rank must
 * pass the same names in the same order. Min/max stay local.
 */
export async function reduceSumsAndCounts(strategy: Strategy, sums: Float64Array, counts: Float64Array): Promise<void> {
  if (strategy.worldSize === 1) return;
  const n = sums.length;
  const packed = new Float64Array(2 * n);
  packed.set(sums, 0);
  packed.set(counts, n);
  await strategy.allReduceScalars(packed, 'sum');
  sums.set(packed.subarray(0, n));
  counts.set(packed.subarray(n));
}
