// The functions of core/creation.h. They run kernels (fill) and ops (to() for another dtype or device), so
// they belong to the op layer (docs/architecture.md).
#include "hcgrad/core/creation.h"

#include <cmath>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/loops.h"
#include "hcgrad/core/dispatch.h"

namespace hcgrad {

Tensor empty(const Shape& shape, TensorOptions options) { return Tensor::empty(shape, options); }

Tensor eye(int64_t n, TensorOptions options) {
  HC_CHECK(n >= 0, ShapeError, "eye: n must be >= 0, got ", n);
  std::vector<double> values(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) values[i * n + i] = 1.0;
  const bool requires_grad = options.requires_grad;
  Tensor t = from_vector(values, {n, n}).to(options.dtype).to(options.device);
  if (requires_grad) t.requires_grad_(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions options) {
  bool requires_grad = options.requires_grad;
  options.requires_grad = false;  // fill first: a leaf that requires grad refuses in-place writes in grad mode
  Tensor t = Tensor::empty(shape, options);
  HC_KERNEL(fill, /*on=*/t, /*out=*/t, value);
  if (requires_grad) t.requires_grad_(true);
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.options()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.options()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.options()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.options()); }
Tensor scalar_tensor(double value, TensorOptions options) { return full({}, value, options); }

Tensor arange(double start, double end, double step, TensorOptions options) {
  HC_CHECK(step != 0, Error, "arange: step must be non-zero");
  HC_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step), Error, "arange: bounds must be finite");
  auto count = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor t = Tensor::empty({std::max<int64_t>(count, 0)}, {.dtype = options.dtype});  // filled on the CPU
  dispatch_all("arange", t.dtype(), [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  t = t.to(options.device);
  if (options.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor arange(int64_t end, TensorOptions options) { return arange(0.0, static_cast<double>(end), 1.0, options); }

template <class T>
Tensor from_vector(const std::vector<T>& values, Shape shape, bool requires_grad) {
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
  HC_CHECK(checked_numel("from_vector", shape) == static_cast<int64_t>(values.size()), ShapeError, "from_vector: ",
           values.size(), " values do not fill shape ", shape);
  Tensor t = Tensor::empty(shape, {.dtype = dtype_of<T>()});
  T* p = t.data<T>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  if (requires_grad) t.requires_grad_(true);
  return t;
}
template Tensor from_vector(const std::vector<float>&, Shape, bool);
template Tensor from_vector(const std::vector<double>&, Shape, bool);
template Tensor from_vector(const std::vector<int64_t>&, Shape, bool);
template Tensor from_vector(const std::vector<bool>&, Shape, bool);

Tensor tensor(std::initializer_list<double> values, Shape shape, TensorOptions options) {
  Tensor out = from_vector(std::vector<double>(values), std::move(shape)).to(options.dtype).to(options.device);
  if (options.requires_grad) out.requires_grad_(true);
  return out;
}

namespace {
// Fills a new tensor with draw(counter) for counters first, first+1, ... in row-major order. The
// element-to-counter map is fixed, so the values do not depend on how oneTBB splits the work. The numbers
// are drawn on the CPU and copied to the requested device: a seed gives the same tensor on every device.
template <class Draw>
Tensor fill_random(const char* op, const Shape& shape, TensorOptions options, Generator& gen, const Draw& draw) {
  Tensor t = Tensor::empty(shape, {.dtype = options.dtype});
  const uint64_t first = gen.reserve(static_cast<uint64_t>(t.numel()));
  const uint64_t seed = gen.seed();
  dispatch_all(op, t.dtype(), [&]<class T>() {
    T* p = t.data<T>();
    cpu::parallel_for(0, t.numel(), cpu::grain_for(64), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) p[i] = static_cast<T>(draw(first + static_cast<uint64_t>(i), seed));
    });
  });
  t = t.to(options.device);
  if (options.requires_grad) t.requires_grad_(true);
  return t;
}
}  // namespace

Tensor rand(const Shape& shape, TensorOptions options, Generator& gen) {
  HC_CHECK(is_floating(options.dtype), DTypeError, "rand: expected a floating dtype, got ", options.dtype);
  return fill_random("rand", shape, options, gen, uniform_from_counter);
}

Tensor randn(const Shape& shape, TensorOptions options, Generator& gen) {
  HC_CHECK(is_floating(options.dtype), DTypeError, "randn: expected a floating dtype, got ", options.dtype);
  return fill_random("randn", shape, options, gen, normal_from_counter);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options, Generator& gen) {
  HC_CHECK(low < high, Error, "randint: empty range [", low, ", ", high, ")");
  HC_CHECK(options.dtype == DType::Int64, DTypeError, "randint: expected dtype int64, got ", options.dtype);
  const double span = static_cast<double>(high - low);
  return fill_random("randint", shape, options, gen, [low, span](uint64_t counter, uint64_t seed) {
    return low + static_cast<int64_t>(uniform_from_counter(counter, seed) * span);
  });
}

}  // namespace hcgrad
