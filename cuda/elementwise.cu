// Elementwise CUDA kernels: every one is a launch of map_kernel with the op's formula as a __device__
// lambda, the same formulas as core/cpu/elementwise.cpp (the unary ones from the one table in
// core/unary_ops.h). One thread per output element (grid-stride); StridedIndex turns each linear index
// into an offset per operand, so broadcast (stride 0) and transposed operands need no copy.
#include <cmath>
#include <utility>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

template <class Out, class F, class... In, size_t... K>
__device__ void map_one(Out* out, const int64_t* offsets, const F& f, std::index_sequence<K...>, const In*... in) {
  out[offsets[0]] = f(in[offsets[K + 1]]...);
}

// out[i] = f(in[i]...) for every index i of out's shape; operand 0 is out, 1.. are the inputs.
template <class Out, class F, class... In>
__global__ void map_kernel(int64_t n, StridedIndex<1 + sizeof...(In)> index, F f, Out* out, const In*... in) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t offsets[1 + sizeof...(In)];
    index.offsets(i, offsets);
    map_one(out, offsets, f, std::index_sequence_for<In...>{}, in...);
  }
}

// Launches map_kernel on out's stream. The inputs have out's shape (broadcast views, see broadcast_view).
template <class Out, class... In, class F, class... Tensors>
void launch_map(const char* op, const Tensor& out, const F& f, const Tensors&... in) {
  static_assert(sizeof...(In) == sizeof...(Tensors), "one element type per input tensor");
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto index = strided_index<1 + sizeof...(In)>(op, {&out, &in...});
  cudaStream_t stream = stream_for(out);
  map_kernel<Out, F, In...><<<blocks_for(n), kThreads, 0, stream>>>(n, index, f, ptr<Out>(out), ptr<const In>(in)...);
  HC_CUDA_LAUNCH_CHECK(op);
}

// Extended (__device__) lambdas may not sit inside a generic lambda, so each dispatch_floating below calls
// a function template that holds them.

template <class T>
void unary_typed(UnaryOp op, const Tensor& out, const Tensor& x, [[maybe_unused]] T a) {
  switch (op) {
#define HC_UNARY_FORWARD(name, saves, default_a, forward, vjp)                        \
  case UnaryOp::name:                                                                  \
    launch_map<T, T>("unary", out, [=] __device__(T x) -> T { return forward; }, x);  \
    break;
    HC_UNARY_OPS(HC_UNARY_FORWARD)
#undef HC_UNARY_FORWARD
  }
}

template <class T>
void unary_backward_typed(UnaryOp op, const Tensor& grad_x, const Tensor& xs, const Tensor& ys, const Tensor& grad_y,
                          [[maybe_unused]] T a) {
  switch (op) {
#define HC_UNARY_BACKWARD(name, saves, default_a, forward, vjp)                                        \
  case UnaryOp::name:                                                                                  \
    launch_map<T, T, T, T>(                                                                            \
        "unary_backward", grad_x, [=] __device__([[maybe_unused]] T x, [[maybe_unused]] T y, T g) -> T { return vjp; }, \
        xs, ys, grad_y);                                                                               \
    break;
    HC_UNARY_OPS(HC_UNARY_BACKWARD)
#undef HC_UNARY_BACKWARD
  }
}

template <class T>
void pow_typed(const Tensor& out, const Tensor& x, T p) {
  launch_map<T, T>("pow", out, [p] __device__(T v) -> T { return p == T(2) ? v * v : ::pow(v, p); }, x);
}

// d(x^p)/dx = p x^(p-1); zero for p == 0.
template <class T>
void pow_backward_typed(const Tensor& grad_x, const Tensor& x, const Tensor& grad_y, T p) {
  launch_map<T, T, T>(
      "pow_backward", grad_x,
      [p] __device__(T v, T g) -> T { return p == T(0) ? T(0) : g * p * ::pow(v, p - T(1)); }, x, grad_y);
}

template <class T>
void clamp_typed(const Tensor& out, const Tensor& x, T lo, T hi) {
  // NaN stays NaN: neither comparison is true for it.
  launch_map<T, T>("clamp", out, [lo, hi] __device__(T v) -> T { return v < lo ? lo : (v > hi ? hi : v); }, x);
}

template <class T>
void clamp_backward_typed(const Tensor& grad_x, const Tensor& x, const Tensor& grad_y, T lo, T hi) {
  launch_map<T, T, T>(
      "clamp_backward", grad_x, [lo, hi] __device__(T v, T g) -> T { return (v >= lo && v <= hi) ? g : T(0); }, x,
      grad_y);
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) {
    case BinaryOp::Add: launch_map<T, T, T>("add", out, [] __device__(T u, T v) -> T { return u + v; }, a, b); break;
    case BinaryOp::Sub: launch_map<T, T, T>("sub", out, [] __device__(T u, T v) -> T { return u - v; }, a, b); break;
    case BinaryOp::Mul: launch_map<T, T, T>("mul", out, [] __device__(T u, T v) -> T { return u * v; }, a, b); break;
    case BinaryOp::Div: launch_map<T, T, T>("div", out, [] __device__(T u, T v) -> T { return u / v; }, a, b); break;
    case BinaryOp::Pow: launch_map<T, T, T>("pow", out, [] __device__(T u, T v) -> T { return ::pow(u, v); }, a, b); break;
  }
}

