// The stream diagnostics (nn/diagnostics.h) on matrices made by hand with known answers, and the maps the
// connection modules report: applying them by hand reproduces each module's own output.
#include "hcgrad/nn/diagnostics.h"
#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;
using namespace hcgrad::nn::diagnostics;

namespace {

Matrix matrix(int64_t rows, int64_t cols, std::initializer_list<double> values) {
  Matrix m(rows, cols);
  auto it = values.begin();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m(r, c) = *it++;
  return m;
}

Vector vector(std::initializer_list<double> values) {
  Vector v(static_cast<int64_t>(values.size()));
  int64_t i = 0;
  for (double x : values) v(i++) = x;
  return v;
}

}  // namespace

TEST_CASE("diagnostics: Amax gain reads the largest |row sum|, largest |column sum| and smallest column sum") {
  const Gain g = amax_gain(matrix(2, 2, {1, 2, 0, -3}));  // rows 3, -3; columns 1, -1
  CHECK(g.max_abs_row_sum == 3);
  CHECK(g.max_abs_col_sum == 1);
  CHECK(g.min_col_sum == -1);
  const Gain stochastic = amax_gain(matrix(3, 3, {0.2, 0.3, 0.5, 0.5, 0.5, 0, 0.3, 0.2, 0.5}));
  CHECK(stochastic.max_abs_row_sum == doctest::Approx(1));
  CHECK(stochastic.max_abs_col_sum == doctest::Approx(1));
  CHECK(stochastic.min_col_sum == doctest::Approx(1));
}

TEST_CASE("diagnostics: composite maps multiply from the top down, and gains average over tokens") {
  const Matrix scale = matrix(2, 2, {2, 0, 0, 1}), swap = matrix(2, 2, {0, 1, 1, 0});
  const std::vector<Matrix> composite = composite_to_top({scale, swap});
  CHECK(composite[1] == swap);
  CHECK(composite[0] == matrix(2, 2, {0, 1, 2, 0}));  // swap * scale, not scale * swap ({0, 2, 1, 0})
  // Two tokens, two layers: token 1 has 2I then 3I, token 2 has 4I then 1I.
  const Matrix I = Matrix::Identity(2, 2);
  const LayerGains gains = token_averaged_gains({{2 * I, 3 * I}, {4 * I, I}});
  CHECK(gains.single[0].max_abs_row_sum == doctest::Approx(3));     // (2 + 4) / 2
  CHECK(gains.single[1].max_abs_col_sum == doctest::Approx(2));     // (3 + 1) / 2
  CHECK(gains.composite[0].max_abs_row_sum == doctest::Approx(5));  // (6 + 4) / 2
  CHECK(gains.composite[1].min_col_sum == doctest::Approx(2));
  CHECK(mean_of({2 * I, 4 * I}) == 3 * I);
  CHECK_THROWS_AS(composite_to_top({I, Matrix::Identity(3, 3)}), ShapeError);
}

TEST_CASE("diagnostics: the unfolded connection matrix of a plain residual network is all ones below the diagonal") {
  // One stream with every map 1: each layer reads the sum of the embedding and every earlier output (Pre-Norm).
  const int64_t L = 3;
  const Matrix c = unfolded_connection_matrix(std::vector<Vector>(L, Vector::Ones(1)),
                                              std::vector<Matrix>(L, Matrix::Ones(1, 1)),
                                              std::vector<Vector>(L, Vector::Ones(1)));
  Matrix expected = Matrix::Zero(L + 1, L + 1);
  for (int64_t k = 0; k <= L; ++k)
    for (int64_t j = 0; j <= k; ++j) expected(k, j) = 1;
  CHECK(c == expected);
}

