/**
 * NCCL all-reduce of gradients that live on the GPU, for one process per GPU.
 *
 * The intended wiring (src/distributed, src/cli; not done here): the launcher gives worker `i`
 * `CUDA_VISIBLE_DEVICES=<gpus[i]>` so each process sees one device; rank 0 calls
 * {@link ncclUniqueId} and sends the 128 bytes to the others through the existing rendezvous; every
 * rank calls {@link initNccl} with it; the strategy's `reduceGradients` then calls
 * {@link NcclComm.allReduce} instead of moving Float32Arrays over TCP / shared memory.
 *
 * @packageDocumentation
 */
import * as tf from '@tensorflow/tfjs';
import type { CudaBackend } from './cuda.js';
import { copyView } from './cuda-kernels.js';
import { loadCudaAddon } from './cuda-libs.js';

/** A communicator over the ranks that called {@link initNccl} with the same id. */
export interface NcclComm {
  readonly worldSize: number;
  readonly rank: number;
  /**
   * Sums (or averages) `tensors` across ranks: one fused NCCL call over a flat bucket, then
   * split back into new tensors of the input shapes. The inputs are left untouched.
   */
  allReduce(tensors: tf.Tensor[], average: boolean): tf.Tensor[];
}

function addon() {
  const load = loadCudaAddon();
  if ('error' in load) throw new Error(`NCCL: ${load.error}`);
  return load.addon;
}

/** A fresh NCCL unique id (rank 0 makes it and sends it to the others). */
export function ncclUniqueId(): Uint8Array {
  return addon().ncclUniqueId();
}

/**
 * Joins the communicator `id` as `rank` of `worldSize` (blocks until every rank has joined).
 * The `cuda` backend must be active.
 */
export function initNccl(id: Uint8Array, worldSize: number, rank: number): NcclComm {
  if (tf.getBackend() !== 'cuda') throw new Error(`NCCL all-reduce needs the cuda backend (active: ${tf.getBackend()})`);
  addon().ncclInit(id, worldSize, rank);
  return ncclCommOver(tf.backend() as CudaBackend, worldSize, rank);
}

/** The all-reduce over an already initialised communicator of `backend`'s device (tests pass a fake). */
export function ncclCommOver(backend: CudaBackend, worldSize: number, rank: number): NcclComm {
  return {
    worldSize,
    rank,
    allReduce(tensors: tf.Tensor[], average: boolean): tf.Tensor[] {
      if (tensors.length === 0) return [];
      if (tensors.some((t) => t.dtype !== 'float32')) throw new Error('NCCL all-reduce: float32 tensors only');
      return tf.tidy(() => {
        // A fresh bucket (device copies; never an input's own buffer), reduced in place, then split.
        const total = tensors.reduce((a, t) => a + t.size, 0);
        const info = backend.makeOutput([total], 'float32');
        let at = 0;
        for (const t of tensors) {
          if (t.size > 0) copyView(backend, t, [1], 0, [t.size], info, [1], at);
          at += t.size;
        }
        const bucket = tf.engine().makeTensorFromTensorInfo(info);
        backend.device.launch('allReduce', [backend.ptr(bucket)], Int32Array.of(bucket.size, average ? 1 : 0));
        const parts = tf.split(bucket, tensors.map((t) => t.size));
        return parts.map((p, i) => tf.reshape(p, (tensors[i] as tf.Tensor).shape));
      });
    },
  };
}
