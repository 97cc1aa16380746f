// Depth-residual gates and updates (nn/residuals.h) and the expand / reduce helpers (nn/streams.h): forwards
// against loops written from the equations (docs/connections.md), invariants, float64
// gradchecks with perturbed parameters, and error messages.
#include <cmath>

#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;
using hcgrad::autograd::gradcheck;
using TensorList = std::vector<Tensor>;

namespace {

constexpr DType f64 = DType::Float64;

double sigmoid_of(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Gradcheck of a depth-residual function w.r.t. x, r and every parameter.
void check_depth_residual_gradients(const DepthResidual& fn, const Shape& shape) {
  TensorList inputs = {leaf(shape), leaf(shape)};
  for (const Tensor& p : fn.parameters()) inputs.push_back(p);
  auto result = gradcheck([&](const TensorList& in) { return fn.forward(in[0], in[1]); }, inputs);
  CHECK_MESSAGE(result.ok, result.message);
}

// Gradcheck of a Transform w.r.t. its input and every parameter.
void check_transform_gradients(const Transform& fn, const Shape& shape) {
  TensorList inputs = {leaf(shape)};
  for (const Tensor& p : fn.parameters()) inputs.push_back(p);
  auto result = gradcheck([&](const TensorList& in) { return fn.forward(in[0]); }, inputs);
  CHECK_MESSAGE(result.ok, result.message);
}

}  // namespace

// ---- depth-residual functions ----

TEST_CASE("residuals gated: forward equals loops written from the equations (both gate widths)") {
  const int64_t B = 2, N = 3, D = 4;
  for (bool fine_gate : {false, true}) {
    Generator gen(3);
    GatedResidual gate(D, fine_gate, gen, f64);
    perturb(gate, 5);
    CHECK(gate.to_learned_mix->weight.shape() == Shape{fine_gate ? D : 1, 2 * D});
    Tensor x = leaf({B, N, D}).detach(), r = leaf({B, N, D}).detach();
    std::vector<double> xv = values(x), rv = values(r), w = values(gate.to_learned_mix->weight),
                        b = values(gate.to_learned_mix->bias), expected(xv.size());
    for (int64_t token = 0; token < B * N; ++token)
      for (int64_t d = 0; d < D; ++d) {
        const int64_t g = fine_gate ? d : 0;  // the gate row this feature reads
        double logit = b[g];
        for (int64_t j = 0; j < D; ++j)
          logit += w[g * 2 * D + j] * xv[token * D + j] + w[g * 2 * D + D + j] * rv[token * D + j];
        const int64_t k = token * D + d;
        expected[k] = xv[k] + sigmoid_of(logit) * (rv[k] - xv[k]);
      }
    CHECK(close(gate.forward(x, r), {B, N, D}, expected, 1e-12));
  }
}

TEST_CASE("residuals gru: forward equals a GRU cell written from torch's equations, over every leading axis") {
  const int64_t D = 3;
  const Shape shape = {2, 2, 3, D};  // 12 rows of D features
  Generator gen(4);
  GRUGatedResidual gate(D, gen, f64);
  perturb(gate, 6);
  NamedTensors named = gate.named_parameters();
  CHECK(named.size() == 4);
  CHECK(named[0].first == "gru.weight_ih");
  CHECK(named[3].first == "gru.bias_hh");
  Tensor x = leaf(shape).detach(), h = leaf(shape).detach();
  std::vector<double> xv = values(x), hv = values(h), w_ih = values(gate.gru->weight_ih),
                      w_hh = values(gate.gru->weight_hh), b_ih = values(gate.gru->bias_ih),
                      b_hh = values(gate.gru->bias_hh), expected(xv.size());
  const int64_t rows = static_cast<int64_t>(xv.size()) / D;
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t i = 0; i < D; ++i) {
      // Gate k's pre-activation for unit i, from the input and from the hidden state (rows k·D + i).
      auto from = [&](const std::vector<double>& weight, const std::vector<double>& bias,
                      const std::vector<double>& v, int64_t k) {
        double acc = bias[k * D + i];
        for (int64_t j = 0; j < D; ++j) acc += weight[(k * D + i) * D + j] * v[m * D + j];
        return acc;
      };
      const double reset = sigmoid_of(from(w_ih, b_ih, xv, 0) + from(w_hh, b_hh, hv, 0));
      const double update = sigmoid_of(from(w_ih, b_ih, xv, 1) + from(w_hh, b_hh, hv, 1));
      const double candidate = std::tanh(from(w_ih, b_ih, xv, 2) + reset * from(w_hh, b_hh, hv, 2));
      expected[m * D + i] = (1 - update) * candidate + update * hv[m * D + i];
    }
  CHECK(close(gate.forward(x, h), shape, expected, 1e-12));
}

