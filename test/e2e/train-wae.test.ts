import { horizontalFlip, imageExamples } from '../../src/data/examples.js';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as tf from '@tensorflow/tfjs';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { cornerTiles } from '../../src/data/corner-dataset.js';
import { Pipeline } from '../../src/data/pipeline.js';
import { syntheticTiles } from '../../src/data/synthetic.js';
import { loadLatestCheckpoint, listCheckpoints } from '../../src/training/checkpoint.js';
import { resolveWaeConfig, type WaeTrainConfig } from '../../src/models/wae/config.js';
import { WaeObjective, waeArgsFromConfig } from '../../src/models/wae/objective.js';
import { trainWae, loadWae } from '../../src/models/wae/run.js';
import { train } from '../../src/training/trainer.js';

const ROOT = join(import.meta.dirname, '..', '..');

function tinyConfig(over: Partial<WaeTrainConfig['loop']> = {}): WaeTrainConfig {
  const c = resolveWaeConfig({ preset: 'tiny' });
  return { ...c, loop: { ...c.loop, ...over } };
}

function readStats(runDir: string): Array<Record<string, number>> {
  return readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
}

function capturingLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('WAE training on the tiny preset', () => {
  it('lowers the reconstruction loss clearly and leaves checkpoints, grids and stats', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-wae-'));
    const config = tinyConfig({ steps: 60, tickEvery: 10, checkpointEvery: 30, sampleEvery: 30 });
    const res = await trainWae({ config, runDir, progress: false, handleSignals: false });
    expect(res.step).toBe(60);
    const stats = readStats(runDir);
    expect(stats.map((s) => s['step'])).toEqual([10, 20, 30, 40, 50, 60]);
    const first = stats[0]?.['loss/rec'] as number;
    const last = stats[stats.length - 1]?.['loss/rec'] as number;
    expect(last).toBeLessThan(0.6 * first);
    expect((await listCheckpoints(runDir)).length).toBe(2);
    expect(readdirSync(join(runDir, 'samples'))).toEqual(['step-00000030.png', 'step-00000060.png']);
    expect(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).wae.cornerResolution).toBe(16);
    // The trained encoder loads back and encodes in inference mode.
    const { wae, step } = await loadWae(runDir);
    expect(step).toBe(60);
    const z = wae.encode(tf.zeros([2, 16, 16, 1]));
    expect(z.shape).toEqual([2, 32]);
    z.dispose();
    wae.dispose();
  });

  it('leaks no tensors across steps, checkpoints and sample grids', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-leak-'));
    const config = tinyConfig({ steps: 3, checkpointEvery: 1, sampleEvery: 1, tickEvery: 1 });
    const ds = cornerTiles(syntheticTiles({ count: 16, resolution: 32, channels: 1, seed: 1 }));
    const objective = new WaeObjective({
      model: waeArgsFromConfig(config.wae, 1), kernel: 'imq', lambda: 100, optim: config.optim, seed: 1,
      sampleImages: [await ds.get(0), await ds.get(1)],
    });
    const pipeline = new Pipeline(imageExamples(ds), { batchSize: 16, seed: 1, rank: 0, worldSize: 1, augment: [horizontalFlip()], prefetch: 2 });
    try {
      // The first step creates the optimizer's slots; after that the count must not move.
      await train({ objective, pipeline, loop: { ...config.loop, steps: 1 }, runDir, progress: false, handleSignals: false });
      const after1 = tf.memory().numTensors;
      await train({ objective, pipeline, loop: { ...config.loop, steps: 3 }, runDir, progress: false, handleSignals: false });
      expect(tf.memory().numTensors).toBe(after1);
    } finally {
      pipeline.close();
      objective.dispose();
    }
  });

  it('resumes to exactly the weights and optimizer state of an uninterrupted run', async () => {
    const a = mkdtempSync(join(tmpdir(), 'proggan-a-'));
    const b = mkdtempSync(join(tmpdir(), 'proggan-b-'));
    const config = tinyConfig({ steps: 8, checkpointEvery: 4, sampleEvery: 100, tickEvery: 2 });
    await trainWae({ config, runDir: a, progress: false, handleSignals: false });
    await trainWae({ config, runDir: b, progress: false, handleSignals: false, stopAfterStep: 4 });
    const { logger } = capturingLogger();
    const res = await trainWae({ config, runDir: b, resume: true, progress: false, handleSignals: false, logger });
    expect(res.resumedFrom).toBe(4);
    expect(res.step).toBe(8);
    const ca = await loadLatestCheckpoint(a);
    const cb = await loadLatestCheckpoint(b);
    expect(cb?.state.step).toBe(8);
    const names = Object.keys(ca?.state.tensors ?? {});
    expect(names.some((n) => n.startsWith('opt/AE/'))).toBe(true);
    expect(Object.keys(cb?.state.tensors ?? {})).toEqual(names);
    for (const n of names) {
      expect(Array.from(cb?.state.tensors[n]?.data ?? []), n).toEqual(Array.from(ca?.state.tensors[n]?.data ?? []));
    }
    expect(readStats(b).map((s) => s['step'])).toEqual([2, 4, 6, 8]);
  });

  it('falls back to the previous checkpoint when the newest is corrupt', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-corrupt-'));
    const config = tinyConfig({ steps: 4, checkpointEvery: 2, sampleEvery: 100, tickEvery: 2 });
    await trainWae({ config, runDir, progress: false, handleSignals: false });
    const newest = join(runDir, 'checkpoints', 'step-00000004', 'tensors.bin');
    expect(existsSync(newest)).toBe(true);
    writeFileSync(newest, readFileSync(newest).subarray(0, 100));
    const { logger, lines } = capturingLogger();
    const res = await trainWae({ config: { ...config, loop: { ...config.loop, steps: 6 } }, runDir, resume: true, progress: false, handleSignals: false, logger });
    expect(res.resumedFrom).toBe(2);
    expect(res.step).toBe(6);
    expect(lines.join('')).toMatch(/step-00000004/);
  });
});

