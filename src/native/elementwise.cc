// Memory-bound kernels for the tfjs 'native' backend. Shapes arrive pre-digested from native.ts
// (broadcasts collapsed to at most 6 dims with element strides, reductions as
// [outer, reduced, inner]), so the loops here stay simple and vectorisable.
#include "elementwise.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace proggan {

namespace {

int g_threads = 1;

// Below this many elements a loop runs on one thread (fork/join costs more than it saves).
constexpr int64_t kParallelMin = 1 << 15;

int ThreadsFor(int64_t n) { return n >= kParallelMin ? std::max(1, g_threads) : 1; }

template <typename T>
T* Data(const Napi::Value& v, napi_typedarray_type type) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    throw Napi::TypeError::New(v.Env(), "unexpected typed array type");
  }
  auto ta = v.As<Napi::TypedArray>();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

float* F32(const Napi::Value& v) { return Data<float>(v, napi_float32_array); }
uint8_t* U8(const Napi::Value& v) { return Data<uint8_t>(v, napi_uint8_array); }

int64_t Length(const Napi::Value& v) { return static_cast<int64_t>(v.As<Napi::TypedArray>().ElementLength()); }

std::vector<int64_t> Ints(const Napi::Value& v) {
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int64_t>(a.Data(), a.Data() + a.ElementLength());
}

int32_t Int(const Napi::Value& v) { return v.As<Napi::Number>().Int32Value(); }
double Num(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }

// ---------------------------------------------------------------------------------------------
// Unary ops. Codes shared with native.ts.

enum Unary {
  kRelu = 0, kLeakyRelu = 1, kSquare = 2, kSqrt = 3, kRsqrt = 4, kNeg = 5, kExp = 6, kLog = 7,
  kAbs = 8, kTanh = 9, kSigmoid = 10, kElu = 11, kRelu6 = 12, kReciprocal = 13, kStep = 14, kFloor = 15
};

