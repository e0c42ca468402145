/**
 * Calorimeter shower files (HDF5) through h5wasm, the maintained WASM build of libhdf5 (no install
 * scripts, no system library): the variable-angle layout (`ECAL` [N, 51, 51, 25] float32, `energy`
 * [N], optional `theta`, `mtheta`, `eta` [N] rad) and the older fixed-angle layout (`ECAL`
 * [N, 25, 25, 25], `target` [N, k] with the energy in column 1). Files are checked up front and every
 * problem is reported with the file and the reason; events are read in chunks, so files larger than
 * memory stream. Also the reference preprocessing (threshold, sum > 10, X^0.85, E/100) with counts.
 */
import { open, stat } from 'node:fs/promises';
import h5wasm, { type Dataset as H5Dataset, type File as H5File } from 'h5wasm/node';

/** Which layout a file has. */
export type ShowerLayout = 'variable-angle' | 'fixed-angle';

/** Angle datasets of the variable-angle layout, read when present. */
export const ANGLE_DATASETS = ['theta', 'mtheta', 'eta'] as const;
/** One angle dataset name. */
export type AngleName = (typeof ANGLE_DATASETS)[number];

/** A problem with a shower file, naming the file and the reason. */
export class ShowerFileError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'ShowerFileError';
  }
}

/** What {@link inspectShowerFile} found. */
export interface ShowerFileInfo {
  path: string;
  layout: ShowerLayout;
  /** Number of events. */
  events: number;
  /** Cell grid [X, Y, Z]. */
  shape: [number, number, number];
  /** Angle datasets present (variable-angle layout). */
  angles: AngleName[];
  /** Columns of `target` (fixed-angle layout), else 0. */
  targetColumns: number;
}

/** A chunk of events: raw cell energies (GeV) [n, X, Y, Z], energies (GeV) and angles (rad) when present. */
export interface ShowerChunk {
  /** Index of the chunk's first event in the file. */
  start: number;
  ecal: Float32Array;
  energy: Float32Array;
  angles: Partial<Record<AngleName, Float32Array>>;
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

async function ready(): Promise<void> {
  await h5wasm.ready;
}

/** Whether the file carries the HDF5 signature at offset 0, 512, 1024 or 2048 (where libhdf5 looks). */
async function hasHdf5Signature(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    for (const off of [0, 512, 1024, 2048]) {
      const buf = Buffer.alloc(8);
      const { bytesRead } = await fh.read(buf, 0, 8, off);
      if (bytesRead === 8 && buf.equals(HDF5_SIGNATURE)) return true;
    }
    return false;
  } finally {
    await fh.close();
  }
}

/** Open a file read-only, turning every failure into a {@link ShowerFileError}. */
async function openFile(path: string): Promise<H5File> {
  await ready();
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new ShowerFileError(path, 'not a regular file');
  } catch (e) {
    if (e instanceof ShowerFileError) throw e;
    throw new ShowerFileError(path, 'file not found (check the --data path)');
  }
  if (!(await hasHdf5Signature(path))) throw new ShowerFileError(path, 'not an HDF5 file (no HDF5 signature)');
  try {
    return new h5wasm.File(path, 'r');
  } catch (e) {
    throw new ShowerFileError(path, `cannot open as HDF5, probably truncated or corrupt (${String(e)})`);
  }
}

function dataset(f: H5File, path: string, name: string): H5Dataset | null {
  const d = f.get(name);
  if (d === null) return null;
  if (!(d instanceof h5wasm.Dataset)) throw new ShowerFileError(path, `"${name}" is not a readable dataset (truncated or corrupt file?)`);
  return d;
}

