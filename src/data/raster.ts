/**
 * Rasters of any bit depth read region by region, and the explicit value mapping that turns their
 * samples into model values in [-1, 1].
 *
 * TIFF/GeoTIFF files are read with the `geotiff` package (pure JS: uint8/uint16/int16/float32,
 * tiled or striped, pixel- or band-interleaved, only the tiles/strips a region touches are decoded);
 * PNG, JPEG and WebP with sharp (a region is extracted in libvips' streaming pipeline, so a window of
 * a 16000 x 16000 PNG never holds the whole image). Invalid pixels (the nodata value, NaN, alpha 0)
 * are kept in a mask. {@link decodeImageFile} is the one decoder of whole images used by training
 * folders and by the CLI's `--image` inputs.
 */

import { access } from 'node:fs/promises';
import { fromFile, type GeoTIFF, type GeoTIFFImage } from 'geotiff';
import sharp, { type Metadata } from 'sharp';

/** Why a file cannot be used; the message is the reason shown to the user (without the path). */
export class UnusableImage extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnusableImage';
  }
}

/** What a raster file holds, read from its header. */
export interface RasterHeader {
  /** The file. */
  file: string;
  /** Which decoder reads it. */
  decoder: 'geotiff' | 'sharp';
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Bands in the file, alpha included. */
  bands: number;
  /** Sample type, e.g. `uint8`, `uint16`, `int16`, `float32`. */
  sampleType: string;
  /** Tiled (true) or striped / not a TIFF (false). */
  tiled: boolean;
  /** Pixel-interleaved (`pixel`) or band-interleaved (`band`, TIFF PlanarConfiguration 2). */
  interleave: 'pixel' | 'band';
  /** The nodata value in use (given, or the file's tag when it fits the sample type), or null. */
  nodata: number | null;
  /** 0-based index of the alpha band, or null. */
  alphaBand: number | null;
  /** Band layout in words, e.g. `grayscale`, `rgba`, `palette`, `13-band`. */
  layout: string;
}

/** How the bands of a raster are chosen and masked. */
export interface RasterOptions {
  /** 1-based bands to read, in order (e.g. `[1, 2, 3]` or `[1]` for one SAR band); default every non-alpha band. */
  bands?: readonly number[];
  /** Channels wanted: 1 or 3; bands are converted (grey replicated, RGB to luma, first 3 of 4) and each conversion counted. Default: the bands' count. */
  channels?: number;
  /** Nodata value overriding the file's tag; pixels equal to it in any band are invalid. NaN samples are always invalid. */
  nodata?: number;
  /** Alpha band as a mask (alpha 0 = invalid) or ignored; default 'mask'. */
  alpha?: 'mask' | 'ignore';
}

/** Raw samples of a region. */
export interface RasterRegion {
  /** Width of the region. */
  width: number;
  /** Height of the region. */
  height: number;
  /** Channels of `data`. */
  channels: number;
  /** HWC raw sample values (as stored in the file, not mapped), after band selection and channel conversion. */
  data: Float32Array;
  /** 1 where the pixel is valid, 0 where it is nodata, NaN or transparent. */
  valid: Uint8Array;
}

const SHARP_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'webp']);

/** The decoder's message as one line. */
export function reasonOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied: the file is not readable by this user (check its mode, e.g. chmod a+r)';
  if (code === 'ENOENT') return 'no such file (it was removed or is a dangling link)';
  if (code === 'EISDIR') return 'is a folder, not a file';
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n').map((s) => s.trim()).filter((s) => s.length > 0).join('; ') || 'unknown decode error';
}

function sampleTypeName(format: number, bits: number): string {
  const kind = format === 3 ? 'float' : format === 2 ? 'int' : 'uint';
  return `${kind}${bits}`;
}

/** Whether `v` can be stored in samples of `type`. */
function fitsType(v: number, type: string): boolean {
  if (Number.isNaN(v)) return type.startsWith('float');
  if (type.startsWith('float')) return true;
  if (!Number.isInteger(v)) return false;
  const bits = Number(type.replace(/\D/g, ''));
  if (type.startsWith('uint')) return v >= 0 && v < 2 ** bits;
  return v >= -(2 ** (bits - 1)) && v < 2 ** (bits - 1);
}

