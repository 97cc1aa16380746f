// hc_width and hc_depth on the CPU (the op and its equations: core/ops/hc_step.cpp, core/kernel_list.h).
// One token at a time: its S·D stream values, its branch output and its gradient sit in L1 while the kernel
// computes the R = F·S norms and R·M coefficients (HC's static + scale φ(p), or mHC's σ / Sinkhorn / 2σ of
// static + scale p, the Sinkhorn iterates recomputed per token in backward) and then mixes the rows, so every
// stream tensor is read once per pass and each gradient written once. Tokens are split into fixed blocks over oneTBB; the
// parameter gradients are summed per block and the blocks added in order (same bits for any thread count).
#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/core/sinkhorn_math.h"

namespace hcgrad::cpu {

namespace {
constexpr double kMinNorm = 1e-12;      // the library's clamp of the norm
constexpr int64_t kTokenBlock = 64;     // tokens per partial sum of the parameter gradients

// Eigen's dot product: vectorised with several accumulators (a plain loop's single sum would wait on each add).
template <class T>
T dot(const T* a, const T* b, int64_t n) {
  using Vector = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;
  return Vector(a, n).dot(Vector(b, n));
}

// out[k] (+)= Σ_i coefs[i] · srcs[i][k] for k < n: a block of kLanes outputs stays in registers while every
// term is added, so each output is written once (not once per term, as a chain of axpys would).
constexpr int64_t kLanes = 16;
template <class T>
void combine(T* __restrict out, const T* const* srcs, const T* coefs, int64_t terms, int64_t n, bool accumulate) {
  using Lanes = Eigen::Array<T, kLanes, 1>;  // fixed size: Eigen keeps it in vector registers
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    Lanes acc = accumulate ? Lanes(Eigen::Map<const Lanes>(out + k)) : Lanes::Zero();
    for (int64_t i = 0; i < terms; ++i) acc += coefs[i] * Eigen::Map<const Lanes>(srcs[i] + k);
    Eigen::Map<Lanes>(out + k) = acc;
  }
  for (; k < n; ++k) {
    T acc = accumulate ? out[k] : T(0);
    for (int64_t i = 0; i < terms; ++i) acc += coefs[i] * srcs[i][k];
    out[k] = acc;
  }
}

// The terms of one combine(), gathered per output row (at most R + M + 1 of them).
template <class T>
struct Terms {
  std::vector<const T*> srcs;
  std::vector<T> coefs;
  void clear() {
    srcs.clear();
    coefs.clear();
  }
  void add(T c, const T* src) {
    srcs.push_back(src);
    coefs.push_back(c);
  }
  void write(T* out, int64_t n, bool accumulate = false) const {
    combine(out, srcs.data(), coefs.data(), static_cast<int64_t>(srcs.size()), n, accumulate);
  }
};

// Sizes, the parameters and where a token's rows are: row r is fraction frac_of(r) of stream stream_of(r),
// x[b, n, s, f·d : (f+1)·d]; HC numbers them r = f·S + s, mHC r = s·F + f.
template <class T>
struct Step {
  int64_t S, F, R, d, D, M, N;
  bool tanh, manifold, depth, log_domain;
  int64_t iters;
  const T *x, *statics, *weight_t, *scales;
  int64_t stride_b, stride_n, stride_s;

  Step(const Tensor& xt, const Tensor& static_weights, const Tensor& w_t, const Tensor& sc, HcStep step, bool is_depth)
      : S(step.streams),
        F(step.fracs),
        R(step.streams * step.fracs),
        d(xt.shape()[3] / step.fracs),
        D(xt.shape()[3]),
        M(w_t.shape()[0]),
        N(xt.shape()[1]),
        tanh(step.tanh),
        manifold(step.manifold),
        depth(is_depth),
        log_domain(step.sinkhorn_log_domain),
        iters(step.sinkhorn_iters),
        x(xt.data<T>()),
        statics(static_weights.data<T>()),
        weight_t(w_t.data<T>()),
        scales(sc.data<T>()),
        stride_b(xt.stride(0)),
        stride_n(xt.stride(1)),
        stride_s(xt.stride(2)) {}

