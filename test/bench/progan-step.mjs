// Full conditional-ProGAN training step (REFERENCE.md §2), tfjs `native` backend vs PyTorch, at
// corner resolutions R (full images 2R x 2R), stable phase (alpha = 1), paper preset.
//
//   npm run build && node test/bench/progan-step.mjs [--threads 1] [--reps 3] [--cases 32,64,128]
//       [--batches 8,4,2] [--no-torch] [--profile] [--python /usr/bin/python3]
//
// The tfjs side is the library itself: ProGanObjective (dist/models/progan/objective.js) with the
// frozen WAE encoder of the `paper` preset, driven the way src/training/trainer.ts drives it
// (beginStep, per phase computeGradients -> optimizer.applyGradients, afterStep = EMA). The PyTorch
// side (pytorch_progan_step.py, run as a child process) mirrors every layer. The parameter counts of
// G, Dglobal, Dlocal, the encoder and of each phase's variables must agree, or the script exits 1.
//
// Prints a markdown table (img/s by wall clock and [by process CPU time]) and JSON lines. Each number
// is the median of --reps timed steps after one warm-up step. --profile adds one tf.profile'd step
// per case (native kernel times by kernel name, to stderr).
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeBackendStatus, nativeKernelCounts, registerNativeBackend } from '../../dist/backend/native.js';
import { encoderWaeConfig, resolveProGanConfig, scheduleConfigOf } from '../../dist/models/progan/config.js';
import { ProGanObjective } from '../../dist/models/progan/objective.js';
import { WaeObjective, waeArgsFromConfig } from '../../dist/models/wae/objective.js';
import { Rng } from '../../dist/util/random.js';
import { median, parseFlags } from './bench-util.mjs';

tf.env().set('PROD', true);
const here = dirname(fileURLToPath(import.meta.url));
const flags = parseFlags(process.argv.slice(2), {
  threads: 1,
  reps: 3,
  cases: '32,64,128',
  batches: '',
  'no-torch': false,
  profile: false,
  python: '/usr/bin/python3',
});
const cases = flags.cases.split(',').map(Number);
// Default batch per corner side: at R = 128 batch 4 does not fit the native side in 23 GiB (BENCHMARKS.md).
const DEFAULT_BATCH = { 32: 8, 64: 4, 128: 2 };
const batchList = String(flags.batches).split(',').filter((b) => b !== '').map(Number);
// One batch for all cases, one per case, or the defaults.
const batches = cases.map((r, i) => (batchList.length === 0 ? DEFAULT_BATCH[r] ?? 4 : batchList.length === 1 ? batchList[0] : batchList[i]));
if (batches.some((b) => !(b >= 1))) throw new Error(`--batches: need one batch or ${cases.length}, got ${flags.batches}`);

const size = (vars) => vars.reduce((a, v) => a + v.size, 0);

/** The objective and its frozen encoder at corner side r, as trainProgan builds them (paper preset). */
function buildCase(r, batch) {
  const config = resolveProGanConfig({
    preset: 'paper',
    // Start (and stay) at R: the schedule is in the stable phase at R from the first image.
    flags: { progan: { maxCornerResolution: r }, schedule: { startResolution: r }, loop: { batchSize: batch } },
  });
  // The encoder trainProgan would train for itself (ensureEncoder) and load back (loadWae).
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
  return { config, wae, objective };
}

/** Milliseconds per kernel name over one profiled call of `f`, largest first. */
async function profileKernels(f) {
  const prof = await tf.profile(f);
  const byName = new Map();
  for (const k of prof.kernels) {
    const e = byName.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    e.calls += 1;
    byName.set(k.name, e);
  }
  return [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms);
}

