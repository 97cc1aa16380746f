// The op cases: one entry per differentiable op (and its broadcast / non-contiguous variants), each a
// function of float64 leaves. The gradcheck table (test_gradcheck.cpp) compares their backward with finite
// differences; the GPU suite (tests/gpu/test_gpu_ops.cpp) runs each on the GPU against the CPU.
//
// To add an op: write its forward and backward (core/ops/<family>.cpp), its kernels (core/cpu/, cuda/), a
// forward-value test (test_ops_forward.cpp) and one line below, including broadcast and non-contiguous
// inputs where the op takes them.
#pragma once

#include <functional>
#include <vector>

#include "helpers.h"

namespace hctest {

using TL = std::vector<Tensor>;

struct OpCase {
  const char* name;
  std::function<TL()> inputs;  // built lazily, so each case draws fresh values
  autograd::GradcheckFn f;
  autograd::GradcheckOptions options = {};
};

// The inputs' makers, short because the table below uses them on every line.
namespace op_case_inputs {
using autograd::GradcheckOptions;

inline Tensor X(const Shape& s) { return leaf(s); }                 // values in [-1, 1)
inline Tensor P(const Shape& s) { return leaf(s, 0.5, 2.0); }       // positive, away from 0
inline Tensor W(const Shape& s) { return leaf(s, -3.0, 3.0); }      // wider range (curved parts of gelu, silu)
inline Tensor L(const Shape& s) { return leaf(s, -2.0, 2.0); }      // Sinkhorn logits: away from saturation
// A leaf whose memory is not row-major: the transpose of a [cols, rows] tensor.
inline Tensor Xt(int64_t rows, int64_t cols) { return leaf({cols, rows}).detach().t().detach().requires_grad_(); }
// Where index and mask tensors made inside a case live: the GPU suite points it at the GPU while it runs a
// case there, so a case's own constants follow its inputs.
inline Device case_device = Device::cpu();
inline Tensor ids(std::vector<int64_t> v, Shape s = {}) { return from_vector(v, s).to(case_device); }

inline const GradcheckOptions kFloat32RoundTrip{.eps = 1e-3, .atol = 1e-3, .rtol = 1e-2};

}  // namespace op_case_inputs

inline const std::vector<OpCase>& op_cases() {
  using namespace op_case_inputs;
// clang-format off
  static const std::vector<OpCase> cases = {
  // ---- binary, with broadcasting and non-contiguous operands ----
  {"add",            [] { return TL{X({2, 3}), X({3})}; },            [](const TL& in) { return add(in[0], in[1]); }},
  {"add broadcast",  [] { return TL{X({2, 1, 3}), X({4, 1})}; },      [](const TL& in) { return add(in[0], in[1]); }},
  {"sub",            [] { return TL{X({2, 3}), X({2, 1})}; },         [](const TL& in) { return sub(in[0], in[1]); }},
  {"mul",            [] { return TL{X({3, 4}), X({4})}; },            [](const TL& in) { return mul(in[0], in[1]); }},
  {"mul transposed", [] { return TL{Xt(3, 4), X({3, 4})}; },          [](const TL& in) { return mul(in[0], in[1]); }},
  {"div",            [] { return TL{X({2, 3}), P({2, 3})}; },         [](const TL& in) { return div(in[0], in[1]); }},
  {"div broadcast",  [] { return TL{X({3}), P({2, 1})}; },            [](const TL& in) { return div(in[0], in[1]); }},
  {"scalar ops",     [] { return TL{X({2, 2})}; },                    [](const TL& in) { return 2.0 - in[0] * 3.0 / 4.0; }},
  // ---- unary ----
  {"neg",     [] { return TL{X({2, 3})}; },    [](const TL& in) { return neg(in[0]); }},
  {"exp",     [] { return TL{X({2, 3})}; },    [](const TL& in) { return exp(in[0]); }},
  {"log",     [] { return TL{P({2, 3})}; },    [](const TL& in) { return log(in[0]); }},
  {"sqrt",    [] { return TL{P({2, 3})}; },    [](const TL& in) { return sqrt(in[0]); }},
  {"rsqrt",   [] { return TL{P({2, 3})}; },    [](const TL& in) { return rsqrt(in[0]); }},
  {"abs",     [] { return TL{X({2, 3})}; },    [](const TL& in) { return abs(in[0]); }},
  {"tanh",    [] { return TL{X({2, 3})}; },    [](const TL& in) { return tanh(in[0]); }},
  {"sigmoid", [] { return TL{X({2, 3})}; },    [](const TL& in) { return sigmoid(in[0]); }},
  {"relu",    [] { return TL{X({2, 3})}; },    [](const TL& in) { return relu(in[0]); }},
  {"gelu",    [] { return TL{W({2, 3})}; }, [](const TL& in) { return gelu(in[0]); }},
  {"gelu_tanh", [] { return TL{W({2, 3})}; }, [](const TL& in) { return gelu_tanh(in[0]); }},
  {"silu",    [] { return TL{W({2, 3})}; }, [](const TL& in) { return silu(in[0]); }},
  {"softplus", [] { return TL{W({2, 3})}; }, [](const TL& in) { return softplus(in[0]); }},
  {"erf",     [] { return TL{W({2, 3})}; }, [](const TL& in) { return erf(in[0]); }},
  {"sin",     [] { return TL{W({2, 3})}; }, [](const TL& in) { return sin(in[0]); }},
  {"cos",     [] { return TL{W({2, 3})}; }, [](const TL& in) { return cos(in[0]); }},
  {"log1p",   [] { return TL{P({2, 3})}; }, [](const TL& in) { return log1p(in[0]); }},
  {"expm1",   [] { return TL{X({2, 3})}; }, [](const TL& in) { return expm1(in[0]); }},
  {"softplus beta", [] { return TL{W({2, 3})}; }, [](const TL& in) { return softplus(in[0], 2.5); }},
  {"leaky_relu", [] { return TL{X({2, 3})}; }, [](const TL& in) { return leaky_relu(in[0], 0.2); }},
  {"elu",     [] { return TL{X({2, 3})}; }, [](const TL& in) { return elu(in[0], 1.5); }},
  {"unary on a slice", [] { return TL{X({4, 6})}; }, [](const TL& in) { return tanh(in[0].slice(1, 1, 6, 2)); }},
  {"pow 3",   [] { return TL{X({2, 3})}; },    [](const TL& in) { return pow(in[0], 3.0); }},
  {"pow 0.5", [] { return TL{P({2, 3})}; },    [](const TL& in) { return pow(in[0], 0.5); }},
  {"pow 2",   [] { return TL{Xt(2, 3)}; },     [](const TL& in) { return pow(in[0], 2.0); }},
  {"clamp",   [] { return TL{X({3, 4})}; },    [](const TL& in) { return clamp(in[0], -0.5, 0.5); }},
  {"clamp min only", [] { return TL{X({3, 4})}; }, [](const TL& in) { return clamp(in[0], 0.0, std::nullopt); }},
  // ---- selection ----
  {"where",   [] { return TL{X({2, 3}), X({3})}; },
              [](const TL& in) { return where(gt(in[0], zeros({}, in[0].options())), in[0], in[1]); }},
  {"masked_fill", [] { return TL{X({2, 3})}; },
              [](const TL& in) { return masked_fill(in[0], from_vector(std::vector<bool>{true, false, true}).to(case_device), -5.0); }},
  // ---- reductions ----
  {"sum all",        [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return sum(in[0]); }},
  {"sum dims",       [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return sum(in[0], {0, 2}); }},
  {"sum keepdim",    [] { return TL{Xt(3, 4)}; },     [](const TL& in) { return sum(in[0], {-1}, true); }},
  {"sum leading dims", [] { return TL{X({3, 4, 5})}; }, [](const TL& in) { return sum(in[0], {0, 1}); }},
  {"sum leading keepdim", [] { return TL{X({3, 4, 5})}; }, [](const TL& in) { return sum(in[0], {0}, true); }},
  {"mean",           [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return mean(in[0], {1}); }},
  {"mean all",       [] { return TL{X({3, 2})}; },    [](const TL& in) { return mean(in[0]); }},
  {"max",            [] { return TL{X({3, 5})}; },    [](const TL& in) { return max(in[0], {1}); }},
  {"max dims",       [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return max(in[0], {0, 2}, true); }},
  {"min",            [] { return TL{X({4, 3})}; },    [](const TL& in) { return min(in[0], {0}); }},
  {"logsumexp",      [] { return TL{X({3, 4})}; },    [](const TL& in) { return logsumexp(in[0], {1}); }},
  {"logsumexp dims", [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return logsumexp(in[0], {0, 2}, true); }},
  // ---- matmul, linear ----
  {"matmul",            [] { return TL{X({3, 4}), X({4, 2})}; },       [](const TL& in) { return matmul(in[0], in[1]); }},
  {"matmul transposed", [] { return TL{Xt(3, 4), Xt(4, 2)}; },         [](const TL& in) { return matmul(in[0], in[1]); }},
  {"matmul batched",    [] { return TL{X({2, 1, 3, 4}), X({5, 4, 2})}; }, [](const TL& in) { return matmul(in[0], in[1]); }},
  {"matmul fold",       [] { return TL{X({2, 3, 4}), X({4, 5})}; },    [](const TL& in) { return matmul(in[0], in[1]); }},
  {"linear",            [] { return TL{X({2, 3, 4}), X({5, 4}), X({5})}; },
                        [](const TL& in) { return linear(in[0], in[1], in[2]); }},
  {"linear transposed input, no bias", [] { return TL{Xt(3, 4), X({2, 4})}; },
                        [](const TL& in) { return linear(in[0], in[1]); }},
  {"linear one row, strided bias", [] { return TL{X({4}), X({3, 4}), X({3, 2})}; },
                        [](const TL& in) { return linear(in[0], in[1], in[2].select(1, 1)); }},
  {"matmul vector",     [] { return TL{X({4}), X({4, 3}), X({3})}; },
                        [](const TL& in) { return matmul(matmul(in[0], in[1]), in[2]); }},
  // ---- stream mixing: batched, broadcast weights (summed back in backward), non-contiguous x ----
  {"stream_mix",                [] { return TL{X({2, 3, 4, 3}), X({2, 3, 4, 5})}; },
                                [](const TL& in) { return stream_mix(in[0], in[1]); }},
  {"stream_mix broadcast",      [] { return TL{X({4, 2}), X({2, 3, 4, 5})}; },
                                [](const TL& in) { return stream_mix(in[0], in[1]); }},
  {"stream_mix size-1 batch",   [] { return TL{X({2, 1, 3, 3}), X({2, 2, 3, 1})}; },
                                [](const TL& in) { return stream_mix(in[0], in[1]); }},
  {"stream_mix transposed x",   [] { return TL{X({3, 4}), Xt(3, 5)}; },
                                [](const TL& in) { return stream_mix(in[0], in[1]); }},
  {"stream_mix strided views",  [] { return TL{X({2, 4, 3}), X({2, 5, 3})}; },
                                [](const TL& in) { return stream_mix(in[0].transpose(-1, -2), in[1].transpose(-1, -2)); }},
  // the residual merge: streams mixed by H_res [2, 3, S=4, K=4] plus the branch output [.., E=1, D] by H_post
  {"stream_mix_add",            [] { return TL{X({2, 3, 4, 4}), X({2, 3, 4, 5}), X({2, 3, 1, 4}), X({2, 3, 1, 5})}; },
                                [](const TL& in) { return stream_mix_add(in[0], in[1], in[2], in[3]); }},
  {"stream_mix_add broadcast",  [] { return TL{X({3, 2}), X({2, 4, 3, 5}), X({2, 1, 2, 2}), X({2, 4, 2, 5})}; },
                                [](const TL& in) { return stream_mix_add(in[0], in[1], in[2], in[3]); }},
  // ---- softmax ----
  {"softmax",         [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return softmax(in[0], 1); }},
  {"softmax last",    [] { return TL{Xt(3, 5)}; },     [](const TL& in) { return softmax(in[0], -1); }},
  {"log_softmax",     [] { return TL{X({3, 4})}; },    [](const TL& in) { return log_softmax(in[0], -1); }},
  {"log_softmax dim0", [] { return TL{X({3, 4})}; },   [](const TL& in) { return log_softmax(in[0], 0); }},
  // ---- joining and splitting ----
  {"cat",   [] { return TL{X({2, 3}), X({2, 1}), Xt(2, 2)}; }, [](const TL& in) { return cat({in[0], in[1], in[2]}, 1); }},
  {"stack", [] { return TL{X({2, 3}), X({2, 3})}; },           [](const TL& in) { return stack({in[0], in[1]}, 1); }},
  {"split", [] { return TL{X({5, 2})}; },
            [](const TL& in) { auto p = split(in[0], 2, 0); return p[0] * p[1] + sum(p[2]); }},
  {"chunk", [] { return TL{X({2, 6})}; },
            [](const TL& in) { auto p = chunk(in[0], 3, 1); return p[0] - p[1] * p[2]; }},
  // ---- gathering (repeated indices accumulate) ----
  {"index_select", [] { return TL{X({3, 4})}; },
                   [](const TL& in) { return index_select(in[0], 1, ids({3, 0, 3})); }},
  {"embedding",    [] { return TL{X({5, 3})}; },
                   [](const TL& in) { return embedding(ids({1, 4, 1, 0}, {2, 2}), in[0]); }},
  // ---- fused losses and norms ----
  {"cross_entropy mean", [] { return TL{W({4, 5})}; },
                         [](const TL& in) { return cross_entropy(in[0], ids({1, 0, 4, 2})); }},
  {"cross_entropy ignore", [] { return TL{X({4, 5})}; },
                         [](const TL& in) { return cross_entropy(in[0], ids({1, -100, 4, 2})); }},
  {"cross_entropy sum",  [] { return TL{Xt(3, 4)}; },
                         [](const TL& in) { return cross_entropy(in[0], ids({3, 0, 1}), {.reduction = Reduction::Sum}); }},
  {"cross_entropy none", [] { return TL{X({3, 4})}; },
                         [](const TL& in) { return cross_entropy(in[0], ids({3, 7, 1}), {.ignore_index = 7, .reduction = Reduction::None}); }},
  {"maximum broadcast",  [] { return TL{X({2, 3}), X({3})}; }, [](const TL& in) { return maximum(in[0], in[1]); }},
  {"minimum transposed", [] { return TL{Xt(3, 4), X({3, 4})}; }, [](const TL& in) { return minimum(in[0], in[1]); }},
  {"var",                [] { return TL{X({3, 4})}; }, [](const TL& in) { return var(in[0], {1}); }},
  {"var all, correction 0", [] { return TL{X({2, 3})}; }, [](const TL& in) { return var(in[0], {}, 0.0); }},
  {"std keepdim",        [] { return TL{X({3, 4})}; }, [](const TL& in) { return hcgrad::std(in[0], {0}, 1.0, true); }},
  {"gather",             [] { return TL{X({3, 4})}; },
                         [](const TL& in) { return gather(in[0], 1, ids({0, 3, 1, 1, 2, 0}, {3, 2})); }},
  {"scatter_add",        [] { return TL{X({3, 4}), X({2, 3})}; },
                         [](const TL& in) { return scatter_add(in[0], 0, ids({2, 0, 2, 1, 2, 0}, {2, 3}), in[1]); }},
  {"scatter_add, src larger", [] { return TL{X({3, 4}), X({2, 4})}; },
                         [](const TL& in) { return scatter_add(in[0], 1, ids({3, 3, 0, 1}, {2, 2}), in[1]); }},
  {"pow tensor exponent", [] { return TL{P({2, 3}), X({3})}; }, [](const TL& in) { return pow(in[0], in[1]); }},
  {"pow tensor, base transposed", [] { return TL{leaf({2, 3}, 0.5, 2.0).detach().t().detach().requires_grad_(), X({3, 1})}; },
                         [](const TL& in) { return pow(in[0], in[1]); }},
  {"prod",               [] { return TL{X({3, 4})}; }, [](const TL& in) { return prod(in[0], {1}); }},
  {"prod all, transposed", [] { return TL{Xt(2, 3)}; }, [](const TL& in) { return prod(in[0]); }},
  {"prod keepdim",       [] { return TL{X({2, 3, 2})}; }, [](const TL& in) { return prod(in[0], {0, 2}, true); }},
  {"cumsum",             [] { return TL{X({3, 4})}; }, [](const TL& in) { return cumsum(in[0], 1); }},
  {"cumsum transposed",  [] { return TL{Xt(3, 4)}; }, [](const TL& in) { return cumsum(in[0], 0); }},
  {"sort values",        [] { return TL{X({3, 5})}; }, [](const TL& in) { return sort(in[0], 1).first; }},
  {"sort descending, dim 0", [] { return TL{Xt(4, 2)}; }, [](const TL& in) { return sort(in[0], 0, true).first; }},
  {"topk values",        [] { return TL{X({2, 6})}; }, [](const TL& in) { return topk(in[0], 3).first; }},
  {"topk smallest, dim 0", [] { return TL{X({5, 2})}; }, [](const TL& in) { return topk(in[0], 2, 0, false).first; }},
  {"attention with a bool mask", [] { return TL{X({2, 3, 4}), X({2, 5, 4}), X({2, 5, 3})}; },
                         [](const TL& in) {
                           const Tensor mask = ne(ids({1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0}, {3, 5}), ids({0}));
                           return scaled_dot_product_attention(in[0], in[1], in[2], {.attn_mask = mask});
                         }},
  {"attention with an additive mask", [] { return TL{X({1, 2, 3, 4}), X({1, 2, 3, 4}), X({1, 2, 3, 4}), X({3, 3})}; },
                         [](const TL& in) { return scaled_dot_product_attention(in[0], in[1], in[2], {.attn_mask = in[3]}); }},
  {"attention causal, Tq != Tk", [] { return TL{X({2, 2, 4}), X({2, 3, 4}), X({2, 3, 2})}; },
                         [](const TL& in) { return scaled_dot_product_attention(in[0], in[1], in[2], {.is_causal = true, .scale = 0.7}); }},
  // ---- shape ops written with other ops ----
  {"flip",               [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return flip(in[0], {0, -1}); }},
  {"tril",               [] { return TL{X({3, 4})}; }, [](const TL& in) { return tril(in[0], -1); }},
  {"triu batched",       [] { return TL{X({2, 3, 3})}; }, [](const TL& in) { return triu(in[0], 1); }},
  {"roll",               [] { return TL{X({3, 4})}; }, [](const TL& in) { return roll(in[0], {1, -5}, {0, 1}); }},
  {"roll flat",          [] { return TL{X({2, 3})}; }, [](const TL& in) { return roll(in[0], {2}); }},
  {"repeat",             [] { return TL{X({2, 3})}; }, [](const TL& in) { return repeat(in[0], {2, 1, 2}); }},
  {"pad",                [] { return TL{X({2, 3})}; }, [](const TL& in) { return pad(in[0], {1, -1, 2, 0}, 0.5); }},
  // ---- losses written with other ops ----
  {"mse_loss",           [] { return TL{X({3, 4}), X({3, 4})}; }, [](const TL& in) { return mse_loss(in[0], in[1]); }},
  {"mse_loss none",      [] { return TL{Xt(3, 4), X({3, 4})}; },
                         [](const TL& in) { return mse_loss(in[0], in[1], Reduction::None); }},
  {"nll_loss",           [] { return TL{X({4, 5})}; }, [](const TL& in) { return nll_loss(in[0], ids({1, 0, 4, 2})); }},
  {"nll_loss ignore sum", [] { return TL{X({4, 5})}; },
                         [](const TL& in) { return nll_loss(in[0], ids({1, -100, 4, 2}), {.reduction = Reduction::Sum}); }},
  {"binary_cross_entropy_with_logits", [] { return TL{W({2, 3}), leaf({2, 3}, 0.0, 1.0)}; },
                         [](const TL& in) { return binary_cross_entropy_with_logits(in[0], in[1]); }},
  {"conv2d",             [] { return TL{X({2, 4, 5, 5}), X({6, 2, 3, 3}), X({6})}; },
                         [](const TL& in) { return conv2d(in[0], in[1], in[2], {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2}); }},
  {"conv1d",             [] { return TL{X({2, 3, 7}), X({4, 3, 2})}; },
                         [](const TL& in) { return conv1d(in[0], in[1], {}, {.stride = 2, .padding = 1}); }},
  {"max_pool2d",         [] { return TL{X({1, 2, 5, 5})}; }, [](const TL& in) { return max_pool2d(in[0], 3, 2, 1); }},
  {"avg_pool2d",         [] { return TL{X({2, 1, 4, 4})}; }, [](const TL& in) { return avg_pool2d(in[0], 2); }},
  {"group_norm",         [] { return TL{X({2, 4, 3}), X({4}), X({4})}; },
                         [](const TL& in) { return group_norm(in[0], 2, in[1], in[2]); }},
  {"group_norm 4-d, no affine", [] { return TL{X({2, 6, 2, 2})}; }, [](const TL& in) { return group_norm(in[0], 3); }},
  {"layer_norm",         [] { return TL{X({3, 5}), X({5}), X({5})}; },
                         [](const TL& in) { return layer_norm(in[0], {5}, in[1], in[2]); }},
  {"layer_norm no affine", [] { return TL{X({2, 2, 3})}; },
                         [](const TL& in) { return layer_norm(in[0], {2, 3}); }},
  {"layer_norm transposed", [] { return TL{Xt(4, 3), X({3})}; },
                         [](const TL& in) { return layer_norm(in[0], {3}, in[1]); }},
  {"rms_norm",           [] { return TL{X({3, 5}), X({5})}; },
                         [](const TL& in) { return rms_norm(in[0], {5}, in[1], 1e-6); }},
  {"rms_norm no weight", [] { return TL{X({2, 4})}; },
                         [](const TL& in) { return rms_norm(in[0], {4}); }},
  {"scaled_rms_norm_matmul", [] { return TL{X({2, 3, 6}), X({6}), X({6, 4})}; },
                         [](const TL& in) { return scaled_rms_norm_matmul(in[0], in[1], in[2]); }},
  {"scaled_rms_norm_matmul strided", [] { return TL{Xt(5, 4), X({4}), Xt(4, 3)}; },
                         [](const TL& in) { return scaled_rms_norm_matmul(in[0], in[1], in[2]); }},
  // ---- hyper-connection steps: F = 2 fractions, identity φ, streams as a strided view (the library's layout) ----
  {"hc_width",          [] { return TL{X({2, 3, 2, 6}), X({3}), X({4, 2}), X({3, 2}), X({2})}; },
                        [](const TL& in) { return hc_width(in[0], in[1], in[2], in[3], in[4], {.streams = 2, .fracs = 2}); }},
  {"hc_width identity", [] { return TL{X({2, 2, 3, 4}), X({4}), X({3, 1}), X({4, 1}), X({1})}; },
                        [](const TL& in) {
                          return hc_width(in[0], in[1], in[2], in[3], in[4], {.streams = 3, .fracs = 1, .tanh = false});
                        }},
  {"hc_depth",          [] { return TL{X({2, 3, 2, 6}), X({2, 3, 6}), X({3}), X({4, 6}), X({3, 6}), X({6})}; },
                        [](const TL& in) {
                          return hc_depth(in[0], in[1], in[2], in[3], in[4], in[5], {.streams = 2, .fracs = 2});
                        }},
  {"hc_depth strided",  [] { return TL{X({2, 2, 3, 4}), X({2, 3, 4}), X({4}), X({2, 3}), X({4, 3}), X({3})}; },
                        [](const TL& in) {
                          return hc_depth(in[0].permute({0, 2, 1, 3}), in[1], in[2], in[3], in[4], in[5],
                                          {.streams = 2, .fracs = 1, .tanh = false});
                        }},
  // ---- the same ops as mHC's steps (σ, Sinkhorn in both domains, 2σ; rows s·F + f) ----
  {"hc_width mhc",      [] { return TL{X({2, 3, 2, 6}), X({3}), X({4, 2}), X({3, 2}), X({2})}; },
                        [](const TL& in) {
                          return hc_width(in[0], in[1], in[2], in[3], in[4], {.streams = 2, .fracs = 2, .manifold = true});
                        }},
  {"hc_depth mhc",      [] { return TL{X({2, 3, 2, 6}), X({2, 3, 6}), X({3}), L({4, 6}), X({3, 6}), X({6})}; },
                        [](const TL& in) {
                          return hc_depth(in[0], in[1], in[2], in[3], in[4], in[5],
                                          {.streams = 2, .fracs = 2, .manifold = true, .sinkhorn_iters = 4});
                        }},
  {"hc_depth mhc log",  [] { return TL{X({2, 3, 2, 4}), X({2, 2, 4}), X({4}), L({3, 4}), X({4, 4}), X({4})}; },
                        [](const TL& in) {
                          return hc_depth(in[0].permute({0, 2, 1, 3}), in[1], in[2], in[3], in[4], in[5],
                                          {.streams = 3, .fracs = 1, .manifold = true, .sinkhorn_iters = 3,
                                           .sinkhorn_log_domain = true});
                        }},
  {"hc_depth kept",     [] { return TL{X({2, 3, 2, 6}), X({2, 3, 6}), X({3}), X({4, 6}), X({3, 6}), X({6})}; },
                        [](const TL& in) {  // recompute = false: backward reads the forward's coefficients
                          return hc_depth(in[0], in[1], in[2], in[3], in[4], in[5],
                                          {.streams = 2, .fracs = 2, .recompute = false});
                        }},
  {"hc_width mhc kept", [] { return TL{X({2, 3, 2, 6}), X({3}), X({4, 2}), X({3, 2}), X({2})}; },
                        [](const TL& in) {
                          return hc_width(in[0], in[1], in[2], in[3], in[4],
                                          {.streams = 2, .fracs = 2, .manifold = true, .recompute = false});
                        }},
  {"hc_depth mhc kept", [] { return TL{X({2, 3, 2, 6}), X({2, 3, 6}), X({3}), L({4, 6}), X({3, 6}), X({6})}; },
                        [](const TL& in) {
                          return hc_depth(in[0], in[1], in[2], in[3], in[4], in[5],
                                          {.streams = 2, .fracs = 2, .manifold = true, .sinkhorn_iters = 4,
                                           .recompute = false});
                        }},
  // ---- the same ops as the Frac paper's steps (diagonal_beta: rows s·F + f, one β column) ----
  {"hc_width frac paper", [] { return TL{X({2, 3, 2, 6}), X({3}), X({4, 2}), X({3, 2}), X({2})}; },
                        [](const TL& in) {
                          return hc_width(in[0], in[1], in[2], in[3], in[4], {.streams = 2, .fracs = 2, .diagonal_beta = true});
                        }},
  {"hc_depth frac paper", [] { return TL{X({2, 2, 3, 6}), X({2, 3, 6}), X({3}), X({4, 5}), X({3, 5}), X({5})}; },
                        [](const TL& in) {
                          return hc_depth(in[0].permute({0, 2, 1, 3}), in[1], in[2], in[3], in[4], in[5],
                                          {.streams = 2, .fracs = 2, .diagonal_beta = true});
                        }},
  {"hc_depth frac paper kept", [] { return TL{X({2, 3, 1, 6}), X({2, 3, 6}), X({2}), X({3, 4}), X({2, 4}), X({4})}; },
                        [](const TL& in) {
                          return hc_depth(in[0], in[1], in[2], in[3], in[4], in[5],
                                          {.streams = 1, .fracs = 3, .tanh = false, .recompute = false,
                                           .diagonal_beta = true});
                        }},
  // ---- the same ops as the mHC paper's steps (token_projection: one norm and projection over the token's S·D) ----
  {"hc_width paper",    [] { return TL{X({2, 3, 2, 4}), X({8}), X({2, 1}), X({8, 2}), X({1})}; },
                        [](const TL& in) {
                          return hc_width(in[0], in[1], in[2], in[3], in[4],
                                          {.streams = 2, .manifold = true, .token_projection = true});
                        }},
  {"hc_width paper kept", [] { return TL{X({2, 3, 2, 4}), X({12}), X({3, 1}), X({12, 3}), X({1})}; },
                        [](const TL& in) {
                          return hc_width(in[0].permute({0, 2, 1, 3}), in[1], in[2], in[3], in[4],
                                          {.streams = 3, .manifold = true, .recompute = false, .token_projection = true});
                        }},
  {"hc_depth paper",    [] { return TL{X({2, 3, 2, 4}), X({2, 3, 4}), X({8}), L({2, 3}), X({8, 6}), X({3})}; },
                        [](const TL& in) {
                          return hc_depth(in[0], in[1], in[2], in[3], in[4], in[5],
                                          {.streams = 2, .manifold = true, .sinkhorn_iters = 4, .token_projection = true});
                        }},
  {"hc_depth paper log kept", [] { return TL{X({2, 3, 2, 4}), X({2, 2, 4}), X({12}), L({3, 4}), X({12, 12}), X({4})}; },
                        [](const TL& in) {
                          return hc_depth(in[0].permute({0, 2, 1, 3}), in[1], in[2], in[3], in[4], in[5],
                                          {.streams = 3, .manifold = true, .sinkhorn_iters = 3, .sinkhorn_log_domain = true,
                                           .recompute = false, .token_projection = true});
                        }},
  // ---- fused attention: causal and not, one query row (T = 1), non-contiguous head views, packed qkv ----
  {"attention causal",     [] { return TL{X({2, 2, 5, 3}), X({2, 2, 5, 3}), X({2, 2, 5, 3})}; },
                           [](const TL& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); }},
  {"attention full",       [] { return TL{X({2, 2, 5, 3}), X({2, 2, 5, 3}), X({2, 2, 5, 3})}; },
                           [](const TL& in) { return scaled_dot_product_attention(in[0], in[1], in[2], false, 0.7); }},
  {"attention one row",    [] { return TL{X({1, 2, 1, 3}), X({1, 2, 1, 3}), X({1, 2, 1, 3})}; },
                           [](const TL& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); }},
  {"attention head views", [] { return TL{X({2, 4, 3, 2}), X({2, 4, 3, 2})}; },
                           [](const TL& in) {
                             auto heads = [](const Tensor& t) { return t.permute({0, 2, 1, 3}); };  // [B, H, T, hd]
                             return scaled_dot_product_attention(heads(in[0]), heads(in[1]), heads(in[0] * in[1]));
                           }},
  {"attention packed qkv", [] { return TL{X({2, 5, 12})}; },  // 2 heads of hd 2
                           [](const TL& in) { return scaled_dot_product_attention(in[0], 2); }},
  {"attention packed qkv strided full", [] { return TL{X({2, 9, 4})}; },  // 3 heads of hd 1, transposed
                           [](const TL& in) { return scaled_dot_product_attention(in[0].transpose(1, 2), 3, false, 0.7); }},
  // ---- Sinkhorn: both domains, square and not, 1 to 20 iterations, batched and transposed inputs ----
  {"sinkhorn 1 iter",         [] { return TL{L({3, 3})}; },       [](const TL& in) { return sinkhorn(in[0], 1); }},
  {"sinkhorn 3 iters 3x5",    [] { return TL{L({3, 5})}; },       [](const TL& in) { return sinkhorn(in[0], 3); }},
  {"sinkhorn 20 iters batch", [] { return TL{L({2, 3, 4, 4})}; }, [](const TL& in) { return sinkhorn(in[0], 20); }},
  {"sinkhorn 3 iters 5x2 transposed", [] { return TL{Xt(5, 2)}; }, [](const TL& in) { return sinkhorn(in[0], 3); }},
  {"sinkhorn log 1 iter",     [] { return TL{L({4, 4})}; },
                              [](const TL& in) { return sinkhorn(in[0], 1, SinkhornDomain::Log); }},
  {"sinkhorn log 3 iters 4x2", [] { return TL{L({4, 2})}; },
                              [](const TL& in) { return sinkhorn(in[0], 3, SinkhornDomain::Log); }},
  {"sinkhorn log 20 iters batch", [] { return TL{L({3, 4, 4})}; },
                              [](const TL& in) { return sinkhorn(in[0], 20, SinkhornDomain::Log); }},
  {"sinkhorn log 3 iters 2x6", [] { return TL{L({2, 2, 6})}; },
                              [](const TL& in) { return sinkhorn(in[0], 3, SinkhornDomain::Log); }},
  // ---- views and copies ----
  {"view",       [] { return TL{X({2, 6})}; },    [](const TL& in) { return in[0].view({3, 4}) * 2.0; }},
  {"reshape",    [] { return TL{Xt(3, 4)}; },     [](const TL& in) { return in[0].reshape({-1}) * 2.0; }},
  {"permute",    [] { return TL{X({2, 3, 4}), X({4, 2, 3}).detach()}; }, [](const TL& in) { return in[0].permute({2, 0, 1}) * in[1]; }},
  {"transpose",  [] { return TL{X({2, 3})}; },    [](const TL& in) { return matmul(in[0].transpose(0, 1), in[0]); }},
  {"narrow",     [] { return TL{X({4, 3})}; },    [](const TL& in) { return in[0].narrow(0, 1, 2) * 3.0; }},
  {"slice",      [] { return TL{X({7, 2})}; },    [](const TL& in) { return in[0].slice(0, 1, 7, 2) * 3.0; }},
  {"select",     [] { return TL{X({3, 4})}; },    [](const TL& in) { return in[0].select(1, -1) * 3.0; }},
  {"expand",     [] { return TL{X({3, 1}), X({2, 3, 4}).detach()}; }, [](const TL& in) { return in[0].expand({2, 3, 4}) * in[1]; }},
  {"squeeze",    [] { return TL{X({3, 1, 2})}; }, [](const TL& in) { return in[0].squeeze(1) * 2.0; }},
  {"unsqueeze",  [] { return TL{X({3, 2}), X({3, 4, 2}).detach()}; }, [](const TL& in) { return in[0].unsqueeze(1) * in[1]; }},
  {"contiguous", [] { return TL{Xt(3, 2)}; },     [](const TL& in) { return in[0].contiguous() * 2.0; }},
  {"clone",      [] { return TL{X({3, 2})}; },    [](const TL& in) { return in[0].clone() * 2.0; }},
  {"to",         [] { return TL{X({3, 2})}; },    [](const TL& in) { return in[0].to(DType::Float32).to(DType::Float64) * 2.0; },
                 kFloat32RoundTrip},
  // ---- a composite: a 2-layer MLP with loss, the whole chain at once ----
  {"mlp", [] { return TL{X({4, 3}), X({3, 5}), X({5}), X({5, 2})}; },
          [](const TL& in) {
            Tensor h = gelu(matmul(in[0], in[1]) + in[2]);
            return cross_entropy(matmul(layer_norm(h, {5}), in[3]), ids({0, 1, 1, 0}));
          }},
  };
  // clang-format on
  return cases;
}

}  // namespace hctest
