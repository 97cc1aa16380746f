// A small Vision Transformer (Dosovitskiy et al. 2021) whose blocks join their streams through a connection
// module: the `hyper-connections` library's example ViT (its vit.py; docs/connections.md), in C++.
//
//   image [B, C, H, W] -> patches [B, n, p·p·C]      b c (h p1) (w p2) -> b (h w) (p1 p2 c), n = (H/p)(W/p)
//     -> LayerNorm -> Linear -> LayerNorm            patch embedding                       [B, n, D]
//     -> [cls; patches] + positions                  a learned class token, learned positions [B, n + 1, D]
//     -> expand to S streams -> depth x (attention block, MLP block), each inside its connection
//     -> reduce (sum of the streams) -> LayerNorm -> the class token's row -> Linear   logits [B, classes]
// With pool = "mean" (vit.py's other pool) there is no class token: positions [1, n, D], and the head reads
// the mean over the n tokens instead of the class token's row.
//
// The blocks are pre-norm: Attention = LayerNorm -> q, k, v (no bias) -> softmax(q kᵀ / √d_head) v -> Linear;
// FeedForward = LayerNorm -> Linear -> GELU (exact, as vit.py's nn.GELU) -> Linear. As in vit.py, Attention has
// no output Linear when heads == 1 and dim_head == dim (the merged heads are already [B, T, D]). A difference
// from vit.py, on purpose: each connection's home stream is its layer index mod S instead of Python's random
// choice, so a run is reproducible from its seed. vit.py's dropouts are left out (its defaults are 0).
// tools/refcheck runs this model on the library's own ViT (tests/fixtures/connections/vit.json).
#pragma once

#include "hcgrad/nn/hyper_connections_factory.h"
#include "hcgrad/nn/layers.h"
#include "hcgrad/nn/module.h"

namespace vit {

using hcgrad::Generator;
using hcgrad::Tensor;
using namespace hcgrad::nn;

struct ViTConfig {
  int64_t image_size = 8, patch_size = 4, channels = 1, classes = 10;
  int64_t dim = 64, depth = 4, heads = 4, dim_head = 16, mlp_dim = 128;
  std::string connection = "mhc";  // residual, hc, mhc, mhc-identity, mhc-paper or mhc-paper-identity
  int64_t streams = 4;             // for every connection but residual
  std::string pool = "cls";        // cls (the class token's row) or mean (the mean over the patch tokens)
  std::string describe() const;
};

class Attention : public Module {
 public:
  Attention(int64_t dim, int64_t heads, int64_t dim_head, Generator& gen);
  Tensor forward(const Tensor& x) const;  // [B, T, D] -> [B, T, D], every token sees every token

  int64_t heads, dim_head;
  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> qkv, out;  // out is null when heads == 1 and dim_head == dim (vit.py's project_out)
};

class FeedForward : public Module {
 public:
  FeedForward(int64_t dim, int64_t hidden, Generator& gen);
  Tensor forward(const Tensor& x) const;

  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> fc1, fc2;
};

// One transformer layer: attention and feed-forward, each inside its own connection (layer index 2l, 2l + 1).
class Layer : public Module {
 public:
  Layer(const ViTConfig& config, int64_t index, Generator& gen, const ConnectionBuilder& connect);
  Tensor forward(const Tensor& x) const;  // the streams in, the streams out

  std::shared_ptr<Attention> attn;
  std::shared_ptr<FeedForward> ff;
  Connection hc_attn, hc_ff;
};

class ViT : public Module {
 public:
  ViT(const ViTConfig& config, uint64_t seed);
  ViT(const ViT&) = delete;  // the connections' branches point at this model's layers
  Tensor forward(const Tensor& images) const;  // float [B, C, H, W] -> logits [B, classes]

  ViTConfig config;
  std::shared_ptr<LayerNorm> patch_norm_in, patch_norm_out, final_norm;
  std::shared_ptr<Linear> patch_proj, head;
  Tensor cls_token, positions;  // [1, 1, D], [1, n + 1, D]; pool mean: no cls_token, positions [1, n, D]
  std::shared_ptr<ModuleList> layers;  // of Layer
  std::vector<std::shared_ptr<Layer>> layer_list;  // the same layers, typed
  std::shared_ptr<Transform> expand_stream, reduce_stream;
};

}  // namespace vit
