/**
 * N-process vs 1-process parity of the mirrored trainer, and a worker killed mid-run, on the real CLI
 * (`proggan train wae --preset tiny --workers 2`, cpu backend, compiled dist/).
 *
 * What "parity" can mean for the WAE: its encoder has batch norm, whose batch statistics are per
 * replica (as in Horovod or TF MirroredStrategy without sync BN), and its MMD term is not a mean over
 * independent examples; so 2 x 8 images is a different optimisation problem from 1 x 16 images and
 * the weights differ by a few per cent after a few steps. The exact statement that does hold is that
 * the 2-process run computes what 2 replicas should: the mean of the replicas' gradients, the same
 * update on both, batch-norm moving statistics averaged over the replicas before each checkpoint.
 * That is checked bitwise against an in-process simulation of two replicas, and the 1-process run
 * bitwise against an in-process single replica; the gap between the two is only bounded.
 */
import { horizontalFlip, imageExamples } from '../../src/data/examples.js';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync as mkdtempRaw, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { cornerTiles } from '../../src/data/corner-dataset.js';
import { Pipeline } from '../../src/data/pipeline.js';
import { loadLatestCheckpoint, type CheckpointState } from '../../src/training/checkpoint.js';
import { resolveWaeConfig } from '../../src/models/wae/config.js';
import { WaeObjective, waeArgsFromConfig } from '../../src/models/wae/objective.js';
import { openImages } from '../../src/models/wae/run.js';
import { silentLogger } from '../../src/util/logger.js';
import { Rng } from '../../src/util/random.js';


/** Temporary directories of this file, removed when it ends. */
const tempDirs: string[] = [];
function mkdtempSync(prefix: string): string {
  const dir = mkdtempRaw(prefix);
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

const ROOT = join(import.meta.dirname, '..', '..');
const SEED = 5;
const COMMON = ['train', 'wae', '--preset', 'tiny', '--checkpoint-every', '4', '--sample-every', '100', '--tick-every', '4', '--backend', 'cpu', '--seed', String(SEED)];

/**
 * The program that runs `train ... --workers N`: the CLI once src/cli/train.ts knows --workers,
 * until then test/fixtures/launch-train.mjs (the same two hooks of src/cli/workers.ts, on dist/).
 */
function trainProgram(): string[] {
  const help = spawnSync(process.execPath, ['bin/proggan.js', 'train', '--help'], { cwd: ROOT, encoding: 'utf8' });
  return help.stdout.includes('--workers') ? ['bin/proggan.js'] : [join('test', 'fixtures', 'launch-train.mjs')];
}

/** Run a training command to completion; returns its exit code and output. */
function runCli(program: string[], args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...program, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += String(c)));
    child.stderr.on('data', (c: Buffer) => (out += String(c)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/**
 * Simulate `replicas` replicas of the trainer in this process: each takes its shard of the global
 * batch, the gradients are averaged, every replica applies the mean; batch-norm moving statistics
 * (the state no optimiser trains) are averaged at checkpoint steps. Returns replica 0's state.
 */
async function simulate(replicas: number, perReplica: number, steps: number, checkpointEvery: number): Promise<Map<string, Float32Array>> {
  const config = resolveWaeConfig({ preset: 'tiny', flags: { loop: { seed: SEED, batchSize: perReplica, steps } } });
  const corners = cornerTiles((await openImages(config.data, 2 * config.wae.cornerResolution, SEED, silentLogger())).images);
  const reps = Array.from({ length: replicas }, (_, rank) => ({
    objective: new WaeObjective({
      model: waeArgsFromConfig(config.wae, config.data.channels),
      kernel: config.loss.kernel,
      lambda: config.loss.lambda,
      optim: config.optim,
      seed: SEED,
    }),
    pipeline: new Pipeline(imageExamples(corners), { batchSize: perReplica, seed: SEED, rank, worldSize: replicas, augment: config.data.flip ? [horizontalFlip()] : [], prefetch: 1 }),
    rng: new Rng(`${SEED}/trainer`),
  }));
  try {
    for (let step = 0; step < steps; step++) {
      const grads: tf.Tensor[][] = [];
      for (const [rank, r] of reps.entries()) {
        const batch = await r.pipeline.next();
        const x = tf.tensor4d(batch.fields['images']?.data as Float32Array, batch.fields['images']?.shape as [number, number, number, number]);
        const phase = r.objective.phases()[0];
        if (!phase) throw new Error('the WAE has one phase');
        const res = r.objective.computeGradients(phase, { images: x }, { step, nimg: 0, rng: r.rng, replica: rank, replicas });
        grads.push(res.grads);
        tf.dispose([x, ...Object.values(res.losses)]);
      }
      const mean = (grads[0] ?? []).map((_, i) => tf.tidy(() => tf.div(tf.addN(grads.map((g) => g[i] as tf.Tensor)), replicas)));
      for (const r of reps) {
        const phase = r.objective.phases()[0];
        phase?.optimizer.applyGradients(phase.vars.map((v, i) => ({ name: v.name, tensor: mean[i] as tf.Tensor })));
      }
      tf.dispose([...mean, ...grads.flat()]);
      if ((step + 1) % checkpointEvery === 0 || step + 1 === steps) {
        const trained = new Set(reps[0]?.objective.phases().flatMap((p) => p.vars));
        const all = reps.map((r) => r.objective.stateVariables());
        (all[0] ?? []).forEach(([, v], k) => {
          if (trained.has(v)) return;
          const avg = tf.tidy(() => tf.div(tf.addN(all.map((vars) => (vars[k] as [string, tf.Variable])[1])), replicas));
          for (const vars of all) (vars[k] as [string, tf.Variable])[1].assign(avg);
          avg.dispose();
        });
      }
    }
    const out = new Map<string, Float32Array>();
    for (const [name, v] of reps[0]?.objective.stateVariables() ?? []) out.set(name, (await v.data()) as Float32Array);
    return out;
  } finally {
    for (const r of reps) {
      r.pipeline.close();
      r.objective.dispose();
    }
  }
}

function modelTensors(state: CheckpointState): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, rec] of Object.entries(state.tensors)) if (name.startsWith('model/')) out.set(name.slice(6), rec.data as Float32Array);
  return out;
}

