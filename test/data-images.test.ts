import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadImageFilesError, loadImageFolder } from '../src/data/images.js';

/** A pino logger writing JSON lines into an array. */
function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

const W = 40;
const H = 30;

/** A constant-colour raw RGB buffer. */
function solid(w: number, h: number, rgb: [number, number, number]): Buffer {
  const b = Buffer.alloc(w * h * 3);
  for (let k = 0; k < w * h; k++) b.set(rgb, k * 3);
  return b;
}

let root: string;
let mixed: string;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'proggan-images-'));
  mixed = path.join(root, 'mixed');
  await fs.mkdir(path.join(mixed, 'sub'), { recursive: true });
  // Good files.
  const grad = Buffer.alloc(W * H * 3);
  for (let k = 0; k < grad.length; k++) grad[k] = (k * 7) % 256;
  await sharp(grad, { raw: { width: W, height: H, channels: 3 } }).png().toFile(path.join(mixed, 'a-rgb.png'));
  await sharp(grad, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 95 }).toFile(path.join(mixed, 'sub', 'b-rgb.jpg'));
  await sharp(Buffer.alloc(W * H, 100), { raw: { width: W, height: H, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(mixed, 'c-gray.png'));
  // RGBA whose alpha varies (as when the alpha slot holds near-infrared): the colour must survive untouched.
  const rgba = Buffer.alloc(W * H * 4);
  for (let k = 0; k < W * H; k++) rgba.set([200, 150, 50, (k % 7) * 30], k * 4);
  await sharp(rgba, { raw: { width: W, height: H, channels: 4 } }).png().toFile(path.join(mixed, 'd-rgba.png'));
  const rgb16 = new Uint16Array(W * H * 3).fill(65535);
  await sharp(rgb16, { raw: { width: W, height: H, channels: 3 } }).toColourspace('rgb16').png().toFile(path.join(mixed, 'e-16bit.png'));
  await sharp(grad, { raw: { width: W, height: H, channels: 3 } }).png({ palette: true }).toFile(path.join(mixed, 'f-palette.png'));
  // 16-bit single-band image, as SAR tiles often are: 128 * 257 maps to 8-bit 128.
  const grey16 = new Uint16Array(W * H).fill(128 * 257);
  await sharp(grey16, { raw: { width: W, height: H, channels: 1 } }).toColourspace('grey16').png().toFile(path.join(mixed, 'g-gray16.png'));
  // Bad files: truncated JPEG, truncated PNG, a text file named .png.
  const jpg = await sharp(grad, { raw: { width: W, height: H, channels: 3 } }).jpeg().toBuffer();
  await fs.writeFile(path.join(mixed, 'x-truncated.jpg'), jpg.subarray(0, jpg.length >> 1));
  const png = await sharp(grad, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();
  await fs.writeFile(path.join(mixed, 'sub', 'y-truncated.png'), png.subarray(0, png.length >> 1));
  await fs.writeFile(path.join(mixed, 'z-text.png'), 'this is not an image\n');
  // A file with another extension: ignored, but counted in the summary.
  await fs.writeFile(path.join(mixed, 'notes.txt'), 'hello');
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const BAD = ['x-truncated.jpg', path.join('sub', 'y-truncated.png'), 'z-text.png'];
const GOOD = ['a-rgb.png', 'c-gray.png', 'd-rgba.png', 'e-16bit.png', 'f-palette.png', 'g-gray16.png', path.join('sub', 'b-rgb.jpg')];

describe('loadImageFolder', () => {
  it("with badFiles 'error' throws one error naming every bad file, its reason and the fix", async () => {
    const err = await loadImageFolder(mixed, { resolution: 16, channels: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadImageFilesError);
    const e = err as BadImageFilesError;
    expect(e.badFiles.map((f) => path.relative(mixed, f.path)).sort()).toEqual([...BAD].sort());
    for (const f of BAD) expect(e.message).toContain(path.join(mixed, f));
    for (const f of GOOD) expect(e.message).not.toContain(path.join(mixed, f));
    expect(e.message).toMatch(/x-truncated\.jpg: .*premature end of JPEG/i);
    expect(e.message).toMatch(/y-truncated\.png: .*(libpng|png)/i);
    expect(e.message).toMatch(/z-text\.png: .*unsupported image format/i);
    expect(e.message).toContain('--bad-files skip');
    expect(e.message).toContain(`3 of 10 image files in ${mixed}`);
  });

  it("with badFiles 'skip' loads the good files, warns about each bad one by name and counts conversions", async () => {
    const { logger, lines } = capturingLogger();
    const progress: Array<[number, number]> = [];
    const ds = await loadImageFolder(mixed, {
      resolution: 16,
      channels: 3,
      badFiles: 'skip',
      logger,
      onProgress: (d, t) => progress.push([d, t]),
    });
    expect(ds.size).toBe(GOOD.length);
    expect(ds.paths.map((p) => path.relative(mixed, p)).sort()).toEqual([...GOOD].sort());
    expect(ds.skipped).toHaveLength(3);
    const warns = lines.filter((l) => l['level'] === 40);
    expect(warns).toHaveLength(3);
    for (const f of BAD) expect(warns.some((w) => w['file'] === path.join(mixed, f) && String(w['msg']).includes(path.join(mixed, f)))).toBe(true);
    expect(ds.conversions).toEqual({
      'grayscale->rgb': 2,
      'rgba->rgb': 1,
      // Both 16-bit files are constant: percentiles say nothing, the full uint16 range is used.
      'uint16-full-range': 2,
      'palette->rgb': 1,
      'cover-crop': GOOD.length,
    });
    const summary = lines.filter((l) => l['msg'] === 'image folder loaded');
    expect(summary).toHaveLength(1);
    expect(summary[0]?.['conversions']).toEqual(ds.conversions);
    expect(summary[0]?.['skipped']).toBe(3);
    expect(summary[0]?.['ignoredFiles']).toBe(1);
    expect(progress).toHaveLength(10);
    expect(progress[progress.length - 1]).toEqual([10, 10]);
  });

  it('converts channels explicitly and maps pixels to [-1, 1]', async () => {
    const ds = await loadImageFolder(mixed, { resolution: 16, channels: 3, badFiles: 'skip' });
    const byName = (n: string): number => ds.paths.indexOf(path.join(mixed, n));
    for (let i = 0; i < ds.size; i++) {
      const img = await ds.get(i);
      expect(img.length).toBe(16 * 16 * 3);
      for (const v of img) {
        expect(v).toBeGreaterThanOrEqual(-1);
        expect(v).toBeLessThanOrEqual(1);
      }
    }
    const gray = await ds.get(byName('c-gray.png'));
    expect(gray[0]).toBeCloseTo(100 / 127.5 - 1, 6);
    expect(gray[1]).toBeCloseTo(100 / 127.5 - 1, 6);
    // Alpha is dropped before resizing: the colour is not premultiplied by it.
    const rgba = await ds.getBytes(byName('d-rgba.png'));
    for (let k = 0; k < 16 * 16; k++) expect([rgba[k * 3], rgba[k * 3 + 1], rgba[k * 3 + 2]]).toEqual([200, 150, 50]);
    const sixteen = await ds.get(byName('e-16bit.png'));
    expect(Math.min(...sixteen)).toBe(1);
    const grey16 = await ds.getBytes(byName('g-gray16.png'));
    expect([...grey16].every((v) => v === 128)).toBe(true);
  });

  it('maps SpaceNet-like 16-bit values (54..6615) to the full range instead of near-black', async () => {
    const dir = path.join(root, 'spacenet');
    await fs.mkdir(dir);
    const v = new Uint16Array(32 * 32 * 3);
    for (let k = 0; k < v.length; k++) v[k] = 54 + ((k * 2654435761) % 6562);
    await sharp(v, { raw: { width: 32, height: 32, channels: 3 } }).toColourspace('rgb16').png().toFile(path.join(dir, 'sn.png'));
    const ds = await loadImageFolder(dir, { resolution: 32, channels: 3 });
    expect(ds.conversions).toEqual({ 'uint16-percentile-2-98': 1 });
    const px = [...(await ds.getBytes(0))].sort((a, b) => a - b);
    // Old behaviour (divide by 256): every value <= 25.
    expect(px[Math.floor(px.length / 2)]).toBeGreaterThan(100);
    expect(px[Math.floor(px.length * 0.99)]).toBe(255);
  });

  it('converts to one channel and counts rgb->grayscale', async () => {
    const ds = await loadImageFolder(mixed, { resolution: 8, channels: 1, badFiles: 'skip' });
    expect(ds.channels).toBe(1);
    // a-rgb, b-rgb and the 16-bit RGB file.
    expect(ds.conversions['rgb->grayscale']).toBe(3);
    expect(ds.conversions['palette->grayscale']).toBe(1);
    expect(ds.conversions['rgba->grayscale']).toBe(1);
    expect(ds.conversions['grayscale->rgb']).toBeUndefined();
    const gray = await ds.getBytes(ds.paths.indexOf(path.join(mixed, 'c-gray.png')));
    expect(gray.length).toBe(64);
    expect([...gray].every((v) => v === 100)).toBe(true);
  });

  it('cover-crops the centre of non-square images', async () => {
    const dir = path.join(root, 'crop');
    await fs.mkdir(dir);
    // 96 x 16: red 24, green 48, blue 24 columns; the centred square lies well inside the green band.
    const row = Buffer.concat([solid(24, 1, [255, 0, 0]), solid(48, 1, [0, 255, 0]), solid(24, 1, [0, 0, 255])]);
    const img = Buffer.concat(Array.from({ length: 16 }, () => row));
    await sharp(img, { raw: { width: 96, height: 16, channels: 3 } }).png().toFile(path.join(dir, 'wide.png'));
    const ds = await loadImageFolder(dir, { resolution: 8, channels: 3 });
    expect(ds.conversions).toEqual({ 'cover-crop': 1 });
    const px = await ds.getBytes(0);
    for (let k = 0; k < 64; k++) expect([px[k * 3], px[k * 3 + 1], px[k * 3 + 2]]).toEqual([0, 255, 0]);
  });

  it('without the cache decodes again on get() and gives the same pixels', async () => {
    const cached = await loadImageFolder(mixed, { resolution: 16, channels: 3, badFiles: 'skip' });
    const lazy = await loadImageFolder(mixed, { resolution: 16, channels: 3, badFiles: 'skip', cache: false });
    expect(lazy.cached).toBe(false);
    expect(lazy.paths).toEqual(cached.paths);
    for (let i = 0; i < cached.size; i++) expect(await lazy.get(i)).toEqual(await cached.get(i));
  });

  it('reads only the top folder when recursive is false, and honours extensions', async () => {
    const top = await loadImageFolder(mixed, { resolution: 8, channels: 3, badFiles: 'skip', recursive: false });
    expect(top.paths.some((p) => p.includes(`${path.sep}sub${path.sep}`))).toBe(false);
    expect(top.size).toBe(GOOD.length - 1);
    const jpgOnly = await loadImageFolder(mixed, { resolution: 8, channels: 3, badFiles: 'skip', extensions: ['JPG'] });
    expect(jpgOnly.paths.map((p) => path.basename(p))).toEqual(['b-rgb.jpg']);
  });

  it('names the path when the folder is missing, empty or holds no images', async () => {
    const missing = path.join(root, 'does-not-exist');
    await expect(loadImageFolder(missing, { resolution: 8, channels: 3 })).rejects.toThrow(missing);
    const empty = path.join(root, 'empty');
    await fs.mkdir(empty);
    await expect(loadImageFolder(empty, { resolution: 8, channels: 3 })).rejects.toThrow(`image folder ${empty} holds no image files`);
    const textOnly = path.join(root, 'text-only');
    await fs.mkdir(textOnly);
    await fs.writeFile(path.join(textOnly, 'readme.md'), '#');
    await expect(loadImageFolder(textOnly, { resolution: 8, channels: 3 })).rejects.toThrow(/holds no image files.*1 other files ignored, e\.g\. readme\.md/);
    const file = path.join(mixed, 'a-rgb.png');
    await expect(loadImageFolder(file, { resolution: 8, channels: 3 })).rejects.toThrow(`${file} is not a folder`);
  });

  it("fails with 'skip' too when no file at all is usable", async () => {
    const dir = path.join(root, 'all-bad');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'a.png'), 'nope');
    await expect(loadImageFolder(dir, { resolution: 8, channels: 3, badFiles: 'skip' })).rejects.toThrow(/none of its 1 image files could be used/);
  });
});
