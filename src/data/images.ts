/**
 * Image folders of whole images, decoded by the shared decoder of `raster.ts` (sharp for PNG/JPEG/WebP,
 * geotiff for TIFF/GeoTIFF of any bit depth; 16-bit and float images mapped by their own 2-98 %
 * percentiles, so they no longer load almost black; large images decoded one at a time). Every file is validated up front by a full decode (not just its
 * header), channels are converted explicitly to the requested count and every conversion is counted
 * and logged; unusable files either fail the load with one error that lists them all, or are skipped
 * with a warning each. Nothing is dropped silently.
 */

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp, { type OutputInfo } from 'sharp';
import { silentLogger, type Logger } from '../util/logger.js';
import type { ImageDataset } from './pipeline.js';
import { decodeImageFile, reasonOf, UnusableImage, unitToBytes } from './raster.js';

export type { ImageDataset } from './pipeline.js';

/** File extensions read by default (lower case, without the dot). */
export const DEFAULT_IMAGE_EXTENSIONS: readonly string[] = ['png', 'jpg', 'jpeg', 'tif', 'tiff', 'webp'];

/** Options of {@link loadImageFolder}. */
export interface ImageFolderOptions {
  /** Side of the square the images are cover-cropped and resized to, in pixels. Required. */
  resolution: number;
  /** Channels to convert every image to: 1 (grayscale) or 3 (RGB). Required. */
  channels: 1 | 3;
  /** What to do with unreadable files: 'error' fails the load listing them all, 'skip' warns and goes on; default 'error'. */
  badFiles?: 'error' | 'skip';
  /** Where warnings and the summary line go; default a silent logger. */
  logger?: Logger;
  /** Keep the decoded 8-bit pixels of every image in memory (resolution^2 x channels bytes each); default true. */
  cache?: boolean;
  /** Look into sub-folders; default true. */
  recursive?: boolean;
  /** File extensions to read, case-insensitive, without the dot; default {@link DEFAULT_IMAGE_EXTENSIONS}. */
  extensions?: readonly string[];
  /** Files validated at the same time; default 4. */
  concurrency?: number;
  /** Called after each file is validated, with the number done and the total. */
  onProgress?(done: number, total: number): void;
}

/** A file that could not be used, and why. */
export interface BadImageFile {
  /** Path of the file (the folder joined with its relative path). */
  path: string;
  /** What went wrong, e.g. the decoder's message. */
  reason: string;
}

/** Thrown by {@link loadImageFolder} with `badFiles: 'error'` when any file cannot be used. */
export class BadImageFilesError extends Error {
  /** Every unusable file with its reason. */
  readonly badFiles: readonly BadImageFile[];

  constructor(dir: string, total: number, badFiles: readonly BadImageFile[]) {
    const lines = badFiles.map((f) => `  ${f.path}: ${f.reason}`);
    super(
      `${badFiles.length} of ${total} image files in ${dir} cannot be used:\n${lines.join('\n')}\n` +
        `Fix or remove these files, or pass --bad-files skip (option badFiles: 'skip') to skip them with a warning.`,
    );
    this.name = 'BadImageFilesError';
    this.badFiles = badFiles;
  }
}

/** An image folder loaded by {@link loadImageFolder}. */
export interface ImageFolderDataset extends ImageDataset {
  /** The folder that was read. */
  readonly dir: string;
  /** Paths of the usable images, in dataset order (sorted by relative path). */
  readonly paths: readonly string[];
  /** Conversions applied, by kind (e.g. `grayscale->rgb`, `rgba->rgb`, `16bit->8bit`, `cover-crop`), counted over usable images. */
  readonly conversions: Readonly<Record<string, number>>;
  /** Files skipped with `badFiles: 'skip'`. */
  readonly skipped: readonly BadImageFile[];
  /** Whether decoded pixels are kept in memory. */
  readonly cached: boolean;
  /** Image i as HWC 8-bit pixels (0..255). */
  getBytes(i: number): Promise<Uint8Array>;
}

/** A decoded, converted image and the conversions it needed. */
interface Decoded {
  pixels: Uint8Array;
  conversions: string[];
}

const NO_PIXELS = new Uint8Array(0);

/** Images with more pixels than this are decoded one at a time (four concurrent full decodes of 16000^2 PNGs took 3.2 GB). */
const LARGE_IMAGE_PIXELS = 2 ** 22;
let largeDecode: Promise<void> = Promise.resolve();

/** Run `fn` after every earlier large decode has finished (a queue of one). */
async function oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const prev = largeDecode;
  let release!: () => void;
  largeDecode = new Promise<void>((r) => (release = r));
  await prev;
  try {
    return await fn();
  } finally {
    release();
  }
}

