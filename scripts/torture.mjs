#!/usr/bin/env node
/**
 * Kill-and-resume torture test of `proggan train` (issue #16): for each model, one uninterrupted
 * reference run (twice, to show it repeats bitwise), then trials that SIGKILL a run at a random
 * moment (seeded), sometimes kill its first resume too, and resume until it finishes. Each trial
 * checks the run directory against the reference:
 *
 *   resumed     the final resume reached the target step (exit 0)
 *   lost        steps 1..N with no status line in stats.jsonl (--tick-every 1)
 *   duplicates  steps with more than one status line
 *   corrupt     step checkpoints left by a kill that do not verify (sizes, sha256)
 *   bitwise     the final checkpoint's tensors equal the reference run's byte for byte
 *
 * Usage (after `npm run build`):
 *   node scripts/torture.mjs [--models wae,progan] [--trials 20] [--seed 1] [--threads 1]
 *                            [--time-limit 1500] [--keep-dirs] [--work DIR]
 * Exit status 1 when any trial lost or duplicated a step, left a corrupt checkpoint, failed to
 * resume, or (where the reference repeats) ended with other weights than the reference.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CHECKPOINT_JS = join(ROOT, 'dist', 'training', 'checkpoint.js');

const HELP = `usage: node scripts/torture.mjs [--models wae,progan] [--trials 20] [--seed 1] [--threads 1]
                                [--time-limit SECONDS] [--keep-dirs] [--work DIR]
SIGKILLs tiny training runs at seeded random moments, resumes them and prints
trials / resumed / lost steps / duplicates / corrupt / bitwise-equal per model. Needs \`npm run build\`.`;

let opts;
try {
  opts = parseArgs({
    options: {
      models: { type: 'string', default: 'wae,progan' },
      trials: { type: 'string', default: '20' },
      seed: { type: 'string', default: '1' },
      threads: { type: 'string', default: '1' },
      'time-limit': { type: 'string', default: '1500' },
      'keep-dirs': { type: 'boolean', default: false },
      work: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  }).values;
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${HELP}\n`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const positiveInt = (v, flag) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`--${flag} must be a positive integer, got ${v}\n`);
    process.exit(2);
  }
  return n;
};
const trials = positiveInt(opts.trials, 'trials');
const seed = positiveInt(opts.seed, 'seed');
const threads = positiveInt(opts.threads, 'threads');
const timeLimitMs = positiveInt(opts['time-limit'], 'time-limit') * 1000;
if (!existsSync(CHECKPOINT_JS)) {
  process.stderr.write(`${CHECKPOINT_JS} is missing: run \`npm run build\` first\n`);
  process.exit(2);
}
const { listCheckpoints, resolveCheckpoint, loadLatestCheckpoint } = await import(CHECKPOINT_JS);

/** Per model: the flags of every run (tiny preset, a status line and a checkpoint often). */
const MODELS = {
  wae: { steps: 40, flags: ['--preset', 'tiny', '--checkpoint-every', '4', '--tick-every', '1', '--sample-every', '1000'] },
  progan: { steps: 16, flags: ['--preset', 'tiny', '--checkpoint-every', '3', '--tick-every', '1', '--sample-every', '1000', '--eval-every', '8'] },
};
const models = opts.models.split(',').map((m) => m.trim()).filter(Boolean);
for (const m of models) {
  if (!(m in MODELS)) {
    process.stderr.write(`--models: unknown model "${m}" (choose from ${Object.keys(MODELS).join(', ')})\n`);
    process.exit(2);
  }
}

/** mulberry32: a small seeded generator for the kill times. */
function rng(s) {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Run the CLI; kill it with SIGKILL after `killAfterMs` when given. */
function runCli(args, killAfterMs) {
  return new Promise((resolveRun) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'proggan.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    let killed = false;
    const timer = killAfterMs === undefined ? null : setTimeout(() => {
      killed = child.kill('SIGKILL');
    }, killAfterMs);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolveRun({ code, signal, killed: killed && signal === 'SIGKILL', ms: performance.now() - t0, stderr });
    });
  });
}

function statusSteps(runDir) {
  const path = join(runDir, 'stats.jsonl');
  if (!existsSync(path)) return [];
  const steps = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const rec = JSON.parse(line);
      if (rec.kind === undefined && typeof rec.step === 'number') steps.push(rec.step);
    } catch {
      // a torn line: counted by neither
    }
  }
  return steps;
}

async function finalDigest(runDir) {
  const found = await loadLatestCheckpoint(runDir);
  if (!found) return null;
  return createHash('sha256').update(readFileSync(join(found.dir, 'tensors.bin'))).digest('hex');
}

