// Runners for the manifold-constrained hyper-connections (mHC v1 and v2 layouts, and the v2 pipeline).
#include "refcheck.h"

namespace refcheck {
namespace {

using namespace hcgrad;

nn::ManifoldHyperConnectionsOptions mhc_options(const json& config, bool streams_in_batch, int64_t layer_index) {
  return {.dim = config.at("dim").get<int64_t>(),
          .layer_index = layer_index,
          .streams_in_batch = streams_in_batch,
          .sinkhorn_iters = config.at("sinkhorn_iters").get<int64_t>(),
          .sinkhorn_domain = config.value("log_domain_sinkhorn", false) ? SinkhornDomain::Log : SinkhornDomain::Linear,
          .num_dynamic_alpha_proposals = config.value("num_dynamic_alpha_proposals", int64_t{1}),
          .num_fracs = config.value("num_fracs", int64_t{1}),
          .mix_streams_before_norm = config.value("mix_streams_before_norm", false)};
}

// mHC v1 (streams in the batch) and v2 (streams next to the features). The parameters load by element count
// (v1's static_beta (S,) and dynamic_beta_fn (d,), v2's (S, F, 1) and (d, F) hold the same values in the same
// order as hcgrad's), and `beta` is compared by row-major values: hcgrad's [B, N, S, F, F] is the library's v2
// β[s, f1, f2], and for F = 1 the same order as v1's (B, N, 1, S, 1). The library-bug cases (v1 F > 1, which
// hcgrad computes with the v2 math; sinkhorn_iters = 0, which hcgrad rejects) are skipped.
Comparison run_mhc(const json& c, double tol) {
  skip_library_bug(c);
  const json& config = c.at("config");
  const bool v1 = c.at("kind").get<std::string>() == "mhc_v1";
  // Twice: the default module, then with the fused op pair (hc_width / hc_depth), which is opt-in for mHC.
  Comparison result;
  for (const bool fused : {false, true}) {
    nn::ManifoldHyperConnectionsOptions options = mhc_options(config, v1, config.at("layer_index").get<int64_t>());
    options.fused = fused;
    nn::ManifoldHyperConnections mhc(config.at("num_residual_streams").get<int64_t>(), options);
    load_params(c.at("params"), mhc.named_parameters());
    const Comparison run = check_connection(mhc, c, tol);
    result.max_abs = std::max(result.max_abs, run.max_abs);
    result.max_rel = std::max(result.max_rel, run.max_rel);
    if (result.failure.empty() && !run.failure.empty()) result.failure = (fused ? "fused: " : "") + run.failure;
  }
  return result;
}

// v2 expand with stream embeddings -> `layers` mHC v2 layers wrapping Linear(D, D) branches -> attention-pool
// reduce, every parameter the case's (state_dict "expand.*", "layers.<i>.*", "layers.<i>.branch.*", "reduce.*").
Comparison run_mhc_v2_pipeline(const json& c, double tol) {
  const json& config = c.at("config");
  const int64_t S = config.at("num_residual_streams").get<int64_t>(), D = config.at("dim").get<int64_t>(),
                L = config.at("layers").get<int64_t>();
  HC_CHECK(config.value("add_stream_embed", false) && config.value("add_attn_pool_reduce_stream", false), Error,
           "refcheck: mhc_v2_pipeline runs the stream-embed expand and the attention-pool reduce only");
  const nn::StreamLayout layout = nn::StreamLayout::NextToFeatures;
  auto expand = std::make_shared<nn::ExpandStreams>(
      S, nn::ExpandStreamsOptions{.layout = layout, .dim = D, .stream_embed = true});
  auto reduce = std::make_shared<nn::AttentionPoolReduceStream>(S, D, nn::AttentionPoolOptions{.layout = layout});
  nn::NamedTensors destinations;
  auto add_all = [&](const std::string& prefix, const nn::Module& module) {
    for (auto& [name, p] : module.named_parameters()) destinations.emplace_back(prefix + name, p);
  };
  add_all("expand.", *expand);
  Generator gen(0);
  std::vector<std::shared_ptr<nn::Linear>> branches;
  std::vector<std::shared_ptr<nn::ManifoldHyperConnections>> layers;
  for (int64_t i = 0; i < L; ++i) {
    branches.push_back(std::make_shared<nn::Linear>(D, D, gen));
    auto branch = branches.back();
    auto wrapped = [branch](const Tensor& u) { return branch->forward(u); };
    layers.push_back(std::make_shared<nn::ManifoldHyperConnections>(S, mhc_options(config, false, i), wrapped));
    const std::string prefix = "layers." + std::to_string(i) + ".";
    add_all(prefix + "branch.", *branch);
    add_all(prefix, *layers.back());
  }
  add_all("reduce.", *reduce);
  load_params(c.at("params"), destinations);

  autograd::NoGradGuard no_grad;
  const json& outputs = c.at("outputs");
  Comparison result;
  Tensor streams = expand->forward(tensor_of(c.at("inputs").at("x")));
  compare(result, "expanded", streams, outputs.at("expanded"), tol);
  for (int64_t i = 0; i < L; ++i) {
    streams = layers[i]->forward(streams);
    compare(result, "after_layer" + std::to_string(i), streams, outputs.at("after_layer" + std::to_string(i)), tol);
  }
  compare(result, "out", reduce->forward(streams), outputs.at("out"), tol);
  return result;
}

}  // namespace

void add_mhc_runners(RunnerTable& table) {
  table["mhc_v1"] = run_mhc;
  table["mhc_v2"] = run_mhc;
  table["mhc_v2_pipeline"] = run_mhc_v2_pipeline;
}

}  // namespace refcheck
