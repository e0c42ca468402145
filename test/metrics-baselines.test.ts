import { describe, expect, it } from 'vitest';
import { baselineCorners, bottomRightCorners, pasteBottomRight, scoreBaselines, scoreCompletion, seamEnergy } from '../src/metrics/baselines.js';
import type { ImageShape } from '../src/metrics/swd.js';

/** N windows of side s, C channels, from f(i, y, x, k). */
function windows(n: number, s: number, c: number, f: (i: number, y: number, x: number, k: number) => number): Float32Array {
  const out = new Float32Array(n * s * s * c);
  for (let i = 0; i < n; i++) for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) for (let k = 0; k < c; k++) out[((i * s + y) * s + x) * c + k] = f(i, y, x, k);
  return out;
}

describe('corner-completion baselines', () => {
  const s = 32;
  const r = 16;
  it('an image symmetric about the vertical midline scores 0 L1 against the mirror-bl baseline, not against flat', () => {
    const shape: ImageShape = [4, s, s, 3];
    const w = windows(4, s, 3, (i, y, x, k) => Math.sin(0.3 * y + i) * 0.5 + 0.1 * k + 0.3 * Math.cos(0.4 * Math.abs(x - (s - 1) / 2)));
    const mirror = scoreCompletion(w, shape, baselineCorners('mirror-bl', w, shape), { swd: false, msSsim: false });
    expect(mirror.l1).toBe(0);
    expect(mirror.l2).toBe(0);
    expect(mirror.channelMeanError).toEqual([0, 0, 0]);
    expect(mirror.seamRatio).toBeCloseTo(1, 10);
    const flat = scoreCompletion(w, shape, baselineCorners('flat', w, shape), { swd: false, msSsim: false });
    expect(flat.l1).toBeGreaterThan(0.05);
  });

  it('mirror-tr reflects the top-right corner; flat is the mean of the three known corners', () => {
    const shape: ImageShape = [1, 4, 4, 1];
    const w = windows(1, 4, 1, (_i, y, x) => y * 4 + x);
    expect(Array.from(baselineCorners('mirror-tr', w, shape))).toEqual([6, 7, 2, 3]);
    expect(Array.from(baselineCorners('mirror-bl', w, shape))).toEqual([9, 8, 13, 12]);
    const mean = (0 + 1 + 4 + 5 + 2 + 3 + 6 + 7 + 8 + 9 + 12 + 13) / 12;
    expect(Array.from(baselineCorners('flat', w, shape))).toEqual(new Array(4).fill(Math.fround(mean)));
    expect(Array.from(bottomRightCorners(w, shape))).toEqual([10, 11, 14, 15]);
  });

  it('seam energy is ~0 for a smooth image and large for a pasted mismatched corner', () => {
    const shape: ImageShape = [2, s, s, 1];
    const smooth = windows(2, s, 1, (i, y, x) => 0.02 * (x + y) - 0.6 + 0.1 * i);
    expect(seamEnergy(smooth, shape)).toBeLessThan(1e-3);
    const pasted = pasteBottomRight(smooth, shape, new Float32Array(2 * r * r).fill(0.9));
    expect(seamEnergy(pasted, shape)).toBeGreaterThan(0.1);
    const score = scoreCompletion(smooth, shape, new Float32Array(2 * r * r).fill(0.9), { swd: false, msSsim: false });
    expect(score.seamRatio).toBeGreaterThan(100);
  });

  it('scores every baseline with SWD and MS-SSIM on the same windows; real-other has the real corners distribution', () => {
    const n = 8;
    const shape: ImageShape = [n, s, s, 1];
    const w = windows(n, s, 1, (i, y, x) => Math.sin(0.5 * x + i) * Math.cos(0.3 * y - i) * 0.8);
    const all = scoreBaselines(w, shape, { seed: 1, swd: { descriptorsPerImage: 16, dirRepeats: 1, dirsPerRepeat: 16, kernel: 'js' } });
    expect(Object.keys(all)).toEqual(['mirror-bl', 'mirror-tr', 'flat', 'real-other']);
    for (const v of Object.values(all)) {
      expect(Number.isFinite(v.swd)).toBe(true);
      expect(v.l1).toBeGreaterThan(0);
    }
    // The real-vs-real floor (the same corners, permuted) is far closer in SWD than a flat fill.
    expect(all['real-other'].swd!).toBeLessThan(all.flat.swd! / 2);
    expect(all.flat.msSsim!).toBeGreaterThan(all['real-other'].msSsim!);
  });
});
