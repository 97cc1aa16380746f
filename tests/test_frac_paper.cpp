// Frac-Connections as the Frac paper writes them (nn/frac_paper.h). The main check is an independent
// re-implementation of the paper's equations (eq. 6-15 with S streams of F fractions): plain loops over
// complex numbers, differentiated by the complex step (∂L/∂θ = Im L(θ + ih·e_k) / h, exact to rounding since
// nothing is subtracted), against the module's outputs and autograd gradients. Then: the init is the pre-norm
// residual, values worked by hand from the paper's matrix, gradchecks, the sub-family the library's Frac
// shares, the factory and the errors.
#include <complex>
#include <map>

#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;

namespace {

using cplx = std::complex<double>;

HyperConnectionsOptions paper_options(int64_t dim, int64_t fracs, int64_t layer_index, bool streams_in_batch,
                                      bool dynamic = true, bool use_tanh = true) {
  return {.dim = dim,
          .layer_index = layer_index,
          .tanh = use_tanh,
          .num_fracs = fracs,
          .streams_in_batch = streams_in_batch,
          .dtype = DType::Float64,
          .variant = HcVariant::Paper,
          .dynamic = dynamic};
}

// Everything the reference differentiates, flattened into θ: the input streams x [B, N, S, D], the module's
// parameters by name, and the branch's weight Wb [D, D]. offset[name] is where each starts.
struct Problem {
  int64_t tokens = 0, S = 0, F = 0, D = 0;
  bool dynamic = true, use_tanh = true;
  std::map<std::string, size_t> offset;
  std::vector<double> theta, G;  // G: the cotangent of the output [B, N, S, D], loss = Σ out·G
};

// The paper's forward for every token, written from eq. 6-15 (see nn/frac_paper.h for the matrix):
//   rows x_r (r = s·F + f); x̂_r = x_r / ‖x_r‖ · √d · (γ + 1);
//   [Y | A][r, c] = [Y₀ | A₀][r, c] + s_α φ(x̂_r · W_α[:, c]);   β_r = B₀[r] + s_β φ(x̂_r · w_β)
//   u_j = Σ_r Y[r, j] x_r;  y = tanh(u Wb);  new_r' = β_r' y_{r' mod F} + Σ_r A[r, r'] x_r
// Returns the loss Σ new · G.
cplx paper_loss_by_loops(const Problem& p, const std::vector<cplx>& th, std::vector<double>* out = nullptr) {
  const int64_t S = p.S, F = p.F, D = p.D, R = S * F, C = F + R, d = D / F;
  auto at = [&](const std::string& name, int64_t i) { return th[p.offset.at(name) + static_cast<size_t>(i)]; };
  auto phi = [&](cplx v) { return p.use_tanh ? std::tanh(v) : v; };
  cplx loss = 0;
  for (int64_t t = 0; t < p.tokens; ++t) {
    auto x = [&](int64_t r, int64_t i) { return at("input", t * S * D + r * d + i); };
    std::vector<cplx> alpha(static_cast<size_t>(R * C)), beta(static_cast<size_t>(R));
    for (int64_t r = 0; r < R; ++r) {
      std::vector<cplx> normed(static_cast<size_t>(d));
      cplx square_sum = 0;
      for (int64_t i = 0; i < d; ++i) square_sum += x(r, i) * x(r, i);
      for (int64_t i = 0; i < d; ++i)
        normed[i] = p.dynamic ? x(r, i) / std::sqrt(square_sum) * std::sqrt(double(d)) * (at("norm.gamma", i) + 1.0)
                              : cplx(0);
      for (int64_t c = 0; c < C; ++c) {
        alpha[r * C + c] = at("static_alpha", r * C + c);
        if (!p.dynamic) continue;
        cplx projection = 0;
        for (int64_t i = 0; i < d; ++i) projection += normed[i] * at("dynamic_alpha_fn", i * C + c);
        alpha[r * C + c] += at("dynamic_alpha_scale", 0) * phi(projection);
      }
      beta[r] = at("static_beta", r);
      if (p.dynamic) {
        cplx projection = 0;
        for (int64_t i = 0; i < d; ++i) projection += normed[i] * at("dynamic_beta_fn", i);
        beta[r] += at("dynamic_beta_scale", 0) * phi(projection);
      }
    }
    std::vector<cplx> u(static_cast<size_t>(D), 0.0), y(static_cast<size_t>(D), 0.0);
    for (int64_t j = 0; j < F; ++j)
      for (int64_t i = 0; i < d; ++i)
        for (int64_t r = 0; r < R; ++r) u[j * d + i] += alpha[r * C + j] * x(r, i);
    for (int64_t o = 0; o < D; ++o) {
      for (int64_t k = 0; k < D; ++k) y[o] += u[k] * at("branch", k * D + o);
      y[o] = std::tanh(y[o]);
    }
    for (int64_t r2 = 0; r2 < R; ++r2)
      for (int64_t i = 0; i < d; ++i) {
        cplx v = beta[r2] * y[(r2 % F) * d + i];
        for (int64_t r = 0; r < R; ++r) v += alpha[r * C + F + r2] * x(r, i);
        if (out) out->push_back(v.real());
        loss += v * p.G[static_cast<size_t>(t * S * D + r2 * d + i)];
      }
  }
  return loss;
}

// ∂loss/∂θ_k for every k by the complex step.
std::vector<double> complex_step_gradient(const Problem& p) {
  const double h = 1e-30;
  std::vector<cplx> th(p.theta.begin(), p.theta.end());
  std::vector<double> grad(th.size());
  for (size_t k = 0; k < th.size(); ++k) {
    th[k] += cplx(0, h);
    grad[k] = paper_loss_by_loops(p, th).imag() / h;
    th[k] = p.theta[k];
  }
  return grad;
}

std::vector<double> segment(const Problem& p, const std::vector<double>& all, const std::string& name, size_t n) {
  const size_t start = p.offset.at(name);
  return {all.begin() + static_cast<std::ptrdiff_t>(start), all.begin() + static_cast<std::ptrdiff_t>(start + n)};
}

// Runs one case: the module on perturbed weights (both layouts when S > 1) against the loops.
void check_against_loops(int64_t S, int64_t F, bool dynamic, bool use_tanh, uint64_t seed) {
  const int64_t B = 2, N = 3, D = 8, tokens = B * N;
  CAPTURE(S);
  CAPTURE(F);
  CAPTURE(dynamic);
  CAPTURE(use_tanh);
  for (bool in_batch : {false, true}) {
    if (in_batch && S == 1) continue;  // one stream: the two layouts are the same tensor
    CAPTURE(in_batch);
    PaperFracConnections module(S, paper_options(D, F, /*layer_index=*/1, in_batch, dynamic, use_tanh));
    perturb(module, seed);
    Tensor x = leaf({B, N, S, D});
    Tensor branch_weight = (leaf({D, D}) * 0.7).detach().requires_grad_();
    Tensor G = leaf({B, N, S, D}).detach();

    // hcgrad: width, branch, depth, loss, backward
    Tensor residuals = in_batch ? x.permute({0, 2, 1, 3}).reshape({B * S, N, D}) : x;
    auto w = module.width(residuals);
    Tensor out = module.add_residual(w, tanh(matmul(w.branch_input, branch_weight)));
    if (in_batch) out = out.reshape({B, S, N, D}).permute({0, 2, 1, 3});
    sum(out * G).backward();

    // the reference on the same numbers
    Problem p;
    p.tokens = tokens;
    p.S = S;
    p.F = F;
    p.D = D;
    p.dynamic = dynamic;
    p.use_tanh = use_tanh;
    p.G = values(G);
    auto add = [&](const std::string& name, const Tensor& t) {
      p.offset[name] = p.theta.size();
      for (double v : values(t.detach())) p.theta.push_back(v);
    };
    add("input", x);
    for (const auto& entry : module.named_parameters()) add(entry.first, entry.second);
    add("branch", branch_weight);
    std::vector<double> reference_out;
    std::vector<cplx> th(p.theta.begin(), p.theta.end());
    paper_loss_by_loops(p, th, &reference_out);
    CHECK(max_abs_diff(values(out), reference_out) < 1e-12);

    const std::vector<double> grad = complex_step_gradient(p);
    CHECK(max_abs_diff(values(x.grad()), segment(p, grad, "input", x.numel())) < 1e-12);
    CHECK(max_abs_diff(values(branch_weight.grad()), segment(p, grad, "branch", branch_weight.numel())) < 1e-12);
    size_t checked = 0;
    for (const auto& entry : module.named_parameters()) {
      const std::string& name = entry.first;
      const Tensor& param = entry.second;
      CAPTURE(name);
      REQUIRE(param.grad().defined());
      CHECK(max_abs_diff(values(param.grad()), segment(p, grad, name, param.numel())) < 1e-12);
      ++checked;
    }
    CHECK(checked == (dynamic ? 7u : 2u));  // every parameter of the form was compared
  }
}

}  // namespace

