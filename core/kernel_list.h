// The kernel catalogue, declared once and included twice by core/kernels.h: inside namespace hcgrad::cpu
// (implemented in core/cpu/*.cpp) and inside namespace hcgrad::cuda (cuda/*.cu). No include guard, on
// purpose. Each kernel computes into tensors the op has already validated and allocated; the op
// (core/ops/<family>.cpp) owns checks and autograd, the kernel owns the loops.
// Unless said otherwise, tensors may have any strides, and all of them are on one device.

// ---- elementwise (core/cpu/elementwise.cpp); all operands have out's shape ----
// out = f(x) from the table in core/unary_ops.h, with the op's parameter a (ignored by most).
void unary(UnaryOp op, const Tensor& out, const Tensor& x, double a);
// grad_x = vjp(x, y, grad_y) from the same table; x or y may be undefined if unused.
void unary_backward(UnaryOp op, const Tensor& grad_x, const Tensor& x, const Tensor& y, const Tensor& grad_y,
                    double a);
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
void prod_rows(const Tensor& out, const Tensor& rows);
// grad_rows [outer, inner] = grad_out[r] * (the product of row r without element i), from prefix and suffix
// products: exact with zeros in the row, where grad_out * out / x would divide by zero.
void prod_rows_backward(const Tensor& grad_rows, const Tensor& rows, const Tensor& grad_out);
// out[j] = sum_i cols[i, j] for cols contiguous [outer, inner], out contiguous [inner]: a sum over the
// leading dims (a bias gradient), read in place instead of transposed into rows first.
void sum_columns(const Tensor& out, const Tensor& cols);

// ---- scans and sorts (core/cpu/scan.cpp); rows, out: contiguous [outer, n], along each row ----
// out[r, i] = rows[r, 0] + ... + rows[r, i]; reverse: rows[r, i] + ... + rows[r, n - 1] (cumsum's backward).
void cumsum_rows(const Tensor& out, const Tensor& rows, bool reverse);
// indices [outer, n] (int64): the positions of each row's values in ascending (descending) order, stable
// (equal values keep their order); NaN sorts above every number, as in PyTorch.
void sort_rows(const Tensor& indices, const Tensor& rows, bool descending);

// ---- matmul (core/cpu/matmul.cpp) ----
// out [B..., n, m] contiguous = a [B..., n, k] @ b [B..., k, m] (+ bias on every row, when defined);
// a and b share out's batch dims (stride 0 where broadcast). Each matrix may be row- or column-major (a
// transposed view): no copy then. The bias is a contiguous [m] vector broadcast to out's shape (stride 0
// over every other dim); it is added as each block of rows comes out of the GEMM, while it is still in
// cache (a Linear layer's bias, the GEMM's epilogue).
void matmul(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias);

// ---- stream mixing (core/cpu/stream_mix.cpp); every tensor contiguous, one small matrix per row m ----
// stream_mix:     out [M, K, D] = weights[m]^T @ x[m]:  out[m, k, d] = sum_s weights[m, s, k] * x[m, s, d]
// stream_mix_add: the same plus extra_weights[m]^T @ extra_x[m] in the same pass: the connections' residual
//                 merge, the branch output y added to the mixed streams.
// weights [M, S, K], x [M, S, D]; extra_weights [M, E, K], extra_x [M, E, D].
void stream_mix(const Tensor& out, const Tensor& weights, const Tensor& x);
void stream_mix_add(const Tensor& out, const Tensor& weights, const Tensor& x, const Tensor& extra_weights,
                    const Tensor& extra_x);
// Both gradients of one (weights, x) pair in one pass over each row's grad_out [K, D]:
//   grad_weights [M, S, K]: grad_weights[m, s, k] = sum_d x[m, s, d] * grad_out[m, k, d]
//   grad_x       [M, S, D]: grad_x[m, s, d]       = sum_k weights[m, s, k] * grad_out[m, k, d]
// Either gradient may be undefined (not wanted); weights [M, S, K], x [M, S, D], grad_out [M, K, D].
void stream_mix_backward(const Tensor& grad_weights, const Tensor& grad_x, const Tensor& weights, const Tensor& x,
                         const Tensor& grad_out);

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
// gather's and scatter_add's places: for each element p of index (contiguous int64 of shape index_shape),
// places[p] = the offset in a contiguous tensor of shape x_shape of p with its dim coordinate replaced by
// index[p]. Checks index[p] in [0, x_shape[dim]): the CPU throws (naming `op`), a GPU records it
// (cuda/index_fault.h).
void gather_places(const char* op, const Tensor& places, const Tensor& index, const Shape& index_shape,
                   const Shape& x_shape, int64_t dim);

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

// ---- scaled_rms_norm_matmul (core/cpu/scaled_rms_norm_matmul.cpp); every tensor contiguous ----
// out [R, M] = (x [R, K] @ w [K, M]) / max(norm_r, 1e-12), norm [R] = |x_r| (kept for backward).
void scaled_rms_norm_matmul_forward(const Tensor& out, const Tensor& norm, const Tensor& x, const Tensor& w);
// With g = dL/dout [R, M] and n_r = max(norm_r, 1e-12):
//   grad_x[r] = (g_r / n_r) w^T - [norm_r >= 1e-12] (g_r . out_r / n_r^2) x_r,   grad_w = sum_r x_r^T (g_r / n_r)
// grad_w is summed over fixed blocks of rows in order (deterministic).
void scaled_rms_norm_matmul_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad, const Tensor& x,
                           const Tensor& w, const Tensor& out, const Tensor& norm);

