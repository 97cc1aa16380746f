// PaperManifoldHyperConnections: equations, orientation and init in nn/mhc_paper.h. The shapes in the
// comments use B = batch, N = tokens (the middle dims N* flattened), S = streams (the paper's n), D = dim (the
// paper's C).
#include "hcgrad/nn/mhc_paper.h"

#include "hcgrad/autograd/grad_mode.h"

#include "hcgrad/core/creation.h"

namespace hcgrad::nn {

PaperManifoldHyperConnections::PaperManifoldHyperConnections(int64_t S, ManifoldHyperConnectionsOptions o,
                                                             Branch branch)
    : num_streams(S),
      dim(o.dim),
      sinkhorn_iters(o.sinkhorn_iters),
      streams_in_batch(o.streams_in_batch),
      fused(o.fused),
      recompute(o.recompute),
      sinkhorn_domain(o.sinkhorn_domain),
      residual_transform_(o.residual_transform),
      constraint_(o.residual_mix_constraint_fn),
      depth_residual_fn_(o.depth_residual_fn) {
  branch_ = std::move(branch);
  HC_CHECK(S >= 1, Error, "PaperManifoldHyperConnections: num_streams must be >= 1, got ", S);
  HC_CHECK(o.dim > 0, Error, "PaperManifoldHyperConnections: dim must be positive, got ", o.dim);
  HC_CHECK(o.num_fracs == 1, Error, "PaperManifoldHyperConnections: num_fracs must be 1, got ", o.num_fracs,
           " (the paper's mHC has no fractions; use variant Library for num_fracs > 1)");
  HC_CHECK(o.num_input_views == 1, Error, "PaperManifoldHyperConnections: num_input_views must be 1, got ",
           o.num_input_views);
  HC_CHECK(o.num_dynamic_alpha_proposals == 1, Error,
           "PaperManifoldHyperConnections: num_dynamic_alpha_proposals must be 1, got ", o.num_dynamic_alpha_proposals,
           " (proposals are a library option)");
  HC_CHECK(!o.mix_streams_before_norm && o.add_branch_out_to_residual, Error,
           "PaperManifoldHyperConnections: mix_streams_before_norm and add_branch_out_to_residual = false are "
           "library options (use variant Library)");
  HC_CHECK(constraint_ || o.sinkhorn_iters >= 1, Error,
           "PaperManifoldHyperConnections: sinkhorn_iters must be >= 1, got ", o.sinkhorn_iters);
  HC_CHECK(o.dropout == 0 || o.dropout_generator, Error,
           "PaperManifoldHyperConnections: dropout > 0 needs options.dropout_generator");
  const int64_t streams = S, home = ((o.layer_index % streams) + streams) % streams;
  const TensorOptions options{.dtype = o.dtype};
  std::vector<double> one_hot(static_cast<size_t>(streams), 0.0);
  one_hot[home] = 1.0;

  if (residual_transform_) register_module("residual_transform", residual_transform_);
  norm = register_module("norm", std::make_shared<ScaledRMSNorm>(streams * o.dim, o.dtype));
  // φ [S·D, S + S + S²]: the H_pre, H_post and H_res projections side by side
  phi = register_parameter("phi", zeros({streams * o.dim, 2 * streams + streams * streams}, options));
  alpha_pre = register_parameter("alpha_pre", full({}, 0.01, options));
  alpha_post = register_parameter("alpha_post", full({}, 0.01, options));
  alpha_res = register_parameter("alpha_res", full({}, 0.01, options));
  // The library's init (b_pre = e_k, b_post = 1, b_res = I) or a pre-norm residual at init (nn/mhc.h
  // identity_like_logits, b_post = 0).
  const bool identity_like = o.init == MhcInit::IdentityLike;
  const IdentityLikeLogits logits = identity_like ? identity_like_logits(streams, home, o.identity_logit)
                                                  : IdentityLikeLogits{};
  b_pre = register_parameter("b_pre", from_vector(identity_like ? logits.pre : one_hot, {streams}).to(o.dtype));  // [S]
  b_post = register_parameter("b_post", full({streams}, identity_like ? 0.0 : 1.0, options));                  // [S]
  b_res = register_parameter("b_res", identity_like ? from_vector(logits.res, {streams, streams}).to(o.dtype)
                                                    : eye(streams, options));  // [S, S]
  if (depth_residual_fn_) register_module("depth_residual_fn", depth_residual_fn_);
  dropout_ = std::make_shared<Dropout>(o.dropout, o.dropout_generator ? *o.dropout_generator : unused_generator_);
  register_module("dropout", dropout_);
}

PaperManifoldHyperConnections::Width PaperManifoldHyperConnections::width(const Tensor& input,
                                                                          bool mix_residuals) const {
  const int64_t streams = num_streams;
  const Tensor residuals = residual_transform_ ? residual_transform_->forward(input) : input;
  int64_t batch = 0;
  Shape middle;
  Tensor x =
      mhc_streams_last(name().c_str(), residuals, streams, dim, streams_in_batch, batch, middle);  // [B, N, S, D]
  const int64_t tokens = x.shape()[1];

  // eq. 7: x⃗' = RMSNorm(vec(x_l)) [B, N, S·D]; one projection [B, N, 2S + S²], fused as the paper does (the
  // norm divides the projection's small result, section 4.3.1)
  Tensor projection = scaled_rms_norm_matmul(x.reshape({batch, tokens, streams * dim}), norm->gamma, phi);
  Width out;
  out.h_pre = sigmoid(alpha_pre * projection.narrow(-1, 0, streams) + b_pre);                // eq. 8, [B, N, S]
  out.h_post = 2.0 * sigmoid(alpha_post * projection.narrow(-1, streams, streams) + b_post);  // [B, N, S]
  Tensor res_logits =  // [B, N, S, S], [t, s]
      alpha_res * projection.narrow(-1, 2 * streams, streams * streams).reshape({batch, tokens, streams, streams}) +
      b_res;
  out.h_res_logits = res_logits;
  out.h_res = constraint_ ? constraint_(res_logits) : sinkhorn(res_logits, sinkhorn_iters, sinkhorn_domain);  // eq. 9
  HC_CHECK(out.h_res.shape() == res_logits.shape(), ShapeError, "PaperManifoldHyperConnections: ",
           "residual_mix_constraint_fn returned ", out.h_res.shape(), " for logits ", res_logits.shape());

  // eq. 3: u = H_pre x_l = Σ_s H_pre[s] x_s;  r_t = (H_res x_l)_t = Σ_s H_res[t, s] x_s
  Shape branch_shape = middle;
  branch_shape.insert(branch_shape.begin(), batch);  // [B, N*, D]
  branch_shape.push_back(dim);
  // As stream mixes: H_pre [B, N, S] is the weights [B, N, S, 1], H_res^T [B, N, S, S] the weights [s, t].
  out.branch_input = stream_mix(out.h_pre.unsqueeze(-1), x).reshape(branch_shape);
  out.streams = x;
  out.input_shape = residuals.shape();
  if (mix_residuals)
    out.residuals = mhc_streams_to_input(stream_mix(out.h_res.transpose(-1, -2), x), out.input_shape, streams_in_batch);
  return out;
}

Tensor PaperManifoldHyperConnections::add_residual(const Width& w, const Tensor& y) const {
  const int64_t batch = w.h_post.shape()[0], tokens = w.h_post.shape()[1];
  check_branch_output("PaperManifoldHyperConnections", y, w.branch_input);
  // eq. 3: H_post^T F(u): stream t gets H_post[t] · y   [B, N, S, 1] * [B, N, 1, D]
  Tensor o = mhc_streams_to_input(w.h_post.unsqueeze(-1) * y.reshape({batch, tokens, 1, dim}), w.input_shape,
                                  streams_in_batch);
  return dropout_->forward(depth_residual_fn_ ? depth_residual_fn_->forward(o, w.residuals) : o + w.residuals);
}

Tensor PaperManifoldHyperConnections::add_residual_by_stream_mix_add(const Width& w, const Tensor& y) const {
  const int64_t batch = w.h_post.shape()[0], tokens = w.h_post.shape()[1];
  check_branch_output("PaperManifoldHyperConnections", y, w.branch_input);
  // eq. 3: x_{l+1} = H_res x_l + H_post^T F(u), the branch output y as one extra row weighted by H_post
  // [B, N, 1, S]: one kernel pass instead of a mix, a product and an add.
  Tensor merged =
      stream_mix_add(w.h_res.transpose(-1, -2), w.streams, w.h_post.unsqueeze(-2),
                     y.reshape({batch, tokens, 1, dim}));  // [B, N, S, D]
  return dropout_->forward(mhc_streams_to_input(merged, w.input_shape, streams_in_batch));
}

std::optional<ConnectionMaps> PaperManifoldHyperConnections::maps(const Tensor& residuals) const {
  autograd::NoGradGuard no_grad;
  const Width w = width(residuals, /*mix_residuals=*/false);
  ConnectionMaps m{.h_pre = w.h_pre, .h_res = w.h_res, .h_post = w.h_post, .h_res_with_iters = {}};
  if (!constraint_)
    m.h_res_with_iters = [logits = w.h_res_logits, domain = sinkhorn_domain](int64_t iters) {
      autograd::NoGradGuard no_grad;
      return sinkhorn(logits, iters, domain);
    };
  return m;
}

// The same equations as width() and the merge in two ops (hc_width, hc_depth with step.token_projection, each
// computing the norm over the token's S·D values and its own columns of φ). In the ops' terms row r = stream s
// and the coefficients of a row are z[s, j] = static[s, j] + scale[j] · (x⃗' · column (s, j)):
//   width, M = 1:      z[s, 0] = b_pre[s] + α_pre · p_s                     column s·1 + 0 = φ's pre column s
//   depth, M = S + 1:  z[s, t] = b_res[t, s] + α_res · R[t, s] (t < S)      φ's res column 2S + t·S + s
//                      z[s, S] = b_post[s] + α_post · q_s                   φ's post column S + s
// so row s holds source s's column of H_res and its own H_post; the ops run the Sinkhorn on the transpose,
// H_res[t, s], exactly as eq. 9 here.
ConnectionSplit PaperManifoldHyperConnections::fused_split(const Tensor& input) const {
  const int64_t S = num_streams;
  const Tensor residuals = residual_transform_ ? residual_transform_->forward(input) : input;
  int64_t batch = 0;
  Shape middle;
  const Tensor x = mhc_streams_last(name().c_str(), residuals, S, dim, streams_in_batch, batch, middle);  // [B, N, S, D]
  const HcStep step{.streams = S,
                    .manifold = true,
                    .sinkhorn_iters = sinkhorn_iters,
                    .sinkhorn_log_domain = sinkhorn_domain == SinkhornDomain::Log,
                    .recompute = recompute,
                    .token_projection = true};
  Shape branch_shape = middle;
  branch_shape.insert(branch_shape.begin(), batch);
  branch_shape.push_back(dim);
  const Tensor u = hc_width(x, norm->gamma, b_pre.reshape({S, 1}), phi.narrow(1, 0, S), alpha_pre.reshape({1}), step);
  auto depth_step = [this, x, step, branch_shape, input_shape = residuals.shape()](const Tensor& y) {
    const int64_t S = num_streams, K = S * dim;
    HC_CHECK(y.shape() == branch_shape, ShapeError, "PaperManifoldHyperConnections: branch output ", y.shape(),
             " must have the branch input's shape ", branch_shape);
    const Tensor statics = cat({b_res.t(), b_post.reshape({S, 1})}, 1);  // [S, S + 1]
    const Tensor res_columns = phi.narrow(1, 2 * S, S * S).reshape({K, S, S}).transpose(1, 2);  // [K, s, t]
    const Tensor weight = cat({res_columns, phi.narrow(1, S, S).reshape({K, S, 1})}, 2).reshape({K, S * (S + 1)});
    const Tensor scales = cat({alpha_res.reshape({1}).expand({S}), alpha_post.reshape({1})}, 0);  // [S + 1]
    const Tensor next =
        hc_depth(x, y.reshape({x.shape()[0], x.shape()[1], dim}), norm->gamma, statics, weight, scales, step);
    return dropout_->forward(mhc_streams_to_input(next, input_shape, streams_in_batch));
  };
  return {u.reshape(branch_shape), depth_step};
}

ConnectionSplit PaperManifoldHyperConnections::split(const Tensor& residuals) const {
  if (runs_fused_steps()) return fused_split(residuals);
  // A custom depth_residual_fn needs the mixed residuals on their own: the two-step path.
  if (depth_residual_fn_) return split_of(*this, residuals);
  auto w = std::make_shared<Width>(width(residuals, /*mix_residuals=*/false));
  return {w->branch_input, [this, w](const Tensor& y) { return add_residual_by_stream_mix_add(*w, y); }};
}

}  // namespace hcgrad::nn