/**
 * An open raster read region by region. Create with {@link openRaster}; call {@link RasterSource.close}
 * when done.
 */
export interface RasterSource {
  /** The file's header. */
  readonly header: RasterHeader;
  /** Channels every region has. */
  readonly channels: number;
  /** Conversions applied to every region (e.g. `nodata-tag-ignored`, `exif-orientation`). */
  readonly conversions: readonly string[];
  /** Band selection / channel conversions applied to every region (e.g. `grayscale->rgb`, `4-band->first-3`). */
  readonly channelConversions: readonly string[];
  /** Raw samples of the region at (x, y) of size w x h, which must lie inside the image. */
  read(x: number, y: number, w: number, h: number): Promise<RasterRegion>;
  /** Release the file. */
  close(): Promise<void>;
}

/** Resolve the band selection and channel conversion shared by both decoders. */
function planBands(
  file: string,
  nBands: number,
  alphaBand: number | null,
  opts: RasterOptions,
): { bands: number[]; channels: number; conversions: string[] } {
  const conversions: string[] = [];
  let bands: number[];
  if (opts.bands !== undefined) {
    if (opts.bands.length === 0) throw new UnusableImage('bands is empty; give 1-based band numbers, e.g. --bands 1,2,3');
    for (const b of opts.bands) {
      if (!Number.isInteger(b) || b < 1 || b > nBands) throw new UnusableImage(`band ${b} does not exist (the file has bands 1..${nBands}); fix --bands`);
    }
    bands = opts.bands.map((b) => b - 1);
  } else {
    bands = [];
    for (let b = 0; b < nBands; b++) if (b !== alphaBand) bands.push(b);
  }
  const k = bands.length;
  const want = opts.channels ?? k;
  if (want !== k) {
    if (want === 3 && k === 1) conversions.push('grayscale->rgb');
    else if (want === 1 && (k === 3 || k === 4) && opts.bands === undefined) conversions.push(`${k === 3 ? 'rgb' : '4-band'}->grayscale`);
    else if (want === 3 && k === 4 && opts.bands === undefined) conversions.push('4-band->first-3');
    else {
      throw new UnusableImage(
        `has ${k} band${k === 1 ? '' : 's'} where ${want} channel${want === 1 ? ' is' : 's are'} wanted; choose the bands, e.g. --bands ${want === 1 ? '1' : '1,2,3'} (file ${file} has ${nBands})`,
      );
    }
  }
  return { bands, channels: want, conversions };
}

/** Turn band-selected samples (k per pixel) into `channels` per pixel, in place order HWC. */
function convertChannels(src: Float32Array, n: number, k: number, channels: number): Float32Array {
  if (k === channels) return src;
  const out = new Float32Array(n * channels);
  for (let p = 0; p < n; p++) {
    if (channels === 3 && k === 1) {
      const v = src[p] as number;
      out[p * 3] = v;
      out[p * 3 + 1] = v;
      out[p * 3 + 2] = v;
    } else if (channels === 1) {
      out[p] = 0.299 * (src[p * k] as number) + 0.587 * (src[p * k + 1] as number) + 0.114 * (src[p * k + 2] as number);
    } else {
      for (let c = 0; c < channels; c++) out[p * channels + c] = src[p * k + c] as number;
    }
  }
  return out;
}

class GeoTiffSource implements RasterSource {
  constructor(
    readonly header: RasterHeader,
    readonly channels: number,
    readonly conversions: readonly string[],
    readonly channelConversions: readonly string[],
    private readonly tiff: GeoTIFF,
    private readonly image: GeoTIFFImage,
    private readonly bands: readonly number[],
    private readonly maskAlpha: boolean,
  ) {}