function describe(f: H5File, path: string): ShowerFileInfo {
  const ecal = dataset(f, path, 'ECAL');
  if (!ecal) throw new ShowerFileError(path, `missing dataset "ECAL" (found: ${f.keys().join(', ') || 'nothing'})`);
  const s = ecal.shape ?? [];
  const [n, x, y, z] = s;
  if (s.length !== 4 || n === undefined || x === undefined || y === undefined || z === undefined) {
    throw new ShowerFileError(path, `"ECAL" has shape [${s.join(', ')}], expected [N, 51, 51, 25] or [N, 25, 25, 25]`);
  }
  let layout: ShowerLayout;
  if (x === 51 && y === 51 && z === 25) layout = 'variable-angle';
  else if (x === 25 && y === 25 && z === 25) layout = 'fixed-angle';
  else throw new ShowerFileError(path, `"ECAL" has shape [${s.join(', ')}], expected [N, 51, 51, 25] or [N, 25, 25, 25]`);
  if (!String(ecal.dtype).includes('f')) throw new ShowerFileError(path, `"ECAL" has dtype ${String(ecal.dtype)}, expected float`);
  const length1 = (name: string, cols?: boolean): number => {
    const d = dataset(f, path, name);
    if (!d) return -1;
    const ds = d.shape ?? [];
    if (cols ? ds.length !== 2 : ds.length !== 1) throw new ShowerFileError(path, `"${name}" has shape [${ds.join(', ')}], expected [N${cols ? ', k' : ''}]`);
    if (ds[0] !== n) throw new ShowerFileError(path, `mismatched lengths: "ECAL" has ${n} events but "${name}" has ${ds[0]}`);
    return cols ? (ds[1] ?? 0) : n;
  };
  const angles: AngleName[] = [];
  let targetColumns = 0;
  if (layout === 'variable-angle') {
    if (length1('energy') < 0) throw new ShowerFileError(path, 'missing dataset "energy" (variable-angle layout)');
    for (const a of ANGLE_DATASETS) if (length1(a) >= 0) angles.push(a);
  } else {
    targetColumns = length1('target', true);
    if (targetColumns < 0) {
      if (length1('energy') < 0) throw new ShowerFileError(path, 'missing dataset "target" (fixed-angle layout; or "energy")');
      targetColumns = 0;
    } else if (targetColumns < 2) throw new ShowerFileError(path, `"target" has ${targetColumns} column(s); the energy is column 1`);
  }
  return { path, layout, events: n, shape: [x, y, z], angles, targetColumns };
}

/** Check a file's structure (datasets, shapes, lengths) without reading the cells; throws {@link ShowerFileError}. */
export async function inspectShowerFile(path: string): Promise<ShowerFileInfo> {
  const f = await openFile(path);
  try {
    return describe(f, path);
  } finally {
    f.close();
  }
}

function floats(v: unknown, path: string, name: string): Float32Array {
  if (v instanceof Float32Array) return v;
  if (v instanceof Float64Array) return Float32Array.from(v);
  throw new ShowerFileError(path, `could not read "${name}" as floats (truncated file?)`);
}

/** Check cell values: NaN/Inf or negative cells throw, naming the event. */
function checkValues(path: string, c: ShowerChunk, per: number): void {
  for (let i = 0; i < c.ecal.length; i++) {
    const v = c.ecal[i] ?? 0;
    if (!Number.isFinite(v)) throw new ShowerFileError(path, `"ECAL" event ${c.start + Math.floor(i / per)} has a NaN/Inf cell`);
    if (v < 0) throw new ShowerFileError(path, `"ECAL" event ${c.start + Math.floor(i / per)} has a negative cell (${v})`);
  }
  c.energy.forEach((e, i) => { if (!Number.isFinite(e) || e <= 0) throw new ShowerFileError(path, `energy of event ${c.start + i} is ${e}, expected > 0`); });
  for (const [name, a] of Object.entries(c.angles)) a.forEach((v, i) => { if (!Number.isFinite(v)) throw new ShowerFileError(path, `"${name}" of event ${c.start + i} is ${v}`); });
}

/**
 * Read a file by chunks of `chunkEvents` events (validated as they are read: NaN/Inf or negative
 * cells, non-positive energies). Only one chunk is in memory at a time.
 */
