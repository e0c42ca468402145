/**
 * A pure-JS TensorBoard event-file writer (no tfjs-node needed): scalars, PNG images, text and
 * hyper-parameters in the HParams plugin's format.
 *
 * An event file is a TFRecord stream: each record is `uint64 LE length`, `uint32 LE
 * masked CRC32C(length bytes)`, `data`, `uint32 LE masked CRC32C(data)`. The data are serialised
 * `tensorflow.Event` protos (tensorflow/core/util/event.proto): `wall_time` = 1 (double),
 * `step` = 2 (int64), `file_version` = 3 (string), `summary` = 5 (Summary); `Summary.value` = 1
 * (repeated Value); `Value.tag` = 1 (string), `Value.simple_value` = 2 (float), `Value.tensor` = 8
 * (TensorProto), `Value.metadata` = 9 (SummaryMetadata, whose `plugin_data` = 1 names the plugin that
 * shows the value: `images`, `text`, `hparams`). The first record carries
 * `file_version: "brain.Event:2"`.
 *
 * Images are written as TensorFlow 2's `tf.summary.image` writes them: a string tensor of shape `[3]`
 * holding width, height (decimal text) and the encoded PNG. Text is a scalar string tensor (Markdown)
 * under the `text` plugin. Hyper-parameters are a `session_start_info` record of the `hparams`
 * plugin (tensorboard/plugins/hparams/plugin_data.proto): `HParamsPluginData{version=1,
 * session_start_info=3: SessionStartInfo{hparams=1: map<string, google.protobuf.Value>,
 * start_time_secs=5}}`; TensorBoard infers the hparams table's columns from it and the run's scalars.
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

/** TensorFlow `DataType` enum values used here (tensorflow/core/framework/types.proto). */
const DT_FLOAT = 1;
const DT_STRING = 7;

/** `TensorShapeProto{dim: [{size}]...}`. */
function encodeShape(dims: number[]): Buffer {
  const w = new ProtoWriter();
  for (const d of dims) w.bytes(2, new ProtoWriter().int64(1, d).finish());
  return w.finish();
}

/** `TensorProto{dtype: DT_STRING, tensor_shape, string_val...}`. */
function encodeStringTensor(values: Uint8Array[], dims: number[]): Buffer {
  const w = new ProtoWriter().int64(1, DT_STRING).bytes(2, encodeShape(dims));
  for (const v of values) w.bytes(8, v);
  return w.finish();
}

/** `SummaryMetadata{plugin_data: PluginData{plugin_name, content}}`. */
function encodePluginMetadata(plugin: string, content: Uint8Array = new Uint8Array(0)): Buffer {
  const data = new ProtoWriter().string(1, plugin);
  if (content.length > 0) data.bytes(2, content);
  return new ProtoWriter().bytes(1, data.finish()).finish();
}

/** Wrap one `Value` into `Event{wall_time, step, summary: Summary{value: [value]}}`. */
function encodeValueEvent(wallTime: number, step: number, value: Buffer): Buffer {
  const summary = new ProtoWriter().bytes(1, value).finish();
  return new ProtoWriter().double(1, wallTime).int64(2, step).bytes(5, summary).finish();
}

