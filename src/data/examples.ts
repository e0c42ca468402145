/**
 * Image datasets as example datasets: an {@link ImageDataset} seen as examples of one field
 * (`images`, [H, W, C] float32), and the horizontal flip as an injected {@link Augmentation}.
 */
import type { Augmentation, Example, ExampleDataset, ExampleSpec, ImageDataset } from './pipeline.js';

/** The examples of an image dataset: one field, `field` (default `images`), of shape [R, R, C]. */
export function imageExamples(images: ImageDataset, field = 'images'): ExampleDataset {
  const spec: ExampleSpec = { [field]: { shape: [images.resolution, images.resolution, images.channels], dtype: 'float32' } };
  return {
    size: images.size,
    spec,
    get: async (i, epoch) => ({ [field]: await images.get(i, epoch) }),
    name: (i) => images.name(i),
  };
}

/**
 * Random left-right mirror of the [H, W, C] field `field` (default `images`) with probability 1/2,
 * named `flip`.
 */
export function horizontalFlip(field = 'images'): Augmentation {
  return {
    name: 'flip',
    apply(example: Example, spec: ExampleSpec, seed: number): Example | null {
      if ((seed & 1) !== 1) return null;
      const fs = spec[field];
      const src = example[field];
      if (!fs || !src) throw new Error(`horizontalFlip: the examples have no field "${field}"`);
      if (fs.shape.length !== 3) throw new Error(`horizontalFlip: field "${field}" must be [H, W, C], got [${fs.shape.join(', ')}]`);
      const [h, w, c] = fs.shape as [number, number, number];
      const dst = src instanceof Int32Array ? new Int32Array(src.length) : new Float32Array(src.length);
      for (let y = 0; y < h; y++) {
        const row = y * w * c;
        for (let x = 0; x < w; x++) {
          const s = row + x * c;
          const d = row + (w - 1 - x) * c;
          for (let k = 0; k < c; k++) dst[d + k] = src[s + k] as number;
        }
      }
      return { ...example, [field]: dst };
    },
  };
}

/**
 * Keep every example of `ds` in memory after its first read (for datasets whose examples are costly
 * to make and small enough to hold, e.g. decoded showers). Works for any spec: the pipeline and the
 * augmentations never write into an example's arrays.
 */
export function cachedExamples(ds: ExampleDataset): ExampleDataset {
  const cache = new Map<number, Promise<Example>>();
  return {
    size: ds.size,
    spec: ds.spec,
    get: (i) => {
      let p = cache.get(i);
      if (p === undefined) {
        p = ds.get(i);
        cache.set(i, p);
        // A failed read is retried next time rather than cached.
        p.catch(() => cache.delete(i));
      }
      return p;
    },
    name: (i) => ds.name(i),
  };
}
