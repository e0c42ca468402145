/**
 * Crash-safe training checkpoints on local disk, tensor-free: the trainer hands in typed arrays.
 *
 * Layout of one run:
 * ```
 * runDir/checkpoints/
 *   step-00000020/      tensors.bin, index.json, meta.json, manifest.json (written last = commit)
 *   step-00000040/
 *   latest              "step-00000040\n", replaced atomically after each save
 * ```
 * Every file is written to `*.tmp`, fsync'd and renamed; the checkpoint directory is assembled as
 * `step-N.tmp/` and renamed into place, then the parent directory is fsync'd (the TF
 * CheckpointManager / torch DCP pattern). Loading takes the newest committed checkpoint whose files
 * verify (sizes and sha256) and falls back to older ones with a warning (the Keras 3
 * BackupAndRestore pattern); `--resume` loads strictly: checkpoints that exist but none verify is
 * an error listing each, never a silent restart. Non-finite states are never written, and a new
 * checkpoint is read back before anything older is pruned. `checkpoints/best/` holds the
 * best-by-metric checkpoint, outside retention. Saves to one run directory from one process are
 * queued; only one process (rank 0) may write a run directory.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import path from 'node:path';

import type { Logger } from '../util/logger.js';

/** One tensor as a flat typed array in row-major order. */
export interface TensorRecord {
  /** Dimensions; `[]` for a scalar. The product must equal `data.length`. */
  shape: number[];
  /** Element type; must match the array type of `data`. */
  dtype: 'float32' | 'int32';
  /** The values, row-major. */
  data: Float32Array | Int32Array;
}

/** Everything a resumed run needs. */
export interface CheckpointState {
  /** Optimizer steps completed. */
  step: number;
  /** Training images shown so far (all replicas together). */
  nimg: number;
  /**
   * Tensors by name (any string, e.g. `opt/G/adam/m/3`). Written and read back in the object's key
   * order; note that JavaScript orders integer-like keys such as `"7"` before all others.
   */
  tensors: Record<string, TensorRecord>;
  /** Plain JSON: RNG state, data position, schedule, config. `NaN`/`Infinity` become `null`. */
  meta: Record<string, unknown>;
}

/** Options of {@link saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** How many committed checkpoints to keep, the new one included; default 2, at least 1. */
  keep?: number;
  /**
   * Write float tensors holding NaN or Infinity too (default false: such a state is refused with a
   * {@link NonFiniteCheckpointError}, so a diverged run never pushes out its good checkpoints).
   */
  allowNonFinite?: boolean;
}

/** Options of {@link loadLatestCheckpoint}. */
export interface LoadCheckpointOptions {
  /** Receives a warning for every checkpoint that is skipped as unreadable; default silent. */
  logger?: Logger;
  /**
   * When checkpoints exist but none can be loaded: throw an {@link UnreadableCheckpointsError}
   * listing each and why (true), or return `null` (false, the default). `--resume` is strict, so that
   * it never silently starts over.
   */
  strict?: boolean;
}

/** One checkpoint that could not be loaded, and why. */
export interface CheckpointProblem {
  /** The checkpoint directory. */
  dir: string;
  /** Its step (from the directory name). */
  step: number;
  /** What is wrong with it. */
  reason: string;
}

/** Checkpoints exist under a run directory, but none of them can be loaded. */
export class UnreadableCheckpointsError extends Error {
  override name = 'UnreadableCheckpointsError';
  /** The run directory. */
  readonly runDir: string;
  /** Each checkpoint and why it could not be loaded, newest first. */
  readonly problems: CheckpointProblem[];
  constructor(runDir: string, problems: CheckpointProblem[]) {
    super(
      `${runDir} holds ${problems.length} checkpoint(s) and none can be loaded:\n` +
        problems.map((p) => `  ${path.basename(p.dir)}: ${p.reason}`).join('\n') +
        `\nNothing was changed. Restore the files from a backup, or start over with --restart-from-scratch ` +
        `(the old run directory is moved aside, not deleted).`,
    );
    this.runDir = runDir;
    this.problems = problems;
  }
}

