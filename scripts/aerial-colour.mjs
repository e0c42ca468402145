#!/usr/bin/env node
// Colour fidelity of a WAE (the ProGAN's encoder) on held-out windows: per-channel mean error of its
// reconstructions of the four corners, raw and with a mean-matching step (the decoded corner's
// per-channel mean shifted to the input corner's). Usage (after `npm run build`):
//   node scripts/aerial-colour.mjs PROGAN_RUN_DIR
// Errors are in [-1, 1] units; divide by 2 for a fraction of the value range.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../dist/backend/index.js';
import { openHeldOutWindows } from '../dist/data/scene-data.js';
import { loadWae } from '../dist/models/wae/run.js';

const runDir = process.argv[2];
await initBackend({ threads: 1 });
const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
const r = config.progan.maxCornerResolution;
const c = config.data.channels;
const ds = await openHeldOutWindows({ ...config.data }, 2 * r, config.data.evalWindows);
const { wae } = await loadWae(config.encoder?.runDir ?? join(runDir, 'encoder'));
const raw = new Array(c).fill(0);
const matched = new Array(c).fill(0);
let count = 0;
for (let i = 0; i < ds.size; i++) {
  const img = tf.tensor4d(await ds.get(i), [1, 2 * r, 2 * r, c]);
  const corners = [[0, 0], [0, r], [r, 0], [r, r]].map(([y, x]) => tf.slice(img, [0, y, x, 0], [1, r, r, c]));
  const x = tf.concat(corners, 0);
  const y = tf.tidy(() => wae.decode(wae.encode(x)));
  const mx = tf.mean(x, [1, 2]).arraySync();
  const my = tf.mean(y, [1, 2]).arraySync();
  const yShift = tf.tidy(() => tf.add(y, tf.sub(tf.mean(x, [1, 2], true), tf.mean(y, [1, 2], true))));
  const ms = tf.mean(yShift, [1, 2]).arraySync();
  for (let k = 0; k < 4; k++) for (let ch = 0; ch < c; ch++) {
    raw[ch] += Math.abs(my[k][ch] - mx[k][ch]);
    matched[ch] += Math.abs(ms[k][ch] - mx[k][ch]);
  }
  count += 4;
  tf.dispose([img, ...corners, x, y, yShift]);
}
const f = (a) => a.map((v) => (v / count).toFixed(4)).join(' / ');
console.log(`held-out corners: ${count} (${ds.size} windows of ${2 * r}px)`);
console.log(`WAE reconstruction per-channel mean error ([-1,1] units): raw ${f(raw)}; mean-matched ${f(matched)}`);
console.log(`as % of the value range: raw ${raw.map((v) => ((100 * v) / count / 2).toFixed(2)).join(' / ')}`);
wae.dispose();
