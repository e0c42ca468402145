// An in-memory DeviceApi: host ArrayBuffers stand in for device blocks and every kernel of
// src/native/cuda is re-implemented as a plain loop, with the same parameter layouts. It lets the
// cuda backend's bookkeeping (lifetimes, accounting, fallbacks) and its parameter marshalling be
// checked against the cpu backend on machines without a GPU. It says nothing about the CUDA code.
import { BINARY_OPS, FIRST_COMPARE_OP, REDUCE_OPS, UNARY_OPS, type DeviceApi } from '../src/backend/cuda-device.js';

type Un = (x: number, a: number, b: number) => number;
const UNARY: Record<(typeof UNARY_OPS)[number], Un> = {
  Identity: (x) => x,
  Neg: (x) => -x,
  Abs: Math.abs,
  Exp: Math.exp,
  Expm1: Math.expm1,
  Log: Math.log,
  Log1p: Math.log1p,
  Sqrt: Math.sqrt,
  Rsqrt: (x) => 1 / Math.sqrt(x),
  Square: (x) => x * x,
  Reciprocal: (x) => 1 / x,
  Relu: (x) => (x > 0 ? x : 0),
  Relu6: (x) => Math.min(Math.max(x, 0), 6),
  LeakyRelu: (x, a) => (x < 0 ? a * x : x),
  Elu: (x) => (x < 0 ? Math.expm1(x) : x),
  Selu: (x) => (x < 0 ? 1.7580993408473768 * Math.expm1(x) : 1.0507009873554805 * x),
  Sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  Softplus: (x) => (x > 20 ? x : x < -20 ? Math.exp(x) : Math.log1p(Math.exp(x))),
  Tanh: Math.tanh,
  Sin: Math.sin,
  Cos: Math.cos,
  Sign: Math.sign,
  Floor: Math.floor,
  Ceil: Math.ceil,
  Round: (x) => {
    const f = Math.floor(x);
    const d = x - f;
    if (d !== 0.5) return Math.round(x);
    return f % 2 === 0 ? f : f + 1;
  },
  Erf: (x) => {
    // Abramowitz-Stegun 7.1.26 is too coarse; use a series/continued fraction good to ~1e-7.
    const t = 1 / (1 + 0.5 * Math.abs(x));
    const y = 1 - t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
    return x >= 0 ? y : -y;
  },
  Step: (x, a) => (x > 0 ? 1 : Number.isNaN(x) ? x : a),
  ClipByValue: (x, a, b) => Math.min(Math.max(x, a), b),
  Scale: (x, a, b) => a * x + b,
};
type Bin = (x: number, y: number) => number;
const BINARY: Record<(typeof BINARY_OPS)[number], Bin> = {
  Add: (x, y) => x + y,
  Sub: (x, y) => x - y,
  Mul: (x, y) => x * y,
  RealDiv: (x, y) => x / y,
  Maximum: (x, y) => (Number.isNaN(x) ? y : Number.isNaN(y) ? x : Math.max(x, y)),
  Minimum: (x, y) => (Number.isNaN(x) ? y : Number.isNaN(y) ? x : Math.min(x, y)),
  Pow: (x, y) => x ** y,
  SquaredDifference: (x, y) => (x - y) * (x - y),
  FloorDiv: (x, y) => Math.floor(x / y),
  Mod: (x, y) => (((x % y) + y) % y),
  Atan2: Math.atan2,
  DivNoNan: (x, y) => (y === 0 ? 0 : x / y),
  Prelu: (x, y) => (x < 0 ? x * y : x),
  EluGrad: (x, y) => (y >= 0 ? x : x * (y + 1)),
  Equal: (x, y) => +(x === y),
  NotEqual: (x, y) => +(x !== y),
  Less: (x, y) => +(x < y),
  LessEqual: (x, y) => +(x <= y),
  Greater: (x, y) => +(x > y),
  GreaterEqual: (x, y) => +(x >= y),
  LogicalAnd: (x, y) => +(x !== 0 && y !== 0),
  LogicalOr: (x, y) => +(x !== 0 || y !== 0),
};

