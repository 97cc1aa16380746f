// Gradchecks: one line per op, each comparing backward() with finite differences in float64
// (autograd/gradcheck.h). The last test fails if a registered differentiable op has no line here.
//
// To add an op: write its forward and backward (core/ops/<family>.cpp), its kernel (core/cpu/<family>.cpp),
// a forward-value test (test_ops_forward.cpp) and one line in kCases below, including broadcast and
// non-contiguous inputs where the op takes them.
#include <set>

#include "helpers.h"

namespace {

using namespace hctest;
using autograd::GradcheckOptions;
using TL = std::vector<Tensor>;

struct Case {
  const char* name;
  std::function<TL()> inputs;  // built lazily, so each case draws fresh values
  autograd::GradcheckFn f;
  GradcheckOptions options = {};
};

Tensor X(const Shape& s) { return leaf(s); }                 // values in [-1, 1)
Tensor P(const Shape& s) { return leaf(s, 0.5, 2.0); }       // positive, away from 0
Tensor W(const Shape& s) { return leaf(s, -3.0, 3.0); }      // wider range (curved parts of gelu, silu)
Tensor L(const Shape& s) { return leaf(s, -2.0, 2.0); }      // Sinkhorn logits: away from saturation
// A leaf whose memory is not row-major: the transpose of a [cols, rows] tensor.
Tensor Xt(int64_t rows, int64_t cols) { return leaf({cols, rows}).detach().t().detach().requires_grad_(); }
Tensor ids(std::vector<int64_t> v, Shape s = {}) { return from_vector(v, s); }

const GradcheckOptions kFloat32RoundTrip{.eps = 1e-3, .atol = 1e-3, .rtol = 1e-2};

// clang-format off
const std::vector<Case> kCases = {
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
  {"silu",    [] { return TL{W({2, 3})}; }, [](const TL& in) { return silu(in[0]); }},
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
              [](const TL& in) { return masked_fill(in[0], from_vector(std::vector<bool>{true, false, true}), -5.0); }},
  // ---- reductions ----
  {"sum all",        [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return sum(in[0]); }},
  {"sum dims",       [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return sum(in[0], {0, 2}); }},
  {"sum keepdim",    [] { return TL{Xt(3, 4)}; },     [](const TL& in) { return sum(in[0], {-1}, true); }},
  {"mean",           [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return mean(in[0], {1}); }},
  {"mean all",       [] { return TL{X({3, 2})}; },    [](const TL& in) { return mean(in[0]); }},
  {"max",            [] { return TL{X({3, 5})}; },    [](const TL& in) { return max(in[0], {1}); }},
  {"max dims",       [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return max(in[0], {0, 2}, true); }},
  {"min",            [] { return TL{X({4, 3})}; },    [](const TL& in) { return min(in[0], {0}); }},
  {"logsumexp",      [] { return TL{X({3, 4})}; },    [](const TL& in) { return logsumexp(in[0], {1}); }},
  {"logsumexp dims", [] { return TL{X({2, 3, 4})}; }, [](const TL& in) { return logsumexp(in[0], {0, 2}, true); }},
  // ---- matmul ----
  {"matmul",            [] { return TL{X({3, 4}), X({4, 2})}; },       [](const TL& in) { return matmul(in[0], in[1]); }},
  {"matmul transposed", [] { return TL{Xt(3, 4), Xt(4, 2)}; },         [](const TL& in) { return matmul(in[0], in[1]); }},
  {"matmul batched",    [] { return TL{X({2, 1, 3, 4}), X({5, 4, 2})}; }, [](const TL& in) { return matmul(in[0], in[1]); }},
  {"matmul fold",       [] { return TL{X({2, 3, 4}), X({4, 5})}; },    [](const TL& in) { return matmul(in[0], in[1]); }},
  {"matmul vector",     [] { return TL{X({4}), X({4, 3}), X({3})}; },
                        [](const TL& in) { return matmul(matmul(in[0], in[1]), in[2]); }},
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

std::set<std::string> ops_seen;  // filled by the gradcheck test, read by the coverage test

}  // namespace