async function corruptCheckpoints(runDir) {
  let bad = 0;
  for (const dir of await listCheckpoints(runDir)) {
    try {
      await resolveCheckpoint(dir);
    } catch {
      bad++;
    }
  }
  return bad;
}

const work = opts.work ?? mkdtempSync(join(tmpdir(), 'proggan-torture-'));
const started = performance.now();
const rows = [];
let failed = false;
for (const [mi, model] of models.entries()) {
  const spec = MODELS[model];
  const base = ['train', model, ...spec.flags, '--steps', String(spec.steps), '--threads', String(threads), '--seed', '7'];
  const random = rng(seed * 1000 + mi);
  // The reference, twice; the ProGAN trials share the first reference's encoder (no encoder training per trial).
  const refs = [join(work, `${model}-ref-a`), join(work, `${model}-ref-b`)];
  let refMs = 0;
  for (const r of refs) {
    const res = await runCli([...base, '--run-dir', r]);
    if (res.code !== 0) throw new Error(`reference run ${r} failed (${res.code}): ${res.stderr.slice(-2000)}`);
    refMs = Math.max(refMs, res.ms);
  }
  const extra = model === 'progan' ? ['--encoder', join(refs[0], 'encoder')] : [];
  const refDigest = await finalDigest(refs[0]);
  const repeats = refDigest !== null && refDigest === (await finalDigest(refs[1]));
  const row = { model, trials: 0, kills: 0, resumed: 0, lost: 0, duplicates: 0, corrupt: 0, bitwise: 0, repeats, refSeconds: refMs / 1000 };
  for (let t = 0; t < trials; t++) {
    if (performance.now() - started > timeLimitMs) break;
    const dir = join(work, `${model}-trial-${t}`);
    const args = [...base, ...extra, '--run-dir', dir];
    // Kill somewhere between process start and the reference's end (startup included).
    const first = await runCli(args, 300 + random() * refMs);
    row.kills += first.killed ? 1 : 0;
    row.corrupt += await corruptCheckpoints(dir);
    // Half the trials also kill the first resume.
    const resumeArgs = () => (existsSync(join(dir, 'config.json')) ? [...args, '--resume'] : args);
    if (random() < 0.5) {
      const second = await runCli(resumeArgs(), 300 + random() * refMs);
      row.kills += second.killed ? 1 : 0;
      row.corrupt += await corruptCheckpoints(dir);
    }
    const last = await runCli(resumeArgs());
    row.trials++;
    const steps = statusSteps(dir);
    const seen = new Map();
    for (const s of steps) seen.set(s, (seen.get(s) ?? 0) + 1);
    const lost = Array.from({ length: spec.steps }, (_, i) => i + 1).filter((s) => !seen.has(s)).length;
    const dups = [...seen.values()].reduce((a, n) => a + Math.max(0, n - 1), 0);
    const ok = last.code === 0;
    row.resumed += ok ? 1 : 0;
    row.lost += lost;
    row.duplicates += dups;
    const equal = ok && (await finalDigest(dir)) === refDigest;
    row.bitwise += equal ? 1 : 0;
    if (!ok || lost > 0 || dups > 0 || (repeats && !equal)) {
      failed = true;
      process.stderr.write(`${model} trial ${t}: exit ${last.code}, lost ${lost}, duplicates ${dups}, bitwise ${equal}\n${ok ? '' : last.stderr.slice(-1500)}\n`);
    }
    if (!opts['keep-dirs']) rmSync(dir, { recursive: true, force: true });
  }
  if (row.corrupt > 0) failed = true;
  rows.push(row);
}

const header = ['model', 'trials', 'kills', 'resumed', 'lost steps', 'duplicates', 'corrupt', 'bitwise-equal', 'reference repeats', 'reference s'];
const lines = rows.map((r) => [r.model, r.trials, r.kills, r.resumed, r.lost, r.duplicates, r.corrupt, `${r.bitwise}/${r.trials}`, r.repeats ? 'yes' : 'NO', r.refSeconds.toFixed(1)]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
const fmt = (cells) => cells.map((c, i) => String(c).padStart(widths[i])).join('  ');
process.stdout.write(`${fmt(header)}\n${lines.map(fmt).join('\n')}\n`);
process.stdout.write(`seed ${seed}, --threads ${threads}, ${((performance.now() - started) / 1000).toFixed(0)} s, work dir ${work}\n`);
if (!opts['keep-dirs'] && opts.work === undefined) rmSync(work, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
