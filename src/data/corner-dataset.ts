/** A dataset of corner tiles: item i is corner i % 4 of image floor(i / 4) of a full-image dataset. */
import { splitCorners, type Corner } from './corners.js';
import type { ImageDataset } from './images.js';

const ORDER: readonly Corner[] = ['tl', 'tr', 'bl', 'br'];

/** View a dataset of 2R x 2R images as one of R x R corners (four per image). */
export function cornerTiles(images: ImageDataset): ImageDataset {
  if (images.resolution % 2 !== 0) throw new Error(`corner tiles need an even image resolution, got ${images.resolution}`);
  const half = images.resolution / 2;
  return {
    size: images.size * 4,
    resolution: half,
    channels: images.channels,
    async get(i: number, epoch?: number): Promise<Float32Array> {
      const img = await images.get(Math.floor(i / 4), epoch);
      const corner = ORDER[i % 4] as Corner;
      return splitCorners(img, images.resolution, images.channels)[corner];
    },
    name(i: number): string {
      return `${images.name(Math.floor(i / 4))}#${ORDER[i % 4]}`;
    },
  };
}
