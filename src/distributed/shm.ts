/**
 * Shared-memory transport for ranks on one host: the same {@link Transport} as TCP, with messages
 * copied through POSIX shared memory instead of loopback sockets.
 *
 * Layout. Each rank creates one segment holding its header, its doorbell and its inbound rings,
 * one single-producer/single-consumer byte ring per peer. A sender copies a frame (8-byte length,
 * payload, padding to 8 bytes) into the receiver's ring for it and publishes the new head; the
 * receiver copies the payload out into a fresh buffer (so it starts at offset 0) and publishes the
 * new tail. Messages larger than the ring stream through it. Head and tail are 32-bit byte
 * counters that wrap; the ring size is a power of two.
 *
 * Waiting. Each rank has one doorbell (a counter in its segment) that peers bump after writing to
 * its rings or freeing space in rings it writes to. One progress engine per transport sweeps every
 * ring; when nothing moves it waits on its doorbell in the addon (a futex, after an optional spin)
 * for at most a few ms, then yields to the event loop with setImmediate, so timers, sockets and
 * signals keep running. Reading the doorbell before each sweep makes lost wake-ups impossible.
 * While nothing is pending the engine stops, so an idle transport costs nothing and does not keep
 * the process alive.
 *
 * Setup (see {@link connectShmTransport}), over an established transport such as TCP: every rank
 * removes stale segments of dead processes, creates its own segment, announces its name; every
 * rank maps its peers' segments and checks their headers; once all have mapped all, each creator
 * unlinks its segment's name at once, so nothing is left in /dev/shm even after a crash.
 *
 * Faults (fail-stop, as for TCP). A rank that gives up writes its reason and the rank it blames
 * into its header and rings every doorbell; an orderly close sets a closed flag after its last
 * message. While waiting, peers' pids are checked every 100 ms (`kill(pid, 0)`, zombies count as
 * dead), a send that makes no progress for the op timeout fails naming the peer, and the TCP
 * transport used for setup stays open as a lifeline: its failure (a peer's socket closing without
 * goodbye) poisons this transport too.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { loadNativeAddon } from '../util/addon.js';
import type { Logger } from '../util/logger.js';
import { fnv1a } from './cluster.js';
import { allGatherBytes } from './collectives.js';
import { Inbox, TransportError, checkPeer, opTimeoutFromEnv, type Transport } from './transport.js';

/** Environment variable that overrides the ring size (bytes, a power of two from 4096 to 1 GiB). */
export const SHM_RING_BYTES_ENV = 'PROGGAN_SHM_RING_BYTES';

/** The addon entry points this transport uses (src/native/shm.cc). */
export interface ShmAddon {
  /** Map a POSIX shared memory segment; `create` makes a new one of `bytes` (O_EXCL). */
  shmOpen(name: string, bytes: number, create: boolean): ArrayBuffer;
  /** Remove a segment's name; false when it did not exist. */
  shmUnlink(name: string): boolean;
  /** Unmap a segment now and detach its buffer. */
  shmClose(buffer: ArrayBuffer): void;
  /** Wait until the u32 at `byteOffset` differs from `expected` (0) or `timeoutMs` passes (1). */
  shmWait(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs: number, spinUs: number): number;
  /** Bump the u32 at `byteOffset` and wake whoever waits on it. */
  shmNotify(buffer: ArrayBuffer, byteOffset: number): void;
}

// Segment layout, in bytes. The header's fields are u32 words; the doorbell (counter, sleepers)
// and each ring's head and tail sit on cache lines of their own.
const MAGIC = 0x4d534750; // "PGSM"
const LAYOUT_VERSION = 1;
const W_MAGIC = 0;
const W_VERSION = 1;
const W_WORLD = 2;
const W_RANK = 3;
const W_RING = 4;
const W_PID = 5;
const W_STATE = 6;
/** The rank blamed by an abort, plus one (0: none). */
const W_CULPRIT = 7;
const W_REASON_LEN = 8;
const DOORBELL_OFFSET = 64;
const REASON_OFFSET = 256;
const REASON_MAX = 3072;
const HEADER_BYTES = 4096;
/** Each ring: head at +0, tail at +64, data from +4096. */
const RING_CTRL_BYTES = 4096;
const TAIL_OFFSET = 64;
const STATE_OPEN = 0;
const STATE_CLOSED = 1;
const STATE_ABORTED = 2;
/** Largest message accepted from a ring; a bigger length means a corrupted ring. */
const MAX_MESSAGE_BYTES = 2 ** 40;
const PID_CHECK_MS = 100;

const MiB = 1024 * 1024;

