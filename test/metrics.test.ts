import { describe, expect, it } from 'vitest';
import {
  collapseLaplacianPyramid,
  laplacianPyramid,
  meanPairwiseMsSsim,
  msSsim,
  msSsimScales,
  slicedWasserstein,
  slicedWassersteinDistance,
  ssim,
  swdResolutions,
  wasserstein1Sorted,
  wasmSwdKernelAvailable,
  type ImageShape,
} from '../src/metrics/index.js';
import { Rng } from '../src/util/random.js';

// ---- fixtures: smooth random images in [-1, 1] (a few random plane waves per channel) ----

function smoothImages(shape: ImageShape, seed: number): Float32Array {
  const [n, h, w, c] = shape;
  const rng = new Rng(seed);
  const out = new Float32Array(n * h * w * c);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      const waves = Array.from({ length: 3 }, () => ({
        fy: (rng.next() * 6 + 1) / h,
        fx: (rng.next() * 6 + 1) / w,
        phase: rng.next() * 2 * Math.PI,
        amp: 0.2 + 0.1 * rng.next(),
      }));
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          let v = 0;
          for (const wv of waves) v += wv.amp * Math.sin(2 * Math.PI * (wv.fy * y + wv.fx * x) + wv.phase);
          out[((i * h + y) * w + x) * c + ch] = v;
        }
      }
    }
  }
  return out;
}

function addNoise(x: Float32Array, sigma: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return x.map((v) => v + sigma * rng.normal());
}

function constant(shape: ImageShape, value: number): Float32Array {
  return new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value);
}

// ---- sliced Wasserstein distance ----