TEST_CASE("diagnostics: the unfolded connection matrix carries each output through the later layers' mixes") {
  // Layer 1 reads stream 0, then adds stream 1 into stream 0, then writes its output into stream 1. Layer 2 reads
  // stream 0, halves both streams, writes into both. c_kj = H_pre_k . (H_res_{k-1} ... H_res_{j+1}) H_post_j: the
  // output of layer j is written after layer j's own mix, so layer j + 1 reads it unmixed.
  const Matrix c = unfolded_connection_matrix({vector({1, 0}), vector({1, 0})},
                                              {matrix(2, 2, {1, 1, 0, 1}), matrix(2, 2, {0.5, 0, 0, 0.5})},
                                              {vector({0, 1}), vector({1, 1})});
  CHECK(c == matrix(3, 3, {1, 0, 0,        // layer 1 reads the embedding (in both streams)
                           2, 0, 0,        // layer 2: the embedding twice (layer 1's mix); layer 1 wrote stream 1
                           1.5, 0.5, 2}));  // the output (sum of the streams) after the halving, and layer 2's writes
  CHECK_THROWS_AS(unfolded_connection_matrix({vector({1})}, {Matrix::Ones(2, 2)}, {vector({1, 1})}), ShapeError);
}

TEST_CASE("diagnostics: cosine similarity spread, quantiles and the distance from doubly stochastic") {
  // Rows: the same direction (1), orthogonal (0), opposite (-1).
  const Spread s = cosine_similarity_spread(matrix(3, 2, {1, 0, 1, 0, 2, 1}), matrix(3, 2, {3, 0, 0, 5, -4, -2}));
  CHECK(s.median == doctest::Approx(0));
  CHECK(s.p5 == doctest::Approx(-0.9));  // position 0.1 between -1 and 0
  CHECK(s.p95 == doctest::Approx(0.9));
  CHECK(quantile({3, 1, 2}, 0.5) == 2);
  CHECK(quantile({1, 2}, 0.25) == doctest::Approx(1.25));
  const StochasticError e = stochastic_error(matrix(2, 2, {0.5, 0.5, 0.2, 0.6}));
  CHECK(e.max_row_error == doctest::Approx(0.2));
  CHECK(e.max_col_error == doctest::Approx(0.3));
}

TEST_CASE("diagnostics: tensors become matrices in row-major order of the leading dims") {
  const Tensor t = arange(12, {.dtype = DType::Float32}).reshape({2, 2, 3});
  const std::vector<Matrix> m = to_matrices(t);
  REQUIRE(m.size() == 2);
  CHECK(m[1] == matrix(2, 3, {6, 7, 8, 9, 10, 11}));
  const std::vector<Vector> v = to_vectors(t.transpose(-1, -2).contiguous().narrow(-1, 0, 1).squeeze(-1));
  CHECK(v.size() == 2);
  CHECK(v[0] == vector({0, 1, 2}));
}

namespace {

// Applies a module's maps by hand, x_{l+1}[t] = Σ_s H_res[t, s] x[s] + H_post[t] y with y = 2u + 1, and its
// branch input u = Σ_s H_pre[s] x[s]; both must equal what the module computes. x is [1, N, S, D].
void check_maps_reproduce(const ConnectionModule& module, const Tensor& x) {
  const std::optional<ConnectionMaps> maps = module.maps(x);
  REQUIRE(maps.has_value());
  const int64_t N = x.size(1), S = x.size(2), D = x.size(3);
  CHECK(maps->h_pre.shape() == Shape{1, N, S});
  CHECK(maps->h_res.shape() == Shape{1, N, S, S});
  CHECK(maps->h_post.shape() == Shape{1, N, S});
  ConnectionSplit split = module.split(x);
  const Tensor y = split.branch_input * 2.0 + 1.0;
  const Tensor out = split.add_residual(y);
  const std::vector<double> xs = values(x), u = values(split.branch_input), ys = values(y), got = values(out);
  const std::vector<double> pre = values(maps->h_pre), res = values(maps->h_res), post = values(maps->h_post);
  double worst_u = 0, worst_out = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      double expected_u = 0;
      for (int64_t s = 0; s < S; ++s) expected_u += pre[n * S + s] * xs[(n * S + s) * D + d];
      worst_u = std::max(worst_u, std::abs(expected_u - u[n * D + d]));
      for (int64_t t = 0; t < S; ++t) {
        double expected = post[n * S + t] * ys[n * D + d];
        for (int64_t s = 0; s < S; ++s) expected += res[(n * S + t) * S + s] * xs[(n * S + s) * D + d];
        worst_out = std::max(worst_out, std::abs(expected - got[(n * S + t) * D + d]));
      }
    }
  CHECK(worst_u < 1e-12);
  CHECK(worst_out < 1e-12);
}

}  // namespace