export async function* readShowerChunks(path: string, chunkEvents = 256): AsyncGenerator<ShowerChunk & { info: ShowerFileInfo }> {
  if (!(Number.isInteger(chunkEvents) && chunkEvents > 0)) throw new Error(`chunkEvents must be a positive integer, got ${chunkEvents}`);
  const f = await openFile(path);
  try {
    const info = describe(f, path);
    const per = info.shape[0] * info.shape[1] * info.shape[2];
    for (let start = 0; start < info.events; start += chunkEvents) {
      const end = Math.min(info.events, start + chunkEvents);
      let chunk: ShowerChunk;
      try {
        const ecal = floats(dataset(f, path, 'ECAL')?.slice([[start, end]]), path, 'ECAL');
        let energy: Float32Array;
        if (info.layout === 'fixed-angle' && info.targetColumns > 0) {
          const t = floats(dataset(f, path, 'target')?.slice([[start, end]]), path, 'target');
          energy = new Float32Array(end - start).map((_, i) => t[i * info.targetColumns + 1] ?? Number.NaN);
        } else energy = floats(dataset(f, path, 'energy')?.slice([[start, end]]), path, 'energy');
        const angles: Partial<Record<AngleName, Float32Array>> = {};
        for (const a of info.angles) angles[a] = floats(dataset(f, path, a)?.slice([[start, end]]), path, a);
        chunk = { start, ecal, energy, angles };
      } catch (e) {
        if (e instanceof ShowerFileError) throw e;
        throw new ShowerFileError(path, `reading events ${start}..${end} failed, probably a truncated file (${String(e)})`);
      }
      if (chunk.ecal.length !== (end - start) * per) throw new ShowerFileError(path, `"ECAL" events ${start}..${end} are short (truncated file?)`);
      checkValues(path, chunk, per);
      yield { ...chunk, info };
    }
  } finally {
    f.close();
  }
}

/** Read events [start, end) of a file (validated like {@link readShowerChunks}). */
export async function readShowerRange(path: string, start: number, end: number): Promise<ShowerChunk & { info: ShowerFileInfo }> {
  const f = await openFile(path);
  try {
    const info = describe(f, path);
    const per = info.shape[0] * info.shape[1] * info.shape[2];
    const hi = Math.min(info.events, end);
    if (!(Number.isInteger(start) && start >= 0 && start < hi)) throw new ShowerFileError(path, `events ${start}..${end} are out of range (the file has ${info.events})`);
    let chunk: ShowerChunk;
    try {
      const ecal = floats(dataset(f, path, 'ECAL')?.slice([[start, hi]]), path, 'ECAL');
      let energy: Float32Array;
      if (info.layout === 'fixed-angle' && info.targetColumns > 0) {
        const t = floats(dataset(f, path, 'target')?.slice([[start, hi]]), path, 'target');
        energy = new Float32Array(hi - start).map((_, i) => t[i * info.targetColumns + 1] ?? Number.NaN);
      } else energy = floats(dataset(f, path, 'energy')?.slice([[start, hi]]), path, 'energy');
      const angles: Partial<Record<AngleName, Float32Array>> = {};
      for (const a of info.angles) angles[a] = floats(dataset(f, path, a)?.slice([[start, hi]]), path, a);
      chunk = { start, ecal, energy, angles };
    } catch (e) {
      if (e instanceof ShowerFileError) throw e;
      throw new ShowerFileError(path, `reading events ${start}..${hi} failed, probably a truncated file (${String(e)})`);
    }
    if (chunk.ecal.length !== (hi - start) * per) throw new ShowerFileError(path, `"ECAL" events ${start}..${hi} are short (truncated file?)`);
    checkValues(path, chunk, per);
    return { ...chunk, info };
  } finally {
    f.close();
  }
}

/** Read a whole file (small files; use {@link readShowerChunks} for large ones). */
export async function readShowers(path: string): Promise<ShowerChunk & { info: ShowerFileInfo }> {
  const chunks: ShowerChunk[] = [];
  let info: ShowerFileInfo | undefined;
  for await (const c of readShowerChunks(path, 1024)) { chunks.push(c); info = c.info; }
  info ??= await inspectShowerFile(path);
  const cat = (arrs: Float32Array[]): Float32Array => {
    const out = new Float32Array(arrs.reduce((s, a) => s + a.length, 0));
    let o = 0;
    for (const a of arrs) { out.set(a, o); o += a.length; }
    return out;
  };
  const angles: Partial<Record<AngleName, Float32Array>> = {};
  for (const a of info.angles) angles[a] = cat(chunks.map((c) => c.angles[a] ?? new Float32Array(0)));
  return { info, start: 0, ecal: cat(chunks.map((c) => c.ecal)), energy: cat(chunks.map((c) => c.energy)), angles };
}

/** Events to write with {@link writeShowers}. */
export interface ShowerWriteData {
  /** [n, X, Y, Z] cell energies, GeV. */
  ecal: Float32Array;
  /** Primary energies, GeV. */
  energy: Float32Array;
  /** Angle datasets to write (variable-angle layout), rad. */
  angles?: Partial<Record<AngleName, Float32Array>>;
}

/**
 * Write events in a layout: variable-angle (`ECAL` [n, 51, 51, 25], `energy`, angles) or fixed-angle
 * (`ECAL` [n, 25, 25, 25], `target` [n, 2] with the energy in column 1 and 0 in column 0). `ECAL`
 * is chunked by event and gzip-compressed.
 */
