// CUDA kernels of the `cuda` tfjs backend: one generic elementwise mechanism (unary and binary
// ops picked by op code from ops.h, broadcast through per-operand strides), one strided copy (transpose,
// slice, concat, pad, tile, broadcast, reverse), reductions, gather, select, cast, batch norm,
// resize and fused optimizer updates. Convolutions, pooling and matrix multiplies are cuDNN and
// cuBLAS calls in addon.cc.
#include <cfloat>
#include <cstdint>

#include "kernels.h"

namespace proggan_cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned Blocks(long long n) {
  long long b = (n + kThreads - 1) / kThreads;
  if (b > 65535LL * 32) b = 65535LL * 32;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

#define GRID_LOOP(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)blockDim.x * gridDim.x)

// Offset into a strided view of the element whose index in the contiguous `shape` is `i`.
__device__ __forceinline__ long long ViewOffset(long long i, const Strided& shape, const Strided& v) {
  long long off = v.offset;
  for (int d = shape.rank - 1; d >= 0; --d) {
    const long long s = shape.shape[d];
    const long long q = i / s;
    off += (i - q * s) * v.strides[d];
    i = q;
  }
  return off;
}

__device__ __forceinline__ float UnaryOp(int op, float x, float a, float b) {
  switch (op) {
#define CASE(name, expr) \
  case k##name:          \
    return (expr);
    PROGGAN_CUDA_UNARY_OPS(CASE)
#undef CASE
  }
  return x;
}

__device__ __forceinline__ float BinaryArith(int op, float x, float y) {
  switch (op) {
#define CASE(name, expr) \
  case k##name:          \
    return (expr);
    PROGGAN_CUDA_BINARY_OPS(CASE)
#undef CASE
  }
  return 0.f;
}

__device__ __forceinline__ bool BinaryCompare(int op, float x, float y) {
  switch (op) {
#define CASE(name, expr) \
  case k##name:          \
    return (expr);
    PROGGAN_CUDA_COMPARE_OPS(CASE)
#undef CASE
  }
  return false;
}

__global__ void UnaryKernel(int op, const float* x, float* y, long long n, float a, float b) {
  GRID_LOOP(i, n) y[i] = UnaryOp(op, x[i], a, b);
}

// Same-shape fast path (no index arithmetic).
__global__ void BinaryFlatKernel(int op, const float* a, const float* b, float* out, long long n) {
  GRID_LOOP(i, n) out[i] = BinaryArith(op, a[i], b[i]);
}

__global__ void BinaryKernel(int op, const float* a, Strided av, const float* b, Strided bv, float* out, Strided shape,
                             long long n) {
  GRID_LOOP(i, n) out[i] = BinaryArith(op, a[ViewOffset(i, shape, av)], b[ViewOffset(i, shape, bv)]);
}

__global__ void CompareKernel(int op, const float* a, Strided av, const float* b, Strided bv, uint8_t* out,
                              Strided shape, long long n) {
  GRID_LOOP(i, n) out[i] = BinaryCompare(op, a[ViewOffset(i, shape, av)], b[ViewOffset(i, shape, bv)]) ? 1 : 0;
}

template <typename T>
__global__ void CopyKernel(const T* src, Strided sv, T* dst, Strided dv, long long n) {
  GRID_LOOP(i, n) dst[ViewOffset(i, dv, dv)] = src[ViewOffset(i, dv, sv)];
}

template <typename T>
__global__ void FillKernel(T* dst, long long n, T value) {
  GRID_LOOP(i, n) dst[i] = value;
}

__global__ void SelectKernel(const uint8_t* c, Strided cv, const float* a, Strided av, const float* b, Strided bv,
                             float* out, Strided shape, long long n) {
  GRID_LOOP(i, n) out[i] = c[ViewOffset(i, shape, cv)] ? a[ViewOffset(i, shape, av)] : b[ViewOffset(i, shape, bv)];
}

template <typename S, typename D>
__global__ void CastKernel(const S* src, D* dst, long long n) {
  GRID_LOOP(i, n) dst[i] = static_cast<D>(src[i]);
}
__global__ void CastToBoolKernel(const float* src, uint8_t* dst, long long n) {
  GRID_LOOP(i, n) dst[i] = src[i] != 0.f ? 1 : 0;
}
__global__ void CastIntToBoolKernel(const int32_t* src, uint8_t* dst, long long n) {
  GRID_LOOP(i, n) dst[i] = src[i] != 0 ? 1 : 0;
}
// tfjs casts float -> int32 by truncation toward zero (Int32Array semantics).
__global__ void FloatToIntKernel(const float* src, int32_t* dst, long long n) {
  GRID_LOOP(i, n) dst[i] = static_cast<int32_t>(truncf(src[i]));
}

// ---- reductions ----------------------------------------------------------------------------
struct Acc {
  float v;
  long long idx;
};

__device__ __forceinline__ Acc ReduceInit(int op) {
  switch (op) {
    case kMax:
    case kArgMax:
      return {-INFINITY, -1};
    case kMin:
    case kArgMin:
      return {INFINITY, -1};
    case kProd:
    case kAll:
      return {1.f, 0};
    default:
      return {0.f, 0};
  }
}

__device__ __forceinline__ void ReduceStep(int op, Acc& acc, float x, long long r) {
  switch (op) {
    case kSum:
    case kMean:
      acc.v += x;
      break;
    case kMax:
      acc.v = (x > acc.v || x != x) ? x : acc.v;
      break;
    case kMin:
      acc.v = (x < acc.v || x != x) ? x : acc.v;
      break;
    case kProd:
      acc.v *= x;
      break;
    case kArgMax:
      if (acc.idx < 0 || x > acc.v) acc = {x, r};
      break;
    case kArgMin:
      if (acc.idx < 0 || x < acc.v) acc = {x, r};
      break;
    case kAny:
      acc.v = (acc.v != 0.f || x != 0.f) ? 1.f : 0.f;
      break;
    case kAll:
      acc.v = (acc.v != 0.f && x != 0.f) ? 1.f : 0.f;
      break;
  }
}

__device__ __forceinline__ float LoadAs(const void* x, long long i, bool bytes) {
  return bytes ? static_cast<float>(static_cast<const uint8_t*>(x)[i]) : static_cast<const float*>(x)[i];
}

__device__ __forceinline__ void StoreResult(int op, const Acc& acc, void* out, long long o, float scale) {
  if (op == kArgMax || op == kArgMin) {
    static_cast<int32_t*>(out)[o] = static_cast<int32_t>(acc.idx < 0 ? 0 : acc.idx);
  } else if (op == kAny || op == kAll) {
    static_cast<uint8_t*>(out)[o] = acc.v != 0.f ? 1 : 0;
  } else {
    static_cast<float*>(out)[o] = op == kMean ? acc.v * scale : acc.v;
  }
}

// One thread per output element [o, i], looping over the reduced range (coalesced over inner).
__global__ void ReduceColumnsKernel(int op, const void* x, bool bytes, void* out, long long outer, long long reduced,
                                    long long inner, float scale) {
  GRID_LOOP(t, outer * inner) {
    const long long o = t / inner, i = t - o * inner;
    Acc acc = ReduceInit(op);
    const long long base = o * reduced * inner + i;
    for (long long r = 0; r < reduced; ++r) ReduceStep(op, acc, LoadAs(x, base + r * inner, bytes), r);
    StoreResult(op, acc, out, t, scale);
  }
}

__device__ __forceinline__ void Combine(int op, Acc& a, const Acc& b) {
  switch (op) {
    case kArgMax:
      if (b.idx >= 0 && (a.idx < 0 || b.v > a.v || (b.v == a.v && b.idx < a.idx))) a = b;
      break;
    case kArgMin:
      if (b.idx >= 0 && (a.idx < 0 || b.v < a.v || (b.v == a.v && b.idx < a.idx))) a = b;
      break;
    default:
      ReduceStep(op, a, b.v, b.idx);
  }
}

// One block per row (inner == 1): a tree reduction in shared memory.
__global__ void ReduceRowsKernel(int op, const void* x, bool bytes, void* out, long long reduced, float scale) {
  __shared__ Acc sh[kThreads];
  const long long row = blockIdx.x;
  Acc acc = ReduceInit(op);
  for (long long r = threadIdx.x; r < reduced; r += blockDim.x) ReduceStep(op, acc, LoadAs(x, row * reduced + r, bytes), r);
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) Combine(op, sh[threadIdx.x], sh[threadIdx.x + s]);
    __syncthreads();
  }
  if (threadIdx.x == 0) StoreResult(op, sh[0], out, row, scale);
}

