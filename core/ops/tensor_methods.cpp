// The Tensor methods that call kernels, ops or the autograd graph (the class is declared in core/tensor.h;
// the methods that need only the base layer are in core/tensor.cpp, views, copies and conversions in
// core/ops/view.cpp, backward() in autograd/engine.cpp). They sit in the op layer, next to the ops they
// call: reading values back (to_vector, item), requires_grad_, the method spellings of ops, the in-place
// updates and the arithmetic operators.
#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/autograd/node.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/core/ops.h"
#include "hcgrad/core/tensor.h"

namespace hcgrad {

// ---- reading values ----

template <class T>
std::vector<T> Tensor::to_vector() const {
  HC_CHECK(dtype_of<T>() == dtype(), DTypeError, "to_vector: tensor has dtype ", dtype(), ", asked for ",
           dtype_name(dtype_of<T>()));
  Tensor dense = as_contiguous(to(Device::cpu()));
  const T* p = static_cast<const T*>(dense.raw_data());
  return std::vector<T>(p, p + dense.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;

double Tensor::item() const {
  HC_CHECK(numel() == 1, ShapeError, "item: expected a one-element tensor, got shape ", shape());
  const Tensor host = to(Device::cpu());  // waits for the GPU when the value lives there
  return dispatch_all("item", dtype(), [&]<class T>() { return static_cast<double>(*static_cast<T*>(host.raw_data())); });
}

// ---- autograd ----

Tensor& Tensor::requires_grad_(bool enabled) {
  HC_CHECK(is_leaf(), Error, "requires_grad_: only leaf tensors can change requires_grad; this one was computed by '",
           grad_fn()->name(), "' (detach() gives a new leaf)");
  HC_CHECK(!enabled || is_floating(dtype()), DTypeError, "requires_grad_: only floating tensors can require grad, got ",
           dtype());
  impl().requires_grad = enabled;
  return *this;
}

// ---- method spellings of ops ----

Tensor Tensor::reshape(const Shape& s) const { return hcgrad::reshape(*this, s); }
Tensor Tensor::permute(const Shape& dims) const { return hcgrad::permute(*this, dims); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return hcgrad::transpose(*this, d0, d1); }
Tensor Tensor::t() const {
  HC_CHECK(dim() == 2, ShapeError, "t: expected a 2-d tensor, got shape ", shape());
  return transpose(0, 1);
}
Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  return hcgrad::narrow(*this, d, start, length);
}
Tensor Tensor::select(int64_t d, int64_t index) const {
  int64_t nd = normalize_dim("select", d, shape());
  int64_t size = shape()[nd];
  HC_CHECK(index >= -size && index < size, IndexError, "select: index ", index, " out of range for dim ", d,
           " of shape ", shape());
  return narrow(nd, index < 0 ? index + size : index, 1).squeeze(nd);
}
Tensor Tensor::expand(const Shape& s) const { return hcgrad::expand(*this, s); }
Tensor Tensor::squeeze(int64_t d) const { return hcgrad::squeeze(*this, d); }
Tensor Tensor::squeeze() const {
  Shape kept;
  for (int64_t size : shape())
    if (size != 1) kept.push_back(size);
  return reshape(kept);
}
Tensor Tensor::unsqueeze(int64_t d) const { return hcgrad::unsqueeze(*this, d); }
Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  int64_t start = normalize_dim("flatten", start_dim, shape()), end = normalize_dim("flatten", end_dim, shape());
  HC_CHECK(start <= end, ShapeError, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape s(shape().begin(), shape().begin() + start);
  int64_t merged = 1;
  for (int64_t d = start; d <= end; ++d) merged *= shape()[d];
  s.push_back(merged);
  s.insert(s.end(), shape().begin() + end + 1, shape().end());
  return reshape(s);
}
Tensor Tensor::contiguous() const { return hcgrad::contiguous(*this); }
Tensor Tensor::sum() const { return hcgrad::sum(*this); }
Tensor Tensor::sum(const Shape& dims, bool keepdim) const { return hcgrad::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return hcgrad::mean(*this); }
Tensor Tensor::mean(const Shape& dims, bool keepdim) const { return hcgrad::mean(*this, dims, keepdim); }
Tensor Tensor::max(int64_t d, bool keepdim) const { return hcgrad::max(*this, {d}, keepdim); }
Tensor Tensor::matmul(const Tensor& other) const { return hcgrad::matmul(*this, other); }

// ---- in-place updates ----
// HC_KERNEL(kernel, on, args...) runs the kernel of the device `on` lives on (core/kernels.h); the kernel
// writes into its first tensor argument.

namespace {
// In-place writes would invalidate what autograd recorded, so they are only allowed outside grad mode
// on tensors that require grad (optimizer steps), and they bump the version counter.
void check_in_place(const char* op, const Tensor& self) {
  HC_CHECK(!(self.requires_grad() && autograd::is_grad_enabled()), Error, op,
           ": in-place update of a tensor that requires grad; do it under autograd::NoGradGuard (optimizer "
           "steps), or use the out-of-place op");
  self.storage()->bump_version();
}

// The checks of an elementwise in-place op (add_, mul_): `other` has self's dtype and device and broadcasts
// to self's shape; returns it as that broadcast view.
Tensor in_place_operand(const char* op, const Tensor& self, const Tensor& other) {
  check_same_dtype(op, self, other);
  check_same_device(op, self, other);
  check_floating(op, self);
  Tensor b = broadcast_view(op, other, self.shape());
  check_in_place(op, self);
  return b;
}
}  // namespace

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  const Tensor b = in_place_operand("add_", *this, other);
  const Tensor& self = *this;
  // self = self + alpha * b, on self's device.
  HC_KERNEL(add_scaled, /*on=*/self, /*out=*/self, /*a=*/self, /*b=*/b, alpha);
  return *this;
}

Tensor& Tensor::mul_(const Tensor& other) {
  const Tensor b = in_place_operand("mul_", *this, other);
  const Tensor& self = *this;
  // self = self * b, on self's device.
  HC_KERNEL(binary, /*on=*/self, BinaryOp::Mul, /*out=*/self, /*a=*/self, /*b=*/b);
  return *this;
}

Tensor& Tensor::mul_(double factor) { return mul_(scalar_tensor(factor, options())); }

Tensor& Tensor::add_(double value) { return add_(scalar_tensor(value, options())); }

Tensor& Tensor::copy_(const Tensor& src) {
  // Across devices (loading a CPU checkpoint into GPU parameters): move the source over first.
  Tensor b = broadcast_view("copy_", src.device() == device() ? src : src.detach().to(device()), shape());
  check_in_place("copy_", *this);
  const Tensor& self = *this;
  HC_KERNEL(copy, /*on=*/self, /*out=*/self, /*src=*/b);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  check_in_place("fill_", *this);
  const Tensor& self = *this;
  HC_KERNEL(fill, /*on=*/self, /*out=*/self, value);
  return *this;
}

// ---- operators ----

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_tensor(b, a.options())); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_tensor(b, a.options())); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_tensor(b, a.options())); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_tensor(b, a.options())); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_tensor(a, b.options()), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_tensor(a, b.options()), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_tensor(a, b.options()), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_tensor(a, b.options()), b); }
Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace hcgrad
