// hc_width and hc_depth on the CPU (the op and its equations: core/ops/hc_step.cpp, core/kernel_list.h).
// Tokens go in fixed blocks of kTokenBlock over oneTBB. For a block the kernel computes the R = F·S norms and
// R·M coefficients of every token (HC's static + scale φ(p), or mHC's σ / Sinkhorn / 2σ of static + scale p;
// in backward recomputed, or read from the forward's `saved`; the mHC paper's token_projection: one norm and
// R·M projections over each token's S·D values), then works token by token: its S·D stream
// values, branch output and gradient sit in L1 while the rows are mixed, so every stream tensor is read once
// per pass and each gradient written once. The parameter gradients are summed per block and the blocks added
// in order (the same bits for any thread count).
#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "hcgrad/core/cpu/gemm.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/cpu/vector_rows.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/core/sinkhorn_math.h"

namespace hcgrad::cpu {

namespace {
using short_rows::combine;
using short_rows::dot;
using short_rows::dots;
using short_rows::Terms;

constexpr double kMinNorm = 1e-12;      // the library's clamp of the norm
constexpr int64_t kTokenBlock = 64;     // tokens per partial sum of the parameter gradients

// Sizes, the parameters and where a token's rows are: row r is fraction frac_of(r) of stream stream_of(r),
// x[b, n, s, f·d : (f+1)·d]; HC numbers them r = f·S + s, mHC r = s·F + f.
template <class T>
struct Step {
  int64_t S, F, R, d, D, M, N;
  int64_t P, K;  // weight_t [P, K]: M projections of a row's d features, or token_projection's R·M of S·D
  bool tanh, manifold, depth, log_domain, token_projection, diagonal_beta;
  bool stream_major;  // rows r = s·F + f (mHC, the Frac paper) rather than HC's f·S + s
  int64_t iters;
  DType dtype;
  const T *x, *statics, *weight_t, *scales;
  int64_t stride_b, stride_n, stride_s;
  bool contiguous;  // x is [B, N, S, D] in row-major order: a block of tokens is one matrix in place

  Step(const Tensor& xt, const Tensor& static_weights, const Tensor& w_t, const Tensor& sc, HcStep step, bool is_depth)
      : S(step.streams),
        F(step.fracs),
        R(step.streams * step.fracs),
        d(xt.shape()[3] / step.fracs),
        D(xt.shape()[3]),
        M(static_weights.shape()[1]),
        N(xt.shape()[1]),
        P(w_t.shape()[0]),
        K(w_t.shape()[1]),
        tanh(step.tanh),
        manifold(step.manifold),
        depth(is_depth),
        log_domain(step.sinkhorn_log_domain),
        token_projection(step.token_projection),
        diagonal_beta(step.diagonal_beta),
        stream_major(step.manifold || step.diagonal_beta),
        iters(step.sinkhorn_iters),
        dtype(xt.dtype()),
        x(xt.data<T>()),
        statics(static_weights.data<T>()),
        weight_t(w_t.data<T>()),
        scales(sc.data<T>()),
        stride_b(xt.stride(0)),
        stride_n(xt.stride(1)),
        stride_s(xt.stride(2)),
        contiguous(stride_s == D && stride_n == S * D && stride_b == N * S * D) {}

