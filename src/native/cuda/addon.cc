// proggan_cuda.node: the N-API side of the `cuda` tfjs backend (src/backend/cuda.ts).
//
// The CUDA runtime is linked statically, so this module loads on any Linux machine; without a
// driver or a GPU, probe() says so and init() throws. cuBLAS(Lt), cuDNN and NCCL are loaded at run
// time with dlopen by loadLibraries(dirs): each library is looked for in the given directories in
// order, then by its bare soname (LD_LIBRARY_PATH, the system's ld cache). The search order of the
// directories themselves is decided in TypeScript (src/backend/cuda-libs.ts).
//
// Device memory is plain cudaMalloc/cudaFree; the caching allocator is in TypeScript. Pointers
// cross to JS as numbers (exact: device addresses are below 2^53). Every kernel is started by
// launch(name, buffers, ints, floats) on one stream; download() synchronises.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <dlfcn.h>
#include <nccl.h>
#include <napi.h>

#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels.h"

namespace pc = proggan_cuda;

namespace {

#define PROGGAN_STR2(x) #x
#define PROGGAN_STR(x) PROGGAN_STR2(x)

// ---- run-time loaded libraries -------------------------------------------------------------
// One function pointer per used entry point, typed from the headers (decltype), resolved by the
// real symbol name after cublas_v2.h's macros (cublasCreate -> cublasCreate_v2).
#define CUBLAS_FNS(X) X(cublasCreate) X(cublasDestroy) X(cublasSetStream) X(cublasSetMathMode) \
  X(cublasSgemmStridedBatched) X(cublasGetVersion)
#define CUDNN_FNS(X) X(cudnnGetVersion) X(cudnnGetErrorString) X(cudnnCreate) X(cudnnDestroy) X(cudnnSetStream) \
  X(cudnnCreateTensorDescriptor) X(cudnnDestroyTensorDescriptor) X(cudnnSetTensorNdDescriptor)                 \
  X(cudnnCreateFilterDescriptor) X(cudnnDestroyFilterDescriptor) X(cudnnSetFilterNdDescriptor)                 \
  X(cudnnCreateConvolutionDescriptor) X(cudnnDestroyConvolutionDescriptor) X(cudnnSetConvolutionNdDescriptor)  \
  X(cudnnSetConvolutionMathType) X(cudnnFindConvolutionForwardAlgorithm)                                       \
  X(cudnnFindConvolutionBackwardDataAlgorithm) X(cudnnFindConvolutionBackwardFilterAlgorithm)                  \
  X(cudnnGetConvolutionForwardWorkspaceSize) X(cudnnGetConvolutionBackwardDataWorkspaceSize)                   \
  X(cudnnGetConvolutionBackwardFilterWorkspaceSize) X(cudnnConvolutionForward) X(cudnnConvolutionBackwardData) \
  X(cudnnConvolutionBackwardFilter) X(cudnnCreatePoolingDescriptor) X(cudnnDestroyPoolingDescriptor)           \
  X(cudnnSetPoolingNdDescriptor) X(cudnnPoolingForward) X(cudnnPoolingBackward)
#define NCCL_FNS(X) X(ncclGetVersion) X(ncclGetUniqueId) X(ncclCommInitRank) X(ncclAllReduce) X(ncclCommDestroy) \
  X(ncclGetErrorString)

struct Lib {
  void* handle = nullptr;
  std::string path;   // what was loaded
  std::string error;  // why not
};

#define DECLARE_PTR(name) decltype(&name) p_##name = nullptr;
struct CublasApi { CUBLAS_FNS(DECLARE_PTR) };
struct CudnnApi { CUDNN_FNS(DECLARE_PTR) };
struct NcclApi { NCCL_FNS(DECLARE_PTR) };
#undef DECLARE_PTR

Lib g_cublasLt, g_cublas, g_cudnn, g_nccl;
CublasApi g_cb;
CudnnApi g_dnn;
NcclApi g_nc;

// Opens the first of dir/soname for dir in dirs, then soname alone; records the tried paths.
Lib OpenLib(const std::vector<std::string>& dirs, const char* soname) {
  Lib lib;
  std::vector<std::string> candidates;
  for (const auto& d : dirs) candidates.push_back(d + "/" + soname);
  candidates.push_back(soname);
  std::string errors;
  for (const auto& c : candidates) {
    dlerror();
    void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (h != nullptr) {
      lib.handle = h;
      lib.path = c;
      return lib;
    }
    const char* e = dlerror();
    if (c == soname) errors += std::string(e ? e : "dlopen failed");
  }
  lib.error = soname + std::string(" not found in ") + std::to_string(dirs.size()) + " directories or the system path (" + errors + ")";
  return lib;
}

template <typename Api>
bool Resolve(Lib& lib, const char* name, void** slot) {
  dlerror();
  *slot = dlsym(lib.handle, name);
  if (*slot == nullptr) {
    lib.error = std::string("symbol ") + name + " missing in " + lib.path;
    return false;
  }
  return true;
}


// ---- device state --------------------------------------------------------------------------
bool g_ready = false;
int g_device = -1;
cudaStream_t g_stream = nullptr;
cublasHandle_t g_cublasH = nullptr;
cudnnHandle_t g_cudnnH = nullptr;
bool g_tf32 = false;
void* g_workspace = nullptr;
size_t g_workspaceBytes = 0;

[[noreturn]] void ThrowCuda(Napi::Env env, cudaError_t e, const char* what) {
  throw Napi::Error::New(env, std::string(what) + ": " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")");
}
void CheckCuda(Napi::Env env, cudaError_t e, const char* what) {
  if (e != cudaSuccess) ThrowCuda(env, e, what);
}
void CheckDnn(Napi::Env env, cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) throw Napi::Error::New(env, std::string(what) + ": " + g_dnn.p_cudnnGetErrorString(s));
}
void CheckBlas(Napi::Env env, cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Napi::Error::New(env, std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(s)));
}
void CheckNccl(Napi::Env env, ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Napi::Error::New(env, std::string(what) + ": " + g_nc.p_ncclGetErrorString(r));
}

