// hcgrad: one include for the whole library.
#pragma once

#include "autograd/grad_mode.h"  // defines: NoGradGuard, is_grad_enabled
#include "autograd/gradcheck.h"  // defines: gradcheck
#include "autograd/node.h"       // defines: Node, record, backward
#include "core/creation.h"       // defines: zeros, ones, full, arange, from_vector, tensor, rand, randn
#include "core/ops.h"            // defines: every op (add ... layer_norm)
#include "core/parallel.h"       // defines: set_num_threads
#include "core/random.h"         // defines: Generator, manual_seed
#include "core/tensor.h"         // defines: Tensor, TensorOptions
