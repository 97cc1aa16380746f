// Gathering rows by index. Forward copies the picked slices; backward scatter-adds the gradient back
// (an index picked twice receives both gradients).
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

const OpName kIndexSelect{"index_select"};
const OpName kEmbedding{"embedding"};

// Checks that `index` holds int64 values in [0, size); returns it contiguous and flat. GPU indices are checked
// by the GPU kernels instead (cuda/index_fault.h): reading them here would make the host wait for every
// kernel queued before them, and a bad one is still reported, at the next wait for the GPU.
Tensor checked_index(const char* op, const Tensor& index, int64_t size, const char* what, const Shape& shape) {
  HC_CHECK(index.dtype() == DType::Int64, DTypeError, op, ": indices must be int64, got ", index.dtype(),
           " for shape ", index.shape());
  Tensor flat = as_contiguous(index);
  if (flat.device().is_cuda()) return as_strided(flat, {flat.numel()}, {1}, flat.offset());
  const int64_t* p = flat.data<int64_t>();
  for (int64_t i = 0; i < flat.numel(); ++i)
    HC_CHECK(p[i] >= 0 && p[i] < size, IndexError, op, ": index ", p[i], " out of range for ", what, " ", shape,
             " (valid: 0..", size - 1, ")");
  return as_strided(flat, {flat.numel()}, {1}, flat.offset());
}

// The gradient of a gather: zeros of the source's shape with the rows of g added at their indices.
Tensor scatter_add_rows(const Tensor& g, const Shape& source_shape, int64_t dim, const Tensor& index) {
  Tensor grad = zeros(source_shape, g.options());
  HC_KERNEL(index_add, grad, grad, dim, index, as_contiguous(g));
  return grad;
}

}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = normalize_dim("index_select", dim, x.shape());
  HC_CHECK(index.dim() <= 1, ShapeError, "index_select: index must be 1-d, got shape ", index.shape());
  check_same_device("index_select", x, index);
  Tensor idx = checked_index("index_select", index, x.shape()[d], "dim of shape", x.shape());
  Shape shape = x.shape();
  shape[d] = idx.numel();
  Tensor out = Tensor::empty(shape, x.options());
  HC_KERNEL(index_select, out, out, as_contiguous(x), d, idx);
  return record(kIndexSelect, out, {x}, [shape = x.shape(), d, idx](const Tensor& g, const Needs&) {
    return TensorList{scatter_add_rows(g, shape, d, idx)};
  });
}

Tensor embedding(const Tensor& ids, const Tensor& weight) {
  HC_CHECK(weight.dim() == 2, ShapeError, "embedding: weight must be 2-d [num_embeddings, dim], got shape ",
           weight.shape());
  check_floating("embedding", weight);
  check_same_device("embedding", ids, weight);
  Tensor idx = checked_index("embedding", ids, weight.shape()[0], "weight", weight.shape());
  Shape shape = ids.shape();
  shape.push_back(weight.shape()[1]);
  Tensor out = Tensor::empty(shape, weight.options());
  HC_KERNEL(index_select, out, out, as_contiguous(weight), 0, idx);
  return record(kEmbedding, out, {weight}, [shape = weight.shape(), idx](const Tensor& g, const Needs&) {
    return TensorList{scatter_add_rows(g.reshape({-1, shape[1]}), shape, 0, idx)};
  });
}

// ---- gather and scatter_add: places in the flattened x ----

