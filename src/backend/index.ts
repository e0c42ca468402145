/**
 * The one place that decides which TensorFlow.js backend runs the math.
 *
 * - `cuda`: proggan's own CUDA backend (src/backend/cuda.ts: cuDNN, cuBLAS, tensors on the GPU).
 * - `tensorflow`: libtensorflow through `@tensorflow/tfjs-node-gpu` or `@tensorflow/tfjs-node` (optional
 *   dependencies; CUDA with the -gpu package).
 * - `native`: proggan's own oneDNN kernels (src/native), registered over the cpu backend's storage.
 * - `cpu`: the pure-JS backend; always present, slow.
 * - `auto`: the first of those that loads, in that order, and says which one it took (cuda only
 *   when a GPU, its driver and cuBLAS/cuDNN are usable).
 */
import * as tf from '@tensorflow/tfjs';
import type { Logger } from '../util/logger.js';

import { registerFastCpuKernels } from './cpu-kernels.js';
import { BACKEND_NAMES, type BackendKind, type BackendRequest } from './names.js';

export { BACKEND_NAMES, type BackendKind, type BackendRequest };

/** Options of {@link initBackend}. */
export interface BackendOptions {
  /** Which backend to use; default `PROGGAN_BACKEND` or `auto`. */
  backend?: BackendRequest;
  /** Threads for the native backend; default all cores. */
  threads?: number;
  /** Where the choice and fallbacks are logged; default silent. */
  logger?: Logger;
}

/** What {@link initBackend} set up. */
export interface BackendInfo {
  /** The backend now active in tfjs. */
  kind: BackendKind;
  /** Human detail: package or library version, threads. */
  detail: string;
}

/** A requested backend is not available; the message says what to install. */
export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
}

const TF_NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

const INSTALL_TENSORFLOW =
  'Install one of the optional accelerators: `npm install @tensorflow/tfjs-node-gpu` (CUDA 11.2 + cuDNN 8.1) or ' +
  '`npm install @tensorflow/tfjs-node`, and allow its install script in package.json ' +
  '(`"allowScripts": {"@tensorflow/tfjs-node": true}` with npm >= 11). Offline, put libtensorflow 2.9.1 into ' +
  'node_modules/@tensorflow/tfjs-node/deps/ and run `npm rebuild @tensorflow/tfjs-node` (see README).';

const INSTALL_NATIVE =
  'The native backend needs oneDNN and a C++ toolchain: `apt-get install libdnnl-dev g++ make python3`, then ' +
  '`npm rebuild proggan` (or `node scripts/build-native.mjs` in a checkout).';

/** Validate a backend name coming from a flag or the environment. */
export function parseBackendName(value: string, source = '--backend'): BackendRequest {
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendRequest;
  throw new BackendUnavailableError(`${source} must be one of ${BACKEND_NAMES.join(', ')}; got "${value}"`);
}

async function tryTensorflow(): Promise<{ ok: true; detail: string } | { ok: false; reason: string }> {
  const reasons: string[] = [];
  for (const pkg of TF_NODE_PACKAGES) {
    try {
      // A variable specifier keeps TypeScript from requiring the optional package's types.
      const specifier: string = pkg;
      await import(specifier);
      if (tf.findBackendFactory('tensorflow') == null) {
        reasons.push(`${pkg} loaded but registered no "tensorflow" backend on proggan's copy of tfjs-core ` +
          '(two tfjs-core versions installed? run `npm ls @tensorflow/tfjs-core`)');
        continue;
      }
      return { ok: true, detail: pkg };
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0] ?? '' : String(err);
      reasons.push(`${pkg}: ${msg}`);
    }
  }
  return { ok: false, reason: reasons.join('; ') };
}

async function tryNative(threads: number | undefined): Promise<{ ok: true; detail: string } | { ok: false; reason: string }> {
  try {
    const native = await import('./native.js');
    await native.registerNativeBackend(threads === undefined ? {} : { threads });
    const st = native.nativeBackendStatus();
    const det = native.nativeDeterministic() ? ', deterministic conv layouts' : '';
    return { ok: true, detail: `oneDNN ${st.dnnlVersion ?? '?'}, ${st.threads ?? '?'} threads${det}` };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

async function tryCuda(log: Logger | undefined): Promise<{ ok: true; detail: string } | { ok: false; reason: string }> {
  try {
    const cuda = await import('./cuda.js');
    const r = cuda.registerCudaBackend({ onFallback: (kernel, why) => log?.warn({ kernel }, `cuda backend: ${kernel} runs on the host (${why})`) });
    return { ok: true, detail: r.detail };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

let active: BackendInfo | null = null;

/**
 * Select and initialise the backend. Safe to call more than once (a later call may switch backends).
 * Throws {@link BackendUnavailableError} when an explicitly requested backend cannot load.
 */
export async function initBackend(opts: BackendOptions = {}): Promise<BackendInfo> {
  const envName = process.env['PROGGAN_BACKEND'];
  const request = opts.backend ?? (envName ? parseBackendName(envName, 'PROGGAN_BACKEND') : 'auto');
  const log = opts.logger;
  // The cpu backend's "install tfjs-node" advert is noise for us: the choice is logged below.
  tf.env().set('PROD', true);
  // Before the native backend copies the cpu kernels, so both get the faster pure-JS fallbacks.
  registerFastCpuKernels();

  let info: BackendInfo;
  const cuda = request === 'cuda' || request === 'auto' ? await tryCuda(log) : undefined;
  if (request === 'cuda') {
    if (cuda === undefined || !cuda.ok) throw new BackendUnavailableError(`--backend cuda is not available: ${cuda?.ok === false ? cuda.reason : '?'}`);
    info = { kind: 'cuda', detail: cuda.detail };
  } else if (cuda?.ok === true) {
    info = { kind: 'cuda', detail: cuda.detail };
  } else if (request === 'tensorflow') {
    const r = await tryTensorflow();
    if (!r.ok) throw new BackendUnavailableError(`--backend tensorflow is not available (${r.reason}). ${INSTALL_TENSORFLOW}`);
    info = { kind: 'tensorflow', detail: r.detail };
  } else if (request === 'native') {
    const r = await tryNative(opts.threads);
    if (!r.ok) throw new BackendUnavailableError(`--backend native is not available: ${r.reason}. ${INSTALL_NATIVE}`);
    info = { kind: 'native', detail: r.detail };
  } else if (request === 'cpu') {
    info = { kind: 'cpu', detail: 'pure JavaScript' };
  } else {
    const t = await tryTensorflow();
    if (t.ok) {
      info = { kind: 'tensorflow', detail: t.detail };
    } else {
      const n = await tryNative(opts.threads);
      if (n.ok) {
        info = { kind: 'native', detail: n.detail };
      } else {
        info = { kind: 'cpu', detail: 'pure JavaScript' };
        log?.warn({ native: n.reason }, `backend auto: falling back to the slow pure-JS cpu backend. ${INSTALL_NATIVE}`);
      }
    }
  }
  const ok = await tf.setBackend(info.kind);
  if (!ok) throw new BackendUnavailableError(`tfjs could not initialise the "${info.kind}" backend`);
  await tf.ready();
  log?.info({ backend: info.kind, detail: info.detail, requested: request }, `backend: ${info.kind} (${info.detail})`);
  active = info;
  return info;
}

/** The backend chosen by the last {@link initBackend}, or null. */
export function activeBackend(): BackendInfo | null {
  return active;
}
