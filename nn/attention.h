// Causal multi-head self-attention (Vaswani et al. 2017; GPT-2's layout: one fused q/k/v projection).
//
//   x [B, T, C] -> qkv = x W_qkv^T + b    [B, T, 3C], split into q, k, v, each viewed as [B, H, T, C/H]
//   att = softmax(q k^T / sqrt(C/H) + causal mask)   [B, H, T, T]   (position t sees positions <= t)
//   y = (att v) merged back to [B, T, C], then the output projection W_proj.
//
// The heads are strided views of qkv. Without attention dropout, att and y come from the fused
// scaled_dot_product_attention (core/ops.h), which never forms the T x T weights; with dropout the
// weights are formed explicitly, so that dropout can zero some of them.
#pragma once

#include "hcgrad/nn/layers.h"

namespace hcgrad::nn {

struct SelfAttentionOptions {
  double dropout = 0.0;  // on the attention weights and on the output
  bool bias = true;
  DType dtype = DType::Float32;
  Generator* dropout_generator = nullptr;  // for the dropout masks; null: the init generator
};

class SelfAttention : public Module {
 public:
  SelfAttention(int64_t dim, int64_t heads, Generator& gen, SelfAttentionOptions options = {});
  Tensor forward(const Tensor& x) const;  // [B, T, C] -> [B, T, C]

  int64_t dim, heads;
  std::shared_ptr<Linear> qkv;   // C -> 3C: the q, k, v projections side by side
  std::shared_ptr<Linear> proj;  // C -> C: the output projection (scaled at init by GPT)
  std::shared_ptr<Dropout> attn_dropout, resid_dropout;
};

// The [T, T] bool mask that is true above the diagonal: the future positions attention must not see.
Tensor causal_mask(int64_t T, Device device = Device::cpu());

}  // namespace hcgrad::nn