TEST_CASE("gradcheck: every op's backward matches finite differences") {
  for (const Case& c : kCases) {
    CAPTURE(c.name);
    autograd::GradcheckResult r = autograd::gradcheck(c.f, c.inputs(), c.options);
    CHECK_MESSAGE(r.ok, c.name, ": ", r.message);
    ops_seen.insert(r.ops.begin(), r.ops.end());
  }
}

TEST_CASE("gradcheck: every registered differentiable op has a gradcheck") {
  if (ops_seen.empty()) {  // this case may run alone (ctest runs each case in its own process)
    for (const Case& c : kCases) {
      auto r = autograd::gradcheck(c.f, c.inputs(), c.options);
      ops_seen.insert(r.ops.begin(), r.ops.end());
    }
  }
  const auto& registered = autograd::registered_ops();
  CHECK(registered.size() >= 30);
  for (const std::string& op : registered) {
    if (op.rfind("test_", 0) == 0) continue;  // ops the tests define themselves
    CAPTURE(op);
    CHECK_MESSAGE(ops_seen.count(op) == 1, "op '", op, "' is differentiable but no gradcheck case runs through it");
  }
  MESSAGE(registered.size(), " differentiable ops, all gradchecked");
}

TEST_CASE("gradcheck catches a wrong gradient") {
  // A deliberately wrong backward: forward is x^2, backward claims 3x. gradcheck must fail.
  static const autograd::OpName kBroken{"test_broken_square"};
  auto broken = [](const TL& in) {
    Tensor x = in[0];
    Tensor y = mul(x.detach(), x.detach());
    return autograd::record(kBroken, y, {x}, [x](const Tensor& g, const autograd::Needs&) {
      autograd::NoGradGuard no_grad;
      return autograd::TensorList{g * x.detach() * 3.0};
    });
  };
  auto r = autograd::gradcheck(broken, {X({3})});
  CHECK_FALSE(r.ok);
  CHECK(r.message.find("analytic") != std::string::npos);
}

TEST_CASE("sinkhorn backward equals autograd through the unrolled loop of primitive ops") {
  // The loop of core/ops.h written with exp, max, sum, abs, clamp and log_softmax: autograd then
  // differentiates every iteration on its own, which is what the fused backward must reproduce.
  auto unrolled = [](const Tensor& logits, int iters, SinkhornDomain domain) {
    if (domain == SinkhornDomain::Log) {
      Tensor l = logits;
      for (int t = 0; t < iters; ++t) l = log_softmax(log_softmax(l, -2), -1);
      return exp(l);
    }
    Tensor a = exp(logits - max(logits, {-2}, true).detach());
    for (int t = 0; t < iters; ++t) {
      a = a / clamp(sum(abs(a), {-2}, true), 1e-12, std::nullopt);
      a = a / clamp(sum(abs(a), {-1}, true), 1e-12, std::nullopt);
    }
    return a;
  };
  // Row 0 of the second matrix is 40 below the rest: its sums fall under the 1e-12 floor, so the
  // clamped branch of the backward runs too.
  Tensor base = leaf({2, 3, 4}, -2.0, 2.0).detach();
  {
    autograd::NoGradGuard no_grad;
    base.select(0, 1).select(0, 0).add_(-40.0);
  }
  Tensor cotangent = leaf({2, 3, 4}).detach();
  for (SinkhornDomain domain : {SinkhornDomain::Linear, SinkhornDomain::Log})
    for (int iters : {1, 3, 20}) {
      CAPTURE(iters);
      CAPTURE(domain == SinkhornDomain::Log);
      Tensor fused_in = base.clone().detach().requires_grad_(), unrolled_in = base.clone().detach().requires_grad_();
      Tensor fused = sinkhorn(fused_in, iters, domain), reference = unrolled(unrolled_in, iters, domain);
      CHECK(close(fused, {2, 3, 4}, values(reference), 1e-12));
      fused.backward(cotangent);
      reference.backward(cotangent);
      std::vector<double> expected = values(unrolled_in.grad());
      double scale = 0;
      for (double v : expected) scale = std::max(scale, std::abs(v));
      CHECK(close(fused_in.grad(), {2, 3, 4}, expected, 1e-10 * std::max(scale, 1.0)));
    }
}
