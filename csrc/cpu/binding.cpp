// The PyTorch binding of the CPU kernels (localconn._cpu): registers the ops of namespace
// localconn_cpu (TORCH_LIBRARY, CPU dispatch key) with the argument lists of ../meta.h that
// the CUDA ops take, checks them against the tensors, builds the window's index tables
// (../window.h), converts to the accumulator type (float, or double for float64: 16-bit
// inputs are converted once, never per tap) and runs the instruction set ATen runs.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <cstdlib>
#include <string>
#include <vector>

#include "cpu/isa.h"
#include "meta.h"
#include "window.h"

namespace {

using lc_cpu::Columns;

int32_t dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return lc::kFloat32;
    case at::kHalf: return lc::kFloat16;
    case at::kBFloat16: return lc::kBFloat16;
    case at::kDouble: return lc::kFloat64;
    default: TORCH_CHECK(false, "localconn_cpu: unsupported dtype ", t);
  }
  return -1;
}

void check_tensor(const at::Tensor& t, const char* name, std::vector<int64_t> sizes,
                  int32_t dtype) {
  TORCH_CHECK(t.device().is_cpu(), "localconn_cpu: ", name, " must be a CPU tensor, got ",
              t.device());
  TORCH_CHECK(dtype_code(t.scalar_type()) == dtype, "localconn_cpu: ", name, " has dtype ",
              t.scalar_type(), ", the argument list says code ", dtype);
  TORCH_CHECK(t.sizes() == at::IntArrayRef(sizes), "localconn_cpu: ", name, " size ", t.sizes(),
              " does not match the argument list ", at::IntArrayRef(sizes));
}

// The window's index tables along both axes and the column plan of plan.h.
struct Tables {
  std::vector<int64_t> rows, idx, off, gather;
  Columns cols{};

  Tables(const lc::Axis& h, const lc::Axis& w, int32_t window) {
    rows.resize(size_t(h.k * h.out));
    for (int64_t k = 0; k < h.k; ++k)
      for (int64_t o = 0; o < h.out; ++o) {
        const int64_t i = lc::input_index(h, window, o, k);
        rows[size_t(k * h.out + o)] = (i >= 0 && i < h.in) ? i : -1;
      }
    idx.resize(size_t(w.k * w.out));
    off.assign(size_t(w.k), 0);
    gather.assign(size_t(w.k), -1);
    int64_t lpad = 0, n_gather = 0;
    std::vector<bool> affine(size_t(w.k), true);
    for (int64_t k = 0; k < w.k; ++k) {
      const int64_t raw0 = lc::input_index(w, window, 0, k);
      for (int64_t o = 0; o < w.out; ++o) {
        const int64_t i = lc::input_index(w, window, o, k);
        idx[size_t(k * w.out + o)] = (i >= 0 && i < w.in) ? i : -1;
        // columns that move with the output read the padded row at a fixed offset; the
        // sliding window's out-of-range columns land on its zero padding
        if (i != raw0 + o || (window != lc::kSliding && (i < 0 || i >= w.in)))
          affine[size_t(k)] = false;
      }
      if (affine[size_t(k)]) lpad = std::max(lpad, -raw0);
      else gather[size_t(k)] = n_gather++;
    }
    int64_t Wp = lpad + w.in;
    for (int64_t k = 0; k < w.k; ++k)
      if (affine[size_t(k)]) {
        off[size_t(k)] = lpad + lc::input_index(w, window, 0, k);
        // the whole vectors of a slot (plan.h: Wo rounded up to kSlack) read the padded row
        Wp = std::max(Wp, off[size_t(k)] + (w.out + lc_cpu::kSlack - 1) / lc_cpu::kSlack * lc_cpu::kSlack);
      }
    cols = Columns{idx.data(), off.data(), gather.data(), n_gather, lpad, Wp};
  }
};

at::ScalarType acc_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// `t` in the accumulator type as an NCHW-strided tensor (a view when it already is one)
at::Tensor nchw_acc(const at::Tensor& t) {
  at::Tensor a = t.to(acc_type(t));
  return a.stride(3) == 1 || a.size(3) == 1 ? a : a.contiguous();
}