template <typename F>
void Map(const float* x, float* y, int64_t n, F f) {
#pragma omp parallel for simd num_threads(ThreadsFor(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

void UnaryOp(const Napi::CallbackInfo& info) {
  const int op = Int(info[0]);
  const float* x = F32(info[1]);
  float* y = F32(info[2]);
  const float a = static_cast<float>(Num(info[3]));
  const int64_t n = Length(info[1]);
  switch (op) {
    case kRelu: Map(x, y, n, [](float v) { return v < 0.f ? 0.f : v; }); break;
    // Branch-free (random signs would mispredict): v for v >= 0, a * v below.
    case kLeakyRelu: Map(x, y, n, [a](float v) { return std::max(v, 0.f) + a * std::min(v, 0.f); }); break;
    case kSquare: Map(x, y, n, [](float v) { return v * v; }); break;
    case kSqrt: Map(x, y, n, [](float v) { return std::sqrt(v); }); break;
    case kRsqrt: Map(x, y, n, [](float v) { return 1.f / std::sqrt(v); }); break;
    case kNeg: Map(x, y, n, [](float v) { return -v; }); break;
    case kExp: Map(x, y, n, [](float v) { return std::exp(v); }); break;
    case kLog: Map(x, y, n, [](float v) { return std::log(v); }); break;
    case kAbs: Map(x, y, n, [](float v) { return std::fabs(v); }); break;
    case kTanh: Map(x, y, n, [](float v) { return std::tanh(v); }); break;
    case kSigmoid: Map(x, y, n, [](float v) { return 1.f / (1.f + std::exp(-v)); }); break;
    case kElu: Map(x, y, n, [](float v) { return v >= 0.f ? v : std::exp(v) - 1.f; }); break;
    case kRelu6: Map(x, y, n, [](float v) { return std::min(std::max(v, 0.f), 6.f); }); break;
    case kReciprocal: Map(x, y, n, [](float v) { return 1.f / v; }); break;
    // tfjs Step: 1 above zero, alpha elsewhere, NaN stays NaN.
    case kStep: Map(x, y, n, [a](float v) { return std::isnan(v) ? v : v > 0.f ? 1.f : a; }); break;
    case kFloor: Map(x, y, n, [](float v) { return std::floor(v); }); break;
    default: throw Napi::Error::New(info.Env(), "unknown unary op");
  }
}

// ---------------------------------------------------------------------------------------------
// Broadcast binary ops over an output of shape dims (rank <= 6) with per-operand element
// strides (0 along broadcast dims). The last dim is the contiguous inner loop.

enum Binary {
  kAdd = 0, kSub = 1, kMul = 2, kDiv = 3, kMax = 4, kMin = 5, kSqDiff = 6, kPow = 7,
  kGreater = 16, kGreaterEqual = 17, kLess = 18, kLessEqual = 19, kEqual = 20, kNotEqual = 21
};

struct Bcast {
  int rank = 0;
  int64_t dims[6] = {1, 1, 1, 1, 1, 1};
  int64_t sa[6] = {0, 0, 0, 0, 0, 0};
  int64_t sb[6] = {0, 0, 0, 0, 0, 0};
};

template <typename Out, typename F>
void BinaryLoop(const Bcast& g, const float* a, const float* b, Out* out, F f) {
  const int r = g.rank;
  const int64_t inner = g.dims[r - 1];
  const int64_t ia = g.sa[r - 1], ib = g.sb[r - 1];
  int64_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= g.dims[d];
#pragma omp parallel for num_threads(ThreadsFor(rows * inner)) schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t rem = row, oa = 0, ob = 0;
    for (int d = r - 2; d >= 0; --d) {
      const int64_t idx = rem % g.dims[d];
      rem /= g.dims[d];
      oa += idx * g.sa[d];
      ob += idx * g.sb[d];
    }
    const float* pa = a + oa;
    const float* pb = b + ob;
    Out* po = out + row * inner;
    if (ia == 1 && ib == 1) {
      for (int64_t i = 0; i < inner; ++i) po[i] = f(pa[i], pb[i]);
    } else if (ia == 1 && ib == 0) {
      const float vb = *pb;
      for (int64_t i = 0; i < inner; ++i) po[i] = f(pa[i], vb);
    } else if (ia == 0 && ib == 1) {
      const float va = *pa;
      for (int64_t i = 0; i < inner; ++i) po[i] = f(va, pb[i]);
    } else {
      for (int64_t i = 0; i < inner; ++i) po[i] = f(pa[i * ia], pb[i * ib]);
    }
  }
}

Bcast ReadBcast(const Napi::CallbackInfo& info, int at) {
  Bcast g;
  const auto dims = Ints(info[at]);
  const auto sa = Ints(info[at + 1]);
  const auto sb = Ints(info[at + 2]);
  if (dims.empty() || dims.size() > 6 || sa.size() != dims.size() || sb.size() != dims.size()) {
    throw Napi::RangeError::New(info.Env(), "broadcast rank must be 1..6");
  }
  g.rank = static_cast<int>(dims.size());
  for (int d = 0; d < g.rank; ++d) {
    g.dims[d] = dims[d];
    g.sa[d] = sa[d];
    g.sb[d] = sb[d];
  }
  return g;
}

