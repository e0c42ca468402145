import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  completeImage,
  completeImages,
  completerFromModels,
  extendImage,
  planExtension,
  type CornerCompleter,
} from '../src/completion/index.js';
import { flipH, flipV, type Corner } from '../src/data/corners.js';
import { defaultWaeArgs } from '../src/models/wae/networks.js';
import { ProGanGenerator } from '../src/models/progan/networks.js';
import { WaeObjective } from '../src/models/wae/objective.js';
import { Rng } from '../src/util/random.js';

beforeAll(async () => {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
});

const ALL: Corner[] = ['tl', 'tr', 'bl', 'br'];

/** A random HWC image in [-1, 1]. */
function randomImage(seed: string, h: number, w: number, c: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(h * w * c);
  for (let i = 0; i < out.length; i++) out[i] = rng.next() * 2 - 1;
  return out;
}

/** Pixel (y, x) of an HWC image as an array of channel values. */
function px(img: Float32Array, w: number, c: number, y: number, x: number): number[] {
  return Array.from(img.subarray((y * w + x) * c, (y * w + x + 1) * c));
}

/** The R x R tile at (y0, x0) of an HWC image of width w. */
function tileAt(img: Float32Array, w: number, c: number, r: number, y0: number, x0: number): Float32Array {
  const out = new Float32Array(r * r * c);
  for (let y = 0; y < r; y++) out.set(img.subarray(((y0 + y) * w + x0) * c, ((y0 + y) * w + x0 + r) * c), y * r * c);
  return out;
}

function origin(corner: Corner, r: number): [number, number] {
  return [corner[0] === 'b' ? r : 0, corner[1] === 'r' ? r : 0];
}

/** Whether every pixel outside corner `missing` is bitwise equal (Object.is also tells -0 from 0). */
function knownPixelsBitwiseEqual(a: Float32Array, b: Float32Array, size: number, c: number, missing: Corner): boolean {
  const r = size / 2;
  const [my, mx] = origin(missing, r);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (y >= my && y < my + r && x >= mx && x < mx + r) continue;
      for (let k = 0; k < c; k++) if (ua[(y * size + x) * c + k] !== ub[(y * size + x) * c + k]) return false;
    }
  }
  return true;
}

/**
 * A completer that records its inputs and returns a position-coded tile: pixel (y, x) holds
 * 10 + y * R + x in every channel (or a copy of one input, for the extension tests).
 */
class RecordingCompleter implements CornerCompleter {
  readonly calls: Array<{ tl: Float32Array; tr: Float32Array; bl: Float32Array; seed: number }> = [];
  constructor(
    readonly cornerResolution: number,
    readonly channels: 1 | 3,
    private readonly mode: 'coded' | 'copy-bl' = 'coded',
  ) {}

  completeBottomRight(tl: tf.Tensor4D, tr: tf.Tensor4D, bl: tf.Tensor4D, seed: number): tf.Tensor4D {
    this.calls.push({ tl: tl.dataSync() as Float32Array, tr: tr.dataSync() as Float32Array, bl: bl.dataSync() as Float32Array, seed });
    if (this.mode === 'copy-bl') return bl.clone();
    const r = this.cornerResolution;
    const coded = new Float32Array(tl.size);
    for (let i = 0; i < coded.length; i++) coded[i] = 10 + Math.floor((i % (r * r * this.channels)) / this.channels);
    return tf.tensor4d(coded, tl.shape);
  }
}