lc_cpu::Plane4 plane(const at::Tensor& t) {
  return lc_cpu::Plane4{t.data_ptr(), t.size(0) > 1 ? t.stride(0) : 0, t.stride(1), t.stride(2),
                        t.size(3) > 1 ? t.stride(3) : 1};
}

// The weight in the accumulator type, contiguous, strides 0 along its size-1 dims.
lc_cpu::WeightA weight_acc(const at::Tensor& w) {
  TORCH_CHECK(w.is_contiguous(), "localconn_cpu: internal: the weight copy is not contiguous");
  auto s = [&](int d) { return w.size(d) > 1 ? w.stride(d) : int64_t(0); };
  return lc_cpu::WeightA{w.data_ptr(), s(0), s(1), s(2), s(3), s(4), s(5), w.size(5) > 1};
}

// `w` in the accumulator type and contiguous: itself when it already is (a position-specific
// weight is as large as the computation's output times K * K: no copy of it), else a copy
// (flipped if asked)
at::Tensor weight_copy(const at::Tensor& w, at::ScalarType acc, bool flip = false) {
  if (!flip && w.scalar_type() == acc && w.is_contiguous()) return w;
  at::Tensor buf = at::empty({w.numel() + lc_cpu::kSlack}, w.options().dtype(acc));
  buf.narrow(0, w.numel(), lc_cpu::kSlack).zero_();
  at::Tensor out = buf.narrow(0, 0, w.numel()).view(w.sizes());
  out.copy_(flip ? w.flip({2, 3}) : w);
  return out;
}

// bfloat16 src and dst that the NCHW forward reads and writes as they are (rows converted
// as they are prepared and stored): both NCHW-strided along the row.
bool bf16_rows(const at::Tensor& src, const at::Tensor& dst) {
  auto rows = [](const at::Tensor& t) {
    return t.scalar_type() == at::kBFloat16 && (t.stride(3) == 1 || t.size(3) == 1);
  };
  return rows(src) && rows(dst);
}

// The output to write: `out` itself when it is NCHW-strided in the accumulator type, else
// a new one copied into it afterwards.
at::Tensor writable(const at::Tensor& out, at::ScalarType acc) {
  if (out.scalar_type() == acc && (out.dim() < 4 || out.stride(-1) == 1 || out.size(-1) == 1) &&
      (out.dim() != 4 || out.is_contiguous()))
    return out;
  return at::empty(out.sizes(), out.options().dtype(acc));
}

using ConnFn = void (*)(const lc_cpu::Conn&, bool);
using CorrFn = void (*)(const lc_cpu::Corr&, bool, bool);
using ConnClFn = void (*)(const lc_cpu::ConnCl&, bool);
using ConnCl16Fn = bool (*)(const lc_cpu::ConnCl&);
using CorrClFn = void (*)(const lc_cpu::CorrCl&, bool);

struct Isa {
  ConnFn conn, scatter;
  CorrFn corr;
  ConnClFn conn_cl;
  ConnCl16Fn conn_cl16;
  CorrClFn corr_cl;
  void (*attn_fwd)(const lc_cpu::Attn&);
  void (*attn_bwd)(const lc_cpu::Attn&);
  int (*bytes)();
  const char* name;
};

#define LC_ISA(NS, NAME)                                                                  \
  Isa {                                                                                   \
    lc_cpu::NS::conn2d_entry, lc_cpu::NS::scatter_entry, lc_cpu::NS::corr2d_entry,        \
        lc_cpu::NS::conn2d_cl_entry, lc_cpu::NS::conn2d_cl16_entry,                        \
        lc_cpu::NS::corr2d_cl_entry, lc_cpu::NS::attention_forward_entry,                  \
        lc_cpu::NS::attention_backward_entry, lc_cpu::NS::vector_bytes,                     \
        NAME                                                                              \
  }

