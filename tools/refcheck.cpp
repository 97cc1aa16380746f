// refcheck: runs reference cases (tests/fixtures/connections/*.json, format in the spec's fixtures-format.md)
// through hcgrad and compares every output and gradient with the reference library's values.
//
//   build/tools/refcheck FILE.json [FILE.json ...]
//
// One line per case: its name, the largest absolute and relative error, and pass / FAIL / skipped with the
// reason (a documented library bug, or a kind hcgrad does not run yet). Ends with "N passed, N failed,
// N skipped"; exits 1 if any case failed or a file could not be read.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "hcgrad.h"

using namespace hcgrad;
using json = nlohmann::json;

namespace {

Tensor tensor_of(const json& t) {
  std::vector<float> data = t.at("data").get<std::vector<float>>();
  const std::vector<int64_t> dims = t.at("shape").get<std::vector<int64_t>>();
  Shape shape(dims.begin(), dims.end());
  return from_vector(data, shape).reshape(shape);
}

// Compares got with the reference by row-major values (the reference sometimes has extra size-1 axes).
struct Comparison {
  double max_abs = 0, max_rel = 0;
  std::string failure;  // empty when every value is within tolerance
};

void compare(Comparison& c, const std::string& what, const Tensor& got, const json& ref, double tol) {
  std::vector<double> a = got.to(DType::Float64).contiguous().to_vector<double>();
  std::vector<float> b = ref.at("data").get<std::vector<float>>();
  if (a.size() != b.size()) {
    if (c.failure.empty()) c.failure = what + ": " + std::to_string(a.size()) + " values, reference has " + std::to_string(b.size());
    return;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = std::abs(a[i] - b[i]), rel = err / std::max(std::abs(double(b[i])), 1e-30);
    c.max_abs = std::max(c.max_abs, err);
    if (std::abs(b[i]) > 1e-6) c.max_rel = std::max(c.max_rel, rel);
    if (!(err <= tol + tol * std::abs(double(b[i]))) && c.failure.empty())
      c.failure = what + "[" + std::to_string(i) + "]: " + std::to_string(a[i]) + " vs " + std::to_string(b[i]);
  }
}

// Loads a case's params (state_dict names) into named destinations; every name must match.
void load_params(const json& params, const nn::NamedTensors& destinations) {
  std::map<std::string, const json*> given;
  for (auto& [name, t] : params.items()) given[name] = &t;
  HC_CHECK(given.size() == destinations.size(), Error, "refcheck: the case has ", given.size(),
           " parameters, the module ", destinations.size());
  autograd::NoGradGuard no_grad;
  for (const auto& [name, dest] : destinations) {
    auto it = given.find(name);
    HC_CHECK(it != given.end(), Error, "refcheck: the case has no parameter '", name, "'");
    Tensor value = tensor_of(*it->second);
    HC_CHECK(value.numel() == dest.numel(), ShapeError, "refcheck: parameter '", name, "' has shape ", value.shape(),
             ", the module's is ", dest.shape());
    Tensor(dest).copy_(value.reshape(dest.shape()));
  }
}

using Runner = std::function<Comparison(const json& c, double tol)>;

// Thrown by a runner for a configuration hcgrad does not run yet: the case is skipped with this reason.
struct NotRunYet {
  std::string reason;
};

Comparison run_rmsnorm(const json& c, double tol) {
  nn::ScaledRMSNorm norm(c.at("config").at("dim").get<int64_t>());
  load_params(c.at("params"), norm.named_parameters());
  Comparison result;
  compare(result, "y", norm.forward(tensor_of(c.at("inputs").at("x"))), c.at("outputs").at("y"), tol);
  return result;
}

// v1 / v2: the library's two linear Sinkhorns (equal for iters >= 1 on square input); log: its log-domain one.
Comparison run_sinkhorn(const json& c, double tol) {
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

// Runs one connection module (HyperConnections or ManifoldHyperConnections) on a case: the width outputs,
// the depth output, and for a gradient case (input G) the branch z -> tanh(z) + y with loss sum(out * G).
template <class Connection>
Comparison check_connection(const Connection& connection, const json& c, double tol) {
  const json& inputs = c.at("inputs");
  const json& outputs = c.at("outputs");
  Tensor residuals = tensor_of(inputs.at("residuals")), y = tensor_of(inputs.at("branch_output"));
  Comparison result;
  {
    autograd::NoGradGuard no_grad;
    auto w = connection.width(residuals);
    compare(result, "branch_input", w.branch_input, outputs.at("branch_input"), tol);
    compare(result, "residuals_after_width", w.residuals, outputs.at("residuals_after_width"), tol);
    if (outputs.contains("beta")) compare(result, "beta", w.beta, outputs.at("beta"), tol);
    compare(result, "out", connection.add_residual(w, y), outputs.at("out"), tol);
  }
  if (inputs.contains("G")) {
    residuals.requires_grad_();
    y.requires_grad_();
    auto w = connection.width(residuals);
    Tensor out = connection.add_residual(w, tanh(w.branch_input) + y);
    compare(result, "grad_case_out", out, outputs.at("grad_case_out"), tol);
    sum(out * tensor_of(inputs.at("G"))).backward();
    for (auto& [key, ref] : c.at("grads").items()) {
      Tensor grad;
      if (key == "input.residuals") grad = residuals.grad();
      else if (key == "input.branch_output") grad = y.grad();
      else
        for (const auto& [name, p] : connection.named_parameters())
          if (key == "param." + name) grad = p.grad();
      HC_CHECK(grad.defined(), Error, "refcheck: no gradient for '", key, "'");
      compare(result, key, grad, ref, tol);
    }
  }
  return result;
}

nn::HyperConnectionsOptions hc_options(const json& config) {
  return {.dim = config.at("dim").get<int64_t>(),
          .layer_index = config.at("layer_index").get<int64_t>(),
          .tanh = config.value("tanh", true),
          .add_branch_out_to_residual = config.value("add_branch_out_to_residual", true),
          .num_input_views = config.value("num_input_views", int64_t{1}),
          .num_fracs = config.value("num_fracs", int64_t{1})};
}

Comparison run_hc(const json& c, double tol) {
  const json& config = c.at("config");
  if (config.value("channel_first", false)) throw NotRunYet{"channel_first HC is not built yet"};
  if (config.value("num_fracs", int64_t{1}) != 1) throw NotRunYet{"Frac-Connections (num_fracs > 1) are not built yet"};
  nn::HyperConnections hc(config.at("num_residual_streams").get<int64_t>(), hc_options(config));
  load_params(c.at("params"), hc.named_parameters());
  return check_connection(hc, c, tol);
}

// mHC v1 (streams in the batch) and v2 (streams next to the features), one fraction, no stream mixing.
Comparison run_mhc(const json& c, double tol) {
  const json& config = c.at("config");
  if (config.value("num_fracs", int64_t{1}) != 1) throw NotRunYet{"mHC with num_fracs > 1 is not built yet"};
  if (config.value("mix_streams_before_norm", false)) throw NotRunYet{"mHC mix_streams_before_norm is not built yet"};
  nn::ManifoldHyperConnections mhc(
      config.at("num_residual_streams").get<int64_t>(),
      {.dim = config.at("dim").get<int64_t>(),
       .layer_index = config.at("layer_index").get<int64_t>(),
       .streams_in_batch = c.at("kind").get<std::string>() == "mhc_v1",
       .sinkhorn_iters = config.at("sinkhorn_iters").get<int64_t>(),
       .sinkhorn_domain = config.value("log_domain_sinkhorn", false) ? SinkhornDomain::Log : SinkhornDomain::Linear,
       .num_dynamic_alpha_proposals = config.value("num_dynamic_alpha_proposals", int64_t{1})});
  load_params(c.at("params"), mhc.named_parameters());
  return check_connection(mhc, c, tol);
}

// expand(S) -> `layers` HC layers at init, each wrapping a Linear(D, D) branch -> reduce; and the plain
// residual network with the same branches.
Comparison run_hc_pipeline(const json& c, double tol) {
  const json& config = c.at("config");
  const int64_t S = config.at("num_residual_streams").get<int64_t>(), D = config.at("dim").get<int64_t>(),
                L = config.at("layers").get<int64_t>();
  Generator gen(0);
  std::vector<std::shared_ptr<nn::Linear>> branches;
  std::vector<std::shared_ptr<nn::HyperConnections>> layers;
  nn::NamedTensors destinations;
  for (int64_t i = 0; i < L; ++i) {
    branches.push_back(std::make_shared<nn::Linear>(D, D, gen));
    layers.push_back(std::make_shared<nn::HyperConnections>(S, nn::HyperConnectionsOptions{.dim = D, .layer_index = i}));
    const std::string prefix = "layers." + std::to_string(i) + ".";
    for (auto& [name, p] : branches.back()->named_parameters()) destinations.emplace_back(prefix + "branch." + name, p);
    for (auto& [name, p] : layers.back()->named_parameters()) destinations.emplace_back(prefix + name, p);
  }
  load_params(c.at("params"), destinations);
  autograd::NoGradGuard no_grad;
  Tensor x = tensor_of(c.at("inputs").at("x"));
  Shape split = x.shape(), folded = x.shape();  // [B, S, N*, D] and [B·S, N*, D]
  split.insert(split.begin() + 1, S);
  folded[0] *= S;
  Tensor streams = x.unsqueeze(1).expand(split).reshape(folded);
  Tensor plain = x;
  for (int64_t i = 0; i < L; ++i) {
    auto w = layers[i]->width(streams);
    streams = layers[i]->add_residual(w, branches[i]->forward(w.branch_input));
    plain = plain + branches[i]->forward(plain);
  }
  Comparison result;
  compare(result, "out", streams.reshape(split).sum({1}), c.at("outputs").at("out"), tol);
  compare(result, "plain_residual_out", plain, c.at("outputs").at("plain_residual_out"), tol);
  return result;
}

const std::map<std::string, Runner>& runners() {
  static const std::map<std::string, Runner> table = {
      {"rmsnorm", run_rmsnorm}, {"sinkhorn", run_sinkhorn}, {"hc", run_hc}, {"hc_pipeline", run_hc_pipeline},
      {"mhc_v1", run_mhc}, {"mhc_v2", run_mhc}};
  return table;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: refcheck FILE.json [FILE.json ...]\n");
    return 2;
  }
  int passed = 0, failed = 0, skipped = 0;
  for (int a = 1; a < argc; ++a) {
    json file;
    try {
      std::ifstream in(argv[a]);
      HC_CHECK(in, Error, "cannot open ", argv[a]);
      file = json::parse(in);
    } catch (const std::exception& e) {
      std::printf("refcheck: %s: %s\n", argv[a], e.what());
      ++failed;
      continue;
    }
    for (const json& c : file.at("cases")) {
      const std::string name = c.at("name").get<std::string>(), kind = c.at("kind").get<std::string>();
      if (c.contains("library_bug")) {
        std::printf("%-34s skipped: library bug, hcgrad does the right thing: %s\n", name.c_str(),
                    c.at("library_bug").get<std::string>().c_str());
        ++skipped;
        continue;
      }
      auto runner = runners().find(kind);
      if (runner == runners().end()) {
        std::printf("%-34s skipped: kind '%s' is not run by hcgrad yet\n", name.c_str(), kind.c_str());
        ++skipped;
        continue;
      }
      const double tol = c.value("tolerance", 1e-5);
      try {
        Comparison r = runner->second(c, tol);
        std::printf("%-34s max abs %.2e  max rel %.2e  %s%s\n", name.c_str(), r.max_abs, r.max_rel,
                    r.failure.empty() ? "pass" : "FAIL: ", r.failure.c_str());
        (r.failure.empty() ? passed : failed)++;
      } catch (const NotRunYet& skip) {
        std::printf("%-34s skipped: %s\n", name.c_str(), skip.reason.c_str());
        ++skipped;
      } catch (const std::exception& e) {
        std::printf("%-34s FAIL: %s\n", name.c_str(), e.what());
        ++failed;
      }
    }
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed > 0 ? 1 : 0;
}
