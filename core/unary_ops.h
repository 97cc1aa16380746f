// The unary ops, one line each: the forward y = f(x) and the vector-Jacobian product dL/dx = vjp(x, y, g)
// with g = dL/dy (the backward rule). Kernels expand this table inside a lambda templated on the element
// type T, with x, y and g in scope; `saves` says what backward needs kept from the forward:
// X (the input), Y (the output) or None.
#pragma once

#include <cmath>
#include <numbers>

// The formulas compile for the GPU too (cuda/elementwise.cu): HC_HOST_DEVICE marks them for nvcc.
#ifdef __CUDACC__
#define HC_HOST_DEVICE __host__ __device__
#else
#define HC_HOST_DEVICE
#endif

namespace hcgrad {

// GELU, tanh form (Hendrycks & Gimpel 2016; GPT-2): 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
template <class T>
HC_HOST_DEVICE inline T gelu_forward(T x) {
  const T k = T(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);  // sqrt(2/pi)
  return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
}
// d gelu/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
template <class T>
HC_HOST_DEVICE inline T gelu_derivative(T x) {
  const T k = T(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);
  const T t = std::tanh(k * (x + T(0.044715) * x * x * x));
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3 * 0.044715) * x * x);
}
template <class T>
HC_HOST_DEVICE inline T sigmoid_forward(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
// d(x sigmoid(x))/dx = s (1 + x (1 - s)).
template <class T>
HC_HOST_DEVICE inline T silu_derivative(T x) {
  const T s = sigmoid_forward(x);
  return s * (T(1) + x * (T(1) - s));
}

enum class UnarySaves { None, X, Y };

// clang-format off
#define HC_UNARY_OPS(OP)                                                                       \
  /*  name     saves  forward: y = f(x)             backward: dL/dx from x, y, g = dL/dy */  \
  OP(neg,      None,  -x,                           -g)                                      \
  OP(exp,      Y,     std::exp(x),                  g * y)                                   \
  OP(log,      X,     std::log(x),                  g / x)                                   \
  OP(sqrt,     Y,     std::sqrt(x),                 g / (T(2) * y))                          \
  OP(rsqrt,    Y,     T(1) / std::sqrt(x),          T(-0.5) * g * y * y * y)                 \
  OP(abs,      X,     std::abs(x),                  x > T(0) ? g : (x < T(0) ? -g : T(0)))   \
  OP(tanh,     Y,     std::tanh(x),                 g * (T(1) - y * y))                      \
  OP(sigmoid,  Y,     sigmoid_forward(x),           g * y * (T(1) - y))                      \
  OP(relu,     X,     x > T(0) ? x : T(0),          x > T(0) ? g : T(0))                     \
  OP(gelu,     X,     gelu_forward(x),              g * gelu_derivative(x))                  \
  OP(silu,     X,     x * sigmoid_forward(x),       g * silu_derivative(x))
// clang-format on

enum class UnaryOp {
#define HC_UNARY_ENUM(name, saves, forward, vjp) name,
  HC_UNARY_OPS(HC_UNARY_ENUM)
#undef HC_UNARY_ENUM
};

}  // namespace hcgrad
