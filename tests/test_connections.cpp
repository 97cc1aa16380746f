// Hyper-connections: the invariants of connections-reference.md (e), a forward check against loops written
// from the equations, gradchecks with perturbed parameters, and error messages.
#include <cmath>

#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;
using hcgrad::autograd::gradcheck;
using TensorList = std::vector<Tensor>;

namespace {

HyperConnectionsOptions f64(int64_t dim, int64_t layer_index, bool tanh = true, int64_t views = 1) {
  return {.dim = dim, .layer_index = layer_index, .tanh = tanh, .num_input_views = views, .dtype = DType::Float64};
}

// Moves every parameter away from its init (the dynamic parts are zero there).
void perturb(Module& module, uint64_t seed) {
  Generator gen(seed);
  for (const Tensor& p : module.parameters()) {
    autograd::NoGradGuard no_grad;
    Tensor(p).add_(randn(p.shape(), p.options(), gen) * 0.5);
  }
}

}  // namespace

TEST_CASE("connections hc: at init the branch reads the home stream and every stream keeps itself") {
  const int64_t S = 3, B = 2, N = 4, D = 6;
  for (int64_t layer : {0, 1, 5}) {
    HyperConnections hc(S, f64(D, layer));
    Tensor x = leaf({B * S, N, D}).detach();
    auto w = hc.width(x);
    const int64_t home = layer % S;
    for (int64_t b = 0; b < B; ++b)
      CHECK(max_abs_diff(values(w.branch_input.select(0, b)), values(x.select(0, b * S + home))) < 1e-15);
    CHECK(max_abs_diff(values(w.residuals), values(x)) < 1e-15);
    Tensor y = leaf({B, N, D}).detach();
    Tensor expected = x + y.unsqueeze(1).expand({B, S, N, D}).reshape({B * S, N, D});
    CHECK(max_abs_diff(values(hc.add_residual(w, y)), values(expected)) < 1e-15);
  }
}

TEST_CASE("connections hc: expand -> layers at init -> reduce is S times the plain residual network") {
  const int64_t S = 4, B = 2, N = 3, D = 8, L = 3;
  Generator gen(1);
  std::vector<std::shared_ptr<Linear>> branches;
  std::vector<std::shared_ptr<HyperConnections>> layers;
  for (int64_t i = 0; i < L; ++i) {
    branches.push_back(std::make_shared<Linear>(D, D, gen, LinearOptions{.dtype = DType::Float64}));
    auto branch = branches.back();
    layers.push_back(std::make_shared<HyperConnections>(S, f64(D, i),
                                                        [branch](const Tensor& u) { return tanh(branch->forward(u)); }));
  }
  Tensor x = leaf({B, N, D}).detach();
  Tensor plain = x;
  for (auto& branch : branches) plain = plain + tanh(branch->forward(plain));
  Tensor streams = x.unsqueeze(1).expand({B, S, N, D}).reshape({B * S, N, D});  // expand: copy per stream
  for (auto& layer : layers) streams = layer->forward(streams);
  Tensor reduced = streams.reshape({B, S, N, D}).sum({1});  // reduce: sum of the streams
  CHECK(max_abs_diff(values(reduced), values(plain * double(S))) < 1e-12);
}

TEST_CASE("connections hc: forward equals loops written from the equations (perturbed parameters)") {
  const int64_t S = 2, B = 2, N = 3, D = 4;
  for (bool use_tanh : {true, false}) {
    HyperConnections hc(S, f64(D, 1, use_tanh));
    perturb(hc, 7);
    Tensor x = leaf({B * S, N, D}).detach(), y = leaf({B, N, D}).detach();
    auto w = hc.width(x);
    Tensor out = hc.add_residual(w, y);

    auto X = values(x), Y = values(y), A = values(hc.static_alpha), Wa = values(hc.dynamic_alpha_fn),
         Bb = values(hc.static_beta), Wb = values(hc.dynamic_beta_fn), G = values(hc.norm->gamma);
    const double sa = hc.dynamic_alpha_scale.item(), sb = hc.dynamic_beta_scale.item();
    auto phi = [&](double v) { return use_tanh ? std::tanh(v) : v; };
    const int64_t C = 1 + S;
    std::vector<double> expected_u, expected_out(static_cast<size_t>(B * S * N * D));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n) {
        auto xs = [&](int64_t s, int64_t k) { return X[((b * S + s) * N + n) * D + k]; };
        std::vector<std::vector<double>> alpha(S, std::vector<double>(C));
        std::vector<double> beta(S);
        for (int64_t s = 0; s < S; ++s) {
          double sq = 0;
          for (int64_t k = 0; k < D; ++k) sq += xs(s, k) * xs(s, k);
          std::vector<double> xh(D);
          for (int64_t k = 0; k < D; ++k) xh[k] = xs(s, k) / std::max(std::sqrt(sq), 1e-12) * std::sqrt(double(D)) * (G[k] + 1);
          for (int64_t c = 0; c < C; ++c) {
            double dot = 0;
            for (int64_t k = 0; k < D; ++k) dot += xh[k] * Wa[k * C + c];
            alpha[s][c] = A[s * C + c] + sa * phi(dot);
          }
          double dot = 0;
          for (int64_t k = 0; k < D; ++k) dot += xh[k] * Wb[k];
          beta[s] = Bb[s] + sb * phi(dot);
        }
        for (int64_t k = 0; k < D; ++k) {
          double u = 0;
          for (int64_t s = 0; s < S; ++s) u += alpha[s][0] * xs(s, k);
          expected_u.push_back(u);
        }
        for (int64_t t = 0; t < S; ++t)
          for (int64_t k = 0; k < D; ++k) {
            double r = 0;
            for (int64_t s = 0; s < S; ++s) r += alpha[s][1 + t] * xs(s, k);
            expected_out[((b * S + t) * N + n) * D + k] = r + beta[t] * Y[(b * N + n) * D + k];
          }
      }
    CHECK(close(w.branch_input, {B, N, D}, expected_u, 1e-12));
    CHECK(close(out, {B * S, N, D}, expected_out, 1e-12));
  }
}

