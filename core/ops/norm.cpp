// layer_norm and rms_norm as single fused ops (one kernel each way), normalising over the trailing
// `normalized_shape` dims. x is treated as [N, D] rows, D = numel(normalized_shape).
#include <cmath>
#include <limits>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

const OpName kLayerNorm{"layer_norm"};
const OpName kRmsNorm{"rms_norm"};
const OpName kScaledRmsNormMatmul{"scaled_rms_norm_matmul"};

// Validates x against normalized_shape and an optional parameter; returns D.
int64_t check_norm(const char* op, const Tensor& x, const Shape& normalized_shape, const Tensor& param,
                   const char* param_name) {
  check_floating(op, x);
  const int64_t lead = x.dim() - normalized_shape.ndim();
  bool matches = lead >= 0 && !normalized_shape.empty();
  for (int64_t d = 0; matches && d < normalized_shape.ndim(); ++d) matches = x.shape()[lead + d] == normalized_shape[d];
  HC_CHECK(matches, ShapeError, op, ": normalized_shape ", normalized_shape, " does not match the last dims of input ",
           x.shape());
  if (param.defined()) {
    HC_CHECK(param.shape() == normalized_shape, ShapeError, op, ": ", param_name, " has shape ", param.shape(),
             ", expected normalized_shape ", normalized_shape);
    check_same_dtype(op, x, param);
    check_same_device(op, x, param);
  }
  return numel(normalized_shape);
}

Tensor rows_of(const Tensor& x, int64_t D) {
  Tensor dense = as_contiguous(x);
  return as_strided(dense, {D == 0 ? 0 : dense.numel() / D, D}, {D, 1}, dense.offset());
}

Tensor maybe_empty(bool wanted, const Shape& shape, TensorOptions options) {
  return wanted ? zeros(shape, options) : Tensor();
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const int64_t D = check_norm("layer_norm", x, normalized_shape, weight, "weight");
  check_norm("layer_norm", x, normalized_shape, bias, "bias");
  Tensor rows = rows_of(x, D);
  const int64_t N = rows.shape()[0];
  Tensor y = Tensor::empty(rows.shape(), x.options());
  Tensor mean = Tensor::empty({N}, x.options()), rstd = Tensor::empty({N}, x.options());
  HC_KERNEL(layer_norm_forward, y, y, mean, rstd, rows, weight, bias, eps);
  return record(kLayerNorm, y.reshape(x.shape()), {x, weight, bias},
                [rows = save(rows, kLayerNorm), w = save(weight, kLayerNorm), mean, rstd, shape = x.shape(),
                 normalized_shape](
                    const Tensor& g, const Needs& need) {
                  Tensor xr = rows.get(), wv = w.get();
                  Tensor grad_x = need[0] ? Tensor::empty(xr.shape(), g.options()) : Tensor();
                  Tensor grad_w = maybe_empty(need[1], normalized_shape, g.options());
                  Tensor grad_b = maybe_empty(need[2], normalized_shape, g.options());
                  HC_KERNEL(layer_norm_backward, g, grad_x, grad_w, grad_b, rows_of(g, xr.shape()[1]), xr, wv, mean, rstd);
                  return TensorList{need[0] ? grad_x.reshape(shape) : Tensor(), grad_w, grad_b};
                });
}

Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, std::optional<double> eps) {
  const int64_t D = check_norm("rms_norm", x, normalized_shape, weight, "weight");
  const double epsilon = eps.value_or(x.dtype() == DType::Float32 ? std::numeric_limits<float>::epsilon()
                                                                  : std::numeric_limits<double>::epsilon());
  Tensor rows = rows_of(x, D);
  Tensor y = Tensor::empty(rows.shape(), x.options());
  Tensor rstd = Tensor::empty({rows.shape()[0]}, x.options());
  HC_KERNEL(rms_norm_forward, y, y, rstd, rows, weight, epsilon);
  return record(kRmsNorm, y.reshape(x.shape()), {x, weight},
                [rows = save(rows, kRmsNorm), w = save(weight, kRmsNorm), rstd, shape = x.shape(), normalized_shape](
                    const Tensor& g, const Needs& need) {
                  Tensor xr = rows.get(), wv = w.get();
                  Tensor grad_x = need[0] ? Tensor::empty(xr.shape(), g.options()) : Tensor();
                  Tensor grad_w = maybe_empty(need[1], normalized_shape, g.options());
                  HC_KERNEL(rms_norm_backward, g, grad_x, grad_w, rows_of(g, xr.shape()[1]), xr, wv, rstd);
                  return TensorList{need[0] ? grad_x.reshape(shape) : Tensor(), grad_w};
                });
}

