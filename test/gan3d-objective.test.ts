import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeBackendStatus, registerNativeBackend } from '../src/backend/native.js';
import { defaultGan3dConfig, gan3dPreset, Gan3dObjective, type Gan3dBatch } from '../src/models/gan3d/objective.js';
import { Rng } from '../src/util/random.js';

// One backend only, and the fixed-angle 25^3 geometry: the step is the same code for both geometries
// and the 51x51x25 one is covered by the network tests; this keeps the smoke test in seconds.
const backends = [nativeBackendStatus().available ? 'native' : 'cpu'];

afterAll(async () => {
  await tf.setBackend('cpu');
});

function batch(n: number, seed: number): Gan3dBatch {
  return {
    ecal: tf.pow(tf.relu(tf.randomNormal([n, 25, 25, 25, 1], 0, 0.01, 'float32', seed)), 0.85),
    energy: tf.tensor1d(Array.from({ length: n }, (_, i) => 1 + 0.5 * i)),
    theta: tf.tensor1d(Array.from({ length: n }, (_, i) => 1.2 + 0.3 * i)),
  };
}

describe.each(backends)('3DGAN objective on %s', (backend) => {
  const counts: number[] = [];
  it('tiny steps: four phases, finite losses, weights move', { timeout: 900_000 }, async () => {
    if (backend === 'native') await registerNativeBackend();
    await tf.setBackend(backend);
    const obj = new Gan3dObjective(gan3dPreset('tiny', 'fixed-angle'));
    const b = batch(2, 1);
    const rng = new Rng(5);
    const before = obj.stateVariables().map(([, v]) => v.dataSync().slice());
    for (let step = 0; step < 3; step++) {
      const ctx = { step, nimg: step * 2, rng, replica: 0, replicas: 1 };
      for (const phase of obj.phases()) {
        const { losses, grads } = obj.computeGradients(phase, b, ctx);
        for (const [name, l] of Object.entries(losses)) expect(Number.isFinite(l.dataSync()[0]), `${phase.name} ${name}`).toBe(true);
        expect(Object.keys(losses)).toEqual(expect.arrayContaining(['total', 'bce', 'energy', 'ecal']));
        phase.optimizer.applyGradients(phase.vars.map((v, i) => ({ name: v.name, tensor: grads[i] as tf.Tensor })));
        tf.dispose([...Object.values(losses), ...grads]);
      }
      counts.push(tf.memory().numTensors);
    }
    expect(obj.phases().map((p) => p.name)).toEqual(['D_real', 'D_fake', 'G1', 'G2']);
    const after = obj.stateVariables().map(([, v]) => v.dataSync());
    expect(after.some((a, i) => a.some((v, k) => v !== before[i]?.[k]))).toBe(true);
    expect(obj.replicaLocalVariables().length).toBeGreaterThan(0);
    obj.dispose();
    tf.dispose(Object.values(b));
  });

  it('leaves no tensors behind per step (after the first step creates the optimiser slots)', () => {
    expect(counts.length).toBe(3);
    expect(counts[2]).toBe(counts[1]);
  });
});

describe('3DGAN config', () => {
  it('presets and validation name the field', () => {
    expect(gan3dPreset('paper').batchSize).toBe(64);
    expect(gan3dPreset('paper').weights).toEqual({ bce: 3, energy: 0.1, angle: 25, ecal: 0.1, hits: 0 });
    expect(gan3dPreset('small', 'fixed-angle').weights).toEqual({ bce: 2, energy: 0.1, angle: 0, ecal: 0.1, hits: 0 });
    expect(() => defaultGan3dConfig({ labelFlip: 0.7 })).toThrow(/labelFlip/);
    expect(() => defaultGan3dConfig({ lr: 0 })).toThrow(/lr/);
  });

  it('rejects a batch of the wrong shape', () => {
    const obj = new Gan3dObjective(gan3dPreset('tiny'));
    const bad = { ecal: tf.zeros([2, 5, 5, 5, 1]), energy: tf.ones([2]), theta: tf.ones([2]) };
    const phase = obj.phases()[0];
    if (!phase) throw new Error('no phase');
    expect(() => obj.computeGradients(phase, bad, { step: 0, nimg: 0, rng: new Rng(1), replica: 0, replicas: 1 })).toThrow(/ecal.*51, 51, 25/);
    obj.dispose();
    tf.dispose(Object.values(bad));
  });
});
