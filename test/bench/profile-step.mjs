// Per-kernel time of one training step of a benchmark case (tf.profile) on a backend: where the time goes.
//
//   npm run build && node test/bench/profile-step.mjs [--backend native] [--threads 1] [--batch 16] [--case wae|progan32|progan64|progan128|conv3d] [--calls 20]
import * as tf from '@tensorflow/tfjs';
import { registerNativeBackend } from '../../dist/backend/native.js';
import { parseFlags } from './bench-util.mjs';
import { makeCase } from './cases.mjs';

tf.env().set('PROD', true);
const flags = parseFlags(process.argv.slice(2), { backend: 'native', threads: 1, batch: 16, case: 'wae', top: 25, calls: 0 });
if (flags.backend === 'native') await registerNativeBackend({ threads: flags.threads });
await tf.setBackend(flags.backend);
const step = await makeCase(flags.case, flags.batch);
step.run();
step.run();
const t0 = performance.now();
const prof = await tf.profile(() => {
  step.run();
});
const wall = performance.now() - t0;
const byName = new Map();
for (const k of prof.kernels) {
  const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
  const e = byName.get(k.name) ?? { ms: 0, n: 0 };
  e.ms += ms;
  e.n += 1;
  byName.set(k.name, e);
}
const total = [...byName.values()].reduce((a, e) => a + e.ms, 0);
console.log(`case=${flags.case} backend=${flags.backend} threads=${flags.threads} batch=${flags.batch}: kernels ${total.toFixed(0)} ms, wall (profiled) ${wall.toFixed(0)} ms, ${prof.kernels.length} kernel calls`);
for (const [name, e] of [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, flags.top)) {
  console.log(`${name.padEnd(28)} ${e.ms.toFixed(1).padStart(9)} ms ${String(e.n).padStart(5)} calls ${((100 * e.ms) / total).toFixed(1).padStart(5)}%`);
}
if (flags.calls > 0) {
  console.log(`slowest ${flags.calls} calls:`);
  for (const k of [...prof.kernels].sort((a, b) => b.kernelTimeMs - a.kernelTimeMs).slice(0, flags.calls)) {
    console.log(`  ${k.name.padEnd(24)} ${k.kernelTimeMs.toFixed(1).padStart(7)} ms  in ${JSON.stringify(k.inputShapes)} out ${JSON.stringify(k.outputShapes)}`);
  }
}
step.dispose();
