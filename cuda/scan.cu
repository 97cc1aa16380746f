// Scans and sorts along the rows of a contiguous [outer, n] matrix on the GPU (the op in core/ops/scan.cpp
// moves the dim last).
//  * cumsum: one thread per row, adding in order (the CPU loop's order, the same bits). Simple rather than
//    fast: a long single row runs on one thread; a block-wide scan is the step up when that matters.
//  * sort: one thread per element computes its rank, the number of elements that come before it (the
//    smaller ones, and equal ones at earlier positions, which makes it stable), and writes its position
//    there. O(n^2) work per row but no synchronisation; fine for the rows of top-k and of small sorts.
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

template <class T>
__global__ void cumsum_rows_kernel(T* out, const T* rows, int64_t outer, int64_t n, bool reverse) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < outer; r += int64_t(gridDim.x) * blockDim.x) {
    T s = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = r * n + (reverse ? n - 1 - k : k);
      s += rows[i];
      out[i] = s;
    }
  }
}

// Ascending order with NaN above every number, as on the CPU; NaNs tie with each other.
template <class T>
__device__ bool ascending_before(T a, T b) {
  return a == a && (b != b || a < b);
}

template <class T>
__global__ void sort_rows_kernel(int64_t* indices, const T* rows, int64_t outer, int64_t n, bool descending) {
  const int64_t total = outer * n;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / n, i = e % n;
    const T* row = rows + r * n;
    const T v = row[i];
    int64_t rank = 0;
    for (int64_t j = 0; j < n; ++j) {
      const T w = row[j];
      const bool before = descending ? ascending_before(v, w) : ascending_before(w, v);
      const bool tie = !ascending_before(v, w) && !ascending_before(w, v);
      rank += before || (tie && j < i);
    }
    indices[r * n + rank] = i;
  }
}

}  // namespace

void cumsum_rows(const Tensor& out, const Tensor& rows, bool reverse) {
  const int64_t outer = rows.shape()[0], n = rows.shape()[1];
  if (outer == 0 || n == 0) return;
  dispatch_floating("cumsum", rows.dtype(), [&]<class T>() {
    cumsum_rows_kernel<T><<<blocks_for(outer), kThreads, 0, stream_for(out)>>>(ptr<T>(out), ptr<T>(rows), outer, n,
                                                                              reverse);
    HC_CUDA_LAUNCH_CHECK("cumsum");
  });
}

void sort_rows(const Tensor& indices, const Tensor& rows, bool descending) {
  const int64_t outer = rows.shape()[0], n = rows.shape()[1];
  if (outer == 0 || n == 0) return;
  dispatch_floating("sort", rows.dtype(), [&]<class T>() {
    sort_rows_kernel<T><<<blocks_for(outer * n), kThreads, 0, stream_for(indices)>>>(ptr<int64_t>(indices), ptr<T>(rows),
                                                                                    outer, n, descending);
    HC_CUDA_LAUNCH_CHECK("sort");
  });
}

}  // namespace hcgrad::cuda
