// hc_width and hc_depth on the GPU (the equations: core/kernel_list.h; the CPU kernels: core/cpu/hc_step.cpp).
// Each direction is a few grid-stride kernels over small work items, every sum in a fixed order:
//   coefficients    one thread per (token, row r): the norm, the M projections p and c = static + scale φ(p)
//                   (HC) or c = σ(z) / 2σ(z), z = static + scale p (mHC), into a scratch [T, R, M] (M ≤ S·F + F
//                   values per row, small beside the D-wide rows; token_projection: the norm and projections
//                   over the whole token); mHC's H_res then one thread per token
//                   (the Sinkhorn of its [R, R] block, core/sinkhorn_math.h, recomputed in backward)
//   mixes           one thread per (token, output row, feature): the features coalesced across the warp
//   backward        G = dL/dc one thread per (token, r, j) (a dot product over d), then grad_x and grad_y
//                   per feature, and the parameter gradients one thread per parameter element, each summing
//                   over the tokens in order (deterministic, no atomics)
#include <cmath>
#include <cstdint>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/core/sinkhorn_math.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

constexpr double kMinNorm = 1e-12;

// Sizes, strides and parameters of one step; row r of a token is fraction frac_of(r) of stream stream_of(r),
// x[b, n, s, f·d : (f+1)·d] (HC: r = f·S + s; mHC: r = s·F + f).
template <class T>
struct StepView {
  int64_t T_, N, S, F, R, d, D, M;
  int64_t P, K;  // weight_t [P, K]: M projections of d features, or token_projection's R·M of the token's S·D
  int64_t stride_b, stride_n, stride_s;
  bool tanh, manifold, depth, log_domain, token_projection, diagonal_beta;
  bool stream_major;  // rows r = s·F + f (mHC, the Frac paper) rather than HC's f·S + s
  int64_t iters;
  const T *x, *statics, *weight_t, *scales;

  __device__ int64_t stream_of(int64_t r) const { return stream_major ? r / F : r % S; }
  __device__ int64_t frac_of(int64_t r) const { return stream_major ? r % F : r / S; }
  __device__ int64_t row_of(int64_t s, int64_t f) const { return stream_major ? s * F + f : f * S + s; }
  __device__ const T* row(int64_t token, int64_t r) const {
    return x + (token / N) * stride_b + (token % N) * stride_n + stream_of(r) * stride_s + frac_of(r) * d;
  }
  // The first column of σ / 2σ (mHC): the depth step's residual block [R, R] comes before β.
  __device__ int64_t gate_begin() const { return depth ? R : 0; }
  // Where c[r, t] of the residual block sits in the Sinkhorn's [R, R] matrix (token_projection: transposed,
  // the mHC paper's H_res[t, s]).
  __device__ int64_t matrix_index(int64_t r, int64_t t) const { return token_projection ? t * R + r : r * R + t; }
  // token_projection: the token's S·D values (row by row) against w [S·D], row r's segment at s·D + f·d.
  __device__ T token_dot(int64_t token, const T* w) const {
    T acc = 0;
    for (int64_t r = 0; r < R; ++r) {
      const T *xr = row(token, r), *wr = w + stream_of(r) * D + frac_of(r) * d;
      for (int64_t k = 0; k < d; ++k) acc += xr[k] * wr[k];
    }
    return acc;
  }
};

template <class T>
StepView<T> step_view(const Tensor& x, const Tensor& static_weights, const Tensor& weight_t, const Tensor& scales,
                      HcStep step, bool depth) {
  StepView<T> v;
  v.N = x.shape()[1];
  v.T_ = x.shape()[0] * v.N;
  v.S = step.streams;
  v.F = step.fracs;
  v.R = v.S * v.F;
  v.D = x.shape()[3];
  v.d = v.D / v.F;
  v.M = static_weights.shape()[1];
  v.P = weight_t.shape()[0];
  v.K = weight_t.shape()[1];
  v.stride_b = x.stride(0);
  v.stride_n = x.stride(1);
  v.stride_s = x.stride(2);
  v.tanh = step.tanh;
  v.manifold = step.manifold;
  v.depth = depth;
  v.log_domain = step.sinkhorn_log_domain;
  v.token_projection = step.token_projection;
  v.diagonal_beta = step.diagonal_beta;
  v.stream_major = step.manifold || step.diagonal_beta;
  v.iters = step.sinkhorn_iters;
  v.x = ptr<T>(x);
  v.statics = ptr<T>(static_weights);
  v.weight_t = ptr<T>(weight_t);
  v.scales = ptr<T>(scales);
  return v;
}