  int64_t stream_of(int64_t r) const { return stream_major ? r / F : r % S; }
  int64_t frac_of(int64_t r) const { return stream_major ? r % F : r / S; }
  int64_t row_of(int64_t s, int64_t f) const { return stream_major ? s * F + f : f * S + s; }
  // A token's R row pointers, found once per token: the integer divisions of the index arithmetic, done per
  // use, were a large part of the kernel's time.
  void fill_rows(int64_t token, const T** rows) const {
    const T* base = x + (token / N) * stride_b + (token % N) * stride_n;
    for (int64_t r = 0; r < R; ++r) rows[r] = base + offset(r, stride_s);
  }
  // Where row r starts in a token's [S, D] block with stream stride `stride_stream`.
  int64_t offset(int64_t r, int64_t stride_stream) const { return stream_of(r) * stride_stream + frac_of(r) * d; }
};

// A block of tokens as a row-major matrix [tokens, S·D] for token_projection's GEMMs: in place when x is
// contiguous, else gathered into `buffer` (other steps read the rows in place: data is null).
template <class T>
struct BlockRows {
  const T* data;
  int64_t tokens;
};

template <class T>
BlockRows<T> block_rows(const Step<T>& st, int64_t token0, int64_t count, std::vector<T>& buffer) {
  BlockRows<T> b{nullptr, count};
  if (!st.token_projection) return b;
  if (st.contiguous) {
    b.data = st.x + token0 * st.S * st.D;
    return b;
  }
  buffer.resize(static_cast<size_t>(count * st.S * st.D));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t token = token0 + i;
    const T* base = st.x + (token / st.N) * st.stride_b + (token % st.N) * st.stride_n;
    for (int64_t s = 0; s < st.S; ++s) std::copy_n(base + s * st.stride_s, st.D, buffer.data() + (i * st.S + s) * st.D);
  }
  b.data = buffer.data();
  return b;
}

// The coefficients of a block of up to kTokenBlock tokens (local index i), recomputed wherever they are
// needed: norm n_r, the normalised projections p[r, j] = x_r · weight_t[j] / max(n_r, 1e-12), a = φ(p) (HC)
// or z = static + scale p (mHC), and c. mHC's H_res runs as one batched Sinkhorn over the block (the CPU
// kernel puts 16 matrices in a SIMD vector; one matrix at a time was 8 times slower).
template <class T>
struct BlockCoefficients {
  std::vector<T> norm, p, a, c;                     // [count, R] and [count, R, M]
  std::vector<const T*> rows;                       // one token's row pointers
  std::vector<const T*> sources;                    // x_r, then the M rows of weight_t
  std::vector<T> products;                          // |x_r|², then x_r · weight_t[j]
  std::vector<T> projections;                       // token_projection's GEMM result [tokens, P]
  Tensor logits, mixed, grad_mixed, grad_logits;    // mHC's depth step: [kTokenBlock, R, R]
  int64_t count = 0;

  explicit BlockCoefficients(const Step<T>& st)
      : norm(kTokenBlock * st.R),
        p(kTokenBlock * st.R * st.M),
        a(p.size()),
        c(p.size()),
        rows(st.R),
        sources(st.M + 1),
        products(st.M + 1),
        projections(st.token_projection ? kTokenBlock * st.P : 0) {
    for (int64_t j = 0; j < st.M; ++j) sources[1 + j] = st.weight_t + j * st.d;
    if (st.manifold && st.depth)
      for (Tensor* t : {&logits, &mixed, &grad_mixed, &grad_logits})
        *t = Tensor::empty({kTokenBlock, st.R, st.R}, {.dtype = st.dtype});
  }
  const T* c_of(int64_t i, const Step<T>& st) const { return c.data() + i * st.R * st.M; }

  void compute(const Step<T>& st, int64_t token0, const BlockRows<T>& xb) {
    count = xb.tokens;
    const int64_t RM = st.R * st.M;
    if (st.token_projection) project_tokens(st, xb);
    else
      for (int64_t i = 0; i < count; ++i) {
        st.fill_rows(token0 + i, rows.data());
        for (int64_t r = 0; r < st.R; ++r) {
          const T* xr = rows[r];
          sources[0] = xr;  // |x_r|² and the M projections in one pass over x_r
          dots(xr, sources.data(), st.M + 1, st.d, products.data());
          T& n = norm[i * st.R + r];
          n = std::sqrt(products[0]);
          const T inv = T(1) / std::max(n, T(kMinNorm));
          for (int64_t j = 0; j < st.M; ++j) p[(i * st.R + r) * st.M + j] = products[1 + j] * inv;
        }
      }
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    const int64_t n = count * RM;
    if (!st.manifold) {
      // φ over the block's projections at once: Eigen's vectorised tanh (a scalar tanh per coefficient was
      // half of the kernel's time), the same function the tanh op uses on float32.
      if (st.tanh) Eigen::Map<Array>(a.data(), n) = Eigen::Map<const Array>(p.data(), n).tanh();
      else std::copy_n(p.begin(), n, a.begin());
      for (int64_t i = 0; i < count * st.R; ++i)
        for (int64_t j = 0; j < st.M; ++j) {
          const int64_t e = i * st.M + j;
          c[e] = st.statics[e - (i / st.R) * RM] + st.scales[j] * a[e];
        }
      return;
    }
    const int64_t gates = st.depth ? st.R : 0;  // the depth step's columns: S·F residual, then F for β
    for (int64_t i = 0; i < count * st.R; ++i)
      for (int64_t j = 0; j < st.M; ++j) {
        const int64_t e = i * st.M + j;
        a[e] = st.statics[e - (i / st.R) * RM] + st.scales[j] * p[e];  // z
        if (j >= gates) {
          const T sigma = T(1) / (T(1) + std::exp(-a[e]));
          c[e] = st.depth ? T(2) * sigma : sigma;  // β = 2σ (mHC eq. 8), H_pre = σ
        }
      }
    if (st.depth) {  // H_res = Sinkhorn(z[:, :S·F]): one [R, R] matrix per token
      gather_block(st, a.data(), logits.data<T>());
      sinkhorn_forward(mixed.narrow(0, 0, count), logits.narrow(0, 0, count), st.iters, st.log_domain);
      scatter_block(st, mixed.data<T>(), c.data());
    }
  }

