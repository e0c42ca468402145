/**
 * TCP transport (node:net): a full mesh of sockets between ranks, for loopback and across hosts.
 *
 * Rendezvous. Every rank listens. Rank r > 0 first connects to rank 0 and says hello (job id,
 * world size, rank, the port it listens on); rank 0 waits until all ranks have joined, then answers
 * each with the address table. Then rank r connects to ranks 1..r-1 and accepts ranks r+1..n-1.
 * When every address is known up front (TF_CONFIG) rank 0 checks that all ranks were given the
 * same table; when only rank 0's is known (torchrun, Slurm) the table is built from the hellos.
 * Connects retry with exponential backoff until the connect timeout.
 *
 * Authentication (see `auth.ts`). Every connection proves knowledge of the job's secret
 * (`PROGGAN_JOB_SECRET`) both ways without sending it: the accepting side sends a random
 * challenge, the connecting side answers with its hello tagged by HMAC-SHA256 over that challenge
 * and a challenge of its own, and the welcome comes back tagged over the connector's challenge.
 * A stranger (no preamble, another job id, a wrong or missing secret, an oversized or unexpected
 * frame before it is authenticated) is refused, logged and dropped; the rendezvous goes on. An
 * authenticated peer that disagrees (world size, address table, a rank taken twice) is one of the
 * job's own ranks misconfigured: that fails both sides loudly.
 *
 * Wire format. After an 8-byte preamble from the connecting side, both directions carry frames:
 * a 12-byte header (u32 type, u64 length, little-endian) and the payload. Payloads are written in
 * chunks of `chunkBytes` without copying and without waiting for each other (pipelined, pausing
 * for 'drain' once four chunks are queued); the next message is queued as soon as the previous
 * one is wholly handed to the socket. The receiver copies each chunk straight into one message
 * buffer allocated at the header. Sizes are checked at the header, before anything is
 * allocated: before authentication only the expected handshake frame of at most 64 KiB is allowed;
 * afterwards data frames of at most `maxMessageBytes`. Sockets have Nagle off (setNoDelay) and TCP
 * keepalive on.
 *
 * Faults. A socket that closes without a goodbye frame, a socket error, or an op timeout poisons
 * the transport: every pending and future operation rejects with an error naming the rank. The
 * rank that gives up sends an abort frame naming the rank it blames before dropping its sockets,
 * so the others' errors name the same rank rather than the messenger.
 */
import * as net from 'node:net';
import type { Logger } from '../util/logger.js';
import { JOB_SECRET_ENV, MAC_BYTES, NONCE_BYTES, jobKey, jobSecretFromEnv, macMatches, macOf, newNonce } from './auth.js';
import { formatAddress, parseAddress } from './cluster.js';
import { Inbox, TransportError, checkPeer, opTimeoutFromEnv, type Transport } from './transport.js';

/** Default time allowed for the whole rendezvous, in ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 120_000;
/** Environment variable that overrides {@link DEFAULT_CONNECT_TIMEOUT_MS}. */
export const CONNECT_TIMEOUT_ENV = 'PROGGAN_CONNECT_TIMEOUT_MS';
/** Default size of the pieces a large message is written in. */
export const DEFAULT_CHUNK_BYTES = 1 << 20;

/** Version 2 (authenticated handshake); a version-1 peer's preamble is refused as a stranger's. */
const PREAMBLE = Buffer.from('PROGGAN\u0002', 'latin1');
const HEADER_BYTES = 12;
const FRAME_HELLO = 1;
const FRAME_WELCOME = 2;
const FRAME_DATA = 3;
const FRAME_BYE = 4;
const FRAME_ABORT = 5;
const FRAME_CHALLENGE = 6;
/** Largest control frame (abort reason) on an established connection. */
const MAX_CONTROL_BYTES = 1 << 20;
/** Largest frame before a connection is authenticated (a hello with a static table of ~2000 ranks). */
const MAX_HANDSHAKE_BYTES = 64 << 10;
const PROTOCOL_VERSION = 2;
/** Default bound on one data message, checked at its header before allocating. */
export const DEFAULT_MAX_MESSAGE_BYTES = 2 ** 31;
/** Environment variable that overrides {@link DEFAULT_MAX_MESSAGE_BYTES}. */
export const MAX_MESSAGE_ENV = 'PROGGAN_MAX_MESSAGE_BYTES';
/** Frames of this size or less are gathered into one write. */
const SMALL_WRITE_BYTES = 64 << 10;

