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

// A zero-filled gradient buffer when the gradient is wanted (the kernel accumulates into it), else undefined.
Tensor zeros_if_needed(bool wanted, const Shape& shape, TensorOptions options) {
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
                  Tensor grad_w = zeros_if_needed(need[1], normalized_shape, g.options());
                  Tensor grad_b = zeros_if_needed(need[2], normalized_shape, g.options());
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
                  Tensor grad_w = zeros_if_needed(need[1], normalized_shape, g.options());
                  HC_KERNEL(rms_norm_backward, g, grad_x, grad_w, rows_of(g, xr.shape()[1]), xr, wv, rstd);
                  return TensorList{need[0] ? grad_x.reshape(shape) : Tensor(), grad_w};
                });
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  HC_CHECK(x.dim() >= 2, ShapeError, "group_norm: expected x [N, C, *], got shape ", x.shape());
  const int64_t N = x.shape()[0], C = x.shape()[1];
  HC_CHECK(num_groups > 0 && C % num_groups == 0, ShapeError, "group_norm: ", C, " channels cannot be split into ",
           num_groups, " groups");
  int64_t group_size = C / num_groups;  // the values normalised together: channels x positions
  for (int64_t k = 2; k < x.dim(); ++k) group_size *= x.shape()[k];
  Tensor y = layer_norm(x.reshape({N, num_groups, group_size}), {group_size}, {}, {}, eps).reshape(x.shape());
  Shape per_channel(static_cast<size_t>(x.dim() - 1), 1);  // [C, 1, ..., 1]: broadcast over the positions
  per_channel[0] = C;
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    HC_CHECK(p->shape() == Shape{C}, ShapeError, "group_norm: weight and bias must be [", C, "], got ", p->shape());
    y = p == &weight ? y * p->reshape(per_channel) : y + p->reshape(per_channel);
  }
  return y;
}

}  // namespace hcgrad
