// Scans and sorts along the rows of a contiguous [outer, n] matrix (the op in core/ops/scan.cpp moves the
// dim last): one row per task, rows in parallel.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"

namespace hcgrad::cpu {

namespace {

// Ascending order with NaN above every number (PyTorch's order); NaNs tie with each other.
template <class T>
bool ascending_before(T a, T b) {
  return !std::isnan(a) && (std::isnan(b) || a < b);
}

}  // namespace

void cumsum_rows(const Tensor& out, const Tensor& rows, bool reverse) {
  const int64_t outer = rows.shape()[0], n = rows.shape()[1];
  dispatch_floating("cumsum", rows.dtype(), [&]<class T>() {
    const T* x = rows.data<T>();
    T* y = out.data<T>();
    for_each_row(outer, n, [&](int64_t r) {
      T s = 0;
      for (int64_t k = 0; k < n; ++k) {
        const int64_t i = r * n + (reverse ? n - 1 - k : k);
        s += x[i];
        y[i] = s;
      }
    });
  });
}

void sort_rows(const Tensor& indices, const Tensor& rows, bool descending) {
  const int64_t outer = rows.shape()[0], n = rows.shape()[1];
  dispatch_floating("sort", rows.dtype(), [&]<class T>() {
    const T* x = rows.data<T>();
    int64_t* idx = indices.data<int64_t>();
    for_each_row(outer, n, [&](int64_t r) {
      const T* row = x + r * n;
      int64_t* order = idx + r * n;
      std::iota(order, order + n, int64_t{0});
      std::stable_sort(order, order + n, [&](int64_t i, int64_t j) {
        return descending ? ascending_before(row[j], row[i]) : ascending_before(row[i], row[j]);
      });
    });
  });
}

}  // namespace hcgrad::cpu
