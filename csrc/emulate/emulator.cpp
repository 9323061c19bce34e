// A CPU emulator for the CUDA kernels of csrc/: it runs the very kernel
// bodies and launch plans of dispatch.h, compiled by a plain C++ compiler,
// one block at a time with one fiber (ucontext) per CUDA thread. A fiber
// runs until it reaches sync_threads() or sync_warp() or returns; when every
// thread of the block waits at sync_threads() they all go on, when every lane
// of a warp (32 consecutive threads) waits at sync_warp() that warp goes on.
// Threads that returned while others wait, or threads stuck at different
// barriers, are a hang on the GPU and an error here.
// Shared memory is filled with 0xff bytes (NaN) before each block, so a
// read of shared memory no thread wrote shows up in the results, and is
// followed by a guard whose change (a write past the end) fails the launch.
//
// Built by tests/cuda_emulator.py (g++ -shared) and called through ctypes
// with the same flat integer lists as the PyTorch binding (meta.h).
//
// Fibers switch by a few instructions of assembly on x86-64 (ucontext elsewhere, or with
// LC_EMU_UCONTEXT): swapcontext makes two signal-mask system calls a switch, and the
// tensor-core kernels switch at every warp barrier. Their stacks are allocated once.
//
// Two more modes serve the cost model (perfmodel/): `plan` records every
// launch (its kernel body's type and csrc/plan.h's Launch) and runs
// nothing; `trace` runs a sample of each launch's blocks in a build with
// memory-access instrumentation (LC_EMU_TRACE, trace.cpp).
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#if !defined(__x86_64__) || defined(LC_EMU_UCONTEXT)
#include <ucontext.h>
#define LC_EMU_UCONTEXT 1
#endif

#include "../dispatch.h"
#include "../meta.h"

#ifdef LC_EMU_TRACE
#include "../model/known.cuh"

extern "C" {
void lc_trace_launch(int launch);
void lc_trace_block_begin(const void* smem, int64_t smem_bytes, int threads);
void lc_trace_block_end();
void lc_trace_add_buffer(const void* ptr, int64_t bytes);
int64_t lc_trace_accesses();
void lc_trace_barrier();
}
#endif

namespace lc {
namespace {

enum Wait { kRunnable = 0, kAtBlockBarrier = 1, kAtWarpBarrier = 2 };

#ifdef LC_EMU_UCONTEXT
struct Context {
  ucontext_t uc;
};
// a fiber that starts in entry() on the stack [base, base + bytes)
void start_context(Context* c, char* base, size_t bytes, void (*entry)()) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = base;
  c->uc.uc_stack.ss_size = bytes;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}
void switch_context(Context* save, Context* load) { swapcontext(&save->uc, &load->uc); }
#else
// The System V AMD64 switch: push the callee-saved registers, MXCSR and the x87 control
// word on the current stack, save its pointer in *save_sp, load load_sp and pop the same
// (a new fiber's stack holds them and its entry as the return address).
extern "C" void lc_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .p2align 4
  .globl lc_emu_switch
  .hidden lc_emu_switch
  .type lc_emu_switch, @function
lc_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lc_emu_switch, .-lc_emu_switch
)");
struct Context {
  void* sp = nullptr;
};
void start_context(Context* c, char* base, size_t bytes, void (*entry)()) {
  // from the 16-byte aligned top down: a zero return address for entry() (which never
  // returns; rsp is then 8 mod 16 at its first instruction, as after a call), entry as
  // the switch's return address, six zero registers, MXCSR and the control word as now
  uintptr_t top = (reinterpret_cast<uintptr_t>(base) + bytes) & ~uintptr_t(15);
  auto* frame = reinterpret_cast<uint64_t*>(top) - 9;
  std::memset(frame, 0, 9 * sizeof(uint64_t));
  frame[7] = reinterpret_cast<uint64_t>(entry);
  uint32_t mxcsr = 0;
  uint16_t cw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(cw));
  std::memcpy(frame, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(frame) + 4, &cw, 2);
  c->sp = frame;
}
void switch_context(Context* save, Context* load) { lc_emu_switch(&save->sp, load->sp); }
#endif