  // token_projection (mHC paper): the block's R·M projections of each token's S·D values as one GEMM
  // [tokens, S·D] x weight_t^T [S·D, R·M] (per-token dot products, each ending in a horizontal sum, took 1.5x
  // the composition's time), one norm for a token's R rows and p[r, j] = its column r·M + j / max(n, ε).
  // (HC's rows project onto M ≤ S·F + F columns only: a GEMM that thin was slower than the dots above.)
  void project_tokens(const Step<T>& st, const BlockRows<T>& xb) {
    gemm<T>(projections.data(), st.P, {xb.data, Layout::RowMajor, st.K}, {st.weight_t, Layout::ColMajor, st.K},
            count, st.K, st.P);
    for (int64_t i = 0; i < count; ++i) {
      const T* x_token = xb.data + i * st.K;
      const T n = std::sqrt(dot(x_token, x_token, st.K)), inv = T(1) / std::max(n, T(kMinNorm));
      std::fill_n(norm.data() + i * st.R, st.R, n);
      for (int64_t q = 0; q < st.P; ++q) p[i * st.P + q] = projections[i * st.P + q] * inv;
    }
  }

  // The block's norm, p, a and c to and from `saved` (the kernels' [T, R, 1 + 3M], from token0's entry).
  void store(const Step<T>& st, T* saved) const {
    for (int64_t i = 0; i < count * st.R; ++i) {
      T* e = saved + i * (1 + 3 * st.M);
      e[0] = norm[i];
      std::copy_n(p.data() + i * st.M, st.M, e + 1);
      std::copy_n(a.data() + i * st.M, st.M, e + 1 + st.M);
      std::copy_n(c.data() + i * st.M, st.M, e + 1 + 2 * st.M);
    }
  }
  void load(const Step<T>& st, const T* saved, int64_t tokens) {
    count = tokens;
    for (int64_t i = 0; i < count * st.R; ++i) {
      const T* e = saved + i * (1 + 3 * st.M);
      norm[i] = e[0];
      std::copy_n(e + 1, st.M, p.data() + i * st.M);
      std::copy_n(e + 1 + st.M, st.M, a.data() + i * st.M);
      std::copy_n(e + 1 + 2 * st.M, st.M, c.data() + i * st.M);
    }
    if (st.manifold && st.depth) gather_block(st, a.data(), logits.data<T>());  // the Sinkhorn's backward reads them
  }

  // dz = dL/dz [count, R, M] from G = dL/dc (mHC): σ' = c (1 − c); 2σ' = c (1 − c / 2); the Sinkhorn's
  // vector-Jacobian product (recomputing its iterates) for the residual block.
  void manifold_backward(const Step<T>& st, const T* G, T* dz) {
    const int64_t gates = st.depth ? st.R : 0;
    for (int64_t i = 0; i < count * st.R; ++i)
      for (int64_t j = gates; j < st.M; ++j) {
        const int64_t e = i * st.M + j;
        dz[e] = G[e] * c[e] * (T(1) - (st.depth ? c[e] / T(2) : c[e]));
      }
    if (st.depth) {
      gather_block(st, G, grad_mixed.data<T>());
      sinkhorn_backward(grad_logits.narrow(0, 0, count), logits.narrow(0, 0, count), grad_mixed.narrow(0, 0, count),
                        st.iters, st.log_domain);
      scatter_block(st, grad_logits.data<T>(), dz);
    }
  }