void* Workspace(Napi::Env env, size_t bytes) {
  if (bytes > g_workspaceBytes) {
    if (g_workspace != nullptr) CheckCuda(env, cudaFreeAsync(g_workspace, g_stream), "cudaFreeAsync(workspace)");
    g_workspace = nullptr;
    g_workspaceBytes = 0;
    CheckCuda(env, cudaMallocAsync(&g_workspace, bytes, g_stream), "cudaMallocAsync(workspace)");
    g_workspaceBytes = bytes;
  }
  return g_workspace;
}

void RequireReady(Napi::Env env) {
  if (!g_ready) throw Napi::Error::New(env, "proggan_cuda: init() has not succeeded");
}

// ---- argument helpers ----------------------------------------------------------------------
uint64_t ToPtr(const Napi::Value& v) {
  if (v.IsBigInt()) {
    bool lossless = false;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return static_cast<uint64_t>(v.As<Napi::Number>().DoubleValue());
}
Napi::Value FromPtr(Napi::Env env, const void* p) {
  return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uint64_t>(p)));
}

struct Args {
  std::vector<void*> bufs;
  const int32_t* ints = nullptr;
  size_t nInts = 0;
  const float* floats = nullptr;
  size_t nFloats = 0;
  Napi::Env env;
  explicit Args(Napi::Env e) : env(e) {}
  int I(size_t i) const {
    if (i >= nInts) throw Napi::RangeError::New(env, "proggan_cuda: too few int parameters");
    return ints[i];
  }
  float F(size_t i) const {
    if (i >= nFloats) throw Napi::RangeError::New(env, "proggan_cuda: too few float parameters");
    return floats[i];
  }
  void* B(size_t i) const {
    if (i >= bufs.size()) throw Napi::RangeError::New(env, "proggan_cuda: too few buffers");
    return bufs[i];
  }
};

// Reads a Strided view from ints at *pos: rank, shape[rank], strides[rank], offset.
pc::Strided ReadStrided(const Args& a, size_t* pos, bool withStrides) {
  pc::Strided s{};
  s.rank = a.I((*pos)++);
  if (s.rank < 0 || s.rank > pc::kMaxRank) throw Napi::RangeError::New(a.env, "proggan_cuda: rank above 8");
  for (int d = 0; d < s.rank; ++d) s.shape[d] = a.I((*pos)++);
  if (withStrides) {
    for (int d = 0; d < s.rank; ++d) s.strides[d] = a.I((*pos)++);
    s.offset = a.I((*pos)++);
  } else {
    long long st = 1;
    for (int d = s.rank - 1; d >= 0; --d) {
      s.strides[d] = st;
      st *= s.shape[d];
    }
    s.offset = 0;
  }
  return s;
}
pc::Strided WithShape(const pc::Strided& shape, const Args& a, size_t* pos) {
  pc::Strided v = shape;
  for (int d = 0; d < shape.rank; ++d) v.strides[d] = a.I((*pos)++);
  v.offset = a.I((*pos)++);
  return v;
}

// ---- kernels started by name ---------------------------------------------------------------
using Kernel = std::function<void(const Args&)>;