// norm [T, R], p [T, R, M] and a [T, R, M] (φ(p), or mHC's z; all three may be null in the forward) and
// c [T, R, M]; for mHC's depth step c's residual block holds z until sinkhorn_kernel.
template <class T>
__global__ void coefficients_kernel(StepView<T> v, T* norm, T* p, T* a, T* c) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.T_ * v.R; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token = i / v.R, r = i % v.R;
    const T* xr = v.row(token, r);
    T squares = 0;
    if (v.token_projection)  // one norm over the token's S·D values
      for (int64_t rr = 0; rr < v.R; ++rr)
        for (int64_t k = 0; k < v.d; ++k) squares += v.row(token, rr)[k] * v.row(token, rr)[k];
    else
      for (int64_t k = 0; k < v.d; ++k) squares += xr[k] * xr[k];
    const T n = sqrt(squares), inv = T(1) / (n > T(kMinNorm) ? n : T(kMinNorm));
    if (norm) norm[i] = n;
    for (int64_t j = 0; j < v.M; ++j) {
      T dot = 0;
      if (v.token_projection) dot = v.token_dot(token, v.weight_t + (r * v.M + j) * v.K);
      else
        for (int64_t k = 0; k < v.d; ++k) dot += xr[k] * v.weight_t[j * v.d + k];
      const T pj = dot * inv;
      if (p) p[i * v.M + j] = pj;
      T aj, cj;
      if (!v.manifold) {
        aj = v.tanh ? tanh(pj) : pj;
        cj = v.statics[r * v.M + j] + v.scales[j] * aj;
      } else {
        aj = v.statics[r * v.M + j] + v.scales[j] * pj;  // z
        const T sigma = T(1) / (T(1) + exp(-aj));
        cj = j < v.gate_begin() ? aj : (v.depth ? T(2) * sigma : sigma);
      }
      if (a) a[i * v.M + j] = aj;
      c[i * v.M + j] = cj;
    }
  }
}

// mHC's H_res: the Sinkhorn of each token's residual block c[:, :R] (z on entry) in place; scratch holds
// 2·R·R + R values per token.
template <class T>
__global__ void sinkhorn_kernel(StepView<T> v, T* c, T* scratch) {
  const int64_t size = v.R * v.R;
  for (int64_t token = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; token < v.T_;
       token += int64_t(gridDim.x) * blockDim.x) {
    T* logits = scratch + token * (2 * size + v.R);
    T* mixed = logits + size;
    T* ct = c + token * v.R * v.M;
    for (int64_t r = 0; r < v.R; ++r)
      for (int64_t t = 0; t < v.R; ++t) logits[v.matrix_index(r, t)] = ct[r * v.M + t];
    sinkhorn::matrix_forward<T>(mixed, mixed + size, logits, v.R, v.R, v.iters, v.log_domain);
    for (int64_t r = 0; r < v.R; ++r)
      for (int64_t t = 0; t < v.R; ++t) ct[r * v.M + t] = mixed[v.matrix_index(r, t)];
  }
}

