// Small helpers shared by the tests.
#pragma once

#include <cmath>
#include <iostream>
#include <sstream>
#include <vector>

#include <doctest/doctest.h>

#include "hcgrad/hcgrad.h"

namespace hctest {

using namespace hcgrad;

// Every value of t as double, in row-major order, whatever its dtype or strides.
inline std::vector<double> values(const Tensor& t) { return t.to(DType::Float64).to_vector<double>(); }

// Largest |a - b| over two equal-length lists (infinity when the lengths differ).
inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
    if (!std::isnan(a[i])) worst = std::max(worst, std::abs(a[i] - b[i]));
  }
  return worst;
}

inline std::string show(const std::vector<double>& v) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < v.size() && i < 24; ++i) out << (i ? ", " : "") << v[i];
  if (v.size() > 24) out << ", ...";
  return out.str() + ']';
}

// The result of comparing a tensor with expected values; prints its findings when a CHECK fails.
struct Match {
  bool ok;
  std::string detail;
  explicit operator bool() const { return ok; }
};
inline std::ostream& operator<<(std::ostream& out, const Match& m) { return out << m.detail; }

// CHECK(close(t, {2, 2}, {1, 2, 3, 4})): t has this shape and values within `tol` of these.
inline Match close(const Tensor& t, const Shape& shape, const std::vector<double>& expected, double tol = 1e-6) {
  std::ostringstream detail;
  if (t.shape() != shape) {
    detail << "shape " << t.shape() << ", expected " << shape;
    return {false, detail.str()};
  }
  std::vector<double> got = values(t);
  double err = max_abs_diff(got, expected);
  detail << "got " << show(got) << ", expected " << show(expected) << " (max error " << err << ", tol " << tol
         << ")";
  return {err <= tol, detail.str()};
}

// A float64 leaf that requires grad, uniform in [lo, hi); each call draws new values from a fixed stream.
inline Tensor leaf(const Shape& shape, double lo = -1.0, double hi = 1.0) {
  static Generator gen(42);
  Tensor u = rand(shape, {.dtype = DType::Float64}, gen);
  return (u * (hi - lo) + lo).detach().requires_grad_();
}

// Same values as `leaf`, but float32 and not requiring grad.
inline Tensor data32(const Shape& shape, double lo = -1.0, double hi = 1.0) {
  return leaf(shape, lo, hi).detach().to(DType::Float32);
}

// Moves every parameter of `module` away from its init by N(0, scale²) noise: at init the dynamic weights of
// the connection modules are zero, where a test would see only part of the computation.
inline void perturb(nn::Module& module, uint64_t seed, double scale = 0.5) {
  Generator gen(seed);
  autograd::NoGradGuard no_grad;
  for (const Tensor& p : module.parameters()) Tensor(p).add_(randn(p.shape(), p.options(), gen) * scale);
}

// Copies every parameter `to` shares by name with `from` (element counts must match).
inline void copy_parameters(const nn::Module& from, const nn::Module& to) {
  autograd::NoGradGuard no_grad;
  for (const auto& [name, dest] : to.named_parameters())
    for (const auto& [source_name, source] : from.named_parameters())
      if (name == source_name) Tensor(dest).copy_(source.reshape(dest.shape()));
}

// L float64 branches u -> tanh(Linear(u)) and the plain pre-norm residual network they form, x <- x + branch(x)
// per layer: what a connection network must reproduce at an identity-like init (expand -> layers -> reduce).
struct PlainResidualStack {
  std::vector<std::shared_ptr<nn::Linear>> linears;

  PlainResidualStack(int64_t dim, int64_t layers, uint64_t seed) {
    Generator gen(seed);
    for (int64_t i = 0; i < layers; ++i)
      linears.push_back(std::make_shared<nn::Linear>(dim, dim, gen, nn::LinearOptions{.dtype = DType::Float64}));
  }
  nn::Branch branch(size_t layer) const {
    return [linear = linears.at(layer)](const Tensor& u) { return tanh(linear->forward(u)); };
  }
  Tensor forward(const Tensor& x) const {
    Tensor h = x;
    for (size_t i = 0; i < linears.size(); ++i) h = h + branch(i)(h);
    return h;
  }
};

// A connection's width and depth steps (width() / add_residual()) around the branch u -> 1.5·tanh(u), so
// the depth step also carries u's gradient.
template <class Connection>
Tensor run_connection(const Connection& connection, const Tensor& residuals) {
  auto w = connection.width(residuals);
  return connection.add_residual(w, tanh(w.branch_input) * 1.5);
}

// Float64 finite-difference gradcheck of run_connection with respect to the residuals and every parameter.
template <class Connection>
autograd::GradcheckResult gradcheck_connection(const Connection& connection, const Tensor& residuals) {
  std::vector<Tensor> inputs = {residuals};
  for (const Tensor& p : connection.parameters()) inputs.push_back(p);
  return autograd::gradcheck([&](const std::vector<Tensor>& in) { return run_connection(connection, in[0]); },
                             inputs);
}

}  // namespace hctest

// ---- GPU tests (tests/gpu/) ----

// The first line of every GPU test case. Without a usable GPU the case prints why and returns; CTest
// reports it as skipped (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt), never as passed.
#define HC_SKIP_WITHOUT_GPU()                                                                      \
  do {                                                                                             \
    if (!::hcgrad::cuda::is_available()) {                                                        \
      std::cout << "GPU test skipped: " << ::hcgrad::cuda::unavailable_reason() << std::endl;     \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

namespace hctest {
// ||got - want|| / ||want|| over all elements (Frobenius norms, in float64), on any devices. An empty or
// all-zero `want` compares absolutely. Shapes must match, else infinity.
inline double relative_error(const Tensor& got, const Tensor& want) {
  if (got.shape() != want.shape()) return INFINITY;
  const std::vector<double> a = values(got.detach()), b = values(want.detach());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}
}  // namespace hctest
