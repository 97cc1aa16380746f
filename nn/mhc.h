// Manifold-constrained hyper-connections (mHC, Xie et al. 2025, DeepSeek), as the `hyper-connections`
// library's mHC v2 module computes them (docs/connections.md), in either stream layout.
//
// For one token, with x[s, f] ∈ R^d the fraction f of stream s (d = D / F), rows r = s·F + f (stream outer):
//   x̃[s', f]  = Σ_s Wmix[s', s] x[s, f]        only with mix_streams_before_norm (feeds the norm only)
//   x̂[r]      = RMSNorm_d(x̃[r])                the library's scaled RMSNorm, one γ for all (s, f)
//   α_p[r, c] = A[r, c] + scale_c · x̂[r] · W_p[:, c]      p = 1..P proposals, c < F: pre, c ≥ F: residual
//   H_pre     = σ(α_p[:, c < F])                 [S·F, F]      mHC eq. (8): pre weights in (0, 1)
//   H_res     = Sinkhorn(α_p[:, c ≥ F])          [S·F, S·F]    rows r = source, columns c' = t·F + f2 = target
//   (H_pre, H_res) averaged over the P proposals
//   u[f2]     = Σ_r H_pre[r, f2] x[r]            the branch input, fraction f2   (unmixed x)
//   m[t, f2]  = Σ_r H_res[r, t·F + f2] x[r]      the mixed residual streams
//   β[s,f1,f2] = 2σ(bβ[s, f1] + h_post_scale · x̂[s, f1] · Wβ[:, f2])     mHC eq. (8): post weights in (0, 2)
//   o[s, f2]  = Σ_f1 β[s, f1, f2] y[f1]          y = branch(u)
//   new       = dropout(depth_residual_fn(o, m))  default o + m
// F = 1 is the clean form of b.8: H_pre[s] = σ(α[s, 0]), H_res[s, t], new_t = Σ_s H_res[s, t] x_s + β_t y.
//
// Layouts: streams_in_batch = true is the library's v1 layout [B·S, N*, D] (row b·S + s); false its v2
// layout [B, N*, S, D]. Both run the v2 math above: the library's v1 F > 1 (a non-square Sinkhorn read back
// with HC's column layout, docs/connections.md) is a documented bug hcgrad does not copy.
//
// Init, as the library's v2 (b.9): A = [row k all ones | I_{S·F}] with k = layer_index mod S read as a row
// index r (so for F > 1 it is stream k / F, fraction k mod F), W = 0, scales 0.01, bβ = 1, Wβ = 0, γ = 0, Wmix = I.
// Not identity at init: H_pre = σ(1) / σ(0), H_res = Sinkhorn(exp(I - 1)), β = 2σ(1). `init =
// MhcInit::IdentityLike` starts as a pre-norm residual instead (below; F = 1).
//
// Parameters (state_dict names as the library's): static_alpha [S·F, F + S·F], dynamic_alpha_fn [P, d, F + S·F],
// pre_branch_scale [1], residual_scale [1], static_beta [S] (F = 1, as v1) or [S, F, 1] (F > 1, as v2),
// dynamic_beta_fn [d] (F = 1) or [d, F], h_post_scale [], norm.gamma [d], maybe_mix_streams.weight [S, S, 1, 1].
// (The F = 1 β shapes are v1's; v2's (S, 1, 1) / (d, 1) hold the same values in the same order.)
//
// `variant = MhcVariant::Paper` builds the paper-faithful module of nn/mhc_paper.h instead (one RMSNorm and
// one projection over all n·C features of a token, mHC eq. 7-9).
#pragma once

#include "hcgrad/nn/hyper_connections.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::nn {

enum class MhcVariant {
  Library,  // ManifoldHyperConnections: per-stream norm and shared projections (the library, b.8 / b.9)
  Paper,    // PaperManifoldHyperConnections: flattened n·C input, mHC eq. 7-9 (nn/mhc_paper.h)
};

// How an mHC module's static weights start (both variants).
enum class MhcInit {
  Library,       // the library's init (b.9; the paper publishes none): not identity at init, see above
  IdentityLike,  // a pre-norm residual at init: H_post = 1, H_pre ≈ one-hot on the home stream, H_res ≈ I
};

