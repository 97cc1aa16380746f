// Scans and sorts along one dim: cumsum, sort, argsort, topk. The dim is moved last and the input made
// contiguous, so each kernel works on the rows of an [outer, n] matrix:
//   x [2, 5, 3], dim 1 -> permute to [2, 3 | 5] -> rows [6, 5] -> out rows [6, 5] -> back to [2, 5, 3].
// sort and topk return their values as gather(x, dim, indices): the gradient of the values is gather's,
// scattered back to the places the values came from, and the indices carry none.
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

const OpName kCumsum{"cumsum"};

// x with `dim` moved last, as contiguous rows, and the way back.
struct AlongDim {
  Tensor rows;            // contiguous [outer, n]
  Shape permuted_shape;   // x's shape with dim moved last
  Shape inverse;          // the permutation that puts dim back
};

AlongDim along_dim(const char* op, const Tensor& x, int64_t dim) {
  const int64_t d = normalize_dim(op, dim, x.shape());
  Shape order, permuted_shape, inverse(x.dim());
  for (int64_t k = 0; k < x.dim(); ++k)
    if (k != d) order.push_back(k);
  order.push_back(d);
  for (int64_t k = 0; k < x.dim(); ++k) {
    permuted_shape.push_back(x.shape()[order[k]]);
    inverse[order[k]] = k;
  }
  const int64_t n = x.shape()[d];
  const Tensor permuted = as_contiguous(x.detach().permute(order));
  return {permuted.reshape({n == 0 ? 0 : x.numel() / n, n}), permuted_shape, inverse};
}

// Rows [outer, n] from a kernel, in x's layout again (contiguous, as PyTorch returns them).
Tensor back_from_rows(const Tensor& rows, const AlongDim& a) {
  return as_contiguous(rows.reshape(a.permuted_shape).permute(a.inverse));
}

// cumsum, or its mirror image (the sum from each element to the end) which is cumsum's backward; each is
// the other's gradient, so the recorded op differentiates any number of times.
Tensor cumulative_sum(const Tensor& x, int64_t dim, bool reverse) {
  check_floating(kCumsum.c_str(), x);
  const AlongDim a = along_dim(kCumsum.c_str(), x, dim);
  Tensor out = Tensor::empty(a.rows.shape(), x.options());
  HC_KERNEL(cumsum_rows, out, out, a.rows, reverse);
  return record(kCumsum, back_from_rows(out, a), {x}, [dim, reverse](const Tensor& g, const Needs&) {
    return TensorList{cumulative_sum(g, dim, !reverse)};
  });
}

}  // namespace

namespace {
// A 0-d tensor is scanned, sorted or searched as the one-element vector it holds (dim 0 or -1), as in PyTorch.
Tensor as_vector(const char* op, const Tensor& x, int64_t dim) {
  normalize_dim(op, dim, Shape{1});  // only dim 0 or -1
  return x.reshape({1});
}
}  // namespace

Tensor cumsum(const Tensor& x, int64_t dim) {
  if (x.dim() == 0) return cumulative_sum(as_vector("cumsum", x, dim), 0, false).reshape({});
  return cumulative_sum(x, dim, /*reverse=*/false);
}

Tensor argsort(const Tensor& x, int64_t dim, bool descending) {
  check_floating("argsort", x);
  if (x.dim() == 0) return argsort(as_vector("argsort", x, dim), 0, descending).reshape({});
  const AlongDim a = along_dim("argsort", x, dim);
  Tensor indices = Tensor::empty(a.rows.shape(), {.dtype = DType::Int64, .device = x.device()});
  HC_KERNEL(sort_rows, indices, indices, a.rows, descending);
  return back_from_rows(indices, a);
}

std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending) {
  if (x.dim() == 0) {
    const std::pair<Tensor, Tensor> one = sort(as_vector("sort", x, dim), 0, descending);
    return {one.first.reshape({}), one.second.reshape({})};
  }
  const Tensor indices = argsort(x, dim, descending);
  return {gather(x, dim, indices), indices};
}

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  check_floating("topk", x);
  if (x.dim() == 0) {
    const std::pair<Tensor, Tensor> one = topk(as_vector("topk", x, dim), k, 0, largest);
    return {one.first.reshape({}), one.second.reshape({})};
  }
  const int64_t d = normalize_dim("topk", dim, x.shape());
  const int64_t n = x.shape()[d];
  HC_CHECK(k >= 0 && k <= n, ShapeError, "topk: k = ", k, " is out of range for dim ", dim, " of size ", n,
           " (shape ", x.shape(), ")");
  const Tensor indices = as_contiguous(argsort(x, d, /*descending=*/largest).narrow(d, 0, k));
  return {gather(x, d, indices), indices};
}

}  // namespace hcgrad
