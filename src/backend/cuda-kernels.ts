/**
 * The `cuda` backend's device kernels, as tfjs kernel functions over {@link CudaBackend} storage.
 *
 * Each returns its outputs, or `null` when it does not cover the case (other dtypes, NCHW,
 * ranks above 8, broadcasts cuBLAS cannot stride); the caller then runs the cpu kernel through
 * the host and counts it. Parameter layouts of the launched kernels: src/native/cuda/addon.cc.
 *
 * Math mode: float32 everywhere; cuBLAS with CUBLAS_DEFAULT_MATH (no TF32 for SGEMM) and cuDNN
 * convolutions with CUDNN_FMA_MATH, unless the backend was started with `tf32: true`
 * (CUBLAS_TF32_TENSOR_OP_MATH, CUDNN_DEFAULT_MATH).
 *
 * @packageDocumentation
 */
import * as tf from '@tensorflow/tfjs';
import { BINARY_OPS, FIRST_COMPARE_OP, MAX_RANK, REDUCE_OPS, UNARY_OPS, bytesPerElement, DTYPE_CODE } from './cuda-device.js';
import type { CudaBackend } from './cuda.js';

type Info = tf.TensorInfo;
type Attrs = tf.NamedAttrMap;
/** A device kernel: outputs, or null for "not covered here, use the host fallback". */
export type DeviceKernel = (inputs: tf.NamedTensorInfoMap, b: CudaBackend, attrs: Attrs) => Info | Info[] | null;

const size = (shape: readonly number[]): number => shape.reduce((a, d) => a * d, 1);

/** Row-major element strides of `shape`. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i] ?? 1;
  }
  return s;
}

/** Strides that read an array of `inShape` broadcast (numpy rules) to `outShape`. */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const inStrides = stridesOf(inShape);
  const off = outShape.length - inShape.length;
  return outShape.map((d, i) => {
    const j = i - off;
    if (j < 0) return 0;
    return inShape[j] === 1 && d !== 1 ? 0 : (inStrides[j] ?? 0);
  });
}

function ints(...parts: (number | readonly number[])[]): Int32Array {
  const flat: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') flat.push(p);
    else flat.push(...p);
  }
  return Int32Array.from(flat);
}

const num = (v: unknown, dflt = 0): number => (typeof v === 'number' ? v : dflt);
const bool = (v: unknown): boolean => v === true;

function input(inputs: tf.NamedTensorInfoMap, name: string): Info {
  const t = inputs[name];
  if (t === undefined) throw new Error(`cuda backend: kernel input "${name}" missing`);
  return t;
}

// ---- elementwise ---------------------------------------------------------------------------
/** y = op(x) for float32 x. */
export function unary(b: CudaBackend, op: (typeof UNARY_OPS)[number], x: Info, alpha = 0, beta = 0): Info | null {
  if (x.dtype !== 'float32') return null;
  const out = b.makeOutput(x.shape, 'float32');
  b.device.launch('unary', [b.ptr(x), b.ptr(out)], ints(UNARY_OPS.indexOf(op), size(x.shape)), Float32Array.of(alpha, beta));
  return out;
}

/** A float32 copy of a bool or int32 tensor (int32 exact up to 2^24), or the tensor itself. */
function asFloat(b: CudaBackend, x: Info): Info {
  if (x.dtype === 'float32') return x;
  const out = b.makeOutput(x.shape, 'float32');
  b.device.launch('cast', [b.ptr(x), b.ptr(out)], ints(DTYPE_CODE[x.dtype as 'int32' | 'bool'], DTYPE_CODE.float32, size(x.shape)));
  return out;
}

/**
 * out = op(a, c) with numpy broadcasting. Arithmetic needs float32 inputs; comparisons and logical
 * ops also take bool inputs, and int32 ones below 2^24 in magnitude (compared as float32).
 */
export function binary(b: CudaBackend, op: (typeof BINARY_OPS)[number], a: Info, c: Info): Info | null {
  const code = BINARY_OPS.indexOf(op);
  const compare = code >= FIRST_COMPARE_OP;
  const ok = (t: Info) => t.dtype === 'float32' || (compare && (t.dtype === 'bool' || t.dtype === 'int32'));
  if (!ok(a) || !ok(c)) return null;
  const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, c.shape);
  if (outShape.length > MAX_RANK) return null;
  const fa = asFloat(b, a);
  const fc = asFloat(b, c);
  const out = b.makeOutput(outShape, compare ? 'bool' : 'float32');
  b.device.launch(
    'binary',
    [b.ptr(fa), b.ptr(fc), b.ptr(out)],
    ints(code, outShape.length, outShape, broadcastStrides(a.shape, outShape), 0, broadcastStrides(c.shape, outShape), 0),
  );
  if (fa !== a) b.release(fa);
  if (fc !== c) b.release(fc);
  return out;
}

