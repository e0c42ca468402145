/** CLI polish: did-you-mean for mistyped flags, --dry-run's data check and growth plan, `proggan ls` and `proggan plot`. */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, formatRunInfo } from '../src/cli/info.js';
import { plotRun, plotSvg } from '../src/cli/plot.js';
import { pngSize } from '../src/training/tensorboard.js';
import { parseTrainArgs } from '../src/cli/train.js';
import { runTrain } from '../src/cli/run-train.js';
import { parseEvaluateArgs } from '../src/cli/complete.js';
import { formatEvaluation } from '../src/cli/run-complete.js';
import { editDistance, nearestFlag, withSuggestions } from '../src/cli/suggest.js';
import { growthPlan } from '../src/models/progan/index.js';
import { resolveProGanConfig } from '../src/models/progan/config.js';
import { UsageError } from '../src/util/errors.js';
import { MODELS } from '../src/models/registry.js';

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

describe('proggan ls and proggan plot', () => {
  /** A run directory as `proggan train progan --preset tiny` leaves it (config, stats, two checkpoints). */
  function fakeRun(): string {
    const dir = mkdtempSync(join(tmpdir(), 'proggan-info-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(resolveProGanConfig({ preset: 'tiny' })));
    const lines = [
      { step: 0, kimg: 0, kind: 'eval', 'swd/mean': 300, 'eval/resolution': 4 },
      { step: 20, kimg: 0.08, 'loss/d': 4.5, 'loss/g': -0.4, 'img/s': 2 },
      { step: 20, kimg: 0.08, kind: 'eval', 'swd/mean': 240, 'eval/resolution': 8 },
    ];
    writeFileSync(join(dir, 'stats.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    for (const s of ['00000010', '00000020']) {
      mkdirSync(join(dir, 'checkpoints', `step-${s}`), { recursive: true });
      writeFileSync(join(dir, 'checkpoints', `step-${s}`, 'manifest.json'), '{}');
    }
    return dir;
  }

  it('ls shows the schedule position, checkpoints with the metrics measured at their step', async () => {
    const dir = fakeRun();
    const info = await describeRun(dir);
    expect(info.model).toBe('progan');
    expect(info.step).toBe(20);
    expect(info.checkpoints.map((c) => [c.step, c.metrics['swd/mean']])).toEqual([[10, undefined], [20, 240]]);
    const text = formatRunInfo(info);
    expect(text).toContain('step 20/40');
    expect(text).toMatch(/> steps 8-23: corner 8 .* fade-in/);
    expect(text).toMatch(/step 20 .* swd\/mean 240/);
    await expect(describeRun(join(dir, 'nope'))).rejects.toThrow(UsageError);
  });

  it('plot draws the eval curve as a PNG and names the metrics there are when asked for a missing one', async () => {
    const dir = fakeRun();
    const out = join(dir, 'swd.png');
    expect(await plotRun(dir, out, { metric: 'swd/mean', kind: 'eval' })).toBe(2);
    expect(pngSize(readFileSync(out))).toEqual({ width: 720, height: 400 });
    expect(await plotRun(dir, out, { metric: 'loss/d', kind: 'status' })).toBe(1);
    await expect(plotRun(dir, out, { metric: 'swd/nope', kind: 'eval' })).rejects.toThrow(/it has: .*swd\/mean/);
    expect(plotSvg([{ step: 1, value: 2 }], { metric: 'a<b', kind: 'any', runDir: '&' })).not.toMatch(/a<b|— &</);
  });
});

describe('proggan evaluate output', () => {
  it('is a human summary by default and one JSON line with --json', () => {
    expect(parseEvaluateArgs(['--checkpoint', 'runs/x']).json).toBeUndefined();
    expect(parseEvaluateArgs(['--checkpoint', 'runs/x', '--json']).json).toBe(true);
    const text = formatEvaluation({ step: 40, kind: 'evaluate', data: 'procedural', images: 6, resolution: 8, 'swd/mean': 123.45, 'swd/8': 120, 'swd/4': 126.9, 'ms-ssim/generated': 0.2, 'ms-ssim/real': 0.25 }, 'runs/x/stats.jsonl');
    expect(text.split('\n')).toEqual([
      'step 40: 6 held-out images (procedural), generated corners 8x8',
      '  SWD, lower is better:   mean 123.5   8px 120   4px 126.9',
      '  MS-SSIM, diversity:     generated 0.2   real 0.25   (close values: as varied as the data)',
      '  appended to runs/x/stats.jsonl (--json for one JSON line)',
    ]);
  });
});

describe('README presets', () => {
  it('list exactly the presets of every registered model', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const table = readme.split('<!-- presets: generated from the registry')[1]?.split('\n\n')[0] ?? '';
    for (const m of MODELS) expect(table, m.name).toContain(`| ${m.name} | ${Object.keys(m.presets).join(', ')} |`);
    // One row per model, besides the header row: no preset of a model that no longer exists.
    expect(table.match(/^\| \w+ \|/gm)?.length).toBe(MODELS.length + 1);
  });
});