// The hyper-connections' coefficient projection, x̂ W with x̂ = x / max(|x|, 1e-12) · sqrt(K) · (1 + gamma), in
// the order of the mHC paper (section 4.3.1): first the GEMM with the gain folded into W, then the division
// by the norm on the small [R, M] result, so the K-wide normalised x̂ is never formed:
//   s = sqrt(K) (1 + gamma) [K],  W_s = s ⊙ W [K, M],  y = x W_s [R, M],  out = y / n,  n = max(|x_r|, 1e-12)
// Backward, with g = dL/dout and c_r = Σ_m g y (the part of the gradient that flows through n):
//   dW_s = x^T (g / n),  dW = s ⊙ dW_s,  dgamma_k = sqrt(K) Σ_m W dW_s,
//   dx = (g / n) W_s^T − c_r x / n³   (the second term only where the norm was not clamped; the kernel
//   forms c_r / n³ as (g · out) / n², from the saved output)
Tensor scaled_rms_norm_matmul(const Tensor& x, const Tensor& gamma, const Tensor& weight) {
  const char* op = "scaled_rms_norm_matmul";
  check_floating(op, x);
  HC_CHECK(x.dim() >= 1 && weight.dim() == 2 && x.shape().back() == weight.shape()[0] &&
               gamma.shape() == Shape{weight.shape()[0]},
           ShapeError, op, ": expected x [..., K], gamma [K] and weight [K, M], got ", x.shape(), ", ", gamma.shape(),
           " and ", weight.shape());
  check_same_dtype(op, x, gamma);
  check_same_dtype(op, x, weight);
  check_same_device(op, x, gamma);
  check_same_device(op, x, weight);
  const int64_t K = weight.shape()[0], M = weight.shape()[1];
  Shape out_shape = x.shape();
  out_shape.back() = M;

  // One fused kernel (core/cpu/norm_project.cpp): each row's norm and its M projections in one read of x.
  Tensor rows, norm, scaled_weight, out;
  {
    autograd::NoGradGuard no_grad;  // the pieces below are this op's own, recorded once as a whole
    rows = as_contiguous(x.detach().reshape({-1, K}));                                              // [R, K]
    scaled_weight = as_contiguous(weight.detach() * ((gamma.detach() + 1.0) * std::sqrt(static_cast<double>(K))).unsqueeze(1));
    out = Tensor::empty({rows.shape()[0], M}, x.options());
    norm = Tensor::empty({rows.shape()[0]}, x.options());
    HC_KERNEL(norm_project_forward, out, out, norm, rows, scaled_weight);
  }
  return record(kScaledRmsNormMatmul, out.reshape(out_shape), {x, gamma, weight},
                [rs = save(rows, kScaledRmsNormMatmul), os = save(out, kScaledRmsNormMatmul), norm, scaled_weight,
                 w = save(weight, kScaledRmsNormMatmul), gm = save(gamma, kScaledRmsNormMatmul), x_shape = x.shape(),
                 K, M](const Tensor& grad, const Needs& need) {
                  const Tensor g = as_contiguous(grad.reshape({-1, M}));  // [R, M]
                  const Tensor rows = rs.get();
                  Tensor grad_x = need[0] ? Tensor::empty(rows.shape(), rows.options()) : Tensor();
                  Tensor grad_scaled = need[1] || need[2] ? Tensor::empty({K, M}, rows.options()) : Tensor();
                  HC_KERNEL(norm_project_backward, g, grad_x, grad_scaled, g, rows, scaled_weight, os.get(), norm);
                  Tensor grad_gamma, grad_weight;
                  if (grad_scaled.defined()) {
                    const Tensor gain = (gm.get() + 1.0) * std::sqrt(static_cast<double>(K));
                    if (need[2]) grad_weight = grad_scaled * gain.unsqueeze(1);
                    if (need[1]) grad_gamma = sum(grad_scaled * w.get(), {1}) * std::sqrt(static_cast<double>(K));
                  }
                  return TensorList{grad_x.defined() ? grad_x.reshape(x_shape) : grad_x, grad_gamma, grad_weight};
                });
}

}  // namespace hcgrad
