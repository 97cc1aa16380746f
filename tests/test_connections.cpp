// Hyper-connections: the library's invariants (docs/connections.md), a forward check against loops written
// from the equations, gradchecks with perturbed parameters, and error messages.
#include <cmath>
#include <optional>
#include <tuple>

#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;
using hcgrad::autograd::gradcheck;
using TensorList = std::vector<Tensor>;

namespace {

HyperConnectionsOptions f64(int64_t dim, int64_t layer_index, bool tanh = true, int64_t views = 1) {
  return {.dim = dim, .layer_index = layer_index, .tanh = tanh, .num_input_views = views, .dtype = DType::Float64};
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
  const PlainResidualStack stack(D, L, 1);
  std::vector<std::shared_ptr<HyperConnections>> layers;
  for (int64_t i = 0; i < L; ++i) layers.push_back(std::make_shared<HyperConnections>(S, f64(D, i), stack.branch(i)));
  Tensor x = leaf({B, N, D}).detach();
  Tensor plain = stack.forward(x);
  Tensor streams = x.unsqueeze(1).expand({B, S, N, D}).reshape({B * S, N, D});  // expand: copy per stream
  for (auto& layer : layers) streams = layer->forward(streams);
  Tensor reduced = streams.reshape({B, S, N, D}).sum({1});  // reduce: sum of the streams
  CHECK(max_abs_diff(values(reduced), values(plain * double(S))) < 1e-12);
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

// ---- mHC ----

namespace {
ManifoldHyperConnectionsOptions mhc64(int64_t dim, int64_t layer_index, bool v1 = true, int64_t proposals = 1) {
  return {.dim = dim, .layer_index = layer_index, .streams_in_batch = v1, .num_dynamic_alpha_proposals = proposals,
          .dtype = DType::Float64};
}
}  // namespace

TEST_CASE("connections mhc: the init numbers of the library") {
  const int64_t S = 4, B = 2, N = 3, D = 8;
  ManifoldHyperConnections mhc(S, mhc64(D, 1));
  Tensor x = leaf({B, N, D}).detach();
  Tensor equal_streams = x.unsqueeze(1).expand({B, S, N, D}).reshape({B * S, N, D});
  auto w = mhc.width(equal_streams);
  const double sigma1 = 1 / (1 + std::exp(-1.0));
  for (int64_t s = 0; s < S; ++s) CHECK(values(w.h_pre)[s] == doctest::Approx(s == 1 ? sigma1 : 0.5).epsilon(1e-12));
  const double diag = 1 / (1 + (S - 1) / std::exp(1.0)), off = diag / std::exp(1.0);
  CHECK(diag == doctest::Approx(0.4753669).epsilon(1e-6));
  std::vector<double> h = values(w.h_res);
  for (int64_t i = 0; i < S; ++i)
    for (int64_t j = 0; j < S; ++j) CHECK(h[i * S + j] == doctest::Approx(i == j ? diag : off).epsilon(1e-9));
  for (double b : values(w.beta)) CHECK(b == doctest::Approx(2 * sigma1).epsilon(1e-12));
  // Equal streams: u = (σ(1) + (S-1)/2) x and each new stream is x + 2σ(1) y.
  CHECK(max_abs_diff(values(w.branch_input), values(x * (sigma1 + (S - 1) / 2.0))) < 1e-12);
  Tensor y = leaf({B, N, D}).detach();
  Tensor expected = (x + y * (2 * sigma1)).unsqueeze(1).expand({B, S, N, D}).reshape({B * S, N, D});
  CHECK(max_abs_diff(values(mhc.add_residual(w, y)), values(expected)) < 1e-12);
}

TEST_CASE("connections mhc: H_res rows sum to 1, v1 and v2 layouts agree, identical proposals equal one") {
  const int64_t S = 3, B = 2, N = 4, D = 6;
  ManifoldHyperConnections v1(S, mhc64(D, 2)), v2(S, mhc64(D, 2, false)), p2(S, mhc64(D, 2, true, 2));
  perturb(v1, 5);
  {
    autograd::NoGradGuard no_grad;
    const std::vector<Tensor> from = v1.parameters(), to_v2 = v2.parameters(), to_p2 = p2.parameters();
    for (size_t i = 0; i < from.size(); ++i) {
      Tensor(to_v2[i]).copy_(from[i]);
      Tensor(to_p2[i]).copy_(from[i].dim() == 3 ? from[i].expand({2, D, S + 1}) : from[i]);  // both proposals = v1's one
    }
  }
  Tensor x1 = leaf({B * S, N, D}).detach();  // v1: [B·S, N, D]
  Tensor x2 = x1.reshape({B, S, N, D}).permute({0, 2, 1, 3}).contiguous();  // v2: [B, N, S, D]
  auto w1 = v1.width(x1), w2 = v2.width(x2), wp = p2.width(x1);
  std::vector<double> row_sums = values(sum(w1.h_res, {-1}));
  CHECK(max_abs_diff(row_sums, std::vector<double>(row_sums.size(), 1.0)) < 1e-14);
  Tensor y = leaf({B, N, D}).detach();
  Tensor out1 = v1.add_residual(w1, y), out2 = v2.add_residual(w2, y);
  CHECK(max_abs_diff(values(out1.reshape({B, S, N, D}).permute({0, 2, 1, 3})), values(out2)) < 1e-14);
  CHECK(max_abs_diff(values(p2.add_residual(wp, y)), values(out1)) < 1e-14);
}

TEST_CASE("connections mhc gradcheck: both layouts, two proposals, log-domain Sinkhorn") {
  for (bool layout_v1 : {true, false}) {
    ManifoldHyperConnectionsOptions options = mhc64(4, 1, layout_v1, 2);
    options.sinkhorn_iters = 5;
    options.sinkhorn_domain = layout_v1 ? SinkhornDomain::Linear : SinkhornDomain::Log;
    ManifoldHyperConnections mhc(3, options);
    perturb(mhc, 13);
    auto result = gradcheck_connection(mhc, layout_v1 ? leaf({6, 2, 4}) : leaf({2, 2, 3, 4}));
    CHECK_MESSAGE(result.ok, result.message);
  }
}

TEST_CASE("connections mhc: bad input names the module and the shapes") {
  CHECK_THROWS_WITH_AS(ManifoldHyperConnections(4, {.dim = 8, .sinkhorn_iters = 0}),
                       doctest::Contains("sinkhorn_iters must be >= 1, got 0"), Error);
  ManifoldHyperConnections v2(4, mhc64(8, 0, false));
  CHECK_THROWS_WITH_AS(v2.width(zeros({2, 3, 3, 8}, {.dtype = DType::Float64})),
                       doctest::Contains("residuals [2,3,3,8] must be [B, ..., 4, 8]"), ShapeError);
  ManifoldHyperConnections v1(4, mhc64(8, 0));
  CHECK_THROWS_WITH_AS(v1.width(zeros({6, 3, 8}, {.dtype = DType::Float64})),
                       doctest::Contains("residuals [6,3,8] must be [B·S, ..., 8]"), ShapeError);
}

// ---- Frac-Connections (HyperConnections with num_fracs > 1) ----

namespace {
HyperConnectionsOptions frac64(int64_t dim, int64_t fracs, int64_t layer_index, int64_t views = 1) {
  return {.dim = dim, .layer_index = layer_index, .num_input_views = views, .num_fracs = fracs, .dtype = DType::Float64};
}
}  // namespace

TEST_CASE("connections frac: at init the branch reads the home stream whole and every stream gets x_t + y") {
  // The Frac paper's init (Y = I, A = I, diagonal β = 1): identity-like for any streams and fractions.
  for (auto [S, F] : {std::pair<int64_t, int64_t>{1, 4}, {2, 2}, {3, 2}}) {
    const int64_t B = 2, N = 3, D = 4 * F, layer = 1;
    HyperConnections frac(S, frac64(D, F, layer));
    Tensor x = leaf({B * S, N, D}).detach(), y = leaf({B, N, D}).detach();
    auto w = frac.width(x);
    const int64_t home = layer % S;
    for (int64_t b = 0; b < B; ++b)
      CHECK(max_abs_diff(values(w.branch_input.select(0, b)), values(x.select(0, b * S + home))) < 1e-15);
    CHECK(max_abs_diff(values(w.residuals), values(x)) < 1e-15);
    Tensor expected = x + y.unsqueeze(1).expand({B, S, N, D}).reshape({B * S, N, D});
    CHECK(max_abs_diff(values(frac.add_residual(w, y)), values(expected)) < 1e-15);
  }
}

TEST_CASE("connections hc and frac: forward equals loops written from the equations (perturbed parameters)") {
  // docs/connections.md with hcgrad's static β per (f1, s, f2); F = 1 is textbook DHC.
  for (auto [F, use_tanh] : {std::pair<int64_t, bool>{1, true}, {1, false}, {2, true}}) {
    const int64_t S = 2, V = 1, B = 2, N = 2, D = 6, d = D / F, C = V * F + S * F;
    HyperConnectionsOptions options = frac64(D, F, 1);
    options.tanh = use_tanh;
    HyperConnections hc(S, options);
    perturb(hc, 17);
    auto phi = [&](double v) { return use_tanh ? std::tanh(v) : v; };
    Tensor x = leaf({B * S, N, D}).detach(), y = leaf({B, N, D}).detach();
    auto w = hc.width(x);
    Tensor out = hc.add_residual(w, y);
    auto X = values(x), Y = values(y), A = values(hc.static_alpha), Wa = values(hc.dynamic_alpha_fn),
         Bb = values(hc.static_beta), Wb = values(hc.dynamic_beta_fn), G = values(hc.norm->gamma);
    const double sa = hc.dynamic_alpha_scale.item(), sb = hc.dynamic_beta_scale.item();
    std::vector<double> expected_u(static_cast<size_t>(B * N * D)), expected_out(static_cast<size_t>(B * S * N * D));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n) {
        auto xf = [&](int64_t f, int64_t s, int64_t k) { return X[((b * S + s) * N + n) * D + f * d + k]; };
        // x̂[f, s], α[f1, s, c], β[f1, s, f2]
        std::vector<double> alpha(F * S * C), beta(F * S * F);
        for (int64_t f = 0; f < F; ++f)
          for (int64_t s = 0; s < S; ++s) {
            double sq = 0;
            for (int64_t k = 0; k < d; ++k) sq += xf(f, s, k) * xf(f, s, k);
            std::vector<double> xh(d);
            for (int64_t k = 0; k < d; ++k) xh[k] = xf(f, s, k) / std::sqrt(sq) * std::sqrt(double(d)) * (G[k] + 1);
            for (int64_t c = 0; c < C; ++c) {
              double dot = 0;
              for (int64_t k = 0; k < d; ++k) dot += xh[k] * Wa[k * C + c];
              alpha[(f * S + s) * C + c] = A[(f * S + s) * C + c] + sa * phi(dot);
            }
            for (int64_t f2 = 0; f2 < F; ++f2) {
              double dot = 0;
              for (int64_t k = 0; k < d; ++k) dot += xh[k] * Wb[k * F + f2];
              beta[(f * S + s) * F + f2] = Bb[(f * S + s) * F + f2] + sb * phi(dot);
            }
          }
        // m[f2, t] = Σ_{f1, s} α[f1, s, f2·(V+S) + t] x[f1, s]
        auto m = [&](int64_t f2, int64_t t, int64_t k) {
          double v = 0;
          for (int64_t f1 = 0; f1 < F; ++f1)
            for (int64_t s = 0; s < S; ++s) v += alpha[(f1 * S + s) * C + f2 * (V + S) + t] * xf(f1, s, k);
          return v;
        };
        for (int64_t f2 = 0; f2 < F; ++f2)
          for (int64_t k = 0; k < d; ++k) {
            expected_u[(b * N + n) * D + f2 * d + k] = m(f2, 0, k);
            for (int64_t s = 0; s < S; ++s) {
              double o = 0;
              for (int64_t f1 = 0; f1 < F; ++f1) o += beta[(f1 * S + s) * F + f2] * Y[(b * N + n) * D + f1 * d + k];
              expected_out[((b * S + s) * N + n) * D + f2 * d + k] = m(f2, V + s, k) + o;
            }
          }
      }
    CHECK(close(w.branch_input, {B, N, D}, expected_u, 1e-12));
    CHECK(close(out, {B * S, N, D}, expected_out, 1e-12));
  }
}

TEST_CASE("connections frac gradcheck: fractions alone and mixed with streams and views") {
  for (auto [S, F, V] : {std::tuple<int64_t, int64_t, int64_t>{1, 3, 1}, {2, 2, 1}, {2, 2, 2}}) {
    HyperConnections hc(S, frac64(2 * F, F, 1, V));
    perturb(hc, 19);
    std::vector<Tensor> inputs = {leaf({2 * S, 2, 2 * F})};
    for (const Tensor& p : hc.parameters()) inputs.push_back(p);
    auto result = gradcheck(
        [&](const TensorList& in) {
          auto w = hc.width(in[0]);
          Tensor u = V == 1 ? w.branch_input : w.branch_input.sum({0});
          return hc.add_residual(w, tanh(u) * 1.5);
        },
        inputs);
    CHECK_MESSAGE(result.ok, result.message);
  }
}

// ---- the factory and the common connection interface ----

TEST_CASE("connections factory: disable gives exactly the plain residual, with identity expand and reduce") {
  auto branch = [](const Tensor& u) { return tanh(u) * 0.5 + 1.0; };
  for (std::optional<bool> disable : {std::optional<bool>(true), std::optional<bool>()}) {
    // Explicitly disabled with 4 streams, or by default with 1 stream and 1 fraction.
    const int64_t S = disable ? 4 : 1;
    auto [init_hc, expand_stream, reduce_stream] = hyper_connections(S, {.disable = disable});
    Connection hc = init_hc({.dim = 4}, branch);
    CHECK(hc->name() == "Residual");
    CHECK(hc->named_parameters().empty());
    Tensor x = leaf({2, 3, 4}).detach();
    CHECK(expand_stream(x).same(x));
    Tensor out = reduce_stream(hc(x));
    CHECK(max_abs_diff(values(out), values(branch(x) + x)) == 0);
  }
  auto [init_hc, expand_stream, reduce_stream] = hyper_connections(1, {.num_fracs = 2});  // fractions: not disabled
  CHECK(init_hc({.dim = 4})->name() == "HyperConnections");
}

TEST_CASE("connections factory: wrapped, manual, decorate_branch and forward give the same streams") {
  const int64_t S = 3, D = 4;
  auto [init_hc, expand_stream, reduce_stream] = hyper_connections(S);
  auto branch = [](const Tensor& u) { return tanh(u) * 1.5; };
  Connection wrapped = init_hc({.dim = D, .layer_index = 1, .dtype = DType::Float64}, branch);
  Connection manual = init_hc({.dim = D, .layer_index = 1, .dtype = DType::Float64});
  perturb(*wrapped, 23);
  copy_parameters(*wrapped, *manual);
  Tensor x = expand_stream(leaf({2, 5, D}).detach());
  CHECK(x.shape() == Shape{2 * S, 5, D});
  Tensor out_wrapped = wrapped(x);
  auto [branch_input, add_residual] = manual(x);
  Tensor out_manual = add_residual(branch(branch_input));
  Tensor out_decorated = manual->decorate_branch(branch)(x);
  CHECK(max_abs_diff(values(out_wrapped), values(out_manual)) == 0);
  CHECK(max_abs_diff(values(out_decorated), values(out_manual)) == 0);
  CHECK(max_abs_diff(values(wrapped->forward(x)), values(out_manual)) == 0);
  CHECK(reduce_stream(out_wrapped).shape() == Shape{2, 5, D});

  // Misuse is explained, not crashed on.
  auto unwrapped_result = [&] { Tensor t = manual(x); };
  CHECK_THROWS_WITH_AS(unwrapped_result(), doctest::Contains("HyperConnections: this connection has no branch"), Error);
  CHECK_THROWS_WITH_AS(wrapped->decorate_branch(branch), doctest::Contains("built without a branch"), Error);
  CHECK_THROWS_WITH_AS(hyper_connections(0), doctest::Contains("num_streams must be >= 1, got 0"), Error);
  auto [frac_init, frac_expand, frac_reduce] = hyper_connections(2, {.num_fracs = 2});
  CHECK_THROWS_WITH_AS(frac_init({.dim = 8, .num_fracs = 4}),
                       doctest::Contains("init_hc got num_fracs = 4 but the factory was made with num_fracs = 2"), Error);
  CHECK_THROWS_WITH_AS(frac_init({.dim = 7}), doctest::Contains("dim (7) must be divisible by num_fracs (2)"),
                       ShapeError);
}

TEST_CASE("connections factory: expand, Frac layers at init, reduce is S times the plain residual network") {
  const int64_t S = 2, F = 2, B = 2, N = 3, D = 8, L = 3;
  auto [init_hc, expand_stream, reduce_stream] = hyper_connections(S, {.num_fracs = F});
  Generator gen(3);
  std::vector<std::shared_ptr<Linear>> branches;
  std::vector<Connection> layers;
  for (int64_t i = 0; i < L; ++i) {
    branches.push_back(std::make_shared<Linear>(D, D, gen, LinearOptions{.dtype = DType::Float64}));
    auto linear = branches.back();
    layers.push_back(init_hc({.dim = D, .layer_index = i, .dtype = DType::Float64},
                             [linear](const Tensor& u) { return tanh(linear->forward(u)); }));
  }
  Tensor x = leaf({B, N, D}).detach(), plain = x, streams = expand_stream(x);
  for (int64_t i = 0; i < L; ++i) {
    plain = plain + tanh(branches[i]->forward(plain));
    streams = layers[i](streams);
  }
  CHECK(max_abs_diff(values(reduce_stream(streams)), values(plain * double(S))) < 1e-12);
}

TEST_CASE("connections hc: channel_first equals channel-last on permuted data, a custom depth_residual_fn") {
  const int64_t S = 2, B = 2, D = 4, H = 2, W = 3;
  HyperConnectionsOptions first = f64(D, 1), last = f64(D, 1);
  first.channel_first = true;
  HyperConnections cf(S, first), cl(S, last);
  perturb(cf, 29);
  copy_parameters(cf, cl);
  Tensor x_last = leaf({B * S, H, W, D}).detach(), y_last = leaf({B, H, W, D}).detach();
  Tensor x_first = x_last.permute({0, 3, 1, 2}), y_first = y_last.permute({0, 3, 1, 2});  // [B·S, D, H, W]
  auto wf = cf.width(x_first);
  auto wl = cl.width(x_last);
  CHECK(wf.branch_input.shape() == Shape{B, D, H, W});
  CHECK(max_abs_diff(values(wf.branch_input), values(wl.branch_input.permute({0, 3, 1, 2}))) < 1e-14);
  CHECK(max_abs_diff(values(wf.residuals), values(wl.residuals.permute({0, 3, 1, 2}))) < 1e-14);
  CHECK(max_abs_diff(values(cf.add_residual(wf, y_first)), values(cl.add_residual(wl, y_last).permute({0, 3, 1, 2}))) <
        1e-14);
  CHECK_THROWS_WITH_AS(cf.width(zeros({4, 3, 2, 2}, {.dtype = DType::Float64})),
                       doctest::Contains("channel-first residuals [4,3,2,2] must be [B·S, 4, ...]"), ShapeError);

  // depth_residual_fn replaces o + r (here 2·o + r, checked against the default's pieces).
  HyperConnectionsOptions custom = f64(D, 1);
  custom.depth_residual_fn = std::make_shared<DepthResidualFn>([](const Tensor& o, const Tensor& r) { return o * 2.0 + r; });
  HyperConnections doubled(S, custom);
  HyperConnections plain(S, f64(D, 1));  // both at init: r = x, o = β·y = y per stream
  auto wd = doubled.width(x_last);
  auto wp = plain.width(x_last);
  Tensor o = plain.add_residual(wp, y_last) - wp.residuals;
  CHECK(max_abs_diff(values(doubled.add_residual(wd, y_last)), values(o * 2.0 + wp.residuals)) < 1e-14);
}

// ---- the GPT with each connection ----

TEST_CASE("connections gpt: each connection builds, trains a step, and starts where the plain residual starts") {
  GPTConfig base{.vocab_size = 32, .context = 8, .layers = 2, .dim = 16, .heads = 2, .dtype = DType::Float64};
  Tensor ids = from_vector(std::vector<int64_t>{1, 5, 7, 2, 9, 3, 4, 8, 2, 6, 1, 0}, {2, 6});
  GPT residual(base, 7);
  std::vector<double> reference = values(residual.forward(ids));
  struct Case {
    std::string connection;
    int64_t streams, fracs;
    // Frac on one stream starts exactly as the residual network; hc's final LayerNorm sees S·x, which it
    // normalises like x only up to its epsilon (1e-5 against the small variance of a fresh model).
    double tol;
  };
  for (const Case& c : {Case{"hc", 4, 1, 2e-2}, Case{"frac", 1, 4, 1e-12}, Case{"hc", 2, 2, 2e-2},
                        Case{"frac-paper", 1, 4, 1e-12}, Case{"frac-paper", 2, 2, 2e-2}, Case{"mhc", 4, 1, -1},
                        Case{"mhc-paper", 4, 1, -1}, Case{"mhc-identity", 4, 1, 2e-2},
                        Case{"mhc-paper-identity", 4, 1, 2e-2}}) {
    CAPTURE(c.connection);
    GPTConfig config = base;
    config.connection = c.connection;
    config.streams = c.streams;
    config.fracs = c.fracs;
    GPT model(config, 7);
    Tensor logits = model.forward(ids);
    CHECK(logits.shape() == Shape{2, 6, 32});
    if (c.tol > 0) CHECK(max_abs_diff(values(logits), reference) < c.tol);  // HC and Frac start as the residual
    bool has_static = false;
    const std::string probe =
        c.connection.starts_with("mhc-paper") ? "blocks.0.hc_attn.b_res" : "blocks.0.hc_attn.static_";
    for (const auto& [name, p] : model.named_parameters()) has_static |= name.starts_with(probe);
    CHECK(has_static);
    // Static connection weights (and the paper mHC's biases) are not decayed.
    for (const Tensor& p : model.decay_split().decay)
      for (const auto& [name, q] : model.named_parameters())
        if (q.same(p)) {
          const bool connection_static = name.find("static_") != std::string::npos || name.find(".b_") != std::string::npos;
          CHECK_MESSAGE(!connection_static, name);
        }
    // Causal: changing the last token leaves the logits of every earlier position as they were (the
    // connections mix streams and fractions within a token only).
    Tensor changed = ids.clone();
    {
      autograd::NoGradGuard no_grad;
      changed.narrow(1, 5, 1).fill_(31.0);
    }
    CHECK(max_abs_diff(values(model.forward(changed).narrow(1, 0, 5)), values(logits.narrow(1, 0, 5))) == 0);
    Tensor loss = model.loss(ids, ids);
    loss.backward();
    for (const auto& [name, p] : model.named_parameters()) CHECK_MESSAGE(p.grad().defined(), name);
  }
  GPTConfig bad = base;
  bad.connection = "frac";
  CHECK_THROWS_WITH_AS(GPT(bad, 1), doctest::Contains("connection frac needs fracs > 1"), Error);
  bad.fracs = 3;
  CHECK_THROWS_WITH_AS(GPT(bad, 1), doctest::Contains("fracs (3) must be >= 1 and divide dim (16)"), Error);
  bad.connection = "ladder";
  CHECK_THROWS_WITH_AS(GPT(bad, 1), doctest::Contains(("connection must be " + connection_names_phrase()).c_str()), Error);
  CHECK(connection_names_phrase() ==
        "residual, hc, frac, frac-paper, mhc, mhc-identity, mhc-paper, mhc-paper-identity, hc-fused, frac-fused, frac-paper-fused, mhc-fused or mhc-paper-fused");
  bad.connection = "frac-paper";
  bad.fracs = 1;
  CHECK_THROWS_WITH_AS(GPT(bad, 1), doctest::Contains("connection frac-paper needs fracs > 1"), Error);
  bad.connection = "mhc-identity";
  bad.fracs = 2;
  CHECK_THROWS_WITH_AS(GPT(bad, 1), doctest::Contains("connection mhc-identity has no fractions"), Error);
}

TEST_CASE("connections hc: streams next to the features (fused merge) equal the library layout, values and gradients") {
  const int64_t S = 4, B = 2, N = 3, D = 8;
  for (int64_t fracs : {int64_t(1), int64_t(2)}) {  // F = 1 fuses the merge; F = 2 takes the general path
    CAPTURE(fracs);
    HyperConnectionsOptions in_batch = f64(D, 1);
    in_batch.num_fracs = fracs;
    HyperConnectionsOptions next_to = in_batch;
    next_to.streams_in_batch = false;
    HyperConnections a(S, in_batch), b(S, next_to);
    perturb(a, 3);
    copy_parameters(a, b);
    const Tensor x = leaf({B, N, S, D});                                   // [B, N, S, D]
    const Tensor x_batch = x.permute({0, 2, 1, 3}).reshape({B * S, N, D});  // [B·S, N, D]
    const Tensor out_a = run_connection(a, x_batch);
    const Tensor out_b = run_connection(b, x);
    CHECK(out_b.shape() == Shape{B, N, S, D});
    CHECK(max_abs_diff(values(out_a.reshape({B, S, N, D}).permute({0, 2, 1, 3})), values(out_b)) < 1e-14);
    CHECK(gradcheck_connection(b, x.detach()).ok);
    CHECK_THROWS_WITH_AS(b.width(leaf({B * S, N, D})), doctest::Contains("must be [B, ..., 4, 8]"), ShapeError);
  }
}
