// The benchmark cases on the tfjs side (networks as in pytorch_steps.py): each returns
// { run(): one forward+backward (+ update) step, dispose() }.
import * as tf from '@tensorflow/tfjs';
import { makeWaeStep } from './wae-step.mjs';

const leaky = (x) => tf.leakyRelu(x, 0.2);
const pixelNorm = (x) => tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-8)));

/** ProGAN generator block at `res` with `ch` channels (equalised lr, pixel norm), fwd + bwd. */
function makeProganBlock(batch, res, ch) {
  const w0 = tf.variable(tf.randomNormal([3, 3, ch, ch], 0, 1, 'float32', 1));
  const w1 = tf.variable(tf.randomNormal([3, 3, ch, ch], 0, 1, 'float32', 2));
  const b0 = tf.variable(tf.zeros([ch]));
  const b1 = tf.variable(tf.zeros([ch]));
  const scale = Math.sqrt(2 / (9 * ch));
  const x = tf.variable(tf.randomNormal([batch, res / 2, res / 2, ch], 0, 1, 'float32', 3));
  const wl = tf.randomUniform([batch, res, res, ch], -1, 1, 'float32', 4);
  const vars = [w0, w1, b0, b1, x];
  return {
    run() {
      const { value, grads } = tf.variableGrads(() => {
        let y = tf.image.resizeNearestNeighbor(x, [res, res]); // [N, res, res, ch]
        y = pixelNorm(leaky(tf.add(tf.conv2d(y, tf.mul(w0, scale), 1, 'same'), b0)));
        y = pixelNorm(leaky(tf.add(tf.conv2d(y, tf.mul(w1, scale), 1, 'same'), b1)));
        return tf.sum(tf.mul(y, wl));
      }, vars);
      const v = value.dataSync()[0];
      tf.dispose([value, ...Object.values(grads)]);
      return v;
    },
    dispose: () => tf.dispose([...vars, wl]),
  };
}

/** 3DGAN discriminator head on 51x51x25: conv3d 16 (5,6,6) + lrelu, conv3d 8 + lrelu + BN. */
function makeConv3dBlock(batch) {
  const k1 = tf.variable(tf.randomNormal([5, 6, 6, 1, 16], 0, 0.05, 'float32', 1));
  const c1 = tf.variable(tf.zeros([16]));
  const k2 = tf.variable(tf.randomNormal([5, 6, 6, 16, 8], 0, 0.05, 'float32', 2));
  const c2 = tf.variable(tf.zeros([8]));
  const gamma = tf.variable(tf.ones([8]));
  const beta = tf.variable(tf.zeros([8]));
  const x = tf.randomUniform([batch, 51, 51, 25, 1], 0, 1, 'float32', 3);
  const wl = tf.randomUniform([batch, 51, 51, 25, 8], -1, 1, 'float32', 4);
  const vars = [k1, c1, k2, c2, gamma, beta];
  return {
    run() {
      const { value, grads } = tf.variableGrads(() => {
        let y = leaky(tf.add(tf.conv3d(x, k1, 1, 'same'), c1));
        y = leaky(tf.add(tf.conv3d(y, k2, 1, 'same'), c2));
        const { mean, variance } = tf.moments(y, [0, 1, 2, 3]);
        // Written out: tf.batchNorm's gradient does not support rank-5 inputs in tfjs 4.22.
        y = tf.add(tf.mul(tf.mul(tf.sub(y, mean), tf.rsqrt(tf.add(variance, 1e-3))), gamma), beta);
        return tf.sum(tf.mul(y, wl));
      }, vars);
      const v = value.dataSync()[0];
      tf.dispose([value, ...Object.values(grads)]);
      return v;
    },
    dispose: () => tf.dispose([...vars, x, wl]),
  };
}

/** Builds case `name` at `batch`. */
export async function makeCase(name, batch) {
  switch (name) {
    case 'wae':
      return makeWaeStep({ batch });
    case 'progan32':
      return makeProganBlock(batch, 32, 512);
    case 'progan64':
      return makeProganBlock(batch, 64, 256);
    case 'progan128':
      return makeProganBlock(batch, 128, 128);
    case 'conv3d':
      return makeConv3dBlock(batch);
    default:
      throw new Error(`unknown case ${name}`);
  }
}

