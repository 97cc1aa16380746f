// Views and copies. A view is a new (shape, strides, offset) over the same storage: no data moves.
// Backward of a view puts the gradient back into the input's shape:
//   view/reshape -> reshape back      permute/transpose -> inverse permutation
//   narrow/slice -> zeros, gradient written into the window      expand -> sum over repeated dims
//   squeeze/unsqueeze -> reshape back     contiguous/clone -> identity     to(dtype) -> convert back
//   to(device) -> copy back to the source device
#include <numeric>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops/op.h"
#include "hcgrad/cuda/runtime.h"

namespace hcgrad {

namespace {
const OpName kView{"view"};
const OpName kReshape{"reshape"};
const OpName kPermute{"permute"};
const OpName kTranspose{"transpose"};
const OpName kNarrow{"narrow"};
const OpName kSlice{"slice"};
const OpName kExpand{"expand"};
const OpName kSqueeze{"squeeze"};
const OpName kUnsqueeze{"unsqueeze"};
const OpName kContiguous{"contiguous"};
const OpName kClone{"clone"};
const OpName kTo{"to"};
const OpName kToDevice{"to_device"};

// Strides that let (shape, strides) be read as `target` without a copy, or an empty result when the
// memory layout does not allow it (e.g. flattening a transposed matrix). PyTorch's computeStride:
// walk the old dims from the last, grouping runs that are contiguous with each other ("chunks"); each
// chunk must be covered exactly by a run of new dims.
std::optional<Strides> view_strides(const Shape& shape, const Strides& strides, const Shape& target) {
  if (numel(shape) <= 1 || shape.empty()) return contiguous_strides(target);
  Strides out(target.size());
  int64_t view_d = target.ndim() - 1;
  int64_t chunk_base_stride = strides.back(), tensor_numel = 1, view_numel = 1;
  for (int64_t d = shape.ndim() - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    bool chunk_ends = d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || target[view_d] == 1)) {
      out[view_d] = view_numel * chunk_base_stride;
      view_numel *= target[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_base_stride = strides[d - 1];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

// A copy of x into a new contiguous tensor of `dtype` (no autograd).
Tensor copy_of(const Tensor& x, DType dtype) {
  Tensor out = Tensor::empty(x.shape(), {.dtype = dtype, .device = x.device()});
  HC_KERNEL(copy, out, out, x);
  return out;
}
}  // namespace

Tensor as_strided(const Tensor& x, const Shape& shape, const Strides& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = x.dtype();
  return Tensor(std::move(impl));
}

Tensor as_contiguous(const Tensor& x) { return x.is_contiguous() ? x : copy_of(x, x.dtype()); }

Tensor broadcast_view(const char* op, const Tensor& x, const Shape& shape) {
  const int64_t nd = shape.ndim(), lead = nd - x.dim();
  HC_CHECK(lead >= 0, ShapeError, op, ": shape ", x.shape(), " cannot be broadcast to ", shape);
  checked_numel(op, shape);  // a view reads no more memory, but loops over it count its elements
  Strides strides(nd, 0);
  for (int64_t d = 0; d < x.dim(); ++d) {
    int64_t size = x.shape()[d];
    HC_CHECK(size == shape[lead + d] || size == 1, ShapeError, op, ": shape ", x.shape(), " cannot be broadcast to ",
             shape);
    strides[lead + d] = size == 1 ? 0 : x.strides()[d];
  }
  return as_strided(x, shape, strides, x.offset());
}

// ---- view / reshape ----

Tensor Tensor::view(const Shape& shape_in) const {
  Shape target = infer_reshape("view", shape_in, numel(), shape());
  std::optional<Strides> strides = view_strides(shape(), this->strides(), target);
  HC_CHECK(strides, ShapeError, "view: shape ", shape(), " with strides ", this->strides(), " cannot be viewed as ",
           target, " without a copy; use reshape()");
  Tensor out = as_strided(*this, target, *strides, offset());
  return record(kView, out, {*this}, [shape = shape()](const Tensor& g, const Needs&) {
    return TensorList{g.reshape(shape)};
  });
}

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  Shape target = infer_reshape("reshape", shape_in, x.numel(), x.shape());
  Tensor source = x;
  if (!view_strides(x.shape(), x.strides(), target)) source = x.contiguous();  // the layout forces a copy
  std::optional<Strides> strides = view_strides(source.shape(), source.strides(), target);
  Tensor out = as_strided(source, target, *strides, source.offset());
  return record(kReshape, out, {source}, [shape = source.shape()](const Tensor& g, const Needs&) {
    return TensorList{g.reshape(shape)};
  });
}

// ---- permute / transpose ----

Tensor permute(const Tensor& x, const Shape& dims) {
  HC_CHECK(dims.ndim() == x.dim(), ShapeError, "permute: ", dims, " is not a permutation of the dims of shape ",
           x.shape());
  Shape shape(x.dim()), inverse(x.dim(), -1);
  Strides strides(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) {
    int64_t d = dims[i] < 0 ? dims[i] + x.dim() : dims[i];
    HC_CHECK(d >= 0 && d < x.dim() && inverse[d] == -1, ShapeError, "permute: ", dims,
             " is not a permutation of the dims of shape ", x.shape());
    inverse[d] = i;
    shape[i] = x.shape()[d];
    strides[i] = x.strides()[d];
  }
  Tensor out = as_strided(x, shape, strides, x.offset());
  return record(kPermute, out, {x}, [inverse](const Tensor& g, const Needs&) {
    return TensorList{permute(g, inverse)};
  });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  int64_t d0 = normalize_dim("transpose", dim0, x.shape()), d1 = normalize_dim("transpose", dim1, x.shape());
  Shape shape = x.shape();
  Strides strides = x.strides();
  std::swap(shape[d0], shape[d1]);
  std::swap(strides[d0], strides[d1]);
  Tensor out = as_strided(x, shape, strides, x.offset());
  return record(kTranspose, out, {x}, [d0, d1](const Tensor& g, const Needs&) {
    return TensorList{transpose(g, d0, d1)};
  });
}

// ---- narrow / slice: a window along one dim ----

namespace {
// Gradient of a window: zeros of the input's shape with g written where the window was.
Tensor scatter_window(const Tensor& g, const Shape& input_shape, int64_t dim, int64_t start, int64_t step) {
  Tensor grad = zeros(input_shape, g.options());
  Strides strides = grad.strides();
  strides[dim] *= step;
  Tensor window = as_strided(grad, g.shape(), strides, start * grad.strides()[dim]);
  HC_KERNEL(copy, window, window, g);
  return grad;
}
}  // namespace

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  int64_t d = normalize_dim("narrow", dim, x.shape());
  int64_t size = x.shape()[d];
  if (start < 0) start += size;
  HC_CHECK(start >= 0 && length >= 0 && start + length <= size, IndexError, "narrow: window [", start, ", ",
           start + length, ") out of range for dim ", dim, " of shape ", x.shape());
  Shape shape = x.shape();
  shape[d] = length;
  Tensor out = as_strided(x, shape, x.strides(), x.offset() + start * x.strides()[d]);
  return record(kNarrow, out, {x}, [input_shape = x.shape(), d, start](const Tensor& g, const Needs&) {
    return TensorList{scatter_window(g, input_shape, d, start, 1)};
  });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  int64_t d = normalize_dim("slice", dim, x.shape());
  HC_CHECK(step > 0, Error, "slice: step must be positive, got ", step);
  int64_t size = x.shape()[d];
  // Python slicing: negative bounds count from the end; out-of-range bounds are clamped.
  auto clamp_bound = [size](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + size : i, 0, size); };
  start = clamp_bound(start);
  end = std::max(clamp_bound(end), start);
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  Tensor out = as_strided(x, shape, strides, x.offset() + start * x.strides()[d]);
  return record(kSlice, out, {x}, [input_shape = x.shape(), d, start, step](const Tensor& g, const Needs&) {
    return TensorList{scatter_window(g, input_shape, d, start, step)};
  });
}

Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  return hcgrad::slice(*this, dim, start, end, step);
}

