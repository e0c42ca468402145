/**
 * The seam between computing and applying gradients. Nothing here knows tfjs: gradients cross it as
 * Float32Arrays in a fixed variable order that is the same on every replica.
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
