/**
 * Mirrored (synchronous data-parallel) strategy: one process per replica, gradients averaged with
 * bucketed all-reduce over a transport, and {@link createStrategy} to build it from a cluster
 * description.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Logger } from '../util/logger.js';
import { resolveCluster, validateClusterSpec, type ClusterSpec } from './cluster.js';
import { Collectives, allGatherBytes, type CollectiveOptions } from './collectives.js';
import { checkInSync, OneDeviceStrategy, type Strategy } from './strategy.js';
import { connectTcpTransport, type TcpTransport } from './tcp.js';
import { TransportError, type Transport } from './transport.js';

export { checksum, ReplicaDivergenceError } from './strategy.js';

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
   * `buffers`; the one implementation is {@link checkInSync} of strategy.ts.
   */
  checkInSync(buffers: Float32Array[]): Promise<void> {
    return checkInSync(this, buffers);
  }

  close(): Promise<void> {
    return this.collectives.close();
  }
}

/** Environment variable that picks the transport: `auto` (default), `tcp`, `shm` or `mpi`. */
export const TRANSPORT_ENV = 'PROGGAN_TRANSPORT';

/**
 * Which transport carries the collectives: `tcp` always; `shm` shared memory, failing when the
 * ranks are not all on one host or the native addon lacks it; `mpi` the MPI library's collectives
 * (see `mpi.ts`; ranks and size come from MPI, not from the cluster variables); `auto` MPI when
 * Open MPI's mpirun started the process and the MPI addon is built, else shared memory when
 * possible, else TCP.
 */
export type TransportKind = 'auto' | 'tcp' | 'shm' | 'mpi';

/** The transport kind from `PROGGAN_TRANSPORT` (default `auto`); throws naming the variable. */
export function transportKindFromEnv(env: NodeJS.ProcessEnv = process.env): TransportKind {
  const raw = (env[TRANSPORT_ENV] ?? '').trim().toLowerCase();
  if (raw === '') return 'auto';
  if (raw === 'auto' || raw === 'tcp' || raw === 'shm' || raw === 'mpi') return raw;
  throw new Error(`${TRANSPORT_ENV} must be auto, tcp, shm or mpi, got '${env[TRANSPORT_ENV]}'`);
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
  /** Transport for the collectives; default `PROGGAN_TRANSPORT` or `auto`. Rank 0's choice wins. */
  transport?: TransportKind;
  /** Ring size of the shared-memory transport in bytes; default `PROGGAN_SHM_RING_BYTES` or by world size. */
  shmRingBytes?: number;
  /** Keep the TCP mesh open beside shared memory to detect lost peers at once; default true. */
  shmKeepTcp?: boolean;
  /** Where to log connection events and the transport chosen; default none. */
  logger?: Logger;
}

/**
 * The strategy for this process: {@link OneDeviceStrategy} for a world of one, else a
 * {@link MirroredStrategy} over a TCP mesh built from `spec` (default: read from the environment
 * with {@link resolveCluster}), or over shared memory when every rank runs on this host (see
 * {@link TransportKind}); the TCP rendezvous comes first either way.
 */
