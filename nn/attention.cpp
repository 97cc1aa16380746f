// Causal multi-head self-attention; shapes as in nn/attention.h.
#include "hcgrad/nn/attention.h"

#include <cmath>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::nn {

Tensor causal_mask(int64_t T, Device device) {
  Tensor position = arange(T, {.dtype = DType::Int64, .device = device});
  return gt(position.unsqueeze(0), position.unsqueeze(1));  // mask[i, j] = j > i
}

SelfAttention::SelfAttention(int64_t d, int64_t h, Generator& gen, SelfAttentionOptions options)
    : dim(d), heads(h) {
  HC_CHECK(d > 0 && h > 0 && d % h == 0, ShapeError, "SelfAttention: heads (", h, ") must divide dim (", d, ")");
  const LinearOptions linear{.bias = options.bias, .dtype = options.dtype};
  qkv = register_module("qkv", std::make_shared<Linear>(d, 3 * d, gen, linear));
  proj = register_module("proj", std::make_shared<Linear>(d, d, gen, linear));
  Generator& masks = options.dropout_generator ? *options.dropout_generator : gen;
  attn_dropout = register_module("attn_dropout", std::make_shared<Dropout>(options.dropout, masks));
  resid_dropout = register_module("resid_dropout", std::make_shared<Dropout>(options.dropout, masks));
}

Tensor SelfAttention::forward(const Tensor& x) const {
  HC_CHECK(x.dim() == 3 && x.shape()[2] == dim, ShapeError, "SelfAttention: expected input [B, T, ", dim,
           "], got ", x.shape());
  const int64_t B = x.shape()[0], T = x.shape()[1], hd = dim / heads;
  const Tensor packed = qkv->forward(x);  // [B, T, 3C]: q, k, v side by side
  Tensor y;                               // [B, T, C], heads side by side
  if (!attn_dropout->is_training() || attn_dropout->p == 0) {
    // The fused op reads the heads in place and never forms the [B, H, T, T] weights, so it cannot drop any of
    // them: only without dropout.
    y = scaled_dot_product_attention(packed, heads, /*causal=*/true);
  } else {
    // [B, T, 3C] -> three [B, T, H, hd] views -> [B, H, T, hd]
    std::vector<Tensor> q_k_v = split(packed, dim, 2);
    auto heads_of = [&](const Tensor& t) { return t.view({B, T, heads, hd}).permute({0, 2, 1, 3}); };
    Tensor q = heads_of(q_k_v[0]), k = heads_of(q_k_v[1]), v = heads_of(q_k_v[2]);
    Tensor scores = matmul(q, k.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(hd)));  // [B, H, T, T]
    Tensor att = softmax(masked_fill(scores, causal_mask(T, x.device()), -INFINITY), -1);
    y = matmul(attn_dropout->forward(att), v).permute({0, 2, 1, 3}).reshape({B, T, dim});
  }
  return resid_dropout->forward(proj->forward(y));
}

}  // namespace hcgrad::nn
