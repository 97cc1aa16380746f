// Sinkhorn-Knopp on the GPU: one thread per [M, N] matrix (mHC's are 4x4 per token, thousands per step),
// running the same per-matrix code as the CPU (core/sinkhorn_math.h). Backward recomputes the iterates
// into a per-matrix tape in global scratch memory, as the mHC paper does, instead of storing them in the
// forward.
#include <algorithm>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/core/sinkhorn_math.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

// scratch: max(M, N) values per matrix, for one half-step's divisors.
template <class T>
__global__ void sinkhorn_forward_kernel(T* out, T* scratch, const T* logits, int64_t B, int64_t M, int64_t N,
                                        int64_t iters, bool log_domain) {
  const int64_t size = M * N, stride = M > N ? M : N;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x)
    sinkhorn::matrix_forward<T>(out + b * size, scratch + b * stride, logits + b * size, M, N, iters, log_domain);
}

// tape: (2 * iters + 1) * M * N values per matrix, sums: 2 * iters * max(M, N).
template <class T>
__global__ void sinkhorn_backward_kernel(T* grad, T* tape, T* sums, const T* logits, const T* grad_out, int64_t B,
                                         int64_t M, int64_t N, int64_t iters, bool log_domain) {
  const int64_t size = M * N, stride = M > N ? M : N;
  const int64_t tape_size = (2 * iters + 1) * size, sums_size = 2 * iters * stride;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x)
    sinkhorn::matrix_backward<T>(grad + b * size, tape + b * tape_size, sums + b * sums_size, logits + b * size,
                                 grad_out + b * size, M, N, iters, log_domain);
}

constexpr int kMatrixThreads = 128;

}  // namespace

void sinkhorn_forward(const Tensor& out, const Tensor& logits, int64_t iters, bool log_domain) {
  const int64_t B = logits.shape()[0], M = logits.shape()[1], N = logits.shape()[2];
  if (B == 0 || M * N == 0) return;
  dispatch_floating("sinkhorn", logits.dtype(), [&]<class T>() {
    Tensor scratch = Tensor::empty({B, std::max(M, N)}, logits.options());
    sinkhorn_forward_kernel<T><<<blocks_for(B, kMatrixThreads), kMatrixThreads, 0, stream_for(out)>>>(
        ptr<T>(out), ptr<T>(scratch), ptr<T>(logits), B, M, N, iters, log_domain);
    HC_CUDA_LAUNCH_CHECK("sinkhorn");
  });
}

void sinkhorn_backward(const Tensor& grad_logits, const Tensor& logits, const Tensor& grad_out, int64_t iters,
                       bool log_domain) {
  const int64_t B = logits.shape()[0], M = logits.shape()[1], N = logits.shape()[2];
  if (B == 0 || M * N == 0) return;
  dispatch_floating("sinkhorn_backward", logits.dtype(), [&]<class T>() {
    // Freed when this function returns; the caching allocator hands the block out again only to kernels
    // queued after this one on the same stream.
    Tensor tape = Tensor::empty({B, (2 * iters + 1) * M * N}, logits.options());
    Tensor sums = Tensor::empty({B, 2 * iters * std::max(M, N)}, logits.options());
    sinkhorn_backward_kernel<T><<<blocks_for(B, kMatrixThreads), kMatrixThreads, 0, stream_for(grad_logits)>>>(
        ptr<T>(grad_logits), ptr<T>(tape), ptr<T>(sums), ptr<T>(logits), ptr<T>(grad_out), B, M, N, iters,
        log_domain);
    HC_CUDA_LAUNCH_CHECK("sinkhorn_backward");
  });
}

}  // namespace hcgrad::cuda
