import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  Stats,
  StatsJsonlWriter,
  combineBuffers,
  defaultStats,
  formatDuration,
  formatNumber,
  formatStatusLine,
  means,
  parseStatsJsonl,
  report,
  summarize,
} from '../src/training/stats.js';
import {
  TensorBoardWriter,
  crc32c,
  encodeFileVersionEvent,
  encodeScalarsEvent,
  encodeTfRecord,
} from '../src/training/tensorboard.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'proggan-stats-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('Stats', () => {
  it('summarises mean, min, max and count per name since the last tick', () => {
    const s = new Stats();
    s.report('loss/rec', 1);
    s.report('loss/rec', 2);
    s.report('loss/rec', 6);
    s.report('loss/mmd', [0.5, -0.5, 3]);
    const t = s.tick();
    expect(Object.keys(t)).toEqual(['loss/mmd', 'loss/rec']);
    expect(t['loss/rec']).toEqual({ mean: 3, min: 1, max: 6, count: 3 });
    expect(t['loss/mmd']).toEqual({ mean: 1, min: -0.5, max: 3, count: 3 });
    // The next tick starts empty.
    s.report('loss/rec', 10);
    expect(s.tick()).toEqual({ 'loss/rec': { mean: 10, min: 10, max: 10, count: 1 } });
    expect(s.tick()).toEqual({});
    expect(means(t)).toEqual({ 'loss/mmd': 1, 'loss/rec': 3 });
  });

  it('lets NaN show instead of hiding it', () => {
    const s = new Stats();
    s.report('g', 1);
    s.report('g', NaN);
    const g = s.tick()['g']!;
    expect(g.count).toBe(2);
    expect(g.mean).toBeNaN();
    expect(g.max).toBeNaN();
  });

  it('drains fixed, sorted slots that survive an all-reduce', () => {
    // Two ranks declare the same names; rank 1 never reports "d/real".
    const r0 = new Stats(['loss/G', 'd/real']);
    const r1 = new Stats(['loss/G', 'd/real']);
    r0.report('loss/G', [1, 2, 3]);
    r0.report('d/real', 5);
    r1.report('loss/G', [10, -4]);
    const b0 = r0.drain();
    const b1 = r1.drain();
    expect(b0.names).toEqual(['d/real', 'loss/G']);
    expect(b1.names).toEqual(b0.names);
    expect(b0.sums).toBeInstanceOf(Float64Array);
    expect(Array.from(b1.counts)).toEqual([0, 2]);
    // Reduce by hand (as an all-reduce would: SUM, SUM, MIN, MAX) and rebuild the means.
    const reduced = {
      names: b0.names,
      sums: b0.sums.map((v, i) => v + b1.sums[i]!),
      counts: b0.counts.map((v, i) => v + b1.counts[i]!),
      mins: b0.mins.map((v, i) => Math.min(v, b1.mins[i]!)),
      maxs: b0.maxs.map((v, i) => Math.max(v, b1.maxs[i]!)),
    };
    const expected = {
      'd/real': { mean: 5, min: 5, max: 5, count: 1 },
      'loss/G': { mean: 12 / 5, min: -4, max: 10, count: 5 },
    };
    expect(summarize(reduced)).toEqual(expected);
    expect(summarize(combineBuffers([b0, b1]))).toEqual(expected);
    // A declared name with no values on any rank is left out of the summary.
    expect(summarize(combineBuffers([new Stats(['x']).drain(), new Stats(['x']).drain()]))).toEqual({});
  });

  it('refuses to combine buffers with different layouts', () => {
    const a = new Stats(['a']).drain();
    const b = new Stats(['b']).drain();
    expect(() => combineBuffers([a, b])).toThrow(/disagree/);
    expect(() => summarize({ ...a, sums: new Float64Array(2) })).toThrow(/slots/);
  });

  it('has a module-level report()', () => {
    defaultStats.tick();
    report('anywhere', 4);
    report('anywhere', 8);
    expect(defaultStats.tick()['anywhere']?.mean).toBe(6);
  });
});

