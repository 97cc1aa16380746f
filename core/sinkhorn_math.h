// The Sinkhorn-Knopp iteration of one small matrix, forward and backward: the math shared by the CPU
// kernel (core/cpu/sinkhorn.cpp, one matrix per loop step) and the CUDA kernel (cuda/sinkhorn.cu, one
// matrix per thread), so both devices compute the very same sequence of operations.
// Every half-step normalises the columns (sums over i, one per j) or the rows (sums over j, one per i) of
// one matrix a[i * N + j] in place.
//
// Backward recomputes the iterates: it re-runs the forward of one matrix, keeping every half-step's
// result (and, in the linear domain, the sums it divided by) on a tape of (2 * iters + 1) matrices, then
// walks the tape backwards. The recompute uses the very same half-step functions as the forward, so it
// reproduces the forward's values bit for bit (the mHC paper's recomputation, section 4.3).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "hcgrad/core/unary_ops.h"  // HC_HOST_DEVICE

namespace hcgrad::sinkhorn {

// The floor of a linear-domain normaliser, as the reference's max(sum, 1e-12).
inline constexpr double kSumFloor = 1e-12;

// ---- linear domain ----

// a = exp(logits - max over i), one max per column j: every column then has a 1 and no overflow.
// The shift is a constant for autograd (it cancels in the first column normalisation anyway).
template <class T>
HC_HOST_DEVICE void exp_shifted_by_column_max(T* a, const T* logits, int64_t M, int64_t N) {
  for (int64_t j = 0; j < N; ++j) {
    T column_max = -std::numeric_limits<T>::infinity();
    for (int64_t i = 0; i < M; ++i) column_max = std::max(column_max, logits[i * N + j]);
    for (int64_t i = 0; i < M; ++i) a[i * N + j] = std::exp(logits[i * N + j] - column_max);
  }
}

// a[:, j] /= max(sum_i |a[i, j]|, floor); sums[j] = the unclamped sum (backward needs it).
template <class T>
HC_HOST_DEVICE void divide_columns_by_sums(T* a, T* sums, int64_t M, int64_t N) {
  for (int64_t j = 0; j < N; ++j) {
    T sum = 0;
    for (int64_t i = 0; i < M; ++i) sum += std::abs(a[i * N + j]);
    sums[j] = sum;
    const T divisor = std::max(sum, T(kSumFloor));
    for (int64_t i = 0; i < M; ++i) a[i * N + j] /= divisor;
  }
}

// a[i, :] /= max(sum_j |a[i, j]|, floor); sums[i] = the unclamped sum.
template <class T>
HC_HOST_DEVICE void divide_rows_by_sums(T* a, T* sums, int64_t M, int64_t N) {
  for (int64_t i = 0; i < M; ++i) {
    T sum = 0;
    for (int64_t j = 0; j < N; ++j) sum += std::abs(a[i * N + j]);
    sums[i] = sum;
    const T divisor = std::max(sum, T(kSumFloor));
    for (int64_t j = 0; j < N; ++j) a[i * N + j] /= divisor;
  }
}

// ---- log domain ----

// a[:, j] = log_softmax over i of a[:, j].
template <class T>
HC_HOST_DEVICE void log_softmax_columns(T* a, int64_t M, int64_t N) {
  for (int64_t j = 0; j < N; ++j) {
    T column_max = -std::numeric_limits<T>::infinity();
    for (int64_t i = 0; i < M; ++i) column_max = std::max(column_max, a[i * N + j]);
    T sum = 0;
    for (int64_t i = 0; i < M; ++i) sum += std::exp(a[i * N + j] - column_max);
    const T shift = column_max + std::log(sum);
    for (int64_t i = 0; i < M; ++i) a[i * N + j] -= shift;
  }
}

// a[i, :] = log_softmax over j of a[i, :].
template <class T>
HC_HOST_DEVICE void log_softmax_rows(T* a, int64_t M, int64_t N) {
  for (int64_t i = 0; i < M; ++i) {
    T row_max = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < N; ++j) row_max = std::max(row_max, a[i * N + j]);
    T sum = 0;
    for (int64_t j = 0; j < N; ++j) sum += std::exp(a[i * N + j] - row_max);
    const T shift = row_max + std::log(sum);
    for (int64_t j = 0; j < N; ++j) a[i * N + j] -= shift;
  }
}

// ---- one matrix ----

// Half-step h = 1 .. 2 * iters: odd h normalise the columns, even h the rows.
HC_HOST_DEVICE inline bool is_column_step(int64_t h) { return h % 2 == 1; }

