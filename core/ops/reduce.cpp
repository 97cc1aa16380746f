// Reductions over any set of dims. The input is viewed with the kept dims first and the reduced dims last,
// made contiguous (a copy only when the layout needs one) and handed to a row kernel as [outer, inner]:
//   x [2,3,4], dims {1} -> permute to [2,4 | 3] -> rows [8, 3] -> out [8] -> reshape [2,4] (or [2,1,4]).
#include <algorithm>
#include <limits>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

const OpName kSum{"sum"};
const OpName kMean{"mean"};
const OpName kMax{"max"};
const OpName kMin{"min"};
const OpName kLogsumexp{"logsumexp"};
const OpName kProd{"prod"};

struct RowLayout {
  Tensor rows;        // contiguous [outer, inner]
  int64_t outer = 1;  // product of the kept dims
  int64_t inner = 1;  // product of the reduced dims
  Shape out_shape;    // kept dims only (keepdim = false)
  Shape keep_shape;   // input shape with reduced dims set to 1 (keepdim = true)
  Shape permutation;  // kept dims, then reduced dims
};

RowLayout to_rows(const char* op, const Tensor& x, const Shape& dims_in) {
  check_floating(op, x);
  std::vector<bool> reduced(x.dim(), dims_in.empty());  // no dims: reduce them all
  for (int64_t dim : dims_in) {
    int64_t d = normalize_dim(op, dim, x.shape());
    HC_CHECK(!reduced[d], ShapeError, op, ": dim ", dim, " appears twice in ", dims_in);
    reduced[d] = true;
  }
  RowLayout L;
  Shape permuted_shape;
  Strides permuted_strides;
  for (int pass = 0; pass < 2; ++pass) {  // kept dims first, then reduced dims
    for (int64_t d = 0; d < x.dim(); ++d) {
      if (reduced[d] != (pass == 1)) continue;
      L.permutation.push_back(d);
      permuted_shape.push_back(x.shape()[d]);
      permuted_strides.push_back(x.strides()[d]);
      (pass == 0 ? L.outer : L.inner) *= x.shape()[d];
      if (pass == 0) L.out_shape.push_back(x.shape()[d]);
    }
  }
  L.keep_shape = x.shape();
  for (int64_t d = 0; d < x.dim(); ++d)
    if (reduced[d]) L.keep_shape[d] = 1;
  Tensor permuted = as_contiguous(as_strided(x, permuted_shape, permuted_strides, x.offset()));
  L.rows = as_strided(permuted, {L.outer, L.inner}, {L.inner, 1}, permuted.offset());
  return L;
}

// Result of a row kernel ([outer]) in the requested shape.
Tensor shaped(const Tensor& flat, const RowLayout& L, bool keepdim) {
  return as_strided(flat, keepdim ? L.keep_shape : L.out_shape,
                    contiguous_strides(keepdim ? L.keep_shape : L.out_shape), flat.offset());
}

// A gradient of the reduced shape, broadcast back over the reduced dims (a stride-0 view, no copy).
Tensor expand_back(const Tensor& g, const Shape& keep_shape, const Shape& input_shape) {
  return g.reshape(keep_shape).expand(input_shape);
}

