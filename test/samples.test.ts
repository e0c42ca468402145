import { mkdtempSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { renderImageGrid, renderRowsGrid, writeImageGrid, writeRowsGrid } from '../src/training/samples.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'proggan-samples-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function decode(file: string): Promise<{ data: Buffer; width: number; height: number; channels: number; format?: string }> {
  const meta = await sharp(file).metadata();
  // sharp expands grey to RGB on decode unless told otherwise: keep the file's channel count.
  const img = sharp(file);
  if (meta.channels === 1) img.toColourspace('b-w');
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(meta.channels);
  return { data, width: info.width, height: info.height, channels: info.channels, format: meta.format };
}

describe('writeImageGrid', () => {
  it('maps [-1, 1] to [0, 255], clips beyond, and lays out an RGB grid', async () => {
    // Two 1x2 RGB images; image 0 pixel 0 probes the mapping, pixel 1 the clipping.
    const images = Float32Array.of(
      -1, 0, 1, /**/ -5, 7, NaN, //
      0.5, -0.5, 1, /**/ 1.0001, -1.0001, 0,
    );
    const file = path.join(dir, 'nested', 'grid.png');
    await writeImageGrid(file, images, [2, 1, 2, 3], { cols: 2, padding: 1, background: 200 });
    const png = await decode(file);
    expect(png.format).toBe('png');
    expect([png.width, png.height, png.channels]).toEqual([2 * 2 + 3 * 1, 1 + 2 * 1, 3]);
    const px = (x: number, y: number): number[] => Array.from(png.data.subarray((y * png.width + x) * 3, (y * png.width + x) * 3 + 3));
    expect(px(0, 0)).toEqual([200, 200, 200]);
    expect(px(1, 1)).toEqual([0, 128, 255]);
    expect(px(2, 1)).toEqual([0, 255, 0]);
    expect(px(3, 1)).toEqual([200, 200, 200]);
    expect(px(4, 1)).toEqual([191, 64, 255]);
    expect(px(5, 1)).toEqual([255, 0, 128]);
    expect(px(6, 1)).toEqual([200, 200, 200]);
    expect((await readdir(path.join(dir, 'nested'))).sort()).toEqual(['grid.png']);
  });

  it('writes grayscale as a 1-channel PNG and honours range and scale', async () => {
    // One 2x2 grey image in [0, 1], upscaled 3x, no padding.
    const file = path.join(dir, 'grey.png');
    await writeImageGrid(file, Float32Array.of(0, 1, 0.25, 2), [1, 2, 2, 1], { range: [0, 1], scale: 3, padding: 0 });
    const png = await decode(file);
    expect([png.width, png.height, png.channels]).toEqual([6, 6, 1]);
    const row = (y: number): number[] => Array.from(png.data.subarray(y * 6, y * 6 + 6));
    expect(row(0)).toEqual([0, 0, 0, 255, 255, 255]);
    expect(row(2)).toEqual(row(0));
    expect(row(3)).toEqual([64, 64, 64, 255, 255, 255]);
    expect(row(5)).toEqual(row(3));
  });

  it('defaults to a square-ish grid and fills empty cells with background', () => {
    const n = 5;
    const images = new Float32Array(n * 2 * 2 * 1).fill(1);
    const grid = renderImageGrid(images, [n, 2, 2, 1], { padding: 0 });
    // ceil(sqrt(5)) = 3 columns, 2 rows; the sixth cell is empty.
    expect([grid.width, grid.height, grid.channels]).toEqual([6, 4, 1]);
    expect(grid.data[2 * 6 + 5]).toBe(0);
    expect(grid.data[2 * 6 + 3]).toBe(255);
  });

  it('rejects mismatched data, channel counts and options', async () => {
    await expect(writeImageGrid(path.join(dir, 'x.png'), new Float32Array(5), [1, 2, 2, 1])).rejects.toThrow(/5 values/);
    expect(() => renderImageGrid(new Float32Array(8), [1, 2, 2, 2])).toThrow(/1 or 3 channels/);
    expect(() => renderImageGrid(new Float32Array(4), [1, 2, 2, 1], { scale: 1.5 })).toThrow(/scale/);
    expect(() => renderImageGrid(new Float32Array(4), [1, 2, 2, 1], { range: [1, 1] })).toThrow(/range/);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('writeRowsGrid', () => {
  it('puts each group on its own row, as wide as the longest row', async () => {
    const real = Float32Array.of(1, 1, 1, 1); // four 1x1 grey images
    const recon = Float32Array.of(-1, -1); // two
    const file = path.join(dir, 'rows.png');
    await writeRowsGrid(file, [real, recon], [1, 1, 1], { padding: 1, background: 100 });
    const png = await decode(file);
    expect([png.width, png.height, png.channels]).toEqual([4 + 5, 2 + 3, 1]);
    const row = (y: number): number[] => Array.from(png.data.subarray(y * png.width, (y + 1) * png.width));
    expect(row(1)).toEqual([100, 255, 100, 255, 100, 255, 100, 255, 100]);
    expect(row(3)).toEqual([100, 0, 100, 0, 100, 100, 100, 100, 100]);
  });

  it('rejects a row that is not a whole number of images', () => {
    expect(() => renderRowsGrid([new Float32Array(12), new Float32Array(5)], [2, 2, 1])).toThrow(/row 1/);
  });
});