 private:
  // The residual block [R, R] of each token's [R, M] coefficients, to and from [count, R, R] matrices
  // (token_projection: transposed, the paper's H_res[t, s]).
  void gather_block(const Step<T>& st, const T* coefficients, T* matrices) const {
    for (int64_t i = 0; i < count; ++i)
      for (int64_t r = 0; r < st.R; ++r)
        for (int64_t t = 0; t < st.R; ++t) matrices[matrix_at(st, i, r, t)] = coefficients[(i * st.R + r) * st.M + t];
  }
  void scatter_block(const Step<T>& st, const T* matrices, T* coefficients) const {
    for (int64_t i = 0; i < count; ++i)
      for (int64_t r = 0; r < st.R; ++r)
        for (int64_t t = 0; t < st.R; ++t) coefficients[(i * st.R + r) * st.M + t] = matrices[matrix_at(st, i, r, t)];
  }
  static int64_t matrix_at(const Step<T>& st, int64_t i, int64_t r, int64_t t) {
    return st.token_projection ? (i * st.R + t) * st.R + r : (i * st.R + r) * st.R + t;
  }
};

// Runs body(token0, count) over the fixed blocks of kTokenBlock tokens, on oneTBB.
template <class F>
void for_token_blocks(int64_t tokens, const F& body) {
  parallel_for(0, (tokens + kTokenBlock - 1) / kTokenBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) body(b, b * kTokenBlock, std::min(kTokenBlock, tokens - b * kTokenBlock));
  });
}

// The forward steps' shared walk: per block the coefficients (kept in `saved` when asked), then
// body(token, c, rows, terms) for each token with c its [R, M] coefficients and rows its R row pointers.
template <class T, class Body>
void for_each_token_coefficients(const Step<T>& st, T* saved, int64_t tokens, const Body& body) {
  for_token_blocks(tokens, [&](int64_t, int64_t token0, int64_t count) {
    BlockCoefficients<T> co(st);
    Terms<T> terms;
    std::vector<T> gathered;
    co.compute(st, token0, block_rows(st, token0, count, gathered));
    if (saved) co.store(st, saved + token0 * st.R * (1 + 3 * st.M));
    std::vector<const T*> rows(st.R);
    for (int64_t i = 0; i < count; ++i) {
      st.fill_rows(token0 + i, rows.data());
      body(token0 + i, co.c_of(i, st), rows.data(), terms);
    }
  });
}

template <class T>
void width_forward(const Tensor& out, T* saved, const Step<T>& st, int64_t tokens) {
  T* o = out.data<T>();
  for_each_token_coefficients(st, saved, tokens, [&](int64_t token, const T* c, const T* const* rows, Terms<T>& terms) {
    for (int64_t f2 = 0; f2 < st.F; ++f2) {  // u[f2] = Σ_r c[r, f2] x_r
      terms.clear();
      for (int64_t r = 0; r < st.R; ++r) terms.add(c[r * st.M + f2], rows[r]);
      terms.write(o + token * st.D + f2 * st.d, st.d);
    }
  });
}

template <class T>
void depth_forward(const Tensor& out, T* saved, const T* y, const Step<T>& st, int64_t tokens) {
  T* o = out.data<T>();
  const int64_t SF = st.S * st.F;
  for_each_token_coefficients(st, saved, tokens, [&](int64_t token, const T* c, const T* const* rows, Terms<T>& terms) {
    const T* yt = y + token * st.D;
    for (int64_t t = 0; t < st.S; ++t)
      for (int64_t f2 = 0; f2 < st.F; ++f2) {
        // new[t, f2] = Σ_r c[r, t·F + f2] x_r + Σ_f1 β[row (t, f1), f2] y[f1]   (diagonal: β[row (t, f2)] y[f2])
        terms.clear();
        for (int64_t r = 0; r < st.R; ++r) terms.add(c[r * st.M + t * st.F + f2], rows[r]);
        if (st.diagonal_beta) terms.add(c[st.row_of(t, f2) * st.M + SF], yt + f2 * st.d);
        else
          for (int64_t f1 = 0; f1 < st.F; ++f1) terms.add(c[st.row_of(t, f1) * st.M + SF + f2], yt + f1 * st.d);
        terms.write(o + (token * st.S + t) * st.D + f2 * st.d, st.d);
      }
  });
}