describe('proggan train wae (CLI)', () => {
  it('survives SIGKILL: --resume continues from the last checkpoint to the same weights as an uninterrupted run', async () => {
    const killed = mkdtempSync(join(tmpdir(), 'proggan-kill-'));
    const clean = mkdtempSync(join(tmpdir(), 'proggan-clean-'));
    const args = ['bin/proggan.js', 'train', 'wae', '--preset', 'tiny', '--steps', '24', '--checkpoint-every', '4', '--sample-every', '100',
      '--tick-every', '4', '--backend', 'cpu', '--seed', '9'];
    // Start a run and kill it hard once its second checkpoint is on disk.
    const child = spawn(process.execPath, [...args, '--run-dir', killed], { cwd: ROOT, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    const deadline = Date.now() + 90_000;
    while (!existsSync(join(killed, 'checkpoints', 'step-00000008', 'manifest.json'))) {
      if (Date.now() > deadline) throw new Error('the child run made no checkpoint in time');
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const before = await loadLatestCheckpoint(killed);
    expect(before?.state.step).toBeGreaterThanOrEqual(8);
    expect(before?.state.step).toBeLessThan(24);

    const resumed = spawnSync(process.execPath, [...args, '--run-dir', killed, '--resume'], { cwd: ROOT, encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`resumed from .*step-0*${before?.state.step} at step ${before?.state.step}`));
    const full = spawnSync(process.execPath, [...args, '--run-dir', clean], { cwd: ROOT, encoding: 'utf8' });
    expect(full.status, full.stderr).toBe(0);

    const ck = await loadLatestCheckpoint(killed);
    const cc = await loadLatestCheckpoint(clean);
    expect(ck?.state.step).toBe(24);
    for (const [name, rec] of Object.entries(cc?.state.tensors ?? {})) {
      expect(Array.from(ck?.state.tensors[name]?.data ?? []), name).toEqual(Array.from(rec.data));
    }
    // Every step's status record appears once: none lost, none repeated.
    expect(readStats(killed).map((s) => s['step'])).toEqual([4, 8, 12, 16, 20, 24]);
  }, 300_000); // three whole CLI runs in subprocesses: allow for a loaded shared machine

  it('SIGTERM: finishes the current step, checkpoints it and exits 130 promptly', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-term-'));
    const child = spawn(process.execPath, ['bin/proggan.js', 'train', 'wae', '--preset', 'tiny', '--steps', '100000', '--checkpoint-every', '4',
      '--sample-every', '100000', '--backend', 'cpu', '--run-dir', runDir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += String(c)));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      while (!existsSync(join(runDir, 'checkpoints', 'step-00000004', 'manifest.json'))) {
        if (Date.now() > deadline) throw new Error(`no checkpoint in time:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const sent = Date.now();
      child.kill('SIGTERM');
      expect(await exited, out).toBe(130);
      // Within a few steps, not at the next checkpoint interval's file write.
      expect(Date.now() - sent).toBeLessThan(15_000);
      expect(out).toMatch(/SIGTERM: finishing the current step/);
      const ck = await loadLatestCheckpoint(runDir);
      expect(ck?.state.step).toBeGreaterThanOrEqual(4);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
