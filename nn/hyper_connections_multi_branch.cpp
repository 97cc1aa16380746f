// MultiBranchHyperConnections: equations in nn/hyper_connections_multi_branch.h. Shapes below use B (batch),
// N (the middle dims N* flattened), S streams, I branch inputs, D features.
#include "hcgrad/nn/hyper_connections_multi_branch.h"

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"
#include "hcgrad/nn/layout.h"

namespace hcgrad::nn {

using layout::concat_shape;
using layout::features_first;
using layout::features_last;
using layout::middle_dims;

MultiBranchHyperConnections::MultiBranchHyperConnections(int64_t S, MultiBranchHyperConnectionsOptions o,
                                                         Branch branch)
    : num_streams(S), dim(o.dim), num_branch_inputs(o.num_branch_inputs), tanh(o.tanh), channel_first(o.channel_first) {
  const int64_t I = o.num_branch_inputs;
  HC_CHECK(S >= 1, Error, "MultiBranchHyperConnections: num_streams must be >= 1, got ", S);
  HC_CHECK(o.dim > 0, Error, "MultiBranchHyperConnections: dim must be positive, got ", o.dim);
  HC_CHECK(I >= 1, Error, "MultiBranchHyperConnections: num_branch_inputs must be >= 1, got ", I);
  HC_CHECK(!(branch && !o.branches.empty()), Error,
           "MultiBranchHyperConnections: give either a branch or options.branches, not both");
  HC_CHECK(o.branches.empty() || I % static_cast<int64_t>(o.branches.size()) == 0, Error,
           "MultiBranchHyperConnections: num_branch_inputs (", I, ") must be divisible by the number of branches (",
           o.branches.size(), ")");
  HC_CHECK(o.dropout == 0 || o.dropout_generator, Error,
           "MultiBranchHyperConnections: dropout > 0 needs options.dropout_generator");
  if (!o.branches.empty())
    branch_ = [branches = o.branches](const Tensor& u) { return run_branches(branches, u); };
  else
    branch_ = std::move(branch);

  // A = [read columns | I_S], read column i: A[s, i] = 1 iff (s + i + L) mod S == 0.
  const int64_t L = (((o.layer_index % (S * I)) + S * I) % (S * I)) * I, C = I + S;
  std::vector<double> alpha(static_cast<size_t>(S * C), 0.0);
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t i = 0; i < I; ++i)
      if ((s + i + L) % S == 0) alpha[s * C + i] = 1.0;
    alpha[s * C + I + s] = 1.0;
  }
  const TensorOptions options{.dtype = o.dtype};
  static_alpha = register_parameter("static_alpha", from_vector(alpha, {S, C}).to(o.dtype));
  dynamic_alpha_fn = register_parameter("dynamic_alpha_fn", zeros({o.dim, C}, options));
  dynamic_alpha_scale = register_parameter("dynamic_alpha_scale", full({}, 0.01, options));
  static_beta = register_parameter("static_beta", ones({S, I}, options));
  dynamic_beta_fn = register_parameter("dynamic_beta_fn", zeros({o.dim, I}, options));
  dynamic_beta_scale = register_parameter("dynamic_beta_scale", full({}, 0.01, options));
  norm = register_module("norm", std::make_shared<ScaledRMSNorm>(o.dim, o.dtype));
  dropout_ = std::make_shared<Dropout>(o.dropout, o.dropout_generator ? *o.dropout_generator : unused_generator_);
  register_module("dropout", dropout_);
}

Tensor MultiBranchHyperConnections::run_branches(const std::vector<Branch>& branches, const Tensor& x) {
  const int64_t n = static_cast<int64_t>(branches.size());
  HC_CHECK(n >= 1 && x.dim() >= 1 && x.shape()[0] % n == 0, ShapeError, "MultiBranchHyperConnections: branch input ",
           x.shape(), " cannot be split into ", n, " equal chunks of rows, one per branch");
  const int64_t rows = x.shape()[0] / n;
  std::vector<Tensor> outputs;
  for (int64_t j = 0; j < n; ++j) outputs.push_back(branches[j](x.narrow(0, j * rows, rows)));
  return cat(outputs, 0);
}

