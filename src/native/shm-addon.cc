// The shared-memory transport's own addon (build/Release/proggan_shm.node): POSIX shared memory and
// futex doorbells only, so multi-process training on one host needs a C++ compiler but not oneDNN.
#include <napi.h>

namespace proggan {
void RegisterShm(Napi::Env env, Napi::Object exports);
}  // namespace proggan

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  proggan::RegisterShm(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(proggan_shm, Init)
