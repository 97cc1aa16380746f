// hc_width and hc_depth (core/ops/hc_step.cpp): the fused split of HyperConnections, mHC and the two papers'
// forms equals the unfused composition in value and gradient for every option the fused ops take (both
// layouts, one stream or several, fractions, tanh or not, both Sinkhorn domains, odd sizes); the ops read
// strided streams, take empty batches, and refuse bad operands naming the op. (Float64 finite-difference
// gradchecks: test_gradcheck.cpp; CUDA kernels: tests/emulation.)
#include "helpers.h"

using namespace hctest;

namespace {

// The new streams and every gradient of sum(new · probe) through split(), with branch u -> 1.5·tanh(u).
struct SplitRun {
  Tensor out, grad_residuals;
  std::vector<Tensor> grads;  // the module's parameters, in order
};

template <class Module>
SplitRun run_split(const Module& hc, const Tensor& residuals, const Tensor& probe) {
  Tensor r = residuals.detach().requires_grad_();
  for (const Tensor& p : hc.parameters()) p.zero_grad();
  nn::ConnectionSplit s = hc.split(r);
  SplitRun run;
  run.out = s.add_residual(tanh(s.branch_input) * 1.5);
  sum(run.out * probe).backward();
  run.grad_residuals = r.grad();
  for (const Tensor& p : hc.parameters()) run.grads.push_back(p.grad());
  return run;
}

}  // namespace

// Values and every gradient agree between two runs (fused and unfused).
// |a - b| <= tol · (1 + max |b|): the parameter gradients sum over every token, so their size (and the
// rounding of two summation orders) grows with the input.
static bool agree(const Tensor& a, const Tensor& b, double tol) {
  const std::vector<double> want = values(b);
  double largest = 0;
  for (double v : want) largest = std::max(largest, std::abs(v));
  return max_abs_diff(values(a), want) <= tol * (1 + largest);
}

static void check_same(const SplitRun& a, const SplitRun& b, const Shape& shape, double tol) {
  REQUIRE(a.out.shape() == shape);
  CHECK(agree(a.out, b.out, tol));
  CHECK(agree(a.grad_residuals, b.grad_residuals, tol));
  REQUIRE(a.grads.size() == b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    CAPTURE(i);
    REQUIRE(a.grads[i].defined() == b.grads[i].defined());
    if (a.grads[i].defined()) CHECK(agree(a.grads[i], b.grads[i], tol));
  }
}

// Module (options.fused) against the same module as the composition of small ops, and the fused split keeping
// its coefficients for backward (options.recompute = false) against it too; perturbed weights, streams of
// `shape` (the layout options.streams_in_batch says).
template <class Module, class Options>
void check_fused_split(int64_t streams, Options options, uint64_t seed) {
  const int64_t B = 2, N = 3, D = options.dim;
  const Shape shape = options.streams_in_batch ? Shape{B * streams, N, D} : Shape{B, N, streams, D};
  options.fused = true;
  Module fused(streams, options);
  options.fused = false;
  Module unfused(streams, options);
  options.fused = true;
  options.recompute = false;
  Module kept(streams, options);
  perturb(fused, seed);
  copy_parameters(fused, unfused);
  copy_parameters(fused, kept);
  const Tensor x = leaf(shape).detach(), probe = leaf(shape).detach();
  const SplitRun reference = run_split(unfused, x, probe);
  check_same(run_split(fused, x, probe), reference, shape, 1e-12);
  check_same(run_split(kept, x, probe), reference, shape, 1e-12);
}

TEST_CASE("hc_step: HyperConnections' fused split equals the unfused composition, values and gradients") {
  struct Config {
    int64_t streams, fracs, dim;  // dim 156: rows of 39 to 156 features, the kernels' vector blocks and tails
  };
  for (const bool streams_in_batch : {true, false})
    for (const Config config : {Config{1, 4, 12}, Config{3, 1, 12}, Config{4, 1, 156}, Config{2, 3, 156}})
      for (const bool use_tanh : {true, false}) {
        CAPTURE(streams_in_batch);
        CAPTURE(config.streams);
        CAPTURE(config.fracs);
        CAPTURE(use_tanh);
        check_fused_split<nn::HyperConnections>(
            config.streams, nn::HyperConnectionsOptions{.dim = config.dim, .layer_index = 1, .tanh = use_tanh,
                                                        .num_fracs = config.fracs,
                                                        .streams_in_batch = streams_in_batch, .dtype = DType::Float64},
            11);
      }
}