/** Names of the tensors that differ at all, and the relative L2 distance over the trainable ones. */
function compare(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { differing: string[]; relL2: number; maxAbs: number } {
  const differing: string[] = [];
  let num = 0;
  let den = 0;
  let maxAbs = 0;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y || y.length !== x.length) throw new Error(`tensor ${name} is missing or has another size`);
    let same = true;
    for (let i = 0; i < x.length; i++) {
      const d = (x[i] as number) - (y[i] as number);
      if (d !== 0) same = false;
      if (!name.includes('moving_')) {
        num += d * d;
        den += (x[i] as number) ** 2;
      }
      maxAbs = Math.max(maxAbs, Math.abs(d));
    }
    if (!same) differing.push(name);
  }
  return { differing, relL2: Math.sqrt(num / den), maxAbs };
}

async function checkpointOf(runDir: string): Promise<CheckpointState> {
  const found = await loadLatestCheckpoint(runDir);
  if (!found) throw new Error(`${runDir} has no checkpoint`);
  return found.state;
}

describe('mirrored training through the CLI (2 workers)', () => {
  let program: string[] = [];
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
    program = trainProgram();
  });

  it('2 x 8 images computes exactly what two replicas should; 1 x 16 differs only by per-replica batch norm and MMD', async () => {
    const two = mkdtempSync(join(tmpdir(), 'proggan-par2-'));
    const one = mkdtempSync(join(tmpdir(), 'proggan-par1-'));
    const r2 = await runCli(program, [...COMMON, '--steps', '8', '--batch-size', '8', '--run-dir', two, '--workers', '2', '--max-restarts', '0']);
    expect(r2.code, r2.out).toBe(0);
    const r1 = await runCli(['bin/proggan.js'], [...COMMON, '--steps', '8', '--batch-size', '16', '--run-dir', one]);
    expect(r1.code, r1.out).toBe(0);
    const s2 = await checkpointOf(two);
    const s1 = await checkpointOf(one);
    expect(s2.step).toBe(8);
    expect(s2.nimg).toBe(8 * 16);
    expect(s1.nimg).toBe(8 * 16);

    // Bitwise: the 2-process run equals two simulated replicas; the 1-process run one replica.
    expect(compare(modelTensors(s2), await simulate(2, 8, 8, 4)).differing).toEqual([]);
    expect(compare(modelTensors(s1), await simulate(1, 16, 8, 4)).differing).toEqual([]);

    // Same global batch, different problem: measured 3-4 % relative L2 after 4-8 steps (tiny preset).
    const gap = compare(modelTensors(s1), modelTensors(s2));
    expect(gap.relL2).toBeGreaterThan(1e-3);
    expect(gap.relL2).toBeLessThan(0.2);
  });

  it('without batch norm and the MMD term, 1 x 24 = 2 x 12 = 3 x 8 images per step up to float rounding', async () => {
    // A WAE whose replicas compute exactly the single-process function (no per-replica batch statistics,
    // no MMD over the local batch), so N processes must match 1 process on the same global batch.
    const exact = [...COMMON, '--no-batch-norm', '--mmd-weight', '0', '--steps', '3'];
    const dirs = [1, 2, 3].map((n) => mkdtempSync(join(tmpdir(), `proggan-exact${n}-`)));
    const runs = await Promise.all([1, 2, 3].map(async (n, i) => {
      const args = [...exact, '--batch-size', String(24 / n), '--run-dir', dirs[i] as string, ...(n > 1 ? ['--workers', String(n), '--max-restarts', '0'] : [])];
      return runCli(n > 1 ? program : ['bin/proggan.js'], args);
    }));
    runs.forEach((r) => expect(r.code, r.out).toBe(0));
    const [s1, s2, s3] = await Promise.all(dirs.map((d) => checkpointOf(d)));
    for (const s of [s1, s2, s3]) expect(s?.nimg).toBe(3 * 24);
    const ref = modelTensors(s1 as CheckpointState);
    for (const s of [s2, s3]) {
      const gap = compare(ref, modelTensors(s as CheckpointState));
      // Only the order of float additions differs (per-replica means, then their mean): after one step
      // the relative L2 gap measured 4e-8 (2 workers) and 1.2e-7 (3). Adam then normalises each
      // parameter's step to ~lr, so a parameter whose gradient is at rounding level can move by up to
      // 2 x lr differently: after 3 steps 5e-8 (2 workers) and 4e-4, max |diff| 2.8e-3 = 1.4 lr (3).
      expect(gap.relL2).toBeLessThan(1e-3);
      expect(gap.maxAbs).toBeLessThan(3 * 2e-3);
    }
  });

  it('a worker SIGKILLed mid-run: its peer fails naming it, the group restarts from the last checkpoint and reaches the target', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-parkill-'));
    const timeoutMs = 4000;
    const child = spawn(process.execPath, [...program, ...COMMON, '--steps', '12', '--batch-size', '8', '--run-dir', runDir, '--workers', '2'], {
      cwd: ROOT,
      env: { ...process.env, PROGGAN_COLLECTIVE_TIMEOUT_MS: String(timeoutMs) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += String(c)));
    child.stderr.on('data', (c: Buffer) => (out += String(c)));
    let ended = false;
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => {
      ended = true;
      resolve(code);
    }));
    try {
      // Kill rank 1 hard once the first checkpoint is on disk.
      const deadline = Date.now() + 60_000;
      while (!existsSync(join(runDir, 'checkpoints', 'step-00000004', 'manifest.json'))) {
        if (ended || Date.now() > deadline) throw new Error(`no checkpoint in time:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const { pids, attempt } = JSON.parse(readFileSync(join(runDir, 'workers.json'), 'utf8')) as { pids: number[]; attempt: number };
      expect(attempt).toBe(0);
      const killedAt = Date.now();
      process.kill(pids[1] as number, 'SIGKILL');
      expect(await exited, out).toBe(0);

      // The launcher saw rank 1 die and restarted the group with --resume.
      const records = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; time?: number; pid?: number });
      const restart = records.find((r) => /restarting the group from the last checkpoint/.test(r.msg ?? ''));
      expect(restart?.msg).toMatch(/worker rank 1 was killed by SIGKILL/);
      // Rank 0 (unprefixed output) failed with an error naming rank 1, well within the collective timeout.
      expect(out).toMatch(/^(proggan|launch-train): rank 0: .*rank 1/m);
      expect((restart?.time ?? Infinity) - killedAt).toBeLessThan(timeoutMs + 1000);
      expect(records.filter((r) => /^resumed from .*step-0000000[48] at step [48]$/.test(r.msg ?? '')).length).toBe(1);
      expect(out).toMatch(/^\[rank 1\] \{.*"msg":"resumed from .*step-0000000[48] at step [48]"/m);

      // The run reached its target, with the weights of an uninterrupted 2-replica run.
      const state = await checkpointOf(runDir);
      expect(state.step).toBe(12);
      expect(compare(modelTensors(state), await simulate(2, 8, 12, 4)).differing).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('SIGTERM to the launcher: every rank stops at the same step, rank 0 checkpoints it, exit 130', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-parterm-'));
    const child = spawn(process.execPath, [...program, ...COMMON, '--steps', '400', '--batch-size', '8', '--run-dir', runDir, '--workers', '2'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += String(c)));
    child.stderr.on('data', (c: Buffer) => (out += String(c)));
    let ended = false;
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => {
      ended = true;
      resolve(code);
    }));
    try {
      const deadline = Date.now() + 60_000;
      while (!existsSync(join(runDir, 'checkpoints', 'step-00000004', 'manifest.json'))) {
        if (ended || Date.now() > deadline) throw new Error(`no checkpoint in time:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGTERM');
      // A rank that stopped alone would leave the other in an all-reduce: both must exit 130.
      expect(await exited, out).toBe(130);
      expect(out).toMatch(/"exits":\["rank 0 exited with code 130","rank 1 exited with code 130"\]/);
      const state = await checkpointOf(runDir);
      // The signal may land right after the step-4 checkpoint; stopping there is correct too.
      expect(state.step).toBeGreaterThanOrEqual(4);
      expect(state.step).toBeLessThan(400);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
