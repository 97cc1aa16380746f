// Scaled dot-product attention as one fused op (FlashAttention's forward and backward, Dao et al. 2022/2023),
// on q, k, v heads or on one packed qkv projection (FlashAttention's "qkvpacked" form).
//
//   S = q k^T * scale    [B, H, T, T]   (keys j > i masked to -inf when causal)
//   out = softmax(S) v   [B, H, T, hd]
//
// The forward keeps only out and lse = logsumexp of each row of S ([B, H, T]); backward recomputes
// P = exp(S - lse) tile by tile, so memory stays linear in T:
//   D_i = sum_d dout[i,d] out[i,d],  dv = P^T dout,  dP = dout v^T,  dS = P * (dP - D),
//   dq = scale * dS k,  dk = scale * dS^T q
#include <cmath>
#include <limits>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

const OpName kAttention{"scaled_dot_product_attention"};

void check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v) {
  const char* op = kAttention.c_str();
  check_floating(op, q);
  check_same_dtype(op, q, k);
  check_same_dtype(op, q, v);
  check_same_device(op, q, k);
  check_same_device(op, q, v);
  HC_CHECK(q.dim() == 4 && k.shape() == q.shape() && v.shape() == q.shape(), ShapeError, op,
           ": expected q, k, v of one shape [B, H, T, hd], got ", q.shape(), ", ", k.shape(), " and ", v.shape());
  HC_CHECK(q.shape()[3] > 0, ShapeError, op, ": head dim must be positive, got shape ", q.shape());
}

Tensor empty_if(bool wanted, const Shape& shape, TensorOptions options) {
  return wanted ? Tensor::empty(shape, options) : Tensor();
}

// The kernels read each head as [T, hd] rows with a contiguous last dim, the rows any distance >= hd apart
// and the heads anywhere: strided views of one qkv projection qualify as they are, anything else is copied.
Tensor heads_readable(const Tensor& t) {
  const int64_t hd = t.shape()[3];
  const bool rows_ok = (t.strides()[3] == 1 || hd == 1) && t.strides()[2] >= hd;
  return rows_ok ? t : as_contiguous(t);
}

// [B, T, H·hd] memory seen as heads [B, H, T, hd] (no copy): the layout attention's output is wanted in.
Tensor as_heads(const Tensor& rows, int64_t heads) {
  const Shape& shape = rows.shape();
  return rows.detach().view({shape[0], shape[1], heads, shape[2] / heads}).permute({0, 2, 1, 3});
}

// Head `part` (0: q, 1: k, 2: v) of a packed [B, T, 3·H·hd] tensor, as a [B, H, T, hd] view.
Tensor part_of_packed(const Tensor& packed, int64_t heads, int64_t part) {
  const Shape& shape = packed.shape();
  const int64_t C = shape[2] / 3;
  return as_heads(packed.detach().narrow(2, part * C, C), heads);
}

// The forward kernel into a fresh [B, T, H, hd] buffer, returned as the [B, H, T, hd] heads over it, and lse.
std::pair<Tensor, Tensor> attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                            double scale) {
  const Shape& shape = q.shape();  // [B, H, T, hd]
  Tensor rows = Tensor::empty({shape[0], shape[2], shape[1] * shape[3]}, q.options());
  Tensor out = as_heads(rows, shape[1]);
  Tensor lse = Tensor::empty({shape[0], shape[1], shape[2]}, q.options());  // [B, H, T]
  HC_KERNEL(scaled_dot_product_attention_forward, out, out, lse, q, k, v, causal, scale);
  return {out, lse};
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                    std::optional<double> scale) {
  check_attention_inputs(q, k, v);
  const Shape& shape = q.shape();  // [B, H, T, hd]
  const double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(shape[3])));
  const Tensor qr = heads_readable(q), kr = heads_readable(k), vr = heads_readable(v);
  const std::pair<Tensor, Tensor> out_lse = attention_forward(qr, kr, vr, causal, s);
  const Tensor out = out_lse.first, lse = out_lse.second;  // (clang 14 cannot capture structured bindings)
  return record(kAttention, out, {q, k, v},
                [q = save(qr, kAttention), k = save(kr, kAttention), v = save(vr, kAttention),
                 o = save(out, kAttention), lse, causal, s](const Tensor& g, const Needs& need) {
                  Tensor qv = q.get(), kv = k.get(), vv = v.get(), ov = o.get();
                  Tensor grad_q = empty_if(need[0], qv.shape(), g.options());
                  Tensor grad_k = empty_if(need[1], qv.shape(), g.options());
                  Tensor grad_v = empty_if(need[2], qv.shape(), g.options());
                  HC_KERNEL(scaled_dot_product_attention_backward, g, grad_q, grad_k, grad_v, heads_readable(g), qv,
                            kv, vv, ov, lse, causal, s);
                  return TensorList{grad_q, grad_k, grad_v};
                });
}

