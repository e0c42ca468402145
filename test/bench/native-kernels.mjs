// Kernel throughput of the native (oneDNN) backend: conv2d / conv3d forward, backward-data and
// backward-weights, and matmul, on the layer shapes of the WAE, ProGAN and 3DGAN benchmarks.
// Prints GFLOP/s (median of repetitions) and the fraction of this machine's peak.
//
//   npm run build && node test/bench/native-kernels.mjs [--threads 1] [--reps 5] [--policy 0|1|2|3] [--filter name]
import * as tf from '@tensorflow/tfjs';
import { registerNativeBackend, nativeAddon } from '../../dist/backend/native.js';
import { machinePeak, median, parseFlags } from './bench-util.mjs';

tf.env().set('PROD', true);
const flags = parseFlags(process.argv.slice(2), { threads: 1, reps: 5, policy: 3, filter: '' });
await registerNativeBackend({ threads: flags.threads });
nativeAddon().setLayoutPolicy(flags.policy);
await tf.setBackend('native');
const peak = machinePeak(flags.threads);

/** [name, x shape, filter shape, stride] for 2D (NHWC/HWIO) and 3D (NDHWC/DHWIO) convs. */
const convs = [
  ['wae enc 128 1->32 s1', [16, 128, 128, 1], [3, 3, 1, 32], 1],
  ['wae enc 128 32->32 s2', [16, 128, 128, 32], [3, 3, 32, 32], 2],
  ['wae enc 64 32->64 s2', [16, 64, 64, 32], [3, 3, 32, 64], 2],
  ['wae enc 16 128->256 s2', [16, 16, 16, 128], [3, 3, 128, 256], 2],
  ['wae enc 8 256->512 s2', [16, 8, 8, 256], [3, 3, 256, 512], 2],
  ['progan 32px 512->512', [16, 32, 32, 512], [3, 3, 512, 512], 1],
  ['progan 64px 256->256', [16, 64, 64, 256], [3, 3, 256, 256], 1],
  ['progan 128px 128->128', [16, 128, 128, 128], [3, 3, 128, 128], 1],
  ['3dgan D 51x51x25 1->16', [8, 51, 51, 25, 1], [5, 6, 6, 1, 16], 1],
  ['3dgan D 51x51x25 16->8', [8, 51, 51, 25, 16], [5, 6, 6, 16, 8], 1],
].filter(([name]) => name.includes(flags.filter));

/** [name, M, K, N]: the WAE's dense layers at batch 16 (forward and the two gradient products). */
const matmuls = [
  ['wae enc dense fwd 16x8192x2048', 16, 8192, 2048],
  ['wae dense dW 8192x16x2048', 8192, 16, 2048],
  ['square 1024x1024x1024', 1024, 1024, 1024],
].filter(([name]) => name.includes(flags.filter));

function time(fn, reps) {
  const out = fn();
  tf.dispose(out); // warm-up: creates and caches the primitive
  // At 1 thread, process CPU time: insensitive to other processes sharing the machine.
  const ts = [];
  for (let r = 0; r < reps; ++r) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const y = fn();
    const wall = Number(process.hrtime.bigint() - t0) / 1e6;
    const dc = process.cpuUsage(c0);
    ts.push(flags.threads === 1 ? (dc.user + dc.system) / 1e3 : wall);
    tf.dispose(y);
  }
  return median(ts);
}

console.log(`times: ${flags.threads === 1 ? 'process CPU time' : 'wall clock'}, median of ${flags.reps}; threads=${flags.threads} layouts=${['plain NHWC/HWIO', 'oneDNN weights', 'oneDNN activations+weights', 'auto (fastest of all)'][flags.policy]} peak=${peak.gflops.toFixed(0)} GFLOP/s (${peak.describe})`);
console.log('layer'.padEnd(28), 'pass'.padEnd(6), 'ms'.padStart(9), 'GFLOP/s'.padStart(9), '%peak'.padStart(7));
for (const [name, xs, fs, stride] of convs) {
  const is3d = xs.length === 5;
  const x = tf.randomNormal(xs);
  const f = tf.randomNormal(fs);
  const y = is3d ? tf.conv3d(x, f, stride, 'same') : tf.conv2d(x, f, stride, 'same');
  const dy = tf.randomNormal(y.shape);
  const kvol = fs.slice(0, -2).reduce((a, b) => a * b, 1);
  const flops = 2 * y.size * kvol * fs.at(-2);
  const passes = is3d
    ? {
        fwd: () => tf.conv3d(x, f, stride, 'same'),
        bwd_d: () => tf.conv3dTranspose(dy, f, xs, stride, 'same'),
        bwd_w: () => tf.engine().runKernel('Conv3DBackpropFilterV2', { x, dy }, { strides: stride, pad: 'same', filterShape: fs }),
      }
    : {
        fwd: () => tf.conv2d(x, f, stride, 'same'),
        bwd_d: () => tf.conv2dTranspose(dy, f, xs, stride, 'same'),
        bwd_w: () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: stride, pad: 'same', dataFormat: 'NHWC', filterShape: fs }),
      };
  for (const [pass, fn] of Object.entries(passes)) {
    const ms = time(fn, flags.reps);
    const gf = flops / ms / 1e6;
    console.log(name.padEnd(28), pass.padEnd(6), ms.toFixed(2).padStart(9), gf.toFixed(1).padStart(9), ((100 * gf) / peak.gflops).toFixed(0).padStart(6) + '%');
  }
  tf.dispose([x, f, y, dy]);
}
for (const [name, m, kk, n] of matmuls) {
  const a = tf.randomNormal([m, kk]);
  const b = tf.randomNormal([kk, n]);
  const ms = time(() => tf.matMul(a, b), flags.reps);
  const gf = (2 * m * kk * n) / ms / 1e6;
  console.log(name.padEnd(28), 'matmul'.padEnd(6), ms.toFixed(2).padStart(9), gf.toFixed(1).padStart(9), ((100 * gf) / peak.gflops).toFixed(0).padStart(6) + '%');
  tf.dispose([a, b]);
}
