// Open MPI collectives for the MPI transport (src/distributed/mpi.ts): MPI_Allreduce (sum) on
// Float32Array / Float64Array in place, MPI_Bcast, MPI_Allgatherv of byte strings and
// MPI_Barrier on MPI_COMM_WORLD. Built apart from the oneDNN addon, by scripts/build-mpi.mjs with
// the MPI compiler wrapper, into build/Release/proggan_mpi.node; loaded only when MPI is asked for.
//
// Threading: MPI is initialised with MPI_THREAD_SERIALIZED and every collective runs on a libuv
// worker thread (Napi::AsyncWorker), so the event loop (signals, timers, logging) keeps running
// while a collective blocks. The caller must start one collective at a time (the JS side queues
// them). When the library grants less than MPI_THREAD_SERIALIZED the calls run on the main thread.
//
// Errors: MPI_COMM_WORLD gets MPI_ERRORS_RETURN, so a failed call rejects with MPI's own message
// instead of aborting the process; a peer that dies is normally handled by mpirun, which stops
// the job (fail-stop, like the other transports).

#include <napi.h>
#include <mpi.h>

#include <dlfcn.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace proggan_mpi {
namespace {

int g_provided = -1;
bool g_initialised_here = false;

std::string MpiErrorString(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(len));
}

void RequireInit(Napi::Env env) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (!init || fin) throw Napi::Error::New(env, "MPI is not initialised (call init() first) or was finalised");
}

// Open MPI loads its components with dlopen and expects libmpi's symbols to be global; a Node
// addon is loaded RTLD_LOCAL, so promote the already loaded libmpi before MPI_Init.
void PromoteLibmpi() {
  const char* names[] = {"libmpi.so.40", "libmpi.so.12", "libmpi.so"};
  for (const char* n : names) {
    if (dlopen(n, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) != nullptr) return;
  }
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (fin) throw Napi::Error::New(env, "MPI was already finalised in this process");
  if (!init) {
    PromoteLibmpi();
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &g_provided);
    if (rc != MPI_SUCCESS) throw Napi::Error::New(env, "MPI_Init_thread failed: " + MpiErrorString(rc));
    g_initialised_here = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  } else if (g_provided < 0) {
    MPI_Query_thread(&g_provided);
  }
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int vlen = 0;
  MPI_Get_library_version(version, &vlen);
  std::string v(version, static_cast<size_t>(vlen));
  while (!v.empty() && (v.back() == '\n' || v.back() == '\0' || v.back() == ' ')) v.pop_back();
  Napi::Object out = Napi::Object::New(env);
  out.Set("rank", rank);
  out.Set("size", size);
  out.Set("threadLevel", g_provided);
  out.Set("serialized", g_provided >= MPI_THREAD_SERIALIZED);
  out.Set("library", v);
  return out;
}

// A collective run off the main thread; resolves the promise with `result()` (or undefined).
class Collective : public Napi::AsyncWorker {
 public:
  Collective(Napi::Env env, std::string what, std::function<int()> op, std::vector<Napi::Value> keep)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), what_(std::move(what)), op_(std::move(op)) {
    for (auto& v : keep) keep_.push_back(Napi::Persistent(v));
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  std::function<Napi::Value(Napi::Env)> result;

  void Execute() override {
    rc_ = op_();
    if (rc_ != MPI_SUCCESS) SetError(what_ + " failed: " + MpiErrorString(rc_));
  }
  // Run on this (the main) thread and settle the promise now; deletes this worker.
  void RunHere() {
    rc_ = op_();
    if (rc_ == MPI_SUCCESS) OnOK();
    else OnError(Napi::Error::New(Env(), what_ + " failed: " + MpiErrorString(rc_)));
    delete this;
  }
  void OnOK() override {
    Napi::Env env = Env();
    deferred_.Resolve(result ? result(env) : env.Undefined());
  }
  void OnError(const Napi::Error& e) override {
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("mpiCode", Napi::Number::New(Env(), rc_));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string what_;
  std::function<int()> op_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  int rc_ = MPI_SUCCESS;
};

// Run `c` on a worker thread when the thread level allows it, else here; returns its promise.
Napi::Value Run(Collective* c) {
  Napi::Promise p = c->Promise();
  if (g_provided >= MPI_THREAD_SERIALIZED) {
    c->Queue();
  } else {
    c->RunHere();
  }
  return p;
}

void CheckCount(Napi::Env env, size_t n, const char* what) {
  if (n > static_cast<size_t>(INT_MAX)) {
    throw Napi::RangeError::New(env, std::string(what) + ": more than INT_MAX elements in one call");
  }
}

// allreduceSum(Float32Array | Float64Array): Promise<void>, in place.
Napi::Value AllreduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireInit(env);
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "allreduceSum: expected a Float32Array or Float64Array");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  MPI_Datatype type;
  if (ta.TypedArrayType() == napi_float32_array) type = MPI_FLOAT;
  else if (ta.TypedArrayType() == napi_float64_array) type = MPI_DOUBLE;
  else throw Napi::TypeError::New(env, "allreduceSum: expected a Float32Array or Float64Array");
  size_t n = ta.ElementLength();
  CheckCount(env, n, "allreduceSum");
  void* data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  auto* c = new Collective(env, "MPI_Allreduce", [=]() {
    if (n == 0) return MPI_SUCCESS;
    return MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), type, MPI_SUM, MPI_COMM_WORLD);
  }, {info[0]});
  return Run(c);
}

