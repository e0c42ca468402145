/**
 * The `native` tfjs backend: tfjs's pure-JS `cpu` backend with its heavy kernels replaced by
 * oneDNN (convolutions, matrix multiplies, pooling) and OpenMP loops (elementwise ops,
 * reductions, batch norm, nearest-neighbour resize) from the C++ addon in `src/native/`.
 *
 * Storage is the cpu backend's: every tensor is a Float32Array held by a `MathBackendCPU`, and
 * the addon reads and writes those arrays in place. Anything the addon does not cover (other
 * dtypes, NCHW, prelu, odd broadcasts) runs the cpu backend's own kernel, so every op works.
 *
 * Environment: `PROGGAN_NATIVE_THREADS` (default threads), `PROGGAN_NATIVE_POOL_MB` (bytes of
 * released output arrays kept for reuse; default a quarter of RAM, at most 8 GiB),
 * `PROGGAN_NATIVE_ADDON` (load the addon from this path instead of build/Release),
 * `PROGGAN_NATIVE_DETERMINISTIC` (`1`/`0`: choose convolution layouts without timing; default on
 * at 1 thread).
 *
 * Determinism: every kernel sums in an order fixed by the shapes and the thread count (OpenMP
 * static schedules, per-thread partial sums combined in thread order), except the convolution
 * layout choice, which times its candidates on first use unless deterministic mode fixes it (see
 * {@link setNativeDeterministic}). So a run repeats bitwise with the same thread count in
 * deterministic mode; with another thread count, another CPU (ISA) or another oneDNN build the
 * last bits differ.
 *
 * Deliberate differences from the cpu backend: `AvgPoolGrad` with 'same' padding and
 * `ResizeNearestNeighborGrad` with batch > 1 return the exact gradients (tfjs 4.22's cpu kernels
 * get both wrong; see BENCHMARKS.md).
 *
 * @packageDocumentation
 */
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { availableParallelism, totalmem } from 'node:os';
import { loadNativeAddon } from '../util/addon.js';
import { ACTIVATIONS, BINARY_OPS, REDUCE_OPS, UNARY_OPS } from './op-codes.js';

/** Name under which the backend is registered with tfjs. */
export const NATIVE_BACKEND_NAME = 'native';

/** Priority of the `native` backend (the cpu backend has 1, tfjs-node 3). */
const NATIVE_PRIORITY = 2;

const FIX_HINT =
  'To get the fast path install oneDNN and a compiler (Debian/Ubuntu: ' +
  '`apt-get install libdnnl-dev g++ make python3`), then run `npm rebuild proggan` ' +
  '(or `node scripts/build-native.mjs` in the package directory).';

/** Thrown by {@link registerNativeBackend} when the oneDNN addon is not built or cannot load. */
export class NativeBackendUnavailableError extends Error {
  constructor(reason: string) {
    super(`proggan native backend unavailable: ${reason}. ${FIX_HINT}`);
    this.name = 'NativeBackendUnavailableError';
  }
}

/** The addon's exports (see src/native/addon.cc and elementwise.cc for the parameter layouts). */
export interface NativeAddon {
  conv(p: Int32Array, a: Float32Array, b: Float32Array, bias: Float32Array | null, out: Float32Array): void;
  matmul(p: Int32Array, a: Float32Array, b: Float32Array, bias: Float32Array | null, out: Float32Array): void;
  pool(p: Int32Array, x: Float32Array | null, dy: Float32Array | null, out: Float32Array): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array | Uint8Array, dims: Int32Array, aStrides: Int32Array, bStrides: Int32Array): void;
  select(cond: Uint8Array, t: Float32Array, e: Float32Array, out: Float32Array): void;
  reduce(op: number, x: Float32Array, out: Float32Array, outer: number, reduced: number, inner: number): void;
  batchNorm(
    x: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    offset: Float32Array | null,
    scale: Float32Array | null,
    out: Float32Array,
    rows: number,
    channels: number,
    eps: number,
    meanMode: number,
    varMode: number,
    offsetMode: number,
    scaleMode: number,
  ): void;
  tile(x: Float32Array, out: Float32Array, dims: Int32Array, reps: Int32Array): void;
  /** Constant padding: `out` (dims `outDims`) = `value`, with x (dims `xDims`) copied in at `before`. */
  pad(x: Float32Array, out: Float32Array, xDims: Int32Array, before: Int32Array, outDims: Int32Array, value: number): void;
  /** Strided slice into a contiguous `out`: x (dims `xDims`)[begin : begin + size]. */
  slice(x: Float32Array, out: Float32Array, xDims: Int32Array, begin: Int32Array, size: Int32Array): void;
  resizeNearest(grad: boolean, src: Float32Array, dst: Float32Array, p: Int32Array, rowMap: Int32Array, colMap: Int32Array): void;
  setThreads(n: number): void;
  getThreads(): number;
  /**
   * Convolution layouts: 0 tfjs's plain NHWC/HWIO, 1 oneDNN-chosen weights layout, 2 oneDNN-chosen
   * activation and weights layouts (reordered around each call), 3 auto (time all, keep fastest),
   * 4 fixed (the first of 1, 0, 2 that oneDNN implements, untimed: repeatable results).
   */
  setLayoutPolicy(policy: 0 | 1 | 2 | 3 | 4): void;
  /** Implementation chosen for a cached convolution (params as passed to conv), "" if none. */
  convImpl(p: Int32Array): string;
  clearCache(): void;
  cacheSize(): number;
  dnnlVersion(): string;
}

/** Result of {@link nativeBackendStatus}. */
export interface NativeBackendStatus {
  /** Whether the addon is built and loads. */
  available: boolean;
  /** Why it is unavailable (when `available` is false). */
  reason?: string;
  /** Threads oneDNN and the elementwise loops use (when available). */
  threads?: number;
  /** oneDNN library version, e.g. "2.6.3" (when available). */
  dnnlVersion?: string;
}

/**
 * Recycles the Float32Arrays that native kernels allocate for their outputs. Fresh large arrays
 * cost page faults on first touch (a 64 MB multiply takes ~3x longer into fresh memory than into
 * reused memory), and a training step allocates the same sizes every time.
 *
 * Safety: an array is only reused after its tensor's data is deleted (refCount 0), and never if
 * it may still be referenced: arrays returned by readSync/read (dataSync(), data()) and arrays
 * that a cpu kernel exposed under another tensor (slice views) are marked escaped for good.
 */
