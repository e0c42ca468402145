// The built CUDA addon on a machine without a GPU (CI): it loads, its op tables match the
// TypeScript ones, it reports the missing driver/device, and `--backend cuda` fails with a message
// that names what is missing. Skipped when the addon is not built, unless
// PROGGAN_REQUIRE_CUDA_BUILD=1 (CI), where a missing addon fails.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS } from '../src/backend/cuda-device.js';
import { loadCudaAddon } from '../src/backend/cuda-libs.js';

const built = existsSync(new URL('../build/Release/proggan_cuda.node', import.meta.url).pathname);
const required = process.env['PROGGAN_REQUIRE_CUDA_BUILD'] === '1';

describe.skipIf(!built && !required)('CUDA addon without a GPU', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('loads, and its op-code tables equal src/backend/cuda-device.ts', () => {
    const load = loadCudaAddon();
    if ('error' in load) throw new Error(load.error);
    const a = load.addon;
    expect(a.unaryOps()).toEqual([...UNARY_OPS]);
    expect(a.binaryOps()).toEqual([...BINARY_OPS]);
    expect(a.reduceOps()).toEqual([...REDUCE_OPS]);
    expect(a.kernelNames().sort()).toEqual(
      ['unary', 'binary', 'select', 'copy', 'fill', 'cast', 'reduce', 'gather', 'batchNorm', 'resize', 'adam', 'rmsprop', 'matmul', 'conv', 'pool', 'allReduce'].sort(),
    );
    expect(a.cudaRuntimeVersion).toBeGreaterThanOrEqual(13000);
  });

  it.skipIf(process.env['PROGGAN_EXPECT_GPU'] === '1')('reports the missing driver or device, and device calls throw instead of crashing', () => {
    const load = loadCudaAddon();
    if ('error' in load) throw new Error(load.error);
    const p = load.addon.probe();
    expect(p.deviceCount).toBe(0);
    expect(p.error).toMatch(/driver|device/i);
    expect(() => load.addon.init()).toThrow(/driver|device/i);
    expect(() => load.addon.malloc(16)).toThrow(/init\(\) has not succeeded/);
  });

  it.skipIf(process.env['PROGGAN_EXPECT_GPU'] === '1')('--backend cuda fails naming what is missing; auto moves on', async () => {
    const { initBackend, BackendUnavailableError } = await import('../src/backend/index.js');
    const err = await initBackend({ backend: 'cuda' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect(String(err)).toMatch(/--backend cuda is not available: .*no usable (NVIDIA driver|CUDA device)/);
    expect(String(err)).toMatch(/CUDA 13 driver/);
    const auto = await initBackend({ backend: 'auto' });
    expect(auto.kind).not.toBe('cuda');
  });

  // CI sets PROGGAN_CUDA_TEST_LIB_DIRS to the pip wheels' lib folders (.ci/run): every entry point the
  // addon uses must resolve by the name it asks for (e.g. cublasCreate_v2), without a GPU.
  it.skipIf(!process.env['PROGGAN_CUDA_TEST_LIB_DIRS'])('finds cuBLAS, cuDNN and NCCL in the given folders and resolves all their symbols', () => {
    const load = loadCudaAddon();
    if ('error' in load) throw new Error(load.error);
    const libs = load.addon.loadLibraries((process.env['PROGGAN_CUDA_TEST_LIB_DIRS'] ?? '').split(':'));
    expect(libs.cublas.error).toBeUndefined();
    expect(libs.cublas.path).toMatch(/libcublas\.so\.13$/);
    expect(libs.cudnn.version).toBeGreaterThanOrEqual(90000);
    expect(libs.nccl.version).toBeGreaterThanOrEqual(22000);
  });

  it('reports a missing or foreign addon file', async () => {
    vi.stubEnv('PROGGAN_CUDA_ADDON', '/nonexistent/proggan_cuda.node');
    const { cudaBackendStatus, registerCudaBackend, CudaBackendUnavailableError } = await import('../src/backend/cuda.js');
    expect(cudaBackendStatus().reason).toMatch(/not built .*nonexistent.*build-cuda\.mjs/);
    expect(() => registerCudaBackend()).toThrow(CudaBackendUnavailableError);
    const dir = mkdtempSync(join(tmpdir(), 'proggan-cuda-'));
    try {
      const bogus = join(dir, 'bogus.node');
      writeFileSync(bogus, 'not a shared object');
      vi.stubEnv('PROGGAN_CUDA_ADDON', bogus);
      expect(cudaBackendStatus().reason).toMatch(/loading .*bogus\.node failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
