#include "hcgrad/autograd/gradcheck.h"

#include <cmath>
#include <set>
#include <sstream>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/autograd/node.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::autograd {

namespace {

// Names of every node reachable from t's grad_fn, leaf sinks excluded.
std::vector<std::string> graph_ops(const Tensor& t) {
  std::vector<std::string> names;
  std::set<const Node*> seen;
  std::vector<const Node*> stack;
  if (t.grad_fn()) stack.push_back(t.grad_fn().get());
  while (!stack.empty()) {
    const Node* node = stack.back();
    stack.pop_back();
    if (!seen.insert(node).second) continue;
    if (std::string(node->name()) != "accumulate_grad") names.emplace_back(node->name());
    for (const auto& child : node->next)
      if (child) stack.push_back(child.get());
  }
  return names;
}

// <f(inputs), r> without recording a graph.
double project(const GradcheckFn& f, const std::vector<Tensor>& inputs, const Tensor& r) {
  NoGradGuard no_grad;
  return sum(mul(f(inputs), r)).item();
}

// Pointer to element j (row-major order) of x, following its strides.
double* element(const Tensor& x, int64_t j) {
  int64_t offset = 0;
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    offset += (j % x.shape()[d]) * x.strides()[d];
    j /= x.shape()[d];
  }
  return x.data<double>() + offset;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  GradcheckResult result;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || !x.requires_grad()) continue;
    HC_CHECK(x.dtype() == DType::Float64, DTypeError, "gradcheck: input ", i, " must be float64, got ", x.dtype(),
             " (finite differences in float32 are too coarse)");
    HC_CHECK(x.is_leaf(), Error, "gradcheck: input ", i, " must be a leaf tensor");
    for (int64_t d = 0; d < x.dim(); ++d)
      HC_CHECK(x.strides()[d] != 0 || x.shape()[d] <= 1, Error, "gradcheck: input ", i,
               " has overlapping memory (an expanded view); pass a real tensor");
    x.zero_grad();
  }

  // Analytic: one backward pass of <f(x), r>.
  Tensor y = f(inputs);
  HC_CHECK(y.dtype() == DType::Float64 && y.requires_grad(), Error,
           "gradcheck: f must return a float64 tensor that requires grad, got ", y.dtype(),
           y.requires_grad() ? "" : " without grad");
  result.ops = graph_ops(y);
  Generator gen(options.seed);
  Tensor r = randn(y.shape(), {.dtype = DType::Float64}, gen);
  sum(mul(y, r)).backward();

  // Numeric: central differences, element by element.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor analytic = x.grad().defined() ? x.grad() : zeros_like(x);
    for (int64_t j = 0; j < x.numel(); ++j) {
      double* p = element(x, j);
      const double original = *p;
      *p = original + options.eps;
      const double plus = project(f, inputs, r);
      *p = original - options.eps;
      const double minus = project(f, inputs, r);
      *p = original;
      const double numeric = (plus - minus) / (2 * options.eps);
      const double a = *element(analytic, j);
      const double err = std::abs(a - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (result.ok && !(err <= options.atol + options.rtol * std::abs(numeric))) {
        result.ok = false;
        std::ostringstream msg;
        msg << "gradcheck: input " << i << " " << x.shape() << ", element " << j << ": analytic " << a
            << " vs numeric " << numeric << " (ops: " << join(result.ops) << ")";
        result.message = msg.str();
      }
    }
  }
  if (result.ok) result.message = "ok (ops: " + join(result.ops) + ")";
  return result;
}

}  // namespace hcgrad::autograd
