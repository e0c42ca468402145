/**
 * Mirrored (synchronous data-parallel) strategy: one process per replica, gradients averaged with
 * bucketed all-reduce over a transport, and {@link createStrategy} to build it from a cluster
 * description.
 */
import type { Logger } from '../util/logger.js';
import { resolveCluster, validateClusterSpec, type ClusterSpec } from './cluster.js';
import { Collectives, type CollectiveOptions } from './collectives.js';
import { OneDeviceStrategy, type Strategy } from './strategy.js';
import { connectTcpTransport } from './tcp.js';
import type { Transport } from './transport.js';

/** Replicas whose weights differ, found by {@link MirroredStrategy.checkInSync}. */
export class ReplicaDivergenceError extends Error {
  /** Ranks whose checksum differs from rank 0's. */
  readonly ranks: number[];
  constructor(ranks: number[], checksums: string[]) {
    super(`replicas diverged: rank(s) ${ranks.join(', ')} differ from rank 0 (checksums ${checksums.join(', ')})`);
    this.name = 'ReplicaDivergenceError';
    this.ranks = ranks;
  }
}

/** A {@link Strategy} over the collectives of one transport. */
export class MirroredStrategy implements Strategy {
  readonly rank: number;
  readonly worldSize: number;
  /** The collectives this strategy runs on. */
  readonly collectives: Collectives;

  constructor(transport: Transport, opts: CollectiveOptions = {}) {
    this.collectives = new Collectives(transport, opts);
    this.rank = transport.rank;
    this.worldSize = transport.worldSize;
  }

  allReduceMean(buffers: Float32Array[]): Promise<void> {
    return this.collectives.allReduce(buffers, 'mean');
  }

  allReduceSum(buffers: Float32Array[]): Promise<void> {
    return this.collectives.allReduce(buffers, 'sum');
  }

  allReduceScalars(values: Float64Array, op: 'sum' | 'mean' = 'sum'): Promise<void> {
    return this.collectives.allReduce([values], op);
  }

  allGather(data: Float32Array): Promise<Float32Array[]> {
    return this.collectives.allGather(data);
  }

  broadcast(buffers: Float32Array[], root = 0): Promise<void> {
    return this.collectives.broadcast(buffers, root);
  }

  barrier(): Promise<void> {
    return this.collectives.barrier();
  }

  /**
   * Throw a {@link ReplicaDivergenceError} on every rank unless all ranks hold bitwise identical
   * `buffers` (compared by a 32-bit checksum); run it before writing a checkpoint.
   */
  async checkInSync(buffers: Float32Array[]): Promise<void> {
    const sum = new Uint8Array(new Uint32Array([checksum(buffers)]).buffer);
    const all = await this.collectives.allGatherBytes(sum);
    const values = all.map((b) => (b.byteLength === 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) : -1));
    const bad = values.flatMap((v, r) => (v !== values[0] ? [r] : []));
    if (bad.length > 0) throw new ReplicaDivergenceError(bad, values.map((v) => v.toString(16)));
  }

  close(): Promise<void> {
    return this.collectives.close();
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

/** Options of {@link createStrategy}. */
export interface CreateStrategyOptions extends CollectiveOptions {
  /** Bound on the rendezvous in ms; default `PROGGAN_CONNECT_TIMEOUT_MS` or 120000. */
  connectTimeoutMs?: number;
  /** Bound on one send or receive in ms; default `PROGGAN_COLLECTIVE_TIMEOUT_MS` or 120000. */
  opTimeoutMs?: number;
  /** Interface to listen on; default derived from this rank's address. */
  listenHost?: string;
  /** Host the others should use to reach this rank (rendezvous mode); default what rank 0 sees. */
  advertiseHost?: string;
  /** Where to log connection events; default none. */
  logger?: Logger;
}

/**
 * The strategy for this process: {@link OneDeviceStrategy} for a world of one, else a
 * {@link MirroredStrategy} over a TCP mesh built from `spec` (default: read from the environment
 * with {@link resolveCluster}).
 */
export async function createStrategy(spec?: ClusterSpec, opts: CreateStrategyOptions = {}): Promise<Strategy> {
  const cluster = spec ?? resolveCluster();
  validateClusterSpec(cluster);
  if (cluster.worldSize === 1) return new OneDeviceStrategy();
  const transport = await connectTcpTransport({
    rank: cluster.rank,
    worldSize: cluster.worldSize,
    jobId: cluster.jobId,
    addresses: cluster.addresses,
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.opTimeoutMs !== undefined ? { opTimeoutMs: opts.opTimeoutMs } : {}),
    ...(opts.listenHost !== undefined ? { listenHost: opts.listenHost } : {}),
    ...(opts.advertiseHost !== undefined ? { advertiseHost: opts.advertiseHost } : {}),
    ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
  });
  return new MirroredStrategy(transport, opts);
}