describe('swd building blocks', () => {
  it('lists pyramid levels down to minResolution, at least one', () => {
    expect(swdResolutions(64, 64)).toEqual([[64, 64], [32, 32], [16, 16]]);
    expect(swdResolutions(128, 128)).toEqual([[128, 128], [64, 64], [32, 32], [16, 16]]);
    expect(swdResolutions(16, 16)).toEqual([[16, 16]]);
    expect(swdResolutions(8, 8)).toEqual([[8, 8]]);
    expect(swdResolutions(64, 32)).toEqual([[64, 32], [32, 16]]);
    expect(swdResolutions(48, 48, 8)).toEqual([[48, 48], [24, 24], [12, 12]]);
  });

  it('builds a Laplacian pyramid that collapses back to the images', () => {
    const shape: ImageShape = [2, 32, 32, 3];
    const x = smoothImages(shape, 1);
    const pyr = laplacianPyramid(x, shape, 8);
    expect(pyr.map((l) => [l.h, l.w, l.data.length])).toEqual([
      [32, 32, 2 * 32 * 32 * 3],
      [16, 16, 2 * 16 * 16 * 3],
      [8, 8, 2 * 8 * 8 * 3],
    ]);
    const back = collapseLaplacianPyramid(pyr, 2, 3);
    let maxErr = 0;
    for (let i = 0; i < x.length; i++) maxErr = Math.max(maxErr, Math.abs(back[i]! - x[i]!));
    expect(maxErr).toBeLessThan(1e-5);
  });

  it('blurs and decimates with the binomial filter and mirror boundaries', () => {
    // A unit impulse in the corner of a 4x4 image: residual = 2x2 decimated blur; taps (1 4 6 4 1)/16.
    const shape: ImageShape = [1, 4, 4, 1];
    const x = new Float32Array(16);
    x[0] = 1;
    const pyr = laplacianPyramid(x, shape, 2);
    expect(pyr.map((l) => l.h)).toEqual([4, 2]);
    const residual = Array.from(pyr[1]!.data);
    const expected = [36 / 256, 6 / 256, 6 / 256, 1 / 256];
    for (let i = 0; i < 4; i++) expect(residual[i]).toBeCloseTo(expected[i]!, 7);
  });

  it('gives zero band-pass levels and a constant residual for a constant image', () => {
    const shape: ImageShape = [1, 16, 16, 1];
    const pyr = laplacianPyramid(constant(shape, 0.3), shape, 4);
    expect(pyr).toHaveLength(3);
    for (const v of pyr[0]!.data) expect(Math.abs(v)).toBeLessThan(1e-7);
    for (const v of pyr[1]!.data) expect(Math.abs(v)).toBeLessThan(1e-7);
    for (const v of pyr[2]!.data) expect(v).toBeCloseTo(0.3, 6);
  });

  it('computes 1-D Wasserstein-1 between sorted samples, equal and unequal sizes', () => {
    expect(wasserstein1Sorted([0, 1, 2], [1, 2, 3])).toBeCloseTo(1, 12);
    expect(wasserstein1Sorted([0], [0, 1])).toBeCloseTo(0.5, 12);
    expect(wasserstein1Sorted([0, 2], [1])).toBeCloseTo(1, 12);
    // Quantiles: a = 0 on [0, 1/2), 4 on [1/2, 1); b = 1 on [0, 1/3), 2 on [1/3, 2/3), 3 on [2/3, 1).
    expect(wasserstein1Sorted([0, 4], [1, 2, 3])).toBeCloseTo(1 / 3 + (1 / 6) * 2 + (1 / 6) * 2 + (1 / 3) * 1, 12);
  });

  it('gives the same distances with the WebAssembly SIMD and the plain-JS projection kernels', () => {
    expect(wasmSwdKernelAvailable()).toBe(true);
    const rng = new Rng(5);
    const dim = 3 * 49;
    const a = rng.normalArray(301 * dim);
    const b = rng.normalArray(301 * dim).map((v) => 1.2 * v + 0.1);
    const opts = { dirRepeats: 2, dirsPerRepeat: 20 };
    const js = slicedWasserstein(a, b, dim, { ...opts, rng: new Rng(1), kernel: 'js' });
    const wasm = slicedWasserstein(a, b, dim, { ...opts, rng: new Rng(1), kernel: 'wasm' });
    expect(js).toBeGreaterThan(0.05);
    expect(Math.abs(wasm - js) / js).toBeLessThan(1e-4);
    // Unequal set sizes, dim not a multiple of 4, directions not a multiple of 8.
    const c = rng.normalArray(57 * 5);
    const d = rng.normalArray(31 * 5);
    const js2 = slicedWasserstein(c, d, 5, { dirRepeats: 1, dirsPerRepeat: 13, rng: new Rng(2), kernel: 'js' });
    const wasm2 = slicedWasserstein(c, d, 5, { dirRepeats: 1, dirsPerRepeat: 13, rng: new Rng(2) });
    expect(Math.abs(wasm2 - js2) / js2).toBeLessThan(1e-4);
  });

  it('reduces to W1 for one-dimensional descriptors (every direction is +-1)', () => {
    const a = Float32Array.from([2, 0, 1]);
    const b = Float32Array.from([3, 1, 2]);
    expect(slicedWasserstein(a, b, 1, { dirRepeats: 2, dirsPerRepeat: 5 })).toBeCloseTo(1, 6);
    // Sorting goes through the float bit patterns: check negatives, zeros and mixed magnitudes.
    const c = Float32Array.from([-3.5, 0, 1e-3, -1e-3, 250, -0]);
    const d = Float32Array.from([-2.5, 1, 1.001, 0.999, 251, 1]);
    expect(slicedWasserstein(c, d, 1, { dirRepeats: 1, dirsPerRepeat: 3 })).toBeCloseTo(1, 4);
  });
});