/** Strided copy: dst[dstOffset + i·dstStrides] = src[srcOffset + i·srcStrides] over `shape`. */
export function copyView(
  b: CudaBackend,
  src: Info,
  srcStrides: readonly number[],
  srcOffset: number,
  shape: readonly number[],
  dst: Info,
  dstStrides: readonly number[],
  dstOffset: number,
): void {
  if (shape.length > MAX_RANK) throw new Error(`cuda backend: strided copy of rank ${shape.length} > ${MAX_RANK}`);
  b.device.launch('copy', [b.ptr(src), b.ptr(dst)], ints(bytesPerElement(src.dtype), shape.length, shape, srcStrides, srcOffset, dstStrides, dstOffset));
}

/** Drops size-1 dims and merges dims that are contiguous in every view, to stay under MAX_RANK. */
function squeezeView(shape: readonly number[], views: number[][]): { shape: number[]; views: number[][] } {
  const s: number[] = [];
  const v: number[][] = views.map(() => []);
  for (let i = 0; i < shape.length; ++i) {
    const d = shape[i] ?? 1;
    if (d === 1) continue;
    const last = s.length - 1;
    if (last >= 0 && views.every((st, k) => (v[k]?.[last] ?? 0) === (st[i] ?? 0) * d)) {
      s[last] = (s[last] ?? 1) * d;
      views.forEach((st, k) => {
        const vk = v[k];
        if (vk !== undefined) vk[last] = st[i] ?? 0;
      });
      continue;
    }
    s.push(d);
    views.forEach((st, k) => v[k]?.push(st[i] ?? 0));
  }
  return { shape: s, views: v };
}

function fill(b: CudaBackend, out: Info, value: number): void {
  let bits = value;
  if (out.dtype === 'float32') bits = new Int32Array(Float32Array.of(value).buffer)[0] ?? 0;
  else if (out.dtype === 'bool') bits = value !== 0 ? 1 : 0;
  b.device.launch('fill', [b.ptr(out)], ints(size(out.shape), bytesPerElement(out.dtype), bits | 0));
}

function transpose(b: CudaBackend, x: Info, perm: readonly number[]): Info {
  const outShape = perm.map((p) => x.shape[p] ?? 1);
  const out = b.makeOutput(outShape, x.dtype);
  const xs = stridesOf(x.shape);
  const sq = squeezeView(outShape, [perm.map((p) => xs[p] ?? 0), stridesOf(outShape)]);
  copyView(b, x, sq.views[0] ?? [], 0, sq.shape, out, sq.views[1] ?? [], 0);
  return out;
}

function reshape(b: CudaBackend, x: Info, shape: number[]): Info {
  b.incRef(x.dataId);
  return { dataId: x.dataId, shape, dtype: x.dtype };
}

function activation(b: CudaBackend, x: Info, act: unknown, prelu: Info | undefined, leakyAlpha: number): Info | null {
  switch (act) {
    case undefined:
    case 'linear':
      return x;
    case 'relu':
      return b.consume(x, unary(b, 'Relu', x));
    case 'relu6':
      return b.consume(x, unary(b, 'Relu6', x));
    case 'elu':
      return b.consume(x, unary(b, 'Elu', x));
    case 'sigmoid':
      return b.consume(x, unary(b, 'Sigmoid', x));
    case 'leakyrelu':
      return b.consume(x, unary(b, 'LeakyRelu', x, leakyAlpha));
    case 'prelu':
      return prelu === undefined ? null : b.consume(x, binary(b, 'Prelu', x, prelu));
    default:
      return null;
  }
}

// ---- reductions ----------------------------------------------------------------------------
function reduce(b: CudaBackend, op: (typeof REDUCE_OPS)[number], x: Info, axis: unknown, keepDims: boolean): Info | null {
  const wantBool = op === 'Any' || op === 'All';
  if (wantBool ? x.dtype !== 'bool' : x.dtype !== 'float32') return null;
  const axes = [...new Set(tf.util.parseAxisParam(axis as number | number[], x.shape))].sort((p, q) => p - q);
  const [outShape0] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
  const outShape = keepDims ? tf.backend_util.expandShapeToKeepDim(outShape0, axes) : outShape0;
  const outDtype = op === 'ArgMax' || op === 'ArgMin' ? 'int32' : wantBool ? 'bool' : 'float32';
  const out = b.makeOutput(outShape, outDtype);
  const contiguous = axes.every((a, i) => i === 0 || a === (axes[i - 1] ?? 0) + 1);
  let src = x;
  let outer: number;
  let reduced: number;
  let inner: number;
  if (axes.length === 0) {
    [outer, reduced, inner] = [size(x.shape), 1, 1];
  } else if (contiguous) {
    const first = axes[0] ?? 0;
    const last = axes[axes.length - 1] ?? 0;
    outer = size(x.shape.slice(0, first));
    reduced = size(x.shape.slice(first, last + 1));
    inner = size(x.shape.slice(last + 1));
  } else {
    // Split axes: move the reduced axes last, then reduce rows.
    const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    src = transpose(b, x, [...kept, ...axes]);
    outer = size(kept.map((i) => x.shape[i] ?? 1));
    reduced = size(axes.map((i) => x.shape[i] ?? 1));
    inner = 1;
  }
  b.device.launch('reduce', [b.ptr(src), b.ptr(out)], ints(REDUCE_OPS.indexOf(op), outer, reduced, inner));
  if (src !== x) b.release(src);
  return out;
}

