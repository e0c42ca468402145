import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeArrayBuffer } from 'geotiff';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { applyMapping, decodeImageFile, openRaster, UnusableImage, type ValueMapping } from '../src/data/raster.js';
import { makeTiff } from './helpers/tiff.js';

const dir = mkdtempSync(join(tmpdir(), 'proggan-raster-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeGeo(name: string, values: number[] | Uint16Array | Int16Array | Float32Array, meta: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(file, Buffer.from(writeArrayBuffer(values as Float32Array, meta)));
  return file;
}

describe('GeoTIFF rasters via geotiff', () => {
  it('reads uint16 with SpaceNet-like values (54..6615) into the full range with a percentile mapping', async () => {
    const w = 32;
    const v = new Uint16Array(w * w);
    for (let i = 0; i < v.length; i++) v[i] = 54 + Math.round(((i * 7919) % v.length) / v.length * 6561);
    const file = writeGeo('u16.tif', v, { width: w, height: w, BitsPerSample: [16], SampleFormat: [1] });
    const img = await decodeImageFile(file);
    expect(img.header.sampleType).toBe('uint16');
    expect(img.mapping.kind).toBe('percentile');
    expect(img.conversions).toContain('uint16-percentile-2-98');
    // Not almost black: the mapped values span most of [-1, 1].
    const sorted = Float32Array.from(img.data).sort();
    expect(sorted[Math.floor(sorted.length * 0.05)]).toBeLessThan(-0.8);
    expect(sorted[Math.floor(sorted.length * 0.95)]).toBeGreaterThan(0.8);
    // A stored mapping decodes the same file identically (what evaluation/completion reuse).
    const again = await decodeImageFile(file, { mapping: JSON.parse(JSON.stringify(img.mapping)) as ValueMapping });
    expect(Array.from(again.data)).toEqual(Array.from(img.data));
  });

  it('reads int16 and float32 samples exactly and honours the nodata tag and NaN', async () => {
    const w = 8;
    const vals = Array.from({ length: w * w }, (_, i) => i - 20);
    const i16 = join(dir, 'i16.tif');
    writeFileSync(i16, makeTiff({ width: w, height: w, bands: 1, type: 'int16', nodata: '-20', value: (x, y) => vals[y * w + x]! }));
    const src = await openRaster(i16);
    expect(src.header.sampleType).toBe('int16');
    expect(src.header.nodata).toBe(-20);
    const reg = await src.read(0, 0, w, w);
    await src.close();
    expect(Array.from(reg.data)).toEqual(vals);
    expect(reg.valid[0]).toBe(0);
    expect(reg.valid[1]).toBe(1);

    const f = Float32Array.from(vals, (v) => v / 4);
    f[5] = Number.NaN;
    const f32 = writeGeo('f32.tif', f, { width: w, height: w, BitsPerSample: [32], SampleFormat: [3] });
    const img = await decodeImageFile(f32, { mapping: { kind: 'fixed', low: [-5], high: [10.75] } });
    expect(img.header.sampleType).toBe('float32');
    expect(img.valid[5]).toBe(0);
    expect(img.data[5]).toBe(-1);
    expect(img.data[0]).toBeCloseTo(-1, 6);
    expect(img.data[w * w - 1]).toBeCloseTo(1, 6);
    expect(img.data[30]).toBeCloseTo(((30 - 20) / 4 + 5) / 15.75 * 2 - 1, 5);
  });

  it('selects bands from a 13-band raster and refuses to guess', async () => {
    const w = 4;
    const B = 13;
    const file = join(dir, 'b13.tif');
    writeFileSync(file, makeTiff({ width: w, height: w, bands: B, type: 'int16', value: (x, y, b) => b * 100 + y * w + x }));
    await expect(openRaster(file, { channels: 3 })).rejects.toThrow(/13 bands where 3 channels are wanted; choose the bands, e.g. --bands 1,2,3/);
    await expect(openRaster(file, { bands: [14] })).rejects.toThrow(/band 14 does not exist \(the file has bands 1..13\)/);
    const src = await openRaster(file, { bands: [4, 3, 2] });
    const reg = await src.read(1, 2, 2, 2);
    await src.close();
    expect(src.channels).toBe(3);
    expect(Array.from(reg.data.subarray(0, 3))).toEqual([300 + 9, 200 + 9, 100 + 9]);
  });

  for (const layout of [
    { name: 'tiled pixel-interleaved', tile: 16, planar: 1 as const },
    { name: 'tiled band-interleaved', tile: 16, planar: 2 as const },
    { name: 'striped band-interleaved', rowsPerStrip: 5, planar: 2 as const },
  ]) {
    it(`reads a ${layout.name} multi-band uint16 raster region by region`, async () => {
      const W = 40;
      const H = 23;
      const value = (x: number, y: number, b: number): number => b * 1000 + y * W + x;
      const file = join(dir, `${layout.name.replace(/ /g, '-')}.tif`);
      writeFileSync(file, makeTiff({ width: W, height: H, bands: 3, type: 'uint16', value, ...layout }));
      const src = await openRaster(file);
      expect(src.header.tiled).toBe(layout.tile !== undefined);
      expect(src.header.interleave).toBe(layout.planar === 2 ? 'band' : 'pixel');
      const reg = await src.read(13, 7, 20, 16);
      await src.close();
      for (const [x, y] of [[0, 0], [19, 15], [5, 9]] as const) {
        for (let b = 0; b < 3; b++) expect(reg.data[(y * 20 + x) * 3 + b]).toBe(value(13 + x, 7 + y, b));
      }
    });
  }

  it('uses alpha as the mask and ignores a nodata tag that does not fit the sample type', async () => {
    const w = 6;
    const file = join(dir, 'rgba.tif');
    writeFileSync(file, makeTiff({ width: w, height: w, bands: 4, alpha: 3, type: 'uint8', nodata: '-10000', value: (x, _y, b) => (b === 3 ? (x < 2 ? 0 : 255) : 40 * b + x) }));
    const img = await decodeImageFile(file);
    expect(img.channels).toBe(3);
    expect(img.conversions).toEqual(expect.arrayContaining(['nodata-tag-ignored', 'alpha->mask']));
    expect(img.header.nodata).toBeNull();
    expect(img.valid[0]).toBe(0);
    expect(img.valid[2]).toBe(1);
    expect(img.data[2 * 3]).toBeCloseTo(2 / 127.5 - 1, 6);
  });

  it('maps SAR amplitude to dB', () => {
    const m: ValueMapping = { kind: 'db', input: 'amplitude', low: [0], high: [40] };
    const out = applyMapping(Float32Array.from([1, 10, 100, 0]), 1, m);
    expect(Array.from(out)).toEqual([-1, 0, 1, -1]);
  });

  it('reads 16-bit PNG through sharp and names unreadable files with the reason', async () => {
    const w = 16;
    const px = new Uint16Array(w * w).map((_, i) => 54 + i * 20);
    const png = join(dir, 'g16.png');
    await sharp(Buffer.from(px.buffer), { raw: { width: w, height: w, channels: 1, premultiplied: false } })
      .toColourspace('grey16')
      .png()
      .toFile(png);
    const img = await decodeImageFile(png);
    expect(img.header.sampleType).toBe('uint16');
    expect(Math.min(...img.data)).toBe(-1);
    expect(Math.max(...img.data)).toBe(1);
    const junk = join(dir, 'junk.png');
    writeFileSync(junk, 'not an image');
    await expect(decodeImageFile(junk)).rejects.toBeInstanceOf(UnusableImage);
    await expect(decodeImageFile(junk)).rejects.toThrow(/not a readable image/);
  });
});

const AERIAL = '/work/shared/data/aerial';
describe.skipIf(!existsSync(AERIAL))('the real aerial rasters (skipped when /work/shared/data/aerial is absent)', () => {
  it('decodes every scene with sensible headers and mapped ranges', async () => {
    const cases: Array<[string, Record<string, unknown>, string, number]> = [
      ['scenes/sen1floods11_Spain_7370579_S1Hand.tif', { bands: [1] }, 'float32', 1],
      ['scenes/sen1floods11_Spain_7370579_S2Hand.tif', { bands: [4, 3, 2] }, 'int16', 3],
      ['scenes/riotiler_pix4d_drone_rgba_0.35m.tif', {}, 'uint8', 3],
      ['scenes/opengeos_naip_m_4709963_se_20200831.tif', { channels: 3, alpha: 'ignore' }, 'uint8', 3],
      ['chips/optical_ucmerced/ucm_agricultural00.tif', {}, 'uint8', 3],
    ];
    for (const [rel, opts, type, channels] of cases) {
      const img = await decodeImageFile(join(AERIAL, rel), opts);
      expect(img.header.sampleType, rel).toBe(type);
      expect(img.channels, rel).toBe(channels);
      const s = Float32Array.from(img.data).sort();
      expect(s[Math.floor(s.length * 0.98)]! - s[Math.floor(s.length * 0.02)]!, rel).toBeGreaterThan(0.3);
    }
    // A large tiled uint16 COG is read by region (only the tiles touched).
    const l8 = await openRaster(join(AERIAL, 'scenes/riotiler_cog_landsat8_band_100m.tif'));
    expect([l8.header.width, l8.header.height, l8.header.sampleType, l8.header.tiled]).toEqual([2658, 2667, 'uint16', true]);
    const reg = await l8.read(1200, 1200, 128, 128);
    await l8.close();
    expect(Math.max(...reg.data)).toBeGreaterThan(255);
    // The drone mosaic's alpha masks about 12 % of the pixels.
    const drone = await decodeImageFile(join(AERIAL, 'scenes/riotiler_pix4d_drone_rgba_0.35m.tif'));
    const invalid = drone.valid.reduce((a, v) => a + (v === 0 ? 1 : 0), 0) / drone.valid.length;
    expect(invalid).toBeGreaterThan(0.1);
    expect(invalid).toBeLessThan(0.15);
  });
});
