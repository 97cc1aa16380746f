// Fused scaled dot-product attention on the CPU: one task per (batch, head), single-threaded GEMMs inside it
// (core/cpu/gemm.h: oneDNN's sgemm for float32, Eigen otherwise; Eigen's arrays for the softmax rows).
//
// Each head is a row-major [T, hd] matrix of q, k, v. A task forms that head's [T, T] scores in its own
// scratch, so nothing T x T outlives the call (backward recomputes the probabilities from q, k and lse).
// When causal, the products are still full [T, T] GEMMs with the masked upper triangle written as zeros:
// at T = 128 Eigen's triangular products ran slower than full ones doing twice the flops.
#include <algorithm>
#include <cmath>

#include <Eigen/Core>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/gemm.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"

namespace hcgrad::cpu {

namespace {

template <class Scalar>
using RowMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Scalar>
using HeadMap = Eigen::Map<const RowMatrix<Scalar>, Eigen::Unaligned, Eigen::OuterStride<>>;  // one head [T, hd]

template <class Scalar>
using RowArray = Eigen::Map<Eigen::Array<Scalar, 1, Eigen::Dynamic>>;  // one row of scores, elementwise

// One (batch, head) slice of a [B, H, T, hd] tensor whose last dim is contiguous: a [T, hd] matrix with its
// rows `ld` apart (hd for a contiguous tensor, 3·H·hd for a head of a packed qkv projection).
template <class Scalar>
struct Head {
  const Scalar* data;
  int64_t ld;
  HeadMap<Scalar> map(int64_t T, int64_t hd) const { return HeadMap<Scalar>(data, T, hd, Eigen::OuterStride<>(ld)); }
};

template <class Scalar>
struct Heads {
  int64_t H;  // heads per batch entry: head index h = b·H + h_b
  // Where head h of t starts.
  Scalar* start(const Tensor& t, int64_t h) const {
    return t.data<Scalar>() + (h / H) * t.strides()[0] + (h % H) * t.strides()[1];
  }
  Head<Scalar> of(const Tensor& t, int64_t h) const { return {start(t, h), t.strides()[2]}; }
  // Where a gradient's head starts, or null when the gradient is not wanted (undefined); rows strides()[2] apart.
  Scalar* writable(const Tensor& t, int64_t h) const { return t.defined() ? start(t, h) : nullptr; }
};

// Row-major [rows, cols] matrices as GEMM operands, as they are (row) or transposed (col: the transpose of a
// row-major [rows, cols] matrix is a column-major [cols, rows] one with the same leading dimension).
template <class Scalar>
ConstMatrix<Scalar> row(const Scalar* data, int64_t cols) { return {data, Layout::RowMajor, cols}; }
template <class Scalar>
ConstMatrix<Scalar> transposed(const Scalar* data, int64_t cols) { return {data, Layout::ColMajor, cols}; }

// scores [T, T] = (q * scale) k^T, every entry (the caller masks).
template <class Scalar>
void attention_scores(RowMatrix<Scalar>& scores, RowMatrix<Scalar>& q_scaled, Head<Scalar> q, Head<Scalar> k,
                      Scalar scale) {
  const int64_t T = q_scaled.rows(), hd = q_scaled.cols();
  q_scaled.noalias() = q.map(T, hd) * scale;  // scaling the [T, hd] factor is cheaper than the [T, T] product
  gemm<Scalar>(scores.data(), T, row(q_scaled.data(), hd), transposed(k.data, k.ld), T, hd, T);
}

// Keys row i may attend to: [0, keys) with keys = i + 1 when causal, else T.
inline int64_t keys_of_row(int64_t i, int64_t T, bool causal) { return causal ? i + 1 : T; }

// Zeroes the masked keys of row i of a [T, T] matrix (nothing unless causal).
template <class Scalar>
void zero_masked(Scalar* matrix, int64_t i, int64_t T, bool causal) {
  std::fill(matrix + i * T + keys_of_row(i, T, causal), matrix + (i + 1) * T, Scalar(0));
}

}  // namespace

// Per head: S = scale q k^T; each row's softmax over its visible keys turns S into P in place
// (lse_i = max + log(sum of exp)); out = P v.
void scaled_dot_product_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       bool causal, double scale) {
  const int64_t heads = q.shape()[0] * q.shape()[1], T = q.shape()[2], hd = q.shape()[3];
  dispatch_floating("scaled_dot_product_attention", q.dtype(), [&]<class Scalar>() {
    const Heads<Scalar> head_of{q.shape()[1]};
    Scalar* lse_all = lse.data<Scalar>();
    parallel_for(0, heads, grain_for(T * T * hd), [&](int64_t h0, int64_t h1) {
      RowMatrix<Scalar> P(T, T), q_scaled(T, hd);  // this task's scratch, reused for each of its heads
      for (int64_t h = h0; h < h1; ++h) {
        attention_scores<Scalar>(P, q_scaled, head_of.of(q, h), head_of.of(k, h), Scalar(scale));
        Scalar* row_lse = lse_all + h * T;
        for (int64_t i = 0; i < T; ++i) {
          RowArray<Scalar> p(P.data() + i * T, keys_of_row(i, T, causal));
          const Scalar m = p.maxCoeff();
          p = (p - m).exp();  // Eigen's vectorised exp: a scalar std::exp per score was most of the time
          const Scalar sum = p.sum();
          p *= Scalar(1) / sum;
          zero_masked(P.data(), i, T, causal);
          row_lse[i] = m + std::log(sum);
        }
        const Head<Scalar> vh = head_of.of(v, h);
        gemm<Scalar>(head_of.writable(out, h), out.strides()[2], row(P.data(), T), row(vh.data, vh.ld), T, T, hd);
      }
    });
  });
}

