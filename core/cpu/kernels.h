// CPU kernels. Each one computes into tensors the op has already validated and allocated; the op
// (core/ops/<family>.cpp) owns checks and autograd, the kernel (core/cpu/<family>.cpp) owns the loops.
// A CUDA kernel of the same name does the same job on the GPU.
// Unless said otherwise, tensors may have any strides.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/unary_ops.h"

namespace hcgrad {
enum class BinaryOp { Add, Sub, Mul, Div };
enum class CompareOp { Eq, Ne, Lt, Le, Gt, Ge };
}  // namespace hcgrad

namespace hcgrad::cpu {

// ---- elementwise (core/cpu/elementwise.cpp); all operands have out's shape ----
void unary(UnaryOp op, const Tensor& out, const Tensor& x);
// grad_x = vjp(x, y, grad_y) from the table in core/unary_ops.h; x or y may be undefined if unused.
void unary_backward(UnaryOp op, const Tensor& grad_x, const Tensor& x, const Tensor& y, const Tensor& grad_y);
void pow(const Tensor& out, const Tensor& x, double exponent);
void pow_backward(const Tensor& grad_x, const Tensor& x, const Tensor& grad_y, double exponent);
// Bounds are +-infinity when absent.
void clamp(const Tensor& out, const Tensor& x, double min, double max);
void clamp_backward(const Tensor& grad_x, const Tensor& x, const Tensor& grad_y, double min, double max);
void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);
// out = a + alpha * b (in-place updates: out may be a).
void add_scaled(const Tensor& out, const Tensor& a, const Tensor& b, double alpha);
void compare(CompareOp op, const Tensor& out, const Tensor& a, const Tensor& b);  // out: bool
void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);
void copy(const Tensor& out, const Tensor& src);  // converts between any dtypes
void fill(const Tensor& out, double value);

// ---- reductions (core/cpu/reduce.cpp); rows: contiguous [outer, inner], results: contiguous [outer] ----
void sum_rows(const Tensor& out, const Tensor& rows);
// values[i] = max (or min) of row i, indices[i] = its first position in the row (int64). NaN wins.
void max_rows(const Tensor& values, const Tensor& indices, const Tensor& rows, bool take_max);
void logsumexp_rows(const Tensor& out, const Tensor& rows);

// ---- matmul (core/cpu/matmul.cpp) ----
// out [B..., n, m] contiguous = a [B..., n, k] @ b [B..., k, m]; a and b share out's batch dims
// (stride 0 where broadcast). Each matrix may be row- or column-major (a transposed view): no copy then.
void matmul(const Tensor& out, const Tensor& a, const Tensor& b);

// ---- softmax (core/cpu/softmax.cpp); x, y, grads: contiguous [rows, n], over the last dim ----
void softmax(const Tensor& y, const Tensor& x, bool log);
// softmax:     grad_x = y * (grad_y - sum(grad_y * y))
// log_softmax: grad_x = grad_y - exp(y) * sum(grad_y)
void softmax_backward(const Tensor& grad_x, const Tensor& y, const Tensor& grad_y, bool log);

// ---- indexing (core/cpu/index.cpp); index: contiguous int64 [n], already range-checked ----
// out[..., i, ...] = x[..., index[i], ...] along dim.
void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index);
// out[..., index[i], ...] += src[..., i, ...] along dim (scatter-add; repeated indices accumulate).
void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);

// ---- cross-entropy (core/cpu/loss.cpp); logits contiguous [N, C], targets contiguous int64 [N] ----
// losses [N] = logsumexp(logits[n]) - logits[n, t] (0 where ignored); lse [N] kept for backward.
void cross_entropy_forward(const Tensor& losses, const Tensor& lse, const Tensor& logits, const Tensor& targets,
                           int64_t ignore_index);
// grad_logits [N, C] = (softmax(logits[n]) - onehot(t)) * grad_losses[n]; zero rows where ignored.
void cross_entropy_backward(const Tensor& grad_logits, const Tensor& logits, const Tensor& targets,
                            const Tensor& lse, const Tensor& grad_losses, int64_t ignore_index);

// ---- norms (core/cpu/norm.cpp); x, y, grads: contiguous [N, D]; weight, bias: [D] or undefined ----
// y = (x - mean) * rstd * weight + bias; mean, rstd [N] kept for backward.
void layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, double eps);
// grad_weight / grad_bias may be undefined (not needed).
void layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                         const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd);
// y = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps); rstd [N] kept for backward.
void rms_norm_forward(const Tensor& y, const Tensor& rstd, const Tensor& x, const Tensor& weight, double eps);
void rms_norm_backward(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_y, const Tensor& x,
                       const Tensor& weight, const Tensor& rstd);

// ---- Sinkhorn (core/cpu/sinkhorn.cpp); logits, out, grads: contiguous [B, M, N], one matrix each ----
// out = the Sinkhorn-Knopp iteration of each matrix (the formulas in core/ops/sinkhorn.cpp).
void sinkhorn_forward(const Tensor& out, const Tensor& logits, int64_t iters, bool log_domain);
// grad_logits = the vector-Jacobian product through all iterations, recomputed from the logits.
void sinkhorn_backward(const Tensor& grad_logits, const Tensor& logits, const Tensor& grad_out, int64_t iters,
                       bool log_domain);

}  // namespace hcgrad::cpu