// The identity-like init's static logits for S streams, home stream k and closeness c = identity_logit > 0
// (F = 1; docs/connections.md "mHC's two inits"):
//   pre[s]    = c for s = k, logit((1 − σ(c)) / (S − 1)) otherwise: H_pre[k] = σ(c) and the weights sum to 1,
//               so identical streams give the branch exactly the residual x (S = 1: H_pre = σ(c))
//   res[s, t] = c·δ(s, t): H_res = Sinkhorn(exp(c I)) = ((e^c − 1) I + J) / (e^c + S − 1), already doubly
//               stochastic, diagonal 1 − (S − 1)/(e^c + S − 1)
//   post      = 0: H_post = 2σ(0) = 1 exactly
// The dynamic parts start at 0 as in the default init, so a model with identical streams starts as the
// pre-norm residual network up to rounding; c sets how far from one-hot / identity the maps are (c = 6:
// H_pre[k] = 0.9975, H_res's diagonal 0.9926 for S = 4) and so how saturated their sigmoid and exp start.
struct IdentityLikeLogits {
  std::vector<double> pre;  // [S]
  std::vector<double> res;  // [S, S], symmetric
};
IdentityLikeLogits identity_like_logits(int64_t num_streams, int64_t home, double identity_logit);

struct ManifoldHyperConnectionsOptions {
  int64_t dim = 0;           // D (required)
  int64_t layer_index = 0;   // home row = layer_index mod S
  bool streams_in_batch = true;  // true: v1 layout [B·S, N*, D]; false: v2 layout [B, N*, S, D]
  int64_t sinkhorn_iters = 20;
  SinkhornDomain sinkhorn_domain = SinkhornDomain::Linear;
  int64_t num_dynamic_alpha_proposals = 1;  // P
  int64_t num_fracs = 1;                    // F
  int64_t num_input_views = 1;              // V: only 1 (the library crashes for V > 1, b.8 / b.9)
  bool mix_streams_before_norm = false;     // v2 option: a learned S x S stream mix in front of the norm
  bool add_branch_out_to_residual = true;   // false: no β params, add_residual(y) returns y
  std::shared_ptr<Transform> residual_transform = nullptr;  // applied to the input before everything (null: identity)
  // Replaces Sinkhorn on the H_res logits [B, N, P, S·F, S·F] (rows = source); must keep the shape.
  std::function<Tensor(const Tensor&)> residual_mix_constraint_fn = {};
  std::shared_ptr<DepthResidual> depth_residual_fn = nullptr;  // how o joins the mixed residual (null: o + r)
  double dropout = 0.0;
  DType dtype = DType::Float32;
  Generator* dropout_generator = nullptr;
  MhcVariant variant = MhcVariant::Library;  // read by make_manifold_hyper_connections
  MhcInit init = MhcInit::Library;  // IdentityLike needs num_fracs = 1 (the library's β writes every fraction)
  double identity_logit = 6.0;      // the IdentityLike init's closeness c (> 0)
  // true: split() runs each call as one hc_width and one hc_depth op (core/ops.h, step.manifold) where the
  // options allow (one proposal, no stream mixing before the norm, no residual transform, Sinkhorn as the
  // constraint, the default o + r merge): only the streams saved for backward, the Sinkhorn recomputed per
  // token. Off by default: on the CPU it is slower than the composition today (docs/performance.md).
  // MhcVariant::Paper takes it too (step.token_projection) when there is no constraint function and no
  // custom depth_residual_fn.
  bool fused = false;
  bool recompute = true;  // with the fused pair: as HyperConnectionsOptions::recompute
};

// The library's `maybe_mix_streams`, a bias-free 1x1 Conv2d over the stream axis: only its weight
// [S, S, 1, 1] (out stream, in stream), init identity (dirac). A module so the name reads "maybe_mix_streams.weight".
class StreamMixing : public Module {
 public:
  StreamMixing(int64_t num_streams, DType dtype);
  Tensor forward(const Tensor& x) const;  // x [..., S, D] -> x̃[s'] = Σ_s W[s', s] x[s]

  int64_t num_streams;
  Tensor weight;  // [S, S, 1, 1]
};

class ManifoldHyperConnections : public ConnectionModule {
 public:
  ManifoldHyperConnections(int64_t num_streams, ManifoldHyperConnectionsOptions options, Branch branch = {});