export async function createStrategy(spec?: ClusterSpec, opts: CreateStrategyOptions = {}): Promise<Strategy> {
  const kind = opts.transport ?? transportKindFromEnv();
  const mpi = await mpiStrategyIfChosen(kind, spec, opts);
  if (mpi) return mpi;
  const cluster = spec ?? resolveCluster();
  validateClusterSpec(cluster);
  if (cluster.worldSize === 1) return new OneDeviceStrategy();
  const tcp = await connectTcpTransport({
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
  let transport: Transport;
  try {
    transport = await chooseTransport(tcp, cluster.jobId, kind, opts);
  } catch (err) {
    tcp.abort(err as Error);
    throw err;
  }
  return new MirroredStrategy(transport, opts);
}

/**
 * The MPI strategy when `kind` is `mpi` (required: errors say why it cannot be used), or `auto` in
 * a process started by Open MPI's mpirun with the MPI addon built; else undefined (TCP/shm follow).
 * The MPI module is loaded only here, so nothing MPI is touched otherwise.
 */
async function mpiStrategyIfChosen(kind: TransportKind, spec: ClusterSpec | undefined, opts: CreateStrategyOptions): Promise<Strategy | undefined> {
  // `auto` looks at MPI only under Open MPI's mpirun; otherwise mpi.ts is not even loaded.
  if (kind !== 'mpi' && !(kind === 'auto' && process.env['OMPI_COMM_WORLD_SIZE'] !== undefined)) return undefined;
  const mpi = await import('./mpi.js').catch((err: unknown) => new Error(`the mpi module cannot be loaded: ${String(err)}`));
  if (mpi instanceof Error) {
    if (kind === 'mpi') throw new TransportError('handshake', `${TRANSPORT_ENV}=mpi: ${mpi.message}`);
    opts.logger?.warn({ err: mpi.message }, 'launched by mpirun, but the MPI transport is unavailable; using TCP/shared memory');
    return undefined;
  }
  if (kind === 'auto') {
    if (!mpi.launchedByOpenMpi()) return undefined;
    const loaded = mpi.loadMpiAddon();
    if ('error' in loaded) {
      opts.logger?.info({ reason: loaded.error }, `launched by mpirun; not using MPI for the collectives (${loaded.error})`);
      return undefined;
    }
  }
  const strategy = mpi.createMpiStrategy(opts.opTimeoutMs !== undefined ? { opTimeoutMs: opts.opTimeoutMs } : {});
  if (spec && spec.worldSize > 1 && (spec.rank !== strategy.rank || spec.worldSize !== strategy.worldSize)) {
    throw new TransportError('handshake', `MPI says rank ${strategy.rank} of ${strategy.worldSize}, but the ${spec.source} variables say rank ${spec.rank} of ${spec.worldSize}`);
  }
  opts.logger?.info({ transport: 'mpi', rank: strategy.rank, worldSize: strategy.worldSize, library: strategy.library },
    `transport: mpi (${strategy.library.split(',')[0]})`);
  if (strategy.worldSize > 1) return strategy;
  // mpirun -n 1: nothing to reduce; finalize now so the process exits cleanly under mpirun.
  await strategy.close();
  return new OneDeviceStrategy();
}

/** What each rank reports before the transport is chosen. */
interface RankReport {
  kind: TransportKind;
  host: string;
  bootId: string;
  pidNs: string;
  pid: number;
  /** Why this rank cannot use shared memory; absent when it can. */
  noShm?: string;
}

function readOr(read: () => string, fallback: string): string {
  try {
    return read().trim();
  } catch {
    return fallback;
  }
}

/**
 * Agree on the transport over the TCP mesh: every rank reports its host (name and boot id) and
 * whether it can use shared memory; all apply rank 0's {@link TransportKind} to the same reports,
 * so every rank reaches the same decision. Always one small all-gather, whatever the kind, so
 * ranks whose environments differ still stay in step.
 */
async function chooseTransport(tcp: TcpTransport, jobId: string, kind: TransportKind, opts: CreateStrategyOptions): Promise<Transport> {
  const log = opts.logger;
  const rank = tcp.rank;
  // The shm module is loaded only when it may be used; a copy of this folder without it still runs over TCP.
  const shm = kind === 'tcp' ? undefined : await import('./shm.js').catch((err: unknown) => new Error(`shm module: ${String(err)}`));
  let noShm: string | undefined;
  if (shm === undefined) noShm = `${TRANSPORT_ENV}=tcp here`;
  else if (shm instanceof Error) noShm = shm.message;
  else {
    const support = shm.shmSupport();
    if (!support.available) noShm = support.reason;
  }
  const mine: RankReport = {
    kind,
    host: hostname(),
    bootId: readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'), ''),
    pidNs: readOr(() => readlinkSync('/proc/self/ns/pid'), ''),
    pid: process.pid,
    ...(noShm !== undefined ? { noShm } : {}),
  };
  const raw = await allGatherBytes(tcp, new TextEncoder().encode(JSON.stringify(mine)));
  const reports = raw.map((b, r) => {
    try {
      return JSON.parse(new TextDecoder().decode(b)) as RankReport;
    } catch {
      throw new TransportError('protocol', `rank ${rank}: rank ${r} sent an unreadable transport report`, r);
    }
  });
  const want = reports[0]!.kind;
  if (want !== kind) log?.warn({ rank, mine: kind, rank0: want }, `${TRANSPORT_ENV} differs from rank 0's; using rank 0's (${want})`);
  const useTcp = (why: string): Transport => {
    if (rank === 0) log?.info({ transport: 'tcp', reason: why }, `transport: tcp (${why})`);
    return tcp;
  };
  if (want === 'tcp') return useTcp(`${TRANSPORT_ENV}=tcp`);

  // Shared memory needs one host (same name and boot) and the addon on every rank.
  const first = reports[0]!;
  let why: string | undefined;
  let culprit: number | undefined;
  reports.forEach((r, q) => {
    if (why !== undefined) return;
    if (r.host !== first.host || r.bootId !== first.bootId) {
      why = `rank ${q} runs on host ${r.host}, rank 0 on ${first.host}`;
      culprit = q;
    } else if (r.noShm !== undefined) {
      why = `rank ${q} cannot use shared memory: ${r.noShm}`;
      culprit = q;
    }
  });
  if (why !== undefined || shm === undefined || shm instanceof Error) {
    const reason = why ?? 'the shm module is missing';
    if (want === 'shm') throw new TransportError('handshake', `rank ${rank}: ${TRANSPORT_ENV}=shm but ${reason}`, culprit);
    return useTcp(reason);
  }
  const transport = await shm.connectShmTransport(tcp, {
    jobId,
    pids: reports.map((r) => r.pid),
    required: want === 'shm',
    ...(opts.shmRingBytes !== undefined ? { ringBytes: opts.shmRingBytes } : {}),
    ...(opts.opTimeoutMs !== undefined ? { opTimeoutMs: opts.opTimeoutMs } : {}),
    ...(opts.shmKeepTcp !== undefined ? { keepLifeline: opts.shmKeepTcp } : {}),
    // Across pid namespaces a peer's pid means nothing here: rely on the TCP lifeline.
    tuning: { pidCheck: reports.every((r) => r.pidNs === first.pidNs) },
    ...(log ? { logger: log } : {}),
  });
  if (!transport) return useTcp('shared memory setup failed');
  if (rank === 0) {
    log?.info({ transport: 'shm', ringBytes: transport.ringBytes }, `transport: shared memory (${tcp.worldSize} ranks on ${first.host})`);
  }
  return transport;
}
