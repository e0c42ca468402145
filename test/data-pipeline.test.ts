import { describe, expect, it } from 'vitest';
import { cornerFlips, CORNERS, flipH, flipV, joinCorners, orientCorner, splitCorners } from '../src/data/corners.js';
import { Pipeline, type ExampleDataset, type HostBatch, type ImageDataset, type PipelineOptions } from '../src/data/pipeline.js';
import { cachedExamples, horizontalFlip, imageExamples } from '../src/data/examples.js';
import { syntheticTiles } from '../src/data/synthetic.js';

const RES = 4;
const CH = 3;

/** Image i: pixel (y, x, c) = i + x / 10 + y / 100 + c / 1000 (scaled into [-1, 1]); loads take a random while. */
class FakeDataset implements ImageDataset {
  readonly resolution = RES;
  readonly channels = CH;
  loads = 0;
  failAt = -1;
  constructor(readonly size: number, private readonly delays = true) {}
  static value(i: number, y: number, x: number, c: number): number {
    return (i + x / 10 + y / 100 + c / 1000) / 1000;
  }
  async get(i: number): Promise<Float32Array> {
    this.loads += 1;
    if (this.delays) await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 3)));
    if (i === this.failAt) throw new Error(`cannot read ${this.name(i)}`);
    const out = new Float32Array(RES * RES * CH);
    for (let y = 0; y < RES; y++) for (let x = 0; x < RES; x++) for (let c = 0; c < CH; c++) out[(y * RES + x) * CH + c] = FakeDataset.value(i, y, x, c);
    return out;
  }
  name(i: number): string {
    return `fake#${i}`;
  }
}

async function take(p: Pipeline, n: number): Promise<HostBatch[]> {
  const out: HostBatch[] = [];
  for (let k = 0; k < n; k++) out.push(await p.next());
  return out;
}

/** A pipeline over an image dataset's examples (`images`), with the injected flip when `flip` is set. */
function pipe(ds: ImageDataset, opts: PipelineOptions & { flip?: boolean }): Pipeline {
  const { flip, ...rest } = opts;
  return new Pipeline(imageExamples(ds), { ...rest, augment: flip ? [horizontalFlip()] : [] });
}

/** The images of a batch. */
function images(b: HostBatch): Float32Array {
  return b.fields['images']?.data as Float32Array;
}

describe('Pipeline sharding', () => {
  for (const worldSize of [1, 2, 3]) {
    it(`gives ${worldSize} rank(s) disjoint slices of one global order per epoch`, async () => {
      const ds = new FakeDataset(23, false);
      const batchSize = 2;
      const ranks = Array.from({ length: worldSize }, (_, rank) => pipe(ds, { batchSize, seed: 3, rank, worldSize }));
      const perEpoch = Math.floor(23 / (batchSize * worldSize));
      expect(ranks[0]?.batchesPerEpoch).toBe(perEpoch);
      const order0 = ranks[0]?.epochOrder(0) ?? [];
      expect([...order0].sort((a, b) => a - b)).toEqual(Array.from({ length: 23 }, (_, i) => i));
      const seen = new Set<number>();
      for (const [rank, p] of ranks.entries()) {
        expect(p.epochOrder(0)).toEqual(order0);
        const batches = await take(p, perEpoch);
        for (const [k, b] of batches.entries()) {
          expect(b.epoch).toBe(0);
          expect(b.fields['images']?.shape).toEqual([batchSize, RES, RES, CH]);
          // Rank r takes the r-th slice of global batch k.
          const start = k * batchSize * worldSize + rank * batchSize;
          expect(b.indices).toEqual(order0.slice(start, start + batchSize));
          for (const i of b.indices) {
            expect(seen.has(i)).toBe(false);
            seen.add(i);
          }
          // The data is the images of those indices.
          expect(images(b)[0]).toBeCloseTo(FakeDataset.value(b.indices[0] as number, 0, 0, 0), 7);
        }
        // The next batch belongs to epoch 1, in a new order.
        const next = await p.next();
        expect(next.epoch).toBe(1);
      }
      expect(seen.size).toBe(perEpoch * batchSize * worldSize);
      expect(ranks[0]?.epochOrder(1)).not.toEqual(order0);
    });
  }

  it('covers every item with dropLast false, with equal batch sizes on every rank', async () => {
    const ds = new FakeDataset(23, false);
    const worldSize = 3;
    const ranks = Array.from({ length: worldSize }, (_, rank) => pipe(ds, { batchSize: 2, seed: 1, rank, worldSize, dropLast: false }));
    const per = ranks[0]?.batchesPerEpoch ?? 0;
    expect(per).toBe(4);
    const seen = new Set<number>();
    const lastSizes: number[] = [];
    for (const p of ranks) {
      const batches = await take(p, per);
      for (const b of batches) for (const i of b.indices) seen.add(i);
      lastSizes.push(batches[per - 1]?.indices.length ?? -1);
      expect((await p.next()).epoch).toBe(1);
    }
    expect(seen.size).toBe(23);
    // 23 - 3 * 6 = 5 left: ceil(5 / 3) = 2 per rank, one item repeated from the start of the epoch.
    expect(lastSizes).toEqual([2, 2, 2]);
  });

  it('refuses a dataset smaller than one global batch', () => {
    expect(() => pipe(new FakeDataset(5), { batchSize: 2, worldSize: 3 })).toThrow(/5 examples, fewer than one global batch of 6/);
    expect(() => pipe(new FakeDataset(5), { batchSize: 2, worldSize: 2, rank: 2 })).toThrow(/rank/);
  });
});

