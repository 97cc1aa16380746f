// hyper_connections() / manifold_hyper_connections(): nn/hyper_connections_factory.h.
#include "hcgrad/nn/hyper_connections_factory.h"

#include <algorithm>

namespace hcgrad::nn {

namespace {

// The expand / reduce pair of a factory (identity when disabled).
std::pair<StreamFunction, StreamFunction> expand_and_reduce(int64_t S, const HyperConnectionsFactoryOptions& o,
                                                            bool disabled) {
  if (disabled) {
    auto identity = std::make_shared<TransformFn>([](const Tensor& x) { return x; });
    return {StreamFunction(identity), StreamFunction(identity)};
  }
  HC_CHECK(!(o.add_stream_embed || o.add_attn_pool_reduce_stream) || o.dim > 0, Error,
           "hyper_connections: add_stream_embed / add_attn_pool_reduce_stream need the factory's dim, got ", o.dim);
  auto expand = std::make_shared<ExpandStreams>(
      S, ExpandStreamsOptions{.layout = o.layout, .dim = o.dim, .stream_embed = o.add_stream_embed, .dtype = o.dtype});
  std::shared_ptr<Transform> reduce;
  if (o.add_attn_pool_reduce_stream)
    reduce = std::make_shared<AttentionPoolReduceStream>(S, o.dim, AttentionPoolOptions{.layout = o.layout, .dtype = o.dtype});
  else
    reduce = std::make_shared<ReduceStreams>(S, o.layout);
  return {StreamFunction(expand), StreamFunction(reduce)};
}

bool is_disabled(int64_t S, const HyperConnectionsFactoryOptions& o) {
  HC_CHECK(S >= 1, Error, "hyper_connections: num_streams must be >= 1, got ", S);
  HC_CHECK(o.num_fracs >= 1, Error, "hyper_connections: num_fracs must be >= 1, got ", o.num_fracs);
  return o.disable.value_or(S == 1 && o.num_fracs == 1);
}

// The factory sets num_fracs; a connection's own options may repeat it but not contradict it.
int64_t fracs_for(const char* factory, int64_t from_factory, int64_t from_options) {
  HC_CHECK(from_options == 1 || from_options == from_factory, Error, factory, ": init_hc got num_fracs = ",
           from_options, " but the factory was made with num_fracs = ", from_factory);
  return from_factory;
}

}  // namespace

ConnectionFactory<HyperConnectionsOptions> hyper_connections(int64_t S, HyperConnectionsFactoryOptions o) {
  const bool disabled = is_disabled(S, o);
  auto [expand, reduce] = expand_and_reduce(S, o, disabled);
  auto make = [S, o, disabled](HyperConnectionsOptions options, Branch branch) {
    if (disabled) return Connection(std::make_shared<Residual>(std::move(branch)));
    options.num_fracs = fracs_for("hyper_connections", o.num_fracs, options.num_fracs);
    options.streams_in_batch = o.layout == StreamLayout::InBatch;
    return Connection(make_hyper_connections(S, std::move(options), std::move(branch)));
  };
  return {ConnectionInit<HyperConnectionsOptions>(make), expand, reduce};
}

ConnectionFactory<ManifoldHyperConnectionsOptions> manifold_hyper_connections(int64_t S,
                                                                              HyperConnectionsFactoryOptions o) {
  const bool disabled = is_disabled(S, o);
  auto [expand, reduce] = expand_and_reduce(S, o, disabled);
  auto make = [S, o, disabled](ManifoldHyperConnectionsOptions options, Branch branch) {
    if (disabled) return Connection(std::make_shared<Residual>(std::move(branch), options.residual_transform));
    options.num_fracs = fracs_for("manifold_hyper_connections", o.num_fracs, options.num_fracs);
    options.streams_in_batch = o.layout == StreamLayout::InBatch;
    return Connection(make_manifold_hyper_connections(S, options, std::move(branch)));
  };
  return {ConnectionInit<ManifoldHyperConnectionsOptions>(make), expand, reduce};
}

const std::vector<std::string>& connection_names() {
  static const std::vector<std::string> names{"residual",  "hc",           "frac",      "frac-paper",
                                              "mhc",       "mhc-identity", "mhc-paper", "mhc-paper-identity",
                                              "hc-fused", "frac-fused", "frac-paper-fused", "mhc-fused",
                                              "mhc-paper-fused"};
  return names;
}

std::string connection_names_phrase() {
  const std::vector<std::string>& names = connection_names();
  std::string phrase;
  for (size_t i = 0; i < names.size(); ++i) phrase += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return phrase;
}

bool is_connection_name(const std::string& connection) {
  const std::vector<std::string>& names = connection_names();
  return std::find(names.begin(), names.end(), connection) != names.end();
}

NamedConnections connections_by_name(const std::string& connection, int64_t streams, int64_t fracs, int64_t dim,
                                     DType dtype, bool recompute) {
  HC_CHECK(is_connection_name(connection), Error, "connections_by_name: connection must be ",
           connection_names_phrase(), ", got '", connection, "'");
  const HyperConnectionsFactoryOptions factory{.num_fracs = fracs,
                                               .disable = connection == "residual",
                                               .layout = StreamLayout::NextToFeatures,
                                               .dim = dim,
                                               .dtype = dtype};
  if (!connection.starts_with("mhc")) {  // residual, hc, frac, frac-paper
    auto made = hyper_connections(streams, factory);
    const HcVariant variant = connection.starts_with("frac-paper") ? HcVariant::Paper : HcVariant::Library;
    // hc-fused, frac-fused, frac-paper-fused: the fused op pair (HyperConnectionsOptions::fused, off by default)
    const bool fused = connection.ends_with("-fused");
    auto init_hc = [made, dim, dtype, variant, fused, recompute](int64_t layer_index, Branch branch) {
      return made.init_hc({.dim = dim,
                           .layer_index = layer_index,
                           .dtype = dtype,
                           .variant = variant,
                           .fused = fused,
                           .recompute = recompute},
                          std::move(branch));
    };
    return {init_hc, made.expand_stream.module(), made.reduce_stream.module()};
  }
  auto made = manifold_hyper_connections(streams, factory);
  const MhcVariant variant = connection.starts_with("mhc-paper") ? MhcVariant::Paper : MhcVariant::Library;
  const MhcInit init = connection.ends_with("-identity") ? MhcInit::IdentityLike : MhcInit::Library;
  // mhc-fused, mhc-paper-fused: the fused op pair (ManifoldHyperConnectionsOptions::fused, off by default)
  const bool fused = connection.ends_with("-fused");
  auto init_hc = [made, dim, dtype, variant, init, fused, recompute](int64_t layer_index, Branch branch) {
    ManifoldHyperConnectionsOptions options;
    options.fused = fused;
    options.recompute = recompute;
    options.dim = dim;
    options.layer_index = layer_index;
    options.variant = variant;
    options.init = init;
    options.dtype = dtype;
    return made.init_hc(options, std::move(branch));
  };
  return {init_hc, made.expand_stream.module(), made.reduce_stream.module()};
}

bool is_static_connection_weight(const std::string& name) {
  const std::string leaf = name.substr(name.rfind('.') + 1);
  return name.find(".hc_") != std::string::npos && (leaf.starts_with("static_") || leaf.starts_with("b_"));
}

}  // namespace hcgrad::nn
