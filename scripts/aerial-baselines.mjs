#!/usr/bin/env node
// Trivial corner-completion baselines on held-out windows of real aerial imagery: the bar a
// completion model must beat. Usage (after `npm run build`):
//   node scripts/aerial-baselines.mjs [AERIAL_DIR] [--window 128] [--held 0.3] [--seed 1]
// Splits the scenes by scene (seeded), cuts a grid of window x window tiles from the held-out
// scenes at native resolution, completes the bottom-right (window/2)^2 corner with each baseline and
// prints SWD / L1 / L2 / per-channel mean error / seam / MS-SSIM, for an optical RGB set and a SAR set.
import { join } from 'node:path';
import { listSceneFiles, openScenes, splitScenes } from '../dist/data/index.js';
import { scoreBaselines } from '../dist/metrics/baselines.js';

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const root = args[0] && !args[0].startsWith('--') ? args[0] : '/work/shared/data/aerial';
const window = flag('window', 128);
const heldFraction = flag('held', 0.3);
const seed = flag('seed', 1);

async function files(dirs, keep = () => true) {
  const out = [];
  for (const d of dirs) out.push(...(await listSceneFiles(join(root, d))).files.filter(keep));
  return out;
}

const sets = [
  {
    name: 'optical RGB (UC Merced, OMBRIA S2, NAIP, Landsat, drone)',
    files: await files(['chips/optical_ucmerced', 'chips/optical_ombria_s2', 'chips/optical_misc', 'scenes'], (f) => /optical|naip|pucallpa|pix4d/.test(f)),
    opts: { channels: 3, mapping: { kind: 'fixed', low: [0, 0, 0], high: [255, 255, 255] } },
  },
  {
    name: 'SAR (OMBRIA S1 before/after, 8-bit)',
    files: await files(['chips/sar_ombria_s1'], (f) => !f.endsWith('_mask.png')),
    opts: { channels: 1, mapping: { kind: 'fixed', low: [0], high: [255] } },
  },
];

for (const set of sets) {
  // One group per place: OMBRIA before/after pairs and the two NAIP dates stay on one side.
  const place = (f) => f.replace(/_(before|after)\.png$/, '').replace(/naip_(m_\d+_\w\w)_\d+/, 'naip_$1');
  const { train, held } = splitScenes(set.files, heldFraction, seed, place);
  const scenes = await openScenes(held, { window, ...set.opts });
  const wins = await scenes.gridWindows();
  const n = wins.length;
  const c = scenes.channels;
  const data = new Float32Array(n * window * window * c);
  wins.forEach((w, i) => data.set(w.data, i * window * window * c));
  const t0 = Date.now();
  const scores = scoreBaselines(data, [n, window, window, c], { seed });
  console.log(`\n## ${set.name}`);
  console.log(`scenes: ${train.length} train / ${held.length} held out (seed ${seed}); held-out ${window}x${window} grid windows: ${n} (skipped: ${scenes.counters.skippedInvalid} mostly invalid, ${scenes.counters.skippedConstant} constant; files skipped: ${scenes.skipped.length}); corner ${window / 2}x${window / 2}; scoring ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log('| baseline | SWD x1e3 | L1 | L2 | channel mean err | seam | seam / real | MS-SSIM |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [b, s] of Object.entries(scores)) {
    const f = (v, d = 4) => (v === null ? '-' : v.toFixed(d));
    console.log(`| ${b} | ${f(s.swd, 1)} | ${f(s.l1)} | ${f(s.l2)} | ${s.channelMeanError.map((v) => v.toFixed(3)).join(' / ')} | ${f(s.seam)} | ${f(s.seamRatio, 2)} | ${f(s.msSsim, 3)} |`);
  }
  const real = Object.values(scores)[0];
  console.log(`real windows' seam energy: ${real.seamReal.toFixed(4)}`);
  await scenes.close();
}
