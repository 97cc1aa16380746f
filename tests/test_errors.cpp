// Misuse throws hcgrad::Error subclasses whose message names the op and the offending shapes/dtypes.
#include "helpers.h"

using namespace hctest;

TEST_CASE("shape errors name the op and both shapes") {
  CHECK_THROWS_WITH_AS(matmul(ones({2, 3}), ones({4, 5})), "matmul: shapes [2,3] and [4,5] cannot be multiplied",
                       ShapeError);
  CHECK_THROWS_WITH_AS(matmul(ones({2, 2, 3}), ones({3, 3, 4})),
                       "matmul: batch dims [2] and [3] of shapes [2,2,3] and [3,3,4] cannot be broadcast", ShapeError);
  CHECK_THROWS_WITH_AS(add(ones({2, 3}), ones({4})), "add: shapes [2,3] and [4] cannot be broadcast", ShapeError);
  CHECK_THROWS_WITH_AS(mul(ones({2}), ones({3})), "mul: shapes [2] and [3] cannot be broadcast", ShapeError);
  CHECK_THROWS_WITH_AS(where(ones({2}, {.dtype = DType::Bool}), ones({3}), ones({3})),
                       "where: shapes [2] and [3] cannot be broadcast", ShapeError);
  CHECK_THROWS_WITH_AS(cat({ones({2, 3}), ones({3, 3})}, 1), "cat: shapes [2,3] and [3,3] differ outside dim 1",
                       ShapeError);
  CHECK_THROWS_WITH_AS(stack({ones({2}), ones({3})}, 0), "stack: shapes [2] and [3] differ; stack needs equal shapes",
                       ShapeError);
  CHECK_THROWS_WITH_AS(ones({2, 3}).reshape({4, 2}), "reshape: cannot reshape [2,3] (6 elements) into [4,2]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(ones({2, 3}).permute({0, 0}), "permute: [0,0] is not a permutation of the dims of shape [2,3]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(ones({3, 1}).expand({2}), "expand: cannot expand shape [3,1] to [2]", ShapeError);
  CHECK_THROWS_WITH_AS(ones({3, 2}).expand({3, 4}), "expand: shape [3,2] cannot be broadcast to [3,4]", ShapeError);
  CHECK_THROWS_WITH_AS(split(ones({5}), Shape{2, 2}, 0),
                       "split: sizes [2,2] sum to 4, but dim 0 of shape [5] has size 5", ShapeError);
}

TEST_CASE("dim and index errors") {
  CHECK_THROWS_WITH_AS(sum(ones({2, 3}), {2}), "sum: dim 2 out of range for shape [2,3]", IndexError);
  CHECK_THROWS_WITH_AS(softmax(ones({2, 3}), -3), "softmax: dim -3 out of range for shape [2,3]", IndexError);
  CHECK_THROWS_WITH_AS(sum(ones({2, 3}), {1, -1}), "sum: dim -1 appears twice in [1,-1]", ShapeError);
  CHECK_THROWS_WITH_AS(ones({4, 3}).narrow(0, 3, 2), "narrow: window [3, 5) out of range for dim 0 of shape [4,3]",
                       IndexError);
  CHECK_THROWS_WITH_AS(embedding(from_vector<int64_t>({1, 300}), ones({256, 8})),
                       "embedding: index 300 out of range for weight [256,8] (valid: 0..255)", IndexError);
  CHECK_THROWS_WITH_AS(index_select(ones({4, 3}), 1, from_vector<int64_t>({3})),
                       "index_select: index 3 out of range for dim of shape [4,3] (valid: 0..2)", IndexError);
  CHECK_THROWS_WITH_AS(cross_entropy(ones({2, 5}), from_vector<int64_t>({0, 5})),
                       "cross_entropy: target 5 at row 1 out of range for 5 classes (logits [2,5])", IndexError);
  CHECK_THROWS_WITH_AS(max(zeros({2, 0}), {1}), "max: cannot reduce over zero elements (shape [2,0])", ShapeError);
}

TEST_CASE("dtype errors name both dtypes") {
  Tensor f32 = ones({2}), f64 = ones({2}, {.dtype = DType::Float64});
  CHECK_THROWS_WITH_AS(add(f32, f64),
                       "add: dtypes float32 and float64 differ (shapes [2] and [2]); convert one with .to(dtype)",
                       DTypeError);
  CHECK_THROWS_WITH_AS(matmul(ones({2, 2}), ones({2, 2}, {.dtype = DType::Float64})),
                       "matmul: dtypes float32 and float64 differ (shapes [2,2] and [2,2]); convert one with .to(dtype)",
                       DTypeError);
  CHECK_THROWS_WITH_AS(exp(arange(3)), "exp: expected a floating dtype (float32, float64), got int64 for shape [3]",
                       DTypeError);
  CHECK_THROWS_WITH_AS(embedding(ones({2}), ones({4, 2})), "embedding: indices must be int64, got float32 for shape [2]",
                       DTypeError);
  CHECK_THROWS_WITH_AS(cross_entropy(ones({2, 3}), ones({2})),
                       "cross_entropy: targets must be int64 class indices, got float32 for shape [2]", DTypeError);
  CHECK_THROWS_WITH_AS(where(ones({2}), ones({2}), ones({2})), "where: condition must be bool, got float32 for shape [2]",
                       DTypeError);
}

TEST_CASE("norm and loss shape errors") {
  CHECK_THROWS_WITH_AS(layer_norm(ones({2, 3}), {4}),
                       "layer_norm: normalized_shape [4] does not match the last dims of input [2,3]", ShapeError);
  CHECK_THROWS_WITH_AS(layer_norm(ones({2, 3}), {3}, ones({2})),
                       "layer_norm: weight has shape [2], expected normalized_shape [3]", ShapeError);
  CHECK_THROWS_WITH_AS(rms_norm(ones({2, 3}), {2}), "rms_norm: normalized_shape [2] does not match the last dims of input [2,3]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(cross_entropy(ones({2, 3, 4}), from_vector<int64_t>({0, 1})),
                       "cross_entropy: expected logits [N,C] and targets [N], got [2,3,4] and [2]; flatten them with "
                       "reshape({-1, C}) and reshape({-1})",
                       ShapeError);
}

TEST_CASE("sinkhorn errors name the op, the value and the shape") {
  CHECK_THROWS_WITH_AS(sinkhorn(ones({4, 4}), 0),
                       "sinkhorn: iters must be >= 1, got 0 for logits [4,4] (iters = 0 is refused: the reference's "
                       "versions disagree on it, exp(L - column max) or L unchanged, and neither is normalised)",
                       Error);
  CHECK_THROWS_WITH_AS(sinkhorn(ones({4}), 3),
                       "sinkhorn: expected logits of shape [..., M, N] (at least 2 dims), got [4]", ShapeError);
  CHECK_THROWS_WITH_AS(sinkhorn(arange(4).reshape({2, 2}), 3),
                       "sinkhorn: expected a floating dtype (float32, float64), got int64 for shape [2,2]", DTypeError);
}

TEST_CASE("device errors: a GPU that is not there is refused with the reason") {
  const int missing = cuda::device_count();  // one past the last GPU: cuda:0 on a machine without any
  const std::string name = "cuda:" + std::to_string(missing);
  CHECK_THROWS_WITH_AS(zeros({2}, {.device = Device::cuda(missing)}), doctest::Contains(name.c_str()), DeviceError);
  CHECK_THROWS_WITH_AS(ones({2}).to(Device::cuda(missing)), doctest::Contains(name.c_str()), DeviceError);
  if (!cuda::is_available()) {
    CHECK_FALSE(cuda::unavailable_reason().empty());
    CHECK_THROWS_WITH_AS(zeros({2}, {.device = Device::cuda(0)}), doctest::Contains(cuda::unavailable_reason().c_str()),
                         DeviceError);
  }
}

TEST_CASE("every error derives from hcgrad::Error") {
  CHECK_THROWS_AS(matmul(ones({2, 3}), ones({4, 5})), Error);
  CHECK_THROWS_AS(exp(arange(2)), Error);
  CHECK_THROWS_AS(sum(ones({2}), {5}), Error);
  CHECK_THROWS_AS(Tensor().shape(), Error);
  CHECK_THROWS_WITH_AS(add(Tensor(), ones({1})), "add: an input is an undefined tensor (default-constructed Tensor)",
                       Error);
  CHECK_THROWS_WITH_AS(exp(Tensor()), "exp: an input is an undefined tensor (default-constructed Tensor)", Error);
}

TEST_CASE("sizes are checked where they are born: a shape whose byte count overflows is refused, naming it") {
  const int64_t huge = int64_t(1) << 62;
  // numel x itemsize would wrap to a small number; the tensor would get a tiny buffer and then be filled.
  CHECK_THROWS_WITH_AS(Tensor::empty({256, huge}),
                       "empty: shape [256,4611686018427387904] is too large: its byte count overflows a 64-bit integer",
                       ShapeError);
  CHECK_THROWS_AS(zeros({int64_t(1) << 32, int64_t(1) << 32}), ShapeError);  // 2^64 elements wrap to 0
  CHECK_THROWS_AS(ones({huge}, {.dtype = DType::Float64}), ShapeError);     // 2^62 elements, 2^65 bytes
  CHECK_THROWS_WITH_AS(Tensor::empty({2, -3}), "empty: negative size in shape [2,-3]", ShapeError);
  // A size 0 counts as 1: the strides of [0, 2^62, 2^62] would overflow although it holds nothing.
  CHECK_THROWS_AS(Tensor::empty({0, huge, huge}), ShapeError);
  // Views: a reshape or expand target is a shape born from the caller's numbers too.
  CHECK_THROWS_WITH_AS(zeros({0}).reshape({huge, huge, 0}),
                       "reshape: shape [4611686018427387904,4611686018427387904,0] is too large: its element count "
                       "overflows a 64-bit integer",
                       ShapeError);
  CHECK_THROWS_AS(zeros({0}).reshape({-1, huge, huge}), ShapeError);
  CHECK_THROWS_WITH_AS(ones({1, 1}).expand({huge, huge}),
                       "expand: shape [4611686018427387904,4611686018427387904] is too large: its element count "
                       "overflows a 64-bit integer",
                       ShapeError);
  CHECK_THROWS_AS(ones({1}).expand({-2}), ShapeError);
  // Two views of 2^62 elements broadcast to 2^124.
  CHECK_THROWS_AS(add(ones({1, 1}).expand({huge, 1}), ones({1}).expand({huge})), ShapeError);
  // Shapes just inside the limit are fine as views.
  CHECK(ones({1}).expand({huge}).shape() == Shape{huge});
}

TEST_CASE("an allocation the machine cannot give is an OutOfMemoryError with the size, not a crash") {
  // 2^62 bytes: a legal shape, more memory than any machine has.
  const Shape shape = {int64_t(1) << 60};
  CHECK_THROWS_WITH_AS(Tensor::empty(shape),
                       doctest::Contains("cannot allocate 4.0 EiB (4611686018427387904 bytes) on the cpu: out of memory"),
                       OutOfMemoryError);
  // The allocator is still usable afterwards.
  CHECK(ones({4}).sum().item() == 4);
}