// 2: AVX-512 (F, BW, VL, DQ), 1: AVX2 with FMA and F16C, 0: neither; lowered (never
// raised) by ATEN_CPU_CAPABILITY=default|avx2 as ATen's own choice is (ATen does not
// export that choice to extensions)
int isa_level() {
  int level = 0;
#if defined(LC_CPU_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = 1;
  if (level == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    level = 2;
#endif
  if (const char* env = std::getenv("ATEN_CPU_CAPABILITY")) {
    const std::string v(env);
    if (v == "default") level = 0;
    else if (v == "avx2") level = std::min(level, 1);
  }
  return level;
}

// The bfloat16 channels_last forward on AVX512-BF16's dot product (kernels_cl_dot.h):
// where the CPU has it and LOCALCONN_CPU_BF16_DOT is not 0 (read every call, so tests can
// run both paths)
bool bf16_dot() {
#if defined(LC_CPU_X86)
  static const bool cpu = isa_level() == 2 && __builtin_cpu_supports("avx512bf16");
  const char* env = std::getenv("LOCALCONN_CPU_BF16_DOT");
  return cpu && !(env && std::string(env) == "0");
#else
  return false;
#endif
}

Isa isa() {
  static const int level = isa_level();
#if defined(LC_CPU_X86)
  if (level == 2) return LC_ISA(AVX512, "avx512");
  if (level == 1) return LC_ISA(AVX2, "avx2");
#endif
  return LC_ISA(DEFAULT, "default");
}

lc::ConnArgs conn_common(const at::Tensor& src, const at::Tensor& weight,
                         const c10::optional<at::Tensor>& bias, const at::Tensor& dst,
                         at::IntArrayRef meta, bool transpose) {
  TORCH_CHECK(meta.size() == size_t(lc::kConnMetaLen), "localconn_cpu: the argument list must ",
              "have ", lc::kConnMetaLen, " entries, got ", meta.size());
  lc::ConnArgs a = lc::conn_args_from(meta.data(), nullptr, nullptr, nullptr, nullptr);
  const lc::Problem& p = a.p;
  TORCH_CHECK(p.cpg > 0 && p.C % p.cpg == 0, "localconn_cpu: bad channels per group");
  const std::vector<int64_t> in{p.N, p.C, p.h.in, p.w.in}, out{p.N, p.C, p.h.out, p.w.out};
  check_tensor(src, transpose ? "g" : "x", transpose ? out : in, p.dtype);
  check_tensor(dst, transpose ? "out" : "y", transpose ? in : out, p.dtype);
  TORCH_CHECK(weight.dim() == 6 && weight.size(2) == p.h.k && weight.size(3) == p.w.k &&
              weight.size(1) * p.cpg == p.C, "localconn_cpu: weight size ", weight.sizes(),
              " does not match the argument list");
  check_tensor(weight, "weight", weight.sizes().vec(), p.dtype);
  if (bias) check_tensor(*bias, "bias", {p.C}, p.dtype);
  return a;
}

lc_cpu::Conn conn_plan(const lc::Problem& p, const lc::Axis& h, const lc::Axis& w,
                       const Tables& t, const at::Tensor& src, const at::Tensor& wa,
                       const at::Tensor& dst, int32_t window) {
  lc_cpu::Conn c{};
  c.rows_slide = window == lc::kSliding && h.s == 1 && h.d == 1;
  c.N = p.N; c.C = p.C; c.cpg = p.cpg;
  c.H = h.in; c.W = w.in; c.Ho = h.out; c.Wo = w.out; c.Kh = h.k; c.Kw = w.k;
  c.rows = t.rows.data();
  c.cols = t.cols;
  c.src = plane(src);
  c.dst = plane(dst);
  c.w = weight_acc(wa);
  return c;
}

// `t` is channels_last and not also NCHW-contiguous (the layout the channels_last kernels
// are for)
bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && t.size(1) > 1 && !t.is_contiguous() &&
         t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// Every element of `w` is finite (a loop over a contiguous weight: the ATen expression
// costs tens of microseconds a call, as much as a 14x14 layer's kernel in places).
// A value is not finite when its exponent bits are all ones: a test on the bits, which
// the compiler vectorises (through double, this loop took 7.5 us of a 384-channel call).
template <class U>
bool exponents_finite(const void* data, int64_t n, U exponent) {
  const U* u = static_cast<const U*>(data);
  bool bad = false;
  for (int64_t i = 0; i < n; ++i) bad |= (u[i] & exponent) == exponent;
  return !bad;
}

bool all_finite(const at::Tensor& w) {
  if (!w.is_contiguous()) return at::isfinite(w).all().item<bool>();
  const void* p = w.const_data_ptr();
  switch (w.scalar_type()) {
    case at::kFloat: return exponents_finite<uint32_t>(p, w.numel(), 0x7f800000u);
    case at::kDouble: return exponents_finite<uint64_t>(p, w.numel(), 0x7ff0000000000000ull);
    case at::kBFloat16: return exponents_finite<uint16_t>(p, w.numel(), 0x7f80);
    case at::kHalf: return exponents_finite<uint16_t>(p, w.numel(), 0x7c00);
    default: return at::isfinite(w).all().item<bool>();
  }
}

// A weight (Nw, G, Kh, Kw, 1, 1) as the channels_last kernels read it: (Nw, Kh, Kw, C) in
// the accumulator type, channel c's filter that of its group, kSlack zeros after it; one
// loop over the weight's strides (flipped along Kh and Kw for the transpose).
at::Tensor filter_tap_major(const at::Tensor& w, int64_t cpg, at::ScalarType acc, bool flip) {
  const int64_t Nw = w.size(0), G = w.size(1), Kh = w.size(2), Kw = w.size(3), C = G * cpg;
  const int64_t n = Nw * Kh * Kw * C;
  at::Tensor buf = at::empty({n + lc_cpu::kSlack}, w.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES(acc, "filter_tap_major", [&] {
    scalar_t* out = buf.data_ptr<scalar_t>();
    std::fill(out + n, out + n + lc_cpu::kSlack, scalar_t(0));
    const int64_t s0 = w.stride(0), s1 = w.stride(1), s2 = w.stride(2), s3 = w.stride(3);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, w.scalar_type(), "filter_tap_major", [&] {
      const scalar_t* src = w.const_data_ptr<scalar_t>();
      using O = std::remove_pointer_t<decltype(out)>;
      const int64_t T = Kh * Kw;
      if (cpg == 1 && s3 == 1 && s2 == Kw) {
        // a filter per channel, its taps contiguous: a transpose, 16 channels at a time
        // (the general loop below took 4 % of a 14x14 layer's forward at C = 384)
        for (int64_t nw = 0; nw < Nw; ++nw)
          for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const int64_t cn = std::min<int64_t>(16, C - c0);
            const scalar_t* s = src + nw * s0 + c0 * s1;
            for (int64_t t = 0; t < T; ++t) {
              O* o = out + (nw * T + t) * C + c0;
              const int64_t ts = flip ? T - 1 - t : t;
              for (int64_t i = 0; i < cn; ++i) o[i] = O(s[i * s1 + ts]);
            }
          }
        return;
      }
      // channel-major: the source read in order, the taps of a group written C apart
      for (int64_t nw = 0; nw < Nw; ++nw)
        for (int64_t g = 0; g < G; ++g)
          for (int64_t kh = 0; kh < Kh; ++kh)
            for (int64_t kw = 0; kw < Kw; ++kw) {
              const O v = O(src[nw * s0 + g * s1 + (flip ? Kh - 1 - kh : kh) * s2 +
                                (flip ? Kw - 1 - kw : kw) * s3]);
              O* o = out + ((nw * Kh + kh) * Kw + kw) * C + g * cpg;
              for (int64_t c = 0; c < cpg; ++c) o[c] = v;
            }
    });
  });
  return buf.narrow(0, 0, n).view({Nw, Kh, Kw, C});
}

