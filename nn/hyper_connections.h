// Hyper-Connections (Zhu et al. 2024) and Frac-Connections (Zhu et al. 2025): S residual streams instead of
// one, mixed by learned width and depth connections, as the `hyper-connections` library's HyperConnections
// module computes them (its layout "L1": the streams folded into the batch, row b·S + s = stream s of item b).
//
// For one token, with x[f, s] ∈ R^d the fraction f of stream s (d = D / F, fraction is the outer index):
//   x̂[f, s]   = RMSNorm(x[f, s])                                      (one γ for all f, s)
//   α[f1,s,c]  = A[f1·S+s, c] + sα · φ(x̂[f1,s] · Wα[:, c])             static + dynamic width weights
//   m[f2, t]   = Σ_{f1,s} α[f1, s, f2·(V+S)+t] · x[f1, s]               c = f2·(V+S) + t
//   branch input u_v = concat_f2 m[f2, v]   (v < V views),   mixed residual r_s' = concat_f2 m[f2, V+s']
//   β[f1,s,f2] = bβ[s·F+f2] + sβ · φ(x̂[f1,s] · Wβ[:, f2])              depth weights
//   new_s      = dropout( Σ_f1 β[f1,s,·] y[f1]  +  r_s )                  y = branch(u)
// φ = tanh (or identity with tanh = false). HC paper: eq. (1)-(5) (static) and (6)-(9) (dynamic); F > 1 is
// the Frac-Connections paper's fractional version.
//
// Initialisation: the branch reads the home stream k = layer_index mod S and every stream keeps itself
// (A = [e_k | I] per fraction), all β = 1, dynamic weights 0, scales 0.01. So at init each stream becomes
// x_t + branch(x_k), and expand -> L layers -> reduce is S times the plain residual network.
//
// Frac-Connections (F > 1, Frac paper eq. 8 and App. A): hcgrad starts from the paper's identity-like
// weights — branch fraction f reads fraction f of the home stream, residual fraction f of stream s keeps
// itself, and output fraction f gets β·y[f] (a diagonal write). The library's F > 1 init re-reads its
// [VF | SF] layout as F blocks of V+S columns, which scrambles the fractions, and its static β[s·F + f2] is
// shared by every input fraction f1, so each output fraction receives the sum of all branch fractions
// (docs/connections.md, a documented library bug). hcgrad keeps the library's forward
// equations above, but stores the static β per (f1, s, f2) — [F·S, F], init δ(f1, f2) — which holds both:
// the paper's diagonal write at init, and the library's weights exactly (broadcast over f1). Only the init is
// the paper's: the off-diagonal β train from the first step. The paper's Frac throughout (diagonal write-back,
// F static β, one dynamic w_β) is PaperFracConnections, nn/frac_paper.h (variant = HcVariant::Paper).
#pragma once

#include <functional>
#include <memory>

#include "hcgrad/nn/connection.h"
#include "hcgrad/nn/layers.h"

namespace hcgrad::nn {

// The library's RMSNorm: y = x / max(‖x‖₂, 1e-12) · √n · (γ + 1) over the last dim (size n), γ init 0.
class ScaledRMSNorm : public Module {
 public:
  ScaledRMSNorm(int64_t dim, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) const;

  int64_t dim;
  Tensor gamma;  // [dim]
};

enum class HcVariant {
  Library,  // HyperConnections: the library's equations (HC, and Frac with its dense write-back)
  Paper,    // PaperFracConnections: the Frac paper's matrix, diagonal write-back (nn/frac_paper.h)
};

struct HyperConnectionsOptions {
  int64_t dim = 0;          // D, the model width (required)
  int64_t layer_index = 0;  // picks the home stream: layer_index mod num_streams
  bool tanh = true;         // φ of the dynamic weights
  double dropout = 0.0;     // on the new residual streams
  bool add_branch_out_to_residual = true;  // false: add_residual(y) returns y (no depth connection)
  int64_t num_input_views = 1;             // V: branch inputs (V > 1: u is [V, B, N*, D])
  int64_t num_fracs = 1;                   // F: Frac-Connections
  bool channel_first = false;              // residuals [B·S, D, N*] (conv feature maps); branch input [B, D, N*]
  // true: the library's layout [B·S, N*, D]; false: the streams next to the features, [B, N*, S, D] (mHC v2's
  // layout, hcgrad's GPT): the streams of a token are then contiguous and the width step needs no permute.
  bool streams_in_batch = true;
  // How β·y joins the mixed residual: null is o + r; GatedResidual etc. in nn/residuals.h. Called with the
  // features last ([B·S, N*, D]) also when channel_first.
  std::shared_ptr<DepthResidual> depth_residual_fn = nullptr;
  DType dtype = DType::Float32;
  Generator* dropout_generator = nullptr;  // needed when dropout > 0
  HcVariant variant = HcVariant::Library;  // read by make_hyper_connections
  bool dynamic = true;  // false: the static form (Paper only; the library's module is always dynamic)
  // true: split() runs each call as one hc_width and one hc_depth op (core/ops.h) where the options allow
  // (V = 1, the default o + r merge, features last): one pass over the streams per step, only the streams
  // saved for backward. false, or other options: the unfused composition of small ops, the readable reference.
  // Off by default: on the CPU the pair keeps 5-9% less peak memory but runs 0-5% slower than the composition
  // today (docs/performance.md). HcVariant::Paper (the Frac paper) takes it too, in its dynamic form
  // (step.diagonal_beta); the static form is one stream_mix and one stream_mix_add already.
  bool fused = false;
  // With the fused pair: true, backward recomputes the norms and coefficients from the streams (the mHC
  // paper's recompute); false, the forward keeps them (R·(1 + 3M) values a token and step).
  bool recompute = true;
};

class HyperConnections : public ConnectionModule {
 public:
  // `branch` (optional) is what forward() wraps; the manual form width()/add_residual() needs none.
  HyperConnections(int64_t num_streams, HyperConnectionsOptions options, Branch branch = {});