// One block's share of the parameter gradients: [P, K] for weight_t, then [R, M] statics, then [M] scales.
template <class T>
struct ParamGrads {
  T *weight_t, *statics, *scales;
  ParamGrads(T* base, const Step<T>& st)
      : weight_t(base), statics(base + st.P * st.K), scales(base + st.P * st.K + st.R * st.M) {}
  static int64_t size(const Step<T>& st) { return st.P * st.K + st.R * st.M + st.M; }
};

// The coefficient chain of token i of a block, from G = dL/dc [R, M]. HC (c = static + scale φ(p)):
//   dstatic += G,  dscale_j += G φ,  dp_over_n = G scale_j φ'(p) / n_r
// mHC (c = ψ(z), z = static + scale p; dz from BlockCoefficients::manifold_backward):
//   dstatic += dz, dscale_j += dz p,  dp_over_n = dz scale_j / n_r
// and in both through_r = [n_r ≥ ε] Σ_j dp_over_n p / n_r: the input gradient is then
// dx_r = Σ_j dp_over_n[r, j] W_t[j] − through_r x_r, and dW_t[j] = Σ_r dp_over_n[r, j] x_r.
template <class T>
void coefficient_chain(const Step<T>& st, const BlockCoefficients<T>& co, int64_t i, const T* G, const T* dz,
                       ParamGrads<T>& pg, T* dp_over_n, T* through) {
  const int64_t base = i * st.R * st.M;
  const T *p = co.p.data() + base, *a = co.a.data() + base;
  for (int64_t r = 0; r < st.R; ++r) {
    const T n = co.norm[i * st.R + r], inv = T(1) / std::max(n, T(kMinNorm));
    T through_norm = 0;
    for (int64_t j = 0; j < st.M; ++j) {
      const int64_t e = r * st.M + j;
      T grad_p;  // dL/dp
      if (st.manifold) {
        pg.statics[e] += dz[e];
        pg.scales[j] += dz[e] * p[e];
        grad_p = dz[e] * st.scales[j];
      } else {
        pg.statics[e] += G[e];
        pg.scales[j] += G[e] * a[e];
        grad_p = G[e] * st.scales[j] * (st.tanh ? T(1) - a[e] * a[e] : T(1));
      }
      dp_over_n[e] = grad_p * inv;
      through_norm += dp_over_n[e] * p[e];
    }
    through[r] = n >= T(kMinNorm) ? through_norm * inv : T(0);
  }
  if (st.token_projection) {  // one norm for the whole token: every row carries the sum of the R shares
    T total = 0;
    for (int64_t r = 0; r < st.R; ++r) total += through[r];
    std::fill_n(through, st.R, total);
  }
}

// token_projection's projection terms for a block, with dp_over_n [tokens, R·M] (a token's R·M entries are
// its columns of weight_t in order): the tokens' gradients dp_over_n · weight_t [tokens, S·D], written into
// grad_x (contiguous, so the block's rows lie as the matrix's), and the block's dweight_t = dp_over_n^T · x.
template <class T>
void project_tokens_backward(const Step<T>& st, const BlockRows<T>& xb, const T* dp_over_n, T* grad_x_block,
                             ParamGrads<T>& pg) {
  gemm<T>(grad_x_block, st.K, {dp_over_n, Layout::RowMajor, st.P}, {st.weight_t, Layout::RowMajor, st.K}, xb.tokens,
          st.P, st.K);
  gemm<T>(pg.weight_t, st.K, {dp_over_n, Layout::ColMajor, st.P}, {xb.data, Layout::RowMajor, st.K}, st.P, xb.tokens,
          st.K);
}