// ---- matrix multiply -----------------------------------------------------------------------
function matmul(b: CudaBackend, a: Info, c: Info, ta: boolean, tb: boolean): Info | null {
  if (a.dtype !== 'float32' || c.dtype !== 'float32' || a.shape.length < 2 || c.shape.length < 2) return null;
  const ar = a.shape.length;
  const cr = c.shape.length;
  const m = (ta ? a.shape[ar - 1] : a.shape[ar - 2]) ?? 1;
  const k = (ta ? a.shape[ar - 2] : a.shape[ar - 1]) ?? 1;
  const n = (tb ? c.shape[cr - 2] : c.shape[cr - 1]) ?? 1;
  const k2 = (tb ? c.shape[cr - 1] : c.shape[cr - 2]) ?? 1;
  if (k !== k2) return null;
  const ba = a.shape.slice(0, -2);
  const bc = c.shape.slice(0, -2);
  const na = size(ba);
  const nc = size(bc);
  const batchShape = tf.backend_util.assertAndGetBroadcastShape(ba, bc);
  const batch = size(batchShape);
  // cuBLAS strides one batch index: both operands full, or one of them a single matrix.
  if (!((na === batch && nc === batch) || (na === 1 && nc === batch) || (nc === 1 && na === batch))) return null;
  const out = b.makeOutput([...batchShape, m, n], 'float32');
  if (batch * m * n === 0) return out;
  if (k === 0) {
    fill(b, out, 0);
    return out;
  }
  b.device.launch('matmul', [b.ptr(a), b.ptr(c), b.ptr(out)], ints(batch, na > 1 ? 1 : 0, nc > 1 ? 1 : 0, m, n, k, ta ? 1 : 0, tb ? 1 : 0));
  return out;
}

// ---- convolution ---------------------------------------------------------------------------
type ConvInfo = tf.backend_util.Conv2DInfo | tf.backend_util.Conv3DInfo;
type Pads = { before: number[]; after: number[] };

function convGeometry(ci: ConvInfo, nd: 2 | 3) {
  if (nd === 2) {
    const c = ci as tf.backend_util.Conv2DInfo;
    return {
      inSp: [c.inHeight, c.inWidth],
      outSp: [c.outHeight, c.outWidth],
      fSp: [c.filterHeight, c.filterWidth],
      strides: [c.strideHeight, c.strideWidth],
      dil: [c.dilationHeight, c.dilationWidth],
      pads: { before: [c.padInfo.top, c.padInfo.left], after: [c.padInfo.bottom, c.padInfo.right] } as Pads,
    };
  }
  const c = ci as tf.backend_util.Conv3DInfo;
  return {
    inSp: [c.inDepth, c.inHeight, c.inWidth],
    outSp: [c.outDepth, c.outHeight, c.outWidth],
    fSp: [c.filterDepth, c.filterHeight, c.filterWidth],
    strides: [c.strideDepth, c.strideHeight, c.strideWidth],
    dil: [c.dilationDepth, c.dilationHeight, c.dilationWidth],
    pads: { before: [c.padInfo.front, c.padInfo.top, c.padInfo.left], after: [c.padInfo.back, c.padInfo.bottom, c.padInfo.right] } as Pads,
  };
}

/** [N, sp..., C] zero-padded by `extra` after each spatial dim (for asymmetric 'same' padding). */
function padAfter(b: CudaBackend, x: Info, extra: number[]): Info {
  const shape = x.shape.map((d, i) => (i === 0 || i === x.shape.length - 1 ? d : d + (extra[i - 1] ?? 0)));
  const out = b.makeOutput(shape, 'float32');
  fill(b, out, 0);
  copyView(b, x, stridesOf(x.shape), 0, x.shape, out, stridesOf(shape), 0);
  return out;
}

/** out[N, sp..., C] = x[N, sp (first `shape` entries)..., C]: undoes padAfter. */
function cropAfter(b: CudaBackend, x: Info, shape: number[]): Info {
  const out = b.makeOutput(shape, 'float32');
  copyView(b, x, stridesOf(x.shape), 0, shape, out, stridesOf(shape), 0);
  return out;
}

/**
 * One cuDNN convolution (mode 0 forward, 1 backward-data, 2 backward-filter), NHWC / NDHWC,
 * filters in tfjs's [sp..., Cin, Cout] layout (transposed to cuDNN's [Cout, sp..., Cin] around
 * the call). Asymmetric padding (TF 'same' with an odd total) pads the input explicitly.
 */
