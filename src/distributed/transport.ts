/**
 * Point-to-point message transports between ranks. A transport moves opaque byte messages; the
 * collectives in `collectives.ts` build every algorithm on `send` and `recv` alone, so a later
 * shared-memory or MPI transport only has to implement {@link Transport}.
 *
 * Failure model (fail-stop, as torchrun and Horovod assume): when a peer dies, an operation times
 * out, or a stream is corrupted, the transport is poisoned: every pending and future operation
 * rejects with a {@link TransportError} that names the rank at fault. Nobody continues a
 * collective with a missing peer; the supervisor restarts the group from a checkpoint.
 */
import { reportFault } from './supervised.js';

/**
 * Default bound on one send or receive (the stall timeout), in milliseconds: 60 s.
 *
 * A receive waits for the peer to reach the same collective, so the bound must cover the longest
 * time one rank legitimately works alone while the others wait: rank 0 writing a checkpoint, a
 * sample grid or an evaluation between steps, or loading a checkpoint before the first broadcast,
 * plus the step-time imbalance between ranks. At the sizes proggan trains on these take seconds,
 * not minutes. A dead peer is seen at once (its socket closes); this bound only catches a rank
 * that is alive but not progressing (stopped, swapping, deadlocked, a hung filesystem), and until
 * it fires every other rank burns its time waiting. 120 s (the old default) doubled that loss for
 * no case we know of; 60 s keeps 10x headroom over a slow checkpoint and matches Horovod's stall
 * warning. Raise `PROGGAN_COLLECTIVE_TIMEOUT_MS` for long evaluations or slow shared filesystems.
 */
export const DEFAULT_OP_TIMEOUT_MS = 60_000;

/** Environment variable that overrides {@link DEFAULT_OP_TIMEOUT_MS}. */
export const OP_TIMEOUT_ENV = 'PROGGAN_COLLECTIVE_TIMEOUT_MS';

/** Why a transport operation failed. */
export type TransportErrorCode =
  /** A peer went away without saying goodbye (crash, kill, network loss). */
  | 'peer_lost'
  /** A peer closed its transport in an orderly way and no message is left from it. */
  | 'peer_closed'
  /** An operation did not complete within the op timeout. */
  | 'timeout'
  /** This rank's transport was closed or aborted. */
  | 'closed'
  /** Connection setup failed (rendezvous, handshake, misconfiguration). */
  | 'handshake'
  /** A peer sent something the protocol does not allow, or sizes differ across ranks. */
  | 'protocol';

/** A transport or collective failure; `peer` is the rank at fault when one is known. */
export class TransportError extends Error {
  /** What kind of failure this is. */
  readonly code: TransportErrorCode;
  /** The rank the failure is attributed to, when known. */
  readonly peer: number | undefined;

  constructor(code: TransportErrorCode, message: string, peer?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransportError';
    this.code = code;
    this.peer = peer;
  }
}

/**
 * Ordered, reliable, point-to-point byte messages between the ranks of one group. Messages from
 * one rank to another arrive whole and in the order they were sent; messages between different
 * pairs are independent.
 */
export interface Transport {
  /** This rank, 0-based. */
  readonly rank: number;
  /** Number of ranks in the group. */
  readonly worldSize: number;
  /**
   * Send one message to `peer`. The promise resolves once the bytes have left `data` (copied or
   * handed to the OS); until then the caller must not modify `data`.
   */
  send(peer: number, data: Uint8Array): Promise<void>;
  /**
   * Receive the next message from `peer`. The returned bytes belong to the caller and start at a
   * byte offset that is a multiple of 8.
   */
  recv(peer: number): Promise<Uint8Array>;
  /** Orderly shutdown: peers may still read what was sent, then see `peer_closed`. */
  close(): Promise<void>;
  /** Tear down at once: pending operations here reject and peers see this rank as lost. */
  abort(reason?: Error): void;
}

/**
 * The op timeout from `PROGGAN_COLLECTIVE_TIMEOUT_MS`, or {@link DEFAULT_OP_TIMEOUT_MS} when unset.
 * Throws naming the variable when it is not a positive integer.
 */