// The filter of filter_tap_major (float holding bfloat16 values) as pairs of taps along
// a kernel row in bfloat16 (exact): (Nw, Kh, (Kw + 1) / 2, C, 2), pair m of channel c =
// (f[2m][c], f[2m + 1][c], or 0 past the row's end).
at::Tensor filter_tap_pairs(const at::Tensor& f) {
  const int64_t Nw = f.size(0), Kh = f.size(1), Kw = f.size(2), C = f.size(3), NP = (Kw + 1) / 2;
  at::Tensor buf = at::empty({Nw, Kh, NP, C, 2}, f.options().dtype(at::kBFloat16));
  const float* s = f.const_data_ptr<float>();
  at::BFloat16* o = buf.data_ptr<at::BFloat16>();
  for (int64_t row = 0; row < Nw * Kh; ++row)
    for (int64_t m = 0; m < NP; ++m)
      for (int64_t c = 0; c < C; ++c) {
        at::BFloat16* pair = o + ((row * NP + m) * C + c) * 2;
        pair[0] = at::BFloat16(s[(row * Kw + 2 * m) * C + c]);
        pair[1] = at::BFloat16(2 * m + 1 < Kw ? s[(row * Kw + 2 * m + 1) * C + c] : 0.f);
      }
  return buf;
}

