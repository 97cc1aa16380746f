// The library's other hyper-connection modules (docs/connections.md): ChannelFirstHyperConnections,
// MultiBranchHyperConnections (+ its factory) and MultiInputHyperConnections. Init behaviour, agreement with
// the main HyperConnections module where the math coincides, loops written from the equations, gradchecks with
// perturbed parameters, and error messages.
#include <algorithm>
#include <cmath>

#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;
using hcgrad::autograd::gradcheck;
using TensorList = std::vector<Tensor>;

namespace {

constexpr DType f64 = DType::Float64;

void copy_param(const Tensor& destination, const Tensor& source) {
  autograd::NoGradGuard no_grad;
  Tensor(destination).copy_(source.reshape(destination.shape()));
}

// A module's parameter by its dotted name.
Tensor param(const Module& module, const std::string& name) {
  for (const auto& [n, p] : module.named_parameters())
    if (n == name) return p;
  FAIL("no parameter " << name);
  return {};
}

// [B, ...] -> [B·S, ...] with row b·S + s = x[b] (the L1 expand).
Tensor repeat_streams(const Tensor& x, int64_t S) {
  Shape shape = x.shape();
  Shape expanded{shape[0], S};
  expanded.insert(expanded.end(), shape.begin() + 1, shape.end());
  shape[0] *= S;
  return x.unsqueeze(1).expand(expanded).reshape(shape);
}

}  // namespace

// ---- ChannelFirstHyperConnections ----

TEST_CASE("connection modules channel-first: at init the branch reads the home stream, each stream gets x_t + y") {
  const int64_t S = 3, B = 2, D = 4;
  for (int64_t layer : {0, 1, 5}) {
    ChannelFirstHyperConnections hc(S, {.dim = D, .layer_index = layer, .dtype = f64});
    Tensor x = leaf({B * S, D, 2, 3}).detach(), y = leaf({B, D, 2, 3}).detach();
    auto w = hc.width(x);
    for (int64_t b = 0; b < B; ++b)
      CHECK(max_abs_diff(values(w.branch_input.select(0, b)), values(x.select(0, b * S + layer % S))) < 1e-15);
    CHECK(max_abs_diff(values(w.residuals), values(x)) < 1e-15);
    CHECK(max_abs_diff(values(hc.add_residual(w, y)), values(x + repeat_streams(y, S))) < 1e-15);
  }
}

TEST_CASE("connection modules channel-first: every pixel computes HyperConnections with the same weights") {
  const int64_t S = 2, B = 2, D = 4, H = 2, W = 3;
  for (bool use_tanh : {true, false}) {
    ChannelFirstHyperConnections cf(S, {.dim = D, .layer_index = 1, .tanh = use_tanh, .dtype = f64});
    perturb(cf, 3);
    HyperConnections hc(S, {.dim = D, .layer_index = 1, .tanh = use_tanh, .dtype = f64});
    copy_param(hc.static_alpha, cf.static_alpha);
    copy_param(hc.dynamic_alpha_fn, cf.dynamic_alpha_fn->weight.reshape({1 + S, D}).t());
    copy_param(hc.dynamic_alpha_scale, cf.dynamic_alpha_scale);
    copy_param(hc.static_beta, cf.static_beta);
    copy_param(hc.dynamic_beta_fn, param(cf, "dynamic_beta_fn.0.weight"));
    copy_param(hc.dynamic_beta_scale, cf.dynamic_beta_scale);
    copy_param(hc.norm->gamma, cf.norm->gamma);

    Tensor x = leaf({B * S, D, H, W}).detach(), y = leaf({B, D, H, W}).detach();
    auto to_last = [](const Tensor& t) { return t.permute({0, 2, 3, 1}); };  // [., D, H, W] -> [., H, W, D]
    auto cw = cf.width(x);
    auto hw = hc.width(to_last(x));
    CHECK(max_abs_diff(values(to_last(cw.branch_input)), values(hw.branch_input)) < 1e-12);
    CHECK(max_abs_diff(values(to_last(cw.residuals)), values(hw.residuals)) < 1e-12);
    CHECK(max_abs_diff(values(to_last(cf.add_residual(cw, y))), values(hc.add_residual(hw, to_last(y)))) < 1e-12);
  }
}

