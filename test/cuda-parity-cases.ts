// Kernel parity cases shared by the fake-device tests (test/cuda-backend.test.ts) and the GPU check
// (scripts/gpu/parity.ts): each builds its inputs from a seed, so both backends see the same
// values, and returns one tensor; `grad` cases are also differentiated w.r.t. every input.
import * as tf from '@tensorflow/tfjs';

/** One parity case: input shapes (values drawn by the runner), the function, whether to check gradients. */
export interface ParityCase {
  name: string;
  /** Input shapes; `pos` marks inputs that must be positive (log, sqrt, pow bases). */
  inputs: Array<number[] | { shape: number[]; pos?: boolean; int?: number; noGrad?: boolean }>;
  fn: (...xs: tf.Tensor[]) => tf.Tensor;
  grad?: boolean;
}

const pos = (shape: number[]) => ({ shape, pos: true });
const fixed = (shape: number[]) => ({ shape, noGrad: true });

/** Kernels ported to the device, each forward (and backward where `grad`). */
export const PARITY_CASES: ParityCase[] = [
  { name: 'add broadcast', inputs: [[2, 3, 4], [3, 1]], fn: (a, b) => tf.add(a!, b!), grad: true },
  { name: 'sub/mul/div', inputs: [[2, 3, 4], [4], pos([2, 3, 4])], fn: (a, b, c) => tf.div(tf.mul(tf.sub(a!, b!), a!), c!), grad: true },
  { name: 'maximum/minimum', inputs: [[3, 5], [3, 5]], fn: (a, b) => tf.add(tf.maximum(a!, b!), tf.minimum(a!, tf.mul(b!, 0.5))), grad: true },
  { name: 'pow', inputs: [pos([2, 6]), [2, 6]], fn: (a, b) => tf.pow(a!, b!), grad: true },
  { name: 'squaredDifference', inputs: [[4, 4], [4, 4]], fn: (a, b) => tf.squaredDifference(a!, b!), grad: true },
  { name: 'squaredDifference broadcast', inputs: [[4, 4], [1, 4]], fn: (a, b) => tf.squaredDifference(a!, b!) },
  { name: 'exp/log/sqrt/rsqrt', inputs: [pos([3, 7])], fn: (a) => tf.add(tf.add(tf.exp(tf.neg(a!)), tf.log(a!)), tf.add(tf.sqrt(a!), tf.rsqrt(a!))), grad: true },
  { name: 'tanh/sigmoid/softplus', inputs: [[3, 7]], fn: (a) => tf.add(tf.add(tf.tanh(a!), tf.sigmoid(a!)), tf.softplus(a!)), grad: true },
  { name: 'relu/leakyRelu/elu/relu6', inputs: [[4, 9]], fn: (a) => tf.add(tf.add(tf.relu(a!), tf.leakyRelu(a!, 0.2)), tf.add(tf.elu(a!), tf.relu6(tf.mul(a!, 8)))), grad: true },
  { name: 'abs/square/neg/sign/clip', inputs: [[4, 9]], fn: (a) => tf.add(tf.add(tf.abs(a!), tf.square(a!)), tf.add(tf.sign(a!), tf.clipByValue(a!, -0.3, 0.4))), grad: true },
  { name: 'where/greater', inputs: [[3, 4], [3, 4], fixed([3, 4])], fn: (a, b, c) => tf.where(tf.greater(c!, 0), a!, tf.mul(b!, 2)), grad: true },
  { name: 'logicalNot/notEqual/less on int32', inputs: [{ shape: [6], int: 4 }, { shape: [6], int: 4 }], fn: (a, b) => tf.cast(tf.logicalAnd(tf.logicalNot(tf.notEqual(a!, b!)), tf.less(a!, 3)), 'float32') },
  { name: 'equal/cast', inputs: [[3, 4]], fn: (a) => tf.cast(tf.logicalOr(tf.lessEqual(a!, 0), tf.equal(tf.round(a!), 1)), 'float32') },
  { name: 'sum axis 1', inputs: [[3, 5, 4]], fn: (a) => tf.sum(a!, 1), grad: true },
  { name: 'mean split axes', inputs: [[2, 3, 4, 5]], fn: (a) => tf.mean(a!, [0, 2]), grad: true },
  { name: 'mean keepDims (NHWC moments)', inputs: [[2, 3, 4, 5]], fn: (a) => tf.moments(a!, [0, 1, 2], true).variance, grad: true },
  { name: 'max/min', inputs: [[4, 6]], fn: (a) => tf.add(tf.max(a!, 1), tf.min(a!, 1)), grad: true },
  { name: 'argMax/argMin', inputs: [[4, 6]], fn: (a) => tf.add(tf.cast(tf.argMax(a!, 1), 'float32'), tf.sum(tf.cast(tf.argMin(a!, 0), 'float32'))) },
  { name: 'logSumExp', inputs: [pos([3, 4])], fn: (a) => tf.logSumExp(a!, 1), grad: true },
  { name: 'prod', inputs: [pos([3, 4])], fn: (a) => tf.prod(a!, 1) },
  { name: 'transpose', inputs: [[2, 3, 4]], fn: (a) => tf.transpose(a!, [2, 0, 1]), grad: true },
  { name: 'slice', inputs: [[5, 6, 3]], fn: (a) => tf.slice(a!, [1, 2, 0], [3, 2, 3]), grad: true },
  { name: 'stridedSlice', inputs: [[5, 6, 3]], fn: (a) => tf.stridedSlice(a!, [0, 0, 0], [5, 4, 3], [2, 2, 1]) },
  { name: 'concat/stack/unstack/split', inputs: [[2, 3], [2, 4]], fn: (a, b) => { const c = tf.concat([a!, b!], 1); const [p, q] = tf.split(c, [5, 2], 1); return tf.add(tf.stack(tf.unstack(p!, 1), 0).sum(0), q!.sum(1, true)); }, grad: true },
  { name: 'pad/tile/reverse', inputs: [[2, 3]], fn: (a) => tf.add(tf.pad(tf.tile(a!, [2, 1]), [[1, 0], [0, 2]], 0.5), tf.reverse(tf.pad(tf.tile(a!, [2, 1]), [[0, 1], [2, 0]]), [0, 1])), grad: true },
  { name: 'gather', inputs: [[5, 3], { shape: [4], int: 5 }], fn: (a, i) => tf.gather(a!, i!, 0) },
  { name: 'broadcastTo', inputs: [[1, 3, 1]], fn: (a) => tf.broadcastTo(a!, [2, 3, 4]) },
  { name: 'matMul', inputs: [[5, 7], [7, 3]], fn: (a, b) => tf.matMul(a!, b!), grad: true },
  { name: 'matMul transposed', inputs: [[7, 5], [3, 7]], fn: (a, b) => tf.matMul(a!, b!, true, true), grad: true },
  { name: 'batch matMul', inputs: [[3, 4, 5], [3, 5, 2]], fn: (a, b) => tf.matMul(a!, b!), grad: true },
  { name: 'batch matMul broadcast', inputs: [[3, 4, 5], [5, 2]], fn: (a, b) => tf.matMul(a!, b!) },
  { name: 'dense (fused matmul + bias + relu)', inputs: [[4, 6], [6, 3], [3]], fn: (a, b, c) => tf.fused.matMul({ a: a!, b: b!, bias: c!, activation: 'relu' }), grad: true },
  { name: 'conv2d 3x3 same', inputs: [[2, 6, 6, 3], [3, 3, 3, 4]], fn: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), grad: true },
  { name: 'conv2d 3x3 stride 2 same (asymmetric pad)', inputs: [[2, 8, 8, 2], [3, 3, 2, 3]], fn: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'), grad: true },
  { name: 'conv2d 4x4 valid stride 2', inputs: [[1, 9, 9, 2], [4, 4, 2, 3]], fn: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'valid'), grad: true },
  { name: 'conv2dTranspose stride 2 same', inputs: [[2, 4, 4, 3], [3, 3, 2, 3]], fn: (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 8, 8, 2], 2, 'same'), grad: true },
  { name: 'conv3d same', inputs: [[1, 4, 5, 3, 2], [3, 3, 2, 2, 3]], fn: (x, w) => tf.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, 1, 'same'), grad: true },
  { name: 'conv3d valid stride 2', inputs: [[2, 5, 5, 5, 1], [2, 3, 3, 1, 2]], fn: (x, w) => tf.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, 2, 'valid'), grad: true },
  { name: 'maxPool 2x2', inputs: [[2, 6, 6, 3]], fn: (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'), grad: true },
  // tfjs 4.22's cpu AvgPoolGrad is wrong for 'same' padding and ResizeNearestNeighborGrad for batch > 1
  // (BENCHMARKS.md), and ResizeBilinear's gradient for non-square images: gradients are compared where cpu is right.
  { name: 'avgPool 3x3 same', inputs: [[2, 5, 5, 2]], fn: (x) => tf.avgPool(x as tf.Tensor4D, 3, 1, 'same') },
  { name: 'avgPool 3x3 valid', inputs: [[2, 5, 5, 2]], fn: (x) => tf.avgPool(x as tf.Tensor4D, 3, 1, 'valid'), grad: true },
  { name: 'avgPool3d / maxPool3d', inputs: [[1, 4, 4, 4, 2]], fn: (x) => tf.add(tf.avgPool3d(x as tf.Tensor5D, 2, 2, 'valid'), tf.maxPool3d(x as tf.Tensor5D, 2, 2, 'valid')), grad: true },
  { name: 'batchNorm', inputs: [[2, 3, 3, 4], [4], pos([4]), [4], [4]], fn: (x, m, v, o, s) => tf.batchNorm(x as tf.Tensor4D, m!, v!, o!, s!, 1e-3) },
  { name: 'resizeNearestNeighbor', inputs: [[1, 3, 4, 2]], fn: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [6, 8]), grad: true },
  { name: 'resizeNearestNeighbor half-pixel', inputs: [[2, 3, 4, 2]], fn: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [5, 7], false, true) },
  { name: 'resizeBilinear', inputs: [[2, 3, 4, 2]], fn: (x) => tf.image.resizeBilinear(x as tf.Tensor4D, [5, 7], false, true) },
  { name: 'resizeBilinear square', inputs: [[2, 4, 4, 2]], fn: (x) => tf.image.resizeBilinear(x as tf.Tensor4D, [7, 7]), grad: true },
];