// The channels_last forward: src (N, C, Hi, Wi) -> dst (N, C, Ho, Wo) along axes h, w with
// the window's tables, the filter `f` of filter_tap_major.
void run_conn_cl(const at::Tensor& src, const at::Tensor& f, const at::Tensor& bias_acc,
                 const at::Tensor& dst, const lc::Axis& h, const lc::Axis& w, const Tables& t,
                 at::ScalarType acc, int32_t window) {
  lc_cpu::ConnCl c{};
  c.N = src.size(0); c.C = src.size(1); c.H = h.in; c.W = w.in; c.Ho = h.out; c.Wo = w.out;
  c.Kh = h.k; c.Kw = w.k;
  c.rows = t.rows.data();
  c.cols = t.idx.data();
  c.w = f.data_ptr();
  c.w_n = f.size(0) > 1 ? f.stride(0) : 0;
  c.bias = bias_acc.defined() ? bias_acc.data_ptr() : nullptr;
  c.cols_slide = window == lc::kSliding && w.s == 1 && w.d == 1;
  c.pad_w = w.p;
  c.rows_slide = window == lc::kSliding && h.s == 1 && h.d == 1;
  // bfloat16 in and out: read and written as it is where the row window runs
  if (src.scalar_type() == at::kBFloat16 && dst.scalar_type() == at::kBFloat16 &&
      is_channels_last(src) && is_channels_last(dst)) {
    c.x = src.data_ptr();
    c.y = dst.data_ptr();
    c.bf16 = true;
    at::Tensor pairs;
    if (bf16_dot() && c.Kh == c.Kw && c.Kw <= 7 && acc == at::kFloat) {
      pairs = filter_tap_pairs(f);
      c.wpairs = pairs.data_ptr();
      c.wpairs_n = f.size(0) > 1 ? pairs.stride(0) : 0;
    }
    if (isa().conn_cl16(c)) return;
    c.wpairs = nullptr;
    c.bf16 = false;
  }
  const at::Tensor xa = src.to(acc).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor ya = dst;
  if (dst.scalar_type() != acc || !is_channels_last(dst))
    ya = at::empty(dst.sizes(), dst.options().dtype(acc).memory_format(at::MemoryFormat::ChannelsLast));
  c.x = xa.data_ptr();
  c.y = ya.data_ptr();
  isa().conn_cl(c, acc == at::kDouble);
  if (!ya.is_same(dst)) dst.copy_(ya);
}

void conn2d(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
            const at::Tensor& y, at::IntArrayRef meta) {
  const lc::ConnArgs a = conn_common(x, weight, bias, y, meta, false);
  if (y.numel() == 0) return;  // (an empty input with padding still has outputs)
  const at::ScalarType acc = acc_type(x);
  at::Tensor ba;
  if (bias) ba = bias->to(acc).contiguous();
  const Tables t(a.p.h, a.p.w, a.p.window);
  // channels_last with a filter per channel (or group) that is finite (the kernel skips
  // the padding: W * 0 is nothing there)
  if (is_channels_last(x) && !a.pos_h && !a.pos_w && all_finite(weight)) {
    run_conn_cl(x, filter_tap_major(weight, a.p.cpg, acc, false), ba, y, a.p.h, a.p.w, t, acc,
                a.p.window);
    return;
  }
  const bool bf16 = bf16_rows(x, y);
  const at::Tensor xa = bf16 ? x : nchw_acc(x), wa = weight_copy(weight, acc);
  const at::Tensor ya = bf16 ? y : writable(y, acc);
  lc_cpu::Conn c = conn_plan(a.p, a.p.h, a.p.w, t, xa, wa, ya, a.p.window);
  c.bias = bias ? ba.data_ptr() : nullptr;
  c.bf16 = bf16;
  isa().conn(c, acc == at::kDouble);
  if (!ya.is_same(y)) y.copy_(ya);
}

