// ManifoldHyperConnections: equations and layouts in nn/mhc.h. Shapes: B batch, N the middle dims N*
// flattened, S streams, D width, P proposals, C = 1 + S columns (pre, then one per target stream).
#include "nn/mhc.h"

#include "core/creation.h"

namespace hcgrad::nn {

ManifoldHyperConnections::ManifoldHyperConnections(int64_t S, ManifoldHyperConnectionsOptions o, Branch branch)
    : num_streams(S),
      dim(o.dim),
      sinkhorn_iters(o.sinkhorn_iters),
      proposals(o.num_dynamic_alpha_proposals),
      streams_in_batch(o.streams_in_batch),
      sinkhorn_domain(o.sinkhorn_domain) {
  branch_ = std::move(branch);
  HC_CHECK(S >= 1, Error, "ManifoldHyperConnections: num_streams must be >= 1, got ", S);
  HC_CHECK(o.dim > 0, Error, "ManifoldHyperConnections: dim must be positive, got ", o.dim);
  HC_CHECK(o.sinkhorn_iters >= 1, Error, "ManifoldHyperConnections: sinkhorn_iters must be >= 1, got ",
           o.sinkhorn_iters, " (the library's results for 0 differ between its versions and are not doubly stochastic)");
  HC_CHECK(o.num_dynamic_alpha_proposals >= 1, Error,
           "ManifoldHyperConnections: num_dynamic_alpha_proposals must be >= 1, got ", o.num_dynamic_alpha_proposals);
  HC_CHECK(o.num_fracs == 1, Error, "ManifoldHyperConnections: num_fracs > 1 is not implemented yet");
  HC_CHECK(!o.residual_transform, Error, "ManifoldHyperConnections: residual_transform is not implemented yet");
  HC_CHECK(o.dropout == 0 || o.dropout_generator, Error,
           "ManifoldHyperConnections: dropout > 0 needs options.dropout_generator");
  const int64_t C = 1 + S, home = ((o.layer_index % S) + S) % S;
  const TensorOptions options{.dtype = o.dtype};
  std::vector<double> alpha(static_cast<size_t>(S * C), 0.0);
  alpha[home * C] = 1.0;                                  // the branch reads the home stream
  for (int64_t s = 0; s < S; ++s) alpha[s * C + 1 + s] = 1.0;  // each stream keeps itself
  static_alpha = register_parameter("static_alpha", from_vector(alpha, {S, C}).to(o.dtype));
  dynamic_alpha_fn = register_parameter("dynamic_alpha_fn", zeros({proposals, o.dim, C}, options));
  pre_branch_scale = register_parameter("pre_branch_scale", full({1}, 0.01, options));
  residual_scale = register_parameter("residual_scale", full({1}, 0.01, options));
  static_beta = register_parameter("static_beta", ones({S}, options));
  dynamic_beta_fn = register_parameter("dynamic_beta_fn", zeros({o.dim}, options));
  h_post_scale = register_parameter("h_post_scale", full({}, 0.01, options));
  norm = register_module("norm", std::make_shared<ScaledRMSNorm>(o.dim, o.dtype));
  dropout_ = std::make_shared<Dropout>(o.dropout, o.dropout_generator ? *o.dropout_generator : unused_generator_);
  register_module("dropout", dropout_);
}

Tensor ManifoldHyperConnections::streams_last(const Tensor& residuals, int64_t& B, Shape& middle) const {
  const int64_t S = num_streams, D = dim;
  if (streams_in_batch) {
    HC_CHECK(residuals.dim() >= 2 && residuals.shape().back() == D && residuals.shape()[0] % S == 0, ShapeError,
             "ManifoldHyperConnections: residuals ", residuals.shape(), " must be [B·S, ..., ", D,
             "] with the first dim a multiple of num_streams = ", S);
    B = residuals.shape()[0] / S;
    middle = Shape(residuals.shape().begin() + 1, residuals.shape().end() - 1);
    return residuals.reshape({B, S, numel(middle), D}).permute({0, 2, 1, 3});
  }
  HC_CHECK(residuals.dim() >= 3 && residuals.shape().back() == D && residuals.shape()[residuals.dim() - 2] == S,
           ShapeError, "ManifoldHyperConnections: residuals ", residuals.shape(), " must be [B, ..., ", S, ", ", D,
           "] (streams next to the features)");
  B = residuals.shape()[0];
  middle = Shape(residuals.shape().begin() + 1, residuals.shape().end() - 2);
  return residuals.reshape({B, numel(middle), S, D});
}

ManifoldHyperConnections::Width ManifoldHyperConnections::width(const Tensor& residuals) const {
  const int64_t S = num_streams, D = dim;
  int64_t B = 0;
  Shape middle;
  Tensor x = streams_last(residuals, B, middle);  // [B, N, S, D]
  const int64_t N = x.shape()[1];
  Tensor x_hat = norm->forward(x);

  // α_p = A + scale ⊙ (x̂ W_p): [B, N, 1, S, D] @ [P, D, C] -> [B, N, P, S, C]
  Tensor scale = cat({pre_branch_scale, residual_scale.expand({S})}, 0);  // [C]
  Tensor alpha = static_alpha + scale * matmul(x_hat.unsqueeze(2), dynamic_alpha_fn);
  Width out;
  out.h_pre = mean(sigmoid(alpha.narrow(-1, 0, 1)), {2}).reshape({B, N, S});
  out.h_res = mean(sinkhorn(alpha.narrow(-1, 1, S), sinkhorn_iters, sinkhorn_domain), {2});  // [B, N, S, S]

  // u = Σ_s H_pre[s] x_s;  r_t = Σ_s H_res[s, t] x_s
  Shape branch_shape = middle;
  branch_shape.insert(branch_shape.begin(), B);
  branch_shape.push_back(D);
  out.branch_input = matmul(out.h_pre.unsqueeze(2), x).reshape(branch_shape);
  Tensor r = matmul(out.h_res.transpose(-1, -2), x);  // [B, N, S, D]
  out.residuals = streams_in_batch ? r.permute({0, 2, 1, 3}).reshape(residuals.shape()) : r.reshape(residuals.shape());
  out.beta = 2.0 * sigmoid(static_beta + h_post_scale * matmul(x_hat, dynamic_beta_fn));  // [B, N, S]
  return out;
}

Tensor ManifoldHyperConnections::add_residual(const Width& w, const Tensor& y) const {
  const int64_t B = w.beta.shape()[0], N = w.beta.shape()[1], D = dim;
  HC_CHECK(y.shape() == w.branch_input.shape(), ShapeError, "ManifoldHyperConnections: branch output ", y.shape(),
           " must have the branch input's shape ", w.branch_input.shape());
  Tensor o = w.beta.unsqueeze(-1) * y.reshape({B, N, 1, D});  // [B, N, S, D]
  if (streams_in_batch) o = o.permute({0, 2, 1, 3});
  return dropout_->forward(o.reshape(w.residuals.shape()) + w.residuals);
}

std::shared_ptr<ConnectionModule> make_manifold_hyper_connections(int64_t S, ManifoldHyperConnectionsOptions o,
                                                                  Branch branch) {
  return std::make_shared<ManifoldHyperConnections>(S, std::move(o), std::move(branch));
}

}  // namespace hcgrad::nn
