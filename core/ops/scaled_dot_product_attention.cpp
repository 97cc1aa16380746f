// Scaled dot-product attention as one fused op (FlashAttention's forward and backward, Dao et al. 2022/2023).
//
//   S = q k^T * scale    [B, H, T, T]   (keys j > i masked to -inf when causal)
//   out = softmax(S) v   [B, H, T, hd]
//
// The forward keeps only out and lse = logsumexp of each row of S ([B, H, T]); backward recomputes
// P = exp(S - lse) tile by tile, so memory stays linear in T:
//   D_i = sum_d dout[i,d] out[i,d],  dv = P^T dout,  dP = dout v^T,  dS = P * (dP - D),
//   dq = scale * dS k,  dk = scale * dS^T q
#include <cmath>

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

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                    std::optional<double> scale) {
  check_attention_inputs(q, k, v);
  const Shape& shape = q.shape();  // [B, H, T, hd]
  const double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(shape[3])));
  // The kernels index plain row-major heads; q, k, v are often strided views of one qkv projection.
  Tensor qc = as_contiguous(q), kc = as_contiguous(k), vc = as_contiguous(v);
  Tensor out = Tensor::empty(shape, q.options());
  Tensor lse = Tensor::empty({shape[0], shape[1], shape[2]}, q.options());  // [B, H, T]
  HC_KERNEL(scaled_dot_product_attention_forward, out, out, lse, qc, kc, vc, causal, s);
  return record(kAttention, out, {q, k, v},
                [q = save(qc, kAttention), k = save(kc, kAttention), v = save(vc, kAttention),
                 o = save(out, kAttention), lse, causal, s](const Tensor& g, const Needs& need) {
                  Tensor qv = q.get(), kv = k.get(), vv = v.get(), ov = o.get();
                  Tensor grad_q = empty_if(need[0], qv.shape(), g.options());
                  Tensor grad_k = empty_if(need[1], qv.shape(), g.options());
                  Tensor grad_v = empty_if(need[2], qv.shape(), g.options());
                  HC_KERNEL(scaled_dot_product_attention_backward, g, grad_q, grad_k, grad_v, as_contiguous(g), qv, kv, vv, ov, lse,
                            causal, s);
                  return TensorList{grad_q, grad_k, grad_v};
                });
}

}  // namespace hcgrad
