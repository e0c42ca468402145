import { describe, expect, it } from 'vitest';
import { splitCorners } from '../src/data/corners.js';
import { syntheticTiles } from '../src/data/synthetic.js';

function meanStd(a: Float32Array): [number, number] {
  let s = 0;
  for (const v of a) s += v;
  const m = s / a.length;
  let q = 0;
  for (const v of a) q += (v - m) ** 2;
  return [m, Math.sqrt(q / a.length)];
}

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += Math.abs((a[k] as number) - (b[k] as number));
  return s / a.length;
}

describe('syntheticTiles', () => {
  for (const channels of [1, 3] as const) {
    it(`is deterministic per (seed, index) with ${channels} channel(s)`, () => {
      const a = syntheticTiles({ count: 10, resolution: 32, channels, seed: 7 });
      const b = syntheticTiles({ count: 10, resolution: 32, channels, seed: 7 });
      // Generated out of order, so nothing depends on generation history.
      const b5 = b.generate(5);
      b.generate(2);
      expect(a.generate(2)).toEqual(b.generate(2));
      expect(a.generate(5)).toEqual(b5);
      expect(a.generate(5).length).toBe(32 * 32 * channels);
    });

    it(`has values in [-1, 1] and real contrast with ${channels} channel(s)`, () => {
      const ds = syntheticTiles({ count: 20, resolution: 32, channels, seed: 1 });
      for (let i = 0; i < ds.size; i++) {
        const img = ds.generate(i);
        const bad = img.filter((v) => !(v >= -1 && v <= 1));
        expect(bad.length).toBe(0);
        expect(meanStd(img)[1]).toBeGreaterThan(0.02);
      }
    });
  }

  it('gives different tiles for different indices and seeds', () => {
    const a = syntheticTiles({ count: 4, resolution: 32, channels: 3, seed: 1 });
    const b = syntheticTiles({ count: 4, resolution: 32, channels: 3, seed: 2 });
    expect(meanAbsDiff(a.generate(0), a.generate(1))).toBeGreaterThan(0.02);
    expect(meanAbsDiff(a.generate(0), b.generate(0))).toBeGreaterThan(0.02);
  });

  it('get() matches generate(), and the cache hands out copies', async () => {
    const ds = syntheticTiles({ count: 3, resolution: 16, channels: 1, seed: 4, cache: true });
    const first = await ds.get(1);
    expect(first).toEqual(ds.generate(1));
    first.fill(0);
    expect(ds.generate(1)).not.toEqual(first);
    expect(ds.name(1)).toBe('synthetic(seed=4)#1');
    expect(() => ds.generate(3)).toThrow(/out of range/);
  });

  it('rejects invalid options', () => {
    expect(() => syntheticTiles({ count: 0, resolution: 16, channels: 3, seed: 0 })).toThrow(/count/);
    expect(() => syntheticTiles({ count: 1, resolution: 2, channels: 3, seed: 0 })).toThrow(/resolution/);
    expect(() => syntheticTiles({ count: 1, resolution: 16, channels: 2 as 1, seed: 0 })).toThrow(/channels/);
  });

  it('corners of one tile share scene statistics (corner means correlate within tiles)', () => {
    // Intraclass correlation of the four corner means: 0 if corners were independent scenes.
    for (const channels of [1, 3] as const) {
      const ds = syntheticTiles({ count: 40, resolution: 32, channels, seed: 11 });
      const all: number[][] = [];
      for (let i = 0; i < ds.size; i++) {
        const c = splitCorners(ds.generate(i), 32, channels);
        all.push([c.tl, c.tr, c.bl, c.br].map((x) => meanStd(x)[0]));
      }
      const grand = all.flat().reduce((a, b) => a + b) / (4 * all.length);
      let within = 0;
      let between = 0;
      for (const ms of all) {
        const m = ms.reduce((a, b) => a + b) / 4;
        between += (m - grand) ** 2;
        for (const v of ms) within += (v - m) ** 2;
      }
      within /= all.length * 3;
      between /= all.length - 1;
      const icc = (between - within / 4) / (between - within / 4 + within);
      expect(icc).toBeGreaterThan(0.2);
    }
  });

  it('renders the same scene at every resolution', () => {
    // A 64 px tile box-downsampled to 32 px is close to the 32 px tile of the same index.
    const hi = syntheticTiles({ count: 8, resolution: 64, channels: 3, seed: 5 });
    const lo = syntheticTiles({ count: 8, resolution: 32, channels: 3, seed: 5 });
    for (let i = 0; i < 4; i++) {
      const a = hi.generate(i);
      const down = new Float32Array(32 * 32 * 3);
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          for (let c = 0; c < 3; c++) {
            let s = 0;
            for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) s += a[((2 * y + dy) * 64 + 2 * x + dx) * 3 + c] as number;
            down[(y * 32 + x) * 3 + c] = s / 4;
          }
      const same = meanAbsDiff(down, lo.generate(i));
      const other = meanAbsDiff(down, lo.generate(i + 4));
      expect(same).toBeLessThan(0.5 * other);
    }
  });
  // Generation speed (ms per tile at 64 and 256 px) is measured by test/bench/synthetic-tiles.mjs, not asserted here.
});