TEST_CASE("frac paper: outputs and every gradient agree with loops written from the paper (complex step)") {
  uint64_t seed = 1;
  for (int64_t S : {1, 2})
    for (int64_t F : {2, 4}) check_against_loops(S, F, /*dynamic=*/true, /*use_tanh=*/true, seed++);
  check_against_loops(2, 2, /*dynamic=*/false, /*use_tanh=*/true, seed++);  // the static form (SFC)
  check_against_loops(1, 2, /*dynamic=*/true, /*use_tanh=*/false, seed++);  // without tanh (the paper's ablation)
}

TEST_CASE("frac paper: at init the module is the pre-norm residual, exactly (S copies of it with S streams)") {
  const int64_t B = 2, N = 3, D = 8, L = 3;
  for (int64_t S : {1, 2})
    for (int64_t F : {2, 4}) {
      CAPTURE(S);
      CAPTURE(F);
      const PlainResidualStack stack(D, L, 5);
      std::vector<std::shared_ptr<PaperFracConnections>> layers;
      for (int64_t i = 0; i < L; ++i)
        layers.push_back(std::make_shared<PaperFracConnections>(S, paper_options(D, F, i, /*streams_in_batch=*/false),
                                                                stack.branch(i)));
      CHECK(layers[0]->static_alpha.shape() == Shape{S * F, F + S * F});
      CHECK(layers[0]->named_parameters().size() == 7);
      Tensor x = leaf({B, N, D}).detach();
      Tensor plain = stack.forward(x);
      Tensor streams = x.reshape({B, N, 1, D}).expand({B, N, S, D});  // expand: a copy per stream
      for (auto& layer : layers) streams = layer->forward(streams);
      Tensor reduced = streams.sum({2});  // reduce: the sum of the streams
      CHECK(max_abs_diff(values(reduced), values(plain * double(S))) == 0);
    }
}

