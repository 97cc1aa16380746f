// hc_width and hc_depth on the CPU (the op and its equations: core/ops/hc_step.cpp, core/kernel_list.h).
// One token at a time: its S·D stream values, its branch output and its gradient sit in L1 while the kernel
// computes the R = F·S norms and R·M coefficients and then mixes the rows, so every stream tensor is read
// once per pass and each gradient written once. Tokens are split into fixed blocks over oneTBB; the
// parameter gradients are summed per block and the blocks added in order (same bits for any thread count).
#include <algorithm>
#include <cmath>
#include <vector>

#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"

namespace hcgrad::cpu {

namespace {
constexpr double kMinNorm = 1e-12;      // the library's clamp of the norm
constexpr int64_t kTokenBlock = 64;     // tokens per partial sum of the parameter gradients

template <class T>
T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  T acc = 0;
  for (int64_t k = 0; k < n; ++k) acc += a[k] * b[k];
  return acc;
}

template <class T>
void axpy(T* __restrict out, T c, const T* __restrict x, int64_t n) {
  for (int64_t k = 0; k < n; ++k) out[k] += c * x[k];
}

// Sizes, the parameters and where a token's rows are. Row r = f·S + s is x[b, n, s, f·d : (f+1)·d].
template <class T>
struct Step {
  int64_t S, F, R, d, D, M, N;
  bool tanh;
  const T *x, *statics, *weight_t, *scales;
  int64_t stride_b, stride_n, stride_s;

  Step(const Tensor& xt, const Tensor& static_weights, const Tensor& w_t, const Tensor& sc, HcStep step)
      : S(step.streams),
        F(step.fracs),
        R(step.streams * step.fracs),
        d(xt.shape()[3] / step.fracs),
        D(xt.shape()[3]),
        M(w_t.shape()[0]),
        N(xt.shape()[1]),
        tanh(step.tanh),
        x(xt.data<T>()),
        statics(static_weights.data<T>()),
        weight_t(w_t.data<T>()),
        scales(sc.data<T>()),
        stride_b(xt.stride(0)),
        stride_n(xt.stride(1)),
        stride_s(xt.stride(2)) {}

  const T* row(int64_t token, int64_t r) const {
    return x + (token / N) * stride_b + (token % N) * stride_n + (r % S) * stride_s + (r / S) * d;
  }
};

// One token's coefficients, recomputed wherever they are needed: norm n_r, the normalised projections
// p[r, j] = x_r · weight_t[j] / max(n_r, 1e-12), φ(p) and c = static + scale ⊙ φ(p).
template <class T>
struct Coefficients {
  std::vector<T> norm, p, phi, c;
  explicit Coefficients(const Step<T>& st)
      : norm(st.R), p(st.R * st.M), phi(st.R * st.M), c(st.R * st.M) {}