// mHC's depth backward: dz[:, :R] = the Sinkhorn's vector-Jacobian product of G[:, :R], from the logits z in a;
// scratch holds 3·R·R + (2·iters + 1)·R·R + 2·iters·R values per token.
template <class T>
__global__ void sinkhorn_backward_kernel(StepView<T> v, T* dz, const T* G, const T* a, T* scratch) {
  const int64_t size = v.R * v.R, per_token = 3 * size + (2 * v.iters + 1) * size + 2 * v.iters * v.R;
  for (int64_t token = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; token < v.T_;
       token += int64_t(gridDim.x) * blockDim.x) {
    T* logits = scratch + token * per_token;
    T* grad_mixed = logits + size;
    T* grad_logits = grad_mixed + size;
    T* tape = grad_logits + size;
    T* sums = tape + (2 * v.iters + 1) * size;
    const int64_t base = token * v.R * v.M;
    for (int64_t r = 0; r < v.R; ++r)
      for (int64_t t = 0; t < v.R; ++t) {
        logits[v.matrix_index(r, t)] = a[base + r * v.M + t];
        grad_mixed[v.matrix_index(r, t)] = G[base + r * v.M + t];
      }
    sinkhorn::matrix_backward<T>(grad_logits, tape, sums, logits, grad_mixed, v.R, v.R, v.iters, v.log_domain);
    for (int64_t r = 0; r < v.R; ++r)
      for (int64_t t = 0; t < v.R; ++t) dz[base + r * v.M + t] = grad_logits[v.matrix_index(r, t)];
  }
}

// u[token, f2·d + k] = Σ_r c[r, f2] x_r[k]: one thread per (token, feature).
template <class T>
__global__ void width_mix_kernel(T* out, StepView<T> v, const T* c) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.T_ * v.D; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token = i / v.D, f2 = (i % v.D) / v.d, k = i % v.d;
    T acc = 0;
    for (int64_t r = 0; r < v.R; ++r) acc += c[(token * v.R + r) * v.M + f2] * v.row(token, r)[k];
    out[i] = acc;
  }
}

// new[token, t, f2·d + k] = Σ_r c[r, t·F + f2] x_r[k] + Σ_f1 c[row (t, f1), S·F + f2] y[f1·d + k]
// (diagonal_beta: + c[row (t, f2), S·F] y[f2·d + k]).
template <class T>
__global__ void depth_mix_kernel(T* out, StepView<T> v, const T* y, const T* c) {
  const int64_t SD = v.S * v.D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.T_ * SD; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token = i / SD, t = (i % SD) / v.D, f2 = (i % v.D) / v.d, k = i % v.d;
    const T* ct = c + token * v.R * v.M;
    T acc = 0;
    for (int64_t r = 0; r < v.R; ++r) acc += ct[r * v.M + t * v.F + f2] * v.row(token, r)[k];
    if (v.diagonal_beta)
      acc += ct[v.row_of(t, f2) * v.M + v.R] * y[token * v.D + f2 * v.d + k];
    else
      for (int64_t f1 = 0; f1 < v.F; ++f1) acc += ct[v.row_of(t, f1) * v.M + v.R + f2] * y[token * v.D + f1 * v.d + k];
    out[i] = acc;
  }
}

// G [T, R, M] = dL/dc: one thread per (token, r, j), a dot product of the row (x_r, or y[f1] for β's
// columns) with the gradient of the output row that coefficient feeds.
template <class T>
__global__ void coefficient_grad_kernel(T* G, StepView<T> v, const T* y, const T* grad) {
  const int64_t SF = v.R;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.T_ * v.R * v.M;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token = i / (v.R * v.M), r = (i / v.M) % v.R, j = i % v.M;
    const T *a, *g;
    if (!y) {  // width: u[f2 = j]
      a = v.row(token, r);
      g = grad + token * v.D + j * v.d;
    } else if (j < SF) {  // depth, mixed streams: new[t, f2], j = t·F + f2
      a = v.row(token, r);
      g = grad + (token * v.S + j / v.F) * v.D + (j % v.F) * v.d;
    } else {  // depth, β·y: row r = (t, f1) feeds new[t, f2] with y[f1], j = S·F + f2 (diagonal: f2 = f1)
      a = y + token * v.D + v.frac_of(r) * v.d;
      g = grad + (token * v.S + v.stream_of(r)) * v.D + (v.diagonal_beta ? v.frac_of(r) : j - SF) * v.d;
    }
    T acc = 0;
    for (int64_t k = 0; k < v.d; ++k) acc += a[k] * g[k];
    G[i] = acc;
  }
}

