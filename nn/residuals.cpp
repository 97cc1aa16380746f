// Depth-residual functions (nn/residuals.h; docs/connections.md). Shapes: x, r [..., N, D].
#include "hcgrad/nn/residuals.h"

#include <cmath>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::nn {

namespace {

// x and r must agree, with `dim` features last (when dim > 0).
void check_pair(const char* module, const Tensor& x, const Tensor& residual, int64_t dim, int64_t min_dims = 1) {
  HC_CHECK(x.shape() == residual.shape(), ShapeError, module, ": branch output ", x.shape(),
           " and residual ", residual.shape(), " must have the same shape");
  HC_CHECK(x.dim() >= min_dims && (dim <= 0 || x.shape().back() == dim), ShapeError, module, ": inputs ",
           x.shape(), " must be [", min_dims > 1 ? "..., N, " : "..., ", dim > 0 ? std::to_string(dim) : "D", "]");
}

}  // namespace

// ---- GatedResidual ----

GatedResidual::GatedResidual(int64_t d, bool fine, Generator& gen, DType dtype) : dim(d), fine_gate(fine) {
  HC_CHECK(d >= 1, Error, "GatedResidual: dim must be >= 1, got ", d);
  to_learned_mix = register_module(
      "to_learned_mix", std::make_shared<Linear>(2 * d, fine ? d : 1, gen, LinearOptions{.dtype = dtype}));
}

Tensor GatedResidual::forward(const Tensor& x, const Tensor& residual) const {
  check_pair("GatedResidual", x, residual, dim);
  Tensor gate = sigmoid(to_learned_mix->forward(cat({x, residual}, -1)));  // [..., D] or [..., 1]
  return x + gate * (residual - x);                                       // torch.lerp(x, r, gate)
}

// ---- GRUCell / GRUGatedResidual ----

GRUCell::GRUCell(int64_t d, Generator& gen, DType dtype) : dim(d) {
  HC_CHECK(d >= 1, Error, "GRUCell: dim must be >= 1, got ", d);
  const double bound = 1.0 / std::sqrt(static_cast<double>(d));
  weight_ih = register_parameter("weight_ih", empty({3 * d, d}, {.dtype = dtype}));
  weight_hh = register_parameter("weight_hh", empty({3 * d, d}, {.dtype = dtype}));
  bias_ih = register_parameter("bias_ih", empty({3 * d}, {.dtype = dtype}));
  bias_hh = register_parameter("bias_hh", empty({3 * d}, {.dtype = dtype}));
  for (const Tensor& p : {weight_ih, weight_hh, bias_ih, bias_hh}) uniform_(p, -bound, bound, gen);
}

Tensor GRUCell::forward(const Tensor& input, const Tensor& hidden) const {
  HC_CHECK(input.dim() == 2 && hidden.shape() == input.shape() && input.shape()[1] == dim, ShapeError,
           "GRUCell: input ", input.shape(), " and hidden ", hidden.shape(), " must both be [M, ", dim, "]");
  // Gate pre-activations [M, 3D], columns r | z | n (torch's order).
  std::vector<Tensor> from_input = chunk(matmul(input, weight_ih.t()) + bias_ih, 3, 1);
  std::vector<Tensor> from_hidden = chunk(matmul(hidden, weight_hh.t()) + bias_hh, 3, 1);
  Tensor reset = sigmoid(from_input[0] + from_hidden[0]);
  Tensor update = sigmoid(from_input[1] + from_hidden[1]);
  Tensor candidate = tanh(from_input[2] + reset * from_hidden[2]);
  return candidate + update * (hidden - candidate);  // (1 − z) ⊙ n + z ⊙ h
}

GRUGatedResidual::GRUGatedResidual(int64_t d, Generator& gen, DType dtype) : dim(d) {
  gru = register_module("gru", std::make_shared<GRUCell>(d, gen, dtype));
}

Tensor GRUGatedResidual::forward(const Tensor& x, const Tensor& residual) const {
  check_pair("GRUGatedResidual", x, residual, dim);
  return gru->forward(x.reshape({-1, dim}), residual.reshape({-1, dim})).reshape(x.shape());
}

// ---- OrthogonalResidualUpdate ----

Tensor OrthogonalResidualUpdate::forward(const Tensor& x, const Tensor& residual) const {
  check_pair("OrthogonalResidualUpdate", x, residual, 0);
  const DType dtype = residual.dtype();
  Tensor r = double_precision ? residual.to(DType::Float64) : residual;
  Tensor v = double_precision ? x.to(DType::Float64) : x;
  // F.normalize: r / max(‖r‖, 1e-12), so a zero residual gives û = 0 and the whole x is added.
  Tensor unit = r / clamp(sqrt(sum(r * r, {-1}, true)), 1e-12, std::nullopt);
  Tensor orthogonal = v - sum(v * unit, {-1}, true) * unit;
  // The library adds the cast-back update to the float64 residual and so returns float64; hcgrad keeps the
  // inputs' dtype (the sum differs by one rounding).
  return residual + (double_precision ? orthogonal.to(dtype) : orthogonal);
}

// ---- MVSplitResidualUpdate ----

MVSplitResidualUpdate::MVSplitResidualUpdate(int64_t d, double init_alpha, double init_beta, DType dtype) : dim(d) {
  HC_CHECK(d >= 1, Error, "MVSplitResidualUpdate: dim must be >= 1, got ", d);
  alpha = register_parameter("alpha", full({d}, init_alpha, {.dtype = dtype}));
  beta = register_parameter("beta", full({d}, init_beta, {.dtype = dtype}));
}

Tensor MVSplitResidualUpdate::forward(const Tensor& x, const Tensor& residual) const {
  check_pair("MVSplitResidualUpdate", x, residual, dim, 2);
  Tensor mean_x = mean(x, {-2}, true), mean_residual = mean(residual, {-2}, true);  // [..., 1, D]
  return residual + (x - mean_x) * beta + (mean_x - mean_residual) * alpha;
}

}  // namespace hcgrad::nn