function conv(b: CudaBackend, mode: 0 | 1 | 2, nd: 2 | 3, ci: ConvInfo, p: Info, q: Info): Info | null {
  if (ci.dataFormat !== 'channelsLast' || p.dtype !== 'float32' || q.dtype !== 'float32') return null;
  const g = convGeometry(ci, nd);
  const N = ci.batchSize;
  const Cin = ci.inChannels;
  const Cout = ci.outChannels;
  if ((ci as { groups?: number }).groups !== undefined && (ci as { groups?: number }).groups !== 1) return null;
  if (g.pads.before.some((v) => v < 0) || g.pads.after.some((v, i) => v < (g.pads.before[i] ?? 0))) return null;
  // Extra zero rows after the input make the remaining padding symmetric.
  const extra = g.pads.after.map((a, i) => a - (g.pads.before[i] ?? 0));
  const asym = extra.some((e) => e > 0);
  const inSp = g.inSp.map((d, i) => d + (extra[i] ?? 0));
  const xShape = [N, ...g.inSp, Cin];
  const xpShape = [N, ...inSp, Cin];
  const params = ints(mode, nd, N, Cin, inSp, Cout, g.outSp, g.fSp, g.strides, g.pads.before, g.dil);
  const toKrsc = [nd + 1, ...g.fSp.map((_, i) => i), nd]; // [sp..., Cin, Cout] -> [Cout, sp..., Cin]
  if (mode === 0) {
    const x = asym ? padAfter(b, p, extra) : p;
    const w = transpose(b, q, toKrsc);
    const y = b.makeOutput([N, ...g.outSp, Cout], 'float32');
    b.device.launch('conv', [b.ptr(x), b.ptr(w), b.ptr(y)], params);
    b.release(w);
    if (x !== p) b.release(x);
    return y;
  }
  if (mode === 1) {
    const w = transpose(b, q, toKrsc);
    const dxp = b.makeOutput(xpShape, 'float32');
    b.device.launch('conv', [b.ptr(p), b.ptr(w), b.ptr(dxp)], params);
    b.release(w);
    if (!asym) return dxp;
    const dx = cropAfter(b, dxp, xShape);
    b.release(dxp);
    return dx;
  }
  const x = asym ? padAfter(b, p, extra) : p;
  const dwKrsc = b.makeOutput([Cout, ...g.fSp, Cin], 'float32');
  b.device.launch('conv', [b.ptr(x), b.ptr(q), b.ptr(dwKrsc)], params);
  if (x !== p) b.release(x);
  const fromKrsc = [...g.fSp.map((_, i) => i + 1), nd + 1, 0]; // [Cout, sp..., Cin] -> [sp..., Cin, Cout]
  const dw = transpose(b, dwKrsc, fromKrsc); // filterShape
  b.release(dwKrsc);
  return dw;
}

type PoolInfo = tf.backend_util.Conv2DInfo | tf.backend_util.Conv3DInfo;
function pool(b: CudaBackend, grad: boolean, isMax: boolean, nd: 2 | 3, pi: PoolInfo, bufs: Info[], outShape: number[]): Info | null {
  if (pi.dataFormat !== 'channelsLast' || bufs.some((t) => t.dtype !== 'float32')) return null;
  const g = convGeometry(pi, nd);
  if (g.pads.before.some((v, i) => v !== g.pads.after[i]) || g.dil.some((d) => d !== 1)) return null;
  const out = b.makeOutput(outShape, 'float32');
  b.device.launch(
    'pool',
    [...bufs.map((t) => b.ptr(t)), b.ptr(out)],
    ints(grad ? 1 : 0, isMax ? 1 : 0, nd, pi.batchSize, pi.inChannels, g.inSp, g.outSp, g.fSp, g.strides, g.pads.before),
  );
  return out;
}

// ---- the kernel table ----------------------------------------------------------------------
const kernels = new Map<string, DeviceKernel>();

for (const op of UNARY_OPS) {
  if (op === 'Identity' || op === 'Scale') continue;
  kernels.set(op, (inp, b, attrs) => {
    const x = input(inp, 'x');
    if (op === 'LeakyRelu') return unary(b, op, x, num(attrs['alpha'], 0.2));
    if (op === 'Step') return unary(b, op, x, num(attrs['alpha'], 0));
    if (op === 'ClipByValue') return unary(b, op, x, num(attrs['clipValueMin']), num(attrs['clipValueMax']));
    return unary(b, op, x);
  });
}
const TFJS_BINARY: Record<string, (typeof BINARY_OPS)[number]> = { Multiply: 'Mul' };
for (const op of BINARY_OPS) {
  const name = Object.keys(TFJS_BINARY).find((k) => TFJS_BINARY[k] === op) ?? op;
  if (op === 'Prelu') {
    kernels.set(name, (inp, b) => binary(b, op, input(inp, 'x'), input(inp, 'alpha')));
  } else if (op === 'EluGrad') {
    kernels.set(name, (inp, b) => binary(b, op, input(inp, 'dy'), input(inp, 'y')));
  } else if (op !== 'DivNoNan') {
    kernels.set(name, (inp, b) => binary(b, op, input(inp, 'a'), input(inp, 'b')));
  }
}

