// Tensor basics: creation, metadata, data access, dtype conversion, printing.
#include <sstream>

#include "helpers.h"

using namespace hctest;

TEST_CASE("creation functions fill as asked") {
  CHECK(close(zeros({2, 3}), {2, 3}, std::vector<double>(6, 0.0)));
  CHECK(close(ones({4}), {4}, std::vector<double>(4, 1.0)));
  CHECK(close(full({2, 2}, 7.5), {2, 2}, {7.5, 7.5, 7.5, 7.5}));
  CHECK(close(arange(5), {5}, {0, 1, 2, 3, 4}));
  CHECK(arange(5).dtype() == DType::Int64);
  CHECK(close(arange(1.0, 2.0, 0.25, {.dtype = DType::Float64}), {4}, {1, 1.25, 1.5, 1.75}));
  CHECK(close(tensor({1, 2, 3, 4, 5, 6}, {2, 3}), {2, 3}, {1, 2, 3, 4, 5, 6}));
  CHECK(close(from_vector<double>({0.5, -1}), {2}, {0.5, -1}));
  CHECK(from_vector<float>({1, 2}).dtype() == DType::Float32);
  CHECK(from_vector<int64_t>({1, 2}).dtype() == DType::Int64);
  CHECK(scalar_tensor(3.0).shape() == Shape{});
  CHECK(scalar_tensor(3.0).item() == 3.0);
  CHECK(zeros({0, 3}).numel() == 0);
  CHECK(ones({2}, {.dtype = DType::Float64, .requires_grad = true}).requires_grad());
}

TEST_CASE("metadata: shape, strides, dtype, device, contiguity") {
  Tensor t = zeros({2, 3, 4});
  CHECK(t.dim() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.size(-1) == 4);
  CHECK(t.strides() == Strides{12, 4, 1});
  CHECK(t.is_contiguous());
  CHECK_FALSE(t.transpose(0, 2).is_contiguous());
  CHECK(t.dtype() == DType::Float32);
  CHECK(t.device() == Device::cpu());
  CHECK(itemsize(DType::Float64) == 8);
  std::ostringstream name;
  name << Device::cuda(1) << ' ' << DType::Bool << ' ' << Shape{2, 3};
  CHECK(name.str() == "cuda:1 bool [2,3]");
}

TEST_CASE("data access follows strides") {
  Tensor m = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(m.t().to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK(m.select(1, 2).to_vector<float>() == std::vector<float>{3, 6});
  CHECK(m.select(0, 1).select(0, 0).item() == 4.0);
  CHECK_THROWS_AS(m.data<double>(), DTypeError);
}

TEST_CASE("dtype conversion copies and converts") {
  Tensor f = tensor({1.7, -2.2, 0}, {3});
  CHECK(close(f.to(DType::Int64), {3}, {1, -2, 0}));
  CHECK(close(f.to(DType::Bool), {3}, {1, 1, 0}));
  CHECK(close(f.to(DType::Float64), {3}, {1.7, -2.2, 0}, 1e-6));
  CHECK(f.to(DType::Float32).same(f));  // no-op conversion returns the same tensor
}

TEST_CASE("in-place updates write through views and bump the version") {
  Tensor t = zeros({2, 3});
  uint64_t v0 = t.storage()->version();
  t.select(0, 1).fill_(2.0);
  t.narrow(1, 0, 1).add_(ones({2, 1}), 3.0);
  CHECK(close(t, {2, 3}, {3, 0, 0, 5, 2, 2}));
  t.mul_(2.0);
  CHECK(close(t, {2, 3}, {6, 0, 0, 10, 4, 4}));
  t.copy_(tensor({1, 2, 3}, {3}));  // broadcast copy
  CHECK(close(t, {2, 3}, {1, 2, 3, 1, 2, 3}));
  CHECK(t.storage()->version() == v0 + 4);
}

TEST_CASE("printing shows values, shape and dtype") {
  std::ostringstream out;
  out << tensor({1, -2.5, 3, 4}, {2, 2});
  CHECK(out.str() == "tensor([[ 1.0000, -2.5000],\n        [ 3.0000,  4.0000]], shape=[2,2], dtype=float32)");
  std::ostringstream ints;
  ints << arange(3);
  CHECK(ints.str() == "tensor([0, 1, 2], shape=[3], dtype=int64)");
  std::ostringstream exact;
  exact << from_vector<int64_t>({(int64_t{1} << 62) + 1});
  CHECK(exact.str() == "tensor([4611686018427387905], shape=[1], dtype=int64)");
  std::ostringstream big;
  big << arange(2000);
  CHECK(big.str() == "tensor([   0,    1,    2, ..., 1997, 1998, 1999], shape=[2000], dtype=int64)");
  std::ostringstream grad;
  Tensor x = ones({1}, {.requires_grad = true});
  grad << x * 2.0 << ' ' << x;
  CHECK(grad.str() == "tensor([2.0000], shape=[1], dtype=float32, grad_fn=<mul>) "
                      "tensor([1.0000], shape=[1], dtype=float32, requires_grad=true)");
  std::ostringstream scalar;
  scalar << scalar_tensor(0.5);
  CHECK(scalar.str() == "tensor(0.5000, shape=[], dtype=float32)");
}
