import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalDiscriminator, mirroredContext, ProGanGenerator } from '../src/models/progan/networks.js';

beforeAll(async () => {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
});

const C = 3;
const N = 2;

describe('spatial conditioning', () => {
  let g: ProGanGenerator;
  beforeAll(() => {
    g = new ProGanGenerator({ maxResolution: 16, channels: C, zDim: 4, latentDim: 3, fmapBase: 32, fmapMax: 8, seed: 3, contextChannels: 3 * C });
  });
  afterAll(() => g.dispose());

  const inputs = (r: number, ctxValue: number) => ({
    noise: tf.randomNormal([N, 4], 0, 1, 'float32', 1) as tf.Tensor2D,
    conditions: [0, 1, 2].map((k) => tf.randomNormal([N, 3], 0, 1, 'float32', 10 + k) as tf.Tensor2D),
    context: tf.fill([N, r, r, 3 * C], ctxValue) as tf.Tensor4D,
  });

  it('mirrors the neighbours onto the corner: row 0 is the row above it, column 0 the column left of it', () => {
    const r = 4;
    const ramp = (f: (y: number, x: number) => number) => tf.tensor4d(Array.from({ length: r * r }, (_, p) => f(Math.floor(p / r), p % r)), [1, r, r, 1]);
    const tr = ramp((y) => y); // the top-right corner's bottom row (y = 3) touches the missing corner
    const bl = ramp((_, x) => x); // the bottom-left corner's right column (x = 3) touches it
    const tl = ramp((y, x) => 10 * y + x);
    const ctx = mirroredContext(tl, tr, bl);
    expect(ctx.shape).toEqual([1, r, r, 3]);
    const v = ctx.arraySync()[0] as number[][][];
    expect(v[0]?.[2]?.[0]).toBe(3); // tr flipped vertically: row 0 = tr's last row
    expect(v[2]?.[0]?.[1]).toBe(3); // bl flipped horizontally: column 0 = bl's last column
    expect(v[0]?.[0]?.[2]).toBe(33); // tl flipped both ways: (0, 0) = tl's bottom-right pixel
    tf.dispose([tl, tr, bl, ctx]);
  });

  it('gives [N, r, r, C] corners at every resolution and alpha, and the context changes them', () => {
    for (const r of [4, 8, 16]) {
      for (const alpha of [0, 0.5, 1]) {
        const a = inputs(r, 0);
        const b = inputs(r, 0.9);
        const outA = g.apply(a, { resolution: r, alpha });
        const outB = g.apply(b, { resolution: r, alpha });
        expect(outA.shape).toEqual([N, r, r, C]);
        const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(outA, outB))).dataSync()[0] as number);
        expect(diff).toBeGreaterThan(1e-4);
        tf.dispose([outA, outB, a.noise, ...a.conditions, a.context, b.noise, ...b.conditions, b.context]);
      }
    }
    const f = inputs(8, 0);
    const feats = g.features(f, 8);
    expect(feats.shape).toEqual([N, 8, 8, g.channelsAt(8)]);
    tf.dispose([feats, f.noise, ...f.conditions, f.context]);
  });

  it('refuses a missing or misshapen context', () => {
    const a = inputs(8, 0);
    expect(() => g.apply({ noise: a.noise, conditions: a.conditions }, { resolution: 8 })).toThrow(/spatially conditioned/);
    expect(() => g.apply(a, { resolution: 16 })).toThrow(/forward resolution 16/);
    tf.dispose([a.noise, ...a.conditions, a.context]);
  });

  it('the local critic reads the corner beside its context (4C channels) at every resolution and alpha', () => {
    const d = createLocalDiscriminator({ maxCornerResolution: 16, channels: 4 * C, fmapBase: 32, fmapMax: 8, mbstdGroupSize: 2, seed: 4 });
    for (const r of [4, 8, 16]) {
      for (const alpha of [0, 0.5, 1]) {
        const x = tf.randomNormal([N, r, r, 4 * C], 0, 1, 'float32', r) as tf.Tensor4D;
        const s = d.apply(x, { alpha });
        expect(s.shape).toEqual([N, 1]);
        tf.dispose([x, s]);
      }
    }
    d.dispose();
  });
});