// bcast(Uint8Array | typed array, root): Promise<void>, in place (bytes).
Napi::Value Bcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireInit(env);
  if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "bcast: expected (typedArray, root)");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  int root = info[1].As<Napi::Number>().Int32Value();
  size_t bytes = ta.ByteLength();
  CheckCount(env, bytes, "bcast");
  void* data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  auto* c = new Collective(env, "MPI_Bcast", [=]() {
    if (bytes == 0) return MPI_SUCCESS;
    return MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD);
  }, {info[0]});
  return Run(c);
}

// allgatherBytes(Uint8Array): Promise<Uint8Array[]> — every rank's bytes, by rank; sizes may differ.
Napi::Value AllgatherBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireInit(env);
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "allgatherBytes: expected a Uint8Array");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  size_t bytes = ta.ByteLength();
  CheckCount(env, bytes, "allgatherBytes");
  const void* data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  auto counts = std::make_shared<std::vector<int>>(static_cast<size_t>(size), 0);
  auto displs = std::make_shared<std::vector<int>>(static_cast<size_t>(size), 0);
  auto out = std::make_shared<std::vector<uint8_t>>();
  auto* c = new Collective(env, "MPI_Allgatherv", [=]() {
    int mine = static_cast<int>(bytes);
    int rc = MPI_Allgather(&mine, 1, MPI_INT, counts->data(), 1, MPI_INT, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return rc;
    long long total = 0;
    for (int q = 0; q < size; q++) {
      (*displs)[q] = static_cast<int>(total);
      total += (*counts)[q];
      if (total > INT_MAX) return static_cast<int>(MPI_ERR_COUNT);
    }
    out->resize(static_cast<size_t>(total) + 1);
    return MPI_Allgatherv(data, mine, MPI_BYTE, out->data(), counts->data(), displs->data(), MPI_BYTE, MPI_COMM_WORLD);
  }, {info[0]});
  c->result = [=](Napi::Env e) -> Napi::Value {
    Napi::Array arr = Napi::Array::New(e, static_cast<size_t>(size));
    for (int q = 0; q < size; q++) {
      Napi::Uint8Array part = Napi::Uint8Array::New(e, static_cast<size_t>((*counts)[q]));
      if ((*counts)[q] > 0) std::memcpy(part.Data(), out->data() + (*displs)[q], static_cast<size_t>((*counts)[q]));
      arr.Set(static_cast<uint32_t>(q), part);
    }
    return arr;
  };
  return Run(c);
}

// barrier(): Promise<void>.
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireInit(env);
  auto* c = new Collective(env, "MPI_Barrier", []() { return MPI_Barrier(MPI_COMM_WORLD); }, {});
  return Run(c);
}

// abort(code): tear the whole MPI job down (mpirun stops every rank). Does not return.
Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
  return info.Env().Undefined();
}

// finalize(): orderly shutdown; a no-op when MPI was not initialised here or is finalised.
Napi::Value Finalize(const Napi::CallbackInfo& info) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin && g_initialised_here) {
    int rc = MPI_Finalize();
    if (rc != MPI_SUCCESS) throw Napi::Error::New(info.Env(), "MPI_Finalize failed: " + MpiErrorString(rc));
  }
  return info.Env().Undefined();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("allreduceSum", Napi::Function::New(env, AllreduceSum, "allreduceSum"));
  exports.Set("bcast", Napi::Function::New(env, Bcast, "bcast"));
  exports.Set("allgatherBytes", Napi::Function::New(env, AllgatherBytes, "allgatherBytes"));
  exports.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  exports.Set("abort", Napi::Function::New(env, Abort, "abort"));
  exports.Set("finalize", Napi::Function::New(env, Finalize, "finalize"));
  return exports;
}

}  // namespace
}  // namespace proggan_mpi

static Napi::Object InitProgganMpi(Napi::Env env, Napi::Object exports) { return proggan_mpi::Module(env, exports); }

NODE_API_MODULE(proggan_mpi, InitProgganMpi)
