// softmax / log_softmax over one dim. The kernels work on rows of the last dim, so another dim is first
// swapped to the end (a transposed view, copied to contiguous rows) and swapped back afterwards.
//   softmax backward:     dx = y * (dy - sum(dy * y))
//   log_softmax backward: dx = dy - softmax(x) * sum(dy)
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

const OpName kSoftmax{"softmax"};
const OpName kLogSoftmax{"log_softmax"};

// t with dims d and last swapped; a view, no autograd.
Tensor swap_to_last(const Tensor& t, int64_t d) {
  Shape shape = t.shape();
  Strides strides = t.strides();
  std::swap(shape[d], shape.back());
  std::swap(strides[d], strides.back());
  return as_strided(t, shape, strides, t.offset());
}

// t's values as contiguous [rows, n] with dim d last.
Tensor rows_with_last(const Tensor& t, int64_t d) {
  Tensor swapped = as_contiguous(swap_to_last(t, d));
  const int64_t n = t.shape()[d];
  return as_strided(swapped, {n == 0 ? 0 : t.numel() / n, n}, {n, 1}, swapped.offset());
}

// Rows computed by rows_with_last, viewed back in the original dim order.
Tensor from_rows(const Tensor& rows, const Shape& shape, int64_t d) {
  Shape swapped = shape;
  std::swap(swapped[d], swapped.back());
  return swap_to_last(as_strided(rows, swapped, contiguous_strides(swapped), rows.offset()), d);
}

Tensor softmax_op(const OpName& op, const Tensor& x, int64_t dim, bool log) {
  check_floating(op.c_str(), x);
  const int64_t d = normalize_dim(op.c_str(), dim, x.shape());
  Tensor x_rows = rows_with_last(x, d);
  Tensor y_rows = Tensor::empty(x_rows.shape(), x.options());
  HC_KERNEL(softmax, y_rows, y_rows, x_rows, log);
  Tensor y = from_rows(y_rows, x.shape(), d);
  return record(op, y, {x}, [y = save(y, op), d, log](const Tensor& g, const Needs&) {
    Tensor yv = y.get();
    Tensor y_rows = rows_with_last(yv, d);
    Tensor grad_rows = Tensor::empty(y_rows.shape(), g.options());
    HC_KERNEL(softmax_backward, grad_rows, grad_rows, y_rows, rows_with_last(g, d), log);
    return TensorList{from_rows(grad_rows, yv.shape(), d)};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_op(kSoftmax, x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_op(kLogSoftmax, x, dim, true); }

}  // namespace hcgrad
