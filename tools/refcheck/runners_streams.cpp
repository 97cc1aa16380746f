// Runners for the expand / reduce helpers (nn/streams.h), the depth-residual gates and residual updates
// (nn/residuals.h), and a HyperConnections whose depth step is a GatedResidual.
#include "refcheck.h"

namespace refcheck {
namespace {

using namespace hcgrad;

int64_t config_int(const json& c, const char* key) { return c.at("config").at(key).get<int64_t>(); }

// Runs a parameter-free or loaded DepthResidual on the case's (x, residual) and compares out.
Comparison check_depth_residual(const nn::DepthResidual& fn, const json& c, double tol) {
  autograd::NoGradGuard no_grad;
  const json& inputs = c.at("inputs");
  Comparison result;
  compare(result, "out", fn.forward(tensor_of(inputs.at("x")), tensor_of(inputs.at("residual"))),
          c.at("outputs").at("out"), tol);
  return result;
}

// The L1 StreamEmbed(S, D, expand_to_streams=True): copy each batch row S times, add E[s].
Comparison run_stream_embed_expand(const json& c, double tol) {
  HC_CHECK(c.at("config").value("expand_to_streams", true), Error, "refcheck: only expand_to_streams = true runs");
  nn::ExpandStreams expand(config_int(c, "num_streams"), {.dim = config_int(c, "dim"), .stream_embed = true});
  load_params(c.at("params"), expand.named_parameters());
  autograd::NoGradGuard no_grad;
  Comparison result;
  compare(result, "out", expand.forward(tensor_of(c.at("inputs").at("x"))), c.at("outputs").at("out"), tol);
  return result;
}

// The L1 AttentionPoolReduceStream, channels last or first.
Comparison run_attn_pool_reduce(const json& c, double tol) {
  nn::AttentionPoolReduceStream pool(config_int(c, "num_streams"), config_int(c, "dim"),
                                     {.channel_first = c.at("config").value("channel_first", false)});
  load_params(c.at("params"), pool.named_parameters());
  autograd::NoGradGuard no_grad;
  Comparison result;
  compare(result, "out", pool.forward(tensor_of(c.at("inputs").at("residuals"))), c.at("outputs").at("out"), tol);
  return result;
}

// The v2 factory's plain expand (copies next to the features) and reduce (sum over the stream axis).
Comparison run_expand_reduce_v2(const json& c, double tol) {
  const int64_t S = config_int(c, "num_streams");
  nn::ExpandStreams expand(S, {.layout = nn::StreamLayout::NextToFeatures});
  nn::ReduceStreams reduce(S, nn::StreamLayout::NextToFeatures);
  Tensor expanded = expand.forward(tensor_of(c.at("inputs").at("x")));
  Comparison result;
  compare(result, "expanded", expanded, c.at("outputs").at("expanded"), tol);
  compare(result, "reduced", reduce.forward(expanded), c.at("outputs").at("reduced"), tol);
  return result;
}

Comparison run_gated_residual(const json& c, double tol) {
  Generator gen(0);  // overwritten by the case's parameters
  nn::GatedResidual gate(config_int(c, "dim"), c.at("config").value("fine_gate", false), gen);
  load_params(c.at("params"), gate.named_parameters());
  return check_depth_residual(gate, c, tol);
}

Comparison run_gru_gated_residual(const json& c, double tol) {
  Generator gen(0);
  nn::GRUGatedResidual gate(config_int(c, "dim"), gen);
  load_params(c.at("params"), gate.named_parameters());
  return check_depth_residual(gate, c, tol);
}

Comparison run_orthogonal_residual_update(const json& c, double tol) {
  nn::OrthogonalResidualUpdate update(c.at("config").value("double_precision", true));
  return check_depth_residual(update, c, tol);
}

Comparison run_mv_split_residual_update(const json& c, double tol) {
  nn::MVSplitResidualUpdate update(config_int(c, "dim"));
  load_params(c.at("params"), update.named_parameters());
  return check_depth_residual(update, c, tol);
}

// HyperConnections (F = 1) with depth_residual_fn = GatedResidual(dim): its parameters load as
// depth_residual_fn.to_learned_mix.*.
Comparison run_hc_gated_depth(const json& c, double tol) {
  const json& config = c.at("config");
  HC_CHECK(config.value("num_fracs", int64_t{1}) == 1 && !config.value("channel_first", false), Error,
           "refcheck: hc_gated_depth runs F = 1, channels last only");
  const int64_t D = config_int(c, "dim");
  Generator gen(0);
  nn::HyperConnections hc(config_int(c, "num_residual_streams"),
                          {.dim = D,
                           .layer_index = config_int(c, "layer_index"),
                           .tanh = config.value("tanh", true),
                           .add_branch_out_to_residual = config.value("add_branch_out_to_residual", true),
                           .num_input_views = config.value("num_input_views", int64_t{1}),
                           .depth_residual_fn = std::make_shared<nn::GatedResidual>(D, gen)});
  load_params(c.at("params"), hc.named_parameters());
  return check_connection(hc, c, tol);
}

}  // namespace

void add_stream_runners(RunnerTable& table) {
  table["stream_embed_expand"] = run_stream_embed_expand;
  table["attn_pool_reduce"] = run_attn_pool_reduce;
  table["expand_reduce_v2"] = run_expand_reduce_v2;
  table["gated_residual"] = run_gated_residual;
  table["gru_gated_residual"] = run_gru_gated_residual;
  table["orthogonal_residual_update"] = run_orthogonal_residual_update;
  table["mv_split_residual_update"] = run_mv_split_residual_update;
  table["hc_gated_depth"] = run_hc_gated_depth;
}

}  // namespace refcheck
