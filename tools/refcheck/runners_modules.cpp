// Runners for the library's other hyper-connection modules: the separate channel-first module, the
// multi-branch-input module and the multi-input-stream module (docs/connections.md).
#include "refcheck.h"

namespace refcheck {
namespace {

using namespace hcgrad;

int64_t config_int(const json& c, const char* key) { return c.at("config").at(key).get<int64_t>(); }

// cf_s2: residuals (B·S, D, H, W); branch_input, residuals_after_width, beta (B, S, H, W) and out.
Comparison run_channel_first_module(const json& c, double tol) {
  const json& config = c.at("config");
  nn::ChannelFirstHyperConnections hc(config_int(c, "num_residual_streams"),
                                      {.dim = config_int(c, "dim"),
                                       .layer_index = config_int(c, "layer_index"),
                                       .tanh = config.value("tanh", true)});
  load_params(c.at("params"), hc.named_parameters());
  return check_connection(hc, c, tol);
}

// Without inputs (mb_s3_i2_initparams) the case holds the library's init parameters: compare the module's
// own init with them. Otherwise the full width + depth step on the case's branch output (I·B rows,
// input-major: the library's single branch over all rows; a list of branches only splits those rows).
Comparison run_multi_branch(const json& c, double tol) {
  const json& config = c.at("config");
  nn::MultiBranchHyperConnections hc(config_int(c, "num_residual_streams"),
                                     {.dim = config_int(c, "dim"),
                                      .layer_index = config_int(c, "layer_index"),
                                      .num_branch_inputs = config_int(c, "num_branch_inputs"),
                                      .tanh = config.value("tanh", true)});
  if (c.at("inputs").empty()) {
    Comparison result;
    const nn::NamedTensors own = hc.named_parameters();
    HC_CHECK(own.size() == c.at("params").size(), Error, "refcheck: the module has ", own.size(),
             " parameters, the case ", c.at("params").size());
    for (const auto& [name, p] : own) {
      HC_CHECK(c.at("params").contains(name), Error, "refcheck: the case has no parameter '", name, "'");
      compare(result, "init " + name, p, c.at("params").at(name), tol);
    }
    result.note = "init parameters only";
    return result;
  }
  load_params(c.at("params"), hc.named_parameters());
  return check_connection(hc, c, tol);
}

// The library's additional_input_paths: an int p (positional argument p, named "p" here), a str, or a pair
// [path, dim].
std::vector<nn::AdditionalInputPath> input_paths(const json& paths) {
  std::vector<nn::AdditionalInputPath> out;
  auto name_of = [](const json& p) { return p.is_number() ? std::to_string(p.get<int64_t>()) : p.get<std::string>(); };
  for (const json& path : paths) {
    if (path.is_array()) out.push_back({.name = name_of(path.at(0)), .dim = path.at(1).get<int64_t>()});
    else out.push_back({.name = name_of(path), .dim = 0});
  }
  return out;
}

// mi_s2: the extra inputs are the case's inputs other than residuals / branch_output; their reduced values are
// the outputs "<name>_reduced".
Comparison run_multi_input(const json& c, double tol) {
  const json& config = c.at("config");
  nn::MultiInputHyperConnections hc(config_int(c, "num_residual_streams"),
                                    {.dim = config_int(c, "dim"),
                                     .layer_index = config_int(c, "layer_index"),
                                     .tanh = config.value("tanh", true),
                                     .channel_first = config.value("channel_first", false),
                                     .additional_input_paths = input_paths(config.at("additional_input_paths"))});
  load_params(c.at("params"), hc.named_parameters());
  const json& inputs = c.at("inputs");
  const json& outputs = c.at("outputs");
  nn::NamedInputs extra;
  for (const auto& path : hc.additional_input_paths) extra[path.name] = tensor_of(inputs.at(path.name));

  autograd::NoGradGuard no_grad;
  auto w = hc.width(tensor_of(inputs.at("residuals")), extra);
  Comparison result;
  compare(result, "branch_input", w.branch_input, outputs.at("branch_input"), tol);
  for (const auto& path : hc.additional_input_paths)
    compare(result, path.name + "_reduced", w.inputs.at(path.name), outputs.at(path.name + "_reduced"), tol);
  compare(result, "residuals_after_width", w.residuals, outputs.at("residuals_after_width"), tol);
  compare(result, "beta", w.beta, outputs.at("beta"), tol);
  compare(result, "out", hc.add_residual(w, tensor_of(inputs.at("branch_output"))), outputs.at("out"), tol);
  return result;
}

}  // namespace

void add_module_runners(RunnerTable& table) {
  table["hc_channel_first_module"] = run_channel_first_module;
  table["multi_branch"] = run_multi_branch;
  table["multi_input"] = run_multi_input;
}

}  // namespace refcheck
