// The cuda backend's JavaScript side over an in-memory fake device (no GPU needed): data
// lifetimes and reference counts, device-memory accounting and the caching allocator, read-back
// only on data()/dataSync(), the counted host fallback, the parameters each device kernel is
// started with (parity against the cpu backend, forward and gradients), and full WAE / ProGAN
// training steps with zero fallbacks.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerFastCpuKernels } from '../src/backend/cpu-kernels.js';
import { CachingAllocator, cudaKernelCounts, registerCudaBackendWith, resetCudaKernelCounts, roundBlock, type CudaBackend } from '../src/backend/cuda.js';
import { ncclCommOver } from '../src/backend/cuda-nccl.js';
import { defaultWaeArgs } from '../src/models/wae/networks.js';
import type { StepContext } from '../src/training/objective.js';
import { ProGanObjective } from '../src/models/progan/objective.js';
import { WaeObjective } from '../src/models/wae/objective.js';
import { defaultScheduleConfig } from '../src/models/progan/schedule.js';
import { Rng } from '../src/util/random.js';
import { FakeDevice } from './cuda-fake-device.js';
import { maxRelError, PARITY_CASES, runCase } from './cuda-parity-cases.js';

const NAME = 'cuda-fake';
const device = new FakeDevice();
const fallbacks: string[] = [];

beforeAll(async () => {
  tf.env().set('PROD', true);
  registerFastCpuKernels();
  registerCudaBackendWith(device, { name: NAME, onFallback: (k) => fallbacks.push(k) });
  await tf.setBackend(NAME);
});
afterAll(async () => {
  await tf.setBackend('cpu');
  tf.removeBackend(NAME);
});

const backend = () => tf.backend() as CudaBackend;