interface View {
  shape: number[];
  strides: number[];
  offset: number;
}

/** Fake device; `allocs`/`frees` count the device calls, `live` the blocks held. */
export class FakeDevice implements DeviceApi {
  private readonly mem = new Map<number, ArrayBuffer>();
  private next = 0x10000;
  allocs = 0;
  frees = 0;
  launches: string[] = [];
  /** Ranks the fake NCCL all-reduce pretends to sum over (all holding the same values). */
  ncclRanks = 1;
  /** Fail allocations above this many live bytes (to test the allocator's out-of-memory retry). */
  capacity = Infinity;

  get liveBytes(): number {
    let n = 0;
    for (const b of this.mem.values()) n += b.byteLength;
    return n;
  }

  alloc(bytes: number): number {
    if (this.liveBytes + bytes > this.capacity) throw new Error('fake device: out of memory');
    const ptr = this.next;
    this.next += bytes + 256;
    this.mem.set(ptr, new ArrayBuffer(bytes));
    this.allocs++;
    return ptr;
  }
  free(ptr: number): void {
    if (!this.mem.delete(ptr)) throw new Error(`fake device: double free of ${ptr}`);
    this.frees++;
  }
  private buf(ptr: number): ArrayBuffer {
    const b = this.mem.get(ptr);
    if (b === undefined) throw new Error(`fake device: use of unallocated or freed pointer ${ptr}`);
    return b;
  }
  upload(ptr: number, data: ArrayBufferView): void {
    new Uint8Array(this.buf(ptr)).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  download(ptr: number, into: ArrayBufferView): void {
    new Uint8Array(into.buffer, into.byteOffset, into.byteLength).set(new Uint8Array(this.buf(ptr), 0, into.byteLength));
  }
  copy(dst: number, src: number, bytes: number): void {
    new Uint8Array(this.buf(dst)).set(new Uint8Array(this.buf(src), 0, bytes));
  }
  synchronize(): void {}

  private f32 = (p: number) => new Float32Array(this.buf(p));
  private i32 = (p: number) => new Int32Array(this.buf(p));
  private u8 = (p: number) => new Uint8Array(this.buf(p));

  launch(name: string, bufs: readonly number[], ints: Int32Array = new Int32Array(0), floats: Float32Array = new Float32Array(0)): void {
    this.launches.push(name);
    const I = (i: number) => ints[i] ?? 0;
    const B = (i: number) => bufs[i] ?? 0;
    const readShape = (pos: number): [number[], number] => {
      const r = I(pos);
      return [Array.from(ints.subarray(pos + 1, pos + 1 + r)), pos + 1 + r];
    };
    const readView = (shape: number[], pos: number): [View, number] => {
      const r = shape.length;
      return [{ shape, strides: Array.from(ints.subarray(pos, pos + r)), offset: I(pos + r) }, pos + r + 1];
    };
    const offsetOf = (i: number, v: View) => {
      let off = v.offset;
      for (let d = v.shape.length - 1; d >= 0; --d) {
        const s = v.shape[d] ?? 1;
        off += (i % s) * (v.strides[d] ?? 0);
        i = Math.floor(i / s);
      }
      return off;
    };
    const count = (shape: number[]) => shape.reduce((a, d) => a * d, 1);
    switch (name) {
      case 'unary': {
        const f = UNARY[UNARY_OPS[I(0)] ?? 'Identity'];
        const x = this.f32(B(0));
        const y = this.f32(B(1));
        for (let i = 0; i < I(1); ++i) y[i] = f(x[i] ?? 0, floats[0] ?? 0, floats[1] ?? 0);
        return;
      }
      case 'binary': {
        const op = I(0);
        const f = BINARY[BINARY_OPS[op] ?? 'Add'];
        const [shape, p1] = readShape(1);
        const [av, p2] = readView(shape, p1);
        const [bv] = readView(shape, p2);
        const a = this.f32(B(0));
        const b = this.f32(B(1));
        const out = op >= FIRST_COMPARE_OP ? this.u8(B(2)) : this.f32(B(2));
        for (let i = 0; i < count(shape); ++i) out[i] = f(a[offsetOf(i, av)] ?? 0, b[offsetOf(i, bv)] ?? 0);
        return;
      }
      case 'select': {
        const [shape, p1] = readShape(0);
        const [cv, p2] = readView(shape, p1);
        const [av, p3] = readView(shape, p2);
        const [bv] = readView(shape, p3);
        const c = this.u8(B(0));
        const a = this.f32(B(1));
        const b = this.f32(B(2));
        const out = this.f32(B(3));
        for (let i = 0; i < count(shape); ++i) out[i] = c[offsetOf(i, cv)] ? (a[offsetOf(i, av)] ?? 0) : (b[offsetOf(i, bv)] ?? 0);
        return;
      }
      case 'copy': {
        const [shape, p1] = readShape(1);
        const [sv, p2] = readView(shape, p1);
        const [dv] = readView(shape, p2);
        const src = I(0) === 4 ? this.f32(B(0)) : this.u8(B(0));
        const dst = I(0) === 4 ? this.f32(B(1)) : this.u8(B(1));
        for (let i = 0; i < count(shape); ++i) dst[offsetOf(i, dv)] = src[offsetOf(i, sv)] ?? 0;
        return;
      }
      case 'fill': {
        if (I(1) === 4) this.i32(B(0)).fill(I(2), 0, I(0));
        else this.u8(B(0)).fill(I(2), 0, I(0));
        return;
      }
      case 'cast': {
        const [from, to, n] = [I(0), I(1), I(2)];
        const src = from === 0 ? this.f32(B(0)) : from === 1 ? this.i32(B(0)) : this.u8(B(0));
        const dst = to === 0 ? this.f32(B(1)) : to === 1 ? this.i32(B(1)) : this.u8(B(1));
        for (let i = 0; i < n; ++i) {
          const v = src[i] ?? 0;
          dst[i] = to === 2 ? +(v !== 0) : to === 1 ? Math.trunc(v) : v;
        }
        return;
      }
      case 'reduce': {
        const op = REDUCE_OPS[I(0)] ?? 'Sum';
        const [outer, reduced, inner] = [I(1), I(2), I(3)];
        const bytes = op === 'Any' || op === 'All';
        const x = bytes ? this.u8(B(0)) : this.f32(B(0));
        const out = op === 'ArgMax' || op === 'ArgMin' ? this.i32(B(1)) : bytes ? this.u8(B(1)) : this.f32(B(1));
        for (let o = 0; o < outer; ++o) {
          for (let i = 0; i < inner; ++i) {
            let acc = op === 'Max' || op === 'ArgMax' ? -Infinity : op === 'Min' || op === 'ArgMin' ? Infinity : op === 'Prod' || op === 'All' ? 1 : 0;
            let idx = -1;
            for (let r = 0; r < reduced; ++r) {
              const v = x[(o * reduced + r) * inner + i] ?? 0;
              if (op === 'Sum' || op === 'Mean') acc += v;
              else if (op === 'Max') acc = v > acc || Number.isNaN(v) ? v : acc;
              else if (op === 'Min') acc = v < acc || Number.isNaN(v) ? v : acc;
              else if (op === 'Prod') acc *= v;
              else if (op === 'ArgMax' && (idx < 0 || v > acc)) [acc, idx] = [v, r];
              else if (op === 'ArgMin' && (idx < 0 || v < acc)) [acc, idx] = [v, r];
              else if (op === 'Any') acc = +(acc !== 0 || v !== 0);
              else if (op === 'All') acc = +(acc !== 0 && v !== 0);
            }
            out[o * inner + i] = op === 'Mean' ? acc / reduced : op === 'ArgMax' || op === 'ArgMin' ? Math.max(idx, 0) : acc;
          }
        }
        return;
      }
      case 'gather': {
        const [es, outer, axisDim, inner, nIdx] = [I(0), I(1), I(2), I(3), I(4)];
        const x = es === 4 ? this.f32(B(0)) : this.u8(B(0));
        const idx = this.i32(B(1));
        const out = es === 4 ? this.f32(B(2)) : this.u8(B(2));
        for (let o = 0; o < outer; ++o)
          for (let j = 0; j < nIdx; ++j)
            for (let i = 0; i < inner; ++i) {
              const k = idx[j] ?? 0;
              out[(o * nIdx + j) * inner + i] = k >= 0 && k < axisDim ? (x[(o * axisDim + k) * inner + i] ?? 0) : 0;
            }
        return;
      }
      case 'batchNorm': {
        const [n, C, ml, vl, ol, sl] = [I(0), I(1), I(2), I(3), I(4), I(5)];
        const x = this.f32(B(0));
        const m = this.f32(B(1));
        const v = this.f32(B(2));
        const off = ol ? this.f32(B(3)) : undefined;
        const sc = sl ? this.f32(B(4)) : undefined;
        const y = this.f32(B(5));
        const at = (a: Float32Array | undefined, len: number, c: number, d: number) => (a === undefined || len === 0 ? d : (a[len === 1 ? 0 : c] ?? d));
        for (let i = 0; i < n; ++i) {
          const c = i % C;
          y[i] = ((x[i] ?? 0) - at(m, ml, c, 0)) / Math.sqrt(at(v, vl, c, 1) + (floats[0] ?? 0)) * at(sc, sl, c, 1) + at(off, ol, c, 0);
        }
        return;
      }
      case 'matmul': {
        const [batch, sa, sb, m, n, k, ta, tb] = [I(0), I(1), I(2), I(3), I(4), I(5), I(6), I(7)];
        const a = this.f32(B(0));
        const b = this.f32(B(1));
        const c = this.f32(B(2));
        for (let q = 0; q < batch; ++q) {
          const ao = sa ? q * m * k : 0;
          const bo = sb ? q * k * n : 0;
          for (let i = 0; i < m; ++i)
            for (let j = 0; j < n; ++j) {
              let s = 0;
              for (let l = 0; l < k; ++l) s += (a[ao + (ta ? l * m + i : i * k + l)] ?? 0) * (b[bo + (tb ? j * k + l : l * n + j)] ?? 0);
              c[q * m * n + i * n + j] = s;
            }
        }
        return;
      }
      case 'resize':
        return this.resize(ints, bufs);
      case 'allReduce': {
        // Every rank holds the same values: the sum is ranks * x, the average x.
        if (I(1) === 0) {
          const x = this.f32(B(0));
          for (let i = 0; i < I(0); ++i) x[i] = (x[i] ?? 0) * this.ncclRanks;
        }
        return;
      }
      case 'conv':
        return this.conv(ints, bufs);
      case 'pool':
        return this.pool(ints, bufs);
      default:
        throw new Error(`fake device: kernel ${name} is not implemented in the fake`);
    }
  }

  // Direct convolution over NDHWC (2D as D = 1), filter KRSC; one loop nest for all three modes.
  private conv(ints: Int32Array, bufs: readonly number[]): void {
    const I = (i: number) => ints[i] ?? 0;
    const mode = I(0);
    const nd = I(1);
    let p = 2;
    const N = I(p++);
    const Cin = I(p++);
    const take = () => Array.from({ length: nd }, () => I(p++));
    const inn = take();
    const Cout = I(p++);
    const [out, fil, st, pad, dil] = [take(), take(), take(), take(), take()];
    const pad3 = (a: number[], d: number) => (nd === 2 ? [d, ...a] : a);
    const [iD, iH, iW] = pad3(inn, 1) as [number, number, number];
    const [oD, oH, oW] = pad3(out, 1) as [number, number, number];
    const [fD, fH, fW] = pad3(fil, 1) as [number, number, number];
    const [sD, sH, sW] = pad3(st, 1) as [number, number, number];
    const [pD, pH, pW] = pad3(pad, 0) as [number, number, number];
    const [dD, dH, dW] = pad3(dil, 1) as [number, number, number];
    const a = this.f32(bufs[0] ?? 0);
    const b = this.f32(bufs[1] ?? 0);
    const r = this.f32(bufs[2] ?? 0);
    r.fill(0);
    for (let n = 0; n < N; ++n)
      for (let od = 0; od < oD; ++od)
        for (let oh = 0; oh < oH; ++oh)
          for (let ow = 0; ow < oW; ++ow)
            for (let co = 0; co < Cout; ++co) {
              const yi = (((n * oD + od) * oH + oh) * oW + ow) * Cout + co;
              let acc = 0;
              for (let kd = 0; kd < fD; ++kd)
                for (let kh = 0; kh < fH; ++kh)
                  for (let kw = 0; kw < fW; ++kw) {
                    const id = od * sD - pD + kd * dD;
                    const ih = oh * sH - pH + kh * dH;
                    const iw = ow * sW - pW + kw * dW;
                    if (id < 0 || id >= iD || ih < 0 || ih >= iH || iw < 0 || iw >= iW) continue;
                    for (let ci = 0; ci < Cin; ++ci) {
                      const xi = (((n * iD + id) * iH + ih) * iW + iw) * Cin + ci;
                      const wi = (((co * fD + kd) * fH + kh) * fW + kw) * Cin + ci;
                      if (mode === 0) acc += (a[xi] ?? 0) * (b[wi] ?? 0);
                      else if (mode === 1) r[xi] = (r[xi] ?? 0) + (a[yi] ?? 0) * (b[wi] ?? 0);
                      else r[wi] = (r[wi] ?? 0) + (a[xi] ?? 0) * (b[yi] ?? 0);
                    }
                  }
              if (mode === 0) r[yi] = acc;
            }
  }

  // Max / average (count excluding padding) pooling over NDHWC and its gradient.
  private pool(ints: Int32Array, bufs: readonly number[]): void {
    const I = (i: number) => ints[i] ?? 0;
    const [grad, isMax, nd] = [I(0), I(1), I(2)];
    let p = 3;
    const N = I(p++);
    const C = I(p++);
    const take = () => Array.from({ length: nd }, () => I(p++));
    const [inn, out, win, st, pad] = [take(), take(), take(), take(), take()];
    const pad3 = (a: number[], d: number) => (nd === 2 ? [d, ...a] : a);
    const [iD, iH, iW] = pad3(inn, 1) as [number, number, number];
    const [oD, oH, oW] = pad3(out, 1) as [number, number, number];
    const [fD, fH, fW] = pad3(win, 1) as [number, number, number];
    const [sD, sH, sW] = pad3(st, 1) as [number, number, number];
    const [pD, pH, pW] = pad3(pad, 0) as [number, number, number];
    const x = this.f32(bufs[grad ? 1 : 0] ?? 0);
    const dy = grad ? this.f32(bufs[0] ?? 0) : undefined;
    const res = this.f32(bufs[grad ? 3 : 1] ?? 0);
    if (grad) res.fill(0);
    for (let n = 0; n < N; ++n)
      for (let od = 0; od < oD; ++od)
        for (let oh = 0; oh < oH; ++oh)
          for (let ow = 0; ow < oW; ++ow)
            for (let c = 0; c < C; ++c) {
              const cells: number[] = [];
              for (let kd = 0; kd < fD; ++kd)
                for (let kh = 0; kh < fH; ++kh)
                  for (let kw = 0; kw < fW; ++kw) {
                    const [id, ih, iw] = [od * sD - pD + kd, oh * sH - pH + kh, ow * sW - pW + kw];
                    if (id >= 0 && id < iD && ih >= 0 && ih < iH && iw >= 0 && iw < iW) cells.push((((n * iD + id) * iH + ih) * iW + iw) * C + c);
                  }
              const yi = (((n * oD + od) * oH + oh) * oW + ow) * C + c;
              let best = cells[0] ?? 0;
              for (const ci of cells) if ((x[ci] ?? 0) > (x[best] ?? 0)) best = ci;
              if (!grad) {
                res[yi] = isMax ? (x[best] ?? 0) : cells.reduce((s, ci) => s + (x[ci] ?? 0), 0) / cells.length;
              } else if (isMax) {
                res[best] = (res[best] ?? 0) + (dy?.[yi] ?? 0);
              } else {
                for (const ci of cells) res[ci] = (res[ci] ?? 0) + (dy?.[yi] ?? 0) / cells.length;
              }
            }
  }

  // Same arithmetic as ResizeNearestKernel / ResizeBilinearKernel in kernels.cu, in float32.
  private resize(ints: Int32Array, bufs: readonly number[]): void {
    const [mode, grad, N, ih, iw, oh, ow, C, align, half] = Array.from({ length: 10 }, (_, i) => ints[i] ?? 0) as [number, number, number, number, number, number, number, number, number, number];
    const f = Math.fround;
    const sy = f(align && oh > 1 ? (ih - 1) / (oh - 1) : ih / oh);
    const sx = f(align && ow > 1 ? (iw - 1) / (ow - 1) : iw / ow);
    const src = this.f32(bufs[0] ?? 0);
    const dst = this.f32(bufs[1] ?? 0);
    if (grad) dst.fill(0);
    for (let b = 0; b < N; ++b)
      for (let y = 0; y < oh; ++y)
        for (let x = 0; x < ow; ++x)
          for (let c = 0; c < C; ++c) {
            const t = ((b * oh + y) * ow + x) * C + c;
            const base = b * ih * iw * C + c;
            if (mode === 0) {
              const fy = f(half ? (y + 0.5) * sy : y * sy);
              const fx = f(half ? (x + 0.5) * sx : x * sx);
              const iy = Math.min(Math.max(align ? Math.round(fy) : Math.floor(fy), 0), ih - 1);
              const ix = Math.min(Math.max(align ? Math.round(fx) : Math.floor(fx), 0), iw - 1);
              const i = base + (iy * iw + ix) * C;
              if (grad) dst[i] = (dst[i] ?? 0) + (src[t] ?? 0);
              else dst[t] = src[i] ?? 0;
              continue;
            }
            const fy = Math.max(f(half ? (y + 0.5) * sy - 0.5 : y * sy), 0);
            const fx = Math.max(f(half ? (x + 0.5) * sx - 0.5 : x * sx), 0);
            const y0 = Math.min(Math.floor(fy), ih - 1);
            const x0 = Math.min(Math.floor(fx), iw - 1);
            const y1 = Math.min(y0 + 1, ih - 1);
            const x1 = Math.min(x0 + 1, iw - 1);
            const dy = fy - y0;
            const dx = fx - x0;
            const i00 = base + (y0 * iw + x0) * C;
            const i01 = base + (y0 * iw + x1) * C;
            const i10 = base + (y1 * iw + x0) * C;
            const i11 = base + (y1 * iw + x1) * C;
            if (grad) {
              const g = src[t] ?? 0;
              dst[i00] = (dst[i00] ?? 0) + g * (1 - dy) * (1 - dx);
              dst[i01] = (dst[i01] ?? 0) + g * (1 - dy) * dx;
              dst[i10] = (dst[i10] ?? 0) + g * dy * (1 - dx);
              dst[i11] = (dst[i11] ?? 0) + g * dy * dx;
            } else {
              const top = (src[i00] ?? 0) + ((src[i01] ?? 0) - (src[i00] ?? 0)) * dx;
              const bot = (src[i10] ?? 0) + ((src[i11] ?? 0) - (src[i10] ?? 0)) * dx;
              dst[t] = top + (bot - top) * dy;
            }
          }
  }
}
