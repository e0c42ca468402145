/** CLI polish: did-you-mean for mistyped flags, --dry-run's data check and growth plan. */
import { describe, expect, it } from 'vitest';
import { parseTrainArgs } from '../src/cli/train.js';
import { runTrain } from '../src/cli/run-train.js';
import { editDistance, nearestFlag, withSuggestions } from '../src/cli/suggest.js';
import { growthPlan } from '../src/models/progan/index.js';
import { resolveProGanConfig } from '../src/models/progan/config.js';
import { UsageError } from '../src/util/errors.js';

describe('did you mean', () => {
  it('finds the nearest known flag within two edits, and nothing for a far one', () => {
    expect(editDistance('stpes', 'steps')).toBe(1);
    expect(nearestFlag('stepz', ['steps', 'seed', 'preset'])).toBe('steps');
    expect(nearestFlag('--bach-size', ['batch-size', 'backend'])).toBe('batch-size');
    expect(nearestFlag('learning-rate', ['steps', 'seed'])).toBeNull();
    expect(withSuggestions('Unknown arguments: stepz, zzzzzz', ['steps'])).toBe('unknown options: --stepz (did you mean --steps?), --zzzzzz');
    expect(withSuggestions('Not enough arguments', ['steps'])).toBe('Not enough arguments');
  });

  it('proggan train names the flag a typo meant', () => {
    expect(() => parseTrainArgs(['wae', '--stepz', '3'])).toThrow(/--stepz \(did you mean --steps\?\)/);
    expect(() => parseTrainArgs(['progan', '--sample-evry', '3'])).toThrow(UsageError);
  });
});

describe('--dry-run', () => {
  it('refuses a --data folder that does not exist, naming the flag', async () => {
    const req = parseTrainArgs(['progan', '--preset', 'tiny', '--dry-run', '--data', '/nonexistent/proggan-data']);
    await expect(runTrain(req)).rejects.toThrow(/--data \/nonexistent\/proggan-data: no such folder/);
  });

  it('lays out the growth schedule by step (tiny: corner 4, then 8 fading in, then 8 stable)', () => {
    expect(growthPlan(resolveProGanConfig({ preset: 'tiny' }))).toEqual([
      'steps 0-7: corner 4 (images 8x8) stable',
      'steps 8-23: corner 8 (images 16x16) fade-in',
      'steps 24-39: corner 8 (images 16x16) stable',
    ]);
    expect(growthPlan(resolveProGanConfig({ preset: 'tiny', flags: { loop: { steps: 6 } } }))).toEqual([
      'steps 0-5: corner 4 (images 8x8) stable',
      'the run ends at corner 4, before reaching corner 8: raise --steps to grow further',
    ]);
  });
});