struct Fiber {
  Context ctx;
  char* stack = nullptr;  // kStack bytes (fiber_stack(): reused by every launch)
  bool done = false;
  int wait = kRunnable;
};

struct BlockState {
  int64_t block = 0;
  int threads = 0;
  int current = 0;
  Context scheduler;
  std::vector<Fiber>* fibers = nullptr;
};

BlockState g_state;
char g_error[256] = "";

enum Mode { kRun = 0, kPlanOnly = 1, kTrace = 2 };
int g_mode = kRun;
int64_t g_samples = 8;  // kTrace: blocks traced per launch (first, last, evenly between)
int64_t g_planes_budget = 0;  // conn2d's planes workspace at most (0: plan.h's limit; tests)
int64_t g_smem_optin = 0;     // the emulated device's opt-in shared memory (0: plan.h's floor)
int64_t g_sm_count = 1;  // corr2d's split plan: 1 by default, the GPU's for the cost model
int64_t g_rare_paths = 0;  // lanes that entered an LC_RARE_PATH() branch (portable.h)

struct Record {
  std::string body;  // "... [with Body = lc::ConnTile<float, 7, false>; Args = {...}]"
  Launch launch;
};
std::vector<Record> g_records;

template <class Body, class... Args>
const char* signature() {
  return __PRETTY_FUNCTION__;
}

// kTrace: stop sampling a launch once its traced blocks made this many accesses (2 blocks at
// least): a count, not a time, so that the model's numbers do not depend on the machine
constexpr int64_t kTraceBudget = 20000000;

// The blocks a launch runs: all of them, or in kTrace the first, the last and
// evenly spaced ones between (in that order, so that the access budget keeps the ends).
std::vector<int64_t> blocks_to_run(int64_t blocks) {
  std::vector<int64_t> out;
  if (g_mode != kTrace || g_samples >= blocks) {
    for (int64_t b = 0; b < blocks; ++b) out.push_back(b);
    return out;
  }
  out.push_back(0);
  out.push_back(blocks - 1);
  for (int64_t i = 1; i + 1 < g_samples; ++i) out.push_back(i * (blocks - 1) / (g_samples - 1));
  return out;
}

constexpr size_t kStack = 256 * 1024;

// Thread t's fiber stack of kStack bytes, allocated once and not zeroed (a launch that
// allocated and zeroed its own spent most of its time in page faults). A namespace-scope
// vector: a function-local static's guard is an atomic, for which the traced build's
// instrumentation would call its (absent) runtime.
std::vector<std::unique_ptr<char[]>> g_stacks;
char* fiber_stack(size_t t) {
  while (g_stacks.size() <= t) g_stacks.emplace_back(new char[kStack]);
  return g_stacks[t].get();
}
constexpr size_t kGuard = 4096;            // bytes after the shared memory a block may not touch
constexpr unsigned char kGuardByte = 0xa5;

template <class F>
struct Entry {
  static F* fn;
  static void trampoline() {
    (*fn)();
    Fiber& f = (*g_state.fibers)[g_state.current];
    f.done = true;
    switch_context(&f.ctx, &g_state.scheduler);
  }
};
template <class F>
F* Entry<F>::fn = nullptr;