template <class T>
void step_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& grad_static, const Tensor& grad_scales,
                   const Tensor& grad_weight_t, const T* g, const T* y, const T* saved, const Step<T>& st,
                   int64_t tokens) {
  const bool depth = y != nullptr;
  const int64_t SF = st.S * st.F, RM = st.R * st.M, blocks = (tokens + kTokenBlock - 1) / kTokenBlock,
                psize = ParamGrads<T>::size(st);
  T* gx = grad_x.data<T>();
  T* gy = depth ? grad_y.data<T>() : nullptr;
  std::vector<T> partials(static_cast<size_t>(std::max<int64_t>(blocks, 1) * psize), T(0));
  for_token_blocks(tokens, [&](int64_t b, int64_t token0, int64_t count) {
    BlockCoefficients<T> co(st);
    std::vector<T> G(kTokenBlock * RM), dz(st.manifold ? kTokenBlock * RM : 0), dp_over_n(kTokenBlock * RM),
        through(kTokenBlock * st.R), gathered;
    Terms<T> terms;
    ParamGrads<T> pg(partials.data() + b * psize, st);
    const BlockRows<T> xb = block_rows(st, token0, count, gathered);
    if (saved) co.load(st, saved + token0 * st.R * (1 + 3 * st.M), count);
    else co.compute(st, token0, xb);
    // The output rows' gradients: width u[f2] (column f2), depth new[t, f2] (column t·F + f2, and β's S·F + f2).
    const int64_t outputs = depth ? SF : st.F;
    std::vector<int64_t> output_offset(outputs), dense_offset(st.R);  // dense: a row in grad_x's [S, D]
    for (int64_t r = 0; r < st.R; ++r) dense_offset[r] = st.offset(r, st.D);
    // output o = f2 (width) or t·F + f2 (depth) in a token's gradient
    for (int64_t o = 0; o < outputs; ++o) output_offset[o] = depth ? (o / st.F) * st.D + (o % st.F) * st.d : o * st.d;
    const int64_t grad_token = depth ? st.S * st.D : st.D;
    auto grad_row = [&](int64_t token, int64_t o) { return g + token * grad_token + output_offset[o]; };
    std::vector<const T*> rows(st.R);
    std::vector<T> products(st.R);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t token = token0 + i;
      const T* c = co.c_of(i, st);
      T* Gi = G.data() + i * RM;
      st.fill_rows(token, rows.data());
      // G = dL/dc: each coefficient's dot product of its source row with the gradient of the row it feeds.
      for (int64_t o = 0; o < outputs; ++o) {
        dots(grad_row(token, o), rows.data(), st.R, st.d, products.data());
        for (int64_t r = 0; r < st.R; ++r) Gi[r * st.M + o] = products[r];
      }
      if (depth) {
        const T* yt = y + token * st.D;
        for (int64_t r = 0; r < st.R; ++r)  // r = row (t, f1): β[r, f2] weighs y[f1] into new[t, f2]
          for (int64_t f2 = 0; f2 < st.F; ++f2) {
            if (st.diagonal_beta && f2 != st.frac_of(r)) continue;  // its one β column weighs y[f1] into new[t, f1]
            Gi[r * st.M + SF + (st.diagonal_beta ? 0 : f2)] =
                dot(yt + st.frac_of(r) * st.d, grad_row(token, st.stream_of(r) * st.F + f2), st.d);
          }
        for (int64_t f1 = 0; f1 < st.F; ++f1) {  // dy[f1] = Σ_{t, f2} β[row (t, f1), f2] dnew[t, f2]
          terms.clear();
          for (int64_t t = 0; t < st.S; ++t)
            for (int64_t f2 = 0; f2 < st.F; ++f2) {
              if (st.diagonal_beta && f2 != f1) continue;
              terms.add(c[st.row_of(t, f1) * st.M + SF + (st.diagonal_beta ? 0 : f2)], grad_row(token, t * st.F + f2));
            }
          terms.write(gy + token * st.D + f1 * st.d, st.d);
        }
      }
    }
    if (st.manifold) co.manifold_backward(st, G.data(), dz.data());
    for (int64_t i = 0; i < count; ++i)
      coefficient_chain(st, co, i, G.data() + i * RM, st.manifold ? dz.data() + i * RM : nullptr, pg,
                        dp_over_n.data() + i * RM, through.data() + i * st.R);
    // dx_r = Σ_o c[r, o] d(row o) + Σ_j dp_over_n[r, j] W_t[j] − through_r x_r and dW_t[j] += Σ_r dp_over_n[r, j]
    // x_r, token by token; token_projection's projection terms are two GEMMs over the block first.
    if (st.token_projection) project_tokens_backward(st, xb, dp_over_n.data(), gx + token0 * st.S * st.D, pg);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t token = token0 + i;
      const T *c = co.c_of(i, st), *dpn = dp_over_n.data() + i * RM;
      st.fill_rows(token, rows.data());
      T* gxt = gx + token * st.S * st.D;
      for (int64_t r = 0; r < st.R; ++r) {
        terms.clear();
        for (int64_t o = 0; o < outputs; ++o) terms.add(c[r * st.M + o], grad_row(token, o));
        if (!st.token_projection)
          for (int64_t j = 0; j < st.M; ++j) terms.add(dpn[r * st.M + j], st.weight_t + j * st.d);
        terms.add(-through[i * st.R + r], rows[r]);
        terms.write(gxt + dense_offset[r], st.d, /*accumulate=*/st.token_projection);
      }
      if (st.token_projection) continue;
      for (int64_t j = 0; j < st.M; ++j) {
        terms.clear();
        for (int64_t r = 0; r < st.R; ++r) terms.add(dpn[r * st.M + j], rows[r]);
        terms.write(pg.weight_t + j * st.d, st.d, /*accumulate=*/true);
      }
    }
  });
  // The blocks' partial sums, added in block order.
  std::vector<T> total(static_cast<size_t>(psize), T(0));
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t i = 0; i < psize; ++i) total[i] += partials[b * psize + i];
  ParamGrads<T> sum(total.data(), st);
  std::copy(sum.weight_t, sum.weight_t + st.P * st.K, grad_weight_t.data<T>());
  std::copy(sum.statics, sum.statics + st.R * st.M, grad_static.data<T>());
  std::copy(sum.scales, sum.scales + st.M, grad_scales.data<T>());
}
}  // namespace

