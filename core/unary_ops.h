// The unary ops, one line each: the forward y = f(x) and the vector-Jacobian product dL/dx = vjp(x, y, g)
// with g = dL/dy (the backward rule). Kernels expand this table inside a lambda templated on the element
// type T, with x, y, g and the op's parameter `a` (of type T) in scope; `saves` says what backward needs kept
// from the forward: X (the input), Y (the output) or None. Column `a` is the parameter's default (PyTorch's):
// leaky_relu's negative slope, elu's alpha, softplus's beta; the other ops ignore it.
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

// GELU, tanh form (Hendrycks & Gimpel 2016; GPT-2; PyTorch's approximate='tanh'): 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
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
// GELU, exact (PyTorch's default, approximate='none'): x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
template <class T>
HC_HOST_DEVICE inline T gelu_erf_forward(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
}
// d(x Phi(x))/dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
template <class T>
HC_HOST_DEVICE inline T gelu_erf_derivative(T x) {
  const T phi = T(std::numbers::inv_sqrtpi / std::numbers::sqrt2) * std::exp(T(-0.5) * x * x);
  return T(0.5) * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2))) + x * phi;
}
// softplus(x) = log(1 + e^x), as max(x, 0) + log1p(e^-|x|): no overflow for large x, no loss of e^x for very
// negative x. (PyTorch returns x itself above its threshold 20; the two differ by less than e^-20 there.)
template <class T>
HC_HOST_DEVICE inline T softplus_forward(T x) {
  return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::abs(x)));
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
#define HC_UNARY_OPS(OP)                                                                                  \
  /*  name       saves  a     forward: y = f(x)                   backward: dL/dx from x, y, g = dL/dy */  \
  OP(neg,        None,  0,    -x,                                 -g)                                     \
  OP(exp,        Y,     0,    std::exp(x),                        g * y)                                  \
  OP(log,        X,     0,    std::log(x),                        g / x)                                  \
  OP(sqrt,       Y,     0,    std::sqrt(x),                       g / (T(2) * y))                         \
  OP(rsqrt,      Y,     0,    T(1) / std::sqrt(x),                T(-0.5) * g * y * y * y)                \
  OP(abs,        X,     0,    std::abs(x),                        x > T(0) ? g : (x < T(0) ? -g : T(0)))  \
  OP(tanh,       Y,     0,    std::tanh(x),                       g * (T(1) - y * y))                     \
  OP(sigmoid,    Y,     0,    sigmoid_forward(x),                 g * y * (T(1) - y))                     \
  OP(relu,       X,     0,    x > T(0) ? x : T(0),                x > T(0) ? g : T(0))                    \
  OP(gelu,       X,     0,    gelu_erf_forward(x),                g * gelu_erf_derivative(x))             \
  OP(gelu_tanh,  X,     0,    gelu_forward(x),                    g * gelu_derivative(x))                 \
  OP(silu,       X,     0,    x * sigmoid_forward(x),             g * silu_derivative(x))                 \
  OP(erf,        X,     0,    std::erf(x),                        g * T(2 * std::numbers::inv_sqrtpi) * std::exp(-x * x)) \
  OP(sin,        X,     0,    std::sin(x),                        g * std::cos(x))                        \
  OP(cos,        X,     0,    std::cos(x),                        -g * std::sin(x))                       \
  OP(log1p,      X,     0,    std::log1p(x),                      g / (T(1) + x))                         \
  OP(expm1,      Y,     0,    std::expm1(x),                      g * (y + T(1)))                         \
  /* a: negative_slope */                                                                                 \
  OP(leaky_relu, X,     0.01, x > T(0) ? x : a * x,               x > T(0) ? g : a * g)                   \
  /* a: alpha */                                                                                          \
  OP(elu,        X,     1.0,  x > T(0) ? x : a * std::expm1(x),   x > T(0) ? g : g * a * std::exp(x))     \
  /* a: beta; softplus(beta x) / beta */                                                                  \
  OP(softplus,   X,     1.0,  softplus_forward(a * x) / a,        g * sigmoid_forward(a * x))
// clang-format on

enum class UnaryOp {
#define HC_UNARY_ENUM(name, saves, a, forward, vjp) name,
  HC_UNARY_OPS(HC_UNARY_ENUM)
#undef HC_UNARY_ENUM
};

}  // namespace hcgrad