// unary: ints [op, n]; floats [alpha, beta]; bufs [x, y]
void KUnary(const Args& a) {
  CheckCuda(a.env, pc::Unary(a.I(0), static_cast<const float*>(a.B(0)), static_cast<float*>(a.B(1)), a.I(1),
                             a.nFloats > 0 ? a.F(0) : 0.f, a.nFloats > 1 ? a.F(1) : 0.f, g_stream), "unary");
}
// binary: ints [op, rank, shape..., aStrides..., aOffset, bStrides..., bOffset]; bufs [a, b, out]
void KBinary(const Args& a) {
  size_t pos = 1;
  const pc::Strided shape = ReadStrided(a, &pos, false);
  const pc::Strided av = WithShape(shape, a, &pos);
  const pc::Strided bv = WithShape(shape, a, &pos);
  CheckCuda(a.env, pc::Binary(a.I(0), static_cast<const float*>(a.B(0)), av, static_cast<const float*>(a.B(1)), bv, a.B(2), shape, g_stream), "binary");
}
// select: ints [rank, shape..., cStrides, cOff, aStrides, aOff, bStrides, bOff]; bufs [cond, a, b, out]
void KSelect(const Args& a) {
  size_t pos = 0;
  const pc::Strided shape = ReadStrided(a, &pos, false);
  const pc::Strided cv = WithShape(shape, a, &pos);
  const pc::Strided av = WithShape(shape, a, &pos);
  const pc::Strided bv = WithShape(shape, a, &pos);
  CheckCuda(a.env, pc::Select(static_cast<const uint8_t*>(a.B(0)), cv, static_cast<const float*>(a.B(1)), av,
                              static_cast<const float*>(a.B(2)), bv, static_cast<float*>(a.B(3)), shape, g_stream), "select");
}
// copy: ints [elemSize, rank, shape..., srcStrides..., srcOff, dstStrides..., dstOff]; bufs [src, dst]
void KCopy(const Args& a) {
  size_t pos = 1;
  const pc::Strided shape = ReadStrided(a, &pos, false);
  const pc::Strided sv = WithShape(shape, a, &pos);
  const pc::Strided dv = WithShape(shape, a, &pos);
  CheckCuda(a.env, pc::Copy(a.I(0), a.B(0), sv, a.B(1), dv, g_stream), "copy");
}
// fill: ints [n, elemSize, bits]; bufs [dst]
void KFill(const Args& a) {
  CheckCuda(a.env, pc::Fill(a.B(0), a.I(0), a.I(1), static_cast<uint32_t>(a.I(2)), g_stream), "fill");
}
// cast: ints [from, to, n]; bufs [src, dst]
void KCast(const Args& a) { CheckCuda(a.env, pc::Cast(a.I(0), a.I(1), a.B(0), a.B(1), a.I(2), g_stream), "cast"); }
// reduce: ints [op, outer, reduced, inner]; bufs [x, out]
void KReduce(const Args& a) {
  const long long bytes = pc::ReduceScratchBytes(a.I(0), a.I(1), a.I(2), a.I(3));
  void* scratch = bytes > 0 ? Workspace(a.env, static_cast<size_t>(bytes)) : nullptr;
  CheckCuda(a.env, pc::Reduce(a.I(0), a.B(0), a.B(1), a.I(1), a.I(2), a.I(3), scratch, g_stream), "reduce");
}
// gather: ints [elemSize, outer, axisDim, inner, nIdx]; bufs [x, idx, out]
void KGather(const Args& a) {
  CheckCuda(a.env, pc::Gather(a.I(0), a.B(0), static_cast<const int32_t*>(a.B(1)), a.B(2), a.I(1), a.I(2), a.I(3), a.I(4), g_stream), "gather");
}
// batchNorm: ints [n, C, meanLen, varLen, offsetLen, scaleLen]; floats [eps]; bufs [x, mean, var, offset|0, scale|0, y]
void KBatchNorm(const Args& a) {
  CheckCuda(a.env, pc::BatchNorm(static_cast<const float*>(a.B(0)), static_cast<const float*>(a.B(1)), a.I(2),
                                 static_cast<const float*>(a.B(2)), a.I(3), static_cast<const float*>(a.B(3)), a.I(4),
                                 static_cast<const float*>(a.B(4)), a.I(5), static_cast<float*>(a.B(5)), a.I(0), a.I(1), a.F(0), g_stream), "batchNorm");
}
// resize: ints [mode, grad, N, ih, iw, oh, ow, C, alignCorners, halfPixel]; bufs [src, dst]
void KResize(const Args& a) {
  CheckCuda(a.env, pc::Resize(a.I(0), a.I(1), static_cast<const float*>(a.B(0)), static_cast<float*>(a.B(1)), a.I(2), a.I(3),
                              a.I(4), a.I(5), a.I(6), a.I(7), a.I(8), a.I(9), g_stream), "resize");
}
// adam: ints [n]; floats [lr, beta1, beta2, eps, beta1Power, beta2Power]; bufs [var, m, v, g]
void KAdam(const Args& a) {
  CheckCuda(a.env, pc::Adam(static_cast<float*>(a.B(0)), static_cast<float*>(a.B(1)), static_cast<float*>(a.B(2)),
                            static_cast<const float*>(a.B(3)), a.I(0), a.F(0), a.F(1), a.F(2), a.F(3), a.F(4), a.F(5), g_stream), "adam");
}
// rmsprop: ints [n]; floats [lr, decay, momentum, eps]; bufs [var, ms, mom, mg|0, g]
void KRmsProp(const Args& a) {
  CheckCuda(a.env, pc::RmsProp(static_cast<float*>(a.B(0)), static_cast<float*>(a.B(1)), static_cast<float*>(a.B(2)),
                               static_cast<float*>(a.B(3)), static_cast<const float*>(a.B(4)), a.I(0), a.F(0), a.F(1),
                               a.F(2), a.F(3), g_stream), "rmsprop");
}

// matmul (row-major, tfjs BatchMatMul): ints [batch, aBatchStride(0|1), bBatchStride(0|1), m, n, k, transA, transB];
// bufs [a, b, c]. Column-major cuBLAS computes C^T = op(B)^T op(A)^T.
void KMatMul(const Args& a) {
  if (g_cublasH == nullptr) throw Napi::Error::New(a.env, "proggan_cuda: cuBLAS is not loaded");
  const int batch = a.I(0), m = a.I(3), n = a.I(4), k = a.I(5);
  const bool ta = a.I(6) != 0, tb = a.I(7) != 0;
  const long long sa = a.I(1) ? static_cast<long long>(m) * k : 0;
  const long long sb = a.I(2) ? static_cast<long long>(k) * n : 0;
  const float one = 1.f, zero = 0.f;
  CheckBlas(a.env,
            g_cb.p_cublasSgemmStridedBatched(g_cublasH, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                                             &one, static_cast<const float*>(a.B(1)), tb ? k : n, sb,
                                             static_cast<const float*>(a.B(0)), ta ? m : k, sa, &zero,
                                             static_cast<float*>(a.B(2)), n, static_cast<long long>(m) * n, batch),
            "cublasSgemmStridedBatched");
}