kernels.set('LogicalNot', (inp, b) => {
  const x = input(inp, 'x');
  if (x.dtype !== 'bool') return null;
  const zero = b.makeOutput([], 'float32');
  fill(b, zero, 0);
  const out = binary(b, 'Equal', x, zero);
  b.release(zero);
  return out;
});
kernels.set('Identity', (inp, b) => {
  const x = input(inp, 'x');
  return reshape(b, x, x.shape);
});
kernels.set('Reshape', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const shape = tf.util.inferFromImplicitShape(attrs['shape'] as number[], size(x.shape));
  return reshape(b, x, shape);
});
kernels.set('Cast', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const to = attrs['dtype'] as tf.DataType;
  if (!(x.dtype in DTYPE_CODE) || !(to in DTYPE_CODE)) return null;
  if (to === x.dtype) return reshape(b, x, x.shape);
  const out = b.makeOutput(x.shape, to);
  b.device.launch('cast', [b.ptr(x), b.ptr(out)], ints(DTYPE_CODE[x.dtype as keyof typeof DTYPE_CODE], DTYPE_CODE[to as keyof typeof DTYPE_CODE], size(x.shape)));
  return out;
});
kernels.set('Fill', (_inp, b, attrs) => {
  const dtype = (attrs['dtype'] as tf.DataType | undefined) ?? 'float32';
  if (!(dtype in DTYPE_CODE)) return null;
  const out = b.makeOutput(attrs['shape'] as number[], dtype);
  fill(b, out, num(attrs['value']));
  return out;
});
for (const [name, value] of [['ZerosLike', 0], ['OnesLike', 1]] as const) {
  kernels.set(name, (inp, b) => {
    const x = input(inp, 'x');
    if (!(x.dtype in DTYPE_CODE)) return null;
    const out = b.makeOutput(x.shape, x.dtype);
    fill(b, out, value);
    return out;
  });
}
kernels.set('AddN', (inp, b) => {
  const xs = Object.values(inp).filter((t): t is Info => t !== undefined);
  if (xs.length === 0 || xs.some((t) => t.dtype !== 'float32')) return null;
  let acc: Info = reshape(b, xs[0] as Info, (xs[0] as Info).shape);
  for (const t of xs.slice(1)) acc = b.consume(acc, binary(b, 'Add', acc, t)) as Info;
  return acc;
});
kernels.set('Select', (inp, b) => {
  const c = input(inp, 'condition');
  const t = input(inp, 't');
  const e = input(inp, 'e');
  if (c.dtype !== 'bool' || t.dtype !== 'float32' || e.dtype !== 'float32' || t.shape.length > MAX_RANK) return null;
  const shape = t.shape;
  const st = stridesOf(shape);
  let cs: number[];
  if (c.shape.length === shape.length) cs = broadcastStrides(c.shape, shape);
  else if (c.shape.length === 1 && c.shape[0] === shape[0]) cs = shape.map((_, i) => (i === 0 ? 1 : 0));
  else return null;
  const out = b.makeOutput(shape, 'float32');
  b.device.launch('select', [b.ptr(c), b.ptr(t), b.ptr(e), b.ptr(out)], ints(shape.length, shape, cs, 0, st, 0, broadcastStrides(e.shape, shape), 0));
  return out;
});
kernels.set('Transpose', (inp, b, attrs) => transpose(b, input(inp, 'x'), attrs['perm'] as number[]));
kernels.set('Slice', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const [begin = [], sz = []] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs['begin'] as number[], attrs['size'] as number[]);
  const xs = stridesOf(x.shape);
  const out = b.makeOutput(sz, x.dtype);
  const sq = squeezeView(sz, [xs, stridesOf(sz)]);
  copyView(b, x, sq.views[0] ?? [], begin.reduce((a, v, i) => a + v * (xs[i] ?? 0), 0), sq.shape, out, sq.views[1] ?? [], 0);
  return out;
});
kernels.set('StridedSlice', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const info = tf.slice_util.sliceInfo(
    x.shape,
    attrs['begin'] as number[],
    attrs['end'] as number[],
    attrs['strides'] as number[],
    num(attrs['beginMask']),
    num(attrs['endMask']),
    num(attrs['ellipsisMask']),
    num(attrs['newAxisMask']),
    num(attrs['shrinkAxisMask']),
  );
  if (info.finalShapeSparse.length !== x.shape.length || x.shape.length > MAX_RANK) return null;
  const xs = stridesOf(x.shape);
  const out = b.makeOutput(info.finalShape, x.dtype);
  if (size(info.finalShape) === 0) return out;
  const src = info.strides.map((s, i) => s * (xs[i] ?? 0));
  const off = info.begin.reduce((a, v, i) => a + v * (xs[i] ?? 0), 0);
  copyView(b, x, src, off, info.finalShapeSparse, out, stridesOf(info.finalShapeSparse), 0);
  return out;
});
function concat(b: CudaBackend, xs: Info[], axis: number, outShape: number[]): Info | null {
  const dtype = xs[0]?.dtype;
  if (dtype === undefined || !(dtype in DTYPE_CODE) || xs.some((t) => t.dtype !== dtype)) return null;
  const out = b.makeOutput(outShape, dtype);
  const os = stridesOf(outShape);
  let at = 0;
  for (const t of xs) {
    if (size(t.shape) > 0) {
      const sq = squeezeView(t.shape, [stridesOf(t.shape), os]);
      copyView(b, t, sq.views[0] ?? [], 0, sq.shape, out, sq.views[1] ?? [], at * (os[axis] ?? 0));
    }
    at += t.shape[axis] ?? 0;
  }
  return out;
}
kernels.set('Concat', (inp, b, attrs) => {
  const xs = Object.values(inp).filter((t): t is Info => t !== undefined);
  const first = xs[0];
  if (first === undefined) return null;
  const axis = tf.util.parseAxisParam(attrs['axis'] as number, first.shape)[0] ?? 0;
  const outShape = [...first.shape];
  outShape[axis] = xs.reduce((a, t) => a + (t.shape[axis] ?? 0), 0);
  return concat(b, xs, axis, outShape);
});
kernels.set('Pack', (inp, b, attrs) => {
  const xs = Object.values(inp).filter((t): t is Info => t !== undefined);
  const first = xs[0];
  if (first === undefined) return null;
  const axis = num(attrs['axis']) < 0 ? num(attrs['axis']) + first.shape.length + 1 : num(attrs['axis']);
  const expanded = xs.map((t) => ({ ...t, shape: [...t.shape.slice(0, axis), 1, ...t.shape.slice(axis)] }));
  const outShape = [...first.shape.slice(0, axis), xs.length, ...first.shape.slice(axis)];
  return concat(b, expanded, axis, outShape);
});
function sliceAlong(b: CudaBackend, x: Info, axis: number, start: number, len: number, keepAxis: boolean): Info {
  const xs = stridesOf(x.shape);
  const shape = [...x.shape];
  shape[axis] = len;
  const out = b.makeOutput(keepAxis ? shape : shape.filter((_, i) => i !== axis), x.dtype);
  const sq = squeezeView(shape, [xs, stridesOf(shape)]);
  copyView(b, x, sq.views[0] ?? [], start * (xs[axis] ?? 0), sq.shape, out, sq.views[1] ?? [], 0);
  return out;
}
kernels.set('Unpack', (inp, b, attrs) => {
  const x = input(inp, 'value');
  const axis = tf.util.parseAxisParam(num(attrs['axis']), x.shape)[0] ?? 0;
  return Array.from({ length: x.shape[axis] ?? 0 }, (_, i) => sliceAlong(b, x, axis, i, 1, false));
});
kernels.set('SplitV', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const axis = tf.util.parseAxisParam(num(attrs['axis']), x.shape)[0] ?? 0;
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs['numOrSizeSplits'] as number | number[], axis);
  let at = 0;
  return sizes.map((s) => {
    const t = sliceAlong(b, x, axis, at, s, true);
    at += s;
    return t;
  });
});
kernels.set('PadV2', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const paddings = attrs['paddings'] as [number, number][];
  if (x.shape.length > MAX_RANK || paddings.some(([p, q]) => p < 0 || q < 0)) return null;
  const shape = x.shape.map((d, i) => d + (paddings[i]?.[0] ?? 0) + (paddings[i]?.[1] ?? 0));
  const out = b.makeOutput(shape, x.dtype);
  fill(b, out, num(attrs['constantValue']));
  const os = stridesOf(shape);
  copyView(b, x, stridesOf(x.shape), 0, x.shape, out, os, paddings.reduce((a, [p], i) => a + p * (os[i] ?? 0), 0));
  return out;
});
kernels.set('Tile', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const reps = attrs['reps'] as number[];
  const view: number[] = [];
  const src: number[] = [];
  const xs = stridesOf(x.shape);
  x.shape.forEach((d, i) => {
    view.push(reps[i] ?? 1, d);
    src.push(0, xs[i] ?? 0);
  });
  const outShape = x.shape.map((d, i) => d * (reps[i] ?? 1));
  const sq = squeezeView(view, [src, stridesOf(view)]);
  if (sq.shape.length > MAX_RANK) return null;
  const out = b.makeOutput(outShape, x.dtype);
  copyView(b, x, sq.views[0] ?? [], 0, sq.shape, out, sq.views[1] ?? [], 0);
  return out;
});
kernels.set('BroadcastTo', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const shape = attrs['shape'] as number[];
  const sq = squeezeView(shape, [broadcastStrides(x.shape, shape), stridesOf(shape)]);
  if (sq.shape.length > MAX_RANK) return null;
  const out = b.makeOutput(shape, x.dtype);
  copyView(b, x, sq.views[0] ?? [], 0, sq.shape, out, sq.views[1] ?? [], 0);
  return out;
});
kernels.set('Reverse', (inp, b, attrs) => {
  const x = input(inp, 'x');
  if (x.shape.length > MAX_RANK) return null;
  const dims = tf.util.parseAxisParam(attrs['dims'] as number | number[], x.shape);
  const xs = stridesOf(x.shape);
  const src = xs.map((s, i) => (dims.includes(i) ? -s : s));
  const off = dims.reduce((a, d) => a + ((x.shape[d] ?? 1) - 1) * (xs[d] ?? 0), 0);
  const out = b.makeOutput(x.shape, x.dtype);
  copyView(b, x, src, off, x.shape, out, stridesOf(x.shape), 0);
  return out;
});
kernels.set('GatherV2', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const idx = input(inp, 'indices');
  if (num(attrs['batchDims']) !== 0 || idx.dtype !== 'int32' || !(x.dtype in DTYPE_CODE)) return null;
  const axis = tf.util.parseAxisParam(num(attrs['axis']), x.shape)[0] ?? 0;
  const outer = size(x.shape.slice(0, axis));
  const inner = size(x.shape.slice(axis + 1));
  const outShape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)];
  const out = b.makeOutput(outShape, x.dtype);
  b.device.launch('gather', [b.ptr(x), b.ptr(idx), b.ptr(out)], ints(bytesPerElement(x.dtype), outer, x.shape[axis] ?? 1, inner, size(idx.shape)));
  return out;
});