describe('formatStatusLine', () => {
  it('builds the compact line', () => {
    const line = formatStatusLine({
      step: { of: [120, 1000] },
      kimg: 1.92,
      'loss/rec': 0.041234,
      'loss/mmd': 0.0031,
      'img/s': 45.123,
      'sec/step': 0.35,
      tensors: 231,
      skipped: undefined,
      eta: { seconds: 312 },
      phase: 'fade-in',
    });
    expect(line).toBe(
      'step 120/1000  kimg 1.92  loss/rec 0.04123  loss/mmd 0.0031  img/s 45.12  sec/step 0.35  tensors 231  eta 5m12s  phase fade-in',
    );
  });

  it.each([
    [0, '0'],
    [231, '231'],
    [-3, '-3'],
    [1234.56, '1235'],
    [999.96, '1000'],
    [12.3456, '12.35'],
    [0.1, '0.1'],
    [0.00031234, '3.12e-4'],
    [0.00002, '2e-5'],
    [123456789, '1.23e+8'],
    [NaN, 'nan'],
    [-Infinity, '-inf'],
  ])('formatNumber(%s) = %s', (x, s) => {
    expect(formatNumber(x)).toBe(s);
  });

  it.each([
    [0.42, '0.42s'],
    [7.5, '7.5s'],
    [42, '42s'],
    [59.7, '1m00s'],
    [312, '5m12s'],
    [7500, '2h05m'],
    [3 * 86400 + 4 * 3600 + 59, '3d04h'],
    [Infinity, '?'],
  ])('formatDuration(%s) = %s', (x, s) => {
    expect(formatDuration(x)).toBe(s);
  });
});