TEST_CASE("residuals orthogonal: only the part of x orthogonal to the residual is added") {
  const Shape shape = {2, 3, 5};
  Tensor x = leaf(shape).detach(), r = leaf(shape).detach();
  OrthogonalResidualUpdate update;
  Tensor added = update.forward(x, r) - r;
  // The update is orthogonal to r per token, and x minus the update is parallel to r.
  std::vector<double> dots = values(sum(added * r, {-1}));
  CHECK(max_abs_diff(dots, std::vector<double>(dots.size(), 0.0)) < 1e-12);
  Tensor parallel = x - added;
  Tensor cross = parallel * r.narrow(-1, 0, 1) - r * parallel.narrow(-1, 0, 1);  // 2x2 minors vs. feature 0
  std::vector<double> minors = values(cross);
  CHECK(max_abs_diff(minors, std::vector<double>(minors.size(), 0.0)) < 1e-12);
  // A zero residual (F.normalize's eps) adds the whole x; float32 inputs stay float32 and agree with float64.
  CHECK(close(update.forward(x, zeros(shape, {.dtype = f64})), shape, values(x), 1e-15));
  Tensor out32 = update.forward(x.to(DType::Float32), r.to(DType::Float32));
  CHECK(out32.dtype() == DType::Float32);
  CHECK(close(out32, shape, values(update.forward(x, r)), 1e-5));
  CHECK(close(OrthogonalResidualUpdate(false).forward(x, r), shape, values(update.forward(x, r)), 1e-12));
}

TEST_CASE("residuals mv split: forward equals the token-mean formula, init gains alpha 0, beta 0.03") {
  const int64_t B = 2, N = 4, D = 3;
  MVSplitResidualUpdate update(D, 0.0, 0.03, f64);
  CHECK(close(update.alpha, {D}, {0, 0, 0}));
  CHECK(close(update.beta, {D}, {0.03, 0.03, 0.03}));
  perturb(update, 8);
  Tensor x = leaf({B, N, D}).detach(), r = leaf({B, N, D}).detach();
  std::vector<double> xv = values(x), rv = values(r), alpha = values(update.alpha), beta = values(update.beta),
                      expected(xv.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      double mean_x = 0, mean_r = 0;
      for (int64_t n = 0; n < N; ++n) {
        mean_x += xv[(b * N + n) * D + d] / N;
        mean_r += rv[(b * N + n) * D + d] / N;
      }
      for (int64_t n = 0; n < N; ++n) {
        const int64_t k = (b * N + n) * D + d;
        expected[k] = rv[k] + (xv[k] - mean_x) * beta[d] + (mean_x - mean_r) * alpha[d];
      }
    }
  CHECK(close(update.forward(x, r), {B, N, D}, expected, 1e-12));
}

TEST_CASE("residuals gradcheck: every gate and update, inputs and perturbed parameters") {
  Generator gen(9);
  GatedResidual coarse(4, false, gen, f64), fine(4, true, gen, f64);
  GRUGatedResidual gru(4, gen, f64);
  MVSplitResidualUpdate mv(4, 0.0, 0.03, f64);
  for (Module* m : std::vector<Module*>{&coarse, &fine, &gru, &mv}) perturb(*m, 10);
  SUBCASE("gated coarse") { check_depth_residual_gradients(coarse, {2, 3, 4}); }
  SUBCASE("gated fine") { check_depth_residual_gradients(fine, {2, 3, 4}); }
  SUBCASE("gru") { check_depth_residual_gradients(gru, {2, 3, 4}); }
  SUBCASE("mv split") { check_depth_residual_gradients(mv, {2, 3, 4}); }
  SUBCASE("orthogonal, float64 path") { check_depth_residual_gradients(OrthogonalResidualUpdate(true), {2, 3, 4}); }
  SUBCASE("orthogonal, direct") { check_depth_residual_gradients(OrthogonalResidualUpdate(false), {2, 3, 4}); }
}

