/**
 * `proggan complete`, `proggan extend` and `proggan sample`: use a trained conditional ProGAN run to
 * complete a missing corner, grow an image, or draw a grid of completions. Flags become typed
 * requests here; the handlers import the heavy code (tfjs, sharp, the models) lazily, so `--help`
 * and parsing never load tfjs.
 */
import type { Argv, CommandModule } from 'yargs';
import yargs from 'yargs';
import { BACKEND_NAMES, type BackendRequest } from '../backend/names.js';
import { CORNERS, type Corner } from '../data/corners.js';
import { UsageError } from '../util/errors.js';

/** Flags shared by the three commands. */
export interface ModelUseRequest {
  /** Run directory of a trained conditional ProGAN (its newest good checkpoint is used). */
  checkpoint: string;
  /** Output PNG path. */
  out: string;
  /** Seed of the generator noise; default 0. */
  seed: number;
  /** Backend request; default `PROGGAN_BACKEND` or auto. */
  backend?: BackendRequest;
  /** Threads for the native backend; default all cores. */
  threads?: number;
  /** Log level; default info. */
  logLevel: string;
}

/** A parsed `proggan complete` invocation. */
export interface CompleteRequest extends ModelUseRequest {
  /** The input image (2R x 2R at the model's corner side R, or resized to it). */
  image: string;
  /** Which corner to generate. */
  missing: Corner;
  /** Resize (cover-crop) an input that is not 2R x 2R; with false such an input is an error. Default true. */
  resize: boolean;
}

/** A parsed `proggan extend` invocation. */
export interface ExtendRequest extends ModelUseRequest {
  /** The input image (at least 2R x 2R, used at its own pixel scale). */
  image: string;
  /** Width of the result in pixels (>= the image's width). */
  width: number;
  /** Height of the result in pixels (>= the image's height). */
  height: number;
}

/** Which corners `proggan sample` generates: one corner for every image, or all four in turn. */
export type SampleMissing = Corner | 'all';

/** A parsed `proggan sample` invocation. */
export interface SampleRequest extends ModelUseRequest {
  /** Number of images in the grid; default 16. */
  n: number;
  /** Folder of held-out images; unset means procedural tiles drawn with a seed unlike training's. */
  data?: string;
  /** Missing corner of every image, or 'all' to cycle tl, tr, bl, br; default br. */
  missing: SampleMissing;
}

/** A parsed `proggan evaluate` invocation. */
export interface EvaluateRequest extends Omit<ModelUseRequest, 'out'> {
  /** Folder of held-out scenes; unset: the run's own held-out windows (scenes runs), or procedural tiles drawn with a seed unlike training's. */
  data?: string;
  /** Number of windows measured; unset: the run's data.evalWindows (the in-run metrics' count), 64 for procedural tiles. */
  n?: number;
  /** Print the result as one JSON line (for machines) instead of a human summary. Default false. */
  json?: boolean;
}

/** Add the `proggan evaluate` flags to a yargs instance. */
export function evaluateBuilder<T>(y: Argv<T>) {
  return y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'run directory of a trained conditional ProGAN (newest good checkpoint)' })
    .option('data', { type: 'string', describe: 'folder of held-out scenes, cut into windows like training data with the run\'s stored value mapping (default: the run\'s own held-out scenes, the windows its in-run metrics use; procedural tiles for runs without --data)' })
    .option('n', { type: 'number', describe: 'held-out windows to complete and measure (default: the run\'s --eval-windows, the in-run metrics\' count; 64 for procedural tiles)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as one JSON line instead of a summary' })
    .option('seed', { type: 'number', default: 0, describe: 'seed of the generator noise' })
    .option('backend', { type: 'string', choices: BACKEND_NAMES, describe: 'tensorflow | native | cpu | auto (default: PROGGAN_BACKEND or auto)' })
    .option('threads', { type: 'number', describe: 'threads for the native backend (default: all cores)' })
    .option('log-level', { type: 'string', default: 'warn', choices: ['trace', 'debug', 'info', 'warn', 'error'], describe: 'log level' });
}