// The coefficient chain, one thread per (token, r, j): HC (c = static + scale φ(p)): dstatic = G,
// dscale = G φ, dp = G scale φ'(p); mHC (c = ψ(z)): dz = G σ'(z) (H_pre), G 2σ'(z) (β) or the Sinkhorn's
// product (H_res, already in dstatic from sinkhorn_backward_kernel), dstatic = dz, dscale = dz p, dp = dz scale.
// dp_over_n = dp / max(n, ε).
template <class T>
__global__ void chain_kernel(T* dstatic, T* dscale, T* dp_over_n, StepView<T> v, const T* G, const T* norm,
                             const T* p, const T* a, const T* c) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.T_ * v.R * v.M;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token = i / (v.R * v.M), r = (i / v.M) % v.R, j = i % v.M;
    T grad_p;
    if (!v.manifold) {
      dstatic[i] = G[i];
      dscale[i] = G[i] * a[i];
      grad_p = G[i] * v.scales[j] * (v.tanh ? T(1) - a[i] * a[i] : T(1));
    } else {
      if (j >= v.gate_begin()) dstatic[i] = G[i] * c[i] * (T(1) - (v.depth ? c[i] / T(2) : c[i]));
      dscale[i] = dstatic[i] * p[i];
      grad_p = dstatic[i] * v.scales[j];
    }
    const T n = norm[token * v.R + r];
    dp_over_n[i] = grad_p / (n > T(kMinNorm) ? n : T(kMinNorm));
  }
}

// grad_x[token, s, f·d + k] for row r = (s, f): the mixing weights' share plus the norm and projection's,
//   Σ_o c[r, o] g_o[k] + Σ_j dp_over_n[r, j] W_t[j, k] − [n ≥ ε] (Σ_j dp_over_n[r, j] p[r, j]) / max(n, ε) x_r[k]
template <class T>
__global__ void grad_x_kernel(T* grad_x, StepView<T> v, const T* grad, const T* c, const T* dp_over_n, const T* norm,
                              const T* p) {
  const int64_t SD = v.S * v.D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.T_ * SD; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token = i / SD, s = (i % SD) / v.D, f = (i % v.D) / v.d, k = i % v.d, r = v.row_of(s, f);
    const int64_t row = (token * v.R + r) * v.M;
    T acc = 0;
    if (!v.depth) {
      for (int64_t f2 = 0; f2 < v.F; ++f2) acc += c[row + f2] * grad[token * v.D + f2 * v.d + k];
    } else {
      for (int64_t t = 0; t < v.S; ++t)
        for (int64_t f2 = 0; f2 < v.F; ++f2)
          acc += c[row + t * v.F + f2] * grad[(token * v.S + t) * v.D + f2 * v.d + k];
    }
    T through_norm = 0;
    if (v.token_projection) {  // every coefficient of the token projects all of it: row r's segment of each
      const int64_t first = token * v.R * v.M, at = s * v.D + f * v.d + k;
      for (int64_t q = 0; q < v.P; ++q) {
        acc += dp_over_n[first + q] * v.weight_t[q * v.K + at];
        through_norm += dp_over_n[first + q] * p[first + q];
      }
    } else {
      for (int64_t j = 0; j < v.M; ++j) {
        acc += dp_over_n[row + j] * v.weight_t[j * v.d + k];
        through_norm += dp_over_n[row + j] * p[row + j];
      }
    }
    const T n = norm[token * v.R + r];
    if (n >= T(kMinNorm)) acc -= through_norm / n * v.row(token, r)[k];
    grad_x[i] = acc;
  }
}

