// POSIX shared memory for the shared-memory transport (src/distributed/shm.ts): map a named
// segment as an ArrayBuffer, and wait on / signal a 32-bit word inside it across processes.
//
// Waiting protocol ("doorbell"): a 32-bit counter followed by a 32-bit sleeper count. A waiter
// optionally spins, then announces itself in the sleeper count and sleeps on the counter with a
// futex; a notifier bumps the counter and only makes the futex syscall when someone sleeps. Both
// sides use sequentially consistent atomics, so a bump between the waiter's check and its sleep
// is never lost (FUTEX_WAIT re-checks the value in the kernel).

#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PROGGAN_PAUSE() _mm_pause()
#else
#define PROGGAN_PAUSE() ((void)0)
#endif

namespace proggan {
namespace {

// One mapping, released by the ArrayBuffer's finalizer (after shmClose: its placeholder).
struct Mapping {
  void* addr;
  size_t bytes;
};

Napi::Error ErrnoError(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  const char* code = err == ENOENT ? "ENOENT" : err == EEXIST ? "EEXIST" : err == ENOSPC ? "ENOSPC"
                   : err == EACCES ? "EACCES" : err == ENOMEM ? "ENOMEM" : "ESHM";
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

std::string SegmentName(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "expected a segment name");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  // POSIX names are "/something" with no further slash.
  if (name.size() < 2 || name.size() > 250 || name[0] != '/' || name.find('/', 1) != std::string::npos) {
    throw Napi::TypeError::New(info.Env(), "invalid shared memory name '" + name + "'");
  }
  return name;
}

void Finalize(Napi::Env, void*, Mapping* m) {
  munmap(m->addr, m->bytes);
  delete m;
}

// shmOpen(name, bytes, create) -> ArrayBuffer over the whole segment. With create the segment
// must not exist yet (O_EXCL) and is sized and backed by pages up front (posix_fallocate), so
// a full /dev/shm fails here with ENOSPC instead of a SIGBUS on first touch. Without create,
// bytes (if > 0) must equal the segment's size.
Napi::Value ShmOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = SegmentName(info);
  if (info.Length() < 3 || !info[1].IsNumber() || !info[2].IsBoolean()) {
    throw Napi::TypeError::New(env, "shmOpen(name, bytes, create)");
  }
  const double want = info[1].As<Napi::Number>().DoubleValue();
  const bool create = info[2].As<Napi::Boolean>().Value();
  if (!(want >= 0) || want > 1e12 || (create && want < 1)) throw Napi::RangeError::New(env, "shmOpen: bad size");
  const size_t bytes = static_cast<size_t>(want);

  const int fd = create ? shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600) : shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) throw ErrnoError(env, "shm_open " + name, errno);
  size_t size = bytes;
  if (create) {
    int err = 0;
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) err = errno;
    if (err == 0) err = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
    if (err != 0) {
      close(fd);
      shm_unlink(name.c_str());
      throw ErrnoError(env, "sizing " + name + " to " + std::to_string(bytes) + " bytes", err);
    }
  } else {
    struct stat st;
    if (fstat(fd, &st) != 0) {
      const int err = errno;
      close(fd);
      throw ErrnoError(env, "fstat " + name, err);
    }
    size = static_cast<size_t>(st.st_size);
    if ((bytes > 0 && size != bytes) || size == 0) {
      close(fd);
      throw Napi::Error::New(env, "shared memory " + name + " has " + std::to_string(size) + " bytes, expected " +
                                      std::to_string(bytes));
    }
  }
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int mapErr = errno;
  close(fd);  // the mapping keeps the segment alive
  if (addr == MAP_FAILED) {
    if (create) shm_unlink(name.c_str());
    throw ErrnoError(env, "mmap " + name, mapErr);
  }
  Mapping* m = new Mapping{addr, size};
  return Napi::ArrayBuffer::New(env, addr, size, Finalize, m);
}

