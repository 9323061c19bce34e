// The PyTorch binding of the CPU's fused local attention (attention.h): the ops
// localconn_cpu::attention and ::attention_backward (CPU dispatch key) on float32
// channels_last images, written into outputs the caller allocates
// (localconn/cpu_attention.py converts dtypes and layouts).
//
// meta: [B, H, W, heads, D, Dv, Kh, Kw, dh, dw, window, shift_h, shift_w], window 0
// neighborhood, 1 causal, 2 sliding, 3 block.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include <vector>

#include "cpu/isa.h"

namespace {

constexpr size_t kMetaLen = 13;

void check_image(const at::Tensor& t, const char* name, int64_t B, int64_t C, int64_t H,
                 int64_t W) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, "localconn_cpu: ", name,
              " must be a float32 CPU tensor, got ", t.scalar_type(), " on ", t.device());
  TORCH_CHECK(t.sizes() == at::IntArrayRef({B, C, H, W}), "localconn_cpu: ", name, " size ",
              t.sizes(), " does not match the argument list (", B, ", ", C, ", ", H, ", ", W, ")");
  TORCH_CHECK(t.is_contiguous(at::MemoryFormat::ChannelsLast), "localconn_cpu: ", name,
              " must be channels_last-contiguous");
}

lc_cpu::Attn plan(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const c10::optional<at::Tensor>& rpb, at::IntArrayRef meta, double scale) {
  TORCH_CHECK(meta.size() == kMetaLen, "localconn_cpu: attention's argument list has ",
              kMetaLen, " entries, got ", meta.size());
  lc_cpu::Attn p{};
  p.B = meta[0]; p.H = meta[1]; p.W = meta[2]; p.heads = meta[3]; p.D = meta[4];
  p.Dv = meta[5]; p.Kh = meta[6]; p.Kw = meta[7]; p.dh = meta[8]; p.dw = meta[9];
  p.window = meta[10]; p.shift_h = meta[11]; p.shift_w = meta[12];
  p.scale = float(scale);
  TORCH_CHECK(p.B >= 0 && p.H > 0 && p.W > 0 && p.heads > 0 && p.D > 0 && p.Dv > 0,
              "localconn_cpu: attention: bad sizes");
  TORCH_CHECK(p.Kh > 0 && p.Kw > 0 && p.dh > 0 && p.dw > 0 && p.window >= 0 && p.window <= 3,
              "localconn_cpu: attention: bad window");
  // every query's window lies in its dilation group (the shortest group holds a kernel)
  TORCH_CHECK(p.window != 0 || (p.H / p.dh >= p.Kh && p.W / p.dw >= p.Kw),
              "localconn_cpu: attention: a neighborhood window larger than a dilation group");
  check_image(q, "q", p.B, p.heads * p.D, p.H, p.W);
  check_image(k, "k", p.B, p.heads * p.D, p.H, p.W);
  check_image(v, "v", p.B, p.heads * p.Dv, p.H, p.W);
  p.q = q.data_ptr<float>();
  p.k = k.data_ptr<float>();
  p.v = v.data_ptr<float>();
  if (rpb) {
    TORCH_CHECK(rpb->scalar_type() == at::kFloat && rpb->is_contiguous() &&
                    rpb->sizes() == at::IntArrayRef({p.heads, 2 * p.Kh - 1, 2 * p.Kw - 1}),
                "localconn_cpu: rpb must be a contiguous float32 (heads, 2 Kh - 1, 2 Kw - 1) "
                "tensor, got ", rpb->scalar_type(), " ", rpb->sizes());
    p.rpb = rpb->data_ptr<float>();
  }
  return p;
}

void check_lse(const at::Tensor& lse, const lc_cpu::Attn& p) {
  TORCH_CHECK(lse.scalar_type() == at::kFloat && lse.is_contiguous() &&
                  lse.sizes() == at::IntArrayRef({p.B, p.heads, p.H, p.W}),
              "localconn_cpu: lse must be a contiguous float32 (B, heads, H, W) tensor");
}

void attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
               const c10::optional<at::Tensor>& rpb, at::Tensor& out, at::Tensor& lse,
               at::IntArrayRef meta, double scale) {
  lc_cpu::Attn p = plan(q, k, v, rpb, meta, scale);
  check_image(out, "out", p.B, p.heads * p.Dv, p.H, p.W);
  check_lse(lse, p);
  p.out = out.data_ptr<float>();
  p.lse = lse.data_ptr<float>();
  if (p.B > 0) lc_cpu::run_attention(p, false);
}

