import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCompleteArgs, parseExtendArgs, parseSampleArgs } from '../../src/cli/complete.js';
import { readImageFile, runComplete, runEvaluate, runExtend, runSample } from '../../src/cli/run-complete.js';
import { resolveProGanConfig } from '../../src/models/progan/config.js';
import { trainProgan } from '../../src/models/progan/run.js';
import { UsageError } from '../../src/util/errors.js';

describe('parseCompleteArgs', () => {
  it('reads the flags into a request', () => {
    const r = parseCompleteArgs(['--checkpoint', 'runs/g', '--image', 'in.png', '--missing', 'tr', '--out', 'o.png', '--seed', '4', '--backend', 'cpu']);
    expect(r).toEqual({ checkpoint: 'runs/g', image: 'in.png', missing: 'tr', out: 'o.png', seed: 4, backend: 'cpu', logLevel: 'info', resize: true });
    expect(parseCompleteArgs(['--checkpoint', 'c', '--image', 'i.png', '--missing', 'tl', '--out', 'O.PNG', '--no-resize']).resize).toBe(false);
    expect(parseCompleteArgs(['--checkpoint', 'c', '--image', 'i.png', '--missing', 'bl', '--out', 'o.png']).seed).toBe(0);
  });

  it('names the flag that is missing or wrong', () => {
    const base = ['--checkpoint', 'c', '--image', 'i.png', '--out', 'o.png'];
    expect(() => parseCompleteArgs(base)).toThrow(/missing/);
    expect(() => parseCompleteArgs([...base, '--missing', 'middle'])).toThrow(/missing.*middle|middle.*missing/s);
    expect(() => parseCompleteArgs(['--image', 'i.png', '--out', 'o.png', '--missing', 'br'])).toThrow(/checkpoint/);
    expect(() => parseCompleteArgs(['--checkpoint', 'c', '--out', 'o.png', '--missing', 'br'])).toThrow(/image/);
    expect(() => parseCompleteArgs(['--checkpoint', 'c', '--image', 'i.png', '--missing', 'br', '--out', 'o.jpg'])).toThrow(/--out o\.jpg.*\.png/);
    expect(() => parseCompleteArgs([...base, '--missing', 'br', '--seed', 'abc'])).toThrow(/--seed/);
    expect(() => parseCompleteArgs([...base, '--missing', 'br', '--bogus'])).toThrow(/bogus/);
    expect(() => parseCompleteArgs([...base, '--missing', 'br', '--backend', 'gpu'])).toThrow(/backend/);
    expect(() => parseCompleteArgs([...base, '--missing', 'br', '--threads', '0'])).toThrow(/--threads/);
    expect(() => parseCompleteArgs([...base, '--missing', 'br', '--image', 'j.png'])).toThrow(/--image is given 2 times/);
    expect(() => parseCompleteArgs(['--checkpoint', 'c', '--image', '', '--out', 'o.png', '--missing', 'br'])).toThrow(UsageError);
  });
});

describe('parseExtendArgs', () => {
  it('reads width and height', () => {
    const r = parseExtendArgs(['--checkpoint', 'c', '--image', 'i.png', '--width', '300', '--height', '200', '--out', 'o.png']);
    expect(r).toMatchObject({ checkpoint: 'c', image: 'i.png', width: 300, height: 200, out: 'o.png', seed: 0 });
  });

  it('rejects missing and non-positive sizes with the flag named', () => {
    const base = ['--checkpoint', 'c', '--image', 'i.png', '--out', 'o.png'];
    expect(() => parseExtendArgs([...base, '--height', '10'])).toThrow(/width/);
    expect(() => parseExtendArgs([...base, '--width', '10'])).toThrow(/height/);
    expect(() => parseExtendArgs([...base, '--width', '0', '--height', '10'])).toThrow(/--width must be a positive integer/);
    expect(() => parseExtendArgs([...base, '--width', '10', '--height', '2.5'])).toThrow(/--height must be a positive integer/);
    expect(() => parseExtendArgs([...base, '--width', 'x', '--height', '10'])).toThrow(/--width/);
  });
});

describe('parseSampleArgs', () => {
  it('defaults to 16 procedural images missing their bottom-right corner', () => {
    const r = parseSampleArgs(['--checkpoint', 'c', '--out', 'grid.png']);
    expect(r).toEqual({ checkpoint: 'c', out: 'grid.png', seed: 0, logLevel: 'info', n: 16, missing: 'br' });
    const s = parseSampleArgs(['--checkpoint', 'c', '--out', 'grid.png', '--n', '4', '--data', 'held-out', '--missing', 'all']);
    expect(s).toMatchObject({ n: 4, data: 'held-out', missing: 'all' });
  });

  it('rejects bad values with the flag named', () => {
    expect(() => parseSampleArgs(['--checkpoint', 'c', '--out', 'g.png', '--n', '0'])).toThrow(/--n must be a positive integer/);
    expect(() => parseSampleArgs(['--checkpoint', 'c', '--out', 'g.png', '--n', '5000'])).toThrow(/--n 5000/);
    expect(() => parseSampleArgs(['--checkpoint', 'c', '--out', 'g.png', '--missing', 'x'])).toThrow(/missing/);
    expect(() => parseSampleArgs(['--checkpoint', 'c'])).toThrow(/out/);
  });
});

