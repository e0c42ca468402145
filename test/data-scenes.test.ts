import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { listSceneFiles, openScenes, splitScenes } from '../src/data/scenes.js';
import { makeTiff } from './helpers/tiff.js';

const dir = mkdtempSync(join(tmpdir(), 'proggan-scenes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A uint16 scene with structure everywhere, a nodata strip at the top (value 0) of `strip` rows. */
function scene(name: string, w: number, h: number, strip = 0): string {
  const file = join(dir, name);
  writeFileSync(file, makeTiff({ width: w, height: h, bands: 1, type: 'uint16', tile: 16, nodata: '0', value: (x, y) => (y < strip ? 0 : 100 + ((x * 37 + y * 91) % 500)) }));
  return file;
}

describe('scene windows', () => {
  const scenesDir = join(dir, 'set');
  mkdirSync(scenesDir);
  const big = (n: string, w: number, h: number, strip = 0): string => {
    const f = scene(n, w, h, strip);
    const to = join(scenesDir, n);
    writeFileSync(to, makeTiff({ width: w, height: h, bands: 1, type: 'uint16', tile: 16, nodata: '0', value: (x, y) => (y < strip ? 0 : 100 + ((x * 37 + y * 91) % 500)) }));
    rmSync(f);
    return to;
  };
  big('a.tif', 96, 80, 40);
  big('b.tif', 64, 64);
  big('small.tif', 20, 40);

  it('samples native-resolution windows, seeded by (seed, epoch, index), skipping mostly-nodata ones and rejecting small images', async () => {
    const set = await openScenes(scenesDir, { window: 32, mapping: { kind: 'percentile' }, cacheBytes: 0 });
    expect(set.files.map((f) => f.split('/').pop())).toEqual(['a.tif', 'b.tif']);
    expect(set.skipped.map((s) => s.reason).join()).toMatch(/small\.tif|is 20x40, smaller than the 32x32/);
    expect(set.mapping.kind).toBe('percentile');
    const first = [];
    for (let i = 0; i < 12; i++) first.push(await set.randomWindow(7, 3, i));
    for (const w of first) {
      expect(w).not.toBeNull();
      expect(w!.data.length).toBe(32 * 32);
      // Never more than 25 % nodata (scene a's top 40 rows are nodata).
      expect(w!.valid.reduce((a, v) => a + v, 0)).toBeGreaterThanOrEqual(0.75 * 32 * 32);
    }
    expect(set.counters.skippedInvalid).toBeGreaterThan(0);
    // Resuming at (seed 7, epoch 3, index 5) gives the same window; another epoch differs.
    const again = await set.randomWindow(7, 3, 5);
    expect([again!.scene, again!.x, again!.y]).toEqual([first[5]!.scene, first[5]!.x, first[5]!.y]);
    expect(Array.from(again!.data)).toEqual(Array.from(first[5]!.data));
    const other = await Promise.all([0, 1, 2, 3].map((i) => set.randomWindow(7, 4, i)));
    expect(other.map((w) => `${w!.scene},${w!.x},${w!.y}`)).not.toEqual(first.slice(0, 4).map((w) => `${w!.scene},${w!.x},${w!.y}`));
    // Fixed grid: a is 3x2 windows of which the top row is nodata, b is 2x2.
    expect(set.gridSize()).toBe(6 + 4);
    const grid = await set.gridWindows();
    expect(grid.length).toBe(3 + 4);
    await set.close();
  });

  it('pads small images with invalid pixels when asked and reads at a chosen scale', async () => {
    const set = await openScenes([join(scenesDir, 'small.tif')], { window: 32, smallImages: 'pad', maxInvalidFraction: 0.5, mapping: { kind: 'fixed', low: [0], high: [1000] } });
    const w = await set.gridWindow(0);
    expect(w).not.toBeNull();
    expect(w!.valid[31]).toBe(0); // column 31 is beyond the 20-px wide image
    expect(w!.valid[0]).toBe(1);
    await set.close();
    const half = await openScenes([join(scenesDir, 'b.tif')], { window: 16, scale: 0.5, mapping: { kind: 'fixed', low: [0], high: [1000] } });
    expect(half.gridSize()).toBe(4);
    const hw = await half.gridWindow(0);
    expect(hw!.data.length).toBe(16 * 16);
    await half.close();
  });

  it('splits by scene: no scene on both sides, same split for the same seed', () => {
    const scenes = Array.from({ length: 40 }, (_, i) => `/data/scene_${i}.tif`);
    const a = splitScenes(scenes, 0.25, 11);
    const b = splitScenes(scenes, 0.25, 11);
    expect(a).toEqual(b);
    expect(a.held.length).toBe(10);
    expect(a.train.filter((s) => a.held.includes(s))).toEqual([]);
    expect(a.train.length + a.held.length).toBe(40);
    expect(splitScenes(scenes, 0.25, 12).held).not.toEqual(a.held);
    // Grouped scenes (before/after of one place) never straddle the split.
    const pairs = Array.from({ length: 20 }, (_, i) => [`/d/p${i}_before.png`, `/d/p${i}_after.png`]).flat();
    const g = splitScenes(pairs, 0.3, 5, (s) => s.replace(/_(before|after)\.png$/, ''));
    expect(g.held.length).toBe(12);
    for (const h of g.held) expect(g.held).toContain(h.includes('_before') ? h.replace('_before', '_after') : h.replace('_after', '_before'));
  });
});

describe('listing', () => {
  it('detects symlink loops and duplicates by real path and names every skipped entry', async () => {
    const d = join(dir, 'list');
    mkdirSync(join(d, 'sub'), { recursive: true });
    writeFileSync(join(d, 'sub', 'x.tif'), makeTiff({ width: 4, height: 4, bands: 1, type: 'uint8', value: () => 1 }));
    symlinkSync('.', join(d, 'sub', 'up'));
    symlinkSync('x.tif', join(d, 'sub', 'again.tif'));
    symlinkSync('missing.tif', join(d, 'dangling.tif'));
    execFileSync('mkfifo', [join(d, 'pipe.tif')]);
    writeFileSync(join(d, 'locked.tif'), 'x');
    chmodSync(join(d, 'locked.tif'), 0o000);
    writeFileSync(Buffer.concat([Buffer.from(join(d, 'bad')), Buffer.from([0xff, 0xfe]), Buffer.from('.tif')]), 'x');
    writeFileSync(join(d, 'notes.txt'), 'x');
    const l = await listSceneFiles(d);
    const root = process.getuid?.() === 0; // root reads mode-000 files
    expect(l.files).toEqual([...(root ? [join(d, 'locked.tif')] : []), join(d, 'sub', 'again.tif')]);
    const reasons = l.skipped.map((s) => `${s.path.slice(d.length + 1)}: ${s.reason}`).join('\n');
    expect(reasons).toMatch(/sub\/x\.tif: duplicate of .*again\.tif/);
    expect(reasons).toMatch(/up: folder already visited/);
    expect(reasons).toMatch(/dangling\.tif: dangling symlink/);
    expect(reasons).toMatch(/pipe\.tif: a FIFO/);
    expect(reasons).toMatch(/bad\\xff\\xfe\.tif: name is not valid UTF-8/);
    if (!root) expect(reasons).toMatch(/locked\.tif: permission denied/);
    expect(l.ignored.map((p) => p.slice(d.length + 1))).toEqual(['notes.txt']);
  });
});

describe('memory', () => {
  it('windows of four 16000x16000 PNGs stay under a 600 MB RSS growth (child process)', async () => {
    const d = join(dir, 'huge');
    mkdirSync(d);
    // A cheap-to-compress but not constant image: a 256-px gradient tiled.
    const tile = await sharp({ create: { width: 256, height: 256, channels: 3, background: '#406080' } })
      .composite([{ input: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"><rect x="0" y="0" width="128" height="256" fill="#a0c0e0"/></svg>') }])
      .png()
      .toBuffer();
    await sharp({ create: { width: 16000, height: 16000, channels: 3, background: '#406080' } })
      .composite([{ input: tile, tile: true }])
      .png({ compressionLevel: 1 })
      .toFile(join(d, 'a.png'));
    for (const n of ['b', 'c', 'd']) symlinkSync('a.png', join(d, `${n}.png`));
    const script = `
      import { openScenes } from ${JSON.stringify(new URL('../dist/data/scenes.js', import.meta.url).pathname)};
      const base = process.memoryUsage().rss;
      const set = await openScenes(process.argv[1], { window: 256, statsWindowsPerScene: 2 });
      let peak = 0;
      for (let i = 0; i < 8; i++) { await set.randomWindow(1, 0, i); peak = Math.max(peak, process.memoryUsage().rss - base); }
      console.log(JSON.stringify({ files: set.files.length, skipped: set.skipped.length, peakMB: peak / 2 ** 20 }));
    `;
    if (!existsSync(new URL('../dist/data/scenes.js', import.meta.url))) throw new Error('build first: npm run build');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, d], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { files: number; skipped: number; peakMB: number };
    // The symlinks to one file are duplicates by real path.
    expect(out.files).toBe(1);
    expect(out.skipped).toBe(3);
    expect(out.peakMB).toBeLessThan(600);
  });
});