/** Bytes of one rank's segment for a world of `worldSize` with rings of `ringBytes`. */
export function shmSegmentBytes(worldSize: number, ringBytes: number): number {
  return HEADER_BYTES + (worldSize - 1) * (RING_CTRL_BYTES + ringBytes);
}

/**
 * Default ring size: about 32 MiB of rings per host in all (n(n-1) rings), a power of two between
 * 64 KiB and 4 MiB. 4 MiB holds four of the collectives' 1 MiB pieces in flight.
 */
export function defaultShmRingBytes(worldSize: number): number {
  const rings = Math.max(1, worldSize * (worldSize - 1));
  const per = Math.max(64 * 1024, Math.min(4 * MiB, (32 * MiB) / rings));
  return 2 ** Math.floor(Math.log2(per));
}

/** The ring size from `PROGGAN_SHM_RING_BYTES`, or undefined when unset; throws naming the variable. */
export function shmRingBytesFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env[SHM_RING_BYTES_ENV];
  if (raw === undefined || raw.trim() === '') return undefined;
  const v = Number(raw);
  if (!isValidRingBytes(v)) throw new Error(`${SHM_RING_BYTES_ENV} must be a power of two from 4096 to 1073741824, got '${raw}'`);
  return v;
}

function isValidRingBytes(v: number): boolean {
  return Number.isInteger(v) && v >= 4096 && v <= 2 ** 30 && (v & (v - 1)) === 0;
}

// ---------------------------------------------------------------------------------------------
// Loading the addon. The same file as the native backend's (build/Release/proggan_native.node, or
// PROGGAN_NATIVE_ADDON), loaded here without tfjs: distributed/ only moves bytes.

type ShmLoad = { addon: ShmAddon } | { error: string };
let shmLoaded: ShmLoad | undefined;

function loadShmAddon(): ShmLoad {
  if (shmLoaded) return shmLoaded;
  if (process.platform !== 'linux') return (shmLoaded = { error: `platform ${process.platform} is not supported` });
  const fns = ['shmOpen', 'shmUnlink', 'shmClose', 'shmWait', 'shmNotify'];
  shmLoaded = loadNativeAddon<ShmAddon>(fns, (path) => `${path} has no shared memory support (rebuild it: node scripts/build-native.mjs)`);
  return shmLoaded;
}

/** Whether this process can use the shared-memory transport, and why not. */
export function shmSupport(): { available: true } | { available: false; reason: string } {
  const r = loadShmAddon();
  return 'error' in r ? { available: false, reason: r.error } : { available: true };
}

function addonOrThrow(): ShmAddon {
  const r = loadShmAddon();
  if ('error' in r) throw new TransportError('handshake', `shared memory transport unavailable: ${r.error}`);
  return r.addon;
}

// ---------------------------------------------------------------------------------------------
// Segment names and stale segments.

const SHM_DIR = '/dev/shm';
const NAME_RE = /^proggan-.*-r(\d+)-p(\d+)$/;

/** The POSIX name of `rank`'s segment: job id (readable, for /dev/shm), its hash, rank and pid. */
export function shmSegmentName(jobId: string, rank: number, pid: number): string {
  const safe = jobId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 60);
  return `/proggan-${safe}-${fnv1a(jobId)}-r${rank}-p${pid}`;
}

/** Whether process `pid` exists and is not a zombie. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}

/**
 * Unlink proggan segments in /dev/shm whose creator process is gone (left by a crash during
 * setup; after setup names are unlinked at once). Returns the names removed.
 */
