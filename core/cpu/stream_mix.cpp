// Stream mixing on the CPU: for each row m (one token), a small [S, K] matrix mixes S feature rows of
// length D into K. With S, K ~ 4 a batched GEMM pays its setup per 4x4 product; these loops instead walk
// each row's features contiguously (vectorised) with the few weights in registers.
//
// Rows are independent, so any split over threads gives the same bits.
#include <algorithm>

#include <Eigen/Core>

#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"

namespace hcgrad::cpu {

namespace {

// Features per tile: a tile of x's S rows stays in L1 while each of the K outputs reads it.
constexpr int64_t kTile = 512;
// Input rows folded into one pass over an output row: out is read and written once per group.
constexpr int64_t kGroup = 4;

// o[i] (+)= sum_r w[r * K] * x[r * D + i] over R input rows, i < n; `first` starts the sum.
template <int R, class T>
void mix_group(T* __restrict o, const T* w, int64_t K, const T* __restrict x, int64_t D, int64_t n, bool first) {
  T weight[R];
  const T* row[R];
  for (int r = 0; r < R; ++r) {
    weight[r] = w[r * K];
    row[r] = x + r * D;
  }
  for (int64_t i = 0; i < n; ++i) {  // contiguous over d: vectorised, the R-term sum unrolled
    T acc = first ? T(0) : o[i];
    for (int r = 0; r < R; ++r) acc += weight[r] * row[r][i];
    o[i] = acc;
  }
}

// o[i] (+)= sum_s w[s * K] * x[s * D + i] for a tile of n features of one output row, S input rows taken
// kGroup at a time; `first` starts the sum.
template <class T>
void mix_rows(T* o, const T* w, int64_t K, const T* x, int64_t S, int64_t D, int64_t n, bool first) {
  for (int64_t s = 0; s < S; s += kGroup) {
    const T* ws = w + s * K;
    const T* xs = x + s * D;
    const bool starts = first && s == 0;
    switch (std::min(kGroup, S - s)) {
      case 4: mix_group<4>(o, ws, K, xs, D, n, starts); break;
      case 3: mix_group<3>(o, ws, K, xs, D, n, starts); break;
      case 2: mix_group<2>(o, ws, K, xs, D, n, starts); break;
      default: mix_group<1>(o, ws, K, xs, D, n, starts); break;
    }
  }
}

// out[k, :] = sum_s w[s, k] x[s, :] (+ sum_e ew[e, k] ex[e, :]) for one row m: w [S, K], x [S, D],
// ew [E, K], ex [E, D], out [K, D]. The extra rows are added while the tile is still in L1.
template <class T>
void mix_one_row(T* out, const T* w, const T* x, int64_t S, const T* ew, const T* ex, int64_t E, int64_t K,
                 int64_t D) {
  for (int64_t d0 = 0; d0 < D; d0 += kTile) {
    const int64_t n = std::min(kTile, D - d0);
    for (int64_t k = 0; k < K; ++k) {
      T* o = out + k * D + d0;
      if (S + E == 0) std::fill(o, o + n, T(0));
      mix_rows(o, w + k, K, x + d0, S, D, n, true);
      if (E > 0) mix_rows(o, ew + k, K, ex + d0, E, D, n, S == 0);
    }
  }
}

}  // namespace

// One pass for both pairs; with extra_x undefined it is stream_mix (below).
void stream_mix_add(const Tensor& out, const Tensor& weights, const Tensor& x, const Tensor& extra_weights,
                    const Tensor& extra_x) {
  const int64_t M = x.shape()[0], S = x.shape()[1], D = x.shape()[2], K = weights.shape()[2];
  const int64_t E = extra_x.defined() ? extra_x.shape()[1] : 0;
  dispatch_floating("stream_mix", x.dtype(), [&]<class T>() {
    const T *w = weights.data<T>(), *xp = x.data<T>();
    const T* ew = E > 0 ? extra_weights.data<T>() : nullptr;
    const T* ex = E > 0 ? extra_x.data<T>() : nullptr;
    T* o = out.data<T>();
    parallel_for(0, M, grain_for((S + E + K) * D), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m)
        mix_one_row(o + m * K * D, w + m * S * K, xp + m * S * D, S, ew ? ew + m * E * K : nullptr,
                    ex ? ex + m * E * D : nullptr, E, K, D);
    });
  });
}

void stream_mix(const Tensor& out, const Tensor& weights, const Tensor& x) {
  stream_mix_add(out, weights, x, Tensor(), Tensor());  // no extra pair: E = 0
}

// Per row m, with the row's grad_out [K, D] in cache for both: grad_weights[m, s, k] = x[m, s, :] . g[m, k, :],
// S·K dot products of length D (each Eigen's vectorised dot: a plain loop would not vectorise a floating-point
// sum without -ffast-math), and grad_x[m, s, :] = sum_k weights[m, s, k] g[m, k, :], the mix loops of the
// forward with the roles of S and K swapped (row s of the weights read with stride 1).
void stream_mix_backward(const Tensor& grad_weights, const Tensor& grad_x, const Tensor& weights, const Tensor& x,
                         const Tensor& grad_out) {
  const int64_t M = x.shape()[0], S = x.shape()[1], D = x.shape()[2], K = grad_out.shape()[1];
  dispatch_floating("stream_mix_backward", x.dtype(), [&]<class T>() {
    using Row = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;
    const T *xp = x.data<T>(), *g = grad_out.data<T>();
    const T* w = grad_x.defined() ? weights.data<T>() : nullptr;
    T* gw = grad_weights.defined() ? grad_weights.data<T>() : nullptr;
    T* gx = grad_x.defined() ? grad_x.data<T>() : nullptr;
    parallel_for(0, M, grain_for((2 * S + K) * D), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) {
        const T* g_row = g + m * K * D;
        if (gw)
          for (int64_t s = 0; s < S; ++s)
            for (int64_t k = 0; k < K; ++k)
              gw[(m * S + s) * K + k] = Row(xp + (m * S + s) * D, D).dot(Row(g_row + k * D, D));
        if (gx && K == 0) std::fill(gx + m * S * D, gx + (m + 1) * S * D, T(0));  // an empty sum
        if (gx && K > 0)
          for (int64_t d0 = 0; d0 < D; d0 += kTile)
            for (int64_t s = 0; s < S; ++s)
              mix_rows(gx + (m * S + s) * D + d0, w + (m * S + s) * K, /*K=*/1, g_row + d0, K, D,
                       std::min(kTile, D - d0), true);
      }
    });
  });
}

}  // namespace hcgrad::cpu
