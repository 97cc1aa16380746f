// stream_mix: the stream-mixing step of the hyper-connection modules as one fused op.
//
//   out[..., k, d] = sum_s weights[..., s, k] * x[..., s, d]      (= matmul(weights^T, x))
//
// weights [..., S, K] hold one small mixing matrix per token (S, K ~ 4); x [..., S, D] holds the token's S
// streams. A batched GEMM spends most of its time on bookkeeping for thousands of 4x4 @ 4xD products, so
// the kernels do the whole batch in one pass instead. weights' leading dims broadcast to x's (static
// weights [S, K] against x [B, N, S, D]); x's leading dims are the output's.
//
// stream_mix_add(weights, x, extra_weights, extra_x) adds a second mix of the same output shape in the same
// kernel pass: the connections' residual merge, H_res^T x + H_post^T y with the branch output y as an extra
// "stream" (mHC eq. 3), without writing the mixed residuals out first.
//
// Backward, with g = dL/dout [..., K, D] (each pair alike, both in one kernel pass over g):
//   grad_x[..., s, d]       = sum_k weights[..., s, k] g[..., k, d]  (= stream_mix(weights^T, g))
//   grad_weights[..., s, k] = sum_d x[..., s, d] g[..., k, d]        (then summed over broadcast dims)
#include <vector>

#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

const OpName kStreamMix{"stream_mix"};
const OpName kStreamMixAdd{"stream_mix_add"};

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

// One (weights, x) pair as the kernels take it, with what backward needs.
struct MixOperand {
  Tensor weights, x;      // as given (autograd inputs)
  Tensor w_rows, x_rows;  // contiguous [M, S, K] (broadcast materialised) and [M, S, D]
  Shape w_shape;          // [..., S, K] in x's batch shape
};

MixOperand mix_operand(const Tensor& weights, const Tensor& x) {
  const Shape lead = check_stream_mix(weights, x);
  const int64_t M = numel(lead), S = x.shape()[x.dim() - 2], D = x.shape().back(), K = weights.shape().back();
  Shape w_shape = lead;
  w_shape.insert(w_shape.end(), {S, K});
  return {weights, x, as_matrices(broadcast_view("stream_mix", weights, w_shape), M, S, K), as_matrices(x, M, S, D),
          w_shape};
}

// The gradients of one pair from g [M, K, D], both in one kernel pass: weights (in x's batch shape;
// record() sums it down to the weights' own shape) and x (x's shape).
void mix_backward(const Shape& w_shape, const Shape& x_shape, const Tensor& x_rows, const Tensor& w_rows,
                  const Tensor& g_rows, const Tensor& g, bool need_w, bool need_x, Tensor& grad_w, Tensor& grad_x) {
  if (!need_w && !need_x) return;
  const int64_t M = g_rows.shape()[0], S = x_rows.shape()[1], K = g_rows.shape()[1], D = x_rows.shape()[2];
  if (need_w) grad_w = Tensor::empty(w_shape, g.options());
  if (need_x) grad_x = Tensor::empty(x_shape, g.options());
  HC_KERNEL(stream_mix_backward, g, need_w ? as_matrices(grad_w, M, S, K) : Tensor(),
            need_x ? as_matrices(grad_x, M, S, D) : Tensor(), w_rows, x_rows, g_rows);
}

// What backward keeps of one pair.
struct SavedPair {
  Shape w_shape, x_shape;
  autograd::SavedTensor w_rows, x_rows;  // [M, S, K] (broadcast materialised) and [M, S, D]
};

// out = the sum of the pairs' mixes (one or two), in one kernel pass; one backward for all pairs.
Tensor mix(const OpName& name, const std::vector<MixOperand>& pairs) {
  const MixOperand& a = pairs[0];
  const MixOperand* b = pairs.size() > 1 ? &pairs[1] : nullptr;
  const int64_t M = a.x_rows.shape()[0], K = a.w_rows.shape()[2], D = a.x_rows.shape()[2];
  Shape out_shape(a.x.shape().begin(), a.x.shape().end() - 2);
  out_shape.insert(out_shape.end(), {K, D});
  Tensor out = Tensor::empty(out_shape, a.x.options());
  if (b)
    HC_KERNEL(stream_mix_add, out, as_matrices(out, M, K, D), a.w_rows, a.x_rows, b->w_rows, b->x_rows);
  else
    HC_KERNEL(stream_mix, out, as_matrices(out, M, K, D), a.w_rows, a.x_rows);
  TensorList inputs;
  std::vector<SavedPair> saved;
  for (const MixOperand& pair : pairs) {
    inputs.insert(inputs.end(), {pair.weights, pair.x});
    saved.push_back({pair.w_shape, pair.x.shape(), save(pair.w_rows, name), save(pair.x_rows, name)});
  }
  return record(name, out, inputs, [saved, M, K, D](const Tensor& g, const Needs& need) {
    TensorList grads(2 * saved.size());
    const Tensor g_rows = as_matrices(g, M, K, D);
    for (size_t i = 0; i < saved.size(); ++i)
      mix_backward(saved[i].w_shape, saved[i].x_shape, saved[i].x_rows.get(), saved[i].w_rows.get(), g_rows, g,
                   need[2 * i], need[2 * i + 1], grads[2 * i], grads[2 * i + 1]);
    return grads;
  });
}

}  // namespace

Tensor stream_mix(const Tensor& weights, const Tensor& x) {
  return mix(kStreamMix, {mix_operand(weights, x)});
}

Tensor stream_mix_add(const Tensor& weights, const Tensor& x, const Tensor& extra_weights, const Tensor& extra_x) {
  const MixOperand a = mix_operand(weights, x), b = mix_operand(extra_weights, extra_x);
  HC_CHECK(a.x.shape().back() == b.x.shape().back() && a.weights.shape().back() == b.weights.shape().back() &&
               Shape(a.x.shape().begin(), a.x.shape().end() - 2) == Shape(b.x.shape().begin(), b.x.shape().end() - 2),
           ShapeError, "stream_mix_add: the two mixes give different shapes: weights ", weights.shape(), " with x ",
           x.shape(), ", and extra_weights ", extra_weights.shape(), " with extra_x ", extra_x.shape());
  check_same_device("stream_mix_add", x, extra_x);
  check_same_dtype("stream_mix_add", x, extra_x);
  return mix(kStreamMixAdd, {a, b});
}

}  // namespace hcgrad
