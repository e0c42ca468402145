/**
 * The 3DGAN's commands besides `train 3dgan`: `proggan showers` (MC-like shower files), `proggan
 * validate` (physics report and plots of a run against MC) and `proggan generate` (showers to HDF5 in
 * the data's layout). Heavy code (tfjs, h5wasm, the model) loads inside the handlers.
 */
import type { Argv, CommandModule } from 'yargs';
import { BACKEND_NAMES, type BackendRequest } from '../backend/names.js';
import { UsageError } from '../util/errors.js';

function positiveInt(v: unknown, flag: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new UsageError(`--${flag} must be a positive integer, got ${String(v)}`);
  return v;
}

function numberList(v: unknown, flag: string, example: string): number[] {
  const s = Array.isArray(v) ? v.join(',') : String(v ?? '');
  const out = s.split(',').map((x) => x.trim()).filter((x) => x !== '').map(Number);
  if (out.length === 0 || !out.every((x) => Number.isFinite(x) && x > 0)) throw new UsageError(`--${flag} must be a comma-separated list of positive numbers, e.g. ${example}; got "${s}"`);
  return out;
}

function backendFlags<T>(y: Argv<T>) {
  return y
    .option('backend', { type: 'string', choices: BACKEND_NAMES, describe: 'tensorflow | native | cpu | auto (default: PROGGAN_BACKEND or auto)' })
    .option('threads', { type: 'number', describe: 'threads for the native backend (default: all cores)' })
    .option('log-level', { type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error'], describe: 'log level' });
}

interface BackendArgs {
  backend?: string;
  threads?: number;
  'log-level': string;
}

async function setup(a: BackendArgs) {
  const { createCliLogger } = await import('./logging.js');
  const { initBackend } = await import('../backend/index.js');
  const log = createCliLogger({ level: a['log-level'] });
  await initBackend({
    ...(a.backend !== undefined ? { backend: a.backend as BackendRequest } : {}),
    ...(a.threads !== undefined ? { threads: positiveInt(a.threads, 'threads') } : {}),
    logger: log,
  });
  return log;
}

interface ShowersArgs {
  out: string;
  files: number;
  events: number;
  seed: number;
  layout: string;
  'energy-range': string;
  'log-level': string;
}

/** `proggan showers --out DIR --files N --events M --seed S`: MC-like shower files in HDF5. */
export const showersCommand: CommandModule<object, ShowersArgs> = {
  command: 'showers',
  describe: 'write MC-like calorimeter shower files (HDF5, the 3DGAN data layout), deterministic per seed',
  builder: (y) => y
    .option('out', { type: 'string', demandOption: true, describe: 'output folder' })
    .option('files', { type: 'number', default: 10, describe: 'number of files' })
    .option('events', { type: 'number', default: 1000, describe: 'events per file' })
    .option('seed', { type: 'number', default: 1, describe: 'seed (equal seeds give equal files)' })
    .option('layout', { type: 'string', default: 'variable-angle', choices: ['variable-angle', 'fixed-angle'], describe: 'variable-angle (51x51x25, energy + theta) or fixed-angle (25^3, target)' })
    .option('energy-range', { type: 'string', default: '2,500', describe: 'primary energy range in GeV, lo,hi' })
    .option('log-level', { type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error'], describe: 'log level' }) as unknown as Argv<ShowersArgs>,
  handler: async (a) => {
    const files = positiveInt(a.files, 'files');
    const events = positiveInt(a.events, 'events');
    if (!Number.isInteger(a.seed)) throw new UsageError(`--seed must be an integer, got ${a.seed}`);
    const range = numberList(a['energy-range'], 'energy-range', '2,500');
    if (range.length !== 2 || (range[0] ?? 0) >= (range[1] ?? 0)) throw new UsageError(`--energy-range must be lo,hi GeV with lo < hi, got ${a['energy-range']}`);
    const { createCliLogger } = await import('./logging.js');
    const log = createCliLogger({ level: a['log-level'] });
    const { writeMcShowerFiles } = await import('../data/showers-dataset.js');
    const paths = await writeMcShowerFiles(a.out, { files, events, seed: a.seed, layout: a.layout === 'fixed-angle' ? 'fixed-angle' : 'variable-angle', energyRange: [range[0] ?? 2, range[1] ?? 500], logger: log });
    log.info({ out: a.out, files: paths.length, events }, `${paths.length} file(s) of ${events} MC-like showers in ${a.out}`);
  },
};

interface ValidateArgs extends BackendArgs {
  checkpoint: string;
  data?: string;
  out?: string;
  events?: number;
  newest: boolean;
}

/** `proggan validate --checkpoint RUN [--data FILE.h5]`: JSON report + PNG plots, GAN vs MC. */
export const validateCommand: CommandModule<object, ValidateArgs> = {
  command: 'validate',
  describe: 'physics validation of a 3DGAN run against MC: report.json and PNG plots (shapes, sampling fraction, spectra)',
  builder: (y) => backendFlags(y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'run directory of `proggan train 3dgan` (its best-by-physics checkpoint, else the newest)' })
    .option('data', { type: 'string', describe: 'MC HDF5 file or folder to compare with (default: the run\'s held-out set)' })
    .option('out', { type: 'string', describe: 'output folder (default: RUN/validation)' })
    .option('events', { type: 'number', describe: 'events compared (default: the run\'s --eval-events)' })
    .option('newest', { type: 'boolean', default: false, describe: 'use the newest checkpoint instead of the best by physics' })) as unknown as Argv<ValidateArgs>,
  handler: async (a) => {
    const events = a.events === undefined ? undefined : positiveInt(a.events, 'events');
    const log = await setup(a);
    const { validateGan3d } = await import('../models/gan3d/run.js');
    const { files } = await validateGan3d(a.checkpoint, { ...(a.data !== undefined ? { data: a.data } : {}), ...(a.out !== undefined ? { out: a.out } : {}), ...(events !== undefined ? { events } : {}), newest: a.newest, logger: log });
    process.stdout.write(`${files.join('\n')}\n`);
  },
};

interface GenerateArgs extends BackendArgs {
  checkpoint: string;
  energies: string;
  angles: string;
  n: number;
  out: string;
  seed: number;
  newest: boolean;
}

/** `proggan generate --checkpoint RUN --energies 50,100,200 --angles 90 --n N --out showers.h5`. */
export const generateCommand: CommandModule<object, GenerateArgs> = {
  command: 'generate',
  describe: 'generate 3DGAN showers for given energies and angles into an HDF5 file in the data\'s layout',
  builder: (y) => backendFlags(y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'run directory of `proggan train 3dgan`' })
    .option('energies', { type: 'string', demandOption: true, describe: 'primary energies in GeV, e.g. 50,100,200' })
    .option('angles', { type: 'string', default: '90', describe: 'entry angles in degrees, e.g. 62,90,118 (ignored by fixed-angle runs)' })
    .option('n', { type: 'number', default: 100, describe: 'showers per energy and angle' })
    .option('out', { type: 'string', demandOption: true, describe: 'output HDF5 file' })
    .option('seed', { type: 'number', default: 0, describe: 'noise seed' })
    .option('newest', { type: 'boolean', default: false, describe: 'use the newest checkpoint instead of the best by physics' })) as unknown as Argv<GenerateArgs>,
  handler: async (a) => {
    const energies = numberList(a.energies, 'energies', '50,100,200');
    const anglesDeg = numberList(a.angles, 'angles', '62,90,118');
    const n = positiveInt(a.n, 'n');
    const log = await setup(a);
    const { generateGan3d } = await import('../models/gan3d/run.js');
    await generateGan3d(a.checkpoint, { energies, anglesDeg, n, out: a.out, seed: a.seed, newest: a.newest, logger: log });
  },
};
