// Joining and splitting along a dim.
//   cat:   copies each input into its window of the output; backward hands each input its window of dL/dout.
//   stack: unsqueeze + cat.   split/chunk: narrow views (differentiable through narrow).
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {
const OpName kCat{"cat"};
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  HC_CHECK(!tensors.empty(), Error, "cat: expected at least one tensor");
  const Tensor& first = tensors[0];
  const int64_t d = normalize_dim("cat", dim, first.shape());
  Shape shape = first.shape();
  shape[d] = 0;
  for (const Tensor& t : tensors) {
    check_same_device("cat", first, t);
    check_same_dtype("cat", first, t);
    bool compatible = t.dim() == first.dim();
    for (int64_t k = 0; compatible && k < t.dim(); ++k) compatible = k == d || t.shape()[k] == first.shape()[k];
    HC_CHECK(compatible, ShapeError, "cat: shapes ", first.shape(), " and ", t.shape(),
             " differ outside dim ", dim);
    shape[d] += t.shape()[d];
  }
  Tensor out = Tensor::empty(shape, first.options());
  std::vector<int64_t> starts, sizes;
  int64_t start = 0;
  for (const Tensor& t : tensors) {
    starts.push_back(start);
    sizes.push_back(t.shape()[d]);
    Shape window = out.shape();
    window[d] = t.shape()[d];
    HC_KERNEL(copy, out, as_strided(out, window, out.strides(), start * out.strides()[d]), t);
    start += t.shape()[d];
  }
  return record(kCat, out, tensors, [d, starts, sizes](const Tensor& g, const Needs& need) {
    TensorList grads(starts.size());
    for (size_t i = 0; i < starts.size(); ++i)
      if (need[i]) grads[i] = g.narrow(d, starts[i], sizes[i]);
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  HC_CHECK(!tensors.empty(), Error, "stack: expected at least one tensor");
  const int64_t d = normalize_insert_dim("stack", dim, tensors[0].shape());
  std::vector<Tensor> expanded;
  for (const Tensor& t : tensors) {
    HC_CHECK(t.shape() == tensors[0].shape(), ShapeError, "stack: shapes ", tensors[0].shape(), " and ", t.shape(),
             " differ; stack needs equal shapes");
    expanded.push_back(t.unsqueeze(d));
  }
  return cat(expanded, d);
}

std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim) {
  const int64_t d = normalize_dim("split", dim, x.shape());
  int64_t total = 0;
  for (int64_t s : sizes) {
    HC_CHECK(s >= 0, ShapeError, "split: negative size in ", sizes);
    total += s;
  }
  HC_CHECK(total == x.shape()[d], ShapeError, "split: sizes ", sizes, " sum to ", total, ", but dim ", dim,
           " of shape ", x.shape(), " has size ", x.shape()[d]);
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(x.narrow(d, start, s));
    start += s;
  }
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  const int64_t d = normalize_dim("split", dim, x.shape());
  HC_CHECK(split_size > 0, ShapeError, "split: split_size must be positive, got ", split_size);
  Shape sizes;
  for (int64_t start = 0; start < x.shape()[d]; start += split_size)
    sizes.push_back(std::min(split_size, x.shape()[d] - start));
  return split(x, sizes, d);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  const int64_t d = normalize_dim("chunk", dim, x.shape());
  HC_CHECK(chunks > 0, ShapeError, "chunk: number of chunks must be positive, got ", chunks);
  // Like torch.chunk: pieces of ceil(size / chunks), so there may be fewer than `chunks` pieces.
  const int64_t size = x.shape()[d];
  return split(x, std::max<int64_t>(1, (size + chunks - 1) / chunks), d);
}

}  // namespace hcgrad
