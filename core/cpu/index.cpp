// Gather and scatter-add along one dim. The op makes x / src contiguous, so both are [outer, size, inner]
// in memory, with `inner` the product of the dims after `dim`.
#include <cstring>
#include <vector>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"

namespace hcgrad::cpu {

void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  const DimSplit in = split_around(x.shape(), dim);
  const int64_t n = index.numel();
  const int64_t* idx = index.data<int64_t>();
  const size_t row_bytes = static_cast<size_t>(in.inner) * itemsize(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  // One task per (outer, i): copy the row x[o, idx[i], :] to out[o, i, :].
  parallel_for(0, in.outer * n, grain_for(in.inner), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / n, i = t % n;
      std::memcpy(dst + (o * n + i) * row_bytes, src + (o * in.size + idx[i]) * row_bytes, row_bytes);
    }
  });
}

void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const DimSplit dst = split_around(out.shape(), dim);
  const int64_t n = index.numel();
  const int64_t* idx = index.data<int64_t>();
  // Rows with the same index collide, so each task owns a block of columns and walks every i in order:
  // no races, and the sum order does not depend on the thread count.
  const int64_t column_block = 64;
  const int64_t blocks = (dst.inner + column_block - 1) / column_block;
  dispatch_floating("index_add", out.dtype(), [&]<class T>() {
    T* o_data = out.data<T>();
    const T* s_data = src.data<T>();
    parallel_for(0, dst.outer * blocks, grain_for(n * column_block), [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t o = t / blocks, c0 = (t % blocks) * column_block, c1 = std::min(dst.inner, c0 + column_block);
        for (int64_t i = 0; i < n; ++i) {
          T* to = o_data + (o * dst.size + idx[i]) * dst.inner;
          const T* from = s_data + (o * n + i) * dst.inner;
          for (int64_t c = c0; c < c1; ++c) to[c] += from[c];
        }
      }
    });
  });
}

void gather_places(const char* op, const Tensor& places, const Tensor& index, const Shape& index_shape,
                   const Shape& x_shape, int64_t dim) {
  const int64_t rank = static_cast<int64_t>(x_shape.size());
  const int64_t* values = index.data<int64_t>();
  int64_t* out = places.data<int64_t>();
  std::vector<int64_t> position(static_cast<size_t>(rank), 0);  // p, counted row-major over index_shape
  const Strides strides = contiguous_strides(x_shape);
  for (int64_t i = 0; i < index.numel(); ++i) {
    HC_CHECK(values[i] >= 0 && values[i] < x_shape[dim], IndexError, op, ": index ", values[i],
             " out of range for dim ", dim, " of size ", x_shape[dim]);
    int64_t place = 0;
    for (int64_t k = 0; k < rank; ++k) place += (k == dim ? values[i] : position[k]) * strides[k];
    out[i] = place;
    for (int64_t k = rank - 1; k >= 0 && ++position[k] == index_shape[k]; --k) position[k] = 0;
  }
}

}  // namespace hcgrad::cpu