// grad_y[token, f1·d + k] = Σ_{t, f2} c[row (t, f1), S·F + f2] grad[token, t, f2·d + k]
// (diagonal_beta: Σ_t c[row (t, f1), S·F] grad[token, t, f1·d + k])
template <class T>
__global__ void grad_y_kernel(T* grad_y, StepView<T> v, const T* grad, const T* c) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.T_ * v.D; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token = i / v.D, f1 = (i % v.D) / v.d, k = i % v.d;
    T acc = 0;
    for (int64_t t = 0; t < v.S; ++t) {
      if (v.diagonal_beta) {
        acc += c[(token * v.R + v.row_of(t, f1)) * v.M + v.R] * grad[(token * v.S + t) * v.D + f1 * v.d + k];
        continue;
      }
      for (int64_t f2 = 0; f2 < v.F; ++f2)
        acc += c[(token * v.R + v.row_of(t, f1)) * v.M + v.R + f2] * grad[(token * v.S + t) * v.D + f2 * v.d + k];
    }
    grad_y[i] = acc;
  }
}

// The parameter gradients, one thread per element, each summing over tokens (and rows) in order:
//   grad_weight_t [M, d] = Σ_{token, r} dp_over_n[r, j] x_r[k]  (token_projection: [R·M, S·D], element
//   (q, s·D + f·d + k) = Σ_token dp_over_n[q] x_(s, f)[k]),  grad_static [R, M] = Σ_token dstatic,
//   grad_scales [M] = Σ_{token, r} dscale
template <class T>
__global__ void param_grad_kernel(T* grad_weight_t, T* grad_static, T* grad_scales, StepView<T> v, const T* dstatic,
                                  const T* dscale, const T* dp_over_n) {
  const int64_t Md = v.P * v.K, RM = v.R * v.M;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < Md + RM + v.M; i += int64_t(gridDim.x) * blockDim.x) {
    T acc = 0;
    if (i < Md && v.token_projection) {
      const int64_t q = i / v.K, s = (i % v.K) / v.D, f = (i % v.D) / v.d, k = i % v.d, r = v.row_of(s, f);
      for (int64_t token = 0; token < v.T_; ++token) acc += dp_over_n[token * RM + q] * v.row(token, r)[k];
      grad_weight_t[i] = acc;
    } else if (i < Md) {
      const int64_t j = i / v.d, k = i % v.d;
      for (int64_t token = 0; token < v.T_; ++token)
        for (int64_t r = 0; r < v.R; ++r) acc += dp_over_n[(token * v.R + r) * v.M + j] * v.row(token, r)[k];
      grad_weight_t[i] = acc;
    } else if (i < Md + RM) {
      for (int64_t token = 0; token < v.T_; ++token) acc += dstatic[token * RM + (i - Md)];
      grad_static[i - Md] = acc;
    } else {
      const int64_t j = i - Md - RM;
      for (int64_t token = 0; token < v.T_; ++token)
        for (int64_t r = 0; r < v.R; ++r) acc += dscale[(token * v.R + r) * v.M + j];
      grad_scales[j] = acc;
    }
  }
}

// saved [T, R, 1 + 3M] (step.recompute = false) to and from the separate norm, p, a and c: one thread per
// (token, row).
template <class T>
__global__ void pack_saved_kernel(T* saved, StepView<T> v, T* norm, T* p, T* a, T* c, bool to_saved) {
  const int64_t entry = 1 + 3 * v.M;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.T_ * v.R; i += int64_t(gridDim.x) * blockDim.x) {
    T* e = saved + i * entry;
    T* fields[4] = {norm + i, p + i * v.M, a + i * v.M, c + i * v.M};
    for (int f = 0; f < 4; ++f) {
      const int64_t n = f == 0 ? 1 : v.M, at = f == 0 ? 0 : 1 + (f - 1) * v.M;
      for (int64_t j = 0; j < n; ++j) {
        if (to_saved) e[at + j] = fields[f][j];
        else fields[f][j] = e[at + j];
      }
    }
  }
}

