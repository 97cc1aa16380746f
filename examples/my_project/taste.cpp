// A taste of hcgrad: tensors, autograd and one gradient step, as in README's "A taste".
// Built in-tree (target `taste`) and by this folder's CMakeLists.txt against an installed hcgrad.
#include <hcgrad/hcgrad.h>

#include <iostream>

using namespace hcgrad;

int main() {
  manual_seed(0);
  Tensor x = randn({64, 3});
  Tensor w = randn({3, 10}, {.requires_grad = true});
  Tensor b = zeros({10}, {.requires_grad = true});
  Tensor targets = randint(0, 10, {64});

  Tensor loss = cross_entropy(gelu(matmul(x, w) + b), targets);
  loss.backward();                  // w.grad(), b.grad() now hold dloss/dw, dloss/db
  {
    autograd::NoGradGuard no_grad;  // optimizer steps are not part of the graph
    w.add_(w.grad(), -0.1);
  }
  std::cout << w.grad() << "\n";    // tensor([[...]], shape=[3,10], dtype=float32)

  // The step lowered the loss: the example fails loudly if it did not.
  Tensor after = cross_entropy(gelu(matmul(x, w) + b), targets);
  std::cout << "loss " << loss.item() << " -> " << after.item() << "\n";
  return after.item() < loss.item() ? 0 : 1;
}