TEST_CASE("hc_step: mHC's fused split equals the unfused composition, values and gradients") {
  struct Config {
    int64_t streams, fracs, dim;
  };
  for (const bool streams_in_batch : {true, false})
    for (const Config config : {Config{1, 2, 12}, Config{3, 1, 156}, Config{4, 1, 12}, Config{2, 2, 156}})
      for (const SinkhornDomain domain : {SinkhornDomain::Linear, SinkhornDomain::Log}) {
        CAPTURE(streams_in_batch);
        CAPTURE(config.streams);
        CAPTURE(config.fracs);
        CAPTURE(domain == SinkhornDomain::Log);
        nn::ManifoldHyperConnectionsOptions options;
        options.dim = config.dim;
        options.layer_index = 1;
        options.streams_in_batch = streams_in_batch;
        options.sinkhorn_iters = 5;
        options.sinkhorn_domain = domain;
        options.num_fracs = config.fracs;
        options.dtype = DType::Float64;
        check_fused_split<nn::ManifoldHyperConnections>(config.streams, options, 12);
      }
}

TEST_CASE("hc_step: the mHC paper's fused split equals the unfused composition, values and gradients") {
  for (const bool streams_in_batch : {true, false})
    for (const int64_t S : {1, 3, 4})
      for (const SinkhornDomain domain : {SinkhornDomain::Linear, SinkhornDomain::Log}) {
        CAPTURE(streams_in_batch);
        CAPTURE(S);
        CAPTURE(domain == SinkhornDomain::Log);
        nn::ManifoldHyperConnectionsOptions options;
        options.dim = S == 3 ? 52 : 12;  // S·D = 156: the vector blocks and their tails
        options.layer_index = 2;
        options.streams_in_batch = streams_in_batch;
        options.sinkhorn_iters = 5;
        options.sinkhorn_domain = domain;
        options.variant = nn::MhcVariant::Paper;
        options.dtype = DType::Float64;
        check_fused_split<nn::PaperManifoldHyperConnections>(S, options, 13);
      }
}

TEST_CASE("hc_step: the Frac paper's fused split equals the unfused composition, values and gradients") {
  struct Config {
    int64_t streams, fracs, dim;  // dim 156: rows of 39 and 52 features, the vector blocks and their tails
  };
  for (const bool streams_in_batch : {true, false})
    for (const Config config : {Config{1, 4, 12}, Config{1, 4, 156}, Config{2, 3, 156}, Config{3, 1, 12}})
      for (const bool use_tanh : {true, false}) {
        CAPTURE(streams_in_batch);
        CAPTURE(config.streams);
        CAPTURE(config.fracs);
        CAPTURE(use_tanh);
        check_fused_split<nn::PaperFracConnections>(
            config.streams, nn::HyperConnectionsOptions{.dim = config.dim, .layer_index = 1, .tanh = use_tanh,
                                                        .num_fracs = config.fracs,
                                                        .streams_in_batch = streams_in_batch, .dtype = DType::Float64,
                                                        .variant = nn::HcVariant::Paper},
            14);
      }
}