for (const op of REDUCE_OPS) {
  kernels.set(op, (inp, b, attrs) => {
    const x = input(inp, 'x');
    const axis = op === 'Max' ? (attrs['reductionIndices'] ?? attrs['axis']) : attrs['axis'];
    if (op === 'ArgMax' || op === 'ArgMin') return reduce(b, op, x, [tf.util.parseAxisParam(axis as number, x.shape)[0] ?? 0], false);
    return reduce(b, op, x, axis, bool(attrs['keepDims']));
  });
}

kernels.set('BatchMatMul', (inp, b, attrs) => matmul(b, input(inp, 'a'), input(inp, 'b'), bool(attrs['transposeA']), bool(attrs['transposeB'])));
kernels.set('_FusedMatMul', (inp, b, attrs) => {
  let y = matmul(b, input(inp, 'a'), input(inp, 'b'), bool(attrs['transposeA']), bool(attrs['transposeB']));
  if (y === null) return null;
  const bias = inp['bias'];
  if (bias !== undefined) y = b.consume(y, binary(b, 'Add', y, bias));
  return y === null ? null : activation(b, y, attrs['activation'], inp['preluActivationWeights'], num(attrs['leakyreluAlpha'], 0.2));
});

function conv2dInfo(xShape: number[], fShape: number[], attrs: Attrs): tf.backend_util.Conv2DInfo {
  const fmt = tf.backend_util.convertConv2DDataFormat((attrs['dataFormat'] as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC');
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    fShape as [number, number, number, number],
    attrs['strides'] as number | [number, number],
    (attrs['dilations'] as number | [number, number] | undefined) ?? 1,
    attrs['pad'] as 'valid' | 'same' | number,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    false,
    fmt,
  );
}
function conv3dInfo(xShape: number[], fShape: number[], attrs: Attrs): tf.backend_util.Conv3DInfo {
  return tf.backend_util.computeConv3DInfo(
    xShape as [number, number, number, number, number],
    fShape as [number, number, number, number, number],
    attrs['strides'] as number | [number, number, number],
    (attrs['dilations'] as number | [number, number, number] | undefined) ?? 1,
    attrs['pad'] as 'valid' | 'same',
    false,
    attrs['dataFormat'] === 'NCDHW' ? 'channelsFirst' : 'channelsLast',
  );
}

kernels.set('Conv2D', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const f = input(inp, 'filter');
  return conv(b, 0, 2, conv2dInfo(x.shape, f.shape, attrs), x, f);
});
kernels.set('FusedConv2D', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const f = input(inp, 'filter');
  let y = conv(b, 0, 2, conv2dInfo(x.shape, f.shape, attrs), x, f);
  if (y === null) return null;
  const bias = inp['bias'];
  if (bias !== undefined) y = b.consume(y, binary(b, 'Add', y, bias));
  return y === null ? null : activation(b, y, attrs['activation'], inp['preluActivationWeights'], num(attrs['leakyreluAlpha'], 0.2));
});
kernels.set('Conv2DBackpropInput', (inp, b, attrs) => {
  const dy = input(inp, 'dy');
  const f = input(inp, 'filter');
  return conv(b, 1, 2, conv2dInfo(attrs['inputShape'] as number[], f.shape, attrs), dy, f);
});
kernels.set('Conv2DBackpropFilter', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const dy = input(inp, 'dy');
  return conv(b, 2, 2, conv2dInfo(x.shape, attrs['filterShape'] as number[], attrs), x, dy);
});
kernels.set('Conv3D', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const f = input(inp, 'filter');
  return conv(b, 0, 3, conv3dInfo(x.shape, f.shape, attrs), x, f);
});
kernels.set('Conv3DBackpropInputV2', (inp, b, attrs) => {
  const dy = input(inp, 'dy');
  const f = input(inp, 'filter');
  return conv(b, 1, 3, conv3dInfo(attrs['inputShape'] as number[], f.shape, attrs), dy, f);
});
kernels.set('Conv3DBackpropFilterV2', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const dy = input(inp, 'dy');
  return conv(b, 2, 3, conv3dInfo(x.shape, attrs['filterShape'] as number[], attrs), x, dy);
});

