// mHC as the paper writes it (Xie et al. 2025, arXiv 2512.24880, eq. 3 and 7-9), next to the
// library's per-stream form in nn/mhc.h. For one token with streams x_l ∈ R^{n×C} (n = S streams, C = D):
//
//   x⃗      = vec(x_l) ∈ R^{nC}               all streams of the token flattened, stream-major (s·C + c)
//   x⃗'     = RMSNorm(x⃗)                      ONE norm over the n·C values: ScaledRMSNorm(n·C) as everywhere in
//                                            hcgrad (x / ‖x‖₂ · √(nC) · (γ + 1), i.e. RMSNorm with ε → 0 and a
//                                            learned gain γ + 1, γ init 0; the paper uses ε = 1e-20)
//   [p | q | R] = x⃗' φ                       ONE projection φ ∈ R^{nC × (n + n + n²)}: pre (n), post (n), res (n²)
//   H_pre  = σ(α_pre · p + b_pre)            [n]      eq. 7-8
//   H_post = 2σ(α_post · q + b_post)         [n]
//   H_res  = Sinkhorn(α_res · mat(R) + b_res) [n, n]  mat: row-major n² -> n×n, eq. 9 with t_max = sinkhorn_iters
//   x_{l+1} = H_res x_l + H_post^T F(H_pre x_l)        eq. 3
//
// Orientation: H_res[t, s] has row t = destination stream and column s = source stream (new_t = Σ_s H_res[t, s]
// x_s, the matrix acts on the stream vector as written in eq. 3). Eq. 9 normalises columns first (T_c), rows last
// (T_r); hcgrad's sinkhorn op normalises dim −2 (the sum over t for each column s) and then dim −1 (over s for each
// row t), so it runs exactly the paper's order on H_res[t, s], and each destination's weights sum to 1 exactly.
// (The library's matrix is the transpose, H[s, t], so the same op makes each *source's* weights exact there.)
//
// Init (the paper does not publish one); chosen so that at init this module gives the library's numbers:
// φ = 0, α_pre = α_post = α_res = 0.01 (Table 5), b_pre = e_k (home stream k = layer_index mod n), b_post = 1,
// b_res = I. Then H_pre = σ(1) on stream k and σ(0) elsewhere, H_post = 2σ(1), H_res = Sinkhorn(exp(I)): with
// identical streams each block computes x + 2σ(1)·F((σ(1) + (n−1)/2)·x), not the pre-norm x + F(x).
// `init = MhcInit::IdentityLike` sets b_pre, b_res from identity_like_logits (nn/mhc.h) and b_post = 0 instead:
// H_post = 1, H_pre ≈ e_k summing to 1, H_res ≈ I, a pre-norm residual at init.
//
// Options it takes from ManifoldHyperConnectionsOptions: dim, layer_index, streams_in_batch (both layouts),
// sinkhorn_iters, sinkhorn_domain, residual_transform, residual_mix_constraint_fn (gets the logits [B, N, n, n]
// in this orientation), depth_residual_fn, dropout, dtype, init, identity_logit, fused and recompute (the
// split as one hc_width and one hc_depth op, core/ops.h with step.token_projection, when there is no
// constraint function and no depth_residual_fn). num_fracs, num_input_views and
// num_dynamic_alpha_proposals must be 1; mix_streams_before_norm and add_branch_out_to_residual = false are
// library-only (the paper has neither) and rejected.
#pragma once

#include "hcgrad/nn/mhc.h"

namespace hcgrad::nn {

class PaperManifoldHyperConnections : public ConnectionModule {
 public:
  PaperManifoldHyperConnections(int64_t num_streams, ManifoldHyperConnectionsOptions options, Branch branch = {});

  struct Width {
    Tensor branch_input;  // [B, N*, D]
    Tensor residuals;     // H_res x_l, in the input's layout
    Tensor h_pre;         // [B, N, S]
    Tensor h_post;        // [B, N, S]: 2σ(...)
    Tensor h_res;         // [B, N, S, S]: H_res[t, s], row = destination; rows sum to 1
    Tensor streams;       // [B, N, S, D]: x_l, the streams both mixes read
    Tensor h_res_logits;  // [B, N, S, S]: α_res · mat(R) + b_res, what Sinkhorn turned into H_res
    Shape input_shape;    // the residuals' shape (and layout) the merge returns to
  };
  // mix_residuals = false leaves `residuals` undefined: split() then mixes them inside the merge.
  Width width(const Tensor& residuals, bool mix_residuals = true) const;
  Tensor add_residual(const Width& width, const Tensor& branch_output) const;
  // The width step, and a depth step that merges in one fused op (stream_mix_add) when it can.
  ConnectionSplit split(const Tensor& residuals) const override;
  std::string name() const override { return "PaperManifoldHyperConnections"; }
  std::optional<ConnectionMaps> maps(const Tensor& residuals) const override;

  int64_t num_streams, dim, sinkhorn_iters;
  bool streams_in_batch, fused, recompute;
  SinkhornDomain sinkhorn_domain;
  std::shared_ptr<ScaledRMSNorm> norm;  // over n·C
  Tensor phi;         // [n·C, 2n + n²]: columns pre (n), post (n), res (n², row-major [t, s])
  Tensor alpha_pre;   // []
  Tensor alpha_post;  // []
  Tensor alpha_res;   // []
  Tensor b_pre;       // [n]
  Tensor b_post;      // [n]
  Tensor b_res;       // [n, n]

 private:
  std::shared_ptr<Transform> residual_transform_;
  std::function<Tensor(const Tensor&)> constraint_;
  std::shared_ptr<DepthResidual> depth_residual_fn_;
  std::shared_ptr<Dropout> dropout_;
  Generator unused_generator_;

  // The depth step with the residual mix fused in: H_res x + H_post^T y in one stream_mix_add pass (eq. 3).
  Tensor add_residual_by_stream_mix_add(const Width& width, const Tensor& branch_output) const;
  bool runs_fused_steps() const { return fused && !constraint_ && !depth_residual_fn_; }
  ConnectionSplit fused_split(const Tensor& residuals) const;
};

}  // namespace hcgrad::nn
