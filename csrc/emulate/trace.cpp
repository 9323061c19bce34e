// Memory-access tracing for the CPU emulator (the cost model, perfmodel/trace.py).
//
// The emulator is compiled a second time with GCC's ThreadSanitizer
// instrumentation (-fsanitize=thread, without its runtime): every load and
// store of the kernel bodies then calls __tsan_read<N>/__tsan_write<N>(addr),
// which this file defines (it is compiled without instrumentation). An
// access is kept if it falls in the block's shared memory or in a
// registered global buffer (inputs, outputs, workspace); locals on the
// fibers' stacks are ignored. The site is the call's return address (one
// per load or store in the source; perfmodel maps it to file:line).
//
// Per traced block and site, for each warp of 32 consecutive threads:
//   instances = the most any lane of the warp executed the site (the warp
//               issues it while any lane is active),
//   lane bytes = the most bytes any lane moved there,
// and for the first kSamples instances the lanes' addresses give
//   shared: wavefronts (32 banks of 4 bytes; a 64-bit access is served in
//           two phases of 16 lanes, 128-bit in four of 8; per phase the
//           most distinct 4-byte words in one bank, words shared by lanes
//           broadcast),
//   global: 32-byte sectors touched (the request's transactions between L1 and L2), and
//           128-byte lines touched (L1 handles a request one line a clock).
// The lanes' executions are matched within a barrier interval (between two of the
// warp's sync_warp() / sync_threads(), which every lane passes in the same order):
// the i-th execution of a site by each lane in one interval is taken to be the
// warp's i-th there (exact for converged code; an approximation after divergence
// inside an interval). Lanes that skip an access (a partial row group) thus stop
// pairing with their own next tile's accesses once the tile's barrier is passed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <unordered_map>
#include <vector>

namespace lc {
int thread_index();
}

namespace {

constexpr int kSamples = 16;

struct Range {
  uintptr_t lo, hi;
};

struct Site {
  uintptr_t pc;
  int space;  // 0 shared, 1 global
  int write;
  int size;
};

struct SiteTotals {
  double instances = 0, lane_bytes = 0, cost = 0, sampled = 0, warps = 0, lines = 0;
};

struct Sample {
  uintptr_t addr;
  int size;
  uint64_t key;  // (barrier interval << 32) | execution within it
};

struct PerThread {
  std::vector<uint32_t> count;
  std::vector<uint64_t> bytes;
  std::vector<std::vector<Sample>> samples;
  uint32_t interval = 0;                     // barriers passed
  std::vector<uint32_t> last, within;        // per site: its last interval, executions there
};

bool g_on = false;
Range g_smem{0, 0};
std::vector<Range> g_buffers;
std::unordered_map<uint64_t, int> g_site_of;  // (pc << 2 | space << 1 | write) -> site
std::vector<Site> g_sites;
std::vector<PerThread> g_threads;
// per launch: totals per site, traced blocks and warps
std::vector<std::vector<SiteTotals>> g_launch_sites;
std::vector<int64_t> g_launch_blocks, g_launch_warps;
int g_launch = -1;
int64_t g_accesses = 0;  // kept accesses since the last reset

int site_of(uintptr_t pc, int space, int write, int size) {
  const uint64_t key = (uint64_t(pc) << 2) | uint64_t(space << 1) | uint64_t(write);
  auto it = g_site_of.find(key);
  if (it != g_site_of.end()) return it->second;
  const int id = int(g_sites.size());
  g_sites.push_back(Site{pc, space, write, size});
  g_site_of.emplace(key, id);
  return id;
}

void record(void* addr, int size, int write, void* pc) {
  if (!g_on) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  int space = -1;
  uintptr_t where = 0;  // shared: the offset; global: the address the GPU would see
  if (a >= g_smem.lo && a < g_smem.hi) {
    space = 0;
    where = a - g_smem.lo;
  } else {
    // each buffer as if cudaMalloc had placed it (aligned far beyond a 128-byte line; the
    // CPU's allocator aligns to 64 bytes only, which would split lines that do not split
    // on the GPU), buffer b at (b + 1) << 40
    for (size_t b = 0; b < g_buffers.size(); ++b)
      if (a >= g_buffers[b].lo && a < g_buffers[b].hi) {
        space = 1;
        where = (uintptr_t(b + 1) << 40) + (a - g_buffers[b].lo);
        break;
      }
  }
  if (space < 0) return;
  ++g_accesses;
  const int s = site_of(reinterpret_cast<uintptr_t>(pc), space, write, size);
  const int t = lc::thread_index();
  if (t < 0 || size_t(t) >= g_threads.size()) return;
  PerThread& th = g_threads[size_t(t)];
  if (th.count.size() <= size_t(s)) {
    th.count.resize(size_t(s) + 1, 0);
    th.bytes.resize(size_t(s) + 1, 0);
    th.samples.resize(size_t(s) + 1);
    th.last.resize(size_t(s) + 1, UINT32_MAX);
    th.within.resize(size_t(s) + 1, 0);
  }
  if (th.last[size_t(s)] != th.interval) th.last[size_t(s)] = th.interval, th.within[size_t(s)] = 0;
  const uint64_t key = (uint64_t(th.interval) << 32) | th.within[size_t(s)]++;
  const uint32_t i = th.count[size_t(s)]++;
  th.bytes[size_t(s)] += uint64_t(size);
  if (i < uint32_t(kSamples))
    th.samples[size_t(s)].push_back(Sample{where, size, key});
}

// shared-memory wavefronts of one warp-wide access (lanes' offsets and sizes)
int wavefronts(const std::vector<Sample>& lanes, const std::vector<int>& lane_ids) {
  int size = 4;
  for (const Sample& s : lanes) size = std::max(size, s.size);
  const int per_phase = size >= 16 ? 8 : size == 8 ? 16 : 32;
  int total = 0;
  for (int p0 = 0; p0 < 32; p0 += per_phase) {
    std::vector<std::set<uintptr_t>> banks(32);
    bool any = false;
    for (size_t k = 0; k < lanes.size(); ++k) {
      if (lane_ids[k] < p0 || lane_ids[k] >= p0 + per_phase) continue;
      any = true;
      const uintptr_t first = lanes[k].addr / 4, last = (lanes[k].addr + uintptr_t(lanes[k].size) - 1) / 4;
      for (uintptr_t w = first; w <= last; ++w) banks[w % 32].insert(w);
    }
    if (!any) continue;
    size_t worst = 1;
    for (const auto& b : banks) worst = std::max(worst, b.size());
    total += int(worst);
  }
  return total;
}

// distinct `bytes`-sized blocks the lanes' accesses touch (32: sectors, 128: lines)
int blocks_touched(const std::vector<Sample>& lanes, uintptr_t bytes) {
  std::set<uintptr_t> s;
  for (const Sample& l : lanes)
    for (uintptr_t x = l.addr / bytes; x <= (l.addr + uintptr_t(l.size) - 1) / bytes; ++x) s.insert(x);
  return int(s.size());
}

}  // namespace

