// The shape of one hyper-connection step for the fused width and depth ops (hc_width, hc_depth in
// core/ops.h; kernels hc_width_forward, hc_depth_forward, hc_step_backward). A plain struct in the base layer,
// because the op and the kernels both take it.
#pragma once

#include <cstdint>

namespace hcgrad {

struct HcStep {
  int64_t streams = 1;  // S
  int64_t fracs = 1;    // F: each stream is F fractions of width d = D / F; rows r = f·S + s
  bool tanh = true;     // φ of the dynamic coefficients (false: identity)
};

}  // namespace hcgrad
