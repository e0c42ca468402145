// Memory-bound kernels (elementwise, reductions, batch norm, resize) for the tfjs 'native'
// backend, written as plain OpenMP loops over tfjs's row-major Float32Arrays.
#pragma once

#include <napi.h>

namespace proggan {

/** Threads used by the loops in elementwise.cc (mirrors the oneDNN / OpenMP setting). */
void SetElementwiseThreads(int n);

/** Adds the elementwise entry points to the addon's exports. */
void RegisterElementwise(Napi::Env env, Napi::Object exports);

}  // namespace proggan
