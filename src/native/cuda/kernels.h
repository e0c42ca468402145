// Host entry points of the CUDA kernels in kernels.cu. Every function enqueues on `stream` and
// returns the launch status (cudaGetLastError) without synchronising.
#pragma once

#include <cstdint>
#include <cuda_runtime_api.h>

#include "ops.h"

namespace proggan_cuda {

/** Element types on the device: tfjs float32, int32 and bool (one byte). */
enum DType { kFloat32 = 0, kInt32 = 1, kBool = 2 };

cudaError_t Unary(int op, const float* x, float* y, long long n, float a, float b, cudaStream_t stream);
/** out (contiguous, shape of `out`) = op(a viewed through `av`, b viewed through `bv`); bool ops write uint8. */
cudaError_t Binary(int op, const float* a, const Strided& av, const float* b, const Strided& bv, void* out,
                   const Strided& outShape, cudaStream_t stream);
/** dst viewed through `dv` = src viewed through `sv` (same shape); elemSize 1 or 4. */
cudaError_t Copy(int elemSize, const void* src, const Strided& sv, void* dst, const Strided& dv, cudaStream_t stream);
cudaError_t Fill(void* dst, long long n, int elemSize, uint32_t bits, cudaStream_t stream);
/** out = cond ? a : b, each viewed through its own strides over the output shape. */
cudaError_t Select(const uint8_t* cond, const Strided& cv, const float* a, const Strided& av, const float* b,
                   const Strided& bv, float* out, const Strided& outShape, cudaStream_t stream);
cudaError_t Cast(int from, int to, const void* src, void* dst, long long n, cudaStream_t stream);
/**
 * Reduces x viewed as [outer, reduced, inner] over the middle axis into out [outer, inner]
 * (float32; int32 for ArgMax/ArgMin; uint8 for Any/All, whose input is uint8). `scratch` holds at
 * least ReduceScratchBytes(...) bytes.
 */
cudaError_t Reduce(int op, const void* x, void* out, long long outer, long long reduced, long long inner, void* scratch,
                   cudaStream_t stream);
long long ReduceScratchBytes(int op, long long outer, long long reduced, long long inner);
/** out[o, j, i] = x[o, idx[j], i] for x [outer, axisDim, inner]; out-of-range indices give 0. */
cudaError_t Gather(int elemSize, const void* x, const int32_t* idx, void* out, long long outer, long long axisDim,
                   long long inner, long long nIdx, cudaStream_t stream);
/** y = (x - mean) * rsqrt(var + eps) * scale + offset over the last axis of length C; *Len is 1 or C (0 = absent). */
cudaError_t BatchNorm(const float* x, const float* mean, int meanLen, const float* var, int varLen, const float* offset,
                      int offsetLen, const float* scale, int scaleLen, float* y, long long n, int C, float eps,
                      cudaStream_t stream);
/**
 * NHWC resize. mode 0 nearest, 1 bilinear; grad 0: y [N,oh,ow,C] from x [N,ih,iw,C];
 * grad 1: dx [N,ih,iw,C] from dy [N,oh,ow,C] (dx is zeroed here, then accumulated atomically).
 */
cudaError_t Resize(int mode, int grad, const float* src, float* dst, int N, int ih, int iw, int oh, int ow, int C,
                   int alignCorners, int halfPixel, cudaStream_t stream);
/** Adam (tfjs formula): m, v, var updated in place from g. */
cudaError_t Adam(float* var, float* m, float* v, const float* g, long long n, float lr, float beta1, float beta2,
                 float eps, float beta1Power, float beta2Power, cudaStream_t stream);
/** RMSprop (tfjs formula, non-centered when mg is null): ms, mom, var updated in place from g. */
cudaError_t RmsProp(float* var, float* ms, float* mom, float* mg, const float* g, long long n, float lr, float decay,
                    float momentum, float eps, cudaStream_t stream);

}  // namespace proggan_cuda