Tensor scaled_dot_product_attention(const Tensor& qkv, int64_t heads, bool causal, std::optional<double> scale) {
  const char* op = kAttention.c_str();
  check_floating(op, qkv);
  HC_CHECK(qkv.dim() == 3 && heads > 0 && qkv.shape()[2] > 0 && qkv.shape()[2] % (3 * heads) == 0, ShapeError, op,
           ": expected a packed qkv [B, T, 3·heads·hd] with heads = ", heads, " > 0, got shape ", qkv.shape());
  const int64_t hd = qkv.shape()[2] / (3 * heads);
  const double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(hd)));
  const Tensor packed = as_contiguous(qkv);
  const std::pair<Tensor, Tensor> out_lse = attention_forward(
      part_of_packed(packed, heads, 0), part_of_packed(packed, heads, 1), part_of_packed(packed, heads, 2), causal, s);
  const Tensor out = out_lse.first, lse = out_lse.second;
  const Shape& shape = qkv.shape();
  Tensor rows = out.permute({0, 2, 1, 3}).view({shape[0], shape[1], heads * hd});  // [B, T, H·hd], no copy
  // Backward writes the three gradients into one [B, T, 3·H·hd] buffer, each element once: no zero fill,
  // and no sum of three gradients of a split.
  return record(kAttention, rows, {qkv},
                [packed = save(packed, kAttention), o = save(out, kAttention), lse, heads, causal,
                 s](const Tensor& g, const Needs&) {
                  const Tensor p = packed.get();
                  Tensor grad = Tensor::empty(p.shape(), g.options());
                  HC_KERNEL(scaled_dot_product_attention_backward, g, part_of_packed(grad, heads, 0),
                            part_of_packed(grad, heads, 1), part_of_packed(grad, heads, 2),
                            as_heads(as_contiguous(g), heads), part_of_packed(p, heads, 0),
                            part_of_packed(p, heads, 1), part_of_packed(p, heads, 2), o.get(), lse, causal, s);
                  return TensorList{grad};
                });
}

// The explicit form, written with recorded ops (see core/ops.h for the formula).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options) {
  const char* op = kAttention.c_str();
  const Tensor& mask = options.attn_mask;
  HC_CHECK(!(mask.defined() && options.is_causal), Error, op,
           ": give attn_mask or is_causal, not both (as PyTorch); put the causal mask into attn_mask");
  HC_CHECK(options.dropout_p >= 0 && options.dropout_p < 1, Error, op, ": dropout_p must be in [0, 1), got ",
           options.dropout_p);
  const bool fused_shapes = q.dim() == 4 && k.shape() == q.shape() && v.shape() == q.shape();
  if (!mask.defined() && options.dropout_p == 0 && fused_shapes)
    return scaled_dot_product_attention(q, k, v, options.is_causal, options.scale);

  check_floating(op, q);
  check_same_dtype(op, q, k);
  check_same_dtype(op, q, v);
  check_same_device(op, q, k);
  check_same_device(op, q, v);
  HC_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2 && k.shape().back() == q.shape().back() &&
               v.shape()[v.dim() - 2] == k.shape()[k.dim() - 2],
           ShapeError, op, ": expected q [..., Tq, E], k [..., Tk, E], v [..., Tk, Ev], got ", q.shape(), ", ",
           k.shape(), " and ", v.shape());
  const int64_t Tq = q.shape()[q.dim() - 2], Tk = k.shape()[k.dim() - 2];
  const double s = options.scale.value_or(1.0 / std::sqrt(static_cast<double>(q.shape().back())));
  const double inf = std::numeric_limits<double>::infinity();
  Tensor scores = matmul(q, k.transpose(-2, -1)) * s;  // [..., Tq, Tk]
  const Tensor minus_inf = scalar_tensor(-inf, q.options());
  if (options.is_causal) {  // key j may be seen from query i when j <= i (top-left aligned when Tq != Tk)
    const TensorOptions positions{.dtype = q.dtype(), .device = q.device()};
    scores = where(le(arange(Tk, positions).unsqueeze(0), arange(Tq, positions).unsqueeze(1)), scores, minus_inf);
  } else if (mask.defined() && mask.dtype() == DType::Bool) {
    check_same_device(op, q, mask);
    scores = where(mask, scores, minus_inf);
  } else if (mask.defined()) {
    HC_CHECK(mask.dtype() == q.dtype(), DTypeError, op, ": attn_mask must be bool or q's dtype ", q.dtype(), ", got ",
             mask.dtype());
    check_same_device(op, q, mask);
    scores = scores + mask;
  }
  // Rows with nothing to attend to (all -inf) would give 0/0: they get weights 0, and no NaN reaches the
  // gradient either, since their scores are replaced before the softmax.
  const Tensor blocked = eq(max(scores.detach(), {-1}, /*keepdim=*/true), minus_inf);
  const Tensor zero = zeros({}, q.options());
  Tensor weights = where(blocked, zero, softmax(where(blocked, zero, scores), -1));
  if (options.dropout_p > 0) {
    Generator& gen = options.generator ? *options.generator : default_generator();
    const Tensor keep = ge(rand(weights.shape(), weights.options(), gen), scalar_tensor(options.dropout_p, q.options()));
    weights = weights * (keep.to(q.dtype()) * (1.0 / (1.0 - options.dropout_p)));
  }
  return matmul(weights, v);
}

}  // namespace hcgrad