/** A checkpoint was refused because some of its float tensors hold NaN or Infinity. */
export class NonFiniteCheckpointError extends Error {
  override name = 'NonFiniteCheckpointError';
  /** Names of the tensors with non-finite values (at most 10). */
  readonly tensors: string[];
  constructor(step: number, tensors: string[]) {
    super(`checkpoint of step ${step} not written: tensor(s) ${tensors.join(', ')} hold NaN or Infinity`);
    this.tensors = tensors;
  }
}

/** The best-by-metric checkpoint's metric, stored in its meta under `best`. */
export interface BestMetric {
  /** The metric's name as the objective's `evaluate()` reports it, e.g. `swd/mean`. */
  name: string;
  /** Whether lower (`min`) or higher (`max`) is better. */
  mode: 'min' | 'max';
  /** Its value at the checkpoint's step. */
  value: number;
}

/** One entry of `index.json`. */
interface IndexEntry {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  offset: number;
  byteLength: number;
}

/** Contents of `index.json`. */
interface IndexFile {
  format: typeof FORMAT;
  version: 1;
  byteOrder: 'LE';
  alignment: number;
  tensors: IndexEntry[];
}

/** One file listed in `manifest.json`. */
interface ManifestFileEntry {
  size: number;
  sha256: string;
}

/** Contents of `manifest.json`, the commit marker. */
interface ManifestFile {
  format: typeof FORMAT;
  version: 1;
  step: number;
  nimg: number;
  createdAt: string;
  files: Record<string, ManifestFileEntry>;
}

const FORMAT = 'proggan-checkpoint';
const ALIGN = 64;
const CHECKPOINTS = 'checkpoints';
const LATEST = 'latest';
const BEST = 'best';
const TENSORS_FILE = 'tensors.bin';
const INDEX_FILE = 'index.json';
const META_FILE = 'meta.json';
const MANIFEST_FILE = 'manifest.json';
const DATA_FILES = [TENSORS_FILE, INDEX_FILE, META_FILE] as const;
const STEP_DIR = /^step-(\d+)$/;
const HOST_IS_LE = endianness() === 'LE';
const ZEROS = Buffer.alloc(ALIGN);

/** The tail of the queue of saves per resolved run directory. */
const savesInFlight = new Map<string, Promise<void>>();

/** Directory name of the checkpoint for `step`: `step-00000020`. */
export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/**
 * Write a checkpoint for `state.step` under `runDir/checkpoints/`, commit it, point `latest` at it
 * and prune older checkpoints so that the newest `keep` remain. A checkpoint with the same step is
 * replaced. Leftover `*.tmp` entries from an earlier crash are removed first. Returns the
 * checkpoint directory.
 *
 * A state with NaN or Infinity in any float tensor is refused with a {@link NonFiniteCheckpointError}
 * unless `allowNonFinite` (so a diverged run cannot push its good checkpoints out), and the new checkpoint is read back and
 * verified before it replaces a same-step one, moves `latest` or lets older ones be pruned.
 */
export async function saveCheckpoint(
  runDir: string,
  state: CheckpointState,
  opts: SaveCheckpointOptions = {},
): Promise<string> {
  return serialisedPerRunDir(runDir, () => saveCheckpointNow(runDir, state, opts));
}

/**
 * Runs `save` after every save already queued for the same run directory: saves to one run
 * directory run one after another, since a second save would otherwise delete the first one's
 * step-N.tmp/ as crash debris.
 */
function serialisedPerRunDir(runDir: string, save: () => Promise<string>): Promise<string> {
  const key = path.resolve(runDir);
  const previous = savesInFlight.get(key) ?? Promise.resolve();
  const run = previous.then(save, save);
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  savesInFlight.set(key, settled);
  void settled.then(() => {
    if (savesInFlight.get(key) === settled) savesInFlight.delete(key);
  });
  return run;
}

