import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateShowers, showerMaxDepth } from '../src/data/showers-synthetic.js';
import { defaultShowerPreprocess, inspectShowerFile, preprocessShowers, readShowerChunks, readShowers, writeShowers } from '../src/data/showers-hdf5.js';
import { comparePhysics, referenceBins, showerFeatures, summariseBins } from '../src/metrics/physics.js';

const dir = mkdtempSync(join(tmpdir(), 'gan3d-'));

describe('physics quantities on hand-made showers', () => {
  const shape: [number, number, number] = [5, 5, 5];
  it('a single-cell shower', () => {
    const v = new Float32Array(125);
    v[(1 * 5 + 2) * 5 + 3] = 2; // x=1, y=2, z=3
    const f = showerFeatures(v, shape, 0);
    expect(f.ecal).toBe(2);
    expect(f.momentsX).toEqual([1, 0, 0]);
    expect(f.momentsY).toEqual([2, 0, 0]);
    expect(f.momentsZ).toEqual([3, 0, 0]);
    expect(f.hits).toBe(1);
    expect(Array.from(f.profileZ)).toEqual([0, 0, 0, 2, 0]);
  });
  it('a uniform block', () => {
    const v = new Float32Array(125).fill(1e-4);
    const f = showerFeatures(v, shape, 0);
    expect(f.ecal).toBeCloseTo(0.0125, 6);
    // uniform over 0..4: mean 2, variance 2, third central moment 0
    for (const m of [f.momentsX, f.momentsY, f.momentsZ]) {
      expect(m[0]).toBeCloseTo(2, 5);
      expect(m[1]).toBeCloseTo(2, 5);
      expect(m[2]).toBeCloseTo(0, 5);
    }
    expect(f.hits).toBe(0); // all cells below 3e-4 GeV
    expect(f.angle).toBeCloseTo(Math.PI / 2, 6);
  });
  it('a tilted line: angle pi/2 - atan(1)', () => {
    const v = new Float32Array(125);
    for (let z = 0; z < 5; z++) v[(2 * 5 + z) * 5 + z] = 1;
    expect(showerFeatures(v, shape, 0).angle).toBeCloseTo(Math.PI / 4, 6);
  });
  it('the selection metric is 0 for identical sets and grows with a shifted set', () => {
    const mc = generateShowers({ n: 6, seed: 1, geometry: 'fixed-angle', energyRange: [145, 155] });
    const bins = referenceBins(false);
    const same = comparePhysics({ cells: mc.ecal, shape: mc.shape, energy: mc.energy }, { cells: mc.ecal, shape: mc.shape, energy: mc.energy }, bins);
    expect(same.metric).toBe(0);
    const half = mc.ecal.map((v) => v * 0.5);
    const c = comparePhysics({ cells: mc.ecal, shape: mc.shape, energy: mc.energy }, { cells: half, shape: mc.shape, energy: mc.energy }, bins);
    expect(c.samplingFractionError[1]).toBeCloseTo(-0.5, 5);
    expect(c.metric).toBe(0); // shapes and moments do not change with a global scale
  });
});

describe('MC-like showers', () => {
  it('are deterministic per seed', () => {
    const a = generateShowers({ n: 2, seed: 3, geometry: 'fixed-angle' });
    const b = generateShowers({ n: 2, seed: 3, geometry: 'fixed-angle' });
    expect(a.ecal).toEqual(b.ecal);
    expect(generateShowers({ n: 2, seed: 4, geometry: 'fixed-angle' }).ecal).not.toEqual(a.ecal);
  });
  it('sampling fraction roughly constant vs E; shower maximum deeper with ln E', () => {
    const sf: number[] = [];
    const zmean: number[] = [];
    for (const e of [10, 100, 400]) {
      const s = generateShowers({ n: 4, seed: e, geometry: 'fixed-angle', energyRange: [e, e] });
      const [b] = summariseBins({ cells: s.ecal, shape: s.shape, energy: s.energy }, [{ label: 'all', energy: [0, 1000] }]);
      sf.push(b?.samplingFraction.mean ?? 0);
      zmean.push(b?.momentsZ[0] ?? 0);
    }
    for (const v of sf) expect(Math.abs(v - 0.02) / 0.02).toBeLessThan(0.15);
    expect(zmean[1]).toBeGreaterThan((zmean[0] ?? 0) + 1);
    expect(zmean[2]).toBeGreaterThan((zmean[1] ?? 0) + 0.5);
    expect(showerMaxDepth(400) - showerMaxDepth(100)).toBeCloseTo(Math.log(4), 6);
  });
  it('the entry angle tilts the barycentre', () => {
    const at = (deg: number): number => {
      const s = generateShowers({ n: 2, seed: 9, energyRange: [100, 100], angleRangeDeg: [deg, deg] });
      return (showerFeatures(s.ecal, s.shape, 0).angle * 180) / Math.PI;
    };
    const a60 = at(60);
    const a120 = at(120);
    expect(a60).toBeLessThan(75);
    expect(a120).toBeGreaterThan(105);
    expect(Math.abs(at(90) - 90)).toBeLessThan(3);
  });
});

