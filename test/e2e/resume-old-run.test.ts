/**
 * A run directory written by the code before the model registry (commit 691e02c: `proggan train wae
 * --preset tiny --config {"wae":{"filters":[4,8]}} --steps 4 --latent-size 8 --synthetic-count 32
 * --batch-size 4 --checkpoint-every 4 --tick-every 2 --backend cpu`) resumes with `--resume` alone:
 * same config.json shape, checkpoint format and variable names. The same command with `--steps 6`
 * on that code logged loss/total 7.151829957962036 and loss/rec 1.200330138206482 at step 6.
 */
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTrainArgs } from '../../src/cli/train.js';
import { runTrain } from '../../src/cli/run-train.js';

const FIXTURE = join(__dirname, '..', 'fixtures', 'run-wae-v0');

describe('a run directory of the previous layout', () => {
  it('resumes and continues exactly as the old code did', async () => {
    const runDir = join(mkdtempSync(join(tmpdir(), 'proggan-oldrun-')), 'run');
    cpSync(FIXTURE, runDir, { recursive: true });
    const req = parseTrainArgs(['--resume', '--run-dir', runDir, '--steps', '6', '--backend', 'cpu', '--log-level', 'error']);
    expect(req.model).toBe('wae');
    await runTrain(req);
    const lines = readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(lines.map((l) => l['step'])).toEqual([2, 4, 6]);
    const last = lines[2] as Record<string, number>;
    expect(last['loss/total']).toBeCloseTo(7.151829957962036, 4);
    expect(last['loss/rec']).toBeCloseTo(1.200330138206482, 5);
    expect(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'))).toMatchObject({ model: 'wae', wae: { filters: [4, 8], latentSize: 8 }, loop: { steps: 6 } });
  });
});