describe('completeImage: the flip mapping (recording completer)', () => {
  const r = 4;
  const size = 2 * r;
  const c = 3;
  const img = randomImage('flip-map', size, size, c);

  // Worked out by hand: mirror the image so that the missing corner lands at the bottom-right.
  //   missing tl: both flips -> the generator's tl, tr, bl are the original br, bl, tr (rotated 180 degrees)
  //   missing tr: top-bottom -> original bl, br, tl (each mirrored top-bottom)
  //   missing bl: left-right -> original tr, tl, br (each mirrored left-right)
  //   missing br: none       -> original tl, tr, bl
  const table: Record<Corner, { tl: Corner; tr: Corner; bl: Corner; h: boolean; v: boolean }> = {
    tl: { tl: 'br', tr: 'bl', bl: 'tr', h: true, v: true },
    tr: { tl: 'bl', tr: 'br', bl: 'tl', h: false, v: true },
    bl: { tl: 'tr', tr: 'tl', bl: 'br', h: true, v: false },
    br: { tl: 'tl', tr: 'tr', bl: 'bl', h: false, v: false },
  };
  const flipped = (tile: Float32Array, h: boolean, v: boolean): Float32Array => {
    let t = h ? flipH(tile, r, r, c) : tile;
    if (v) t = flipV(t, r, r, c);
    return t;
  };

  for (const missing of ALL) {
    it(`missing ${missing}: gets the right (mirrored) corners and puts the generated corner back`, () => {
      const completer = new RecordingCompleter(r, c);
      const out = completeImage(img, missing, completer, 7);
      expect(completer.calls).toHaveLength(1);
      const call = completer.calls[0];
      if (!call) throw new Error('no call');
      expect(call.seed).toBe(7);
      const row = table[missing];
      for (const slot of ['tl', 'tr', 'bl'] as const) {
        const [oy, ox] = origin(row[slot], r);
        expect(Array.from(call[slot])).toEqual(Array.from(flipped(tileAt(img, size, c, r, oy, ox), row.h, row.v)));
      }
      // The generated corner's pixel (0, 0) touches the image centre, so after mirroring back the
      // missing corner's pixel next to the centre holds code 10, and the outermost one 10 + R*R - 1.
      const [my, mx] = origin(missing, r);
      const inner: [number, number] = [my === 0 ? r - 1 : r, mx === 0 ? r - 1 : r];
      const outer: [number, number] = [my === 0 ? 0 : size - 1, mx === 0 ? 0 : size - 1];
      expect(px(out, size, c, ...inner)).toEqual([10, 10, 10]);
      expect(px(out, size, c, ...outer)).toEqual([10 + r * r - 1, 10 + r * r - 1, 10 + r * r - 1]);
      // Moving one pixel away from the centre along x increases the code by 1.
      const stepX = mx === 0 ? -1 : 1;
      expect(px(out, size, c, inner[0], inner[1] + stepX)).toEqual([11, 11, 11]);
      expect(knownPixelsBitwiseEqual(img, out, size, c, missing)).toBe(true);
    });
  }

  it('completes a batch in one call and rejects wrong sizes and corners', () => {
    const completer = new RecordingCompleter(r, c);
    const imgs = [img, randomImage('second', size, size, c)];
    const outs = completeImages(imgs, 'tr', completer, 1);
    expect(completer.calls).toHaveLength(1);
    expect(outs).toHaveLength(2);
    expect(knownPixelsBitwiseEqual(imgs[1] as Float32Array, outs[1] as Float32Array, size, c, 'tr')).toBe(true);
    expect(() => completeImage(new Float32Array(10), 'br', completer, 0)).toThrow(/8x8x3/);
    expect(() => completeImage(img, 'xx' as Corner, completer, 0)).toThrow(/tl, tr, bl, br/);
  });
});