namespace {
const OpName kScatterAdd{"scatter_add"};

// For every element p of index (row-major), the offset in row-major x of p with dim replaced by index[p];
// int64 [index.numel()] on x's device (the kernel gather_places). Checks what torch checks.
Tensor flat_places(const char* op, const Shape& x_shape, int64_t dim, const Tensor& index) {
  const int64_t rank = static_cast<int64_t>(x_shape.size());
  HC_CHECK(index.dtype() == DType::Int64, DTypeError, op, ": index must be int64, got ", index.dtype());
  HC_CHECK(index.dim() == rank, ShapeError, op, ": index ", index.shape(), " must have the ", rank,
           " dims of the input ", x_shape);
  for (int64_t k = 0; k < rank; ++k)
    HC_CHECK(k == dim || index.shape()[k] <= x_shape[k], ShapeError, op, ": index ", index.shape(),
             " is larger than the input ", x_shape, " in dim ", k);
  // Computed (and range-checked) on index's device: a GPU index is never read by the host.
  Tensor places = Tensor::empty({index.numel()}, {.dtype = DType::Int64, .device = index.device()});
  HC_KERNEL(gather_places, places, op, places, as_contiguous(index), index.shape(), x_shape, dim);
  return places;
}
}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_same_device("gather", x, index);
  const int64_t d = normalize_dim("gather", dim, x.shape());
  const Tensor places = flat_places("gather", x.shape(), d, index);
  return index_select(x.reshape({x.numel()}), 0, places).reshape(index.shape());
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  check_floating("scatter_add", x);
  check_same_dtype("scatter_add", x, src);
  check_same_device("scatter_add", x, index);
  check_same_device("scatter_add", x, src);
  const int64_t d = normalize_dim("scatter_add", dim, x.shape());
  const Tensor places = flat_places("scatter_add", x.shape(), d, index);
  HC_CHECK(src.dim() == index.dim(), ShapeError, "scatter_add: src ", src.shape(), " and index ", index.shape(),
           " must have the same number of dims");
  Tensor used = src.detach();  // the first index.size(k) of src along every k
  for (int64_t k = 0; k < src.dim(); ++k) {
    HC_CHECK(index.shape()[k] <= src.shape()[k], ShapeError, "scatter_add: index ", index.shape(),
             " is larger than src ", src.shape(), " in dim ", k);
    used = used.narrow(k, 0, index.shape()[k]);
  }
  Tensor flat = x.detach().reshape({x.numel()}).clone();
  HC_KERNEL(index_add, flat, flat, 0, places, as_contiguous(used).reshape({places.numel()}));
  return record(kScatterAdd, flat.reshape(x.shape()), {x, src},
                [places, index_shape = index.shape(), src_shape = src.shape()](const Tensor& g, const Needs& need) {
                  Tensor grad_src;
                  if (need[1]) {  // the gradient at the places each src value went to; zeros for unused src
                    grad_src = zeros(src_shape, g.options());
                    Tensor window = grad_src;
                    for (size_t k = 0; k < index_shape.size(); ++k)
                      window = window.narrow(static_cast<int64_t>(k), 0, index_shape[k]);
                    window.copy_(index_select(g.reshape({g.numel()}), 0, places).reshape(index_shape));
                  }
                  return TensorList{need[0] ? g : Tensor(), grad_src};
                });
}

// ---- written with other ops ----

Tensor flip(const Tensor& x, const Shape& dims) {
  Tensor out = x.clone();  // a new tensor even when dims is empty, as torch.flip
  std::vector<bool> seen(static_cast<size_t>(x.dim()), false);
  for (const int64_t dim : dims) {
    const int64_t d = normalize_dim("flip", dim, x.shape());
    HC_CHECK(!seen[d], Error, "flip: dim ", d, " appears twice in dims ", dims);
    seen[d] = true;
    const int64_t n = x.shape()[d];
    std::vector<int64_t> reversed(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) reversed[i] = n - 1 - i;
    out = index_select(out, d, from_vector(reversed, {n}).to(x.device()));
  }
  return out;
}

namespace {
// x with the places where keep(column - row) is false (last two dims) set to zero.
template <class Keep>
Tensor triangle(const char* op, const Tensor& x, const Keep& keep) {
  HC_CHECK(x.dim() >= 2, ShapeError, op, ": expected a tensor of at least 2 dims, got shape ", x.shape());
  const int64_t rows = x.shape()[x.dim() - 2], cols = x.shape()[x.dim() - 1];
  std::vector<bool> drop(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) drop[i * cols + j] = !keep(j - i);
  return masked_fill(x, from_vector(drop, {rows, cols}).to(x.device()), 0.0);
}
}  // namespace

Tensor tril(const Tensor& x, int64_t diagonal) {
  return triangle("tril", x, [diagonal](int64_t offset) { return offset <= diagonal; });
}

Tensor triu(const Tensor& x, int64_t diagonal) {
  return triangle("triu", x, [diagonal](int64_t offset) { return offset >= diagonal; });
}

}  // namespace hcgrad