/** Times the step at corner side r; returns timings and the parameter counts. */
async function timeCase(r, batch, reps) {
  const { config, wae, objective } = buildCase(r, batch);
  const c = config.data.channels;
  const x = tf.randomUniform([batch, 2 * r, 2 * r, c], -1, 1, 'float32', 7); // full images in [-1, 1]
  const rng = new Rng(`${config.loop.seed}/trainer`);
  let step = 0;
  let nimg = 0;
  let losses = {};
  // One training step exactly as src/training/trainer.ts runs it (minus data loading, the
  // finite-check of grad norms and the stats).
  const runStep = () => {
    const ctx = { step, nimg, rng, replica: 0, replicas: 1 };
    objective.beginStep(ctx);
    const s = objective.state;
    if (s.resolution !== r || s.alpha !== 1 || s.phase !== 'stable') throw new Error(`schedule at ${JSON.stringify(s)}, expected stable at ${r}`);
    for (const phase of objective.phases()) {
      const result = objective.computeGradients(phase, { images: x }, ctx);
      phase.optimizer.applyGradients(phase.vars.map((v, i) => ({ name: v.name, tensor: result.grads[i] })));
      losses[phase.name] = result.losses[phase.name.toLowerCase()].dataSync()[0];
      tf.dispose([...Object.values(result.losses), ...result.grads]);
    }
    objective.afterStep(ctx);
    step++;
    nimg += batch;
  };
  const phases = objective.phases();
  const params = {
    G: size(objective.generator.variables().map(([, v]) => v)),
    Dglobal: size(objective.dGlobal.variables().map(([, v]) => v)),
    Dlocal: size(objective.dLocal.variables().map(([, v]) => v)),
    encoder: size(wae.encoder.weights.map((w) => w.read())),
    encoder_trainable: size(wae.encoder.trainableWeights.map((w) => w.read())),
    phaseD: size(phases.find((p) => p.name === 'D').vars),
    phaseG: size(phases.find((p) => p.name === 'G').vars),
  };
  const t0 = performance.now();
  nativeKernelCounts(true);
  runStep(); // warm-up: creates and auto-tunes the oneDNN primitives
  const warmupMs = performance.now() - t0;
  const before = tf.memory().numTensors;
  nativeKernelCounts(true);
  const ts = [];
  const cpuTs = [];
  for (let i = 0; i < reps; ++i) {
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    runStep();
    ts.push(performance.now() - w0);
    const dc = process.cpuUsage(c0);
    cpuTs.push((dc.user + dc.system) / 1e3);
  }
  const leaked = tf.memory().numTensors - before;
  // Kernels that ran in JavaScript (the cpu backend's) during the timed steps.
  const fellBack = Object.entries(nativeKernelCounts(true)).filter(([, k]) => k.fallback > 0).map(([k, c]) => `${k} x${c.fallback / reps}`);
  let profile;
  if (flags.profile) {
    profile = await profileKernels(runStep);
    const total = profile.reduce((a, [, e]) => a + e.ms, 0);
    console.error(`native progan${r} profile: kernels ${total.toFixed(0)} ms in all`);
    for (const [name, e] of profile.slice(0, 20)) {
      console.error(`  ${name.padEnd(28)} ${e.ms.toFixed(0).padStart(8)} ms ${String(e.calls).padStart(6)} calls ${((100 * e.ms) / total).toFixed(1).padStart(5)}%`);
    }
  }
  objective.dispose();
  wae.dispose();
  x.dispose();
  const ms = median(ts);
  const cpuMs = median(cpuTs);
  return { ms, imagesPerS: (batch * 1e3) / ms, cpuMs, imagesPerCpuS: (batch * 1e3) / cpuMs, warmupMs, leaked, fellBack, losses: { d: losses.D, g: losses.G }, params, channels: c };
}

