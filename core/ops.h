// Every op hcgrad offers, grouped as in core/ops/*.cpp (where each forward sits above its backward)
// and core/cpu/*.cpp (the kernels). Shapes use B for batch dims, N for rows, C/D for features.
// All ops check their inputs first and throw hcgrad::Error naming the op and the shapes.
// Differentiable ops record themselves for autograd; comparisons, argmax and index creation do not.
#pragma once

#include <array>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "hcgrad/core/adam_update.h"
#include "hcgrad/core/hc_step.h"
#include "hcgrad/core/random.h"
#include "hcgrad/core/tensor.h"

namespace hcgrad {

// ---- elementwise, binary: NumPy broadcasting, same dtype and device (core/ops/elementwise.cpp) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);

// ---- elementwise, unary (the formula table is core/unary_ops.h) ----
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);  // 1 / sqrt(x)
Tensor abs(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);       // exact, PyTorch's default: x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
Tensor gelu_tanh(const Tensor& x);  // tanh approximation, as GPT-2: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
// PyTorch's F.gelu(x, approximate=...): "none" is gelu, "tanh" gelu_tanh; anything else throws.
Tensor gelu(const Tensor& x, std::string_view approximate);
Tensor silu(const Tensor& x);      // x * sigmoid(x)
Tensor softplus(const Tensor& x);  // log(1 + e^x), computed without overflow
Tensor softplus(const Tensor& x, double beta);  // log(1 + e^(beta x)) / beta
Tensor leaky_relu(const Tensor& x);  // negative_slope 0.01, as PyTorch
Tensor leaky_relu(const Tensor& x, double negative_slope);  // x > 0 ? x : negative_slope * x
Tensor elu(const Tensor& x);  // alpha 1
Tensor elu(const Tensor& x, double alpha);  // x > 0 ? x : alpha (e^x - 1)
Tensor erf(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor log1p(const Tensor& x);  // log(1 + x), exact for small x
Tensor expm1(const Tensor& x);  // e^x - 1, exact for small x
Tensor pow(const Tensor& x, double exponent);
Tensor pow(const Tensor& a, const Tensor& b);  // a^b elementwise, broadcast; NaN for a < 0 and b not whole
// Limits x to [min, max]; either bound may be absent. The gradient passes where min <= x <= max.
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);

// ---- comparisons: bool results, no gradient ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// ---- selection (core/ops/elementwise.cpp) ----
// cond ? a : b, elementwise, all three broadcast together; cond is bool.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// x with `value` wherever mask (bool, broadcast to x) is true; no gradient flows to the filled places.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// The larger / smaller of a and b, elementwise, broadcast; NaN where either is NaN. The gradient goes to the
// one picked, half to each on a tie (torch.maximum's rule).
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// ---- reductions over dims (empty dims = all), keepdim keeps them as size 1 (core/ops/reduce.cpp) ----
Tensor sum(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x, const Shape& dims = {}, bool keepdim = false);  // gradient to the first maximum
Tensor min(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor prod(const Tensor& x, const Shape& dims = {}, bool keepdim = false);  // gradient exact with zeros
Tensor logsumexp(const Tensor& x, const Shape& dims, bool keepdim = false);  // log(sum(exp(x))), stable
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);          // int64, no gradient
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);          // the first minimum's index
// Variance over dims: sum((x - mean)^2) / (N - correction), N the elements reduced (correction 1: the unbiased
// estimate, 0: the population's); N <= correction gives inf or nan, as torch.var. std = sqrt(var); spell it
// hcgrad::std, since next to `using namespace hcgrad` a bare std(...) also names namespace std.
Tensor var(const Tensor& x, const Shape& dims = {}, double correction = 1.0, bool keepdim = false);
Tensor std(const Tensor& x, const Shape& dims = {}, double correction = 1.0, bool keepdim = false);
// Sums a broadcast gradient back down to `shape` (the reverse of expand).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- scans and sorts along one dim (core/ops/scan.cpp) ----
// The running sum along dim: out[.., i, ..] = x[.., 0, ..] + ... + x[.., i, ..] (torch.cumsum).
Tensor cumsum(const Tensor& x, int64_t dim);
// The positions that sort x along dim (int64, no gradient): stable, NaN above every number (torch.argsort
// with stable=True).
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
// {values, indices} as torch.sort(stable=True): values = gather(x, dim, indices), differentiable.
std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim = -1, bool descending = false);
// {values, indices} of the k largest (smallest) along dim, in that order; ties keep their order.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);