  int64_t stream_of(int64_t r) const { return manifold ? r / F : r % S; }
  int64_t frac_of(int64_t r) const { return manifold ? r % F : r / S; }
  int64_t row_of(int64_t s, int64_t f) const { return manifold ? s * F + f : f * S + s; }
  // Where row r starts in a token's [S, D] block with stream stride `stride_stream`.
  int64_t offset(int64_t r, int64_t stride_stream) const { return stream_of(r) * stride_stream + frac_of(r) * d; }
  const T* row(int64_t token, int64_t r) const {
    return x + (token / N) * stride_b + (token % N) * stride_n + offset(r, stride_s);
  }
};

// One token's coefficients, recomputed wherever they are needed: norm n_r, the normalised projections
// p[r, j] = x_r · weight_t[j] / max(n_r, 1e-12), a = φ(p) (HC) or z = static + scale p (mHC), and c.
template <class T>
struct Coefficients {
  std::vector<T> norm, p, a, c;
  // mHC's depth step: the residual block [R, S·F] of z and of c, and the Sinkhorn's scratch and tape.
  std::vector<T> logits, mixed, scratch, tape, sums, grad_mixed, grad_logits;
  explicit Coefficients(const Step<T>& st) : norm(st.R), p(st.R * st.M), a(st.R * st.M), c(st.R * st.M) {
    if (st.manifold && st.depth) {
      const int64_t size = st.R * st.R, lines = 2 * st.iters * st.R;  // H_res is [R, R] (R = S·F)
      logits.resize(size);
      mixed.resize(size);
      grad_mixed.resize(size);
      grad_logits.resize(size);
      scratch.resize(st.R);
      tape.resize((2 * st.iters + 1) * size);
      sums.resize(lines);
    }
  }

  void compute(const Step<T>& st, int64_t token) {
    for (int64_t r = 0; r < st.R; ++r) {
      const T* xr = st.row(token, r);
      norm[r] = std::sqrt(dot(xr, xr, st.d));
      const T inv = T(1) / std::max(norm[r], T(kMinNorm));
      for (int64_t j = 0; j < st.M; ++j) p[r * st.M + j] = dot(xr, st.weight_t + j * st.d, st.d) * inv;
    }
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    const int64_t n = st.R * st.M;
    if (!st.manifold) {
      // φ over the token's R·M projections at once: Eigen's vectorised tanh (a scalar tanh per coefficient
      // was half of the kernel's time), the same function the tanh op uses on float32.
      if (st.tanh) Eigen::Map<Array>(a.data(), n) = Eigen::Map<const Array>(p.data(), n).tanh();
      else std::copy(p.begin(), p.end(), a.begin());
      for (int64_t i = 0; i < n; ++i) c[i] = st.statics[i] + st.scales[i % st.M] * a[i];
      return;
    }
    for (int64_t i = 0; i < n; ++i) a[i] = st.statics[i] + st.scales[i % st.M] * p[i];  // z
    const int64_t SF = st.depth ? st.R : 0;  // the depth step's columns: S·F residual, then F for β
    for (int64_t r = 0; r < st.R; ++r)
      for (int64_t j = SF; j < st.M; ++j) {
        const T sigma = T(1) / (T(1) + std::exp(-a[r * st.M + j]));
        c[r * st.M + j] = st.depth ? T(2) * sigma : sigma;  // β = 2σ (mHC eq. 8), H_pre = σ
      }
    if (st.depth) {  // H_res = Sinkhorn(z[:, :S·F]), one [R, R] matrix
      for (int64_t r = 0; r < st.R; ++r) std::copy_n(a.data() + r * st.M, st.R, logits.data() + r * st.R);
      sinkhorn::matrix_forward(mixed.data(), scratch.data(), logits.data(), st.R, st.R, st.iters, st.log_domain);
      for (int64_t r = 0; r < st.R; ++r) std::copy_n(mixed.data() + r * st.R, st.R, c.data() + r * st.M);
    }
  }