// Partial sums/max/... of `chunk`-long pieces of the reduced axis: [outer, reduced, inner] ->
// [outer, chunks, inner], in float32 (the second pass reduces those).
__global__ void ReducePartialKernel(int op, const void* x, bool bytes, float* part, long long outer, long long reduced,
                                    long long inner, long long chunk, long long chunks) {
  GRID_LOOP(t, outer * chunks * inner) {
    const long long i = t % inner;
    const long long c = (t / inner) % chunks;
    const long long o = t / (inner * chunks);
    Acc acc = ReduceInit(op);
    const long long r1 = min(reduced, (c + 1) * chunk);
    for (long long r = c * chunk; r < r1; ++r) ReduceStep(op, acc, LoadAs(x, (o * reduced + r) * inner + i, bytes), r);
    part[t] = acc.v;
  }
}

bool TwoPass(int op, long long outer, long long reduced, long long inner) {
  return op != kArgMax && op != kArgMin && inner > 1 && reduced >= 256 && outer * inner < 32768;
}

long long Chunks(long long reduced) {
  long long c = 1;
  while (c * c < reduced) c *= 2;
  return c;
}

__global__ void GatherKernel4(const float* x, const int32_t* idx, float* out, long long outer, long long axisDim,
                              long long inner, long long nIdx) {
  GRID_LOOP(t, outer * nIdx * inner) {
    const long long i = t % inner, j = (t / inner) % nIdx, o = t / (inner * nIdx);
    const long long k = idx[j];
    out[t] = (k >= 0 && k < axisDim) ? x[(o * axisDim + k) * inner + i] : 0.f;
  }
}
__global__ void GatherKernel1(const uint8_t* x, const int32_t* idx, uint8_t* out, long long outer, long long axisDim,
                              long long inner, long long nIdx) {
  GRID_LOOP(t, outer * nIdx * inner) {
    const long long i = t % inner, j = (t / inner) % nIdx, o = t / (inner * nIdx);
    const long long k = idx[j];
    out[t] = (k >= 0 && k < axisDim) ? x[(o * axisDim + k) * inner + i] : 0;
  }
}