TEST_CASE("frac paper: values worked by hand from the paper's matrix, two fractions") {
  // S = 1, F = 2, D = 4 (d = 2), static form. FC (eq. 7) = [0 0 | β] over [Y | A]:
  //   Y = [[1, 0.5], [0.25, 2]],  A = [[0.9, 0.2], [0.1, 1.1]],  β = [0.5, 3]
  // h = [1, 2, 3, 4]: x_0 = [1, 2], x_1 = [3, 4]
  //   u_0 = 1·x_0 + 0.25·x_1 = [1.75, 3],   u_1 = 0.5·x_0 + 2·x_1 = [6.5, 9]
  //   branch y = 2u = [3.5, 6 | 13, 18]
  //   new_0 = 0.5·y_0 + 0.9·x_0 + 0.1·x_1 = [1.75 + 0.9 + 0.3, 3 + 1.8 + 0.4] = [2.95, 5.2]
  //   new_1 = 3·y_1 + 0.2·x_0 + 1.1·x_1   = [39 + 0.2 + 3.3, 54 + 0.4 + 4.4]  = [42.5, 58.8]
  PaperFracConnections module(1, paper_options(4, 2, 0, /*streams_in_batch=*/true, /*dynamic=*/false),
                              [](const Tensor& u) { return u * 2.0; });
  CHECK(module.named_parameters().size() == 2);  // static_alpha [2, 4], static_beta [2]: m(2m + 1) = 10 values
  {
    autograd::NoGradGuard no_grad;
    module.static_alpha.copy_(from_vector(std::vector<double>{1, 0.5, 0.9, 0.2, 0.25, 2, 0.1, 1.1}, {2, 4}));
    module.static_beta.copy_(from_vector(std::vector<double>{0.5, 3}, {2}));
  }
  Tensor h = from_vector(std::vector<double>{1, 2, 3, 4}, {1, 1, 4});
  auto w = module.width(h);
  CHECK(close(w.branch_input, {1, 1, 4}, {1.75, 3, 6.5, 9}, 1e-15));
  CHECK(close(module.forward(h), {1, 1, 4}, {2.95, 5.2, 42.5, 58.8}, 1e-13));
}