describe('cuda backend storage over a fake device', () => {
  it('round-trips every dtype, shares data on reshape, frees on the last reference', () => {
    const f = tf.tensor([1.5, -2, 3], [3]);
    const i = tf.tensor([1, -7], [2], 'int32');
    const b = tf.tensor([true, false, true], [3], 'bool');
    const s = tf.tensor(['a', 'bc']);
    expect(Array.from(f.dataSync())).toEqual([1.5, -2, 3]);
    expect(Array.from(i.dataSync())).toEqual([1, -7]);
    expect(Array.from(b.dataSync())).toEqual([1, 0, 1]);
    expect(s.dataSync()).toEqual(['a', 'bc']);
    const ids = backend().numDataIds();
    const r = tf.reshape(f, [1, 3]);
    expect(backend().numDataIds()).toBe(ids); // same data, one more reference
    expect(backend().refCount(f.dataId)).toBe(2);
    f.dispose();
    expect(Array.from(r.dataSync())).toEqual([1.5, -2, 3]);
    r.dispose();
    expect(backend().numDataIds()).toBe(ids - 1);
    tf.dispose([i, b, s]);
  });

  it('reports device bytes in tf.memory() and reuses freed blocks without new device allocations', () => {
    const m0 = tf.memory() as tf.MemoryInfo & { numBytesInGPU: number; numBytesInGPUFree: number };
    const x = tf.zeros([1000]);
    const m1 = tf.memory() as typeof m0;
    expect(m1.numBytesInGPU - m0.numBytesInGPU).toBe(roundBlock(4000));
    x.dispose();
    tf.tidy(() => tf.add(tf.ones([1000]), 1)).dispose(); // warm: the scalar and a second 4 KB block
    const allocs = device.allocs;
    for (let k = 0; k < 5; ++k) tf.tidy(() => tf.add(tf.ones([1000]), 1)).dispose();
    expect(device.allocs).toBe(allocs); // every block came from the cache
    const m2 = tf.memory() as typeof m0;
    expect(m2.numBytesInGPU).toBe(m0.numBytesInGPU);
    expect(m2.numBytesInGPUFree).toBeGreaterThanOrEqual(roundBlock(4000));
  });

  it('reads back from the device only on data()/dataSync()', () => {
    const a = tf.tensor([1, 2, 3, 4], [2, 2]);
    let downloads = 0;
    const orig = device.download.bind(device);
    device.download = (p, into) => {
      downloads++;
      orig(p, into);
    };
    try {
      const y = tf.tidy(() => tf.sum(tf.matMul(tf.relu(tf.sub(a, 1.5)), a), 1));
      expect(downloads).toBe(0);
      // relu(a - 1.5) = [[0, 0.5], [1.5, 2.5]]; times a = [[1.5, 2], [9, 13]]; row sums:
      expect(Array.from(y.dataSync())).toEqual([3.5, 22]);
      expect(downloads).toBeGreaterThan(0);
      y.dispose();
    } finally {
      device.download = orig;
      a.dispose();
    }
  });

  it('runs kernels without a device version on the host, counted and reported once per kernel', async () => {
    resetCudaKernelCounts();
    const x = tf.tensor([1, 2, 3, 4]);
    const y1 = tf.cumsum(x);
    const y2 = tf.cumsum(x);
    expect(Array.from(await y1.data())).toEqual([1, 3, 6, 10]);
    expect(cudaKernelCounts()['Cumsum']).toEqual({ device: 0, fallback: 2 });
    expect(fallbacks.filter((k) => k === 'Cumsum')).toEqual(['Cumsum']);
    // A device kernel declining a case (int32 arithmetic) also goes through the host, counted.
    const s = tf.add(tf.tensor([1, 2], [2], 'int32'), tf.tensor([3, 4], [2], 'int32'));
    expect(Array.from(s.dataSync())).toEqual([4, 6]);
    expect(cudaKernelCounts()['Add']?.fallback).toBe(1);
    tf.dispose([x, y1, y2, s]);
  });

  it('NCCL all-reduce packs tensors into one bucket on the device and splits them back', () => {
    device.ncclRanks = 2;
    try {
      const a = tf.tensor([[1, 2], [3, 4]]);
      const b = tf.tensor([5, 6, 7]);
      const before = tf.memory().numTensors;
      const comm = ncclCommOver(backend(), 2, 0);
      const calls = device.launches.length;
      const [sa, sb] = comm.allReduce([a, b], false);
      expect(device.launches.slice(calls).filter((k) => k === 'allReduce')).toHaveLength(1);
      expect(sa?.shape).toEqual([2, 2]);
      expect(Array.from(sa?.dataSync() ?? [])).toEqual([2, 4, 6, 8]);
      expect(Array.from(sb?.dataSync() ?? [])).toEqual([10, 12, 14]);
      const [ma] = comm.allReduce([a], false); // one tensor: still a copy, never a's own buffer
      expect(Array.from(ma?.dataSync() ?? [])).toEqual([2, 4, 6, 8]);
      expect(Array.from(a.dataSync())).toEqual([1, 2, 3, 4]); // inputs untouched
      expect(tf.memory().numTensors).toBe(before + 3);
      tf.dispose([a, b, sa, sb, ma].filter((t): t is tf.Tensor => t !== undefined));
    } finally {
      device.ncclRanks = 1;
    }
  });

  it('the allocator empties its cache and retries when the device is full', () => {
    const dev = new FakeDevice();
    const a = new CachingAllocator(dev);
    const p = a.take(4096);
    a.give(p.ptr, p.size);
    expect(a.cachedBytes).toBe(4096);
    dev.capacity = 8192;
    const q = a.take(8000); // needs the cached 4 KiB back
    expect(dev.frees).toBe(1);
    expect(a.cachedBytes).toBe(0);
    expect(a.liveBytes).toBe(q.size);
    expect(() => a.take(10_000)).toThrow(/out of memory/);
  });
});

describe('device kernel parameters match the cpu backend (fake device)', () => {
  for (const [k, c] of PARITY_CASES.entries()) {
    it(c.name, async () => {
      resetCudaKernelCounts();
      const ours = runCase(c, 17 + k);
      const counts = cudaKernelCounts();
      await tf.setBackend('cpu');
      let ref: Float32Array[];
      try {
        ref = runCase(c, 17 + k);
      } finally {
        await tf.setBackend(NAME);
      }
      expect(maxRelError(ours, ref)).toBeLessThan(1e-4);
      const fell = Object.entries(counts).filter(([, v]) => v.fallback > 0).map(([n]) => n);
      expect(fell).toEqual([]);
    });
  }
});

