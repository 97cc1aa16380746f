// hc_width and hc_depth: the width and depth connections of HyperConnections (nn/hyper_connections.h), of
// mHC (nn/mhc.h, step.manifold) and of the papers' forms (nn/mhc_paper.h, step.token_projection;
// nn/frac_paper.h, step.diagonal_beta) as one op each, with a hand-written backward. The modules build the
// unfused composition of the same equations (scaled_rms_norm_matmul, stream_mix, stream_mix_add) by default,
// and the tests hold the two together.
#include <cmath>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {
const OpName kHcWidth{"hc_width"};
const OpName kHcDepth{"hc_depth"};

// The checks both steps share; `columns` is M, the coefficients per row the step reads.
void check_step(const char* op, const Tensor& x, const Tensor& gamma, const Tensor& static_weights,
                const Tensor& weight, const Tensor& scales, HcStep step, int64_t columns) {
  check_floating(op, x);
  HC_CHECK(step.streams >= 1 && step.fracs >= 1, Error, op, ": streams and fracs must be >= 1, got ", step.streams,
           " and ", step.fracs);
  HC_CHECK(!step.manifold || step.sinkhorn_iters >= 1, Error, op, ": sinkhorn_iters must be >= 1, got ",
           step.sinkhorn_iters);
  HC_CHECK(x.dim() == 4 && x.shape()[2] == step.streams && x.shape()[3] % step.fracs == 0, ShapeError, op,
           ": streams ", x.shape(), " must be [B, N, S, D] with S = ", step.streams, " and D a multiple of F = ",
           step.fracs);
  HC_CHECK(!step.token_projection || (step.manifold && step.fracs == 1), Error, op,
           ": token_projection (the mHC paper's form) needs manifold and fracs = 1");
  HC_CHECK(!step.diagonal_beta || !step.manifold, Error, op, ": diagonal_beta (the Frac paper's form) is not manifold");
  const int64_t rows = step.fracs * step.streams;
  // A projection reads one row of d features (one per coefficient column), or with token_projection the
  // token's S·D features (one per coefficient).
  const int64_t length = step.token_projection ? x.shape()[2] * x.shape()[3] : x.shape()[3] / step.fracs;
  const int64_t projections = step.token_projection ? rows * columns : columns;
  HC_CHECK(length > 0 && gamma.shape() == Shape{length} && static_weights.shape() == (Shape{rows, columns}) &&
               weight.shape() == (Shape{length, projections}) && scales.shape() == Shape{columns},
           ShapeError, op, ": expected gamma [", length, "], static_weights [", rows, ", ", columns, "], weight [",
           length, ", ", projections, "] and scales [", columns, "], got ", gamma.shape(), ", ",
           static_weights.shape(), ", ", weight.shape(), " and ", scales.shape());
  for (const Tensor* t : {&gamma, &static_weights, &weight, &scales}) {
    check_same_dtype(op, x, *t);
    check_same_device(op, x, *t);
  }
}

// The kernels' view of the parameters: contiguous, the norm's gain √d (1 + γ) folded into the projection,
// which is stored transposed ([M, d]: one contiguous row per coefficient; token_projection: [R·M, S·D], d = S·D).
struct Folded {
  Tensor static_weights, weight_t, scales, gain;  // gain [d]
};
Folded fold(const Tensor& gamma, const Tensor& static_weights, const Tensor& weight, const Tensor& scales) {
  autograd::NoGradGuard no_grad;
  const double root_d = std::sqrt(static_cast<double>(weight.shape()[0]));
  Folded f;
  f.gain = (gamma.detach() + 1.0) * root_d;
  f.weight_t = as_contiguous((weight.detach() * f.gain.unsqueeze(1)).t());
  f.static_weights = as_contiguous(static_weights.detach());
  f.scales = as_contiguous(scales.detach());
  return f;
}

// The streams as the kernels read them: D contiguous (any strides on B, N, S).
Tensor streams_view(const Tensor& x) {
  autograd::NoGradGuard no_grad;
  return x.detach().stride(3) == 1 ? x.detach() : as_contiguous(x.detach());
}

// Where the forward keeps each row's norm, p, a and c for backward (step.recompute = false; the kernels'
// `saved`): [B·N, R, 1 + 3M]. Only when a gradient will be taken; otherwise, and with recompute, undefined.
Tensor saved_coefficients(const Tensor& x, HcStep step, int64_t columns) {
  if (step.recompute || !autograd::is_grad_enabled()) return Tensor();
  return Tensor::empty({x.shape()[0] * x.shape()[1], step.streams * step.fracs, 1 + 3 * columns}, x.options());
}