extern "C" {

// ---------------------------------------------------------------- control (from Python / emulator)
void lc_trace_reset() {
  g_on = false;
  g_buffers.clear();
  g_site_of.clear();
  g_sites.clear();
  g_launch_sites.clear();
  g_launch_blocks.clear();
  g_launch_warps.clear();
  g_launch = -1;
  g_accesses = 0;
}

int64_t lc_trace_accesses() { return g_accesses; }

void lc_trace_add_buffer(const void* ptr, int64_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(ptr);
  g_buffers.push_back(Range{a, a + uintptr_t(bytes)});
}

// the emulator: a new launch begins (its records get index `launch`)
void lc_trace_launch(int launch) {
  g_launch = launch;
  if (g_launch_sites.size() <= size_t(launch)) {
    g_launch_sites.resize(size_t(launch) + 1);
    g_launch_blocks.resize(size_t(launch) + 1, 0);
    g_launch_warps.resize(size_t(launch) + 1, 0);
  }
}

void lc_trace_block_begin(const void* smem, int64_t smem_bytes, int threads) {
  g_smem = Range{reinterpret_cast<uintptr_t>(smem), reinterpret_cast<uintptr_t>(smem) + uintptr_t(smem_bytes)};
  g_threads.assign(size_t(threads), PerThread{});
  g_on = true;
}

void lc_trace_block_end() {
  g_on = false;
  if (g_launch < 0) return;
  auto& totals = g_launch_sites[size_t(g_launch)];
  if (totals.size() < g_sites.size()) totals.resize(g_sites.size());
  const int threads = int(g_threads.size());
  const int warps = (threads + 31) / 32;
  for (size_t s = 0; s < g_sites.size(); ++s) {
    for (int w = 0; w < warps; ++w) {
      uint32_t inst = 0;
      uint64_t bytes = 0;
      for (int t = w * 32; t < std::min(threads, w * 32 + 32); ++t) {
        const PerThread& th = g_threads[size_t(t)];
        if (th.count.size() > s) {
          inst = std::max(inst, th.count[s]);
          bytes = std::max(bytes, th.bytes[s]);
        }
      }
      if (inst == 0) continue;
      SiteTotals& tot = totals[s];
      tot.instances += inst;
      tot.lane_bytes += double(bytes);
      tot.warps += 1;
      // the warp's first kSamples executions (keys): a lane's part in them is among its
      // own first kSamples, which it keeps
      std::vector<uint64_t> keys;
      for (int t = w * 32; t < std::min(threads, w * 32 + 32); ++t) {
        const PerThread& th = g_threads[size_t(t)];
        if (th.samples.size() > s)
          for (const Sample& x : th.samples[s]) keys.push_back(x.key);
      }
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      if (keys.size() > size_t(kSamples)) keys.resize(size_t(kSamples));
      for (const uint64_t key : keys) {
        std::vector<Sample> lanes;
        std::vector<int> ids;
        for (int t = w * 32; t < std::min(threads, w * 32 + 32); ++t) {
          const PerThread& th = g_threads[size_t(t)];
          if (th.samples.size() <= s) continue;
          for (const Sample& x : th.samples[s])
            if (x.key == key) {
              lanes.push_back(x);
              ids.push_back(t - w * 32);
            }
        }
        const bool shared = g_sites[s].space == 0;
        tot.cost += shared ? wavefronts(lanes, ids) : blocks_touched(lanes, 32);
        tot.lines += shared ? 0 : blocks_touched(lanes, 128);
        tot.sampled += 1;
      }
    }
  }
  g_launch_blocks[size_t(g_launch)] += 1;
  g_launch_warps[size_t(g_launch)] += warps;
}

// the calling thread passes a barrier (the emulator's sync_warp / sync_threads)
void lc_trace_barrier() {
  if (!g_on) return;
  const int t = lc::thread_index();
  if (t >= 0 && size_t(t) < g_threads.size()) ++g_threads[size_t(t)].interval;
}

int lc_trace_site_count() { return int(g_sites.size()); }

// site s: pc, space (0 shared, 1 global), write, size
void lc_trace_site(int s, uint64_t* pc, int* space, int* write, int* size) {
  const Site& x = g_sites[size_t(s)];
  *pc = x.pc;
  *space = x.space;
  *write = x.write;
  *size = x.size;
}

// launch L: blocks and warps traced
void lc_trace_launch_info(int launch, int64_t* blocks, int64_t* warps) {
  *blocks = size_t(launch) < g_launch_blocks.size() ? g_launch_blocks[size_t(launch)] : 0;
  *warps = size_t(launch) < g_launch_warps.size() ? g_launch_warps[size_t(launch)] : 0;
}

// launch L, site s: summed over traced warps: instances, lane bytes, sampled cost, samples,
// warps, sampled 128-byte lines (global)
void lc_trace_totals(int launch, int s, double* out6) {
  for (int k = 0; k < 6; ++k) out6[k] = 0;
  if (size_t(launch) >= g_launch_sites.size() || size_t(s) >= g_launch_sites[size_t(launch)].size()) return;
  const SiteTotals& t = g_launch_sites[size_t(launch)][size_t(s)];
  out6[0] = t.instances;
  out6[1] = t.lane_bytes;
  out6[2] = t.cost;
  out6[3] = t.sampled;
  out6[4] = t.warps;
  out6[5] = t.lines;
}

// ---------------------------------------------------------------- the instrumentation's calls
#define LC_TRACE_SIZE(n)                                                                   \
  void __tsan_read##n(void* a) { record(a, n, 0, __builtin_return_address(0)); }           \
  void __tsan_write##n(void* a) { record(a, n, 1, __builtin_return_address(0)); }          \
  void __tsan_unaligned_read##n(void* a) { record(a, n, 0, __builtin_return_address(0)); } \
  void __tsan_unaligned_write##n(void* a) { record(a, n, 1, __builtin_return_address(0)); }
LC_TRACE_SIZE(1)
LC_TRACE_SIZE(2)
LC_TRACE_SIZE(4)
LC_TRACE_SIZE(8)
LC_TRACE_SIZE(16)
#undef LC_TRACE_SIZE
void __tsan_read_range(void* a, size_t n) { record(a, int(n), 0, __builtin_return_address(0)); }
void __tsan_write_range(void* a, size_t n) { record(a, int(n), 1, __builtin_return_address(0)); }
void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}
void __tsan_volatile_read1(void*) {}
void __tsan_volatile_read2(void*) {}
void __tsan_volatile_read4(void*) {}
void __tsan_volatile_read8(void*) {}
void __tsan_volatile_read16(void*) {}
void __tsan_volatile_write1(void*) {}
void __tsan_volatile_write2(void*) {}
void __tsan_volatile_write4(void*) {}
void __tsan_volatile_write8(void*) {}
void __tsan_volatile_write16(void*) {}

}  // extern "C"
