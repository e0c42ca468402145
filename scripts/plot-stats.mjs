#!/usr/bin/env node
// Draw one metric of a run's stats.jsonl against the step as a PNG line chart (SVG rendered by sharp).
//
//   node scripts/plot-stats.mjs RUN_DIR OUT.png [--metric swd/mean] [--kind eval] [--title "..."]
//
// Records whose `kind` differs from --kind are skipped (status ticks have kind undefined in the file).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import sharp from 'sharp';

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: { metric: { type: 'string', default: 'swd/mean' }, kind: { type: 'string', default: 'eval' }, title: { type: 'string' } },
});
const [runDir, out] = positionals;
if (!runDir || !out) {
  console.error('usage: node scripts/plot-stats.mjs RUN_DIR OUT.png [--metric swd/mean] [--kind eval] [--title TEXT]');
  process.exit(2);
}
const rows = readFileSync(`${runDir}/stats.jsonl`, 'utf8').split('\n').filter(Boolean).flatMap((l) => {
  try { return [JSON.parse(l)]; } catch { return []; }
}).filter((r) => (o.kind === 'any' || r.kind === o.kind) && Number.isFinite(r[o.metric]));
if (rows.length === 0) {
  console.error(`${runDir}/stats.jsonl has no ${o.kind} records with ${o.metric}`);
  process.exit(1);
}
const W = 720, H = 400, L = 70, R = 20, T = 40, B = 50;
const xs = rows.map((r) => r.step), ys = rows.map((r) => r[o.metric]);
const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y1 = Math.max(...ys) * 1.05, y0 = 0;
const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
const py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
const ticks = (a, b, n) => Array.from({ length: n + 1 }, (_, i) => a + ((b - a) * i) / n);
const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
// Resolution changes (eval/resolution) as vertical guides, so growth is visible on the curve.
const guides = rows.filter((r, i) => i > 0 && r['eval/resolution'] !== rows[i - 1]['eval/resolution']);
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${o.title ?? `${o.metric} — ${runDir}`}</text>
${ticks(y0, y1, 5).map((v) => `<line x1="${L}" x2="${W - R}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/><text x="${L - 6}" y="${py(v) + 4}" text-anchor="end">${fmt(v)}</text>`).join('\n')}
${ticks(x0, x1, 6).map((v) => `<text x="${px(v)}" y="${H - B + 18}" text-anchor="middle">${Math.round(v)}</text>`).join('\n')}
${guides.map((r) => `<line x1="${px(r.step)}" x2="${px(r.step)}" y1="${T}" y2="${H - B}" stroke="#e88" stroke-dasharray="4 3"/><text x="${px(r.step) + 3}" y="${T + 12}" fill="#c44">${r['eval/resolution']} px</text>`).join('\n')}
<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/><line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>
<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="${rows.map((r) => `${px(r.step)},${py(r[o.metric])}`).join(' ')}"/>
${rows.map((r) => `<circle cx="${px(r.step)}" cy="${py(r[o.metric])}" r="3" fill="#1f5fbf"/>`).join('\n')}
<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">step</text>
<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">${o.metric}</text>
</svg>`;
await sharp(Buffer.from(svg)).png().toFile(out);
console.log(`${out}: ${rows.length} points of ${o.metric}, steps ${x0}-${x1}`);
