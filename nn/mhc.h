// Manifold-constrained hyper-connections (mHC, Xie et al. 2025, DeepSeek), as the `hyper-connections`
// library's mHC modules compute them for one fraction and one branch view (F = 1, V = 1):
//
//   x̂_s      = RMSNorm(x_s)                                           the library's scaled RMSNorm, per stream
//   α_p[s,·] = A[s,·] + [ε_pre, ε_res, ..., ε_res] ⊙ (x̂_s · W_p)       p = 1..P proposals, A = [e_k | I]
//   H_pre[s] = σ(α_p[s, 0])                                           mHC eq. (8): pre weights in (0, 1)
//   H_res    = Sinkhorn(α_p[:, 1..S])                                 S x S, rows s = source, columns t = target
//   (H_pre, H_res) averaged over the P proposals
//   u        = Σ_s H_pre[s] x_s                                       the branch input
//   r_t      = Σ_s H_res[s, t] x_s                                    the mixed residual streams
//   β_s      = 2 σ(bβ_s + ε_post x̂_s · Wβ)                            mHC eq. (8): post weights in (0, 2)
//   new_t    = dropout(r_t + β_t · branch(u))
//
// Layouts: v1 folds the streams into the batch, residuals [B·S, N*, D] (row b·S + s); v2 keeps them next
// to the features, [B, N*, S, D]. The math is the same (connections-reference.md b.8, b.9, invariant 7).
// Not identity at init: H_pre = σ(1) / σ(0), H_res = Sinkhorn(exp(I - 1)), β = 2σ(1).
#pragma once

#include "nn/hyper_connections.h"
#include "core/ops.h"

namespace hcgrad::nn {

struct ManifoldHyperConnectionsOptions {
  int64_t dim = 0;           // D (required)
  int64_t layer_index = 0;   // home stream = layer_index mod S
  bool streams_in_batch = true;  // true: v1 layout [B·S, N*, D]; false: v2 layout [B, N*, S, D]
  int64_t sinkhorn_iters = 20;
  SinkhornDomain sinkhorn_domain = SinkhornDomain::Linear;
  int64_t num_dynamic_alpha_proposals = 1;  // P
  int64_t num_fracs = 1;                    // F
  std::shared_ptr<Transform> residual_transform = nullptr;  // applied to the input before everything (null: identity)
  double dropout = 0.0;
  DType dtype = DType::Float32;
  Generator* dropout_generator = nullptr;
};

class ManifoldHyperConnections : public ConnectionModule {
 public:
  ManifoldHyperConnections(int64_t num_streams, ManifoldHyperConnectionsOptions options, Branch branch = {});

  struct Width {
    Tensor branch_input;  // [B, N*, D]
    Tensor residuals;     // the mixed streams, in the input's layout
    Tensor beta;          // [B, N, S]: the post weights 2σ(...)
    Tensor h_pre;         // [B, N, S]
    Tensor h_res;         // [B, N, S, S]: rows sum to 1
  };
  Width width(const Tensor& residuals) const;
  Tensor add_residual(const Width& width, const Tensor& branch_output) const;
  ConnectionSplit split(const Tensor& residuals) const override { return split_of(*this, residuals); }
  std::string name() const override { return "ManifoldHyperConnections"; }

  int64_t num_streams, dim, sinkhorn_iters, proposals;
  bool streams_in_batch;
  SinkhornDomain sinkhorn_domain;
  Tensor static_alpha;      // [S, 1 + S]
  Tensor dynamic_alpha_fn;  // [P, D, 1 + S]
  Tensor pre_branch_scale;  // [1]
  Tensor residual_scale;    // [1]
  Tensor static_beta;       // [S]
  Tensor dynamic_beta_fn;   // [D]
  Tensor h_post_scale;      // []
  std::shared_ptr<ScaledRMSNorm> norm;

 private:
  Tensor streams_last(const Tensor& residuals, int64_t& B, Shape& middle) const;  // -> [B, N, S, D]

  std::shared_ptr<Dropout> dropout_;
  Generator unused_generator_;
};

// Builds the mHC module the options select (the factory's init_hc for mHC).
std::shared_ptr<ConnectionModule> make_manifold_hyper_connections(int64_t num_streams,
                                                                  ManifoldHyperConnectionsOptions options,
                                                                  Branch branch = {});

}  // namespace hcgrad::nn
