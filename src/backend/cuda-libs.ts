/**
 * Finding the CUDA addon and the libraries it loads at run time.
 *
 * cudart is inside the addon (static). cuBLAS (libcublas.so.13 + libcublasLt.so.13), cuDNN
 * (libcudnn.so.9) and NCCL (libnccl.so.2) are dlopened from the first folder that has them, in
 * this order:
 *   1. `PROGGAN_CUDA_LIB_DIRS` (':'-separated),
 *   2. `CUDA_HOME` / `CUDA_PATH` (lib64, lib),
 *   3. /usr/local/cuda/lib64,
 *   4. pip's nvidia-* packages: `<site-packages>/nvidia/{cu13,cublas,cudnn,nccl}/lib` for each
 *      site-packages under `VIRTUAL_ENV`, `PROGGAN_NVIDIA_DIRS`, /usr/local/lib/python3.*,
 *      /usr/lib/python3*, ~/.local/lib/python3.*, /opt/conda,
 * and finally by bare name (LD_LIBRARY_PATH, then the system's ld cache: Debian/Ubuntu packages).
 *
 * @packageDocumentation
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../util/addon.js';
import type { CudaAddon } from './cuda-device.js';

/** Functions an addon must export to count as proggan_cuda. */
const REQUIRED = ['probe', 'loadLibraries', 'init', 'malloc', 'free', 'upload', 'download', 'launch', 'unaryOps'] as const;

/** The addon, or why it cannot be used. */
export type CudaAddonLoad = { addon: CudaAddon; path: string } | { error: string };

/** Loads build/Release/proggan_cuda.node (or `PROGGAN_CUDA_ADDON`); never throws. */
export function loadCudaAddon(): CudaAddonLoad {
  const override = process.env['PROGGAN_CUDA_ADDON'];
  const root = packageRoot();
  const path = override !== undefined && override.length > 0 ? override : root === undefined ? undefined : join(root, 'build', 'Release', 'proggan_cuda.node');
  if (path === undefined || !existsSync(path)) {
    return { error: `the CUDA addon is not built (${path ?? 'package root not found'} does not exist; run \`node scripts/build-cuda.mjs\`, which needs nvcc)` };
  }
  try {
    const mod: unknown = createRequire(import.meta.url)(path);
    if (typeof mod !== 'object' || mod === null || REQUIRED.some((f) => typeof (mod as Record<string, unknown>)[f] !== 'function')) {
      return { error: `${path} is not a compatible proggan_cuda addon (rebuild with \`node scripts/build-cuda.mjs\`)` };
    }
    return { addon: mod as CudaAddon, path };
  } catch (err) {
    return { error: `loading ${path} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function subdirs(dir: string, pattern: RegExp): string[] {
  try {
    return readdirSync(dir)
      .filter((d) => pattern.test(d))
      .map((d) => join(dir, d));
  } catch {
    return [];
  }
}

/** site-packages (or dist-packages) folders that may hold pip's nvidia-* packages. */
function sitePackages(): string[] {
  const roots: string[] = [];
  const venv = process.env['VIRTUAL_ENV'];
  if (venv) roots.push(...subdirs(join(venv, 'lib'), /^python3/).map((d) => join(d, 'site-packages')));
  roots.push(...(process.env['PROGGAN_NVIDIA_DIRS'] ?? '').split(':').filter(Boolean));
  for (const base of ['/usr/local/lib', '/usr/lib', join(homedir(), '.local', 'lib'), '/opt/conda/lib']) {
    for (const py of subdirs(base, /^python3/)) roots.push(join(py, 'site-packages'), join(py, 'dist-packages'));
  }
  return roots;
}

/** The folders searched for cuBLAS, cuDNN and NCCL, in order (see the module comment). */
export function cudaLibraryDirs(): string[] {
  const dirs: string[] = [];
  dirs.push(...(process.env['PROGGAN_CUDA_LIB_DIRS'] ?? '').split(':').filter(Boolean));
  for (const home of [process.env['CUDA_HOME'], process.env['CUDA_PATH'], '/usr/local/cuda']) {
    if (home) dirs.push(join(home, 'lib64'), join(home, 'lib'));
  }
  for (const sp of sitePackages()) {
    for (const pkg of ['cu13', 'cublas', 'cudnn', 'nccl']) dirs.push(join(sp, 'nvidia', pkg, 'lib'));
  }
  return [...new Set(dirs)].filter((d) => existsSync(d));
}
