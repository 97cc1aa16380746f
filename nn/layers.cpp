// Linear, Embedding, LayerNorm, RMSNorm, Dropout: thin modules over the fused ops of core/ops.h.
#include "hcgrad/nn/layers.h"

#include <cmath>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::nn {

void normal_(const Tensor& t, double mean, double std, Generator& gen) {
  autograd::NoGradGuard no_grad;
  Tensor(t).copy_(randn(t.shape(), t.options(), gen) * std + mean);
}

void uniform_(const Tensor& t, double low, double high, Generator& gen) {
  autograd::NoGradGuard no_grad;
  Tensor(t).copy_(rand(t.shape(), t.options(), gen) * (high - low) + low);
}

namespace {
void check_positive(const char* module, const char* what, int64_t value) {
  HC_CHECK(value > 0, ShapeError, module, ": ", what, " must be positive, got ", value);
}
}  // namespace

// ---- Linear ----

Linear::Linear(int64_t in, int64_t out, Generator& gen, LinearOptions options)
    : in_features(in), out_features(out) {
  check_positive("Linear", "in_features", in);
  check_positive("Linear", "out_features", out);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", empty({out, in}, {.dtype = options.dtype}));
  uniform_(weight, -bound, bound, gen);
  if (options.bias) {
    bias = register_parameter("bias", empty({out}, {.dtype = options.dtype}));
    uniform_(bias, -bound, bound, gen);
  }
}

namespace {
// A convolution's weight [out, in / groups, *kernel] and bias [out] (undefined without one), both uniform in
// ±1/√fan_in, fan_in = (in / groups)·Π kernel: torch's init for Conv1d and Conv2d.
struct ConvParameters {
  Tensor weight, bias;
};
ConvParameters conv_parameters(const char* name, int64_t in, int64_t out, const Shape& kernel, const ConvOptions& o,
                               Generator& gen) {
  check_positive(name, "in_channels", in);
  check_positive(name, "out_channels", out);
  check_positive(name, "groups", o.groups);
  HC_CHECK(in % o.groups == 0 && out % o.groups == 0, Error, name, ": in_channels ", in, " and out_channels ", out,
           " must be divisible by groups ", o.groups);
  Shape shape{out, in / o.groups};
  int64_t fan_in = in / o.groups;
  for (const int64_t k : kernel) {
    check_positive(name, "kernel_size", k);
    shape.push_back(k);
    fan_in *= k;
  }
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  ConvParameters p{empty(shape, {.dtype = o.dtype}), o.bias ? empty({out}, {.dtype = o.dtype}) : Tensor()};
  uniform_(p.weight, -bound, bound, gen);
  if (o.bias) uniform_(p.bias, -bound, bound, gen);
  return p;
}
}  // namespace

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel_size, Generator& gen, ConvOptions o) : options(o) {
  const ConvParameters p = conv_parameters("Conv2d", in, out, {kernel_size, kernel_size}, o, gen);
  weight = register_parameter("weight", p.weight);
  if (p.bias.defined()) bias = register_parameter("bias", p.bias);
}

Tensor Conv2d::forward(const Tensor& x) const {
  return conv2d(x, weight, bias,
                {.stride = {options.stride, options.stride}, .padding = {options.padding, options.padding},
                 .dilation = {options.dilation, options.dilation}, .groups = options.groups});
}

Conv1d::Conv1d(int64_t in, int64_t out, int64_t kernel_size, Generator& gen, ConvOptions o) : options(o) {
  const ConvParameters p = conv_parameters("Conv1d", in, out, {kernel_size}, o, gen);
  weight = register_parameter("weight", p.weight);
  if (p.bias.defined()) bias = register_parameter("bias", p.bias);
}

Tensor Conv1d::forward(const Tensor& x) const {
  return conv1d(x, weight, bias,
                {.stride = options.stride, .padding = options.padding, .dilation = options.dilation,
                 .groups = options.groups});
}

Tensor MaxPool2d::forward(const Tensor& x) const { return max_pool2d(x, kernel_size, stride, padding); }

Tensor Linear::forward(const Tensor& x) const {
  HC_CHECK(x.dim() >= 1 && x.shape().back() == in_features, ShapeError, "Linear: input of shape ", x.shape(),
           " does not end in in_features = ", in_features, " (weight ", weight.shape(), ")");
  return linear(x, weight, bias);  // one GEMM reading W transposed in place, the bias added in its epilogue
}

// ---- Embedding ----

Embedding::Embedding(int64_t num, int64_t d, Generator& gen, EmbeddingOptions options)
    : num_embeddings(num), dim(d) {
  check_positive("Embedding", "num_embeddings", num);
  check_positive("Embedding", "dim", d);
  weight = register_parameter("weight", empty({num, d}, {.dtype = options.dtype}));
  normal_(weight, 0.0, 1.0, gen);
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(ids, weight); }

// ---- LayerNorm, RMSNorm ----

LayerNorm::LayerNorm(int64_t d, NormOptions options) : dim(d), eps(options.eps) {
  check_positive("LayerNorm", "dim", d);
  if (options.affine) {
    weight = register_parameter("weight", ones({d}, {.dtype = options.dtype}));
    if (options.bias) bias = register_parameter("bias", zeros({d}, {.dtype = options.dtype}));
  }
}

Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, {dim}, weight, bias, eps); }

GroupNorm::GroupNorm(int64_t groups, int64_t channels, NormOptions options)
    : num_groups(groups), num_channels(channels), eps(options.eps) {
  check_positive("GroupNorm", "num_groups", groups);
  check_positive("GroupNorm", "num_channels", channels);
  HC_CHECK(channels % groups == 0, Error, "GroupNorm: ", channels, " channels cannot be split into ", groups,
           " groups");
  if (options.affine) {
    weight = register_parameter("weight", ones({channels}, {.dtype = options.dtype}));
    bias = register_parameter("bias", zeros({channels}, {.dtype = options.dtype}));
  }
}

Tensor GroupNorm::forward(const Tensor& x) const { return group_norm(x, num_groups, weight, bias, eps); }

RMSNorm::RMSNorm(int64_t d, NormOptions options) : dim(d), eps(options.eps) {
  check_positive("RMSNorm", "dim", d);
  if (options.affine) weight = register_parameter("weight", ones({d}, {.dtype = options.dtype}));
}

Tensor RMSNorm::forward(const Tensor& x) const {
  return rms_norm(x, {dim}, weight, eps > 0 ? std::optional<double>(eps) : std::nullopt);
}

// ---- Dropout ----

Dropout::Dropout(double p_, Generator& gen) : p(p_), gen_(&gen) {
  HC_CHECK(p >= 0 && p < 1, Error, "Dropout: p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& x) const {
  if (!is_training() || p == 0) return x;
  // keep = (u >= p) / (1 - p): a constant mask, so the gradient is the same mask (mul's backward).
  Tensor keep = ge(rand(x.shape(), x.options(), *gen_), scalar_tensor(p, x.options())).to(x.dtype());
  return x * (keep * (1.0 / (1.0 - p)));
}

}  // namespace hcgrad::nn