// The Sinkhorn scratch of mHC's depth step: [T, per-token values] (see the two Sinkhorn kernels).
template <class T>
Tensor sinkhorn_scratch(const StepView<T>& v, const Tensor& like, bool backward) {
  const int64_t size = v.R * v.R;
  const int64_t per_token = backward ? 3 * size + (2 * v.iters + 1) * size + 2 * v.iters * v.R : 2 * size + v.R;
  return Tensor::empty(Shape{v.T_, per_token}, like.options());
}

// norm [T, R], p, a and c [T, R, M] of every token: computed (and mHC's Sinkhorn run), or read from `saved`.
template <class T>
void coefficients(const StepView<T>& v, const Tensor& saved, const Tensor& norm, const Tensor& p, const Tensor& a,
                  const Tensor& c, const Tensor& like, cudaStream_t stream, bool from_saved) {
  if (from_saved) {
    pack_saved_kernel<T><<<blocks_for(v.T_ * v.R), kThreads, 0, stream>>>(ptr<T>(saved), v, ptr<T>(norm), ptr<T>(p),
                                                                          ptr<T>(a), ptr<T>(c), false);
    HC_CUDA_LAUNCH_CHECK("hc_step");
    return;
  }
  coefficients_kernel<T><<<blocks_for(v.T_ * v.R), kThreads, 0, stream>>>(
      v, norm.defined() ? ptr<T>(norm) : nullptr, p.defined() ? ptr<T>(p) : nullptr,
      a.defined() ? ptr<T>(a) : nullptr, ptr<T>(c));
  HC_CUDA_LAUNCH_CHECK("hc_step");
  if (v.manifold && v.depth) {
    const Tensor scratch = sinkhorn_scratch(v, like, /*backward=*/false);
    sinkhorn_kernel<T><<<blocks_for(v.T_), kThreads, 0, stream>>>(v, ptr<T>(c), ptr<T>(scratch));
    HC_CUDA_LAUNCH_CHECK("hc_step");
  }
}

template <class T>
void forward(const Tensor& out, const Tensor& saved, const Tensor& x, const Tensor& y, const Tensor& static_weights,
             const Tensor& weight_t, const Tensor& scales, HcStep step) {
  const StepView<T> v = step_view<T>(x, static_weights, weight_t, scales, step, y.defined());
  if (v.T_ == 0) return;
  const Shape per_coefficient{v.T_, v.R, v.M};
  const Tensor c = Tensor::empty(per_coefficient, x.options());
  Tensor norm, p, a;  // only to keep for backward
  if (saved.defined()) {
    norm = Tensor::empty(Shape{v.T_, v.R}, x.options());
    p = Tensor::empty(per_coefficient, x.options());
    a = Tensor::empty(per_coefficient, x.options());
  }
  const cudaStream_t stream = stream_for(out);
  coefficients<T>(v, saved, norm, p, a, c, x, stream, /*from_saved=*/false);
  if (saved.defined()) {
    pack_saved_kernel<T><<<blocks_for(v.T_ * v.R), kThreads, 0, stream>>>(ptr<T>(saved), v, ptr<T>(norm), ptr<T>(p),
                                                                          ptr<T>(a), ptr<T>(c), true);
    HC_CUDA_LAUNCH_CHECK("hc_step");
  }
  if (y.defined())
    depth_mix_kernel<T><<<blocks_for(v.T_ * v.S * v.D), kThreads, 0, stream>>>(ptr<T>(out), v, ptr<T>(y), ptr<T>(c));
  else
    width_mix_kernel<T><<<blocks_for(v.T_ * v.D), kThreads, 0, stream>>>(ptr<T>(out), v, ptr<T>(c));
  HC_CUDA_LAUNCH_CHECK("hc_step");
}

}  // namespace

void hc_width_forward(const Tensor& out, const Tensor& saved, const Tensor& x, const Tensor& static_weights,
                      const Tensor& weight_t, const Tensor& scales, HcStep step) {
  dispatch_floating("hc_width", x.dtype(),
                    [&]<class T>() { forward<T>(out, saved, x, Tensor(), static_weights, weight_t, scales, step); });
}