// ---- linear algebra (core/ops/matmul.cpp) ----
// [..., n, k] @ [..., k, m] -> [..., n, m], batch dims broadcast; 1-d operands act as a row / column.
Tensor matmul(const Tensor& a, const Tensor& b);
// x [..., in] @ weight [out, in]^T + bias [out] -> [..., out] (torch.nn.functional.linear); bias may be
// undefined. The bias is added inside the GEMM's row blocks, not in a pass of its own.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- stream mixing, the hyper-connection modules' per-token mixes (core/ops/stream_mix.cpp) ----
// weights [..., S, K], x [..., S, D] -> [..., K, D]: out[..., k, d] = sum_s weights[..., s, k] x[..., s, d],
// i.e. matmul(weights^T, x) as one fused kernel. weights' leading dims broadcast to x's (e.g. static
// weights [S, K] against x [B, N, S, D]); x's leading dims are the output's.
Tensor stream_mix(const Tensor& weights, const Tensor& x);
// stream_mix(weights, x) + stream_mix(extra_weights, extra_x) in one pass (both give [..., K, D]): the
// connections' residual merge, the mixed streams plus the branch output weighted per stream.
Tensor stream_mix_add(const Tensor& weights, const Tensor& x, const Tensor& extra_weights, const Tensor& extra_x);

// ---- hyper-connection steps, the width and depth connections as one op each (core/ops/hc_step.cpp) ----
// streams x [B, N, S, D] (rows r = f·S + s, or s·F + f with step.manifold: fraction f of stream s, width
// d = D / F), gamma [d] the norm's gain. Per token the coefficients are c = static_weights + scales ⊙ φ(x̂ weight),
// x̂_r = x_r / max(|x_r|, 1e-12) · √d · (1 + gamma), φ = tanh or identity (the HC paper's eq. 6-9,
// nn/hyper_connections.h); with step.manifold (mHC, nn/mhc.h) c = σ(z) in the width step and Sinkhorn(z) for the
// depth step's S·F residual columns, 2σ(z) for its β, z = static_weights + scales ⊙ (x̂ weight):
// hc_width: static_weights [R, F], weight [d, F], scales [F] -> the branch input [B, N, D],
//   u[f2] = Σ_r c[r, f2] x_r.
// hc_depth: static_weights [R, S·F + F], weight [d, S·F + F], scales [S·F + F], y [B, N, D] -> [B, N, S, D],
//   new[t, f2] = Σ_r c[r, t·F + f2] x_r + Σ_f1 c[f1·S + t, S·F + f2] y[f1]   (the mixed streams plus β·y).
// With step.token_projection (the mHC paper, nn/mhc_paper.h; F = 1) one norm covers the token's S·D values:
// gamma [S·D], and each coefficient c[r, j] has its own projection column r·M + j of weight [S·D, R·M].
// With step.diagonal_beta (the Frac paper, nn/frac_paper.h) rows are s·F + f and hc_depth's β is one column:
// static_weights [R, S·F + 1], new[t, f2] = Σ_r c[r, t·F + f2] x_r + c[t·F + f2, S·F] y[f2].
// By default neither saves more than its inputs: backward recomputes the norms and coefficients from the streams.
Tensor hc_width(const Tensor& x, const Tensor& gamma, const Tensor& static_weights, const Tensor& weight,
                const Tensor& scales, HcStep step);
Tensor hc_depth(const Tensor& x, const Tensor& y, const Tensor& gamma, const Tensor& static_weights,
                const Tensor& weight, const Tensor& scales, HcStep step);

// ---- softmax over one dim (core/ops/softmax.cpp) ----
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// ---- fused attention (core/ops/scaled_dot_product_attention.cpp) ----
// q, k, v [B, H, T, hd] (float32 or float64, one shape, dtype and device) -> [B, H, T, hd]:
//   softmax(q k^T * scale, keys j > i masked out when causal) v,   scale defaulting to 1 / sqrt(hd).
// One kernel each way; backward recomputes the probabilities, so nothing of size T x T is kept.
// The output is a [B, H, T, hd] view of [B, T, H, hd] memory, so putting the heads side by side again
// (permute(0, 2, 1, 3).reshape(B, T, H·hd)) costs no copy.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true,
                                    std::optional<double> scale = std::nullopt);
