/**
 * The one seam between the `cuda` backend's JavaScript bookkeeping and the GPU: {@link DeviceApi}.
 * The real implementation wraps build/Release/proggan_cuda.node (src/native/cuda); tests use an
 * in-memory fake (test/cuda-fake-device.ts) so that data lifetimes, memory accounting and the
 * host fallback are checked on machines without a GPU.
 *
 * The op-code tables below must list the same names in the same order as src/native/cuda/ops.h;
 * the addon exports its lists and a test compares them.
 *
 * @packageDocumentation
 */

/** Unary float32 ops, by op code (index). `Identity` and `Scale` (a*x+b) are internal helpers. */
export const UNARY_OPS = [
  'Identity', 'Neg', 'Abs', 'Exp', 'Expm1', 'Log', 'Log1p', 'Sqrt', 'Rsqrt', 'Square', 'Reciprocal', 'Relu', 'Relu6',
  'LeakyRelu', 'Elu', 'Selu', 'Sigmoid', 'Softplus', 'Tanh', 'Sin', 'Cos', 'Sign', 'Floor', 'Ceil', 'Round', 'Erf',
  'Step', 'ClipByValue', 'Scale',
] as const;

/** Binary float32 ops with float32 results, then comparisons with bool results, by op code. */
export const BINARY_OPS = [
  'Add', 'Sub', 'Mul', 'RealDiv', 'Maximum', 'Minimum', 'Pow', 'SquaredDifference', 'FloorDiv', 'Mod', 'Atan2',
  'DivNoNan', 'Prelu', 'EluGrad',
  'Equal', 'NotEqual', 'Less', 'LessEqual', 'Greater', 'GreaterEqual', 'LogicalAnd', 'LogicalOr',
] as const;

/** Index in {@link BINARY_OPS} of the first op whose result is bool. */
export const FIRST_COMPARE_OP = BINARY_OPS.indexOf('Equal');

/** Reductions over the middle axis of [outer, reduced, inner], by op code. */
export const REDUCE_OPS = ['Sum', 'Mean', 'Max', 'Min', 'Prod', 'ArgMax', 'ArgMin', 'Any', 'All'] as const;

/** Device element types (src/native/cuda/kernels.h DType). */
export const DTYPE_CODE = { float32: 0, int32: 1, bool: 2 } as const;

/** Highest rank a strided kernel (binary, select, copy) accepts. */
export const MAX_RANK = 8;

/**
 * Everything the `cuda` backend asks of a device. Pointers are plain numbers (device addresses are
 * below 2^53). Kernels run in order on one stream; `download` waits for them.
 */
export interface DeviceApi {
  /** Allocates `bytes` (> 0) of device memory; throws when the device is out of memory. */
  alloc(bytes: number): number;
  /** Frees memory from {@link alloc} (waits for kernels still using it). */
  free(ptr: number): void;
  /** Copies a host array to the device at `ptr`. */
  upload(ptr: number, data: ArrayBufferView): void;
  /** Copies `into.byteLength` bytes from `ptr` into a host array, after pending kernels. */
  download(ptr: number, into: ArrayBufferView): void;
  /** Device-to-device copy of `bytes`. */
  copy(dst: number, src: number, bytes: number): void;
  /**
   * Starts kernel `name` (see src/native/cuda/addon.cc for each kernel's parameter layout) on
   * the device buffers `bufs` with integer and float parameters.
   */
  launch(name: string, bufs: readonly number[], ints?: Int32Array, floats?: Float32Array): void;
  /** Waits for every started kernel. */
  synchronize(): void;
}

/** Shape of build/Release/proggan_cuda.node. */
export interface CudaAddon {
  probe(): { runtimeVersion: number; driverVersion: number; deviceCount: number; error?: string };
  loadLibraries(dirs: string[]): Record<'cublas' | 'cudnn' | 'nccl', { path?: string; version?: number; error?: string }>;
  init(opts?: { tf32?: boolean }): { name: string; computeCapability: string; totalBytes: number; cublasVersion: number; tf32: boolean };
  malloc(bytes: number): number;
  free(ptr: number): void;
  upload(ptr: number, data: ArrayBufferView): void;
  download(ptr: number, into: ArrayBufferView): void;
  copyDevice(dst: number, src: number, bytes: number): void;
  synchronize(): void;
  memInfo(): { freeBytes: number; totalBytes: number };
  launch(name: string, bufs: readonly number[], ints?: Int32Array, floats?: Float32Array): void;
  kernelNames(): string[];
  unaryOps(): string[];
  binaryOps(): string[];
  reduceOps(): string[];
  ncclUniqueId(): Uint8Array;
  ncclInit(id: Uint8Array, nranks: number, rank: number): void;
  cudaRuntimeVersion: number;
}

/** The {@link DeviceApi} of the real addon (after a successful `init`). */
export function addonDevice(addon: CudaAddon): DeviceApi {
  return {
    alloc: (bytes) => addon.malloc(bytes),
    free: (ptr) => addon.free(ptr),
    upload: (ptr, data) => addon.upload(ptr, data),
    download: (ptr, into) => addon.download(ptr, into),
    copy: (dst, src, bytes) => addon.copyDevice(dst, src, bytes),
    launch: (name, bufs, ints, floats) => addon.launch(name, bufs, ints, floats),
    synchronize: () => addon.synchronize(),
  };
}

/** Bytes per element on the device. */
export function bytesPerElement(dtype: string): number {
  return dtype === 'bool' ? 1 : 4;
}
