/**
 * A pure-JS TensorBoard event-file writer for scalars (no tfjs-node needed).
 *
 * An event file is a TFRecord stream: each record is `uint64 LE length`, `uint32 LE
 * masked CRC32C(length bytes)`, `data`, `uint32 LE masked CRC32C(data)`. The data are serialised
 * `tensorflow.Event` protos (tensorflow/core/util/event.proto): `wall_time` = 1 (double),
 * `step` = 2 (int64), `file_version` = 3 (string), `summary` = 5 (Summary); `Summary.value` = 1
 * (repeated Value); `Value.tag` = 1 (string), `Value.simple_value` = 2 (float). The first record
 * carries `file_version: "brain.Event:2"`.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

/** CRC32C (Castagnoli, reflected polynomial 0x82F63B78) lookup table, one byte at a time. */
const CRC32C_TABLE = ((): Uint32Array => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC32C of `bytes` as an unsigned 32-bit integer; `crc32c("123456789") === 0xE3069283`. */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    crc = (CRC32C_TABLE[(crc ^ (bytes[i] ?? 0)) & 0xff] ?? 0) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** The TFRecord masking of a CRC: rotate right by 15 bits, add 0xa282ead8 (mod 2^32). */
export function maskCrc32c(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** Frame one TFRecord: length, masked CRC of the length, data, masked CRC of the data. */
export function encodeTfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskCrc32c(crc32c(out.subarray(0, 8))), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskCrc32c(crc32c(data)), 12 + data.length);
  return out;
}

/** Minimal protobuf writer: just the wire types an Event needs. */
class ProtoWriter {
  private readonly parts: Buffer[] = [];

  /** Field with wire type 1 (64-bit): a double. */
  double(field: number, value: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    return this.key(field, 1).push(b);
  }

  /** Field with wire type 5 (32-bit): a float. */
  float(field: number, value: number): this {
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    return this.key(field, 5).push(b);
  }

  /** Field with wire type 0: an int64 as a varint (negative values take ten bytes). */
  int64(field: number, value: number | bigint): this {
    return this.key(field, 0).push(varint(BigInt.asUintN(64, BigInt(value))));
  }

  /** Field with wire type 2: length-delimited bytes (strings, embedded messages). */
  bytes(field: number, value: Uint8Array): this {
    return this.key(field, 2).push(varint(BigInt(value.length))).push(Buffer.from(value));
  }

  /** Field with wire type 2 holding UTF-8 text. */
  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  /** The serialised message. */
  finish(): Buffer {
    return Buffer.concat(this.parts);
  }

  private key(field: number, wireType: number): this {
    return this.push(varint(BigInt((field << 3) | wireType)));
  }

  private push(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
}

function varint(v: bigint): Buffer {
  const bytes: number[] = [];
  let x = v;
  while (x >= 0x80n) {
    bytes.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  bytes.push(Number(x));
  return Buffer.from(bytes);
}

/** Serialise `Event{wall_time, file_version}`. */
export function encodeFileVersionEvent(wallTime: number): Buffer {
  return new ProtoWriter().double(1, wallTime).string(3, 'brain.Event:2').finish();
}

/** Serialise `Event{wall_time, step, summary: Summary{value: [Value{tag, simple_value}...]}}`. */
export function encodeScalarsEvent(wallTime: number, step: number, scalars: Array<[string, number]>): Buffer {
  const summary = new ProtoWriter();
  for (const [tag, value] of scalars) {
    summary.bytes(1, new ProtoWriter().string(1, tag).float(2, value).finish());
  }
  return new ProtoWriter().double(1, wallTime).int64(2, step).bytes(5, summary.finish()).finish();
}

/** Options of {@link TensorBoardWriter}. */
export interface TensorBoardWriterOptions {
  /** Records buffered before they are written; default 1 (each `scalar`/`scalars` call is written at once). */
  maxQueue?: number;
}

/**
 * Writes scalar summaries to `logDir/events.out.tfevents.<secs>.<hostname>` (a `.<pid>.<n>`
 * suffix is added if that name is taken). Records are written synchronously as they come (or,
 * with `maxQueue` > 1, when that many are buffered, on {@link flush} and on {@link close}), so a
 * killed run keeps every written event.
 */
export class TensorBoardWriter {
  /** Path of the event file. */
  readonly path: string;
  private fd: number | null;
  private queue: Buffer[] = [];
  private readonly maxQueue: number;

  /** Create the event file and write its `file_version` record. */
  constructor(logDir: string, opts: TensorBoardWriterOptions = {}) {
    this.maxQueue = Math.max(1, opts.maxQueue ?? 1);
    mkdirSync(logDir, { recursive: true });
    const now = Date.now() / 1000;
    const base = path.join(logDir, `events.out.tfevents.${Math.floor(now)}.${hostname()}`);
    let file = base;
    let fd: number | undefined;
    for (let n = 0; fd === undefined; n++) {
      try {
        fd = openSync(file, 'wx');
      } catch (err) {
        if (typeof err !== 'object' || err === null || !('code' in err) || err.code !== 'EEXIST' || n > 1000) throw err;
        file = `${base}.${process.pid}.${n + 1}`;
      }
    }
    this.fd = fd;
    this.path = file;
    this.queue.push(encodeTfRecord(encodeFileVersionEvent(now)));
    this.flush();
  }

  /** Record `value` under `tag` at `step` (wall time: now). */
  scalar(tag: string, value: number, step: number): void {
    this.scalars({ [tag]: value }, step);
  }

  /** Record several scalars at one step in one event, e.g. a whole tick of statistics means. */
  scalars(values: Record<string, number>, step: number): void {
    if (this.fd === null) throw new Error(`TensorBoardWriter for ${this.path} is closed`);
    if (!Number.isSafeInteger(step)) throw new RangeError(`step must be an integer, got ${step}`);
    const entries = Object.entries(values);
    if (entries.length === 0) return;
    this.queue.push(encodeTfRecord(encodeScalarsEvent(Date.now() / 1000, step, entries)));
    if (this.queue.length >= this.maxQueue) this.flush();
  }

  /** Write the buffered records to the file. */
  flush(): void {
    if (this.fd === null || this.queue.length === 0) return;
    const buf = Buffer.concat(this.queue);
    this.queue = [];
    let done = 0;
    while (done < buf.byteLength) done += writeSync(this.fd, buf, done, buf.byteLength - done);
  }

  /** Flush, fsync and close; later `scalar` calls throw. Safe to call twice. */
  close(): void {
    if (this.fd === null) return;
    this.flush();
    const fd = this.fd;
    this.fd = null;
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