  struct Width {
    Tensor branch_input;  // [B, N*, D]
    Tensor residuals;     // the mixed streams, in the input's layout
    Tensor beta;          // [B, N, S, F, F]: β[s, f1, f2] = 2σ(...) (the library's v2 shape and order);
                          // undefined when add_branch_out_to_residual = false
    Tensor h_pre;         // [B, N, S·F, F]: row s·F + f (source), column f2 (branch fraction)
    Tensor h_res;         // [B, N, S·F, S·F]: row = source, column t·F + f2 = target; rows sum to 1
    Tensor streams;       // [B, N, S·F, d]: the stream fractions both mixes read (row s·F + f)
    Tensor h_res_logits;  // [B, N, P, S·F, S·F]: what Sinkhorn (or the constraint) turned into H_res per proposal
    Shape input_shape;    // the residuals' shape (and layout) the merge returns to
  };
  // mix_residuals = false leaves `residuals` undefined: split() then mixes them inside the merge.
  Width width(const Tensor& residuals, bool mix_residuals = true) const;
  Tensor add_residual(const Width& width, const Tensor& branch_output) const;
  // The width step, and a depth step that merges in one fused op (stream_mix_add) when it can.
  ConnectionSplit split(const Tensor& residuals) const override;
  std::string name() const override { return "ManifoldHyperConnections"; }
  // F = 1: H_pre, H_res (transposed to row = destination) and H_post = β of the width step.
  std::optional<ConnectionMaps> maps(const Tensor& residuals) const override;

  int64_t num_streams, dim, num_fracs, sinkhorn_iters, proposals;
  bool streams_in_batch, fused, recompute;
  SinkhornDomain sinkhorn_domain;
  Tensor static_alpha;      // [S·F, F + S·F]
  Tensor dynamic_alpha_fn;  // [P, d, F + S·F]
  Tensor pre_branch_scale;  // [1]
  Tensor residual_scale;    // [1]
  Tensor static_beta;       // [S] or [S, F, 1]   (undefined without add_branch_out_to_residual)
  Tensor dynamic_beta_fn;   // [d] or [d, F]
  Tensor h_post_scale;      // []
  std::shared_ptr<ScaledRMSNorm> norm;
  std::shared_ptr<StreamMixing> mix_streams;  // null unless mix_streams_before_norm

 private:
  std::shared_ptr<Transform> residual_transform_;
  std::function<Tensor(const Tensor&)> constraint_;
  std::shared_ptr<DepthResidual> depth_residual_fn_;

  bool runs_fused_steps() const;  // see ManifoldHyperConnectionsOptions::fused
  ConnectionSplit fused_split(const Tensor& residuals) const;
  // The depth step with the residual mix fused in: H_res^T x + β^T y in one stream_mix_add pass.
  Tensor add_residual_by_stream_mix_add(const Width& width, const Tensor& branch_output) const;
  // β [B, N, S, F, F] as stream_mix weights [B, N, F, S·F] for the branch output's F fractions.
  Tensor beta_as_mix(const Width& width) const;
  std::shared_ptr<Dropout> dropout_;
  Generator unused_generator_;
};

// Both mHC modules' residuals as [B, N, S, D] (N = the middle dims N* flattened, returned in `middle`), from
// the v1 layout [B·S, N*, D] (streams_in_batch) or the v2 layout [B, N*, S, D]; errors name `module`.
Tensor mhc_streams_last(const char* module, const Tensor& residuals, int64_t num_streams, int64_t dim,
                        bool streams_in_batch, int64_t& B, Shape& middle);
// The inverse: merged streams [B, N, S, D] back to a residual tensor of `shape` in the same layout.
Tensor mhc_streams_to_input(const Tensor& streams, const Shape& shape, bool streams_in_batch);
// Throws unless the branch output has the branch input's shape (both depth steps of both mHC modules).
void check_branch_output(const char* module, const Tensor& branch_output, const Tensor& branch_input);

// Builds the mHC module the options select (the factory's init_hc for mHC): ManifoldHyperConnections, or
// PaperManifoldHyperConnections (nn/mhc_paper.h) for variant = MhcVariant::Paper.
std::shared_ptr<ConnectionModule> make_manifold_hyper_connections(int64_t num_streams,
                                                                  ManifoldHyperConnectionsOptions options,
                                                                  Branch branch = {});

}  // namespace hcgrad::nn