  async read(x: number, y: number, w: number, h: number): Promise<RasterRegion> {
    checkRegion(this.header, x, y, w, h);
    const samples = [...this.bands];
    const alpha = this.maskAlpha ? this.header.alphaBand : null;
    if (alpha !== null) samples.push(alpha);
    let raw;
    try {
      raw = await this.image.readRasters({ window: [x, y, x + w, y + h], samples, interleave: true });
    } catch (err) {
      throw new UnusableImage(`the raster does not decode (${reasonOf(err)}); the file may be truncated, corrupt or use an unsupported compression`);
    }
    const arr = raw as unknown as ArrayLike<number>;
    const n = w * h;
    const s = samples.length;
    const k = this.bands.length;
    const sel = new Float32Array(n * k);
    const valid = new Uint8Array(n).fill(1);
    const nodata = this.header.nodata;
    for (let p = 0; p < n; p++) {
      let ok = true;
      for (let b = 0; b < k; b++) {
        const v = arr[p * s + b] as number;
        if (Number.isNaN(v) || v === nodata) ok = false;
        sel[p * k + b] = v;
      }
      if (alpha !== null && (arr[p * s + k] as number) === 0) ok = false;
      if (!ok) valid[p] = 0;
    }
    return { width: w, height: h, channels: this.channels, data: convertChannels(sel, n, k, this.channels), valid };
  }

  async close(): Promise<void> {
    const r = this.tiff.close();
    if (r) await r;
  }
}

class SharpSource implements RasterSource {
  constructor(
    readonly header: RasterHeader,
    readonly channels: number,
    readonly conversions: readonly string[],
    readonly channelConversions: readonly string[],
    private readonly bands: readonly number[],
    private readonly maskAlpha: boolean,
    private readonly depth: 'uchar' | 'ushort',
  ) {}

  async read(x: number, y: number, w: number, h: number): Promise<RasterRegion> {
    checkRegion(this.header, x, y, w, h);
    let out;
    try {
      let img = sharp(this.header.file, { failOn: 'warning', autoOrient: true, limitInputPixels: false, sequentialRead: true });
      if (x !== 0 || y !== 0 || w !== this.header.width || h !== this.header.height) img = img.extract({ left: x, top: y, width: w, height: h });
      // Keep the stored interpretation (libvips would otherwise turn 16-bit grey into sRGB).
      const grey = this.header.bands <= 2;
      img = img.toColourspace(grey ? (this.depth === 'ushort' ? 'grey16' : 'b-w') : this.depth === 'ushort' ? 'rgb16' : 'srgb');
      out = await img.raw({ depth: this.depth }).toBuffer({ resolveWithObject: true });
    } catch (err) {
      throw new UnusableImage(`the image does not decode (${reasonOf(err)}); the file may be truncated or corrupt`);
    }
    const s = out.info.channels;
    if (s !== this.header.bands) throw new UnusableImage(`decoded to ${s} bands where the header says ${this.header.bands}`);
    const buf = out.data;
    const arr: ArrayLike<number> =
      this.depth === 'ushort' ? new Uint16Array(buf.buffer, buf.byteOffset, buf.length / 2) : new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
    const n = w * h;
    const k = this.bands.length;
    const sel = new Float32Array(n * k);
    const valid = new Uint8Array(n).fill(1);
    const alpha = this.maskAlpha ? this.header.alphaBand : null;
    const nodata = this.header.nodata;
    for (let p = 0; p < n; p++) {
      let ok = true;
      for (let b = 0; b < k; b++) {
        const v = arr[p * s + (this.bands[b] as number)] as number;
        if (v === nodata) ok = false;
        sel[p * k + b] = v;
      }
      if (alpha !== null && (arr[p * s + alpha] as number) === 0) ok = false;
      if (!ok) valid[p] = 0;
    }
    return { width: w, height: h, channels: this.channels, data: convertChannels(sel, n, k, this.channels), valid };
  }

  async close(): Promise<void> {
    // sharp opens the file per read.
  }
}

function checkRegion(h: RasterHeader, x: number, y: number, w: number, hh: number): void {
  if (![x, y, w, hh].every(Number.isInteger) || x < 0 || y < 0 || w < 1 || hh < 1 || x + w > h.width || y + hh > h.height) {
    throw new RangeError(`${h.file}: region ${w}x${hh} at (${x}, ${y}) is not inside the ${h.width}x${h.height} image`);
  }
}

function sharpSourceKind(meta: Metadata): string {
  if (meta.isPalette) return meta.hasAlpha ? 'palette+alpha' : 'palette';
  if (meta.space === 'cmyk') return 'cmyk';
  const kinds: Record<number, string> = { 1: 'grayscale', 2: 'grayscale+alpha', 3: 'rgb', 4: 'rgba' };
  return kinds[meta.channels ?? 0] ?? `${String(meta.channels)}-band`;
}

