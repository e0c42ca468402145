import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openHeldOutWindows, openSceneData, parseBands, parseValueMap, type SceneDataOptions } from '../src/data/scene-data.js';
import { makeTiff } from './helpers/tiff.js';

const dir = mkdtempSync(join(tmpdir(), 'proggan-scene-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function scenes(sub: string, names: string[], offset = 0): string {
  const d = join(dir, sub);
  mkdirSync(d, { recursive: true });
  names.forEach((n, k) => {
    writeFileSync(join(d, n), makeTiff({ width: 48, height: 40, bands: 1, type: 'uint16', tile: 16, value: (x, y) => offset + 100 * k + ((x * 37 + y * 91 + k * 13) % 500) }));
  });
  return d;
}

const base = (d: string): SceneDataOptions => ({ dir: d, evalFraction: 0.3, splitSeed: 1, channels: 1, scale: 1, windows: 6, evalWindows: 8, smallImages: 'reject' });

describe('scene data for training', () => {
  const names = ['a_20090101.tif', 'a_20200101.tif', 'b.tif', 'c.tif', 'd_before.tif', 'd_after.tif', 'e.tif', 'f.tif'];
  const d = scenes('split', names);

  it('splits by place: the two dates and the before/after of a place land on one side, no scene on both', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const sd = await openSceneData({ ...base(d), splitSeed: seed }, 16, 0, true, undefined);
      const base1 = (f: string) => f.split('/').pop() as string;
      const train = sd.trainScenes.map(base1);
      const held = sd.heldScenes.map(base1);
      expect(train.filter((f) => held.includes(f))).toEqual([]);
      expect(train.length + held.length).toBe(names.length);
      expect(held.length).toBeGreaterThan(0);
      const side = (f: string) => (held.includes(f) ? 'held' : 'train');
      expect(side('a_20090101.tif')).toBe(side('a_20200101.tif'));
      expect(side('d_before.tif')).toBe(side('d_after.tif'));
      // Held-out windows come only from held-out scenes.
      for (let i = 0; i < (sd.held?.size ?? 0); i++) expect(held).toContain(base1(sd.held?.name(i).split('@')[0] as string));
      await sd.close();
    }
  });

  it('draws windows seeded by (seed, epoch, index), different per epoch; the stored mapping is reused exactly', async () => {
    const sd = await openSceneData(base(d), 16, 5, false);
    expect(sd.mapping.kind).toBe('percentile');
    const w0 = await sd.train.get(3, 0);
    expect(w0.length).toBe(16 * 16);
    expect(await sd.train.get(3, 0)).toEqual(w0);
    expect(await sd.train.get(3, 1)).not.toEqual(w0);
    const again = await openSceneData({ ...base(d), valueMap: sd.valueMap, mappingLow: [123], mappingHigh: [456] }, 16, 5, false);
    expect(again.mapping.low).toEqual([123]);
    expect(again.mapping.high).toEqual([456]);
    await sd.close();
    await again.close();
  });

  it('evaluate reopens the same held-out windows as training', async () => {
    const sd = await openSceneData(base(d), 16, 0, true);
    const stored = { ...base(d), valueMap: sd.valueMap, mappingLow: [...sd.mapping.low], mappingHigh: [...sd.mapping.high] };
    const h = await openHeldOutWindows(stored, 16, 8);
    expect(h.size).toBe(sd.held?.size);
    for (let i = 0; i < h.size; i++) expect(await h.get(i)).toEqual(await sd.held?.get(i));
    await sd.close();
  });

  it('rejects held-out scenes that are also training scenes, and bad flags, naming the flag', async () => {
    await expect(openSceneData({ ...base(d), evalDir: d }, 16, 0, true)).rejects.toThrow(/--eval-data .*also in --data/);
    await expect(openSceneData({ ...base(d), scale: 2 }, 16, 0, true)).rejects.toThrow(/--scale/);
    expect(() => parseBands('1,x')).toThrow(/--bands/);
    expect(parseBands('4,3,2')).toEqual([4, 3, 2]);
    expect(() => parseValueMap('fixed:5,1', 1)).toThrow(/--value-map/);
    expect(parseValueMap('fixed:0,255', 3)).toEqual({ kind: 'fixed', low: [0, 0, 0], high: [255, 255, 255] });
    expect(parseValueMap('db:power', 1)).toMatchObject({ kind: 'db', input: 'power' });
  });
});
