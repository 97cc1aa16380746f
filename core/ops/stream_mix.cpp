// stream_mix: the stream-mixing step of the hyper-connection modules as one fused op.
//
//   out[..., k, d] = sum_s weights[..., s, k] * x[..., s, d]      (= matmul(weights^T, x))
//
// weights [..., S, K] hold one small mixing matrix per token (S, K ~ 4); x [..., S, D] holds the token's S
// streams. A batched GEMM spends most of its time on bookkeeping for thousands of 4x4 @ 4xD products, so
// the kernels do the whole batch in one pass instead. weights' leading dims broadcast to x's (static
// weights [S, K] against x [B, N, S, D]); x's leading dims are the output's.
//
// Backward, with g = dL/dout [..., K, D]:
//   grad_x[..., s, d]       = sum_k weights[..., s, k] g[..., k, d]  = stream_mix(weights^T, g)
//   grad_weights[..., s, k] = sum_d x[..., s, d] g[..., k, d]        (then summed over broadcast dims)
#include "core/ops/op.h"

namespace hcgrad {

namespace {

const OpName kStreamMix{"stream_mix"};

// The op's operands as the kernels take them: contiguous [M, rows, cols] views, no autograd. Broadcast
// weights are materialised here (M·S·K values, small next to x's M·S·D).
Tensor as_matrices(const Tensor& t, int64_t M, int64_t rows, int64_t cols) {
  Tensor dense = as_contiguous(t);
  return as_strided(dense, {M, rows, cols}, {rows * cols, cols, 1}, dense.offset());
}

// Checks the operands; returns x's leading (batch) dims, which weights' leading dims broadcast to.
Shape check_stream_mix(const Tensor& weights, const Tensor& x) {
  check_same_device("stream_mix", weights, x);
  check_same_dtype("stream_mix", weights, x);
  check_floating("stream_mix", x);
  HC_CHECK(weights.dim() >= 2 && x.dim() >= 2, ShapeError, "stream_mix: weights ", weights.shape(), " and x ",
           x.shape(), " must be [..., S, K] and [..., S, D] (at least 2-d)");
  const int64_t S = x.shape()[x.dim() - 2];
  HC_CHECK(weights.shape()[weights.dim() - 2] == S, ShapeError, "stream_mix: weights ", weights.shape(), " and x ",
           x.shape(), " disagree on the number of streams S (weights [..., S, K], x [..., S, D])");
  const Shape lead_w(weights.shape().begin(), weights.shape().end() - 2);
  const Shape lead_x(x.shape().begin(), x.shape().end() - 2);
  bool fits = lead_w.ndim() <= lead_x.ndim();
  for (int64_t i = 1; fits && i <= lead_w.ndim(); ++i) {
    const int64_t w_size = lead_w[lead_w.ndim() - i], x_size = lead_x[lead_x.ndim() - i];
    fits = w_size == x_size || w_size == 1;
  }
  HC_CHECK(fits, ShapeError, "stream_mix: the leading dims of weights ", weights.shape(),
           " do not broadcast to those of x ", x.shape(), " (x's leading dims are the output's)");
  return lead_x;
}

}  // namespace

Tensor stream_mix(const Tensor& weights, const Tensor& x) {
  const Shape lead = check_stream_mix(weights, x);
  const int64_t M = numel(lead), S = x.shape()[x.dim() - 2], D = x.shape().back(), K = weights.shape().back();
  Shape w_shape = lead, out_shape = lead;
  w_shape.insert(w_shape.end(), {S, K});
  out_shape.insert(out_shape.end(), {K, D});

  Tensor w_rows = as_matrices(broadcast_view("stream_mix", weights, w_shape), M, S, K);
  Tensor x_rows = as_matrices(x, M, S, D);
  Tensor out = Tensor::empty(out_shape, x.options());
  HC_KERNEL(stream_mix, out, as_matrices(out, M, K, D), w_rows, x_rows);

  return record(kStreamMix, out, {weights, x},
                [w = save(weights, kStreamMix), x_rows = save(x_rows, kStreamMix), w_shape, M, S, K, D](
                    const Tensor& g, const Needs& need) {
                  Tensor grad_w, grad_x;
                  if (need[0]) {
                    // In x's batch shape [..., S, K]; record() sums it down to weights' own shape.
                    grad_w = Tensor::empty(w_shape, g.options());
                    HC_KERNEL(stream_mix_backward_weights, g, as_matrices(grad_w, M, S, K), x_rows.get(),
                              as_matrices(g, M, K, D));
                  }
                  if (need[1]) grad_x = stream_mix(w.get().transpose(-1, -2), g);  // [..., S, D], x's shape
                  return TensorList{grad_w, grad_x};
                });
}

}  // namespace hcgrad