// From the kernel's gradient of the folded projection (grad_weight_t [M, d]) to those of weight and gamma:
// W_s = gain ⊙ W, so dW = gain ⊙ dW_s and dγ_k = √d Σ_m W[k, m] dW_s[k, m].
void unfold_grads(const Tensor& grad_weight_t, const Tensor& weight, const Tensor& gain, Tensor& grad_weight,
                  Tensor& grad_gamma) {
  const Tensor grad_scaled = grad_weight_t.t();  // [d, M]
  grad_weight = grad_scaled * gain.unsqueeze(1);
  grad_gamma = sum(grad_scaled * weight, {1}) * std::sqrt(static_cast<double>(weight.shape()[0]));
}
}  // namespace

Tensor hc_width(const Tensor& x, const Tensor& gamma, const Tensor& static_weights, const Tensor& weight,
                const Tensor& scales, HcStep step) {
  const char* op = "hc_width";
  check_step(op, x, gamma, static_weights, weight, scales, step, step.fracs);
  const Folded f = fold(gamma, static_weights, weight, scales);
  const Tensor xs = streams_view(x);
  const int64_t B = x.shape()[0], N = x.shape()[1], D = x.shape()[3];
  Tensor out = Tensor::empty({B, N, D}, x.options());
  const Tensor saved = saved_coefficients(x, step, step.fracs);
  HC_KERNEL(hc_width_forward, out, out, saved, xs, f.static_weights, f.weight_t, f.scales, step);
  return record(kHcWidth, out, {x, gamma, static_weights, weight, scales},
                [xs = save(xs, kHcWidth), w = save(weight, kHcWidth), f, step, saved](const Tensor& grad, const Needs&) {
                  const Tensor x = xs.get();
                  Tensor grad_x = Tensor::empty(x.shape(), x.options());
                  Tensor grad_static = Tensor::empty(f.static_weights.shape(), x.options());
                  Tensor grad_scales = Tensor::empty(f.scales.shape(), x.options());
                  Tensor grad_weight_t = Tensor::empty(f.weight_t.shape(), x.options());
                  HC_KERNEL(hc_step_backward, grad_x, grad_x, Tensor(), grad_static, grad_scales, grad_weight_t,
                            as_contiguous(grad), x, Tensor(), saved, f.static_weights, f.weight_t, f.scales, step);
                  Tensor grad_weight, grad_gamma;
                  unfold_grads(grad_weight_t, w.get(), f.gain, grad_weight, grad_gamma);
                  return TensorList{grad_x, grad_gamma, grad_static, grad_weight, grad_scales};
                });
}

Tensor hc_depth(const Tensor& x, const Tensor& y, const Tensor& gamma, const Tensor& static_weights,
                const Tensor& weight, const Tensor& scales, HcStep step) {
  const char* op = "hc_depth";
  // the S·F residual columns, then β's F (one with diagonal_beta)
  check_step(op, x, gamma, static_weights, weight, scales, step,
             step.streams * step.fracs + (step.diagonal_beta ? 1 : step.fracs));
  const int64_t B = x.shape()[0], N = x.shape()[1], D = x.shape()[3];
  HC_CHECK(y.shape() == (Shape{B, N, D}), ShapeError, op, ": branch output ", y.shape(), " must be [", B, ", ", N,
           ", ", D, "] for streams ", x.shape());
  check_same_dtype(op, x, y);
  check_same_device(op, x, y);
  const Folded f = fold(gamma, static_weights, weight, scales);
  const Tensor xs = streams_view(x);
  Tensor ys;
  {
    autograd::NoGradGuard no_grad;
    ys = as_contiguous(y.detach());
  }
  Tensor out = Tensor::empty({B, N, step.streams, D}, x.options());
  const Tensor saved = saved_coefficients(x, step, step.streams * step.fracs + step.fracs);
  HC_KERNEL(hc_depth_forward, out, out, saved, xs, ys, f.static_weights, f.weight_t, f.scales, step);
  return record(kHcDepth, out, {x, y, gamma, static_weights, weight, scales},
                [xs = save(xs, kHcDepth), ys = save(ys, kHcDepth), w = save(weight, kHcDepth), f, step, saved](
                    const Tensor& grad, const Needs&) {
                  const Tensor x = xs.get(), y = ys.get();
                  Tensor grad_x = Tensor::empty(x.shape(), x.options());
                  Tensor grad_y = Tensor::empty(y.shape(), y.options());
                  Tensor grad_static = Tensor::empty(f.static_weights.shape(), x.options());
                  Tensor grad_scales = Tensor::empty(f.scales.shape(), x.options());
                  Tensor grad_weight_t = Tensor::empty(f.weight_t.shape(), x.options());
                  HC_KERNEL(hc_step_backward, grad_x, grad_x, grad_y, grad_static, grad_scales, grad_weight_t,
                            as_contiguous(grad), x, y, saved, f.static_weights, f.weight_t, f.scales, step);
                  Tensor grad_weight, grad_gamma;
                  unfold_grads(grad_weight_t, w.get(), f.gain, grad_weight, grad_gamma);
                  return TensorList{grad_x, grad_y, grad_gamma, grad_static, grad_weight, grad_scales};
                });
}

}  // namespace hcgrad
