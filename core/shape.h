// Shapes and strides. A tensor of shape [d0, d1, ..., dn-1] with strides [s0, ..., sn-1] and offset o
// keeps element (i0, ..., in-1) at storage index o + i0*s0 + ... + in-1*sn-1. Views (transpose, slice,
// expand, ...) only change shape, strides and offset; the bytes stay where they are.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <vector>

namespace hcgrad {

// A list of sizes (or strides). Its own type so that it prints as [2,3] in error messages.
class Shape : public std::vector<int64_t> {
 public:
  using std::vector<int64_t>::vector;
  Shape(std::initializer_list<int64_t> sizes) : std::vector<int64_t>(sizes) {}
  int64_t ndim() const { return static_cast<int64_t>(size()); }
};
using Strides = Shape;

std::ostream& operator<<(std::ostream& out, const Shape& shape);

// Number of elements: the product of the sizes (1 for a 0-d scalar, 0 if any size is 0). Unchecked: for a
// shape that checked_numel has accepted.
int64_t numel(const Shape& shape);

// Where a shape is born (a new tensor, a reshape or expand target, a file's header): checks that every size
// is >= 0 and that the shape's byte count, with `itemsize` bytes per element, fits in int64 — counting a
// size of 0 as 1, so that the strides and partial products any kernel computes from the shape cannot
// overflow either. Returns the number of elements; throws ShapeError "<op>: shape [...] ..." otherwise.
// Example: checked_numel("empty", {256, int64_t(1) << 62}, 4) throws (2^72 bytes).
int64_t checked_numel(const char* op, const Shape& shape, size_t itemsize = 1);

// Row-major strides: the last dim is contiguous. [2,3,4] -> [12,4,1].
Strides contiguous_strides(const Shape& shape);

// True when (shape, strides) walk memory row-major without gaps. Size-1 dims may have any stride.
bool is_contiguous(const Shape& shape, const Strides& strides);

// Turns a possibly negative dim into 0..ndim-1; `op` names the caller in the error.
// Example: normalize_dim("sum", -1, {2,3}) == 1; normalize_dim("sum", 2, {2,3}) throws IndexError.
int64_t normalize_dim(const char* op, int64_t dim, const Shape& shape);
// The same for an insertion point (unsqueeze, stack): valid range is -ndim-1 .. ndim.
int64_t normalize_insert_dim(const char* op, int64_t dim, const Shape& shape);

// NumPy broadcasting: align trailing dims; each pair must be equal or contain a 1.
// broadcast_shapes("add", {2,1,3}, {4,3}) == {2,4,3}; {2,3} with {4} throws ShapeError.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

// Resolves a single -1 in a reshape target from the element count; checks the counts agree.
Shape infer_reshape(const char* op, const Shape& target, int64_t numel, const Shape& from);

// A shape seen as [outer, size, inner] around `dim` (gathers and scatters along one dim):
// split_around({2, 3, 4, 5}, 1) == {2, 3, 20}.
struct DimSplit {
  int64_t outer, size, inner;
};
inline DimSplit split_around(const Shape& shape, int64_t dim) {
  DimSplit s{1, shape[dim], 1};
  for (int64_t d = 0; d < dim; ++d) s.outer *= shape[d];
  for (int64_t d = dim + 1; d < shape.ndim(); ++d) s.inner *= shape[d];
  return s;
}

// For elementwise loops over N operands of one shape (CPU and CUDA): drops size-1 dims and merges dim d into d+1 when, for every operand, stride[d] == stride[d+1] * size[d+1].
// Leaves at least one dim so that a 0-d tensor becomes [1].
template <size_t N>
void coalesce_dims(Shape& shape, std::array<Strides, N>& strides) {
  Shape new_shape;
  std::array<Strides, N> new_strides;
  for (int64_t d = 0; d < shape.ndim(); ++d) {
    if (shape[d] == 1) continue;
    bool mergeable = !new_shape.empty();
    for (size_t k = 0; k < N && mergeable; ++k) mergeable = new_strides[k].back() == strides[k][d] * shape[d];
    if (mergeable) {
      new_shape.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) new_strides[k].back() = strides[k][d];
    } else {
      new_shape.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) new_strides[k].push_back(strides[k][d]);
    }
  }
  if (new_shape.empty()) {
    new_shape.push_back(1);
    for (size_t k = 0; k < N; ++k) new_strides[k].push_back(0);
  }
  shape = std::move(new_shape);
  strides = std::move(new_strides);
}

}  // namespace hcgrad
