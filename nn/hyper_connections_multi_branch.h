// The `hyper-connections` library's multi-branch-input module (hyper_connections_with_multi_branch_inputs.py,
// docs/connections.md; HC paper App. J, Algorithm 2): the S residual streams are mixed into I branch
// inputs instead of one, the branch (or a list of branches) runs on all of them, and each of its I outputs is
// written back to every stream with its own depth weight. Streams folded into the batch ("L1"):
// residuals [B·S, N*, D], row b·S + s = stream s of item b.
//
// For one token, with x_s ∈ R^D stream s:
//   x̂_s       = RMSNorm(x_s)
//   α[s, t]    = A[s, t] + sα · φ(x̂_s · Wα[:, t])        t < I: branch input t, t = I + s': stream s'
//   β[s, i]    = bβ[s, i] + sβ · φ(x̂_s · Wβ[:, i])
//   u_i        = Σ_s α[s, i] x_s,     r_s' = Σ_s α[s, I + s'] x_s
//   new_s      = dropout(r_s + Σ_i β[s, i] · y_i)          y_i = branch output for input i
// The I branch inputs are stacked input-major: rows [i·B, (i+1)·B) of the branch input [I·B, N*, D] are u_i.
// With a list of n branches (I divisible by n), branch j gets the j-th of n consecutive equal chunks of those
// rows (so I / n inputs each), and their outputs are concatenated back in order.
//
// Init: A's branch columns are A[s, i] = 1 iff (s + i + L) mod S == 0 with L = (layer_index mod (S·I))·I, so
// branch input i reads stream (−i−L) mod S (distinct streams when I <= S); the stream columns are I; β = 1;
// the dynamic weights 0; the scales 0.01.
//
// The library's factory for this module raises TypeError (b.5, b.12); multi_branch_hyper_connections() below
// is a working one.
#pragma once

#include <optional>
#include <vector>

#include "hcgrad/nn/connection.h"
#include "hcgrad/nn/hyper_connections.h"
#include "hcgrad/nn/hyper_connections_factory.h"

namespace hcgrad::nn {

struct MultiBranchHyperConnectionsOptions {
  int64_t dim = 0;                // D, the model width (required)
  int64_t layer_index = 0;        // picks the streams the inputs read at init (see above)
  int64_t num_branch_inputs = 1;  // I
  bool tanh = true;               // φ of the dynamic weights
  double dropout = 0.0;           // on the new residual streams
  bool channel_first = false;     // residuals [B·S, D, N*]; branch input / output [I·B, D, N*]
  // A list of branches, each run on one consecutive chunk of the I·B branch-input rows (the library's
  // `branch = [module, ...]`); alternative to the constructor's single branch.
  std::vector<Branch> branches = {};
  DType dtype = DType::Float32;
  Generator* dropout_generator = nullptr;  // needed when dropout > 0
};

class MultiBranchHyperConnections : public ConnectionModule {
 public:
  // `branch` (optional, or options.branches) is what forward() wraps: it gets all I·B rows.
  MultiBranchHyperConnections(int64_t num_streams, MultiBranchHyperConnectionsOptions options, Branch branch = {});

  struct Width {
    Tensor branch_input;  // [I·B, N*, D], input-major   (channel_first: [I·B, D, N*])
    Tensor residuals;     // [B, N*, S, D]: the mixed streams r (the library's internal layout)
    Tensor beta;          // [B, N*, S, I]
  };
  Width width(const Tensor& residuals) const;
  // new streams [B·S, N*, D] (channel_first: [B·S, D, N*]) from the branch output y, shaped as the branch input.
  Tensor add_residual(const Width& width, const Tensor& branch_output) const;
  ConnectionSplit split(const Tensor& residuals) const override { return split_of(*this, residuals); }
  std::string name() const override { return "MultiBranchHyperConnections"; }

  // Runs the branches on consecutive equal chunks of x's rows and concatenates their outputs (what forward()
  // does with options.branches).
  static Tensor run_branches(const std::vector<Branch>& branches, const Tensor& branch_input);

  int64_t num_streams, dim, num_branch_inputs;
  bool tanh, channel_first;
  Tensor static_alpha;         // [S, I + S]
  Tensor dynamic_alpha_fn;     // [D, I + S]
  Tensor dynamic_alpha_scale;  // []
  Tensor static_beta;          // [S, I]
  Tensor dynamic_beta_fn;      // [D, I]
  Tensor dynamic_beta_scale;   // []
  std::shared_ptr<ScaledRMSNorm> norm;

 private:
  std::shared_ptr<Dropout> dropout_;
  Generator unused_generator_;  // for a dropout of 0, which never draws
};

// The factory the library means to offer for this module:
//   auto [init_hc, expand_stream, reduce_stream] = multi_branch_hyper_connections(4);
//   Connection hc = init_hc({.dim = D, .num_branch_inputs = 2, .branches = {attn, mlp}});
// expand / reduce are the L1 copy and sum; disable (default: num_streams == 1) builds Residual and identities.
struct MultiBranchFactoryOptions {
  std::optional<bool> disable;  // default: num_streams == 1
};
ConnectionFactory<MultiBranchHyperConnectionsOptions> multi_branch_hyper_connections(
    int64_t num_streams, MultiBranchFactoryOptions options = {});

}  // namespace hcgrad::nn
