// Softmax over the last dim of contiguous [rows, n] data, one row per task.
#include <cmath>
#include <limits>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"

namespace hcgrad::cpu {

// softmax:     y = exp(x - m) / s            with m = max(x), s = sum(exp(x - m))
// log_softmax: y = x - m - log(s)
void softmax(const Tensor& y, const Tensor& x, bool log) {
  const int64_t rows = x.shape()[0], n = x.shape()[1];
  dispatch_floating(log ? "log_softmax" : "softmax", x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* out = y.data<T>();
    parallel_for(0, rows, grain_for(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = in + r * n;
        T* yr = out + r * n;
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t i = 0; i < n; ++i) m = std::max(m, xr[i]);
        T s = 0;
        for (int64_t i = 0; i < n; ++i) {
          yr[i] = std::exp(xr[i] - m);
          s += yr[i];
        }
        if (log) {
          const T shift = m + std::log(s);
          for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - shift;
        } else {
          const T inv = T(1) / s;
          for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
        }
      }
    });
  });
}

void softmax_backward(const Tensor& grad_x, const Tensor& y, const Tensor& grad_y, bool log) {
  const int64_t rows = y.shape()[0], n = y.shape()[1];
  dispatch_floating(log ? "log_softmax_backward" : "softmax_backward", y.dtype(), [&]<class T>() {
    const T* yp = y.data<T>();
    const T* gp = grad_y.data<T>();
    T* dx = grad_x.data<T>();
    parallel_for(0, rows, grain_for(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* yr = yp + r * n;
        const T* gr = gp + r * n;
        T* dr = dx + r * n;
        T dot = 0;
        if (log) {
          for (int64_t i = 0; i < n; ++i) dot += gr[i];
          for (int64_t i = 0; i < n; ++i) dr[i] = gr[i] - std::exp(yr[i]) * dot;
        } else {
          for (int64_t i = 0; i < n; ++i) dot += gr[i] * yr[i];
          for (int64_t i = 0; i < n; ++i) dr[i] = yr[i] * (gr[i] - dot);
        }
      }
    });
  });
}

}  // namespace hcgrad::cpu