TEST_CASE("connection modules channel-first gradcheck: residuals, branch output and every parameter") {
  for (bool use_tanh : {true, false})
    for (const Shape& shape : {Shape{6, 4, 2, 3}, Shape{6, 4, 5}}) {  // two spatial dims, or one
      ChannelFirstHyperConnections hc(3, {.dim = 4, .layer_index = 1, .tanh = use_tanh, .dtype = f64});
      perturb(hc, 5);
      CHECK(hc.parameters().size() == 7);
      auto result = gradcheck_connection(hc, leaf(shape));
      CHECK_MESSAGE(result.ok, result.message);
    }
}

TEST_CASE("connection modules channel-first: state_dict names and bad input") {
  ChannelFirstHyperConnections hc(2, {.dim = 8});
  std::vector<std::string> names;
  for (auto& [name, p] : hc.named_parameters()) names.push_back(name + " " + hcgrad::detail::concat(p.shape()));
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"dynamic_alpha_fn.weight [3,8,1,1]", "dynamic_alpha_scale []",
                                          "dynamic_beta_fn.0.weight [1,8,1,1]", "dynamic_beta_scale []",
                                          "norm.gamma [8,1,1]", "static_alpha [2,3]", "static_beta [2]"});
  CHECK_THROWS_WITH_AS(ChannelFirstHyperConnections(0, {.dim = 8}),
                       doctest::Contains("ChannelFirstHyperConnections: num_streams must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(hc.width(zeros({4, 5, 2, 2})),
                       doctest::Contains("ChannelFirstHyperConnections: residuals [4,5,2,2] must be [B·S, 8, H, W]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(hc.width(zeros({3, 8, 2, 2})),
                       doctest::Contains("residuals [3,8,2,2] must be [B·S, 8, H, W] (channels on axis 1) with the "
                                         "first dim a multiple of num_streams = 2"),
                       ShapeError);
  auto w = hc.width(zeros({4, 8, 2, 2}));
  CHECK_THROWS_WITH_AS(hc.add_residual(w, zeros({2, 8, 2, 3})),
                       doctest::Contains("branch output [2,8,2,3] must have the branch input's shape [2,8,2,2]"),
                       ShapeError);
}

// ---- MultiBranchHyperConnections ----

TEST_CASE("connection modules multi-branch: S = 3, I = 2, layer_index = 1 at init: input 0 reads stream 1, input 1 "
          "stream 0") {
  const int64_t S = 3, I = 2, B = 2, N = 3, D = 4;
  MultiBranchHyperConnections hc(S, {.dim = D, .layer_index = 1, .num_branch_inputs = I, .dtype = f64});
  Tensor x = leaf({B * S, N, D}).detach();
  auto w = hc.width(x);
  REQUIRE(w.branch_input.shape() == Shape{I * B, N, D});
  for (int64_t b = 0; b < B; ++b) {
    CHECK(max_abs_diff(values(w.branch_input.select(0, b)), values(x.select(0, b * S + 1))) < 1e-15);
    CHECK(max_abs_diff(values(w.branch_input.select(0, B + b)), values(x.select(0, b * S + 0))) < 1e-15);
  }
  // Every stream keeps itself and receives both outputs: new_s = x_s + y_0 + y_1.
  Tensor y = leaf({I * B, N, D}).detach();
  Tensor y_sum = y.narrow(0, 0, B) + y.narrow(0, B, B);
  CHECK(max_abs_diff(values(hc.add_residual(w, y)), values(x + repeat_streams(y_sum, S))) < 1e-15);
  // The read columns of A from the rule (s + i + L) mod S == 0, L = (1 mod 6)·2 = 2.
  CHECK(close(hc.static_alpha, {3, 5}, {0, 1, 1, 0, 0, /**/ 1, 0, 0, 1, 0, /**/ 0, 0, 0, 0, 1}));
}

TEST_CASE("connection modules multi-branch: with I = 1 it is HyperConnections with the same weights") {
  const int64_t S = 3, B = 2, N = 2, D = 4;
  MultiBranchHyperConnections mb(S, {.dim = D, .layer_index = 2, .num_branch_inputs = 1, .dtype = f64});
  perturb(mb, 9);
  HyperConnections hc(S, {.dim = D, .layer_index = 2, .dtype = f64});
  copy_param(hc.static_alpha, mb.static_alpha);
  copy_param(hc.dynamic_alpha_fn, mb.dynamic_alpha_fn);
  copy_param(hc.dynamic_alpha_scale, mb.dynamic_alpha_scale);
  copy_param(hc.static_beta, mb.static_beta);
  copy_param(hc.dynamic_beta_fn, mb.dynamic_beta_fn);
  copy_param(hc.dynamic_beta_scale, mb.dynamic_beta_scale);
  copy_param(hc.norm->gamma, mb.norm->gamma);
  Tensor x = leaf({B * S, N, D}).detach(), y = leaf({B, N, D}).detach();
  auto mw = mb.width(x);
  auto hw = hc.width(x);
  CHECK(max_abs_diff(values(mw.branch_input), values(hw.branch_input)) < 1e-12);
  CHECK(max_abs_diff(values(mb.add_residual(mw, y)), values(hc.add_residual(hw, y))) < 1e-12);
}

TEST_CASE("connection modules multi-branch: a list of 2 branches equals running them on the halves by hand") {
  const int64_t S = 2, I = 4, B = 2, N = 3, D = 4;
  Branch first = [](const Tensor& u) { return tanh(u) * 2.0; };
  Branch second = [](const Tensor& u) { return u * u - 0.5; };
  MultiBranchHyperConnections hc(
      S, {.dim = D, .layer_index = 1, .num_branch_inputs = I, .branches = {first, second}, .dtype = f64});
  perturb(hc, 13);
  Tensor x = leaf({B * S, N, D}).detach();
  auto w = hc.width(x);
  const int64_t half = I * B / 2;
  Tensor y = cat({first(w.branch_input.narrow(0, 0, half)), second(w.branch_input.narrow(0, half, half))}, 0);
  Tensor by_hand = hc.add_residual(w, y);
  CHECK(max_abs_diff(values(hc.forward(x)), values(by_hand)) < 1e-14);
  // One branch over all rows differs (the second half went through `second`).
  CHECK(max_abs_diff(values(hc.add_residual(w, first(w.branch_input))), values(by_hand)) > 1e-3);
}

TEST_CASE("connection modules multi-branch gradcheck: residuals, branch output and every parameter") {
  for (bool channel_first : {false, true})
    for (bool use_tanh : {true, false}) {
      MultiBranchHyperConnections hc(3, {.dim = 4,
                                         .layer_index = 1,
                                         .num_branch_inputs = 2,
                                         .tanh = use_tanh,
                                         .channel_first = channel_first,
                                         .dtype = f64});
      perturb(hc, 17);
      CHECK(hc.parameters().size() == 7);
      auto result = gradcheck_connection(hc, channel_first ? leaf({6, 4, 2}) : leaf({6, 2, 4}));
      CHECK_MESSAGE(result.ok, result.message);
    }
}

TEST_CASE("connection modules multi-branch: channel-first equals channel-last on moved axes") {
  const int64_t S = 2, I = 2, B = 2, N = 3, D = 4;
  MultiBranchHyperConnections last(S, {.dim = D, .layer_index = 0, .num_branch_inputs = I, .dtype = f64});
  MultiBranchHyperConnections first(
      S, {.dim = D, .layer_index = 0, .num_branch_inputs = I, .channel_first = true, .dtype = f64});
  perturb(last, 19);
  perturb(first, 19);
  Tensor x = leaf({B * S, N, D}).detach(), y = leaf({I * B, N, D}).detach();
  auto wl = last.width(x);
  auto wf = first.width(x.transpose(1, 2));
  CHECK(max_abs_diff(values(wf.branch_input.transpose(1, 2)), values(wl.branch_input)) < 1e-14);
  CHECK(max_abs_diff(values(first.add_residual(wf, y.transpose(1, 2)).transpose(1, 2)),
                     values(last.add_residual(wl, y))) < 1e-14);
}

TEST_CASE("connection modules multi-branch factory: init_hc, expand, reduce, and disable") {
  auto [init_hc, expand_stream, reduce_stream] = multi_branch_hyper_connections(3);
  Branch branch = [](const Tensor& u) { return u * 3.0; };
  Connection hc = init_hc({.dim = 4, .layer_index = 0, .num_branch_inputs = 3, .dtype = f64}, branch);
  CHECK(hc->name() == "MultiBranchHyperConnections");
  Tensor x = leaf({2, 5, 4}).detach();
  Tensor streams = expand_stream(x);
  CHECK(streams.shape() == Shape{6, 5, 4});
  // At init with I = S = 3 the inputs read three distinct streams, all copies of x: each stream gets x + 3·3x.
  Tensor out = reduce_stream(static_cast<Tensor>(hc(streams)));
  CHECK(max_abs_diff(values(out), values(x * 30.0)) < 1e-12);

  auto [plain_init, plain_expand, plain_reduce] = multi_branch_hyper_connections(1);
  Connection residual = plain_init({.dim = 4}, branch);
  CHECK(residual->name() == "Residual");
  CHECK(max_abs_diff(values(plain_reduce(static_cast<Tensor>(residual(plain_expand(x))))), values(x * 4.0)) < 1e-15);
  CHECK_THROWS_WITH_AS(multi_branch_hyper_connections(0), doctest::Contains("num_streams must be >= 1"), Error);
}

TEST_CASE("connection modules multi-branch: bad input names the module and the shapes") {
  CHECK_THROWS_WITH_AS(MultiBranchHyperConnections(0, {.dim = 4}),
                       doctest::Contains("MultiBranchHyperConnections: num_streams must be >= 1, got 0"), Error);
  Branch id = [](const Tensor& u) { return u; };
  CHECK_THROWS_WITH_AS(MultiBranchHyperConnections(2, {.dim = 4, .num_branch_inputs = 3, .branches = {id, id}}),
                       doctest::Contains("MultiBranchHyperConnections: num_branch_inputs (3) must be divisible by the "
                                         "number of branches (2)"),
                       Error);
  MultiBranchHyperConnections hc(2, {.dim = 4, .num_branch_inputs = 2});
  CHECK_THROWS_WITH_AS(hc.width(zeros({4, 3, 5})),
                       doctest::Contains("MultiBranchHyperConnections: residuals [4,3,5] must be [B·S, ..., 4]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(hc.width(zeros({3, 3, 4})),
                       doctest::Contains("residuals [3,3,4] must be [B·S, ..., 4] with the first dim a multiple of "
                                         "num_streams = 2"),
                       ShapeError);
  auto w = hc.width(zeros({4, 3, 4}));
  CHECK_THROWS_WITH_AS(hc.add_residual(w, zeros({2, 3, 4})),
                       doctest::Contains("branch output [2,3,4] must have the branch input's shape [4,3,4]"),
                       ShapeError);
}

// ---- MultiInputHyperConnections ----

namespace {

MultiInputHyperConnectionsOptions two_paths(int64_t D, int64_t layer, bool use_tanh = true, bool channel_first = false) {
  return {.dim = D,
          .layer_index = layer,
          .tanh = use_tanh,
          .channel_first = channel_first,
          .additional_input_paths = {{.name = "1"}, {.name = "third", .dim = 3}},
          .dtype = f64};
}

}  // namespace

TEST_CASE("connection modules multi-input: at init each extra input reduces to its home stream") {
  const int64_t S = 3, B = 2, N = 2, D = 4;
  for (int64_t layer : {0, 4}) {
    MultiInputHyperConnections hc(S, two_paths(D, layer));
    Tensor x = leaf({B * S, N, D}).detach(), z1 = leaf({B * S, N, D}).detach(), z3 = leaf({B * S, N, 3}).detach();
    Tensor other = leaf({5}).detach();
    auto w = hc.width(x, {{"1", z1}, {"third", z3}, {"mask", other}});
    const int64_t home = layer % S;
    for (int64_t b = 0; b < B; ++b) {
      CHECK(max_abs_diff(values(w.branch_input.select(0, b)), values(x.select(0, b * S + home))) < 1e-15);
      CHECK(max_abs_diff(values(w.inputs.at("1").select(0, b)), values(z1.select(0, b * S + home))) < 1e-15);
      CHECK(max_abs_diff(values(w.inputs.at("third").select(0, b)), values(z3.select(0, b * S + home))) < 1e-15);
    }
    CHECK(w.inputs.at("mask").same(other));  // not an additional path: passed through
    Tensor y = leaf({B, N, D}).detach();
    CHECK(max_abs_diff(values(hc.add_residual(w, y)), values(x + repeat_streams(y, S))) < 1e-15);
  }
}

TEST_CASE("connection modules multi-input: the extra inputs reduce as loops written from the equations") {
  const int64_t S = 2, B = 2, N = 3, Dj = 3;
  MultiInputHyperConnections hc(S, two_paths(4, 1));
  perturb(hc, 23);
  Tensor x = leaf({B * S, N, 4}).detach(), z1 = leaf({B * S, N, 4}).detach(), z = leaf({B * S, N, Dj}).detach();
  auto w = hc.width(x, {{"1", z1}, {"third", z}});
  // Path "third" is the second path: its parameters are number 1.
  auto Z = values(z), G = values(param(hc, "additional_norms.1.gamma")),
       P = values(param(hc, "additional_to_dynamic_input.1.proj.weight")),
       A = values(param(hc, "additional_static_input.1"));
  const double scale = param(hc, "additional_to_dynamic_input.1.scale").item();
  std::vector<double> expected;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n) {
      std::vector<double> reduced(Dj, 0.0);
      for (int64_t s = 0; s < S; ++s) {
        const double* zs = &Z[((b * S + s) * N + n) * Dj];
        double norm = 0, dot = 0;
        for (int64_t d = 0; d < Dj; ++d) norm += zs[d] * zs[d];
        norm = std::max(std::sqrt(norm), 1e-12);
        for (int64_t d = 0; d < Dj; ++d) dot += zs[d] / norm * std::sqrt(double(Dj)) * (G[d] + 1) * P[d];
        const double weight = A[s] + scale * std::tanh(dot);
        for (int64_t d = 0; d < Dj; ++d) reduced[d] += weight * zs[d];
      }
      expected.insert(expected.end(), reduced.begin(), reduced.end());
    }
  CHECK(close(w.inputs.at("third"), {B, N, Dj}, expected, 1e-12));
}

TEST_CASE("connection modules multi-input: the main stream is HyperConnections with the same weights") {
  const int64_t S = 3, B = 2, N = 2, D = 4;
  MultiInputHyperConnections mi(S, two_paths(D, 2, false));
  perturb(mi, 29);
  HyperConnections hc(S, {.dim = D, .layer_index = 2, .tanh = false, .dtype = f64});
  copy_param(hc.static_alpha, mi.static_alpha);
  copy_param(hc.dynamic_alpha_fn, mi.dynamic_alpha_and_branch_input->proj->weight.t());
  copy_param(hc.dynamic_alpha_scale, mi.dynamic_alpha_and_branch_input->scale);
  copy_param(hc.static_beta, mi.static_beta);
  copy_param(hc.dynamic_beta_fn, mi.dynamic_beta->proj->weight);
  copy_param(hc.dynamic_beta_scale, mi.dynamic_beta->scale);
  copy_param(hc.norm->gamma, mi.norm->gamma);
  Tensor x = leaf({B * S, N, D}).detach(), y = leaf({B, N, D}).detach();
  auto mw = mi.width(x, {{"1", leaf({B * S, N, D}).detach()}, {"third", leaf({B * S, N, 3}).detach()}});
  auto hw = hc.width(x);
  CHECK(max_abs_diff(values(mw.branch_input), values(hw.branch_input)) < 1e-12);
  CHECK(max_abs_diff(values(mi.add_residual(mw, y)), values(hc.add_residual(hw, y))) < 1e-12);
}

TEST_CASE("connection modules multi-input: each additional_static_input has its own storage") {
  MultiInputHyperConnections hc(2, two_paths(4, 1));
  auto statics = hc.additional_static_input->named_parameters();
  REQUIRE(statics.size() == 2);
  CHECK(statics[0].first == "0");
  CHECK(statics[0].second.storage() != statics[1].second.storage());
  {
    autograd::NoGradGuard no_grad;
    Tensor(statics[0].second).fill_(5.0);
  }
  CHECK(close(statics[1].second, {2}, {0, 1}));
}

TEST_CASE("connection modules multi-input: channel-first (with extra inputs) equals channel-last on moved axes") {
  const int64_t S = 2, B = 2, N = 3, D = 4;
  MultiInputHyperConnections last(S, two_paths(D, 1));
  MultiInputHyperConnections first(S, two_paths(D, 1, true, true));
  perturb(last, 31);
  perturb(first, 31);
  Tensor x = leaf({B * S, N, D}).detach(), z1 = leaf({B * S, N, D}).detach(), z3 = leaf({B * S, N, 3}).detach();
  Tensor y = leaf({B, N, D}).detach();
  auto wl = last.width(x, {{"1", z1}, {"third", z3}});
  auto wf = first.width(x.transpose(1, 2), {{"1", z1.transpose(1, 2)}, {"third", z3.transpose(1, 2)}});
  CHECK(max_abs_diff(values(wf.branch_input.transpose(1, 2)), values(wl.branch_input)) < 1e-14);
  CHECK(max_abs_diff(values(wf.inputs.at("third").transpose(1, 2)), values(wl.inputs.at("third"))) < 1e-14);
  CHECK(max_abs_diff(values(first.add_residual(wf, y.transpose(1, 2)).transpose(1, 2)),
                     values(last.add_residual(wl, y))) < 1e-14);
}

TEST_CASE("connection modules multi-input: forward calls the branch with the reduced inputs") {
  MultiInputHyperConnections hc(2, two_paths(4, 0),
                                [](const Tensor& u, const NamedInputs& in) { return u * in.at("1") + in.at("third").sum({-1}, true); });
  perturb(hc, 37);
  Tensor x = leaf({4, 3, 4}).detach(), z1 = leaf({4, 3, 4}).detach(), z3 = leaf({4, 3, 3}).detach();
  auto [u, inputs, add_residual] = hc.split(x, {{"1", z1}, {"third", z3}});
  Tensor by_hand = add_residual(u * inputs.at("1") + inputs.at("third").sum({-1}, true));
  CHECK(max_abs_diff(values(hc.forward(x, {{"1", z1}, {"third", z3}})), values(by_hand)) < 1e-14);
}

TEST_CASE("connection modules multi-input gradcheck: residuals, extra inputs, branch output and every parameter") {
  for (bool channel_first : {false, true})
    for (bool use_tanh : {true, false}) {
      MultiInputHyperConnections hc(2, two_paths(4, 1, use_tanh, channel_first));
      perturb(hc, 41);
      std::vector<Tensor> inputs = channel_first ? TensorList{leaf({4, 4, 3}), leaf({4, 4, 3}), leaf({4, 3, 3})}
                                                 : TensorList{leaf({4, 3, 4}), leaf({4, 3, 4}), leaf({4, 3, 3})};
      for (const Tensor& p : hc.parameters()) inputs.push_back(p);
      CHECK(inputs.size() == 3 + 15);
      auto result = gradcheck(
          [&](const TensorList& in) {
            auto w = hc.width(in[0], {{"1", in[1]}, {"third", in[2]}});
            const int64_t feature_axis = channel_first ? 1 : -1;
            Tensor y = tanh(w.branch_input) * w.inputs.at("1") + w.inputs.at("third").sum({feature_axis}, true);
            return hc.add_residual(w, y);
          },
          inputs);
      CHECK_MESSAGE(result.ok, result.message);
    }
}

TEST_CASE("connection modules multi-input: bad input names the module and the shapes") {
  CHECK_THROWS_WITH_AS(MultiInputHyperConnections(0, {.dim = 4}),
                       doctest::Contains("MultiInputHyperConnections: num_streams must be >= 1, got 0"), Error);
  MultiInputHyperConnections hc(2, two_paths(4, 0));
  auto zeros = [](const Shape& shape) { return hcgrad::zeros(shape, {.dtype = f64}); };
  Tensor x = zeros({4, 3, 4});
  CHECK_THROWS_WITH_AS(hc.width(zeros({4, 3, 5}), {}),
                       doctest::Contains("MultiInputHyperConnections: residuals [4,3,5] must be [B·S, ..., 4]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(hc.width(zeros({3, 3, 4}), {}),
                       doctest::Contains("residuals [3,3,4] must be [B·S, ..., 4] with the first dim a multiple of "
                                         "num_streams = 2"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(hc.width(x, {{"1", x}}), doctest::Contains("MultiInputHyperConnections: missing additional "
                                                                  "input 'third' (residuals [4,3,4])"),
                       Error);
  CHECK_THROWS_WITH_AS(hc.width(x, {{"1", x}, {"third", zeros({4, 3, 4})}}),
                       doctest::Contains("MultiInputHyperConnections: additional input 'third' [4,3,4] must be "
                                         "[B·S, ..., 3]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(hc.width(x, {{"1", zeros({2, 3, 4})}, {"third", zeros({4, 3, 3})}}),
                       doctest::Contains("additional input '1' [2,3,4] must have the residuals' first dim 4"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(hc.split(x), doctest::Contains("MultiInputHyperConnections: this module has 2 additional "
                                                      "input path(s)"),
                       Error);
}