// The same op on one packed projection, as Linear(d, 3d) makes it: qkv [B, T, 3·H·hd] = [q | k | v], each
// H heads of hd side by side -> [B, T, H·hd], heads side by side. No copy of q, k, v or of the output, and
// backward writes the gradient of qkv in one pass.
Tensor scaled_dot_product_attention(const Tensor& qkv, int64_t heads, bool causal = true,
                                    std::optional<double> scale = std::nullopt);

// torch.nn.functional.scaled_dot_product_attention's full form: q [..., Tq, E], k [..., Tk, E], v [..., Tk, Ev]
// (leading dims broadcast) -> [..., Tq, Ev], with an optional mask and dropout on the attention weights:
//   P = softmax(q k^T * scale + M),  M = the additive mask, or 0 / -inf from a bool mask (true: may attend),
//       or the causal mask (key j <= query i); a row that may attend to nothing gets weights 0, not NaN
//   out = dropout(P, dropout_p) v
// It forms the [..., Tq, Tk] weights (matmul, softmax, matmul: their gradients are those ops'); with no mask
// and no dropout on [B, H, T, hd] heads it is the fused kernel above instead.
struct AttentionOptions {
  Tensor attn_mask = {};           // bool or q's dtype, broadcastable to [..., Tq, Tk]; undefined: none
  double dropout_p = 0.0;          // in [0, 1): each weight zeroed with this probability, the rest scaled up
  Generator* generator = nullptr;  // draws the dropout mask (default_generator() when null)
  bool is_causal = false;          // PyTorch's default; not together with attn_mask
  std::optional<double> scale = {};  // default 1 / sqrt(E)
};
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options);

// ---- joining and splitting (core/ops/join.cpp) ----
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);  // the last piece may be shorter
std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);
// Built from cat and narrow, so their gradients are cat's and narrow's:
// x rolled along each dims[i] by shifts[i] (elements leaving one end come in at the other); with dims
// empty, x flattened and rolled by the one shift, then reshaped back (torch.roll).
Tensor roll(const Tensor& x, const Shape& shifts, const Shape& dims = {});
// x tiled repeats[i] times along dim i; repeats may be longer than x.dim(), adding leading dims
// (torch.Tensor.repeat).
Tensor repeat(const Tensor& x, const Shape& repeats);
// Constant padding as torch.nn.functional.pad: pads = (left, right) of the last dim, then of the one before,
// ...; a negative pad crops.
Tensor pad(const Tensor& x, const Shape& pads, double value = 0.0);

// ---- gathering (core/ops/index.cpp) ----
// out.size(dim) == index.numel(); out[.., i, ..] = x[.., index[i], ..]. Backward scatter-adds.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// Rows of weight [V, D] picked by int64 ids of any shape -> [*ids.shape, D]. Backward scatter-adds rows.
Tensor embedding(const Tensor& ids, const Tensor& weight);
// torch.gather: index int64 of x's rank, index.size(d) <= x.size(d) for d != dim -> index's shape,
// out[p] = x[p with dim replaced by index[p]]. A gather from the flattened x (index_select), so backward
// scatter-adds.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// torch.scatter_add (not in place): x + src's values added at the places gather would read, repeats summed;
// src holds at least index's shape (its first index.size(d) along each d are used). d out/d src is gather.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// Built from index_select and masked_fill, so their gradients are those ops':
// x with the order of each of `dims` reversed (torch.flip).
Tensor flip(const Tensor& x, const Shape& dims);
// The lower / upper triangle of the last two dims (below / above `diagonal`, 0 the main one), the rest zero;
// batch dims in front.
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);

