import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeBackendStatus, registerNativeBackend } from '../src/backend/native.js';
import { bceWithLogits, caloLoss, defaultCaloWeights, flippedLabels, mae, mape, softHitCount } from '../src/losses/calo.js';
import {
  buildGan3dDiscriminator,
  buildGan3dGenerator,
  countParams,
  defaultGan3dArgs,
  discriminate,
  measuredAngle,
} from '../src/models/gan3d/networks.js';
import { measuredAngleOf, showerFeatures } from '../src/metrics/physics.js';

afterAll(async () => {
  await tf.setBackend('cpu');
});

/** A line of unit cells through y = y0 + slope * z in a [1, X, Y, Z, 1] volume. */
function tiltedLine(shape: [number, number, number], y0: number, slope: number): Float32Array {
  const [nx, ny, nz] = shape;
  const v = new Float32Array(nx * ny * nz);
  for (let z = 0; z < nz; z++) v[(Math.floor(nx / 2) * ny + Math.round(y0 + slope * z)) * nz + z] = 1;
  return v;
}

describe('3DGAN networks', () => {
  it('paper networks: shapes and parameter counts (G about 1.4 M)', () => {
    const a = defaultGan3dArgs();
    const g = buildGan3dGenerator(a);
    const d = buildGan3dDiscriminator(a);
    expect(g.outputs[0]?.shape).toEqual([null, 51, 51, 25, 1]);
    expect(d.outputs.map((o) => o.shape)).toEqual([[null, 1], [null, 1]]);
    // Dense 256*5184+5184, convs 18440 + 4614 + 3462 + 3462 + 1626 + 978 + 49, BN gamma/beta 2*(8+6*4).
    expect(countParams(g)).toBe(1_364_983);
    expect(countParams(d)).toBe(87_354);
    g.dispose();
    d.dispose();
  });

  it('fixed-angle networks make 25^3 showers', () => {
    const a = defaultGan3dArgs({ geometry: 'fixed-angle', latentSize: 8, gDenseChannels: 1, gFilters: [1, 1, 1, 1, 1, 1], dFilters: [1, 1, 1, 1] });
    const g = buildGan3dGenerator(a);
    const d = buildGan3dDiscriminator(a);
    const x = g.predict(tf.randomNormal([2, 8])) as tf.Tensor;
    expect(x.shape).toEqual([2, 25, 25, 25, 1]);
    const out = discriminate(d, x as tf.Tensor5D, a, false);
    expect(out.logit.shape).toEqual([2]);
    expect(out.angle).toBeUndefined();
    tf.dispose([x, out.logit, out.energy, out.ecal]);
    g.dispose();
    d.dispose();
  });

  it('measured angle of a tilted line: pi/2 - atan(slope), equal in the network and the metrics', () => {
    const shape: [number, number, number] = [5, 21, 9];
    for (const slope of [0, 1, -0.5]) {
      const v = tiltedLine(shape, 10 - 4 * slope, slope);
      const t = tf.tensor5d(v, [1, ...shape, 1]);
      const a = measuredAngle(t).dataSync()[0] ?? 0;
      expect(a).toBeCloseTo(Math.PI / 2 - Math.atan(slope), 5);
      expect(showerFeatures(v, shape, 0).angle).toBeCloseTo(a, 5);
      t.dispose();
    }
    expect(measuredAngleOf(new Float64Array(3), new Float64Array(3))).toBe(Math.PI / 2);
  });

  it('discriminator physics outputs undo X^0.85: ECAL sum in GeV', () => {
    const a = defaultGan3dArgs({ dFilters: [1, 1, 1, 1] });
    const d = buildGan3dDiscriminator(a);
    const gev = tiltedLine([51, 51, 25], 20, 0.2).map((v) => v * 2); // 25 cells of 2 GeV
    const x = tf.pow(tf.tensor5d(gev, [1, 51, 51, 25, 1]), 0.85) as tf.Tensor5D;
    const out = discriminate(d, x, a, false);
    expect(out.ecal.dataSync()[0]).toBeCloseTo(50, 3);
    expect(out.angle?.dataSync()[0]).toBeCloseTo(Math.PI / 2 - Math.atan(0.2), 1);
    tf.dispose([x, out.logit, out.energy, out.ecal, ...(out.angle ? [out.angle] : [])]);
    d.dispose();
  });

  it.runIf(nativeBackendStatus().available)('tiny networks agree on the native backend and cpu', { timeout: 600_000 }, async () => {
    const a = defaultGan3dArgs({ latentSize: 8, gDenseChannels: 1, gFilters: [2, 2, 2, 2, 2, 2], dFilters: [2, 2, 2, 2] });
    const g = buildGan3dGenerator(a);
    const d = buildGan3dDiscriminator(a);
    const z = tf.randomNormal([2, 8], 0, 1, 'float32', 1);
    const run = (): Float32Array => tf.tidy(() => {
      const x = g.apply(z, { training: false }) as tf.Tensor5D;
      const o = discriminate(d, x, a, false);
      return tf.concat([tf.reshape(x, [-1]), o.logit, o.energy, o.ecal]).dataSync() as Float32Array;
    });
    await tf.setBackend('cpu');
    const cpu = run();
    await registerNativeBackend();
    await tf.setBackend('native');
    const nat = run();
    let maxErr = 0;
    cpu.forEach((v, i) => { maxErr = Math.max(maxErr, Math.abs(v - (nat[i] ?? 0)) / (1 + Math.abs(v))); });
    expect(maxErr).toBeLessThan(1e-3);
    await tf.setBackend('cpu');
    g.dispose();
    d.dispose();
  });
});