async function saveCheckpointNow(runDir: string, state: CheckpointState, opts: SaveCheckpointOptions): Promise<string> {
  const keep = opts.keep ?? 2;
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be an integer >= 1, got ${keep}`);
  if (!Number.isSafeInteger(state.step) || state.step < 0) {
    throw new RangeError(`step must be a non-negative integer, got ${state.step}`);
  }
  if (!Number.isFinite(state.nimg) || state.nimg < 0) throw new RangeError(`nimg must be >= 0, got ${state.nimg}`);
  const entries = planTensors(state.tensors);
  const bad = opts.allowNonFinite ? [] : nonFiniteTensors(state.tensors);
  if (bad.length > 0) throw new NonFiniteCheckpointError(state.step, bad);
  const metaJson = JSON.stringify({ step: state.step, nimg: state.nimg, meta: state.meta }) + '\n';

  // Clear debris from a crashed save, then assemble the new checkpoint in step-N.tmp/.
  const ckptRoot = path.join(runDir, CHECKPOINTS);
  await mkdir(ckptRoot, { recursive: true });
  await removeTmpEntries(ckptRoot);
  const name = checkpointDirName(state.step);
  const finalDir = path.join(ckptRoot, name);
  await writeCheckpointDir(ckptRoot, name, state, entries, metaJson);

  await writeFileAtomic(path.join(ckptRoot, LATEST), `${name}\n`);
  await fsyncDir(ckptRoot);
  // Only now, with the new checkpoint read back and verified, may older ones go.
  await pruneCheckpoints(ckptRoot, state.step, keep);
  return finalDir;
}

/**
 * Assemble `ckptRoot/<name>.tmp/`, read it back and verify it (checksums, index, meta), then move it
 * into place as `ckptRoot/<name>` (replacing one of the same name only after the new one verified).
 */
async function writeCheckpointDir(ckptRoot: string, name: string, state: CheckpointState, entries: IndexEntry[], metaJson: string): Promise<void> {
  const finalDir = path.join(ckptRoot, name);
  const tmpDir = `${finalDir}.tmp`;
  await rm(tmpDir, { recursive: true, force: true });
  await mkdir(tmpDir);

  const files: Record<string, ManifestFileEntry> = {};
  files[TENSORS_FILE] = await writeTensorsFile(path.join(tmpDir, TENSORS_FILE), state.tensors, entries);
  const index: IndexFile = { format: FORMAT, version: 1, byteOrder: 'LE', alignment: ALIGN, tensors: entries };
  files[INDEX_FILE] = await writeFileAtomic(path.join(tmpDir, INDEX_FILE), JSON.stringify(index) + '\n');
  files[META_FILE] = await writeFileAtomic(path.join(tmpDir, META_FILE), metaJson);
  const manifest: ManifestFile = {
    format: FORMAT,
    version: 1,
    step: state.step,
    nimg: state.nimg,
    createdAt: new Date().toISOString(),
    files,
  };
  // The manifest is the commit marker: written last, after every file it lists is durable.
  await writeFileAtomic(path.join(tmpDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  await fsyncDir(tmpDir);
  // Read it back from disk before it replaces or outranks anything (a short write, a full disk or
  // a bad sector shows here, not at the next resume).
  try {
    await readCheckpoint(tmpDir);
  } catch (err) {
    await rm(tmpDir, { recursive: true, force: true });
    throw new Error(`checkpoint ${name} failed verification after writing, so nothing older was removed: ${err instanceof Error ? err.message : String(err)}`);
  }

  // Move into place; an existing checkpoint of the same step is first moved aside as *.tmp.
  let replaced: string | null = null;
  if (await exists(finalDir)) {
    replaced = `${finalDir}.old.tmp`;
    await rename(finalDir, replaced);
  }
  await rename(tmpDir, finalDir);
  await fsyncDir(ckptRoot);
  if (replaced !== null) await rm(replaced, { recursive: true, force: true });
}

/** Names of float tensors holding NaN or Infinity (at most 10). */
function nonFiniteTensors(tensors: Record<string, TensorRecord>): string[] {
  const bad: string[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'float32') continue;
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      // x - x is 0 for finite x and NaN for NaN and +-Infinity.
      const v = d[i] as number;
      if (v - v !== 0) {
        bad.push(name);
        break;
      }
    }
    if (bad.length >= 10) break;
  }
  return bad;
}

/**
 * Keep `state` as the run's best-by-metric checkpoint in `runDir/checkpoints/best/` (replacing the
 * previous one only once the new one verified). It is not a `step-N` checkpoint: retention
 * (`keep`) neither counts nor prunes it, and `--resume` does not pick it. `metric` is stored in its
 * meta as `best`. Non-finite tensors or a non-finite metric are refused.
 */
export async function saveBestCheckpoint(runDir: string, state: CheckpointState, metric: BestMetric): Promise<string> {
  if (!Number.isFinite(metric.value)) throw new RangeError(`best metric ${metric.name} must be finite, got ${metric.value}`);
  return serialisedPerRunDir(runDir, () => saveBestNow(runDir, state, metric));
}

async function saveBestNow(runDir: string, state: CheckpointState, metric: BestMetric): Promise<string> {
  const entries = planTensors(state.tensors);
  const bad = nonFiniteTensors(state.tensors);
  if (bad.length > 0) throw new NonFiniteCheckpointError(state.step, bad);
  const meta = { ...state.meta, best: { ...metric } };
  const metaJson = JSON.stringify({ step: state.step, nimg: state.nimg, meta }) + '\n';
  const ckptRoot = path.join(runDir, CHECKPOINTS);
  await mkdir(ckptRoot, { recursive: true });
  await writeCheckpointDir(ckptRoot, BEST, state, entries, metaJson);
  return path.join(ckptRoot, BEST);
}

/** The metric of the run's best-by-metric checkpoint, or `null` when there is none that verifies. */
export async function readBestMetric(runDir: string): Promise<BestMetric | null> {
  const dir = path.join(runDir, CHECKPOINTS, BEST);
  if (!(await exists(dir))) return null;
  try {
    const state = await readCheckpoint(dir);
    const b = state.meta['best'];
    if (!isObject(b) || typeof b['name'] !== 'string' || typeof b['value'] !== 'number' || (b['mode'] !== 'min' && b['mode'] !== 'max')) return null;
    return { name: b['name'], mode: b['mode'], value: b['value'] };
  } catch {
    return null;
  }
}

/** A checkpoint found by {@link resolveCheckpoint}. */
export interface ResolvedCheckpoint {
  /** The run directory (holding config.json). */
  runDir: string;
  /** The checkpoint directory that was loaded. */
  dir: string;
  /** Its contents, verified. */
  state: CheckpointState;
}

/**
 * The one reader of `--checkpoint RUN[/step-N|best|latest]`: `RUN` or `RUN/latest` is the newest
 * checkpoint that verifies (strict: an error lists each unreadable one), `RUN/best` the
 * best-by-metric one, `RUN/step-N` (N with or without zero padding) exactly that step. A path to a
 * checkpoint directory itself (`RUN/checkpoints/step-00000040`) works too. Errors name what is
 * there to choose from.
 */
export async function resolveCheckpoint(spec: string, opts: { logger?: Logger } = {}): Promise<ResolvedCheckpoint> {
  const { runDir, which } = splitCheckpointSpec(spec);
  const ckptRoot = path.join(runDir, CHECKPOINTS);
  if (which === 'latest') {
    const found = await loadLatestCheckpoint(runDir, { ...opts, strict: true });
    if (!found) throw new Error(`${runDir} has no checkpoint (no ${CHECKPOINTS}/step-*/); train it first, or check the path`);
    return { runDir, dir: found.dir, state: found.state };
  }
  const dir = path.join(ckptRoot, which === 'best' ? BEST : checkpointDirName(which));
  if (!(await exists(dir))) {
    const have = (await stepDirs(ckptRoot)).map((d) => path.basename(d.dir));
    if (await exists(path.join(ckptRoot, BEST))) have.push(BEST);
    const what = which === 'best' ? 'no best-by-metric checkpoint (the model names no metric, or no evaluation ran yet)' : `no checkpoint of step ${which}`;
    throw new Error(`${spec}: ${runDir} has ${what}; it has: ${have.length > 0 ? have.join(', ') : 'none'} (use RUN, RUN/latest, RUN/best or RUN/step-N)`);
  }
  try {
    return { runDir, dir, state: await readCheckpoint(dir) };
  } catch (err) {
    throw new Error(`${spec}: checkpoint ${dir} cannot be loaded: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Split `RUN[/step-N|best|latest]` (or `RUN/checkpoints/<that>`) into the run directory and the choice. */
export function splitCheckpointSpec(spec: string): { runDir: string; which: 'latest' | 'best' | number } {
  const clean = spec.replace(/[\\/]+$/, '');
  const base = path.basename(clean);
  let parent = path.dirname(clean);
  let which: 'latest' | 'best' | number | null = null;
  if (base === 'latest' || base === BEST) which = base;
  else {
    const m = /^step-(\d+)$/.exec(base);
    if (m?.[1] !== undefined) which = Number(m[1]);
  }
  if (which === null) return { runDir: clean, which: 'latest' };
  if (path.basename(parent) === CHECKPOINTS) parent = path.dirname(parent);
  return { runDir: parent, which };
}

/**
 * Load the newest committed checkpoint under `runDir/checkpoints/` whose files verify. Each
 * skipped checkpoint (manifest missing or garbled, file sizes or checksums wrong, index or meta
 * not valid) is logged as a warning naming it and the problem. Returns `null` when there is no
 * checkpoint; when some exist but none verifies, throws an {@link UnreadableCheckpointsError}
 * with `strict`, else logs an error and returns `null`.
 */
export async function loadLatestCheckpoint(
  runDir: string,
  opts: LoadCheckpointOptions = {},
): Promise<{ state: CheckpointState; dir: string } | null> {
  const ckptRoot = path.join(runDir, CHECKPOINTS);
  const candidates = (await stepDirs(ckptRoot)).reverse();
  const problems: CheckpointProblem[] = [];
  for (const { dir, step } of candidates) {
    try {
      const state = await readCheckpoint(dir);
      return { state, dir };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      problems.push({ dir, step, reason });
      opts.logger?.warn({ checkpoint: dir, reason }, `skipping unreadable checkpoint ${path.basename(dir)}: ${reason}`);
    }
  }
  if (candidates.length > 0) {
    if (opts.strict) throw new UnreadableCheckpointsError(runDir, problems);
    opts.logger?.error({ checkpointDir: ckptRoot, count: candidates.length }, 'no checkpoint could be loaded');
  }
  return null;
}

/**
 * Directories of the committed checkpoints (those with a `manifest.json`) under
 * `runDir/checkpoints/`, oldest step first. Their contents are not verified here.
 */
export async function listCheckpoints(runDir: string): Promise<string[]> {
  const all = await stepDirs(path.join(runDir, CHECKPOINTS));
  const committed: string[] = [];
  for (const { dir } of all) {
    if (await exists(path.join(dir, MANIFEST_FILE))) committed.push(dir);
  }
  return committed;
}

/** Validate every tensor and lay them out in insertion order at 64-byte aligned offsets. */
function planTensors(tensors: Record<string, TensorRecord>): IndexEntry[] {
  const entries: IndexEntry[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'float32' && t.dtype !== 'int32') {
      throw new TypeError(`tensor "${name}": unsupported dtype ${String(t.dtype)}`);
    }
    const arrayOk = t.dtype === 'float32' ? t.data instanceof Float32Array : t.data instanceof Int32Array;
    if (!arrayOk) throw new TypeError(`tensor "${name}": dtype ${t.dtype} but data is ${t.data.constructor.name}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new TypeError(`tensor "${name}": bad shape ${JSON.stringify(t.shape)}`);
    }
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) {
      throw new RangeError(`tensor "${name}": shape [${t.shape.join(', ')}] holds ${size} values, data has ${t.data.length}`);
    }
    offset = alignUp(offset);
    entries.push({ name, dtype: t.dtype, shape: [...t.shape], offset, byteLength: t.data.byteLength });
    offset += t.data.byteLength;
  }
  return entries;
}

/** Write all tensors into one file at their planned offsets (zero padding between), fsync, rename. */
async function writeTensorsFile(
  file: string,
  tensors: Record<string, TensorRecord>,
  entries: IndexEntry[],
): Promise<ManifestFileEntry> {
  const tmp = `${file}.tmp`;
  const hash = createHash('sha256');
  const fh = await open(tmp, 'w');
  let pos = 0;
  try {
    for (const e of entries) {
      const t = tensors[e.name];
      if (t === undefined) throw new Error(`tensor "${e.name}" disappeared while saving`);
      if (e.offset > pos) {
        const pad = ZEROS.subarray(0, e.offset - pos);
        await writeAll(fh, pad);
        hash.update(pad);
        pos = e.offset;
      }
      const bytes = littleEndianBytes(t.data);
      await writeAll(fh, bytes);
      hash.update(bytes);
      pos += bytes.byteLength;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  return { size: pos, sha256: hash.digest('hex') };
}

/** Read and verify one checkpoint directory; throws with a specific reason when anything is off. */
async function readCheckpoint(dir: string): Promise<CheckpointState> {
  // The manifest must exist and parse: without it the checkpoint was never committed.
  let manifestText: string;
  try {
    manifestText = await readFile(path.join(dir, MANIFEST_FILE), 'utf8');
  } catch (err) {
    throw new Error(`${MANIFEST_FILE} missing or unreadable (${errCode(err)})`);
  }
  const manifest = parseManifest(manifestText);

  // Check sizes first (cheap), then checksums of the small files.
  for (const name of DATA_FILES) {
    const expected = manifest.files[name];
    if (expected === undefined) throw new Error(`${MANIFEST_FILE} does not list ${name}`);
    let size: number;
    try {
      size = (await stat(path.join(dir, name))).size;
    } catch (err) {
      throw new Error(`${name} missing (${errCode(err)})`);
    }
    if (size !== expected.size) throw new Error(`${name} has ${size} bytes, manifest says ${expected.size}`);
  }
  const indexText = await readVerified(dir, INDEX_FILE, manifest);
  const metaText = await readVerified(dir, META_FILE, manifest);
  const index = parseIndex(indexText, manifest.files[TENSORS_FILE]?.size ?? 0);
  const meta = parseMeta(metaText);

  // Read the tensors in one pass, hashing the whole file (padding included) along the way.
  const tensors: Record<string, TensorRecord> = {};
  const hash = createHash('sha256');
  const fh = await open(path.join(dir, TENSORS_FILE), 'r');
  try {
    let pos = 0;
    const byOffset = [...index.tensors].sort((a, b) => a.offset - b.offset);
    const loaded = new Map<string, TensorRecord>();
    for (const e of byOffset) {
      if (e.offset > pos) {
        hash.update(await readExactly(fh, pos, Buffer.alloc(e.offset - pos)));
        pos = e.offset;
      }
      const n = e.byteLength / 4;
      const data = e.dtype === 'float32' ? new Float32Array(n) : new Int32Array(n);
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      hash.update(await readExactly(fh, pos, bytes));
      if (!HOST_IS_LE) swap32(bytes);
      pos += e.byteLength;
      loaded.set(e.name, { shape: e.shape, dtype: e.dtype, data });
    }
    const fileSize = manifest.files[TENSORS_FILE]?.size ?? 0;
    if (fileSize > pos) hash.update(await readExactly(fh, pos, Buffer.alloc(fileSize - pos)));
    const digest = hash.digest('hex');
    if (digest !== manifest.files[TENSORS_FILE]?.sha256) throw new Error(`${TENSORS_FILE} checksum mismatch`);
    for (const e of index.tensors) {
      const t = loaded.get(e.name);
      // defineProperty, so that even a tensor named "__proto__" becomes a plain key.
      if (t !== undefined) Object.defineProperty(tensors, e.name, { value: t, enumerable: true, writable: true, configurable: true });
    }
  } finally {
    await fh.close();
  }
  if (meta.step !== manifest.step) throw new Error(`${META_FILE} step ${meta.step} differs from manifest step ${manifest.step}`);
  return { step: meta.step, nimg: meta.nimg, tensors, meta: meta.meta };
}

/** Read a small file and check it against its manifest checksum. */
async function readVerified(dir: string, name: string, manifest: ManifestFile): Promise<string> {
  const buf = await readFile(path.join(dir, name));
  const digest = createHash('sha256').update(buf).digest('hex');
  if (digest !== manifest.files[name]?.sha256) throw new Error(`${name} checksum mismatch`);
  return buf.toString('utf8');
}

function parseManifest(text: string): ManifestFile {
  const m = parseJson(text, MANIFEST_FILE);
  if (!isObject(m) || m['format'] !== FORMAT || m['version'] !== 1) {
    throw new Error(`${MANIFEST_FILE} is not a ${FORMAT} v1 manifest`);
  }
  const files = m['files'];
  if (!isObject(files)) throw new Error(`${MANIFEST_FILE} has no files table`);
  const out: Record<string, ManifestFileEntry> = {};
  for (const [name, f] of Object.entries(files)) {
    if (!isObject(f) || typeof f['size'] !== 'number' || typeof f['sha256'] !== 'string') {
      throw new Error(`${MANIFEST_FILE} entry for ${name} is malformed`);
    }
    out[name] = { size: f['size'], sha256: f['sha256'] };
  }
  const step = m['step'];
  const nimg = m['nimg'];
  if (typeof step !== 'number' || typeof nimg !== 'number') throw new Error(`${MANIFEST_FILE} lacks step/nimg`);
  return { format: FORMAT, version: 1, step, nimg, createdAt: String(m['createdAt']), files: out };
}

function parseIndex(text: string, fileSize: number): IndexFile {
  const x = parseJson(text, INDEX_FILE);
  if (!isObject(x) || x['format'] !== FORMAT || x['version'] !== 1 || !Array.isArray(x['tensors'])) {
    throw new Error(`${INDEX_FILE} is not a ${FORMAT} v1 index`);
  }
  if (x['byteOrder'] !== 'LE') throw new Error(`${INDEX_FILE} has unsupported byte order ${String(x['byteOrder'])}`);
  const tensors: IndexEntry[] = [];
  const seen = new Set<string>();
  for (const e of x['tensors'] as unknown[]) {
    if (
      !isObject(e) ||
      typeof e['name'] !== 'string' ||
      (e['dtype'] !== 'float32' && e['dtype'] !== 'int32') ||
      !Array.isArray(e['shape']) ||
      !e['shape'].every((d: unknown) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) ||
      typeof e['offset'] !== 'number' ||
      typeof e['byteLength'] !== 'number'
    ) {
      throw new Error(`${INDEX_FILE} has a malformed tensor entry`);
    }
    const shape = e['shape'] as number[];
    const entry: IndexEntry = { name: e['name'], dtype: e['dtype'], shape, offset: e['offset'], byteLength: e['byteLength'] };
    const size = shape.reduce((a, b) => a * b, 1);
    if (entry.byteLength !== size * 4) throw new Error(`${INDEX_FILE}: tensor "${entry.name}" byte length does not match its shape`);
    if (entry.offset % 4 !== 0 || entry.offset < 0 || entry.offset + entry.byteLength > fileSize) {
      throw new Error(`${INDEX_FILE}: tensor "${entry.name}" lies outside ${TENSORS_FILE}`);
    }
    if (seen.has(entry.name)) throw new Error(`${INDEX_FILE}: duplicate tensor "${entry.name}"`);
    seen.add(entry.name);
    tensors.push(entry);
  }
  return { format: FORMAT, version: 1, byteOrder: 'LE', alignment: Number(x['alignment']), tensors };
}

function parseMeta(text: string): { step: number; nimg: number; meta: Record<string, unknown> } {
  const x = parseJson(text, META_FILE);
  if (!isObject(x) || typeof x['step'] !== 'number' || typeof x['nimg'] !== 'number' || !isObject(x['meta'])) {
    throw new Error(`${META_FILE} lacks step, nimg or meta`);
  }
  return { step: x['step'], nimg: x['nimg'], meta: x['meta'] };
}

function parseJson(text: string, name: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${name} is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Step directories (committed or not, never `*.tmp`) under `ckptRoot`, oldest step first. */
async function stepDirs(ckptRoot: string): Promise<Array<{ step: number; dir: string }>> {
  let names: string[];
  try {
    names = await readdir(ckptRoot);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return [];
    throw err;
  }
  const out: Array<{ step: number; dir: string }> = [];
  for (const name of names) {
    const m = STEP_DIR.exec(name);
    if (m?.[1] !== undefined) out.push({ step: Number(m[1]), dir: path.join(ckptRoot, name) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/**
 * Keep the just-saved checkpoint and the newest `keep - 1` older committed ones; delete the rest.
 * Checkpoints with a higher step than the one just saved are deleted too: a run only saves below
 * them after resuming from an older checkpoint, i.e. when they could not be loaded.
 */
async function pruneCheckpoints(ckptRoot: string, savedStep: number, keep: number): Promise<void> {
  const dirs = await stepDirs(ckptRoot);
  let kept = 1;
  for (const { step, dir } of dirs.reverse()) {
    if (step === savedStep) continue;
    if (step < savedStep && kept < keep && (await looksCommitted(dir))) {
      kept++;
      continue;
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** Cheap check used when pruning: the manifest parses and the file sizes match (no hashing). */
async function looksCommitted(dir: string): Promise<boolean> {
  try {
    const manifest = parseManifest(await readFile(path.join(dir, MANIFEST_FILE), 'utf8'));
    for (const name of DATA_FILES) {
      const entry = manifest.files[name];
      if (entry === undefined || (await stat(path.join(dir, name))).size !== entry.size) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** Remove `*.tmp` files and directories left by an interrupted save. */
async function removeTmpEntries(ckptRoot: string): Promise<void> {
  for (const name of await readdir(ckptRoot)) {
    if (name.endsWith('.tmp')) await rm(path.join(ckptRoot, name), { recursive: true, force: true });
  }
}

/** Write a whole file via `*.tmp` + fsync + rename; returns its size and sha256. */
async function writeFileAtomic(file: string, text: string): Promise<ManifestFileEntry> {
  const buf = Buffer.from(text, 'utf8');
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await writeAll(fh, buf);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  return { size: buf.byteLength, sha256: createHash('sha256').update(buf).digest('hex') };
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, done, Math.min(buf.byteLength - done, 1 << 30));
    done += bytesWritten;
  }
}

/** Fill `buf` from `fh` at `position`; throws if the file ends first. */
async function readExactly(fh: FileHandle, position: number, buf: Buffer): Promise<Buffer> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesRead } = await fh.read(buf, done, Math.min(buf.byteLength - done, 1 << 30), position + done);
    if (bytesRead === 0) throw new Error(`${TENSORS_FILE} ends early at byte ${position + done}`);
    done += bytesRead;
  }
  return buf;
}

/** Make a directory entry durable (rename/create). Not supported on every platform: best effort. */
async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, fsConstants.O_RDONLY);
    await fh.sync();
  } catch (err) {
    const code = errCode(err);
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw err;
  } finally {
    await fh?.close();
  }
}

/** The bytes of `data` in little-endian order (a view on little-endian hosts, a swapped copy otherwise). */
function littleEndianBytes(data: Float32Array | Int32Array): Buffer {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return HOST_IS_LE ? view : swap32(Buffer.from(view));
}

function swap32(buf: Buffer): Buffer {
  return buf.swap32();
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

function errCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : String(err);
}