// ---- cuDNN convolution and pooling ---------------------------------------------------------
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  explicit TensorDesc(Napi::Env env) { CheckDnn(env, g_dnn.p_cudnnCreateTensorDescriptor(&d), "cudnnCreateTensorDescriptor"); }
  ~TensorDesc() { g_dnn.p_cudnnDestroyTensorDescriptor(d); }
  // Channels-last activation [N, spatial..., C] described in cuDNN's N, C, spatial order with strides.
  void SetNhwc(Napi::Env env, int N, int C, const std::vector<int>& sp) {
    const int nb = 2 + static_cast<int>(sp.size());
    std::vector<int> dims(nb), strides(nb);
    dims[0] = N;
    dims[1] = C;
    for (size_t i = 0; i < sp.size(); ++i) dims[2 + i] = sp[i];
    strides[1] = 1;
    int s = C;
    for (int i = nb - 1; i >= 2; --i) {
      strides[i] = s;
      s *= dims[i];
    }
    strides[0] = s;
    CheckDnn(env, g_dnn.p_cudnnSetTensorNdDescriptor(d, CUDNN_DATA_FLOAT, nb, dims.data(), strides.data()), "cudnnSetTensorNdDescriptor");
  }
};
struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  explicit FilterDesc(Napi::Env env) { CheckDnn(env, g_dnn.p_cudnnCreateFilterDescriptor(&d), "cudnnCreateFilterDescriptor"); }
  ~FilterDesc() { g_dnn.p_cudnnDestroyFilterDescriptor(d); }
};
struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  explicit ConvDesc(Napi::Env env) { CheckDnn(env, g_dnn.p_cudnnCreateConvolutionDescriptor(&d), "cudnnCreateConvolutionDescriptor"); }
  ~ConvDesc() { g_dnn.p_cudnnDestroyConvolutionDescriptor(d); }
};
struct PoolDesc {
  cudnnPoolingDescriptor_t d = nullptr;
  explicit PoolDesc(Napi::Env env) { CheckDnn(env, g_dnn.p_cudnnCreatePoolingDescriptor(&d), "cudnnCreatePoolingDescriptor"); }
  ~PoolDesc() { g_dnn.p_cudnnDestroyPoolingDescriptor(d); }
};

struct AlgoChoice {
  int algo;
  size_t workspace;
};
std::map<std::vector<int>, AlgoChoice> g_algos;  // key: the conv ints + math mode

void RequireDnn(Napi::Env env) {
  if (g_cudnnH == nullptr) throw Napi::Error::New(env, "proggan_cuda: cuDNN is not loaded");
}