__global__ void BatchNormKernel(const float* x, const float* mean, int ml, const float* var, int vl, const float* off,
                                int ol, const float* sc, int sl, float* y, long long n, int C, float eps) {
  GRID_LOOP(i, n) {
    const int c = static_cast<int>(i % C);
    const float m = mean[ml == 1 ? 0 : c];
    const float v = var[vl == 1 ? 0 : c];
    const float s = sl == 0 ? 1.f : sc[sl == 1 ? 0 : c];
    const float o = ol == 0 ? 0.f : off[ol == 1 ? 0 : c];
    y[i] = (x[i] - m) * rsqrtf(v + eps) * s + o;
  }
}

// Source coordinate of output coordinate `o` (tfjs / TensorFlow conventions).
__device__ __forceinline__ float SrcCoord(int o, float scale, int halfPixel) {
  return halfPixel ? (o + 0.5f) * scale - 0.5f : o * scale;
}

__global__ void ResizeNearestKernel(int grad, const float* src, float* dst, int N, int ih, int iw, int oh, int ow, int C,
                                    float sy, float sx, int alignCorners, int halfPixel) {
  const long long n = (long long)N * oh * ow * C;
  GRID_LOOP(t, n) {
    const int c = t % C;
    const int x = (t / C) % ow;
    const int y = (t / ((long long)C * ow)) % oh;
    const int b = t / ((long long)C * ow * oh);
    float fy = halfPixel ? (y + 0.5f) * sy : y * sy;
    float fx = halfPixel ? (x + 0.5f) * sx : x * sx;
    int iy = alignCorners ? static_cast<int>(roundf(fy)) : static_cast<int>(floorf(fy));
    int ix = alignCorners ? static_cast<int>(roundf(fx)) : static_cast<int>(floorf(fx));
    iy = min(max(iy, 0), ih - 1);
    ix = min(max(ix, 0), iw - 1);
    const long long in = (((long long)b * ih + iy) * iw + ix) * C + c;
    if (grad) atomicAdd(&dst[in], src[t]);  // src = dy [N,oh,ow,C], dst = dx [N,ih,iw,C]
    else dst[t] = src[in];
  }
}