TEST_CASE("diagnostics: HC, mHC and mHC-paper maps reproduce the modules' own outputs (perturbed weights)") {
  const int64_t S = 3, N = 4, D = 6;
  const Tensor x = leaf({1, N, S, D}).detach();
  {
    HyperConnections hc(S, {.dim = D, .layer_index = 1, .streams_in_batch = false, .dtype = DType::Float64});
    // At init (HC section 1.3): the branch reads home stream 1, each stream keeps itself, β = 1.
    const ConnectionMaps init = *hc.maps(x);
    CHECK(close(init.h_pre.narrow(1, 0, 1), {1, 1, S}, {0, 1, 0}));
    CHECK(close(init.h_res.narrow(1, 0, 1), {1, 1, S, S}, {1, 0, 0, 0, 1, 0, 0, 0, 1}));
    CHECK(close(init.h_post.narrow(1, 0, 1), {1, 1, S}, {1, 1, 1}));
    CHECK_FALSE(init.h_res_with_iters);
    perturb(hc, 41, 0.3);
    check_maps_reproduce(hc, x);
  }
  ManifoldHyperConnectionsOptions o;
  o.dim = D;
  o.streams_in_batch = false;
  o.dtype = DType::Float64;
  {
    ManifoldHyperConnections mhc(S, o);
    perturb(mhc, 42, 0.3);
    check_maps_reproduce(mhc, x);
    // The library normalises its rows (the sources) last, so this map's columns are exact after any number of
    // Sinkhorn iterations; more iterations bring its rows closer to 1.
    const ConnectionMaps maps = *mhc.maps(x);
    REQUIRE(maps.h_res_with_iters);
    const StochasticError one = stochastic_error(to_matrices(maps.h_res_with_iters(1))[0]);
    const StochasticError fifty = stochastic_error(to_matrices(maps.h_res_with_iters(50))[0]);
    CHECK(one.max_col_error < 1e-12);
    CHECK(fifty.max_row_error < one.max_row_error);
    CHECK(max_abs_diff(values(maps.h_res_with_iters(mhc.sinkhorn_iters)), values(maps.h_res)) < 1e-15);
  }
  {
    PaperManifoldHyperConnections paper(S, o);  // rows (destinations) normalised last: rows exact
    perturb(paper, 43, 0.3);
    check_maps_reproduce(paper, x);
    const ConnectionMaps maps = *paper.maps(x);
    CHECK(stochastic_error(to_matrices(maps.h_res_with_iters(1))[0]).max_row_error < 1e-12);
  }
  CHECK_FALSE(Residual([](const Tensor& u) { return u; }).maps(x).has_value());
}

TEST_CASE("diagnostics: a GPT's trace has two sub-layers per block and reports maps only for stream connections") {
  GPTConfig config{.context = 16, .layers = 2, .dim = 16, .heads = 2};
  const Tensor ids = arange(8, {.dtype = DType::Int64}).reshape({1, 8});
  GPT residual(config, 1);
  const std::vector<SubLayerTrace> plain = residual.trace(ids);
  REQUIRE(plain.size() == 4);
  CHECK(plain[0].branch_input.shape() == Shape{1, 8, 16});
  CHECK_FALSE(plain[0].maps.has_value());
  config.connection = "mhc";
  config.streams = 4;
  GPT mhc(config, 1);
  const std::vector<SubLayerTrace> traced = mhc.trace(ids);
  REQUIRE(traced.size() == 4);
  REQUIRE(traced[3].maps.has_value());
  CHECK(traced[3].maps->h_res.shape() == Shape{1, 8, 4, 4});
  // mHC's H_res is doubly stochastic; its column sums are exact (the library normalises its rows, the sources, last).
  const Gain g = amax_gain(to_matrices(traced[0].maps->h_res)[0]);
  CHECK(std::abs(g.max_abs_col_sum - 1) < 1e-6);
  CHECK(std::abs(g.min_col_sum - 1) < 1e-6);
  CHECK(std::abs(g.max_abs_row_sum - 1) < 1e-3);
  // The trace runs forward's computation: the same logits.
  const Tensor logits = mhc.forward(ids);
  CHECK(logits.shape() == Shape{1, 8, 256});
}