void hc_width_forward(const Tensor& out, const Tensor& saved, const Tensor& x, const Tensor& static_weights,
                      const Tensor& weight_t, const Tensor& scales, HcStep step) {
  dispatch_floating("hc_width", x.dtype(), [&]<class T>() {
    const Step<T> st(x, static_weights, weight_t, scales, step, /*is_depth=*/false);
    width_forward<T>(out, saved.defined() ? saved.data<T>() : nullptr, st, x.shape()[0] * x.shape()[1]);
  });
}

void hc_depth_forward(const Tensor& out, const Tensor& saved, const Tensor& x, const Tensor& y,
                      const Tensor& static_weights, const Tensor& weight_t, const Tensor& scales, HcStep step) {
  dispatch_floating("hc_depth", x.dtype(), [&]<class T>() {
    const Step<T> st(x, static_weights, weight_t, scales, step, /*is_depth=*/true);
    depth_forward<T>(out, saved.defined() ? saved.data<T>() : nullptr, y.data<T>(), st, x.shape()[0] * x.shape()[1]);
  });
}

void hc_step_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& grad_static, const Tensor& grad_scales,
                      const Tensor& grad_weight_t, const Tensor& grad_out, const Tensor& x, const Tensor& y,
                      const Tensor& saved, const Tensor& static_weights, const Tensor& weight_t, const Tensor& scales,
                      HcStep step) {
  dispatch_floating("hc_step_backward", x.dtype(), [&]<class T>() {
    const Step<T> st(x, static_weights, weight_t, scales, step, /*is_depth=*/y.defined());
    step_backward<T>(grad_x, grad_y, grad_static, grad_scales, grad_weight_t, grad_out.data<T>(),
                     y.defined() ? y.data<T>() : nullptr, saved.defined() ? saved.data<T>() : nullptr, st,
                     x.shape()[0] * x.shape()[1]);
  });
}

}  // namespace hcgrad::cpu