class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly owner = new WeakMap<ArrayBuffer, object>();
  private readonly escaped = new WeakSet<ArrayBuffer>();
  private bytes = 0;

  constructor(private readonly capBytes: number) {}

  /** An array of `n` floats with arbitrary contents (callers overwrite every element). */
  take(n: number): Float32Array {
    const list = this.free.get(n);
    const a = list?.pop();
    if (a !== undefined) {
      this.bytes -= a.byteLength;
      return a;
    }
    return new Float32Array(n);
  }

  /** Records that `values` (from take) now backs the tensor data `dataId`. */
  own(values: Float32Array, dataId: object): void {
    if (values.byteLength >= MIN_POOLED_BYTES) this.owner.set(values.buffer as ArrayBuffer, dataId);
  }

  markEscaped(values: unknown): void {
    if (ArrayBuffer.isView(values)) this.escaped.add(values.buffer as ArrayBuffer);
  }

  /** Whether `values` is an array this pool handed out (possibly a view of one). */
  isOwned(values: unknown): boolean {
    return ArrayBuffer.isView(values) && this.owner.has(values.buffer as ArrayBuffer);
  }

  /** Takes back the array of deleted tensor data if nothing else can reference it. */
  recycle(values: unknown, dataId: object): void {
    if (!(values instanceof Float32Array) || values.byteOffset !== 0) return;
    const buf = values.buffer as ArrayBuffer;
    if (this.owner.get(buf) !== dataId || this.escaped.has(buf) || values.byteLength !== buf.byteLength) return;
    this.owner.delete(buf);
    if (values.byteLength > this.capBytes) return;
    // Make room by dropping the sizes pooled longest ago (e.g. a previous ProGAN resolution's).
    for (const [len, old] of this.free) {
      if (this.bytes + values.byteLength <= this.capBytes) break;
      while (old.length > 0 && this.bytes + values.byteLength > this.capBytes) {
        old.pop();
        this.bytes -= len * Float32Array.BYTES_PER_ELEMENT;
      }
      if (old.length === 0) this.free.delete(len);
    }
    let list = this.free.get(values.length);
    if (list === undefined) {
      list = [];
      this.free.set(values.length, list);
    }
    list.push(values);
    this.bytes += values.byteLength;
  }

  /** Drops every pooled array. */
  clear(): void {
    this.free.clear();
    this.bytes = 0;
  }

  /** Bytes currently held for reuse. */
  get pooledBytes(): number {
    return this.bytes;
  }
}

/** Arrays below this size are left to the garbage collector (no page-fault cost to save). */
const MIN_POOLED_BYTES = 1 << 16;

function poolCapBytes(): number {
  const mb = Number.parseInt(process.env['PROGGAN_NATIVE_POOL_MB'] ?? '', 10);
  if (Number.isFinite(mb) && mb >= 0) return mb * 2 ** 20;
  // A step re-allocates the same sizes every time (Adam alone makes ~14 temporaries per weight
  // tensor), so the pool should hold about one step's worth of intermediates.
  return Math.min(8 * 2 ** 30, totalmem() / 4);
}

/** The cpu backend plus output-array recycling (see {@link BufferPool}). */
class NativeBackendCPU extends MathBackendCPU {
  readonly pool = new BufferPool(poolCapBytes());

  override readSync(dataId: object): tf.backend_util.BackendValues {
    const values = super.readSync(dataId);
    this.pool.markEscaped(values);
    return values;
  }

  override disposeData(dataId: object, force = false): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined;
    const deleted = super.disposeData(dataId, force);
    if (deleted && values !== undefined && !this.data.has(dataId)) this.pool.recycle(values, dataId);
    return deleted;
  }

  override dispose(): void {
    this.pool.clear();
    super.dispose();
  }
}

/**
 * After a cpu kernel ran on the native backend: an output that shares a pooled array with a
 * different tensor (e.g. a slice view) pins that array for good.
 */
function pinAliases(backend: MathBackendCPU, inputs: tf.NamedTensorInfoMap, out: tf.TensorInfo | tf.TensorInfo[]): void {
  if (!(backend instanceof NativeBackendCPU)) return;
  const inputIds = new Set(Object.values(inputs).map((t) => t?.dataId));
  for (const t of Array.isArray(out) ? out : [out]) {
    if (inputIds.has(t.dataId) || !backend.data.has(t.dataId)) continue;
    const values = backend.data.get(t.dataId).values;
    if (backend.pool.isOwned(values)) backend.pool.markEscaped(values);
  }
}

type LoadResult = { addon: NativeAddon } | { error: string };
let loaded: LoadResult | undefined;
let registered = false;

/**
 * Loads the addon once: from `PROGGAN_NATIVE_ADDON` when set (a .node file elsewhere; then only
 * that path), else from `build/Release/proggan_native.node` under the package root.
 */
function loadAddon(): LoadResult {
  if (loaded) return loaded;
  const fns = ['conv', 'matmul', 'pool', 'unary', 'binary', 'reduce', 'setThreads', 'getThreads', 'dnnlVersion'];
  loaded = loadNativeAddon<NativeAddon>(fns, (path) => `${path} is not a compatible proggan_native addon (rebuild it)`);
  return loaded;
}

function addonOrThrow(): NativeAddon {
  const r = loadAddon();
  if ('error' in r) throw new NativeBackendUnavailableError(r.error);
  return r.addon;
}

/** Reports whether the addon is available, and its thread count and oneDNN version. */
export function nativeBackendStatus(): NativeBackendStatus {
  const r = loadAddon();
  if ('error' in r) return { available: false, reason: r.error };
  return { available: true, threads: r.addon.getThreads(), dnnlVersion: r.addon.dnnlVersion() };
}

/** Sets the threads oneDNN (OpenMP) and the elementwise loops use. Throws if the addon is missing. */
export function setNativeThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`threads must be a positive integer, got ${n}`);
  addonOrThrow().setThreads(n);
}

let deterministic = false;

/**
 * Deterministic mode: convolutions use a fixed layout candidate instead of the fastest one timed
 * on first use (timing depends on machine load, and the candidates round differently). Clears the
 * convolution cache. On by default at 1 thread (`--threads 1`), or as `PROGGAN_NATIVE_DETERMINISTIC`
 * says; the cost is the speed of the layouts the timing would have picked instead.
 */
export function setNativeDeterministic(on: boolean): void {
  addonOrThrow().setLayoutPolicy(on ? 4 : 3);
  deterministic = on;
}

/** Whether {@link setNativeDeterministic} mode is on. */
export function nativeDeterministic(): boolean {
  return deterministic;
}