TEST_CASE("frac paper gradcheck: both forms, both layouts") {
  for (bool dynamic : {true, false})
    for (bool in_batch : {false, true}) {
      CAPTURE(dynamic);
      CAPTURE(in_batch);
      PaperFracConnections module(2, paper_options(4, 2, 1, in_batch, dynamic));
      perturb(module, 21);
      auto result = gradcheck_connection(module, in_batch ? leaf({4, 3, 4}) : leaf({2, 3, 2, 4}));
      CHECK_MESSAGE(result.ok, result.message);
    }
}

TEST_CASE("frac paper: equals the library's Frac on the sub-family both can express") {
  // Diagonal static β and no dynamic β: the library's write o[f2] = Σ_f1 β[f1, f2] y[f1] becomes the paper's
  // β_r y_f. α maps column by column (the library's rows f1·S + s and columns f2·(1 + S) + t).
  const int64_t D = 8, B = 2, N = 3;
  for (int64_t S : {1, 2})
    for (int64_t F : {2, 4}) {
      CAPTURE(S);
      CAPTURE(F);
      const int64_t R = S * F, C = F + R, LC = F * (1 + S), d = D / F;
      PaperFracConnections paper(S, paper_options(D, F, 1, /*streams_in_batch=*/false));
      perturb(paper, 30 + S * 10 + F);
      HyperConnections library(
          S, {.dim = D, .layer_index = 1, .num_fracs = F, .streams_in_batch = false, .dtype = DType::Float64});
      {
        autograd::NoGradGuard no_grad;
        paper.dynamic_beta_fn.zero_();
        const std::vector<double> pa = values(paper.static_alpha), pw = values(paper.dynamic_alpha_fn),
                                  pb = values(paper.static_beta);
        std::vector<double> la(static_cast<size_t>(R * LC)), lw(static_cast<size_t>(d * LC)),
            lb(static_cast<size_t>(R * F), 0.0);
        auto library_column = [&](int64_t paper_column) {  // the paper's column c as the library's
          if (paper_column < F) return paper_column * (1 + S);
          const int64_t t = (paper_column - F) / F, f2 = (paper_column - F) % F;
          return f2 * (1 + S) + 1 + t;
        };
        for (int64_t s = 0; s < S; ++s)
          for (int64_t f = 0; f < F; ++f) {
            for (int64_t c = 0; c < C; ++c) la[(f * S + s) * LC + library_column(c)] = pa[(s * F + f) * C + c];
            lb[(f * S + s) * F + f] = pb[s * F + f];
          }
        for (int64_t i = 0; i < d; ++i)
          for (int64_t c = 0; c < C; ++c) lw[i * LC + library_column(c)] = pw[i * C + c];
        library.static_alpha.copy_(from_vector(la, {R, LC}));
        library.dynamic_alpha_fn.copy_(from_vector(lw, {d, LC}));
        library.static_beta.copy_(from_vector(lb, {R, F}));
        library.dynamic_alpha_scale.copy_(paper.dynamic_alpha_scale);
        library.norm->gamma.copy_(paper.norm->gamma);
      }
      Tensor x_paper = leaf({B, N, S, D});
      Tensor x_library = x_paper.detach().clone().requires_grad_();
      Tensor out_paper = run_connection(paper, x_paper);
      Tensor out_library = run_connection(library, x_library);
      CHECK(max_abs_diff(values(out_paper), values(out_library)) < 1e-14);
      sum(out_paper * out_paper).backward();
      sum(out_library * out_library).backward();
      CHECK(max_abs_diff(values(x_paper.grad()), values(x_library.grad())) < 1e-13);
    }
}