// The number of leading dims reduced when `dims` is exactly 0, 1, ..., r - 1 of a contiguous floating x
// with kept dims after them (a bias gradient [B, T, C] -> [C]); 0 otherwise (to_rows then reports errors).
int64_t leading_reduced_dims(const Tensor& x, const Shape& dims) {
  if (dims.empty() || !x.is_contiguous() || !is_floating(x.dtype()) || dims.ndim() >= x.dim()) return 0;
  std::vector<bool> reduced(x.dim(), false);
  for (int64_t dim : dims) {
    const int64_t d = normalize_dim("sum", dim, x.shape());
    if (reduced[d]) return 0;
    reduced[d] = true;
  }
  for (int64_t d = 0; d < dims.ndim(); ++d)
    if (!reduced[d]) return 0;
  return dims.ndim();
}

}  // namespace

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor flat;
  Shape keep_shape, out_shape;
  if (const int64_t r = leading_reduced_dims(x, dims); r > 0) {
    // Column sums over the contiguous input as it lies: no transposed copy.
    out_shape = Shape(x.shape().begin() + r, x.shape().end());
    keep_shape = x.shape();
    for (int64_t d = 0; d < r; ++d) keep_shape[d] = 1;
    flat = Tensor::empty({numel(out_shape)}, x.options());
    HC_KERNEL(sum_columns, flat, flat, x.reshape({-1, numel(out_shape)}));
  } else {
    RowLayout L = to_rows("sum", x, dims);
    flat = Tensor::empty({L.outer}, x.options());
    HC_KERNEL(sum_rows, flat, flat, L.rows);
    keep_shape = L.keep_shape;
    out_shape = L.out_shape;
  }
  // d(sum)/dx = 1 for every summed element
  return record(kSum, flat.reshape(keepdim ? keep_shape : out_shape), {x},
                [keep = keep_shape, shape = x.shape()](const Tensor& g, const Needs&) {
                  return TensorList{expand_back(g, keep, shape)};
                });
}

Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) {
  RowLayout L = to_rows("mean", x, dims);
  Tensor flat = Tensor::empty({L.outer}, x.options());
  HC_KERNEL(sum_rows, flat, flat, L.rows);
  flat.mul_(1.0 / static_cast<double>(L.inner));  // 0 elements: 0 * inf = nan, as in PyTorch
  return record(kMean, shaped(flat, L, keepdim), {x},
                [keep = L.keep_shape, shape = x.shape(), n = L.inner](const Tensor& g, const Needs&) {
                  return TensorList{expand_back(g * (1.0 / static_cast<double>(n)), keep, shape)};
                });
}

namespace {
// A gradient laid out as rows [outer, inner] (kept dims, then reduced dims), viewed back in the input's dim
// order: the inverse of to_rows' permutation.
Tensor from_rows(const Tensor& grad_rows, const Shape& permutation, const Shape& shape) {
  Shape permuted_shape(permutation.size()), inverse(permutation.size());
  for (size_t k = 0; k < permutation.size(); ++k) {
    permuted_shape[k] = shape[permutation[k]];
    inverse[permutation[k]] = static_cast<int64_t>(k);
  }
  return grad_rows.reshape(permuted_shape).permute(inverse);
}

// max and min: the gradient goes to the position the forward picked (the first extremum).
Tensor extremum(const OpName& op, const Tensor& x, const Shape& dims, bool keepdim, bool take_max) {
  RowLayout L = to_rows(op.c_str(), x, dims);
  HC_CHECK(L.inner > 0, ShapeError, op.c_str(), ": cannot reduce over zero elements (shape ", x.shape(), ")");
  Tensor values = Tensor::empty({L.outer}, x.options());
  Tensor indices = Tensor::empty({L.outer}, {.dtype = DType::Int64, .device = x.device()});
  HC_KERNEL(max_rows, values, values, indices, L.rows, take_max);
  // Capture sizes, not L itself: L.rows would keep a copy of the input alive for nothing.
  return record(op, shaped(values, L, keepdim), {x},
                [outer = L.outer, inner = L.inner, permutation = L.permutation, indices, shape = x.shape()](
                    const Tensor& g, const Needs&) {
    // g goes to the picked position of each row of an [outer, inner] buffer, zeros elsewhere (a one-hot
    // select, so it runs on any device); then the buffer is viewed in the input's dim order (undoing the
    // permutation).
    const Tensor positions = arange(inner, {.dtype = DType::Int64, .device = g.device()}).unsqueeze(0);
    const Tensor picked = eq(positions, indices.unsqueeze(1));  // [outer, inner]
    Tensor grad_rows = where(picked, g.detach().reshape({outer, 1}), zeros({}, g.options()));
    return TensorList{from_rows(grad_rows, permutation, shape)};
  });
}
}  // namespace

