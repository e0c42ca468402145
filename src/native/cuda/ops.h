// The op-code tables shared by the CUDA kernels (kernels.cu) and the N-API glue (addon.cc).
// src/backend/cuda-ops.ts holds the same names in the same order; the addon exports the lists
// (unaryOps(), binaryOps(), reduceOps()) and a test checks they match.
#pragma once

// X(name, expression of float x, float a (alpha), float b (beta))
#define PROGGAN_CUDA_UNARY_OPS(X)                                  \
  X(Identity, x)                                                   \
  X(Neg, -x)                                                       \
  X(Abs, fabsf(x))                                                 \
  X(Exp, expf(x))                                                  \
  X(Expm1, expm1f(x))                                              \
  X(Log, logf(x))                                                  \
  X(Log1p, log1pf(x))                                              \
  X(Sqrt, sqrtf(x))                                                \
  X(Rsqrt, rsqrtf(x))                                              \
  X(Square, x * x)                                                 \
  X(Reciprocal, 1.0f / x)                                          \
  X(Relu, x > 0.f ? x : 0.f)                                       \
  X(Relu6, fminf(fmaxf(x, 0.f), 6.f))                              \
  X(LeakyRelu, x < 0.f ? a * x : x)                                \
  X(Elu, x < 0.f ? expm1f(x) : x)                                  \
  X(Selu, x < 0.f ? 1.7580993408473768f * expm1f(x) : 1.0507009873554805f * x) \
  X(Sigmoid, 1.0f / (1.0f + expf(-x)))                             \
  X(Softplus, x > 20.f ? x : (x < -20.f ? expf(x) : log1pf(expf(x)))) \
  X(Tanh, tanhf(x))                                                \
  X(Sin, sinf(x))                                                  \
  X(Cos, cosf(x))                                                  \
  X(Sign, x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f))                  \
  X(Floor, floorf(x))                                              \
  X(Ceil, ceilf(x))                                                \
  X(Round, rintf(x))                                               \
  X(Erf, erff(x))                                                  \
  X(Step, x > 0.f ? 1.f : (x != x ? x : a))                        \
  X(ClipByValue, fminf(fmaxf(x, a), b))                            \
  X(Scale, a * x + b)

// X(name, expression of float x, float y); results are float32. EluGrad: x = dy, y = elu output.
#define PROGGAN_CUDA_BINARY_OPS(X)                                 \
  X(Add, x + y)                                                    \
  X(Sub, x - y)                                                    \
  X(Mul, x * y)                                                    \
  X(RealDiv, x / y)                                                \
  X(Maximum, fmaxf(x, y))                                          \
  X(Minimum, fminf(x, y))                                          \
  X(Pow, powf(x, y))                                               \
  X(SquaredDifference, (x - y) * (x - y))                          \
  X(FloorDiv, floorf(x / y))                                       \
  X(Mod, fmodf(fmodf(x, y) + y, y))                                \
  X(Atan2, atan2f(x, y))                                           \
  X(DivNoNan, y == 0.f ? 0.f : x / y)                              \
  X(Prelu, x < 0.f ? x * y : x)                                   \
  X(EluGrad, y >= 0.f ? x : x * (y + 1.f))

// X(name, boolean expression of float x, float y); results are uint8 (tfjs bool).
#define PROGGAN_CUDA_COMPARE_OPS(X)                                \
  X(Equal, x == y)                                                 \
  X(NotEqual, x != y)                                              \
  X(Less, x < y)                                                   \
  X(LessEqual, x <= y)                                             \
  X(Greater, x > y)                                                \
  X(GreaterEqual, x >= y)                                          \
  X(LogicalAnd, (x != 0.f) && (y != 0.f))                          \
  X(LogicalOr, (x != 0.f) || (y != 0.f))

#define PROGGAN_CUDA_REDUCE_OPS(X) X(Sum) X(Mean) X(Max) X(Min) X(Prod) X(ArgMax) X(ArgMin) X(Any) X(All)

namespace proggan_cuda {

#define PROGGAN_ENUM_ENTRY(name, ...) k##name,
enum UnaryOp { PROGGAN_CUDA_UNARY_OPS(PROGGAN_ENUM_ENTRY) kUnaryCount };
// Compare ops follow the arithmetic ones in one numbering (ids >= kBinaryArithCount give bool).
enum BinaryOp { PROGGAN_CUDA_BINARY_OPS(PROGGAN_ENUM_ENTRY) kBinaryArithCount, kCompareBase = kBinaryArithCount - 1,
                PROGGAN_CUDA_COMPARE_OPS(PROGGAN_ENUM_ENTRY) kBinaryCount };
enum ReduceOp { PROGGAN_CUDA_REDUCE_OPS(PROGGAN_ENUM_ENTRY) kReduceCount };
#undef PROGGAN_ENUM_ENTRY

/** Most dimensions a strided kernel (binary, copy) accepts; callers merge or fall back above it. */
constexpr int kMaxRank = 8;

/** Shape and element strides of an up-to-kMaxRank strided view, passed by value to kernels. */
struct Strided {
  int rank;
  long long shape[kMaxRank];
  long long strides[kMaxRank];
  long long offset;
};

}  // namespace proggan_cuda
