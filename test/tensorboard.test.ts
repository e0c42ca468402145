/**
 * TensorBoard event files read back by an independent decoder written here from the proto field
 * numbers (tensorflow event.proto / summary.proto / tensor.proto, tensorboard plugin_data.proto):
 * every record's two masked CRC32Cs are checked, then the image, text, hparams and scalar values.
 * The second part trains a toy objective through the real trainer and finds a sample grid per
 * sample tick, the config as text and the hyper-parameters in the run's event file.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Pipeline, type ExampleDataset } from '../src/data/pipeline.js';
import type { LoopConfig } from '../src/training/config.js';
import type { Batch, Objective, Phase, PhaseResult } from '../src/training/objective.js';
import { writeImageGrid } from '../src/training/samples.js';
import { crc32c, flattenHParams, maskCrc32c, pngSize, TensorBoardWriter } from '../src/training/tensorboard.js';
import { train } from '../src/training/trainer.js';

/** Protobuf fields of one message: field number -> raw values (numbers for varints, bytes otherwise). */
type Fields = Map<number, Array<bigint | Buffer>>;

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos++];
    if (b === undefined) throw new Error('truncated varint');
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

function decode(buf: Buffer): Fields {
  const out: Fields = new Map();
  let pos = 0;
  while (pos < buf.length) {
    const [key, p] = readVarint(buf, pos);
    pos = p;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    let value: bigint | Buffer;
    if (wire === 0) [value, pos] = readVarint(buf, pos);
    else if (wire === 1) { value = buf.subarray(pos, pos + 8); pos += 8; }
    else if (wire === 5) { value = buf.subarray(pos, pos + 4); pos += 4; }
    else if (wire === 2) {
      const [len, q] = readVarint(buf, pos);
      value = buf.subarray(q, q + Number(len));
      pos = q + Number(len);
    } else throw new Error(`unexpected wire type ${wire}`);
    const list = out.get(field) ?? [];
    list.push(value);
    out.set(field, list);
  }
  return out;
}

const bytes = (f: Fields, n: number): Buffer[] => (f.get(n) ?? []).filter((v): v is Buffer => Buffer.isBuffer(v));
const one = (f: Fields, n: number): Buffer => {
  const b = bytes(f, n)[0];
  if (!b) throw new Error(`field ${n} missing`);
  return b;
};
const int = (f: Fields, n: number): number => Number((f.get(n) ?? [])[0] ?? -1n);

/** Split an event file into records, checking both masked CRCs of each. */
function readRecords(file: string): Buffer[] {
  const buf = readFileSync(file);
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const len = Number(buf.readBigUInt64LE(pos));
    expect(buf.readUInt32LE(pos + 8)).toBe(maskCrc32c(crc32c(buf.subarray(pos, pos + 8))));
    const data = buf.subarray(pos + 12, pos + 12 + len);
    expect(buf.readUInt32LE(pos + 12 + len)).toBe(maskCrc32c(crc32c(data)));
    out.push(data);
    pos += 16 + len;
  }
  return out;
}

interface SummaryValue {
  step: number;
  tag: string;
  plugin: string | null;
  pluginContent: Buffer | null;
  simple: number | null;
  tensor: Fields | null;
}

/** Every Summary.Value of an event file with its event's step. */
function readValues(file: string): SummaryValue[] {
  const records = readRecords(file);
  expect(one(decode(records[0] as Buffer), 3).toString()).toBe('brain.Event:2');
  const out: SummaryValue[] = [];
  for (const rec of records.slice(1)) {
    const ev = decode(rec);
    const step = int(ev, 2);
    for (const v of bytes(decode(one(ev, 5)), 1)) {
      const val = decode(v);
      const meta = bytes(val, 9)[0];
      const pluginData = meta ? decode(one(decode(meta), 1)) : null;
      const simple = bytes(val, 2)[0];
      const tensor = bytes(val, 8)[0];
      out.push({
        step,
        tag: one(val, 1).toString(),
        plugin: pluginData ? one(pluginData, 1).toString() : null,
        pluginContent: pluginData ? (bytes(pluginData, 2)[0] ?? null) : null,
        simple: simple ? simple.readFloatLE(0) : null,
        tensor: tensor ? decode(tensor) : null,
      });
    }
  }
  return out;
}

/** The dims of a TensorProto's shape. */
const dims = (t: Fields): number[] => bytes(decode(bytes(t, 2)[0] ?? Buffer.alloc(0)), 2).map((d) => int(decode(d), 1));

/** HParams from a `_hparams_/session_start_info` plugin content. */
function sessionStartHParams(content: Buffer): Record<string, number | string | boolean> {
  const data = decode(content);
  const start = decode(one(data, 3));
  const out: Record<string, number | string | boolean> = {};
  for (const entry of bytes(start, 1)) {
    const e = decode(entry);
    const v = decode(one(e, 2));
    const key = one(e, 1).toString();
    if (v.has(2)) out[key] = one(v, 2).readDoubleLE(0);
    else if (v.has(3)) out[key] = one(v, 3).toString();
    else out[key] = int(v, 4) === 1;
  }
  return out;
}

async function tinyPng(dir: string): Promise<Buffer> {
  const file = join(dir, 'grid.png');
  await writeImageGrid(file, Float32Array.from({ length: 2 * 4 * 6 * 3 }, (_, i) => Math.sin(i)), [2, 4, 6, 3]);
  return readFileSync(file);
}

