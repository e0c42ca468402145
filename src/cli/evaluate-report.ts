/**
 * The report of `proggan evaluate`: the model's scores beside the trivial baselines on the same
 * held-out windows, as a text table (stdout), one stats.jsonl record, and a PNG table (an SVG
 * rendered by sharp, which draws text through librsvg; no plotting library needed).
 */
import sharp from 'sharp';
import type { CompletionScores } from '../metrics/baselines.js';

/** One row of the report. */
export interface ReportRow {
  /** Method: `model`, `mirror-bl`, `mirror-tr`, `flat`, `real-other`. */
  name: string;
  /** Its scores. */
  scores: CompletionScores;
}

const HEADERS = ['method', 'SWD x1e3', 'L1', 'L2', 'channel mean err', 'seam', 'seam / real', 'MS-SSIM'];

function cells(r: ReportRow): string[] {
  const s = r.scores;
  const f = (v: number | null, d: number): string => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(d));
  return [r.name, f(s.swd, 1), f(s.l1, 4), f(s.l2, 4), s.channelMeanError.map((v) => v.toFixed(3)).join(' / '), f(s.seam, 4), f(s.seamRatio, 2), f(s.msSsim, 3)];
}

/** The rows as a Markdown table (also readable as plain text). */
export function reportTable(rows: readonly ReportRow[]): string {
  const lines = [`| ${HEADERS.join(' | ')} |`, `|${HEADERS.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${cells(r).join(' | ')} |`);
  return lines.join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Write the rows as a PNG table with a title line and a footnote line. */
export async function writeReportPng(path: string, title: string, rows: readonly ReportRow[], note: string): Promise<void> {
  const widths = [110, 90, 70, 70, 170, 70, 90, 80];
  const rowH = 24;
  const width = Math.max(widths.reduce((a, b) => a + b, 0) + 20, Math.ceil(note.length * 6.3) + 20);
  const height = rowH * (rows.length + 3) + 20;
  const parts: string[] = [`<rect width="${width}" height="${height}" fill="white"/>`];
  parts.push(`<text x="10" y="22" font-family="sans-serif" font-size="14" font-weight="bold">${escapeXml(title)}</text>`);
  const all = [HEADERS, ...rows.map(cells)];
  all.forEach((row, i) => {
    const y = 30 + rowH * (i + 1);
    if (i > 0 && rows[i - 1]?.name === 'model') parts.push(`<rect x="6" y="${y - 17}" width="${width - 12}" height="${rowH}" fill="#e8f0ff"/>`);
    let x = 10;
    row.forEach((cell, j) => {
      parts.push(`<text x="${x}" y="${y}" font-family="monospace" font-size="12"${i === 0 ? ' font-weight="bold"' : ''}>${escapeXml(cell)}</text>`);
      x += widths[j] as number;
    });
  });
  parts.push(`<text x="10" y="${height - 12}" font-family="sans-serif" font-size="11" fill="#444">${escapeXml(note)}</text>`);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
  await sharp(Buffer.from(svg)).png().toFile(path);
}
