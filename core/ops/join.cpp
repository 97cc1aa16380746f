// Joining and splitting along a dim.
//   cat:   copies each input into its window of the output; backward hands each input its window of dL/dout.
//   stack: unsqueeze + cat.   split/chunk: narrow views (differentiable through narrow).
#include <algorithm>

#include "hcgrad/core/creation.h"
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

// ---- written with cat, narrow and expand ----

Tensor roll(const Tensor& x, const Shape& shifts, const Shape& dims) {
  if (dims.empty()) {
    HC_CHECK(shifts.size() == 1, Error, "roll: without dims, expected one shift, got ", shifts);
    return roll(x.reshape({x.numel()}), shifts, {0}).reshape(x.shape());
  }
  HC_CHECK(shifts.size() == dims.size(), Error, "roll: ", shifts.size(), " shifts for ", dims.size(), " dims");
  Tensor out = x;
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = normalize_dim("roll", dims[i], x.shape()), n = x.shape()[d];
    const int64_t s = n == 0 ? 0 : ((shifts[i] % n) + n) % n;  // the last s elements come first
    if (s != 0) out = cat({out.narrow(d, n - s, s), out.narrow(d, 0, n - s)}, d);
  }
  return out.impl_ptr() == x.impl_ptr() ? x.clone() : out;
}

Tensor repeat(const Tensor& x, const Shape& repeats) {
  HC_CHECK(static_cast<int64_t>(repeats.size()) >= x.dim(), Error, "repeat: ", repeats.size(),
           " repeats for a tensor of ", x.dim(), " dims; give one per dim (more add leading dims)");
  const int64_t k = static_cast<int64_t>(repeats.size()), lead = k - x.dim();
  // [s0, s1, ...] -> [1, s0, 1, s1, ...] -> expand to [r0, s0, r1, s1, ...] -> [r0·s0, r1·s1, ...]
  Shape interleaved, expanded, result;
  for (int64_t i = 0; i < k; ++i) {
    HC_CHECK(repeats[i] >= 0, Error, "repeat: repeats must be >= 0, got ", repeats);
    const int64_t size = i < lead ? 1 : x.shape()[i - lead];
    interleaved.push_back(1);
    interleaved.push_back(size);
    expanded.push_back(repeats[i]);
    expanded.push_back(size);
    int64_t total = 0;
    HC_CHECK(!__builtin_mul_overflow(repeats[i], size, &total), ShapeError, "repeat: ", repeats[i], " x ", size,
             " elements along dim ", i, " overflow");
    result.push_back(total);
  }
  return x.reshape(interleaved).expand(expanded).reshape(result);
}

Tensor pad(const Tensor& x, const Shape& pads, double value) {
  HC_CHECK(pads.size() % 2 == 0 && static_cast<int64_t>(pads.size()) <= 2 * x.dim(), Error,
           "pad: expected pairs (left, right) for at most the ", x.dim(), " dims, last dim first, got ", pads);
  Tensor out = x;
  for (size_t pair = 0; pair < pads.size() / 2; ++pair) {
    const int64_t d = x.dim() - 1 - static_cast<int64_t>(pair), left = pads[2 * pair], right = pads[2 * pair + 1];
    // As torch: negative pads crop the input first (never more than it has), then positive ones add `value`.
    const int64_t n = out.shape()[d];
    const int64_t crop_left = std::max<int64_t>(-left, 0), crop_right = std::max<int64_t>(-right, 0);
    HC_CHECK(crop_left + crop_right <= n, ShapeError, "pad: pads ", left, " and ", right, " crop more than the ", n,
             " elements of dim ", d, " of shape ", x.shape());
    if (crop_left > 0 || crop_right > 0) out = out.narrow(d, crop_left, n - crop_left - crop_right);
    auto filler = [&](int64_t size) {
      Shape shape = out.shape();
      shape[d] = size;
      return full(shape, value, out.options());
    };
    if (left > 0 || right > 0) {
      std::vector<Tensor> pieces;
      if (left > 0) pieces.push_back(filler(left));
      pieces.push_back(out);
      if (right > 0) pieces.push_back(filler(right));
      out = cat(pieces, d);
    }
  }
  return out.impl_ptr() == x.impl_ptr() ? x.clone() : out;
}

}  // namespace hcgrad