/**
 * Open a raster for region reads: TIFF/GeoTIFF through `geotiff`, PNG/JPEG/WebP through sharp.
 * Only the header is read here.
 *
 * @throws UnusableImage with a reason (permission, not an image, bad band choice, ...).
 */
export async function openRaster(file: string, opts: RasterOptions = {}): Promise<RasterSource> {
  const ext = file.slice(file.lastIndexOf('.') + 1).toLowerCase();
  const maskAlpha = (opts.alpha ?? 'mask') === 'mask';
  if (!SHARP_EXTENSIONS.has(ext)) {
    let tiff: GeoTIFF;
    try {
      tiff = await fromFile(file);
    } catch (err) {
      const r = reasonOf(err);
      throw new UnusableImage(r.startsWith('permission') || r.startsWith('no such') ? r : `not a readable TIFF (${r}); give a GeoTIFF/TIFF, PNG, JPEG or WebP file`);
    }
    try {
      const image = await tiff.getImage(0);
      const bands = image.getSamplesPerPixel();
      const type = sampleTypeName(image.getSampleFormat(0), image.getBitsPerSample(0));
      for (let b = 1; b < bands; b++) {
        if (sampleTypeName(image.getSampleFormat(b), image.getBitsPerSample(b)) !== type) throw new UnusableImage('bands have different sample types; convert the file to one type');
      }
      const conversions: string[] = [];
      const extra = image.fileDirectory.getValue('ExtraSamples') as ArrayLike<number> | number | undefined;
      const extras: number[] = extra === undefined ? [] : typeof extra === 'number' ? [extra] : Array.from(extra);
      let alphaBand: number | null = null;
      extras.forEach((v, i) => {
        if ((v === 1 || v === 2) && alphaBand === null) alphaBand = bands - extras.length + i;
      });
      let nodata: number | null = opts.nodata ?? null;
      if (opts.nodata === undefined) {
        const tag = image.getGDALNoData();
        if (tag !== null) {
          if (fitsType(tag, type)) nodata = tag;
          else conversions.push('nodata-tag-ignored');
        }
      }
      const plan = planBands(file, bands, alphaBand, opts);
      const header: RasterHeader = {
        file,
        decoder: 'geotiff',
        width: image.getWidth(),
        height: image.getHeight(),
        bands,
        sampleType: type,
        tiled: image.isTiled,
        interleave: image.planarConfiguration === 2 ? 'band' : 'pixel',
        nodata,
        alphaBand,
        layout: bands === 1 ? 'grayscale' : bands === 2 && alphaBand === 1 ? 'grayscale+alpha' : bands === 3 ? 'rgb' : bands === 4 && alphaBand === 3 ? 'rgba' : `${bands}-band`,
      };
      return new GeoTiffSource(header, plan.channels, conversions, plan.conversions, tiff, image, plan.bands, maskAlpha && alphaBand !== null);
    } catch (err) {
      const r = tiff.close();
      if (r) await r;
      if (err instanceof UnusableImage) throw err;
      throw new UnusableImage(`not a readable TIFF (${reasonOf(err)})`);
    }
  }
  let meta: Metadata;
  try {
    meta = await sharp(file, { failOn: 'warning', limitInputPixels: false }).metadata();
  } catch (err) {
    const r = reasonOf(err);
    const denied = await access(file).then(
      () => null,
      (e: unknown) => reasonOf(e),
    );
    if (denied) throw new UnusableImage(denied);
    throw new UnusableImage(`not a readable image (${r}); give a PNG, JPEG, WebP or GeoTIFF file`);
  }
  if (meta.depth !== 'uchar' && meta.depth !== 'ushort') {
    throw new UnusableImage(`unsupported sample format '${String(meta.depth)}' in a ${ext.toUpperCase()} file; store float or signed rasters as GeoTIFF`);
  }
  const conversions: string[] = [];
  if ((meta.pages ?? 1) > 1) conversions.push('multipage->first-page');
  if ((meta.orientation ?? 1) > 1) conversions.push('exif-orientation');
  const kind = sharpSourceKind(meta);
  if (kind === 'cmyk') throw new UnusableImage('CMYK images are not read; convert it to RGB');
  // Palettes decode expanded to RGB(A).
  const bands = meta.isPalette ? (meta.hasAlpha ? 4 : 3) : (meta.channels ?? 0);
  const alphaBand = meta.hasAlpha ? bands - 1 : null;
  const plan = planBands(file, bands, alphaBand, opts);
  const swap = (meta.orientation ?? 1) >= 5;
  const header: RasterHeader = {
    file,
    decoder: 'sharp',
    width: swap ? (meta.height ?? 0) : (meta.width ?? 0),
    height: swap ? (meta.width ?? 0) : (meta.height ?? 0),
    bands,
    sampleType: meta.depth === 'ushort' ? 'uint16' : 'uint8',
    tiled: false,
    interleave: 'pixel',
    nodata: opts.nodata ?? null,
    alphaBand,
    layout: kind,
  };
  return new SharpSource(header, plan.channels, conversions, plan.conversions, plan.bands, maskAlpha && alphaBand !== null, meta.depth);
}