describe('completeImage with a real (untrained) tiny ProGAN generator and WAE encoder', () => {
  const r = 8;
  const size = 2 * r;
  let generator: ProGanGenerator;
  let wae: WaeObjective;
  let completer: CornerCompleter;
  const c = 3;

  beforeAll(() => {
    generator = new ProGanGenerator({ maxResolution: r, channels: c, zDim: 8, latentDim: 8, fmapBase: 32, fmapMax: 8, seed: 11 });
    wae = new WaeObjective({
      model: defaultWaeArgs({ resolution: r, channels: c, latentSize: 8, filters: [4] }),
      kernel: 'imq',
      lambda: 1,
      optim: { lr: 1e-3, beta1: 0.5, beta2: 0.99, epsilon: 1e-8 },
      seed: 3,
    });
    completer = completerFromModels(generator, wae, { zDim: 8, resolution: r });
  });

  afterAll(() => {
    generator.dispose();
    wae.dispose();
  });

  it('keeps the known pixels bitwise and replaces the missing corner, for each corner', () => {
    const before = tf.memory().numTensors;
    const img = randomImage('real', size, size, c);
    for (const missing of ALL) {
      // Put a value outside the data range into the missing corner: it must be gone afterwards.
      const holed = img.slice();
      const [my, mx] = origin(missing, r);
      for (let y = my; y < my + r; y++) holed.fill(5, (y * size + mx) * c, (y * size + mx + r) * c);
      const out = completeImage(holed, missing, completer, 42);
      expect(out).toHaveLength(holed.length);
      expect(knownPixelsBitwiseEqual(holed, out, size, c, missing)).toBe(true);
      const gen = tileAt(out, size, c, r, my, mx);
      expect(gen.every((v) => Number.isFinite(v) && v >= -1 && v <= 1)).toBe(true);
      expect(new Set(gen).size).toBeGreaterThan(1);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is deterministic for a seed and varies with it', () => {
    const img = randomImage('det', size, size, c);
    const a = completeImage(img, 'br', completer, 1);
    const b = completeImage(img, 'br', completer, 1);
    const d = completeImage(img, 'br', completer, 2);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(d));
  });

  it('validates the models and options against each other', () => {
    expect(() => completerFromModels(generator, wae, { zDim: 9 })).toThrow(/zDim 9/);
    expect(() => completerFromModels(generator, wae, { resolution: 16 })).toThrow(/resolution/);
    const grey = new ProGanGenerator({ maxResolution: r, channels: 1, zDim: 8, latentDim: 8, fmapBase: 32, fmapMax: 8, seed: 1 });
    try {
      expect(() => completerFromModels(grey, wae)).toThrow(/channels/);
    } finally {
      grey.dispose();
    }
  });

  it('resamples corners to the encoder side when the generator runs at another resolution', () => {
    const big = new ProGanGenerator({ maxResolution: 16, channels: c, zDim: 8, latentDim: 8, fmapBase: 32, fmapMax: 8, seed: 5 });
    try {
      for (const res of [16, 4]) {
        const k = completerFromModels(big, wae, { resolution: res });
        const img = randomImage(`res${res}`, 2 * res, 2 * res, c);
        const out = completeImage(img, 'tl', k, 3);
        expect(knownPixelsBitwiseEqual(img, out, 2 * res, c, 'tl')).toBe(true);
        expect(Array.from(out)).not.toEqual(Array.from(img));
      }
    } finally {
      big.dispose();
    }
  });

  it('extends an image to a size that is not a multiple of R, keeping the original pixels', () => {
    const h = 19;
    const w = 16;
    const img = randomImage('extend', h, w, c);
    let tiles = 0;
    const out = extendImage(img, h, w, c, 29, 35, completer, 5, { onTile: () => (tiles += 1) });
    expect(out).toHaveLength(29 * 35 * c);
    expect(tiles).toBe(planExtension(h, w, 29, 35, r).steps.length);
    for (let y = 0; y < h; y++) {
      expect(Array.from(out.subarray(y * 35 * c, (y * 35 + w) * c))).toEqual(Array.from(img.subarray(y * w * c, (y + 1) * w * c)));
    }
    expect(out.every((v) => Number.isFinite(v) && v >= -1 && v <= 1)).toBe(true);
    // Same seed, same image.
    expect(Array.from(extendImage(img, h, w, c, 29, 35, completer, 5))).toEqual(Array.from(out));
  });

  it('extend keeps the known pixels and, by mean matching, the colour statistics of a constant image at any distance', () => {
    const h = 2 * r;
    const w = 2 * r;
    const value = [0.3, -0.2, 0.5].slice(0, c);
    const img = new Float32Array(h * w * c).map((_, i) => value[i % c] as number);
    const H = 5 * r;
    const W = 5 * r;
    const farMean = (out: Float32Array): number[] => {
      // The far bottom-right tile, the last one generated.
      const m = new Array<number>(c).fill(0);
      for (let y = H - r; y < H; y++) for (let x = W - r; x < W; x++) for (let k = 0; k < c; k++) m[k] = (m[k] as number) + (out[(y * W + x) * c + k] as number) / (r * r);
      return m;
    };
    const out = extendImage(img, h, w, c, H, W, completer, 2);
    for (let y = 0; y < h; y++) expect(Array.from(out.subarray(y * W * c, (y * W + w) * c))).toEqual(Array.from(img.subarray(y * w * c, (y + 1) * w * c)));
    const whole = new Array<number>(c).fill(0);
    for (let p = 0; p < H * W; p++) for (let k = 0; k < c; k++) whole[k] = (whole[k] as number) + (out[p * c + k] as number) / (H * W);
    farMean(out).forEach((m, k) => expect(Math.abs(m - (value[k] as number))).toBeLessThan(1e-4));
    whole.forEach((m, k) => expect(Math.abs(m - (value[k] as number))).toBeLessThan(1e-4));
    // Without the step the (untrained) generator's colours drift away.
    const raw = extendImage(img, h, w, c, H, W, completer, 2, { colour: 'none' });
    expect(Math.max(...farMean(raw).map((m, k) => Math.abs(m - (value[k] as number))))).toBeGreaterThan(1e-3);
  });
});

