// Sinkhorn-Knopp over a batch of small matrices: logits, out and grads are contiguous [B, M, N], typically
// 4x4 to 16x16, a group of matrices per task; the per-matrix math (and its recomputing backward) is in
// core/sinkhorn_math.h, shared with the CUDA kernel, and the linear domain runs it on SIMD lanes (below).
#include <algorithm>
#include <vector>

#include <Eigen/Core>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/sinkhorn_math.h"

namespace hcgrad::cpu {

namespace {

// Matrices per task: about kGrain elements of work each (a matrix costs ~4 * iters passes over M * N).
// Rounded up to whole SIMD groups of 16 matrices (the lanes below).
int64_t matrices_per_task(int64_t M, int64_t N, int64_t iters) {
  const int64_t grain = grain_for(4 * iters * std::max<int64_t>(1, M * N));
  return (grain + 15) / 16 * 16;
}

// ---- the linear domain, many matrices at once ----
// One matrix per task was scalar code: ~40 half-steps of 4x4 sums and divides per matrix. Here a task
// lays out kLanes matrices side by side (element k of every matrix in one SIMD vector) and runs the same
// half-steps on the vectors: each lane does exactly the scalar code's operations in the same order
// (sums over the line in index order, |.|, max with the floor, one IEEE division), so the bits match
// core/sinkhorn_math.h and the CUDA kernel's. The log domain keeps the scalar path.
template <class T>
constexpr int kLanes = 64 / sizeof(T);  // one 512-bit vector
template <class T>
using Lanes = Eigen::Array<T, kLanes<T>, 1>;

// Matrices [b0, b0 + n) of a [B, M, N] batch into lanes (unused lanes get 1, harmless), through the shared
// scalar exp_shifted_by_column_max so the start matrix is the scalar path's.
template <class T>
void load_exp_shifted(std::vector<Lanes<T>>& a, std::vector<T>& scratch, const T* logits, int64_t b0, int64_t n,
                      int64_t size, int64_t M, int64_t N) {
  for (int64_t k = 0; k < size; ++k) a[k].setOnes();
  for (int64_t l = 0; l < n; ++l) {
    sinkhorn::exp_shifted_by_column_max(scratch.data(), logits + (b0 + l) * size, M, N);
    for (int64_t k = 0; k < size; ++k) a[k][l] = scratch[k];
  }
}

// One half-step on lanes: the columns (or rows) of a divided by max(sum |.|, floor); sums gets the sums.
template <class T>
void half_step_lanes(Lanes<T>* a, Lanes<T>* sums, int64_t M, int64_t N, bool columns) {
  const int64_t lines = columns ? N : M, length = columns ? M : N;
  for (int64_t l = 0; l < lines; ++l) {
    auto at = [&](int64_t k) -> Lanes<T>& { return a[columns ? k * N + l : l * N + k]; };
    Lanes<T> sum = Lanes<T>::Zero();
    for (int64_t k = 0; k < length; ++k) sum += at(k).abs();
    sums[l] = sum;
    const Lanes<T> divisor = sum.max(T(sinkhorn::kSumFloor));
    for (int64_t k = 0; k < length; ++k) at(k) /= divisor;
  }
}

template <class T>
void forward_lanes(T* out, const T* logits, int64_t b0, int64_t b1, int64_t M, int64_t N, int64_t iters) {
  const int64_t size = M * N, stride = std::max(M, N);
  std::vector<Lanes<T>> a(size), sums(stride);
  std::vector<T> scratch(size);
  for (int64_t b = b0; b < b1; b += kLanes<T>) {
    const int64_t n = std::min<int64_t>(kLanes<T>, b1 - b);
    load_exp_shifted(a, scratch, logits, b, n, size, M, N);
    for (int64_t h = 1; h <= 2 * iters; ++h) half_step_lanes(a.data(), sums.data(), M, N, sinkhorn::is_column_step(h));
    for (int64_t l = 0; l < n; ++l)
      for (int64_t k = 0; k < size; ++k) out[(b + l) * size + k] = a[k][l];
  }
}

// matrix_backward of core/sinkhorn_math.h (linear domain) on lanes: recompute with a tape, then undo.
template <class T>
void backward_lanes(T* grad, const T* logits, const T* grad_out, int64_t b0, int64_t b1, int64_t M, int64_t N,
                    int64_t iters) {
  const int64_t size = M * N, stride = std::max(M, N);
  std::vector<Lanes<T>> tape((2 * iters + 1) * size), sums(2 * iters * stride), g(size);
  std::vector<T> scratch(size);
  for (int64_t b = b0; b < b1; b += kLanes<T>) {
    const int64_t n = std::min<int64_t>(kLanes<T>, b1 - b);
    load_exp_shifted(tape, scratch, logits, b, n, size, M, N);
    for (int64_t h = 1; h <= 2 * iters; ++h) {
      std::copy(tape.begin() + (h - 1) * size, tape.begin() + h * size, tape.begin() + h * size);
      half_step_lanes(tape.data() + h * size, sums.data() + (h - 1) * stride, M, N, sinkhorn::is_column_step(h));
    }
    for (int64_t k = 0; k < size; ++k) {
      g[k].setZero();
      for (int64_t l = 0; l < n; ++l) g[k][l] = grad_out[(b + l) * size + k];
    }
    for (int64_t h = 2 * iters; h >= 1; --h) {
      const bool columns = sinkhorn::is_column_step(h);
      const Lanes<T>* y = tape.data() + h * size;
      const Lanes<T>* line_sums = sums.data() + (h - 1) * stride;
      const int64_t lines = columns ? N : M, length = columns ? M : N;
      for (int64_t l = 0; l < lines; ++l) {
        auto at = [&](int64_t k) { return columns ? k * N + l : l * N + k; };
        Lanes<T> dot = Lanes<T>::Zero();
        for (int64_t k = 0; k < length; ++k) dot += g[at(k)] * y[at(k)];
        // (g - dot) / sum where the sum was above the floor, g / floor where it was clamped: one division.
        const auto unclamped = line_sums[l] >= T(sinkhorn::kSumFloor);
        const Lanes<T> divisor = unclamped.select(line_sums[l], Lanes<T>::Constant(T(sinkhorn::kSumFloor)));
        const Lanes<T> dot_or_zero = unclamped.select(dot, Lanes<T>::Zero());
        for (int64_t k = 0; k < length; ++k) g[at(k)] = (g[at(k)] - dot_or_zero) / divisor;
      }
    }
    for (int64_t l = 0; l < n; ++l)
      for (int64_t k = 0; k < size; ++k) grad[(b + l) * size + k] = g[k][l] * tape[k][l];
  }
}

}  // namespace

void sinkhorn_forward(const Tensor& out, const Tensor& logits, int64_t iters, bool log_domain) {
  const int64_t B = logits.shape()[0], M = logits.shape()[1], N = logits.shape()[2];
  dispatch_floating("sinkhorn", logits.dtype(), [&]<class T>() {
    const T* in = logits.data<T>();
    T* result = out.data<T>();
    parallel_for(0, B, matrices_per_task(M, N, iters), [&](int64_t b0, int64_t b1) {
      if (!log_domain) return forward_lanes<T>(result, in, b0, b1, M, N, iters);
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
      if (!log_domain) return backward_lanes<T>(grad, in, grad_in, b0, b1, M, N, iters);
      std::vector<T> tape((2 * iters + 1) * size), sums(2 * iters * stride);  // reused by every matrix of the task
      for (int64_t b = b0; b < b1; ++b)
        sinkhorn::matrix_backward<T>(grad + b * size, tape.data(), sums.data(), in + b * size, grad_in + b * size, M,
                                     N, iters, log_domain);
    });
  });
}

}  // namespace hcgrad::cpu