describe('3DGAN losses', () => {
  it('MAPE (a percentage), MAE, BCE with logits: hand values', () => {
    expect(mape(tf.tensor1d([1.1, 1.8]), tf.tensor1d([1, 2])).dataSync()[0]).toBeCloseTo(10, 4);
    expect(mae(tf.tensor1d([1, 3]), tf.tensor1d([2, 1])).dataSync()[0]).toBeCloseTo(1.5, 6);
    // -[log sigmoid(0)] = ln 2; label 0, logit 2: ln(1 + e^2)
    expect(bceWithLogits(tf.tensor1d([0, 2]), tf.tensor1d([1, 0])).dataSync()[0]).toBeCloseTo((Math.LN2 + Math.log(1 + Math.exp(2))) / 2, 5);
    expect(bceWithLogits(tf.tensor1d([100]), tf.tensor1d([0])).dataSync()[0]).toBeCloseTo(100, 3);
  });

  it('weighted total [3, 0.1, 25, 0.1] and fixed-angle [2, 0.1, 0.1]', () => {
    const out = { logit: tf.tensor1d([0]), energy: tf.tensor1d([1.1]), ecal: tf.tensor1d([2.2]), angle: tf.tensor1d([1.5]) };
    const tgt = { label: tf.tensor1d([1]), energy: tf.tensor1d([1]), ecal: tf.tensor1d([2]), angle: tf.tensor1d([1.6]) };
    const l = caloLoss(out, tgt, defaultCaloWeights('variable-angle'));
    const hand = 3 * Math.LN2 + 0.1 * 10 + 25 * 0.1 + 0.1 * 10;
    expect(l.total.dataSync()[0]).toBeCloseTo(hand, 3);
    expect(l.angle?.dataSync()[0]).toBeCloseTo(0.1, 5);
    const f = caloLoss(out, tgt, defaultCaloWeights('fixed-angle'));
    expect(f.total.dataSync()[0]).toBeCloseTo(2 * Math.LN2 + 1 + 1, 3);
    expect(f.angle).toBeUndefined();
    expect(() => caloLoss({ ...out, angle: undefined }, tgt, defaultCaloWeights('variable-angle'))).toThrow(/angle/);
  });

  it('label flipping: seeded, about p of the labels', () => {
    const a = flippedLabels(4000, 1, 0.05, 7).dataSync();
    const b = flippedLabels(4000, 1, 0.05, 7).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    const flipped = Array.from(a).filter((v) => v === 0).length / 4000;
    expect(flipped).toBeGreaterThan(0.035);
    expect(flipped).toBeLessThan(0.065);
    expect(Array.from(flippedLabels(10, 0, 0, 1).dataSync())).toEqual(new Array(10).fill(0));
  });

  it('soft hit count counts cells above 3e-4 GeV', () => {
    const v = new Float32Array(8);
    v[0] = 1e-2;
    v[1] = 5e-3;
    v[2] = 1e-6;
    expect(softHitCount(tf.tensor5d(v, [1, 2, 2, 2, 1])).dataSync()[0]).toBeCloseTo(2, 1);
  });
});