export async function writeShowers(path: string, layout: ShowerLayout, data: ShowerWriteData): Promise<void> {
  await ready();
  const shape: [number, number, number] = layout === 'variable-angle' ? [51, 51, 25] : [25, 25, 25];
  const per = shape[0] * shape[1] * shape[2];
  const n = data.energy.length;
  if (data.ecal.length !== n * per) throw new Error(`writeShowers(${path}): ECAL holds ${data.ecal.length} values, expected ${n} x ${shape.join('x')}`);
  const f = new h5wasm.File(path, 'w');
  try {
    f.create_dataset({ name: 'ECAL', data: data.ecal, shape: [n, ...shape], dtype: '<f', chunks: [Math.max(1, Math.min(n, 16)), ...shape], compression: 'gzip' });
    if (layout === 'variable-angle') {
      f.create_dataset({ name: 'energy', data: data.energy, shape: [n], dtype: '<f' });
      for (const [name, a] of Object.entries(data.angles ?? {})) {
        if (a.length !== n) throw new Error(`writeShowers(${path}): "${name}" has ${a.length} values, expected ${n}`);
        f.create_dataset({ name, data: a, shape: [n], dtype: '<f' });
      }
    } else {
      const target = new Float32Array(2 * n);
      data.energy.forEach((e, i) => { target[2 * i + 1] = e; });
      f.create_dataset({ name: 'target', data: target, shape: [n, 2], dtype: '<f' });
    }
  } finally {
    f.close();
  }
}

/** Options of the reference preprocessing. */
export interface ShowerPreprocessOptions {
  /** Cells below this energy (GeV) are zeroed. Default 1e-6. */
  threshold: number;
  /** Events whose (thresholded) ECAL sum is not above this (GeV) are dropped. Default 10 (the reference's cut; see note). */
  minSum: number;
  /** Power applied to the cells. Default 0.85. */
  power: number;
  /** Energy scale: the network sees E / scale. Default 100. */
  energyScale: number;
}

/**
 * Reference defaults. Note the reference's `sum > 10` cut is on its own units: with a sampling
 * fraction of ~2 % it keeps events above ~500 GeV of primary energy when sums are in GeV, so pass a
 * `minSum` that suits your files (the counts show what each step did).
 */
export function defaultShowerPreprocess(partial: Partial<ShowerPreprocessOptions> = {}): ShowerPreprocessOptions {
  return { threshold: partial.threshold ?? 1e-6, minSum: partial.minSum ?? 10, power: partial.power ?? 0.85, energyScale: partial.energyScale ?? 100 };
}

/** Counts of what the preprocessing did. */
export interface PreprocessCounts {
  events: number;
  cellsZeroed: number;
  droppedLowSum: number;
  kept: number;
}

/** Preprocess a chunk: zero small cells, drop low-sum events, X^power, E/scale; angles kept for the kept events. */
export function preprocessShowers(c: ShowerChunk, per: number, opts: ShowerPreprocessOptions): { ecal: Float32Array; energy: Float32Array; angles: Partial<Record<AngleName, Float32Array>>; counts: PreprocessCounts; kept: number[] } {
  const n = c.energy.length;
  const keep: number[] = [];
  let zeroed = 0;
  const sums = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = i * per; k < (i + 1) * per; k++) {
      const v = c.ecal[k] ?? 0;
      if (v < opts.threshold) { if (v !== 0) zeroed++; } else s += v;
    }
    sums[i] = s;
    if (s > opts.minSum) keep.push(i);
  }
  const ecal = new Float32Array(keep.length * per);
  keep.forEach((i, j) => {
    for (let k = 0; k < per; k++) {
      const v = c.ecal[i * per + k] ?? 0;
      ecal[j * per + k] = v < opts.threshold ? 0 : v ** opts.power;
    }
  });
  const energy = Float32Array.from(keep, (i) => (c.energy[i] ?? 0) / opts.energyScale);
  const angles: Partial<Record<AngleName, Float32Array>> = {};
  for (const [name, a] of Object.entries(c.angles)) angles[name as AngleName] = Float32Array.from(keep, (i) => a[i] ?? 0);
  return { ecal, energy, angles, kept: keep, counts: { events: n, cellsZeroed: zeroed, droppedLowSum: n - keep.length, kept: keep.length } };
}
