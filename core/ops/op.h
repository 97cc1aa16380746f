// What every op file needs: the op catalogue, the CPU kernels, and the autograd pieces used to record a
// backward rule (see autograd/node.h). Included by core/ops/*.cpp only.
#pragma once

#include "hcgrad/autograd/node.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/core/ops.h"

namespace hcgrad {
using autograd::Needs;
using autograd::OpName;
using autograd::record;
using autograd::save;
using autograd::TensorList;
}  // namespace hcgrad
