// Tensor methods that need nothing above the base layer: creation of an empty tensor, metadata, the raw
// data pointer, and the autograd state that is plain data (set_grad, detach). The methods that call
// kernels, ops or the autograd graph are in core/ops/tensor_methods.cpp (and views, copies and conversions
// in core/ops/view.cpp); backward() is in autograd/engine.cpp. docs/architecture.md has the layers.
#include "hcgrad/core/tensor.h"

namespace hcgrad {

Tensor Tensor::empty(const Shape& shape, TensorOptions options) {
  const size_t bytes = static_cast<size_t>(checked_numel("empty", shape, itemsize(options.dtype))) *
                       itemsize(options.dtype);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(bytes, options.device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype;
  Tensor t(std::move(impl));
  if (options.requires_grad) t.requires_grad_(true);
  return t;
}

int64_t Tensor::size(int64_t dim) const { return shape()[normalize_dim("size", dim, shape())]; }
int64_t Tensor::stride(int64_t dim) const { return strides()[normalize_dim("stride", dim, shape())]; }

void* Tensor::raw_data() const {
  return static_cast<char*>(storage()->data()) + offset() * static_cast<int64_t>(itemsize(dtype()));
}

// ---- autograd ----

void Tensor::set_grad(const Tensor& grad) const {
  if (grad.defined())
    HC_CHECK(grad.shape() == shape() && grad.dtype() == dtype(), ShapeError, "set_grad: gradient ", grad.shape(),
             " ", grad.dtype(), " does not match tensor ", shape(), " ", dtype());
  impl().grad = grad.impl_ptr();
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage();
  impl->shape = shape();
  impl->strides = strides();
  impl->offset = offset();
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

}  // namespace hcgrad
