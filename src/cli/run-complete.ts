/**
 * The bodies of `proggan complete`, `proggan extend` and `proggan sample`, loaded only when one of
 * them actually runs (they pull in tfjs, sharp and the models).
 *
 * Input images are decoded by the same function as training data (`decodeImageFile` in
 * data/raster.ts, with the same messages): a full decode, alpha dropped, channels converted
 * explicitly to the model's (1 or 3), 16-bit and float rasters mapped to [-1, 1], every conversion logged. `complete` needs a 2R x 2R image at the model's corner side R: another
 * size is cover-cropped (centred) and resized to 2R x 2R with a warning saying so (`--no-resize`
 * makes it an error), and the output is 2R x 2R. `extend` uses the image at its own pixel scale.
 */
import { appendFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { splitCheckpointSpec } from '../training/checkpoint.js';
import { initBackend } from '../backend/index.js';
import { completeImage, completeImages, completerFromModels, type CornerCompleter } from '../completion/complete.js';
import { extendImage, planExtension } from '../completion/extend.js';
import { CORNERS, splitCorners, type Corner } from '../data/corners.js';
import { scoreBaselines, scoreCompletion } from '../metrics/baselines.js';
import type { ProGanTrainConfig } from '../models/progan/config.js';
import { reportTable, writeReportPng, type ReportRow } from './evaluate-report.js';
import { bytesToUnit, loadImageFolder } from '../data/images.js';
import { decodeImageFile, reasonOf, UnusableImage, unitToBytes, type MappingSpec } from '../data/raster.js';
import { syntheticTiles } from '../data/synthetic.js';
import { writeImageGrid, writeRowsGrid } from '../training/samples.js';
import { formatNumber } from '../training/stats.js';
import { UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { hashSeed } from '../util/random.js';
import { createCliLogger } from './logging.js';
import type { CompleteRequest, EvaluateRequest, ExtendRequest, ModelUseRequest, SampleRequest } from './complete.js';

/** A decoded input image: HWC values in [-1, 1]. */
export interface InputImage {
  /** Pixels, HWC, values in [-1, 1]. */
  data: Float32Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Channels (as asked for). */
  channels: 1 | 3;
  /** Conversions applied, e.g. `rgba->rgb`, `16bit->8bit`, `cover-crop`. */
  conversions: string[];
}

/**
 * Read one image file given by `flag` (e.g. `--image`) with the shared decoder of training data
 * ({@link decodeImageFile}: full decode, alpha dropped, converted to `channels`, 16-bit and float
 * rasters mapped by the image's percentiles or by `mapping`); optionally cover-cropped and resized
 * to `size` x `size`. Every failure is a {@link UsageError} naming the flag, the file and the reason.
 */
export async function readImageFile(file: string, channels: 1 | 3, flag: string, size?: number, mapping?: MappingSpec): Promise<InputImage> {
  const where = `${flag} ${file}`;
  await checkFile(file, flag);
  let img;
  try {
    img = await decodeImageFile(file, { channels, alpha: 'ignore', ...(mapping ? { mapping } : {}) });
  } catch (err) {
    if (err instanceof UnusableImage) throw new UsageError(`${where}: ${err.message}`);
    throw err;
  }
  const conversions = img.conversions;
  let { width, height } = img;
  let data = img.data;
  // Cover-crop and resize when a size is asked for and differs.
  if (size !== undefined && (width !== size || height !== size)) {
    conversions.push(width !== height ? 'cover-crop' : 'resize');
    let im = sharp(unitToBytes(data), { raw: { width, height, channels } }).resize(size, size, { fit: 'cover', position: 'centre' });
    if (channels === 1) im = im.toColourspace('b-w');
    const out = await im.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    data = bytesToUnit(new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length));
    width = size;
    height = size;
  }
  return { data, width, height, channels, conversions };
}

/** Fail fast (before the model loads) when the file named by `flag` is not there. */
async function checkFile(file: string, flag: string): Promise<void> {
  const st = await stat(file).catch(() => null);
  if (st === null) throw new UsageError(`${flag} ${file}: no such file`);
  if (!st.isFile()) throw new UsageError(`${flag} ${file}: not a file`);
}

/** A trained run opened for completion. */
interface OpenModel {
  /** The completer (EMA generator + frozen encoder). */
  completer: CornerCompleter;
  /** Corner side R. */
  r: number;
  /** Channels. */
  channels: 1 | 3;
  /** Training step of the checkpoint. */
  step: number;
  /** The run's configuration. */
  config: ProGanTrainConfig;
  /** Release the networks. */
  dispose(): void;
}

/** The human summary of an `evaluate` record (what `--json` prints as one line). */
export function formatEvaluation(record: Record<string, unknown>, statsFile: string): string {
  const n = (k: string): string => (typeof record[k] === 'number' ? formatNumber(record[k] as number) : '?');
  const levels = Object.keys(record).filter((k) => /^swd\/\d+$/.test(k)).sort((a, b) => Number(b.slice(4)) - Number(a.slice(4)));
  return [
    `step ${n('step')}: ${n('images')} held-out images (${String(record['data'])}), generated corners ${n('resolution')}x${n('resolution')}`,
    `  SWD, lower is better:   mean ${n('swd/mean')}   ${levels.map((k) => `${k.slice(4)}px ${n(k)}`).join('   ')}`,
    `  MS-SSIM, diversity:     generated ${n('ms-ssim/generated')}   real ${n('ms-ssim/real')}   (close values: as varied as the data)`,
    `  appended to ${statsFile} (--json for one JSON line)`,
  ].join('\n');
}

/** Start the logger and the backend, and open the run directory named by `--checkpoint`. */
async function openModel(req: Omit<ModelUseRequest, 'out'>): Promise<{ log: Logger; model: OpenModel }> {
  const log = createCliLogger({ level: req.logLevel });
  await initBackend({
    ...(req.backend !== undefined ? { backend: req.backend } : {}),
    ...(req.threads !== undefined ? { threads: req.threads } : {}),
    logger: log,
  });
  // RUN, RUN/latest, RUN/best or RUN/step-N: one resolver reads them all.
  const { runDir } = splitCheckpointSpec(resolve(req.checkpoint));
  const st = await stat(runDir).catch(() => null);
  if (st === null || !st.isDirectory()) throw new UsageError(`--checkpoint ${req.checkpoint}: no such run directory (give the run directory of \`proggan train progan\`, optionally with /best, /latest or /step-N)`);
  const { loadProgan } = await import('../models/progan/run.js');
  let loaded: Awaited<ReturnType<typeof loadProgan>>;
  try {
    loaded = await loadProgan(resolve(req.checkpoint), { logger: log });
  } catch (err) {
    throw new UsageError(`--checkpoint ${req.checkpoint}: ${reasonOf(err)}`);
  }
  const { generator, encoder, config, step, resolution: r, alpha } = loaded;
  try {
    const channels = config.data.channels;
    const completer = completerFromModels(generator, encoder, { zDim: config.progan.zDim, resolution: r, alpha });
    log.info({ runDir, step, cornerResolution: r, alpha, channels }, `model: ${runDir} at step ${step}, corners ${r}x${r}, ${channels} channel(s)`);
    if (r < config.progan.maxCornerResolution) {
      log.warn({ cornerResolution: r, maxCornerResolution: config.progan.maxCornerResolution },
        `the run is still growing: its generator makes ${r}x${r} corners (of ${config.progan.maxCornerResolution} at the end), so completion works on ${2 * r}x${2 * r} images`);
    }
    return {
      log,
      model: {
        completer,
        r,
        channels,
        step,
        config,
        dispose() {
          generator.dispose();
          encoder.dispose();
        },
      },
    };
  } catch (err) {
    generator.dispose();
    encoder.dispose();
    throw err;
  }
}

/** Write one HWC image in [-1, 1] as a PNG (byte-exact for pixels that came from an 8-bit file). */
async function writeImage(file: string, img: Float32Array, h: number, w: number, c: 1 | 3): Promise<void> {
  await writeImageGrid(file, img, [1, h, w, c], { padding: 0 });
}

/** Run a parsed `proggan complete` request. */
export async function runComplete(req: CompleteRequest): Promise<void> {
  await checkFile(req.image, '--image');
  const { log, model } = await openModel(req);
  try {
    const size = 2 * model.r;
    const probe = await readImageFile(req.image, model.channels, '--image');
    let img = probe;
    if (probe.width !== size || probe.height !== size) {
      if (!req.resize) {
        throw new UsageError(`--image ${req.image} is ${probe.width}x${probe.height}, but the model completes ${size}x${size} images ` +
          `(corners of ${model.r} px); resize it, or leave out --no-resize to have it cover-cropped and resized`);
      }
      img = await readImageFile(req.image, model.channels, '--image', size);
      log.warn({ image: req.image, from: [probe.width, probe.height], to: [size, size] },
        `--image ${req.image} is ${probe.width}x${probe.height}: cover-cropped and resized to ${size}x${size}, the model's image size; the output is ${size}x${size}`);
    }
    if (img.conversions.length > 0) log.info({ image: req.image, conversions: img.conversions }, `--image ${req.image}: ${img.conversions.join(', ')}`);
    const out = completeImage(img.data, req.missing, model.completer, req.seed);
    await writeImage(req.out, out, size, size, model.channels);
    log.info({ out: req.out, missing: req.missing, seed: req.seed }, `wrote ${req.out}: ${req.image} with its ${req.missing} corner generated`);
  } finally {
    model.dispose();
  }
}

/** Run a parsed `proggan extend` request. */
export async function runExtend(req: ExtendRequest): Promise<void> {
  await checkFile(req.image, '--image');
  const { log, model } = await openModel(req);
  try {
    const r = model.r;
    // Scene runs: the value mapping stored at training, so 16-bit/float inputs map exactly as training data did.
    const mapping = await storedMapping(model.config);
    const img = await readImageFile(req.image, model.channels, '--image', undefined, mapping);
    if (img.width < 2 * r || img.height < 2 * r) {
      throw new UsageError(`--image ${req.image} is ${img.width}x${img.height}; extension needs at least ${2 * r}x${2 * r} ` +
        `(each new ${r}x${r} tile is generated from a ${2 * r}x${2 * r} window of known pixels)`);
    }
    if (req.width < img.width) throw new UsageError(`--width ${req.width} is smaller than the width ${img.width} of --image ${req.image}; extend only grows images`);
    if (req.height < img.height) throw new UsageError(`--height ${req.height} is smaller than the height ${img.height} of --image ${req.image}; extend only grows images`);
    if (img.conversions.length > 0) log.info({ image: req.image, conversions: img.conversions }, `--image ${req.image}: ${img.conversions.join(', ')}`);
    const total = planExtension(img.height, img.width, req.height, req.width, r).steps.length;
    log.info({ from: [img.width, img.height], to: [req.width, req.height], tiles: total },
      `extending ${img.width}x${img.height} to ${req.width}x${req.height}: ${total} tiles of ${r}x${r}`);
    const every = Math.max(1, Math.ceil(total / 10));
    const out = extendImage(img.data, img.height, img.width, model.channels, req.height, req.width, model.completer, req.seed, {
      onTile: (done, n) => {
        if (done % every === 0 || done === n) log.info({ done, total: n }, `tiles ${done}/${n}`);
      },
    });
    await writeImage(req.out, out, req.height, req.width, model.channels);
    log.info({ out: req.out }, `wrote ${req.out} (${req.width}x${req.height})`);
  } finally {
    model.dispose();
  }
}

/** The value mapping a scene run stored in its config (undefined for other runs). */
async function storedMapping(config: ProGanTrainConfig): Promise<MappingSpec | undefined> {
  const d = config.data;
  if (d.valueMap === undefined || d.mappingLow === undefined || d.mappingHigh === undefined) return undefined;
  const { parseValueMap } = await import('../data/scene-data.js');
  return parseValueMap(d.valueMap, d.channels, d.mappingLow, d.mappingHigh);
}

/**
 * Held-out images for `sample`: for a scene run, its own held-out windows (or windows of the scenes
 * in --data) cut like training data and brought to the generator's current side; otherwise
 * {@link heldOutImages}.
 */
async function modelHeldOut(req: { data?: string; n: number; seed: number }, model: OpenModel, log: Logger): Promise<Float32Array[]> {
  const data = model.config.data;
  if (data.dir === undefined) return heldOutImages(req, 2 * model.r, model.channels, log);
  const { openHeldOutWindows } = await import('../data/scene-data.js');
  const maxR = model.config.progan.maxCornerResolution;
  const ds = await openHeldOutWindows({ ...data, dir: data.dir }, 2 * maxR, req.n, req.data, log);
  const out: Float32Array[] = [];
  for (let i = 0; i < ds.size; i++) out.push(boxDownscale(await ds.get(i), 2 * maxR, 2 * model.r, model.channels));
  return out;
}

/** Images per completer call in `sample`. */
const SAMPLE_BATCH = 16;
/** Images per grid row group in `sample`. */
const SAMPLE_COLS = 8;

/** Run a parsed `proggan sample` request. */
/** A held-out folder's first `n` images (validated like training data), or `n` procedural tiles with a seed of their own. */
async function heldOutImages(req: { data?: string; n: number; seed: number }, size: number, c: 1 | 3, log: Logger): Promise<Float32Array[]> {
  const reals: Float32Array[] = [];
  if (req.data !== undefined) {
    const st = await stat(req.data).catch(() => null);
    if (st === null || !st.isDirectory()) throw new UsageError(`--data ${req.data}: no such folder`);
    const ds = await loadImageFolder(req.data, { resolution: size, channels: c, logger: log });
    const n = Math.min(req.n, ds.size);
    if (n < req.n) log.warn({ data: req.data, images: ds.size }, `--data ${req.data} holds ${ds.size} images; using ${n}, not --n ${req.n}`);
    for (let i = 0; i < n; i++) reals.push(await ds.get(i));
  } else {
    const seed = hashSeed('proggan-sample-held-out', req.seed);
    const ds = syntheticTiles({ count: req.n, resolution: size, channels: c, seed });
    for (let i = 0; i < req.n; i++) reals.push(ds.generate(i));
    log.info({ seed }, `images: ${req.n} procedural tiles (seed ${seed}, not a training seed); pass --data DIR for held-out images`);
  }
  return reals;
}

/** Box-average HWC windows of side `from` down to side `to` (an integer factor). */
function boxDownscale(img: Float32Array, from: number, to: number, c: number): Float32Array {
  if (from === to) return img;
  const f = from / to;
  const out = new Float32Array(to * to * c);
  for (let y = 0; y < to; y++) {
    for (let x = 0; x < to; x++) {
      for (let k = 0; k < c; k++) {
        let sum = 0;
        for (let dy = 0; dy < f; dy++) for (let dx = 0; dx < f; dx++) sum += img[((y * f + dy) * from + x * f + dx) * c + k] as number;
        out[(y * to + x) * c + k] = sum / (f * f);
      }
    }
  }
  return out;
}

/**
 * `proggan evaluate`: complete the bottom-right corner of held-out windows and score the completions
 * beside trivial baselines on the same windows (the neighbouring corner mirrored, a flat fill with
 * the neighbours' mean, other real corners as the real-vs-real floor): SWD (x1e3), paired L1/L2,
 * per-channel mean error, MS-SSIM diversity, seam energy. Scene runs use their own held-out windows
 * (the in-run metrics' set and count) unless --data names other scenes. Prints a table and one JSON
 * line, appends the record to stats.jsonl and writes evaluate-step-N.png in the run directory.
 */
export async function runEvaluate(req: EvaluateRequest): Promise<Record<string, number>> {
  const { log, model } = await openModel(req);
  try {
    const c = model.channels;
    const maxR = model.config.progan.maxCornerResolution;
    const data = model.config.data;
    let reals: Float32Array[];
    let source: string;
    if (data.dir !== undefined) {
      const { openHeldOutWindows } = await import('../data/scene-data.js');
      const n = req.n ?? data.evalWindows;
      let ds;
      try {
        ds = await openHeldOutWindows({ ...data, dir: data.dir }, 2 * maxR, n, req.data, log);
      } catch (err) {
        throw err instanceof UsageError ? new UsageError(`--checkpoint ${req.checkpoint}: ${err.message}`) : err;
      }
      reals = [];
      for (let i = 0; i < ds.size; i++) reals.push(boxDownscale(await ds.get(i), 2 * maxR, 2 * model.r, c));
      source = req.data ?? (data.evalDir !== undefined ? data.evalDir : `held-out scenes of ${data.dir} (split seed ${data.splitSeed}, fraction ${data.evalFraction})`);
    } else {
      reals = await heldOutImages({ ...req, n: req.n ?? 64 }, 2 * model.r, c, log);
      source = req.data ?? 'procedural';
    }
    const size = 2 * model.r;
    if (reals.length < 2) throw new UsageError(`--n: SWD needs at least 2 images, got ${reals.length}`);
    const per = size * size * c;
    const windows = new Float32Array(reals.length * per);
    reals.forEach((img, i) => windows.set(img, i * per));
    const fake = new Float32Array(reals.length * model.r * model.r * c);
    for (let b = 0; b < reals.length; b += SAMPLE_BATCH) {
      const part = reals.slice(b, b + SAMPLE_BATCH);
      const outs = completeImages(part, 'br', model.completer, hashSeed(req.seed, 'evaluate', b));
      part.forEach((_, k) => fake.set(splitCorners(outs[k] as Float32Array, size, c).br, (b + k) * model.r * model.r * c));
    }
    const shape: [number, number, number, number] = [reals.length, size, size, c];
    const opts = { seed: 1 };
    const rows: ReportRow[] = [{ name: 'model', scores: scoreCompletion(windows, shape, fake, opts) }];
    for (const [name, scores] of Object.entries(scoreBaselines(windows, shape, opts))) rows.push({ name, scores });
    const flat: Record<string, number> = { images: reals.length, resolution: model.r };
    for (const r of rows) {
      const s = r.scores;
      const put = (k: string, v: number | null) => {
        if (v !== null && Number.isFinite(v)) flat[`${r.name}/${k}`] = v;
      };
      put('swd', s.swd);
      put('l1', s.l1);
      put('l2', s.l2);
      s.channelMeanError.forEach((v, k) => put(`channel_mean_err/${k}`, v));
      put('seam', s.seam);
      put('seam_ratio', s.seamRatio);
      put('ms_ssim', s.msSsim);
    }
    const metrics: Record<string, number> = { ...flat, 'swd/mean': rows[0]?.scores.swd ?? Number.NaN };
    const runDir = splitCheckpointSpec(resolve(req.checkpoint)).runDir;
    const record = { step: model.step, kind: 'evaluate', data: source, ...metrics, time: Date.now() / 1000 };
    appendFileSync(join(runDir, 'stats.jsonl'), `${JSON.stringify(record)}\n`);
    const title = `proggan evaluate: step ${model.step}, ${reals.length} held-out ${size}x${size} windows, bottom-right ${model.r}x${model.r} corner, noise seed ${req.seed}`;
    const png = join(runDir, `evaluate-step-${String(model.step).padStart(8, '0')}.png`);
    await writeReportPng(png, title, rows, `data: ${source}. Values in [-1, 1]; seam / real = cross-edge gradient energy vs the real windows'; MS-SSIM among completed corners (lower = more diverse).`);
    process.stdout.write(req.json ? `${JSON.stringify(record)}\n` : `${title}\n${reportTable(rows)}\nreal windows' seam energy: ${rows[0]?.scores.seamReal.toFixed(4)}; table image: ${png}\nappended to ${join(runDir, 'stats.jsonl')}\n`);
    return metrics;
  } finally {
    model.dispose();
  }
}

export async function runSample(req: SampleRequest): Promise<void> {
  const { log, model } = await openModel(req);
  try {
    const size = 2 * model.r;
    const c = model.channels;

    const reals = await modelHeldOut(req, model, log);

    // Complete them, batched per missing corner.
    const missingOf = (i: number): Corner => (req.missing === 'all' ? (CORNERS[i % 4] as Corner) : req.missing);
    const completed: Float32Array[] = new Array<Float32Array>(reals.length);
    for (const corner of CORNERS) {
      const idx = reals.map((_, i) => i).filter((i) => missingOf(i) === corner);
      for (let b = 0; b < idx.length; b += SAMPLE_BATCH) {
        const part = idx.slice(b, b + SAMPLE_BATCH);
        const outs = completeImages(part.map((i) => reals[i] as Float32Array), corner, model.completer, hashSeed(req.seed, corner, b));
        part.forEach((i, k) => (completed[i] = outs[k] as Float32Array));
      }
    }

    // Grid: per group of up to 8 images, a row of the real images, a row with the missing corner
    // greyed out (value 0), and a row of completions.
    const r = model.r;
    const masked = reals.map((img, i) => {
      const out = img.slice();
      const corner = missingOf(i);
      const oy = corner[0] === 'b' ? r : 0;
      const ox = corner[1] === 'r' ? r : 0;
      for (let y = oy; y < oy + r; y++) out.fill(0, ((y * size) + ox) * c, ((y * size) + ox + r) * c);
      return out;
    });
    const concat = (arrs: Float32Array[]): Float32Array => {
      const out = new Float32Array(arrs.reduce((s, a) => s + a.length, 0));
      let o = 0;
      for (const a of arrs) {
        out.set(a, o);
        o += a.length;
      }
      return out;
    };
    const rows: Float32Array[] = [];
    for (let g = 0; g < reals.length; g += SAMPLE_COLS) {
      rows.push(concat(reals.slice(g, g + SAMPLE_COLS)), concat(masked.slice(g, g + SAMPLE_COLS)), concat(completed.slice(g, g + SAMPLE_COLS)));
    }
    await writeRowsGrid(req.out, rows, [size, size, c], { scale: Math.max(1, Math.floor(64 / size)) });
    log.info({ out: req.out, images: reals.length, missing: req.missing },
      `wrote ${req.out}: ${reals.length} images in row groups of real / missing corner greyed / completed`);
  } finally {
    model.dispose();
  }
}
