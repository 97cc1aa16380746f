// The basic layers, each with a libtorch-like options struct and PyTorch's parameter names and layouts
// (so a state dict maps one to one onto torch.nn's):
//   Linear     y = x W^T + b          weight [out, in], bias [out]
//   Embedding  y = weight[ids]        weight [num_embeddings, dim]
//   LayerNorm  (x - mean) / std * w + b over the last dim, weight/bias [dim]
//   RMSNorm    x / rms(x) * w over the last dim, weight [dim]
//   GroupNorm  layer norm over each group of channels and positions, weight/bias [channels]
//   Conv2d     conv2d(x, weight, bias)  weight [out, in / groups, k, k], bias [out]; Conv1d likewise
//   MaxPool2d  the maximum of each window
//   Dropout    zeroes a fraction p of the inputs in training, scales the rest by 1/(1-p); identity in eval
// Initialisation follows PyTorch's defaults; GPT re-initialises as GPT-2 does (nn/gpt.cpp).
#pragma once

#include <optional>

#include "hcgrad/core/random.h"
#include "hcgrad/nn/module.h"

namespace hcgrad::nn {

// Initialisers: fill an existing tensor in place (no autograd), drawing from `gen`.
void normal_(const Tensor& t, double mean, double std, Generator& gen);
void uniform_(const Tensor& t, double low, double high, Generator& gen);

struct LinearOptions {
  bool bias = true;
  DType dtype = DType::Float32;
};

class Linear : public Module {
 public:
  // weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)), as torch.nn.Linear.
  Linear(int64_t in_features, int64_t out_features, Generator& gen, LinearOptions options = {});
  Tensor forward(const Tensor& x) const;  // [..., in] -> [..., out]

  int64_t in_features, out_features;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out], or undefined without bias
};

// torch.nn.Conv2d / Conv1d: weight [out, in / groups, kh, kw] ([out, in / groups, k]) and bias [out] (PyTorch's
// names and layouts, so their safetensors load), both ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in =
// in / groups * kernel area, as torch initialises them.
struct ConvOptions {
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
  DType dtype = DType::Float32;
};
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen, ConvOptions options = {});
  Tensor forward(const Tensor& x) const;  // [N, in, H, W] -> [N, out, H', W']

  ConvOptions options;
  Tensor weight, bias;
};
class Conv1d : public Module {
 public:
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen, ConvOptions options = {});
  Tensor forward(const Tensor& x) const;  // [N, in, L] -> [N, out, L']

  ConvOptions options;
  Tensor weight, bias;
};
// torch.nn.MaxPool2d(kernel_size, stride = kernel_size, padding = 0); no parameters.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel_size, std::optional<int64_t> stride = std::nullopt, int64_t padding = 0)
      : kernel_size(kernel_size), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) const;

  int64_t kernel_size;
  std::optional<int64_t> stride;
  int64_t padding;
};

struct EmbeddingOptions {
  DType dtype = DType::Float32;
};

class Embedding : public Module {
 public:
  // weight ~ N(0, 1), as torch.nn.Embedding.
  Embedding(int64_t num_embeddings, int64_t dim, Generator& gen, EmbeddingOptions options = {});
  Tensor forward(const Tensor& ids) const;  // int64 [...] -> [..., dim]

  int64_t num_embeddings, dim;
  Tensor weight;  // [num_embeddings, dim]
};

struct NormOptions {
  double eps = 1e-5;
  bool affine = true;  // learn a weight (LayerNorm: and a bias); starts at weight 1, bias 0
  bool bias = true;    // LayerNorm only: GPT-2 has one, some models drop it
  DType dtype = DType::Float32;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, NormOptions options = {});
  Tensor forward(const Tensor& x) const;  // normalises the last dim

  int64_t dim;
  double eps;
  Tensor weight, bias;
};

// torch.nn.GroupNorm(num_groups, num_channels): over x [N, C, *]; weight and bias [C] (PyTorch's names).
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, NormOptions options = {});
  Tensor forward(const Tensor& x) const;

  int64_t num_groups, num_channels;
  double eps;
  Tensor weight, bias;
};

class RMSNorm : public Module {
 public:
  // eps defaults to the dtype's machine epsilon, as torch.nn.RMSNorm(eps=None).
  explicit RMSNorm(int64_t dim, NormOptions options = {.eps = 0});
  Tensor forward(const Tensor& x) const;

  int64_t dim;
  double eps;  // 0 means "the dtype's epsilon"
  Tensor weight;
};

class Dropout : public Module {
 public:
  // The mask is drawn from `gen`, which must outlive the module (a training run owns one generator for
  // dropout, stored in its checkpoint so a resumed run draws the same masks).
  Dropout(double p, Generator& gen);
  Tensor forward(const Tensor& x) const;

  double p;

 private:
  Generator* gen_;
};

}  // namespace hcgrad::nn