/**
 * Releases the output arrays the active native backend keeps for reuse (see
 * `PROGGAN_NATIVE_POOL_MB`; default a quarter of RAM, at most 8 GiB); returns the bytes freed.
 * Useful after a change of shapes, e.g. a new ProGAN resolution.
 */
export function clearNativeBufferPool(): number {
  if (tf.findBackendFactory(NATIVE_BACKEND_NAME) === null) return 0;
  const backend = tf.findBackend(NATIVE_BACKEND_NAME);
  if (!(backend instanceof NativeBackendCPU)) return 0;
  const bytes = backend.pool.pooledBytes;
  backend.pool.clear();
  return bytes;
}

/** The loaded addon, for benchmarks and tests (throws {@link NativeBackendUnavailableError}). */
export function nativeAddon(): NativeAddon {
  return addonOrThrow();
}

/**
 * Registers the tfjs backend `'native'`: a `MathBackendCPU` with every cpu kernel, the heavy
 * ones replaced by oneDNN. Idempotent (a second call only applies `threads`). Does not switch
 * the active backend: call `tf.setBackend('native')` afterwards.
 *
 * @param opts.threads threads for oneDNN and the elementwise loops (default: env
 *   `PROGGAN_NATIVE_THREADS`, else all cores).
 * @param opts.deterministic fixed convolution layouts for bitwise-repeatable runs (default: env
 *   `PROGGAN_NATIVE_DETERMINISTIC`, else on exactly when the thread count is 1).
 * @throws NativeBackendUnavailableError when the addon is not built or fails to load.
 */
export async function registerNativeBackend(opts: { threads?: number; deterministic?: boolean } = {}): Promise<void> {
  const addon = addonOrThrow();
  const envThreads = Number.parseInt(process.env['PROGGAN_NATIVE_THREADS'] ?? '', 10);
  const threads = opts.threads ?? (envThreads > 0 ? envThreads : undefined);
  if (threads !== undefined) setNativeThreads(threads);
  else if (!registered) addon.setThreads(availableParallelism());
  const envDet = process.env['PROGGAN_NATIVE_DETERMINISTIC'];
  const det = opts.deterministic ?? (envDet === '1' ? true : envDet === '0' ? false : addon.getThreads() === 1);
  if (det !== deterministic || !registered) setNativeDeterministic(det);
  if (registered) return;
  if (tf.findBackendFactory(NATIVE_BACKEND_NAME) === null) {
    tf.registerBackend(NATIVE_BACKEND_NAME, () => new NativeBackendCPU(), NATIVE_PRIORITY);
  }
  const overrides = nativeKernels(addon);
  for (const config of tf.getKernelsForBackend('cpu')) {
    const name = config.kernelName;
    const native = overrides.get(name);
    const fallback = config.kernelFunc;
    const viaCpu = (args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | tf.TensorInfo[] => {
      const out = fallback(args);
      pinAliases(args.backend as MathBackendCPU, args.inputs, out);
      return out;
    };
    const kernelFunc: tf.KernelFunc =
      native === undefined
        ? viaCpu
        : (args) => {
            const out = native(args.inputs, args.backend as MathBackendCPU, args.attrs ?? {});
            count(name, out !== null);
            return out ?? viaCpu(args);
          };
    if (tf.getKernel(config.kernelName, NATIVE_BACKEND_NAME) === undefined) {
      tf.registerKernel({ ...config, backendName: NATIVE_BACKEND_NAME, kernelFunc });
    }
  }
  registered = true;
}

/** Per kernel: calls served natively and calls that fell back to the cpu kernel. */
export type NativeKernelCounts = Record<string, { native: number; fallback: number }>;

const counts = new Map<string, { native: number; fallback: number }>();

function count(name: string, native: boolean): void {
  let c = counts.get(name);
  if (c === undefined) {
    c = { native: 0, fallback: 0 };
    counts.set(name, c);
  }
  if (native) c.native += 1;
  else c.fallback += 1;
}

/**
 * How often each overridden kernel ran natively or fell back to the cpu kernel since
 * registration (or the last `reset`): shows which ops of a model still run in JavaScript.
 */
export function nativeKernelCounts(reset = false): NativeKernelCounts {
  const out: NativeKernelCounts = {};
  for (const [name, c] of counts) out[name] = { ...c };
  if (reset) counts.clear();
  return out;
}

/** Names of the kernels the native backend implements itself (the rest run the cpu kernels). */
export function nativeKernelNames(): string[] {
  return [...nativeKernels(addonOrThrow()).keys()].sort();
}

// ---------------------------------------------------------------------------------------------
// Kernel helpers.

/** A native kernel: returns the output, or null to run the cpu kernel instead. */
type NativeKernel = (
  inputs: tf.NamedTensorInfoMap,
  backend: MathBackendCPU,
  attrs: tf.NamedAttrMap,
) => tf.TensorInfo | tf.TensorInfo[] | null;

/** The backing Float32Array of a float32 tensor, or null (other dtype / storage). */
function f32(backend: MathBackendCPU, t: tf.TensorInfo | undefined): Float32Array | null {
  if (t === undefined || t.dtype !== 'float32') return null;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array ? v : null;
}

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Allocates a float32 output (contents arbitrary: the kernel must write every element) through
 * the backend, so tf.memory() accounting stays right; reuses pooled arrays when it can.
 */
function output(backend: MathBackendCPU, shape: number[]): { info: tf.TensorInfo; values: Float32Array } {
  const n = sizeOf(shape);
  const pool = backend instanceof NativeBackendCPU ? backend.pool : undefined;
  const values = pool === undefined ? new Float32Array(n) : pool.take(n);
  const info = backend.makeTensorInfo(shape, 'float32', values);
  pool?.own(values, info.dataId);
  return { info, values };
}

function floatBits(x: number): number {
  const i = new Int32Array(new Float32Array([x]).buffer)[0];
  return i ?? 0;
}

/** Activation codes understood by the addon; undefined = not supported natively (prelu). */
function activationCode(act: unknown): number | undefined {
  switch (act) {
    case undefined:
    case null:
    case 'linear':
      return ACTIVATIONS.Linear;
    case 'relu':
      return ACTIVATIONS.Relu;
    case 'relu6':
      return ACTIVATIONS.Relu6;
    case 'elu':
      return ACTIVATIONS.Elu;
    case 'leakyrelu':
      return ACTIVATIONS.Leaky;
    case 'sigmoid':
      return ACTIVATIONS.Sigmoid;
    default:
      return undefined;
  }
}

/** Geometry of a convolution or pooling window in every spatial dimension. */
interface Geometry {
  nd: 2 | 3;
  n: number;
  cin: number;
  cout: number;
  input: number[];
  kernel: number[];
  out: number[];
  strides: number[];
  dilations: number[];
  padBefore: number[];
  padAfter: number[];
}

function geometry2d(info: tf.backend_util.Conv2DInfo): Geometry {
  return {
    nd: 2,
    n: info.batchSize,
    cin: info.inChannels,
    cout: info.outChannels,
    input: [info.inHeight, info.inWidth],
    kernel: [info.filterHeight, info.filterWidth],
    out: [info.outHeight, info.outWidth],
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    padBefore: [info.padInfo.top, info.padInfo.left],
    padAfter: [info.padInfo.bottom, info.padInfo.right],
  };
}

function geometry3d(info: tf.backend_util.Conv3DInfo): Geometry {
  return {
    nd: 3,
    n: info.batchSize,
    cin: info.inChannels,
    cout: info.outChannels,
    input: [info.inDepth, info.inHeight, info.inWidth],
    kernel: [info.filterDepth, info.filterHeight, info.filterWidth],
    out: [info.outDepth, info.outHeight, info.outWidth],
    strides: [info.strideDepth, info.strideHeight, info.strideWidth],
    dilations: [info.dilationDepth, info.dilationHeight, info.dilationWidth],
    padBefore: [info.padInfo.front, info.padInfo.top, info.padInfo.left],
    padAfter: [info.padInfo.back, info.padInfo.bottom, info.padInfo.right],
  };
}

/** oneDNN requires out = floor((in + padBefore + padAfter - effectiveKernel) / stride) + 1. */
function consistent(g: Geometry): boolean {
  for (let i = 0; i < g.nd; ++i) {
    const inp = g.input[i] ?? 0;
    const k = g.kernel[i] ?? 0;
    const s = g.strides[i] ?? 0;
    const d = g.dilations[i] ?? 0;
    const pl = g.padBefore[i] ?? -1;
    const pr = g.padAfter[i] ?? -1;
    const out = g.out[i] ?? 0;
    if (pl < 0 || pr < 0 || s < 1 || d < 1 || out < 1) return false;
    const eff = (k - 1) * d + 1;
    if (Math.floor((inp + pl + pr - eff) / s) + 1 !== out) return false;
  }
  return true;
}

/** Pads a per-dimension list to three entries (the addon's fixed parameter layout). */
function triple(v: number[]): number[] {
  return [v[0] ?? 0, v[1] ?? 0, v[2] ?? 0];
}

function convParams(mode: 0 | 1 | 2, g: Geometry, act = 0, hasBias = false, alpha = 0): Int32Array {
  return Int32Array.from([
    mode,
    g.nd,
    g.n,
    g.cin,
    g.cout,
    ...triple(g.input),
    ...triple(g.kernel),
    ...triple(g.out),
    ...triple(g.strides),
    ...triple(g.dilations),
    ...triple(g.padBefore),
    ...triple(g.padAfter),
    act,
    hasBias ? 1 : 0,
    floatBits(alpha),
  ]);
}

function poolParams(mode: 0 | 1 | 2 | 3, g: Geometry): Int32Array {
  return Int32Array.from([
    mode,
    g.nd,
    g.n,
    g.cin,
    ...triple(g.input),
    ...triple(g.kernel),
    ...triple(g.out),
    ...triple(g.strides),
    ...triple(g.padBefore),
    ...triple(g.padAfter),
  ]);
}

/** Parameter signatures the addon rejected: those go straight to the cpu kernel next time. */
const rejected = new Set<string>();

/** Runs an addon call; on a oneDNN error remembers the signature and returns false. */
function attempt(kind: string, p: Int32Array, call: () => void): boolean {
  const key = `${kind}:${p.join(',')}`;
  if (rejected.has(key)) return false;
  try {
    call();
    return true;
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('oneDNN')) {
      rejected.add(key);
      return false;
    }
    throw err;
  }
}