/** Deterministic values in [-1, 1) (or (0.1, 1.1] for positive inputs, integers in [0, int) for indices). */
export function caseValues(seed: number, n: number, kind: { pos?: boolean; int?: number }): Float32Array | Int32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  if (kind.int !== undefined) return Int32Array.from({ length: n }, () => Math.floor(next() * (kind.int ?? 1)));
  return Float32Array.from({ length: n }, () => (kind.pos ? 0.1 + next() : next() * 2 - 1));
}

/**
 * Runs a case on the current backend: forward output values and, when `grad`, the gradients of
 * sum(out * w) (w fixed per case) w.r.t. every float input.
 */
export function runCase(c: ParityCase, seed: number): Float32Array[] {
  return tf.tidy(() => {
    const xs = c.inputs.map((spec, i) => {
      const kind: { pos?: boolean; int?: number } = Array.isArray(spec) ? {} : spec;
      const shape = Array.isArray(spec) ? spec : spec.shape;
      const n = shape.reduce((a, d) => a * d, 1);
      return kind.int !== undefined ? tf.tensor(caseValues(seed + i, n, kind), shape, 'int32') : tf.tensor(caseValues(seed + i, n, kind), shape);
    });
    const out = c.fn(...xs);
    const res = [Float32Array.from(out.dataSync())];
    if (c.grad === true) {
      const w = tf.tensor(caseValues(seed + 99, out.size, {}), out.shape);
      const floats = xs.map((x, i) => [x, i] as const).filter(([x, i]) => x.dtype === 'float32' && !(c.inputs[i] as { noGrad?: boolean }).noGrad);
      const g = tf.grads((...ys: tf.Tensor[]) => {
        const all = xs.map((x, i) => {
          const k = floats.findIndex(([, j]) => j === i);
          return k >= 0 ? (ys[k] as tf.Tensor) : x;
        });
        return tf.sum(tf.mul(c.fn(...all), w));
      });
      for (const t of g(floats.map(([x]) => x))) res.push(Float32Array.from(t.dataSync()));
    }
    return res;
  });
}