// binary(op, a, b, out, dims, aStrides, bStrides): out is a Float32Array (arithmetic ops) or a
// Uint8Array (comparisons, tfjs's bool storage).
void BinaryOp(const Napi::CallbackInfo& info) {
  const int op = Int(info[0]);
  const float* a = F32(info[1]);
  const float* b = F32(info[2]);
  const Bcast g = ReadBcast(info, 4);
  if (op < 16) {
    float* o = F32(info[3]);
    switch (op) {
      case kAdd: BinaryLoop(g, a, b, o, [](float x, float y) { return x + y; }); break;
      case kSub: BinaryLoop(g, a, b, o, [](float x, float y) { return x - y; }); break;
      case kMul: BinaryLoop(g, a, b, o, [](float x, float y) { return x * y; }); break;
      case kDiv: BinaryLoop(g, a, b, o, [](float x, float y) { return x / y; }); break;
      case kMax: BinaryLoop(g, a, b, o, [](float x, float y) { return std::isnan(x) || x > y ? x : y; }); break;
      case kMin: BinaryLoop(g, a, b, o, [](float x, float y) { return std::isnan(x) || x < y ? x : y; }); break;
      case kSqDiff: BinaryLoop(g, a, b, o, [](float x, float y) { return (x - y) * (x - y); }); break;
      case kPow: BinaryLoop(g, a, b, o, [](float x, float y) { return std::pow(x, y); }); break;
      default: throw Napi::Error::New(info.Env(), "unknown binary op");
    }
  } else {
    uint8_t* o = U8(info[3]);
    switch (op) {
      case kGreater: BinaryLoop(g, a, b, o, [](float x, float y) -> uint8_t { return x > y; }); break;
      case kGreaterEqual: BinaryLoop(g, a, b, o, [](float x, float y) -> uint8_t { return x >= y; }); break;
      case kLess: BinaryLoop(g, a, b, o, [](float x, float y) -> uint8_t { return x < y; }); break;
      case kLessEqual: BinaryLoop(g, a, b, o, [](float x, float y) -> uint8_t { return x <= y; }); break;
      case kEqual: BinaryLoop(g, a, b, o, [](float x, float y) -> uint8_t { return x == y; }); break;
      case kNotEqual: BinaryLoop(g, a, b, o, [](float x, float y) -> uint8_t { return x != y; }); break;
      default: throw Napi::Error::New(info.Env(), "unknown comparison op");
    }
  }
}

// select(cond u8, t, e, out): out = cond ? t : e, all the same length.
void SelectOp(const Napi::CallbackInfo& info) {
  const uint8_t* c = U8(info[0]);
  const float* t = F32(info[1]);
  const float* e = F32(info[2]);
  float* o = F32(info[3]);
  const int64_t n = Length(info[3]);
  // Bitwise blend instead of a branch (random masks would mispredict); exact for every value.
  const uint32_t* tb = reinterpret_cast<const uint32_t*>(t);
  const uint32_t* eb = reinterpret_cast<const uint32_t*>(e);
  uint32_t* ob = reinterpret_cast<uint32_t*>(o);
#pragma omp parallel for simd num_threads(ThreadsFor(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t mask = 0u - static_cast<uint32_t>(c[i] != 0);
    ob[i] = (tb[i] & mask) | (eb[i] & ~mask);
  }
}

// ---------------------------------------------------------------------------------------------
// Reductions of x viewed as [outer, reduced, inner] into out [outer, inner]. Sums accumulate in
// double (tfjs's cpu backend sums in JS doubles).

enum Reduce { kSum = 0, kMean = 1, kRMax = 2, kRMin = 3 };