// ---------------------------------------------------------------------------------------------
// Value mapping

/**
 * How raw samples become model values in [-1, 1]: `low` maps to -1 and `high` to +1 per channel,
 * values outside are clipped. For `db`, samples are first converted to decibels
 * (`20 log10` of amplitude, `10 log10` of power; `db` input is used as is) and low/high are in dB.
 * Plain JSON: store it in a run's config so evaluation and completion reuse it.
 */
export type ValueMapping =
  | { kind: 'fixed'; low: number[]; high: number[] }
  | { kind: 'percentile'; lowPercent: number; highPercent: number; low: number[]; high: number[] }
  | { kind: 'db'; input: 'amplitude' | 'power' | 'db'; low: number[]; high: number[] };

/** A mapping still to be computed from data (see {@link computeMapping}), or a complete one. */
export type MappingSpec =
  | ValueMapping
  | { kind: 'percentile'; lowPercent?: number; highPercent?: number }
  | { kind: 'db'; input: 'amplitude' | 'power' | 'db'; lowPercent?: number; highPercent?: number };

/** Whether a spec is already a complete mapping. */
export function isCompleteMapping(m: MappingSpec): m is ValueMapping {
  return 'low' in m && 'high' in m && Array.isArray(m.low) && Array.isArray(m.high);
}

/** Check a mapping (e.g. one read back from a config file) and return it. */
export function validateMapping(m: ValueMapping, channels: number): ValueMapping {
  if (m.low.length !== channels || m.high.length !== channels) {
    throw new RangeError(`value mapping has ${m.low.length}/${m.high.length} low/high values for ${channels} channels`);
  }
  for (let c = 0; c < channels; c++) {
    if (!Number.isFinite(m.low[c]) || !Number.isFinite(m.high[c]) || !((m.high[c] as number) > (m.low[c] as number))) {
      throw new RangeError(`value mapping channel ${c}: need finite low < high, got ${m.low[c]}..${m.high[c]}`);
    }
  }
  return m;
}

/** The raw value in dB for a `db` mapping; NaN for non-positive amplitude/power. */
function toDb(v: number, input: 'amplitude' | 'power' | 'db'): number {
  if (input === 'db') return v;
  if (!(v > 0)) return Number.NaN;
  return (input === 'amplitude' ? 20 : 10) * Math.log10(v);
}

/** The default mapping spec for a sample type: uint8 is fixed 0..255, anything else 2-98 % percentiles. */
export function defaultMappingSpec(sampleType: string, channels: number): MappingSpec {
  if (sampleType === 'uint8') return { kind: 'fixed', low: new Array<number>(channels).fill(0), high: new Array<number>(channels).fill(255) };
  return { kind: 'percentile', lowPercent: 2, highPercent: 98 };
}

/**
 * Map raw HWC samples to [-1, 1] with `m`. Invalid pixels (`valid[p] === 0`, or a sample that has
 * no dB value) become -1 and are cleared in `valid` (which is updated in place when given).
 */
