/**
 * The GPU check (run by scripts/gpu-check.sh from the esbuild bundle gpu-bundle/check.mjs):
 *
 * 1. kernel parity of the `cuda` backend against `cpu`: every ported kernel on the fixed cases of
 *    test/cuda-parity-cases.ts plus randomised shapes, forward and gradients, max relative error
 *    (|a - b| / max(1, |b|)) below 1e-4 in fp32 (TF32 off; with --tf32 the bound is 1e-2);
 * 2. one training step each of the WAE (128 x 128, batch 16), the conditional ProGAN at R = 128
 *    (batch 16, paper preset) and the 3DGAN (batch 64) when it is in the tree, timed beside the
 *    same models in PyTorch on the same GPU (test/bench/pytorch_*.py --device cuda);
 * 3. ONE table: images/s of both, ratio, peak device memory of both.
 *
 * `--dry` runs all of it on a machine without a GPU: the in-memory fake device stands in for the
 * GPU, the models are tiny, and PyTorch runs only if it is installed (on its CPU).
 * Flags: --dry, --reps N (3), --python python3, --no-torch, --tf32, --only parity|steps,
 * --random N (randomised parity cases, 24), --json FILE (results as JSON).
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { registerFastCpuKernels } from '../../src/backend/cpu-kernels.js';
import {
  CUDA_BACKEND_NAME,
  cudaBackendStatus,
  cudaKernelCounts,
  registerCudaBackend,
  registerCudaBackendWith,
  resetCudaKernelCounts,
  type CudaBackend,
} from '../../src/backend/cuda.js';
import { buildWae, defaultWaeArgs } from '../../src/models/wae/networks.js';
import { encoderWaeConfig, resolveProGanConfig, scheduleConfigOf } from '../../src/models/progan/config.js';
import { ProGanObjective } from '../../src/models/progan/objective.js';
import { WaeObjective, waeArgsFromConfig } from '../../src/models/wae/objective.js';
import { Rng } from '../../src/util/random.js';
import { FakeDevice } from '../../test/cuda-fake-device.js';
import { maxRelError, PARITY_CASES, randomParityCases, runCase } from '../../test/cuda-parity-cases.js';

// ---- flags ---------------------------------------------------------------------------------
const argv = process.argv.slice(2);
const has = (f: string) => argv.includes(f);
const val = (f: string, d: string) => {
  const i = argv.indexOf(f);
  return i >= 0 && i + 1 < argv.length ? (argv[i + 1] as string) : d;
};
const dry = has('--dry');
const reps = Number(val('--reps', dry ? '1' : '3'));
const python = val('--python', 'python3');
const tf32 = has('--tf32');
const only = val('--only', '');
const nRandom = Number(val('--random', dry ? '8' : '24'));
const jsonOut = val('--json', '');
const tol = tf32 ? 1e-2 : 1e-4;
const log = (s: string) => process.stderr.write(`${s}\n`);

tf.env().set('PROD', true);
registerFastCpuKernels();

// ---- backend -------------------------------------------------------------------------------
let detail: string;
if (dry) {
  registerCudaBackendWith(new FakeDevice(), { onFallback: (k, why) => log(`fallback: ${k} (${why})`) });
  const st = cudaBackendStatus();
  detail = `DRY RUN: in-memory fake device (real addon here: ${st.available ? 'usable' : `not usable: ${st.reason ?? '?'}`})`;
} else {
  const st = cudaBackendStatus();
  log(`cuda status: ${JSON.stringify(st)}`);
  detail = registerCudaBackend({ tf32, onFallback: (k, why) => log(`fallback: ${k} (${why})`) }).detail;
}
log(`backend: ${detail}`);
const useCuda = () => tf.setBackend(CUDA_BACKEND_NAME);
const cudaBackend = () => tf.engine().findBackend(CUDA_BACKEND_NAME) as CudaBackend;

// ---- 1. parity -----------------------------------------------------------------------------
interface ParityRow {
  name: string;
  err: number;
  fallbacks: string[];
  ok: boolean;
  error?: string;
}
const parity: ParityRow[] = [];
if (only === '' || only === 'parity') {
  const cases = [...PARITY_CASES, ...randomParityCases(2026, nRandom)];
  for (const [k, c] of cases.entries()) {
    const row: ParityRow = { name: c.name, err: NaN, fallbacks: [], ok: false };
    try {
      await useCuda();
      resetCudaKernelCounts();
      const ours = runCase(c, 101 + k);
      row.fallbacks = Object.entries(cudaKernelCounts())
        .filter(([, v]) => v.fallback > 0)
        .map(([n]) => n);
      await tf.setBackend('cpu');
      const ref = runCase(c, 101 + k);
      row.err = maxRelError(ours, ref);
      row.ok = row.err < tol && row.fallbacks.length === 0;
    } catch (err) {
      row.error = err instanceof Error ? err.message.split('\n')[0] : String(err);
    }
    parity.push(row);
    if (!row.ok) log(`parity FAIL ${c.name}: err ${row.err.toExponential(2)} fallbacks [${row.fallbacks.join(', ')}] ${row.error ?? ''}`);
  }
  const worst = parity.reduce((a, r) => Math.max(a, Number.isNaN(r.err) ? Infinity : r.err), 0);
  log(`parity: ${parity.filter((r) => r.ok).length}/${parity.length} cases within ${tol} (worst ${worst.toExponential(2)}), forward and gradients`);
}

// ---- 2. training steps ---------------------------------------------------------------------
interface StepRow {
  model: string;
  batch: number;
  ours?: { imagesPerS: number; ms: number; peakBytes: number; fallbacks: string[] };
  torch?: { imagesPerS: number; ms: number; peakBytes: number | null };
  note?: string;
}
const steps: StepRow[] = [];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Times `step` (which must end with a host read, so the device is idle): warm-up, then reps. */
function timeSteps(step: () => void, batch: number): { imagesPerS: number; ms: number; peakBytes: number; fallbacks: string[] } {
  const a = cudaBackend().allocator;
  a.peakBytes = a.liveBytes;
  resetCudaKernelCounts();
  step(); // warm-up: cuDNN algorithm search, allocator fill
  const ts: number[] = [];
  for (let i = 0; i < reps; ++i) {
    const t0 = performance.now();
    step();
    ts.push(performance.now() - t0);
  }
  const ms = median(ts);
  const fallbacks = Object.entries(cudaKernelCounts())
    .filter(([, v]) => v.fallback > 0)
    .map(([n, v]) => `${n} x${v.fallback}`);
  return { imagesPerS: (batch * 1e3) / ms, ms, peakBytes: a.peakBytes, fallbacks };
}