void ReduceOp(const Napi::CallbackInfo& info) {
  const int op = Int(info[0]);
  const float* x = F32(info[1]);
  float* out = F32(info[2]);
  const int64_t outer = Int(info[3]), reduced = Int(info[4]), inner = Int(info[5]);
  const int64_t total = outer * reduced * inner;
  if (op == kSum || op == kMean) {
    const double scale = op == kMean ? 1.0 / static_cast<double>(reduced) : 1.0;
    if (inner == 1) {
      // Contiguous rows: 16 float lanes over blocks of 1024 values (vectorises), block sums
      // accumulated in double, so long reductions keep double-like accuracy.
#pragma omp parallel for num_threads(ThreadsFor(total)) schedule(static)
      for (int64_t o = 0; o < outer; ++o) {
        const float* p = x + o * reduced;
        double sum = 0;
        for (int64_t j0 = 0; j0 < reduced; j0 += 1024) {
          const int64_t end = std::min<int64_t>(reduced, j0 + 1024);
          float acc[16] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
          int64_t j = j0;
          for (; j + 16 <= end; j += 16) {
            for (int l = 0; l < 16; ++l) acc[l] += p[j + l];
          }
          float block = 0.f;
          for (int l = 0; l < 16; ++l) block += acc[l];
          for (; j < end; ++j) block += p[j];
          sum += block;
        }
        out[o] = static_cast<float>(sum * scale);
      }
      return;
    }
    const int nt = ThreadsFor(total);
    if (outer >= 4 * static_cast<int64_t>(nt)) {
      // Many independent outputs (e.g. the gradient of a broadcast along a middle axis: outer in
      // the hundred thousands, reduced and inner small): one thread per block of outer rows.
#pragma omp parallel num_threads(nt)
      {
        std::vector<double> a(static_cast<size_t>(inner));
#pragma omp for schedule(static)
        for (int64_t o = 0; o < outer; ++o) {
          std::fill(a.begin(), a.end(), 0.0);
          const float* p0 = x + o * reduced * inner;
          for (int64_t j = 0; j < reduced; ++j) {
            const float* p = p0 + j * inner;
            for (int64_t i = 0; i < inner; ++i) a[i] += p[i];
          }
          float* po = out + o * inner;
          for (int64_t i = 0; i < inner; ++i) po[i] = static_cast<float>(a[i] * scale);
        }
      }
      return;
    }
    // Few outputs: rows of `inner` values are added into per-thread double accumulators, then combined.

    std::vector<double> acc(static_cast<size_t>(nt) * inner);
    for (int64_t o = 0; o < outer; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
#pragma omp parallel num_threads(nt)
      {
        const int t = omp_get_thread_num();
        double* a = acc.data() + static_cast<size_t>(t) * inner;
#pragma omp for schedule(static)
        for (int64_t j = 0; j < reduced; ++j) {
          const float* p = x + (o * reduced + j) * inner;
          for (int64_t i = 0; i < inner; ++i) a[i] += p[i];
        }
      }
      for (int64_t i = 0; i < inner; ++i) {
        double s = 0;
        for (int t = 0; t < nt; ++t) s += acc[static_cast<size_t>(t) * inner + i];
        out[o * inner + i] = static_cast<float>(s * scale);
      }
    }
    return;
  }
  const bool is_max = op == kRMax;
#pragma omp parallel for num_threads(ThreadsFor(total)) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    float* po = out + o * inner;
    const float* p0 = x + o * reduced * inner;
    for (int64_t i = 0; i < inner; ++i) po[i] = p0[i];
    for (int64_t j = 1; j < reduced; ++j) {
      const float* p = p0 + j * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const float v = p[i];
        if (std::isnan(v) || (is_max ? v > po[i] : v < po[i])) po[i] = v;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Batch norm inference formula: out = (x - mean) * scale / sqrt(var + eps) + offset over rows of
// `channels` values. Each parameter's mode: 0 per channel ([C]), 1 full (x's shape), 2 scalar;
// offset/scale may be null (0 / 1).

void BatchNormOp(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  const float* mean = F32(info[1]);
  const float* var = F32(info[2]);
  const float* offset = info[3].IsNull() ? nullptr : F32(info[3]);
  const float* scale = info[4].IsNull() ? nullptr : F32(info[4]);
  float* out = F32(info[5]);
  const int64_t rows = Int(info[6]), ch = Int(info[7]);
  const float eps = static_cast<float>(Num(info[8]));
  const int mm = Int(info[9]), vm = Int(info[10]), om = Int(info[11]), sm = Int(info[12]);
  auto at = [ch](const float* p, int mode, int64_t r, int64_t c) {
    return mode == 0 ? p[c] : mode == 1 ? p[r * ch + c] : p[0];
  };
  if (mm != 1 && vm != 1 && om != 1 && sm != 1) {
    // Fold everything into one multiply-add per element.
    std::vector<float> mul(ch), add(ch);
    for (int64_t c = 0; c < ch; ++c) {
      const float inv = 1.f / std::sqrt(at(var, vm, 0, c) + eps);
      const float s = scale ? at(scale, sm, 0, c) : 1.f;
      const float o = offset ? at(offset, om, 0, c) : 0.f;
      mul[c] = s * inv;
      add[c] = o - at(mean, mm, 0, c) * s * inv;
    }
    const float* pm = mul.data();
    const float* pa = add.data();
#pragma omp parallel for num_threads(ThreadsFor(rows * ch)) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* px = x + r * ch;
      float* po = out + r * ch;
      for (int64_t c = 0; c < ch; ++c) po[c] = px[c] * pm[c] + pa[c];
    }
    return;
  }
#pragma omp parallel for num_threads(ThreadsFor(rows * ch)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < ch; ++c) {
      const float inv = 1.f / std::sqrt(at(var, vm, r, c) + eps);
      const float s = scale ? at(scale, sm, r, c) : 1.f;
      const float o = offset ? at(offset, om, r, c) : 0.f;
      out[r * ch + c] = (x[r * ch + c] - at(mean, mm, r, c)) * inv * s + o;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Tile: out[i0..ir] = x[i0 % d0, ..., ir % dr] for out dims = x dims * reps.

void TileOp(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  float* out = F32(info[1]);
  const auto dims = Ints(info[2]);
  const auto reps = Ints(info[3]);
  const int r = static_cast<int>(dims.size());
  std::vector<int64_t> od(r), xs(r, 1);
  for (int d = 0; d < r; ++d) od[d] = dims[d] * reps[d];
  for (int d = r - 2; d >= 0; --d) xs[d] = xs[d + 1] * dims[d + 1];
  const int64_t in_row = dims[r - 1], out_row = od[r - 1];
  int64_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= od[d];
#pragma omp parallel for num_threads(ThreadsFor(rows * out_row)) schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t rem = row, off = 0;
    for (int d = r - 2; d >= 0; --d) {
      const int64_t idx = rem % od[d];
      rem /= od[d];
      off += (idx % dims[d]) * xs[d];
    }
    float* po = out + row * out_row;
    for (int64_t k = 0; k < reps[r - 1]; ++k) std::memcpy(po + k * in_row, x + off, in_row * sizeof(float));
  }
}

// ---------------------------------------------------------------------------------------------
// Constant padding and strided slices: both copy rows of the innermost dim between a tensor and a
// box inside a larger one. native.ts merges trailing dims that are taken whole, so rows are long.

// Offset in the big tensor (dims `big`, row-major) of row `row` of the box (dims `box`, placed at
// `at`), the row being along the last dim.
inline int64_t BoxRowOffset(int64_t row, const std::vector<int64_t>& box, const std::vector<int64_t>& at,
                            const std::vector<int64_t>& big_strides) {
  const int r = static_cast<int>(box.size());
  int64_t rem = row, off = at[r - 1];
  for (int d = r - 2; d >= 0; --d) {
    const int64_t idx = rem % box[d];
    rem /= box[d];
    off += (idx + at[d]) * big_strides[d];
  }
  return off;
}

std::vector<int64_t> StridesOf(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int d = static_cast<int>(dims.size()) - 2; d >= 0; --d) s[d] = s[d + 1] * dims[d + 1];
  return s;
}

