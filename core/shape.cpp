#include "hcgrad/core/shape.h"

#include <algorithm>
#include <limits>

#include "hcgrad/core/error.h"

namespace hcgrad {

std::ostream& operator<<(std::ostream& out, const Shape& shape) {
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  return out << ']';
}

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t size : shape) n *= size;
  return n;
}

int64_t checked_numel(const char* op, const Shape& shape, size_t itemsize) {
  uint64_t bound = itemsize;  // the product of max(size, 1) and itemsize, kept <= INT64_MAX
  for (int64_t size : shape) {
    HC_CHECK(size >= 0, ShapeError, op, ": negative size in shape ", shape);
    HC_CHECK(!__builtin_mul_overflow(bound, static_cast<uint64_t>(std::max<int64_t>(size, 1)), &bound) &&
                 bound <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
             ShapeError, op, ": shape ", shape, " is too large: ", itemsize == 1 ? "its element count" : "its byte count",
             " overflows a 64-bit integer");
  }
  return numel(shape);
}

Strides contiguous_strides(const Shape& shape) {
  Strides strides(shape.size());
  int64_t stride = 1;
  for (int64_t d = shape.ndim() - 1; d >= 0; --d) {
    strides[d] = stride;
    stride *= shape[d];
  }
  return strides;
}

bool is_contiguous(const Shape& shape, const Strides& strides) {
  int64_t expected = 1;
  for (int64_t d = shape.ndim() - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

int64_t normalize_dim(const char* op, int64_t dim, const Shape& shape) {
  int64_t ndim = shape.ndim();
  HC_CHECK(dim >= -ndim && dim < ndim && ndim > 0, IndexError, op, ": dim ", dim, " out of range for shape ", shape);
  return dim < 0 ? dim + ndim : dim;
}

int64_t normalize_insert_dim(const char* op, int64_t dim, const Shape& shape) {
  int64_t ndim = shape.ndim();
  HC_CHECK(dim >= -ndim - 1 && dim <= ndim, IndexError, op, ": dim ", dim, " out of range for inserting into shape ",
           shape);
  return dim < 0 ? dim + ndim + 1 : dim;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  int64_t ndim = std::max(a.ndim(), b.ndim());
  Shape out(ndim);
  for (int64_t i = 0; i < ndim; ++i) {
    // Walk from the last dim; a missing leading dim counts as size 1.
    int64_t da = i < a.ndim() ? a[a.ndim() - 1 - i] : 1;
    int64_t db = i < b.ndim() ? b[b.ndim() - 1 - i] : 1;
    HC_CHECK(da == db || da == 1 || db == 1, ShapeError, op, ": shapes ", a, " and ", b, " cannot be broadcast");
    out[ndim - 1 - i] = da == 1 ? db : da;
  }
  return out;
}

Shape infer_reshape(const char* op, const Shape& target, int64_t count, const Shape& from) {
  Shape out = target;
  int64_t known = 1, infer_at = -1;
  for (int64_t d = 0; d < out.ndim(); ++d) {
    if (out[d] == -1) {
      HC_CHECK(infer_at < 0, ShapeError, op, ": only one dim can be -1, got ", target);
      infer_at = d;
    } else {
      HC_CHECK(out[d] >= 0, ShapeError, op, ": invalid size ", out[d], " in ", target);
    }
  }
  Shape known_sizes = out;
  if (infer_at >= 0) known_sizes.erase(known_sizes.begin() + infer_at);
  checked_numel(op, known_sizes);  // the target's sizes may come from anywhere; their product must not overflow
  known = numel(known_sizes);
  if (infer_at >= 0) {
    HC_CHECK(known != 0 && count % known == 0, ShapeError, op, ": cannot reshape ", from, " (", count,
             " elements) into ", target);
    out[infer_at] = count / known;
  }
  HC_CHECK(checked_numel(op, out) == count, ShapeError, op, ": cannot reshape ", from, " (", count, " elements) into ", target);
  return out;
}

}  // namespace hcgrad