TEST_CASE("hc_step: the ops read strided streams and empty batches") {
  const HcStep step{.streams = 2, .fracs = 2};
  const Tensor gamma = leaf({3}), ws = leaf({4, 2}), w = leaf({3, 2}), sc = leaf({2});
  const Tensor wd = leaf({3, 6}), sd = leaf({4, 6}), scd = leaf({6});
  // Features not contiguous (every other element of a wider tensor) and streams outermost: the same values.
  const Tensor wide = leaf({2, 2, 3, 12}).detach();
  const Tensor x = wide.permute({0, 2, 1, 3}).slice(3, 0, 12, 2);  // [2, 3, 2, 6]
  const Tensor y = leaf({2, 3, 6}).detach();
  CHECK(max_abs_diff(values(hc_width(x, gamma, ws, w, sc, step)),
                     values(hc_width(x.contiguous(), gamma, ws, w, sc, step))) == 0);
  CHECK(max_abs_diff(values(hc_depth(x, y, gamma, sd, wd, scd, step)),
                     values(hc_depth(x.contiguous(), y, gamma, sd, wd, scd, step))) == 0);
  // No tokens: empty outputs, and zero parameter gradients.
  const Tensor none = leaf({2, 0, 2, 6});
  Tensor out = hc_depth(none, leaf({2, 0, 6}), gamma, sd, wd, scd, step);
  CHECK(out.shape() == Shape{2, 0, 2, 6});
  Tensor u = hc_width(none, gamma, ws, w, sc, step);
  CHECK(u.shape() == Shape{2, 0, 6});
  ws.zero_grad();
  (sum(out) + sum(u)).backward();
  CHECK(values(ws.grad()) == std::vector<double>(8, 0.0));
}

TEST_CASE("hc_step: bad operands are refused naming the op and the shapes") {
  const HcStep step{.streams = 2, .fracs = 2};
  const Tensor x = leaf({2, 3, 2, 6}), gamma = leaf({3}), ws = leaf({4, 2}), w = leaf({3, 2}), sc = leaf({2});
  CHECK_THROWS_WITH_AS(hc_width(leaf({2, 3, 3, 6}), gamma, ws, w, sc, step),
                       doctest::Contains("hc_width: streams [2,3,3,6] must be [B, N, S, D] with S = 2"), ShapeError);
  CHECK_THROWS_WITH_AS(hc_width(leaf({2, 3, 2, 5}), gamma, ws, w, sc, step),
                       doctest::Contains("D a multiple of F = 2"), ShapeError);
  CHECK_THROWS_WITH_AS(hc_width(x, gamma, leaf({4, 3}), w, sc, step),
                       doctest::Contains("expected gamma [3], static_weights [4, 2]"), ShapeError);
  CHECK_THROWS_WITH_AS(hc_width(x, gamma, ws, w, sc, {.streams = 0}), doctest::Contains("streams and fracs must be >= 1"),
                       Error);
  CHECK_THROWS_WITH_AS(hc_depth(x, leaf({2, 3, 5}), gamma, leaf({4, 6}), leaf({3, 6}), leaf({6}), step),
                       doctest::Contains("hc_depth: branch output [2,3,5] must be [2, 3, 6]"), ShapeError);
  CHECK_THROWS_WITH_AS(hc_width(x.to(DType::Float32), gamma, ws, w, sc, step), doctest::Contains("hc_width"), Error);
  // The paper's form: mHC's gates and one stream fraction only, and a projection over the token's S·D.
  CHECK_THROWS_WITH_AS(hc_width(x, gamma, ws, w, sc, {.streams = 2, .fracs = 2, .token_projection = true}),
                       doctest::Contains("token_projection (the mHC paper's form) needs manifold and fracs = 1"), Error);
  CHECK_THROWS_WITH_AS(hc_width(x, gamma, ws, w, sc, {.streams = 2, .fracs = 2, .manifold = true, .diagonal_beta = true}),
                       doctest::Contains("diagonal_beta (the Frac paper's form) is not manifold"), Error);
  // The Frac paper's depth step has S·F + 1 columns (β is one).
  CHECK_THROWS_WITH_AS(hc_depth(x, leaf({2, 3, 6}), gamma, leaf({4, 6}), leaf({3, 6}), leaf({6}),
                                {.streams = 2, .fracs = 2, .diagonal_beta = true}),
                       doctest::Contains("static_weights [4, 5]"), ShapeError);
  const HcStep paper{.streams = 2, .manifold = true, .token_projection = true};
  CHECK_THROWS_WITH_AS(hc_width(x, leaf({12}), leaf({2, 1}), leaf({12, 1}), leaf({1}), paper),
                       doctest::Contains("expected gamma [12], static_weights [2, 1], weight [12, 2]"), ShapeError);
}
