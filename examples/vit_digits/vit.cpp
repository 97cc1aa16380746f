// The ViT of vit.h.
#include "vit.h"

#include <cmath>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"
#include "hcgrad/nn/hyper_connections_factory.h"

namespace vit {

using namespace hcgrad;

std::string ViTConfig::describe() const {
  return detail::concat("ViT ", image_size, "x", image_size, " patches ", patch_size, "x", patch_size, ", dim ", dim,
                        ", depth ", depth, ", ", heads, " heads of ", dim_head, ", MLP ", mlp_dim, ", ", connection,
                        connection == "residual" ? "" : detail::concat(" x", streams), pool == "cls" ? "" : ", mean pool");
}

Attention::Attention(int64_t dim, int64_t heads, int64_t dim_head, Generator& gen) : heads(heads), dim_head(dim_head) {
  norm = register_module("norm", std::make_shared<LayerNorm>(dim));
  qkv = register_module("to_qkv", std::make_shared<Linear>(dim, 3 * heads * dim_head, gen, LinearOptions{.bias = false}));
  // vit.py projects the merged heads back only when they are not already the model's width (project_out).
  if (!(heads == 1 && dim_head == dim))
    out = register_module("to_out", std::make_shared<Linear>(heads * dim_head, dim, gen));
}

Tensor Attention::forward(const Tensor& x) const {
  const int64_t B = x.size(0), T = x.size(1), inner = heads * dim_head;
  // [B, T, 3·inner] -> q, k, v as [B, heads, T, dim_head]
  std::vector<Tensor> q_k_v = split(qkv->forward(norm->forward(x)), inner, 2);
  auto heads_of = [&](const Tensor& t) { return t.view({B, T, heads, dim_head}).permute({0, 2, 1, 3}); };
  Tensor y = scaled_dot_product_attention(heads_of(q_k_v[0]), heads_of(q_k_v[1]), heads_of(q_k_v[2]),
                                          /*causal=*/false);
  Tensor merged = y.permute({0, 2, 1, 3}).reshape({B, T, inner});  // b h n d -> b n (h d)
  return out ? out->forward(merged) : merged;
}

FeedForward::FeedForward(int64_t dim, int64_t hidden, Generator& gen) {
  norm = register_module("norm", std::make_shared<LayerNorm>(dim));
  fc1 = register_module("fc1", std::make_shared<Linear>(dim, hidden, gen));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, dim, gen));
}

Tensor FeedForward::forward(const Tensor& x) const { return fc2->forward(gelu(fc1->forward(norm->forward(x)))); }

Layer::Layer(const ViTConfig& c, int64_t index, Generator& gen, const ConnectionBuilder& connect) {
  attn = register_module("attn", std::make_shared<Attention>(c.dim, c.heads, c.dim_head, gen));
  ff = register_module("ff", std::make_shared<FeedForward>(c.dim, c.mlp_dim, gen));
  hc_attn = connect(2 * index, [this](const Tensor& u) { return attn->forward(u); });
  hc_ff = connect(2 * index + 1, [this](const Tensor& u) { return ff->forward(u); });
  register_module("hc_attn", hc_attn.module());
  register_module("hc_ff", hc_ff.module());
}

Tensor Layer::forward(const Tensor& x) const { return hc_ff(hc_attn(x)); }

ViT::ViT(const ViTConfig& c, uint64_t seed) : config(c) {
  HC_CHECK(c.image_size % c.patch_size == 0, Error, "ViT: patch size ", c.patch_size, " must divide image size ",
           c.image_size);
  // Every connection tinylm knows except Frac's two forms: the ViT's blocks do not split their features.
  HC_CHECK(is_connection_name(c.connection) && !c.connection.starts_with("frac"), Error,
           "ViT: connection must be residual, hc, mhc, mhc-identity, mhc-paper or mhc-paper-identity, got '",
           c.connection, "'");
  HC_CHECK(c.pool == "cls" || c.pool == "mean", Error, "ViT: pool must be cls or mean, got '", c.pool, "'");
  Generator gen(seed);
  const int64_t patches = (c.image_size / c.patch_size) * (c.image_size / c.patch_size);
  const int64_t patch_dim = c.patch_size * c.patch_size * c.channels;
  patch_norm_in = register_module("patch_norm_in", std::make_shared<LayerNorm>(patch_dim));
  patch_proj = register_module("patch_proj", std::make_shared<Linear>(patch_dim, c.dim, gen));
  patch_norm_out = register_module("patch_norm_out", std::make_shared<LayerNorm>(c.dim));
  const int64_t cls_tokens = c.pool == "cls" ? 1 : 0;
  if (cls_tokens == 1) cls_token = register_parameter("cls_token", randn({1, 1, c.dim}, {}, gen));
  positions = register_parameter("pos_embedding", randn({1, patches + cls_tokens, c.dim}, {}, gen));

  // One factory call builds every connection (and the expand / reduce around them), as vit.py's Transformer.
  const NamedConnections made = connections_by_name(c.connection, c.connection == "residual" ? 1 : c.streams, 1, c.dim);
  expand_stream = made.expand_stream;
  reduce_stream = made.reduce_stream;
  register_module("expand_stream", expand_stream);
  register_module("reduce_stream", reduce_stream);
  layers = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t l = 0; l < c.depth; ++l) layer_list.push_back(layers->push_back(std::make_shared<Layer>(c, l, gen, made.init_hc)));
  final_norm = register_module("norm", std::make_shared<LayerNorm>(c.dim));
  head = register_module("head", std::make_shared<Linear>(c.dim, c.classes, gen));
}

Tensor ViT::forward(const Tensor& images) const {
  const ViTConfig& c = config;
  HC_CHECK(images.dim() == 4 && images.size(1) == c.channels && images.size(2) == c.image_size &&
               images.size(3) == c.image_size,
           ShapeError, "ViT: expected images [B, ", c.channels, ", ", c.image_size, ", ", c.image_size, "], got ",
           images.shape());
  const int64_t B = images.size(0), p = c.patch_size, g = c.image_size / p;
  // b c (h p1) (w p2) -> b (h w) (p1 p2 c)
  Tensor patches = images.reshape({B, c.channels, g, p, g, p}).permute({0, 2, 4, 3, 5, 1}).reshape({B, g * g, p * p * c.channels});
  Tensor x = patch_norm_out->forward(patch_proj->forward(patch_norm_in->forward(patches)));  // [B, n, D]
  if (cls_token.defined()) x = cat({cls_token.expand({B, 1, c.dim}), x}, 1);  // [B, n + 1, D]
  x = x + positions;
  x = expand_stream->forward(x);
  for (const auto& layer : layer_list) x = layer->forward(x);
  x = final_norm->forward(reduce_stream->forward(x));  // [B, T, D]
  if (c.pool == "mean") return head->forward(mean(x, {1}));     // the mean over the tokens
  return head->forward(x.narrow(1, 0, 1).reshape({B, c.dim}));  // the class token's row
}

}  // namespace vit