// conv: ints [mode(0 fwd, 1 bwd data, 2 bwd filter), nd, N, Cin, in[nd], Cout, out[nd], filter[nd], stride[nd],
// pad[nd], dilation[nd]]. Activations channels-last; filter KRSC ([Cout, filter..., Cin]).
// bufs: fwd [x, w, y]; bwd data [dy, w, dx]; bwd filter [x, dy, dw].
void KConv(const Args& a) {
  RequireDnn(a.env);
  const Napi::Env env = a.env;
  const int mode = a.I(0), nd = a.I(1);
  if (nd != 2 && nd != 3) throw Napi::RangeError::New(env, "proggan_cuda: conv needs 2 or 3 spatial dims");
  size_t p = 2;
  const int N = a.I(p++), Cin = a.I(p++);
  std::vector<int> in(nd), out(nd), fil(nd), stride(nd), pad(nd), dil(nd);
  for (int i = 0; i < nd; ++i) in[i] = a.I(p++);
  const int Cout = a.I(p++);
  for (int i = 0; i < nd; ++i) out[i] = a.I(p++);
  for (int i = 0; i < nd; ++i) fil[i] = a.I(p++);
  for (int i = 0; i < nd; ++i) stride[i] = a.I(p++);
  for (int i = 0; i < nd; ++i) pad[i] = a.I(p++);
  for (int i = 0; i < nd; ++i) dil[i] = a.I(p++);

  TensorDesc xd(env), yd(env);
  xd.SetNhwc(env, N, Cin, in);
  yd.SetNhwc(env, N, Cout, out);
  FilterDesc wd(env);
  std::vector<int> wdims = {Cout, Cin};
  wdims.insert(wdims.end(), fil.begin(), fil.end());
  CheckDnn(env, g_dnn.p_cudnnSetFilterNdDescriptor(wd.d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, nd + 2, wdims.data()), "cudnnSetFilterNdDescriptor");
  ConvDesc cd(env);
  CheckDnn(env, g_dnn.p_cudnnSetConvolutionNdDescriptor(cd.d, nd, pad.data(), stride.data(), dil.data(), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT), "cudnnSetConvolutionNdDescriptor");
  CheckDnn(env, g_dnn.p_cudnnSetConvolutionMathType(cd.d, g_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH), "cudnnSetConvolutionMathType");

  std::vector<int> key(a.ints, a.ints + p);
  key.push_back(g_tf32 ? 1 : 0);
  auto it = g_algos.find(key);
  const float one = 1.f, zero = 0.f;
  if (mode == 0) {
    if (it == g_algos.end()) {
      cudnnConvolutionFwdAlgoPerf_t perf[8];
      int got = 0;
      CheckDnn(env, g_dnn.p_cudnnFindConvolutionForwardAlgorithm(g_cudnnH, xd.d, wd.d, cd.d, yd.d, 8, &got, perf), "cudnnFindConvolutionForwardAlgorithm");
      int best = -1;
      for (int i = 0; i < got && best < 0; ++i) if (perf[i].status == CUDNN_STATUS_SUCCESS) best = i;
      if (best < 0) throw Napi::Error::New(env, "proggan_cuda: no cuDNN forward algorithm for this convolution");
      it = g_algos.emplace(key, AlgoChoice{static_cast<int>(perf[best].algo), perf[best].memory}).first;
    }
    void* ws = it->second.workspace > 0 ? Workspace(env, it->second.workspace) : nullptr;
    CheckDnn(env, g_dnn.p_cudnnConvolutionForward(g_cudnnH, &one, xd.d, a.B(0), wd.d, a.B(1), cd.d,
                                                  static_cast<cudnnConvolutionFwdAlgo_t>(it->second.algo), ws,
                                                  it->second.workspace, &zero, yd.d, a.B(2)), "cudnnConvolutionForward");
  } else if (mode == 1) {
    if (it == g_algos.end()) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[8];
      int got = 0;
      CheckDnn(env, g_dnn.p_cudnnFindConvolutionBackwardDataAlgorithm(g_cudnnH, wd.d, yd.d, cd.d, xd.d, 8, &got, perf), "cudnnFindConvolutionBackwardDataAlgorithm");
      int best = -1;
      for (int i = 0; i < got && best < 0; ++i) if (perf[i].status == CUDNN_STATUS_SUCCESS) best = i;
      if (best < 0) throw Napi::Error::New(env, "proggan_cuda: no cuDNN backward-data algorithm for this convolution");
      it = g_algos.emplace(key, AlgoChoice{static_cast<int>(perf[best].algo), perf[best].memory}).first;
    }
    void* ws = it->second.workspace > 0 ? Workspace(env, it->second.workspace) : nullptr;
    CheckDnn(env, g_dnn.p_cudnnConvolutionBackwardData(g_cudnnH, &one, wd.d, a.B(1), yd.d, a.B(0), cd.d,
                                                       static_cast<cudnnConvolutionBwdDataAlgo_t>(it->second.algo), ws,
                                                       it->second.workspace, &zero, xd.d, a.B(2)), "cudnnConvolutionBackwardData");
  } else {
    if (it == g_algos.end()) {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[8];
      int got = 0;
      CheckDnn(env, g_dnn.p_cudnnFindConvolutionBackwardFilterAlgorithm(g_cudnnH, xd.d, yd.d, cd.d, wd.d, 8, &got, perf), "cudnnFindConvolutionBackwardFilterAlgorithm");
      int best = -1;
      for (int i = 0; i < got && best < 0; ++i) if (perf[i].status == CUDNN_STATUS_SUCCESS) best = i;
      if (best < 0) throw Napi::Error::New(env, "proggan_cuda: no cuDNN backward-filter algorithm for this convolution");
      it = g_algos.emplace(key, AlgoChoice{static_cast<int>(perf[best].algo), perf[best].memory}).first;
    }
    void* ws = it->second.workspace > 0 ? Workspace(env, it->second.workspace) : nullptr;
    CheckDnn(env, g_dnn.p_cudnnConvolutionBackwardFilter(g_cudnnH, &one, xd.d, a.B(0), yd.d, a.B(1), cd.d,
                                                         static_cast<cudnnConvolutionBwdFilterAlgo_t>(it->second.algo), ws,
                                                         it->second.workspace, &zero, wd.d, a.B(2)), "cudnnConvolutionBackwardFilter");
  }
}

// pool: ints [grad(0|1), max(1)|avg(0), nd, N, C, in[nd], out[nd], window[nd], stride[nd], pad[nd]];
// bufs fwd [x, y]; grad [dy, x, y (max only; dy again for avg), dx].
void KPool(const Args& a) {
  RequireDnn(a.env);
  const Napi::Env env = a.env;
  const int grad = a.I(0), isMax = a.I(1), nd = a.I(2);
  if (nd != 2 && nd != 3) throw Napi::RangeError::New(env, "proggan_cuda: pool needs 2 or 3 spatial dims");
  size_t p = 3;
  const int N = a.I(p++), C = a.I(p++);
  std::vector<int> in(nd), out(nd), win(nd), stride(nd), pad(nd);
  for (auto* v : {&in, &out, &win, &stride, &pad})
    for (int i = 0; i < nd; ++i) (*v)[i] = a.I(p++);
  TensorDesc xd(env), yd(env);
  xd.SetNhwc(env, N, C, in);
  yd.SetNhwc(env, N, C, out);
  PoolDesc pd(env);
  CheckDnn(env, g_dnn.p_cudnnSetPoolingNdDescriptor(pd.d, isMax ? CUDNN_POOLING_MAX : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
                                                    CUDNN_PROPAGATE_NAN, nd, win.data(), pad.data(), stride.data()), "cudnnSetPoolingNdDescriptor");
  const float one = 1.f, zero = 0.f;
  if (!grad) {
    CheckDnn(env, g_dnn.p_cudnnPoolingForward(g_cudnnH, pd.d, &one, xd.d, a.B(0), &zero, yd.d, a.B(1)), "cudnnPoolingForward");
  } else {
    CheckDnn(env, g_dnn.p_cudnnPoolingBackward(g_cudnnH, pd.d, &one, yd.d, a.B(2), yd.d, a.B(0), xd.d, a.B(1), &zero, xd.d, a.B(3)), "cudnnPoolingBackward");
  }
}