/**
 * Decode one file with the shared decoder ({@link decodeImageFile}: sharp for PNG/JPEG/WebP,
 * geotiff for TIFF; alpha dropped, 16-bit/float mapped by the image's 2-98 % percentiles), convert
 * to `channels` 8-bit channels and cover-crop it to `resolution` x `resolution`. Throws
 * {@link UnusableImage} with a reason when the file is unusable.
 */
async function decodeImage(file: string, resolution: number, channels: 1 | 3): Promise<Decoded> {
  const run = async (): Promise<Decoded> => {
    const img = await decodeImageFile(file, { channels, alpha: 'ignore' });
    const conversions = img.conversions;
    const { width, height } = img;
    const bytes = unitToBytes(img.data);
    if (width === resolution && height === resolution) return { pixels: bytes, conversions };
    // Cover-crop to a centred square and resize.
    if (width !== height) conversions.push('cover-crop');
    if (Math.min(width, height) < resolution) conversions.push('upscale');
    let out: { data: Buffer; info: OutputInfo };
    try {
      let im = sharp(bytes, { raw: { width, height, channels } }).resize(resolution, resolution, { fit: 'cover', position: 'centre' });
      // Raw 1-channel input would otherwise come out as sRGB.
      if (channels === 1) im = im.toColourspace('b-w');
      out = await im.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    } catch (err) {
      throw new UnusableImage(`resize failed: ${reasonOf(err)}`);
    }
    if (out.info.channels !== channels || out.info.width !== resolution || out.info.height !== resolution) {
      throw new UnusableImage(`resized to ${out.info.width}x${out.info.height}x${out.info.channels}, expected ${resolution}x${resolution}x${channels}`);
    }
    return { pixels: new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length), conversions };
  };
  const meta = await sharp(file, { limitInputPixels: false }).metadata().catch(() => null);
  const large = meta !== null && (meta.width ?? 0) * (meta.height ?? 0) > LARGE_IMAGE_PIXELS;
  return large ? oneAtATime(run) : run();
}

/** Map 8-bit pixels to float32 in [-1, 1]. */
export function bytesToUnit(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let k = 0; k < bytes.length; k++) out[k] = (bytes[k] as number) / 127.5 - 1;
  return out;
}

/** Files under `dir` (relative paths with `/`), sorted; those with other extensions are counted apart. */
async function listFiles(dir: string, recursive: boolean, extensions: ReadonlySet<string>): Promise<{ images: string[]; ignored: string[] }> {
  const images: string[] = [];
  const ignored: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const relPath = rel ? `${rel}/${e.name}` : e.name;
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const st = await fs.stat(path.join(dir, relPath)).catch(() => null);
        isDir = st?.isDirectory() ?? false;
        isFile = st?.isFile() ?? false;
      }
      if (isDir) {
        if (recursive) await walk(relPath);
      } else if (isFile) {
        const ext = path.extname(e.name).slice(1).toLowerCase();
        (extensions.has(ext) ? images : ignored).push(relPath);
      }
    }
  };
  await walk('');
  // Plain code-unit order, so the dataset order is the same on every machine and locale.
  images.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  ignored.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { images, ignored };
}

/** Run `fn` over `items` with at most `limit` in flight, in order of start. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Read every image under `dir` into a dataset of `resolution` x `resolution` images with `channels`
 * channels, values in [-1, 1]. Each file is validated by a full decode first; see
 * {@link ImageFolderOptions} for what happens to unusable files.
 *
 * @throws Error naming the path when it does not exist, is not a folder or holds no image files.
 * @throws BadImageFilesError listing every unusable file (with `badFiles: 'error'`).
 */