  // dL/dz from G = dL/dc (mHC): σ' = c (1 − c); 2σ' = c (1 − c / 2); the Sinkhorn's vector-Jacobian product.
  void manifold_backward(const Step<T>& st, const T* G, T* dz) {
    const int64_t SF = st.depth ? st.R : 0;
    for (int64_t r = 0; r < st.R; ++r)
      for (int64_t j = SF; j < st.M; ++j) {
        const int64_t i = r * st.M + j;
        dz[i] = G[i] * c[i] * (T(1) - (st.depth ? c[i] / T(2) : c[i]));
      }
    if (st.depth) {
      for (int64_t r = 0; r < st.R; ++r) std::copy_n(G + r * st.M, st.R, grad_mixed.data() + r * st.R);
      sinkhorn::matrix_backward(grad_logits.data(), tape.data(), sums.data(), logits.data(), grad_mixed.data(), st.R,
                                st.R, st.iters, st.log_domain);
      for (int64_t r = 0; r < st.R; ++r) std::copy_n(grad_logits.data() + r * st.R, st.R, dz + r * st.M);
    }
  }
};

template <class T>
void width_forward(const Tensor& out, const Step<T>& st, int64_t tokens) {
  T* o = out.data<T>();
  parallel_for(0, tokens, grain_for(st.R * st.D), [&](int64_t t0, int64_t t1) {
    Coefficients<T> co(st);
    Terms<T> terms;
    for (int64_t token = t0; token < t1; ++token) {
      co.compute(st, token);
      for (int64_t f2 = 0; f2 < st.F; ++f2) {  // u[f2] = Σ_r c[r, f2] x_r
        terms.clear();
        for (int64_t r = 0; r < st.R; ++r) terms.add(co.c[r * st.M + f2], st.row(token, r));
        terms.write(o + token * st.D + f2 * st.d, st.d);
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
    Terms<T> terms;
    for (int64_t token = t0; token < t1; ++token) {
      co.compute(st, token);
      const T* yt = y + token * st.D;
      for (int64_t t = 0; t < st.S; ++t)
        for (int64_t f2 = 0; f2 < st.F; ++f2) {
          // new[t, f2] = Σ_r c[r, t·F + f2] x_r + Σ_f1 β[row (t, f1), f2] y[f1]
          terms.clear();
          for (int64_t r = 0; r < st.R; ++r) terms.add(co.c[r * st.M + t * st.F + f2], st.row(token, r));
          for (int64_t f1 = 0; f1 < st.F; ++f1) terms.add(co.c[st.row_of(t, f1) * st.M + SF + f2], yt + f1 * st.d);
          terms.write(o + (token * st.S + t) * st.D + f2 * st.d, st.d);
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

// The coefficient chain of one token, from G = dL/dc [R, M]. HC (c = static + scale φ(p)):
//   dstatic += G,  dscale_j += G φ,  dp_over_n = G scale_j φ'(p) / n_r
// mHC (c = ψ(z), z = static + scale p; dz from Coefficients::manifold_backward):
//   dstatic += dz, dscale_j += dz p,  dp_over_n = dz scale_j / n_r
// and in both through_r = [n_r ≥ ε] Σ_j dp_over_n p / n_r: the input gradient is then
// dx_r = Σ_j dp_over_n[r, j] W_t[j] − through_r x_r, and dW_t[j] = Σ_r dp_over_n[r, j] x_r.
template <class T>
void coefficient_chain(const Step<T>& st, Coefficients<T>& co, const T* G, ParamGrads<T>& pg, T* dp_over_n,
                       T* through, T* dz) {
  if (st.manifold) co.manifold_backward(st, G, dz);
  for (int64_t r = 0; r < st.R; ++r) {
    const T n = co.norm[r], inv = T(1) / std::max(n, T(kMinNorm));
    T through_norm = 0;
    for (int64_t j = 0; j < st.M; ++j) {
      const int64_t i = r * st.M + j;
      T grad_p;  // dL/dp
      if (st.manifold) {
        pg.statics[i] += dz[i];
        pg.scales[j] += dz[i] * co.p[i];
        grad_p = dz[i] * st.scales[j];
      } else {
        pg.statics[i] += G[i];
        pg.scales[j] += G[i] * co.a[i];
        grad_p = G[i] * st.scales[j] * (st.tanh ? T(1) - co.a[i] * co.a[i] : T(1));
      }
      dp_over_n[i] = grad_p * inv;
      through_norm += dp_over_n[i] * co.p[i];
    }
    through[r] = n >= T(kMinNorm) ? through_norm * inv : T(0);
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
    std::vector<T> G(st.R * st.M), dp_over_n(st.R * st.M), through(st.R), dz(st.R * st.M);
    Terms<T> terms;
    for (int64_t b = b0; b < b1; ++b) {
      ParamGrads<T> pg(partials.data() + b * psize, st);
      for (int64_t token = b * kTokenBlock; token < std::min(tokens, (b + 1) * kTokenBlock); ++token) {
        co.compute(st, token);
        // The output rows' gradients: width u[f2] (column f2), depth new[t, f2] (column t·F + f2, and β's S·F + f2).
        const T* yt = depth ? y + token * st.D : nullptr;
        auto grad_row = [&](int64_t o) {  // o = f2 (width) or t·F + f2 (depth)
          return depth ? g + (token * st.S + o / st.F) * st.D + (o % st.F) * st.d : g + token * st.D + o * st.d;
        };
        const int64_t outputs = depth ? SF : st.F;
        // G = dL/dc: each coefficient's dot product of its source row with the gradient of the row it feeds.
        for (int64_t o = 0; o < outputs; ++o)
          for (int64_t r = 0; r < st.R; ++r) G[r * st.M + o] = dot(st.row(token, r), grad_row(o), st.d);
        if (depth) {
          for (int64_t r = 0; r < st.R; ++r)  // r = row (t, f1): β[r, f2] weighs y[f1] into new[t, f2]
            for (int64_t f2 = 0; f2 < st.F; ++f2)
              G[r * st.M + SF + f2] =
                  dot(yt + st.frac_of(r) * st.d, grad_row(st.stream_of(r) * st.F + f2), st.d);
          for (int64_t f1 = 0; f1 < st.F; ++f1) {  // dy[f1] = Σ_{t, f2} β[row (t, f1), f2] dnew[t, f2]
            terms.clear();
            for (int64_t t = 0; t < st.S; ++t)
              for (int64_t f2 = 0; f2 < st.F; ++f2)
                terms.add(co.c[st.row_of(t, f1) * st.M + SF + f2], grad_row(t * st.F + f2));
            terms.write(gy + token * st.D + f1 * st.d, st.d);
          }
        }
        coefficient_chain(st, co, G.data(), pg, dp_over_n.data(), through.data(), dz.data());
        // dx_r = Σ_o c[r, o] d(row o) + Σ_j dp_over_n[r, j] W_t[j] − through_r x_r: written once.
        T* gxt = gx + token * st.S * st.D;
        for (int64_t r = 0; r < st.R; ++r) {
          terms.clear();
          for (int64_t o = 0; o < outputs; ++o) terms.add(co.c[r * st.M + o], grad_row(o));
          for (int64_t j = 0; j < st.M; ++j) terms.add(dp_over_n[r * st.M + j], st.weight_t + j * st.d);
          terms.add(-through[r], st.row(token, r));
          terms.write(gxt + st.offset(r, st.D), st.d);
        }
        for (int64_t j = 0; j < st.M; ++j) {  // dW_t[j] += Σ_r dp_over_n[r, j] x_r
          terms.clear();
          for (int64_t r = 0; r < st.R; ++r) terms.add(dp_over_n[r * st.M + j], st.row(token, r));
          terms.write(pg.weight_t + j * st.d, st.d, /*accumulate=*/true);
        }
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
    const Step<T> st(x, static_weights, weight_t, scales, step, /*is_depth=*/false);
    width_forward<T>(out, st, x.shape()[0] * x.shape()[1]);
  });
}

void hc_depth_forward(const Tensor& out, const Tensor& x, const Tensor& y, const Tensor& static_weights,
                      const Tensor& weight_t, const Tensor& scales, HcStep step) {
  dispatch_floating("hc_depth", x.dtype(), [&]<class T>() {
    const Step<T> st(x, static_weights, weight_t, scales, step, /*is_depth=*/true);
    depth_forward<T>(out, y.data<T>(), st, x.shape()[0] * x.shape()[1]);
  });
}

void hc_step_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& grad_static, const Tensor& grad_scales,
                      const Tensor& grad_weight_t, const Tensor& grad_out, const Tensor& x, const Tensor& y,
                      const Tensor& static_weights, const Tensor& weight_t, const Tensor& scales, HcStep step) {
  dispatch_floating("hc_step_backward", x.dtype(), [&]<class T>() {
    const Step<T> st(x, static_weights, weight_t, scales, step, /*is_depth=*/y.defined());
    step_backward<T>(grad_x, grad_y, grad_static, grad_scales, grad_weight_t, grad_out.data<T>(),
                     y.defined() ? y.data<T>() : nullptr, st, x.shape()[0] * x.shape()[1]);
  });
}

}  // namespace hcgrad::cpu
