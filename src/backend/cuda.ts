/**
 * The `cuda` tfjs backend: tensors live in GPU memory and are read back only by `data()` /
 * `dataSync()`. Kernels run on the device through one small interface ({@link DeviceApi}); the
 * real one is the CUDA addon (src/native/cuda: cuDNN, cuBLAS, NCCL loaded at run time), tests use
 * an in-memory fake.
 *
 * - Storage: dataId -> device block from a caching allocator (freed blocks are kept by size class
 *   and reused; the cache is emptied and the allocation retried when the device is full).
 *   `tf.memory()` adds `numBytesInGPU` (live tensor bytes), `numBytesInGPUAllocated` (live +
 *   cached), `numBytesInGPUFree` (cached) and `peakBytesInGPU`.
 * - Kernels: those in src/backend/cuda-kernels.ts run on the device. Every other tfjs kernel (and
 *   a device kernel declining a case, e.g. int32 arithmetic) falls back through the host: inputs
 *   are downloaded, the cpu backend's kernel runs, outputs are uploaded. Fallbacks are counted per
 *   kernel ({@link cudaKernelCounts}) and logged once per kernel name.
 *
 * @packageDocumentation
 */
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { addonDevice, bytesPerElement, type CudaAddon, type DeviceApi } from './cuda-device.js';
import { CUDA_KERNELS } from './cuda-kernels.js';
import { cudaLibraryDirs, loadCudaAddon } from './cuda-libs.js';

/** Name under which the backend is registered with tfjs. */
export const CUDA_BACKEND_NAME = 'cuda';

const CUDA_PRIORITY = 4;

const FIX_HINT =
  'The cuda backend needs an NVIDIA GPU with a CUDA 13 driver (nvidia-smi must work), the addon built by ' +
  '`node scripts/build-cuda.mjs` (needs nvcc), and cuBLAS 13 / cuDNN 9 libraries: from a CUDA install ' +
  '(CUDA_HOME), the system, or `pip install nvidia-cublas nvidia-cudnn-cu13 nvidia-nccl-cu13` ' +
  '(or set PROGGAN_CUDA_LIB_DIRS to the folders holding libcublas.so.13 and libcudnn.so.9)';

/** Thrown when the cuda backend cannot start; the message names what is missing and how to fix it. */
export class CudaBackendUnavailableError extends Error {
  constructor(reason: string) {
    super(`proggan cuda backend unavailable: ${reason}. ${FIX_HINT}.`);
    this.name = 'CudaBackendUnavailableError';
  }
}

// ---- caching allocator ---------------------------------------------------------------------
/** Size class of a request: multiples of 512 B, then steps of 1/8 of the power of two below. */
export function roundBlock(bytes: number): number {
  const min = 512;
  if (bytes <= min) return min;
  const step = Math.max(min, 2 ** (Math.floor(Math.log2(bytes)) - 3));
  return Math.ceil(bytes / step) * step;
}

/** Device memory by size class, reusing freed blocks (PyTorch's caching allocator, minus splitting). */
export class CachingAllocator {
  private readonly cache = new Map<number, number[]>();
  /** Bytes in blocks held by live data. */
  liveBytes = 0;
  /** Bytes in freed blocks kept for reuse. */
  cachedBytes = 0;
  /** Highest liveBytes seen. */
  peakBytes = 0;
  /** Calls that went to the device (not served from the cache). */
  deviceAllocs = 0;

  constructor(private readonly device: DeviceApi) {}

  /** A block of at least `bytes`; returns its pointer and actual size. */
  take(bytes: number): { ptr: number; size: number } {
    const size = roundBlock(bytes);
    const hit = this.cache.get(size)?.pop();
    let ptr: number;
    if (hit !== undefined) {
      ptr = hit;
      this.cachedBytes -= size;
    } else {
      try {
        ptr = this.device.alloc(size);
      } catch (err) {
        // Out of memory with blocks cached: give them back and try once more.
        if (this.cachedBytes === 0) throw err;
        this.emptyCache();
        ptr = this.device.alloc(size);
      }
      this.deviceAllocs++;
    }
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return { ptr, size };
  }

  /** Returns a block from {@link take} to the cache. */
  give(ptr: number, size: number): void {
    this.liveBytes -= size;
    this.cachedBytes += size;
    let list = this.cache.get(size);
    if (list === undefined) {
      list = [];
      this.cache.set(size, list);
    }
    list.push(ptr);
  }

  /** Frees every cached block on the device. */
  emptyCache(): void {
    for (const list of this.cache.values()) for (const ptr of list) this.device.free(ptr);
    this.cache.clear();
    this.cachedBytes = 0;
  }
}

