/**
 * Sample grids: batches of images (flat NHWC Float32Arrays) tiled into one PNG.
 *
 * Values map linearly from `range` (default `[-1, 1]`, the networks' output range) to 0..255 and
 * are clipped; NaN becomes 0. Files are written atomically (temporary file, rename), so a viewer
 * never sees half a PNG.
 */
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

import sharp from 'sharp';

/** Options shared by {@link writeImageGrid} and {@link writeRowsGrid}. */
export interface GridOptions {
  /** Value range mapped to 0..255, values outside are clipped; default `[-1, 1]`. */
  range?: [number, number];
  /** Pixels between cells and around the border; default 2. Not scaled. */
  padding?: number;
  /** Integer nearest-neighbour upscale of every image, for tiny images; default 1. */
  scale?: number;
  /** Byte value (0..255) of the padding and of empty cells; default 0 (black). */
  background?: number;
}

/** Options of {@link writeImageGrid}. */
export interface ImageGridOptions extends GridOptions {
  /** Images per row; default `ceil(sqrt(n))`. */
  cols?: number;
}

/** An 8-bit image in memory, interleaved channels. */
export interface RenderedGrid {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Channels per pixel, 1 (grey) or 3 (RGB). */
  channels: 1 | 3;
  /** `height * width * channels` bytes, row-major. */
  data: Uint8Array;
}

/** Tile `n` images of shape `[h, w, c]` (NHWC in `images`) into a grid, `cols` per row. */
export function renderImageGrid(images: Float32Array, shape: [number, number, number, number], opts: ImageGridOptions = {}): RenderedGrid {
  const [n, h, w, c] = shape;
  checkImageShape([h, w, c]);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`image count must be >= 1, got ${n}`);
  if (images.length !== n * h * w * c) {
    throw new RangeError(`images hold ${images.length} values, shape [${shape.join(', ')}] needs ${n * h * w * c}`);
  }
  const cols = opts.cols ?? Math.ceil(Math.sqrt(n));
  if (!Number.isInteger(cols) || cols < 1) throw new RangeError(`cols must be an integer >= 1, got ${cols}`);
  const perImage = h * w * c;
  const cells: Cell[] = [];
  for (let i = 0; i < n; i++) {
    cells.push({ row: Math.floor(i / cols), col: i % cols, data: images.subarray(i * perImage, (i + 1) * perImage) });
  }
  return render(cells, Math.ceil(n / cols), Math.min(cols, n), [h, w, c], opts);
}

/**
 * Tile rows of images: `rows[r]` holds the images of row `r` (NHWC, each `[h, w, c]`), e.g. row 0
 * the real corners, row 1 their reconstructions. Rows may differ in length; the grid is as wide
 * as the longest row and shorter rows end in background.
 */
export function renderRowsGrid(rows: Float32Array[], imageShape: [number, number, number], opts: GridOptions = {}): RenderedGrid {
  checkImageShape(imageShape);
  const [h, w, c] = imageShape;
  const perImage = h * w * c;
  if (rows.length === 0) throw new RangeError('rows must not be empty');
  const cells: Cell[] = [];
  let cols = 0;
  rows.forEach((row, r) => {
    if (row.length % perImage !== 0) {
      throw new RangeError(`row ${r} holds ${row.length} values, not a multiple of one [${imageShape.join(', ')}] image`);
    }
    const k = row.length / perImage;
    cols = Math.max(cols, k);
    for (let i = 0; i < k; i++) cells.push({ row: r, col: i, data: row.subarray(i * perImage, (i + 1) * perImage) });
  });
  if (cols === 0) throw new RangeError('every row is empty');
  return render(cells, rows.length, cols, imageShape, opts);
}

/** Write `n` images (`shape` = `[n, h, w, c]`, c = 1 or 3) as one PNG grid at `file`. */
export async function writeImageGrid(
  file: string,
  images: Float32Array,
  shape: [number, number, number, number],
  opts: ImageGridOptions = {},
): Promise<void> {
  await writePng(file, renderImageGrid(images, shape, opts));
}

/** Write labelled row groups (see {@link renderRowsGrid}) as one PNG at `file`. */
export async function writeRowsGrid(
  file: string,
  rows: Float32Array[],
  imageShape: [number, number, number],
  opts: GridOptions = {},
): Promise<void> {
  await writePng(file, renderRowsGrid(rows, imageShape, opts));
}

/** Encode `grid` as PNG and write it via a temporary file and a rename. */
export async function writePng(file: string, grid: RenderedGrid): Promise<void> {
  // Without an explicit colourspace sharp would write a one-channel grid as RGB.
  const png = await sharp(grid.data, { raw: { width: grid.width, height: grid.height, channels: grid.channels } })
    .toColourspace(grid.channels === 1 ? 'b-w' : 'srgb')
    .png()
    .toBuffer();
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(png);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** One image placed in the grid. */
interface Cell {
  row: number;
  col: number;
  data: Float32Array;
}

function checkImageShape([h, w, c]: [number, number, number]): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) throw new RangeError(`bad image size ${h}x${w}`);
  if (c !== 1 && c !== 3) throw new RangeError(`images must have 1 or 3 channels, got ${c}`);
}

function render(cells: Cell[], rows: number, cols: number, [h, w, c]: [number, number, number], opts: GridOptions): RenderedGrid {
  const [lo, hi] = opts.range ?? [-1, 1];
  if (!(hi > lo)) throw new RangeError(`range must be increasing, got [${lo}, ${hi}]`);
  const padding = opts.padding ?? 2;
  const scale = opts.scale ?? 1;
  const background = opts.background ?? 0;
  if (!Number.isInteger(padding) || padding < 0) throw new RangeError(`padding must be an integer >= 0, got ${padding}`);
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`scale must be an integer >= 1, got ${scale}`);
  const cellH = h * scale;
  const cellW = w * scale;
  const width = cols * cellW + (cols + 1) * padding;
  const height = rows * cellH + (rows + 1) * padding;
  const data = new Uint8Array(width * height * c).fill(Math.max(0, Math.min(255, Math.round(background))));
  const k = 255 / (hi - lo);
  for (const cell of cells) {
    const x0 = padding + cell.col * (cellW + padding);
    const y0 = padding + cell.row * (cellH + padding);
    for (let y = 0; y < cellH; y++) {
      const srcRow = Math.floor(y / scale) * w;
      const dstRow = ((y0 + y) * width + x0) * c;
      for (let x = 0; x < cellW; x++) {
        const src = (srcRow + Math.floor(x / scale)) * c;
        const dst = dstRow + x * c;
        for (let ch = 0; ch < c; ch++) {
          const v = Math.round(((cell.data[src + ch] ?? NaN) - lo) * k);
          // NaN fails both comparisons and lands on 0.
          data[dst + ch] = v >= 255 ? 255 : v > 0 ? v : 0;
        }
      }
    }
  }
  return { width, height, channels: c === 1 ? 1 : 3, data };
}