TEST_CASE("residuals hc: a GatedResidual depth step registers under depth_residual_fn and gets gradients") {
  Generator gen(11);
  HyperConnections hc(2, {.dim = 4, .layer_index = 1, .depth_residual_fn = std::make_shared<GatedResidual>(4, gen, f64),
                          .dtype = f64});
  bool found = false;
  for (const auto& [name, p] : hc.named_parameters()) found = found || name == "depth_residual_fn.to_learned_mix.weight";
  CHECK(found);
  perturb(hc, 12);
  auto result = gradcheck_connection(hc, leaf({4, 3, 4}));
  CHECK_MESSAGE(result.ok, result.message);
}

TEST_CASE("residuals: bad input names the module and the shapes") {
  Generator gen(0);
  GatedResidual gate(4, gen, f64);
  CHECK_THROWS_WITH_AS(gate.forward(zeros({2, 3, 5}, {.dtype = f64}), zeros({2, 3, 5}, {.dtype = f64})),
                       doctest::Contains("GatedResidual: inputs [2,3,5] must be [..., 4]"), ShapeError);
  CHECK_THROWS_WITH_AS(gate.forward(zeros({2, 3, 4}, {.dtype = f64}), zeros({2, 2, 4}, {.dtype = f64})),
                       doctest::Contains("GatedResidual: branch output [2,3,4] and residual [2,2,4]"), ShapeError);
  GRUGatedResidual gru(4, gen, f64);
  CHECK_THROWS_WITH_AS(gru.forward(zeros({6, 3}, {.dtype = f64}), zeros({6, 3}, {.dtype = f64})),
                       doctest::Contains("GRUGatedResidual: inputs [6,3] must be [..., 4]"), ShapeError);
  MVSplitResidualUpdate mv(4);
  CHECK_THROWS_WITH_AS(mv.forward(zeros({4}), zeros({4})),
                       doctest::Contains("MVSplitResidualUpdate: inputs [4] must be [..., N, 4]"), ShapeError);
}

// ---- expand / reduce ----

TEST_CASE("streams expand: copies plus the stream embedding, in each layout") {
  const int64_t B = 2, S = 3, D = 4;
  SUBCASE("in batch, channels last: row b·S + s = x[b] + E[s]") {
    ExpandStreams expand(S, {.dim = D, .stream_embed = true, .dtype = f64});
    perturb(expand, 1);
    Tensor x = leaf({B, 2, D}).detach();
    std::vector<double> xv = values(x), e = values(expand.stream_embed), expected;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t n = 0; n < 2; ++n)
          for (int64_t d = 0; d < D; ++d) expected.push_back(xv[(b * 2 + n) * D + d] + e[s * D + d]);
    CHECK(close(expand.forward(x), {B * S, 2, D}, expected, 1e-15));
  }
  SUBCASE("in batch, channels first: E[s] added along dim 1 of [B·S, D, H, W]") {
    ExpandStreams expand(S, {.dim = D, .stream_embed = true, .channel_first = true, .dtype = f64});
    perturb(expand, 2);
    Tensor x = leaf({B, D, 2, 3}).detach();
    std::vector<double> xv = values(x), e = values(expand.stream_embed), expected;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t d = 0; d < D; ++d)
          for (int64_t p = 0; p < 6; ++p) expected.push_back(xv[(b * D + d) * 6 + p] + e[s * D + d]);
    CHECK(close(expand.forward(x), {B * S, D, 2, 3}, expected, 1e-15));
  }
  SUBCASE("next to features: [B, N, S, D] with out[b, n, s] = x[b, n] + E[s]") {
    ExpandStreams expand(S, {.layout = StreamLayout::NextToFeatures, .dim = D, .stream_embed = true, .dtype = f64});
    perturb(expand, 3);
    Tensor x = leaf({B, 2, D}).detach();
    std::vector<double> xv = values(x), e = values(expand.stream_embed), expected;
    for (int64_t bn = 0; bn < B * 2; ++bn)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t d = 0; d < D; ++d) expected.push_back(xv[bn * D + d] + e[s * D + d]);
    CHECK(close(expand.forward(x), {B, 2, S, D}, expected, 1e-15));
  }
}