export function sweepStaleShmSegments(addon: ShmAddon = addonOrThrow()): string[] {
  let entries: string[];
  try {
    entries = readdirSync(SHM_DIR);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const e of entries) {
    const m = NAME_RE.exec(e);
    if (!m || pidAlive(Number(m[2]))) continue;
    try {
      if (addon.shmUnlink(`/${e}`)) removed.push(e);
    } catch {
      // Another user's segment, or gone meanwhile: not ours to clean.
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// The transport.

/** A message being sent: `done` bytes of its frame (8-byte header, payload, padding) are in the ring. */
interface PendingSend {
  data: Uint8Array;
  done: number;
  frame: number;
  resolve(): void;
  reject(err: Error): void;
}

/** A message being received: `pos` bytes of its padded payload are out of the ring. */
interface Incoming {
  msg: Uint8Array;
  pos: number;
  padded: number;
}

/** Everything about one peer: its segment (our outbound ring lives there) and our inbound ring from it. */
interface Peer {
  rank: number;
  pid: number;
  seg: ArrayBuffer;
  words: Uint32Array;
  bytes: Uint8Array;
  /** Word index of the head / tail of our ring in the peer's segment, byte offset of its data, its size. */
  outHead: number;
  outTail: number;
  outData: number;
  outCap: number;
  /** Our next head (we are the only writer). */
  head: number;
  /** Word index of the head / tail of the peer's ring in our segment, byte offset of its data. */
  inHead: number;
  inTail: number;
  inData: number;
  /** Our next tail (we are the only reader). */
  tail: number;
  sends: PendingSend[];
  /** When the outbound ring last moved (or the first queued send started waiting), ms. */
  lastSendProgress: number;
  incoming: Incoming | undefined;
  /** The peer closed in an orderly way and everything it sent has been read. */
  closed: boolean;
}

/** Tunables of {@link ShmTransport}. */
export interface ShmTransportTuning {
  /** Longest single wait inside the addon before yielding to the event loop, ms; default 5. */
  sliceMs?: number;
  /** Spin this long before sleeping on the futex, µs; default 0 (on a 2-vCPU VM any spin made round trips slower: 4 µs without, 45 µs with 20 µs). */
  spinUs?: number;
  /** Check that peers' processes exist while waiting; default true (off across pid namespaces). */
  pidCheck?: boolean;
}

/** A transport kept open beside the shm one, whose failure means a peer is gone (TCP in practice). */
export interface ShmLifeline {
  close(): Promise<void>;
  abort(reason?: Error): void;
  /** Rejects when the lifeline fails. */
  readonly whenFailed?: Promise<never>;
}

const roundUp8 = (n: number): number => Math.ceil(n / 8) * 8;

/**
 * A {@link Transport} over shared memory rings between processes of one host. Make one with
 * {@link connectShmTransport}.
 */
export class ShmTransport implements Transport {
  readonly rank: number;
  readonly worldSize: number;
  /** Ring size of this rank's inbound rings, bytes. */
  readonly ringBytes: number;
  /** This rank's segment name (unlinked once every rank has mapped it). */
  readonly segmentName: string;
  private readonly addon: ShmAddon;
  private readonly inbox: Inbox;
  private readonly peers: (Peer | undefined)[];
  private readonly peerList: Peer[];
  private readonly mySeg: ArrayBuffer;
  private readonly myWords: Uint32Array;
  private readonly myBytes: Uint8Array;
  private readonly opTimeoutMs: number;
  private readonly sliceMs: number;
  private readonly spinUs: number;
  private readonly pidCheck: boolean;
  private readonly lifeline: ShmLifeline | undefined;
  private readonly log: Logger | undefined;
  private state: 'open' | 'closing' | 'closed' | 'aborted' = 'open';
  private scheduled = false;
  private pendingRecvs = 0;
  private lastPidCheck = 0;
  private released = false;
  /** The lifeline failed by itself (it has told the peers already). */
  private lifelineFailed = false;
  private readonly pumpBound = (): void => this.pump();

  /** @internal use {@link connectShmTransport}. */
  constructor(p: {
    addon: ShmAddon;
    rank: number;
    worldSize: number;
    segmentName: string;
    mySeg: ArrayBuffer;
    peerSegs: Array<{ rank: number; pid: number; seg: ArrayBuffer } | undefined>;
    opTimeoutMs: number;
    lifeline?: ShmLifeline;
    logger?: Logger;
    tuning?: ShmTransportTuning;
  }) {
    this.addon = p.addon;
    this.rank = p.rank;
    this.worldSize = p.worldSize;
    this.segmentName = p.segmentName;
    this.mySeg = p.mySeg;
    this.myWords = new Uint32Array(p.mySeg);
    this.myBytes = new Uint8Array(p.mySeg);
    this.ringBytes = this.myWords[W_RING]!;
    this.opTimeoutMs = p.opTimeoutMs;
    this.sliceMs = p.tuning?.sliceMs ?? 5;
    this.spinUs = p.tuning?.spinUs ?? 0;
    this.pidCheck = p.tuning?.pidCheck ?? true;
    this.lifeline = p.lifeline;
    this.log = p.logger;
    this.inbox = new Inbox(p.rank, p.worldSize, p.opTimeoutMs, (err) => this.onFailure(err));
    this.peers = p.peerSegs.map((s) => {
      if (!s) return undefined;
      const words = new Uint32Array(s.seg);
      // Our outbound ring lives in the peer's segment (its ring size); its ring to us in ours.
      const outCap = words[W_RING]!;
      const outBase = ringOffset(ringSlot(p.rank, s.rank), outCap);
      const inBase = ringOffset(ringSlot(s.rank, p.rank), this.ringBytes);
      const peer: Peer = {
        rank: s.rank,
        pid: s.pid,
        seg: s.seg,
        words,
        bytes: new Uint8Array(s.seg),
        outHead: outBase / 4,
        outTail: (outBase + TAIL_OFFSET) / 4,
        outData: outBase + RING_CTRL_BYTES,
        outCap,
        head: Atomics.load(words, outBase / 4),
        inHead: inBase / 4,
        inTail: (inBase + TAIL_OFFSET) / 4,
        inData: inBase + RING_CTRL_BYTES,
        tail: Atomics.load(this.myWords, (inBase + TAIL_OFFSET) / 4),
        sends: [],
        lastSendProgress: 0,
        incoming: undefined,
        closed: false,
      };
      return peer;
    });
    this.peerList = this.peers.filter((x): x is Peer => x !== undefined);
    // A lifeline failure (a peer's socket closed without goodbye) means that peer is gone.
    p.lifeline?.whenFailed?.catch((err: unknown) => {
      if (err instanceof TransportError && err.code === 'closed') return;
      const e = err instanceof TransportError ? err : new TransportError('peer_lost', `rank ${this.rank}: ${String(err)}`);
      this.lifelineFailed = true;
      this.inbox.fail(e);
    });
  }

  /** The error that poisoned this transport, if any. */
  get error(): TransportError | undefined {
    return this.inbox.error;
  }

  send(peer: number, data: Uint8Array): Promise<void> {
    checkPeer(this.rank, this.worldSize, peer);
    const err = this.inbox.error;
    if (err) return Promise.reject(err);
    if (this.state !== 'open') return Promise.reject(new TransportError('closed', `rank ${this.rank}: transport closed`, this.rank));
    const p = this.peers[peer]!;
    if (p.closed || Atomics.load(p.words, W_STATE) === STATE_CLOSED) {
      return Promise.reject(new TransportError('peer_closed', `rank ${this.rank}: rank ${peer} closed its transport`, peer));
    }
    return new Promise<void>((resolve, reject) => {
      if (p.sends.length === 0) p.lastSendProgress = Date.now();
      p.sends.push({ data, done: 0, frame: 8 + roundUp8(data.byteLength), resolve, reject });
      this.poke();
    });
  }

  recv(peer: number): Promise<Uint8Array> {
    checkPeer(this.rank, this.worldSize, peer);
    const p = this.inbox.take(peer);
    this.pendingRecvs++;
    const done = (): void => {
      this.pendingRecvs--;
    };
    p.then(done, done);
    this.poke();
    return p;
  }

  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    // Let queued messages go out first: the peers may read everything sent before the close.
    this.poke();
    while (this.peerList.some((p) => p.sends.length > 0) && !this.inbox.error) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const alive = this.inbox.error === undefined;
    this.state = 'closed';
    if (alive) {
      Atomics.store(this.myWords, W_STATE, STATE_CLOSED);
      this.ringAll();
    }
    this.inbox.fail(new TransportError('closed', `rank ${this.rank}: transport closed`, this.rank));
    this.release();
    await this.lifeline?.close();
  }

  abort(reason?: Error): void {
    if (this.state === 'aborted') return;
    const wasOpen = this.state === 'open' || this.state === 'closing';
    this.state = 'aborted';
    this.inbox.fail(
      new TransportError('closed', `rank ${this.rank}: transport aborted${reason ? `: ${reason.message}` : ''}`, this.rank, {
        cause: reason,
      }),
    );
    if (wasOpen) {
      // Pass on whom the reason blames (a size mismatch, a timeout), as the TCP transport does.
      const culprit = reason instanceof TransportError && reason.peer !== undefined ? reason.peer : this.rank;
      this.publishAbort(reason ? `rank ${this.rank} aborted: ${reason.message}` : `rank ${this.rank} aborted`, culprit);
    }
    this.rejectSends(this.inbox.error!);
    this.lifeline?.abort(reason);
    setImmediate(() => this.release());
  }

  // --- progress engine -----------------------------------------------------------------------

  private active(): boolean {
    return (this.state === 'open' || this.state === 'closing') && this.inbox.error === undefined;
  }

  private busy(): boolean {
    if (this.pendingRecvs > 0) return true;
    for (const p of this.peerList) if (p.sends.length > 0 || p.incoming !== undefined) return true;
    return false;
  }

  /** Make what progress is possible now, and keep the engine running while anything is pending. */
  private poke(): void {
    if (!this.active()) return;
    this.sweep();
    if (this.active() && this.busy()) this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.pumpBound);
  }

  /**
   * One turn of the engine: sweep, and while nothing moves wait on the doorbell, for at most one
   * slice; then yield to the event loop (at once when a message or send completed, so the
   * continuations waiting on it run).
   */
  private pump(): void {
    this.scheduled = false;
    const until = Date.now() + this.sliceMs;
    while (this.active()) {
      // Read the doorbell before sweeping: a peer that writes after our sweep looked has bumped it.
      const bell = Atomics.load(this.myWords, DOORBELL_OFFSET / 4);
      const r = this.sweep();
      if (!this.active() || !this.busy()) return;
      this.checkLiveness();
      if (!this.active()) return;
      const left = until - Date.now();
      if (r === 2 || left <= 0) break;
      if (r === 0 && this.addon.shmWait(this.mySeg, DOORBELL_OFFSET, bell, left, this.spinUs) === 1) break;
    }
    if (this.active() && this.busy()) this.schedule();
  }

  /**
   * Copy what fits out of every inbound ring and into every outbound ring, a few rounds, ringing
   * the doorbell of each peer whose ring moved. Returns 0 when nothing moved, 1 when bytes moved,
   * 2 when a message or a send completed (then it stops, so the continuations run first).
   */
  private sweep(): 0 | 1 | 2 {
    let any: 0 | 1 | 2 = 0;
    for (let round = 0; round < 8 && this.active(); round++) {
      let moved = false;
      for (const p of this.peerList) {
        const r = this.drain(p);
        if (r !== 0) {
          moved = true;
          if (r === 2) any = 2;
          this.addon.shmNotify(p.seg, DOORBELL_OFFSET);
        }
        if (!this.active()) return 2;
      }
      for (const p of this.peerList) {
        const r = this.fill(p);
        if (r !== 0) {
          moved = true;
          if (r === 2) any = 2;
          this.addon.shmNotify(p.seg, DOORBELL_OFFSET);
        }
      }
      if (!moved) break;
      if (any === 0) any = 1;
      if (any === 2) break;
    }
    if (this.active()) this.checkPeerStates();
    return any;
  }

  /** Read from `p`'s ring into us: 0 nothing, 1 bytes moved, 2 a message was completed. */
  private drain(p: Peer): 0 | 1 | 2 {
    const cap = this.ringBytes;
    const mask = cap - 1;
    let result: 0 | 1 | 2 = 0;
    for (;;) {
      const head = Atomics.load(this.myWords, p.inHead);
      let avail = (head - p.tail) >>> 0;
      if (avail === 0) break;
      if (p.incoming === undefined) {
        if (avail < 8) break;
        // Frames start 8-byte aligned, so the header never wraps.
        const at = (p.inData + (p.tail & mask)) / 4;
        const len = this.myWords[at]! + this.myWords[at + 1]! * 2 ** 32;
        if (len > MAX_MESSAGE_BYTES || avail > cap) {
          this.inbox.fail(new TransportError('protocol', `rank ${this.rank}: corrupt ring from rank ${p.rank} (frame of ${len} bytes)`, p.rank));
          return 0;
        }
        // Never from Buffer's shared pool: the message owns its memory and starts at offset 0.
        p.incoming = { msg: Buffer.allocUnsafeSlow(len), pos: 0, padded: roundUp8(len) };
        p.tail = (p.tail + 8) >>> 0;
        avail -= 8;
        result = 1;
      }
      const inc = p.incoming;
      const n = Math.min(avail, inc.padded - inc.pos);
      const real = Math.min(inc.pos + n, inc.msg.byteLength) - inc.pos;
      if (real > 0) ringRead(this.myBytes, p.inData, cap, p.tail & mask, inc.msg.subarray(inc.pos, inc.pos + real));
      inc.pos += n;
      p.tail = (p.tail + n) >>> 0;
      if (n > 0) result = 1;
      Atomics.store(this.myWords, p.inTail, p.tail);
      if (inc.pos === inc.padded) {
        p.incoming = undefined;
        this.inbox.deliver(p.rank, inc.msg);
        result = 2;
        if (!this.active()) return result;
      } else {
        break;
      }
    }
    return result;
  }

  /** Write queued messages to `p` into its ring for us: 0 nothing, 1 bytes moved, 2 a send completed. */
  private fill(p: Peer): 0 | 1 | 2 {
    const cap = p.outCap;
    const mask = cap - 1;
    let moved: 0 | 1 | 2 = 0;
    while (p.sends.length > 0) {
      const s = p.sends[0]!;
      if (Atomics.load(p.words, W_STATE) !== STATE_OPEN) break; // checkPeerStates settles it
      const tail = Atomics.load(p.words, p.outTail);
      let free = cap - ((p.head - tail) >>> 0);
      if (free === 0) break;
      if (s.done === 0) {
        if (free < 8) break;
        const at = (p.outData + (p.head & mask)) / 4;
        const len = s.data.byteLength;
        p.words[at] = len % 2 ** 32;
        p.words[at + 1] = Math.floor(len / 2 ** 32);
        p.head = (p.head + 8) >>> 0;
        s.done = 8;
        free -= 8;
      }
      const pos = s.done - 8;
      const n = Math.min(free, s.frame - s.done);
      const real = Math.min(pos + n, s.data.byteLength) - pos;
      if (real > 0) ringWrite(p.bytes, p.outData, cap, p.head & mask, s.data.subarray(pos, pos + real));
      p.head = (p.head + n) >>> 0;
      s.done += n;
      // Publish after the copy: the store is sequentially consistent, the bytes are visible first.
      Atomics.store(p.words, p.outHead, p.head);
      if (moved === 0) moved = 1;
      p.lastSendProgress = Date.now();
      if (s.done < s.frame) break;
      p.sends.shift();
      s.resolve();
      moved = 2;
    }
    return moved;
  }

  /** Settle the effects of peers' closed and aborted flags. */
  private checkPeerStates(): void {
    for (const p of this.peerList) {
      if (p.closed) continue;
      const state = Atomics.load(p.words, W_STATE);
      if (state === STATE_ABORTED) {
        const culprit = Atomics.load(p.words, W_CULPRIT);
        const len = Math.min(REASON_MAX, Atomics.load(p.words, W_REASON_LEN));
        const reason = Buffer.from(p.bytes.subarray(REASON_OFFSET, REASON_OFFSET + len)).toString('utf8') || 'no reason given';
        this.inbox.fail(
          new TransportError('peer_lost', `rank ${this.rank}: rank ${p.rank} gave up: ${reason}`, culprit > 0 ? culprit - 1 : p.rank),
        );
        return;
      }
      if (state === STATE_CLOSED) {
        // The closed flag is stored after the peer's last head: if it is set, the head is final.
        if (Atomics.load(this.myWords, p.inHead) === p.tail && p.incoming === undefined) {
          p.closed = true;
          this.inbox.peerClosed(p.rank);
        }
        if (p.sends.length > 0) {
          const err = new TransportError('peer_closed', `rank ${this.rank}: rank ${p.rank} closed its transport`, p.rank);
          for (const s of p.sends.splice(0)) s.reject(err);
        }
      }
    }
  }

  /** Fail on peers whose process is gone and on sends that made no progress for the op timeout. */
  private checkLiveness(): void {
    const now = Date.now();
    for (const p of this.peerList) {
      if (p.sends.length > 0 && now - p.lastSendProgress > this.opTimeoutMs) {
        const s = p.sends[0]!;
        this.inbox.fail(
          new TransportError(
            'timeout',
            `rank ${this.rank}: sending ${s.data.byteLength} bytes to rank ${p.rank} did not finish within ${this.opTimeoutMs} ms ` +
              `(rank ${p.rank} is not reading)`,
            p.rank,
          ),
        );
        return;
      }
    }
    if (!this.pidCheck || now - this.lastPidCheck < PID_CHECK_MS) return;
    this.lastPidCheck = now;
    for (const p of this.peerList) {
      if (p.closed || pidAlive(p.pid)) continue;
      // It may have closed (or aborted, naming someone) just before exiting: those flags win.
      this.checkPeerStates();
      if (!this.active() || p.closed || Atomics.load(p.words, W_STATE) === STATE_CLOSED) continue;
      this.inbox.fail(
        new TransportError('peer_lost', `rank ${this.rank}: lost rank ${p.rank} (pid ${p.pid}): its process is gone`, p.rank),
      );
      return;
    }
  }

  // --- failure and teardown ------------------------------------------------------------------

  private onFailure(err: TransportError): void {
    if (err.code !== 'closed' && (this.state === 'open' || this.state === 'closing')) {
      // Tell the peers why (so their errors name the rank at fault, not us), on both channels.
      this.log?.error({ err: err.message, peer: err.peer }, 'transport failed');
      this.publishAbort(err.message, err.peer);
      this.state = 'aborted';
      if (!this.lifelineFailed) this.lifeline?.abort(err);
      setImmediate(() => this.release());
    }
    this.rejectSends(err);
  }

  private rejectSends(err: TransportError): void {
    for (const p of this.peerList) for (const s of p.sends.splice(0)) s.reject(err);
  }

  /** Write why we give up and whom we blame into our header, then ring every peer. */
  private publishAbort(reason: string, culprit: number | undefined): void {
    if (this.released) return;
    const text = Buffer.from(reason, 'utf8').subarray(0, REASON_MAX);
    this.myBytes.set(text, REASON_OFFSET);
    Atomics.store(this.myWords, W_REASON_LEN, text.byteLength);
    Atomics.store(this.myWords, W_CULPRIT, culprit === undefined ? 0 : culprit + 1);
    Atomics.store(this.myWords, W_STATE, STATE_ABORTED);
    this.ringAll();
  }

  private ringAll(): void {
    for (const p of this.peerList) this.addon.shmNotify(p.seg, DOORBELL_OFFSET);
  }

  /** Unmap every segment and make sure our name is gone. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    try {
      this.addon.shmUnlink(this.segmentName);
    } catch {
      // Already gone is the normal case.
    }
    for (const p of this.peerList) this.addon.shmClose(p.seg);
    this.addon.shmClose(this.mySeg);
  }
}

/** Slot of the ring from `from` inside `to`'s segment (rings for the n-1 peers, in rank order). */
function ringSlot(from: number, to: number): number {
  return from < to ? from : from - 1;
}

/** Byte offset of ring `slot` in a segment whose rings hold `cap` bytes each. */
function ringOffset(slot: number, cap: number): number {
  return HEADER_BYTES + slot * (RING_CTRL_BYTES + cap);
}

function ringWrite(bytes: Uint8Array, base: number, cap: number, pos: number, src: Uint8Array): void {
  const first = Math.min(src.byteLength, cap - pos);
  bytes.set(first === src.byteLength ? src : src.subarray(0, first), base + pos);
  if (first < src.byteLength) bytes.set(src.subarray(first), base);
}

function ringRead(bytes: Uint8Array, base: number, cap: number, pos: number, dst: Uint8Array): void {
  const first = Math.min(dst.byteLength, cap - pos);
  dst.set(bytes.subarray(base + pos, base + pos + first));
  if (first < dst.byteLength) dst.set(bytes.subarray(base, base + dst.byteLength - first), first);
}

/** Initialise a freshly created segment: header fields, then the magic word last. */
function initSegment(seg: ArrayBuffer, worldSize: number, rank: number, ringBytes: number): void {
  const w = new Uint32Array(seg);
  w[W_VERSION] = LAYOUT_VERSION;
  w[W_WORLD] = worldSize;
  w[W_RANK] = rank;
  w[W_RING] = ringBytes;
  w[W_PID] = process.pid;
  w[W_STATE] = STATE_OPEN;
  Atomics.store(w, W_MAGIC, MAGIC);
}

/** Why `seg` is not `rank`'s segment of this job as announced, or undefined when it is. */
function checkSegment(seg: ArrayBuffer, worldSize: number, rank: number, pid: number): string | undefined {
  const w = new Uint32Array(seg);
  if (Atomics.load(w, W_MAGIC) !== MAGIC) return 'bad magic';
  if (w[W_VERSION] !== LAYOUT_VERSION) return `layout version ${w[W_VERSION]}, expected ${LAYOUT_VERSION}`;
  if (w[W_WORLD] !== worldSize || w[W_RANK] !== rank) return `it is rank ${w[W_RANK]} of ${w[W_WORLD]}`;
  if (w[W_PID] !== pid) return `it belongs to pid ${w[W_PID]}, not ${pid}`;
  if (!isValidRingBytes(w[W_RING]!)) return `invalid ring size ${w[W_RING]}`;
  if (seg.byteLength !== shmSegmentBytes(worldSize, w[W_RING]!)) return `size ${seg.byteLength} does not match its ring size`;
  if (w[W_STATE] !== STATE_OPEN) return 'it is no longer open';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Setup.

/** Options of {@link connectShmTransport}. */
export interface ShmSetupOptions {
  /** Job id every rank shares; part of the segment names. */
  jobId: string;
  /** Process id of every rank, by rank (exchanged beforehand). */
  pids: number[];
  /** Size of this rank's inbound rings (power of two); default `PROGGAN_SHM_RING_BYTES` or {@link defaultShmRingBytes}. */
  ringBytes?: number;
  /** Bound on one send or receive in ms; default `PROGGAN_COLLECTIVE_TIMEOUT_MS` or 60000. */
  opTimeoutMs?: number;
  /** Keep the setup transport open as a lifeline (its failure fails this one); default true. */
  keepLifeline?: boolean;
  /** Throw when setup fails on some rank; default false: every rank returns undefined (use the setup transport). */
  required?: boolean;
  /** Waiting tunables. */
  tuning?: ShmTransportTuning;
  /** Where to log; default none. */
  logger?: Logger;
}

interface SetupReport {
  ok: boolean;
  error?: string;
  name?: string;
}

async function exchange(t: Transport, mine: SetupReport): Promise<SetupReport[]> {
  const all = await allGatherBytes(t, new TextEncoder().encode(JSON.stringify(mine)));
  return all.map((b, r) => {
    try {
      return JSON.parse(new TextDecoder().decode(b)) as SetupReport;
    } catch {
      throw new TransportError('protocol', `rank ${t.rank}: rank ${r} sent an unreadable shared memory setup report`, r);
    }
  });
}

/**
 * Build a {@link ShmTransport} among the ranks of `setup` (an established transport, normally
 * TCP, that all ranks share; they must all be on this host). Every rank must call this together.
 * When setup fails on any rank, every rank cleans up and gets undefined (or, with `required`, a
 * TransportError naming the first rank that failed), so all agree on the transport to use.
 */
export async function connectShmTransport(
  setup: Transport & Partial<ShmLifeline>,
  opts: ShmSetupOptions,
): Promise<ShmTransport | undefined> {
  const { rank, worldSize: n } = setup;
  const addon = loadShmAddon();
  const ringBytes = opts.ringBytes ?? shmRingBytesFromEnv() ?? defaultShmRingBytes(n);
  if (!isValidRingBytes(ringBytes)) throw new RangeError(`ringBytes must be a power of two from 4096 to 1 GiB, got ${ringBytes}`);
  const name = shmSegmentName(opts.jobId, rank, process.pid);
  const bail = (reports: SetupReport[]): undefined => {
    const bad = reports.findIndex((r) => !r.ok);
    const why = `rank ${bad}: ${reports[bad]?.error ?? 'failed'}`;
    if (opts.required) throw new TransportError('handshake', `rank ${rank}: shared memory setup failed on ${why}`, bad);
    opts.logger?.warn({ rank, reason: why }, `shared memory setup failed (${why}); using the setup transport`);
    return undefined;
  };

  // Create this rank's segment (after clearing what crashed runs left behind).
  let mine: ArrayBuffer | undefined;
  let error: string | undefined;
  if ('error' in addon) error = addon.error;
  else {
    try {
      sweepStaleShmSegments(addon.addon);
      addon.addon.shmUnlink(name);
      mine = addon.addon.shmOpen(name, shmSegmentBytes(n, ringBytes), true);
      initSegment(mine, n, rank, ringBytes);
    } catch (err) {
      error = (err as Error).message;
    }
  }
  const lib = 'addon' in addon ? addon.addon : undefined;
  const dropMine = (): void => {
    if (!lib || !mine) return;
    try {
      lib.shmUnlink(name);
    } catch {
      // gone already
    }
    lib.shmClose(mine);
  };
  const created = await exchange(setup, error === undefined ? { ok: true, name } : { ok: false, error }).catch((err: unknown) => {
    dropMine();
    throw err;
  });
  if (created.some((r) => !r.ok) || !lib || !mine) {
    dropMine();
    return bail(created);
  }

  // Map every peer's segment and check it is the one announced.
  const peerSegs: Array<{ rank: number; pid: number; seg: ArrayBuffer } | undefined> = new Array(n).fill(undefined);
  error = undefined;
  for (let q = 0; q < n && error === undefined; q++) {
    if (q === rank) continue;
    const peerName = created[q]?.name ?? '';
    const pid = opts.pids[q] ?? -1;
    try {
      const seg = lib.shmOpen(peerName, 0, false);
      const bad = checkSegment(seg, n, q, pid);
      peerSegs[q] = { rank: q, pid, seg };
      if (bad) error = `segment ${peerName} of rank ${q}: ${bad}`;
    } catch (err) {
      error = `cannot map rank ${q}'s segment ${peerName}: ${(err as Error).message}`;
    }
  }
  const dropAll = (): void => {
    dropMine();
    for (const s of peerSegs) if (s) lib.shmClose(s.seg);
  };
  const attached = await exchange(setup, error === undefined ? { ok: true } : { ok: false, error }).catch((err: unknown) => {
    dropAll();
    throw err;
  });
  if (attached.some((r) => !r.ok)) {
    dropAll();
    return bail(attached);
  }

  // Every rank has mapped every segment: the names are no longer needed.
  lib.shmUnlink(name);
  const keep = opts.keepLifeline ?? true;
  const transport = new ShmTransport({
    addon: lib,
    rank,
    worldSize: n,
    segmentName: name,
    mySeg: mine,
    peerSegs,
    opTimeoutMs: opts.opTimeoutMs ?? opTimeoutFromEnv(),
    ...(keep ? { lifeline: setup as ShmLifeline } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.tuning ? { tuning: opts.tuning } : {}),
  });
  if (!keep) await setup.close();
  return transport;
}