function isNHWC(format: unknown): boolean {
  return format === undefined || format === 'NHWC' || format === 'NDHWC' || format === 'channelsLast';
}

/** Bias usable natively: float32 with exactly `channels` values broadcast along the last axis. */
function biasArray(backend: MathBackendCPU, bias: tf.TensorInfo | undefined, channels: number): Float32Array | null | undefined {
  if (bias === undefined) return undefined;
  const v = f32(backend, bias);
  if (v === null || v.length !== channels) return null;
  const s = bias.shape;
  if (s.length > 0 && s[s.length - 1] !== channels) return null;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Kernels.

function nativeKernels(addon: NativeAddon): Map<string, NativeKernel> {
  const k = new Map<string, NativeKernel>();

  // Forward convolution shared by Conv2D, FusedConv2D and Conv3D.
  const convForward = (
    backend: MathBackendCPU,
    x: tf.TensorInfo,
    filter: tf.TensorInfo,
    g: Geometry,
    outShape: number[],
    bias?: tf.TensorInfo,
    act = 0,
    alpha = 0,
  ): tf.TensorInfo | null => {
    const xv = f32(backend, x);
    const wv = f32(backend, filter);
    const bv = biasArray(backend, bias, g.cout);
    if (xv === null || wv === null || bv === null || !consistent(g)) return null;
    const out = output(backend, outShape);
    const p = convParams(0, g, act, bv !== undefined, alpha);
    if (!attempt('conv', p, () => addon.conv(p, xv, wv, bv ?? null, out.values))) {
      backend.disposeIntermediateTensorInfo(out.info);
      return null;
    }
    return out.info;
  };

  const convBackward = (
    backend: MathBackendCPU,
    mode: 1 | 2,
    a: tf.TensorInfo,
    b: tf.TensorInfo,
    g: Geometry,
    outShape: number[],
  ): tf.TensorInfo | null => {
    const av = f32(backend, a);
    const bv = f32(backend, b);
    if (av === null || bv === null || !consistent(g)) return null;
    const out = output(backend, outShape);
    const p = convParams(mode, g);
    if (!attempt('conv', p, () => addon.conv(p, av, bv, null, out.values))) {
      backend.disposeIntermediateTensorInfo(out.info);
      return null;
    }
    return out.info;
  };

  const conv2dInfo = (
    xShape: number[],
    fShape: number[],
    attrs: tf.NamedAttrMap,
    dilations: number | [number, number],
  ): tf.backend_util.Conv2DInfo =>
    tf.backend_util.computeConv2DInfo(
      xShape as [number, number, number, number],
      fShape as [number, number, number, number],
      attrs['strides'] as [number, number],
      dilations,
      attrs['pad'] as tf.backend_util.PadInfo['type'] & ('same' | 'valid'),
      attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
      false,
      'channelsLast',
    );

  k.set(tf.Conv2D, ({ x, filter }, backend, attrs) => {
    if (x === undefined || filter === undefined || !isNHWC(attrs['dataFormat'])) return null;
    const info = conv2dInfo(x.shape, filter.shape, attrs, attrs['dilations'] as [number, number]);
    return convForward(backend, x, filter, geometry2d(info), info.outShape);
  });

  k.set(tf.FusedConv2D, ({ x, filter, bias, preluActivationWeights }, backend, attrs) => {
    const act = activationCode(attrs['activation']);
    if (x === undefined || filter === undefined || act === undefined || preluActivationWeights !== undefined) return null;
    if (!isNHWC(attrs['dataFormat'])) return null;
    const info = conv2dInfo(x.shape, filter.shape, attrs, attrs['dilations'] as [number, number]);
    const alpha = (attrs['leakyreluAlpha'] as number | undefined) ?? 0.2;
    return convForward(backend, x, filter, geometry2d(info), info.outShape, bias, act, alpha);
  });

  k.set(tf.Conv2DBackpropInput, ({ dy, filter }, backend, attrs) => {
    if (dy === undefined || filter === undefined || !isNHWC(attrs['dataFormat'])) return null;
    const inputShape = attrs['inputShape'] as number[];
    const info = conv2dInfo(inputShape, filter.shape, attrs, 1);
    return convBackward(backend, 1, dy, filter, geometry2d(info), [...inputShape]);
  });

  k.set(tf.Conv2DBackpropFilter, ({ x, dy }, backend, attrs) => {
    if (x === undefined || dy === undefined || !isNHWC(attrs['dataFormat'])) return null;
    const filterShape = attrs['filterShape'] as number[];
    const info = conv2dInfo(x.shape, filterShape, attrs, 1);
    return convBackward(backend, 2, x, dy, geometry2d(info), [...filterShape]);
  });

  const conv3dInfo = (xShape: number[], fShape: number[], attrs: tf.NamedAttrMap, dilations: number | [number, number, number]): tf.backend_util.Conv3DInfo =>
    tf.backend_util.computeConv3DInfo(
      xShape as [number, number, number, number, number],
      fShape as [number, number, number, number, number],
      attrs['strides'] as [number, number, number],
      dilations,
      attrs['pad'] as 'same' | 'valid',
    );

  k.set(tf.Conv3D, ({ x, filter }, backend, attrs) => {
    if (x === undefined || filter === undefined || !isNHWC(attrs['dataFormat'])) return null;
    const info = conv3dInfo(x.shape, filter.shape, attrs, attrs['dilations'] as [number, number, number]);
    return convForward(backend, x, filter, geometry3d(info), info.outShape);
  });

  k.set(tf.Conv3DBackpropInputV2, ({ dy, filter }, backend, attrs) => {
    if (dy === undefined || filter === undefined) return null;
    const inputShape = attrs['inputShape'] as number[];
    const info = conv3dInfo(inputShape, filter.shape, attrs, 1);
    return convBackward(backend, 1, dy, filter, geometry3d(info), [...inputShape]);
  });

  k.set(tf.Conv3DBackpropFilterV2, ({ x, dy }, backend, attrs) => {
    if (x === undefined || dy === undefined) return null;
    const filterShape = attrs['filterShape'] as number[];
    const info = conv3dInfo(x.shape, filterShape, attrs, 1);
    return convBackward(backend, 2, x, dy, geometry3d(info), [...filterShape]);
  });

  // Batched matmul, optionally with bias + activation (_FusedMatMul).
  const matMul = (
    backend: MathBackendCPU,
    a: tf.TensorInfo,
    b: tf.TensorInfo,
    transposeA: boolean,
    transposeB: boolean,
    bias?: tf.TensorInfo,
    act = 0,
    alpha = 0,
  ): tf.TensorInfo | null => {
    const av = f32(backend, a);
    const bv = f32(backend, b);
    if (av === null || bv === null || a.shape.length < 2 || b.shape.length < 2) return null;
    const ra = a.shape.length;
    const rb = b.shape.length;
    const m = (transposeA ? a.shape[ra - 1] : a.shape[ra - 2]) ?? 0;
    const kA = (transposeA ? a.shape[ra - 2] : a.shape[ra - 1]) ?? 0;
    const kB = (transposeB ? b.shape[rb - 1] : b.shape[rb - 2]) ?? 0;
    const n = (transposeB ? b.shape[rb - 2] : b.shape[rb - 1]) ?? 0;
    if (kA !== kB || m === 0 || n === 0 || kA === 0) return null;
    const outerA = a.shape.slice(0, -2);
    const outerB = b.shape.slice(0, -2);
    const outer = tf.backend_util.assertAndGetBroadcastShape(outerA, outerB);
    const batchA = sizeOf(outerA);
    const batchB = sizeOf(outerB);
    const batch = sizeOf(outer);
    const sameOuter = outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i]);
    if (!(sameOuter || (batchA === 1 && batchB === batch) || (batchB === 1 && batchA === batch))) return null;
    const bvBias = biasArray(backend, bias, n);
    if (bvBias === null) return null;
    const out = output(backend, [...outer, m, n]);
    const p = Int32Array.from([batchA, batchB, m, kA, n, transposeA ? 1 : 0, transposeB ? 1 : 0, bvBias === undefined ? 0 : 1, act, floatBits(alpha)]);
    if (!attempt('matmul', p, () => addon.matmul(p, av, bv, bvBias ?? null, out.values))) {
      backend.disposeIntermediateTensorInfo(out.info);
      return null;
    }
    return out.info;
  };

  k.set(tf.BatchMatMul, ({ a, b }, backend, attrs) => {
    if (a === undefined || b === undefined) return null;
    return matMul(backend, a, b, attrs['transposeA'] === true, attrs['transposeB'] === true);
  });

  k.set(tf._FusedMatMul, ({ a, b, bias, preluActivationWeights }, backend, attrs) => {
    const act = activationCode(attrs['activation']);
    if (a === undefined || b === undefined || act === undefined || preluActivationWeights !== undefined) return null;
    const alpha = (attrs['leakyreluAlpha'] as number | undefined) ?? 0.2;
    return matMul(backend, a, b, attrs['transposeA'] === true, attrs['transposeB'] === true, bias, act, alpha);
  });

  // Pooling, 2D and 3D.
  const pool2dInfo = (xShape: number[], attrs: tf.NamedAttrMap): Geometry =>
    geometry2d(
      tf.backend_util.computePool2DInfo(
        xShape as [number, number, number, number],
        attrs['filterSize'] as [number, number],
        attrs['strides'] as [number, number],
        1,
        attrs['pad'] as 'same' | 'valid',
        attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
      ),
    );
  const pool3dInfo = (xShape: number[], attrs: tf.NamedAttrMap): Geometry =>
    geometry3d(
      tf.backend_util.computePool3DInfo(
        xShape as [number, number, number, number, number],
        attrs['filterSize'] as [number, number, number],
        attrs['strides'] as [number, number, number],
        1,
        attrs['pad'] as 'same' | 'valid',
        attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
      ),
    );

  const poolForward = (backend: MathBackendCPU, mode: 0 | 1, x: tf.TensorInfo | undefined, g: Geometry): tf.TensorInfo | null => {
    const xv = f32(backend, x);
    if (xv === null || !consistent(g)) return null;
    const out = output(backend, [g.n, ...g.out, g.cin]);
    const p = poolParams(mode, g);
    if (!attempt('pool', p, () => addon.pool(p, xv, null, out.values))) {
      backend.disposeIntermediateTensorInfo(out.info);
      return null;
    }
    return out.info;
  };

  const poolBackward = (
    backend: MathBackendCPU,
    mode: 2 | 3,
    x: tf.TensorInfo | undefined,
    dy: tf.TensorInfo | undefined,
    g: Geometry,
  ): tf.TensorInfo | null => {
    const xv = f32(backend, x);
    const dyv = f32(backend, dy);
    if (xv === null || dyv === null || x === undefined || !consistent(g)) return null;
    const out = output(backend, [...x.shape]);
    const p = poolParams(mode, g);
    if (!attempt('pool', p, () => addon.pool(p, xv, dyv, out.values))) {
      backend.disposeIntermediateTensorInfo(out.info);
      return null;
    }
    return out.info;
  };

  k.set(tf.MaxPool, ({ x }, backend, attrs) => (x ? poolForward(backend, 0, x, pool2dInfo(x.shape, attrs)) : null));
  k.set(tf.AvgPool, ({ x }, backend, attrs) => (x ? poolForward(backend, 1, x, pool2dInfo(x.shape, attrs)) : null));
  k.set(tf.MaxPoolGrad, ({ dy, input }, backend, attrs) =>
    input ? poolBackward(backend, 2, input, dy, pool2dInfo(input.shape, attrs)) : null,
  );
  k.set(tf.AvgPoolGrad, ({ dy, input }, backend, attrs) =>
    input ? poolBackward(backend, 3, input, dy, pool2dInfo(input.shape, attrs)) : null,
  );
  k.set(tf.MaxPool3D, ({ x }, backend, attrs) =>
    x && isNHWC(attrs['dataFormat']) ? poolForward(backend, 0, x, pool3dInfo(x.shape, attrs)) : null,
  );
  k.set(tf.AvgPool3D, ({ x }, backend, attrs) =>
    x && isNHWC(attrs['dataFormat']) ? poolForward(backend, 1, x, pool3dInfo(x.shape, attrs)) : null,
  );
  k.set(tf.MaxPool3DGrad, ({ dy, input }, backend, attrs) =>
    input ? poolBackward(backend, 2, input, dy, pool3dInfo(input.shape, attrs)) : null,
  );
  k.set(tf.AvgPool3DGrad, ({ dy, input }, backend, attrs) =>
    input ? poolBackward(backend, 3, input, dy, pool3dInfo(input.shape, attrs)) : null,
  );

  // Elementwise unary ops.
  const unaryCodes: Array<[string, number]> = [
    [tf.Relu, UNARY_OPS.Relu],
    [tf.LeakyRelu, UNARY_OPS.LeakyRelu],
    [tf.Square, UNARY_OPS.Square],
    [tf.Sqrt, UNARY_OPS.Sqrt],
    [tf.Rsqrt, UNARY_OPS.Rsqrt],
    [tf.Neg, UNARY_OPS.Neg],
    [tf.Exp, UNARY_OPS.Exp],
    [tf.Log, UNARY_OPS.Log],
    [tf.Abs, UNARY_OPS.Abs],
    [tf.Tanh, UNARY_OPS.Tanh],
    [tf.Sigmoid, UNARY_OPS.Sigmoid],
    [tf.Elu, UNARY_OPS.Elu],
    [tf.Relu6, UNARY_OPS.Relu6],
    [tf.Reciprocal, UNARY_OPS.Reciprocal],
    [tf.Step, UNARY_OPS.Step],
    [tf.Floor, UNARY_OPS.Floor],
  ];
  for (const [name, code] of unaryCodes) {
    k.set(name, ({ x }, backend, attrs) => {
      const xv = f32(backend, x);
      if (xv === null || x === undefined) return null;
      const out = output(backend, [...x.shape]);
      addon.unary(code, xv, out.values, (attrs['alpha'] as number | undefined) ?? 0);
      return out.info;
    });
  }

  // Broadcasting binary ops (float32 in; float32 or bool out).
  const binaryCodes: Array<[string, number]> = [
    [tf.Add, BINARY_OPS.Add],
    [tf.Sub, BINARY_OPS.Sub],
    [tf.Multiply, BINARY_OPS.Mul],
    [tf.RealDiv, BINARY_OPS.Div],
    [tf.Maximum, BINARY_OPS.Max],
    [tf.Minimum, BINARY_OPS.Min],
    [tf.SquaredDifference, BINARY_OPS.SqDiff],
    [tf.Pow, BINARY_OPS.Pow],
    [tf.Greater, BINARY_OPS.Greater],
    [tf.GreaterEqual, BINARY_OPS.GreaterEqual],
    [tf.Less, BINARY_OPS.Less],
    [tf.LessEqual, BINARY_OPS.LessEqual],
    [tf.Equal, BINARY_OPS.Equal],
    [tf.NotEqual, BINARY_OPS.NotEqual],
  ];
  for (const [name, code] of binaryCodes) {
    k.set(name, ({ a, b }, backend) => {
      const av = f32(backend, a);
      const bv = f32(backend, b);
      if (av === null || bv === null || a === undefined || b === undefined) return null;
      const g = broadcastGeometry(a.shape, b.shape);
      if (g === null) return null;
      if (code < 16) {
        const out = output(backend, g.outShape);
        addon.binary(code, av, bv, out.values, g.dims, g.aStrides, g.bStrides);
        return out.info;
      }
      const values = new Uint8Array(sizeOf(g.outShape));
      addon.binary(code, av, bv, values, g.dims, g.aStrides, g.bStrides);
      return backend.makeTensorInfo(g.outShape, 'bool', values);
    });
  }

  k.set(tf.Select, ({ condition, t, e }, backend) => {
    const tv = f32(backend, t);
    const ev = f32(backend, e);
    if (tv === null || ev === null || condition === undefined || t === undefined || condition.dtype !== 'bool') return null;
    const cv = backend.data.get(condition.dataId).values;
    if (!(cv instanceof Uint8Array) || cv.length !== tv.length || ev.length !== tv.length) return null;
    const out = output(backend, [...t.shape]);
    addon.select(cv, tv, ev, out.values);
    return out.info;
  });

  // Reductions over one contiguous block of axes.
  const reduceKernel =
    (code: number, axisAttr: string): NativeKernel =>
    ({ x }, backend, attrs) => {
      const xv = f32(backend, x);
      if (xv === null || x === undefined || x.shape.length === 0) return null;
      const axes = tf.util.parseAxisParam(attrs[axisAttr] as number | number[], x.shape);
      const outShape = attrs['keepDims'] === true ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
      const r = reductionGeometry(x.shape, axes);
      if (r === null) {
        // Axes that are not one block (e.g. [2, 4] of [N, H/2, 2, W/2, 2, C] in a 2x average pool):
        // reduce each block of adjacent axes in turn, last block first. Sum, max and min compose;
        // so does the mean, since every partial mean is over equally many elements.
        if (x.shape.some((d) => d === 0)) return null;
        const runs = axisRuns(axes);
        const out = output(backend, outShape);
        let shape = x.shape.slice();
        let values = xv;
        for (let i = runs.length - 1; i >= 0; i--) {
          const run = runs[i] as number[];
          const g = reductionGeometry(shape, run) as { outer: number; reduced: number; inner: number };
          const next = shape.map((d, j) => (run.includes(j) ? 1 : d));
          const dst = i === 0 ? out.values : new Float32Array(sizeOf(next));
          addon.reduce(code, values, dst, g.outer, g.reduced, g.inner);
          shape = next;
          values = dst;
        }
        return out.info;
      }
      if (r.reduced === 0 && code >= 2) return null;
      const out = output(backend, outShape);
      if (r.reduced > 0) addon.reduce(code, xv, out.values, r.outer, r.reduced, r.inner);
      else out.values.fill(code === 1 ? Number.NaN : 0);
      return out.info;
    };
  k.set(tf.Sum, reduceKernel(REDUCE_OPS.Sum, 'axis'));
  k.set(tf.Mean, reduceKernel(REDUCE_OPS.Mean, 'axis'));
  k.set(tf.Max, reduceKernel(REDUCE_OPS.RMax, 'reductionIndices'));
  k.set(tf.Min, reduceKernel(REDUCE_OPS.RMin, 'axis'));

  k.set(tf.Tile, ({ x }, backend, attrs) => {
    const xv = f32(backend, x);
    const reps = attrs['reps'] as number[];
    if (xv === null || x === undefined || x.shape.length === 0 || reps.length !== x.shape.length) return null;
    const outShape = x.shape.map((d, i) => d * (reps[i] ?? 1));
    const out = output(backend, outShape);
    if (out.values.length > 0) addon.tile(xv, out.values, Int32Array.from(x.shape), Int32Array.from(reps));
    return out.info;
  });

  // Constant padding (ZeroPadding3D and the gradient of slices) and strided slices (the gradient of
  // padding); the cpu kernels walk these element by element in JS.
  k.set(tf.PadV2, ({ x }, backend, attrs) => {
    const xv = f32(backend, x);
    const paddings = attrs['paddings'] as Array<[number, number]>;
    if (xv === null || x === undefined || x.shape.length === 0 || paddings.length !== x.shape.length) return null;
    const outShape = x.shape.map((d, i) => d + (paddings[i]?.[0] ?? 0) + (paddings[i]?.[1] ?? 0));
    const out = output(backend, outShape);
    if (out.values.length === 0) return out.info;
    const value = (attrs['constantValue'] as number | undefined) ?? 0;
    if (xv.length === 0) {
      out.values.fill(value);
      return out.info;
    }
    const m = mergeWholeTrailingDims(x.shape, paddings.map((p) => p[0]), outShape);
    addon.pad(xv, out.values, m.inner, m.at, m.outer, value);
    return out.info;
  });

  k.set(tf.Slice, ({ x }, backend, attrs) => {
    const xv = f32(backend, x);
    if (xv === null || x === undefined || x.shape.length === 0) return null;
    const [begin, size] = tf.slice_util.parseSliceParams(x, attrs['begin'] as number | number[], attrs['size'] as number | number[]);
    if (begin === undefined || size === undefined) return null;
    tf.slice_util.assertParamsValid(x, begin, size);
    // A contiguous slice is a view in the cpu kernel (no copy): keep that.
    if (tf.slice_util.isSliceContinous(x.shape, begin, size)) return null;
    const out = output(backend, size);
    if (out.values.length === 0) return out.info;
    const m = mergeWholeTrailingDims(size, begin, x.shape);
    addon.slice(xv, out.values, m.outer, m.at, m.inner);
    return out.info;
  });

  k.set(tf.FusedBatchNorm, ({ x, mean, variance, offset, scale }, backend, attrs) => {
    const xv = f32(backend, x);
    const mv = f32(backend, mean);
    const vv = f32(backend, variance);
    if (xv === null || mv === null || vv === null || x === undefined || x.shape.length === 0) return null;
    const ch = x.shape[x.shape.length - 1] ?? 1;
    const mode = (t: tf.TensorInfo | undefined): number | null => {
      if (t === undefined) return 2;
      const n = sizeOf(t.shape);
      if (n === 1) return 2;
      if (n === ch && t.shape[t.shape.length - 1] === ch) return 0;
      if (t.shape.length === x.shape.length && t.shape.every((d, i) => d === x.shape[i])) return 1;
      return null;
    };
    const ov = offset === undefined ? null : f32(backend, offset);
    const sv = scale === undefined ? null : f32(backend, scale);
    const modes = [mode(mean), mode(variance), mode(offset), mode(scale)];
    if (modes.some((m) => m === null) || (offset !== undefined && ov === null) || (scale !== undefined && sv === null)) return null;
    const [mm, vm, om, sm] = modes as number[];
    const out = output(backend, [...x.shape]);
    const eps = (attrs['varianceEpsilon'] as number | undefined) ?? 0.001;
    addon.batchNorm(xv, mv, vv, ov, sv, out.values, xv.length / ch, ch, eps, mm ?? 0, vm ?? 0, om ?? 2, sm ?? 2);
    return out.info;
  });

  // Nearest-neighbour resize (NHWC): source maps computed exactly as the cpu kernel does.
  const nearestMaps = (inShape: number[], attrs: tf.NamedAttrMap): { rows: Int32Array; cols: Int32Array } => {
    const [newH, newW] = attrs['size'] as [number, number];
    const alignCorners = attrs['alignCorners'] === true;
    const halfPixel = attrs['halfPixelCenters'] === true;
    const map = (oldSize: number, newSize: number): Int32Array => {
      const effIn = alignCorners && newSize > 1 ? oldSize - 1 : oldSize;
      const effOut = alignCorners && newSize > 1 ? newSize - 1 : newSize;
      const ratio = effIn / effOut;
      const m = new Int32Array(newSize);
      for (let i = 0; i < newSize; ++i) {
        const frac = halfPixel ? ratio * (i + 0.5) : ratio * i;
        let src = Math.min(oldSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
        if (halfPixel) src = Math.max(0, src);
        m[i] = src;
      }
      return m;
    };
    return { rows: map(inShape[1] ?? 1, newH), cols: map(inShape[2] ?? 1, newW) };
  };
  k.set(tf.ResizeNearestNeighbor, ({ images }, backend, attrs) => {
    const xv = f32(backend, images);
    if (xv === null || images === undefined || images.shape.length !== 4) return null;
    const [n = 0, h = 0, w = 0, c = 0] = images.shape;
    const [newH, newW] = attrs['size'] as [number, number];
    const { rows, cols } = nearestMaps(images.shape, attrs);
    const out = output(backend, [n, newH, newW, c]);
    addon.resizeNearest(false, xv, out.values, Int32Array.from([n, h, w, c, newH, newW]), rows, cols);
    return out.info;
  });
  k.set(tf.ResizeNearestNeighborGrad, ({ images, dy }, backend, attrs) => {
    const dyv = f32(backend, dy);
    if (dyv === null || images === undefined || dy === undefined || images.shape.length !== 4) return null;
    const [n = 0, h = 0, w = 0, c = 0] = images.shape;
    const [newH = 0, newW = 0] = dy.shape.slice(1, 3);
    const { rows, cols } = nearestMaps(images.shape, { ...attrs, size: [newH, newW] });
    const out = output(backend, [n, h, w, c]);
    addon.resizeNearest(true, dyv, out.values, Int32Array.from([n, h, w, c, newH, newW]), rows, cols);
    return out.info;
  });

  return k;
}

