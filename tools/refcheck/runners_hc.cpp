// Runners for the primitives (RMSNorm, Sinkhorn), the plain Residual and the main HyperConnections module.
#include "refcheck.h"

namespace refcheck {
namespace {

using namespace hcgrad;

Comparison run_rmsnorm(const json& c, double tol) {
  nn::ScaledRMSNorm norm(c.at("config").at("dim").get<int64_t>());
  load_params(c.at("params"), norm.named_parameters());
  Comparison result;
  compare(result, "y", norm.forward(tensor_of(c.at("inputs").at("x"))), c.at("outputs").at("y"), tol);
  return result;
}

// v1 / v2: the library's two linear Sinkhorns (equal for iters >= 1 on square input); log: its log-domain one.
Comparison run_sinkhorn(const json& c, double tol) {
  skip_library_bug(c);
  const json& config = c.at("config");
  const std::string variant = config.at("variant").get<std::string>();
  const SinkhornDomain domain = variant == "log" ? SinkhornDomain::Log : SinkhornDomain::Linear;
  Tensor logits = tensor_of(c.at("inputs").at("log_alpha"));
  const bool gradient = c.at("inputs").contains("G");
  if (gradient) logits.requires_grad_();
  Tensor out = sinkhorn(logits, config.at("iters").get<int64_t>(), domain);
  Comparison result;
  compare(result, "out", out, c.at("outputs").at("out"), tol);
  if (gradient) {
    sum(out * tensor_of(c.at("inputs").at("G"))).backward();
    compare(result, "input.log_alpha", logits.grad(), c.at("grads").at("input.log_alpha"), tol);
  }
  return result;
}

// disable = true: the factory's plain residual, y + x, with identity expand / reduce.
Comparison run_residual(const json& c, double tol) {
  const json& config = c.at("config");
  auto [init_hc, expand_stream, reduce_stream] =
      nn::hyper_connections(config.at("num_residual_streams").get<int64_t>(), {.disable = config.value("disable", true)});
  nn::Connection residual = init_hc({.dim = config.at("dim").get<int64_t>()});
  Tensor x = expand_stream(tensor_of(c.at("inputs").at("residuals")));
  auto [branch_input, add_residual] = residual(x);
  Comparison result;
  compare(result, "branch_input", branch_input, c.at("outputs").at("branch_input"), tol);
  Tensor out = reduce_stream(add_residual(tensor_of(c.at("inputs").at("branch_output"))));
  compare(result, "out", out, c.at("outputs").at("out"), tol);
  return result;
}

nn::HyperConnectionsOptions hc_options(const json& config) {
  return {.dim = config.at("dim").get<int64_t>(),
          .layer_index = config.at("layer_index").get<int64_t>(),
          .tanh = config.value("tanh", true),
          .add_branch_out_to_residual = config.value("add_branch_out_to_residual", true),
          .num_input_views = config.value("num_input_views", int64_t{1}),
          .num_fracs = config.value("num_fracs", int64_t{1}),
          .channel_first = config.value("channel_first", false)};
}

// HyperConnections. For F > 1 the library's init is a documented bug (hcgrad starts from the Frac paper's
// identity-like weights), but its forward equations are hcgrad's: such a case runs on the library's stored
// parameters, with its static_beta [S·F] (index s·F + f2, shared by every input fraction f1) broadcast to
// hcgrad's [F·S, F] (row f1·S + s, column f2), and that parameter's gradient summed back over f1.
Comparison run_hc(const json& c, double tol) {
  const json& config = c.at("config");
  nn::HyperConnectionsOptions options = hc_options(config);
  const int64_t S = config.at("num_residual_streams").get<int64_t>(), F = options.num_fracs;
  nn::HyperConnections hc(S, options);
  auto beta_to_hcgrad = [&](const std::string& name, const Tensor& value) {
    if (F == 1 || name != "static_beta") return value;
    return value.reshape({1, S, F}).expand({F, S, F}).reshape({F * S, F});
  };
  auto beta_to_library = [&](const std::string& key, const Tensor& grad) {
    if (F == 1 || key != "param.static_beta") return grad;
    return grad.reshape({F, S, F}).sum({0}).reshape({S * F});
  };
  load_params(c.at("params"), hc.named_parameters(), beta_to_hcgrad);
  if (options.channel_first && c.contains("library_bug")) {
    // The library's channel-first width step is right, its depth step is the documented bug: compare the
    // width outputs only (hcgrad's depth step is tested against channel-last on permuted data instead).
    autograd::NoGradGuard no_grad;
    auto w = hc.width(tensor_of(c.at("inputs").at("residuals")));
    Comparison result;
    compare(result, "branch_input", w.branch_input, c.at("outputs").at("branch_input"), tol);
    compare(result, "residuals_after_width", w.residuals, c.at("outputs").at("residuals_after_width"), tol);
    result.note = "width step only; the library's channel-first depth step is the documented bug";
    return result;
  }
  // split() runs the composition by default; run the fused op pair too.
  Comparison result = check_connection(hc, c, tol, beta_to_library);
  {
    nn::HyperConnectionsOptions other = options;
    other.fused = !hc.fused;
    nn::HyperConnections second(S, other);
    load_params(c.at("params"), second.named_parameters(), beta_to_hcgrad);
    const Comparison run = check_connection(second, c, tol, beta_to_library);
    result.max_abs = std::max(result.max_abs, run.max_abs);
    result.max_rel = std::max(result.max_rel, run.max_rel);
    if (result.failure.empty() && !run.failure.empty())
      result.failure = std::string(other.fused ? "fused: " : "unfused: ") + run.failure;
  }
  if (c.contains("library_bug"))
    result.note = "the library's forward on its own parameters; hcgrad's F > 1 init differs on purpose";
  return result;
}

// expand(S) -> `layers` HC layers at init, each wrapping a Linear(D, D) branch -> reduce; and the plain
// residual network with the same branches.
Comparison run_hc_pipeline(const json& c, double tol) {
  const json& config = c.at("config");
  const int64_t S = config.at("num_residual_streams").get<int64_t>(), D = config.at("dim").get<int64_t>(),
                L = config.at("layers").get<int64_t>();
  auto [init_hc, expand_stream, reduce_stream] = nn::hyper_connections(S);
  Generator gen(0);
  std::vector<std::shared_ptr<nn::Linear>> branches;
  std::vector<nn::Connection> layers;
  nn::NamedTensors destinations;
  for (int64_t i = 0; i < L; ++i) {
    branches.push_back(std::make_shared<nn::Linear>(D, D, gen));
    auto branch = branches.back();
    layers.push_back(init_hc({.dim = D, .layer_index = i}, [branch](const Tensor& u) { return branch->forward(u); }));
    const std::string prefix = "layers." + std::to_string(i) + ".";
    for (auto& [name, p] : branch->named_parameters()) destinations.emplace_back(prefix + "branch." + name, p);
    for (auto& [name, p] : layers.back()->named_parameters()) destinations.emplace_back(prefix + name, p);
  }
  load_params(c.at("params"), destinations);
  autograd::NoGradGuard no_grad;
  Tensor x = tensor_of(c.at("inputs").at("x"));
  Tensor streams = expand_stream(x), plain = x;
  for (int64_t i = 0; i < L; ++i) {
    streams = layers[i](streams);
    plain = plain + branches[i]->forward(plain);
  }
  Comparison result;
  compare(result, "out", reduce_stream(streams), c.at("outputs").at("out"), tol);
  compare(result, "plain_residual_out", plain, c.at("outputs").at("plain_residual_out"), tol);
  return result;
}

}  // namespace

void add_hc_runners(RunnerTable& table) {
  table["rmsnorm"] = run_rmsnorm;
  table["sinkhorn"] = run_sinkhorn;
  table["residual"] = run_residual;
  table["hc"] = run_hc;
  table["hc_pipeline"] = run_hc_pipeline;
}

}  // namespace refcheck