  void compute(const Step<T>& st, int64_t token) {
    for (int64_t r = 0; r < st.R; ++r) {
      const T* xr = st.row(token, r);
      norm[r] = std::sqrt(dot(xr, xr, st.d));
      const T inv = T(1) / std::max(norm[r], T(kMinNorm));
      for (int64_t j = 0; j < st.M; ++j) {
        const int64_t i = r * st.M + j;
        p[i] = dot(xr, st.weight_t + j * st.d, st.d) * inv;
        phi[i] = st.tanh ? std::tanh(p[i]) : p[i];
        c[i] = st.statics[i] + st.scales[j] * phi[i];
      }
    }
  }
};

template <class T>
void width_forward(const Tensor& out, const Step<T>& st, int64_t tokens) {
  T* o = out.data<T>();
  parallel_for(0, tokens, grain_for(st.R * st.D), [&](int64_t t0, int64_t t1) {
    Coefficients<T> co(st);
    for (int64_t token = t0; token < t1; ++token) {
      co.compute(st, token);
      for (int64_t f2 = 0; f2 < st.F; ++f2) {  // u[f2] = Σ_r c[r, f2] x_r
        T* u = o + token * st.D + f2 * st.d;
        std::fill(u, u + st.d, T(0));
        for (int64_t r = 0; r < st.R; ++r) axpy(u, co.c[r * st.M + f2], st.row(token, r), st.d);
      }
    }
  });
}

template <class T>
void depth_forward(const Tensor& out, const T* y, const Step<T>& st, int64_t tokens) {
  T* o = out.data<T>();
  const int64_t SF = st.S * st.F;
  parallel_for(0, tokens, grain_for(st.R * st.D * st.S), [&](int64_t t0, int64_t t1) {
    Coefficients<T> co(st);
    for (int64_t token = t0; token < t1; ++token) {
      co.compute(st, token);
      const T* yt = y + token * st.D;
      for (int64_t t = 0; t < st.S; ++t)
        for (int64_t f2 = 0; f2 < st.F; ++f2) {
          // new[t, f2] = Σ_r c[r, t·F + f2] x_r + Σ_f1 β[f1·S + t, f2] y[f1]
          T* n = o + (token * st.S + t) * st.D + f2 * st.d;
          std::fill(n, n + st.d, T(0));
          for (int64_t r = 0; r < st.R; ++r) axpy(n, co.c[r * st.M + t * st.F + f2], st.row(token, r), st.d);
          for (int64_t f1 = 0; f1 < st.F; ++f1) axpy(n, co.c[(f1 * st.S + t) * st.M + SF + f2], yt + f1 * st.d, st.d);
        }
    }
  });
}

// One block's share of the parameter gradients: [M, d] for weight_t, then [R, M] statics, then [M] scales.
template <class T>
struct ParamGrads {
  T *weight_t, *statics, *scales;
  ParamGrads(T* base, const Step<T>& st)
      : weight_t(base), statics(base + st.M * st.d), scales(base + st.M * st.d + st.R * st.M) {}
  static int64_t size(const Step<T>& st) { return st.M * st.d + st.R * st.M + st.M; }
};

// The backward of one token, after the step-specific part has filled G = dL/dc [R, M] and the direct part
// of grad_x (the rows' mixing weights times the output gradient): the coefficient chain and the norm.
//   dstatic += G,  dscale_j += G φ,  dp = G scale_j φ'(p),  dx_r += (dp_r / n_r) W_t − [n_r ≥ ε] (dp_r · p_r / n_r²) x_r,
//   dW_t[j] += (dp_rj / n_r) x_r
template <class T>
void coefficient_chain(const Step<T>& st, int64_t token, const Coefficients<T>& co, const T* G, T* gx_token,
                       ParamGrads<T>& pg, T* dp) {
  for (int64_t r = 0; r < st.R; ++r) {
    const T n = co.norm[r], inv = T(1) / std::max(n, T(kMinNorm));
    T through_norm = 0;
    for (int64_t j = 0; j < st.M; ++j) {
      const int64_t i = r * st.M + j;
      pg.statics[i] += G[i];
      pg.scales[j] += G[i] * co.phi[i];
      const T slope = st.tanh ? T(1) - co.phi[i] * co.phi[i] : T(1);
      dp[j] = G[i] * st.scales[j] * slope * inv;  // dp / n
      through_norm += dp[j] * co.p[i];
    }
    through_norm = n >= T(kMinNorm) ? through_norm * inv : T(0);
    const T* xr = st.row(token, r);
    T* gxr = gx_token + (r % st.S) * st.D + (r / st.S) * st.d;
    axpy(gxr, -through_norm, xr, st.d);
    for (int64_t j = 0; j < st.M; ++j) {
      if (dp[j] == T(0)) continue;
      axpy(gxr, dp[j], st.weight_t + j * st.d, st.d);
      axpy(pg.weight_t + j * st.d, dp[j], xr, st.d);
    }
  }
}

template <class T>
void step_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& grad_static, const Tensor& grad_scales,
                   const Tensor& grad_weight_t, const T* g, const T* y, const Step<T>& st, int64_t tokens) {
  const bool depth = y != nullptr;
  const int64_t SF = st.S * st.F, blocks = (tokens + kTokenBlock - 1) / kTokenBlock, psize = ParamGrads<T>::size(st);
  T* gx = grad_x.data<T>();
  T* gy = depth ? grad_y.data<T>() : nullptr;
  std::vector<T> partials(static_cast<size_t>(std::max<int64_t>(blocks, 1) * psize), T(0));
  parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    Coefficients<T> co(st);
    std::vector<T> G(st.R * st.M), dp(st.M);
    for (int64_t b = b0; b < b1; ++b) {
      ParamGrads<T> pg(partials.data() + b * psize, st);
      for (int64_t token = b * kTokenBlock; token < std::min(tokens, (b + 1) * kTokenBlock); ++token) {
        co.compute(st, token);
        std::fill(G.begin(), G.end(), T(0));
        T* gxt = gx + token * st.S * st.D;
        std::fill(gxt, gxt + st.S * st.D, T(0));
        if (!depth) {
          for (int64_t f2 = 0; f2 < st.F; ++f2) {  // u[f2] = Σ_r c[r, f2] x_r
            const T* gu = g + token * st.D + f2 * st.d;
            for (int64_t r = 0; r < st.R; ++r) {
              const T* xr = st.row(token, r);
              G[r * st.M + f2] = dot(xr, gu, st.d);
              axpy(gxt + (r % st.S) * st.D + (r / st.S) * st.d, co.c[r * st.M + f2], gu, st.d);
            }
          }
        } else {
          const T* yt = y + token * st.D;
          T* gyt = gy + token * st.D;
          std::fill(gyt, gyt + st.D, T(0));
          for (int64_t t = 0; t < st.S; ++t)
            for (int64_t f2 = 0; f2 < st.F; ++f2) {
              const T* gn = g + (token * st.S + t) * st.D + f2 * st.d;
              for (int64_t r = 0; r < st.R; ++r) {
                const int64_t i = r * st.M + t * st.F + f2;
                G[i] = dot(st.row(token, r), gn, st.d);
                axpy(gxt + (r % st.S) * st.D + (r / st.S) * st.d, co.c[i], gn, st.d);
              }
              for (int64_t f1 = 0; f1 < st.F; ++f1) {
                const int64_t i = (f1 * st.S + t) * st.M + SF + f2;
                G[i] = dot(yt + f1 * st.d, gn, st.d);
                axpy(gyt + f1 * st.d, co.c[i], gn, st.d);
              }
            }
        }
        coefficient_chain(st, token, co, G.data(), gxt, pg, dp.data());
      }
    }
  });
  // The blocks' partial sums, added in block order.
  std::vector<T> total(static_cast<size_t>(psize), T(0));
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t i = 0; i < psize; ++i) total[i] += partials[b * psize + i];
  ParamGrads<T> sum(total.data(), st);
  std::copy(sum.weight_t, sum.weight_t + st.M * st.d, grad_weight_t.data<T>());
  std::copy(sum.statics, sum.statics + st.R * st.M, grad_static.data<T>());
  std::copy(sum.scales, sum.scales + st.M, grad_scales.data<T>());
}
}  // namespace