describe('slicedWassersteinDistance', () => {
  const shape: ImageShape = [16, 64, 64, 3];
  const base = smoothImages(shape, 11);
  const fast = { descriptorsPerImage: 64, dirsPerRepeat: 64 };

  it('reports levels 64, 32, 16 for 64x64 images and exactly 0 for identical sets', () => {
    const r = slicedWassersteinDistance(base, Float32Array.from(base), shape, fast);
    expect(r.perLevel.map((l) => l.resolution)).toEqual([64, 32, 16]);
    for (const l of r.perLevel) expect(l.swd).toBe(0);
    expect(r.mean).toBe(0);
  });

  it('grows monotonically with added noise, per level and on average, and stays non-negative', () => {
    const values = [0.02, 0.1, 0.4].map((sigma) => slicedWassersteinDistance(base, addNoise(base, sigma, 5), shape, fast));
    for (let k = 1; k < values.length; k++) {
      expect(values[k]!.mean).toBeGreaterThan(values[k - 1]!.mean);
      for (let l = 0; l < 3; l++) expect(values[k]!.perLevel[l]!.swd).toBeGreaterThan(values[k - 1]!.perLevel[l]!.swd);
    }
    for (const v of values) for (const l of v.perLevel) expect(l.swd).toBeGreaterThanOrEqual(0);
  });

  it('is symmetric, deterministic per seed, and seed-dependent', () => {
    const other = smoothImages(shape, 12);
    const ab = slicedWassersteinDistance(base, other, shape, { ...fast, seed: 3 });
    const ba = slicedWassersteinDistance(other, base, shape, { ...fast, seed: 3 });
    const again = slicedWassersteinDistance(base, other, shape, { ...fast, seed: 3 });
    const seed4 = slicedWassersteinDistance(base, other, shape, { ...fast, seed: 4 });
    expect(again).toEqual(ab);
    // Same patch positions and directions for both orders: |a - b| makes it exactly symmetric.
    for (let l = 0; l < 3; l++) expect(ba.perLevel[l]!.swd).toBeCloseTo(ab.perLevel[l]!.swd, 9);
    expect(seed4.mean).not.toBe(ab.mean);
    expect(Math.abs(seed4.mean - ab.mean) / ab.mean).toBeLessThan(0.5);
  });

  it('separates a different distribution from a second sample of the same one', () => {
    const sameDist = smoothImages(shape, 99);
    const noiseDist = new Rng(7).normalArray(base.length).map((v) => 0.3 * v);
    const close = slicedWassersteinDistance(base, sameDist, shape, fast).mean;
    const far = slicedWassersteinDistance(base, noiseDist, shape, fast).mean;
    expect(far).toBeGreaterThan(1.4 * close);
  });

  it('accepts sets of different sizes', () => {
    const shapeB: ImageShape = [24, 64, 64, 3];
    const b = smoothImages(shapeB, 21);
    const r = slicedWassersteinDistance(base, b, shape, fast, shapeB);
    expect(r.perLevel).toHaveLength(3);
    expect(Number.isFinite(r.mean)).toBe(true);
    expect(r.mean).toBeGreaterThan(0);
    expect(() => slicedWassersteinDistance(base, b, shape, fast)).toThrow(/values do not fill/);
  });

  it('handles small images with one level and clipped patches', () => {
    const s8: ImageShape = [8, 8, 8, 1];
    const x8 = smoothImages(s8, 2);
    const r8 = slicedWassersteinDistance(x8, addNoise(x8, 0.3, 1), s8, fast);
    expect(r8.perLevel.map((l) => l.resolution)).toEqual([8]);
    expect(r8.mean).toBeGreaterThan(0);
    const s4: ImageShape = [8, 4, 4, 3];
    const x4 = smoothImages(s4, 3);
    const r4 = slicedWassersteinDistance(x4, x4, s4, fast);
    expect(r4.perLevel).toEqual([{ resolution: 4, width: 4, swd: 0 }]);
  });

  it('prints the time of 128 vs 128 images of 64x64x3 with default options', () => {
    const s: ImageShape = [128, 64, 64, 3];
    const a = smoothImages(s, 31);
    const b = addNoise(smoothImages(s, 32), 0.05, 33);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const r = slicedWassersteinDistance(a, b, s);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `SWD 128 vs 128 64x64x3 (defaults): ${ms.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU; per level ${r.perLevel
        .map((l) => `${l.resolution}: ${l.swd.toFixed(2)}`)
        .join(', ')}; mean ${r.mean.toFixed(2)}`,
    );
    expect(r.perLevel).toHaveLength(3);
  });
});

// ---- SSIM / MS-SSIM ----

