// sinkhorn: projects logits [..., M, N] toward a doubly stochastic matrix (Sinkhorn-Knopp), as mHC does
// for its residual-mixing matrix H_res. One fused op: the batch dims are flattened to [B, M, N] and the
// kernel (core/cpu/sinkhorn.cpp) runs all the iterations of one matrix at once.
//
//   Linear: A = exp(L - max_i L[i, j]);  repeat iters:  A /= max(colsum |A|, 1e-12);  A /= max(rowsum |A|, 1e-12)
//   Log:    repeat iters:  L = log_softmax(L, dim -2);  L = log_softmax(L, dim -1);  return exp(L)
// Both end on a row normalisation, so rows sum to 1 (to rounding) and columns only approximately.
//
// Backward: the exact vector-Jacobian product of the unrolled loop, half-step by half-step in reverse
// (y = one half-step's result, g = dL/dy; shown for a column step, rows alike):
//   linear  y = x / c, c_j = max(sum_i x_ij, 1e-12):  dx_ij = (g_ij - sum_k g_kj y_kj) / c_j  (g_ij / c_j if clamped)
//   log     y = log_softmax_i(x):                       dx_ij = g_ij - exp(y_ij) sum_k g_kj
// then through the first exp (linear; the column max is a constant) or the last one (log).
// Memory: like the mHC paper's kernel, only the input logits are saved; backward recomputes the
// 2 * iters iterates of each matrix (cheap: they are small) instead of storing them per call.
// Saving the output as well would buy nothing, since the recompute reproduces it exactly.
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

const OpName kSinkhorn{"sinkhorn"};

// t's values as contiguous [B, M, N], B the product of the batch dims; no autograd.
Tensor as_matrices(const Tensor& t) {
  Tensor dense = as_contiguous(t);
  const int64_t M = t.size(-2), N = t.size(-1);
  const int64_t B = M * N == 0 ? 0 : t.numel() / (M * N);
  return as_strided(dense, {B, M, N}, {M * N, N, 1}, dense.offset());
}

}  // namespace

Tensor sinkhorn(const Tensor& logits, int64_t iters, SinkhornDomain domain) {
  check_floating("sinkhorn", logits);
  HC_CHECK(logits.dim() >= 2, ShapeError, "sinkhorn: expected logits of shape [..., M, N] (at least 2 dims), got ",
           logits.shape());
  HC_CHECK(iters >= 1, Error, "sinkhorn: iters must be >= 1, got ", iters, " for logits ", logits.shape(),
           " (iters = 0 is refused: the reference's versions disagree on it, exp(L - column max) or L unchanged, "
           "and neither is normalised)");
  const bool log_domain = domain == SinkhornDomain::Log;
  Tensor matrices = as_matrices(logits);
  Tensor out = Tensor::empty(matrices.shape(), logits.options());
  HC_KERNEL(sinkhorn_forward, out, out, matrices, iters, log_domain);
  const Shape shape = logits.shape();
  return record(kSinkhorn, as_strided(out, shape, contiguous_strides(shape), 0), {logits},
                [saved = save(matrices, kSinkhorn), iters, log_domain, shape](const Tensor& g, const Needs&) {
                  Tensor x = saved.get();
                  Tensor grad = Tensor::empty(x.shape(), g.options());
                  HC_KERNEL(sinkhorn_backward, grad, grad, x, as_matrices(g), iters, log_domain);
                  return TensorList{as_strided(grad, shape, contiguous_strides(shape), 0)};
                });
}

}  // namespace hcgrad
