import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTrainArgs } from '../../src/cli/train.js';
import { resolveTrainConfig } from '../../src/cli/run-train.js';
import { UsageError } from '../../src/util/errors.js';
import type { WaeTrainConfig } from '../../src/models/wae/config.js';
import type { ProGanTrainConfig } from '../../src/models/progan/config.js';

function wae(c: ReturnType<typeof resolveTrainConfig>): WaeTrainConfig {
  if (c.model !== 'wae') throw new Error(`expected a wae config, got ${c.model}`);
  return c as WaeTrainConfig;
}

function progan(c: ReturnType<typeof resolveTrainConfig>): ProGanTrainConfig {
  if (c.model !== 'progan') throw new Error(`expected a progan config, got ${c.model}`);
  return c as ProGanTrainConfig;
}

describe('parseTrainArgs', () => {
  it('reads model, run options and config flags', () => {
    const r = parseTrainArgs(['wae', '--preset', 'tiny', '--steps', '20', '--run-dir', 'D', '--seed', '3', '--backend', 'cpu',
      '--channels', '3', '--lr', '0.001', '--mmd-kernel', 'rbf', '--no-flip', '--bad-files', 'skip', '--data', 'imgs']);
    expect(r.model).toBe('wae');
    expect(r.preset).toBe('tiny');
    expect(r.runDir).toBe('D');
    expect(r.backend).toBe('cpu');
    expect(r.resume).toBe(false);
    expect(r.flags.loop).toEqual({ steps: 20, seed: 3 });
    expect(r.flags.data).toEqual({ dir: 'imgs', channels: 3, badFiles: 'skip', flip: false });
    expect(r.flags.optim).toEqual({ lr: 0.001 });
    expect(r.flags.loss).toEqual({ kernel: 'rbf' });
  });

  it('defaults to the conditional ProGAN and leaves unset flags out', () => {
    const r = parseTrainArgs([]);
    expect(r.model).toBe('progan');
    expect(r.flags).toEqual({});
    expect(r.dryRun).toBe(false);
  });

  it('rejects bad values and combinations with the flag named', () => {
    expect(() => parseTrainArgs(['--resume'])).toThrow(/--resume needs --run-dir/);
    expect(() => parseTrainArgs(['--backend', 'gpu'])).toThrow(/backend/);
    expect(() => parseTrainArgs(['--channels', '2'])).toThrow(/channels/);
    expect(() => parseTrainArgs(['--bogus-flag'])).toThrow(/bogus-flag/);
    expect(() => parseTrainArgs(['--threads', '0'])).toThrow(/--threads/);
  });
});

describe('parseTrainArgs for progan', () => {
  it('shapes flags after the progan config and refuses flags of another model', () => {
    const r = parseTrainArgs(['progan', '--resolution', '32', '--encoder', 'runs/wae-1', '--encoder-steps', '50', '--fade-kimg', '2', '--lr-g', '0.002', '--global-weight', '0.3', '--steps', '9']);
    expect(r.model).toBe('progan');
    const c = progan(resolveTrainConfig(r, '/tmp/x'));
    expect(c.progan.maxCornerResolution).toBe(32);
    expect(c.encoder.runDir).toBe('runs/wae-1');
    expect(c.encoder.steps).toBe(50);
    expect(c.schedule.fadeKimg).toBe(2);
    expect(c.schedule.lrG).toBe(0.002);
    expect(c.loss.globalWeight).toBe(0.3);
    expect(c.loop.steps).toBe(9);
    expect(() => parseTrainArgs(['wae', '--encoder', 'x'])).toThrow(/--encoder applies to `proggan train progan`/);
    expect(() => parseTrainArgs(['progan', '--mmd-weight', '1'])).toThrow(/--mmd-weight applies to `proggan train wae`/);
  });
});

describe('config precedence', () => {
  it('defaults < preset < --config file < flags, validated with the flag named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'proggan-cfg-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ loop: { steps: 77, batchSize: 4 }, optim: { lr: 0.01 } }));
    const req = parseTrainArgs(['wae', '--preset', 'tiny', '--config', file, '--steps', '5']);
    const c = wae(resolveTrainConfig(req, join(dir, 'run')));
    expect(c.wae.cornerResolution).toBe(16); // preset
    expect(c.loop.batchSize).toBe(4); // file over preset
    expect(c.optim.lr).toBe(0.01); // file
    expect(c.loop.steps).toBe(5); // flag over file
    expect(c.loss.lambda).toBe(100); // default
    expect(() => resolveTrainConfig(parseTrainArgs(['wae', '--resolution', '24']), dir)).toThrow(/--resolution/);
    expect(() => resolveTrainConfig(parseTrainArgs(['wae', '--preset', 'huge']), dir)).toThrow(/--preset/);
    expect(() => resolveTrainConfig(parseTrainArgs(['wae', '--batch-size', '1']), dir)).toThrow(UsageError);
    writeFileSync(file, '{ not json');
    expect(() => resolveTrainConfig(parseTrainArgs(['--config', file]), dir)).toThrow(new RegExp(`--config ${file}: not valid JSON`));
  });

  it('--resume reads the saved config of the run directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'proggan-cfg-'));
    expect(() => resolveTrainConfig(parseTrainArgs(['--run-dir', dir, '--resume']), dir)).toThrow(/no config.json/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model: 'wae', wae: { cornerResolution: 32, latentSize: 8 }, loop: { steps: 10 } }));
    // Without a model name, --resume continues the model the run directory holds.
    expect(parseTrainArgs(['--run-dir', dir, '--resume']).model).toBe('wae');
    const c = wae(resolveTrainConfig(parseTrainArgs(['--run-dir', dir, '--resume', '--steps', '30']), dir));
    expect(c.wae.cornerResolution).toBe(32);
    expect(c.wae.latentSize).toBe(8);
    expect(c.loop.steps).toBe(30);
  });
});

describe('bin/proggan.js', () => {
  it('prints help without loading tfjs', () => {
    const probe = `process.on('exit', () => console.log('TFJS_LOADED=' + (typeof globalThis._tfengine !== 'undefined')));
      const m = await import('./dist/cli/main.js'); await m.main(['--help']);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: join(import.meta.dirname, '..', '..'), encoding: 'utf8' });
    expect(r.stdout).toMatch(/proggan train/);
    expect(r.stdout).toMatch(/TFJS_LOADED=false/);
  });

  it('names the flag on a usage error and exits 2', () => {
    const r = spawnSync(process.execPath, ['bin/proggan.js', 'train', '--resume'], { cwd: join(import.meta.dirname, '..', '..'), encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--resume needs --run-dir/);
  });
});