void hc_width_forward(const Tensor& out, const Tensor& x, const Tensor& static_weights, const Tensor& weight_t,
                      const Tensor& scales, HcStep step) {
  dispatch_floating("hc_width", x.dtype(), [&]<class T>() {
    const Step<T> st(x, static_weights, weight_t, scales, step);
    width_forward<T>(out, st, x.shape()[0] * x.shape()[1]);
  });
}

void hc_depth_forward(const Tensor& out, const Tensor& x, const Tensor& y, const Tensor& static_weights,
                      const Tensor& weight_t, const Tensor& scales, HcStep step) {
  dispatch_floating("hc_depth", x.dtype(), [&]<class T>() {
    const Step<T> st(x, static_weights, weight_t, scales, step);
    depth_forward<T>(out, y.data<T>(), st, x.shape()[0] * x.shape()[1]);
  });
}

void hc_step_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& grad_static, const Tensor& grad_scales,
                      const Tensor& grad_weight_t, const Tensor& grad_out, const Tensor& x, const Tensor& y,
                      const Tensor& static_weights, const Tensor& weight_t, const Tensor& scales, HcStep step) {
  dispatch_floating("hc_step_backward", x.dtype(), [&]<class T>() {
    const Step<T> st(x, static_weights, weight_t, scales, step);
    step_backward<T>(grad_x, grad_y, grad_static, grad_scales, grad_weight_t, grad_out.data<T>(),
                     y.defined() ? y.data<T>() : nullptr, st, x.shape()[0] * x.shape()[1]);
  });
}

}  // namespace hcgrad::cpu
