/**
 * The 3DGAN as a registered model: `train 3dgan --preset tiny` through the CLI path on the embedded
 * MC-like showers (written to HDF5 and streamed back), physics validation in the loop (stats.jsonl,
 * plots, best checkpoint), resume = uninterrupted, no tensor leak per step, `generate` -> HDF5 ->
 * read round trip, and `validate`'s report. One backend: native when built (the 3D convolutions are
 * far too slow in pure JS for the e2e budget), else cpu.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeBackendStatus } from '../../src/backend/native.js';
import { runTrain } from '../../src/cli/run-train.js';
import { parseTrainArgs } from '../../src/cli/train.js';
import { readShowers } from '../../src/data/showers-hdf5.js';
import { loadLatestCheckpoint } from '../../src/training/checkpoint.js';
import { generateGan3d, loadGan3d, validateGan3d } from '../../src/models/gan3d/run.js';

const BACKEND = nativeBackendStatus().available ? 'native' : 'cpu';
const dirs: string[] = [];
function tempRun(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return join(d, 'run');
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function stats(runDir: string): Array<Record<string, number | string>> {
  return readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>);
}

const COMMON = ['--backend', BACKEND, '--threads', '1', '--log-level', 'error'];

describe(`train 3dgan --preset tiny (${BACKEND})`, () => {
  let runDir = '';

  it('trains on the embedded showers through HDF5; validation in the loop improves the sampling fraction and keeps the best checkpoint', { timeout: 900_000 }, async () => {
    runDir = tempRun('proggan-3dgan-');
    await runTrain(parseTrainArgs(['3dgan', '--preset', 'tiny', '--run-dir', runDir, '--steps', '8', '--eval-every', '4', '--sample-every', '8', ...COMMON]));
    // The embedded showers went through HDF5 files in the run directory.
    expect(readdirSync(join(runDir, 'showers')).filter((f) => f.endsWith('.h5'))).toHaveLength(2);
    expect(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'))).toMatchObject({ model: '3dgan', data: { layout: 'variable-angle' } });
    const s = stats(runDir);
    const evals = s.filter((r) => r['kind'] === 'eval');
    expect(evals.map((r) => r['step'])).toEqual([0, 4, 8]);
    for (const e of evals) expect(Number.isFinite(e['physics/metric'])).toBe(true);
    // The generator starts with a sampling fraction far from MC's 2 %; the ECAL-sum loss pulls it in.
    const sfErr = (r: Record<string, number | string>): number => {
      const errs = Object.entries(r).filter(([k]) => k.startsWith('physics/sf_err/')).map(([, v]) => Math.abs(v as number));
      expect(errs.length).toBe(2);
      return errs.reduce((a, b) => a + b, 0);
    };
    expect(sfErr(evals[2] ?? {})).toBeLessThan(sfErr(evals[0] ?? {}));
    // The best checkpoint by the physics metric is kept apart from the newest ones.
    const best = await loadLatestCheckpoint(join(runDir, 'best'));
    const bestStep = Math.min(...evals.filter((e) => e['physics/metric'] === Math.min(...evals.map((x) => x['physics/metric'] as number))).map((e) => e['step'] as number));
    expect(best?.state.step).toBe(bestStep);
    expect(JSON.parse(readFileSync(join(runDir, 'best', 'best.json'), 'utf8')).step).toBe(bestStep);
    // Physics plots at the sample tick.
    for (const k of ['sampling-fraction', 'shape-z', 'shape-x', 'spectrum', 'hits']) expect(existsSync(join(runDir, 'samples', `step-00000008-${k}.png`)), k).toBe(true);
    // No tensor leak per step: the live-tensor count of every status record after the first is the same.
    const counts = s.filter((r) => r['kind'] === undefined).map((r) => r['tensors']);
    expect(counts.length).toBe(8);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('generate writes HDF5 in the data layout that reads back; validate writes a report and plots', { timeout: 900_000 }, async () => {
    const out = join(runDir, 'gen', 'showers.h5');
    const res = await generateGan3d(runDir, { energies: [50, 100], anglesDeg: [62, 90], n: 2, out, seed: 3 });
    expect(res).toEqual({ events: 8, layout: 'variable-angle' });
    const back = await readShowers(out);
    expect(back.info.layout).toBe('variable-angle');
    expect(back.info.shape).toEqual([51, 51, 25]);
    expect(Array.from(back.energy)).toEqual([50, 50, 50, 50, 100, 100, 100, 100]);
    expect(back.angles.theta?.[0]).toBeCloseTo((62 * Math.PI) / 180, 5);
    expect(back.angles.theta?.[2]).toBeCloseTo(Math.PI / 2, 5);
    // The cells are the generator's for those conditions (raw GeV, the power undone).
    const loaded = await loadGan3d(runDir);
    const direct = tf.tidy(() => tf.pow(tf.relu(loaded.objective.generate(tf.tensor1d([0.5, 0.5]), tf.tensor1d([(62 * Math.PI) / 180, (62 * Math.PI) / 180]), 3)), 1 / 0.85));
    const d = direct.dataSync();
    const per = 51 * 51 * 25;
    let maxDiff = 0;
    for (let i = 0; i < 2 * per; i++) {
      const want = (d[i] ?? 0) < 1e-6 ? 0 : (d[i] ?? 0);
      maxDiff = Math.max(maxDiff, Math.abs((back.ecal[i] ?? 0) - want) / Math.max(1e-3, want));
    }
    expect(maxDiff).toBeLessThan(1e-4);
    direct.dispose();
    loaded.objective.dispose();
    await expect(generateGan3d(runDir, { energies: [-5], n: 1, out })).rejects.toThrow(/--energies/);

    const v = await validateGan3d(runDir, { out: join(runDir, 'val') });
    const report = JSON.parse(readFileSync(join(runDir, 'val', 'report.json'), 'utf8')) as { metric: number; bestByPhysics: boolean; bins: Array<{ samplingFraction: { relativeError: number } }> };
    expect(report.bestByPhysics).toBe(true);
    expect(Number.isFinite(report.metric)).toBe(true);
    expect(report.bins.length).toBe(2);
    expect(v.files.filter((f) => f.endsWith('.png')).length).toBeGreaterThanOrEqual(5);
  });

  it('resume from a checkpoint equals the uninterrupted run', { timeout: 900_000 }, async () => {
    const a = tempRun('proggan-3dgan-a-');
    const b = tempRun('proggan-3dgan-b-');
    const args = (dir: string, steps: number): string[] => ['3dgan', '--preset', 'tiny', '--run-dir', dir, '--steps', String(steps), '--eval-every', '0', '--checkpoint-every', '2', '--sample-every', '100', ...COMMON];
    await runTrain(parseTrainArgs(args(a, 4)));
    await runTrain(parseTrainArgs(args(b, 2)));
    await runTrain(parseTrainArgs([...args(b, 4).filter((x) => x !== '3dgan'), '--resume']));
    const ca = await loadLatestCheckpoint(a);
    const cb = await loadLatestCheckpoint(b);
    expect(ca?.state.step).toBe(4);
    expect(cb?.state.step).toBe(4);
    const names = Object.keys(ca?.state.tensors ?? {});
    expect(names.length).toBeGreaterThan(10);
    for (const n of names) {
      const x = ca?.state.tensors[n]?.data ?? new Float32Array(0);
      const y = cb?.state.tensors[n]?.data ?? new Float32Array(1);
      expect(Array.from(y), n).toEqual(Array.from(x));
    }
  });
});