describe('Pipeline determinism and resume', () => {
  it('does not depend on prefetch depth', async () => {
    const runs: HostBatch[][] = [];
    for (const prefetch of [0, 1, 5]) runs.push(await take(pipe(new FakeDataset(10), { batchSize: 3, seed: 9, flip: true, prefetch }), 8));
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[2]).toEqual(runs[0]);
  });

  it('resumes exactly from getState(), across an epoch boundary', async () => {
    const ds = new FakeDataset(10);
    const full = await take(pipe(ds, { batchSize: 3, seed: 5, flip: true, prefetch: 3 }), 9);
    for (const cut of [1, 3, 4]) {
      const a = pipe(ds, { batchSize: 3, seed: 5, flip: true, prefetch: 3 });
      await take(a, cut);
      // The state is a plain JSON value describing the last batch returned, not the prefetched ones.
      const state = JSON.parse(JSON.stringify(a.getState())) as ReturnType<Pipeline['getState']>;
      a.close();
      const b = pipe(ds, { batchSize: 3, seed: 5, flip: true, prefetch: 0, state });
      expect(await take(b, 9 - cut)).toEqual(full.slice(cut));
      const c = pipe(ds, { batchSize: 3, seed: 5, flip: true, prefetch: 2 });
      await take(c, 2);
      c.setState(state);
      expect(await take(c, 9 - cut)).toEqual(full.slice(cut));
    }
  });

  it('reports the position of the last returned batch while others are prefetched', async () => {
    const ds = new FakeDataset(30, false);
    const p = pipe(ds, { batchSize: 4, seed: 0, prefetch: 4 });
    await p.next();
    expect(p.getState()).toMatchObject({ epoch: 0, cursor: 4 });
    await new Promise((r) => setTimeout(r, 5));
    // The prefetch decoded more than one batch, but the position did not move.
    expect(ds.loads).toBeGreaterThan(4);
    expect(p.getState()).toMatchObject({ epoch: 0, cursor: 4 });
    await take(p, 6);
    // 7 batches of 4 = 28 items; 2 left cannot make a batch, so the next is epoch 1.
    expect(p.getState()).toMatchObject({ epoch: 0, cursor: 28 });
    expect((await p.next()).epoch).toBe(1);
    expect(p.getState()).toMatchObject({ epoch: 1, cursor: 4 });
  });

  it('rejects a state from another dataset size or seed', () => {
    const p = pipe(new FakeDataset(10), { batchSize: 2, seed: 1 });
    expect(() => p.setState({ epoch: 0, cursor: 2, seed: 1, datasetSize: 11 })).toThrow(/11 examples/);
    expect(() => p.setState({ epoch: 0, cursor: 2, seed: 2, datasetSize: 10 })).toThrow(/seed 2/);
    expect(() => p.setState({ epoch: -1, cursor: 0, seed: 1, datasetSize: 10 })).toThrow(/invalid position/);
  });

  it('flips deterministically from the seed, and the flipped data is mirrored', async () => {
    const ds = new FakeDataset(40, false);
    const a = await take(pipe(ds, { batchSize: 8, seed: 2, flip: true }), 5);
    const b = await take(pipe(ds, { batchSize: 8, seed: 2, flip: true }), 5);
    expect(b).toEqual(a);
    const flags = a.flatMap((x) => x.augmented['flip'] ?? []);
    const flips = flags.filter(Boolean).length;
    expect(flips).toBeGreaterThan(5);
    expect(flips).toBeLessThan(35);
    const other = await take(pipe(ds, { batchSize: 8, seed: 3, flip: true }), 5);
    expect(other.map((x) => x.indices)).not.toEqual(a.map((x) => x.indices));
    const per = RES * RES * CH;
    for (const batch of a) {
      batch.indices.forEach((idx, k) => {
        const img = images(batch).subarray(k * per, (k + 1) * per);
        // Pixel (y=1, x=0, c=2) holds the source pixel at x=0, or at x=RES-1 when flipped.
        const srcX = batch.augmented['flip']?.[k] ? RES - 1 : 0;
        expect(img[(1 * RES + 0) * CH + 2]).toBeCloseTo(FakeDataset.value(idx, 1, srcX, 2), 7);
      });
    }
    const plain = await take(pipe(ds, { batchSize: 8, seed: 2 }), 2);
    expect(plain.flatMap((x) => x.augmented['flip'] ?? []).some(Boolean)).toBe(false);
  });

  it('reports a failing image and retries the same batch on the next call', async () => {
    const ds = new FakeDataset(12);
    const ref = await take(pipe(ds, { batchSize: 3, seed: 4 }), 4);
    const bad = ref[2]?.indices[1] as number;
    ds.failAt = bad;
    const p = pipe(ds, { batchSize: 3, seed: 4, prefetch: 2 });
    expect(await take(p, 2)).toEqual(ref.slice(0, 2));
    await expect(p.next()).rejects.toThrow(`cannot read fake#${bad}`);
    expect(p.getState()).toMatchObject({ epoch: 0, cursor: 6 });
    ds.failAt = -1;
    expect(await take(p, 2)).toEqual(ref.slice(2, 4));
  });

  it('stops after close()', async () => {
    const p = pipe(new FakeDataset(8), { batchSize: 2 });
    await p.next();
    p.close();
    await expect(p.next()).rejects.toThrow(/closed/);
  });

  it('feeds synthetic tiles', async () => {
    const ds = syntheticTiles({ count: 12, resolution: 16, channels: 1, seed: 0 });
    const b = await pipe(ds, { batchSize: 4, seed: 1, flip: true }).next();
    expect(b.fields['images']?.shape).toEqual([4, 16, 16, 1]);
    expect(images(b).length).toBe(4 * 16 * 16);
    expect(images(b).every((v) => v >= -1 && v <= 1)).toBe(true);
  });
});

