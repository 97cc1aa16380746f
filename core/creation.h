// Making tensors: filled, ranged, from data, random. Every function takes TensorOptions:
//   auto w = randn({64, 32}, {.dtype = DType::Float64, .requires_grad = true});
#pragma once

#include <initializer_list>
#include <vector>

#include "hcgrad/core/random.h"
#include "hcgrad/core/tensor.h"

namespace hcgrad {

Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// The n x n identity matrix.
Tensor eye(int64_t n, TensorOptions options = {});
// A 0-d tensor holding `value`.
Tensor scalar_tensor(double value, TensorOptions options = {});

// [start, start+step, ...) up to (not including) end; 1-d. Default dtype int64, like torch.arange on integers.
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {.dtype = DType::Int64});
Tensor arange(int64_t end, TensorOptions options = {.dtype = DType::Int64});

// Copies `values` into a new tensor of `shape` (1-d of values.size() when shape is empty).
// The dtype comes from T: float -> float32, double -> float64, int64_t -> int64, bool -> bool.
template <class T>
Tensor from_vector(const std::vector<T>& values, Shape shape = {}, bool requires_grad = false);
// Literal values, converted to options.dtype: tensor({1, 2, 3, 4}, {2, 2}).
Tensor tensor(std::initializer_list<double> values, Shape shape = {}, TensorOptions options = {});

// Uniform in [0, 1), standard normal, and integers in [low, high) (int64 by default).
// Same generator state, same numbers, whatever the thread count.
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator& gen = default_generator());
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator& gen = default_generator());
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options = {.dtype = DType::Int64},
               Generator& gen = default_generator());

}  // namespace hcgrad
