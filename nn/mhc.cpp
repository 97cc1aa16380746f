// ManifoldHyperConnections: equations and layouts in nn/mhc.h. Shapes: B batch, N the middle dims N*
// flattened, S streams, F fractions of width d = D / F, P proposals, C = F + S·F columns (pre, then residual).
#include "hcgrad/nn/mhc.h"

#include <cmath>

#include "hcgrad/autograd/grad_mode.h"

#include "hcgrad/core/creation.h"
#include "hcgrad/nn/mhc_paper.h"

namespace hcgrad::nn {

// ---- StreamMixing ----

StreamMixing::StreamMixing(int64_t S, DType dtype) : num_streams(S) {
  weight = register_parameter("weight", eye(S, {.dtype = dtype}).reshape({S, S, 1, 1}));
}

Tensor StreamMixing::forward(const Tensor& x) const {
  // out[t] = Σ_s W[t, s] x[s]: [S', S] @ [..., S, D] -> [..., S', D], i.e. W^T [S, S'] as mixing weights
  return stream_mix(weight.reshape({num_streams, num_streams}).t(), x);
}

// ---- ManifoldHyperConnections ----

ManifoldHyperConnections::ManifoldHyperConnections(int64_t S, ManifoldHyperConnectionsOptions o, Branch branch)
    : num_streams(S),
      dim(o.dim),
      num_fracs(o.num_fracs),
      sinkhorn_iters(o.sinkhorn_iters),
      proposals(o.num_dynamic_alpha_proposals),
      streams_in_batch(o.streams_in_batch),
      fused(o.fused),
      recompute(o.recompute),
      sinkhorn_domain(o.sinkhorn_domain),
      residual_transform_(o.residual_transform),
      constraint_(o.residual_mix_constraint_fn),
      depth_residual_fn_(o.depth_residual_fn) {
  branch_ = std::move(branch);
  HC_CHECK(S >= 1, Error, "ManifoldHyperConnections: num_streams must be >= 1, got ", S);
  HC_CHECK(o.dim > 0, Error, "ManifoldHyperConnections: dim must be positive, got ", o.dim);
  HC_CHECK(o.num_fracs >= 1 && o.dim % o.num_fracs == 0, ShapeError, "ManifoldHyperConnections: dim (", o.dim,
           ") must be divisible by num_fracs (", o.num_fracs, ")");
  HC_CHECK(constraint_ || o.sinkhorn_iters >= 1, Error, "ManifoldHyperConnections: sinkhorn_iters must be >= 1, got ",
           o.sinkhorn_iters, " (the library's results for 0 differ between its versions and are not doubly stochastic)");
  HC_CHECK(o.num_dynamic_alpha_proposals >= 1, Error,
           "ManifoldHyperConnections: num_dynamic_alpha_proposals must be >= 1, got ", o.num_dynamic_alpha_proposals);
  // The library builds V > 1 but its scale vector has F + S·F entries for V·F + S·F columns, so it crashes
  // (b.8 / b.9); there is no reference behaviour to match.
  HC_CHECK(o.num_input_views == 1, Error, "ManifoldHyperConnections: num_input_views must be 1, got ",
           o.num_input_views, " (the reference library does not support several branch-input views for mHC)");
  HC_CHECK(o.dropout == 0 || o.dropout_generator, Error,
           "ManifoldHyperConnections: dropout > 0 needs options.dropout_generator");
  const int64_t F = o.num_fracs, d = o.dim / F, SF = S * F, C = F + SF, home = ((o.layer_index % S) + S) % S;
  const TensorOptions options{.dtype = o.dtype};

  // A = [row `home` all ones | I_SF] (the library's v2 construction, rows r = s·F + f).
  std::vector<double> alpha(static_cast<size_t>(SF * C), 0.0);
  for (int64_t f2 = 0; f2 < F; ++f2) alpha[home * C + f2] = 1.0;
  for (int64_t r = 0; r < SF; ++r) alpha[r * C + F + r] = 1.0;
  const bool identity_like = o.init == MhcInit::IdentityLike;
  HC_CHECK(!identity_like || F == 1, Error, "ManifoldHyperConnections: the identity-like init needs num_fracs = 1, ",
           "got ", F, " (the library's β [S, F, 1] writes every branch fraction into every fraction)");
  if (identity_like) {  // F = 1: column 0 the pre logits, columns 1 + t the residual logits [s, t]
    const IdentityLikeLogits logits = identity_like_logits(S, home, o.identity_logit);
    for (int64_t s = 0; s < S; ++s) {
      alpha[s * C] = logits.pre[s];
      for (int64_t t = 0; t < S; ++t) alpha[s * C + 1 + t] = logits.res[s * S + t];
    }
  }
  if (residual_transform_) register_module("residual_transform", residual_transform_);
  static_alpha = register_parameter("static_alpha", from_vector(alpha, {SF, C}).to(o.dtype));
  dynamic_alpha_fn = register_parameter("dynamic_alpha_fn", zeros({proposals, d, C}, options));
  pre_branch_scale = register_parameter("pre_branch_scale", full({1}, 0.01, options));
  residual_scale = register_parameter("residual_scale", full({1}, 0.01, options));
  if (o.add_branch_out_to_residual) {
    // 2σ(1) as the library; the identity-like init's 2σ(0) = 1
    static_beta = register_parameter("static_beta", full(F == 1 ? Shape{S} : Shape{S, F, 1}, identity_like ? 0.0 : 1.0,
                                                         options));
    dynamic_beta_fn = register_parameter("dynamic_beta_fn", zeros(F == 1 ? Shape{d} : Shape{d, F}, options));
    h_post_scale = register_parameter("h_post_scale", full({}, 0.01, options));
  }
  norm = register_module("norm", std::make_shared<ScaledRMSNorm>(d, o.dtype));
  if (o.mix_streams_before_norm)
    mix_streams = register_module("maybe_mix_streams", std::make_shared<StreamMixing>(S, o.dtype));
  if (depth_residual_fn_) register_module("depth_residual_fn", depth_residual_fn_);
  dropout_ = std::make_shared<Dropout>(o.dropout, o.dropout_generator ? *o.dropout_generator : unused_generator_);
  register_module("dropout", dropout_);
}

IdentityLikeLogits identity_like_logits(int64_t S, int64_t home, double c) {
  HC_CHECK(std::isfinite(c) && c > 0, Error, "mHC: identity_logit must be a positive number, got ", c);
  HC_CHECK(S >= 1 && home >= 0 && home < S, Error, "mHC: home stream ", home, " out of range for ", S, " streams");
  const double on = 1.0 / (1.0 + std::exp(-c));  // σ(c)
  const double off = S == 1 ? 0.0 : (1.0 - on) / static_cast<double>(S - 1);  // each other stream's share
  IdentityLikeLogits logits;
  for (int64_t s = 0; s < S; ++s) logits.pre.push_back(s == home ? c : std::log(off / (1.0 - off)));
  for (int64_t s = 0; s < S; ++s)
    for (int64_t t = 0; t < S; ++t) logits.res.push_back(s == t ? c : 0.0);
  return logits;
}

Tensor mhc_streams_last(const char* module, const Tensor& residuals, int64_t S, int64_t D, bool streams_in_batch,
                        int64_t& B, Shape& middle) {
  if (streams_in_batch) {
    HC_CHECK(residuals.dim() >= 2 && residuals.shape().back() == D && residuals.shape()[0] % S == 0, ShapeError,
             module, ": residuals ", residuals.shape(), " must be [B·S, ..., ", D,
             "] with the first dim a multiple of num_streams = ", S);
    B = residuals.shape()[0] / S;
    middle = Shape(residuals.shape().begin() + 1, residuals.shape().end() - 1);
    return residuals.reshape({B, S, numel(middle), D}).permute({0, 2, 1, 3});
  }
  HC_CHECK(residuals.dim() >= 3 && residuals.shape().back() == D && residuals.shape()[residuals.dim() - 2] == S,
           ShapeError, module, ": residuals ", residuals.shape(), " must be [B, ..., ", S, ", ", D,
           "] (streams next to the features)");
  B = residuals.shape()[0];
  middle = Shape(residuals.shape().begin() + 1, residuals.shape().end() - 2);
  return residuals.reshape({B, numel(middle), S, D});
}

void check_branch_output(const char* module, const Tensor& y, const Tensor& branch_input) {
  HC_CHECK(y.shape() == branch_input.shape(), ShapeError, module, ": branch output ", y.shape(),
           " must have the branch input's shape ", branch_input.shape());
}

Tensor mhc_streams_to_input(const Tensor& streams, const Shape& shape, bool streams_in_batch) {
  return streams_in_batch ? streams.permute({0, 2, 1, 3}).reshape(shape) : streams.reshape(shape);
}

ManifoldHyperConnections::Width ManifoldHyperConnections::width(const Tensor& input, bool mix_residuals) const {
  // Named shapes (the comments keep the letters of the file's header): streams S, fracs F, frac_width d = D / F,
  // rows S·F (row s·F + f: fraction f of stream s), batch B, tokens N (the middle dims flattened).
  const int64_t streams = num_streams, fracs = num_fracs, frac_width = dim / fracs, rows = streams * fracs;
  const Tensor residuals = residual_transform_ ? residual_transform_->forward(input) : input;
  int64_t batch = 0;
  Shape middle;
  const Tensor streams_last =
      mhc_streams_last(name().c_str(), residuals, streams, dim, streams_in_batch, batch, middle);  // [B, N, S, D]
  const int64_t tokens = streams_last.shape()[1];
  Tensor x = streams_last.reshape({batch, tokens, rows, frac_width});  // [B, N, S·F, d]
  const Tensor norm_input =
      mix_streams ? mix_streams->forward(streams_last).reshape({batch, tokens, rows, frac_width}) : x;

  // The projections x̂ W_p of all P proposals (and x̂ Wβ) in one fused op, x̂ = RMSNorm(norm_input):
  // [B, N, S·F, d] @ [d, P·C (+ F)], the proposals side by side; C = F + S·F columns (pre, then residual).
  const int64_t columns = dynamic_alpha_fn.shape()[2];
  const Tensor w_alpha = dynamic_alpha_fn.permute({1, 0, 2}).reshape({frac_width, proposals * columns});
  const Tensor w_beta = static_beta.defined() ? dynamic_beta_fn.reshape({frac_width, fracs}) : Tensor();
  const Tensor projections =
      scaled_rms_norm_matmul(norm_input, norm->gamma, w_beta.defined() ? cat({w_alpha, w_beta}, 1) : w_alpha);

  // α_p = A + scale ⊙ (x̂ W_p): [B, N, P, S·F, C]
  Tensor scale = cat({pre_branch_scale.expand({fracs}), residual_scale.expand({rows})}, 0);  // [C]
  Tensor alpha = static_alpha + scale * projections.narrow(-1, 0, proposals * columns)
                                            .reshape({batch, tokens, rows, proposals, columns})
                                            .permute({0, 1, 3, 2, 4});
  Tensor res_logits = alpha.narrow(-1, fracs, rows);  // [B, N, P, S·F, S·F]
  Tensor h_res = constraint_ ? constraint_(res_logits) : sinkhorn(res_logits, sinkhorn_iters, sinkhorn_domain);
  HC_CHECK(h_res.shape() == res_logits.shape(), ShapeError, "ManifoldHyperConnections: residual_mix_constraint_fn ",
           "returned ", h_res.shape(), " for logits ", res_logits.shape(), " (it must keep the shape)");
  Width out;
  out.h_res_logits = res_logits;
  out.h_pre = mean(sigmoid(alpha.narrow(-1, 0, fracs)), {2});  // [B, N, S·F, F]
  out.h_res = mean(h_res, {2});                                // [B, N, S·F, S·F]

  // u[f2] = Σ_r H_pre[r, f2] x[r] -> [B, N, F, d] = [B, N*, D];  m[c'] = Σ_r H_res[r, c'] x[r] -> [B, N, S, D]
  Shape branch_shape = middle;
  branch_shape.insert(branch_shape.begin(), batch);
  branch_shape.push_back(dim);
  out.branch_input = stream_mix(out.h_pre, x).reshape(branch_shape);
  out.streams = x;
  out.input_shape = residuals.shape();
  if (mix_residuals)
    out.residuals = mhc_streams_to_input(stream_mix(out.h_res, x).reshape({batch, tokens, streams, dim}),
                                         out.input_shape, streams_in_batch);
  if (static_beta.defined()) {
    // β[s, f1, f2] = 2σ(bβ[s, f1] + h_post_scale x̂[s, f1] · Wβ[:, f2]): [B, N, S·F, F] -> [B, N, S, F, F]
    Tensor b_beta = static_beta.reshape({rows, 1});
    out.beta = (2.0 * sigmoid(b_beta + h_post_scale * projections.narrow(-1, proposals * columns, fracs)))
                   .reshape({batch, tokens, streams, fracs, fracs});
  }
  return out;
}

// β [B, N, S, F1, F2] laid out as mixing weights [B, N, F1, S·F2] (a copy of B·N·S·F² values): stream_mix of
// them with y [B, N, F, d] gives the branch output's share of every row, [B, N, S·F, d] = [B, N, S, D].
Tensor ManifoldHyperConnections::beta_as_mix(const Width& w) const {
  const int64_t batch = w.beta.shape()[0], tokens = w.beta.shape()[1];
  return w.beta.permute({0, 1, 3, 2, 4}).reshape({batch, tokens, num_fracs, num_streams * num_fracs});
}

Tensor ManifoldHyperConnections::add_residual(const Width& w, const Tensor& y) const {
  if (!static_beta.defined()) return y;  // add_branch_out_to_residual = false
  const int64_t batch = w.beta.shape()[0], tokens = w.beta.shape()[1], frac_width = dim / num_fracs;
  check_branch_output("ManifoldHyperConnections", y, w.branch_input);
  // Depth connection: o[s, f2] = Σ_f1 β[s, f1, f2] y[f1].
  Tensor o = stream_mix(beta_as_mix(w), y.reshape({batch, tokens, num_fracs, frac_width}))
                 .reshape({batch, tokens, num_streams, dim});
  o = mhc_streams_to_input(o, w.input_shape, streams_in_batch);
  return dropout_->forward(depth_residual_fn_ ? depth_residual_fn_->forward(o, w.residuals) : o + w.residuals);
}

Tensor ManifoldHyperConnections::add_residual_by_stream_mix_add(const Width& w, const Tensor& y) const {
  const int64_t batch = w.beta.shape()[0], tokens = w.beta.shape()[1], frac_width = dim / num_fracs;
  check_branch_output("ManifoldHyperConnections", y, w.branch_input);
  // x_{l+1} = H_res^T x + β^T y (mHC eq. 3): the mixed streams [B, N, S·F, d] and the branch output's F
  // fractions as extra rows, one kernel pass instead of a mix, a mix and an add.
  Tensor next = stream_mix_add(w.h_res, w.streams, beta_as_mix(w), y.reshape({batch, tokens, num_fracs, frac_width}))
                    .reshape({batch, tokens, num_streams, dim});
  return dropout_->forward(mhc_streams_to_input(next, w.input_shape, streams_in_batch));
}

std::optional<ConnectionMaps> ManifoldHyperConnections::maps(const Tensor& residuals) const {
  if (num_fracs != 1 || !static_beta.defined()) return std::nullopt;
  autograd::NoGradGuard no_grad;
  const Width w = width(residuals, /*mix_residuals=*/false);
  const int64_t S = num_streams, B = w.beta.shape()[0], N = w.beta.shape()[1];
  ConnectionMaps m{.h_pre = w.h_pre.reshape({B, N, S}),
                   .h_res = w.h_res.transpose(-1, -2).contiguous(),  // the library's rows are sources
                   .h_post = w.beta.reshape({B, N, S}),
                   .h_res_with_iters = {}};
  if (!constraint_)
    m.h_res_with_iters = [logits = w.h_res_logits, domain = sinkhorn_domain](int64_t iters) {
      autograd::NoGradGuard no_grad;
      return mean(sinkhorn(logits, iters, domain), {2}).transpose(-1, -2).contiguous();
    };
  return m;
}

bool ManifoldHyperConnections::runs_fused_steps() const {
  return fused && proposals == 1 && !mix_streams && !residual_transform_ && !constraint_ && !depth_residual_fn_ &&
         static_beta.defined();
}

// The same equations as width() and the merge in two ops (hc_width, hc_depth with step.manifold): the width
// step reads the F pre columns of the parameters, the depth step the S·F residual columns and then β's F
// columns (its static bβ[s, f1] repeated for every f2), as plain matrices z = static + scale (x̂ W).
ConnectionSplit ManifoldHyperConnections::fused_split(const Tensor& residuals) const {
  const int64_t streams = num_streams, fracs = num_fracs, frac_width = dim / fracs, rows = streams * fracs;
  int64_t batch = 0;
  Shape middle;
  const Tensor x = mhc_streams_last(name().c_str(), residuals, streams, dim, streams_in_batch, batch, middle);
  const Tensor weight = dynamic_alpha_fn.reshape({frac_width, fracs + rows});  // P = 1
  const HcStep step{.streams = streams,
                    .fracs = fracs,
                    .manifold = true,
                    .sinkhorn_iters = sinkhorn_iters,
                    .sinkhorn_log_domain = sinkhorn_domain == SinkhornDomain::Log,
                    .recompute = recompute};
  Shape branch_shape = middle;
  branch_shape.insert(branch_shape.begin(), batch);
  branch_shape.push_back(dim);
  Tensor u = hc_width(x, norm->gamma, static_alpha.narrow(1, 0, fracs), weight.narrow(1, 0, fracs),
                      pre_branch_scale.expand({fracs}), step);
  auto depth_step = [this, x, step, branch_shape, input_shape = residuals.shape(), rows, frac_width](const Tensor& y) {
    const int64_t fracs = num_fracs;
    HC_CHECK(y.shape() == branch_shape, ShapeError, "ManifoldHyperConnections: branch output ", y.shape(),
             " must have the branch input's shape ", branch_shape);
    const Tensor statics =
        cat({static_alpha.narrow(1, fracs, rows), static_beta.reshape({rows, 1}).expand({rows, fracs})}, 1);
    const Tensor weight = cat({dynamic_alpha_fn.reshape({frac_width, fracs + rows}).narrow(1, fracs, rows),
                               dynamic_beta_fn.reshape({frac_width, fracs})},
                              1);
    const Tensor scales = cat({residual_scale.expand({rows}), h_post_scale.reshape({1}).expand({fracs})}, 0);
    const Tensor next =
        hc_depth(x, y.reshape({x.shape()[0], x.shape()[1], dim}), norm->gamma, statics, weight, scales, step);
    return dropout_->forward(mhc_streams_to_input(next, input_shape, streams_in_batch));
  };
  return {u.reshape(branch_shape), depth_step};
}

ConnectionSplit ManifoldHyperConnections::split(const Tensor& residuals) const {
  if (runs_fused_steps()) return fused_split(residuals);
  // A custom depth_residual_fn needs the mixed residuals on their own, and without the branch term there is
  // nothing to merge: both take the two-step path.
  if (depth_residual_fn_ || !static_beta.defined()) return split_of(*this, residuals);
  auto w = std::make_shared<Width>(width(residuals, /*mix_residuals=*/false));
  return {w->branch_input, [this, w](const Tensor& y) { return add_residual_by_stream_mix_add(*w, y); }};
}

std::shared_ptr<ConnectionModule> make_manifold_hyper_connections(int64_t S, ManifoldHyperConnectionsOptions o,
                                                                  Branch branch) {
  if (o.variant == MhcVariant::Paper)
    return std::make_shared<PaperManifoldHyperConnections>(S, std::move(o), std::move(branch));
  return std::make_shared<ManifoldHyperConnections>(S, std::move(o), std::move(branch));
}

}  // namespace hcgrad::nn