/** Runs pytorch_progan_step.py for one case: its parameter counts and timings. */
function torchCase(r, batch, channels) {
  const res = spawnSync(
    flags.python,
    [join(here, 'pytorch_progan_step.py'), '--threads', String(flags.threads), '--reps', String(flags.reps), '--cases', String(r),
      '--batches', String(batch), '--channels', String(channels)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
  );
  if (res.status !== 0) throw new Error(`pytorch_progan_step.py failed (${res.status}); is python3-torch installed (apt-get install python3-torch)?`);
  const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const { case: _c, resolution: _r, ...params } = lines.find((l) => l.case === 'params');
  const j = lines.find((l) => l.case === `progan${r}`);
  return { ms: j.ms, imagesPerS: j.images_per_s, cpuMs: j.cpu_ms, imagesPerCpuS: j.images_per_cpu_s, losses: j.losses, params, version: j.torch };
}

// ------------------------------------------------------------------------------------------
// Run: each case on both sides back to back, so both see similar machine load.

const status = nativeBackendStatus();
if (!status.available) throw new Error(`native backend unavailable: ${status.reason}`);
await registerNativeBackend({ threads: flags.threads });
await tf.setBackend('native');

const results = {};
const mismatches = [];
for (const [i, r] of cases.entries()) {
  const name = `progan${r}`;
  const batch = batches[i];
  const native = await timeCase(r, batch, flags.reps);
  results[name] = { resolution: r, batch, native };
  console.error(`native ${name} batch ${batch}: ${native.ms.toFixed(0)} ms/step (warm-up ${native.warmupMs.toFixed(0)} ms), params ${JSON.stringify(native.params)}`);
  if (!flags['no-torch']) {
    const torch = torchCase(r, batch, native.channels);
    results[name].torch = torch;
    console.error(`torch  ${name} batch ${batch}: ${torch.ms.toFixed(0)} ms/step, params ${JSON.stringify(torch.params)}`);
    for (const [k, v] of Object.entries(native.params)) {
      if (torch.params[k] !== v) mismatches.push(`${name} ${k}: native ${v} vs torch ${torch.params[k]}`);
    }
  }
}

const fmt = (x, d = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const ratio = (a, b) => (a === undefined || b === undefined ? undefined : a / b);
const both = (a, b, d = 2) => `${fmt(a, d)} [${fmt(b, d)}]`;
const torchVersion = Object.values(results)[0]?.torch?.version ?? '-';

console.log(`threads=${flags.threads} reps=${flags.reps} (median), oneDNN ${status.dnnlVersion}, torch ${torchVersion}; img/s by wall clock [by process CPU time]`);
console.log('');
console.log('| case | R | image | batch | native img/s | PyTorch img/s | native / PyTorch |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results)) {
  const n = r.native;
  const t = r.torch;
  const side = 2 * r.resolution;
  console.log(`| ${name} | ${r.resolution} | ${side}x${side} | ${r.batch} | ${both(n.imagesPerS, n.imagesPerCpuS, 3)} | ${both(t?.imagesPerS, t?.imagesPerCpuS, 3)} | ` +
    `**${fmt(ratio(n.imagesPerS, t?.imagesPerS))}x** [${fmt(ratio(n.imagesPerCpuS, t?.imagesPerCpuS))}x] |`);
}
console.log('');
console.log('| case | G | Dglobal | Dlocal | encoder (+BN stats) | phase D vars | phase G vars | same on both sides |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results)) {
  const p = r.native.params;
  const same = r.torch ? (Object.keys(p).every((k) => r.torch.params[k] === p[k]) ? 'yes' : '**NO**') : '(not checked)';
  console.log(`| ${name} | ${p.G} | ${p.Dglobal} | ${p.Dlocal} | ${p.encoder_trainable} (${p.encoder}) | ${p.phaseD} | ${p.phaseG} | ${same} |`);
}
console.log('');
for (const [name, r] of Object.entries(results)) {
  if (r.native.leaked !== 0) console.log(`WARNING: ${name} leaked ${r.native.leaked} tensors over ${flags.reps} steps`);
  console.log(`${name} last-step losses: native D ${fmt(r.native.losses.d, 4)} G ${fmt(r.native.losses.g, 4)}; torch D ${fmt(r.torch?.losses.d, 4)} G ${fmt(r.torch?.losses.g, 4)}`);
  console.log(`${name} native kernels that fell back to cpu, per step: ${r.native.fellBack.length ? r.native.fellBack.join(', ') : 'none'}`);
}
for (const [name, r] of Object.entries(results)) console.log(JSON.stringify({ case: name, threads: flags.threads, reps: flags.reps, ...r }));
if (mismatches.length > 0) {
  console.error(`FAIL: the two models differ in parameter counts:\n  ${mismatches.join('\n  ')}`);
  process.exit(1);
}