// pad(x, out, xDims, before, outDims, value): out = value everywhere, x copied in at `before`.
void PadOp(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  float* out = F32(info[1]);
  const auto xd = Ints(info[2]);
  const auto before = Ints(info[3]);
  const auto od = Ints(info[4]);
  const float value = static_cast<float>(Num(info[5]));
  const int r = static_cast<int>(xd.size());
  if (r == 0 || before.size() != xd.size() || od.size() != xd.size()) throw Napi::RangeError::New(info.Env(), "pad: bad dims");
  const int64_t n_out = Length(info[1]);
  const auto os = StridesOf(od);
  const int64_t row_len = xd[r - 1];
  int64_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= xd[d];
#pragma omp parallel num_threads(ThreadsFor(n_out))
  {
#pragma omp for simd schedule(static)
    for (int64_t i = 0; i < n_out; ++i) out[i] = value;
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      std::memcpy(out + BoxRowOffset(row, xd, before, os), x + row * row_len, static_cast<size_t>(row_len) * sizeof(float));
    }
  }
}

// slice(x, out, xDims, begin, size): out = x[begin : begin + size] (out contiguous).
void SliceOp(const Napi::CallbackInfo& info) {
  const float* x = F32(info[0]);
  float* out = F32(info[1]);
  const auto xd = Ints(info[2]);
  const auto begin = Ints(info[3]);
  const auto size = Ints(info[4]);
  const int r = static_cast<int>(xd.size());
  if (r == 0 || begin.size() != xd.size() || size.size() != xd.size()) throw Napi::RangeError::New(info.Env(), "slice: bad dims");
  const auto xs = StridesOf(xd);
  const int64_t row_len = size[r - 1];
  int64_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= size[d];
#pragma omp parallel for num_threads(ThreadsFor(rows * row_len)) schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    std::memcpy(out + row * row_len, x + BoxRowOffset(row, size, begin, xs), static_cast<size_t>(row_len) * sizeof(float));
  }
}