MultiBranchHyperConnections::Width MultiBranchHyperConnections::width(const Tensor& input) const {
  const int64_t S = num_streams, I = num_branch_inputs, D = dim;
  if (channel_first) {
    HC_CHECK(input.dim() >= 3 && input.shape()[1] == D && input.shape()[0] % S == 0, ShapeError,
             "MultiBranchHyperConnections: channel-first residuals ", input.shape(), " must be [B·S, ", D,
             ", ...] with the first dim a multiple of num_streams = ", S);
  } else {
    HC_CHECK(input.dim() >= 2 && input.shape().back() == D && input.shape()[0] % S == 0, ShapeError,
             "MultiBranchHyperConnections: residuals ", input.shape(), " must be [B·S, ..., ", D,
             "] with the first dim a multiple of num_streams = ", S);
  }
  const Tensor residuals = channel_first ? features_last(input) : input;
  const Shape middle = middle_dims(residuals);
  const int64_t B = residuals.shape()[0] / S, N = numel(middle);
  auto phi = [&](const Tensor& t) { return tanh ? hcgrad::tanh(t) : t; };

  Tensor x = residuals.reshape({B, S, N, D}).permute({0, 2, 1, 3});  // [B, N, S, D]
  Tensor x_hat = norm->forward(x);
  Tensor alpha = static_alpha + dynamic_alpha_scale * phi(matmul(x_hat, dynamic_alpha_fn));  // [B, N, S, I + S]
  Tensor beta = static_beta + dynamic_beta_scale * phi(matmul(x_hat, dynamic_beta_fn));      // [B, N, S, I]
  Tensor m = matmul(alpha.transpose(-1, -2), x);                                              // [B, N, I + S, D]

  Width out;
  Tensor u = m.narrow(2, 0, I).permute({2, 0, 1, 3}).reshape(concat_shape({I * B}, middle, {D}));
  out.branch_input = channel_first ? features_first(u) : u;
  out.residuals = m.narrow(2, I, S).reshape(concat_shape({B}, middle, {S, D}));
  out.beta = beta.reshape(concat_shape({B}, middle, {S, I}));
  return out;
}

Tensor MultiBranchHyperConnections::add_residual(const Width& w, const Tensor& branch_output) const {
  const int64_t S = num_streams, I = num_branch_inputs, D = dim, B = w.residuals.shape()[0];
  const Shape middle(w.residuals.shape().begin() + 1, w.residuals.shape().end() - 2);
  const int64_t N = numel(middle);
  const Shape expected = concat_shape({I * B}, middle, {D});
  const Tensor y = channel_first && branch_output.dim() >= 2 ? features_last(branch_output) : branch_output;
  HC_CHECK(y.shape() == expected, ShapeError, "MultiBranchHyperConnections: branch output ", branch_output.shape(),
           " must have the branch input's shape ", channel_first ? concat_shape({I * B, D}, middle, {}) : expected);
  // new_s = r_s + Σ_i β[s, i] y_i: [B, N, S, I] @ [B, N, I, D] -> [B, N, S, D] -> [B·S, N*, D]
  Tensor y_per_input = y.reshape({I, B, N, D}).permute({1, 2, 0, 3});
  Tensor mixed = w.residuals.reshape({B, N, S, D}) + matmul(w.beta.reshape({B, N, S, I}), y_per_input);
  Tensor out = mixed.permute({0, 2, 1, 3}).reshape(concat_shape({B * S}, middle, {D}));
  return dropout_->forward(channel_first ? features_first(out) : out);
}

ConnectionFactory<MultiBranchHyperConnectionsOptions> multi_branch_hyper_connections(int64_t S,
                                                                                     MultiBranchFactoryOptions o) {
  HC_CHECK(S >= 1, Error, "multi_branch_hyper_connections: num_streams must be >= 1, got ", S);
  const bool disabled = o.disable.value_or(S == 1);
  auto make = [S, disabled](MultiBranchHyperConnectionsOptions options, Branch branch) {
    if (disabled) {
      if (!options.branches.empty())
        branch = [branches = options.branches](const Tensor& u) {
          return MultiBranchHyperConnections::run_branches(branches, u);
        };
      return Connection(std::make_shared<Residual>(std::move(branch)));
    }
    return Connection(std::make_shared<MultiBranchHyperConnections>(S, std::move(options), std::move(branch)));
  };
  std::shared_ptr<Transform> expand, reduce;
  if (disabled) {
    expand = reduce = std::make_shared<TransformFn>([](const Tensor& x) { return x; });
  } else {
    expand = std::make_shared<ExpandStreams>(S);
    reduce = std::make_shared<ReduceStreams>(S);
  }
  return {ConnectionInit<MultiBranchHyperConnectionsOptions>(make), StreamFunction(expand), StreamFunction(reduce)};
}

}  // namespace hcgrad::nn