describe('shower HDF5 files', () => {
  it('round trip both layouts, by chunks, with the layout detected', async () => {
    const s = generateShowers({ n: 3, seed: 2, energyRange: [50, 60] });
    const p = join(dir, 'va.h5');
    await writeShowers(p, 'variable-angle', { ecal: s.ecal, energy: s.energy, angles: { theta: s.theta } });
    const info = await inspectShowerFile(p);
    expect(info).toMatchObject({ layout: 'variable-angle', events: 3, shape: [51, 51, 25], angles: ['theta'] });
    const chunks = [];
    for await (const c of readShowerChunks(p, 2)) chunks.push(c);
    expect(chunks.map((c) => c.energy.length)).toEqual([2, 1]);
    const all = await readShowers(p);
    expect(all.ecal).toEqual(s.ecal);
    expect(all.angles.theta).toEqual(s.theta);
    const f = generateShowers({ n: 2, seed: 2, geometry: 'fixed-angle' });
    const q = join(dir, 'fa.h5');
    await writeShowers(q, 'fixed-angle', { ecal: f.ecal, energy: f.energy });
    const r = await readShowers(q);
    expect(r.info.layout).toBe('fixed-angle');
    expect(r.energy).toEqual(f.energy);
    const pre = preprocessShowers(r, 25 ** 3, defaultShowerPreprocess({ minSum: 0.5 }));
    expect(pre.counts.events).toBe(2);
    expect(pre.energy[0]).toBeCloseTo((f.energy[0] ?? 0) / 100, 6);
  });

  it('names every bad file with the reason', async () => {
    const ok = generateShowers({ n: 2, seed: 1, geometry: 'fixed-angle' });
    const bad = async (name: string, make: (p: string) => Promise<void> | void, re: RegExp): Promise<void> => {
      const p = join(dir, name);
      await make(p);
      const run = async (): Promise<void> => { for await (const _ of readShowerChunks(p)) { /* read all */ } };
      await expect(run()).rejects.toThrow(new RegExp(`${name}.*${re.source}`));
    };
    await bad('missing.h5', () => undefined, /not found/);
    await bad('text.h5', (p) => writeFileSync(p, 'hello'), /not an HDF5 file/);
    await bad('trunc.h5', async (p) => {
      await writeShowers(join(dir, 'full.h5'), 'fixed-angle', { ecal: ok.ecal, energy: ok.energy });
      const buf = readFileSync(join(dir, 'full.h5'));
      writeFileSync(p, buf.subarray(0, Math.floor(buf.length / 2)));
    }, /truncated/);
    await bad('nan.h5', (p) => writeShowers(p, 'fixed-angle', { ecal: ok.ecal.map((v, i) => (i === 5 ? Number.NaN : v)), energy: ok.energy }), /event 0 has a NaN/);
    await bad('neg.h5', (p) => writeShowers(p, 'fixed-angle', { ecal: ok.ecal.map((v, i) => (i === 25 ** 3 + 1 ? -1 : v)), energy: ok.energy }), /event 1 has a negative/);
    const h5 = (await import('h5wasm/node')).default;
    await h5.ready;
    const custom = (name: string, build: (f: InstanceType<typeof h5.File>) => void) => (p: string): void => { const f = new h5.File(p, 'w'); build(f); f.close(); };
    await bad('noecal.h5', custom('noecal', (f) => { f.create_dataset({ name: 'energy', data: new Float32Array(2) }); }), /missing dataset "ECAL"/);
    await bad('shape.h5', custom('shape', (f) => { f.create_dataset({ name: 'ECAL', data: new Float32Array(2 * 8), shape: [2, 2, 2, 2], dtype: '<f' }); }), /shape \[2, 2, 2, 2\]/);
    await bad('len.h5', custom('len', (f) => {
      f.create_dataset({ name: 'ECAL', data: new Float32Array(2 * 51 * 51 * 25), shape: [2, 51, 51, 25], dtype: '<f' });
      f.create_dataset({ name: 'energy', data: new Float32Array(3) });
    }), /mismatched lengths/);
    await bad('noenergy.h5', custom('noenergy', (f) => { f.create_dataset({ name: 'ECAL', data: new Float32Array(51 * 51 * 25), shape: [1, 51, 51, 25], dtype: '<f' }); }), /missing dataset "energy"/);
  });
});