describe('StatsJsonlWriter', () => {
  it('appends one JSON object per write and keeps appending after reopening', () => {
    const w = new StatsJsonlWriter(dir);
    w.write({ step: 1, 'loss/G': { mean: 0.5, min: 0, max: 1, count: 2 } });
    w.write({ step: 2, nan: NaN });
    w.close();
    w.close();
    expect(() => w.write({ step: 3 })).toThrow(/closed/);
    const w2 = new StatsJsonlWriter(dir);
    w2.write({ step: 3 });
    w2.close();
    const text = readFileSync(path.join(dir, 'stats.jsonl'), 'utf8');
    expect(text.split('\n')).toHaveLength(4);
    expect(parseStatsJsonl(text)).toEqual([
      { step: 1, 'loss/G': { mean: 0.5, min: 0, max: 1, count: 2 } },
      { step: 2, nan: null },
      { step: 3 },
    ]);
  });

  it('starts a fresh line after a torn last line', () => {
    writeFileSync(path.join(dir, 'stats.jsonl'), '{"step":1}\n{"step":2,"lo');
    const w = new StatsJsonlWriter(dir);
    w.write({ step: 3 });
    w.close();
    expect(parseStatsJsonl(readFileSync(path.join(dir, 'stats.jsonl'), 'utf8'))).toEqual([{ step: 1 }, { step: 3 }]);
  });

  it('keeps every completed line when the process is SIGKILLed', () => {
    // Run the real module in a child process: transpile it to plain ESM, write lines, kill -9 itself.
    const src = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/training/stats.ts'), 'utf8');
    const js = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    writeFileSync(path.join(dir, 'stats.mjs'), js);
    writeFileSync(
      path.join(dir, 'child.mjs'),
      [
        "import { StatsJsonlWriter } from './stats.mjs';",
        `const w = new StatsJsonlWriter(${JSON.stringify(path.join(dir, 'run'))});`,
        'for (let step = 0; step < 50; step++) w.write({ step, loss: step / 10 });',
        "process.kill(process.pid, 'SIGKILL');",
      ].join('\n'),
    );
    const res = spawnSync(process.execPath, [path.join(dir, 'child.mjs')], { encoding: 'utf8' });
    expect(res.signal).toBe('SIGKILL');
    const records = parseStatsJsonl(readFileSync(path.join(dir, 'run', 'stats.jsonl'), 'utf8'));
    expect(records.map((r) => r['step'])).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});

/** Bit-at-a-time CRC32C, independent of the table-driven one under test. */
function crc32cBitwise(bytes: Uint8Array): number {
  let crc = ~0 >>> 0;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

function masked(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** Split a TFRecord file into its data payloads, checking every length and CRC. */
function readTfRecords(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const len = Number(buf.readBigUInt64LE(pos));
    expect(buf.readUInt32LE(pos + 8)).toBe(masked(crc32cBitwise(buf.subarray(pos, pos + 8))));
    const data = buf.subarray(pos + 12, pos + 12 + len);
    expect(data.length).toBe(len);
    expect(buf.readUInt32LE(pos + 12 + len)).toBe(masked(crc32cBitwise(data)));
    out.push(data);
    pos += 12 + len + 4;
  }
  expect(pos).toBe(buf.length);
  return out;
}

type Field = { field: number; wire: number; value: bigint | Buffer };

/** Decode one protobuf message into its fields (wire types 0, 1, 2, 5). */
function decodeProto(buf: Buffer): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) return v;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) fields.push({ field, wire, value: varint() });
    else if (wire === 1) fields.push({ field, wire, value: buf.subarray(pos, (pos += 8)) });
    else if (wire === 5) fields.push({ field, wire, value: buf.subarray(pos, (pos += 4)) });
    else if (wire === 2) {
      const len = Number(varint());
      fields.push({ field, wire, value: buf.subarray(pos, (pos += len)) });
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return fields;
}

function only(fields: Field[], field: number, wire: number): Field[] {
  const got = fields.filter((f) => f.field === field);
  for (const f of got) expect(f.wire).toBe(wire);
  return got;
}

describe('TensorBoardWriter', () => {
  it('crc32c matches the standard test vector and the bitwise reference', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 131 + 7) & 0xff);
    expect(crc32c(bytes)).toBe(crc32cBitwise(bytes));
  });

  it('encodes records byte for byte like TensorFlow does', () => {
    // Golden bytes of an event file written through TensorFlow's own protobuf/CRC code (as asserted
    // in the tensorboard_logger project's tests): wall_time 256.5, `v/1` = 1.5 at step 1, `v/22` = 16 at step 2.
    const hex = (b: Buffer): string => b.toString('hex');
    expect(hex(encodeTfRecord(encodeFileVersionEvent(256.5)))).toBe(
      '1800000000000000a37f4b220900000000000870401a0d627261696e2e4576656e743a32bc98212b',
    );
    expect(hex(encodeTfRecord(encodeScalarsEvent(256.5, 1, [['v/1', 1.5]])))).toBe(
      '19000000000000008bf1082809000000000008704010012a0c0a0a0a03762f31150000c03f2cecc087',
    );
    expect(hex(encodeTfRecord(encodeScalarsEvent(256.5, 2, [['v/22', 16]])))).toBe(
      '1a00000000000000129bd82d09000000000008704010022a0d0a0b0a04762f323215000080418fa3b688',
    );
  });

  it('writes an event file TensorBoard can read: file_version first, then scalar events', () => {
    const t0 = Date.now() / 1000;
    const w = new TensorBoardWriter(path.join(dir, 'tb'));
    w.scalar('loss/rec', 0.25, 0);
    w.scalar('Loss/G/ünïcode', -1.5, 300);
    w.scalars({ 'a': 1, 'b': 2 }, 5_000_000_000);
    w.scalar('big', 3.4e38, 7);
    w.close();
    expect(path.basename(w.path)).toMatch(new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${hostname().replace(/[.]/g, '\\.')}$`));
    expect(() => w.scalar('x', 1, 1)).toThrow(/closed/);

    const events = readTfRecords(readFileSync(w.path)).map(decodeProto);
    expect(events).toHaveLength(5);
    const [first, ...rest] = events;
    expect(only(first!, 3, 2).map((f) => (f.value as Buffer).toString())).toEqual(['brain.Event:2']);
    const wall = (only(first!, 1, 1)[0]!.value as Buffer).readDoubleLE();
    expect(wall).toBeGreaterThanOrEqual(t0 - 1);
    expect(wall).toBeLessThan(t0 + 60);

    const decoded = rest.map((ev) => {
      const step = only(ev, 2, 0)[0]!.value as bigint;
      expect(only(ev, 1, 1)).toHaveLength(1);
      const summary = decodeProto(only(ev, 5, 2)[0]!.value as Buffer);
      const values = only(summary, 1, 2).map((v) => {
        const value = decodeProto(v.value as Buffer);
        const tag = (only(value, 1, 2)[0]!.value as Buffer).toString('utf8');
        const simple = (only(value, 2, 5)[0]!.value as Buffer).readFloatLE();
        return [tag, simple] as const;
      });
      return { step, values };
    });
    expect(decoded).toEqual([
      { step: 0n, values: [['loss/rec', 0.25]] },
      { step: 300n, values: [['Loss/G/ünïcode', -1.5]] },
      { step: 5_000_000_000n, values: [['a', 1], ['b', 2]] },
      { step: 7n, values: [['big', Math.fround(3.4e38)]] },
    ]);
  });

  it('buffers until flush and does not clobber an existing file', () => {
    const w1 = new TensorBoardWriter(dir, { maxQueue: 100 });
    const w2 = new TensorBoardWriter(dir);
    expect(w2.path).not.toBe(w1.path);
    const sizeAfterHeader = readFileSync(w1.path).length;
    w1.scalar('x', 1, 1);
    expect(readFileSync(w1.path).length).toBe(sizeAfterHeader);
    w1.flush();
    expect(readTfRecords(readFileSync(w1.path))).toHaveLength(2);
    w1.close();
    w2.close();
    expect(readTfRecords(readFileSync(w2.path))).toHaveLength(1);
  });
});
