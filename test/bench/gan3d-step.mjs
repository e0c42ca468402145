// Whole 3DGAN training step (REFERENCE.md §3: D on real, D on fake, G twice through the frozen D, each
// followed by its RMSprop update), tfjs `native` backend vs the same model in PyTorch.
//
//   npm run build && node test/bench/gan3d-step.mjs [--threads 1] [--reps 3] [--presets paper,small]
//       [--batches 8,16] [--no-torch] [--profile] [--python /usr/bin/python3] [--python2 /tmp/tv/bin/python]
//
// The tfjs side is the library itself: Gan3dObjective (dist/models/gan3d/objective.js) driven the way
// src/training/trainer.ts drives it (per phase computeGradients -> optimizer.applyGradients). The
// PyTorch side (pytorch_gan3d_step.py, one child process per interpreter) mirrors every layer; the
// parameter counts of G and D must agree, or the script exits 1. Each number is the median of --reps
// timed steps after one warm-up step; img/s by wall clock and [by process CPU time]. --profile adds one
// tf.profile'd step per case (kernel times by name, to stderr; `*` marks kernels with no native code).
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeBackendStatus, nativeKernelCounts, nativeKernelNames, registerNativeBackend } from '../../dist/backend/native.js';
import { Gan3dObjective, gan3dPreset } from '../../dist/models/gan3d/objective.js';
import { Rng } from '../../dist/util/random.js';
import { median, parseFlags } from './bench-util.mjs';

tf.env().set('PROD', true);
const here = dirname(fileURLToPath(import.meta.url));
const flags = parseFlags(process.argv.slice(2), {
  threads: 1,
  reps: 3,
  presets: 'paper,small',
  batches: '',
  'no-torch': false,
  profile: false,
  python: '/usr/bin/python3',
  python2: '',
  backend: 'native',
});
const presets = flags.presets.split(',');
const batchList = String(flags.batches).split(',').filter((b) => b !== '').map(Number);
const batches = presets.map((p, i) => (batchList.length === 0 ? gan3dPreset(p).batchSize : batchList.length === 1 ? batchList[0] : batchList[i]));
if (batches.some((b) => !(b >= 1))) throw new Error(`--batches: need one batch or ${presets.length}, got ${flags.batches}`);
const size = (vars) => vars.reduce((a, v) => a + v.size, 0);

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

/** Times the step of a preset at a batch size. */
async function timeCase(preset, batch) {
  const base = gan3dPreset(preset);
  const config = { ...base, batchSize: batch };
  const objective = new Gan3dObjective(config);
  const [X, Y, Z] = [51, 51, 25];
  // Showers: sparse-ish non-negative cells, E/100 in [0.02, 5], theta in [60, 120] deg.
  const ecal = tf.tidy(() => tf.mul(tf.relu(tf.randomNormal([batch, X, Y, Z, 1], -1, 1, 'float32', 11)), 0.3));
  const energy = tf.randomUniform([batch], 0.02, 5, 'float32', 12);
  const theta = tf.randomUniform([batch], Math.PI / 3, (2 * Math.PI) / 3, 'float32', 13);
  const rng = new Rng(`${config.seed}/trainer`);
  let step = 0;
  const losses = {};
  const runStep = () => {
    const ctx = { step, nimg: step * batch, rng, replica: 0, replicas: 1 };
    for (const phase of objective.phases()) {
      const result = objective.computeGradients(phase, { ecal, energy, theta }, ctx);
      phase.optimizer.applyGradients(phase.vars.map((v, i) => ({ name: v.name, tensor: result.grads[i] })));
      losses[phase.name] = result.losses.total.dataSync()[0];
      tf.dispose([...Object.values(result.losses), ...result.grads]);
    }
    step++;
  };
  const phases = objective.phases();
  const params = { ...objective.paramCounts(), phaseD: size(phases[0].vars), phaseG: size(phases[2].vars) };
  const w0 = performance.now();
  runStep(); // warm-up: creates (and tunes) the oneDNN primitives
  const warmupMs = performance.now() - w0;
  const before = tf.memory().numTensors;
  if (flags.backend === 'native') nativeKernelCounts(true);
  const ts = [];
  const cpuTs = [];
  for (let i = 0; i < flags.reps; ++i) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    runStep();
    ts.push(performance.now() - t0);
    const dc = process.cpuUsage(c0);
    cpuTs.push((dc.user + dc.system) / 1e3);
  }
  const leaked = tf.memory().numTensors - before;
  const fellBack = flags.backend === 'native' ? Object.entries(nativeKernelCounts(true)).filter(([, k]) => k.fallback > 0).map(([k, c]) => `${k} x${c.fallback / flags.reps}`) : [];
  if (flags.profile) {
    const nativeNames = new Set(flags.backend === 'native' ? nativeKernelNames() : []);
    const profile = await profileKernels(runStep);
    const total = profile.reduce((a, [, e]) => a + e.ms, 0);
    console.error(`${flags.backend} gan3d ${preset} batch ${batch} profile: kernels ${total.toFixed(0)} ms in all (* = no native kernel: runs in JS)`);
    for (const [name, e] of profile.slice(0, 30)) {
      const mark = nativeNames.has(name) ? ' ' : '*';
      console.error(`  ${mark}${name.padEnd(28)} ${e.ms.toFixed(0).padStart(8)} ms ${String(e.calls).padStart(6)} calls ${((100 * e.ms) / total).toFixed(1).padStart(5)}%`);
    }
  }
  objective.dispose();
  tf.dispose([ecal, energy, theta]);
  const ms = median(ts);
  const cpuMs = median(cpuTs);
  return { ms, imagesPerS: (batch * 1e3) / ms, cpuMs, imagesPerCpuS: (batch * 1e3) / cpuMs, warmupMs, leaked, fellBack, losses: { ...losses }, params };
}