// ---------------------------------------------------------------------------------------------
// Nearest-neighbour resize of NHWC images with precomputed source maps rowMap[newH],
// colMap[newW]. Forward gathers; the gradient scatters dy back (exact adjoint of the forward).
// p = [N, H, W, C, newH, newW].

void ResizeNearestOp(const Napi::CallbackInfo& info) {
  const bool grad = info[0].As<Napi::Boolean>().Value();
  const float* src = F32(info[1]);
  float* dst = F32(info[2]);
  const auto p = Ints(info[3]);
  const int32_t* rows = info[4].As<Napi::Int32Array>().Data();
  const int32_t* cols = info[5].As<Napi::Int32Array>().Data();
  const int64_t n = p[0], h = p[1], w = p[2], c = p[3], nh = p[4], nw = p[5];
  if (!grad) {
#pragma omp parallel for collapse(2) num_threads(ThreadsFor(n * nh * nw * c)) schedule(static)
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t r = 0; r < nh; ++r) {
        const float* srow = src + (b * h + rows[r]) * w * c;
        float* drow = dst + (b * nh + r) * nw * c;
        for (int64_t q = 0; q < nw; ++q) std::memcpy(drow + q * c, srow + cols[q] * c, c * sizeof(float));
      }
    }
    return;
  }
  // src = dy [N, newH, newW, C], dst = dx [N, H, W, C] (zeroed by the caller). Parallel over
  // the batch only: several output rows may scatter into the same input row.
  std::memset(dst, 0, static_cast<size_t>(n * h * w * c) * sizeof(float));
#pragma omp parallel for num_threads(std::min<int64_t>(ThreadsFor(n * nh * nw * c), n)) schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t r = 0; r < nh; ++r) {
      const float* srow = src + (b * nh + r) * nw * c;
      float* drow = dst + (b * h + rows[r]) * w * c;
      for (int64_t q = 0; q < nw; ++q) {
        float* pd = drow + cols[q] * c;
        const float* ps = srow + q * c;
        for (int64_t k = 0; k < c; ++k) pd[k] += ps[k];
      }
    }
  }
}

template <void (*F)(const Napi::CallbackInfo&)>
Napi::Value Wrap(const Napi::CallbackInfo& info) {
  try {
    F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& err) {
    throw Napi::Error::New(info.Env(), std::string("proggan_native: ") + err.what());
  }
  return info.Env().Undefined();
}

}  // namespace

void SetElementwiseThreads(int n) { g_threads = n; }

void RegisterElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("unary", Napi::Function::New(env, Wrap<UnaryOp>));
  exports.Set("binary", Napi::Function::New(env, Wrap<BinaryOp>));
  exports.Set("select", Napi::Function::New(env, Wrap<SelectOp>));
  exports.Set("reduce", Napi::Function::New(env, Wrap<ReduceOp>));
  exports.Set("batchNorm", Napi::Function::New(env, Wrap<BatchNormOp>));
  exports.Set("tile", Napi::Function::New(env, Wrap<TileOp>));
  exports.Set("pad", Napi::Function::New(env, Wrap<PadOp>));
  exports.Set("slice", Napi::Function::New(env, Wrap<SliceOp>));
  exports.Set("resizeNearest", Napi::Function::New(env, Wrap<ResizeNearestOp>));
}

}  // namespace proggan
