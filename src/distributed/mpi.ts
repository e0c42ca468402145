/**
 * The MPI transport: collectives run by the MPI library itself (Open MPI's MPI_Allreduce, MPI_Bcast,
 * MPI_Allgatherv, MPI_Barrier on MPI_COMM_WORLD) through the optional native addon
 * build/Release/proggan_mpi.node (`node scripts/build-mpi.mjs`, needs libopenmpi-dev). For clusters
 * where MPI is the network layer (InfiniBand, Omni-Path through MPI's own transports).
 *
 * Unlike the TCP and shared-memory transports this is not a point-to-point {@link Transport}: MPI
 * already has tuned collectives, so {@link MpiStrategy} implements the {@link Strategy} directly,
 * with no rendezvous of ours (mpirun or srun --mpi did it). Chosen by `PROGGAN_TRANSPORT=mpi`, or
 * automatically when the process was started by Open MPI's mpirun (OMPI_COMM_WORLD_SIZE set) and
 * the addon is built.
 *
 * Failure model: MPI's. A rank that dies makes mpirun stop the whole job; a collective that does
 * not finish within the op timeout (`PROGGAN_COLLECTIVE_TIMEOUT_MS`) is reported on stderr and the
 * job is torn down with MPI_Abort, since a blocked MPI call cannot be cancelled.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/addon.js';
import { makeBuckets, type FloatArray, type ReduceOp } from './collectives.js';
import { checksum, ReplicaDivergenceError } from './mirrored.js';
import type { Strategy } from './strategy.js';
import { OP_TIMEOUT_ENV, TransportError, opTimeoutFromEnv } from './transport.js';

/** What `init()` of the MPI addon reports. */
export interface MpiInfo {
  /** Rank in MPI_COMM_WORLD. */
  rank: number;
  /** Size of MPI_COMM_WORLD. */
  size: number;
  /** The thread level granted (MPI_THREAD_SINGLE=0 ... MULTIPLE=3). */
  threadLevel: number;
  /** Whether collectives can run off the main thread (level >= MPI_THREAD_SERIALIZED). */
  serialized: boolean;
  /** MPI_Get_library_version. */
  library: string;
}

/** The functions of build/Release/proggan_mpi.node. */
export interface MpiAddon {
  init(): MpiInfo;
  allreduceSum(data: Float32Array | Float64Array): Promise<void>;
  bcast(data: ArrayBufferView, root: number): Promise<void>;
  allgatherBytes(data: Uint8Array): Promise<Uint8Array[]>;
  barrier(): Promise<void>;
  abort(code: number): void;
  finalize(): void;
}

const FUNCTIONS = ['init', 'allreduceSum', 'bcast', 'allgatherBytes', 'barrier', 'abort', 'finalize'] as const;

/** Environment variable naming another MPI addon file (default build/Release/proggan_mpi.node). */
export const MPI_ADDON_ENV = 'PROGGAN_MPI_ADDON';

const cache = new Map<string, { addon: MpiAddon } | { error: string }>();