// ---- the backend ---------------------------------------------------------------------------
interface Entry {
  ptr: number;
  /** Block size from the allocator (0 for empty tensors and strings). */
  block: number;
  dtype: tf.DataType;
  length: number;
  refCount: number;
  /** Values of string tensors, which stay on the host. */
  strings?: Uint8Array[];
}

/** Called the first time each kernel falls back to the host (name, why). */
export type FallbackListener = (kernel: string, reason: string) => void;

/** Per kernel: calls served on the device and calls that went through the host. */
export type CudaKernelCounts = Record<string, { device: number; fallback: number }>;

const counts = new Map<string, { device: number; fallback: number }>();
const warned = new Set<string>();
let onFallback: FallbackListener | undefined;

function count(name: string, device: boolean): void {
  let c = counts.get(name);
  if (c === undefined) {
    c = { device: 0, fallback: 0 };
    counts.set(name, c);
  }
  if (device) c.device++;
  else c.fallback++;
}

/** Device and fallback calls per kernel since the last {@link resetCudaKernelCounts}. */
export function cudaKernelCounts(): CudaKernelCounts {
  return Object.fromEntries(counts);
}

/** Zeroes {@link cudaKernelCounts} (the once-per-kernel fallback log is not repeated). */
export function resetCudaKernelCounts(): void {
  counts.clear();
}

function typedFor(dtype: tf.DataType, length: number): Float32Array | Int32Array | Uint8Array {
  if (dtype === 'int32') return new Int32Array(length);
  if (dtype === 'bool') return new Uint8Array(length);
  return new Float32Array(length);
}

/** A tfjs KernelBackend whose tensors are device buffers behind a {@link DeviceApi}. */
export class CudaBackend extends tf.KernelBackend {
  readonly allocator: CachingAllocator;
  private readonly entries = new Map<object, Entry>();
  private cpuBackend: MathBackendCPU | undefined;

  constructor(readonly device: DeviceApi) {
    super();
    this.allocator = new CachingAllocator(device);
  }

  private entry(dataId: object): Entry {
    const e = this.entries.get(dataId);
    if (e === undefined) throw new Error('cuda backend: unknown or disposed tensor data');
    return e;
  }

  private store(dataId: object, values: tf.BackendValues | null, shape: number[], dtype: tf.DataType, refCount: number): void {
    const length = shape.reduce((a, d) => a * d, 1);
    if (dtype === 'string') {
      this.entries.set(dataId, { ptr: 0, block: 0, dtype, length, refCount, strings: (values ?? []) as Uint8Array[] });
      return;
    }
    if (dtype === 'complex64') throw new Error('cuda backend: complex64 tensors are not supported');
    let ptr = 0;
    let block = 0;
    if (length > 0) {
      ({ ptr, size: block } = this.allocator.take(length * bytesPerElement(dtype)));
    }
    this.entries.set(dataId, { ptr, block, dtype, length, refCount });
    if (values !== null && length > 0) {
      let host = values as ArrayBufferView;
      const want = typedFor(dtype, 0).constructor as typeof Float32Array | typeof Int32Array | typeof Uint8Array;
      if (!(values instanceof want)) host = want.from(values as ArrayLike<number>);
      this.device.upload(ptr, host);
    }
  }

  override write(values: tf.BackendValues | null, shape: number[], dtype: tf.DataType): tf.DataId {
    const dataId = {};
    this.store(dataId, values, shape, dtype, 1);
    return dataId;
  }

  override move(dataId: tf.DataId, values: tf.BackendValues | null, shape: number[], dtype: tf.DataType, refCount: number): void {
    this.store(dataId, values, shape, dtype, refCount);
  }

  override readSync(dataId: object): tf.BackendValues {
    const e = this.entry(dataId);
    if (e.strings !== undefined) return e.strings;
    const out = typedFor(e.dtype, e.length);
    if (e.length > 0) this.device.download(e.ptr, out);
    return out;
  }

  override read(dataId: object): Promise<tf.BackendValues> {
    return Promise.resolve(this.readSync(dataId));
  }

  override disposeData(dataId: object, force = false): boolean {
    const e = this.entries.get(dataId);
    if (e === undefined) return true;
    e.refCount--;
    if (!force && e.refCount > 0) return false;
    if (e.block > 0) this.allocator.give(e.ptr, e.block);
    this.entries.delete(dataId);
    return true;
  }

  override refCount(dataId: object): number {
    return this.entries.get(dataId)?.refCount ?? 0;
  }

