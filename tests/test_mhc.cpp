// mHC (nn/mhc.h, nn/mhc_paper.h): the library's invariants (docs/connections.md) for fractions and the v2
// options, the paper variant (its init numbers and a forward written from mHC eq. 3, 7-9 with plain loops),
// float64 gradchecks with perturbed parameters, and error messages.
#include <cmath>

#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;
using hcgrad::autograd::gradcheck;
using TensorList = std::vector<Tensor>;

namespace {

const double sigma1 = 1 / (1 + std::exp(-1.0));

ManifoldHyperConnectionsOptions opts(int64_t dim, int64_t layer_index, bool v1, int64_t fracs = 1) {
  return {.dim = dim, .layer_index = layer_index, .streams_in_batch = v1, .num_fracs = fracs, .dtype = DType::Float64};
}

bool has_parameter(const Module& module, const std::string& name) {
  for (const auto& [n, p] : module.named_parameters())
    if (n == name) return true;
  return false;
}

// v2 layout [B, N, S, D] -> v1 layout [B·S, N, D] (row b·S + s).
Tensor to_v1(const Tensor& x) {
  const Shape& s = x.shape();
  return x.permute({0, 2, 1, 3}).reshape({s[0] * s[2], s[1], s[3]});
}

template <class M>
void check_gradients(M& module, const Tensor& input) {
  perturb(module, 21, 0.3);
  auto result = gradcheck_connection(module, input);
  CHECK_MESSAGE(result.ok, result.message);
}

// A residual_transform with a parameter, to see that it is registered and differentiated.
class ScaleTransform : public Transform {
 public:
  explicit ScaleTransform(int64_t dim) {
    weight = register_parameter("weight", ones({dim}, {.dtype = DType::Float64}));
  }
  Tensor forward(const Tensor& x) const override { return x * weight + 0.1 * x * x; }
  Tensor weight;
};

// The paper variant's new streams [tokens, S, D] for inputs x [tokens, S, D] (v2 order) and the branch
// u -> 1.5 tanh(u), written from mHC eq. 3, 7-9 with plain loops.
std::vector<double> paper_by_loops(const PaperManifoldHyperConnections& m, const std::vector<double>& x,
                                   int64_t tokens) {
  const int64_t S = m.num_streams, D = m.dim, K = S * D, P = 2 * S + S * S;
  const std::vector<double> phi = values(m.phi), gamma = values(m.norm->gamma), b_pre = values(m.b_pre),
                            b_post = values(m.b_post), b_res = values(m.b_res);
  const double a_pre = values(m.alpha_pre)[0], a_post = values(m.alpha_post)[0], a_res = values(m.alpha_res)[0];
  std::vector<double> out(x.size());
  for (int64_t tok = 0; tok < tokens; ++tok) {
    const double* v = &x[tok * K];  // vec(x_l): stream-major
    double square = 0;
    for (int64_t k = 0; k < K; ++k) square += v[k] * v[k];
    std::vector<double> normed(K), proj(P, 0.0);
    for (int64_t k = 0; k < K; ++k) normed[k] = v[k] / std::sqrt(square) * std::sqrt(double(K)) * (gamma[k] + 1);
    for (int64_t j = 0; j < P; ++j)
      for (int64_t k = 0; k < K; ++k) proj[j] += normed[k] * phi[k * P + j];
    std::vector<double> h_pre(S), h_post(S), h(S * S);
    for (int64_t s = 0; s < S; ++s) {
      h_pre[s] = 1 / (1 + std::exp(-(a_pre * proj[s] + b_pre[s])));
      h_post[s] = 2 / (1 + std::exp(-(a_post * proj[S + s] + b_post[s])));
    }
    for (int64_t i = 0; i < S * S; ++i) h[i] = std::exp(a_res * proj[2 * S + i] + b_res[i]);  // M⁰, [t, s]
    for (int64_t it = 0; it < m.sinkhorn_iters; ++it) {
      for (int64_t s = 0; s < S; ++s) {  // T_c: every column sums to 1
        double c = 0;
        for (int64_t t = 0; t < S; ++t) c += h[t * S + s];
        for (int64_t t = 0; t < S; ++t) h[t * S + s] /= c;
      }
      for (int64_t t = 0; t < S; ++t) {  // T_r: every row sums to 1
        double r = 0;
        for (int64_t s = 0; s < S; ++s) r += h[t * S + s];
        for (int64_t s = 0; s < S; ++s) h[t * S + s] /= r;
      }
    }
    for (int64_t c = 0; c < D; ++c) {
      double u = 0;
      for (int64_t s = 0; s < S; ++s) u += h_pre[s] * v[s * D + c];
      const double y = 1.5 * std::tanh(u);
      for (int64_t t = 0; t < S; ++t) {
        double r = 0;
        for (int64_t s = 0; s < S; ++s) r += h[t * S + s] * v[s * D + c];
        out[tok * K + t * D + c] = r + h_post[t] * y;
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("mhc: H_res rows sum to 1 for one and several fractions, in both layouts (reference e.5)") {
  const int64_t S = 3, B = 2, N = 2;
  for (int64_t F : {1, 2})
    for (bool v1 : {true, false}) {
      ManifoldHyperConnections mhc(S, opts(4 * F, 1, v1, F));
      perturb(mhc, 3);
      Tensor x = leaf({B, N, S, 4 * F}, -2, 2).detach();
      auto w = mhc.width(v1 ? to_v1(x) : x);
      CHECK(w.h_res.shape() == Shape{B, N, S * F, S * F});
      std::vector<double> rows = values(sum(w.h_res, {-1})), cols = values(sum(w.h_res, {-2}));
      CHECK(max_abs_diff(rows, std::vector<double>(rows.size(), 1.0)) < 1e-14);
      CHECK(max_abs_diff(cols, std::vector<double>(cols.size(), 1.0)) < 1e-3);  // columns: only approximately
      for (double h : values(w.h_res)) CHECK(h > 0);
    }
}

TEST_CASE("mhc: the init numbers of reference e.6 in both layouts, and the library's F > 1 init") {
  const int64_t S = 4, B = 2, N = 3, D = 8;
  for (bool v1 : {true, false}) {
    ManifoldHyperConnections mhc(S, opts(D, 5, v1));  // home stream 5 mod 4 = 1
    Tensor x = leaf({B, N, D}).detach();
    Tensor equal_streams = x.unsqueeze(2).expand({B, N, S, D});
    auto w = mhc.width(v1 ? to_v1(equal_streams) : equal_streams.contiguous());
    std::vector<double> h_pre = values(w.h_pre), h_res = values(w.h_res);
    for (int64_t s = 0; s < S; ++s) CHECK(h_pre[s] == doctest::Approx(s == 1 ? sigma1 : 0.5).epsilon(1e-12));
    const double diag = 1 / (1 + (S - 1) / std::exp(1.0)), off = diag / std::exp(1.0);
    for (int64_t i = 0; i < S; ++i)
      for (int64_t j = 0; j < S; ++j) CHECK(h_res[i * S + j] == doctest::Approx(i == j ? diag : off).epsilon(1e-9));
    for (double b : values(w.beta)) CHECK(b == doctest::Approx(2 * sigma1).epsilon(1e-12));
    CHECK(max_abs_diff(values(w.branch_input), values(x * (sigma1 + (S - 1) / 2.0))) < 1e-12);
    Tensor y = leaf({B, N, D}).detach();
    Tensor expected = (x + y * (2 * sigma1)).unsqueeze(2).expand({B, N, S, D});
    CHECK(max_abs_diff(values(mhc.add_residual(w, y)), values(v1 ? to_v1(expected) : expected)) < 1e-12);
  }
  // F = 2, S = 2: H_res = Sinkhorn(exp(I - 1)) of size S·F; row k = 1 (stream 0, fraction 1) feeds both branch
  // fractions with σ(1), every other row with σ(0); each output fraction gets 2σ(1) Σ_f1 y[f1].
  const int64_t F = 2, SF = 4;
  ManifoldHyperConnections frac(2, opts(D, 1, false, F));
  auto w = frac.width(leaf({B, N, 2, D}).detach());
  CHECK(w.h_pre.shape() == Shape{B, N, SF, F});
  CHECK(w.beta.shape() == Shape{B, N, 2, F, F});
  std::vector<double> h_pre = values(w.h_pre), h_res = values(w.h_res);
  for (int64_t r = 0; r < SF; ++r)
    for (int64_t f2 = 0; f2 < F; ++f2)
      CHECK(h_pre[r * F + f2] == doctest::Approx(r == 1 ? sigma1 : 0.5).epsilon(1e-12));
  const double diag = 1 / (1 + (SF - 1) / std::exp(1.0)), off = diag / std::exp(1.0);
  for (int64_t i = 0; i < SF; ++i)
    for (int64_t j = 0; j < SF; ++j) CHECK(h_res[i * SF + j] == doctest::Approx(i == j ? diag : off).epsilon(1e-9));
}

TEST_CASE("mhc: v1 and v2 layouts agree for one and two fractions (reference e.7)") {
  const int64_t S = 3, B = 2, N = 2;
  for (int64_t F : {1, 2}) {
    const int64_t D = 4 * F;
    ManifoldHyperConnections v1(S, opts(D, 2, true, F)), v2(S, opts(D, 2, false, F));
    perturb(v1, 7);
    copy_parameters(v1, v2);
    Tensor x = leaf({B, N, S, D}).detach();
    auto w1 = v1.width(to_v1(x)), w2 = v2.width(x);
    CHECK(max_abs_diff(values(w1.branch_input), values(w2.branch_input)) < 1e-14);
    CHECK(max_abs_diff(values(w1.beta), values(w2.beta)) < 1e-14);
    Tensor y = leaf({B, N, D}).detach();
    CHECK(max_abs_diff(values(v1.add_residual(w1, y)), values(to_v1(v2.add_residual(w2, y)))) < 1e-14);
  }
}

TEST_CASE("mhc: P identical proposals equal one proposal, with fractions (reference e.8)") {
  const int64_t S = 2, F = 2, D = 8, P = 3;
  ManifoldHyperConnectionsOptions one = opts(D, 0, false, F), three = one;
  three.num_dynamic_alpha_proposals = P;
  ManifoldHyperConnections single(S, one), triple(S, three);
  perturb(single, 9);
  {
    autograd::NoGradGuard no_grad;
    for (const auto& [name, p] : triple.named_parameters())
      for (const auto& [source_name, source] : single.named_parameters())
        if (name == source_name) Tensor(p).copy_(source);  // dynamic_alpha_fn [1, d, C] broadcasts to [P, d, C]
  }
  Tensor x = leaf({2, 3, S, D}).detach();
  CHECK(max_abs_diff(values(run_connection(single, x)), values(run_connection(triple, x))) < 1e-14);
}

TEST_CASE("mhc: mix_streams_before_norm with its identity init equals no mix, the mix feeds the norm only") {
  const int64_t S = 3, D = 4;
  ManifoldHyperConnectionsOptions with_mix = opts(D, 1, false);
  with_mix.mix_streams_before_norm = true;
  ManifoldHyperConnections plain(S, opts(D, 1, false)), mixed(S, with_mix);
  CHECK(has_parameter(mixed, "maybe_mix_streams.weight"));
  CHECK(mixed.mix_streams->weight.shape() == Shape{S, S, 1, 1});
  perturb(plain, 11);
  copy_parameters(plain, mixed);
  Tensor x = leaf({2, 2, S, D}).detach();
  CHECK(max_abs_diff(values(run_connection(plain, x)), values(run_connection(mixed, x))) < 1e-15);  // reference e.9
  // A non-identity mix changes the weights, but the branch input is still Σ_r H_pre[r] x[r] of the unmixed x.
  perturb(*mixed.mix_streams, 12);
  auto w = mixed.width(x);
  CHECK(max_abs_diff(values(w.h_pre), values(plain.width(x).h_pre)) > 1e-3);
  Tensor expected = sum(w.h_pre * x, {2});  // F = 1: h_pre [B, N, S, 1] * x [B, N, S, D]
  CHECK(max_abs_diff(values(w.branch_input), values(expected)) < 1e-14);
}

TEST_CASE("mhc: add_branch_out_to_residual = false, depth_residual_fn, residual_transform") {
  const int64_t S = 2, D = 4;
  Tensor x = leaf({2, 3, S, D}).detach(), y = leaf({2, 3, D}).detach();
  ManifoldHyperConnectionsOptions o = opts(D, 0, false);
  o.add_branch_out_to_residual = false;
  ManifoldHyperConnections no_depth(S, o);
  CHECK_FALSE(has_parameter(no_depth, "static_beta"));
  CHECK_FALSE(has_parameter(no_depth, "h_post_scale"));
  auto w = no_depth.width(x);
  CHECK_FALSE(w.beta.defined());
  CHECK(max_abs_diff(values(no_depth.add_residual(w, y)), values(y)) == 0);

  // depth_residual_fn(o, r) = 0.5 o + r against the default o + r on the same width step.
  ManifoldHyperConnections plain(S, opts(D, 0, false));
  perturb(plain, 4);
  o = opts(D, 0, false);
  o.depth_residual_fn = std::make_shared<DepthResidualFn>([](const Tensor& b, const Tensor& r) { return 0.5 * b + r; });
  ManifoldHyperConnections gated(S, o);
  copy_parameters(plain, gated);
  auto wp = plain.width(x);
  Tensor o_default = plain.add_residual(wp, y) - wp.residuals;
  CHECK(max_abs_diff(values(gated.add_residual(gated.width(x), y)), values(0.5 * o_default + wp.residuals)) < 1e-14);

  // residual_transform acts on the input before everything: same as transforming the input by hand.
  auto transform = std::make_shared<ScaleTransform>(D);
  perturb(*transform, 5);
  o = opts(D, 0, false);
  o.residual_transform = transform;
  ManifoldHyperConnections transformed(S, o);
  CHECK(has_parameter(transformed, "residual_transform.weight"));
  copy_parameters(plain, transformed);
  CHECK(max_abs_diff(values(run_connection(transformed, x)), values(run_connection(plain, transform->forward(x)))) < 1e-14);
}

TEST_CASE("mhc: a custom residual_mix_constraint_fn replaces Sinkhorn") {
  const int64_t S = 2, F = 2, D = 4;
  ManifoldHyperConnectionsOptions o = opts(D, 1, true, F);
  Shape seen;
  o.residual_mix_constraint_fn = [&seen](const Tensor& logits) {
    seen = logits.shape();
    return softmax(logits, -1);
  };
  ManifoldHyperConnections mhc(S, o);
  perturb(mhc, 6);
  auto w = mhc.width(leaf({2 * S, 3, D}).detach());
  CHECK(seen == Shape{2, 3, 1, S * F, S * F});
  std::vector<double> cols = values(sum(w.h_res, {-2}));
  CHECK(max_abs_diff(cols, std::vector<double>(cols.size(), 1.0)) > 1e-3);  // a softmax, not doubly stochastic
}

TEST_CASE("mhc paper: at init the same numbers as the library's module, in both layouts") {
  const int64_t S = 4, B = 2, N = 3, D = 8;
  for (bool v1 : {true, false}) {
    ManifoldHyperConnectionsOptions o = opts(D, 6, v1);
    ManifoldHyperConnections library(S, o);
    o.variant = MhcVariant::Paper;
    auto made = make_manifold_hyper_connections(S, o);
    CHECK(made->name() == "PaperManifoldHyperConnections");
    const auto& paper = dynamic_cast<const PaperManifoldHyperConnections&>(*made);
    CHECK(paper.phi.shape() == Shape{S * D, 2 * S + S * S});
    Tensor x = leaf({B, N, S, D}).detach();
    if (v1) x = to_v1(x);
    auto wl = library.width(x);
    auto wp = paper.width(x);
    CHECK(max_abs_diff(values(wp.h_pre), values(wl.h_pre)) < 1e-15);
    CHECK(max_abs_diff(values(wp.h_post), values(wl.beta)) < 1e-15);
    CHECK(max_abs_diff(values(wp.h_res), values(wl.h_res.transpose(-1, -2))) < 1e-15);
    CHECK(max_abs_diff(values(run_connection(paper, x)), values(run_connection(library, x))) < 1e-14);
  }
}

TEST_CASE("mhc paper: the forward matches loops written from eq. 3 and 7-9 on perturbed weights") {
  const int64_t S = 3, B = 2, N = 2, D = 4;
  for (bool v1 : {true, false}) {
    ManifoldHyperConnectionsOptions o = opts(D, 1, v1);
    o.sinkhorn_iters = 7;
    PaperManifoldHyperConnections paper(S, o);
    perturb(paper, 8);
    Tensor x = leaf({B, N, S, D}).detach();
    Tensor out = run_connection(paper, v1 ? to_v1(x) : x);
    if (v1) out = out.reshape({B, S, N, D}).permute({0, 2, 1, 3});
    CHECK(max_abs_diff(values(out), paper_by_loops(paper, values(x), B * N)) < 1e-12);
    std::vector<double> rows = values(sum(paper.width(v1 ? to_v1(x) : x).h_res, {-1}));  // [t, s]: per destination
    CHECK(max_abs_diff(rows, std::vector<double>(rows.size(), 1.0)) < 1e-14);
  }
}

TEST_CASE("mhc gradcheck: two fractions in both layouts, log-domain Sinkhorn") {
  for (bool v1 : {true, false}) {
    ManifoldHyperConnectionsOptions o = opts(4, 1, v1, 2);
    o.sinkhorn_iters = 5;
    o.sinkhorn_domain = v1 ? SinkhornDomain::Log : SinkhornDomain::Linear;
    ManifoldHyperConnections mhc(2, o);
    check_gradients(mhc, v1 ? leaf({4, 2, 4}) : leaf({2, 2, 2, 4}));
  }
}

TEST_CASE("mhc gradcheck: mix_streams_before_norm, residual_transform, custom constraint fn") {
  ManifoldHyperConnectionsOptions o = opts(4, 0, false);
  o.sinkhorn_iters = 4;
  o.mix_streams_before_norm = true;
  o.residual_transform = std::make_shared<ScaleTransform>(4);
  ManifoldHyperConnections mixed(3, o);
  check_gradients(mixed, leaf({2, 2, 3, 4}));

  ManifoldHyperConnectionsOptions c = opts(4, 0, true, 2);
  c.residual_mix_constraint_fn = [](const Tensor& logits) { return softmax(logits * 2.0, -2); };
  ManifoldHyperConnections constrained(2, c);
  check_gradients(constrained, leaf({4, 2, 4}));
}

TEST_CASE("mhc paper gradcheck: both layouts") {
  for (bool v1 : {true, false}) {
    ManifoldHyperConnectionsOptions o = opts(3, 1, v1);
    o.sinkhorn_iters = 5;
    PaperManifoldHyperConnections paper(3, o);
    check_gradients(paper, v1 ? leaf({6, 2, 3}) : leaf({2, 2, 3, 3}));
  }
}

TEST_CASE("mhc: bad options and inputs name the module and the shapes") {
  CHECK_THROWS_WITH_AS(ManifoldHyperConnections(2, opts(6, 0, true, 4)),
                       doctest::Contains("ManifoldHyperConnections: dim (6) must be divisible by num_fracs (4)"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(ManifoldHyperConnections(0, opts(8, 0, true)),
                       doctest::Contains("ManifoldHyperConnections: num_streams must be >= 1, got 0"), Error);
  ManifoldHyperConnectionsOptions views = opts(8, 0, true);
  views.num_input_views = 2;
  CHECK_THROWS_WITH_AS(ManifoldHyperConnections(2, views), doctest::Contains("num_input_views must be 1, got 2"),
                       Error);
  ManifoldHyperConnections v1(4, opts(8, 0, true, 2));
  CHECK_THROWS_WITH_AS(v1.width(zeros({6, 3, 8}, {.dtype = DType::Float64})),
                       doctest::Contains("ManifoldHyperConnections: residuals [6,3,8] must be [B·S, ..., 8]"),
                       ShapeError);
  ManifoldHyperConnections v2(4, opts(8, 0, false, 2));
  CHECK_THROWS_WITH_AS(v2.width(zeros({2, 3, 3, 8}, {.dtype = DType::Float64})),
                       doctest::Contains("ManifoldHyperConnections: residuals [2,3,3,8] must be [B, ..., 4, 8]"),
                       ShapeError);
  auto w = v2.width(zeros({2, 3, 4, 8}, {.dtype = DType::Float64}));
  CHECK_THROWS_WITH_AS(v2.add_residual(w, zeros({2, 3, 4}, {.dtype = DType::Float64})),
                       doctest::Contains("branch output [2,3,4] must have the branch input's shape [2,3,8]"),
                       ShapeError);
  ManifoldHyperConnectionsOptions bad_fn = opts(8, 0, false);
  bad_fn.residual_mix_constraint_fn = [](const Tensor& logits) { return sum(logits, {-1}); };
  ManifoldHyperConnections bad(4, bad_fn);
  CHECK_THROWS_WITH_AS(bad.width(zeros({2, 3, 4, 8}, {.dtype = DType::Float64})),
                       doctest::Contains("residual_mix_constraint_fn returned [2,3,1,4]"), ShapeError);

  ManifoldHyperConnectionsOptions paper = opts(8, 0, true, 2);
  paper.variant = MhcVariant::Paper;
  CHECK_THROWS_WITH_AS(make_manifold_hyper_connections(4, paper),
                       doctest::Contains("PaperManifoldHyperConnections: num_fracs must be 1, got 2"), Error);
  paper.num_fracs = 1;
  auto made = make_manifold_hyper_connections(4, paper);
  const auto& paper_v1 = dynamic_cast<const PaperManifoldHyperConnections&>(*made);
  CHECK_THROWS_WITH_AS(paper_v1.width(zeros({6, 3, 8}, {.dtype = DType::Float64})),
                       doctest::Contains("PaperManifoldHyperConnections: residuals [6,3,8] must be [B·S, ..., 8]"),
                       ShapeError);
}

namespace {

// The depth step through split() (the fused merge, stream_mix_add) against width() + add_residual() (mix,
// then add), on the same module: outputs and every gradient agree.
template <class M>
void check_fused_merge(M& module, const Tensor& x) {
  perturb(module, 31, 0.3);
  auto fused_loss = [&](const Tensor& residuals) {
    ConnectionSplit s = module.split(residuals);
    return s.add_residual(tanh(s.branch_input) * 1.5);
  };
  const Tensor a = x.detach().requires_grad_(), b = x.detach().requires_grad_();
  const Tensor fused = fused_loss(a), two_step = run_connection(module, b);
  CHECK(max_abs_diff(values(fused), values(two_step)) < 1e-12);
  const Tensor probe = leaf(fused.shape()).detach();
  sum(fused * probe).backward();
  const std::vector<Tensor> params = module.parameters();
  std::vector<Tensor> fused_grads;
  for (const Tensor& p : params) fused_grads.push_back(p.grad());
  module.zero_grad();
  sum(two_step * probe).backward();
  CHECK(max_abs_diff(values(a.grad()), values(b.grad())) < 1e-12);
  for (size_t i = 0; i < params.size(); ++i) {
    CAPTURE(i);
    REQUIRE(fused_grads[i].defined());
    CHECK(max_abs_diff(values(fused_grads[i]), values(params[i].grad())) < 1e-12);
  }
  // And the fused path on its own passes a float64 gradcheck.
  std::vector<Tensor> inputs = {x.detach().requires_grad_()};
  for (const Tensor& p : params) inputs.push_back(p);
  auto result = autograd::gradcheck([&](const std::vector<Tensor>& in) { return fused_loss(in[0]); }, inputs);
  CHECK_MESSAGE(result.ok, result.message);
}

}  // namespace

TEST_CASE("mhc: the fused residual merge of split() equals width + add_residual, both variants and layouts") {
  const int64_t S = 4, B = 2, N = 3;
  for (bool v1 : {true, false}) {
    for (int64_t F : {1, 2}) {
      CAPTURE(v1);
      CAPTURE(F);
      const int64_t D = 4 * F;
      ManifoldHyperConnections library(S, opts(D, 1, v1, F));
      const Tensor x = v1 ? leaf({B * S, N, D}).detach() : leaf({B, N, S, D}).detach();
      check_fused_merge(library, x);
    }
    ManifoldHyperConnectionsOptions o = opts(4, 2, v1);
    o.variant = MhcVariant::Paper;
    PaperManifoldHyperConnections paper(S, o);
    check_fused_merge(paper, v1 ? leaf({B * S, N, 4}).detach() : leaf({B, N, S, 4}).detach());
  }
}

TEST_CASE("mhc identity-like init: H_post = 1, H_pre sums to 1 on the home stream, H_res = Sinkhorn(exp(c I))") {
  const int64_t S = 4, B = 2, N = 3, D = 8, home = 2;
  for (MhcVariant variant : {MhcVariant::Library, MhcVariant::Paper})
    for (double c : {6.0, 3.0}) {
      ManifoldHyperConnectionsOptions o = opts(D, 6, /*v1=*/false);
      o.variant = variant;
      o.init = MhcInit::IdentityLike;
      o.identity_logit = c;
      auto module = make_manifold_hyper_connections(S, o);
      Tensor x = leaf({B, N, S, D}).detach();
      const ConnectionMaps maps = *module->maps(x);
      const std::vector<double> pre = values(maps.h_pre), post = values(maps.h_post), res = values(maps.h_res);
      const double on = 1 / (1 + std::exp(-c)), diagonal = std::exp(c) / (std::exp(c) + S - 1);
      for (size_t token = 0; token < static_cast<size_t>(B * N); ++token) {
        double pre_sum = 0;
        for (int64_t s = 0; s < S; ++s) {
          const double h_pre = pre[token * S + s];
          pre_sum += h_pre;
          CHECK(std::abs(h_pre - (s == home ? on : (1 - on) / (S - 1))) < 1e-15);
          CHECK(post[token * S + s] == 1.0);
          for (int64_t t = 0; t < S; ++t)
            CHECK(std::abs(res[(token * S + s) * S + t] - (s == t ? diagonal : (1 - diagonal) / (S - 1))) < 1e-14);
        }
        CHECK(std::abs(pre_sum - 1) < 1e-15);
      }
    }
}

TEST_CASE("mhc identity-like init: expand -> layers -> reduce is S times the pre-norm residual network") {
  // The documented tolerance: 1e-12 in float64 (rounding only; nothing of the closeness c enters while the
  // streams are identical).
  const int64_t S = 4, B = 2, N = 3, D = 8, L = 3;
  for (MhcVariant variant : {MhcVariant::Library, MhcVariant::Paper})
    for (bool v1 : {false, true}) {
      const PlainResidualStack stack(D, L, 3);
      std::vector<std::shared_ptr<ConnectionModule>> layers;
      for (int64_t i = 0; i < L; ++i) {
        ManifoldHyperConnectionsOptions o = opts(D, i, v1);
        o.variant = variant;
        o.init = MhcInit::IdentityLike;
        layers.push_back(make_manifold_hyper_connections(S, o, stack.branch(i)));
      }
      Tensor x = leaf({B, N, D}).detach();
      Tensor plain = stack.forward(x);
      Tensor streams = x.reshape({B, N, 1, D}).expand({B, N, S, D}).contiguous();
      if (v1) streams = to_v1(streams);
      for (auto& layer : layers) streams = layer->forward(streams);
      Tensor reduced = v1 ? streams.reshape({B, S, N, D}).sum({1}) : streams.sum({2});
      CHECK(max_abs_diff(values(reduced), values(plain * double(S))) < 1e-12);
      // The library's init does not start there (H_post = 2σ(1), H_pre sums to σ(1) + 3/2).
      ManifoldHyperConnectionsOptions library_init = opts(D, 0, v1);
      library_init.variant = variant;
      auto first = make_manifold_hyper_connections(S, library_init, stack.branch(0));
      Tensor start = x.reshape({B, N, 1, D}).expand({B, N, S, D}).contiguous();
      if (v1) start = to_v1(start);
      Tensor one = first->forward(start);
      Tensor one_reduced = v1 ? one.reshape({B, S, N, D}).sum({1}) : one.sum({2});
      CHECK(max_abs_diff(values(one_reduced), values((x + stack.branch(0)(x)) * double(S))) > 1e-2);
    }
}

TEST_CASE("mhc identity-like init: needs one fraction and a positive closeness") {
  ManifoldHyperConnectionsOptions o = opts(8, 0, false, 2);
  o.init = MhcInit::IdentityLike;
  CHECK_THROWS_WITH_AS(ManifoldHyperConnections(2, o), doctest::Contains("identity-like init needs num_fracs = 1"),
                       Error);
  for (double c : {0.0, -1.0, std::nan("")}) {
    ManifoldHyperConnectionsOptions bad = opts(8, 0, false);
    bad.init = MhcInit::IdentityLike;
    bad.identity_logit = c;
    CHECK_THROWS_WITH_AS(ManifoldHyperConnections(2, bad), doctest::Contains("identity_logit must be a positive"),
                         Error);
    bad.variant = MhcVariant::Paper;
    CHECK_THROWS_WITH_AS(make_manifold_hyper_connections(2, bad), doctest::Contains("identity_logit must be"), Error);
  }
}