// shmUnlink(name) -> true if removed, false if it did not exist.
Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  const std::string name = SegmentName(info);
  if (shm_unlink(name.c_str()) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  throw ErrnoError(info.Env(), "shm_unlink " + name, errno);
}

// The doorbell word (and the sleeper count after it) at info[1] bytes into the ArrayBuffer info[0].
uint32_t* Word(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArrayBuffer() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "expected (ArrayBuffer, byteOffset, ...)");
  }
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  const int64_t off = info[1].As<Napi::Number>().Int64Value();
  const size_t len = ab.ByteLength();
  if (off < 0 || off % 4 != 0 || static_cast<size_t>(off) + 8 > len || ab.Data() == nullptr) {
    throw Napi::RangeError::New(env, "doorbell offset out of range or misaligned");
  }
  return reinterpret_cast<uint32_t*>(static_cast<char*>(ab.Data()) + off);
}

double NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

// shmWait(buffer, byteOffset, expected, timeoutMs, spinUs) -> 0 when the word differs from
// expected (or the sleep was interrupted: the caller re-checks), 1 on timeout.
Napi::Value ShmWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t* word = Word(info);
  uint32_t* sleepers = word + 1;
  if (info.Length() < 5 || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsNumber()) {
    throw Napi::TypeError::New(env, "shmWait(buffer, byteOffset, expected, timeoutMs, spinUs)");
  }
  const uint32_t expected = info[2].As<Napi::Number>().Uint32Value();
  const double timeoutMs = info[3].As<Napi::Number>().DoubleValue();
  const double spinUs = info[4].As<Napi::Number>().DoubleValue();

  // Spin first: a reply often arrives within microseconds, and a futex sleep + wake costs more.
  if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != expected) return Napi::Number::New(env, 0);
  if (spinUs > 0) {
    const double until = NowUs() + spinUs;
    do {
      for (int i = 0; i < 64; i++) {
        if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != expected) return Napi::Number::New(env, 0);
        PROGGAN_PAUSE();
      }
    } while (NowUs() < until);
  }
  if (!(timeoutMs > 0)) return Napi::Number::New(env, 1);

  __atomic_add_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
  int result = 0;
  if (__atomic_load_n(word, __ATOMIC_SEQ_CST) == expected) {
    timespec ts;
    const double ms = timeoutMs > 60000 ? 60000 : timeoutMs;
    ts.tv_sec = static_cast<time_t>(ms / 1000);
    ts.tv_nsec = static_cast<long>((ms - ts.tv_sec * 1000.0) * 1e6);
    // Not FUTEX_PRIVATE_FLAG: the word is shared with other processes.
    const long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
    if (r != 0 && errno == ETIMEDOUT) result = 1;
  }
  __atomic_sub_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
  return Napi::Number::New(env, result);
}

// shmNotify(buffer, byteOffset): bump the word and wake its sleepers, if any.
Napi::Value ShmNotify(const Napi::CallbackInfo& info) {
  uint32_t* word = Word(info);
  __atomic_add_fetch(word, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(word + 1, __ATOMIC_SEQ_CST) != 0) syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
  return info.Env().Undefined();
}

Napi::Value ShmClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "shmClose(buffer)");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* data = ab.Data();
  const size_t len = ab.ByteLength();
  if (data == nullptr || len == 0) return env.Undefined();  // already closed
  // Swap the shared mapping for an inaccessible anonymous placeholder in one step (the range is
  // never free, so no other mapping can land in it), then detach so JavaScript cannot touch it.
  // The finalizer's munmap, whenever it runs, then releases only the placeholder.
  if (mmap(data, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
    throw ErrnoError(env, "unmapping shared memory", errno);
  }
  ab.Detach();
  return env.Undefined();
}

}  // namespace

void RegisterShm(Napi::Env env, Napi::Object exports) {
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink));
  exports.Set("shmClose", Napi::Function::New(env, ShmClose));
  exports.Set("shmWait", Napi::Function::New(env, ShmWait));
  exports.Set("shmNotify", Napi::Function::New(env, ShmNotify));
}

}  // namespace proggan
