// HyperConnections: width and depth connections over S residual streams. Equations and layouts in
// nn/hyper_connections.h. The shapes in the comments use B = batch, N = tokens (the middle dims N* flattened),
// S = streams, F = fracs (fractions of width d = frac_dim = D / F), D = dim, V = views (branch-input views),
// C = columns = V·F + S·F.
#include "hcgrad/nn/hyper_connections.h"

#include <cmath>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"
#include "hcgrad/nn/frac_paper.h"
#include "hcgrad/nn/layout.h"
#include "hcgrad/nn/mhc.h"

namespace hcgrad::nn {

using layout::concat_shape;
using layout::features_first;
using layout::features_last;
using layout::middle_dims;

// ---- ScaledRMSNorm ----

ScaledRMSNorm::ScaledRMSNorm(int64_t d, DType dtype) : dim(d) {
  HC_CHECK(d > 0, ShapeError, "ScaledRMSNorm: dim must be positive, got ", d);
  gamma = register_parameter("gamma", zeros({d}, {.dtype = dtype}));
}

Tensor ScaledRMSNorm::forward(const Tensor& x) const {
  HC_CHECK(x.dim() >= 1 && x.shape().back() == dim, ShapeError, "ScaledRMSNorm: input ", x.shape(),
           " does not end in dim = ", dim);
  Tensor norm = clamp(sqrt(sum(x * x, {-1}, /*keepdim=*/true)), 1e-12, std::nullopt);
  return x / norm * std::sqrt(static_cast<double>(dim)) * (gamma + 1.0);
}

// ---- HyperConnections ----

HyperConnections::HyperConnections(int64_t S, HyperConnectionsOptions o, Branch branch)
    : num_streams(S),
      dim(o.dim),
      num_fracs(o.num_fracs),
      num_input_views(o.num_input_views),
      tanh(o.tanh),
      channel_first(o.channel_first),
      streams_in_batch(o.streams_in_batch),
      fused(o.fused),
      recompute(o.recompute),
      depth_residual_fn_(o.depth_residual_fn) {
  branch_ = std::move(branch);
  HC_CHECK(S >= 1, Error, "HyperConnections: num_streams must be >= 1, got ", S);
  HC_CHECK(o.dim > 0, Error, "HyperConnections: dim must be positive, got ", o.dim);
  HC_CHECK(o.num_input_views >= 1, Error, "HyperConnections: num_input_views must be >= 1, got ", o.num_input_views);
  HC_CHECK(o.num_fracs >= 1 && o.dim % o.num_fracs == 0, ShapeError, "HyperConnections: dim (", o.dim,
           ") must be divisible by num_fracs (", o.num_fracs, ")");
  HC_CHECK(o.streams_in_batch || !o.channel_first, Error,
           "HyperConnections: channel_first needs the streams in the batch (streams_in_batch = true)");
  HC_CHECK(o.dropout == 0 || o.dropout_generator, Error,
           "HyperConnections: dropout > 0 needs options.dropout_generator");
  HC_CHECK(o.dynamic, Error, "HyperConnections: the library's module is always dynamic (dynamic = false is the ",
           "paper variant's static form, variant = HcVariant::Paper)");
  const int64_t streams = S, fracs = o.num_fracs, views = o.num_input_views, frac_dim = o.dim / fracs;
  const int64_t columns = views * fracs + streams * fracs;  // C = V·F + S·F
  const int64_t home = ((o.layer_index % streams) + streams) % streams;
  const TensorOptions options{.dtype = o.dtype};

  // A[f1·S + s, f2·(V+S) + t]: the branch views read the home stream, each stream keeps itself (per fraction).
  std::vector<double> alpha(static_cast<size_t>(streams * fracs * columns), 0.0);
  for (int64_t f = 0; f < fracs; ++f)
    for (int64_t s = 0; s < streams; ++s) {
      const int64_t row = f * streams + s;
      if (s == home)
        for (int64_t v = 0; v < views; ++v) alpha[row * columns + f * (views + streams) + v] = 1.0;
      alpha[row * columns + f * (views + streams) + views + s] = 1.0;
    }
  static_alpha = register_parameter("static_alpha", from_vector(alpha, {streams * fracs, columns}).to(o.dtype));
  dynamic_alpha_fn = register_parameter("dynamic_alpha_fn", zeros({frac_dim, columns}, options));
  dynamic_alpha_scale = register_parameter("dynamic_alpha_scale", full({}, 0.01, options));
  if (o.add_branch_out_to_residual) {
    // F = 1: β_s; F > 1: β[f1·S + s, f2] = δ(f1, f2), the Frac paper's diagonal write.
    static_beta = register_parameter("static_beta", fracs == 1 ? ones({streams}, options)
                                                               : eye(fracs, options)
                                                                     .reshape({fracs, 1, fracs})
                                                                     .expand({fracs, streams, fracs})
                                                                     .reshape({fracs * streams, fracs}));
    dynamic_beta_fn =
        register_parameter("dynamic_beta_fn", zeros(fracs == 1 ? Shape{frac_dim} : Shape{frac_dim, fracs}, options));
    dynamic_beta_scale = register_parameter("dynamic_beta_scale", full({}, 0.01, options));
  }
  norm = register_module("norm", std::make_shared<ScaledRMSNorm>(frac_dim, o.dtype));
  if (depth_residual_fn_) register_module("depth_residual_fn", depth_residual_fn_);
  dropout_ = std::make_shared<Dropout>(o.dropout, o.dropout_generator ? *o.dropout_generator : unused_generator_);
  register_module("dropout", dropout_);
}

HyperConnections::Width HyperConnections::width(const Tensor& input) const {
  const int64_t streams = num_streams, views = num_input_views;
  if (channel_first) {
    HC_CHECK(input.dim() >= 3 && input.shape()[1] == dim && input.shape()[0] % streams == 0, ShapeError,
             "HyperConnections: channel-first residuals ", input.shape(), " must be [B·S, ", dim,
             ", ...] with the first dim a multiple of num_streams = ", streams);
    Width w = width_features_last(features_last(input));
    w.branch_input = features_first(w.branch_input, views == 1 ? 1 : 2);  // [B, D, N*] or [V, B, D, N*]
    w.residuals = features_first(w.residuals);
    return w;
  }
  return width_features_last(input);
}

bool HyperConnections::fuses_stream_mix_add() const {
  return !streams_in_batch && num_fracs == 1 && num_input_views == 1 && !depth_residual_fn_ && static_beta.defined();
}

HyperConnections::Width HyperConnections::width_features_last(const Tensor& residuals) const {
  const int64_t streams = num_streams, fracs = num_fracs, views = num_input_views, frac_dim = dim / fracs;
  Shape middle;
  int64_t batch = 0;
  Tensor x;  // [B, N, F·S, d], row f1·S + s
  if (streams_in_batch) {
    HC_CHECK(residuals.dim() >= 2 && residuals.shape().back() == dim && residuals.shape()[0] % streams == 0, ShapeError,
             "HyperConnections: residuals ", residuals.shape(), " must be [B·S, ..., ", dim, "] with the first dim a ",
             "multiple of num_streams = ", streams);
    middle = middle_dims(residuals);
    batch = residuals.shape()[0] / streams;
    x = residuals.reshape({batch, streams, numel(middle), fracs, frac_dim})
            .permute({0, 2, 3, 1, 4})
            .reshape({batch, numel(middle), fracs * streams, frac_dim});
  } else {
    HC_CHECK(
        residuals.dim() >= 3 && residuals.shape().back() == dim && residuals.shape()[residuals.dim() - 2] == streams,
        ShapeError, "HyperConnections: residuals ", residuals.shape(), " must be [B, ..., ", streams, ", ", dim,
        "] (streams next to the features, num_streams = ", streams, ")");
    middle = Shape(residuals.shape().begin() + 1, residuals.shape().end() - 2);
    batch = residuals.shape()[0];
    // [B, N*, S, D] -> [B, N, F·S, d]: a view when F = 1.
    x = residuals.reshape({batch, numel(middle), streams, fracs, frac_dim})
            .permute({0, 1, 3, 2, 4})
            .reshape({batch, numel(middle), fracs * streams, frac_dim});
  }
  const int64_t tokens = numel(middle);
  auto phi = [&](const Tensor& t) { return tanh ? hcgrad::tanh(t) : t; };
  // The dynamic projections x̂ Wα and x̂ Wβ (x̂ = RMSNorm(x)) in one fused op: one norm, one GEMM for both.
  const int64_t columns = dynamic_alpha_fn.shape()[1];
  const Tensor w_beta =
      !static_beta.defined() ? Tensor() : (fracs == 1 ? dynamic_beta_fn.reshape({frac_dim, 1}) : dynamic_beta_fn);
  // φ over all projections at once (one dense pass), then split into α's and β's columns.
  const Tensor projections = phi(
      scaled_rms_norm_matmul(x, norm->gamma, w_beta.defined() ? cat({dynamic_alpha_fn, w_beta}, 1) : dynamic_alpha_fn));
  // α [B, N, F·S, C]. Width connection (HC): the branch input is A_m^T H and the kept residuals A_r^T H,
  // i.e. every column c of α = [A_m | A_r] mixes the stream rows: m = α^T x [B, N, C, d], read as
  // [B, N, F, V+S, d].
  Tensor alpha = static_alpha + dynamic_alpha_scale * projections.narrow(-1, 0, columns);

  Width out;
  out.alpha = alpha;
  if (fuses_stream_mix_add()) {
    // Only the branch input is mixed now (A_m, column 0); the depth step mixes the residuals (A_r).
    out.branch_input = stream_mix(alpha.narrow(-1, 0, 1), x).reshape(concat_shape({batch}, middle, {dim}));
    out.streams = x;
    out.residual_weights = alpha.narrow(-1, 1, streams);
  } else {
    Tensor m = stream_mix(alpha, x).reshape({batch, tokens, fracs, views + streams, frac_dim});
    Tensor u = m.narrow(3, 0, views).permute({3, 0, 1, 2, 4});  // [V, B, N, F, d]
    out.branch_input = views == 1 ? u.reshape(concat_shape({batch}, middle, {dim}))
                                  : u.reshape(concat_shape({views, batch}, middle, {dim}));
    out.residuals = streams_in_batch ? m.narrow(3, views, streams)
                                           .permute({0, 3, 1, 2, 4})
                                           .reshape(concat_shape({batch * streams}, middle, {dim}))
                                     : m.narrow(3, views, streams)
                                           .permute({0, 1, 3, 2, 4})
                                           .reshape(concat_shape({batch}, middle, {streams, dim}));
  }
  if (static_beta.defined()) {
    // β[f1, s, f2] = bβ[s·F + f2] + sβ φ(x̂[f1, s] · Wβ[:, f2]): [B, N, F·S, F] -> [B, N, F, S, F]
    Tensor b_beta = static_beta.reshape({fracs * streams, fracs});
    out.beta = (b_beta + dynamic_beta_scale * projections.narrow(-1, columns, w_beta.shape()[1]))
                   .reshape({batch, tokens, fracs, streams, fracs});
  }
  return out;
}

bool HyperConnections::runs_fused_steps() const {
  return fused && num_input_views == 1 && !channel_first && !depth_residual_fn_ && static_beta.defined();
}

ConnectionSplit HyperConnections::split(const Tensor& residuals) const {
  return runs_fused_steps() ? fused_split(residuals) : split_of(*this, residuals);
}

// The same equations as width() and depth() in two ops (hc_width, hc_depth): the coefficient columns each
// step reads are gathered from the parameters first (a few small ops on [d, C] tensors), so that the ops see
// plain matrices c = static + scale φ(x̂ W): the width step F columns (the branch's, f2·(V+S)), the depth step
// S·F residual columns in the order t·F + f2 (column f2·(V+S) + 1 + t) and then β's F columns.
ConnectionSplit HyperConnections::fused_split(const Tensor& residuals) const {
  const int64_t streams = num_streams, fracs = num_fracs, frac_dim = dim / fracs;
  Shape middle;
  int64_t batch = 0;
  // [B, N, S, D], a view of the residuals in either layout (the same checks and view as mHC's)
  const Tensor x = mhc_streams_last("HyperConnections", residuals, streams, dim, streams_in_batch, batch, middle);
  std::vector<int64_t> branch_columns, residual_columns;
  for (int64_t f2 = 0; f2 < fracs; ++f2) branch_columns.push_back(f2 * (1 + streams));
  for (int64_t t = 0; t < streams; ++t)
    for (int64_t f2 = 0; f2 < fracs; ++f2) residual_columns.push_back(f2 * (1 + streams) + 1 + t);
  const Tensor branch_index = from_vector(branch_columns, {fracs}).to(static_alpha.device());
  const Tensor residual_index = from_vector(residual_columns, {streams * fracs}).to(static_alpha.device());
  const HcStep step{.streams = streams, .fracs = fracs, .tanh = tanh, .recompute = recompute};

  Tensor u = hc_width(x, norm->gamma, index_select(static_alpha, 1, branch_index),
                      index_select(dynamic_alpha_fn, 1, branch_index), dynamic_alpha_scale.expand({fracs}), step);
  auto depth_step = [this, x, residual_index, step, batch, middle, frac_dim](const Tensor& y) {
    const int64_t streams = num_streams, fracs = num_fracs;
    HC_CHECK(y.shape() == concat_shape({batch}, middle, {dim}), ShapeError, "HyperConnections: branch output ",
             y.shape(), " must have the branch input's shape ", concat_shape({batch}, middle, {dim}));
    const Tensor statics =
        cat({index_select(static_alpha, 1, residual_index), static_beta.reshape({streams * fracs, fracs})}, 1);
    const Tensor weight =
        cat({index_select(dynamic_alpha_fn, 1, residual_index), dynamic_beta_fn.reshape({frac_dim, fracs})}, 1);
    const Tensor scales =
        cat({dynamic_alpha_scale.expand({streams * fracs}), dynamic_beta_scale.expand({fracs})}, 0);
    Tensor merged = hc_depth(x, y.reshape({x.shape()[0], x.shape()[1], dim}), norm->gamma, statics, weight, scales, step);
    merged = streams_in_batch ? merged.permute({0, 2, 1, 3}).reshape(concat_shape({batch * streams}, middle, {dim}))
                              : merged.reshape(concat_shape({batch}, middle, {streams, dim}));
    return dropout_->forward(merged);
  };
  return {u.reshape(concat_shape({batch}, middle, {dim})), depth_step};
}

std::optional<ConnectionMaps> HyperConnections::maps(const Tensor& residuals) const {
  if (num_fracs != 1 || num_input_views != 1 || !static_beta.defined()) return std::nullopt;
  autograd::NoGradGuard no_grad;
  const Width w = width(residuals);
  const int64_t streams = num_streams, batch = w.beta.shape()[0], tokens = w.beta.shape()[1];
  // α's columns: 0 reads the branch input, 1 + t keeps stream t; rows are the source streams.
  return ConnectionMaps{.h_pre = w.alpha.narrow(-1, 0, 1).reshape({batch, tokens, streams}),
                        .h_res = w.alpha.narrow(-1, 1, streams).transpose(-1, -2).contiguous(),
                        .h_post = w.beta.reshape({batch, tokens, streams}),
                        .h_res_with_iters = {}};
}

Tensor HyperConnections::add_residual(const Width& w, const Tensor& y) const {
  if (!static_beta.defined()) return y;  // add_branch_out_to_residual = false
  if (channel_first) {
    HC_CHECK(y.dim() >= 3, ShapeError, "HyperConnections: channel-first branch output ", y.shape(),
             " must be [B, ", dim, ", ...]");
    Width last;
    last.residuals = features_last(w.residuals);
    last.beta = w.beta;
    return features_first(depth(last, features_last(y)));
  }
  return depth(w, y);
}

Tensor HyperConnections::depth(const Width& w, const Tensor& y) const {
  const int64_t streams = num_streams, fracs = num_fracs, frac_dim = dim / fracs;
  const int64_t batch = w.beta.shape()[0], tokens = w.beta.shape()[1];
  const Shape middle = w.streams.defined() ? middle_dims(w.branch_input)
                       : streams_in_batch   ? middle_dims(w.residuals)
                                            : Shape(w.residuals.shape().begin() + 1, w.residuals.shape().end() - 2);
  HC_CHECK(y.shape() == concat_shape({batch}, middle, {dim}), ShapeError, "HyperConnections: branch output ", y.shape(),
           " must have the branch input's shape ", concat_shape({batch}, middle, {dim}));
  if (w.streams.defined()) {
    // Fused merge: new[s] = Σ_t A_r[t, s] x_t + β_s y, one pass over the streams ([B, N, S, D]).
    Tensor merged = stream_mix_add(w.residual_weights, w.streams, w.beta.reshape({batch, tokens, 1, streams}),
                                   y.reshape({batch, tokens, 1, dim}));
    return dropout_->forward(merged.reshape(concat_shape({batch}, middle, {streams, dim})));
  }
  // Depth connection, the branch output written back to every stream with weight β:
  // o[s, f2] = Σ_f1 β[f1, s, f2] y[f1], with β as [B, N, F1, S·F2] mixing y [B, N, F, d] into
  // [B, N, S·F, d] = [B, N, S, D] -> [B·S, N*, D]
  Tensor beta = w.beta.reshape({batch, tokens, fracs, streams * fracs});
  Tensor o = stream_mix(beta, y.reshape({batch, tokens, fracs, frac_dim})).reshape({batch, tokens, streams, dim});
  o = streams_in_batch ? o.permute({0, 2, 1, 3}).reshape(concat_shape({batch * streams}, middle, {dim}))
                       : o.reshape(concat_shape({batch}, middle, {streams, dim}));
  return dropout_->forward(depth_residual_fn_ ? depth_residual_fn_->forward(o, w.residuals) : o + w.residuals);
}

std::shared_ptr<ConnectionModule> make_hyper_connections(int64_t S, HyperConnectionsOptions o, Branch branch) {
  if (o.variant == HcVariant::Paper) return std::make_shared<PaperFracConnections>(S, std::move(o), std::move(branch));
  return std::make_shared<HyperConnections>(S, std::move(o), std::move(branch));
}

}  // namespace hcgrad::nn