export async function loadImageFolder(dir: string, opts: ImageFolderOptions): Promise<ImageFolderDataset> {
  const { resolution, channels } = opts;
  if (!Number.isInteger(resolution) || resolution < 1) throw new RangeError(`loadImageFolder: resolution must be a positive integer, got ${resolution}`);
  if (channels !== 1 && channels !== 3) throw new RangeError(`loadImageFolder: channels must be 1 or 3, got ${String(channels)}`);
  const badFiles = opts.badFiles ?? 'error';
  if (badFiles !== 'error' && badFiles !== 'skip') throw new RangeError(`loadImageFolder: badFiles must be 'error' or 'skip', got ${String(badFiles)}`);
  const logger = opts.logger ?? silentLogger();
  const cache = opts.cache ?? true;
  const concurrency = opts.concurrency ?? 4;
  const extensions = new Set((opts.extensions ?? DEFAULT_IMAGE_EXTENSIONS).map((e) => e.replace(/^\./, '').toLowerCase()));

  // List the folder.
  let st;
  try {
    st = await fs.stat(dir);
  } catch {
    throw new Error(`image folder ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new Error(`image folder ${dir} is not a folder`);
  const { images: rel, ignored } = await listFiles(dir, opts.recursive ?? true, extensions);
  if (rel.length === 0) {
    const also = ignored.length > 0 ? ` (${ignored.length} other files ignored, e.g. ${ignored.slice(0, 3).join(', ')})` : '';
    throw new Error(`image folder ${dir} holds no image files with extensions ${[...extensions].join(', ')}${also}`);
  }
  const files = rel.map((r) => path.join(dir, r));

  // Validate every file by a full decode, a few at a time.
  const decoded: Array<Decoded | null> = new Array<Decoded | null>(files.length).fill(null);
  const keep = (d: Decoded): Decoded => (cache ? d : { pixels: NO_PIXELS, conversions: d.conversions });
  const failed: number[] = [];
  let done = 0;
  await forEachLimited(files, concurrency, async (file, i) => {
    try {
      decoded[i] = keep(await decodeImage(file, resolution, channels));
    } catch (err) {
      if (!(err instanceof UnusableImage)) throw err;
      failed.push(i);
    }
    done += 1;
    opts.onProgress?.(done, files.length);
  });
  // Decode the failures again one at a time: libvips keeps its error text per thread, so under
  // concurrency a failure can carry another decode's message (often just "Warning treated as error
  // due to failOn setting"). Alone, each file reports its own reason.
  const bad: BadImageFile[] = [];
  failed.sort((a, b) => a - b);
  for (const i of failed) {
    const file = files[i] as string;
    try {
      decoded[i] = keep(await decodeImage(file, resolution, channels));
      logger.debug({ file }, `image ${file} failed to decode in parallel but decoded alone`);
    } catch (err) {
      if (!(err instanceof UnusableImage)) throw err;
      bad.push({ path: file, reason: err.message });
    }
  }
  if (bad.length > 0 && badFiles === 'error') throw new BadImageFilesError(dir, files.length, bad);
  for (const f of bad) logger.warn({ file: f.path, reason: f.reason }, `skipping unusable image ${f.path}: ${f.reason}`);
  const usable = files.map((f, i) => ({ f, d: decoded[i] })).filter((x): x is { f: string; d: Decoded } => x.d !== null);
  if (usable.length === 0) throw new Error(`image folder ${dir}: none of its ${files.length} image files could be used (all skipped, see the warnings above)`);

  // Count conversions and log one summary line.
  const conversions: Record<string, number> = {};
  for (const { d } of usable) for (const c of d.conversions) conversions[c] = (conversions[c] ?? 0) + 1;
  const bytesPerImage = resolution * resolution * channels;
  logger.info(
    {
      dir,
      images: usable.length,
      skipped: bad.length,
      ignoredFiles: ignored.length,
      ...(ignored.length > 0 ? { ignoredExamples: ignored.slice(0, 5) } : {}),
      conversions,
      resolution,
      channels,
      cacheMB: cache ? Math.round((usable.length * bytesPerImage) / 2 ** 20) : 0,
    },
    'image folder loaded',
  );

  return new FolderDataset(
    dir,
    usable.map((u) => u.f),
    resolution,
    channels,
    conversions,
    bad,
    cache ? usable.map((u) => u.d.pixels) : null,
  );
}

/** The dataset behind {@link loadImageFolder}. */
class FolderDataset implements ImageFolderDataset {
  readonly size: number;
  readonly cached: boolean;

  constructor(
    readonly dir: string,
    readonly paths: readonly string[],
    readonly resolution: number,
    readonly channels: 1 | 3,
    readonly conversions: Readonly<Record<string, number>>,
    readonly skipped: readonly BadImageFile[],
    private readonly pixels: readonly Uint8Array[] | null,
  ) {
    this.size = paths.length;
    this.cached = pixels !== null;
  }

  async getBytes(i: number): Promise<Uint8Array> {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) throw new RangeError(`image folder ${this.dir}: index ${i} out of range [0, ${this.size})`);
    if (this.pixels) return this.pixels[i] as Uint8Array;
    const file = this.paths[i] as string;
    try {
      return (await decodeImage(file, this.resolution, this.channels)).pixels;
    } catch (err) {
      // The file was readable when the folder was loaded: it changed since.
      throw new Error(`image ${file} can no longer be read (it decoded when the folder was loaded): ${reasonOf(err)}`);
    }
  }

  async get(i: number): Promise<Float32Array> {
    return bytesToUnit(await this.getBytes(i));
  }

  name(i: number): string {
    return this.paths[i] ?? `${this.dir}#${i}`;
  }
}
