import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, truncate, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { pino } from 'pino';
import ts from 'typescript';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  checkpointDirName,
  listCheckpoints,
  loadLatestCheckpoint,
  NonFiniteCheckpointError,
  readBestMetric,
  resolveCheckpoint,
  saveBestCheckpoint,
  saveCheckpoint,
  splitCheckpointSpec,
  UnreadableCheckpointsError,
  type CheckpointState,
  type TensorRecord,
} from '../src/training/checkpoint.js';
import type { Logger } from '../src/util/logger.js';

let runDir: string;

beforeEach(() => {
  runDir = mkdtempSync(path.join(tmpdir(), 'proggan-ckpt-'));
});

afterEach(async () => {
  await rm(runDir, { recursive: true, force: true });
});

/** A logger whose records land in an array, to assert on warnings. */
function captureLogger(): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, {
    write(line: string) {
      records.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { logger, records };
}

function f32(shape: number[], fill: (i: number) => number): TensorRecord {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, dtype: 'float32', data: Float32Array.from({ length: n }, (_, i) => fill(i)) };
}

function stateAt(step: number, tensors?: Record<string, TensorRecord>): CheckpointState {
  return {
    step,
    nimg: step * 16,
    tensors: tensors ?? { 'g/w': f32([2, 3], (i) => step + i / 8) },
    meta: { rng: [1, 2, 3, 4], data: { epoch: 1, position: step }, schedule: { alpha: 0.5 } },
  };
}

describe('checkpoint round trip', () => {
  it('restores float32, int32, scalar and empty tensors exactly, in insertion order', async () => {
    const tensors: Record<string, TensorRecord> = {
      'wae/encoder/wae_enc_b64_conv/kernel': f32([3, 3, 3, 5], (i) => Math.sin(i) * 1e-3),
      'opt/G/adam/m/3': f32([7], (i) => [NaN, Infinity, -Infinity, -0, 1e-45, 3.4e38, -1.5][i] ?? 0),
      'opt/step': { shape: [], dtype: 'int32', data: Int32Array.of(-2147483648) },
      'ids with spaces/ünïcode "quoted"': { shape: [4], dtype: 'int32', data: Int32Array.of(1, -1, 2147483647, 0) },
      'empty': f32([0, 4], () => 0),
      'b': f32([1], () => 0.1),
      'a': f32([1], () => 0.2),
    };
    Object.defineProperty(tensors, '__proto__', { value: f32([2], () => 5), enumerable: true, writable: true, configurable: true });
    // allowNonFinite: this is a test of the format, which must carry NaN and Infinity bit for bit.
    const dir = await saveCheckpoint(runDir, { ...stateAt(20), tensors }, { allowNonFinite: true });
    expect(path.basename(dir)).toBe('step-00000020');
    const loaded = await loadLatestCheckpoint(runDir);
    expect(loaded).not.toBeNull();
    const { state } = loaded!;
    expect(state.step).toBe(20);
    expect(state.nimg).toBe(320);
    expect(state.meta).toEqual(stateAt(20).meta);
    expect(Object.keys(state.tensors)).toEqual(Object.keys(tensors));
    for (const [name, t] of Object.entries(tensors)) {
      const got = state.tensors[name]!;
      expect(got.shape).toEqual(t.shape);
      expect(got.dtype).toBe(t.dtype);
      expect(got.data.constructor).toBe(t.data.constructor);
      // Compare bit patterns so NaN, -0 and denormals count too.
      expect(new Uint32Array(got.data.buffer, got.data.byteOffset, got.data.length)).toEqual(
        new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length),
      );
    }
  });

  it('lays tensors out 64-byte aligned and records them in index.json', async () => {
    const dir = await saveCheckpoint(runDir, stateAt(1, { x: f32([3], () => 1), y: f32([5], () => 2), z: f32([0], () => 0) }));
    const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as {
      tensors: Array<{ name: string; offset: number; byteLength: number }>;
    };
    expect(index.tensors.map((t) => [t.name, t.offset, t.byteLength])).toEqual([
      ['x', 0, 12],
      ['y', 64, 20],
      ['z', 128, 0],
    ]);
    expect((await stat(path.join(dir, 'tensors.bin'))).size).toBe(128); // padding up to the empty tensor's offset
    expect((await readdir(dir)).sort()).toEqual(['index.json', 'manifest.json', 'meta.json', 'tensors.bin']);
  });

  it('round-trips many tensors', async () => {
    const tensors: Record<string, TensorRecord> = {};
    for (let k = 0; k < 300; k++) tensors[`layer${k}/w`] = f32([k % 7, 3], (i) => k * 1000 + i);
    await saveCheckpoint(runDir, stateAt(5, tensors));
    const { state } = (await loadLatestCheckpoint(runDir))!;
    expect(Object.keys(state.tensors)).toEqual(Object.keys(tensors));
    expect(Array.from(state.tensors['layer299/w']!.data)).toEqual(Array.from(tensors['layer299/w']!.data));
  });

  it('rejects a tensor whose data does not match its shape or dtype', async () => {
    await expect(saveCheckpoint(runDir, stateAt(1, { w: { shape: [2, 2], dtype: 'float32', data: new Float32Array(3) } }))).rejects.toThrow(
      /"w".*4 values.*3/,
    );
    await expect(saveCheckpoint(runDir, stateAt(1, { w: { shape: [1], dtype: 'int32', data: new Float32Array(1) } }))).rejects.toThrow(
      /"w": dtype int32/,
    );
  });

  it('returns null when nothing was saved', async () => {
    expect(await loadLatestCheckpoint(runDir)).toBeNull();
    expect(await listCheckpoints(runDir)).toEqual([]);
  });
});