TEST_CASE("streams: expand then reduce of plain copies is S times x, in each layout") {
  const int64_t S = 3;
  for (StreamLayout layout : {StreamLayout::InBatch, StreamLayout::NextToFeatures}) {
    Tensor x = leaf({2, 4, 5}).detach();
    ExpandStreams expand(S, {.layout = layout});
    ReduceStreams reduce(S, layout);
    CHECK(close(reduce.forward(expand.forward(x)), x.shape(), values(x * 3.0), 1e-14));
  }
  // A 2-d input [B, D] (no token axis) and a channel-first one.
  Tensor x = leaf({2, 5}).detach();
  CHECK(close(ReduceStreams(S).forward(ExpandStreams(S).forward(x)), {2, 5}, values(x * 3.0), 1e-14));
  Tensor image = leaf({2, 4, 2, 2}).detach();
  CHECK(close(ReduceStreams(S).forward(ExpandStreams(S, {.channel_first = true}).forward(image)), image.shape(),
              values(image * 3.0), 1e-14));
}

TEST_CASE("streams attention pool: forward equals loops, the layouts agree, equal streams at init give x") {
  const int64_t B = 2, S = 3, N = 2, D = 4;
  AttentionPoolReduceStream pool(S, D, {.dtype = f64});
  CHECK(close(pool.to_attn_logits->weight, {D, D}, values(eye(D, {.dtype = f64}))));
  CHECK(pool.named_parameters()[0].first == "to_attn_logits.weight");

  SUBCASE("at init, S equal streams pool to the stream itself, in each layout") {
    Tensor x = leaf({B, N, D}).detach();
    CHECK(close(pool.forward(ExpandStreams(S).forward(x)), x.shape(), values(x), 1e-14));
    AttentionPoolReduceStream next(S, D, {.layout = StreamLayout::NextToFeatures, .dtype = f64});
    CHECK(close(next.forward(ExpandStreams(S, {.layout = StreamLayout::NextToFeatures}).forward(x)), x.shape(),
                values(x), 1e-14));
    AttentionPoolReduceStream first(S, D, {.channel_first = true, .dtype = f64});
    Tensor image = leaf({B, D, 2, 3}).detach();
    CHECK(close(first.forward(ExpandStreams(S, {.channel_first = true}).forward(image)), image.shape(), values(image),
                1e-14));
  }

  SUBCASE("perturbed weights: loops over [B·S, N, D], then the other layouts on permuted inputs") {
    perturb(pool, 4);
    Tensor x = leaf({B * S, N, D}).detach();
    std::vector<double> xv = values(x), w = values(pool.to_attn_logits->weight), expected;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d) {
          std::vector<double> logits(S);
          double norm = 0, out = 0;
          for (int64_t s = 0; s < S; ++s) {
            for (int64_t j = 0; j < D; ++j) logits[s] += w[d * D + j] * xv[((b * S + s) * N + n) * D + j];
            norm += std::exp(logits[s]);
          }
          for (int64_t s = 0; s < S; ++s) out += std::exp(logits[s]) / norm * xv[((b * S + s) * N + n) * D + d];
          expected.push_back(out);
        }
    CHECK(close(pool.forward(x), {B, N, D}, expected, 1e-12));

    // The same streams as [B, N, S, D] and as channel-first [B·S, D, N], with the same weight.
    AttentionPoolReduceStream next(S, D, {.layout = StreamLayout::NextToFeatures, .dtype = f64});
    AttentionPoolReduceStream first(S, D, {.channel_first = true, .dtype = f64});
    for (AttentionPoolReduceStream* other : {&next, &first}) {
      autograd::NoGradGuard no_grad;
      Tensor(other->to_attn_logits->weight).copy_(pool.to_attn_logits->weight);
    }
    CHECK(close(next.forward(x.reshape({B, S, N, D}).transpose(1, 2)), {B, N, D}, expected, 1e-12));
    CHECK(close(first.forward(x.transpose(1, 2)).transpose(1, 2), {B, N, D}, expected, 1e-12));
  }
}

