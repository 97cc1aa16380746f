// The shape of one hyper-connection step for the fused width and depth ops (hc_width, hc_depth in
// core/ops.h; kernels hc_width_forward, hc_depth_forward, hc_step_backward). A plain struct in the base layer,
// because the op and the kernels both take it.
#pragma once

#include <cstdint>

namespace hcgrad {

struct HcStep {
  int64_t streams = 1;  // S
  int64_t fracs = 1;    // F: each stream is F fractions of width d = D / F
  bool tanh = true;     // HC: φ of the dynamic coefficients (false: identity)
  // false: HyperConnections, c = static + scale ⊙ φ(p), rows r = f·S + s (fraction outer).
  // true: mHC (nn/mhc.h), z = static + scale ⊙ p and c = σ(z) for the width step's H_pre, Sinkhorn(z) over
  // the depth step's S·F residual columns (H_res, rows = sources) and 2σ(z) for its β; rows r = s·F + f.
  bool manifold = false;
  int64_t sinkhorn_iters = 20;       // mHC's H_res
  bool sinkhorn_log_domain = false;  // SinkhornDomain::Log
  // true: backward recomputes the norms and coefficients from the streams (the mHC paper's recompute: only
  // the streams and the branch output are kept). false: the forward keeps R·(1 + 3M) values a token for it.
  bool recompute = true;
  // mHC as its paper writes it (nn/mhc_paper.h; needs manifold, F = 1): ONE norm over the token's S·D values and
  // one projection column per coefficient, so gamma is [S·D] and weight [S·D, R·M] (column r·M + j), and the
  // depth step's residual block holds the paper's H_res[t, s] logits at [s, t]: its Sinkhorn runs on the
  // transpose (destinations as rows, as the paper's eq. 9 normalises them).
  bool token_projection = false;
  // The Frac paper (nn/frac_paper.h; HC's φ, not manifold): rows r = s·F + f, and the depth step's β is ONE
  // column (M = S·F + 1) that weighs only the row's own fraction of y: new[t, f] += β[(t, f)] · y[f] (the
  // paper's diagonal write-back) instead of HC's Σ_f1 β[(t, f1), f] y[f1].
  bool diagonal_beta = false;
};

}  // namespace hcgrad