describe('parseEvaluateArgs', () => {
  it('reads the flags and names the bad one', async () => {
    const { parseEvaluateArgs } = await import('../../src/cli/complete.js');
    const r = parseEvaluateArgs(['--checkpoint', 'runs/p', '--data', 'held', '--n', '32', '--seed', '4']);
    expect(r).toMatchObject({ checkpoint: 'runs/p', data: 'held', n: 32, seed: 4 });
    expect(parseEvaluateArgs(['--checkpoint', 'runs/p']).n).toBeUndefined(); // the run's --eval-windows (64 for procedural tiles)
    expect(() => parseEvaluateArgs(['--checkpoint', 'runs/p', '--n', '1'])).toThrow(/--n must be at least 2/);
    expect(() => parseEvaluateArgs([])).toThrow(/checkpoint/);
  });
});

describe('readImageFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'proggan-complete-'));

  it('decodes fully, converts channels and keeps 8-bit values exactly', async () => {
    const w = 6;
    const h = 4;
    const rgba = Buffer.alloc(w * h * 4);
    for (let i = 0; i < w * h; i++) rgba.set([i * 10, 255 - i, 7, 128], i * 4);
    const file = join(dir, 'rgba.png');
    await sharp(rgba, { raw: { width: w, height: h, channels: 4 } }).png().toFile(file);
    const img = await readImageFile(file, 3, '--image');
    expect([img.width, img.height, img.channels]).toEqual([w, h, 3]);
    expect(img.conversions).toEqual(['rgba->rgb']);
    expect(Math.round((((img.data[3 * 5] as number) + 1) * 127.5))).toBe(50);
    expect(Math.round((((img.data[3 * 5 + 1] as number) + 1) * 127.5))).toBe(250);
    const grey = await readImageFile(file, 1, '--image');
    expect(grey.data).toHaveLength(w * h);
    expect(grey.conversions).toEqual(['rgba->grayscale']);
    const sq = await readImageFile(file, 3, '--image', 8);
    expect([sq.width, sq.height]).toEqual([8, 8]);
    expect(sq.conversions).toContain('cover-crop');
  });

  it('names the flag and the file when it is missing or does not decode', async () => {
    await expect(readImageFile(join(dir, 'nope.png'), 3, '--image')).rejects.toThrow(/--image .*nope\.png: no such file/);
    await expect(readImageFile(dir, 3, '--image')).rejects.toThrow(/not a file/);
    const junk = join(dir, 'junk.png');
    writeFileSync(junk, 'not an image at all');
    await expect(readImageFile(junk, 3, '--image')).rejects.toThrow(/--image .*junk\.png: not a readable image/);
    // A PNG cut in half: the header reads, the full decode fails.
    const good = join(dir, 'big.png');
    const noise = Buffer.alloc(64 * 64 * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 251;
    await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } }).png({ compressionLevel: 0 }).toFile(good);
    const cut = join(dir, 'cut.png');
    const full = readFileSync(good);
    writeFileSync(cut, full.subarray(0, Math.floor(full.length / 2)));
    await expect(readImageFile(cut, 3, '--image')).rejects.toThrow(/--image .*cut\.png/);
  });
});

/** Decode a PNG into raw bytes. */
async function rawPng(file: string): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/** Write a width x height RGB PNG of deterministic pseudo-random bytes. */
async function writeTestPng(file: string, width: number, height: number, salt: number): Promise<Buffer> {
  const px = Buffer.alloc(width * height * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7919 + salt * 104729) % 253;
  await sharp(px, { raw: { width, height, channels: 3 } }).png().toFile(file);
  return px;
}

