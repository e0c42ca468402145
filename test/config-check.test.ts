import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTrainArgs } from '../src/cli/train.js';
import { resolveTrainConfig } from '../src/cli/run-train.js';
import { checkConfigLayer } from '../src/models/check-config.js';
import { findModel, MODELS } from '../src/models/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'proggan-cfg-'));

/** Resolve `proggan train <model> --config <json>`; returns the error message, or '' when it resolves. */
function withConfig(model: string, json: unknown): string {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(json));
  try {
    resolveTrainConfig(parseTrainArgs([model, '--config', file]), join(dir, 'run'));
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

describe('config files are checked against the model\'s typed defaults', () => {
  it('accepts every registered preset and a valid file', () => {
    for (const m of MODELS) for (const p of Object.values(m.presets)) expect(() => checkConfigLayer(m, p as Record<string, unknown>, 'preset', MODELS)).not.toThrow();
    expect(withConfig('wae', { loop: { steps: 10 }, wae: { filters: [4, 8] }, data: { dir: 'imgs' } })).toBe('');
    expect(withConfig('progan', { schedule: { lrGByResolution: { '8': 0.002 } }, encoder: { runDir: 'runs/wae' } })).toBe('');
  });

  it('rejects unknown keys with a did-you-mean, naming the file', () => {
    const msg = withConfig('wae', { loop: { stesp: 10 } });
    expect(msg).toMatch(/--config .*\.json: "loop.stesp" is not a setting of wae; did you mean "loop.steps"\?/);
    expect(withConfig('wae', { optim: { learningRate: 1 } })).toMatch(/"optim.learningRate" is not a setting of wae/);
  });

  it('checks JSON types', () => {
    expect(withConfig('wae', { loop: { steps: '10' } })).toMatch(/loop.steps: expected a number, got the string "10"/);
    expect(withConfig('wae', { data: { flip: 1 } })).toMatch(/data.flip: expected a boolean, got the number 1/);
    expect(withConfig('wae', { loop: 5 })).toMatch(/loop: expected an object, got the number 5/);
    expect(withConfig('wae', { wae: { filters: ['a'] } })).toMatch(/wae.filters: expected an array of numbers, got an array/);
    expect(withConfig('progan', { schedule: { lrGByResolution: { '8': 'fast' } } })).toMatch(/schedule.lrGByResolution.8: expected a number/);
  });

  it('explains `model` and keys of another model', () => {
    expect(withConfig('wae', { model: 'progan' })).toMatch(/`model` is set by the command, not the config: .*"progan".*trains wae \(use `proggan train progan`/);
    expect(withConfig('wae', { progan: { fmapMax: 64 } })).toMatch(/"progan" belongs to progan, not wae/);
    expect(withConfig('wae', { loss: { globalWeight: 0.5 } })).toMatch(/"loss.globalWeight" belongs to progan, not wae/);
  });

  it('checks ranges at load time', () => {
    expect(withConfig('wae', { optim: { beta1: 1 } })).toMatch(/optim.beta1: must be in \[0, 1\), got 1/);
    expect(withConfig('wae', { loop: { keepCheckpoints: 0 } })).toMatch(/loop.keepCheckpoints: must be an integer >= 1/);
    expect(withConfig('wae', { optim: { lr: 0 } })).toMatch(/--lr: must be > 0/);
    expect(withConfig('progan', { loop: { maxNonFinite: 0 } })).toMatch(/loop.maxNonFinite/);
  });

  it('checks a resumed run\'s config.json the same way', () => {
    const run = join(dir, 'saved');
    mkdirSync(run, { recursive: true });
    writeFileSync(join(run, 'config.json'), JSON.stringify({ ...findModel('wae').defaults(), loop: { steps: 'x' } }));
    expect(() => resolveTrainConfig(parseTrainArgs(['wae', '--resume', '--run-dir', run]), run)).toThrow(/config.json: loop.steps: expected a number, got the string "x"/);
  });
});
