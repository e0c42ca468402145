/**
 * Helpers for end-to-end tests that run `proggan train` in subprocesses and compare run
 * directories: reusable by every model's tests (e.g. `expectRepeatable('gan3d', [...])`).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { expect } from 'vitest';
import { loadLatestCheckpoint } from '../../../src/training/checkpoint.js';

/** The repository root (where bin/proggan.js lives). */
export const ROOT = join(import.meta.dirname, '..', '..', '..');

/** Run `node bin/proggan.js ...args` to completion. */
export function proggan(args: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['bin/proggan.js', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
}

/** A fresh empty temporary directory. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `proggan-${prefix}-`));
}

/**
 * sha256 of every file under `dir` by relative path (a snapshot to compare before/after). The run's
 * `log.jsonl` is left out: every start, a rejected one included, appends its log there (so the reason
 * a start failed stays on record); everything that defines the run must be unchanged.
 */
export function treeDigest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (d === dir && name === 'log.jsonl') continue;
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** The steps of the status lines (records without a `kind`) of a run's stats.jsonl, in file order. */
export function statusSteps(runDir: string): number[] {
  return readFileSync(join(runDir, 'stats.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { step: number; kind?: string })
    .filter((r) => r.kind === undefined)
    .map((r) => r.step);
}

/** Assert that the newest checkpoints of two run directories hold bitwise-equal tensors at the same step. */
export async function expectSameCheckpoint(a: string, b: string): Promise<void> {
  const ca = await loadLatestCheckpoint(a);
  const cb = await loadLatestCheckpoint(b);
  expect(ca, `${a} has a checkpoint`).not.toBeNull();
  expect(cb?.state.step).toBe(ca?.state.step);
  const names = Object.keys(ca?.state.tensors ?? {});
  expect(Object.keys(cb?.state.tensors ?? {})).toEqual(names);
  for (const name of names) {
    const x = ca?.state.tensors[name]?.data;
    const y = cb?.state.tensors[name]?.data;
    // Compare bytes, so that NaN payloads and -0 count too.
    const bx = x ? Buffer.from(x.buffer, x.byteOffset, x.byteLength) : Buffer.alloc(0);
    const by = y ? Buffer.from(y.buffer, y.byteOffset, y.byteLength) : Buffer.alloc(0);
    expect(bx.equals(by), `tensor ${name} differs between ${a} and ${b}`).toBe(true);
  }
}

/**
 * Train `model` twice with the same flags (add `--seed`, `--threads 1` and a backend yourself) into
 * two fresh run directories and assert both runs end bitwise equal, stats included (timings aside).
 * Returns the two run directories.
 */
export async function expectRepeatable(model: string, args: string[]): Promise<[string, string]> {
  const dirs: [string, string] = [tempDir(`${model}-rep-a`), tempDir(`${model}-rep-b`)];
  for (const dir of dirs) {
    const res = proggan(['train', model, ...args, '--run-dir', dir]);
    expect(res.status, res.stderr).toBe(0);
  }
  await expectSameCheckpoint(dirs[0], dirs[1]);
  const losses = (dir: string) =>
    readFileSync(join(dir, 'stats.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => Object.fromEntries(Object.entries(JSON.parse(l) as Record<string, unknown>).filter(([k]) => /^(step|loss\/|grad_norm\/|swd\/)/.test(k))));
  expect(losses(dirs[1])).toEqual(losses(dirs[0]));
  return dirs;
}