TEST_CASE("frac paper: made by the factory and by name, F = 1 maps, and clear errors") {
  auto [init_hc, expand, reduce] = hyper_connections(1, {.num_fracs = 4});
  Connection made = init_hc({.dim = 8, .variant = HcVariant::Paper});
  CHECK(made->name() == "PaperFracConnections");
  CHECK(init_hc({.dim = 8})->name() == "HyperConnections");
  NamedConnections named = connections_by_name("frac-paper", 2, 2, 8, DType::Float64);
  CHECK(named.init_hc(0, {})->name() == "PaperFracConnections");

  // F = 1 is the HC paper's matrix: maps() reports it, and applying the maps by hand gives the output.
  PaperFracConnections hc_form(3, paper_options(4, 1, 2, /*streams_in_batch=*/false));
  perturb(hc_form, 3);
  Tensor x = leaf({2, 3, 3, 4}).detach();
  const ConnectionMaps maps = *hc_form.maps(x);
  Tensor u = stream_mix(maps.h_pre.unsqueeze(-1), x);  // [B, N, 1, D]
  Tensor by_maps = stream_mix(maps.h_res.transpose(-1, -2), x) + maps.h_post.unsqueeze(-1) * (tanh(u) * 1.5);
  CHECK(max_abs_diff(values(by_maps), values(run_connection(hc_form, x))) < 1e-14);
  CHECK_FALSE(PaperFracConnections(1, paper_options(4, 2, 0, false)).maps(leaf({1, 2, 1, 4})).has_value());

  HyperConnectionsOptions bad = paper_options(6, 4, 0, true);
  CHECK_THROWS_WITH_AS(PaperFracConnections(1, bad), doctest::Contains("dim (6) must be divisible by num_fracs (4)"),
                       ShapeError);
  bad = paper_options(8, 2, 0, true);
  bad.num_input_views = 2;
  CHECK_THROWS_WITH_AS(PaperFracConnections(1, bad), doctest::Contains("num_input_views must be 1, got 2"), Error);
  bad = paper_options(8, 2, 0, true);
  bad.depth_residual_fn = std::make_shared<DepthResidualFn>([](const Tensor& o, const Tensor& r) { return o + r; });
  CHECK_THROWS_WITH_AS(PaperFracConnections(1, bad), doctest::Contains("library options (use variant Library)"), Error);
  HyperConnectionsOptions static_library{.dim = 8, .dynamic = false};
  CHECK_THROWS_WITH_AS(HyperConnections(2, static_library), doctest::Contains("always dynamic"), Error);
  PaperFracConnections module(2, paper_options(8, 2, 0, /*streams_in_batch=*/false));
  CHECK_THROWS_WITH_AS(module.width(leaf({2, 3, 8})), doctest::Contains("PaperFracConnections: residuals [2,3,8]"),
                       ShapeError);
  auto w = module.width(leaf({2, 3, 2, 8}));
  CHECK_THROWS_WITH_AS(module.add_residual(w, leaf({2, 3, 4})), doctest::Contains("PaperFracConnections"), ShapeError);
}
