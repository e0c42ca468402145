/**
 * `proggan plot RUN OUT.png`: one metric of a run's stats.jsonl against the step, as a PNG line chart
 * (an SVG rendered by sharp), with the resolution changes of a growing run as guides. The handler
 * loads sharp only when it runs, so `--help` stays light.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { parseStatsJsonl } from '../training/stats.js';
import { UsageError } from '../util/errors.js';

/** Options of {@link plotSvg}. */
export interface PlotOptions {
  /** Statistic to draw, e.g. `swd/mean` or `loss/rec`. */
  metric: string;
  /** Record kind to keep: `eval` (held-out evaluations), `status` (status ticks) or `any`. */
  kind: 'eval' | 'status' | 'any';
  /** Chart title; default `<metric> — <runDir>`. */
  title?: string;
}

const escapeXml = (s: string): string => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The points of `metric` in `records` (stats.jsonl lines), filtered by kind: [step, value, resolution?]. */
export function plotPoints(records: Array<Record<string, unknown>>, o: Pick<PlotOptions, 'metric' | 'kind'>): Array<{ step: number; value: number; resolution?: number }> {
  return records
    .filter((r) => o.kind === 'any' || (o.kind === 'eval' ? r['kind'] === 'eval' : r['kind'] === undefined || r['kind'] === 'status'))
    .flatMap((r) => {
      const v = r[o.metric];
      const step = r['step'];
      if (typeof v !== 'number' || !Number.isFinite(v) || typeof step !== 'number') return [];
      const res = r['eval/resolution'];
      return [{ step, value: v, ...(typeof res === 'number' ? { resolution: res } : {}) }];
    });
}

/** An SVG line chart of `points`. */
export function plotSvg(points: Array<{ step: number; value: number; resolution?: number }>, o: PlotOptions & { runDir: string }): string {
  const W = 720, H = 400, L = 70, R = 20, T = 40, B = 50;
  const xs = points.map((p) => p.step);
  const ys = points.map((p) => p.value);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const lo = Math.min(0, ...ys), hi = Math.max(...ys);
  const y0 = lo, y1 = hi > lo ? hi + 0.05 * (hi - lo) : lo + 1;
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const ticks = (a: number, b: number, n: number) => Array.from({ length: n + 1 }, (_, i) => a + ((b - a) * i) / n);
  const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  // Resolution changes as vertical guides, so growth is visible on the curve.
  const guides = points.filter((p, i) => i > 0 && p.resolution !== undefined && p.resolution !== points[i - 1]?.resolution);
  const title = escapeXml(o.title ?? `${o.metric} — ${o.runDir}`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${title}</text>
${ticks(y0, y1, 5).map((v) => `<line x1="${L}" x2="${W - R}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/><text x="${L - 6}" y="${py(v) + 4}" text-anchor="end">${fmt(v)}</text>`).join('\n')}
${ticks(x0, x1, 6).map((v) => `<text x="${px(v)}" y="${H - B + 18}" text-anchor="middle">${Math.round(v)}</text>`).join('\n')}
${guides.map((p) => `<line x1="${px(p.step)}" x2="${px(p.step)}" y1="${T}" y2="${H - B}" stroke="#e88" stroke-dasharray="4 3"/><text x="${px(p.step) + 3}" y="${T + 12}" fill="#c44">${p.resolution} px</text>`).join('\n')}
<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/><line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>
<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="${points.map((p) => `${px(p.step)},${py(p.value)}`).join(' ')}"/>
${points.map((p) => `<circle cx="${px(p.step)}" cy="${py(p.value)}" r="3" fill="#1f5fbf"/>`).join('\n')}
<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">step</text>
<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">${escapeXml(o.metric)}</text>
</svg>`;
}

/** Draw `metric` of `runDir/stats.jsonl` into the PNG `out`; returns the number of points. */
export async function plotRun(runDir: string, out: string, o: PlotOptions): Promise<number> {
  let text: string;
  try {
    text = readFileSync(join(runDir, 'stats.jsonl'), 'utf8');
  } catch {
    throw new UsageError(`${runDir}: no stats.jsonl (give the run directory of proggan train)`);
  }
  const records = parseStatsJsonl(text);
  const points = plotPoints(records, o);
  if (points.length === 0) {
    const names = [...new Set(records.flatMap((r) => Object.keys(r).filter((k) => k.includes('/'))))].sort();
    throw new UsageError(`${runDir}/stats.jsonl has no ${o.kind === 'any' ? '' : `${o.kind} `}records with ${o.metric}; it has: ${names.join(', ') || 'none'} (choose with --metric, and --kind status for training statistics)`);
  }
  const { default: sharp } = await import('sharp');
  await sharp(Buffer.from(plotSvg(points, { ...o, runDir }))).png().toFile(out);
  return points.length;
}

interface PlotArgs {
  run: string;
  out: string;
  metric: string;
  kind: string;
  title?: string;
}

/** The yargs command module for `proggan plot RUN OUT.png`. */
export const plotCommand: CommandModule<object, PlotArgs> = {
  command: 'plot <run> <out>',
  describe: 'draw one statistic of a run (stats.jsonl) against the step as a PNG chart',
  builder: (y) =>
    (y as Argv)
      .positional('run', { type: 'string', demandOption: true, describe: 'run directory (of proggan train)' })
      .positional('out', { type: 'string', demandOption: true, describe: 'PNG file to write' })
      .option('metric', { type: 'string', default: 'swd/mean', describe: 'statistic to draw, e.g. swd/mean, loss/rec, loss/d' })
      .option('kind', { type: 'string', default: 'eval', choices: ['eval', 'status', 'any'], describe: 'records to read: eval (held-out evaluations), status (training ticks) or any' })
      .option('title', { type: 'string', describe: 'chart title (default: metric and run directory)' })
      .example('$0 plot runs/progan-1 swd.png', 'the held-out SWD curve (train with --eval-every)')
      .example('$0 plot runs/wae-1 rec.png --metric loss/rec --kind status', 'a training loss') as unknown as Argv<PlotArgs>,
  handler: async (argv) => {
    const n = await plotRun(argv.run, argv.out, { metric: argv.metric, kind: argv.kind as PlotOptions['kind'], ...(argv.title !== undefined ? { title: argv.title } : {}) });
    process.stdout.write(`${argv.out}: ${n} points of ${argv.metric}\n`);
  },
};