void conn2d_transpose(const at::Tensor& g, const at::Tensor& weight, const at::Tensor& out,
                      at::IntArrayRef meta) {
  const lc::ConnArgs a = conn_common(g, weight, c10::nullopt, out, meta, true);
  if (out.numel() == 0) return;
  const lc::Problem& p = a.p;
  const at::ScalarType acc = acc_type(g);
  // a sliding window with stride 1 and a weight shared across positions: the forward with
  // the filter flipped, reading g with padding (K - 1) d - p, when the filter is finite
  // (the forward forms W * 0 on the padding, which the transpose never does)
  const bool flip = p.window == lc::kSliding && p.h.s == 1 && p.w.s == 1 && !a.pos_h &&
                    !a.pos_w && all_finite(weight);
  if (flip) {
    const lc::Axis h{p.h.out, p.h.in, p.h.k, 1, (p.h.k - 1) * p.h.d - p.h.p, p.h.d};
    const lc::Axis w{p.w.out, p.w.in, p.w.k, 1, (p.w.k - 1) * p.w.d - p.w.p, p.w.d};
    const Tables t(h, w, lc::kSliding);
    if (is_channels_last(g)) {
      run_conn_cl(g, filter_tap_major(weight, p.cpg, acc, true), at::Tensor(), out, h, w, t, acc,
                  lc::kSliding);
      return;
    }
    const bool bf16 = bf16_rows(g, out);
    const at::Tensor ga = bf16 ? g : nchw_acc(g), oa = bf16 ? out : writable(out, acc);
    const at::Tensor wa = weight_copy(weight, acc, true);
    lc_cpu::Conn c = conn_plan(p, h, w, t, ga, wa, oa, lc::kSliding);
    c.bf16 = bf16;
    isa().conn(c, acc == at::kDouble);
    if (!oa.is_same(out)) out.copy_(oa);
    return;
  }
  const at::Tensor ga = nchw_acc(g), oa = writable(out, acc), wa = weight_copy(weight, acc);
  const Tables t(p.h, p.w, p.window);
  // the scatter reads g (Ho, Wo) and writes x-bar (H, W): src/dst as named in plan.h
  isa().scatter(conn_plan(p, p.h, p.w, t, ga, wa, oa, p.window), acc == at::kDouble);
  if (!oa.is_same(out)) out.copy_(oa);
}