// ncclAllReduce in place: ints [count, average(0|1)]; bufs [data]
ncclComm_t g_comm = nullptr;
void KAllReduce(const Args& a) {
  if (g_comm == nullptr) throw Napi::Error::New(a.env, "proggan_cuda: ncclInit() has not been called");
  CheckNccl(a.env, g_nc.p_ncclAllReduce(a.B(0), a.B(0), static_cast<size_t>(a.I(0)), ncclFloat, a.I(1) ? ncclAvg : ncclSum, g_comm, g_stream), "ncclAllReduce");
}

const std::unordered_map<std::string, Kernel>& Kernels() {
  static const std::unordered_map<std::string, Kernel> k = {
      {"unary", KUnary},   {"binary", KBinary},     {"select", KSelect}, {"copy", KCopy},     {"fill", KFill},
      {"cast", KCast},     {"reduce", KReduce},     {"gather", KGather}, {"batchNorm", KBatchNorm},
      {"resize", KResize}, {"adam", KAdam},         {"rmsprop", KRmsProp}, {"matmul", KMatMul}, {"conv", KConv},
      {"pool", KPool},     {"allReduce", KAllReduce},
  };
  return k;
}

// ---- exported functions --------------------------------------------------------------------
Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env);
  const std::string name = info[0].As<Napi::String>();
  const auto& ks = Kernels();
  auto it = ks.find(name);
  if (it == ks.end()) throw Napi::Error::New(env, "proggan_cuda: unknown kernel " + name);
  Args a(env);
  if (info[1].IsArray()) {
    Napi::Array arr = info[1].As<Napi::Array>();
    a.bufs.resize(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); ++i) a.bufs[i] = reinterpret_cast<void*>(ToPtr(arr.Get(i)));
  }
  if (info.Length() > 2 && info[2].IsTypedArray()) {
    auto ints = info[2].As<Napi::Int32Array>();
    a.ints = ints.Data();
    a.nInts = ints.ElementLength();
  }
  if (info.Length() > 3 && info[3].IsTypedArray()) {
    auto fl = info[3].As<Napi::Float32Array>();
    a.floats = fl.Data();
    a.nFloats = fl.ElementLength();
  }
  it->second(a);
  return env.Undefined();
}

Napi::Value KernelNames(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (const auto& kv : Kernels()) out.Set(i++, kv.first);
  return out;
}

Napi::Value Names(Napi::Env env, const std::vector<const char*>& names) {
  Napi::Array out = Napi::Array::New(env, names.size());
  for (uint32_t i = 0; i < names.size(); ++i) out.Set(i, names[i]);
  return out;
}
#define NAME_ENTRY(name, ...) #name,
Napi::Value UnaryOps(const Napi::CallbackInfo& info) { return Names(info.Env(), {PROGGAN_CUDA_UNARY_OPS(NAME_ENTRY)}); }
Napi::Value BinaryOps(const Napi::CallbackInfo& info) {
  return Names(info.Env(), {PROGGAN_CUDA_BINARY_OPS(NAME_ENTRY) PROGGAN_CUDA_COMPARE_OPS(NAME_ENTRY)});
}
Napi::Value ReduceOps(const Napi::CallbackInfo& info) {
#define RNAME(name) #name,
  return Names(info.Env(), {PROGGAN_CUDA_REDUCE_OPS(RNAME)});
#undef RNAME
}
#undef NAME_ENTRY

// probe(): what the runtime sees, without throwing: {runtimeVersion, driverVersion, deviceCount, error?}
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  int rt = 0, drv = 0, count = 0;
  cudaRuntimeGetVersion(&rt);
  o.Set("runtimeVersion", rt);
  cudaError_t e = cudaDriverGetVersion(&drv);
  o.Set("driverVersion", drv);
  if (e == cudaSuccess) e = cudaGetDeviceCount(&count);
  o.Set("deviceCount", e == cudaSuccess ? count : 0);
  if (e != cudaSuccess) {
    o.Set("error", std::string(cudaGetErrorString(e)) + " (" + cudaGetErrorName(e) + ")");
    cudaGetLastError();  // clear the sticky-free error so a later probe starts clean
  } else if (count == 0) {
    o.Set("error", "no CUDA device is visible (CUDA_VISIBLE_DEVICES?)");
  }
  return o;
}