Tensor max(const Tensor& x, const Shape& dims, bool keepdim) { return extremum(kMax, x, dims, keepdim, true); }
Tensor min(const Tensor& x, const Shape& dims, bool keepdim) { return extremum(kMin, x, dims, keepdim, false); }

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  RowLayout L = to_rows("argmax", x, {dim});
  HC_CHECK(L.inner > 0, ShapeError, "argmax: cannot reduce over zero elements (shape ", x.shape(), ")");
  Tensor values = Tensor::empty({L.outer}, x.options());
  Tensor indices = Tensor::empty({L.outer}, {.dtype = DType::Int64, .device = x.device()});
  HC_KERNEL(max_rows, values, values, indices, L.rows, true);
  return shaped(indices, L, keepdim);
}

Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  check_floating("argmin", x);
  return argmax(neg(x.detach()), dim, keepdim);  // the first maximum of -x is the first minimum of x
}

// d prod / dx_i = the product of the other elements: a kernel of prefix and suffix products, so zeros in the
// input give the right gradient (PyTorch's prod_backward, without its division when there are none).
Tensor prod(const Tensor& x, const Shape& dims, bool keepdim) {
  RowLayout L = to_rows(kProd.c_str(), x, dims);
  Tensor flat = Tensor::empty({L.outer}, x.options());
  HC_KERNEL(prod_rows, flat, flat, L.rows);
  return record(kProd, shaped(flat, L, keepdim), {x},
                [x = save(x, kProd), dims, permutation = L.permutation, outer = L.outer](const Tensor& g,
                                                                                         const Needs&) {
                  const Tensor xv = x.get();
                  const RowLayout rows = to_rows(kProd.c_str(), xv, dims);
                  Tensor grad_rows = Tensor::empty(rows.rows.shape(), g.options());
                  HC_KERNEL(prod_rows_backward, grad_rows, grad_rows, rows.rows, as_contiguous(g.detach()).reshape({outer}));
                  return TensorList{from_rows(grad_rows, permutation, xv.shape())};
                });
}

// var and std, written with mean, sum and sqrt (their gradients are those ops').
Tensor var(const Tensor& x, const Shape& dims, double correction, bool keepdim) {
  check_floating("var", x);
  double reduced = 1;  // N: the elements each result sums over
  if (dims.empty()) {
    reduced = static_cast<double>(x.numel());
  } else {
    for (const int64_t dim : dims) reduced *= static_cast<double>(x.shape()[normalize_dim("var", dim, x.shape())]);
  }
  const Tensor centred = x - mean(x, dims, /*keepdim=*/true);
  return sum(centred * centred, dims, keepdim) * (1.0 / (reduced - correction));
}

Tensor std(const Tensor& x, const Shape& dims, double correction, bool keepdim) {
  return sqrt(var(x, dims, correction, keepdim));
}

Tensor logsumexp(const Tensor& x, const Shape& dims, bool keepdim) {
  RowLayout L = to_rows("logsumexp", x, dims);
  Tensor flat = Tensor::empty({L.outer}, x.options());
  HC_KERNEL(logsumexp_rows, flat, flat, L.rows);
  Tensor out = shaped(flat, L, keepdim);
  // d logsumexp / dx = exp(x - logsumexp) = softmax(x) over the reduced dims
  return record(kLogsumexp, out, {x},
                [x = save(x, kLogsumexp), y = save(out, kLogsumexp), keep = L.keep_shape](
                    const Tensor& g, const Needs&) {
                  Tensor xv = x.get();
                  return TensorList{exp(xv - y.get().reshape(keep)) * g.reshape(keep)};
                });
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - shape.ndim();
  HC_CHECK(lead >= 0, ShapeError, "sum_to: cannot sum shape ", x.shape(), " down to ", shape);
  Shape dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] == 1 && x.shape()[d] != 1) {
      dims.push_back(d);
    } else {
      HC_CHECK(shape[d - lead] == x.shape()[d], ShapeError, "sum_to: cannot sum shape ", x.shape(), " down to ",
               shape);
    }
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

}  // namespace hcgrad
