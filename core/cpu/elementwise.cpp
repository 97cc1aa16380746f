// Elementwise CPU kernels: each is one map_kernel call (core/cpu/loops.h) with the op's formula.
#include <cmath>

#include <Eigen/Core>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/loops.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"

namespace hcgrad::cpu {

namespace {

// GELU on dense float32 tensors, vectorised. GELU runs on every MLP activation, forward and backward, and
// the scalar tanhf of the generic loop made it a third of a tiny-LM training step. Here it goes through
// Eigen's vectorised exp, in the logistic form of the same function (1 + tanh(u) = 2 sigmoid(2u)):
//   u = k (x + 0.044715 x^3),  k = sqrt(2/pi),  e = exp(-2u),  s = 1 / (1 + e) = sigmoid(2u)
//   y = x s
//   dy/dx = s + 2 x s (1 - s) du/dx = s + 2 x s^2 e k (1 + 3 * 0.044715 x^2)
// which is the formula of core/unary_ops.h, rewritten so that neither tail loses precision to 1 - t^2.
// -2u is capped at 80 so e stays finite (s is then ~1e-35 and both results are ~0, as they should be).
// Returns false (the caller takes the generic path) unless every tensor is contiguous float32.
bool gelu_dense(const Tensor& out, const Tensor& x, const Tensor* grad_y) {
  if (x.dtype() != DType::Float32 || !out.is_contiguous() || !x.is_contiguous()) return false;
  if (grad_y && !grad_y->is_contiguous()) return false;
  using Array = Eigen::Map<Eigen::ArrayXf>;
  using ConstArray = Eigen::Map<const Eigen::ArrayXf>;
  const float k = 0.7978845608028654f, c = 0.044715f;
  float* o = out.data<float>();
  const float* xs = x.data<float>();
  const float* gs = grad_y ? grad_y->data<float>() : nullptr;
  parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    ConstArray v(xs + begin, end - begin);
    Eigen::ArrayXf e = (-2.0f * k * (v + c * v.cube())).min(80.0f).exp();
    Eigen::ArrayXf s = 1.0f / (1.0f + e);
    if (!gs) {
      Array(o + begin, end - begin) = v * s;
    } else {
      ConstArray g(gs + begin, end - begin);
      Array(o + begin, end - begin) = g * (s + 2.0f * k * v * s.square() * e * (1.0f + 3.0f * c * v.square()));
    }
  });
  return true;
}

// tanh on dense float32 tensors through Eigen's vectorised tanh (the connections' coefficients, forward only;
// the backward g (1 - y^2) vectorises in the generic loop). False unless both are contiguous float32.
bool tanh_dense(const Tensor& out, const Tensor& x) {
  if (x.dtype() != DType::Float32 || !out.is_contiguous() || !x.is_contiguous()) return false;
  const float* xs = x.data<float>();
  float* o = out.data<float>();
  parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    Eigen::Map<Eigen::ArrayXf>(o + begin, end - begin) = Eigen::Map<const Eigen::ArrayXf>(xs + begin, end - begin).tanh();
  });
  return true;
}

}  // namespace

void unary(UnaryOp op, const Tensor& out, const Tensor& x, double parameter) {
  if (op == UnaryOp::gelu_tanh && gelu_dense(out, x, nullptr)) return;
  if (op == UnaryOp::tanh && tanh_dense(out, x)) return;
  dispatch_floating("unary", x.dtype(), [&]<class T>() {
    [[maybe_unused]] const T a = T(parameter);
    switch (op) {
#define HC_UNARY_FORWARD(name, saves, default_a, forward, vjp) \
  case UnaryOp::name:                                          \
    map_kernel<T, T>(out, [=](T x) -> T { return forward; }, x); \
    break;
      HC_UNARY_OPS(HC_UNARY_FORWARD)
#undef HC_UNARY_FORWARD
    }
  });
}

void unary_backward(UnaryOp op, const Tensor& grad_x, const Tensor& x, const Tensor& y, const Tensor& grad_y,
                    double parameter) {
  // The rule reads x, y or neither (see `saves`); pass whichever was kept, grad_y stands in for the other
  // so every case can use the same three-input loop.
  if (op == UnaryOp::gelu_tanh && gelu_dense(grad_x, x, &grad_y)) return;
  const Tensor& xs = x.defined() ? x : grad_y;
  const Tensor& ys = y.defined() ? y : grad_y;
  dispatch_floating("unary_backward", grad_y.dtype(), [&]<class T>() {
    [[maybe_unused]] const T a = T(parameter);
    switch (op) {
#define HC_UNARY_BACKWARD(name, saves, default_a, forward, vjp)                                      \
  case UnaryOp::name:                                                                                \
    map_kernel<T, T, T, T>(grad_x, [=]([[maybe_unused]] T x, [[maybe_unused]] T y, T g) -> T { return vjp; }, \
                           xs, ys, grad_y);                                                          \
    break;
      HC_UNARY_OPS(HC_UNARY_BACKWARD)
#undef HC_UNARY_BACKWARD
    }
  });
}

