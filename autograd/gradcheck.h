// gradcheck: compares backward() with central finite differences, in float64.
//
// For a function f of some inputs, it draws a fixed random cotangent r of f's output shape and checks
//   analytic:  d<f(x), r>/dx  from one backward() pass
//   numeric:   (<f(x + eps e_j), r> - <f(x - eps e_j), r>) / (2 eps)   for every element j of every input
// A random r makes every output element count, and one backward pass checks the whole Jacobian product.
//
//   auto result = gradcheck([](const TensorList& in) { return mul(in[0], in[1]); }, {a, b});
//   CHECK_MESSAGE(result.ok, result.message);
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "hcgrad/core/tensor.h"

namespace hcgrad::autograd {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // pass when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
  uint64_t seed = 1234;  // for the random cotangent
};

struct GradcheckResult {
  bool ok = true;
  std::string message;          // the first mismatch: input, element, both values, and the ops involved
  double max_abs_error = 0;     // over all checked elements
  std::vector<std::string> ops; // names of the graph nodes f went through (for the op coverage test)
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs that require grad must be float64 leaves; others (e.g. int64 indices) are passed through.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, GradcheckOptions options = {});

}  // namespace hcgrad::autograd