export function opTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[OP_TIMEOUT_ENV];
  if (raw === undefined || raw.trim() === '') return DEFAULT_OP_TIMEOUT_MS;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${OP_TIMEOUT_ENV} must be a positive integer number of milliseconds, got '${raw}'`);
  }
  return value;
}

/** Throw unless `peer` is a valid rank other than `self`. */
export function checkPeer(self: number, worldSize: number, peer: number): void {
  if (!Number.isInteger(peer) || peer < 0 || peer >= worldSize || peer === self) {
    throw new RangeError(`rank ${self}: invalid peer ${peer} (world size ${worldSize})`);
  }
}

interface Waiter {
  resolve(msg: Uint8Array): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Inbound message queues of one rank, one per peer, with the fail-stop rules shared by every
 * transport: timeouts and lost peers poison the whole inbox.
 * @internal
 */
export class Inbox {
  private readonly queues: Uint8Array[][];
  private readonly waiters: Waiter[][];
  private readonly closedPeers = new Set<number>();
  private failure: TransportError | undefined;

  constructor(
    private readonly rank: number,
    worldSize: number,
    private readonly opTimeoutMs: number,
    private readonly onFail: (err: TransportError) => void = () => {},
  ) {
    this.queues = Array.from({ length: worldSize }, () => []);
    this.waiters = Array.from({ length: worldSize }, () => []);
  }

  /** The error that poisoned this inbox, if any. */
  get error(): TransportError | undefined {
    return this.failure;
  }

  /** Hand a complete message from `peer` to the next receiver. */
  deliver(peer: number, msg: Uint8Array): void {
    if (this.failure) return;
    const waiter = this.waiters[peer]?.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(msg);
    } else {
      this.queues[peer]?.push(msg);
    }
  }

  /** The next message from `peer`, waiting at most the op timeout. */
  take(peer: number): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    const queued = this.queues[peer]?.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closedPeers.has(peer)) return Promise.reject(this.closedError(peer));
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(
          new TransportError(
            'timeout',
            `rank ${this.rank}: no message from rank ${peer} within ${this.opTimeoutMs} ms ` +
              `(rank ${peer} stalled or died; raise ${OP_TIMEOUT_ENV} if it is just slow)`,
            peer,
          ),
        );
      }, this.opTimeoutMs);
      this.waiters[peer]?.push({ resolve, reject, timer });
    });
  }

  /** `peer` closed in an orderly way: queued messages stay readable, later receives reject. */
  peerClosed(peer: number): void {
    if (this.failure || this.closedPeers.has(peer)) return;
    this.closedPeers.add(peer);
    const waiting = this.waiters[peer] ?? [];
    for (const w of waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(this.closedError(peer));
    }
  }

  /** Poison the inbox: every pending and future receive rejects with `err`. First error wins. */
  fail(err: TransportError): void {
    if (this.failure) return;
    this.failure = err;
    for (const list of this.waiters) {
      for (const w of list.splice(0)) {
        clearTimeout(w.timer);
        w.reject(err);
      }
    }
    for (const q of this.queues) q.length = 0;
    // Under the launcher: say whom this rank blames before the error makes it exit.
    if (err.code !== 'closed') reportFault(this.rank, err);
    this.onFail(err);
  }

  private closedError(peer: number): TransportError {
    return new TransportError(
      'peer_closed',
      `rank ${this.rank}: rank ${peer} closed its transport; no more messages will come from it`,
      peer,
    );
  }
}

/** Copy `data` into fresh 8-byte aligned memory. */
export function copyAligned(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.byteLength);
  out.set(data);
  return out;
}

/** Options of {@link createLocalGroup}. */
export interface LocalGroupOptions {
  /** Bound on one receive in ms; default `PROGGAN_COLLECTIVE_TIMEOUT_MS` or 60000. */
  opTimeoutMs?: number;
}

/** Shared state of an in-process group. */
class LocalGroup {
  readonly members: LocalTransport[] = [];
  /** Number of messages sent so far, per sender (for tests of message counts). */
  readonly sent: number[];
  /** Number of payload bytes sent so far, per sender. */
  readonly bytes: number[];
  constructor(readonly worldSize: number) {
    this.sent = new Array<number>(worldSize).fill(0);
    this.bytes = new Array<number>(worldSize).fill(0);
  }
}

/**
 * One rank of an in-process group made by {@link createLocalGroup}: messages are copied between
 * queues in the same process. For tests and for single-process simulations of a cluster.
 */
export class LocalTransport implements Transport {
  readonly worldSize: number;
  private readonly inbox: Inbox;
  private state: 'open' | 'closed' | 'aborted' = 'open';

  /** @internal use {@link createLocalGroup}. */
  constructor(
    private readonly group: LocalGroup,
    readonly rank: number,
    opTimeoutMs: number,
  ) {
    this.worldSize = group.worldSize;
    this.inbox = new Inbox(rank, group.worldSize, opTimeoutMs, (err) => this.propagate(err));
  }

  /** Like the TCP transport, a rank that gives up tells the others which rank it blames. */
  private propagate(err: TransportError): void {
    if (err.code === 'closed') return;
    for (const m of this.group.members) {
      if (m === this || m.state !== 'open') continue;
      m.inbox.fail(new TransportError('peer_lost', `rank ${m.rank}: rank ${this.rank} gave up: ${err.message}`, err.peer ?? this.rank));
    }
  }

  /** Messages this rank has sent so far. */
  get messagesSent(): number {
    return this.group.sent[this.rank] ?? 0;
  }

  /** Payload bytes this rank has sent so far. */
  get bytesSent(): number {
    return this.group.bytes[this.rank] ?? 0;
  }

  async send(peer: number, data: Uint8Array): Promise<void> {
    checkPeer(this.rank, this.worldSize, peer);
    this.throwIfUnusable();
    const target = this.group.members[peer];
    if (!target || target.state === 'aborted') {
      const err = new TransportError('peer_lost', `rank ${this.rank}: rank ${peer} is gone`, peer);
      this.inbox.fail(err);
      throw err;
    }
    if (target.state === 'closed') {
      throw new TransportError('peer_closed', `rank ${this.rank}: rank ${peer} closed its transport`, peer);
    }
    this.group.sent[this.rank] = (this.group.sent[this.rank] ?? 0) + 1;
    this.group.bytes[this.rank] = (this.group.bytes[this.rank] ?? 0) + data.byteLength;
    target.inbox.deliver(this.rank, copyAligned(data));
  }

  recv(peer: number): Promise<Uint8Array> {
    checkPeer(this.rank, this.worldSize, peer);
    try {
      this.throwIfUnusable();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.inbox.take(peer);
  }

  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closed';
    this.inbox.fail(new TransportError('closed', `rank ${this.rank}: transport closed`, this.rank));
    for (const m of this.group.members) if (m !== this) m.inbox.peerClosed(this.rank);
  }

  /** Simulate this rank dying: every other rank's pending and future operations reject naming it. */
  abort(reason?: Error): void {
    if (this.state === 'aborted') return;
    this.state = 'aborted';
    this.inbox.fail(
      new TransportError('closed', `rank ${this.rank}: transport aborted${reason ? `: ${reason.message}` : ''}`, this.rank, {
        cause: reason,
      }),
    );
    // A reason that blames a rank (a size mismatch, a timeout) is passed on, as the TCP transport does.
    const culprit = reason instanceof TransportError && reason.peer !== undefined ? reason.peer : this.rank;
    for (const m of this.group.members) {
      if (m === this) continue;
      const why = reason ? `rank ${this.rank} gave up: ${reason.message}` : `lost rank ${this.rank} (it aborted or died)`;
      m.inbox.fail(new TransportError('peer_lost', `rank ${m.rank}: ${why}`, culprit));
    }
  }

  private throwIfUnusable(): void {
    const err = this.inbox.error;
    if (err) throw err;
  }
}

/** Make `worldSize` connected in-process transports; element i is rank i. */
export function createLocalGroup(worldSize: number, opts: LocalGroupOptions = {}): LocalTransport[] {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`world size must be >= 1, got ${worldSize}`);
  const opTimeoutMs = opts.opTimeoutMs ?? opTimeoutFromEnv();
  const group = new LocalGroup(worldSize);
  for (let r = 0; r < worldSize; r++) group.members.push(new LocalTransport(group, r, opTimeoutMs));
  return group.members.slice();
}
