// The factory of the `hyper-connections` library's README, one call per model:
//
//   auto [init_hc, expand_stream, reduce_stream] = hcgrad::nn::hyper_connections(4, {.num_fracs = 1});
//   Connection attn_hc = init_hc({.dim = 512, .layer_index = 0}, attention);   // wraps a branch
//   x = expand_stream(x);                   // [B, T, D] -> [B·4, T, D], once after the embeddings
//   x = attn_hc(x);                         // per block: the branch runs inside the connection
//   x = reduce_stream(x);                   // [B·4, T, D] -> [B, T, D], once before the final norm
//
// `disable = true` (the default when num_streams == 1 and num_fracs == 1) turns the same code into the plain
// residual network: init_hc builds Residual (branch(x) + x) and expand / reduce are the identity, so a model
// compares connections without changing code. manifold_hyper_connections() is the same for mHC.
#pragma once

#include <optional>

#include "hcgrad/nn/hyper_connections.h"
#include "hcgrad/nn/mhc.h"
#include "hcgrad/nn/streams.h"

namespace hcgrad::nn {

struct HyperConnectionsFactoryOptions {
  int64_t num_fracs = 1;
  std::optional<bool> disable = std::nullopt;  // default: num_streams == 1 && num_fracs == 1
  // Where the streams live: HC always folds them into the batch; mHC takes either layout.
  StreamLayout layout = StreamLayout::InBatch;
  int64_t dim = 0;  // D: needed by the learned expand / reduce below
  bool add_stream_embed = false;             // expand adds a learned per-stream vector (init 0)
  bool add_attn_pool_reduce_stream = false;  // reduce by attention pooling over the streams instead of a sum
  DType dtype = DType::Float32;
};

// expand_stream / reduce_stream: a callable handle to the Transform, which may hold parameters (register
// module() in your model to train them).
class StreamFunction {
 public:
  explicit StreamFunction(std::shared_ptr<Transform> module) : module_(std::move(module)) {}
  Tensor operator()(const Tensor& x) const { return module_->forward(x); }
  const std::shared_ptr<Transform>& module() const { return module_; }

 private:
  std::shared_ptr<Transform> module_;
};

// init_hc(options, branch = {}): builds one connection; the factory fills in num_streams and num_fracs.
template <class Options>
class ConnectionInit {
 public:
  explicit ConnectionInit(std::function<Connection(Options, Branch)> make) : make_(std::move(make)) {}
  Connection operator()(Options options, Branch branch = {}) const { return make_(std::move(options), std::move(branch)); }

 private:
  std::function<Connection(Options, Branch)> make_;
};

template <class Options>
struct ConnectionFactory {
  ConnectionInit<Options> init_hc;
  StreamFunction expand_stream, reduce_stream;
};

ConnectionFactory<HyperConnectionsOptions> hyper_connections(int64_t num_streams,
                                                              HyperConnectionsFactoryOptions options = {});
ConnectionFactory<ManifoldHyperConnectionsOptions> manifold_hyper_connections(
    int64_t num_streams, HyperConnectionsFactoryOptions options = {});

// Builds the connection around one branch of a model: init_hc(layer_index, branch).
using ConnectionBuilder = std::function<Connection(int64_t layer_index, Branch branch)>;

// A model's connections chosen by name, as tinylm's --connection:
//   residual             x + f(x)
//   hc, frac             hyper_connections() with `streams` streams and `fracs` fractions: the library's
//                        HyperConnections (Frac with the library's dense write-back)
//   frac-paper           the same factory with variant = HcVariant::Paper: Frac-Connections as the Frac paper
//                        writes them (PaperFracConnections, nn/frac_paper.h)
//   mhc, mhc-paper       manifold_hyper_connections(), the library's or the paper's form (MhcVariant), with
//                        the library's init
//   mhc-identity, mhc-paper-identity   the same with the identity-like init (MhcInit::IdentityLike)
// Streams next to the features (StreamLayout::NextToFeatures); each connection's home stream is its layer
// index mod streams.
struct NamedConnections {
  ConnectionBuilder init_hc;
  std::shared_ptr<Transform> expand_stream, reduce_stream;
};
// Every name above, in that order, and the same as one phrase for messages ("residual, hc, ... or X").
const std::vector<std::string>& connection_names();
std::string connection_names_phrase();
bool is_connection_name(const std::string& connection);
// recompute: the fused op pair's backward recomputes the coefficients (HyperConnectionsOptions::recompute).
NamedConnections connections_by_name(const std::string& connection, int64_t streams, int64_t fracs, int64_t dim,
                                     DType dtype = DType::Float32, bool recompute = true);

// True for a connection's static weights (static_alpha / static_beta, the paper mHC's biases b_*), by parameter
// name ("blocks.0.hc_attn.static_alpha"): the HC authors advise against decaying them (they start identity-like).
bool is_static_connection_weight(const std::string& parameter_name);

}  // namespace hcgrad::nn