/** Broadcast of two shapes as at most 6 collapsed dims with element strides (0 = broadcast). */
/**
 * A box `inner` (placed at `at`) inside a tensor `outer`, with trailing dims that the box covers
 * whole merged into the dim before them, so the addon copies long rows: e.g. a pad of the depth of
 * [N, X, Y, Z, C] copies rows of Z * C values instead of C.
 */
function mergeWholeTrailingDims(inner: readonly number[], at: readonly number[], outer: readonly number[]): { inner: Int32Array; at: Int32Array; outer: Int32Array } {
  const i = [...inner];
  const a = [...at];
  const o = [...outer];
  while (i.length > 1 && i[i.length - 1] === o[o.length - 1] && a[a.length - 1] === 0) {
    const d = i.pop() ?? 1;
    a.pop();
    o.pop();
    const last = i.length - 1;
    i[last] = (i[last] ?? 1) * d;
    a[last] = (a[last] ?? 0) * d;
    o[last] = (o[last] ?? 1) * d;
  }
  return { inner: Int32Array.from(i), at: Int32Array.from(a), outer: Int32Array.from(o) };
}

function broadcastGeometry(
  aShape: number[],
  bShape: number[],
): { outShape: number[]; dims: Int32Array; aStrides: Int32Array; bStrides: Int32Array } | null {
  const outShape = tf.backend_util.assertAndGetBroadcastShape(aShape, bShape);
  const r = outShape.length;
  const stridesFor = (shape: number[]): number[] => {
    const padded = [...new Array<number>(r - shape.length).fill(1), ...shape];
    const st = new Array<number>(r).fill(0);
    let acc = 1;
    for (let i = r - 1; i >= 0; --i) {
      const d = padded[i] ?? 1;
      st[i] = d === 1 ? 0 : acc;
      acc *= d;
    }
    return st;
  };
  const sa = stridesFor(aShape);
  const sb = stridesFor(bShape);
  const dims: number[] = [];
  const da: number[] = [];
  const db: number[] = [];
  for (let i = 0; i < r; ++i) {
    const d = outShape[i] ?? 1;
    const ai = sa[i] ?? 0;
    const bi = sb[i] ?? 0;
    if (d === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && da[last] === ai * d && db[last] === bi * d) {
      dims[last] = (dims[last] ?? 1) * d;
      da[last] = ai;
      db[last] = bi;
    } else {
      dims.push(d);
      da.push(ai);
      db.push(bi);
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    da.push(0);
    db.push(0);
  }
  if (dims.length > 6) return null;
  return { outShape, dims: Int32Array.from(dims), aStrides: Int32Array.from(da), bStrides: Int32Array.from(db) };
}

/** x viewed as [outer, reduced, inner] when `axes` form one block (size-1 dims ignored). */
/** Sorted axes split into runs of adjacent ones: [1, 2, 4] -> [[1, 2], [4]]. */
function axisRuns(axes: number[]): number[][] {
  const sorted = [...axes].sort((a, b) => a - b);
  const runs: number[][] = [];
  for (const a of sorted) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[last.length - 1] === a - 1) last.push(a);
    else runs.push([a]);
  }
  return runs;
}

function reductionGeometry(shape: number[], axes: number[]): { outer: number; reduced: number; inner: number } | null {
  let outer = 1;
  let reduced = 1;
  let inner = 1;
  let phase = 0; // 0 before the reduced block, 1 inside it, 2 after it
  for (let i = 0; i < shape.length; ++i) {
    const d = shape[i] ?? 1;
    const isReduced = axes.includes(i);
    if (d === 1 && phase !== 0) continue;
    if (isReduced) {
      if (phase === 2) return null;
      phase = 1;
      reduced *= d;
    } else if (phase === 0) {
      outer *= d;
    } else {
      phase = 2;
      inner *= d;
    }
  }
  return { outer, reduced, inner };
}