struct EmuExec {
  template <class Body, class... Args>
  int launch(const Launch& l, const Args&... args) {
    g_records.push_back(Record{signature<Body, Args...>(), l});
    if (g_mode == kPlanOnly) return kOk;
#ifdef LC_EMU_TRACE
    if (g_mode == kTrace) lc_trace_launch(int(g_records.size()) - 1);
#endif
    // the block's shared memory, then a guard that must survive every block
    const size_t used = size_t(l.smem > 0 ? l.smem : 0);
    std::vector<unsigned char> smem(used + kGuard, 0xff);
    std::vector<Fiber> fibers(size_t(l.threads));
    for (size_t t = 0; t < fibers.size(); ++t) fibers[t].stack = fiber_stack(t);
    auto body = [&]() { Body::run(smem.data(), args...); };
    using F = decltype(body);
    Entry<F>::fn = &body;
    g_state.threads = l.threads;
    g_state.fibers = &fibers;
    int64_t ran = 0;
#ifdef LC_EMU_TRACE
    const int64_t accesses0 = lc_trace_accesses();
#endif
    for (const int64_t b : blocks_to_run(l.blocks)) {
#ifdef LC_EMU_TRACE
      if (g_mode == kTrace && ran >= 2 && lc_trace_accesses() - accesses0 > kTraceBudget) break;
#endif
      ++ran;
      g_state.block = b;
      std::memset(smem.data(), 0xff, used);
      std::memset(smem.data() + used, kGuardByte, kGuard);
      for (Fiber& f : fibers) {
        f.done = false;
        f.wait = kRunnable;
        start_context(&f.ctx, f.stack, kStack, &Entry<F>::trampoline);
      }
#ifdef LC_EMU_TRACE
      if (g_mode == kTrace) lc_trace_block_begin(smem.data(), int64_t(used), l.threads);
#endif
      for (;;) {  // one round: every runnable thread runs to its next barrier or its end
        for (int t = 0; t < l.threads; ++t) {
          Fiber& f = fibers[size_t(t)];
          if (f.done || f.wait != kRunnable) continue;
          g_state.current = t;
          switch_context(&g_state.scheduler, &f.ctx);
        }
        int done = 0, at_block = 0;
        for (const Fiber& f : fibers) {
          done += f.done;
          at_block += !f.done && f.wait == kAtBlockBarrier;
        }
        if (done == l.threads) {
          if (g_error[0] != 0) return kLaunchFailed;  // a misaligned access (aligned_access)
          for (size_t i = used; i < used + kGuard; ++i) {
            if (smem[i] != kGuardByte) {
              std::snprintf(g_error, sizeof g_error,
                            "block %lld wrote shared memory past its %zu bytes (offset %zu)",
                            static_cast<long long>(b), used, i);
              return kLaunchFailed;
            }
          }
#ifdef LC_EMU_TRACE
          if (g_mode == kTrace) lc_trace_block_end();
#endif
          break;
        }
        // warps whose every lane waits at sync_warp() go on
        bool released = false;
        for (int w0 = 0; w0 < l.threads; w0 += 32) {
          const int w1 = w0 + 32 < l.threads ? w0 + 32 : l.threads;
          int waiting = 0, gone = 0;
          for (int t = w0; t < w1; ++t) {
            waiting += !fibers[size_t(t)].done && fibers[size_t(t)].wait == kAtWarpBarrier;
            gone += fibers[size_t(t)].done;
          }
          if (waiting == 0) continue;
          if (waiting == w1 - w0) {
            for (int t = w0; t < w1; ++t) fibers[size_t(t)].wait = kRunnable;
            released = true;
          } else if (gone > 0) {
            std::snprintf(g_error, sizeof g_error,
                          "warp divergence in block %lld: lanes of warp %d returned while "
                          "others wait at sync_warp()",
                          static_cast<long long>(b), w0 / 32);
            return kLaunchFailed;
          }
        }
        if (released) continue;
        if (at_block == l.threads - done && done == 0) {  // the block barrier opens
          for (Fiber& f : fibers) f.wait = kRunnable;
          continue;
        }
        if (at_block == l.threads - done) {
          std::snprintf(g_error, sizeof g_error,
                        "barrier divergence in block %lld: %d of %d threads returned while the "
                        "others wait at sync_threads()",
                        static_cast<long long>(b), done, l.threads);
        } else {
          std::snprintf(g_error, sizeof g_error,
                        "threads of block %lld wait at different barriers (sync_threads() and "
                        "sync_warp())", static_cast<long long>(b));
        }
        return kLaunchFailed;
      }
    }
    return kOk;
  }
};

}  // namespace