// Runs the iteration on one [M, N] matrix, leaving the log-domain result before its final exp.
// keep_tape: tape holds (2 * iters + 1) matrices (tape[0] the start, tape[h] the result of half-step h)
// and sums (linear domain) the divisors of every half-step h, N column sums or M row sums, at
// sums + (h - 1) * max(M, N). Otherwise tape is one matrix updated in place and sums one slot reused.
template <class T>
HC_HOST_DEVICE void run_matrix(T* tape, T* sums, const T* logits, int64_t M, int64_t N, int64_t iters, bool log_domain,
                bool keep_tape) {
  const int64_t size = M * N, stride = std::max(M, N);
  if (log_domain)
    std::copy(logits, logits + size, tape);
  else
    exp_shifted_by_column_max(tape, logits, M, N);
  T* a = tape;
  for (int64_t h = 1; h <= 2 * iters; ++h) {
    if (keep_tape) {
      std::copy(a, a + size, a + size);
      a += size;
    }
    T* step_sums = keep_tape ? sums + (h - 1) * stride : sums;
    if (log_domain && is_column_step(h)) log_softmax_columns(a, M, N);
    if (log_domain && !is_column_step(h)) log_softmax_rows(a, M, N);
    if (!log_domain && is_column_step(h)) divide_columns_by_sums(a, step_sums, M, N);
    if (!log_domain && !is_column_step(h)) divide_rows_by_sums(a, step_sums, M, N);
  }
}

// Turns g = dL/d(result of half-step h) into dL/d(its input), in place. y = that half-step's result.
//   linear, columns (rows alike): y = x / c, c_j = max(s_j, floor), s_j = sum_i x_ij  (x >= 0, so |x| = x)
//     dx_ij = (g_ij - sum_k g_kj y_kj) / c_j  where s_j >= floor,   g_ij / floor where the floor is taken.
//     (Strictly the sum term carries sign(x_ij), 0 where x_ij underflowed to 0; such an entry stays 0 in every
//     later iterate and its gradient is finally multiplied by exp(...) = 0, so dropping the sign changes nothing.)
//   log, columns (rows alike): y = log_softmax_i(x)  =>  dx_ij = g_ij - exp(y_ij) * sum_k g_kj
template <class T>
HC_HOST_DEVICE void half_step_backward(T* g, const T* y, const T* sums, int64_t M, int64_t N, bool columns, bool log_domain) {
  const int64_t lines = columns ? N : M, length = columns ? M : N;
  // Element k of line l: column j = l, row i = k; or row i = l, column j = k.
  auto at = [&](int64_t l, int64_t k) { return columns ? k * N + l : l * N + k; };
  for (int64_t l = 0; l < lines; ++l) {
    T dot = 0;
    if (log_domain) {
      for (int64_t k = 0; k < length; ++k) dot += g[at(l, k)];
      for (int64_t k = 0; k < length; ++k) g[at(l, k)] -= std::exp(y[at(l, k)]) * dot;
    } else if (sums[l] >= T(kSumFloor)) {
      for (int64_t k = 0; k < length; ++k) dot += g[at(l, k)] * y[at(l, k)];
      for (int64_t k = 0; k < length; ++k) g[at(l, k)] = (g[at(l, k)] - dot) / sums[l];
    } else {
      for (int64_t k = 0; k < length; ++k) g[at(l, k)] /= T(kSumFloor);
    }
  }
}

// ---- whole matrices: what one CPU task or one GPU thread does ----

// out = Sinkhorn(logits) of one [M, N] matrix; scratch holds max(M, N) sums.
template <class T>
HC_HOST_DEVICE void matrix_forward(T* out, T* scratch, const T* logits, int64_t M, int64_t N, int64_t iters,
                                   bool log_domain) {
  run_matrix<T>(out, scratch, logits, M, N, iters, log_domain, false);
  if (log_domain)
    for (int64_t k = 0; k < M * N; ++k) out[k] = std::exp(out[k]);
}

// grad = vjp of the whole iteration of one matrix: start from g = grad_out (linear) or g * out (log, through
// the final exp), undo half-steps 2 * iters .. 1, then multiply by exp(logits - column max) (linear: the
// first exp). tape holds (2 * iters + 1) * M * N values, sums 2 * iters * max(M, N).
template <class T>
HC_HOST_DEVICE void matrix_backward(T* grad, T* tape, T* sums, const T* logits, const T* grad_out, int64_t M,
                                    int64_t N, int64_t iters, bool log_domain) {
  const int64_t size = M * N, stride = M > N ? M : N;
  run_matrix<T>(tape, sums, logits, M, N, iters, log_domain, true);
  const T* last = tape + 2 * iters * size;  // log-domain values before the final exp
  for (int64_t k = 0; k < size; ++k) grad[k] = grad_out[k] * (log_domain ? std::exp(last[k]) : T(1));
  for (int64_t h = 2 * iters; h >= 1; --h)
    half_step_backward<T>(grad, tape + h * size, sums + (h - 1) * stride, M, N, is_column_step(h), log_domain);
  if (!log_domain)
    for (int64_t k = 0; k < size; ++k) grad[k] *= tape[k];  // d exp(x - shift)/dx = exp(x - shift)
}

}  // namespace hcgrad::sinkhorn
