// ChannelFirstHyperConnections: equations in nn/hyper_connections_channel_first.h. Shapes below use B (batch),
// S streams, D channels, P the spatial dims (H, W, ...) flattened: the work happens with the channels last,
// where each 1×1 conv is a matmul with its [out, D] weight.
#include "hcgrad/nn/hyper_connections_channel_first.h"

#include <cmath>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::nn {

namespace {

Shape spatial_dims(const Tensor& t) { return Shape(t.shape().begin() + 2, t.shape().end()); }

Shape with_spatial(std::initializer_list<int64_t> head, const Shape& spatial) {
  Shape out(head);
  out.insert(out.end(), spatial.begin(), spatial.end());
  return out;
}

}  // namespace

ChannelFirstHyperConnections::Conv1x1::Conv1x1(int64_t out_channels, int64_t in_channels, DType dtype) {
  weight = register_parameter("weight", zeros({out_channels, in_channels, 1, 1}, {.dtype = dtype}));
}

ChannelFirstHyperConnections::ChannelRMSNorm::ChannelRMSNorm(int64_t d, DType dtype) : dim(d) {
  gamma = register_parameter("gamma", zeros({d, 1, 1}, {.dtype = dtype}));
}

Tensor ChannelFirstHyperConnections::ChannelRMSNorm::forward_features_last(const Tensor& x) const {
  Tensor norm = clamp(sqrt(sum(x * x, {-1}, /*keepdim=*/true)), 1e-12, std::nullopt);
  return x / norm * std::sqrt(static_cast<double>(dim)) * (gamma.reshape({dim}) + 1.0);
}

ChannelFirstHyperConnections::ChannelFirstHyperConnections(int64_t S, ChannelFirstHyperConnectionsOptions o,
                                                           Branch branch)
    : num_streams(S), dim(o.dim), tanh(o.tanh) {
  branch_ = std::move(branch);
  HC_CHECK(S >= 1, Error, "ChannelFirstHyperConnections: num_streams must be >= 1, got ", S);
  HC_CHECK(o.dim > 0, Error, "ChannelFirstHyperConnections: dim must be positive, got ", o.dim);
  HC_CHECK(o.dropout == 0 || o.dropout_generator, Error,
           "ChannelFirstHyperConnections: dropout > 0 needs options.dropout_generator");
  const int64_t home = ((o.layer_index % S) + S) % S;
  const TensorOptions options{.dtype = o.dtype};

  // A = [e_k | I]: the branch reads the home stream, every stream keeps itself.
  std::vector<double> alpha(static_cast<size_t>(S * (1 + S)), 0.0);
  for (int64_t s = 0; s < S; ++s) {
    if (s == home) alpha[s * (1 + S)] = 1.0;
    alpha[s * (1 + S) + 1 + s] = 1.0;
  }
  static_alpha = register_parameter("static_alpha", from_vector(alpha, {S, 1 + S}).to(o.dtype));
  static_beta = register_parameter("static_beta", ones({S}, options));
  dynamic_alpha_fn = register_module("dynamic_alpha_fn", std::make_shared<Conv1x1>(1 + S, o.dim, o.dtype));
  dynamic_alpha_scale = register_parameter("dynamic_alpha_scale", full({}, 0.01, options));
  dynamic_beta_fn = register_module("dynamic_beta_fn", std::make_shared<ModuleList>());
  beta_conv_ = dynamic_beta_fn->push_back(std::make_shared<Conv1x1>(1, o.dim, o.dtype));
  dynamic_beta_scale = register_parameter("dynamic_beta_scale", full({}, 0.01, options));
  norm = register_module("norm", std::make_shared<ChannelRMSNorm>(o.dim, o.dtype));
  dropout_ = std::make_shared<Dropout>(o.dropout, o.dropout_generator ? *o.dropout_generator : unused_generator_);
  register_module("dropout", dropout_);
}

ChannelFirstHyperConnections::Width ChannelFirstHyperConnections::width(const Tensor& residuals) const {
  const int64_t S = num_streams, D = dim;
  HC_CHECK(residuals.dim() >= 3 && residuals.shape()[1] == D && residuals.shape()[0] % S == 0, ShapeError,
           "ChannelFirstHyperConnections: residuals ", residuals.shape(), " must be [B·S, ", D,
           ", H, W] (channels on axis 1) with the first dim a multiple of num_streams = ", S);
  const Shape spatial = spatial_dims(residuals);
  const int64_t B = residuals.shape()[0] / S, P = numel(spatial);
  auto phi = [&](const Tensor& t) { return tanh ? hcgrad::tanh(t) : t; };

  // [B·S, D, P] -> [B, P, S, D]: per pixel, the S streams' channel vectors.
  Tensor x = residuals.reshape({B, S, D, P}).permute({0, 3, 1, 2});
  Tensor x_hat = norm->forward_features_last(x);
  // The 1×1 convs: α [B, P, S, 1 + S], β [B, P, S].
  Tensor w_alpha = dynamic_alpha_fn->weight.reshape({1 + S, D}).t();
  Tensor alpha = static_alpha + dynamic_alpha_scale * phi(matmul(x_hat, w_alpha));
  Tensor w_beta = beta_conv_->weight.reshape({1, D}).t();
  Tensor beta = static_beta + dynamic_beta_scale * phi(matmul(x_hat, w_beta)).squeeze(-1);
  // m = αᵀ x: [B, P, 1 + S, D]; column 0 is the branch input, 1 + t the mixed stream t.
  Tensor m = matmul(alpha.transpose(-1, -2), x);

  Width out;
  out.branch_input = m.select(2, 0).transpose(1, 2).reshape(with_spatial({B, D}, spatial));
  out.residuals = m.narrow(2, 1, S).permute({0, 2, 3, 1}).reshape(with_spatial({B * S, D}, spatial));
  out.beta = beta.transpose(1, 2).reshape(with_spatial({B, S}, spatial));
  return out;
}

Tensor ChannelFirstHyperConnections::add_residual(const Width& w, const Tensor& y) const {
  const int64_t S = num_streams, D = dim, B = w.beta.shape()[0];
  const Shape spatial(w.beta.shape().begin() + 2, w.beta.shape().end());
  const int64_t P = numel(spatial);
  HC_CHECK(y.shape() == with_spatial({B, D}, spatial), ShapeError, "ChannelFirstHyperConnections: branch output ",
           y.shape(), " must have the branch input's shape ", with_spatial({B, D}, spatial));
  // new_t = r_t + β_t · y: [B, S, D, P] + [B, S, 1, P] · [B, 1, D, P]
  Tensor r = w.residuals.reshape({B, S, D, P});
  Tensor o = w.beta.reshape({B, S, 1, P}) * y.reshape({B, 1, D, P});
  return dropout_->forward((r + o).reshape(with_spatial({B * S, D}, spatial)));
}

}  // namespace hcgrad::nn
