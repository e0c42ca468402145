/**
 * PNG figures of a physics comparison (GAN vs MC overlaid): sampling fraction vs Ep, longitudinal
 * and transverse shapes, cell-energy spectrum, hits vs Ep. Written at sample ticks and by
 * `proggan validate`.
 */
import { SPECTRUM_EDGES, type PhysicsComparison } from '../../metrics/physics.js';
import { writeLineChart, type LineSeries } from '../../util/plot.js';

const MC_COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#17becf', '#8c564b', '#7f7f7f'];
const GAN_COLORS = ['#d62728', '#ff7f0e', '#e377c2', '#bcbd22', '#ff9896', '#c49c94'];

/** The figures {@link writePhysicsPlots} writes, by key (file `<prefix><key>.png`). */
export const PHYSICS_PLOTS = ['sampling-fraction', 'shape-z', 'shape-x', 'shape-y', 'spectrum', 'hits'] as const;

function shapeSeries(cmp: PhysicsComparison, axis: 'shapeX' | 'shapeY' | 'shapeZ'): LineSeries[] {
  const out: LineSeries[] = [];
  cmp.bins.forEach((b, i) => {
    const m = cmp.mc[i];
    const g = cmp.gan[i];
    if (!m?.events || !g?.events) return;
    out.push({ label: `MC ${b.label}`, x: m[axis].map((_, k) => k), y: m[axis], color: MC_COLORS[i % MC_COLORS.length] ?? '#1f77b4' });
    out.push({ label: `GAN ${b.label}`, x: g[axis].map((_, k) => k), y: g[axis], color: GAN_COLORS[i % GAN_COLORS.length] ?? '#d62728' });
  });
  return out;
}

/**
 * Write the comparison's figures to `<prefix><name>.png` (e.g. prefix `run/validation/` or
 * `run/samples/step-00000100-`). Returns the paths written; a figure with no finite points is skipped.
 */
export async function writePhysicsPlots(prefix: string, cmp: PhysicsComparison, title: string): Promise<string[]> {
  const used = cmp.bins.map((_, i) => i).filter((i) => (cmp.mc[i]?.events ?? 0) > 0 && (cmp.gan[i]?.events ?? 0) > 0);
  const ep = used.map((i) => cmp.mc[i]?.meanEnergy ?? 0);
  const charts: Record<(typeof PHYSICS_PLOTS)[number], Parameters<typeof writeLineChart>[1]> = {
    'sampling-fraction': {
      title: `${title}: sampling fraction vs Ep`, xLabel: 'Ep (GeV)', yLabel: 'ECAL sum / Ep', logY: true,
      series: [
        { label: 'MC', x: ep, y: used.map((i) => cmp.mc[i]?.samplingFraction.mean ?? Number.NaN), color: '#1f77b4' },
        { label: 'GAN', x: ep, y: used.map((i) => cmp.gan[i]?.samplingFraction.mean ?? Number.NaN), color: '#d62728' },
      ],
    },
    'shape-z': { title: `${title}: longitudinal shape`, xLabel: 'layer (z)', yLabel: 'energy fraction', series: shapeSeries(cmp, 'shapeZ') },
    'shape-x': { title: `${title}: transverse shape (x)`, xLabel: 'cell (x)', yLabel: 'energy fraction', series: shapeSeries(cmp, 'shapeX'), logY: true },
    'shape-y': { title: `${title}: transverse shape (y)`, xLabel: 'cell (y)', yLabel: 'energy fraction', series: shapeSeries(cmp, 'shapeY'), logY: true },
    spectrum: {
      title: `${title}: cell-energy spectrum`, xLabel: 'log10 cell energy (GeV)', yLabel: 'cells per event', logY: true,
      series: used.flatMap((i) => [
        { label: `MC ${cmp.bins[i]?.label ?? ''}`, x: SPECTRUM_EDGES.slice(0, -1).map((e) => e + 0.125), y: cmp.mc[i]?.spectrum ?? [], color: MC_COLORS[i % MC_COLORS.length] ?? '#1f77b4' },
        { label: `GAN ${cmp.bins[i]?.label ?? ''}`, x: SPECTRUM_EDGES.slice(0, -1).map((e) => e + 0.125), y: cmp.gan[i]?.spectrum ?? [], color: GAN_COLORS[i % GAN_COLORS.length] ?? '#d62728' },
      ]),
    },
    hits: {
      title: `${title}: cells above 3e-4 GeV vs Ep`, xLabel: 'Ep (GeV)', yLabel: 'hits per event', logY: true,
      series: [
        { label: 'MC', x: ep, y: used.map((i) => cmp.mc[i]?.hits ?? Number.NaN), color: '#1f77b4' },
        { label: 'GAN', x: ep, y: used.map((i) => cmp.gan[i]?.hits ?? Number.NaN), color: '#d62728' },
      ],
    },
  };
  const written: string[] = [];
  for (const key of PHYSICS_PLOTS) {
    const path = `${prefix}${key}.png`;
    try {
      await writeLineChart(path, { ...charts[key], width: 640, height: 400 });
      written.push(path);
    } catch (e) {
      if (!(e instanceof Error && e.message.includes('no finite points'))) throw e;
    }
  }
  return written;
}
