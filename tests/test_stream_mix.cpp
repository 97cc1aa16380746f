// stream_mix (core/ops/stream_mix.cpp): the fused per-token stream mix equals matmul(weights^T, x) for
// batched, broadcast and non-contiguous operands in both floating dtypes; its gradients equal matmul's;
// bad operands are refused naming the op and both shapes. (Finite-difference gradchecks are in
// test_gradcheck.cpp.)
#include "helpers.h"

using namespace hctest;

namespace {

Generator& gen() {
  static Generator g(7);
  return g;
}

Tensor random(const Shape& shape, DType dtype = DType::Float64) {
  return randn(shape, {.dtype = dtype}, gen());
}

// The unfused reference: out = weights^T @ x with torch.matmul broadcasting.
Tensor reference(const Tensor& weights, const Tensor& x) { return matmul(weights.transpose(-1, -2), x); }

// stream_mix and the reference agree in value and shape.
void check_forward(const Tensor& weights, const Tensor& x, double tol = 1e-12) {
  CAPTURE(weights.shape());
  CAPTURE(x.shape());
  Tensor want = reference(weights, x);
  Tensor got = stream_mix(weights, x);
  REQUIRE(got.shape() == want.shape());
  CHECK(max_abs_diff(values(got), values(want)) <= tol);
}

// The gradients of sum(stream_mix(w, x) * probe) equal those through the reference matmul.
void check_backward(const Tensor& weights, const Tensor& x) {
  CAPTURE(weights.shape());
  CAPTURE(x.shape());
  Tensor probe = random(reference(weights, x).shape());
  // Separate leaves over the same memory, so non-contiguous layouts reach the backward too.
  Tensor w1 = weights.detach().requires_grad_(), x1 = x.detach().requires_grad_();
  Tensor w2 = weights.detach().requires_grad_(), x2 = x.detach().requires_grad_();
  sum(stream_mix(w1, x1) * probe).backward();
  sum(reference(w2, x2) * probe).backward();
  CHECK(max_abs_diff(values(w1.grad()), values(w2.grad())) <= 1e-12);
  CHECK(max_abs_diff(values(x1.grad()), values(x2.grad())) <= 1e-12);
}

}  // namespace

TEST_CASE("stream_mix: a 2x3 mix by hand") {
  // weights [S = 2, K = 3], x [S = 2, D = 2]: out[k] = w[0, k] x[0] + w[1, k] x[1]
  Tensor w = from_vector(std::vector<double>{1, 2, 0, -1, 1, 3}, {2, 3});
  Tensor x = from_vector(std::vector<double>{1, 10, 2, 20}, {2, 2});
  CHECK(close(stream_mix(w, x), {3, 2}, {-1, -10, 4, 40, 6, 60}));
}

TEST_CASE("stream_mix equals matmul of the transposed weights: batched, K != S, D = 1, both dtypes") {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    CAPTURE(dtype);
    const double tol = dtype == DType::Float32 ? 1e-5 : 1e-12;
    check_forward(random({2, 3, 4, 4}, dtype), random({2, 3, 4, 16}, dtype), tol);  // S = K = 4
    check_forward(random({5, 4, 1}, dtype), random({5, 4, 7}, dtype), tol);         // K = 1 (a weighted sum)
    check_forward(random({5, 2, 6}, dtype), random({5, 2, 3}, dtype), tol);         // K > S
    check_forward(random({3, 4, 4}, dtype), random({3, 4, 1}, dtype), tol);         // D = 1
    check_forward(random({4, 3}, dtype), random({4, 5}, dtype), tol);               // no batch dims
    check_forward(random({6, 4, 4}, dtype), random({6, 4, 1100}, dtype), tol);      // D over one tile
    check_forward(random({300, 4, 4}, dtype), random({300, 4, 128}, dtype), tol);   // many rows: parallel
  }
}

TEST_CASE("stream_mix broadcasts the weights' leading dims to x's") {
  check_forward(random({4, 4}), random({2, 3, 4, 8}));        // static weights against [B, N, S, D]
  check_forward(random({1, 3, 4, 2}), random({2, 3, 4, 5}));  // a size-1 batch dim
  check_forward(random({2, 1, 4, 4}), random({2, 3, 4, 5}));  // a size-1 inner batch dim
  check_forward(random({3, 4, 4}), random({2, 3, 4, 5}));     // fewer leading dims
  check_backward(random({4, 4}), random({2, 3, 4, 8}));
  check_backward(random({2, 1, 4, 3}), random({2, 3, 4, 5}));
}

