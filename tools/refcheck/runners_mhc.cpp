// Runners for the manifold-constrained hyper-connections (mHC v1 and v2 layouts).
#include "refcheck.h"

namespace refcheck {
namespace {

using namespace hcgrad;

// mHC v1 (streams in the batch) and v2 (streams next to the features).
Comparison run_mhc(const json& c, double tol) {
  skip_library_bug(c);
  const json& config = c.at("config");
  if (config.value("num_fracs", int64_t{1}) != 1) throw Skip{"mHC with num_fracs > 1 is not built yet"};
  if (config.value("mix_streams_before_norm", false)) throw Skip{"mHC mix_streams_before_norm is not built yet"};
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

}  // namespace

void add_mhc_runners(RunnerTable& table) {
  table["mhc_v1"] = run_mhc;
  table["mhc_v2"] = run_mhc;
}

}  // namespace refcheck