TEST_CASE("streams gradcheck: stream embedding and attention pool, each layout, perturbed parameters") {
  const int64_t S = 2, D = 3;
  SUBCASE("expand, in batch") {
    ExpandStreams expand(S, {.dim = D, .stream_embed = true, .dtype = f64});
    perturb(expand, 1);
    check_transform_gradients(expand, {2, 2, D});
  }
  SUBCASE("expand, channels first") {
    ExpandStreams expand(S, {.dim = D, .stream_embed = true, .channel_first = true, .dtype = f64});
    perturb(expand, 2);
    check_transform_gradients(expand, {2, D, 2, 2});
  }
  SUBCASE("expand, next to features") {
    ExpandStreams expand(S, {.layout = StreamLayout::NextToFeatures, .dim = D, .stream_embed = true, .dtype = f64});
    perturb(expand, 3);
    check_transform_gradients(expand, {2, 2, D});
  }
  SUBCASE("attention pool, in batch") {
    AttentionPoolReduceStream pool(S, D, {.dtype = f64});
    perturb(pool, 4);
    check_transform_gradients(pool, {2 * S, 2, D});
  }
  SUBCASE("attention pool, channels first") {
    AttentionPoolReduceStream pool(S, D, {.channel_first = true, .dtype = f64});
    perturb(pool, 5);
    check_transform_gradients(pool, {2 * S, D, 2, 2});
  }
  SUBCASE("attention pool, next to features") {
    AttentionPoolReduceStream pool(S, D, {.layout = StreamLayout::NextToFeatures, .dtype = f64});
    perturb(pool, 6);
    check_transform_gradients(pool, {2, 2, S, D});
  }
}

TEST_CASE("streams: bad input names the module and the shapes") {
  CHECK_THROWS_WITH_AS(ExpandStreams(0), doctest::Contains("ExpandStreams: num_streams must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(ExpandStreams(2, {.stream_embed = true}), doctest::Contains("needs dim > 0"), Error);
  CHECK_THROWS_WITH_AS(ExpandStreams(2, {.layout = StreamLayout::NextToFeatures, .channel_first = true}),
                       doctest::Contains("channel_first needs the streams in the batch"), Error);
  ExpandStreams expand(2, {.dim = 4, .stream_embed = true});
  CHECK_THROWS_WITH_AS(expand.forward(zeros({2, 3, 5})),
                       doctest::Contains("ExpandStreams: input [2,3,5] must have dim = 4 features"), ShapeError);
  CHECK_THROWS_WITH_AS(ReduceStreams(2).forward(zeros({3, 4})),
                       doctest::Contains("ReduceStreams: streams [3,4] must be [B·S, ...]"), ShapeError);
  CHECK_THROWS_WITH_AS(ReduceStreams(2, StreamLayout::NextToFeatures).forward(zeros({2, 3, 3, 4})),
                       doctest::Contains("ReduceStreams: streams [2,3,3,4] must be [B, ..., S = 2, D]"), ShapeError);
  AttentionPoolReduceStream pool(2, 4);
  CHECK_THROWS_WITH_AS(pool.forward(zeros({3, 5, 4})), doctest::Contains("AttentionPoolReduceStream: streams [3,5,4]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(pool.forward(zeros({4, 5, 3})), doctest::Contains("with S = 2, D = 4"), ShapeError);
  AttentionPoolReduceStream next(2, 4, {.layout = StreamLayout::NextToFeatures});
  CHECK_THROWS_WITH_AS(next.forward(zeros({2, 5, 3, 4})),
                       doctest::Contains("AttentionPoolReduceStream: streams [2,5,3,4] must be [B, ..., S = 2, D = 4]"),
                       ShapeError);
}