void attention_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const c10::optional<at::Tensor>& rpb, const at::Tensor& o,
                        const at::Tensor& lse, const at::Tensor& dout, at::Tensor& dq,
                        at::Tensor& dk, at::Tensor& dv, at::Tensor& drpb, at::IntArrayRef meta,
                        double scale) {
  lc_cpu::Attn p = plan(q, k, v, rpb, meta, scale);
  check_image(o, "out", p.B, p.heads * p.Dv, p.H, p.W);
  check_image(dout, "dout", p.B, p.heads * p.Dv, p.H, p.W);
  check_image(dq, "dq", p.B, p.heads * p.D, p.H, p.W);
  check_image(dk, "dk", p.B, p.heads * p.D, p.H, p.W);
  check_image(dv, "dv", p.B, p.heads * p.Dv, p.H, p.W);
  check_lse(lse, p);
  p.o = o.data_ptr<float>();
  p.dout = dout.data_ptr<float>();
  p.lse = const_cast<float*>(lse.data_ptr<float>());
  p.dq = dq.data_ptr<float>();
  p.dk = dk.data_ptr<float>();
  p.dv = dv.data_ptr<float>();
  if (drpb.numel() > 0) {  // the bias gradient's partial sums, one per (batch, group)
    TORCH_CHECK(p.rpb, "localconn_cpu: drpb without rpb");
    TORCH_CHECK(drpb.scalar_type() == at::kFloat && drpb.is_contiguous() &&
                    drpb.sizes() == at::IntArrayRef({p.B * p.dh * p.dw, p.heads, 2 * p.Kh - 1,
                                                     2 * p.Kw - 1}),
                "localconn_cpu: drpb must be a contiguous float32 "
                "(B * dh * dw, heads, 2 Kh - 1, 2 Kw - 1) tensor, got ", drpb.sizes());
    p.drpb = drpb.data_ptr<float>();
  }
  if (p.B > 0) lc_cpu::run_attention(p, true);
}

// Between an image of contiguous planes (stride(3) == 1, stride(2) == W; any batch and
// channel strides, e.g. the channel slices of a projection's NCHW output) in any float
// dtype and a contiguous float32 channels_last copy: tiles of 16 channels x 64 pixels, so
// both sides of a tile stay in L1 (ATen's copy_ into channels_last strides runs an
// elementwise strided loop: 2.7 GB/s on a (2, 256, 32, 32) image on this machine).
bool planes_contiguous(const at::Tensor& t) {
  return t.dim() == 4 && (t.stride(3) == 1 || t.size(3) == 1) &&
         (t.stride(2) == t.size(3) || t.size(2) == 1);
}

template <class T, bool kToPixels>
void transpose_tiles(T* planes, float* pixels, int64_t B, int64_t C, int64_t HW, int64_t sb,
                     int64_t sc) {
  constexpr int64_t TC = 16, TP = 64;
  const int64_t ct = (C + TC - 1) / TC, pt = (HW + TP - 1) / TP;
  at::parallel_for(0, B * ct * pt, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t p0 = (task % pt) * TP, c0 = ((task / pt) % ct) * TC, b = task / (pt * ct);
      const int64_t p1 = std::min(HW, p0 + TP), c1 = std::min(C, c0 + TC);
      T* plane = planes + b * sb;
      float* px = pixels + b * HW * C;
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t q = p0; q < p1; ++q) {
          if constexpr (kToPixels) px[q * C + c] = float(plane[c * sc + q]);
          else plane[c * sc + q] = T(px[q * C + c]);
        }
    }
  });
}

void pixel_major(const at::Tensor& src, at::Tensor& dst) {
  TORCH_CHECK(planes_contiguous(src), "localconn_cpu: pixel_major: src must have contiguous planes");
  check_image(dst, "dst", src.size(0), src.size(1), src.size(2), src.size(3));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "pixel_major", [&] {
    transpose_tiles<scalar_t, true>(const_cast<scalar_t*>(src.data_ptr<scalar_t>()),
                                    dst.data_ptr<float>(), src.size(0), src.size(1),
                                    src.size(2) * src.size(3), src.stride(0), src.stride(1));
  });
}

void planar(const at::Tensor& src, at::Tensor& dst) {
  TORCH_CHECK(planes_contiguous(dst), "localconn_cpu: planar: dst must have contiguous planes");
  check_image(src, "src", dst.size(0), dst.size(1), dst.size(2), dst.size(3));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dst.scalar_type(), "planar", [&] {
    transpose_tiles<scalar_t, false>(dst.data_ptr<scalar_t>(),
                                     const_cast<float*>(src.data_ptr<float>()), dst.size(0),
                                     dst.size(1), dst.size(2) * dst.size(3), dst.stride(0),
                                     dst.stride(1));
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(localconn_cpu, m) {
  m.def("pixel_major(Tensor src, Tensor(a!) dst) -> ()");
  m.def("planar(Tensor src, Tensor(a!) dst) -> ()");
  m.def("attention(Tensor q, Tensor k, Tensor v, Tensor? rpb, Tensor(a!) out, Tensor(b!) lse, "
        "int[] meta, float scale) -> ()");
  m.def("attention_backward(Tensor q, Tensor k, Tensor v, Tensor? rpb, Tensor out, Tensor lse, "
        "Tensor dout, Tensor(a!) dq, Tensor(b!) dk, Tensor(c!) dv, Tensor(d!) drpb, int[] meta, "
        "float scale) -> ()");
}

TORCH_LIBRARY_IMPL(localconn_cpu, CPU, m) {
  m.impl("attention", &attention);
  m.impl("attention_backward", &attention_backward);
  m.impl("pixel_major", &pixel_major);
  m.impl("planar", &planar);
}
