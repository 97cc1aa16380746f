// Gradchecks: every case of tests/op_cases.h (one or more per op) compares backward() with finite
// differences in float64 (autograd/gradcheck.h). The coverage test fails if a registered differentiable
// op has no case there.
#include <set>

#include "helpers.h"
#include "op_cases.h"

namespace {

using namespace hctest;
using namespace hctest::op_case_inputs;

std::set<std::string> ops_seen;  // filled by the gradcheck test, read by the coverage test

}  // namespace

TEST_CASE("gradcheck: every op's backward matches finite differences") {
  for (const OpCase& c : op_cases()) {
    CAPTURE(c.name);
    autograd::GradcheckResult r = autograd::gradcheck(c.f, c.inputs(), c.options);
    CHECK_MESSAGE(r.ok, c.name, ": ", r.message);
    ops_seen.insert(r.ops.begin(), r.ops.end());
  }
}

TEST_CASE("gradcheck: every registered differentiable op has a gradcheck") {
  if (ops_seen.empty()) {  // this case may run alone (ctest runs each case in its own process)
    for (const OpCase& c : op_cases()) {
      auto r = autograd::gradcheck(c.f, c.inputs(), c.options);
      ops_seen.insert(r.ops.begin(), r.ops.end());
    }
  }
  const auto& registered = autograd::registered_ops();
  CHECK(registered.size() >= 30);
  for (const std::string& op : registered) {
    if (op.rfind("test_", 0) == 0) continue;  // ops the tests define themselves
    if (op == "to_device") continue;  // needs a GPU: tests/gpu/test_gpu_runtime.cpp checks its gradient
    CAPTURE(op);
    CHECK_MESSAGE(ops_seen.count(op) == 1, "op '", op, "' is differentiable but no gradcheck case runs through it");
  }
  MESSAGE(registered.size(), " differentiable ops, all gradchecked");
}

TEST_CASE("gradcheck catches a wrong gradient") {
  // A deliberately wrong backward: forward is x^2, backward claims 3x. gradcheck must fail.
  static const autograd::OpName kBroken{"test_broken_square"};
  auto broken = [](const TL& in) {
    Tensor x = in[0];
    Tensor y = mul(x.detach(), x.detach());
    return autograd::record(kBroken, y, {x}, [x](const Tensor& g, const autograd::Needs&) {
      autograd::NoGradGuard no_grad;
      return autograd::TensorList{g * x.detach() * 3.0};
    });
  };
  auto r = autograd::gradcheck(broken, {X({3})});
  CHECK_FALSE(r.ok);
  CHECK(r.message.find("analytic") != std::string::npos);
}

TEST_CASE("sinkhorn backward equals autograd through the unrolled loop of primitive ops") {
  // The loop of core/ops.h written with exp, max, sum, abs, clamp and log_softmax: autograd then
  // differentiates every iteration on its own, which is what the fused backward must reproduce.
  auto unrolled = [](const Tensor& logits, int iters, SinkhornDomain domain) {
    if (domain == SinkhornDomain::Log) {
      Tensor l = logits;
      for (int t = 0; t < iters; ++t) l = log_softmax(log_softmax(l, -2), -1);
      return exp(l);
    }
    Tensor a = exp(logits - max(logits, {-2}, true).detach());
    for (int t = 0; t < iters; ++t) {
      a = a / clamp(sum(abs(a), {-2}, true), 1e-12, std::nullopt);
      a = a / clamp(sum(abs(a), {-1}, true), 1e-12, std::nullopt);
    }
    return a;
  };
  // Row 0 of the second matrix is 40 below the rest: its sums fall under the 1e-12 floor, so the
  // clamped branch of the backward runs too.
  Tensor base = leaf({2, 3, 4}, -2.0, 2.0).detach();
  {
    autograd::NoGradGuard no_grad;
    base.select(0, 1).select(0, 0).add_(-40.0);
  }
  Tensor cotangent = leaf({2, 3, 4}).detach();
  for (SinkhornDomain domain : {SinkhornDomain::Linear, SinkhornDomain::Log})
    for (int iters : {1, 3, 20}) {
      CAPTURE(iters);
      CAPTURE(domain == SinkhornDomain::Log);
      Tensor fused_in = base.clone().detach().requires_grad_(), unrolled_in = base.clone().detach().requires_grad_();
      Tensor fused = sinkhorn(fused_in, iters, domain), reference = unrolled(unrolled_in, iters, domain);
      CHECK(close(fused, {2, 3, 4}, values(reference), 1e-12));
      fused.backward(cotangent);
      reference.backward(cotangent);
      std::vector<double> expected = values(unrolled_in.grad());
      double scale = 0;
      for (double v : expected) scale = std::max(scale, std::abs(v));
      CHECK(close(fused_in.grad(), {2, 3, 4}, expected, 1e-10 * std::max(scale, 1.0)));
    }
}