/** Shower-like examples: a [3, 3, 2, 1] deposit, a scalar energy and an int32 label, all derived from i. */
function showers(size: number): ExampleDataset {
  return {
    size,
    spec: { ecal: { shape: [3, 3, 2, 1], dtype: 'float32' }, energy: { shape: [], dtype: 'float32' }, label: { shape: [], dtype: 'int32' } },
    get: async (i) => ({ ecal: new Float32Array(18).fill(i), energy: Float32Array.of(i * 10), label: Int32Array.of(i) }),
    name: (i) => `shower#${i}`,
  };
}

describe('Pipeline over any example spec', () => {
  it('batches every declared field with its shape and dtype, sharded and resumable', async () => {
    const ds = showers(11);
    const full = await take(new Pipeline(ds, { batchSize: 2, seed: 7, worldSize: 2, rank: 1 }), 6);
    const b = full[0] as HostBatch;
    expect(b.fields['ecal']?.shape).toEqual([2, 3, 3, 2, 1]);
    expect(b.fields['energy']?.shape).toEqual([2]);
    expect(b.fields['label']?.data).toBeInstanceOf(Int32Array);
    // The fields of one example stay together: energy = 10 * label, every ecal value = label.
    for (const x of full) {
      x.indices.forEach((idx, k) => {
        expect(x.fields['label']?.data[k]).toBe(idx);
        expect(x.fields['energy']?.data[k]).toBe(idx * 10);
        expect(x.fields['ecal']?.data[k * 18 + 17]).toBe(idx);
      });
    }
    // Rank 0 sees the other half of each global batch.
    const r0 = await take(new Pipeline(ds, { batchSize: 2, seed: 7, worldSize: 2, rank: 0 }), 6);
    r0.forEach((x, i) => expect(x.indices.some((v) => full[i]?.indices.includes(v))).toBe(false));
    // Exact resume.
    const a = new Pipeline(ds, { batchSize: 2, seed: 7, worldSize: 2, rank: 1 });
    await take(a, 4);
    const again = new Pipeline(ds, { batchSize: 2, seed: 7, worldSize: 2, rank: 1, state: a.getState() });
    expect(await take(again, 2)).toEqual(full.slice(4));
  });

  it('caches any dataset\'s examples, and a flip never writes into a cached example', async () => {
    let reads = 0;
    const base = showers(6);
    const counted: ExampleDataset = { ...base, get: (i) => ((reads += 1), base.get(i)) };
    const ds = cachedExamples(counted);
    const a = await take(new Pipeline(ds, { batchSize: 3, seed: 1, prefetch: 0 }), 6);
    expect(reads).toBe(6);
    expect(await take(new Pipeline(ds, { batchSize: 3, seed: 1, prefetch: 0 }), 6)).toEqual(a);
    expect(reads).toBe(6);
    const imgs = cachedExamples(imageExamples(new FakeDataset(8, false)));
    const before = Float32Array.from((await imgs.get(0))['images'] as Float32Array);
    await take(new Pipeline(imgs, { batchSize: 4, seed: 2, augment: [horizontalFlip()] }), 6);
    expect((await imgs.get(0))['images']).toEqual(before);
  });

  it('names the example and field whose size does not match the spec', async () => {
    const bad: ExampleDataset = { ...showers(4), get: async () => ({ ecal: new Float32Array(5), energy: Float32Array.of(1), label: Int32Array.of(1) }) };
    await expect(new Pipeline(bad, { batchSize: 2 }).next()).rejects.toThrow(/shower#\d has 5 values in "ecal", expected 3x3x2x1 = 18/);
  });
});

describe('corners', () => {
  const size = 6;
  const c = 2;
  const img = Float32Array.from({ length: size * size * c }, (_, k) => k);
  const at = (a: Float32Array, w: number, y: number, x: number, ch: number): number => a[(y * w + x) * c + ch] as number;

  it('splits into four corners and joins them back', () => {
    const parts = splitCorners(img, size, c);
    expect(at(parts.tl, 3, 0, 0, 0)).toBe(at(img, size, 0, 0, 0));
    expect(at(parts.tr, 3, 0, 0, 1)).toBe(at(img, size, 0, 3, 1));
    expect(at(parts.bl, 3, 2, 1, 0)).toBe(at(img, size, 5, 1, 0));
    expect(at(parts.br, 3, 2, 2, 1)).toBe(at(img, size, 5, 5, 1));
    for (const k of CORNERS) expect(parts[k].length).toBe(3 * 3 * c);
    expect(joinCorners(parts, size, c)).toEqual(img);
    expect(() => splitCorners(img, 5, c)).toThrow();
  });

  it('flips HWC images and moves any corner to the bottom-right', () => {
    const h = flipH(img, size, size, c);
    expect(at(h, size, 1, 0, 1)).toBe(at(img, size, 1, size - 1, 1));
    const v = flipV(img, size, size, c);
    expect(at(v, size, 0, 2, 0)).toBe(at(img, size, size - 1, 2, 0));
    expect(flipH(h, size, size, c)).toEqual(img);
    expect(flipV(v, size, size, c)).toEqual(img);
    expect(cornerFlips('br')).toEqual({ h: false, v: false });
    for (const k of CORNERS) {
      const o = orientCorner(img, size, c, k);
      expect(splitCorners(o, size, c).br).toEqual(
        (() => {
          const f = cornerFlips(k);
          let corner = splitCorners(img, size, c)[k];
          if (f.h) corner = flipH(corner, 3, 3, c);
          if (f.v) corner = flipV(corner, 3, 3, c);
          return corner;
        })(),
      );
      expect(orientCorner(o, size, c, k)).toEqual(img);
    }
  });
});