void corr2d(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out,
            at::IntArrayRef meta) {
  TORCH_CHECK(meta.size() == size_t(lc::kCorrMetaLen), "localconn_cpu: the argument list must ",
              "have ", lc::kCorrMetaLen, " entries, got ", meta.size());
  const lc::CorrArgs m = lc::corr_args_from(meta.data(), nullptr, nullptr, nullptr, nullptr);
  const lc::Problem& p = m.p;
  TORCH_CHECK(p.cpg > 0 && m.Cw * p.cpg == p.C, "localconn_cpu: bad channels per group");
  check_tensor(a, "a", {p.N, p.C, p.h.out, p.w.out}, p.dtype);
  check_tensor(b, "b", {p.N, p.C, p.h.in, p.w.in}, p.dtype);
  check_tensor(out, "out", {m.Nw, m.Cw, p.h.k, p.w.k, m.Hw, m.Ww}, p.dtype);
  TORCH_CHECK((m.Nw == 1 || m.Nw == p.N) && (m.Hw == 1 || m.Hw == p.h.out) &&
              (m.Ww == 1 || m.Ww == p.w.out), "localconn_cpu: bad weight shape");
  if (out.numel() == 0) return;
  if (a.numel() == 0) {  // a sum over nothing
    out.zero_();
    return;
  }
  const at::ScalarType acc = acc_type(a);
  const Tables t(p.h, p.w, p.window);
  if (is_channels_last(a) && is_channels_last(b) && m.Hw == 1 && m.Ww == 1) {
    // per channel (Nw, Kh, Kw, C), then summed over each group's channels
    const at::Tensor aa = a.to(acc).contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor bb = b.to(acc).contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor per = at::empty({m.Nw, p.h.k, p.w.k, p.C}, a.options().dtype(acc));
    lc_cpu::CorrCl c{};
    c.N = p.N; c.C = p.C; c.H = p.h.in; c.W = p.w.in; c.Ho = p.h.out; c.Wo = p.w.out;
    c.Kh = p.h.k; c.Kw = p.w.k; c.Nw = m.Nw;
    c.rows = t.rows.data();
    c.cols = t.idx.data();
    c.a = aa.data_ptr();
    c.b = bb.data_ptr();
    c.out = per.data_ptr();
    isa().corr_cl(c, acc == at::kDouble);
    at::Tensor grouped = per.permute({0, 3, 1, 2});  // (Nw, C, Kh, Kw)
    if (p.cpg > 1) grouped = grouped.unflatten(1, {m.Cw, p.cpg}).sum(2);
    out.copy_(grouped.unsqueeze(-1).unsqueeze(-1));
    return;
  }
  const at::Tensor aa = nchw_acc(a), bb = nchw_acc(b);
  lc_cpu::Corr c{};
  c.N = p.N; c.C = p.C; c.cpg = p.cpg; c.H = p.h.in; c.W = p.w.in; c.Ho = p.h.out;
  c.Wo = p.w.out; c.Kh = p.h.k; c.Kw = p.w.k; c.Nw = m.Nw; c.G = m.Cw;
  c.rows = t.rows.data();
  c.cols = t.cols;
  c.a = plane(aa);
  c.b = plane(bb);
  const bool positions = m.Hw > 1 || m.Ww > 1;
  at::Tensor result, partial;
  if (positions) {
    result = at::empty({m.Nw, m.Cw, p.h.k, p.w.k, p.h.out, p.w.out}, a.options().dtype(acc));
  } else {
    result = at::empty({m.Nw, m.Cw, p.h.k, p.w.k, 1, 1}, a.options().dtype(acc));
    partial = at::empty({p.N * p.C * p.h.k * p.w.k}, a.options().dtype(acc));
    c.partial = partial.data_ptr();
  }
  c.out = result.data_ptr();
  isa().corr(c, acc == at::kDouble, positions);
  if (positions && m.Hw == 1) result = result.sum(4, true);
  if (positions && m.Ww == 1) result = result.sum(5, true);
  out.copy_(result);
}

std::string capability() {
  const Isa i = isa();
  return std::string("isa=") + i.name + " vector_bytes=" + std::to_string(i.bytes()) +
         " bf16_dot=" + (bf16_dot() ? "yes" : "no");
}

}  // namespace

// The fused attention's kernels (attention.h) on the instruction set the primitives run,
// for attention_binding.cpp
void lc_cpu::run_attention(const Attn& p, bool backward) {
  backward ? isa().attn_bwd(p) : isa().attn_fwd(p);
}

TORCH_LIBRARY(localconn_cpu, m) {
  m.def("conn2d(Tensor x, Tensor weight, Tensor? bias, Tensor(a!) y, int[] meta) -> ()");
  m.def("conn2d_transpose(Tensor g, Tensor weight, Tensor(a!) out, int[] meta) -> ()");
  m.def("corr2d(Tensor a, Tensor b, Tensor(a!) out, int[] meta) -> ()");
  m.def("capability() -> str", &capability);
}

TORCH_LIBRARY_IMPL(localconn_cpu, CPU, m) {
  m.impl("conn2d", &conn2d);
  m.impl("conn2d_transpose", &conn2d_transpose);
  m.impl("corr2d", &corr2d);
}

// `import localconn._cpu` loads this library (and so registers the ops above).
#include <Python.h>

PyMODINIT_FUNC PyInit__cpu(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cpu",
                               "localconn's CPU kernels: the ops of torch.ops.localconn_cpu",
                               -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module);
}
