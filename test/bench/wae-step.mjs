// One WAE training step (REFERENCE.md §1) for the benchmarks: encoder + decoder forward in
// training mode (batch statistics), MSE reconstruction loss, Adam update of every weight.
// Uses the project's buildWae from dist/ (falls back to an equivalent tf.layers definition).
import * as tf from '@tensorflow/tfjs';

async function buildModels(resolution) {
  try {
    const wae = await import('../../dist/models/wae/networks.js');
    const args = wae.defaultWaeArgs({ resolution, channels: 1 });
    return { ...wae.buildWae(args), source: 'dist/models/wae/networks.js' };
  } catch (err) {
    return { ...buildFallback(resolution), source: `fallback (${err.message})` };
  }
}

/** The same architecture defined inline, in case src/models/wae/networks.ts is unavailable. */
function buildFallback(R) {
  const filters = [32, 64, 128, 256, 512];
  const bnLeaky = (x) => tf.layers.leakyReLU({ alpha: 0.2 }).apply(tf.layers.batchNormalization().apply(x));
  const inp = tf.input({ shape: [R, R, 1] });
  let x = tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', useBias: false }).apply(inp);
  for (const f of filters) x = bnLeaky(tf.layers.conv2d({ filters: f, kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(x));
  const z = tf.layers.dense({ units: 2048 }).apply(tf.layers.flatten().apply(x));
  const encoder = tf.model({ inputs: inp, outputs: z });
  const zin = tf.input({ shape: [2048] });
  let y = tf.layers.reshape({ targetShape: [4, 4, 512] }).apply(tf.layers.dense({ units: 16 * 512 }).apply(zin));
  for (const f of [256, 128, 64, 32, 32]) {
    y = bnLeaky(tf.layers.conv2dTranspose({ filters: f, kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(y));
  }
  const out = tf.layers.conv2d({ filters: 1, kernelSize: 3, padding: 'same' }).apply(y);
  return { encoder, decoder: tf.model({ inputs: zin, outputs: out }) };
}

/** Builds the models, a fixed batch and an Adam optimizer; `run()` does one step. */
export async function makeWaeStep({ batch, resolution = 128, lr = 5e-5 }) {
  const { encoder, decoder, source } = await buildModels(resolution);
  const x = tf.randomUniform([batch, resolution, resolution, 1], -1, 1, 'float32', 7);
  const opt = tf.train.adam(lr, 0.5, 0.999);
  const vars = [...encoder.trainableWeights, ...decoder.trainableWeights].map((w) => w.read());
  return {
    source,
    params: vars.reduce((a, v) => a + v.size, 0),
    run() {
      const loss = opt.minimize(
        () => {
          const z = encoder.apply(x, { training: true });
          const y = decoder.apply(z, { training: true });
          return tf.losses.meanSquaredError(x, y);
        },
        true,
        vars,
      );
      const v = loss.dataSync()[0];
      loss.dispose();
      return v;
    },
    dispose() {
      x.dispose();
      opt.dispose();
      encoder.dispose();
      decoder.dispose();
    },
  };
}
