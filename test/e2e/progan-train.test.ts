import { horizontalFlip, imageExamples } from '../../src/data/examples.js';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerFastCpuKernels } from '../../src/backend/cpu-kernels.js';
import { Pipeline } from '../../src/data/pipeline.js';
import { syntheticTiles } from '../../src/data/synthetic.js';
import { defaultWaeArgs } from '../../src/models/wae/networks.js';
import { loadLatestCheckpoint } from '../../src/training/checkpoint.js';
import { resolveProGanConfig } from '../../src/models/progan/config.js';
import { emaDecayFromHalfLife, ExponentialMovingAverage } from '../../src/training/ema.js';
import type { Phase, StepContext } from '../../src/training/objective.js';
import { ProGanObjective, type ProGanObjectiveArgs } from '../../src/models/progan/objective.js';
import { ResumableAdam } from '../../src/training/resumable-adam.js';
import { WaeObjective } from '../../src/models/wae/objective.js';
import { loadProgan, trainProgan } from '../../src/models/progan/run.js';
import { defaultScheduleConfig } from '../../src/models/progan/schedule.js';
import { train } from '../../src/training/trainer.js';
import { Rng } from '../../src/util/random.js';

beforeAll(async () => {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
  // The project's cpu path (initBackend does the same): tfjs's own Conv2DBackpropFilter is ~10x slower.
  registerFastCpuKernels();
});

// Corners up to 8 px (full images 16 px), 1 channel, tiny channel tables and latents.
const R = 8;
const BATCH = 4;