__global__ void ResizeBilinearKernel(int grad, const float* src, float* dst, int N, int ih, int iw, int oh, int ow,
                                     int C, float sy, float sx, int halfPixel) {
  const long long n = (long long)N * oh * ow * C;
  GRID_LOOP(t, n) {
    const int c = t % C;
    const int x = (t / C) % ow;
    const int y = (t / ((long long)C * ow)) % oh;
    const int b = t / ((long long)C * ow * oh);
    const float fy = fmaxf(SrcCoord(y, sy, halfPixel), 0.f);
    const float fx = fmaxf(SrcCoord(x, sx, halfPixel), 0.f);
    const int y0 = min(static_cast<int>(floorf(fy)), ih - 1), x0 = min(static_cast<int>(floorf(fx)), iw - 1);
    const int y1 = min(y0 + 1, ih - 1), x1 = min(x0 + 1, iw - 1);
    const float dy = fy - y0, dx = fx - x0;
    const long long base = (long long)b * ih * iw * C + c;
    const long long i00 = base + ((long long)y0 * iw + x0) * C, i01 = base + ((long long)y0 * iw + x1) * C;
    const long long i10 = base + ((long long)y1 * iw + x0) * C, i11 = base + ((long long)y1 * iw + x1) * C;
    if (grad) {
      const float g = src[t];
      atomicAdd(&dst[i00], g * (1 - dy) * (1 - dx));
      atomicAdd(&dst[i01], g * (1 - dy) * dx);
      atomicAdd(&dst[i10], g * dy * (1 - dx));
      atomicAdd(&dst[i11], g * dy * dx);
    } else {
      const float top = src[i00] + (src[i01] - src[i00]) * dx;
      const float bot = src[i10] + (src[i11] - src[i10]) * dx;
      dst[t] = top + (bot - top) * dy;
    }
  }
}

__global__ void AdamKernel(float* var, float* m, float* v, const float* g, long long n, float lr, float b1, float b2,
                           float eps, float b1p, float b2p) {
  GRID_LOOP(i, n) {
    const float gi = g[i];
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    var[i] -= lr * (mi / (1.f - b1p)) / (sqrtf(vi / (1.f - b2p)) + eps);
  }
}

__global__ void RmsPropKernel(float* var, float* ms, float* mom, float* mg, const float* g, long long n, float lr,
                              float decay, float momentum, float eps) {
  GRID_LOOP(i, n) {
    const float gi = g[i];
    const float msi = decay * ms[i] + (1.f - decay) * gi * gi;
    ms[i] = msi;
    float denom = msi + eps;
    if (mg != nullptr) {
      const float mgi = decay * mg[i] + (1.f - decay) * gi;
      mg[i] = mgi;
      denom = msi - mgi * mgi + eps;
    }
    const float mo = momentum * mom[i] + lr * gi / sqrtf(denom);
    mom[i] = mo;
    var[i] -= mo;
  }
}

long long Count(const Strided& s) {
  long long n = 1;
  for (int d = 0; d < s.rank; ++d) n *= s.shape[d];
  return n;
}

}  // namespace

cudaError_t Unary(int op, const float* x, float* y, long long n, float a, float b, cudaStream_t stream) {
  if (n > 0) UnaryKernel<<<Blocks(n), kThreads, 0, stream>>>(op, x, y, n, a, b);
  return cudaGetLastError();
}

cudaError_t Binary(int op, const float* a, const Strided& av, const float* b, const Strided& bv, void* out,
                   const Strided& shape, cudaStream_t stream) {
  const long long n = Count(shape);
  if (n == 0) return cudaGetLastError();
  if (op >= kBinaryArithCount) {
    CompareKernel<<<Blocks(n), kThreads, 0, stream>>>(op, a, av, b, bv, static_cast<uint8_t*>(out), shape, n);
    return cudaGetLastError();
  }
  bool flat = av.offset == 0 && bv.offset == 0;
  long long expect = 1;
  for (int d = shape.rank - 1; d >= 0 && flat; --d) {
    flat = av.strides[d] == expect && bv.strides[d] == expect;
    expect *= shape.shape[d];
  }
  if (flat) BinaryFlatKernel<<<Blocks(n), kThreads, 0, stream>>>(op, a, b, static_cast<float*>(out), n);
  else BinaryKernel<<<Blocks(n), kThreads, 0, stream>>>(op, a, av, b, bv, static_cast<float*>(out), shape, n);
  return cudaGetLastError();
}