/** Add the flags every command shares. */
function commonFlags<T>(y: Argv<T>) {
  return y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'run directory of a trained conditional ProGAN (newest good checkpoint)' })
    .option('out', { type: 'string', demandOption: true, describe: 'output PNG file' })
    .option('seed', { type: 'number', default: 0, describe: 'seed of the generator noise' })
    .option('backend', { type: 'string', choices: BACKEND_NAMES, describe: 'tensorflow | native | cpu | auto (default: PROGGAN_BACKEND or auto)' })
    .option('threads', { type: 'number', describe: 'threads for the native backend (default: all cores)' })
    .option('log-level', { type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error'], describe: 'log level' });
}

/** Add the `proggan complete` flags to a yargs instance. */
export function completeBuilder<T>(y: Argv<T>) {
  return commonFlags(y)
    .option('image', { type: 'string', demandOption: true, describe: 'input image: 2R x 2R at the model corner side R (others are cover-cropped and resized)' })
    .option('missing', { type: 'string', demandOption: true, choices: CORNERS, describe: 'the corner to generate: tl, tr, bl or br' })
    .option('resize', { type: 'boolean', default: true, describe: 'resize an input that is not 2R x 2R (--no-resize: fail instead)' });
}

/** Add the `proggan extend` flags to a yargs instance. */
export function extendBuilder<T>(y: Argv<T>) {
  return commonFlags(y)
    .option('image', { type: 'string', demandOption: true, describe: 'input image, at least 2R x 2R, used at its own pixel scale' })
    .option('width', { type: 'number', demandOption: true, describe: 'width of the result in pixels (>= the image width)' })
    .option('height', { type: 'number', demandOption: true, describe: 'height of the result in pixels (>= the image height)' });
}

/** Add the `proggan sample` flags to a yargs instance. */
export function sampleBuilder<T>(y: Argv<T>) {
  return commonFlags(y)
    .option('n', { type: 'number', default: 16, describe: 'number of images in the grid' })
    .option('data', { type: 'string', describe: 'folder of held-out images (default: procedural tiles with a held-out seed)' })
    .option('missing', { type: 'string', default: 'br', choices: [...CORNERS, 'all'], describe: 'corner to generate, or all (tl, tr, bl, br in turn)' });
}

type CompleteParsed = Awaited<ReturnType<ReturnType<typeof completeBuilder>['parse']>>;
type ExtendParsed = Awaited<ReturnType<ReturnType<typeof extendBuilder>['parse']>>;
type SampleParsed = Awaited<ReturnType<ReturnType<typeof sampleBuilder>['parse']>>;
type EvaluateParsed = Awaited<ReturnType<ReturnType<typeof evaluateBuilder>['parse']>>;
type CommonParsed = Awaited<ReturnType<ReturnType<typeof commonFlags>['parse']>>;

function positiveInt(v: number | undefined, flag: string): number {
  if (v === undefined || !Number.isInteger(v) || v < 1) throw new UsageError(`--${flag} must be a positive integer, got ${String(v)}`);
  return v;
}

/** A string flag given once and not empty (yargs makes a repeated flag an array). */
function nonEmpty(v: unknown, flag: string): string {
  if (Array.isArray(v)) throw new UsageError(`--${flag} is given ${v.length} times; give it once`);
  if (typeof v !== 'string' || v.trim() === '') throw new UsageError(`--${flag} must not be empty`);
  return v;
}

function toCommon(a: CommonParsed): ModelUseRequest {
  const out = nonEmpty(a.out, 'out');
  if (!/\.png$/i.test(out)) throw new UsageError(`--out ${out}: the output is written as PNG; give a file name ending in .png`);
  if (!Number.isFinite(a.seed)) throw new UsageError('--seed must be a number');
  if (Array.isArray(a.seed)) throw new UsageError('--seed is given more than once; give it once');
  const req: ModelUseRequest = { checkpoint: nonEmpty(a.checkpoint, 'checkpoint'), out, seed: a.seed, logLevel: a['log-level'] };
  if (a.backend !== undefined) req.backend = a.backend as BackendRequest;
  if (a.threads !== undefined) req.threads = positiveInt(a.threads, 'threads');
  return req;
}

/** Turn parsed `complete` flags into a {@link CompleteRequest}. */
export function toCompleteRequest(a: CompleteParsed): CompleteRequest {
  return { ...toCommon(a), image: nonEmpty(a.image, 'image'), missing: a.missing as Corner, resize: a.resize };
}

/** Turn parsed `extend` flags into an {@link ExtendRequest}. */
export function toExtendRequest(a: ExtendParsed): ExtendRequest {
  return { ...toCommon(a), image: nonEmpty(a.image, 'image'), width: positiveInt(a.width, 'width'), height: positiveInt(a.height, 'height') };
}

/** Turn parsed `sample` flags into a {@link SampleRequest}. */
export function toSampleRequest(a: SampleParsed): SampleRequest {
  const req: SampleRequest = { ...toCommon(a), n: positiveInt(a.n, 'n'), missing: a.missing as SampleMissing };
  if (req.n > 1024) throw new UsageError(`--n ${req.n} is more images than one grid should hold; use at most 1024`);
  if (a.data !== undefined) req.data = nonEmpty(a.data, 'data');
  return req;
}

/** A yargs parser for one command's flags that throws {@link UsageError} instead of exiting. */
function parserFor<T>(argv: string[], name: string, build: (y: Argv) => Argv<T>): T {
  const y = build(
    yargs(argv)
      .command('$0', name)
      .strict()
      .exitProcess(false)
      .fail((msg, err) => {
        throw err ?? new UsageError(msg);
      }),
  );
  return y.parseSync() as T;
}

/** Turn parsed `evaluate` flags into an {@link EvaluateRequest}. */
export function toEvaluateRequest(a: EvaluateParsed): EvaluateRequest {
  if (!Number.isFinite(a.seed)) throw new UsageError('--seed must be a number');
  const req: EvaluateRequest = { checkpoint: nonEmpty(a.checkpoint, 'checkpoint'), seed: a.seed, logLevel: a['log-level'] };
  if (a.n !== undefined) req.n = positiveInt(a.n, 'n');
  if (req.n !== undefined && req.n < 2) throw new UsageError('--n must be at least 2 (SWD compares sets)');
  if (a.data !== undefined) req.data = nonEmpty(a.data, 'data');
  if (a.backend !== undefined) req.backend = a.backend as BackendRequest;
  if (a.threads !== undefined) req.threads = positiveInt(a.threads, 'threads');
  if (a.json) req.json = true;
  return req;
}

/** Parse `proggan evaluate ...` arguments (without the leading `evaluate`) without running anything. */
export function parseEvaluateArgs(argv: string[]): EvaluateRequest {
  return toEvaluateRequest(parserFor(argv, 'evaluate', evaluateBuilder) as EvaluateParsed);
}

/** The yargs command module for `proggan evaluate`. */
export const evaluateCommand: CommandModule<object, EvaluateParsed> = {
  command: 'evaluate',
  describe: 'measure a ProGAN run on held-out windows beside trivial baselines (mirror, flat, real-vs-real): SWD, L1/L2, per-channel mean error, MS-SSIM, seam; a table, stats.jsonl and evaluate-step-N.png',
  builder: (y) => evaluateBuilder(y) as unknown as Argv<EvaluateParsed>,
  handler: async (argv) => {
    const req = toEvaluateRequest(argv);
    const { runEvaluate } = await import('./run-complete.js');
    await runEvaluate(req);
  },
};

/** Parse `proggan complete ...` arguments (without the leading `complete`) without running anything. */
export function parseCompleteArgs(argv: string[]): CompleteRequest {
  return toCompleteRequest(parserFor(argv, 'complete', completeBuilder) as CompleteParsed);
}

/** Parse `proggan extend ...` arguments (without the leading `extend`) without running anything. */
export function parseExtendArgs(argv: string[]): ExtendRequest {
  return toExtendRequest(parserFor(argv, 'extend', extendBuilder) as ExtendParsed);
}

/** Parse `proggan sample ...` arguments (without the leading `sample`) without running anything. */
export function parseSampleArgs(argv: string[]): SampleRequest {
  return toSampleRequest(parserFor(argv, 'sample', sampleBuilder) as SampleParsed);
}

/** The yargs command module for `proggan complete`. */
export const completeCommand: CommandModule<object, CompleteParsed> = {
  command: 'complete',
  describe: 'generate a missing corner of a 2R x 2R image with a trained ProGAN run',
  builder: (y) => completeBuilder(y) as unknown as Argv<CompleteParsed>,
  handler: async (argv) => {
    const req = toCompleteRequest(argv);
    const { runComplete } = await import('./run-complete.js');
    await runComplete(req);
  },
};

/** The yargs command module for `proggan extend`. */
export const extendCommand: CommandModule<object, ExtendParsed> = {
  command: 'extend',
  describe: 'grow an image to a larger size tile by tile with a trained ProGAN run',
  builder: (y) => extendBuilder(y) as unknown as Argv<ExtendParsed>,
  handler: async (argv) => {
    const req = toExtendRequest(argv);
    const { runExtend } = await import('./run-complete.js');
    await runExtend(req);
  },
};

/** The yargs command module for `proggan sample`. */
export const sampleCommand: CommandModule<object, SampleParsed> = {
  command: 'sample',
  describe: 'write a grid of corner completions of held-out (or procedural) images',
  builder: (y) => sampleBuilder(y) as unknown as Argv<SampleParsed>,
  handler: async (argv) => {
    const req = toSampleRequest(argv);
    const { runSample } = await import('./run-complete.js');
    await runSample(req);
  },
};
