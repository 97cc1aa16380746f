// LayerNorm and RMSNorm on the GPU, over the last dim of contiguous [N, D] rows (the formulas of
// core/cpu/norm.cpp). RMSNorm is LayerNorm without the centring, so one kernel template serves both:
//   xhat = (x - m) * rstd,   m = mean(x) (LayerNorm) or 0 (RMSNorm),   rstd = 1 / sqrt(mean((x - m)^2) + eps)
//   y = xhat * w + b
// Backward, with dxhat = dy * w:
//   dx = rstd * (dxhat - [mean(dxhat)] - xhat * mean(dxhat * xhat))   ([..] for LayerNorm only)
//   dw = sum over rows of dy * xhat,   db = sum over rows of dy
// Row kernels give one block to each row; the weight/bias gradients are a column kernel that sums each
// column over the rows in a fixed order (deterministic, no atomics).
#include <cmath>
#include <utility>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? ptr<T>(t) : nullptr;
}

template <bool kCenter, class T>
__global__ void __launch_bounds__(kMaxRowThreads) norm_forward_kernel(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t N,
                                    int64_t D, T eps) {
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    T m = 0;
    if (kCenter) {
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) m += xr[i];
      m = block_sum(m) / T(D);
    }
    T squares = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) squares += (xr[i] - m) * (xr[i] - m);
    const T s = T(1) / sqrt(block_sum(squares) / T(D) + eps);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const T v = (xr[i] - m) * s;
      yr[i] = (w ? v * w[i] : v) + (b ? b[i] : T(0));
    }
    if (threadIdx.x == 0) {
      if (kCenter) mean[r] = m;
      rstd[r] = s;
    }
  }
}

template <bool kCenter, class T>
__global__ void __launch_bounds__(kMaxRowThreads) norm_backward_kernel(T* dx, const T* dy, const T* x, const T* w, const T* mean, const T* rstd,
                                     int64_t N, int64_t D) {
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const T* xr = x + r * D;
    const T* gr = dy + r * D;
    const T m = kCenter ? mean[r] : T(0), s = rstd[r];
    T sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const T dxhat = w ? gr[i] * w[i] : gr[i];
      sum_dxhat += dxhat;
      sum_dxhat_xhat += dxhat * (xr[i] - m) * s;
    }
    const T mean_dxhat = kCenter ? block_sum(sum_dxhat) / T(D) : T(0);
    const T mean_dxhat_xhat = block_sum(sum_dxhat_xhat) / T(D);
    T* dr = dx + r * D;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const T dxhat = w ? gr[i] * w[i] : gr[i];
      dr[i] = s * (dxhat - mean_dxhat - (xr[i] - m) * s * mean_dxhat_xhat);
    }
  }
}

// dw[d] += sum_r dy[r, d] * xhat[r, d], db[d] += sum_r dy[r, d]: column sums over the N rows, in the two
// deterministic passes of cuda/launch.cuh. This is pass 1: the chunk blockIdx.y of rows for the 32 columns
// of tile blockIdx.x, into partial_w and partial_b [chunks, D] (either may be null: not wanted).
template <bool kCenter, class T>
__global__ void norm_param_grads_kernel(T* partial_w, T* partial_b, const T* dy, const T* x, const T* mean,
                                        const T* rstd, int64_t N, int64_t D, int64_t chunk_rows) {
  const int64_t d = blockIdx.x * int64_t(kColumnTile) + threadIdx.x;
  const int64_t begin = blockIdx.y * chunk_rows, end = begin + chunk_rows < N ? begin + chunk_rows : N;
  T sum_w = 0, sum_b = 0;
  if (d < D)
    for (int64_t r = begin + threadIdx.y; r < end; r += kRowGroups) {
      const T g = dy[r * D + d];
      const T m = kCenter ? mean[r] : T(0);
      sum_w += g * (x[r * D + d] - m) * rstd[r];
      sum_b += g;
    }
  sum_w = add_row_groups(sum_w);
  sum_b = add_row_groups(sum_b);
  if (threadIdx.y == 0 && d < D) {
    if (partial_w) partial_w[blockIdx.y * D + d] = sum_w;
    if (partial_b) partial_b[blockIdx.y * D + d] = sum_b;
  }
}