describe('extendImage and its plan', () => {
  it('plans tiles whose neighbours are known when they run, covering the whole canvas', () => {
    const r = 4;
    for (const [h, w, th, tw] of [
      [8, 8, 8, 8],
      [8, 8, 16, 16],
      [9, 11, 23, 13],
      [8, 13, 8, 30],
      [14, 8, 31, 8],
    ] as const) {
      const plan = planExtension(h, w, th, tw, r);
      const H = plan.canvasHeight;
      const W = plan.canvasWidth;
      expect(H).toBeGreaterThanOrEqual(th);
      expect(W).toBeGreaterThanOrEqual(tw);
      expect(H - h).toBeLessThan(r + (th - h));
      const known = new Uint8Array(H * W);
      for (let y = 0; y < h; y++) known.fill(1, y * W, y * W + w);
      const isKnown = (y0: number, x0: number) => {
        for (let y = y0; y < y0 + r; y++) for (let x = x0; x < x0 + r; x++) if (known[y * W + x] !== 1) return false;
        return true;
      };
      for (const s of plan.steps) {
        expect(s.windowY).toBeGreaterThanOrEqual(0);
        expect(s.windowX).toBeGreaterThanOrEqual(0);
        expect(s.windowY + 2 * r).toBeLessThanOrEqual(H);
        expect(s.windowX + 2 * r).toBeLessThanOrEqual(W);
        const [my, mx] = origin(s.missing, r);
        expect([s.windowY + my, s.windowX + mx]).toEqual([s.y, s.x]);
        for (const corner of ALL) {
          if (corner === s.missing || corner === s.mirror?.corner) continue;
          const [oy, ox] = origin(corner, r);
          expect(isKnown(s.windowY + oy, s.windowX + ox)).toBe(true);
        }
        if (s.mirror) expect(s.mirror.from).not.toBe(s.missing);
        for (let y = s.y; y < s.y + r; y++) known.fill(1, y * W + s.x, y * W + s.x + r);
      }
      expect(known.every((k) => k === 1)).toBe(true);
      // Only the first tile of each strip (right) or row (bottom) lacks a neighbour.
      const strips = (W - w) / r + (H - h) / r;
      expect(plan.steps.filter((s) => s.mirror).length).toBe(strips);
    }
  });

  it('conditions each tile on its left neighbour and mirrors across the right edges (copying completer)', () => {
    // The completer returns its (oriented) bottom-left input: the new tile's left neighbour.
    const r = 4;
    const c = 1;
    const img = randomImage('copy', 2 * r, 2 * r, c);
    const completer = new RecordingCompleter(r, c, 'copy-bl');
    const W = 4 * r;
    const H = 3 * r;
    const out = extendImage(img, 2 * r, 2 * r, c, H, W, completer, 0, { colour: 'none' }) // the tiles exactly as completed;
    const t = (y: number, x: number) => Array.from(tileAt(out, W, c, r, y * r, x * r));
    // Right region: every new tile copies its left neighbour, in both tile rows.
    for (const ty of [0, 1]) {
      expect(t(ty, 2)).toEqual(t(ty, 1));
      expect(t(ty, 3)).toEqual(t(ty, 1));
    }
    // Bottom row, first tile: generated as the bottom-left of its window, whose bottom-right is the
    // top-right mirrored top-bottom; the copy is that mirror image. The next tiles copy their left neighbour.
    expect(t(2, 0)).toEqual(Array.from(flipV(tileAt(out, W, c, r, r, r), r, r, c)));
    expect(t(2, 1)).toEqual(t(2, 0));
    expect(t(2, 3)).toEqual(t(2, 0));
    expect(completer.calls).toHaveLength(2 * 2 + 4);
  });

  it('rejects images smaller than 2R x 2R, shrinking targets and channel mismatches', () => {
    const completer = new RecordingCompleter(4, 1);
    expect(() => extendImage(new Float32Array(7 * 8), 7, 8, 1, 16, 16, completer, 0)).toThrow(/at least 8x8/);
    expect(() => extendImage(new Float32Array(8 * 8), 8, 8, 1, 7, 16, completer, 0)).toThrow(/smaller than the image/);
    expect(() => extendImage(new Float32Array(8 * 8 * 3), 8, 8, 3, 16, 16, completer, 0)).toThrow(/3 channels/);
    expect(() => extendImage(new Float32Array(5), 8, 8, 1, 16, 16, completer, 0)).toThrow(/holds 5 values/);
    // Same size: a copy, no tiles.
    const img = randomImage('same', 8, 8, 1);
    expect(Array.from(extendImage(img, 8, 8, 1, 8, 8, completer, 0))).toEqual(Array.from(img));
    expect(completer.calls).toHaveLength(0);
  });
});
