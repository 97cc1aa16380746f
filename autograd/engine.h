// The autograd engine: runs the graph that the ops record (autograd/node.h) backwards. It does tensor
// arithmetic (summing gradients, undoing broadcasts), so it sits above the op layer, while the graph itself
// sits below it (docs/architecture.md). Tensor::backward() calls it.
#pragma once

#include "hcgrad/core/tensor.h"

namespace hcgrad::autograd {

// Runs backpropagation from `root`: `gradient` is dL/d(root), implied 1 for a one-element root when
// undefined. Unless `retain_graph`, every node frees what it saved as soon as it has run.
void backward(const Tensor& root, const Tensor& gradient, bool retain_graph);

}  // namespace hcgrad::autograd