template <bool kCenter>
void norm_forward(const char* op, const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                  const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t N = x.shape()[0], D = x.shape()[1];
  if (N == 0) return;
  dispatch_floating(op, x.dtype(), [&]<class T>() {
    norm_forward_kernel<kCenter, T><<<blocks_for_rows(N), threads_for_row(D), 0, stream_for(x)>>>(
        ptr<T>(y), kCenter ? ptr<T>(mean) : nullptr, ptr<T>(rstd), ptr<T>(x), ptr_or_null<T>(weight),
        ptr_or_null<T>(bias), N, D, T(eps));
    HC_CUDA_LAUNCH_CHECK(op);
  });
}

template <bool kCenter>
void norm_backward(const char* op, const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                   const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                   const Tensor& rstd) {
  const int64_t N = x.shape()[0], D = x.shape()[1];
  if (N == 0) return;
  dispatch_floating(op, x.dtype(), [&]<class T>() {
    cudaStream_t stream = stream_for(x);
    const T* mean_or_null = kCenter ? ptr<T>(mean) : nullptr;
    if (grad_x.defined()) {
      norm_backward_kernel<kCenter, T><<<blocks_for_rows(N), threads_for_row(D), 0, stream>>>(
          ptr<T>(grad_x), ptr<T>(grad_y), ptr<T>(x), ptr_or_null<T>(weight), mean_or_null, ptr<T>(rstd), N, D);
      HC_CUDA_LAUNCH_CHECK(op);
    }
    if (grad_weight.defined() || grad_bias.defined()) {
      const int64_t chunks = chunks_for(N);
      const Tensor partial_w = grad_weight.defined() ? Tensor::empty({chunks, D}, x.options()) : Tensor();
      const Tensor partial_b = grad_bias.defined() ? Tensor::empty({chunks, D}, x.options()) : Tensor();
      norm_param_grads_kernel<kCenter, T><<<column_chunk_grid(N, D), dim3(kColumnTile, kRowGroups), 0, stream>>>(
          partial_w.defined() ? ptr<T>(partial_w) : nullptr, partial_b.defined() ? ptr<T>(partial_b) : nullptr, ptr<T>(grad_y), ptr<T>(x), mean_or_null,
          ptr<T>(rstd), N, D, chunk_rows_for(N));
      HC_CUDA_LAUNCH_CHECK(op);
      for (const auto& [grad, partial] : {std::pair{grad_weight, partial_w}, std::pair{grad_bias, partial_b}}) {
        if (!grad.defined()) continue;
        add_chunks_kernel<T><<<blocks_for(D), kThreads, 0, stream>>>(ptr<T>(grad), ptr<T>(partial), chunks, D,
                                                                      /*accumulate=*/true);
        HC_CUDA_LAUNCH_CHECK(op);
      }
    }
  });
}

}  // namespace

void layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, double eps) {
  norm_forward<true>("layer_norm", y, mean, rstd, x, weight, bias, eps);
}

void layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                         const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd) {
  norm_backward<true>("layer_norm_backward", grad_x, grad_weight, grad_bias, grad_y, x, weight, mean, rstd);
}

void rms_norm_forward(const Tensor& y, const Tensor& rstd, const Tensor& x, const Tensor& weight, double eps) {
  norm_forward<false>("rms_norm", y, Tensor(), rstd, x, weight, Tensor(), eps);
}

void rms_norm_backward(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_y, const Tensor& x,
                       const Tensor& weight, const Tensor& rstd) {
  norm_backward<false>("rms_norm_backward", grad_x, grad_weight, Tensor(), grad_y, x, weight, Tensor(), rstd);
}

}  // namespace hcgrad::cuda