/** Options of {@link connectTcpTransport}. */
export interface TcpTransportOptions {
  /** This rank, 0-based. */
  rank: number;
  /** Number of ranks. */
  worldSize: number;
  /** Job id shared by all ranks; peers with another id are refused. */
  jobId: string;
  /** `host:port` per rank, or only rank 0's (the others are gathered at rendezvous). */
  addresses: string[];
  /** Interface to listen on; default the address's own host when it is loopback, else `0.0.0.0` (`::` for IPv6). */
  listenHost?: string;
  /** Port to listen on when this rank's address is not in `addresses`; default 0 (any free port). */
  listenPort?: number;
  /** Host others should use to reach this rank when gathered at rendezvous; default what rank 0 sees as the peer's address. */
  advertiseHost?: string;
  /** An already listening server to accept peers on instead of opening one (it is closed after setup). */
  server?: net.Server;
  /** Bound on the whole rendezvous in ms; default `PROGGAN_CONNECT_TIMEOUT_MS` or 120000. */
  connectTimeoutMs?: number;
  /** Bound on one send or receive in ms; default `PROGGAN_COLLECTIVE_TIMEOUT_MS` or 60000. */
  opTimeoutMs?: number;
  /** Size of the pieces large messages are written in; default 1 MiB. */
  chunkBytes?: number;
  /** Where to log connection events; default none. */
  logger?: Logger;
  /**
   * The job's shared secret; every connection must prove it knows it. Default `PROGGAN_JOB_SECRET`
   * (or the file named by `PROGGAN_JOB_SECRET_FILE`); without one the key derives from the job id.
   */
  secret?: string;
  /** Largest data message accepted from a peer, in bytes; default `PROGGAN_MAX_MESSAGE_BYTES` or 2 GiB. */
  maxMessageBytes?: number;
}

interface Hello {
  v: number;
  jobId: string;
  worldSize: number;
  rank: number;
  to: number;
  listenPort: number;
  listenHost?: string;
  addresses?: string[];
  /** The connector's challenge (hex) the welcome must be tagged over. */
  nonce: string;
}

interface Welcome {
  ok: boolean;
  error?: string;
  addresses?: string[];
}

/** Splits a byte stream into frames; data payloads land in fresh, aligned buffers. */
class FrameReader {
  private header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private type = 0;
  private payload: Uint8Array | undefined;
  private payloadFill = 0;

  /**
   * @param limit the largest payload allowed for a frame type right now; throws (naming why) for
   *   a type that is not allowed. Checked at the header, before any allocation.
   */
  constructor(
    private readonly onFrame: (type: number, payload: Uint8Array) => void,
    private readonly limit: (type: number) => number,
  ) {}

  /** Consume bytes; throws on a frame the protocol does not allow. */
  feed(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.payload === undefined) {
        const take = Math.min(HEADER_BYTES - this.headerFill, chunk.length - off);
        this.header.set(chunk.subarray(off, off + take), this.headerFill);
        this.headerFill += take;
        off += take;
        if (this.headerFill < HEADER_BYTES) return;
        this.headerFill = 0;
        this.type = this.header.readUInt32LE(0);
        const length = this.header.readUInt32LE(4) + this.header.readUInt32LE(8) * 2 ** 32;
        if (this.type < FRAME_HELLO || this.type > FRAME_CHALLENGE) throw new Error(`unknown frame type ${this.type}`);
        const max = this.limit(this.type);
        if (length > max) throw new Error(`frame of type ${this.type} announces ${length} bytes, more than the ${max} allowed`);
        // Not zero-filled (every byte is overwritten) and never from the shared pool, so the
        // payload owns its memory and starts at offset 0, aligned for any typed array.
        this.payload = Buffer.allocUnsafeSlow(length);
        this.payloadFill = 0;
      }
      const payload = this.payload;
      const take = Math.min(payload.length - this.payloadFill, chunk.length - off);
      if (take > 0) {
        payload.set(chunk.subarray(off, off + take), this.payloadFill);
        this.payloadFill += take;
        off += take;
      }
      if (this.payloadFill === payload.length) {
        this.payload = undefined;
        this.onFrame(this.type, payload);
      }
    }
  }
}

function frameHeader(type: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(length % 2 ** 32, 4);
  h.writeUInt32LE(Math.floor(length / 2 ** 32), 8);
  return h;
}

function controlFrame(type: number, body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  return Buffer.concat([frameHeader(type, json.length), json]);
}

/** A control frame whose payload is an HMAC tag followed by the JSON body. */
function taggedFrame(type: number, key: Buffer, label: 'hello' | 'welcome', nonce: Uint8Array, body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  const mac = macOf(key, label, nonce, json);
  return Buffer.concat([frameHeader(type, MAC_BYTES + json.length), mac, json]);
}

/** The largest data message from `PROGGAN_MAX_MESSAGE_BYTES`, or the default. */
export function maxMessageBytesFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[MAX_MESSAGE_ENV];
  if (raw === undefined || raw.trim() === '') return DEFAULT_MAX_MESSAGE_BYTES;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1024) {
    throw new Error(`${MAX_MESSAGE_ENV} must be an integer number of bytes >= 1024, got '${raw}'`);
  }
  return value;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function defaultBindHost(host: string): string {
  if (isLoopback(host)) return host === 'localhost' ? '127.0.0.1' : host;
  return net.isIPv6(host) ? '::' : '0.0.0.0';
}

function stripMapped(addr: string | undefined): string | undefined {
  return addr?.startsWith('::ffff:') ? addr.slice(7) : addr;
}