/** Largest |a - b| / max(1, |b|) over two value lists (relative error with an absolute floor). */
export function maxRelError(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  if (a.length !== b.length) return Infinity;
  a.forEach((x, k) => {
    const y = b[k] as Float32Array;
    if (x.length !== y.length) worst = Infinity;
    for (let i = 0; i < x.length; ++i) {
      const p = x[i] as number;
      const q = y[i] as number;
      if (Number.isNaN(p) !== Number.isNaN(q)) worst = Infinity;
      else if (!Number.isNaN(p)) worst = Math.max(worst, Math.abs(p - q) / Math.max(1, Math.abs(q)));
    }
  });
  return worst;
}

/** `count` parity cases with shapes drawn from `seed`: broadcasts, reductions, transposes, matmuls, convolutions, pooling. */
export function randomParityCases(seed: number, count: number): ParityCase[] {
  let s = seed >>> 0 || 1;
  const rnd = (lo: number, hi: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (s % (hi - lo + 1));
  };
  const pick = <T>(xs: readonly T[]): T => xs[rnd(0, xs.length - 1)] as T;
  const out: ParityCase[] = [];
  const kinds = ['binary', 'reduce', 'transpose', 'matmul', 'conv2d', 'conv3d', 'pool', 'concat'] as const;
  for (let i = 0; i < count; ++i) {
    const kind = kinds[i % kinds.length] as (typeof kinds)[number];
    if (kind === 'binary') {
      const shape = Array.from({ length: rnd(1, 5) }, () => rnd(1, 5));
      const other = shape.map((d) => (rnd(0, 2) === 0 ? 1 : d)).slice(rnd(0, shape.length - 1));
      const op = pick(['add', 'mul', 'sub', 'maximum'] as const);
      out.push({ name: `random ${op} [${shape}] x [${other}]`, inputs: [shape, other], fn: (a, b) => tf[op](a!, b!), grad: true });
    } else if (kind === 'reduce') {
      const shape = Array.from({ length: rnd(2, 5) }, () => rnd(1, 6));
      const axes = shape.map((_, k) => k).filter(() => rnd(0, 1) === 1);
      const ax = axes.length > 0 ? axes : [0];
      const op = pick(['sum', 'mean', 'max'] as const);
      out.push({ name: `random ${op} [${shape}] axes [${ax}]`, inputs: [shape], fn: (a) => tf[op](a!, ax), grad: true });
    } else if (kind === 'transpose') {
      const shape = Array.from({ length: rnd(2, 6) }, () => rnd(1, 5));
      const perm = shape.map((_, k) => k).sort(() => rnd(0, 1) - 0.5);
      out.push({ name: `random transpose [${shape}] perm [${perm}]`, inputs: [shape], fn: (a) => tf.transpose(a!, perm), grad: true });
    } else if (kind === 'matmul') {
      const [m, n, k] = [rnd(1, 40), rnd(1, 40), rnd(1, 40)];
      const [ta, tb] = [rnd(0, 1) === 1, rnd(0, 1) === 1];
      const b = rnd(1, 3);
      out.push({ name: `random matMul b${b} ${m}x${k}x${n} t${+ta}${+tb}`, inputs: [[b, ta ? k : m, ta ? m : k], [b, tb ? n : k, tb ? k : n]], fn: (x, y) => tf.matMul(x!, y!, ta, tb), grad: true });
    } else if (kind === 'conv2d') {
      const [n, h, w, ci, co, k, st] = [rnd(1, 3), rnd(5, 12), rnd(5, 12), rnd(1, 8), rnd(1, 8), rnd(1, 4), rnd(1, 2)];
      const pad = pick(['same', 'valid'] as const);
      out.push({ name: `random conv2d [${n},${h},${w},${ci}] k${k} s${st} ${pad} -> ${co}`, inputs: [[n, h, w, ci], [k, k, ci, co]], fn: (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, st, pad), grad: true });
    } else if (kind === 'conv3d') {
      const [n, d, h, w, ci, co, k] = [rnd(1, 2), rnd(3, 6), rnd(3, 6), rnd(3, 6), rnd(1, 4), rnd(1, 4), rnd(1, 3)];
      const pad = pick(['same', 'valid'] as const);
      out.push({ name: `random conv3d [${n},${d},${h},${w},${ci}] k${k} ${pad} -> ${co}`, inputs: [[n, d, h, w, ci], [k, k, k, ci, co]], fn: (x, f) => tf.conv3d(x as tf.Tensor5D, f as tf.Tensor5D, 1, pad), grad: true });
    } else if (kind === 'pool') {
      const [n, h, w, c, k] = [rnd(1, 3), rnd(4, 10), rnd(4, 10), rnd(1, 6), rnd(2, 3)];
      const max = rnd(0, 1) === 1;
      out.push({ name: `random ${max ? 'max' : 'avg'}Pool [${n},${h},${w},${c}] ${k}x${k} s${k} valid`, inputs: [[n, h, w, c]], fn: (x) => (max ? tf.maxPool : tf.avgPool)(x as tf.Tensor4D, k, k, 'valid'), grad: true });
    } else {
      const shape = Array.from({ length: rnd(1, 4) }, () => rnd(1, 5));
      const axis = rnd(0, shape.length - 1);
      const other = shape.map((d, k) => (k === axis ? rnd(1, 4) : d));
      out.push({ name: `random concat [${shape}] + [${other}] axis ${axis}`, inputs: [shape, other], fn: (a, b) => tf.concat([a!, b!], axis), grad: true });
    }
  }
  return out;
}