describe('checkpoint retention and atomicity', () => {
  it('keeps the newest two by default and points latest at the newest', async () => {
    for (const step of [10, 20, 30, 40]) await saveCheckpoint(runDir, stateAt(step));
    const dirs = await listCheckpoints(runDir);
    expect(dirs.map((d) => path.basename(d))).toEqual(['step-00000030', 'step-00000040']);
    expect(await readFile(path.join(runDir, 'checkpoints', 'latest'), 'utf8')).toBe('step-00000040\n');
    expect((await loadLatestCheckpoint(runDir))!.state.step).toBe(40);
  });

  it('honours keep', async () => {
    for (const step of [1, 2, 3, 4, 5]) await saveCheckpoint(runDir, stateAt(step), { keep: 3 });
    expect((await listCheckpoints(runDir)).map((d) => path.basename(d))).toEqual([
      checkpointDirName(3),
      checkpointDirName(4),
      checkpointDirName(5),
    ]);
    await saveCheckpoint(runDir, stateAt(6), { keep: 1 });
    expect((await listCheckpoints(runDir)).map((d) => path.basename(d))).toEqual([checkpointDirName(6)]);
  });

  it('replaces a checkpoint saved twice at the same step', async () => {
    await saveCheckpoint(runDir, stateAt(10));
    await saveCheckpoint(runDir, stateAt(20));
    await saveCheckpoint(runDir, { ...stateAt(20), nimg: 999, tensors: { other: f32([2], () => 7) } });
    const { state } = (await loadLatestCheckpoint(runDir))!;
    expect(state.nimg).toBe(999);
    expect(Object.keys(state.tensors)).toEqual(['other']);
    expect((await listCheckpoints(runDir)).map((d) => path.basename(d))).toEqual(['step-00000010', 'step-00000020']);
    expect((await readdir(path.join(runDir, 'checkpoints'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('queues overlapping saves to the same run', async () => {
    const saves = [10, 20, 30].map((step) => saveCheckpoint(runDir, stateAt(step), { keep: 3 }));
    const dirs = await Promise.all(saves);
    expect(dirs.map((d) => path.basename(d))).toEqual(['step-00000010', 'step-00000020', 'step-00000030']);
    expect(await listCheckpoints(runDir)).toEqual(dirs);
    expect((await loadLatestCheckpoint(runDir))!.state.step).toBe(30);
  });

  it('treats the manifest as the commit: a stale or missing latest pointer does not matter', async () => {
    await saveCheckpoint(runDir, stateAt(10));
    await saveCheckpoint(runDir, stateAt(20));
    // As if the process died after renaming step-20 into place but before updating the pointer.
    await writeFile(path.join(runDir, 'checkpoints', 'latest'), 'step-00000010\n');
    expect((await loadLatestCheckpoint(runDir))!.state.step).toBe(20);
    await rm(path.join(runDir, 'checkpoints', 'latest'));
    expect((await loadLatestCheckpoint(runDir))!.state.step).toBe(20);
  });

  it('ignores leftover .tmp directories and cleans them on the next save', async () => {
    await saveCheckpoint(runDir, stateAt(10));
    // A crash mid-save leaves step-N.tmp behind, even one with a manifest.
    const tmp = path.join(runDir, 'checkpoints', 'step-00000020.tmp');
    await mkdir(tmp);
    await writeFile(path.join(tmp, 'tensors.bin'), Buffer.alloc(10));
    await writeFile(path.join(runDir, 'checkpoints', 'latest.tmp'), 'step-0000');
    const { logger, records } = captureLogger();
    const loaded = await loadLatestCheckpoint(runDir, { logger });
    expect(loaded!.state.step).toBe(10);
    expect(records.filter((r) => r['level'] === 40)).toEqual([]);
    await saveCheckpoint(runDir, stateAt(30));
    const names = await readdir(path.join(runDir, 'checkpoints'));
    expect(names.sort()).toEqual(['latest', 'step-00000010', 'step-00000030']);
  });
});

describe('checkpoint corruption falls back to the previous one', () => {
  const corruptions: Array<[string, (dir: string) => Promise<void>, RegExp]> = [
    ['truncated tensors.bin', (dir) => truncate(path.join(dir, 'tensors.bin'), 10), /tensors\.bin has 10 bytes/],
    ['garbled manifest', (dir) => writeFile(path.join(dir, 'manifest.json'), '{"format": "proggan-chec'), /manifest\.json is not valid JSON/],
    ['missing manifest', (dir) => rm(path.join(dir, 'manifest.json')), /manifest\.json missing/],
    ['"0" written into index.json', (dir) => writeFile(path.join(dir, 'index.json'), '0'), /index\.json has 1 bytes/],
    [
      'flipped byte in tensors.bin',
      async (dir) => {
        const file = path.join(dir, 'tensors.bin');
        const buf = await readFile(file);
        buf[5] = buf[5]! ^ 0xff;
        await writeFile(file, buf);
      },
      /tensors\.bin checksum mismatch/,
    ],
    [
      'index.json edited, size kept',
      async (dir) => {
        const file = path.join(dir, 'index.json');
        const text = await readFile(file, 'utf8');
        await writeFile(file, text.replace('"g/w"', '"g/v"'));
      },
      /index\.json checksum mismatch/,
    ],
  ];

  for (const [what, corrupt, reason] of corruptions) {
    it(`${what}: loads the previous checkpoint and warns`, async () => {
      await saveCheckpoint(runDir, stateAt(10));
      const newest = await saveCheckpoint(runDir, stateAt(20));
      await corrupt(newest);
      const { logger, records } = captureLogger();
      const loaded = await loadLatestCheckpoint(runDir, { logger });
      expect(loaded!.state.step).toBe(10);
      expect(loaded!.dir).toBe(path.join(runDir, 'checkpoints', 'step-00000010'));
      expect(Array.from(loaded!.state.tensors['g/w']!.data)).toEqual(Array.from(stateAt(10).tensors['g/w']!.data));
      const warnings = records.filter((r) => r['level'] === 40);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!['checkpoint']).toBe(newest);
      expect(String(warnings[0]!['msg'])).toContain('step-00000020');
      expect(String(warnings[0]!['reason'])).toMatch(reason);
    });
  }

  it('returns null and logs an error when no checkpoint verifies', async () => {
    const only = await saveCheckpoint(runDir, stateAt(10));
    await truncate(path.join(only, 'tensors.bin'), 0);
    const { logger, records } = captureLogger();
    expect(await loadLatestCheckpoint(runDir, { logger })).toBeNull();
    expect(records.map((r) => r['level'])).toEqual([40, 50]);
  });

  it('strict loading throws a list of every checkpoint and why, instead of returning null', async () => {
    const a = await saveCheckpoint(runDir, stateAt(10));
    const b = await saveCheckpoint(runDir, stateAt(20));
    await truncate(path.join(a, 'tensors.bin'), 0);
    const buf = await readFile(path.join(b, 'tensors.bin'));
    buf[0] = (buf[0] ?? 0) ^ 0xff;
    await writeFile(path.join(b, 'tensors.bin'), buf);
    const err = await loadLatestCheckpoint(runDir, { strict: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreadableCheckpointsError);
    const e = err as UnreadableCheckpointsError;
    expect(e.problems.map((p) => p.step)).toEqual([20, 10]);
    expect(e.message).toMatch(/step-00000020: tensors.bin checksum mismatch/);
    expect(e.message).toMatch(/step-00000010: tensors.bin has 0 bytes/);
    expect(e.message).toMatch(/--restart-from-scratch/);
    // Nothing was touched.
    expect((await listCheckpoints(runDir)).length).toBe(2);
    // No checkpoints at all is not an error, even when strict.
    expect(await loadLatestCheckpoint(path.join(runDir, 'fresh'), { strict: true })).toBeNull();
  });

  it('refuses a state with NaN or Infinity and keeps the good checkpoints', async () => {
    await saveCheckpoint(runDir, stateAt(10), { keep: 1 });
    const bad = { ...stateAt(20), tensors: { 'g/w': f32([2, 3], (i) => (i === 4 ? Infinity : i)), 'g/b': f32([1], () => NaN) } };
    const err = await saveCheckpoint(runDir, bad, { keep: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteCheckpointError);
    expect((err as NonFiniteCheckpointError).tensors).toEqual(['g/w', 'g/b']);
    expect((await listCheckpoints(runDir)).map((d) => path.basename(d))).toEqual(['step-00000010']);
    expect((await loadLatestCheckpoint(runDir))!.state.step).toBe(10);
    expect(await readFile(path.join(runDir, 'checkpoints', 'latest'), 'utf8')).toBe('step-00000010\n');
  });

  it('keeps the best checkpoint apart from retention and resolves RUN[/step-N|best|latest]', async () => {
    await saveCheckpoint(runDir, stateAt(10), { keep: 1 });
    await saveBestCheckpoint(runDir, stateAt(10), { name: 'swd/mean', mode: 'min', value: 5 });
    await saveCheckpoint(runDir, stateAt(20), { keep: 1 });
    await saveCheckpoint(runDir, stateAt(30), { keep: 1 });
    expect((await listCheckpoints(runDir)).map((d) => path.basename(d))).toEqual(['step-00000030']);
    expect(await readBestMetric(runDir)).toEqual({ name: 'swd/mean', mode: 'min', value: 5 });
    expect((await resolveCheckpoint(`${runDir}/best`)).state.step).toBe(10);
    expect((await resolveCheckpoint(runDir)).state.step).toBe(30);
    expect((await resolveCheckpoint(`${runDir}/latest`)).state.step).toBe(30);
    expect((await resolveCheckpoint(`${runDir}/step-30`)).dir).toBe(path.join(runDir, 'checkpoints', 'step-00000030'));
    expect((await resolveCheckpoint(path.join(runDir, 'checkpoints', 'step-00000030'))).state.step).toBe(30);
    await expect(resolveCheckpoint(`${runDir}/step-20`)).rejects.toThrow(/no checkpoint of step 20; it has: step-00000030, best/);
    expect(splitCheckpointSpec('/r/x/')).toEqual({ runDir: '/r/x', which: 'latest' });
    expect(splitCheckpointSpec('/r/x/step-0040')).toEqual({ runDir: '/r/x', which: 40 });
    // A better value replaces it only once the new one verified; a non-finite metric is refused.
    await saveBestCheckpoint(runDir, stateAt(30), { name: 'swd/mean', mode: 'min', value: 4 });
    expect((await resolveCheckpoint(`${runDir}/best`)).state.step).toBe(30);
    await expect(saveBestCheckpoint(runDir, stateAt(40), { name: 'swd/mean', mode: 'min', value: NaN })).rejects.toThrow(/finite/);
    expect((await readdir(path.join(runDir, 'checkpoints'))).sort()).toEqual(['best', 'latest', 'step-00000030']);
  });

  it('a save after falling back replaces the corrupt newer checkpoint', async () => {
    await saveCheckpoint(runDir, stateAt(10));
    const bad = await saveCheckpoint(runDir, stateAt(30));
    await truncate(path.join(bad, 'tensors.bin'), 1);
    expect((await loadLatestCheckpoint(runDir))!.state.step).toBe(10);
    // The resumed run saves at 20 (below the corrupt 30): 30 must not shadow it on the next load.
    await saveCheckpoint(runDir, stateAt(20));
    expect((await listCheckpoints(runDir)).map((d) => path.basename(d))).toEqual(['step-00000010', 'step-00000020']);
    expect((await loadLatestCheckpoint(runDir))!.state.step).toBe(20);
  });
});

describe('checkpoint under kill -9', () => {
  it('a save killed at any point leaves the previous checkpoint loadable and no warnings', async () => {
    // Run the real module in child processes that SIGKILL themselves while saving step 20.
    const src = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/training/checkpoint.ts'), 'utf8');
    const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
    writeFileSync(path.join(runDir, 'checkpoint.mjs'), js.outputText);
    const outcomes = new Set<number>();
    // null: no timer, the kill comes right after the save completes.
    for (const delayMs of [0, 1, 3, 6, 10, 20, null]) {
      const run = path.join(runDir, `run-${delayMs ?? 'done'}`);
      writeFileSync(
        path.join(runDir, 'child.mjs'),
        [
          "import { saveCheckpoint } from './checkpoint.mjs';",
          'const w = (step, n) => ({ step, nimg: step, meta: { step }, tensors: {',
          "  a: { shape: [n], dtype: 'float32', data: new Float32Array(n).fill(step) },",
          "  b: { shape: [n], dtype: 'int32', data: new Int32Array(n).fill(step) } } });",
          `await saveCheckpoint(${JSON.stringify(run)}, w(10, 1000));`,
          delayMs === null ? '' : `setTimeout(() => process.kill(process.pid, 'SIGKILL'), ${delayMs});`,
          `await saveCheckpoint(${JSON.stringify(run)}, w(20, 2_000_000));`,
          "process.kill(process.pid, 'SIGKILL');",
        ].join('\n'),
      );
      const res = spawnSync(process.execPath, [path.join(runDir, 'child.mjs')], { encoding: 'utf8' });
      expect(res.signal, res.stderr).toBe('SIGKILL');
      const { logger, records } = captureLogger();
      const loaded = await loadLatestCheckpoint(run, { logger });
      expect(records).toEqual([]);
      const step = loaded!.state.step;
      expect([10, 20]).toContain(step);
      expect(loaded!.state.tensors['a']!.data[0]).toBe(step);
      expect(loaded!.state.tensors['b']!.data.length).toBe(step === 10 ? 1000 : 2_000_000);
      outcomes.add(step);
      // The next save cleans up whatever the kill left behind.
      await saveCheckpoint(run, stateAt(30));
      const names = await readdir(path.join(run, 'checkpoints'));
      expect(names.filter((n) => n.includes('.tmp'))).toEqual([]);
      expect((await loadLatestCheckpoint(run))!.state.step).toBe(30);
    }
    // The kill landed both before and after the commit at least once.
    expect(outcomes.size).toBe(2);
  });
});