cudaError_t Copy(int elemSize, const void* src, const Strided& sv, void* dst, const Strided& dv, cudaStream_t stream) {
  const long long n = Count(dv);
  if (n == 0) return cudaGetLastError();
  if (elemSize == 4) CopyKernel<<<Blocks(n), kThreads, 0, stream>>>(static_cast<const float*>(src), sv, static_cast<float*>(dst), dv, n);
  else CopyKernel<<<Blocks(n), kThreads, 0, stream>>>(static_cast<const uint8_t*>(src), sv, static_cast<uint8_t*>(dst), dv, n);
  return cudaGetLastError();
}

cudaError_t Fill(void* dst, long long n, int elemSize, uint32_t bits, cudaStream_t stream) {
  if (n == 0) return cudaGetLastError();
  if (elemSize == 4) FillKernel<<<Blocks(n), kThreads, 0, stream>>>(static_cast<uint32_t*>(dst), n, bits);
  else FillKernel<<<Blocks(n), kThreads, 0, stream>>>(static_cast<uint8_t*>(dst), n, static_cast<uint8_t>(bits));
  return cudaGetLastError();
}

cudaError_t Select(const uint8_t* cond, const Strided& cv, const float* a, const Strided& av, const float* b,
                   const Strided& bv, float* out, const Strided& shape, cudaStream_t stream) {
  const long long n = Count(shape);
  if (n > 0) SelectKernel<<<Blocks(n), kThreads, 0, stream>>>(cond, cv, a, av, b, bv, out, shape, n);
  return cudaGetLastError();
}

cudaError_t Cast(int from, int to, const void* src, void* dst, long long n, cudaStream_t stream) {
  if (n == 0) return cudaGetLastError();
  const unsigned g = Blocks(n);
  if (from == to) return cudaMemcpyAsync(dst, src, n * (from == kBool ? 1 : 4), cudaMemcpyDeviceToDevice, stream);
  if (from == kFloat32 && to == kInt32) FloatToIntKernel<<<g, kThreads, 0, stream>>>(static_cast<const float*>(src), static_cast<int32_t*>(dst), n);
  else if (from == kFloat32 && to == kBool) CastToBoolKernel<<<g, kThreads, 0, stream>>>(static_cast<const float*>(src), static_cast<uint8_t*>(dst), n);
  else if (from == kInt32 && to == kFloat32) CastKernel<<<g, kThreads, 0, stream>>>(static_cast<const int32_t*>(src), static_cast<float*>(dst), n);
  else if (from == kInt32 && to == kBool) CastIntToBoolKernel<<<g, kThreads, 0, stream>>>(static_cast<const int32_t*>(src), static_cast<uint8_t*>(dst), n);
  else if (from == kBool && to == kFloat32) CastKernel<<<g, kThreads, 0, stream>>>(static_cast<const uint8_t*>(src), static_cast<float*>(dst), n);
  else if (from == kBool && to == kInt32) CastKernel<<<g, kThreads, 0, stream>>>(static_cast<const uint8_t*>(src), static_cast<int32_t*>(dst), n);
  else return cudaErrorInvalidValue;
  return cudaGetLastError();
}

long long ReduceScratchBytes(int op, long long outer, long long reduced, long long inner) {
  if (!TwoPass(op, outer, reduced, inner)) return 0;
  return outer * Chunks(reduced) * inner * static_cast<long long>(sizeof(float));
}