// ---- hyper-connection steps (core/cpu/hc_step.cpp): the width and depth connections, every form ----
// x [B, N, S, D]: the streams, any strides on the first three dims, D contiguous; rows r = f·S + s (mHC,
// step.manifold: s·F + f) are the fractions x[s, f·d : (f+1)·d] (d = D / F). static_weights [R, M], weight_t
// [M, d] (the projection with the norm's gain folded in, transposed) and scales [M] are contiguous; per token
// the coefficients are (mHC: the σ / Sinkhorn / 2σ forms of core/hc_step.h, rows and β's row order alike)
//   c[r, j] = static_weights[r, j] + scales[j] · φ(x_r · weight_t[j] / max(|x_r|, 1e-12))
// hc_width_forward, M = F:          out [B, N, D]    out[f2·d + k] = Σ_r c[r, f2] x_r[k]
// hc_depth_forward, M = S·F + F:    out [B, N, S, D] out[t, f2·d + k] = Σ_r c[r, t·F + f2] x_r[k]
//                                                              + Σ_f1 c[f1·S + t, S·F + f2] y[f1·d + k]
// step.diagonal_beta (the Frac paper): rows s·F + f, M = S·F + 1 and the β term is c[t·F + f2, S·F] y[f2·d + k].
// step.token_projection (mHC paper, F = 1): |x_r| is the token's norm over its S·D values and c[r, j] projects
// the whole token onto weight_t[r·M + j] ([R·M, S·D]); the depth step's Sinkhorn runs on the residual block's
// transpose.
// y [B, N, D] and out contiguous. saved [B·N, R, 1 + 3M] (contiguous) is optional: when defined the forward
// keeps each row's norm, p, a (φ(p), or mHC's z) and c there, and backward reads them instead of recomputing.
void hc_width_forward(const Tensor& out, const Tensor& saved, const Tensor& x, const Tensor& static_weights,
                      const Tensor& weight_t, const Tensor& scales, HcStep step);
void hc_depth_forward(const Tensor& out, const Tensor& saved, const Tensor& x, const Tensor& y,
                      const Tensor& static_weights, const Tensor& weight_t, const Tensor& scales, HcStep step);
// Backward of either step (depth when y is defined), from `saved` or recomputing the coefficients from x:
// grad_x [B, N, S, D] and grad_y [B, N, D] (depth) contiguous, written once with every contribution summed; the
// parameter gradients grad_static [R, M], grad_scales [M] and grad_weight_t (weight_t's shape) are summed over
// fixed blocks of tokens in order (deterministic). grad_out has out's shape, contiguous.
void hc_step_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& grad_static, const Tensor& grad_scales,
                      const Tensor& grad_weight_t, const Tensor& grad_out, const Tensor& x, const Tensor& y,
                      const Tensor& saved, const Tensor& static_weights, const Tensor& weight_t, const Tensor& scales,
                      HcStep step);

// ---- Sinkhorn (core/cpu/sinkhorn.cpp); logits, out, grads: contiguous [B, M, N], one matrix each ----
// out = the Sinkhorn-Knopp iteration of each matrix (the formulas in core/ops/sinkhorn.cpp).
void sinkhorn_forward(const Tensor& out, const Tensor& logits, int64_t iters, bool log_domain);
// grad_logits = the vector-Jacobian product through all iterations, recomputed from the logits.
void sinkhorn_backward(const Tensor& grad_logits, const Tensor& logits, const Tensor& grad_out, int64_t iters,
                       bool log_domain);

// ---- fused attention (core/cpu/scaled_dot_product_attention.cpp); q, k, v, out and grads: [B, H, T, hd] with a
// contiguous last dim and rows >= hd elements apart (views of a packed qkv or of [B, T, H, hd] memory qualify);
// lse contiguous ----
// out[b,h,i] = sum_j softmax_j(scale * q_i . k_j) v_j over the keys j (j <= i when causal);
// lse [B, H, T] = the log-sum-exp of each scaled, masked score row, kept for backward.
void scaled_dot_product_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       bool causal, double scale);
// The three input gradients, the probabilities recomputed from q, k and lse (nothing T x T is kept).
// Any of grad_q, grad_k, grad_v may be undefined (not needed).
void scaled_dot_product_attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v, const Tensor& grad_out,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        bool causal, double scale);

// ---- optimizers (core/cpu/optim.cpp); every tensor contiguous, same shape and dtype ----
// One Adam / AdamW update of one parameter, in place (torch.optim semantics, see nn/optim.cpp):
//   p *= 1 - lr * decoupled_decay;  g' = g + l2_decay * p
//   m += (1 - beta1) (g' - m);  v = beta2 v + (1 - beta2) g'^2
//   p -= step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)
void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamUpdateOptions& options);