// Tiny WAE / ProGAN (as in test/progan-train.test.ts): one full training step each.
const R = 8;
function tinyWae(): WaeObjective {
  return new WaeObjective({
    model: defaultWaeArgs({ resolution: R, channels: 1, latentSize: 8, filters: [8], stemFilters: 8 }),
    kernel: 'imq',
    lambda: 1,
    optim: { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
    seed: 3,
  });
}
function tinyProgan(): ProGanObjective {
  return new ProGanObjective({
    model: { maxCornerResolution: R, zDim: 8, latentDim: 8, fmapBase: 16, fmapMax: 8, mbstdGroupSize: 4, generatorOutput: 'linear', discriminatorOutput: 'linear', conditioning: 'latent' },
    channels: 1,
    schedule: { ...defaultScheduleConfig(R), fadeKimg: 0.016, stableKimg: 0.008 },
    minibatchRepeats: 1,
    loss: { globalWeight: 0.5, gpWeight: 10, drift: 0.001, combination: 'reference' },
    optim: { beta1: 0, beta2: 0.99, epsilon: 1e-8, reset: 'resolution' },
    emaDecay: 0.9,
    encoder: tinyWae(),
    seed: 1,
  });
}

interface StepObjective {
  phases(): Array<{ vars: tf.Variable[]; optimizer: tf.Optimizer }>;
  beginStep?(ctx: StepContext): void;
  afterStep?(ctx: StepContext): void;
  computeGradients(phase: never, batch: Readonly<Record<string, tf.Tensor>>, ctx: StepContext): { losses: Record<string, tf.Scalar>; grads: tf.Tensor[] };
  dispose?(): void;
}

/** Builds the objective and runs `steps` full steps on the current backend; returns the losses. */
function trainSteps(make: () => StepObjective, imageSide: number, steps: number): number[] {
  const o = make();
  const out: number[] = [];
  const rng = new Rng(9);
  for (let step = 0; step < steps; ++step) {
    const x = tf.tidy(() => tf.sub(tf.mul(tf.randomUniform([4, imageSide, imageSide, 1], 0, 1, 'float32', 11 + step), 2), 1)) as tf.Tensor4D;
    const ctx: StepContext = { step, nimg: step * 4, rng, replica: 0, replicas: 1 };
    o.beginStep?.(ctx);
    for (const phase of o.phases()) {
      const r = o.computeGradients(phase as never, { images: x }, ctx);
      phase.optimizer.applyGradients(phase.vars.map((v, i) => ({ name: v.name, tensor: r.grads[i] as tf.Tensor })));
      out.push(...Object.values(r.losses).map((l) => l.dataSync()[0] as number));
      tf.dispose([...r.grads, ...Object.values(r.losses)]);
    }
    o.afterStep?.(ctx);
    x.dispose();
  }
  o.dispose?.();
  return out;
}

describe('training steps on the cuda backend (fake device)', () => {
  for (const [name, make, side] of [
    ['WAE', tinyWae as unknown as () => StepObjective, R],
    ['conditional ProGAN', tinyProgan as unknown as () => StepObjective, 2 * R],
  ] as const) {
    it(`${name}: 2 steps with zero host fallbacks, losses as on the cpu backend`, async () => {
      resetCudaKernelCounts();
      const ours = trainSteps(make, side, 2);
      const fell = Object.entries(cudaKernelCounts()).filter(([, v]) => v.fallback > 0).map(([n, v]) => `${n} x${v.fallback}`);
      await tf.setBackend('cpu');
      let ref: number[];
      try {
        ref = trainSteps(make, side, 2);
      } finally {
        await tf.setBackend(NAME);
      }
      expect(fell).toEqual([]);
      expect(ours.length).toBe(ref.length);
      ours.forEach((v, i) => expect(Math.abs(v - (ref[i] as number)) / Math.max(1, Math.abs(ref[i] as number))).toBeLessThan(1e-3));
    });
  }
});
