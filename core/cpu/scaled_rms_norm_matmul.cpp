// scaled_rms_norm_matmul on the CPU: the connections' norm and coefficient projection (the op is in
// core/ops/scaled_rms_norm_matmul.cpp).
// x is [R, K] with K the model width and w [K, M] with M ~ 6 coefficients, so the GEMM is too thin for
// Eigen's blocking to pay off; instead each row is read once, for its norm and its M dot products (forward)
// or its gradient (backward), while it sits in L1.
#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"

namespace hcgrad::cpu {

namespace {
constexpr double kMinNorm = 1e-12;   // the library's clamp of the norm
constexpr int64_t kRowBlock = 256;   // rows per partial sum of grad_w

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstRows = Eigen::Map<const Matrix<T>>;
template <class T>
using Rows = Eigen::Map<Matrix<T>>;
template <class T>
using ConstRow = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;
}  // namespace

void scaled_rms_norm_matmul_forward(const Tensor& out, const Tensor& norm, const Tensor& x, const Tensor& w) {
  const int64_t R = x.shape()[0], K = x.shape()[1], M = w.shape()[1];
  dispatch_floating("scaled_rms_norm_matmul", x.dtype(), [&]<class T>() {
    const Matrix<T> wt = ConstRows<T>(w.data<T>(), K, M).transpose();  // [M, K]: one contiguous row per output
    const T* xp = x.data<T>();
    T *o = out.data<T>(), *np = norm.data<T>();
    parallel_for(0, R, grain_for(K * (M + 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const ConstRow<T> xr(xp + r * K, K);
        const T n = std::sqrt(xr.squaredNorm());
        const T inv = T(1) / std::max(n, T(kMinNorm));
        np[r] = n;
        for (int64_t m = 0; m < M; ++m) o[r * M + m] = xr.dot(wt.row(m)) * inv;
      }
    });
  });
}

// Plain loops over the K features (vectorised), the M ~ 6 coefficients outside them: Eigen's small dynamic
// products here allocated a temporary per row.
void scaled_rms_norm_matmul_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad, const Tensor& x,
                           const Tensor& w, const Tensor& out, const Tensor& norm) {
  const int64_t R = x.shape()[0], K = x.shape()[1], M = w.shape()[1];
  dispatch_floating("scaled_rms_norm_matmul_backward", x.dtype(), [&]<class T>() {
    const Matrix<T> wt = ConstRows<T>(w.data<T>(), K, M).transpose();  // [M, K]
    const T *xp = x.data<T>(), *g = grad.data<T>(), *o = out.data<T>(), *np = norm.data<T>();
    T* gx = grad_x.defined() ? grad_x.data<T>() : nullptr;
    const int64_t blocks = (R + kRowBlock - 1) / kRowBlock;
    // Per block of rows, grad_w transposed ([M, K]) so that each row adds M contiguous K-vectors.
    std::vector<T> partials(grad_w.defined() ? static_cast<size_t>(blocks * M * K) : 0, T(0));
    parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      std::vector<T> g_over_n(static_cast<size_t>(M));
      for (int64_t b = b0; b < b1; ++b) {
        for (int64_t r = b * kRowBlock; r < std::min(R, (b + 1) * kRowBlock); ++r) {
          const T n = np[r], inv = T(1) / std::max(n, T(kMinNorm));
          T through_norm = 0;  // g_r . out_r / n^2: the part of the gradient that flows through the norm
          for (int64_t m = 0; m < M; ++m) {
            g_over_n[m] = g[r * M + m] * inv;
            through_norm += g[r * M + m] * o[r * M + m];
          }
          through_norm = n >= T(kMinNorm) ? through_norm * inv * inv : T(0);
          const T* __restrict xr = xp + r * K;
          if (gx) {
            T* __restrict gxr = gx + r * K;
            for (int64_t k = 0; k < K; ++k) gxr[k] = -through_norm * xr[k];
            for (int64_t m = 0; m < M; ++m) {
              const T* __restrict wm = wt.data() + m * K;
              const T c = g_over_n[m];
              for (int64_t k = 0; k < K; ++k) gxr[k] += c * wm[k];
            }
          }
          if (!partials.empty()) {
            for (int64_t m = 0; m < M; ++m) {
              T* __restrict pm = partials.data() + (b * M + m) * K;
              const T c = g_over_n[m];
              for (int64_t k = 0; k < K; ++k) pm[k] += c * xr[k];
            }
          }
        }
      }
    });
    if (grad_w.defined()) {
      Matrix<T> sum_t = Matrix<T>::Zero(M, K);
      for (int64_t b = 0; b < blocks; ++b) sum_t += ConstRows<T>(partials.data() + b * M * K, M, K);
      Rows<T>(grad_w.data<T>(), K, M) = sum_t.transpose();
    }
  });
}

}  // namespace hcgrad::cpu