TEST_CASE("stream_mix takes non-contiguous operands") {
  Tensor x = random({2, 3, 8, 4}).transpose(-1, -2);                  // [2, 3, 4, 8], features strided
  Tensor w = random({2, 3, 4, 4}).transpose(-1, -2);                  // a transposed weight view
  Tensor sliced = random({2, 3, 4, 16}).slice(-1, 1, 16, 2);          // every other feature
  CHECK_FALSE(x.is_contiguous());
  CHECK_FALSE(sliced.is_contiguous());
  check_forward(w, x);
  check_forward(w, sliced);
  check_forward(random({4, 2}).expand({2, 3, 4, 2}), x);              // stride-0 weights
  check_backward(w, x);
  check_backward(random({4, 4}), sliced);
}

TEST_CASE("stream_mix gradients equal matmul's, and flow only where asked") {
  check_backward(random({2, 3, 4, 4}), random({2, 3, 4, 16}));
  check_backward(random({5, 4, 1}), random({5, 4, 7}));
  check_backward(random({3, 4, 4}), random({3, 4, 1}));

  Tensor w = random({3, 4, 2}).requires_grad_(), x = random({3, 4, 5});
  sum(stream_mix(w, x)).backward();
  CHECK(w.grad().defined());
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("stream_mix handles empty batches and empty features") {
  CHECK(stream_mix(random({0, 4, 4}), random({0, 4, 8})).shape() == Shape{0, 4, 8});
  CHECK(stream_mix(random({2, 4, 3}), random({2, 4, 0})).shape() == Shape{2, 3, 0});
  CHECK(close(stream_mix(random({2, 0, 3}), random({2, 0, 2})), {2, 3, 2}, std::vector<double>(12, 0.0)));
}

TEST_CASE("stream_mix: bad operands name the op and both shapes") {
  CHECK_THROWS_WITH_AS(stream_mix(ones({2, 4, 4}), ones({2, 3, 8})),
                       doctest::Contains("stream_mix: weights [2,4,4] and x [2,3,8] disagree on the number of streams"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(stream_mix(ones({3, 4, 4}), ones({2, 4, 8})),
                       doctest::Contains("stream_mix: the leading dims of weights [3,4,4] do not broadcast to those of x "
                                         "[2,4,8]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(stream_mix(ones({2, 2, 4, 4}), ones({2, 4, 8})),
                       doctest::Contains("stream_mix: the leading dims of weights [2,2,4,4]"), ShapeError);
  CHECK_THROWS_WITH_AS(stream_mix(ones({4}), ones({4, 8})), doctest::Contains("stream_mix: weights [4] and x [4,8]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(stream_mix(ones({4, 4}, {.dtype = DType::Float64}), ones({4, 8})),
                       doctest::Contains("stream_mix: dtypes float64 and float32 differ"), DTypeError);
  CHECK_THROWS_WITH_AS(stream_mix(ones({4, 4}, {.dtype = DType::Int64}), ones({4, 8}, {.dtype = DType::Int64})),
                       doctest::Contains("stream_mix: expected a floating dtype"), DTypeError);
}

TEST_CASE("stream_mix_add equals the sum of the two mixes, and its gradients theirs") {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    CAPTURE(dtype);
    const double tol = dtype == DType::Float32 ? 1e-5 : 1e-12;
    // The residual merge of mHC: H_res^T over S = 4 streams plus H_post^T over the branch output (E = 1).
    Tensor w = random({2, 3, 4, 4}, dtype), x = random({2, 3, 4, 16}, dtype);
    Tensor ew = random({2, 3, 1, 4}, dtype), ex = random({2, 3, 1, 16}, dtype);
    std::vector<Tensor> fused{w, x, ew, ex}, split{w, x, ew, ex};
    for (Tensor& t : fused) t = t.detach().requires_grad_();
    for (Tensor& t : split) t = t.detach().requires_grad_();
    const Tensor a = stream_mix_add(fused[0], fused[1], fused[2], fused[3]);
    const Tensor b = stream_mix(split[0], split[1]) + stream_mix(split[2], split[3]);
    CHECK(max_abs_diff(values(a), values(b)) <= tol);
    const Tensor probe = random(a.shape(), dtype);
    sum(a * probe).backward();
    sum(b * probe).backward();
    for (size_t i = 0; i < fused.size(); ++i) {
      CAPTURE(i);
      CHECK(max_abs_diff(values(fused[i].grad()), values(split[i].grad())) <= tol);
    }
  }
  CHECK_THROWS_WITH_AS(stream_mix_add(ones({4, 4}), ones({4, 8}), ones({1, 4}), ones({1, 6})),
                       doctest::Contains("stream_mix_add: the two mixes give different shapes"), ShapeError);
}
