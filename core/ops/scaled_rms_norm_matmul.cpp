// scaled_rms_norm_matmul: the hyper-connections' norm and coefficient projection as one op (the library's
// RMSNorm, nn/hyper_connections.h ScaledRMSNorm, followed by the matmul with the projection weights).
#include <cmath>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {
const OpName kScaledRmsNormMatmul{"scaled_rms_norm_matmul"};
}  // namespace

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

  // One fused kernel (core/cpu/scaled_rms_norm_matmul.cpp): each row's norm and its M projections in one read of x.
  Tensor rows, norm, scaled_weight, out;
  {
    autograd::NoGradGuard no_grad;  // the pieces below are this op's own, recorded once as a whole
    rows = as_contiguous(x.detach().reshape({-1, K}));                                              // [R, K]
    scaled_weight = as_contiguous(weight.detach() * ((gamma.detach() + 1.0) * std::sqrt(static_cast<double>(K))).unsqueeze(1));
    out = Tensor::empty({rows.shape()[0], M}, x.options());
    norm = Tensor::empty({rows.shape()[0]}, x.options());
    HC_KERNEL(scaled_rms_norm_matmul_forward, out, out, norm, rows, scaled_weight);
  }
  return record(kScaledRmsNormMatmul, out.reshape(out_shape), {x, gamma, weight},
                [rs = save(rows, kScaledRmsNormMatmul), os = save(out, kScaledRmsNormMatmul), norm, scaled_weight,
                 w = save(weight, kScaledRmsNormMatmul), gm = save(gamma, kScaledRmsNormMatmul), x_shape = x.shape(),
                 K, M](const Tensor& grad, const Needs& need) {
                  const Tensor g = as_contiguous(grad.reshape({-1, M}));  // [R, M]
                  const Tensor rows = rs.get();
                  Tensor grad_x = need[0] ? Tensor::empty(rows.shape(), rows.options()) : Tensor();
                  Tensor grad_scaled = need[1] || need[2] ? Tensor::empty({K, M}, rows.options()) : Tensor();
                  HC_KERNEL(scaled_rms_norm_matmul_backward, g, grad_x, grad_scaled, g, rows, scaled_weight, os.get(), norm);
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