TEST_CASE("connections hc: with zero dynamic scales the output ignores gamma and the dynamic weights") {
  HyperConnections hc(3, f64(4, 2));
  perturb(hc, 3);
  {
    autograd::NoGradGuard no_grad;
    hc.dynamic_alpha_scale.zero_();
    hc.dynamic_beta_scale.zero_();
  }
  Tensor x = leaf({6, 2, 4}).detach(), y = leaf({2, 2, 4}).detach();
  std::vector<double> before = values(hc.add_residual(hc.width(x), y));
  perturb(*hc.norm, 9);
  {
    autograd::NoGradGuard no_grad;
    hc.dynamic_alpha_fn.mul_(-3.0);
    hc.dynamic_beta_fn.add_(1.0);
  }
  CHECK(max_abs_diff(values(hc.add_residual(hc.width(x), y)), before) == 0);
}

TEST_CASE("connections hc: views, no depth connection, middle dims, wrapped branch") {
  HyperConnections views(2, f64(4, 1, true, 3));
  Tensor x = leaf({4, 5, 4}).detach();
  auto w = views.width(x);
  CHECK(w.branch_input.shape() == Shape{3, 2, 5, 4});
  for (int64_t v = 0; v < 3; ++v)  // at init every view reads the home stream (1)
    CHECK(max_abs_diff(values(w.branch_input.select(0, v).select(0, 1)), values(x.select(0, 3))) < 1e-15);

  HyperConnectionsOptions no_depth = f64(4, 0);
  no_depth.add_branch_out_to_residual = false;
  HyperConnections hc(2, no_depth);
  Tensor y = leaf({2, 5, 4}).detach();
  CHECK(hc.add_residual(hc.width(x), y).same(y));
  CHECK(hc.named_parameters().size() == 4);  // static_alpha, dynamic_alpha_fn, dynamic_alpha_scale, norm.gamma

  HyperConnections images(2, f64(4, 0));  // [B·S, H, W, D]
  Tensor img = leaf({4, 2, 3, 4}).detach();
  auto wi = images.width(img);
  CHECK(wi.branch_input.shape() == Shape{2, 2, 3, 4});
  CHECK(images.add_residual(wi, wi.branch_input).shape() == Shape{4, 2, 3, 4});

  HyperConnections wrapped(2, f64(4, 0), [](const Tensor& u) { return u * 2.0; });
  CHECK(wrapped.forward(x).shape() == x.shape());
}

TEST_CASE("connections hc gradcheck: residuals, branch output and every parameter") {
  for (bool use_tanh : {true, false})
    for (int64_t views : {1, 2}) {
      HyperConnections hc(3, f64(4, 1, use_tanh, views));
      perturb(hc, 11);
      std::vector<Tensor> inputs = {leaf({6, 2, 4})};
      for (const Tensor& p : hc.parameters()) inputs.push_back(p);
      auto result = gradcheck(
          [&](const TensorList& in) {
            auto w = hc.width(in[0]);
            Tensor u = views == 1 ? w.branch_input : w.branch_input.sum({0});
            return hc.add_residual(w, tanh(u) * 1.5);  // a branch, so the depth path sees u's gradient too
          },
          inputs);
      CHECK_MESSAGE(result.ok, result.message);
    }
}

TEST_CASE("connections hc: bad input names the module and the shapes") {
  CHECK_THROWS_WITH_AS(HyperConnections(0, f64(4, 0)), doctest::Contains("num_streams must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(HyperConnections(2, {.dim = 6, .num_fracs = 4}),
                       doctest::Contains("dim (6) must be divisible by num_fracs (4)"), ShapeError);
  HyperConnections hc(3, f64(4, 0));
  CHECK_THROWS_WITH_AS(hc.width(zeros({4, 2, 4}, {.dtype = DType::Float64})),
                       doctest::Contains("residuals [4,2,4] must be [B·S, ..., 4]"), ShapeError);
  CHECK_THROWS_WITH_AS(hc.width(zeros({3, 2, 5}, {.dtype = DType::Float64})), doctest::Contains("residuals [3,2,5]"),
                       ShapeError);
  auto w = hc.width(zeros({3, 2, 4}, {.dtype = DType::Float64}));
  CHECK_THROWS_WITH_AS(hc.add_residual(w, zeros({1, 3, 4}, {.dtype = DType::Float64})),
                       doctest::Contains("branch output [1,3,4] must have the branch input's shape [1,2,4]"), ShapeError);
  CHECK_THROWS_WITH_AS(hc.forward(zeros({3, 2, 4})), doctest::Contains("forward() needs a branch"), Error);
}
