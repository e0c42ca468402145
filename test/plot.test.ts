import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { generateShowers } from '../src/data/showers-synthetic.js';
import { summariseBins } from '../src/metrics/physics.js';
import { lineChartSvg, writeLineChart } from '../src/util/plot.js';

describe('line charts', () => {
  it('renders MC longitudinal shapes at two energies to a PNG of the asked size', async () => {
    const bins = [{ label: '10GeV', energy: [9, 11] as [number, number] }, { label: '300GeV', energy: [290, 310] as [number, number] }];
    const s10 = generateShowers({ n: 2, seed: 1, geometry: 'fixed-angle', energyRange: [10, 10] });
    const s300 = generateShowers({ n: 2, seed: 1, geometry: 'fixed-angle', energyRange: [300, 300] });
    const [a] = summariseBins({ cells: s10.ecal, shape: s10.shape, energy: s10.energy }, bins);
    const [, b] = summariseBins({ cells: s300.ecal, shape: s300.shape, energy: s300.energy }, bins);
    const z = Array.from({ length: 25 }, (_, i) => i);
    const chart = { title: 'Longitudinal shape (MC)', xLabel: 'layer', yLabel: 'energy fraction', series: [{ label: '10 GeV', x: z, y: a?.shapeZ ?? [] }, { label: '300 GeV', x: z, y: b?.shapeZ ?? [] }] };
    const p = join(mkdtempSync(join(tmpdir(), 'plot-')), 'long.png');
    await writeLineChart(p, chart);
    const meta = await sharp(p).metadata();
    expect([meta.width, meta.height]).toEqual([480, 320]);
    expect(lineChartSvg(chart)).toContain('300 GeV');
    expect(() => lineChartSvg({ ...chart, series: [] })).toThrow(/no finite points/);
    if (process.env['PLOT_OUT']) await writeLineChart(process.env['PLOT_OUT'], chart);
  });
});