  // The width connection's results for one call: what the branch reads, the mixed residual streams and the
  // depth weights to merge the branch output with.
  struct Width {
    Tensor branch_input;  // [B, N*, D] (V = 1) or [V, B, N*, D]  (channel_first: [B, D, N*], [V, B, D, N*])
    Tensor residuals;     // [B·S, N*, D]: the mixed streams r  (channel_first: [B·S, D, N*]; [B, N*, S, D]
                          // when !streams_in_batch), undefined when the merge is fused (below)
    Tensor beta;          // [B, N, F, S, F] (N = product of N*): β[f1, s, f2]
    // The fused merge (streams next to the features, F = V = 1, the default o + r): the depth step computes
    // r + β y in one stream_mix_add pass from the streams and A_r, so r is never written out on its own.
    Tensor streams;           // [B, N, S, D]: the input streams x
    Tensor residual_weights;  // [B, N, S, S]: A_r, the residual-mixing columns of α
    Tensor alpha;             // [B, N, F·S, V·F + S·F]: α, the width connection's weights (rows f1·S + s)
  };
  Width width(const Tensor& residuals) const;
  // new streams [B·S, N*, D] ([B, N*, S, D]) from the branch output y [B, N*, D] (the depth connection).
  Tensor add_residual(const Width& width, const Tensor& branch_output) const;
  ConnectionSplit split(const Tensor& residuals) const override;
  std::string name() const override { return "HyperConnections"; }
  // F = V = 1: H_pre = A_m = α[:, 0], H_res = A_r^T, H_post = β.
  std::optional<ConnectionMaps> maps(const Tensor& residuals) const override;

  int64_t num_streams, dim, num_fracs, num_input_views;
  bool tanh, channel_first, streams_in_batch;
  bool fused;  // options.fused
  bool recompute;
  Tensor static_alpha;         // [S·F, V·F + S·F]  (rows f1·S + s, columns f2·(V+S) + t)
  Tensor dynamic_alpha_fn;     // [d, V·F + S·F]
  Tensor dynamic_alpha_scale;  // []
  Tensor static_beta;          // [S] (F = 1) or [F·S, F] (row f1·S + s, column f2): see Frac-Connections above
  Tensor dynamic_beta_fn;      // [d] (F = 1) or [d, F]
  Tensor dynamic_beta_scale;   // []
  std::shared_ptr<ScaledRMSNorm> norm;

 private:
  Width width_features_last(const Tensor& residuals) const;             // width(), features last
  Tensor depth(const Width& width, const Tensor& branch_output) const;  // add_residual(), features last
  bool fuses_stream_mix_add() const;  // see Width::streams
  bool runs_fused_steps() const;      // see HyperConnectionsOptions::fused
  ConnectionSplit fused_split(const Tensor& residuals) const;

  std::shared_ptr<DepthResidual> depth_residual_fn_;
  std::shared_ptr<Dropout> dropout_;
  Generator unused_generator_;  // for a dropout of 0, which never draws
};

// Builds the module the options select (the factory's init_hc for HC and Frac): HyperConnections, or
// PaperFracConnections (nn/frac_paper.h) for variant = HcVariant::Paper.
std::shared_ptr<ConnectionModule> make_hyper_connections(int64_t num_streams, HyperConnectionsOptions options,
                                                         Branch branch = {});

}  // namespace hcgrad::nn