cudaError_t Reduce(int op, const void* x, void* out, long long outer, long long reduced, long long inner, void* scratch,
                   cudaStream_t stream) {
  const bool bytes = op == kAny || op == kAll;
  const float scale = reduced > 0 ? 1.f / static_cast<float>(reduced) : 0.f;
  if (outer * inner == 0) return cudaGetLastError();
  if (TwoPass(op, outer, reduced, inner)) {
    const long long chunks = Chunks(reduced);
    const long long chunk = (reduced + chunks - 1) / chunks;
    float* part = static_cast<float*>(scratch);
    ReducePartialKernel<<<Blocks(outer * chunks * inner), kThreads, 0, stream>>>(op, x, bytes, part, outer, reduced,
                                                                                inner, chunk, chunks);
    // Second pass over the float partials; Mean sums them and scales by the full count.
    const int op2 = op == kMean ? kMean : op;
    const float scale2 = op == kMean ? scale : 1.f;
    if (op == kAny || op == kAll) {
      // Partials hold 0/1 as floats: reduce as Max / Min, then store as bytes.
      ReduceColumnsKernel<<<Blocks(outer * inner), kThreads, 0, stream>>>(op, part, false, out, outer, chunks, inner, 1.f);
    } else {
      ReduceColumnsKernel<<<Blocks(outer * inner), kThreads, 0, stream>>>(op2, part, false, out, outer, chunks, inner, scale2);
    }
    return cudaGetLastError();
  }
  if (inner == 1 && reduced >= 64) {
    ReduceRowsKernel<<<static_cast<unsigned>(outer), kThreads, 0, stream>>>(op, x, bytes, out, reduced, scale);
  } else {
    ReduceColumnsKernel<<<Blocks(outer * inner), kThreads, 0, stream>>>(op, x, bytes, out, outer, reduced, inner, scale);
  }
  return cudaGetLastError();
}

cudaError_t Gather(int elemSize, const void* x, const int32_t* idx, void* out, long long outer, long long axisDim,
                   long long inner, long long nIdx, cudaStream_t stream) {
  const long long n = outer * nIdx * inner;
  if (n == 0) return cudaGetLastError();
  if (elemSize == 4) GatherKernel4<<<Blocks(n), kThreads, 0, stream>>>(static_cast<const float*>(x), idx, static_cast<float*>(out), outer, axisDim, inner, nIdx);
  else GatherKernel1<<<Blocks(n), kThreads, 0, stream>>>(static_cast<const uint8_t*>(x), idx, static_cast<uint8_t*>(out), outer, axisDim, inner, nIdx);
  return cudaGetLastError();
}

cudaError_t BatchNorm(const float* x, const float* mean, int meanLen, const float* var, int varLen, const float* offset,
                      int offsetLen, const float* scale, int scaleLen, float* y, long long n, int C, float eps,
                      cudaStream_t stream) {
  if (n > 0) {
    BatchNormKernel<<<Blocks(n), kThreads, 0, stream>>>(x, mean, meanLen, var, varLen, offset, offsetLen, scale, scaleLen, y, n, C, eps);
  }
  return cudaGetLastError();
}

cudaError_t Resize(int mode, int grad, const float* src, float* dst, int N, int ih, int iw, int oh, int ow, int C,
                   int alignCorners, int halfPixel, cudaStream_t stream) {
  const float sy = (alignCorners && oh > 1) ? static_cast<float>(ih - 1) / (oh - 1) : static_cast<float>(ih) / oh;
  const float sx = (alignCorners && ow > 1) ? static_cast<float>(iw - 1) / (ow - 1) : static_cast<float>(iw) / ow;
  const long long n = static_cast<long long>(N) * oh * ow * C;
  if (grad) {
    cudaError_t e = cudaMemsetAsync(dst, 0, static_cast<size_t>(N) * ih * iw * C * sizeof(float), stream);
    if (e != cudaSuccess) return e;
  }
  if (n == 0) return cudaGetLastError();
  if (mode == 0) ResizeNearestKernel<<<Blocks(n), kThreads, 0, stream>>>(grad, src, dst, N, ih, iw, oh, ow, C, sy, sx, alignCorners, halfPixel);
  else ResizeBilinearKernel<<<Blocks(n), kThreads, 0, stream>>>(grad, src, dst, N, ih, iw, oh, ow, C, sy, sx, halfPixel);
  return cudaGetLastError();
}

cudaError_t Adam(float* var, float* m, float* v, const float* g, long long n, float lr, float beta1, float beta2,
                 float eps, float beta1Power, float beta2Power, cudaStream_t stream) {
  if (n > 0) AdamKernel<<<Blocks(n), kThreads, 0, stream>>>(var, m, v, g, n, lr, beta1, beta2, eps, beta1Power, beta2Power);
  return cudaGetLastError();
}

cudaError_t RmsProp(float* var, float* ms, float* mom, float* mg, const float* g, long long n, float lr, float decay,
                    float momentum, float eps, cudaStream_t stream) {
  if (n > 0) RmsPropKernel<<<Blocks(n), kThreads, 0, stream>>>(var, ms, mom, mg, g, n, lr, decay, momentum, eps);
  return cudaGetLastError();
}

}  // namespace proggan_cuda