// Loads one library and resolves its entry points; on a missing symbol the library counts as absent.
template <typename Api>
void LoadOne(Lib& lib, const std::vector<std::string>& dirs, const char* soname,
             const std::function<bool(Lib&)>& resolve) {
  if (lib.handle != nullptr) return;
  lib = OpenLib(dirs, soname);
  if (lib.handle != nullptr && !resolve(lib)) {
    dlclose(lib.handle);
    lib.handle = nullptr;
  }
}

void Report(Napi::Env env, Napi::Object& o, const char* name, const Lib& lib, int version) {
  Napi::Object r = Napi::Object::New(env);
  if (lib.handle != nullptr) {
    r.Set("path", lib.path);
    r.Set("version", version);
  } else {
    r.Set("error", lib.error);
  }
  o.Set(name, r);
}

// loadLibraries(dirs: string[]): {cublas, cudnn, nccl: {path, version} | {error}}. Idempotent: a
// library already loaded stays; a missing one is looked for again.
Napi::Value LoadLibraries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> dirs;
  if (info.Length() > 0 && info[0].IsArray()) {
    Napi::Array arr = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) dirs.push_back(arr.Get(i).As<Napi::String>());
  }
  // cublasLt first (RTLD_GLOBAL) so cuBLAS and cuDNN find the same copy.
  if (g_cublasLt.handle == nullptr) g_cublasLt = OpenLib(dirs, "libcublasLt.so.13");
  LoadOne<CublasApi>(g_cublas, dirs, "libcublas.so.13", [](Lib& lib) {
    bool ok = true;
#define R(name) ok = ok && Resolve<void>(lib, PROGGAN_STR(name), reinterpret_cast<void**>(&g_cb.p_##name));
    CUBLAS_FNS(R)
#undef R
    return ok;
  });
  LoadOne<CudnnApi>(g_cudnn, dirs, "libcudnn.so.9", [](Lib& lib) {
    bool ok = true;
#define R(name) ok = ok && Resolve<void>(lib, PROGGAN_STR(name), reinterpret_cast<void**>(&g_dnn.p_##name));
    CUDNN_FNS(R)
#undef R
    return ok;
  });
  LoadOne<NcclApi>(g_nccl, dirs, "libnccl.so.2", [](Lib& lib) {
    bool ok = true;
#define R(name) ok = ok && Resolve<void>(lib, PROGGAN_STR(name), reinterpret_cast<void**>(&g_nc.p_##name));
    NCCL_FNS(R)
#undef R
    return ok;
  });
  Napi::Object o = Napi::Object::New(env);
  int v = 0;
  if (g_cublas.handle != nullptr) v = 0;  // the version needs a handle; init() reports it
  Report(env, o, "cublas", g_cublas, v);
  Report(env, o, "cudnn", g_cudnn, g_cudnn.handle != nullptr ? static_cast<int>(g_dnn.p_cudnnGetVersion()) : 0);
  int nv = 0;
  if (g_nccl.handle != nullptr) g_nc.p_ncclGetVersion(&nv);
  Report(env, o, "nccl", g_nccl, nv);
  return o;
}

// init(): selects device 0 (of those CUDA_VISIBLE_DEVICES shows), creates the stream and the
// cuBLAS / cuDNN handles of the loaded libraries. Throws with the runtime's message when no
// driver or device is usable. Returns {name, computeCapability, totalBytes, cublasVersion}.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!g_ready) {
    int count = 0;
    CheckCuda(env, cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (count == 0) throw Napi::Error::New(env, "cudaGetDeviceCount: no CUDA device is visible");
    CheckCuda(env, cudaSetDevice(0), "cudaSetDevice(0)");
    g_device = 0;
    CheckCuda(env, cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking), "cudaStreamCreate");
    if (g_cublas.handle != nullptr) {
      CheckBlas(env, g_cb.p_cublasCreate(&g_cublasH), "cublasCreate");
      CheckBlas(env, g_cb.p_cublasSetStream(g_cublasH, g_stream), "cublasSetStream");
    }
    if (g_cudnn.handle != nullptr) {
      CheckDnn(env, g_dnn.p_cudnnCreate(&g_cudnnH), "cudnnCreate");
      CheckDnn(env, g_dnn.p_cudnnSetStream(g_cudnnH, g_stream), "cudnnSetStream");
    }
    g_ready = true;
  }
  g_tf32 = info.Length() > 0 && info[0].IsObject() && info[0].As<Napi::Object>().Get("tf32").ToBoolean().Value();
  if (g_cublasH != nullptr) {
    CheckBlas(env, g_cb.p_cublasSetMathMode(g_cublasH, g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
  cudaDeviceProp prop{};
  CheckCuda(env, cudaGetDeviceProperties(&prop, g_device), "cudaGetDeviceProperties");
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", std::string(prop.name));
  o.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
  o.Set("totalBytes", static_cast<double>(prop.totalGlobalMem));
  int bv = 0;
  if (g_cublasH != nullptr) g_cb.p_cublasGetVersion(g_cublasH, &bv);
  o.Set("cublasVersion", bv);
  o.Set("tf32", g_tf32);
  return o;
}

Napi::Value Malloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env);
  const double bytes = info[0].As<Napi::Number>().DoubleValue();
  void* p = nullptr;
  CheckCuda(env, cudaMalloc(&p, static_cast<size_t>(bytes > 0 ? bytes : 1)), "cudaMalloc");
  return FromPtr(env, p);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env);
  // cudaFree synchronises the device, so kernels still reading the block finish first.
  CheckCuda(env, cudaFree(reinterpret_cast<void*>(ToPtr(info[0]))), "cudaFree");
  return env.Undefined();
}

