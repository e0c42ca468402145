/**
 * A small line-chart renderer for validation plots (e.g. GAN vs MC shower shapes): builds an SVG and
 * rasterises it with sharp (already a dependency), so no canvas or browser is needed.
 */
import { writeFile } from 'node:fs/promises';
import sharp from 'sharp';

/** One curve. */
export interface LineSeries {
  label: string;
  x: number[];
  y: number[];
  /** CSS colour. Default from a fixed palette. */
  color?: string;
}

/** A chart. */
export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  /** Log10 y axis (non-positive values are dropped). Default false. */
  logY?: boolean;
  /** Pixel size. Default 480 x 320. */
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The chart as an SVG document. */
export function lineChartSvg(c: LineChart): string {
  const w = c.width ?? 480;
  const h = c.height ?? 320;
  const m = { l: 60, r: 15, t: 30, b: 45 };
  const ty = (v: number): number => (c.logY ? Math.log10(v) : v);
  const pts = c.series.map((s) => s.x.map((x, i) => [x, s.y[i] ?? Number.NaN] as [number, number]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!c.logY || y > 0)));
  const all = pts.flat();
  if (all.length === 0) throw new Error(`lineChartSvg("${c.title}"): no finite points to plot`);
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => ty(p[1]))), Math.max(...all.map((p) => ty(p[1])))];
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= 1; y1 += 1; }
  const px = (x: number): number => m.l + ((x - x0) / (x1 - x0)) * (w - m.l - m.r);
  const py = (y: number): number => h - m.b - ((ty(y) - y0) / (y1 - y0)) * (h - m.t - m.b);
  const fmt = (v: number): string => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(3))));
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="11">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${w / 2}" y="18" text-anchor="middle" font-size="13">${esc(c.title)}</text>`,
    `<rect x="${m.l}" y="${m.t}" width="${w - m.l - m.r}" height="${h - m.t - m.b}" fill="none" stroke="#444"/>`,
    ...ticks.map((t) => { const x = x0 + t * (x1 - x0); return `<text x="${px(x)}" y="${h - m.b + 14}" text-anchor="middle">${fmt(x)}</text>`; }),
    ...ticks.map((t) => { const y = y0 + t * (y1 - y0); const yy = h - m.b - t * (h - m.t - m.b); return `<text x="${m.l - 4}" y="${yy + 4}" text-anchor="end">${c.logY ? `1e${y.toFixed(1)}` : fmt(y)}</text>`; }),
    `<text x="${w / 2}" y="${h - 8}" text-anchor="middle">${esc(c.xLabel)}</text>`,
    `<text transform="translate(14 ${h / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`,
  ];
  pts.forEach((p, i) => {
    const s = c.series[i];
    const col = s?.color ?? PALETTE[i % PALETTE.length] ?? '#000';
    parts.push(`<polyline fill="none" stroke="${col}" stroke-width="1.8" points="${p.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    parts.push(`<line x1="${w - m.r - 110}" x2="${w - m.r - 90}" y1="${m.t + 14 + 14 * i}" y2="${m.t + 14 + 14 * i}" stroke="${col}" stroke-width="2"/>`);
    parts.push(`<text x="${w - m.r - 85}" y="${m.t + 18 + 14 * i}">${esc(s?.label ?? '')}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Render a chart to PNG bytes. */
export async function lineChartPng(c: LineChart): Promise<Buffer> {
  return sharp(Buffer.from(lineChartSvg(c))).png().toBuffer();
}

/** Render a chart to a PNG file. */
export async function writeLineChart(path: string, c: LineChart): Promise<void> {
  await writeFile(path, await lineChartPng(c));
}
