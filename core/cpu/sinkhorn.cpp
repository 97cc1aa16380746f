// Sinkhorn-Knopp over a batch of small matrices: logits, out and grads are contiguous [B, M, N], one
// matrix (typically 4x4 to 16x16) per task; the per-matrix math (and its recomputing backward) is in
// core/sinkhorn_math.h, shared with the CUDA kernel.
#include <algorithm>
#include <vector>

#include "core/kernels.h"
#include "core/cpu/parallel.h"
#include "core/dispatch.h"
#include "core/sinkhorn_math.h"

namespace hcgrad::cpu {

namespace {

// Matrices per task: about kGrain elements of work each (a matrix costs ~4 * iters passes over M * N).
int64_t matrices_per_task(int64_t M, int64_t N, int64_t iters) {
  return grain_for(4 * iters * std::max<int64_t>(1, M * N));
}

}  // namespace

void sinkhorn_forward(const Tensor& out, const Tensor& logits, int64_t iters, bool log_domain) {
  const int64_t B = logits.shape()[0], M = logits.shape()[1], N = logits.shape()[2];
  dispatch_floating("sinkhorn", logits.dtype(), [&]<class T>() {
    const T* in = logits.data<T>();
    T* result = out.data<T>();
    parallel_for(0, B, matrices_per_task(M, N, iters), [&](int64_t b0, int64_t b1) {
      std::vector<T> sums(std::max(M, N));  // one half-step's divisors, reused
      for (int64_t b = b0; b < b1; ++b)
        sinkhorn::matrix_forward<T>(result + b * M * N, sums.data(), in + b * M * N, M, N, iters, log_domain);
    });
  });
}

void sinkhorn_backward(const Tensor& grad_logits, const Tensor& logits, const Tensor& grad_out, int64_t iters,
                       bool log_domain) {
  const int64_t B = logits.shape()[0], M = logits.shape()[1], N = logits.shape()[2];
  const int64_t size = M * N, stride = std::max(M, N);
  dispatch_floating("sinkhorn_backward", logits.dtype(), [&]<class T>() {
    const T *in = logits.data<T>(), *grad_in = grad_out.data<T>();
    T* grad = grad_logits.data<T>();
    parallel_for(0, B, matrices_per_task(M, N, iters), [&](int64_t b0, int64_t b1) {
      std::vector<T> tape((2 * iters + 1) * size), sums(2 * iters * stride);  // reused by every matrix of the task
      for (int64_t b = b0; b < b1; ++b)
        sinkhorn::matrix_backward<T>(grad + b * size, tape.data(), sums.data(), in + b * size, grad_in + b * size, M,
                                     N, iters, log_domain);
    });
  });
}

}  // namespace hcgrad::cpu