describe('ssim and msSsim', () => {
  it('matches the hand formula on constant images (sigma = 0, so only luminance counts)', () => {
    const shape: ImageShape = [1, 16, 16, 1];
    const a = constant(shape, 0); // 127.5 in [0, 255]
    const b = constant(shape, 0.5); // 191.25
    const c1 = (0.01 * 255) ** 2;
    const lum = (2 * 127.5 * 191.25 + c1) / (127.5 ** 2 + 191.25 ** 2 + c1);
    expect(ssim(a, b, shape)[0]).toBeCloseTo(lum, 6);
    expect(ssim(a, a, shape)[0]).toBeCloseTo(1, 6);
    // 64x64: three scales, cs = 1 at the first two, luminance at the last with its renormalised weight.
    const s64: ImageShape = [1, 64, 64, 1];
    const exponent = 0.3001 / (0.0448 + 0.2856 + 0.3001);
    expect(msSsim(constant(s64, 0), constant(s64, 0.5), s64)[0]).toBeCloseTo(lum ** exponent, 5);
  });

  it('matches the hand formula on a 2x2 window', () => {
    // One 2x2 window, equal Gaussian weights 1/4: x = [-1, 1, -1, 1] -> [0, 255, 0, 255], y = -x.
    const shape: ImageShape = [1, 2, 2, 1];
    const x = Float32Array.from([-1, 1, -1, 1]);
    const y = Float32Array.from([1, -1, 1, -1]);
    const c1 = (0.01 * 255) ** 2;
    const c2 = (0.03 * 255) ** 2;
    const mu = 127.5;
    const v = 127.5 ** 2;
    const expected = ((2 * mu * mu + c1) / (2 * mu * mu + c1)) * ((2 * -v + c2) / (2 * v + c2));
    expect(ssim(x, y, shape, { windowSize: 2 })[0]).toBeCloseTo(expected, 6);
  });

  it('chooses scales by size', () => {
    expect(msSsimScales(256, 256)).toBe(5);
    expect(msSsimScales(176, 176)).toBe(5);
    expect(msSsimScales(175, 175)).toBe(4);
    expect(msSsimScales(128, 128)).toBe(4);
    expect(msSsimScales(64, 64)).toBe(3);
    expect(msSsimScales(22, 40)).toBe(2);
    expect(msSsimScales(16, 16)).toBe(1);
    expect(msSsimScales(8, 8)).toBe(1);
  });

  it('is 1 for identical images and drops with noise, within (0, 1]', () => {
    const shape: ImageShape = [2, 64, 64, 3];
    const x = smoothImages(shape, 4);
    const same = msSsim(x, x, shape);
    for (const v of same) expect(v).toBeCloseTo(1, 6);
    let prev = [1, 1];
    for (const sigma of [0.05, 0.2, 0.6]) {
      const v = msSsim(x, addNoise(x, sigma, 8), shape);
      for (let i = 0; i < 2; i++) {
        expect(v[i]).toBeGreaterThan(0);
        expect(v[i]).toBeLessThan(prev[i]!);
      }
      prev = Array.from(v);
    }
  });

  it('reduces to single-scale SSIM on images too small for a second scale', () => {
    const shape: ImageShape = [3, 8, 8, 1];
    const x = smoothImages(shape, 6);
    const y = addNoise(x, 0.2, 9);
    const s = ssim(x, y, shape);
    const m = msSsim(x, y, shape);
    for (let i = 0; i < 3; i++) expect(m[i]).toBeCloseTo(Math.max(0, s[i]!), 6);
    // Two scales (22x22 -> 11x11).
    const s22: ImageShape = [2, 22, 22, 3];
    const x22 = smoothImages(s22, 7);
    const m22 = msSsim(x22, addNoise(x22, 0.1, 3), s22);
    for (const v of m22) {
      expect(v).toBeGreaterThan(0);
      expect(v).toBeLessThan(1);
    }
  });

  it('measures diversity: mean pairwise MS-SSIM, seeded', () => {
    const shape: ImageShape = [12, 32, 32, 3];
    const diverse = smoothImages(shape, 40);
    const one = smoothImages([1, 32, 32, 3], 41);
    const collapsed = new Float32Array(diverse.length);
    for (let i = 0; i < 12; i++) collapsed.set(one, i * one.length);
    const nearlyCollapsed = addNoise(collapsed, 0.05, 42);
    const dDiverse = meanPairwiseMsSsim(diverse, shape, { pairs: 40, seed: 1 });
    const dNear = meanPairwiseMsSsim(nearlyCollapsed, shape, { pairs: 40, seed: 1 });
    expect(meanPairwiseMsSsim(collapsed, shape, { pairs: 10 })).toBeCloseTo(1, 6);
    expect(dNear).toBeGreaterThan(dDiverse);
    expect(dDiverse).toBeGreaterThanOrEqual(0);
    expect(meanPairwiseMsSsim(diverse, shape, { pairs: 40, seed: 1 })).toBe(dDiverse);
    expect(() => meanPairwiseMsSsim(one, [1, 32, 32, 3])).toThrow(/at least 2/);
  });
});