const void* aligned_access(const void* at, int bytes) {
  if (reinterpret_cast<uintptr_t>(at) % uintptr_t(bytes) != 0 && g_error[0] == 0)
    std::snprintf(g_error, sizeof g_error, "block %lld thread %d: a %d-byte access at %p is not aligned",
                  static_cast<long long>(g_state.block), g_state.current, bytes, at);
  return at;
}

int64_t block_index() { return g_state.block; }
int thread_index() { return g_state.current; }
int block_threads() { return g_state.threads; }
void sync_threads() {
  Fiber& f = (*g_state.fibers)[g_state.current];
#ifdef LC_EMU_TRACE
  lc_trace_barrier();
#endif
  f.wait = kAtBlockBarrier;
  switch_context(&f.ctx, &g_state.scheduler);
}
void sync_warp() {
  Fiber& f = (*g_state.fibers)[g_state.current];
#ifdef LC_EMU_TRACE
  lc_trace_barrier();
#endif
  f.wait = kAtWarpBarrier;
  switch_context(&f.ctx, &g_state.scheduler);
}

}  // namespace lc

namespace lc {
// portable.h's LC_RARE_PATH() (outside the anonymous namespace: its declaration's)
void note_rare_path() { ++g_rare_paths; }
}  // namespace lc

extern "C" {

const char* lc_emu_error() { return lc::g_error; }

// 0: run every block (the default); 1: record launches, run nothing; 2: trace
// `samples` blocks per launch (a build with LC_EMU_TRACE). corr2d plans its
// split for `sm_count` multiprocessors (1 by default). Clears the records.
void lc_emu_set_mode(int mode, int64_t samples, int64_t sm_count) {
  lc::g_mode = mode;
  lc::g_samples = samples < 2 ? 2 : samples;
  lc::g_sm_count = sm_count < 1 ? 1 : sm_count;
  lc::g_records.clear();
}

// conn2d's planes (plan.h plan_planes) in chunks of samples within `bytes` (0: the
// plan's own limit); lets the tests cut a small batch into chunks.
void lc_emu_set_planes_budget(int64_t bytes) { lc::g_planes_budget = bytes; }
// the opt-in shared memory a block of the emulated device (ConnArgs::smem_optin; 0: plan.h's
// kMaxSmemOptIn, as the tests run by default; the cost model sets its GPU's)
void lc_emu_set_smem_optin(int64_t bytes) { lc::g_smem_optin = bytes; }
// the lanes that entered an LC_RARE_PATH() branch since the last call
int64_t lc_emu_rare_paths() {
  const int64_t n = lc::g_rare_paths;
  lc::g_rare_paths = 0;
  return n;
}

int lc_emu_record_count() { return int(lc::g_records.size()); }

// record i: its signature into `name` (truncated to cap), and kernel, blocks,
// threads, smem, kf, workspace_bytes into fields[6]
void lc_emu_record(int i, char* name, int cap, int64_t* fields) {
  const lc::Record& r = lc::g_records[size_t(i)];
  std::snprintf(name, size_t(cap), "%s", r.body.c_str());
  fields[0] = r.launch.kernel;
  fields[1] = r.launch.blocks;
  fields[2] = r.launch.threads;
  fields[3] = r.launch.smem;
  fields[4] = r.launch.kf;
  fields[5] = r.launch.workspace_bytes;
}

}  // extern "C"

