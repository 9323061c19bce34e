// A CPU emulator for the CUDA kernels of csrc/: it runs the very kernel
// bodies and launch plans of dispatch.h, compiled by a plain C++ compiler,
// one block at a time with one fiber (ucontext) per CUDA thread. A fiber
// runs until it reaches sync_threads() or returns; when every thread of the
// block waits at the barrier they all go on (threads that returned while
// others wait is a barrier divergence: a hang on the GPU, an error here).
// Shared memory is filled with 0xff bytes (NaN) before each block, so a
// read of shared memory no thread wrote shows up in the results, and is
// followed by a guard whose change (a write past the end) fails the launch.
//
// Built by tests/cuda_emulator.py (g++ -shared) and called through ctypes
// with the same flat integer lists as the PyTorch binding (meta.h).
#include <ucontext.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "../dispatch.h"
#include "../meta.h"

namespace lc {
namespace {

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  bool done = false;
};

struct BlockState {
  int64_t block = 0;
  int threads = 0;
  int current = 0;
  ucontext_t scheduler;
  std::vector<Fiber>* fibers = nullptr;
};

BlockState g_state;
char g_error[256] = "";

constexpr size_t kStack = 256 * 1024;
constexpr size_t kGuard = 4096;            // bytes after the shared memory a block may not touch
constexpr unsigned char kGuardByte = 0xa5;

template <class F>
struct Entry {
  static F* fn;
  static void trampoline() {
    (*fn)();
    Fiber& f = (*g_state.fibers)[g_state.current];
    f.done = true;
    swapcontext(&f.ctx, &g_state.scheduler);
  }
};
template <class F>
F* Entry<F>::fn = nullptr;

struct EmuExec {
  template <class Body, class... Args>
  int launch(const Launch& l, const Args&... args) {
    // the block's shared memory, then a guard that must survive every block
    const size_t used = size_t(l.smem > 0 ? l.smem : 0);
    std::vector<unsigned char> smem(used + kGuard, 0xff);
    std::vector<Fiber> fibers(size_t(l.threads));
    for (Fiber& f : fibers) f.stack.resize(kStack);
    auto body = [&]() { Body::run(smem.data(), args...); };
    using F = decltype(body);
    Entry<F>::fn = &body;
    g_state.threads = l.threads;
    g_state.fibers = &fibers;
    for (int64_t b = 0; b < l.blocks; ++b) {
      g_state.block = b;
      std::memset(smem.data(), 0xff, used);
      std::memset(smem.data() + used, kGuardByte, kGuard);
      for (Fiber& f : fibers) {
        f.done = false;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, &Entry<F>::trampoline, 0);
      }
      for (;;) {  // one round: every live thread runs to its next barrier or its end
        int done = 0;
        for (int t = 0; t < l.threads; ++t) {
          if (fibers[size_t(t)].done) {
            ++done;
            continue;
          }
          g_state.current = t;
          swapcontext(&g_state.scheduler, &fibers[size_t(t)].ctx);
          if (fibers[size_t(t)].done) ++done;
        }
        if (done == l.threads) {
          for (size_t i = used; i < used + kGuard; ++i) {
            if (smem[i] != kGuardByte) {
              std::snprintf(g_error, sizeof g_error,
                            "block %lld wrote shared memory past its %zu bytes (offset %zu)",
                            static_cast<long long>(b), used, i);
              return kLaunchFailed;
            }
          }
          break;
        }
        if (done > 0) {
          std::snprintf(g_error, sizeof g_error,
                        "barrier divergence in block %lld: %d of %d threads returned while the "
                        "others wait at sync_threads()",
                        static_cast<long long>(b), done, l.threads);
          return kLaunchFailed;
        }
      }
    }
    return kOk;
  }
};

}  // namespace

int64_t block_index() { return g_state.block; }
int thread_index() { return g_state.current; }
int block_threads() { return g_state.threads; }
void sync_threads() {
  Fiber& f = (*g_state.fibers)[g_state.current];
  swapcontext(&f.ctx, &g_state.scheduler);
}

}  // namespace lc

extern "C" {

const char* lc_emu_error() { return lc::g_error; }

int lc_emu_conn2d(const int64_t* meta, const void* x, const void* w, const void* bias, void* y,
                  int32_t* chosen) {
  lc::EmuExec ex;
  lc::g_error[0] = 0;
  return lc::run_conn(ex, lc::conn_args_from(meta, x, w, bias, y), chosen);
}

int lc_emu_conn2d_transpose(const int64_t* meta, const void* g, const void* w, void* out,
                            int32_t* chosen) {
  lc::EmuExec ex;
  lc::g_error[0] = 0;
  return lc::run_conn_transpose(ex, lc::conn_args_from(meta, g, w, nullptr, out), chosen);
}

int lc_emu_corr2d(const int64_t* meta, const void* a, const void* b, void* out,
                  int64_t force_splits, int32_t* chosen) {
  lc::EmuExec ex;
  lc::g_error[0] = 0;
  lc::CorrArgs args = lc::corr_args_from(meta, a, b, out, nullptr);
  const int64_t bytes = lc::corr_workspace_bytes(args, 1, force_splits);
  std::vector<unsigned char> ws(size_t(bytes > 0 ? bytes : 1), 0xff);  // NaN: unwritten shows
  args.workspace = bytes > 0 ? ws.data() : nullptr;
  return lc::run_corr(ex, args, 1, force_splits, chosen);
}

}  // extern "C"