/** Runs pytorch_gan3d_step.py under one interpreter for one case. */
function torchCase(python, preset, batch) {
  const res = spawnSync(python, [join(here, 'pytorch_gan3d_step.py'), '--threads', String(flags.threads), '--reps', String(flags.reps), '--preset', preset, '--batch', String(batch)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  if (res.status !== 0) throw new Error(`${python} pytorch_gan3d_step.py failed (${res.status}); is torch installed (apt-get install python3-torch, or a venv: python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch)?`);
  const j = JSON.parse(res.stdout.trim().split('\n').pop());
  return { ms: j.ms, imagesPerS: j.images_per_s, cpuMs: j.cpu_ms, imagesPerCpuS: j.images_per_cpu_s, losses: j.losses, params: j.params, version: j.torch, warmupMs: j.warmup_ms };
}

const status = flags.backend === 'native' ? nativeBackendStatus() : { available: true, dnnlVersion: '-' };
if (!status.available) throw new Error(`native backend unavailable: ${status.reason}`);
if (flags.backend === 'native') await registerNativeBackend({ threads: flags.threads });
await tf.setBackend(flags.backend);

const pythons = flags['no-torch'] ? [] : [flags.python, flags.python2].filter((p) => p !== '');
const results = [];
const mismatches = [];
for (const [i, preset] of presets.entries()) {
  const batch = batches[i];
  const native = await timeCase(preset, batch);
  console.error(`${flags.backend} gan3d ${preset} batch ${batch}: ${native.ms.toFixed(0)} ms/step wall, ${native.cpuMs.toFixed(0)} ms CPU (warm-up ${native.warmupMs.toFixed(0)} ms), params ${JSON.stringify(native.params)}`);
  const torch = pythons.map((py) => {
    const t = torchCase(py, preset, batch);
    console.error(`torch ${t.version} gan3d ${preset} batch ${batch}: ${t.ms.toFixed(0)} ms/step wall, ${t.cpuMs.toFixed(0)} ms CPU, params ${JSON.stringify(t.params)}`);
    for (const [k, v] of Object.entries(native.params)) if (t.params[k] !== v) mismatches.push(`${preset} ${k}: native ${v} vs torch ${t.version} ${t.params[k]}`);
    return t;
  });
  results.push({ preset, batch, native, torch });
}

const fmt = (x, d = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const both = (a, b, d = 2) => `${fmt(a, d)} [${fmt(b, d)}]`;
console.log(`threads=${flags.threads} reps=${flags.reps} (median), backend ${flags.backend}, oneDNN ${status.dnnlVersion}; img/s by wall clock [by process CPU time]`);
console.log('');
console.log('| preset | batch | G params | D params | native img/s | PyTorch | PyTorch img/s | native / PyTorch |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of results) {
  const n = r.native;
  for (const t of r.torch.length ? r.torch : [undefined]) {
    console.log(`| ${r.preset} | ${r.batch} | ${n.params.generator} | ${n.params.discriminator} | ${both(n.imagesPerS, n.imagesPerCpuS, 3)} | ${t?.version ?? '-'} | ${both(t?.imagesPerS, t?.imagesPerCpuS, 3)} | ` +
      `**${fmt(t ? n.imagesPerS / t.imagesPerS : undefined)}x** [${fmt(t ? n.imagesPerCpuS / t.imagesPerCpuS : undefined)}x] |`);
  }
}
console.log('');
for (const r of results) {
  if (r.native.leaked !== 0) console.log(`WARNING: ${r.preset} leaked ${r.native.leaked} tensors over ${flags.reps} steps`);
  console.log(`${r.preset}: parameter counts ${r.torch.length ? (r.torch.every((t) => Object.keys(r.native.params).every((k) => t.params[k] === r.native.params[k])) ? 'equal on both sides' : '**DIFFER**') : 'not checked'}: ${JSON.stringify(r.native.params)}; native warm-up step ${fmt(r.native.warmupMs / 1e3, 1)} s`);
  console.log(`${r.preset}: native kernels that fell back to cpu, per step: ${r.native.fellBack.length ? r.native.fellBack.join(', ') : 'none'}`);
}
for (const r of results) console.log(JSON.stringify({ threads: flags.threads, reps: flags.reps, ...r }));
if (mismatches.length > 0) {
  console.error(`FAIL: the two models differ in parameter counts:\n  ${mismatches.join('\n  ')}`);
  process.exit(1);
}