/** Load the MPI addon (once), or say why it cannot be used. Does not initialise MPI. */
export function loadMpiAddon(): { addon: MpiAddon } | { error: string } {
  const override = process.env[MPI_ADDON_ENV];
  const root = packageRoot();
  const path = override !== undefined && override !== '' ? override : root === undefined ? undefined : join(root, 'build', 'Release', 'proggan_mpi.node');
  const hit = cache.get(path ?? '');
  if (hit) return hit;
  let cached: { addon: MpiAddon } | { error: string };
  if (path === undefined || !existsSync(path)) {
    cached = { error: `the MPI addon is not built (${path ?? 'package root not found'} does not exist; run \`node scripts/build-mpi.mjs\` with libopenmpi-dev installed)` };
    cache.set(path ?? '', cached);
    return cached;
  }
  try {
    const mod: unknown = createRequire(import.meta.url)(path);
    const rec = mod as Record<string, unknown>;
    if (typeof mod !== 'object' || mod === null || FUNCTIONS.some((f) => typeof rec[f] !== 'function')) {
      cached = { error: `${path} is not proggan's MPI addon (rebuild it with \`node scripts/build-mpi.mjs\`)` };
    } else {
      cached = { addon: mod as MpiAddon };
    }
  } catch (err) {
    cached = { error: `loading ${path} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
  cache.set(path, cached);
  return cached;
}

/** Rank and size announced by an MPI launcher in the environment, if any. */
export interface MpiLaunch {
  /** Rank from the launcher's variables. */
  rank: number;
  /** World size from the launcher's variables. */
  size: number;
  /** Which variables said so. */
  via: 'OMPI_COMM_WORLD' | 'PMI' | 'PMIX';
}

/**
 * The rank and size an MPI launcher put in `env`: Open MPI's mpirun (OMPI_COMM_WORLD_RANK/SIZE),
 * a PMI launcher such as MPICH's Hydra or `srun --mpi=pmi2` (PMI_RANK/SIZE), or PMIx
 * (PMIX_RANK with OMPI_COMM_WORLD_SIZE or PMI_SIZE). Undefined when none is set.
 */
export function mpiLaunchFromEnv(env: NodeJS.ProcessEnv = process.env): MpiLaunch | undefined {
  const int = (v: string | undefined): number | undefined => (v !== undefined && /^\d+$/.test(v.trim()) ? Number(v.trim()) : undefined);
  const oRank = int(env['OMPI_COMM_WORLD_RANK']);
  const oSize = int(env['OMPI_COMM_WORLD_SIZE']);
  if (oRank !== undefined && oSize !== undefined) return { rank: oRank, size: oSize, via: 'OMPI_COMM_WORLD' };
  const pRank = int(env['PMI_RANK']);
  const pSize = int(env['PMI_SIZE']);
  if (pRank !== undefined && pSize !== undefined) return { rank: pRank, size: pSize, via: 'PMI' };
  const xRank = int(env['PMIX_RANK']);
  if (xRank !== undefined && pSize !== undefined) return { rank: xRank, size: pSize, via: 'PMIX' };
  return undefined;
}

/** Whether `env` says Open MPI's mpirun started this process (the case where `auto` picks MPI). */
export function launchedByOpenMpi(env: NodeJS.ProcessEnv = process.env): boolean {
  return mpiLaunchFromEnv(env)?.via === 'OMPI_COMM_WORLD';
}

/** Options of {@link MpiStrategy}. */
export interface MpiStrategyOptions {
  /** Bound on one collective in ms, after which the job is aborted; default `PROGGAN_COLLECTIVE_TIMEOUT_MS` or 120000. */
  opTimeoutMs?: number;
  /** Fuse consecutive arrays into buckets of at most this many bytes; default 25 MiB. */
  bucketBytes?: number;
  /** What to do when a collective times out; default: print the error and MPI_Abort the job. */
  onTimeout?: (err: TransportError) => void;
}

/**
 * A {@link Strategy} whose collectives are MPI's, one at a time in call order. Every rank must make
 * the same calls with arrays of the same sizes in the same order (as with MPI itself).
 */
export class MpiStrategy implements Strategy {
  readonly rank: number;
  readonly worldSize: number;
  /** The MPI library in use (MPI_Get_library_version). */
  readonly library: string;
  private readonly opTimeoutMs: number;
  private readonly bucketBytes: number;
  private readonly onTimeout: (err: TransportError) => void;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** @param addon the loaded addon; `init()` is called here. */
  constructor(
    private readonly addon: MpiAddon,
    opts: MpiStrategyOptions = {},
  ) {
    const info = addon.init();
    this.rank = info.rank;
    this.worldSize = info.size;
    this.library = info.library;
    this.opTimeoutMs = opts.opTimeoutMs ?? opTimeoutFromEnv();
    this.bucketBytes = opts.bucketBytes ?? 25 * 1024 * 1024;
    if (!(this.bucketBytes > 0)) throw new RangeError(`bucketBytes must be > 0, got ${this.bucketBytes}`);
    this.onTimeout =
      opts.onTimeout ??
      ((err) => {
        process.stderr.write(`proggan: ${err.message}; aborting the MPI job\n`);
        this.addon.abort(1);
      });
  }

  allReduceMean(buffers: Float32Array[]): Promise<void> {
    return this.allReduce(buffers, 'mean');
  }

  allReduceSum(buffers: Float32Array[]): Promise<void> {
    return this.allReduce(buffers, 'sum');
  }

  allReduceScalars(values: Float64Array, op: 'sum' | 'mean' = 'sum'): Promise<void> {
    return this.allReduce([values], op);
  }

  /** Reduce every array element-wise across ranks, in place, bucket by bucket (MPI_Allreduce). */
  allReduce(buffers: FloatArray[], op: ReduceOp = 'sum'): Promise<void> {
    return this.serial('MPI_Allreduce', async () => {
      if (this.worldSize === 1) return;
      for (const bucket of makeBuckets(buffers, this.bucketBytes)) {
        const first = bucket[0];
        if (!first) continue;
        const flat = bucket.length === 1 ? first : pack(bucket);
        await this.addon.allreduceSum(flat);
        if (op === 'mean') for (let i = 0; i < flat.length; i++) flat[i] = flat[i]! / this.worldSize;
        if (flat !== first) unpack(flat, bucket);
      }
    });
  }

  allGather(data: Float32Array): Promise<Float32Array[]> {
    return this.serial('MPI_Allgatherv', async () => {
      const parts = await this.addon.allgatherBytes(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return parts.map((p, q) => {
        if (q === this.rank) return data;
        if (p.byteLength % 4 !== 0) throw new TransportError('protocol', `rank ${this.rank}: rank ${q} sent ${p.byteLength} bytes, not float32s`, q);
        return new Float32Array(p.buffer, p.byteOffset, p.byteLength / 4);
      });
    });
  }

  /** Every rank's bytes, indexed by rank (lengths may differ). */
  allGatherBytes(data: Uint8Array): Promise<Uint8Array[]> {
    return this.serial('MPI_Allgatherv', () => this.addon.allgatherBytes(data));
  }

  broadcast(buffers: Float32Array[], root = 0): Promise<void> {
    return this.serial('MPI_Bcast', async () => {
      if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) {
        throw new RangeError(`broadcast root ${root} is out of range for world size ${this.worldSize}`);
      }
      if (this.worldSize === 1) return;
      for (const bucket of makeBuckets(buffers, this.bucketBytes)) {
        const first = bucket[0];
        if (!first) continue;
        const flat = bucket.length === 1 ? first : pack(bucket);
        await this.addon.bcast(flat, root);
        if (flat !== first) unpack(flat, bucket);
      }
    });
  }

  barrier(): Promise<void> {
    return this.serial('MPI_Barrier', () => this.addon.barrier());
  }

  /** Throw a ReplicaDivergenceError on every rank unless all ranks hold bitwise identical `buffers`. */
  async checkInSync(buffers: Float32Array[]): Promise<void> {
    const sum = new Uint8Array(new Uint32Array([checksum(buffers)]).buffer);
    const all = await this.allGatherBytes(sum);
    const values = all.map((b) => (b.byteLength === 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) : -1));
    const bad = values.flatMap((v, r) => (v !== values[0] ? [r] : []));
    if (bad.length > 0) throw new ReplicaDivergenceError(bad, values.map((v) => v.toString(16)));
  }

  /** MPI_Finalize after the queued collectives (collective: every rank must close). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.addon.finalize();
  }

  private serial<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new TransportError('closed', `rank ${this.rank}: the MPI transport is closed`, this.rank));
    const p = this.queue.then(() => this.bounded(what, fn()));
    this.queue = p.catch(() => {});
    return p;
  }

  /** `op`, or a timeout error (then the job is aborted: a blocked MPI call cannot be cancelled). */
  private bounded<T>(what: string, op: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new TransportError(
          'timeout',
          `rank ${this.rank}: ${what} did not complete within ${this.opTimeoutMs} ms (a rank stalled or died; raise ${OP_TIMEOUT_ENV} if it is just slow)`,
        );
        reject(err);
        this.onTimeout(err);
      }, this.opTimeoutMs);
    });
    const wrapped = op.catch((err: unknown) => {
      throw err instanceof TransportError ? err : new TransportError('peer_lost', `rank ${this.rank}: ${what} failed: ${err instanceof Error ? err.message : String(err)}`, undefined, { cause: err });
    });
    return Promise.race([wrapped, timeout]).finally(() => clearTimeout(timer));
  }
}

/**
 * The MPI strategy of this process: loads the addon and initialises MPI. Throws a
 * {@link TransportError} (`handshake`) saying why when the addon is missing or MPI_Init fails.
 */
export function createMpiStrategy(opts: MpiStrategyOptions = {}): MpiStrategy {
  const loaded = loadMpiAddon();
  if ('error' in loaded) throw new TransportError('handshake', `PROGGAN_TRANSPORT=mpi: ${loaded.error}`);
  try {
    return new MpiStrategy(loaded.addon, opts);
  } catch (err) {
    throw new TransportError('handshake', `MPI initialisation failed: ${err instanceof Error ? err.message : String(err)}`, undefined, { cause: err });
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
