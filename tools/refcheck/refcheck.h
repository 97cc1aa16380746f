// refcheck's shared pieces: reading a case's tensors, comparing with the reference's values, loading a
// module's parameters by their PyTorch state_dict names, and the table of runners (one per case kind).
// Each runners_*.cpp file adds the runners of one group of modules.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "hcgrad/hcgrad.h"

namespace refcheck {

using hcgrad::Tensor;
using json = nlohmann::json;

// ---- Reading case files (cases.cpp; tests/fuzz/fuzz_refcheck_cases.cpp feeds it arbitrary bytes) ----
// Every refusal throws hcgrad::Error naming the file, the case and the problem.

// A case file: a JSON object whose "cases" is an array. `source` names the text in messages.
json parse_case_file(std::string_view text, const std::string& source);
json read_case_file(const std::string& path);  // at most 256 MiB

// The fields every case has: a name, a kind (which runner), and a tolerance (default 1e-5; finite, > 0).
struct CaseHeader {
  std::string name, kind;
  double tolerance = 1e-5;
};
CaseHeader case_header(const json& c, size_t index, const std::string& source);

// {"data": [numbers], "shape": [sizes]} as a float32 tensor of that shape; the sizes must be whole numbers
// >= 0 whose product is the number of values.
Tensor tensor_of(const json& t);

// The largest errors seen in one case, and the first value out of tolerance.
struct Comparison {
  double max_abs = 0, max_rel = 0;
  std::string failure;  // empty when every value is within tolerance
  std::string note;     // printed after "pass", e.g. how a library-bug case was run
};

// Compares got with the reference by row-major values (the reference sometimes has extra size-1 axes):
// |got - ref| <= tol + tol·|ref|.
void compare(Comparison& c, const std::string& what, const Tensor& got, const json& ref, double tol);

// Copies a case's params (state_dict names) into the named destinations; the two name sets must be equal and
// the element counts must match. `adapt(name, value)` may reshape a reference value first (or return it).
void load_params(const json& params, const hcgrad::nn::NamedTensors& destinations,
                 const std::function<Tensor(const std::string&, const Tensor&)>& adapt = {});

// Thrown by a runner to skip a case, with the reason printed.
struct Skip {
  std::string reason;
};
// Skips a case marked "library_bug" with the standard message; runners that can run such a case in a
// reference-compatible way check c.contains("library_bug") themselves instead.
void skip_library_bug(const json& c);

using Runner = std::function<Comparison(const json& c, double tol)>;
using RunnerTable = std::map<std::string, Runner>;

void add_hc_runners(RunnerTable& table);       // runners_hc.cpp: rmsnorm, sinkhorn, residual, hc, hc_pipeline
void add_mhc_runners(RunnerTable& table);      // runners_mhc.cpp: mhc_v1, mhc_v2, mhc_v2_pipeline
void add_stream_runners(RunnerTable& table);   // runners_streams.cpp: expand/reduce helpers, gates, residual updates
void add_module_runners(RunnerTable& table);   // runners_modules.cpp: channel-first, multi-branch, multi-input HC
void add_vit_runners(RunnerTable& table);      // runners_vit.cpp: the library's ViT (examples/vit_digits' model)

// Runs a connection with the width()/add_residual(width, y) API on an `hc`-like case: branch_input,
// residuals_after_width, beta (when the case has it) and out; then branch_input and out through split() (the
// form the models use, which may run fused ops); for a gradient case, once in each form, (input G) the branch
// z -> tanh(z) + branch_output with loss sum(out * G), then every gradient in "grads" (`adapt_grad(key, grad)`
// may bring a gradient to the reference's layout first).
template <class Connection>
Comparison check_connection(const Connection& connection, const json& c, double tol,
                            const std::function<Tensor(const std::string&, const Tensor&)>& adapt_grad = {}) {
  using namespace hcgrad;
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
  {
    // The same call through split(), which a module may run as fused ops (HyperConnections: hc_width, hc_depth).
    autograd::NoGradGuard no_grad;
    nn::ConnectionSplit s = connection.split(residuals);
    compare(result, "split.branch_input", s.branch_input, outputs.at("branch_input"), tol);
    compare(result, "split.out", s.add_residual(y), outputs.at("out"), tol);
  }
  if (inputs.contains("G")) {
    // The gradient case twice: the two-step form, then split().
    for (const bool by_split : {false, true}) {
      Tensor r = residuals.detach().requires_grad_(), b = y.detach().requires_grad_();
      for (const auto& [name, p] : connection.named_parameters()) p.zero_grad();
      Tensor out;
      if (by_split) {
        nn::ConnectionSplit s = connection.split(r);
        out = s.add_residual(tanh(s.branch_input) + b);
      } else {
        auto w = connection.width(r);
        out = connection.add_residual(w, tanh(w.branch_input) + b);
      }
      const std::string prefix = by_split ? "split." : "";
      compare(result, prefix + "grad_case_out", out, outputs.at("grad_case_out"), tol);
      sum(out * tensor_of(inputs.at("G"))).backward();
      for (auto& [key, ref] : c.at("grads").items()) {
        Tensor grad;
        if (key == "input.residuals") grad = r.grad();
        else if (key == "input.branch_output") grad = b.grad();
        else
          for (const auto& [name, p] : connection.named_parameters())
            if (key == "param." + name) grad = p.grad();
        HC_CHECK(grad.defined(), Error, "refcheck: no gradient for '", key, "'");
        compare(result, prefix + key, adapt_grad ? adapt_grad(key, grad) : grad, ref, tol);
      }
    }
  }
  return result;
}

}  // namespace refcheck