void pow(const Tensor& out, const Tensor& x, double exponent) {
  dispatch_floating("pow", x.dtype(), [&]<class T>() {
    const T p = T(exponent);
    if (exponent == 2.0) {
      map_kernel<T, T>(out, [](T v) { return v * v; }, x);
    } else {
      map_kernel<T, T>(out, [p](T v) { return std::pow(v, p); }, x);
    }
  });
}

// d(x^p)/dx = p x^(p-1); zero for p == 0 (x^0 is the constant 1, even at x = 0).
void pow_backward(const Tensor& grad_x, const Tensor& x, const Tensor& grad_y, double exponent) {
  dispatch_floating("pow_backward", x.dtype(), [&]<class T>() {
    const T p = T(exponent);
    map_kernel<T, T, T>(
        grad_x, [p](T v, T g) { return p == T(0) ? T(0) : g * p * std::pow(v, p - T(1)); }, x, grad_y);
  });
}

void clamp(const Tensor& out, const Tensor& x, double min, double max) {
  dispatch_floating("clamp", x.dtype(), [&]<class T>() {
    const T lo = T(min), hi = T(max);
    // NaN stays NaN, as in PyTorch: neither comparison is true for it.
    map_kernel<T, T>(out, [lo, hi](T v) { return v < lo ? lo : (v > hi ? hi : v); }, x);
  });
}

void clamp_backward(const Tensor& grad_x, const Tensor& x, const Tensor& grad_y, double min, double max) {
  dispatch_floating("clamp_backward", x.dtype(), [&]<class T>() {
    const T lo = T(min), hi = T(max);
    map_kernel<T, T, T>(grad_x, [lo, hi](T v, T g) { return (v >= lo && v <= hi) ? g : T(0); }, x, grad_y);
  });
}

void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  dispatch_floating("binary", out.dtype(), [&]<class T>() {
    switch (op) {
      case BinaryOp::Add: map_kernel<T, T, T>(out, [](T u, T v) { return u + v; }, a, b); break;
      case BinaryOp::Sub: map_kernel<T, T, T>(out, [](T u, T v) { return u - v; }, a, b); break;
      case BinaryOp::Mul: map_kernel<T, T, T>(out, [](T u, T v) { return u * v; }, a, b); break;
      case BinaryOp::Div: map_kernel<T, T, T>(out, [](T u, T v) { return u / v; }, a, b); break;
      case BinaryOp::Pow: map_kernel<T, T, T>(out, [](T u, T v) { return std::pow(u, v); }, a, b); break;
    }
  });
}

void add_scaled(const Tensor& out, const Tensor& a, const Tensor& b, double alpha) {
  dispatch_floating("add_scaled", out.dtype(), [&]<class T>() {
    const T s = T(alpha);
    map_kernel<T, T, T>(out, [s](T u, T v) { return u + s * v; }, a, b);
  });
}

void compare(CompareOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  dispatch_all("compare", a.dtype(), [&]<class T>() {
    switch (op) {
      case CompareOp::Eq: map_kernel<bool, T, T>(out, [](T u, T v) { return u == v; }, a, b); break;
      case CompareOp::Ne: map_kernel<bool, T, T>(out, [](T u, T v) { return u != v; }, a, b); break;
      case CompareOp::Lt: map_kernel<bool, T, T>(out, [](T u, T v) { return u < v; }, a, b); break;
      case CompareOp::Le: map_kernel<bool, T, T>(out, [](T u, T v) { return u <= v; }, a, b); break;
      case CompareOp::Gt: map_kernel<bool, T, T>(out, [](T u, T v) { return u > v; }, a, b); break;
      case CompareOp::Ge: map_kernel<bool, T, T>(out, [](T u, T v) { return u >= v; }, a, b); break;
    }
  });
}

void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  dispatch_all("where", out.dtype(), [&]<class T>() {
    map_kernel<T, bool, T, T>(out, [](bool c, T u, T v) { return c ? u : v; }, cond, a, b);
  });
}

void copy(const Tensor& out, const Tensor& src) {
  dispatch_all("copy", out.dtype(), [&]<class To>() {
    dispatch_all("copy", src.dtype(), [&]<class From>() {
      map_kernel<To, From>(out, [](From v) { return static_cast<To>(v); }, src);
    });
  });
}

void fill(const Tensor& out, double value) {
  dispatch_all("fill", out.dtype(), [&]<class T>() {
    const T v = static_cast<T>(value);
    map_kernel<T>(out, [v]() { return v; });
  });
}

}  // namespace hcgrad::cpu
