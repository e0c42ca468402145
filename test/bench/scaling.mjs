// Data-parallel scaling on one machine: images/s of `proggan train` with 1 worker vs N workers, the
// native backend at --threads 1 per worker, the same per-replica batch (so the global batch grows).
//
//   npm run build && node test/bench/scaling.mjs [--model wae] [--preset small] [--steps 60] [--workers 2] [--batch 16] [--synthetic-count N]
//
// Reads each run's stats.jsonl and averages img/s over the ticks after the first (warm-up, oneDNN tuning).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'wae' },
    preset: { type: 'string', default: 'small' },
    steps: { type: 'string', default: '60' },
    workers: { type: 'string', default: '2' },
    batch: { type: 'string', default: '16' },
    backend: { type: 'string', default: 'native' },
    // A small procedural set is rendered once in the first tick and read from memory afterwards.
    'synthetic-count': { type: 'string' },
  },
});
const root = join(import.meta.dirname, '..', '..');

function run(workers) {
  const runDir = mkdtempSync(join(tmpdir(), `proggan-scale${workers}-`));
  const args = ['bin/proggan.js', 'train', o.model, '--preset', o.preset, '--steps', o.steps, '--batch-size', o.batch,
    '--backend', o.backend, '--threads', '1', '--tick-every', '10', '--checkpoint-every', '100000', '--sample-every', '100000',
    '--run-dir', runDir];
  if (workers > 1) args.push('--workers', String(workers));
  if (o['synthetic-count'] !== undefined) args.push('--synthetic-count', o['synthetic-count']);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${workers} worker(s) failed:\n${r.stderr}\n${r.stdout.slice(-2000)}`);
  const ticks = readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).slice(1);
  // One process records no time/allreduce (nothing to reduce): it counts as 0 here.
  const mean = (k) => ticks.reduce((s, t) => s + (t[k] ?? 0), 0) / ticks.length;
  return {
    workers, wall: (performance.now() - t0) / 1000, imgPerSec: mean('img/s'),
    split: { input: mean('time/input'), compute: mean('time/compute'), allreduce: mean('time/allreduce'), apply: mean('time/apply') },
  };
}

const one = run(1);
const n = run(Number(o.workers));
for (const r of [one, n]) {
  console.log(`${r.workers} worker(s): ${r.imgPerSec.toFixed(2)} img/s (global batch ${Number(o.batch) * r.workers}), ` +
    `per step s: input ${r.split.input.toFixed(4)} compute ${r.split.compute.toFixed(3)} allreduce ${r.split.allreduce.toFixed(4)} apply ${r.split.apply.toFixed(4)}; wall ${r.wall.toFixed(0)} s`);
}
console.log(`scaling 1 -> ${o.workers} workers: ${(n.imgPerSec / one.imgPerSec).toFixed(2)}x`);