function tinyEncoder(): WaeObjective {
  return new WaeObjective({
    model: defaultWaeArgs({ resolution: R, channels: 1, latentSize: 8, filters: [8], stemFilters: 8 }),
    kernel: 'imq',
    lambda: 1,
    optim: { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
    seed: 3,
  });
}

/**
 * With batch 4: corner 4 stable for 8 images (steps 0-1), corner 8 fades over 16 images (steps 2-5),
 * then stays stable. With minibatchRepeats 2 the schedule is read at steps 0, 2, 4, 6.
 */
function objectiveArgs(encoder: WaeObjective, over: Partial<ProGanObjectiveArgs> = {}): ProGanObjectiveArgs {
  return {
    model: { maxCornerResolution: R, zDim: 8, latentDim: 8, fmapBase: 16, fmapMax: 8, mbstdGroupSize: 4, generatorOutput: 'linear', discriminatorOutput: 'linear', conditioning: 'latent' },
    channels: 1,
    schedule: { ...defaultScheduleConfig(R), fadeKimg: 0.016, stableKimg: 0.008 },
    minibatchRepeats: 2,
    loss: { globalWeight: 0.5, gpWeight: 10, drift: 0.001, combination: 'reference' },
    optim: { beta1: 0, beta2: 0.99, epsilon: 1e-8, reset: 'resolution' },
    emaDecay: 0.9,
    encoder,
    seed: 1,
    ...over,
  };
}

const images = () => syntheticTiles({ count: 32, resolution: 2 * R, channels: 1, seed: 1 });
const loop = (over: Record<string, number> = {}) => ({
  steps: 5, batchSize: BATCH, seed: 5, checkpointEvery: 100, sampleEvery: 100, tickEvery: 1, evalEvery: 0, maxNonFinite: 2, keepCheckpoints: 2, ...over,
});

function values(vars: Array<[string, tf.Variable]>): Map<string, Float32Array> {
  return new Map(vars.map(([n, v]) => [n, v.dataSync() as Float32Array]));
}

/** One training step by hand: both phases, then afterStep. */
function manualStep(o: ProGanObjective, x: tf.Tensor4D, ctx: StepContext): Record<string, number> {
  o.beginStep(ctx);
  const losses: Record<string, number> = {};
  for (const phase of o.phases()) {
    const r = o.computeGradients(phase, { images: x }, ctx);
    phase.optimizer.applyGradients(phase.vars.map((v, i) => ({ name: v.name, tensor: r.grads[i] as tf.Tensor })));
    for (const [k, v] of Object.entries(r.losses)) losses[k] = v.dataSync()[0] as number;
    tf.dispose([...r.grads, ...Object.values(r.losses)]);
  }
  o.afterStep(ctx);
  return losses;
}

describe('generator EMA', () => {
  it('averages, swaps in and out exactly, and names its shadows', () => {
    const v = tf.variable(tf.tensor1d([1, 2]));
    const ema = new ExponentialMovingAverage([['g/w', v]], { decay: 0.5 });
    expect(ema.variables().map(([n]) => n)).toEqual(['ema/g/w']);
    v.assign(tf.tensor1d([3, 6]));
    ema.update(); // 3 + (1 - 3) * 0.5 = 2, 6 + (2 - 6) * 0.5 = 4
    expect(Array.from(ema.variables()[0]?.[1].dataSync() ?? [])).toEqual([2, 4]);
    const seen = ema.apply(() => Array.from(v.dataSync()));
    expect(seen).toEqual([2, 4]);
    expect(Array.from(v.dataSync())).toEqual([3, 6]);
    expect(() => {
      ema.swapIn();
      try {
        ema.update();
      } finally {
        ema.swapOut();
      }
    }).toThrow(/swapped in/);
    expect(emaDecayFromHalfLife(10_000, 16)).toBeCloseTo(0.5 ** (16 / 10_000), 15);
    const before = tf.memory().numTensors;
    ema.update();
    ema.apply(() => 0);
    expect(tf.memory().numTensors).toBe(before);
    ema.dispose();
    v.dispose();
  });
});

describe('ResumableAdam', () => {
  it('matches tf.train.adam and resumes bit for bit from its weights', async () => {
    const init = tf.tensor1d([0.5, -1, 2]);
    const grads = [0.3, -0.2, 0.1, 0.7, -0.4].map((s) => tf.tensor1d([s, 2 * s, -s]));
    const run = (opt: tf.Optimizer, v: tf.Variable, gs: tf.Tensor[]) => gs.forEach((g) => opt.applyGradients([{ name: v.name, tensor: g }]));
    const a = tf.variable(init.clone());
    const b = tf.variable(init.clone());
    const ours = new ResumableAdam(0.01, 0, 0.99, 1e-8);
    const theirs = tf.train.adam(0.01, 0, 0.99, 1e-8);
    run(ours, a, grads);
    run(theirs, b, grads);
    const [av, bv] = [Array.from(a.dataSync()), Array.from(b.dataSync())];
    av.forEach((x, i) => expect(x).toBeCloseTo(bv[i] as number, 6));
    // Interrupt after 2 steps, restore into a fresh optimizer, continue: identical to 5 straight steps.
    const c = tf.variable(init.clone());
    const first = new ResumableAdam(0.01, 0, 0.99, 1e-8);
    run(first, c, grads.slice(0, 2));
    const saved = (await first.getWeights()).map((w) => ({ name: w.name, tensor: w.tensor.clone() }));
    first.dispose();
    const second = new ResumableAdam(0.01, 0, 0.99, 1e-8);
    await second.setWeights(saved);
    run(second, c, grads.slice(2));
    expect(Array.from(c.dataSync())).toEqual(av);
    expect(second.iterations).toBe(5);
    tf.dispose([init, ...grads, a, b, c, ...saved.map((s) => s.tensor)]);
    ours.dispose();
    theirs.dispose();
    second.dispose();
  });
});

describe('ProGAN objective', () => {
  it('steps with finite losses and leaks no tensors across steps', async () => {
    const encoder = tinyEncoder();
    const ds = images();
    const o = new ProGanObjective(objectiveArgs(encoder, { schedule: { ...defaultScheduleConfig(R), fadeKimg: 1, stableKimg: 1 } }));
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-gan-leak-'));
    const pipeline = new Pipeline(imageExamples(ds), { batchSize: BATCH, seed: 1, prefetch: 0 });
    try {
      // The first step creates the optimizer slots; after that the count must not move.
      await train({ objective: o, pipeline, loop: loop({ steps: 1 }), runDir, progress: false, handleSignals: false });
      const after1 = tf.memory().numTensors;
      const res = await train({ objective: o, pipeline, loop: loop({ steps: 3 }), runDir, progress: false, handleSignals: false });
      expect(tf.memory().numTensors).toBe(after1);
      for (const k of ['d', 'd_global', 'd_local', 'gp_global', 'gp_local', 'w_global', 'w_local', 'g', 'g_global', 'g_local']) {
        expect(Number.isFinite(res.last[`loss/${k}`]), k).toBe(true);
      }
      expect(res.skippedSteps).toBe(0);
      // D loss = (L_global + L_local) / 2 by default.
      const x = tf.tensor4d(await ds.get(0).then((a) => Float32Array.from([...a, ...a, ...a, ...a])), [4, 2 * R, 2 * R, 1]);
      const losses = manualStep(o, x, { step: 3, nimg: 12, rng: new Rng(1), replica: 0, replicas: 1 });
      expect(losses['d']).toBeCloseTo(((losses['d_global'] as number) + (losses['d_local'] as number)) / 2, 5);
      expect(losses['g']).toBeCloseTo(((losses['g_global'] as number) + (losses['g_local'] as number)) / 2, 5);
      x.dispose();
    } finally {
      pipeline.close();
      o.dispose();
      encoder.dispose();
    }
  });

  it('moves each loss the right way: D steps raise both critics, G steps raise their scores of fakes', async () => {
    const encoder = tinyEncoder();
    // Without penalty and drift the D loss is the negated critic estimate alone, so its sign shows.
    const o = new ProGanObjective(objectiveArgs(encoder, {
      schedule: { ...defaultScheduleConfig(R), stableKimg: 1, lrG: 1e-2, lrD: 1e-2 },
      loss: { globalWeight: 0.5, gpWeight: 0, drift: 0, combination: 'reference' },
    }));
    const ds = images();
    const batch = new Float32Array(BATCH * (2 * R) ** 2);
    for (let i = 0; i < BATCH; i++) batch.set(await ds.get(i), i * (2 * R) ** 2);
    const x = tf.tensor4d(batch, [BATCH, 2 * R, 2 * R, 1]);
    const only = (name: 'D' | 'G', steps: number): Array<Record<string, number>> => {
      const out: Array<Record<string, number>> = [];
      for (let s = 0; s < steps; s++) {
        // The same noise every time, so the change comes from the weights alone.
        const ctx = { step: s, nimg: 0, rng: new Rng(11), replica: 0, replicas: 1 };
        o.beginStep(ctx);
        const phase = o.phases().find((p) => p.name === name) as Phase;
        const r = o.computeGradients(phase, { images: x }, ctx);
        phase.optimizer.applyGradients(phase.vars.map((v, i) => ({ name: v.name, tensor: r.grads[i] as tf.Tensor })));
        out.push(Object.fromEntries(Object.entries(r.losses).map(([k, v]) => [k, v.dataSync()[0] as number])));
        tf.dispose([...r.grads, ...Object.values(r.losses)]);
      }
      return out;
    };
    try {
      const d = only('D', 8);
      expect(d[7]?.['w_global']).toBeGreaterThan(d[0]?.['w_global'] as number);
      expect(d[7]?.['w_local']).toBeGreaterThan(d[0]?.['w_local'] as number);
      expect(d[7]?.['d']).toBeLessThan(d[0]?.['d'] as number);
      const g = only('G', 8);
      expect(g[7]?.['g_global']).toBeLessThan(g[0]?.['g_global'] as number);
      expect(g[7]?.['g_local']).toBeLessThan(g[0]?.['g_local'] as number);
    } finally {
      x.dispose();
      o.dispose();
      encoder.dispose();
    }
  });

  it('weights the global and local terms as configured, also in the CERN squared form', async () => {
    const encoder = tinyEncoder();
    const o = new ProGanObjective(objectiveArgs(encoder, { loss: { globalWeight: 0.25, gpWeight: 10, drift: 0.001, combination: 'cern' } }));
    const ds = images();
    const batch = new Float32Array(BATCH * (2 * R) ** 2);
    for (let i = 0; i < BATCH; i++) batch.set(await ds.get(i), i * (2 * R) ** 2);
    const x = tf.tensor4d(batch, [BATCH, 2 * R, 2 * R, 1]);
    try {
      const l = manualStep(o, x, { step: 0, nimg: 0, rng: new Rng(2), replica: 0, replicas: 1 });
      const sq = (k: string) => (l[k] as number) ** 2;
      expect(l['d']).toBeCloseTo(0.25 * sq('d_global') + 0.75 * sq('d_local'), 4);
      expect(l['g']).toBeCloseTo(0.25 * sq('g_global') + 0.75 * sq('g_local'), 4);
    } finally {
      x.dispose();
      o.dispose();
      encoder.dispose();
    }
  });

  it('grows: existing weights untouched by the growth, fresh optimizers, schedule read every minibatchRepeats steps', async () => {
    const encoder = tinyEncoder();
    const o = new ProGanObjective(objectiveArgs(encoder));
    const ds = images();
    const batch = new Float32Array(BATCH * (2 * R) ** 2);
    for (let i = 0; i < BATCH; i++) batch.set(await ds.get(i), i * (2 * R) ** 2);
    const x = tf.tensor4d(batch, [BATCH, 2 * R, 2 * R, 1]);
    const rng = new Rng(7);
    try {
      manualStep(o, x, { step: 0, nimg: 0, rng, replica: 0, replicas: 1 });
      manualStep(o, x, { step: 1, nimg: 4, rng, replica: 0, replicas: 1 });
      expect(o.state).toMatchObject({ resolution: 4, phase: 'stable', alpha: 1 });
      const [dOld, gOld] = o.phases() as [Phase, Phase];
      expect((await dOld.optimizer.getWeights()).length).toBe(1 + 2 * dOld.vars.length);
      const before = values(o.stateVariables());
      const names4 = new Set(gOld.vars.map((v) => v.name));

      // Growing to 8 changes no variable and starts a fresh optimizer pair.
      o.beginStep({ step: 2, nimg: 8, rng, replica: 0, replicas: 1 });
      expect(o.state).toMatchObject({ resolution: 8, phase: 'fade', alpha: 0 });
      const after = values(o.stateVariables());
      for (const [n, v] of before) expect(Array.from(after.get(n) ?? []), n).toEqual(Array.from(v));
      const [dNew, gNew] = o.phases() as [Phase, Phase];
      expect(dNew.optimizer).not.toBe(dOld.optimizer);
      expect(gNew.optimizer).not.toBe(gOld.optimizer);
      expect(await gNew.optimizer.getWeights()).toHaveLength(1);
      expect(gNew.optimizer.iterations).toBe(0);
      expect(await gOld.optimizer.getWeights()).toHaveLength(1); // disposed: no slots left
      expect(gNew.vars.length).toBeGreaterThan(gOld.vars.length);
      expect(gNew.vars.filter((v) => names4.has(v.name)).length).toBe(gOld.vars.length);
      const gNames = gNew.vars.map((v) => v.name).join(' ');
      expect(gNames).toMatch(/g_b8_conv0/);
      expect(dNew.vars.map((v) => v.name).join(' ')).toMatch(/dg_b16_conv0.*dl_b8_conv0/);

      // Train through the fade: the schedule moves only at even steps (minibatchRepeats 2).
      manualStep(o, x, { step: 2, nimg: 8, rng, replica: 0, replicas: 1 });
      const l3 = manualStep(o, x, { step: 3, nimg: 12, rng, replica: 0, replicas: 1 });
      expect(o.state.alpha).toBe(0);
      expect(Object.values(l3).every(Number.isFinite)).toBe(true);
      o.beginStep({ step: 4, nimg: 16, rng, replica: 0, replicas: 1 });
      expect(o.state.alpha).toBe(0.5);
      expect(o.phases()[0]?.optimizer).toBe(dNew.optimizer); // same resolution: same optimizers
      o.beginStep({ step: 6, nimg: 24, rng, replica: 0, replicas: 1 });
      expect(o.state).toMatchObject({ resolution: 8, phase: 'stable', alpha: 1 });
      expect(o.phases()[0]?.optimizer).toBe(dNew.optimizer);
    } finally {
      x.dispose();
      o.dispose();
      encoder.dispose();
    }
  });

  it('replicas on halves of a batch average to the gradients of one process on the whole batch', async () => {
    const encoder = tinyEncoder();
    // Group size 2 divides both halves of 4, so the stddev groups are the same; nimg 12 is mid-fade.
    const base = objectiveArgs(encoder);
    const o = new ProGanObjective({ ...base, model: { ...base.model, mbstdGroupSize: 2 } });
    const ds = images();
    const batch = new Float32Array(BATCH * (2 * R) ** 2);
    for (let i = 0; i < BATCH; i++) batch.set(await ds.get(i), i * (2 * R) ** 2);
    const x = tf.tensor4d(batch, [BATCH, 2 * R, 2 * R, 1]);
    const halves = [0, 1].map((r) => tf.slice(x, r * 2, 2));
    /** Both phases' gradients (nothing applied), flattened per phase, for a fresh rng with the same seed. */
    const grads = (input: tf.Tensor4D, replica: number, replicas: number): Float32Array[] => {
      const ctx: StepContext = { step: 0, nimg: 12, rng: new Rng(9), replica, replicas };
      o.beginStep(ctx);
      return o.phases().map((phase) => {
        const res = o.computeGradients(phase, { images: input }, ctx);
        const flat = tf.tidy(() => tf.concat(res.grads.map((g) => g.flatten())).dataSync() as Float32Array);
        tf.dispose([...res.grads, ...Object.values(res.losses)]);
        return flat;
      });
    };
    try {
      const whole = grads(x, 0, 1);
      const parts = halves.map((h, r) => grads(h as tf.Tensor4D, r, 2));
      expect(o.state).toMatchObject({ resolution: 8, phase: 'fade' });
      whole.forEach((g, p) => {
        let num = 0;
        let den = 0;
        g.forEach((v, i) => {
          const mean = ((parts[0]?.[p]?.[i] as number) + (parts[1]?.[p]?.[i] as number)) / 2;
          num += (v - mean) ** 2;
          den += v * v;
        });
        // Float rounding only: measured 1.3e-7 (D) and 5.8e-8 (G). Per-replica noise gave 0.24 and
        // ProGAN's strided stddev groups 0.08 on the D phase.
        expect(Math.sqrt(num / den), `phase ${p}`).toBeLessThan(1e-5);
      });
    } finally {
      tf.dispose([x, ...halves]);
      o.dispose();
      encoder.dispose();
    }
  });

  it('resumes mid-fade and at a resolution change to exactly the uninterrupted weights, EMA and optimizer slots', async () => {
    const encoder = tinyEncoder();
    const ds = images();
    const run = async (runDir: string, opts: { resume?: boolean; stopAfterStep?: number }) => {
      const o = new ProGanObjective(objectiveArgs(encoder));
      const pipeline = new Pipeline(imageExamples(ds), { batchSize: BATCH, seed: 1, augment: [horizontalFlip()], prefetch: 1 });
      try {
        return await train({ objective: o, pipeline, loop: loop(), runDir, progress: false, handleSignals: false, ...opts });
      } finally {
        pipeline.close();
        o.dispose();
      }
    };
    try {
      const a = mkdtempSync(join(tmpdir(), 'proggan-gan-a-'));
      expect((await run(a, {})).step).toBe(5);
      const ref = await loadLatestCheckpoint(a);
      const names = Object.keys(ref?.state.tensors ?? {});
      expect(names.some((n) => n.startsWith('model/ema/g_b8_conv0'))).toBe(true);
      expect(names.some((n) => n.startsWith('opt/D/'))).toBe(true);
      expect(names.some((n) => n.startsWith('opt/G/'))).toBe(true);
      // Stop at step 3 (mid-fade, mid minibatch-repeat group) and at step 2 (checkpoint of corner 4,
      // resumed into corner 8's first step), then resume to step 5.
      for (const stopAt of [3, 2]) {
        const b = mkdtempSync(join(tmpdir(), `proggan-gan-b${stopAt}-`));
        await run(b, { stopAfterStep: stopAt });
        const res = await run(b, { resume: true });
        expect(res.resumedFrom).toBe(stopAt);
        expect(res.step).toBe(5);
        const got = await loadLatestCheckpoint(b);
        expect(Object.keys(got?.state.tensors ?? {})).toEqual(names);
        for (const n of names) {
          expect(Array.from(got?.state.tensors[n]?.data ?? []), `${n} after a stop at ${stopAt}`).toEqual(Array.from(ref?.state.tensors[n]?.data ?? []));
        }
        expect(got?.state.meta['objective']).toEqual(ref?.state.meta['objective']);
      }
    } finally {
      encoder.dispose();
    }
  });
});

describe('trainProgan', () => {
  it('trains an encoder, then the GAN through a growth; writes config, grids and a loadable EMA generator', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'proggan-gan-run-'));
    const config = resolveProGanConfig({
      preset: 'tiny',
      flags: {
        data: { syntheticCount: 32 },
        progan: { maxCornerResolution: R, zDim: 8, latentDim: 8, fmapBase: 16, fmapMax: 8 },
        encoder: { steps: 4 },
        schedule: { fadeKimg: 0.016, stableKimg: 0.008, minibatchRepeats: 1 },
        samples: { count: 3, evalCount: 6 },
        loop: { steps: 5, batchSize: BATCH, checkpointEvery: 3, sampleEvery: 3, tickEvery: 1, evalEvery: 5 },
      },
    });
    const res = await trainProgan({ config, runDir, progress: false, handleSignals: false });
    // The held-out SWD lands in stats.jsonl at the resolution the generator had reached.
    const evals = readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r['kind'] === 'eval');
    expect(evals.map((r) => r['step'])).toEqual([0, 5]);
    expect(evals[1]?.['eval/resolution']).toBe(R);
    expect(Number.isFinite(evals[1]?.['swd/mean'])).toBe(true);
    expect(evals[1]?.['swd/mean']).toBeGreaterThan(0);
    expect(evals[0]?.['eval/resolution']).toBe(4); // the untrained generator, measured before step 1
    expect(res.step).toBe(5);
    expect(res.trainedEncoder).toBe(true);
    expect(existsSync(join(runDir, 'encoder', 'config.json'))).toBe(true);
    expect(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).model).toBe('progan');
    expect(readdirSync(join(runDir, 'samples'))).toEqual(['step-00000003.png', 'step-00000005.png']);
    // Resuming a finished run reuses the encoder there and trains on to the new step count.
    const more = await trainProgan({ config: { ...config, loop: { ...config.loop, steps: 6 } }, runDir, resume: true, progress: false, handleSignals: false });
    expect(more.trainedEncoder).toBe(false);
    expect(more.resumedFrom).toBe(5);
    const loaded = await loadProgan(runDir);
    try {
      expect(loaded.step).toBe(6);
      expect(loaded.resolution).toBe(8);
      const ck = await loadLatestCheckpoint(runDir);
      const [name, v] = loaded.generator.variables()[0] as [string, tf.Variable];
      expect(Array.from(v.dataSync())).toEqual(Array.from(ck?.state.tensors[`model/ema/${name}`]?.data ?? []));
      const z = tf.tidy(() => {
        const cond = loaded.encoder.encode(tf.zeros([2, R, R, 1]));
        return loaded.generator.apply({ noise: tf.zeros([2, 8]), conditions: [cond, cond, cond] }, { resolution: R });
      });
      expect(z.shape).toEqual([2, R, R, 1]);
      z.dispose();
    } finally {
      loaded.generator.dispose();
      loaded.encoder.dispose();
    }
  });
});