  override incRef(dataId: object): void {
    this.entry(dataId).refCount++;
  }

  override numDataIds(): number {
    return this.entries.size;
  }

  override memory(): { unreliable: boolean; numBytesInGPU: number; numBytesInGPUAllocated: number; numBytesInGPUFree: number; peakBytesInGPU: number } {
    const a = this.allocator;
    return {
      unreliable: false,
      numBytesInGPU: a.liveBytes,
      numBytesInGPUAllocated: a.liveBytes + a.cachedBytes,
      numBytesInGPUFree: a.cachedBytes,
      peakBytesInGPU: a.peakBytes,
    };
  }

  override floatPrecision(): 32 {
    return 32;
  }

  override epsilon(): number {
    return 1e-7;
  }

  override timerAvailable(): boolean {
    return true;
  }

  override async time(f: () => void): Promise<tf.BackendTimingInfo> {
    const t0 = performance.now();
    f();
    this.device.synchronize();
    return { kernelMs: performance.now() - t0 };
  }

  override dispose(): void {
    for (const e of this.entries.values()) if (e.block > 0) this.allocator.give(e.ptr, e.block);
    this.entries.clear();
    this.allocator.emptyCache();
    this.cpuBackend?.dispose();
  }

  // ---- helpers for the kernels ----
  /** Device pointer of a tensor's data. */
  ptr(t: tf.TensorInfo): number {
    return this.entry(t.dataId).ptr;
  }

  /** A new tensor of `shape` with uninitialised device memory. */
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo {
    return { dataId: this.write(null, shape, dtype), shape, dtype };
  }

  /** A new tensor holding `values` (uploaded). */
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.BackendValues): tf.TensorInfo {
    return { dataId: this.write(values ?? null, shape, dtype), shape, dtype };
  }

  /** Drops one reference to an intermediate tensor's data. */
  release(t: tf.TensorInfo): void {
    this.disposeData(t.dataId);
  }

  /** Releases the intermediate `old` and returns `next` (for chains of kernels). */
  consume(old: tf.TensorInfo, next: tf.TensorInfo | null): tf.TensorInfo | null {
    if (next === null || next.dataId !== old.dataId) this.release(old);
    return next;
  }

  /**
   * Runs tfjs kernel `name` on the cpu backend: downloads the inputs, runs, uploads the outputs.
   * Every temporary on the cpu side is disposed.
   */
  runOnHost(name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap): tf.TensorInfo | tf.TensorInfo[] {
    const config = tf.getKernel(name, 'cpu');
    if (config === undefined) throw new Error(`cuda backend: kernel ${name} has neither a device nor a cpu implementation`);
    const cpu = (this.cpuBackend ??= new MathBackendCPU());
    const made: object[] = [];
    const toCpu = (t: tf.TensorInfo | undefined): tf.TensorInfo | undefined => {
      if (t === undefined) return undefined;
      const dataId = cpu.write(this.readSync(t.dataId), t.shape, t.dtype);
      made.push(dataId);
      return { dataId, shape: t.shape, dtype: t.dtype };
    };
    const cpuInputs: tf.NamedTensorInfoMap = Array.isArray(inputs)
      ? ((inputs as (tf.TensorInfo | undefined)[]).map(toCpu) as unknown as tf.NamedTensorInfoMap)
      : Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, toCpu(t)]));
    const out = config.kernelFunc({ inputs: cpuInputs, backend: cpu, attrs });
    const outs = Array.isArray(out) ? out : [out];
    const result = outs.map((o) => this.makeTensorInfo(o.shape, o.dtype, cpu.readSync(o.dataId)));
    for (const o of outs) made.push(o.dataId);
    for (const id of new Set(made)) cpu.disposeData(id, true);
    return Array.isArray(out) ? result : (result[0] as tf.TensorInfo);
  }
}

/** The kernel function registered for `name` on the cuda backend: device first, else the host. */
export function cudaKernelFunc(name: string): tf.KernelFunc {
  const device = CUDA_KERNELS.get(name);
  return ({ inputs, backend, attrs }) => {
    const b = backend as CudaBackend;
    const out = device === undefined ? null : device(inputs, b, attrs ?? {});
    if (out !== null) {
      count(name, true);
      return out;
    }
    count(name, false);
    if (!warned.has(name)) {
      warned.add(name);
      onFallback?.(name, device === undefined ? 'no device kernel' : 'case not covered on the device (dtype, layout or rank)');
    }
    return b.runOnHost(name, inputs, attrs ?? {});
  };
}