// conn2d's workspace for `a` (plan.h plan_planes), NaN-filled (a value read before it is
// written shows), registered with the trace; a.workspace points into it (or nullptr).
// Tracing runs only some blocks of each launch, so the planes a traced kernel reads were
// mostly never written: zeros there (finite, as the planes of finite images are), else
// conn_mma.cuh would take its non-finite tiles' direct path and the model cost that.
static std::vector<unsigned char> conn_workspace(lc::ConnArgs* a, bool transpose) {
  a->planes_budget = lc::g_planes_budget;
  a->smem_optin = lc::g_smem_optin;
  const int64_t bytes = lc::conn_workspace_bytes(*a, transpose);
  const unsigned char fill = lc::g_mode == lc::kTrace ? 0 : 0xff;
  std::vector<unsigned char> ws(size_t(bytes > 0 ? bytes : 1), fill);
  a->workspace = bytes > 0 ? ws.data() : nullptr;
#ifdef LC_EMU_TRACE
  if (bytes > 0) lc_trace_add_buffer(ws.data(), bytes);
#endif
  return ws;
}

extern "C" {

int lc_emu_conn2d(const int64_t* meta, const void* x, const void* w, const void* bias, void* y,
                  int32_t* chosen) {
  lc::EmuExec ex;
  lc::g_error[0] = 0;
  lc::ConnArgs args = lc::conn_args_from(meta, x, w, bias, y);
  std::vector<unsigned char> ws = conn_workspace(&args, false);
  return lc::run_conn(ex, args, chosen);
}

int lc_emu_conn2d_transpose(const int64_t* meta, const void* g, const void* w, void* out,
                            int32_t* chosen) {
  lc::EmuExec ex;
  lc::g_error[0] = 0;
  lc::ConnArgs args = lc::conn_args_from(meta, g, w, nullptr, out);
  std::vector<unsigned char> ws = conn_workspace(&args, true);
  return lc::run_conn_transpose(ex, args, chosen);
}

int lc_emu_corr2d(const int64_t* meta, const void* a, const void* b, void* out,
                  int64_t force_splits, int32_t* chosen) {
  lc::EmuExec ex;
  lc::g_error[0] = 0;
  lc::CorrArgs args = lc::corr_args_from(meta, a, b, out, nullptr);
  const int64_t bytes = lc::corr_workspace_bytes(args, lc::g_sm_count, force_splits);
  std::vector<unsigned char> ws(size_t(bytes > 0 ? bytes : 1), 0xff);  // NaN: unwritten shows
  args.workspace = bytes > 0 ? ws.data() : nullptr;
#ifdef LC_EMU_TRACE
  if (bytes > 0) lc_trace_add_buffer(ws.data(), bytes);
#endif
  return lc::run_corr(ex, args, lc::g_sm_count, force_splits, chosen);
}

#ifdef LC_EMU_TRACE
// The cost model's known-cost kernels (csrc/model/known.cuh): 0 Copy, 1 FmaChain,
// 2 SharedStride, 3 PartialUnits, 4 GlobalStride, 5 AsyncCopy, 6 PredicatedCopy, on
// `blocks` blocks of `threads` threads.
int lc_emu_known(int which, const float* src, float* dst, int64_t n, int64_t stride,
                 int64_t blocks, int threads) {
  lc::EmuExec ex;
  lc::g_error[0] = 0;
  lc::Launch l{};
  l.blocks = blocks;
  l.threads = threads;
  l.kernel = -1;
  const lc::KnownArgs a{src, dst, n, stride};
  switch (which) {
    case 0: return ex.launch<lc::Copy>(l, a);
    case 1: return ex.launch<lc::FmaChain>(l, a);
    case 2:
      l.smem = 32 * stride * 4;
      return ex.launch<lc::SharedStride>(l, a);
    case 3:
      l.smem = (72 * stride + 32 * n) * 4;
      return ex.launch<lc::PartialUnits>(l, a);
    case 4: return ex.launch<lc::GlobalStride>(l, a);
    case 5:
      l.smem = threads * 8 * 4;
      return ex.launch<lc::AsyncCopy>(l, a);
    case 6:
      l.smem = threads * 8 * 4;
      return ex.launch<lc::PredicatedCopy>(l, a);
    default: return lc::kBadDType;
  }
}
#endif

}  // extern "C"
