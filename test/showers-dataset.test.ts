import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Pipeline } from '../src/data/pipeline.js';
import {
  listShowerFiles,
  readHeldOut,
  scanShowerFiles,
  ShowerExampleDataset,
  splitShowerFiles,
  writeMcShowerFiles,
} from '../src/data/showers-dataset.js';
import { defaultShowerPreprocess, readShowers, writeShowers } from '../src/data/showers-hdf5.js';
import { quantileEnergyBins } from '../src/metrics/physics.js';

const root = mkdtempSync(join(tmpdir(), 'proggan-showers-ds-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const pre = defaultShowerPreprocess({ minSum: 0.5 });

describe('shower files as a streaming dataset', () => {
  it('writes MC files once per seed, detects the layout, counts the preprocessing, streams preprocessed examples by chunks', async () => {
    const dir = join(root, 'mc');
    const files = await writeMcShowerFiles(dir, { files: 3, events: 6, seed: 4, layout: 'fixed-angle', energyRange: [10, 100] });
    expect(listShowerFiles(dir)).toEqual(files);
    const again = await writeMcShowerFiles(dir, { files: 3, events: 6, seed: 4, layout: 'fixed-angle', energyRange: [10, 100] });
    expect(again).toEqual(files);
    const { train, heldOut } = splitShowerFiles(files);
    expect(heldOut).toEqual([files[2]]);
    const scan = await scanShowerFiles(train, { preprocess: pre, chunkEvents: 4, badFiles: 'error', what: 'train' });
    expect(scan.layout).toBe('fixed-angle');
    expect(scan.counts.events).toBe(12);
    // minSum 0.5 GeV at a 2 % sampling fraction drops the events below ~25 GeV.
    const raw = await readShowers(train[0] ?? '');
    const low = Array.from(raw.energy).filter((e) => e * 0.02 < 0.4).length;
    expect(scan.counts.droppedLowSum).toBeGreaterThanOrEqual(low);
    expect(scan.counts.kept + scan.counts.droppedLowSum).toBe(12);
    const ds = new ShowerExampleDataset(scan.sources, { preprocess: pre, chunkEvents: 4, cacheChunks: 2 });
    expect(ds.size).toBe(scan.counts.kept);
    expect(ds.spec['ecal']?.shape).toEqual([25, 25, 25, 1]);
    // Example 0 is the first kept event of file 0, preprocessed (X^0.85, E/100).
    const k0 = scan.sources[0]?.kept[0] ?? 0;
    const ex = await ds.get(0);
    expect(ex['energy']?.[0]).toBeCloseTo((raw.energy[k0] ?? 0) / 100, 6);
    const per = 25 * 25 * 25;
    let maxCell = 0;
    for (let c = 0; c < per; c++) if ((raw.ecal[k0 * per + c] ?? 0) > maxCell) maxCell = raw.ecal[k0 * per + c] ?? 0;
    expect(Math.max(...Array.from(ex['ecal'] ?? []))).toBeCloseTo(maxCell ** 0.85, 5);
    expect(ds.name(0)).toBe(`${train[0]}#${k0}`);
    // Through the pipeline, sharded over 2 replicas: the two ranks see disjoint examples.
    const p0 = new Pipeline(ds, { batchSize: 2, seed: 1, rank: 0, worldSize: 2, prefetch: 1 });
    const p1 = new Pipeline(ds, { batchSize: 2, seed: 1, rank: 1, worldSize: 2, prefetch: 1 });
    const [b0, b1] = [await p0.next(), await p1.next()];
    expect(b0.fields['ecal']?.shape).toEqual([2, 25, 25, 25, 1]);
    expect(b0.indices.filter((i) => b1.indices.includes(i))).toEqual([]);
    p0.close();
    p1.close();
    const ho = await scanShowerFiles(heldOut, { preprocess: pre, chunkEvents: 4, badFiles: 'error', what: 'held-out', layout: 'fixed-angle' });
    const held = await readHeldOut(ho.sources, 3, { preprocess: pre, chunkEvents: 4 });
    expect(held.energy.length).toBe(3);
    expect(held.theta[0]).toBeCloseTo(Math.PI / 2, 6);
    const bins = quantileEnergyBins(held.energy, 2);
    expect(bins).toHaveLength(2);
  });

  it('names every bad file, or skips it with --bad-files skip; a forced layout that does not match is a bad file', async () => {
    const dir = join(root, 'bad');
    mkdirSync(dir, { recursive: true });
    const [good] = await writeMcShowerFiles(dir, { files: 1, events: 3, seed: 1, layout: 'fixed-angle', energyRange: [50, 60] });
    writeFileSync(join(dir, 'zz-not-hdf5.h5'), 'hello');
    await writeShowers(join(dir, 'zz-nan.h5'), 'fixed-angle', { ecal: new Float32Array(25 ** 3).fill(Number.NaN), energy: Float32Array.of(50) });
    const files = listShowerFiles(dir);
    await expect(scanShowerFiles(files, { preprocess: pre, chunkEvents: 4, badFiles: 'error', what: 'train' }))
      .rejects.toThrow(/2 bad files[\s\S]*zz-nan\.h5: "ECAL" event 0 has a NaN\/Inf cell[\s\S]*zz-not-hdf5\.h5: not an HDF5 file[\s\S]*--bad-files skip/);
    const skipped = await scanShowerFiles(files, { preprocess: pre, chunkEvents: 4, badFiles: 'skip', what: 'train' });
    expect(skipped.counts.skippedFiles).toBe(2);
    expect(skipped.sources.map((s) => s.info.path)).toEqual([good]);
    await expect(scanShowerFiles([good ?? ''], { preprocess: pre, chunkEvents: 4, badFiles: 'error', what: 'train', layout: 'variable-angle' }))
      .rejects.toThrow(/has the fixed-angle layout .* but the run uses variable-angle \(--layout\)/);
    expect(() => splitShowerFiles([good ?? ''])).toThrow(/only one file.*--eval-data/);
    expect(() => listShowerFiles(join(root, 'nope'))).toThrow(/not found \(check --data\)/);
  });
});