describe('complete, extend and sample on a real (tiny, briefly trained) run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'proggan-complete-run-'));
  const run = join(dir, 'run');
  const r = 8;
  const common = { checkpoint: run, seed: 3, backend: 'cpu' as const, logLevel: 'error' };

  beforeAll(async () => {
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
    // A few steps are enough: the commands are checked for shapes and exact known pixels, not quality.
    const config = resolveProGanConfig({
      preset: 'tiny',
      flags: {
        data: { syntheticCount: 16, channels: 3 },
        progan: { maxCornerResolution: r, zDim: 8, latentDim: 8, fmapBase: 16, fmapMax: 8 },
        encoder: { steps: 2 },
        schedule: { startResolution: r },
        samples: { count: 0 },
        loop: { steps: 2, batchSize: 4, checkpointEvery: 1, sampleEvery: 100, tickEvery: 1 },
      },
    });
    await trainProgan({ config, runDir: run, progress: false, handleSignals: false });
  });

  it('complete: writes a 2R x 2R PNG whose known corners are byte-exact', async () => {
    const input = join(dir, 'in.png');
    const px = await writeTestPng(input, 2 * r, 2 * r, 1);
    const out = join(dir, 'out.png');
    await runComplete({ ...common, image: input, missing: 'tl', out, resize: true });
    const got = await rawPng(out);
    expect([got.width, got.height, got.channels]).toEqual([2 * r, 2 * r, 3]);
    let changed = 0;
    for (let y = 0; y < 2 * r; y++) {
      for (let x = 0; x < 2 * r; x++) {
        const i = (y * 2 * r + x) * 3;
        const same = got.data.subarray(i, i + 3).equals(px.subarray(i, i + 3));
        if (y >= r || x >= r) expect(same).toBe(true);
        else if (!same) changed += 1;
      }
    }
    expect(changed).toBeGreaterThan(0);
  });

  it('complete: resizes another size (or refuses with --no-resize), naming the flag and file', async () => {
    const input = join(dir, 'wide.png');
    await writeTestPng(input, 40, 24, 2);
    const out = join(dir, 'out-resized.png');
    await runComplete({ ...common, image: input, missing: 'br', out, resize: true });
    const got = await rawPng(out);
    expect([got.width, got.height]).toEqual([2 * r, 2 * r]);
    await expect(runComplete({ ...common, image: input, missing: 'br', out, resize: false })).rejects.toThrow(
      new RegExp(`--image ${input.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is 40x24.*16x16`),
    );
    await expect(runComplete({ ...common, checkpoint: join(dir, 'nothing'), image: input, missing: 'br', out, resize: true })).rejects.toThrow(
      /--checkpoint .*nothing: no such run directory/,
    );
    await expect(runComplete({ ...common, checkpoint: dir, image: input, missing: 'br', out, resize: true })).rejects.toThrow(/--checkpoint .*no config\.json/);
  });

  it('extend: writes the requested size with the original pixels byte-exact', async () => {
    const input = join(dir, 'small.png');
    const w = 2 * r + 3;
    const h = 2 * r;
    const px = await writeTestPng(input, w, h, 3);
    const out = join(dir, 'extended.png');
    await runExtend({ ...common, image: input, width: 37, height: 27, out });
    const got = await rawPng(out);
    expect([got.width, got.height, got.channels]).toEqual([37, 27, 3]);
    for (let y = 0; y < h; y++) {
      expect(got.data.subarray(y * 37 * 3, (y * 37 + w) * 3).equals(px.subarray(y * w * 3, (y + 1) * w * 3))).toBe(true);
    }
    await expect(runExtend({ ...common, image: input, width: 10, height: 27, out })).rejects.toThrow(/--width 10 is smaller/);
    await expect(runExtend({ ...common, image: input, width: 40, height: 5, out })).rejects.toThrow(/--height 5 is smaller/);
    const tiny = join(dir, 'tiny.png');
    await writeTestPng(tiny, 10, 30, 4);
    await expect(runExtend({ ...common, image: tiny, width: 40, height: 40, out })).rejects.toThrow(/--image .*tiny\.png is 10x30; extension needs at least 16x16/);
  });

  it('sample: writes a grid of real / masked / completed rows', async () => {
    const out = join(dir, 'grid.png');
    await runSample({ ...common, out, n: 5, missing: 'all' });
    const got = await rawPng(out);
    // One group of 5 images in 3 rows; 16 px images scaled by 4 with 2 px padding.
    expect(got.width).toBe(5 * 64 + 6 * 2);
    expect(got.height).toBe(3 * 64 + 4 * 2);
  });

  it('evaluate: the model beside the baselines on the same images, in stats.jsonl and a PNG table', async () => {
    const m = await runEvaluate({ ...common, n: 6 });
    expect(m['images']).toBe(6);
    expect(m['resolution']).toBe(r);
    expect(m['swd/mean']).toBeGreaterThan(0);
    expect(m['swd/mean']).toBe(m['model/swd']);
    for (const b of ['model', 'mirror-bl', 'mirror-tr', 'flat', 'real-other']) {
      expect(m[`${b}/l1`]).toBeGreaterThanOrEqual(0);
      expect(m[`${b}/seam_ratio`]).toBeGreaterThan(0);
      expect(m[`${b}/channel_mean_err/2`]).toBeGreaterThanOrEqual(0);
    }
    const last = readFileSync(join(run, 'stats.jsonl'), 'utf8').trim().split('\n').pop() ?? '';
    expect(JSON.parse(last)).toMatchObject({ kind: 'evaluate', images: 6, 'swd/mean': m['swd/mean'] });
    expect(readdirSync(run).some((f) => /^evaluate-step-\d{8}\.png$/.test(f))).toBe(true);
  });
});