template <class T>
void add_scaled_typed(const Tensor& out, const Tensor& a, const Tensor& b, T s) {
  launch_map<T, T, T>("add_scaled", out, [s] __device__(T u, T v) -> T { return u + s * v; }, a, b);
}

template <class T>
void compare_typed(CompareOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  const char* name = "compare";
  switch (op) {
    case CompareOp::Eq: launch_map<bool, T, T>(name, out, [] __device__(T u, T v) { return u == v; }, a, b); break;
    case CompareOp::Ne: launch_map<bool, T, T>(name, out, [] __device__(T u, T v) { return u != v; }, a, b); break;
    case CompareOp::Lt: launch_map<bool, T, T>(name, out, [] __device__(T u, T v) { return u < v; }, a, b); break;
    case CompareOp::Le: launch_map<bool, T, T>(name, out, [] __device__(T u, T v) { return u <= v; }, a, b); break;
    case CompareOp::Gt: launch_map<bool, T, T>(name, out, [] __device__(T u, T v) { return u > v; }, a, b); break;
    case CompareOp::Ge: launch_map<bool, T, T>(name, out, [] __device__(T u, T v) { return u >= v; }, a, b); break;
  }
}

template <class T>
void where_typed(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  launch_map<T, bool, T, T>("where", out, [] __device__(bool c, T u, T v) -> T { return c ? u : v; }, cond, a, b);
}

template <class To, class From>
void copy_typed(const Tensor& out, const Tensor& src) {
  launch_map<To, From>("copy", out, [] __device__(From v) -> To { return static_cast<To>(v); }, src);
}

template <class T>
void fill_typed(const Tensor& out, T v) {
  launch_map<T>("fill", out, [v] __device__() -> T { return v; });
}

}  // namespace

void unary(UnaryOp op, const Tensor& out, const Tensor& x, double a) {
  dispatch_floating("unary", x.dtype(), [&]<class T>() { unary_typed<T>(op, out, x, T(a)); });
}

void unary_backward(UnaryOp op, const Tensor& grad_x, const Tensor& x, const Tensor& y, const Tensor& grad_y,
                    double a) {
  // As on the CPU: grad_y stands in for whichever of x and y the rule does not read.
  const Tensor& xs = x.defined() ? x : grad_y;
  const Tensor& ys = y.defined() ? y : grad_y;
  dispatch_floating("unary_backward", grad_y.dtype(), [&]<class T>() { unary_backward_typed<T>(op, grad_x, xs, ys, grad_y, T(a)); });
}

void pow(const Tensor& out, const Tensor& x, double exponent) {
  dispatch_floating("pow", x.dtype(), [&]<class T>() { pow_typed<T>(out, x, T(exponent)); });
}

void pow_backward(const Tensor& grad_x, const Tensor& x, const Tensor& grad_y, double exponent) {
  dispatch_floating("pow_backward", x.dtype(), [&]<class T>() { pow_backward_typed<T>(grad_x, x, grad_y, T(exponent)); });
}

void clamp(const Tensor& out, const Tensor& x, double min, double max) {
  dispatch_floating("clamp", x.dtype(), [&]<class T>() { clamp_typed<T>(out, x, T(min), T(max)); });
}

void clamp_backward(const Tensor& grad_x, const Tensor& x, const Tensor& grad_y, double min, double max) {
  dispatch_floating("clamp_backward", x.dtype(),
                    [&]<class T>() { clamp_backward_typed<T>(grad_x, x, grad_y, T(min), T(max)); });
}

void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  dispatch_floating("binary", out.dtype(), [&]<class T>() { binary_typed<T>(op, out, a, b); });
}

void add_scaled(const Tensor& out, const Tensor& a, const Tensor& b, double alpha) {
  dispatch_floating("add_scaled", out.dtype(), [&]<class T>() { add_scaled_typed<T>(out, a, b, T(alpha)); });
}

void compare(CompareOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  dispatch_all("compare", a.dtype(), [&]<class T>() { compare_typed<T>(op, out, a, b); });
}

void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  dispatch_all("where", out.dtype(), [&]<class T>() { where_typed<T>(out, cond, a, b); });
}

void copy(const Tensor& out, const Tensor& src) {
  dispatch_all("copy", out.dtype(), [&]<class To>() {
    dispatch_all("copy", src.dtype(), [&]<class From>() { copy_typed<To, From>(out, src); });
  });
}

void fill(const Tensor& out, double value) {
  dispatch_all("fill", out.dtype(), [&]<class T>() { fill_typed<T>(out, static_cast<T>(value)); });
}

}  // namespace hcgrad::cuda
