/** The ETA that prices the remaining schedule stage by stage, and the "continue with" command. */
import { describe, expect, it } from 'vitest';
import { EtaEstimator, type StepStage } from '../src/training/progress.js';
import { continueCommand } from '../src/cli/run-train.js';

/** Steps 0-99 at corner 4, 100-199 at corner 8 (4x the pixels), 200-299 at corner 16. */
const stages = (s: number): StepStage => (s < 100 ? { name: 'r4', cost: 16 } : s < 200 ? { name: 'r8', cost: 64 } : { name: 'r16', cost: 256 });

describe('EtaEstimator', () => {
  it('prices stages not reached yet by their relative cost, measured ones by their own rate', () => {
    const eta = new EtaEstimator(stages);
    expect(eta.remaining(0, 300)).toBeNaN();
    eta.record(stages(0), 50, 5); // 0.1 s/step at r4: 0.1/16 s per cost unit
    // 50 r4 steps at 0.1 s, 100 r8 steps at 0.4 s, 100 r16 steps at 1.6 s.
    expect(eta.remaining(50, 300)).toBeCloseTo(5 + 40 + 160, 6);
    // r8 turns out cheaper than its pixels suggest: its own measurement wins, r16 follows the newest rate.
    eta.record(stages(100), 100, 20); // 0.2 s/step = 0.2/64 per unit
    expect(eta.secondsPerStep('r8')).toBeCloseTo(0.2, 9);
    expect(eta.remaining(200, 300)).toBeCloseTo(100 * 256 * (0.2 / 64), 6);
    expect(eta.remaining(300, 300)).toBe(0);
  });

  it('a run of one stage is steps left times the measured seconds per step, sampled sparsely when long', () => {
    const eta = new EtaEstimator();
    eta.record({ name: 'run', cost: 1 }, 10, 2);
    expect(eta.remaining(10, 1_000_010)).toBeCloseTo(1_000_000 * 0.2, 3);
  });
});

describe('continueCommand', () => {
  it('names node bin/proggan.js in a clone and npx proggan when installed, with --steps for a finished run', () => {
    const clone = continueCommand('wae', '/tmp/r 1', undefined, '/home/u/proggan/dist/cli/run-train.js');
    expect(clone).toMatch(/^node \S*bin\/proggan\.js train wae --run-dir '\/tmp\/r 1' --resume$/);
    const installed = continueCommand('progan', '/tmp/r', 400, '/home/u/app/node_modules/proggan/dist/cli/run-train.js');
    expect(installed).toBe('npx proggan train progan --run-dir /tmp/r --resume --steps 400');
  });
});