describe('TensorBoardWriter', () => {
  it('writes image, text, hparams and scalar records that decode back with valid CRCs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'proggan-tb-'));
    const png = await tinyPng(dir);
    const size = pngSize(png);
    const tb = new TensorBoardWriter(join(dir, 'tb'));
    tb.hparams({ 'optim.lr': 0.002, preset: 'tiny', 'data.flip': true }, 'wae');
    tb.text('config', '```json\n{"a": 1}\n```', 0);
    tb.image('samples', png, 5);
    tb.scalars({ 'loss/rec': 0.25 }, 5);
    tb.close();

    const values = readValues(tb.path);
    const hp = values.find((v) => v.tag === '_hparams_/session_start_info');
    expect(hp?.plugin).toBe('hparams');
    expect(sessionStartHParams(hp?.pluginContent ?? Buffer.alloc(0))).toEqual({ 'optim.lr': 0.002, preset: 'tiny', 'data.flip': true });
    expect(decode(hp?.pluginContent ?? Buffer.alloc(0)).has(3)).toBe(true);

    const text = values.find((v) => v.tag === 'config');
    expect(text?.plugin).toBe('text');
    expect(int(text?.tensor ?? new Map(), 1)).toBe(7); // DT_STRING
    expect(one(text?.tensor ?? new Map(), 8).toString()).toContain('"a": 1');

    const image = values.find((v) => v.tag === 'samples');
    expect(image?.plugin).toBe('images');
    expect(image?.step).toBe(5);
    const strings = bytes(image?.tensor ?? new Map(), 8);
    expect(dims(image?.tensor ?? new Map())).toEqual([3]);
    expect(strings.map((s, i) => (i < 2 ? s.toString() : s.length))).toEqual([String(size.width), String(size.height), png.length]);
    expect(Buffer.compare(strings[2] ?? Buffer.alloc(0), png)).toBe(0);

    const scalar = values.find((v) => v.tag === 'loss/rec');
    expect(scalar?.simple).toBeCloseTo(0.25, 6);
  });

  it('refuses bytes that are not a PNG and flattens configs into dotted hparams', () => {
    expect(() => pngSize(Buffer.from('GIF89a not a png at all....'))).toThrow(/not a PNG/);
    expect(flattenHParams({ model: 'wae', optim: { lr: 1e-3 }, filters: [8, 16], none: null })).toEqual({ model: 'wae', 'optim.lr': 1e-3, filters: '[8,16]' });
  });
});

/** A one-variable objective whose sample grid is a real PNG, enough to drive the trainer's upkeep. */
class ToyObjective implements Objective {
  readonly name = 'toy';
  readonly w = tf.variable(tf.zeros([1]));
  private readonly phase: Phase = { name: 'fit', vars: [this.w], optimizer: tf.train.sgd(0.1) };
  phases(): Phase[] {
    return [this.phase];
  }
  stateVariables(): Array<[string, tf.Variable]> {
    return [['w', this.w]];
  }
  computeGradients(phase: Phase, batch: Batch): PhaseResult {
    const y = batch['y'] as tf.Tensor1D;
    return tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(y, this.w))) as tf.Scalar, phase.vars);
      return { losses: { mse: value }, grads: [grads[this.w.name] as tf.Tensor] };
    });
  }
  async writeSamples(path: string): Promise<void> {
    const v = (await this.w.data())[0] ?? 0;
    await writeImageGrid(path, new Float32Array(4 * 4).fill(Math.tanh(v)), [1, 4, 4, 1]);
  }
  dispose(): void {
    this.w.dispose();
  }
}

describe('trainer -> TensorBoard', () => {
  it('writes a sample grid at each sample tick, the config as text and the hparams', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-tb-run-'));
    const data: ExampleDataset = {
      size: 8,
      spec: { y: { shape: [], dtype: 'float32' } },
      get: async (i) => ({ y: Float32Array.of(i / 8) }),
      name: (i) => `y#${i}`,
    };
    const loop: LoopConfig = { steps: 6, batchSize: 2, seed: 1, checkpointEvery: 100, sampleEvery: 2, tickEvery: 2, evalEvery: 0, maxNonFinite: 3, keepCheckpoints: 1 };
    const config = { model: 'toy', optim: { lr: 0.1 }, loop };
    const objective = new ToyObjective();
    const pipeline = new Pipeline(data, { batchSize: 2, seed: 1, prefetch: 1 });
    try {
      await train({ objective, pipeline, loop, runDir, config, handleSignals: false, progress: false });
    } finally {
      objective.dispose();
      pipeline.close();
    }
    const files = readdirSync(join(runDir, 'tensorboard')).filter((f) => f.startsWith('events.out.tfevents.'));
    expect(files).toHaveLength(1);
    const values = readValues(join(runDir, 'tensorboard', files[0] as string));
    expect(values.filter((v) => v.tag === 'samples' && v.plugin === 'images').map((v) => v.step)).toEqual([2, 4, 6]);
    const text = values.find((v) => v.tag === 'config' && v.plugin === 'text');
    expect(JSON.parse(one(text?.tensor ?? new Map(), 8).toString().replace(/^```json\n|\n```$/g, ''))).toEqual(config);
    const hp = values.find((v) => v.plugin === 'hparams');
    expect(sessionStartHParams(hp?.pluginContent ?? Buffer.alloc(0))).toMatchObject({ model: 'toy', 'optim.lr': 0.1, 'loop.steps': 6 });
    expect(values.filter((v) => v.tag === 'loss/mse').map((v) => v.step)).toEqual([2, 4, 6]);
  });
});