function waeStep(batch: number, resolution: number): () => void {
  const args = dry ? defaultWaeArgs({ resolution, channels: 1, latentSize: 8, filters: [8, 8], stemFilters: 8 }) : defaultWaeArgs({ resolution, channels: 1 });
  const { encoder, decoder } = buildWae(args);
  const x = tf.randomUniform([batch, resolution, resolution, 1], -1, 1, 'float32', 7);
  const opt = tf.train.adam(5e-5, 0.5, 0.999);
  const vars = [...encoder.trainableWeights, ...decoder.trainableWeights].map((w) => w.read() as tf.Variable);
  return () => {
    const loss = opt.minimize(() => tf.losses.meanSquaredError(x, decoder.apply(encoder.apply(x, { training: true }), { training: true }) as tf.Tensor) as tf.Scalar, true, vars);
    loss?.dataSync();
    loss?.dispose();
  };
}

function proganStep(batch: number, r: number): () => void {
  const config = resolveProGanConfig({
    preset: dry ? 'tiny' : 'paper',
    flags: { progan: { maxCornerResolution: r }, schedule: { startResolution: r }, loop: { batchSize: batch } },
  });
  const waeConfig = encoderWaeConfig(config);
  const wae = new WaeObjective({
    model: waeArgsFromConfig(waeConfig.wae, waeConfig.data.channels),
    kernel: waeConfig.loss.kernel,
    lambda: waeConfig.loss.lambda,
    optim: waeConfig.optim,
    seed: waeConfig.loop.seed,
  });
  const objective = new ProGanObjective({
    model: config.progan,
    channels: config.data.channels,
    schedule: scheduleConfigOf(config),
    minibatchRepeats: config.schedule.minibatchRepeats,
    loss: config.loss,
    optim: config.optim,
    emaDecay: config.ema.decay,
    encoder: wae,
    seed: config.loop.seed,
  });
  const x = tf.randomUniform([batch, 2 * r, 2 * r, config.data.channels], -1, 1, 'float32', 7) as tf.Tensor4D;
  const rng = new Rng(`${config.loop.seed}/trainer`);
  let step = 0;
  return () => {
    const ctx = { step, nimg: step * batch, rng, replica: 0, replicas: 1 };
    objective.beginStep(ctx);
    for (const phase of objective.phases()) {
      const res = objective.computeGradients(phase, { images: x }, ctx);
      phase.optimizer.applyGradients(phase.vars.map((v, i) => ({ name: v.name, tensor: res.grads[i] as tf.Tensor })));
      for (const l of Object.values(res.losses)) l.dataSync();
      tf.dispose([...Object.values(res.losses), ...res.grads]);
    }
    objective.afterStep(ctx);
    step++;
  };
}