function noop(): void {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One established connection to a peer. */
interface PeerConn {
  readonly rank: number;
  readonly socket: net.Socket;
  readonly address: string;
  /** Settles when the last queued message is wholly handed to the socket: the next may start. */
  chain: Promise<void>;
  /** Settles when the last queued message has been flushed to the OS (or failed). */
  flushed: Promise<void>;
  byeReceived: boolean;
  /** A message is partly written: nothing else may be put on the socket now. */
  writing: boolean;
}

/** A connection during rendezvous: the reader is live, frames go to `onControl` until established. */
interface Pending {
  socket: net.Socket;
  conn: PeerConn | undefined;
  onControl: (type: number, payload: Uint8Array) => void;
  remote: string;
}

/** Resolves a promise from outside. */
class Deferred<T> {
  resolve!: (v: T) => void;
  reject!: (e: Error) => void;
  readonly promise: Promise<T>;
  constructor() {
    this.promise = new Promise<T>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.promise.catch(() => {});
  }
}

/**
 * A {@link Transport} over TCP sockets, one per pair of ranks. Make one with
 * {@link connectTcpTransport}.
 */
export class TcpTransport implements Transport {
  readonly rank: number;
  readonly worldSize: number;
  /** The address table every rank agreed on at rendezvous (`host:port` per rank). */
  addresses: string[] = [];
  private readonly inbox: Inbox;
  private readonly peers: (PeerConn | undefined)[];
  private readonly opTimeoutMs: number;
  private readonly chunkBytes: number;
  private readonly log: Logger | undefined;
  private readonly failed = new Deferred<never>();
  private state: 'open' | 'closed' | 'aborted' = 'open';

  /** @internal use {@link connectTcpTransport}. */
  constructor(opts: { rank: number; worldSize: number; opTimeoutMs: number; chunkBytes: number; logger?: Logger }) {
    this.rank = opts.rank;
    this.worldSize = opts.worldSize;
    this.opTimeoutMs = opts.opTimeoutMs;
    this.chunkBytes = opts.chunkBytes;
    this.log = opts.logger;
    this.peers = new Array<PeerConn | undefined>(opts.worldSize).fill(undefined);
    this.inbox = new Inbox(opts.rank, opts.worldSize, opts.opTimeoutMs, (err) => this.onFailure(err));
  }

  /** The error that poisoned this transport, if any. */
  get error(): TransportError | undefined {
    return this.inbox.error;
  }

  /** @internal rejects when the transport is poisoned. */
  get whenFailed(): Promise<never> {
    return this.failed.promise;
  }

  send(peer: number, data: Uint8Array): Promise<void> {
    checkPeer(this.rank, this.worldSize, peer);
    const err = this.inbox.error;
    if (err) return Promise.reject(err);
    if (this.state !== 'open') return Promise.reject(new TransportError('closed', `rank ${this.rank}: transport closed`, this.rank));
    const conn = this.peers[peer];
    if (!conn) return Promise.reject(new TransportError('closed', `rank ${this.rank}: no connection to rank ${peer}`, peer));
    if (conn.byeReceived) {
      return Promise.reject(new TransportError('peer_closed', `rank ${this.rank}: rank ${peer} closed its transport`, peer));
    }
    let issued!: () => void;
    const whollyIssued = new Promise<void>((resolve) => (issued = resolve));
    const p = conn.chain.then(() => this.writeMessage(conn, data, issued));
    const settled = p.then(noop, noop);
    // Messages never interleave on the wire, but the next one is queued as soon as this one is
    // wholly handed to the socket, not when it is flushed: no gap in the pipe between messages.
    conn.chain = Promise.race([whollyIssued, settled]);
    conn.flushed = settled;
    return p;
  }

  recv(peer: number): Promise<Uint8Array> {
    checkPeer(this.rank, this.worldSize, peer);
    return this.inbox.take(peer);
  }

  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closed';
    // Let queued messages go out first: the peers may read everything sent before the close.
    await Promise.all(this.peers.map((conn) => conn?.chain));
    await Promise.all(this.peers.map((conn) => conn?.flushed));
    const alive = this.inbox.error === undefined;
    this.inbox.fail(new TransportError('closed', `rank ${this.rank}: transport closed`, this.rank));
    await Promise.all(
      this.peers.map(async (conn) => {
        if (!conn) return;
        const sock = conn.socket;
        if (alive && !sock.destroyed) {
          // Say goodbye, so the peer can tell an orderly close from a crash.
          sock.end(frameHeader(FRAME_BYE, 0));
          const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
          await Promise.race([closed, sleep(2000)]);
        }
        sock.destroy();
      }),
    );
  }

  abort(reason?: Error): void {
    if (this.state === 'aborted') return;
    const wasOpen = this.state === 'open';
    this.state = 'aborted';
    this.inbox.fail(
      new TransportError('closed', `rank ${this.rank}: transport aborted${reason ? `: ${reason.message}` : ''}`, this.rank, {
        cause: reason,
      }),
    );
    if (!wasOpen) {
      this.destroy();
      return;
    }
    const culprit = reason instanceof TransportError && reason.peer !== undefined ? reason.peer : this.rank;
    this.tellPeers(reason ? `rank ${this.rank} aborted: ${reason.message}` : `rank ${this.rank} aborted`, culprit);
  }

  /** Drop every connection at once without a word, as a crash would (used by fault tests). */
  destroy(): void {
    if (this.state === 'open') this.state = 'aborted';
    this.inbox.fail(new TransportError('closed', `rank ${this.rank}: transport destroyed`, this.rank));
    for (const conn of this.peers) conn?.socket.destroy();
  }

  /** Send a best-effort abort frame (why, and which rank is to blame) to every peer, then drop the sockets. */
  private tellPeers(reason: string, culprit: number | undefined): void {
    const frame = controlFrame(FRAME_ABORT, { reason, peer: culprit });
    for (const conn of this.peers) {
      if (!conn || conn.socket.destroyed) continue;
      if (conn.writing) {
        // Half a message is on the wire: an abort frame now would be read as payload.
        conn.socket.destroy();
        continue;
      }
      conn.socket.end(frame);
      setTimeout(() => conn.socket.destroy(), 1000).unref();
    }
  }

  /** @internal attach an established connection. */
  attach(conn: PeerConn): void {
    this.peers[conn.rank] = conn;
    const sock = conn.socket;
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 10_000);
    let lastError: Error | undefined;
    sock.on('error', (err) => {
      lastError = err;
    });
    sock.on('close', () => {
      if (this.state !== 'open') return;
      if (conn.byeReceived) {
        this.inbox.peerClosed(conn.rank);
        return;
      }
      const why = lastError ? ` (${lastError.message})` : '';
      this.inbox.fail(
        new TransportError(
          'peer_lost',
          `rank ${this.rank}: lost rank ${conn.rank} at ${conn.address}: connection closed unexpectedly${why}`,
          conn.rank,
          { cause: lastError },
        ),
      );
    });
  }

  /** @internal a frame arrived on an established connection. */
  onFrame(conn: PeerConn, type: number, payload: Uint8Array): void {
    if (type === FRAME_DATA) {
      this.inbox.deliver(conn.rank, payload);
    } else if (type === FRAME_BYE) {
      conn.byeReceived = true;
      this.inbox.peerClosed(conn.rank);
    } else if (type === FRAME_ABORT) {
      let reason = 'no reason given';
      let culprit = conn.rank;
      try {
        const body = JSON.parse(Buffer.from(payload).toString('utf8')) as { reason?: string; peer?: number };
        reason = body.reason ?? reason;
        if (typeof body.peer === 'number') culprit = body.peer;
      } catch {
        // Keep the defaults: the abort itself is what matters.
      }
      this.inbox.fail(new TransportError('peer_lost', `rank ${this.rank}: rank ${conn.rank} gave up: ${reason}`, culprit));
    } else {
      this.protocolError(conn.rank, `unexpected frame type ${type}`);
    }
  }

  /** @internal poison the transport because `peer` broke the protocol. */
  protocolError(peer: number, what: string): void {
    this.inbox.fail(new TransportError('protocol', `rank ${this.rank}: protocol error from rank ${peer}: ${what}`, peer));
  }

  private onFailure(err: TransportError): void {
    this.failed.reject(err);
    // A poisoned transport cannot be trusted to stay aligned: tell the peers why (so their errors
    // name the rank at fault, not us) and drop the sockets.
    if (this.state === 'open' && err.code !== 'closed') {
      this.log?.error({ err: err.message, peer: err.peer }, 'transport failed');
      this.tellPeers(err.message, err.peer);
    }
  }

  private async writeMessage(conn: PeerConn, data: Uint8Array, issued: () => void): Promise<void> {
    const err = this.inbox.error;
    if (err) {
      issued();
      throw err;
    }
    const sock = conn.socket;
    const peer = conn.rank;
    const what = `sending ${data.byteLength} bytes to rank ${peer}`;
    let flushed!: (e?: Error | null) => void;
    const done = new Promise<void>((resolve, reject) => {
      flushed = (e) => {
        if (!e) return resolve();
        const lost = new TransportError('peer_lost', `rank ${this.rank}: write to rank ${peer} failed: ${e.message}`, peer, { cause: e });
        this.inbox.fail(lost);
        reject(lost);
      };
    });
    done.catch(noop);
    conn.writing = true;
    try {
      const header = frameHeader(FRAME_DATA, data.byteLength);
      if (data.byteLength <= SMALL_WRITE_BYTES) {
        // One write for small messages: fewer syscalls and no separate header packet.
        const frame = Buffer.allocUnsafe(HEADER_BYTES + data.byteLength);
        header.copy(frame, 0);
        frame.set(data, HEADER_BYTES);
        sock.write(frame, flushed);
      } else {
        sock.write(header);
        await this.bounded(this.writeChunks(sock, data, flushed), peer, what);
      }
    } finally {
      conn.writing = false;
      issued();
    }
    await this.bounded(done, peer, what);
  }

  /**
   * Write `data` in pieces without copying, pausing for 'drain' once a few pieces are queued in
   * user space (bounded memory, and the kernel buffer keeps the pipe busy while we wait).
   */
  private async writeChunks(sock: net.Socket, data: Uint8Array, flushed: (e?: Error | null) => void): Promise<void> {
    const n = data.byteLength;
    const maxQueued = 4 * this.chunkBytes;
    for (let off = 0; off < n; off += this.chunkBytes) {
      const end = Math.min(off + this.chunkBytes, n);
      const last = end === n;
      sock.write(data.subarray(off, end), last ? flushed : undefined);
      if (!last && sock.writableLength >= maxQueued) {
        await Promise.race([new Promise<void>((resolve) => sock.once('drain', () => resolve())), this.failed.promise]);
      }
    }
  }

  /** Race `p` against the op timeout and transport failure; a timeout poisons the transport. */
  private async bounded<T>(p: Promise<T>, peer: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new TransportError(
          'timeout',
          `rank ${this.rank}: ${what} did not finish within ${this.opTimeoutMs} ms (rank ${peer} is not reading)`,
          peer,
        );
        this.inbox.fail(err);
        reject(err);
      }, this.opTimeoutMs);
    });
    try {
      return await Promise.race([p, timeout, this.failed.promise]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Connect this rank to all others over TCP and return the transport once the full mesh is up.
 * Rejects with a {@link TransportError} (code `handshake`) naming the rank at fault when the
 * rendezvous fails or does not finish within the connect timeout.
 */
export async function connectTcpTransport(opts: TcpTransportOptions): Promise<TcpTransport> {
  const { rank, worldSize, jobId } = opts;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be >= 1, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new RangeError(`rank ${rank} is out of range for world size ${worldSize}`);
  }
  const staticTable = opts.addresses.length === worldSize;
  if (worldSize > 1 && !staticTable && opts.addresses.length !== 1) {
    throw new RangeError(`addresses must list rank 0's or every rank's host:port; got ${opts.addresses.length}`);
  }
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1024) throw new RangeError(`chunkBytes must be >= 1024, got ${chunkBytes}`);
  const transport = new TcpTransport({
    rank,
    worldSize,
    opTimeoutMs: opts.opTimeoutMs ?? opTimeoutFromEnv(),
    chunkBytes,
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  if (worldSize === 1) {
    transport.addresses = opts.addresses.slice();
    if (opts.server) await closeServer(opts.server);
    return transport;
  }
  const setup = new Rendezvous(transport, opts, staticTable);
  return setup.run();
}

/** The connect timeout from `PROGGAN_CONNECT_TIMEOUT_MS`, or the default. */
export function connectTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[CONNECT_TIMEOUT_ENV];
  if (raw === undefined || raw.trim() === '') return DEFAULT_CONNECT_TIMEOUT_MS;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${CONNECT_TIMEOUT_ENV} must be a positive integer number of milliseconds, got '${raw}'`);
  }
  return value;
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/** The state of one rank's rendezvous. */
class Rendezvous {
  private readonly rank: number;
  private readonly n: number;
  private readonly deadline: number;
  private readonly connectTimeoutMs: number;
  private readonly done = new Deferred<TcpTransport>();
  private readonly pending = new Set<Pending>();
  private server: net.Server | undefined;
  private listenPort = 0;
  /** Rank 0: ranks that said hello and wait for the table (with the challenge to answer). */
  private readonly joined = new Map<number, { pending: Pending; address: string; nonce: Buffer }>();
  /** The HMAC key every connection must prove it holds. */
  private readonly key: Buffer;
  private readonly maxMessageBytes: number;
  /** Connections refused as not of this job, for the log and the timeout message. */
  private readonly strangers: string[] = [];
  /** Ranks with an established connection. */
  private readonly connected = new Set<number>();
  private finished = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly transport: TcpTransport,
    private readonly opts: TcpTransportOptions,
    private readonly staticTable: boolean,
  ) {
    this.rank = opts.rank;
    this.n = opts.worldSize;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? connectTimeoutFromEnv();
    this.deadline = Date.now() + this.connectTimeoutMs;
    const secret = opts.secret ?? jobSecretFromEnv();
    this.key = jobKey(opts.jobId, secret);
    this.maxMessageBytes = opts.maxMessageBytes ?? maxMessageBytesFromEnv();
    if (secret === undefined && this.rank === 0) {
      opts.logger?.warn(
        { rank: 0, jobId: opts.jobId },
        `no ${JOB_SECRET_ENV}: peers of other jobs are refused, but any process that knows job id '${opts.jobId}' could join; ` +
          `set ${JOB_SECRET_ENV} to the same random value for every rank (proggan --workers does this itself)`,
      );
    }
  }

  async run(): Promise<TcpTransport> {
    this.timer = setTimeout(() => {
      const missing: number[] = [];
      for (let r = 0; r < this.n; r++) if (r !== this.rank && !this.connected.has(r)) missing.push(r);
      const refused =
        this.strangers.length > 0
          ? `; refused ${this.strangers.length} connection(s) not of this job (last: ${this.strangers[this.strangers.length - 1]})`
          : '';
      this.fail(
        new TransportError(
          'handshake',
          `rank ${this.rank}: rendezvous did not finish within ${this.connectTimeoutMs} ms; ` +
            `no connection with rank(s) ${missing.join(', ')} (${CONNECT_TIMEOUT_ENV})${refused}`,
          missing[0],
        ),
      );
    }, this.connectTimeoutMs);
    try {
      // A peer lost after its connection was established (say rank 0 dies after handing out the
      // table) fails the rendezvous at once instead of at the connect timeout.
      this.transport.whenFailed.catch((err: TransportError) => this.fail(err));
      await this.listen();
      if (this.rank > 0) await this.connectOut();
      this.checkDone();
      return await this.done.promise;
    } catch (err) {
      this.fail(err instanceof TransportError ? err : new TransportError('handshake', `rank ${this.rank}: ${(err as Error).message}`));
      return await this.done.promise;
    } finally {
      clearTimeout(this.timer);
    }
  }

  private async listen(): Promise<void> {
    const server = this.opts.server ?? net.createServer();
    this.server = server;
    server.on('connection', (socket) => this.accept(socket));
    server.on('error', (err) => this.fail(new TransportError('handshake', `rank ${this.rank}: listener failed: ${err.message}`)));
    if (!server.listening) {
      const { host, port } = this.bindAddress();
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        server.once('error', onError);
        server.listen({ host, port }, () => {
          server.off('error', onError);
          resolve();
        });
      }).catch((err: Error) => {
        throw new TransportError('handshake', `rank ${this.rank}: cannot listen on ${formatAddress(host, port)}: ${err.message}`);
      });
    }
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new TransportError('handshake', `rank ${this.rank}: listener has no TCP port`);
    this.listenPort = addr.port;
    this.opts.logger?.debug({ rank: this.rank, port: this.listenPort }, 'listening');
  }

  private bindAddress(): { host: string; port: number } {
    const own = this.opts.addresses[this.rank];
    if (this.staticTable || this.rank === 0) {
      const { host, port } = parseAddress(own ?? '', `addresses[${this.rank}]`);
      return { host: this.opts.listenHost ?? defaultBindHost(host), port };
    }
    const master = parseAddress(this.opts.addresses[0] ?? '', 'addresses[0]');
    return { host: this.opts.listenHost ?? defaultBindHost(master.host), port: this.opts.listenPort ?? 0 };
  }

  /**
   * Watch a socket's frames; until established they go to `onControl`, and only `handshakeTypes`
   * of at most {@link MAX_HANDSHAKE_BYTES} are allowed (checked at the header, before allocating).
   */
  private track(
    socket: net.Socket,
    remote: string,
    handshakeTypes: number[],
    onControl: (type: number, payload: Uint8Array) => void,
    onBadFrame: (why: string) => void,
  ): Pending {
    const p: Pending = { socket, conn: undefined, onControl, remote };
    const limit = (type: number): number => {
      if (p.conn) return type === FRAME_DATA ? this.maxMessageBytes : MAX_CONTROL_BYTES;
      if (!handshakeTypes.includes(type)) throw new Error(`frame of type ${type} before the handshake finished`);
      return MAX_HANDSHAKE_BYTES;
    };
    const reader = new FrameReader((type, payload) => {
      if (p.conn) this.transport.onFrame(p.conn, type, payload);
      else p.onControl(type, payload);
    }, limit);
    socket.on('data', (chunk: Buffer) => {
      if (socket.destroyed) return;
      try {
        reader.feed(chunk);
      } catch (err) {
        if (p.conn) this.transport.protocolError(p.conn.rank, (err as Error).message);
        else {
          onBadFrame((err as Error).message);
          socket.destroy();
        }
      }
    });
    this.pending.add(p);
    return p;
  }

  private establish(p: Pending, peer: number, address: string): void {
    const conn: PeerConn = { rank: peer, socket: p.socket, address, chain: Promise.resolve(), flushed: Promise.resolve(), byeReceived: false, writing: false };
    p.conn = conn;
    this.pending.delete(p);
    this.transport.attach(conn);
    this.connected.add(peer);
    this.opts.logger?.debug({ rank: this.rank, peer, address }, 'connected');
  }

  /** Note and log a connection refused as not of this job; the rendezvous goes on. */
  private stranger(remote: string, why: string): void {
    this.strangers.push(`${remote}: ${why}`);
    if (this.strangers.length > 16) this.strangers.shift();
    this.opts.logger?.warn({ rank: this.rank, remote, why }, `refused a connection from ${remote}: ${why}`);
  }

  /** A peer connected to us: check the preamble, challenge it, and check its hello. */
  private accept(socket: net.Socket): void {
    if (this.finished) {
      socket.destroy();
      return;
    }
    const remote = formatAddress(stripMapped(socket.remoteAddress) ?? '?', socket.remotePort ?? 0);
    let pre = Buffer.alloc(0);
    let p: Pending | undefined;
    let helloSeen = false;
    const onPreamble = (chunk: Buffer): void => {
      pre = Buffer.concat([pre, chunk]);
      if (pre.length < PREAMBLE.length) return;
      socket.off('data', onPreamble);
      if (!pre.subarray(0, PREAMBLE.length).equals(PREAMBLE)) {
        // Not one of ours (a port scanner, a health check, an older proggan): drop it without failing the job.
        this.stranger(remote, 'no proggan preamble (or another protocol version)');
        socket.destroy();
        return;
      }
      const challenge = newNonce();
      p = this.track(
        socket,
        remote,
        [FRAME_HELLO],
        (type, payload) => {
          if (type !== FRAME_HELLO || helloSeen) {
            this.stranger(remote, `unexpected frame type ${type}`);
            socket.destroy();
            return;
          }
          helloSeen = true;
          if (p) this.onHello(p, payload, challenge);
        },
        (why) => this.stranger(remote, why),
      );
      socket.write(Buffer.concat([frameHeader(FRAME_CHALLENGE, challenge.length), challenge]));
      const rest = pre.subarray(PREAMBLE.length);
      if (rest.length > 0) socket.emit('data', rest);
    };
    socket.on('data', onPreamble);
    socket.on('error', () => {});
    socket.on('close', () => {
      if (p && !p.conn && this.pending.has(p)) {
        this.pending.delete(p);
        if (helloSeen && this.rank === 0) {
          for (const [r, j] of this.joined) {
            if (j.pending === p) {
              this.fail(new TransportError('handshake', `rank 0: rank ${r} (${remote}) disconnected during rendezvous`, r));
            }
          }
        }
      }
    });
  }

  private onHello(p: Pending, payload: Uint8Array, challenge: Buffer): void {
    const mac = payload.subarray(0, MAC_BYTES);
    const json = payload.subarray(MAC_BYTES);
    let hello: Hello | undefined;
    try {
      const parsed: unknown = JSON.parse(Buffer.from(json).toString('utf8'));
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) hello = parsed as Hello;
    } catch {
      // Unreadable: handled below.
    }
    // A stranger is told why (a rank of another job should fail loudly on its side), logged and
    // dropped; it must not stop this job's rendezvous.
    const refuseStranger = (why: string): void => {
      this.stranger(p.remote, why);
      this.pending.delete(p);
      const msg = `rank ${this.rank} (job '${this.opts.jobId}') refused a connection from ${p.remote}: ${why}`;
      p.socket.end(Buffer.concat([frameHeader(FRAME_WELCOME, MAC_BYTES + Buffer.byteLength(JSON.stringify({ ok: false, error: msg }))),
        Buffer.alloc(MAC_BYTES), Buffer.from(JSON.stringify({ ok: false, error: msg } satisfies Welcome), 'utf8')]));
      setTimeout(() => p.socket.destroy(), 1000).unref();
    };
    if (payload.length <= MAC_BYTES || hello === undefined) return refuseStranger('unreadable hello');
    if (hello.v !== PROTOCOL_VERSION) return refuseStranger(`protocol version ${String(hello.v)}, expected ${PROTOCOL_VERSION}`);
    if (hello.jobId !== this.opts.jobId) return refuseStranger(`it belongs to job '${String(hello.jobId)}'`);
    if (!macMatches(macOf(this.key, 'hello', challenge, json), mac)) {
      return refuseStranger(`it did not prove it knows this job's secret (wrong or missing ${JOB_SECRET_ENV})`);
    }
    if (typeof hello.nonce !== 'string' || !/^[0-9a-f]{64}$/.test(hello.nonce)) return refuseStranger('its hello has no valid challenge');
    const nonce = Buffer.from(hello.nonce, 'hex');
    // From here on the peer holds the job's secret: a disagreement is this job misconfigured, and loud.
    const refuse = (why: string, peer?: number): void => {
      const msg = `rank ${this.rank} (job '${this.opts.jobId}', world size ${this.n}) refused a peer from ${p.remote}: ${why}`;
      p.socket.end(taggedFrame(FRAME_WELCOME, this.key, 'welcome', nonce, { ok: false, error: msg } satisfies Welcome));
      this.fail(new TransportError('handshake', msg, peer));
    };
    const peer = hello.rank;
    if (hello.worldSize !== this.n) return refuse(`it says world size ${hello.worldSize}`, peer);
    if (hello.to !== this.rank) return refuse(`it meant to reach rank ${hello.to}`, peer);
    if (!Number.isInteger(peer) || peer <= this.rank || peer >= this.n) {
      return refuse(`it claims rank ${peer}, which should not connect to rank ${this.rank}`, peer);
    }
    if (!Number.isInteger(hello.listenPort) || hello.listenPort < 1 || hello.listenPort > 65535) {
      return refuse(`rank ${peer} announced listen port ${String(hello.listenPort)}`, peer);
    }
    if (hello.listenHost !== undefined && (typeof hello.listenHost !== 'string' || hello.listenHost === '')) {
      return refuse(`rank ${peer} announced an invalid listen host`, peer);
    }
    if (this.connected.has(peer) || this.joined.has(peer)) return refuse(`rank ${peer} connected twice (two processes with the same rank?)`, peer);
    if (this.staticTable && JSON.stringify(hello.addresses) !== JSON.stringify(this.opts.addresses)) {
      return refuse(`rank ${peer} was given a different address table: ${JSON.stringify(hello.addresses)}`, peer);
    }
    if (this.rank !== 0) {
      p.socket.write(taggedFrame(FRAME_WELCOME, this.key, 'welcome', nonce, { ok: true } satisfies Welcome));
      this.establish(p, peer, p.remote);
      this.checkDone();
      return;
    }
    // Rank 0 keeps every joiner waiting until all have said hello, then hands out the table.
    const host = hello.listenHost ?? stripMapped(p.socket.remoteAddress) ?? '';
    this.joined.set(peer, { pending: p, address: formatAddress(host, hello.listenPort), nonce });
    if (this.joined.size === this.n - 1) this.handOutTable();
  }

  private handOutTable(): void {
    const table: string[] = [];
    if (this.staticTable) table.push(...this.opts.addresses);
    else {
      table.push(this.opts.addresses[0] ?? '');
      for (let r = 1; r < this.n; r++) table.push(this.joined.get(r)?.address ?? '');
    }
    this.transport.addresses = table;
    for (const [r, j] of this.joined) {
      j.pending.socket.write(taggedFrame(FRAME_WELCOME, this.key, 'welcome', j.nonce, { ok: true, addresses: table } satisfies Welcome));
      this.establish(j.pending, r, table[r] ?? j.pending.remote);
    }
    this.joined.clear();
    this.checkDone();
  }

  /** Rank r > 0: join at rank 0, then connect to ranks 1..r-1. */
  private async connectOut(): Promise<void> {
    const table = await this.handshake(0, this.opts.addresses[0] ?? '');
    if (!table || table.length !== this.n) {
      throw new TransportError('handshake', `rank ${this.rank}: rank 0 sent no valid address table`, 0);
    }
    this.transport.addresses = table;
    for (let peer = 1; peer < this.rank; peer++) await this.handshake(peer, table[peer] ?? '');
  }

  /** Connect to `peer`, say hello, and wait for its welcome; returns the table it sent, if any. */
  private async handshake(peer: number, address: string): Promise<string[] | undefined> {
    const { host, port } = parseAddress(address, `address of rank ${peer}`);
    const socket = await this.connectWithRetry(peer, host, port);
    const welcome = new Deferred<Welcome>();
    const nonce = newNonce();
    let challenged = false;
    const p = this.track(
      socket,
      address,
      [FRAME_CHALLENGE, FRAME_WELCOME],
      (type, payload) => {
        if (type === FRAME_CHALLENGE && !challenged) {
          challenged = true;
          if (payload.length !== NONCE_BYTES) return welcome.reject(new Error(`challenge of ${payload.length} bytes, expected ${NONCE_BYTES}`));
          socket.write(taggedFrame(FRAME_HELLO, this.key, 'hello', payload, hello));
          return;
        }
        if (type !== FRAME_WELCOME) return welcome.reject(new Error(`unexpected frame type ${type} before welcome`));
        let w: Welcome;
        const json = payload.subarray(MAC_BYTES);
        try {
          w = JSON.parse(Buffer.from(json).toString('utf8')) as Welcome;
        } catch {
          return welcome.reject(new Error('unreadable welcome'));
        }
        if (w.ok && !macMatches(macOf(this.key, 'welcome', nonce, json), payload.subarray(0, MAC_BYTES))) {
          return welcome.reject(new Error(`its welcome did not prove it knows this job's secret (another job on that port, or a different ${JOB_SECRET_ENV})`));
        }
        // Establish before returning: data frames the peer sent right after the welcome may follow
        // in this same read and must reach the inbox, not this handler.
        if (w.ok && !this.finished) this.establish(p, peer, address);
        welcome.resolve(w);
      },
      (why) => welcome.reject(new Error(why)),
    );
    let lastError: Error | undefined;
    socket.on('error', (err) => {
      lastError = err;
    });
    socket.on('close', () => {
      if (!p.conn) welcome.reject(new Error(`connection closed before the welcome${lastError ? ` (${lastError.message})` : ''}`));
    });
    const hello: Hello = {
      v: PROTOCOL_VERSION,
      jobId: this.opts.jobId,
      worldSize: this.n,
      rank: this.rank,
      to: peer,
      listenPort: this.listenPort,
      ...(this.opts.advertiseHost !== undefined ? { listenHost: this.opts.advertiseHost } : {}),
      ...(this.staticTable ? { addresses: this.opts.addresses } : {}),
      nonce: nonce.toString('hex'),
    };
    socket.write(PREAMBLE);
    let w: Welcome;
    try {
      w = await Promise.race([welcome.promise, this.done.promise.then(() => ({ ok: false }) as Welcome)]);
    } catch (err) {
      throw new TransportError('handshake', `rank ${this.rank}: handshake with rank ${peer} at ${address} failed: ${(err as Error).message}`, peer);
    }
    if (!w.ok) {
      throw new TransportError('handshake', `rank ${this.rank}: rank ${peer} at ${address} refused us: ${w.error ?? 'no reason given'}`, peer);
    }
    if (!p.conn) throw new TransportError('handshake', `rank ${this.rank}: rendezvous aborted`, peer);
    return w.addresses;
  }

  private async connectWithRetry(peer: number, host: string, port: number): Promise<net.Socket> {
    let delay = 25;
    let attempts = 0;
    for (;;) {
      if (this.finished) throw new TransportError('handshake', `rank ${this.rank}: rendezvous aborted`, peer);
      attempts++;
      try {
        return await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host, port });
          const t = setTimeout(() => s.destroy(new Error('connect attempt timed out')), Math.max(100, Math.min(10_000, this.deadline - Date.now())));
          s.once('connect', () => {
            clearTimeout(t);
            s.removeAllListeners('error');
            resolve(s);
          });
          s.once('error', (err) => {
            clearTimeout(t);
            reject(err);
          });
        });
      } catch (err) {
        const left = this.deadline - Date.now();
        if (left <= delay) {
          throw new TransportError(
            'handshake',
            `rank ${this.rank}: could not connect to rank ${peer} at ${formatAddress(host, port)} within ${this.connectTimeoutMs} ms ` +
              `(${attempts} attempts; last error: ${(err as Error).message})`,
            peer,
          );
        }
        await sleep(delay * (0.75 + 0.5 * Math.random()));
        delay = Math.min(delay * 2, 1000);
      }
    }
  }

  private checkDone(): void {
    if (this.finished || this.connected.size !== this.n - 1) return;
    this.finished = true;
    clearTimeout(this.timer);
    if (this.server) void closeServer(this.server);
    this.opts.logger?.info({ rank: this.rank, worldSize: this.n, addresses: this.transport.addresses }, 'mesh connected');
    this.done.resolve(this.transport);
  }

  private fail(err: TransportError): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    for (const p of this.pending) p.socket.destroy();
    this.pending.clear();
    this.transport.abort(err);
    if (this.server) void closeServer(this.server);
    this.done.reject(err);
  }
}
