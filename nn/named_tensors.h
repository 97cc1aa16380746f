// Tensors with their names, in a fixed order: a model's parameters ("blocks.0.attn.qkv.weight" -> tensor),
// an optimizer's state dict, the contents of a checkpoint. Shared by nn/module.h, nn/optim.h and
// nn/checkpoint.h.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "hcgrad/core/tensor.h"

namespace hcgrad::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

}  // namespace hcgrad::nn