export function applyMapping(data: Float32Array, channels: number, m: ValueMapping, valid?: Uint8Array): Float32Array {
  const out = new Float32Array(data.length);
  const n = data.length / channels;
  for (let p = 0; p < n; p++) {
    if (valid && valid[p] === 0) {
      out.fill(-1, p * channels, (p + 1) * channels);
      continue;
    }
    for (let c = 0; c < channels; c++) {
      let v = data[p * channels + c] as number;
      if (m.kind === 'db') v = toDb(v, m.input);
      if (Number.isNaN(v)) {
        out.fill(-1, p * channels, (p + 1) * channels);
        if (valid) valid[p] = 0;
        break;
      }
      const lo = m.low[c] as number;
      const hi = m.high[c] as number;
      const t = (v - lo) / (hi - lo);
      out[p * channels + c] = t <= 0 ? -1 : t >= 1 ? 1 : 2 * t - 1;
    }
  }
  return out;
}

/** The q-th percentile (0..100) of `values` (sorted in place), linear interpolation. */
export function percentile(values: Float64Array | number[], q: number): number {
  const a = values instanceof Float64Array ? values.sort() : Float64Array.from(values).sort();
  if (a.length === 0) return Number.NaN;
  const pos = (q / 100) * (a.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return (a[i] as number) * (1 - f) + (a[Math.min(i + 1, a.length - 1)] as number) * f;
}

/** Valid raw samples of a region, per channel (dB-converted for a db spec). */
export function channelSamples(region: RasterRegion, spec: MappingSpec, into: number[][]): void {
  const { channels, data, valid } = region;
  const n = region.width * region.height;
  for (let p = 0; p < n; p++) {
    if (valid[p] === 0) continue;
    for (let c = 0; c < channels; c++) {
      let v = data[p * channels + c] as number;
      if (spec.kind === 'db') v = toDb(v, spec.input);
      if (!Number.isNaN(v)) (into[c] as number[]).push(v);
    }
  }
}

/**
 * Complete a mapping spec from per-channel raw samples (e.g. gathered over a dataset with
 * {@link channelSamples}). A complete mapping is returned as is.
 *
 * @throws RangeError when a channel has no valid samples or its percentiles coincide (a constant dataset).
 */
export function mappingFromSamples(spec: MappingSpec, samples: number[][]): ValueMapping {
  if (isCompleteMapping(spec)) return validateMapping(spec, samples.length);
  const lowPercent = spec.lowPercent ?? 2;
  const highPercent = spec.highPercent ?? 98;
  if (!(lowPercent >= 0 && lowPercent < highPercent && highPercent <= 100)) throw new RangeError(`percentiles must satisfy 0 <= low < high <= 100, got ${lowPercent}-${highPercent}`);
  const low: number[] = [];
  const high: number[] = [];
  samples.forEach((s, c) => {
    if (s.length === 0) throw new RangeError(`channel ${c} has no valid samples to compute the value mapping from (all nodata?)`);
    const arr = Float64Array.from(s).sort();
    let lo = percentile(arr, lowPercent);
    let hi = percentile(arr, highPercent);
    if (!(hi > lo)) {
      // A near-constant channel: widen to the full sample range, or a unit step around the value.
      lo = arr[0] as number;
      hi = arr[arr.length - 1] as number;
      if (!(hi > lo)) hi = lo + 1;
    }
    low.push(lo);
    high.push(hi);
  });
  if (spec.kind === 'db') return { kind: 'db', input: spec.input, low, high };
  return { kind: 'percentile', lowPercent, highPercent, low, high };
}

/** Spread of mapped values: the 2-98 % range of valid mapped samples, in units of the [-1, 1] range (0..1). */
export function mappedSpread(mapped: Float32Array, channels: number, valid: Uint8Array): number {
  const vals: number[] = [];
  const n = valid.length;
  for (let p = 0; p < n; p++) if (valid[p] !== 0) for (let c = 0; c < channels; c++) vals.push(mapped[p * channels + c] as number);
  if (vals.length === 0) return 0;
  const a = Float64Array.from(vals).sort();
  return (percentile(a, 98) - percentile(a, 2)) / 2;
}

// ---------------------------------------------------------------------------------------------
// Whole images: the one decoder for training folders and CLI inputs

/** Full value range of integer sample types. */
const TYPE_RANGE: Record<string, [number, number]> = { uint8: [0, 255], uint16: [0, 65535], int16: [-32768, 32767], uint32: [0, 4294967295], int32: [-2147483648, 2147483647] };

/** A decoded whole image. */
export interface DecodedImage {
  /** HWC values in [-1, 1]. */
  data: Float32Array;
  /** 1 where valid. */
  valid: Uint8Array;
  /** Width. */
  width: number;
  /** Height. */
  height: number;
  /** Channels. */
  channels: number;
  /** The mapping used (store it to decode other images the same way). */
  mapping: ValueMapping;
  /** The file's header. */
  header: RasterHeader;
  /** Conversions applied (e.g. `rgba->rgb`, `percentile-2-98`, `grayscale->rgb`). */
  conversions: string[];
}

/** Options of {@link decodeImageFile}. */
export interface DecodeImageOptions extends RasterOptions {
  /** Mapping to use; default 0..255 for uint8 and the image's own 2-98 % percentiles otherwise. */
  mapping?: MappingSpec;
  /** Refuse images with more pixels than this (memory bound: 4 bytes x channels per pixel); default 2^27 (128 Mpx). */
  maxPixels?: number;
}

/**
 * Decode a whole image file (PNG/JPEG/WebP via sharp, TIFF/GeoTIFF via geotiff) to values in
 * [-1, 1] with an explicit value mapping. Alpha becomes the validity mask (dropped from the
 * channels); every conversion is listed.
 *
 * @throws UnusableImage with the reason (the caller adds the path or flag).
 */
export async function decodeImageFile(file: string, opts: DecodeImageOptions = {}): Promise<DecodedImage> {
  const src = await openRaster(file, opts);
  try {
    const { header } = src;
    const maxPixels = opts.maxPixels ?? 2 ** 27;
    if (header.width * header.height > maxPixels) {
      throw new UnusableImage(`is ${header.width}x${header.height}, more than the ${maxPixels} pixels decoded whole; read it as a scene (windows) instead`);
    }
    const conversions = [...src.conversions];
    const dst = src.channels === 3 ? 'rgb' : src.channels === 1 ? 'grayscale' : `${src.channels}-band`;
    if (opts.bands !== undefined) conversions.push(`bands-${opts.bands.join(',')}`);
    else if (header.layout !== dst) conversions.push(`${header.layout}->${dst}`);
    if (header.alphaBand !== null && opts.bands === undefined && (opts.alpha ?? 'mask') === 'mask') conversions.push('alpha->mask');
    const region = await src.read(0, 0, header.width, header.height);
    let mapping: ValueMapping;
    const spec = opts.mapping ?? defaultMappingSpec(header.sampleType, region.channels);
    if (isCompleteMapping(spec)) {
      mapping = validateMapping(spec, region.channels);
      if (header.sampleType !== 'uint8' || mapping.kind !== 'fixed') conversions.push(`${header.sampleType}-${mapping.kind}-range`);
    } else {
      const samples: number[][] = Array.from({ length: region.channels }, () => []);
      channelSamples(region, spec, samples);
      const range = TYPE_RANGE[header.sampleType];
      const constant = samples.every((a) => a.length > 0 && a.every((v) => v === a[0]));
      if (constant && range !== undefined && spec.kind === 'percentile') {
        // Percentiles of a constant image say nothing: use the sample type's full range.
        mapping = { kind: 'fixed', low: new Array<number>(region.channels).fill(range[0]), high: new Array<number>(region.channels).fill(range[1]) };
        conversions.push(`${header.sampleType}-full-range`);
      } else {
        try {
          mapping = mappingFromSamples(spec, samples);
        } catch (err) {
          throw new UnusableImage(reasonOf(err));
        }
        conversions.push(mapping.kind === 'db' ? `${mapping.input}->dB` : `${header.sampleType}-percentile-${spec.lowPercent ?? 2}-${spec.highPercent ?? 98}`);
      }
    }
    const valid = region.valid;
    const data = applyMapping(region.data, region.channels, mapping, valid);
    return { data, valid, width: header.width, height: header.height, channels: region.channels, mapping, header, conversions };
  } finally {
    await src.close();
  }
}

/** Values in [-1, 1] to 8-bit (exact inverse of `b / 127.5 - 1`). */
export function unitToBytes(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let k = 0; k < data.length; k++) {
    const v = Math.round(((data[k] as number) + 1) * 127.5);
    out[k] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}