// ---- expand, squeeze, unsqueeze ----

Tensor expand(const Tensor& x, const Shape& shape_in) {
  Shape shape = shape_in;
  const int64_t lead = shape.ndim() - x.dim();
  HC_CHECK(lead >= 0, ShapeError, "expand: cannot expand shape ", x.shape(), " to ", shape_in);
  for (int64_t d = 0; d < x.dim(); ++d)
    if (shape[lead + d] == -1) shape[lead + d] = x.shape()[d];  // -1 keeps the size
  Tensor out = broadcast_view("expand", x, shape);
  // The repeated dims are summed back by record() (every gradient is reduced to its input's shape).
  return record(kExpand, out, {x}, [](const Tensor& g, const Needs&) { return TensorList{g}; });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  int64_t d = normalize_dim("squeeze", dim, x.shape());
  Shape shape = x.shape();
  Strides strides = x.strides();
  if (shape[d] == 1) {  // like PyTorch, squeezing a dim whose size is not 1 changes nothing
    shape.erase(shape.begin() + d);
    strides.erase(strides.begin() + d);
  }
  Tensor out = as_strided(x, shape, strides, x.offset());
  return record(kSqueeze, out, {x}, [input_shape = x.shape()](const Tensor& g, const Needs&) {
    return TensorList{g.reshape(input_shape)};
  });
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  int64_t d = normalize_insert_dim("unsqueeze", dim, x.shape());
  Shape shape = x.shape();
  Strides strides = x.strides();
  int64_t stride = d < x.dim() ? x.shape()[d] * x.strides()[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  Tensor out = as_strided(x, shape, strides, x.offset());
  return record(kUnsqueeze, out, {x}, [d](const Tensor& g, const Needs&) { return TensorList{g.squeeze(d)}; });
}

// ---- copies ----

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = copy_of(x, x.dtype());
  return record(kContiguous, out, {x}, [](const Tensor& g, const Needs&) { return TensorList{g}; });
}

Tensor Tensor::clone() const {
  Tensor out = copy_of(*this, dtype());
  return record(kClone, out, {*this}, [](const Tensor& g, const Needs&) { return TensorList{g}; });
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = copy_of(*this, target);
  if (!is_floating(target)) return out;  // integer and bool results carry no gradient
  return record(kTo, out, {*this}, [source = dtype()](const Tensor& g, const Needs&) {
    return TensorList{g.to(source)};
  });
}

}  // namespace hcgrad

namespace hcgrad {

// Between devices the bytes move as one block (cuda/runtime.h), so the source is made contiguous first.
Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor dense = as_contiguous(*this);
  Tensor out = Tensor::empty(shape(), {.dtype = dtype(), .device = target});
  cuda::copy_between_devices(out, dense);
  if (!is_floating(dtype())) return out;
  return record(kToDevice, out, {*this}, [source = device()](const Tensor& g, const Needs&) {
    return TensorList{g.to(source)};
  });
}

}  // namespace hcgrad