/** The width and height of a PNG from its IHDR chunk; throws for bytes that are not a PNG. */
export function pngSize(png: Uint8Array): { width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (png.length < 24 || sig.some((b, i) => png[i] !== b)) throw new Error('not a PNG image (bad signature)');
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Serialise an image summary (`images` plugin): tensor `[width, height, png]` as TF 2 writes it. */
export function encodeImageEvent(wallTime: number, step: number, tag: string, png: Uint8Array): Buffer {
  const { width, height } = pngSize(png);
  const tensor = encodeStringTensor([Buffer.from(String(width)), Buffer.from(String(height)), png], [3]);
  const value = new ProtoWriter().string(1, tag).bytes(9, encodePluginMetadata('images')).bytes(8, tensor).finish();
  return encodeValueEvent(wallTime, step, value);
}

/** Serialise a text summary (`text` plugin; TensorBoard renders it as Markdown). */
export function encodeTextEvent(wallTime: number, step: number, tag: string, markdown: string): Buffer {
  const tensor = encodeStringTensor([Buffer.from(markdown, 'utf8')], []);
  const value = new ProtoWriter().string(1, tag).bytes(9, encodePluginMetadata('text')).bytes(8, tensor).finish();
  return encodeValueEvent(wallTime, step, value);
}

/** A hyper-parameter value as the HParams plugin stores it (a `google.protobuf.Value`). */
export type HParamValue = number | string | boolean;

/** `google.protobuf.Value`: number_value = 2 (double), string_value = 3, bool_value = 4. */
function encodeProtoValue(v: HParamValue): Buffer {
  if (typeof v === 'number') return new ProtoWriter().double(2, v).finish();
  if (typeof v === 'boolean') return new ProtoWriter().int64(4, v ? 1 : 0).finish();
  return new ProtoWriter().string(3, v).finish();
}

/** Serialise the HParams plugin's `session_start_info` record for `hparams`. */
export function encodeHParamsEvent(wallTime: number, hparams: Record<string, HParamValue>, groupName = ''): Buffer {
  const start = new ProtoWriter();
  for (const [key, v] of Object.entries(hparams)) {
    start.bytes(1, new ProtoWriter().string(1, key).bytes(2, encodeProtoValue(v)).finish());
  }
  if (groupName !== '') start.string(4, groupName);
  start.double(5, wallTime);
  const pluginData = new ProtoWriter().int64(1, 0).bytes(3, start.finish()).finish();
  // The plugin reads only the metadata; the tensor is an empty float scalar as TensorBoard's own writer leaves it.
  const tensor = new ProtoWriter().int64(1, DT_FLOAT).bytes(2, encodeShape([])).finish();
  const value = new ProtoWriter()
    .string(1, '_hparams_/session_start_info')
    .bytes(9, encodePluginMetadata('hparams', pluginData))
    .bytes(8, tensor)
    .finish();
  return encodeValueEvent(wallTime, 0, value);
}

/**
 * Flatten a nested JSON config into HParams values with dotted keys
 * (`{ optim: { lr: 1e-3 } }` -> `{ 'optim.lr': 0.001 }`); arrays become their JSON text, nulls are left out.
 */
export function flattenHParams(config: unknown, prefix = ''): Record<string, HParamValue> {
  const out: Record<string, HParamValue> = {};
  if (typeof config !== 'object' || config === null) return out;
  for (const [k, v] of Object.entries(config)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') out[key] = v;
    else if (Array.isArray(v)) out[key] = JSON.stringify(v);
    else if (typeof v === 'object' && v !== null) Object.assign(out, flattenHParams(v, key));
  }
  return out;
}

/** Options of {@link TensorBoardWriter}. */
export interface TensorBoardWriterOptions {
  /** Records buffered before they are written; default 1 (each `scalar`/`scalars` call is written at once). */
  maxQueue?: number;
}

/**
 * Writes scalar, image, text and hparams summaries to `logDir/events.out.tfevents.<secs>.<hostname>` (a `.<pid>.<n>`
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
    this.checkStep(step);
    const entries = Object.entries(values);
    if (entries.length === 0) return;
    this.push(encodeScalarsEvent(Date.now() / 1000, this.checkStep(step), entries));
  }

  private checkStep(step: number): number {
    if (this.fd === null) throw new Error(`TensorBoardWriter for ${this.path} is closed`);
    if (!Number.isSafeInteger(step)) throw new RangeError(`step must be an integer, got ${step}`);
    return step;
  }

  private push(event: Buffer): void {
    if (this.fd === null) throw new Error(`TensorBoardWriter for ${this.path} is closed`);
    this.queue.push(encodeTfRecord(event));
    if (this.queue.length >= this.maxQueue) this.flush();
  }

  /** Record a PNG image (e.g. a sample grid) under `tag` at `step`; it shows in TensorBoard's Images tab. */
  image(tag: string, png: Uint8Array, step: number): void {
    this.push(encodeImageEvent(Date.now() / 1000, this.checkStep(step), tag, png));
  }

  /** Record Markdown `text` under `tag` at `step` (the Text tab), e.g. the resolved config. */
  text(tag: string, markdown: string, step: number): void {
    this.push(encodeTextEvent(Date.now() / 1000, this.checkStep(step), tag, markdown));
  }

  /** Record the run's hyper-parameters for the HParams tab (once per run, before its metrics). */
  hparams(values: Record<string, HParamValue>, groupName = ''): void {
    this.push(encodeHParamsEvent(Date.now() / 1000, values, groupName));
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
