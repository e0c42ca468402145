/**
 * Train a small WAE through the library API, then encode a few corner tiles with it.
 *
 *   npm run build && npx tsc -p examples && node examples/dist/train-wae.js
 *
 * Inside this repository 'proggan' resolves to the package itself (Node's self-reference through
 * package.json "exports"), exactly as it does in a project that installed proggan.
 */
import * as tf from '@tensorflow/tfjs';
import { createLogger, initBackend, loadWae, resolveWaeConfig, syntheticTiles, trainWae } from 'proggan';

const logger = createLogger();
await initBackend({ backend: 'auto', logger });

// defaults < preset < overrides, exactly as the CLI resolves them
const config = resolveWaeConfig({ preset: 'tiny', flags: { loop: { steps: 100 } } });
const runDir = 'runs/example-wae';
const result = await trainWae({ config, runDir, resume: true, logger });
logger.info({ step: result.step, last: result.last }, 'trained');

// Encode the four corners of a fresh procedural tile with the frozen encoder (inference mode).
const { wae } = await loadWae(runDir);
const tile = await syntheticTiles({ count: 1, resolution: 2 * config.wae.cornerResolution, channels: 1, seed: 123 }).get(0);
const r = config.wae.cornerResolution;
const corners = tf.tidy(() => {
  const img = tf.tensor4d(tile, [1, 2 * r, 2 * r, 1]);
  return tf.concat([
    img.slice([0, 0, 0, 0], [1, r, r, 1]),
    img.slice([0, 0, r, 0], [1, r, r, 1]),
    img.slice([0, r, 0, 0], [1, r, r, 1]),
    img.slice([0, r, r, 0], [1, r, r, 1]),
  ]) as tf.Tensor4D;
});
const z = wae.encode(corners);
logger.info({ shape: z.shape, norms: Array.from(tf.tidy(() => tf.norm(z, 2, 1)).dataSync()) }, 'corner latents');
tf.dispose([corners, z]);
wae.dispose();
