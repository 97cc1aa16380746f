// How many threads hcgrad's CPU kernels may use (oneTBB underneath). Defaults to every core.
#pragma once

namespace hcgrad {

// Caps the worker count for everything hcgrad runs after the call; n <= 0 removes the cap.
void set_num_threads(int n);
int num_threads();

}  // namespace hcgrad