void hc_depth_forward(const Tensor& out, const Tensor& saved, const Tensor& x, const Tensor& y,
                      const Tensor& static_weights, const Tensor& weight_t, const Tensor& scales, HcStep step) {
  dispatch_floating("hc_depth", x.dtype(),
                    [&]<class T>() { forward<T>(out, saved, x, y, static_weights, weight_t, scales, step); });
}

void hc_step_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& grad_static, const Tensor& grad_scales,
                      const Tensor& grad_weight_t, const Tensor& grad_out, const Tensor& x, const Tensor& y,
                      const Tensor& saved, const Tensor& static_weights, const Tensor& weight_t, const Tensor& scales,
                      HcStep step) {
  dispatch_floating("hc_step_backward", x.dtype(), [&]<class T>() {
    const StepView<T> v = step_view<T>(x, static_weights, weight_t, scales, step, y.defined());
    const cudaStream_t stream = stream_for(grad_out);
    const Tensor norm = Tensor::empty(Shape{v.T_, v.R}, x.options());
    const Shape per_coefficient{v.T_, v.R, v.M};
    const Tensor p = Tensor::empty(per_coefficient, x.options()), a = Tensor::empty(per_coefficient, x.options()),
                 c = Tensor::empty(per_coefficient, x.options()), G = Tensor::empty(per_coefficient, x.options()),
                 dstatic = Tensor::empty(per_coefficient, x.options()),
                 dscale = Tensor::empty(per_coefficient, x.options()), dp = Tensor::empty(per_coefficient, x.options());
    if (v.T_ > 0) {
      const unsigned coefficient_blocks = blocks_for(v.T_ * v.R * v.M);
      coefficients<T>(v, saved, norm, p, a, c, x, stream, /*from_saved=*/saved.defined());
      coefficient_grad_kernel<T><<<coefficient_blocks, kThreads, 0, stream>>>(
          ptr<T>(G), v, y.defined() ? ptr<T>(y) : nullptr, ptr<T>(grad_out));
      HC_CUDA_LAUNCH_CHECK("hc_step_backward");
      if (v.manifold && v.depth) {
        const Tensor scratch = sinkhorn_scratch(v, x, /*backward=*/true);
        sinkhorn_backward_kernel<T><<<blocks_for(v.T_), kThreads, 0, stream>>>(v, ptr<T>(dstatic), ptr<T>(G),
                                                                                ptr<T>(a), ptr<T>(scratch));
        HC_CUDA_LAUNCH_CHECK("hc_step_backward");
      }
      chain_kernel<T><<<coefficient_blocks, kThreads, 0, stream>>>(ptr<T>(dstatic), ptr<T>(dscale), ptr<T>(dp), v,
                                                                   ptr<T>(G), ptr<T>(norm), ptr<T>(p), ptr<T>(a),
                                                                   ptr<T>(c));
      HC_CUDA_LAUNCH_CHECK("hc_step_backward");
      grad_x_kernel<T><<<blocks_for(v.T_ * v.S * v.D), kThreads, 0, stream>>>(
          ptr<T>(grad_x), v, ptr<T>(grad_out), ptr<T>(c), ptr<T>(dp), ptr<T>(norm), ptr<T>(p));
      HC_CUDA_LAUNCH_CHECK("hc_step_backward");
      if (v.depth) {
        grad_y_kernel<T><<<blocks_for(v.T_ * v.D), kThreads, 0, stream>>>(ptr<T>(grad_y), v, ptr<T>(grad_out), ptr<T>(c));
        HC_CUDA_LAUNCH_CHECK("hc_step_backward");
      }
    }
    const int64_t params = v.P * v.K + v.R * v.M + v.M;
    param_grad_kernel<T><<<blocks_for(params), kThreads, 0, stream>>>(ptr<T>(grad_weight_t), ptr<T>(grad_static),
                                                                      ptr<T>(grad_scales), v, ptr<T>(dstatic),
                                                                      ptr<T>(dscale), ptr<T>(dp));
    HC_CUDA_LAUNCH_CHECK("hc_step_backward");
  });
}

}  // namespace hcgrad::cuda