// upload(ptr, typedArray, byteOffset?)
Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env);
  auto* dst = reinterpret_cast<char*>(ToPtr(info[0]));
  Napi::TypedArray src = info[1].As<Napi::TypedArray>();
  const size_t off = info.Length() > 2 ? static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue()) : 0;
  const char* data = static_cast<const char*>(src.ArrayBuffer().Data()) + src.ByteOffset();
  CheckCuda(env, cudaMemcpyAsync(dst + off, data, src.ByteLength(), cudaMemcpyHostToDevice, g_stream), "cudaMemcpy(upload)");
  // The host array may be reused by JS as soon as this returns.
  CheckCuda(env, cudaStreamSynchronize(g_stream), "cudaStreamSynchronize(upload)");
  return env.Undefined();
}

// download(ptr, typedArray): waits for the stream, then fills the array.
Napi::Value Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env);
  const auto* src = reinterpret_cast<const char*>(ToPtr(info[0]));
  Napi::TypedArray dst = info[1].As<Napi::TypedArray>();
  char* data = static_cast<char*>(dst.ArrayBuffer().Data()) + dst.ByteOffset();
  CheckCuda(env, cudaMemcpyAsync(data, src, dst.ByteLength(), cudaMemcpyDeviceToHost, g_stream), "cudaMemcpy(download)");
  CheckCuda(env, cudaStreamSynchronize(g_stream), "cudaStreamSynchronize(download)");
  return env.Undefined();
}

// copyDevice(dst, src, bytes)
Napi::Value CopyDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env);
  const double bytes = info[2].As<Napi::Number>().DoubleValue();
  CheckCuda(env, cudaMemcpyAsync(reinterpret_cast<void*>(ToPtr(info[0])), reinterpret_cast<const void*>(ToPtr(info[1])),
                                 static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, g_stream), "cudaMemcpy(device)");
  return env.Undefined();
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env);
  CheckCuda(env, cudaStreamSynchronize(g_stream), "cudaStreamSynchronize");
  return env.Undefined();
}

// memInfo(): {freeBytes, totalBytes} of the device.
Napi::Value MemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env);
  size_t freeB = 0, total = 0;
  CheckCuda(env, cudaMemGetInfo(&freeB, &total), "cudaMemGetInfo");
  Napi::Object o = Napi::Object::New(env);
  o.Set("freeBytes", static_cast<double>(freeB));
  o.Set("totalBytes", static_cast<double>(total));
  return o;
}

// ncclUniqueId(): Uint8Array(128), made on rank 0 and sent to the others through the rendezvous.
Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (g_nccl.handle == nullptr) throw Napi::Error::New(env, "proggan_cuda: NCCL is not loaded (" + g_nccl.error + ")");
  ncclUniqueId id;
  CheckNccl(env, g_nc.p_ncclGetUniqueId(&id), "ncclGetUniqueId");
  Napi::Uint8Array out = Napi::Uint8Array::New(env, sizeof(id.internal));
  std::memcpy(out.Data(), id.internal, sizeof(id.internal));
  return out;
}

// ncclInit(id: Uint8Array, nranks, rank)
Napi::Value NcclInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env);
  if (g_nccl.handle == nullptr) throw Napi::Error::New(env, "proggan_cuda: NCCL is not loaded (" + g_nccl.error + ")");
  Napi::Uint8Array src = info[0].As<Napi::Uint8Array>();
  ncclUniqueId id;
  if (src.ByteLength() != sizeof(id.internal)) throw Napi::RangeError::New(env, "proggan_cuda: an NCCL unique id has 128 bytes");
  std::memcpy(id.internal, src.Data(), sizeof(id.internal));
  if (g_comm != nullptr) g_nc.p_ncclCommDestroy(g_comm);
  g_comm = nullptr;
  CheckNccl(env, g_nc.p_ncclCommInitRank(&g_comm, info[1].As<Napi::Number>().Int32Value(), id, info[2].As<Napi::Number>().Int32Value()), "ncclCommInitRank");
  return env.Undefined();
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("loadLibraries", Napi::Function::New(env, LoadLibraries));
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("malloc", Napi::Function::New(env, Malloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("copyDevice", Napi::Function::New(env, CopyDevice));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  exports.Set("memInfo", Napi::Function::New(env, MemInfo));
  exports.Set("launch", Napi::Function::New(env, Launch));
  exports.Set("kernelNames", Napi::Function::New(env, KernelNames));
  exports.Set("unaryOps", Napi::Function::New(env, UnaryOps));
  exports.Set("binaryOps", Napi::Function::New(env, BinaryOps));
  exports.Set("reduceOps", Napi::Function::New(env, ReduceOps));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId));
  exports.Set("ncclInit", Napi::Function::New(env, NcclInit));
  int rt = 0;
  cudaRuntimeGetVersion(&rt);
  exports.Set("cudaRuntimeVersion", rt);
  return exports;
}

}  // namespace

NODE_API_MODULE(proggan_cuda, InitModule)