/** Runs a PyTorch bench script; the JSON line of `caseName`. */
function torchRun(script: string, args: string[], caseName: string): StepRow['torch'] | string {
  if (has('--no-torch')) return 'PyTorch skipped (--no-torch)';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return `PyTorch not importable by ${python}`;
  const device = dry ? 'cpu' : 'cuda';
  const r = spawnSync(python, [script, '--device', device, '--reps', String(reps), ...(tf32 ? ['--tf32'] : []), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) return `${script} failed (exit ${r.status})`;
  const line = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { case: string; ms: number; images_per_s: number; peak_bytes?: number | null })
    .find((j) => j.case === caseName);
  if (line === undefined) return `${script}: no "${caseName}" line`;
  return { imagesPerS: line.images_per_s, ms: line.ms, peakBytes: line.peak_bytes ?? null };
}

if (only === '' || only === 'steps') {
  // Batches to try in order: the target first, smaller ones when the device runs out of memory
  // (the table says which batch ran; PyTorch runs the same batch).
  const models: Array<{ model: string; batches: number[]; make: (b: number) => () => void; torch: (b: number) => StepRow['torch'] | string }> = [
    {
      model: dry ? 'WAE 16x16 (tiny)' : 'WAE 128x128',
      batches: dry ? [2] : [16, 8],
      make: (b) => waeStep(b, dry ? 16 : 128),
      torch: (b) => (dry ? 'PyTorch WAE is fixed at 128x128: not run in --dry' : torchRun('test/bench/pytorch_steps.py', ['--cases', 'wae', '--batch', String(b)], 'wae')),
    },
    {
      model: dry ? 'ProGAN R=8 (tiny preset)' : 'cond. ProGAN R=128',
      batches: dry ? [4] : [16, 8, 4],
      make: (b) => proganStep(b, dry ? 8 : 128),
      torch: (b) => (dry ? 'PyTorch ProGAN uses the paper sizes: not run in --dry' : torchRun('test/bench/pytorch_progan_step.py', ['--cases', '128', '--batches', String(b)], 'progan128')),
    },
  ];
  for (const m of models) {
    const row: StepRow = { model: m.model, batch: m.batches[0] ?? 1 };
    const notes: string[] = [];
    for (const batch of m.batches) {
      row.batch = batch;
      try {
        await useCuda();
        row.ours = timeSteps(m.make(batch), batch);
      } catch (err) {
        const msg = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
        notes.push(`proggan batch ${batch}: ${msg}`);
      }
      tf.disposeVariables();
      if (!dry) cudaBackend().allocator.emptyCache(); // give PyTorch (or the next try) the whole GPU
      if (row.ours !== undefined || !/out of memory/i.test(notes[notes.length - 1] ?? '')) break;
    }
    const t = m.torch(row.batch);
    if (typeof t === 'string') notes.push(t);
    else row.torch = t;
    if (notes.length > 0) row.note = notes.join('; ');
    steps.push(row);
  }
  steps.push({ model: '3DGAN', batch: 64, note: existsSync('src/models/gan3d.ts') ? 'in the tree but not wired into this check yet' : 'skipped: no 3DGAN in this tree (src/models/gan3d.ts)' });
}

// ---- 3. the table --------------------------------------------------------------------------
const mib = (b: number | null | undefined) => (b === null || b === undefined ? '-' : (b / 2 ** 20).toFixed(0));
const fx = (v: number | undefined, d = 1) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));
const lines = [
  `proggan GPU check (${detail}; ${tf32 ? 'TF32' : 'fp32'} math; median of ${reps} steps after 1 warm-up)`,
  `kernel parity vs cpu: ${parity.filter((r) => r.ok).length}/${parity.length} cases < ${tol}` +
    (parity.some((r) => !r.ok) ? ` — failing: ${parity.filter((r) => !r.ok).map((r) => r.name).join('; ')}` : ''),
  '',
  '| model | batch | proggan cuda img/s | PyTorch img/s | ratio | proggan peak MiB | PyTorch peak MiB | mem ratio | host fallbacks | note |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...steps.map((s) => {
    const ratio = s.ours && s.torch ? s.ours.imagesPerS / s.torch.imagesPerS : undefined;
    const mem = s.ours && s.torch?.peakBytes ? s.ours.peakBytes / s.torch.peakBytes : undefined;
    return `| ${s.model} | ${s.batch} | ${fx(s.ours?.imagesPerS)} | ${fx(s.torch?.imagesPerS)} | ${fx(ratio, 2)} | ${mib(s.ours?.peakBytes)} | ${mib(s.torch?.peakBytes)} | ${fx(mem, 2)} | ${s.ours ? s.ours.fallbacks.join(', ') || '0' : '-'} | ${s.note ?? ''} |`;
  }),
];
process.stdout.write(`${lines.join('\n')}\n`);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ detail, tf32, reps, parity, steps }, null, 2));
process.exitCode = parity.every((r) => r.ok) && steps.every((s) => s.ours !== undefined || s.model === '3DGAN') ? 0 : 1;