// Per head: P = exp(scale q k^T - lse) recomputed; dv = P^T dout; dP = dout v^T;
// dS = P * (dP - D) with D_i = dout_i . out_i; dq = scale dS k; dk = scale dS^T q.
void scaled_dot_product_attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v, const Tensor& grad_out,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        bool causal, double scale) {
  const int64_t heads = q.shape()[0] * q.shape()[1], T = q.shape()[2], hd = q.shape()[3];
  dispatch_floating("scaled_dot_product_attention_backward", q.dtype(), [&]<class Scalar>() {
    const Heads<Scalar> head_of{q.shape()[1]};
    const Scalar* lse_all = lse.data<Scalar>();
    const bool need_scores_grad = grad_q.defined() || grad_k.defined();
    parallel_for(0, heads, grain_for(T * T * hd), [&](int64_t h0, int64_t h1) {
      RowMatrix<Scalar> P(T, T), dS(need_scores_grad ? T : 0, need_scores_grad ? T : 0), q_scaled(T, hd);
      for (int64_t h = h0; h < h1; ++h) {
        const Head<Scalar> qh = head_of.of(q, h), kh = head_of.of(k, h), dout = head_of.of(grad_out, h);
        attention_scores<Scalar>(P, q_scaled, qh, kh, Scalar(scale));
        const Scalar* row_lse = lse_all + h * T;
        for (int64_t i = 0; i < T; ++i) {
          RowArray<Scalar> p(P.data() + i * T, keys_of_row(i, T, causal));
          p = (p - row_lse[i]).exp();
          zero_masked(P.data(), i, T, causal);
        }
        if (Scalar* dv = head_of.writable(grad_v, h))
          gemm<Scalar>(dv, grad_v.strides()[2], transposed(P.data(), T), row(dout.data, dout.ld), T, T, hd);  // P^T dout
        if (!need_scores_grad) continue;

        // dP = dout v^T, then dS = scale * P * (dP - D) in place (zero where masked).
        const Head<Scalar> vh = head_of.of(v, h), oh = head_of.of(out, h);
        gemm<Scalar>(dS.data(), T, row(dout.data, dout.ld), transposed(vh.data, vh.ld), T, hd, T);
        const HeadMap<Scalar> dout_rows = dout.map(T, hd), out_rows = oh.map(T, hd);
        for (int64_t i = 0; i < T; ++i) {
          const Scalar D = dout_rows.row(i).dot(out_rows.row(i));
          const int64_t keys = keys_of_row(i, T, causal);
          RowArray<Scalar> ds(dS.data() + i * T, keys);
          ds = Scalar(scale) * RowArray<Scalar>(P.data() + i * T, keys) * (ds - D);
          zero_masked(dS.data(), i, T, causal);
        }
        if (Scalar* dq = head_of.writable(grad_q, h))
          gemm<Scalar>(dq, grad_q.strides()[2], row(dS.data(), T), row(kh.data, kh.ld), T, T, hd);
        if (Scalar* dk = head_of.writable(grad_k, h))
          gemm<Scalar>(dk, grad_k.strides()[2], transposed(dS.data(), T), row(qh.data, qh.ld), T, T, hd);  // dS^T q
      }
    });
  });
}

}  // namespace hcgrad::cpu
