// Fused LayerNorm and RMSNorm over the last dim of contiguous [N, D] data (the forward and backward of
// llm.c's layernorm_forward / layernorm_backward, with row statistics saved for backward).
//
// The weight/bias gradients sum over all N rows. Rows are cut into blocks of a fixed size; each block
// sums into its own buffer and the buffers are added in block order, so the result is the same for
// any thread count.
#include <cmath>
#include <vector>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"

namespace hcgrad::cpu {

namespace {

// Runs row_fn(r, dw, db) for every row, where dw/db are per-block accumulators of length D, and adds the
// block accumulators into grad_w / grad_b (either may be null) in block order.
template <class T, class RowFn>
void rows_with_param_grads(int64_t N, int64_t D, T* grad_w, T* grad_b, const RowFn& row_fn) {
  const int64_t rows_per_block = grain_for(D);
  const int64_t blocks = (N + rows_per_block - 1) / rows_per_block;
  const bool params = grad_w || grad_b;
  std::vector<T> partial_w(params ? blocks * D : 0, T(0)), partial_b(grad_b ? blocks * D : 0, T(0));
  parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* dw = params ? partial_w.data() + b * D : nullptr;
      T* db = grad_b ? partial_b.data() + b * D : nullptr;
      for (int64_t r = b * rows_per_block; r < std::min(N, (b + 1) * rows_per_block); ++r) row_fn(r, dw, db);
    }
  });
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t i = 0; i < D; ++i) {
      if (grad_w) grad_w[i] += partial_w[b * D + i];
      if (grad_b) grad_b[i] += partial_b[b * D + i];
    }
}

template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

// y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps), var the biased variance (two passes).
void layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t N = x.shape()[0], D = x.shape()[1];
  dispatch_floating("layer_norm", x.dtype(), [&]<class T>() {
    const T *xp = x.data<T>(), *w = data_or_null<T>(weight), *b = data_or_null<T>(bias);
    T *yp = y.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
    parallel_for(0, N, grain_for(D), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xp + r * D;
        T* yr = yp + r * D;
        T m = 0;
        for (int64_t i = 0; i < D; ++i) m += xr[i];
        m /= T(D);
        T var = 0;
        for (int64_t i = 0; i < D; ++i) var += (xr[i] - m) * (xr[i] - m);
        const T s = T(1) / std::sqrt(var / T(D) + T(eps));
        for (int64_t i = 0; i < D; ++i) {
          const T v = (xr[i] - m) * s;
          yr[i] = (w ? v * w[i] : v) + (b ? b[i] : T(0));
        }
        mp[r] = m;
        rp[r] = s;
      }
    });
  });
}

// With xhat = (x - mean) * rstd and dxhat = dy * w:
//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dw = sum_rows(dy * xhat),  db = sum_rows(dy)
void layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                         const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd) {
  const int64_t N = x.shape()[0], D = x.shape()[1];
  dispatch_floating("layer_norm_backward", x.dtype(), [&]<class T>() {
    const T *xp = x.data<T>(), *g = grad_y.data<T>(), *w = data_or_null<T>(weight);
    const T *mp = mean.data<T>(), *rp = rstd.data<T>();
    T* dx = data_or_null<T>(grad_x);
    rows_with_param_grads<T>(N, D, data_or_null<T>(grad_weight), data_or_null<T>(grad_bias),
                             [&](int64_t r, T* dw, T* db) {
                               const T* xr = xp + r * D;
                               const T* gr = g + r * D;
                               const T m = mp[r], s = rp[r];
                               T mean_dxhat = 0, mean_dxhat_xhat = 0;
                               for (int64_t i = 0; i < D; ++i) {
                                 const T xhat = (xr[i] - m) * s;
                                 const T dxhat = w ? gr[i] * w[i] : gr[i];
                                 mean_dxhat += dxhat;
                                 mean_dxhat_xhat += dxhat * xhat;
                                 if (dw) dw[i] += gr[i] * xhat;
                                 if (db) db[i] += gr[i];
                               }
                               mean_dxhat /= T(D);
                               mean_dxhat_xhat /= T(D);
                               if (!dx) return;
                               T* dr = dx + r * D;
                               for (int64_t i = 0; i < D; ++i) {
                                 const T xhat = (xr[i] - m) * s;
                                 const T dxhat = w ? gr[i] * w[i] : gr[i];
                                 dr[i] = s * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
                               }
                             });
  });
}

// y = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps)
void rms_norm_forward(const Tensor& y, const Tensor& rstd, const Tensor& x, const Tensor& weight, double eps) {
  const int64_t N = x.shape()[0], D = x.shape()[1];
  dispatch_floating("rms_norm", x.dtype(), [&]<class T>() {
    const T *xp = x.data<T>(), *w = data_or_null<T>(weight);
    T *yp = y.data<T>(), *rp = rstd.data<T>();
    parallel_for(0, N, grain_for(D), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xp + r * D;
        T* yr = yp + r * D;
        T ms = 0;
        for (int64_t i = 0; i < D; ++i) ms += xr[i] * xr[i];
        const T s = T(1) / std::sqrt(ms / T(D) + T(eps));
        for (int64_t i = 0; i < D; ++i) yr[i] = w ? xr[i] * s * w[i] : xr[i] * s;
        rp[r] = s;
      }
    });
  });
}

// With xhat = x * rstd and dxhat = dy * w:  dx = rstd * (dxhat - xhat * mean(dxhat * xhat)),  dw = sum_rows(dy * xhat)
void rms_norm_backward(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_y, const Tensor& x,
                       const Tensor& weight, const Tensor& rstd) {
  const int64_t N = x.shape()[0], D = x.shape()[1];
  dispatch_floating("rms_norm_backward", x.dtype(), [&]<class T>() {
    const T *xp = x.data<T>(), *g = grad_y.data<T>(), *w = data_or_null<T>(weight), *rp = rstd.data<T>();
    T* dx = data_or_null<T>(grad_x);
    rows_with_param_grads<T>(N, D, data_or_null<T>(grad_weight), nullptr, [&](int64_t r, T* dw, T*) {
      const T* xr = xp + r * D;
      const T* gr = g + r * D;
      const T s = rp[r];
      T mean_dxhat_xhat = 0;
      for (int64_t i = 0; i < D; ++i) {
        const T xhat = xr[i] * s;
        mean_dxhat_xhat += (w ? gr[i] * w[i] : gr[i]) * xhat;
        if (dw) dw[i] += gr[i] * xhat;
      }
      mean_dxhat_xhat /= T(D);
      if (!dx) return;
      T* dr = dx + r * D;
      for (int64_t i = 0; i < D; ++i) dr[i] = s * ((w ? gr[i] * w[i] : gr[i]) - xr[i] * s * mean_dxhat_xhat);
    });
  });
}

}  // namespace hcgrad::cpu
