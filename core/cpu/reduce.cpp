// Row reductions. The op (core/ops/reduce.cpp) lays the reduced dims out last and contiguous, so every
// reduction here is "one result per row of a contiguous [outer, inner] matrix".
#include <cmath>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"

namespace hcgrad::cpu {

namespace {

template <class T>
using ConstVector = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// Sum of n contiguous values. Long rows are cut into fixed blocks summed in parallel, then added in
// order: deterministic whatever the thread count, and more accurate than one running sum.
template <class T>
T row_sum(const T* p, int64_t n) {
  if (n <= 4 * kGrain) return n > 0 ? ConstVector<T>(p, n).sum() : T(0);
  return blocked_sum<T>(n, kGrain, [p](int64_t b, int64_t e) { return ConstVector<T>(p + b, e - b).sum(); });
}

}  // namespace

void sum_rows(const Tensor& out, const Tensor& rows) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  dispatch_floating("sum", rows.dtype(), [&]<class T>() {
    const T* x = rows.data<T>();
    T* y = out.data<T>();
    for_each_row(outer, inner, [&](int64_t r) { y[r] = row_sum(x + r * inner, inner); });
  });
}

// Fixed blocks of kColumnBlock rows are summed in parallel, each into its own partial row (vectorised
// along the columns), and the partials are added in block order: the same bits on any thread count.
void sum_columns(const Tensor& out, const Tensor& cols) {
  constexpr int64_t kColumnBlock = 128;
  const int64_t outer = cols.shape()[0], inner = cols.shape()[1];
  dispatch_floating("sum", cols.dtype(), [&]<class T>() {
    using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
    using ConstRow = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;
    const T* x = cols.data<T>();
    Row y(out.data<T>(), inner);
    y.setZero();
    if (outer == 0 || inner == 0) return;
    const int64_t blocks = (outer + kColumnBlock - 1) / kColumnBlock;
    std::vector<T> partials(static_cast<size_t>(blocks * inner), T(0));
    parallel_for(0, blocks, grain_for(kColumnBlock * inner), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        Row part(partials.data() + b * inner, inner);
        for (int64_t r = b * kColumnBlock; r < std::min(outer, (b + 1) * kColumnBlock); ++r)
          part += ConstRow(x + r * inner, inner);
      }
    });
    for (int64_t b = 0; b < blocks; ++b) y += Row(partials.data() + b * inner, inner);
  });
}

void max_rows(const Tensor& values, const Tensor& indices, const Tensor& rows, bool take_max) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  dispatch_floating(take_max ? "max" : "min", rows.dtype(), [&]<class T>() {
    const T* x = rows.data<T>();
    T* v = values.data<T>();
    int64_t* idx = indices.data<int64_t>();
    for_each_row(outer, inner, [&](int64_t r) {
      const T* row = x + r * inner;
      int64_t best = 0;
      for (int64_t i = 1; i < inner && !std::isnan(row[best]); ++i) {
        bool better = take_max ? row[i] > row[best] : row[i] < row[best];
        if (better || std::isnan(row[i])) best = i;  // NaN wins, as in PyTorch
      }
      v[r] = row[best];
      idx[r] = best;
    });
  });
}

// logsumexp = m + log(sum(exp(x - m))) with m = max(x): no overflow for large x.
void logsumexp_rows(const Tensor& out, const Tensor& rows) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  dispatch_floating("logsumexp", rows.dtype(), [&]<class T>() {
    const T* x = rows.data<T>();
    T* y = out.data<T>();
    for_each_row(outer, inner, [&](int64_t r) {
      const T* row = x + r * inner;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t i = 0; i < inner; ++i) m = (row[i] > m || std::isnan(row[i])) ? row[i] : m;
      if (!std::isfinite(m)) {  // all -inf (log 0), some +inf, or NaN: the max is the answer
        y[r] = m;
        return;
      }
      T s = 0;
      for (int64_t i = 0; i < inner; ++i) s += std::exp(row[i] - m);
      y[r] = m + std::log(s);
    });
  });
}

void prod_rows(const Tensor& out, const Tensor& rows) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  dispatch_floating("prod", rows.dtype(), [&]<class T>() {
    const T* x = rows.data<T>();
    T* y = out.data<T>();
    for_each_row(outer, inner, [&](int64_t r) {
      T p = 1;
      for (int64_t i = 0; i < inner; ++i) p *= x[r * inner + i];  // in order: the same bits as the GPU's loop
      y[r] = p;
    });
  });
}

// Two passes per row: the suffix products x[i+1] ... x[n-1] into grad, then the prefix products times them.
void prod_rows_backward(const Tensor& grad_rows, const Tensor& rows, const Tensor& grad_out) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  dispatch_floating("prod_backward", rows.dtype(), [&]<class T>() {
    const T* x = rows.data<T>();
    const T* g = grad_out.data<T>();
    T* dx = grad_rows.data<T>();
    for_each_row(outer, inner, [&](int64_t r) {
      const T* row = x + r * inner;
      T* grad = dx + r * inner;
      T suffix = 1;
      for (int64_t i = inner - 1; i >= 0; --i) {
        grad[i] = suffix;
        suffix *= row[i];
      }
      T prefix = g[r];
      for (int64_t i = 0; i < inner; ++i) {
        grad[i] *= prefix;
        prefix *= row[i];
      }
    });
  });
}

}  // namespace hcgrad::cpu