let registeredDevice: DeviceApi | undefined;

/**
 * Registers the `cuda` backend over `device` and every kernel the cpu backend has (device kernel
 * or host fallback). Exposed for tests, which pass a fake device; {@link registerCudaBackend}
 * passes the real one.
 */
export function registerCudaBackendWith(device: DeviceApi, opts: { onFallback?: FallbackListener; name?: string } = {}): void {
  const name = opts.name ?? CUDA_BACKEND_NAME;
  onFallback = opts.onFallback ?? onFallback;
  if (tf.findBackendFactory(name) !== null) tf.removeBackend(name);
  tf.registerBackend(name, () => new CudaBackend(device), CUDA_PRIORITY);
  for (const config of tf.getKernelsForBackend('cpu')) {
    if (tf.getKernel(config.kernelName, name) !== undefined) tf.unregisterKernel(config.kernelName, name);
    tf.registerKernel({ kernelName: config.kernelName, backendName: name, kernelFunc: cudaKernelFunc(config.kernelName) });
  }
  registeredDevice = device;
}

/** What {@link cudaBackendStatus} found. */
export interface CudaStatus {
  /** Whether the backend can start: addon, driver, device and cuBLAS + cuDNN all present. */
  available: boolean;
  /** What is missing (when not available). */
  reason?: string;
  addonPath?: string;
  runtimeVersion?: number;
  driverVersion?: number;
  deviceCount?: number;
  libraries?: Record<string, string>;
}

let cachedAddon: CudaAddon | undefined;

/** Checks addon, driver, device and libraries without starting anything; never throws. */
export function cudaBackendStatus(): CudaStatus {
  const load = loadCudaAddon();
  if ('error' in load) return { available: false, reason: load.error };
  const { addon, path } = load;
  const probe = addon.probe();
  const base: CudaStatus = { available: false, addonPath: path, runtimeVersion: probe.runtimeVersion, driverVersion: probe.driverVersion, deviceCount: probe.deviceCount };
  if (probe.error !== undefined) {
    const what = /insufficient|driver/i.test(probe.error) ? 'no usable NVIDIA driver' : 'no usable CUDA device';
    return { ...base, reason: `${what} (${probe.error}; CUDA runtime ${probe.runtimeVersion}, driver ${probe.driverVersion})` };
  }
  // Only with a device: dlopen cuBLAS / cuDNN / NCCL (large libraries; `auto` on a CPU machine skips this).
  const libs = addon.loadLibraries(cudaLibraryDirs());
  const libraries: Record<string, string> = {};
  for (const [k, v] of Object.entries(libs)) libraries[k] = v.path !== undefined ? `${v.path} (version ${v.version ?? '?'})` : `missing: ${v.error ?? '?'}`;
  base.libraries = libraries;
  const missing = (['cublas', 'cudnn'] as const).filter((k) => libs[k].path === undefined).map((k) => libs[k].error ?? k);
  if (missing.length > 0) return { ...base, reason: `library missing: ${missing.join('; ')}` };
  cachedAddon = addon;
  return { ...base, available: true };
}

/**
 * Starts the device and registers the `cuda` backend (does not select it).
 * @param opts.tf32 allow TF32 tensor-core math in cuBLAS and cuDNN (default: `PROGGAN_CUDA_TF32=1`;
 *   off, so results match float32 to ~1e-5 relative).
 * @throws CudaBackendUnavailableError naming the missing driver, device, library or addon.
 */
export function registerCudaBackend(opts: { tf32?: boolean; onFallback?: FallbackListener } = {}): { device: string; detail: string } {
  const st = cudaBackendStatus();
  if (!st.available || cachedAddon === undefined) throw new CudaBackendUnavailableError(st.reason ?? 'unknown reason');
  const addon = cachedAddon;
  let info: ReturnType<CudaAddon['init']>;
  try {
    info = addon.init({ tf32: opts.tf32 ?? process.env['PROGGAN_CUDA_TF32'] === '1' });
  } catch (err) {
    throw new CudaBackendUnavailableError(err instanceof Error ? err.message : String(err));
  }
  if (registeredDevice === undefined) registerCudaBackendWith(addonDevice(addon), opts.onFallback ? { onFallback: opts.onFallback } : {});
  else if (opts.onFallback) onFallback = opts.onFallback;
  const gib = (info.totalBytes / 2 ** 30).toFixed(0);
  return { device: info.name, detail: `${info.name}, sm_${info.computeCapability.replace('.', '')}, ${gib} GiB, ${info.tf32 ? 'TF32' : 'fp32'} math` };
}