function pool2dInfo(xShape: number[], attrs: Attrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computePool2DInfo(
    xShape as [number, number, number, number],
    attrs['filterSize'] as number | [number, number],
    attrs['strides'] as number | [number, number],
    1,
    attrs['pad'] as 'valid' | 'same' | number,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
  );
}
function pool3dInfo(xShape: number[], attrs: Attrs): tf.backend_util.Conv3DInfo {
  return tf.backend_util.computePool3DInfo(
    xShape as [number, number, number, number, number],
    attrs['filterSize'] as number | [number, number, number],
    attrs['strides'] as number | [number, number, number],
    1,
    attrs['pad'] as 'valid' | 'same' | number,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    (attrs['dataFormat'] as 'NDHWC' | 'NCDHW' | undefined) ?? 'NDHWC',
  );
}
for (const [name, isMax, nd] of [['MaxPool', true, 2], ['AvgPool', false, 2], ['MaxPool3D', true, 3], ['AvgPool3D', false, 3]] as const) {
  kernels.set(name, (inp, b, attrs) => {
    const x = input(inp, 'x');
    const pi = nd === 2 ? pool2dInfo(x.shape, attrs) : pool3dInfo(x.shape, attrs);
    return pool(b, false, isMax, nd, pi, [x], pi.outShape);
  });
  kernels.set(`${name}Grad`, (inp, b, attrs) => {
    const dy = input(inp, 'dy');
    const x = input(inp, 'input');
    const pi = nd === 2 ? pool2dInfo(x.shape, attrs) : pool3dInfo(x.shape, attrs);
    // cuDNN's average backward reads neither y nor x: dy stands in for y.
    const y = isMax ? input(inp, 'output') : dy;
    return pool(b, true, isMax, nd, pi, [dy, x, y], x.shape);
  });
}

