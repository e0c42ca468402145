// Training-step benchmark: the tfjs `native` backend vs PyTorch (and vs the pure-JS `cpu`
// backend on the WAE step), same networks, shapes, batch and thread count on both sides.
//
//   npm run build && node test/bench/steps.mjs [--threads 1] [--reps 3] [--cases wae,progan32,...]
//       [--cpu-batch 1] [--no-torch] [--no-cpu] [--python /usr/bin/python3]
//
// Prints a table of images/s and ratios, plus a JSON summary line. Each number is the median of
// --reps timed steps after one warm-up step (other processes share this machine).
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeBackendStatus, nativeKernelCounts, registerNativeBackend } from '../../dist/backend/native.js';
import { median, parseFlags } from './bench-util.mjs';
import { makeCase } from './cases.mjs';

tf.env().set('PROD', true);
const here = dirname(fileURLToPath(import.meta.url));
const flags = parseFlags(process.argv.slice(2), {
  threads: 1,
  reps: 3,
  batch: 16,
  'progan-batch': 4,
  'conv3d-batch': 8,
  'cpu-batch': 1,
  cases: 'wae,progan32,progan64,progan128,conv3d',
  'no-torch': false,
  'no-cpu': false,
  python: '/usr/bin/python3',
});
const cases = flags.cases.split(',');

function batchOf(name) {
  if (name === 'wae') return flags.batch;
  if (name.startsWith('progan')) return flags['progan-batch'];
  return flags['conv3d-batch'];
}

/** Median ms per step over `reps` timed steps after `warmup` steps; checks for tensor leaks. */
async function timeCase(name, batch, reps, warmup = 1) {
  const c = await makeCase(name, batch);
  for (let i = 0; i < warmup; ++i) c.run();
  const before = tf.memory().numTensors;
  const ts = [];
  const cpuTs = [];
  for (let r = 0; r < reps; ++r) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    c.run();
    ts.push(performance.now() - t0);
    const dc = process.cpuUsage(c0);
    cpuTs.push((dc.user + dc.system) / 1e3);
  }
  const leaked = tf.memory().numTensors - before;
  c.dispose();
  const ms = median(ts);
  const cpuMs = median(cpuTs);
  return { ms, imagesPerS: (batch * 1e3) / ms, cpuMs, imagesPerCpuS: (batch * 1e3) / cpuMs, leaked, source: c.source };
}

// ------------------------------------------------------------------------------------------
// Run.

const status = nativeBackendStatus();
if (!status.available) throw new Error(`native backend unavailable: ${status.reason}`);
await registerNativeBackend({ threads: flags.threads });
const results = {};

/** Runs pytorch_steps.py for one case; returns its JSON result. */
function torchCase(name) {
  const r = spawnSync(
    flags.python,
    [join(here, 'pytorch_steps.py'), '--threads', String(flags.threads), '--reps', String(flags.reps), '--batch', String(flags.batch),
      '--progan-batch', String(flags['progan-batch']), '--conv3d-batch', String(flags['conv3d-batch']), '--cases', name],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (r.status !== 0) throw new Error(`pytorch_steps.py failed (${r.status}); is python3-torch installed (apt-get install python3-torch)?`);
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1));
  return { ms: j.ms, imagesPerS: j.images_per_s, cpuMs: j.cpu_ms, imagesPerCpuS: j.images_per_cpu_s, version: j.torch };
}

// Each case runs on both sides back to back, so both see similar machine load.
await tf.setBackend('native');
for (const name of cases) {
  results[name] = { native: await timeCase(name, batchOf(name), flags.reps) };
  console.error(`native ${name}: ${results[name].native.ms.toFixed(0)} ms/step`);
  if (!flags['no-torch']) {
    results[name].torch = torchCase(name);
    console.error(`torch  ${name}: ${results[name].torch.ms.toFixed(0)} ms/step`);
  }
}
const counts = nativeKernelCounts();
const fellBack = Object.entries(counts)
  .filter(([, c]) => c.fallback > 0)
  .map(([k, c]) => `${k} x${c.fallback}`);

if (!flags['no-cpu'] && cases.includes('wae')) {
  // The pure-JS backend is ~500x slower: one step, no warm-up (JS kernels have no setup cost
  // worth excluding), at a small batch, compared in images/s.
  await tf.setBackend('cpu');
  results.wae.cpu = { ...(await timeCase('wae', flags['cpu-batch'], 1, 0)), batch: flags['cpu-batch'] };
  console.error(`cpu wae: ${results.wae.cpu.ms.toFixed(0)} ms/step at batch ${flags['cpu-batch']}`);
}

const fmt = (x, d = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const ratio = (a, b) => (a === undefined || b === undefined ? undefined : a / b);
console.log(`threads=${flags.threads} reps=${flags.reps} (median) oneDNN ${status.dnnlVersion} torch ${results[cases[0]]?.torch?.version ?? '-'}`);
console.log('img/s by wall clock, and [by process CPU time: insensitive to other processes on a shared machine; meaningful at 1 thread]');
console.log(`${'case'.padEnd(10)} ${'batch'.padStart(5)} ${'native img/s'.padStart(21)} ${'torch img/s'.padStart(21)} ${'native/torch'.padStart(19)} ${'cpu img/s'.padStart(10)} ${'native/cpu'.padStart(11)}`);
for (const name of cases) {
  const r = results[name];
  const both = (a, b, d = 2) => `${fmt(a, d)} [${fmt(b, d)}]`;
  console.log(
    `${name.padEnd(10)} ${String(batchOf(name)).padStart(5)} ${both(r.native.imagesPerS, r.native.imagesPerCpuS).padStart(21)} ${both(r.torch?.imagesPerS, r.torch?.imagesPerCpuS).padStart(21)} ${both(ratio(r.native.imagesPerS, r.torch?.imagesPerS), ratio(r.native.imagesPerCpuS, r.torch?.imagesPerCpuS)).padStart(19)} ${fmt(r.cpu?.imagesPerS, 4).padStart(10)} ${fmt(ratio(r.native.imagesPerS, r.cpu?.imagesPerS), 0).padStart(10)}x`,
  );
  if (r.native.leaked !== 0) console.log(`  WARNING: ${name} leaked ${r.native.leaked} tensors per step`);
}
if (results.wae?.native.source) console.log(`WAE model: ${results.wae.native.source}`);
console.log(`native kernels that fell back to cpu: ${fellBack.length ? fellBack.join(', ') : 'none'}`);
console.log(JSON.stringify({ threads: flags.threads, reps: flags.reps, results }));