// ---- fused neural-network ops (core/ops/loss.cpp, core/ops/norm.cpp) ----
enum class Reduction { None, Mean, Sum };
struct CrossEntropyOptions {
  int64_t ignore_index = -100;            // targets equal to it contribute no loss and no gradient
  Reduction reduction = Reduction::Mean;  // mean over the targets that are not ignored
};
// logits [N, C], targets int64 [N] -> scalar (or [N] with Reduction::None). Computes
// logsumexp(logits[n]) - logits[n, target[n]] in one pass; never forms softmax in the forward.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, CrossEntropyOptions options = {});
// log_probs [N, C] (e.g. log_softmax's), targets int64 [N] -> -log_probs[n, targets[n]], reduced; the same
// options as cross_entropy, and cross_entropy(x, t) == nll_loss(log_softmax(x, 1), t).
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, CrossEntropyOptions options = {});
// mean (or sum, or none) of (input - target)^2; input and target of one shape.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
// logits and target (probabilities in [0, 1]) of one shape -> -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))),
// computed as softplus(x) - x t, stable for any logit.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction reduction = Reduction::Mean);
// Normalises over the trailing `normalized_shape` dims; weight and bias have that shape (or are undefined).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);
// torch's group_norm: x [N, C, *] in num_groups groups of C / num_groups channels, each group of each sample
// normalised over its channels and positions (layer_norm over [N, groups, the rest], whose kernels it runs),
// then weight [C] and bias [C] (either may be undefined) per channel.
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);
// x / sqrt(mean(x^2) + eps) * weight. eps defaults to the dtype's machine epsilon, as torch.rms_norm.
Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                std::optional<double> eps = std::nullopt);
// The hyper-connections' norm + coefficient projection in one op: x [..., K], gamma [K], weight [K, M] ->
// [..., M] = (x / max(|x|, 1e-12) * sqrt(K) * (1 + gamma)) @ weight (the library's RMSNorm, then the
// projection). Computed as the mHC paper does: the GEMM first, the division by the norm on its small result
// (core/ops/scaled_rms_norm_matmul.cpp).
Tensor scaled_rms_norm_matmul(const Tensor& x, const Tensor& gamma, const Tensor& weight);

// ---- convolution and pooling, written with index_select and matmul (core/ops/conv.cpp) ----
// torch.nn.functional's conv2d: x [N, C, H, W], weight [O, C / groups, kh, kw], bias [O] or undefined ->
// [N, O, out_h, out_w], out = (H + 2 padding - dilation (kh - 1) - 1) / stride + 1 (and the same for W).
struct Conv2dOptions {
  std::array<int64_t, 2> stride = {1, 1};
  std::array<int64_t, 2> padding = {0, 0};  // zeros on both sides
  std::array<int64_t, 2> dilation = {1, 1};
  int64_t groups = 1;
};
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, Conv2dOptions options = {});
// conv1d: x [N, C, L], weight [O, C / groups, k]: conv2d on a height of 1.
struct Conv1dOptions {
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
};
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, Conv1dOptions options = {});
// Square windows over x [N, C, H, W]; stride defaults to the kernel size, padding (at most half the kernel)
// is -inf for max and zeros, counted in the mean, for avg (torch's count_include_pad).
Tensor max_pool2d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride = std::nullopt,
                  int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride = std::nullopt,
                  int64_t padding = 0);

// ---- Sinkhorn-Knopp, for mHC's residual-mixing matrix (core/ops/sinkhorn.cpp) ----
// Linear: exp(logits - column max), then `iters` times: divide every column by its sum, then every row.
// Log: the same in log space, `iters` times log_softmax over dim -2 then dim -1, and exp at the end.
enum class SinkhornDomain { Linear, Log };
// logits [..., M, N] (any batch dims; M != N allowed) -> same shape, rows summing to 1, columns near M / N
// (1 when square). float32 or float64, computed in that dtype.
// iters >= 1. One fused op: backward recomputes the iterations and differentiates through all of them.
Tensor sinkhorn(const Tensor& logits, int64_t iters, SinkhornDomain domain = SinkhornDomain::Linear);

// ---- optimizer updates, in place and outside autograd (core/ops/optim.cpp) ----
// One Adam / AdamW step of param [any shape] with its gradient and moment buffers (same shape, dtype and
// device, contiguous), torch.optim semantics:
//   p *= 1 - lr * decoupled_decay;  g' = g + l2_decay * p
//   m += (1 - beta1) (g' - m);  v = beta2 v + (1 - beta2) g'^2;  p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const AdamUpdateOptions& options);

// ---- views and copies: the free-function spelling of the Tensor methods (core/ops/view.cpp) ----
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const Shape& dims);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
// Python-style x[start:end:step] along dim (step > 0; bounds clamped, negative ones count from the end).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor contiguous(const Tensor& x);

// Returns x viewed with the given shape, strides (in elements) and offset; no checks, no autograd.
// The building block of every view; ops use it on tensors they have already validated.
Tensor as_strided(const Tensor& x, const Shape& shape, const Strides& strides, int64_t offset);
// x's values in a contiguous tensor: x itself when already contiguous, else a copy; no autograd.
Tensor as_contiguous(const Tensor& x);
// x viewed as `shape` by NumPy broadcasting (stride 0 on repeated dims); no autograd.
Tensor broadcast_view(const char* op, const Tensor& x, const Shape& shape);

// ---- checks shared by the ops ----
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
void check_floating(const char* op, const Tensor& x);

}  // namespace hcgrad