kernels.set('FusedBatchNorm', (inp, b, attrs) => {
  const x = input(inp, 'x');
  const parts = ['mean', 'variance', 'offset', 'scale'].map((k) => inp[k]);
  const C = x.shape[x.shape.length - 1] ?? 1;
  const lens = parts.map((t) => (t === undefined ? 0 : size(t.shape)));
  if (x.dtype !== 'float32' || parts.some((t) => t !== undefined && t.dtype !== 'float32')) return null;
  if (lens.some((l, i) => (i < 2 ? l !== 1 && l !== C : l !== 0 && l !== 1 && l !== C))) return null;
  const out = b.makeOutput(x.shape, 'float32');
  const mean = parts[0] as Info;
  const variance = parts[1] as Info;
  b.device.launch(
    'batchNorm',
    [b.ptr(x), b.ptr(mean), b.ptr(variance), parts[2] ? b.ptr(parts[2]) : 0, parts[3] ? b.ptr(parts[3]) : 0, b.ptr(out)],
    ints(size(x.shape), C, lens),
    Float32Array.of(num(attrs['varianceEpsilon'], 1e-3)),
  );
  return out;
});

for (const [name, mode] of [['ResizeNearestNeighbor', 0], ['ResizeBilinear', 1]] as const) {
  kernels.set(name, (inp, b, attrs) => {
    const x = input(inp, 'images');
    const [oh, ow] = attrs['size'] as [number, number];
    const [N, ih, iw, C] = x.shape as [number, number, number, number];
    if (x.dtype !== 'float32' || x.shape.length !== 4) return null;
    const out = b.makeOutput([N, oh, ow, C], 'float32');
    b.device.launch('resize', [b.ptr(x), b.ptr(out)], ints(mode, 0, N, ih, iw, oh, ow, C, bool(attrs['alignCorners']) ? 1 : 0, bool(attrs['halfPixelCenters']) ? 1 : 0));
    return out;
  });
  kernels.set(`${name}Grad`, (inp, b, attrs) => {
    const x = input(inp, 'images');
    const dy = input(inp, 'dy');
    const [N, ih, iw, C] = x.shape as [number, number, number, number];
    const [, oh, ow] = dy.shape as [number, number, number, number];
    if (dy.dtype !== 'float32' || x.shape.length !== 4) return null;
    const out = b.makeOutput(x.shape, 'float32');
    b.device.launch('resize', [b.ptr(dy), b.ptr(out)], ints(mode, 1, N, ih, iw, oh, ow, C, bool(attrs['alignCorners']) ? 1 : 0, bool(attrs['halfPixelCenters']) ? 1 : 0));
    return out;
  });
}

/** The device kernels by tfjs kernel name. */
export const CUDA_KERNELS: ReadonlyMap<string, DeviceKernel> = kernels;
