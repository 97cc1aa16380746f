// Tensor: a cheap handle (one shared_ptr) to a TensorImpl, which describes an n-d view into a Storage
// and carries the autograd state. Copying a Tensor copies the handle, not the data — like torch.Tensor.
//
//   Tensor
//     └─ TensorImpl: shape, strides, offset, dtype | requires_grad, grad, grad_fn
//          └─ Storage: bytes on a device, shared by every view of them
//
// The ops themselves are free functions declared in core/ops.h; the methods here are the ones a
// PyTorch user reaches for on the object (views, reductions, in-place updates, autograd).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "hcgrad/core/device.h"
#include "hcgrad/core/dtype.h"
#include "hcgrad/core/error.h"
#include "hcgrad/core/shape.h"
#include "hcgrad/core/storage.h"

namespace hcgrad {

namespace autograd {
class Node;
}

// What to create: zeros({2,3}, {.dtype = DType::Float64, .requires_grad = true}).
struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  bool requires_grad = false;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;     // in elements, one per dim
  int64_t offset = 0;  // in elements, from the start of the storage
  DType dtype = DType::Float32;

  // Autograd state (see autograd/node.h).
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;                // dL/d(this); filled into leaves by backward()
  std::shared_ptr<autograd::Node> grad_fn;         // the op that produced this tensor; null for leaves
  std::weak_ptr<autograd::Node> grad_accumulator;  // a leaf's gradient sink, shared by all its uses
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (defined() == false), used for "no gradient"
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A new contiguous tensor with uninitialised values.
  static Tensor empty(const Shape& shape, TensorOptions options = {});

  // --- metadata ---
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return shape().ndim(); }
  int64_t size(int64_t dim) const;  // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t numel() const { return hcgrad::numel(shape()); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  TensorOptions options() const { return {dtype(), device(), false}; }
  bool is_contiguous() const { return hcgrad::is_contiguous(shape(), strides()); }

  // --- raw data ---
  // Pointer to element (0,...,0) of a CPU tensor; T must match the dtype. Walk it with strides() unless
  // contiguous. A GPU tensor's memory is not readable from the CPU: copy it with to(Device::cpu()).
  template <class T>
  T* data() const {
    HC_CHECK(dtype_of<T>() == dtype(), DTypeError, "data: tensor has dtype ", dtype(), ", asked for ",
             dtype_name(dtype_of<T>()));
    HC_CHECK(device().is_cpu(), DeviceError, "data: tensor ", shape(), " is on ", device(),
             "; copy it to the CPU first with .to(Device::cpu())");
    return static_cast<T*>(raw_data());
  }
  // Address of element (0,...,0) on the tensor's device (a device pointer for GPU tensors; kernels use it).
  void* raw_data() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  // Values in row-major order, whatever the strides or the device. T must match the dtype.
  template <class T>
  std::vector<T> to_vector() const;
  // The value of a one-element tensor, converted to double.
  double item() const;

  // --- autograd ---
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& requires_grad_(bool enabled = true);  // only on leaves, only for floating dtypes
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& grad) const;
  void zero_grad() const { impl().grad.reset(); }  // like PyTorch's zero_grad(set_to_none=True)
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  // Backpropagates from this tensor (a scalar, unless `gradient` is given); see autograd/engine.cpp.
  void backward(const Tensor& gradient = {}, bool retain_graph = false) const;
  // Same storage, no history: the result is a leaf that does not require grad.
  Tensor detach() const;

  // --- views: share storage, no copy (core/ops/view.cpp) ---
  Tensor view(const Shape& shape) const;     // needs compatible strides, else throws
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;  // transpose of a 2-d tensor
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // narrow to one index and drop the dim
  Tensor expand(const Shape& shape) const;          // size-1 dims repeat with stride 0
  Tensor squeeze(int64_t dim) const;
  Tensor squeeze() const;  // drops every size-1 dim
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;  // itself when already contiguous, else a row-major copy

  // --- copies and conversions ---
  Tensor clone() const;             // a contiguous copy, differentiable
  Tensor to(DType dtype) const;     // differentiable between floating dtypes
  Tensor to(Device device) const;   // a copy on `device` (itself if already there), differentiable

  // --- reductions, as methods for convenience (core/ops.h has the full list) ---
  Tensor sum() const;
  Tensor sum(const Shape& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const Shape& dims, bool keepdim = false) const;
  Tensor max(int64_t dim, bool keepdim = false) const;
  Tensor matmul(const Tensor& other) const;

  // --- in-place updates (optimizers, initialisers) ---
  // They bump the storage version and are refused on a tensor that requires grad while grad mode
  // is on: wrap optimizer steps in `autograd::NoGradGuard`.
  Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha * other (broadcast)
  Tensor& sub_(const Tensor& other) { return add_(other, -1.0); }
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double factor);
  Tensor& add_(double value);
  Tensor& copy_(const Tensor& src);  // broadcasts, converts dtype, and copies across devices
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // --- internals, for ops and autograd ---
  TensorImpl& impl() const {
    HC_CHECK(impl_, Error, "tensor: use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Arithmetic operators (NumPy broadcasting; see core/ops.h).
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator-(const Tensor& a);

// Prints like PyTorch: tensor([[1.0000, 2.0000], ...], shape=[2,2], dtype=float32, grad_fn=<mul>).
std::ostream& operator<<(std::ostream& out, const Tensor& tensor);

}  // namespace hcgrad
