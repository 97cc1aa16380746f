// Frac-Connections as the Frac paper writes them (Zhu et al. 2025, arXiv 2503.14125: eq. 6-15, Algorithm 1
// and the App. A pseudocode), next to the library-compatible Frac of nn/hyper_connections.h. Selected by
// `HyperConnectionsOptions::variant = HcVariant::Paper` (make_hyper_connections) and tinylm's
// `--connection frac-paper`.
//
// For one token the hidden state h ∈ R^D is split into F fractions of width d = D / F (eq. 6). With S
// streams on top (HC's expansion; S = 1 is the paper, S > 1 is hcgrad's combination of the two papers) the
// state has R = S·F rows x_r ∈ R^d, row r = s·F + f (stream s, fraction f). The connection matrix (eq. 7):
//
//        [ 0_{1×F} | B ]     B ∈ R^{1×R}   β_r: how much of the branch output row r receives
//   FC = [---------+---]     Y ∈ R^{R×F}   γ:   builds the branch input from the rows
//        [ Y       | A ]     A ∈ R^{R×R}   α:   mixes the rows among themselves
//
//   u_j    = Σ_r Y[r, j] x_r                  branch input u = concat_j u_j ∈ R^D    (eq. 8; Alg. 1 line 4)
//   y      = F(u) ∈ R^D, fractions y_j ∈ R^d
//   new_r' = β_r' · y_{f(r')}  +  Σ_r A[r, r'] x_r,   f(r') = r' mod F              (eq. 8; Alg. 1 line 5)
//
// The write-back is diagonal: row r' gets only its own fraction of y, weighted by its own β_r' (App. A:
// `beta[..., None] * y.reshape(m, d/m)`). The library's Frac writes o[f2] = Σ_f1 β[f1, f2] y[f1] instead
// (nn/hyper_connections.h); both agree exactly when that β is diagonal and its dynamic part is zero.
//
// Dynamic form (DFC, eq. 11-14); the static form (SFC, `dynamic = false`) has only [Y₀ | A₀] and B₀:
//   x̂_r        = RMSNorm_d(x_r)                        ScaledRMSNorm(d): d parameters, as the paper counts
//                                                       RMSNorm (eq. 19; its pseudocode shows a LayerNorm)
//   [Y | A][r] = [Y₀ | A₀][r] + s_α · φ(x̂_r W_α)       W_α = dynamic_alpha_fn [d, F + R] (eq. 13, 14)
//   β_r        = B₀[r] + s_β · φ(x̂_r · w_β)            w_β = dynamic_beta_fn [d] (eq. 12)
// φ = tanh (the identity with tanh = false, the paper's ablation); s_α, s_β learned scalars.
//
// Init (eq. 15): W = 0, s_α = s_β = 0.01, B₀ = 1, A₀ = I_R and Y₀[(s, f), j] = δ(s, k)·δ(f, j) with the
// home stream k = layer_index mod S (for S = 1, Y₀ = I_F as in the paper). So at init new_r = x_r + y_{f(r)}:
// with S = 1 the module is exactly the pre-norm residual x + F(x); with S identical streams every stream is.
// Parameters: S = 1 static F(2F + 1) (eq. 16); dynamic adds d·(F + R + 1) + d (norm) + 2 (eq. 19).
//
// Options it takes from HyperConnectionsOptions: dim, layer_index, num_fracs, tanh, dynamic, dropout,
// streams_in_batch (both layouts), dtype, fused and recompute (the dynamic form's split as one hc_width and
// one hc_depth op, core/ops.h with step.diagonal_beta; off by default). num_input_views must be 1;
// channel_first, depth_residual_fn and add_branch_out_to_residual = false are library options and rejected.
#pragma once

#include "hcgrad/nn/hyper_connections.h"

namespace hcgrad::nn {

class PaperFracConnections : public ConnectionModule {
 public:
  PaperFracConnections(int64_t num_streams, HyperConnectionsOptions options, Branch branch = {});

  struct Width {
    Tensor branch_input;  // [B, N*, D]
    Tensor streams;       // [B, N, R, d]: the rows x_r both mixes read (N = the middle dims N* flattened)
    Tensor alpha;         // [B, N, R, F + R] ([R, F + R] in the static form): [Y | A] per token
    Tensor beta;          // [B, N, R] ([R] in the static form)
    Shape input_shape;    // the residuals' shape (and layout) the merge returns to
  };
  Width width(const Tensor& residuals) const;
  // new_r' = β_r' y_{f(r')} + Σ_r A[r, r'] x_r, in one stream_mix_add pass.
  Tensor add_residual(const Width& width, const Tensor& branch_output) const;
  ConnectionSplit split(const Tensor& residuals) const override;
  std::string name() const override { return "PaperFracConnections"; }
  // F = 1 (the HC paper's matrix): H_pre = Y, H_res = A^T, H_post = β.
  std::optional<ConnectionMaps> maps(const Tensor& residuals) const override;

  int64_t num_streams, dim, num_fracs;
  bool tanh, dynamic, streams_in_batch, fused, recompute;
  Tensor static_alpha;         // [R, F + R]: [Y₀ | A₀], row r = s·F + f
  Tensor static_beta;          // [R]: B₀
  Tensor dynamic_alpha_fn;     // [d, F + R]: W_α (dynamic form only)
  Tensor dynamic_alpha_scale;  // []: s_α
  Tensor dynamic_beta_fn;      // [d]: w_β
  Tensor dynamic_beta_scale;   // []: s_β
  std::shared_ptr<ScaledRMSNorm> norm;  // over each row's d features (dynamic form only)

 private:
  ConnectionSplit fused_split(const Tensor& residuals) const;
  std::shared_ptr<Dropout> dropout_;
  Generator unused_generator_;  // for a dropout of 0, which never draws
};

}  // namespace hcgrad::nn
