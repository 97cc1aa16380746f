// PaperFracConnections: equations, layout and init in nn/frac_paper.h. The shapes in the comments use B =
// batch, N = tokens (the middle dims N* flattened), S = streams, F = fractions of width d = D / F, R = S·F rows
// (row r = s·F + f), C = F + R columns of the connection matrix [Y | A].
#include "hcgrad/nn/frac_paper.h"

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/nn/mhc.h"

namespace hcgrad::nn {

PaperFracConnections::PaperFracConnections(int64_t S, HyperConnectionsOptions o, Branch branch)
    : num_streams(S),
      dim(o.dim),
      num_fracs(o.num_fracs),
      tanh(o.tanh),
      dynamic(o.dynamic),
      streams_in_batch(o.streams_in_batch),
      fused(o.fused && o.dynamic),
      recompute(o.recompute) {
  branch_ = std::move(branch);
  HC_CHECK(S >= 1, Error, "PaperFracConnections: num_streams must be >= 1, got ", S);
  HC_CHECK(o.dim > 0, Error, "PaperFracConnections: dim must be positive, got ", o.dim);
  HC_CHECK(o.num_fracs >= 1 && o.dim % o.num_fracs == 0, ShapeError, "PaperFracConnections: dim (", o.dim,
           ") must be divisible by num_fracs (", o.num_fracs, ")");
  HC_CHECK(o.num_input_views == 1, Error, "PaperFracConnections: num_input_views must be 1, got ", o.num_input_views,
           " (several branch-input views are a library option)");
  HC_CHECK(!o.channel_first && !o.depth_residual_fn && o.add_branch_out_to_residual, Error,
           "PaperFracConnections: channel_first, depth_residual_fn and add_branch_out_to_residual = false are "
           "library options (use variant Library)");
  HC_CHECK(o.dropout == 0 || o.dropout_generator, Error,
           "PaperFracConnections: dropout > 0 needs options.dropout_generator");
  const int64_t F = o.num_fracs, d = o.dim / F, R = S * F, C = F + R;
  const int64_t home = ((o.layer_index % S) + S) % S;
  const TensorOptions options{.dtype = o.dtype};

  // eq. 15: [Y₀ | A₀] with Y₀[(home, f), f] = 1 (the branch reads the home stream's fractions in place) and
  // A₀ = I_R (every row keeps itself); B₀ = 1.
  std::vector<double> alpha(static_cast<size_t>(R * C), 0.0);
  for (int64_t f = 0; f < F; ++f) alpha[(home * F + f) * C + f] = 1.0;
  for (int64_t r = 0; r < R; ++r) alpha[r * C + F + r] = 1.0;
  static_alpha = register_parameter("static_alpha", from_vector(alpha, {R, C}).to(o.dtype));
  static_beta = register_parameter("static_beta", ones({R}, options));
  if (dynamic) {
    dynamic_alpha_fn = register_parameter("dynamic_alpha_fn", zeros({d, C}, options));
    dynamic_alpha_scale = register_parameter("dynamic_alpha_scale", full({}, 0.01, options));
    dynamic_beta_fn = register_parameter("dynamic_beta_fn", zeros({d}, options));
    dynamic_beta_scale = register_parameter("dynamic_beta_scale", full({}, 0.01, options));
    norm = register_module("norm", std::make_shared<ScaledRMSNorm>(d, o.dtype));
  }
  dropout_ = std::make_shared<Dropout>(o.dropout, o.dropout_generator ? *o.dropout_generator : unused_generator_);
  register_module("dropout", dropout_);
}

PaperFracConnections::Width PaperFracConnections::width(const Tensor& residuals) const {
  const int64_t S = num_streams, F = num_fracs, R = S * F, C = F + R, d = dim / F;
  int64_t batch = 0;
  Shape middle;
  // eq. 6: each stream's D features split into F rows of d: [B, N, S, D] -> [B, N, R, d], row s·F + f
  const Tensor streams = mhc_streams_last(name().c_str(), residuals, S, dim, streams_in_batch, batch, middle);
  const int64_t tokens = streams.shape()[1];
  Width out;
  out.streams = streams.reshape({batch, tokens, R, d});
  out.input_shape = residuals.shape();
  if (dynamic) {
    // eq. 11-14: one norm and one GEMM for W_α and w_β side by side, φ over both, then split.
    Tensor projections = scaled_rms_norm_matmul(out.streams, norm->gamma,
                                                cat({dynamic_alpha_fn, dynamic_beta_fn.reshape({d, 1})}, 1));
    if (tanh) projections = hcgrad::tanh(projections);                                    // [B, N, R, C + 1]
    out.alpha = static_alpha + dynamic_alpha_scale * projections.narrow(-1, 0, C);         // [B, N, R, C]
    out.beta = static_beta + dynamic_beta_scale * projections.narrow(-1, C, 1).reshape({batch, tokens, R});
  } else {
    out.alpha = static_alpha;  // [R, C], the same for every token
    out.beta = static_beta;    // [R]
  }
  // eq. 8: u_j = Σ_r Y[r, j] x_r, the F fractions concatenated back to D
  Shape branch_shape = middle;
  branch_shape.insert(branch_shape.begin(), batch);
  branch_shape.push_back(dim);
  out.branch_input = stream_mix(out.alpha.narrow(-1, 0, F), out.streams).reshape(branch_shape);
  return out;
}

Tensor PaperFracConnections::add_residual(const Width& w, const Tensor& y) const {
  const int64_t F = num_fracs, R = num_streams * F, d = dim / F;
  const int64_t batch = w.streams.shape()[0], tokens = w.streams.shape()[1];
  check_branch_output("PaperFracConnections", y, w.branch_input);
  // eq. 8, the diagonal write as a mix of y's F fractions into the R rows: weight β_r' on (f(r'), r'), 0
  // elsewhere. The pattern [F, R] is I_F once per stream, made where β lives (a model may have moved to a
  // GPU) by device ops only: F rows [1, 0, …, 0] of F + 1 values, read F at a time, are I_F.
  // One stream_mix_add pass: new = A^T x + write^T y   [B, N, R, d]
  const TensorOptions on{.dtype = w.beta.dtype(), .device = w.beta.device()};
  const Tensor identity =
      cat({ones({F, 1}, on), zeros({F, F}, on)}, 1).reshape({F * (F + 1)}).narrow(0, 0, F * F).reshape({F, F});
  const Tensor pattern = identity.unsqueeze(1).expand({F, num_streams, F}).reshape({F, R});
  const Tensor write = w.beta.unsqueeze(-2) * pattern;  // [B, N, F, R] (static: [F, R])
  Tensor merged = stream_mix_add(w.alpha.narrow(-1, F, R), w.streams, write, y.reshape({batch, tokens, F, d}));
  return dropout_->forward(
      mhc_streams_to_input(merged.reshape({batch, tokens, num_streams, dim}), w.input_shape, streams_in_batch));
}

// The same equations as width() and add_residual() in two ops (hc_width, hc_depth with step.diagonal_beta):
// the width step reads Y's F columns, the depth step A's R columns (in the destination order r' = t·F + f2
// the ops use) and then β as one column; rows r = s·F + f in both.
ConnectionSplit PaperFracConnections::fused_split(const Tensor& residuals) const {
  const int64_t S = num_streams, F = num_fracs, R = S * F, d = dim / F;
  int64_t batch = 0;
  Shape middle;
  const Tensor x = mhc_streams_last(name().c_str(), residuals, S, dim, streams_in_batch, batch, middle);  // [B, N, S, D]
  const HcStep step{.streams = S, .fracs = F, .tanh = tanh, .recompute = recompute, .diagonal_beta = true};
  Shape branch_shape = middle;
  branch_shape.insert(branch_shape.begin(), batch);
  branch_shape.push_back(dim);
  const Tensor u = hc_width(x, norm->gamma, static_alpha.narrow(1, 0, F), dynamic_alpha_fn.narrow(1, 0, F),
                            dynamic_alpha_scale.expand({F}), step);
  auto depth_step = [this, x, step, branch_shape, input_shape = residuals.shape(), R, d](const Tensor& y) {
    HC_CHECK(y.shape() == branch_shape, ShapeError, "PaperFracConnections: branch output ", y.shape(),
             " must have the branch input's shape ", branch_shape);
    const int64_t F = num_fracs;
    const Tensor statics = cat({static_alpha.narrow(1, F, R), static_beta.reshape({R, 1})}, 1);        // [R, R + 1]
    const Tensor weight = cat({dynamic_alpha_fn.narrow(1, F, R), dynamic_beta_fn.reshape({d, 1})}, 1);  // [d, R + 1]
    const Tensor scales = cat({dynamic_alpha_scale.expand({R}), dynamic_beta_scale.reshape({1})}, 0);   // [R + 1]
    const Tensor next =
        hc_depth(x, y.reshape({x.shape()[0], x.shape()[1], dim}), norm->gamma, statics, weight, scales, step);
    return dropout_->forward(mhc_streams_to_input(next, input_shape, streams_in_batch));
  };
  return {u.reshape(branch_shape), depth_step};
}

ConnectionSplit PaperFracConnections::split(const Tensor& residuals) const {
  return fused ? fused_split(residuals) : split_of(*this, residuals);
}

std::optional<ConnectionMaps> PaperFracConnections::maps(const Tensor& residuals) const {
  if (num_fracs != 1) return std::nullopt;
  autograd::NoGradGuard no_grad;
  const Width w = width(residuals);
  const int64_t S = num_streams, batch = w.streams.shape()[0], tokens = w.streams.shape()[1];
  const Shape per_token{batch, tokens, S, 1 + S};
  const Tensor alpha = w.alpha.expand(per_token);  // the static form's [S, 1 + S] for every token
  return ConnectionMaps{.h_pre = alpha.narrow(-1, 0, 1).reshape({batch, tokens, S}),
                        .h_res = alpha.narrow(-1, 1, S).transpose(-1, -2).contiguous(),
                        .h_post = w.beta.expand({batch, tokens, S}).contiguous(),
                        .h_res_with_iters = {}};
}

}  // namespace hcgrad::nn
