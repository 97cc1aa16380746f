// scaled_dot_product_attention (the fused op) against the composite it replaces:
//   softmax(masked_fill(q k^T * scale, causal mask, -inf), -1) v
// forward values, the saved log-sum-exp, gradients, and the error messages. The float64 finite-difference
// gradchecks are in test_gradcheck.cpp; the GPU kernels are compared with these in gpu/test_gpu_scaled_dot_product_attention.cpp.
#include "helpers.h"

#include "hcgrad/core/kernels.h"

using namespace hctest;

namespace {

// The [B, H, T, T] scaled scores, -inf above the diagonal when causal.
Tensor reference_scores(const Tensor& q, const Tensor& k, bool causal, double scale) {
  Tensor scores = matmul(q, k.transpose(-1, -2)) * scale;
  return causal ? masked_fill(scores, nn::causal_mask(q.shape()[2], q.device()), -INFINITY) : scores;
}

Tensor reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale) {
  return matmul(softmax(reference_scores(q, k, causal, scale), -1), v);
}

double default_scale(const Shape& shape) { return 1.0 / std::sqrt(static_cast<double>(shape[3])); }

// Random q, k, v in [-2, 2) (wide enough that the softmax is far from uniform).
std::vector<Tensor> random_qkv(const Shape& shape, DType dtype, uint64_t seed) {
  Generator gen(seed);
  std::vector<Tensor> qkv;
  for (int i = 0; i < 3; ++i) qkv.push_back(rand(shape, {.dtype = dtype}, gen) * 4.0 - 2.0);
  return qkv;
}

// T = 1 (one key), T not a multiple of any tile size, odd head dims, one and several heads.
const std::vector<Shape> kShapes = {{2, 3, 1, 4}, {1, 2, 37, 5}, {2, 1, 70, 8}, {1, 1, 16, 1}};

}  // namespace

TEST_CASE("scaled_dot_product_attention forward equals the composite of matmul, masked_fill and softmax") {
  for (DType dtype : {DType::Float64, DType::Float32})
    for (bool causal : {true, false})
      for (const Shape& shape : kShapes) {
        CAPTURE(dtype);
        CAPTURE(causal);
        CAPTURE(shape);
        auto qkv = random_qkv(shape, dtype, 7);
        const double tol = dtype == DType::Float64 ? 1e-6 : 1e-5;
        Tensor expected = reference_attention(qkv[0], qkv[1], qkv[2], causal, default_scale(shape));
        Tensor got = scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], causal);
        CHECK(got.dtype() == dtype);
        CHECK(close(got, shape, values(expected), tol));
      }
}

TEST_CASE("scaled_dot_product_attention takes an explicit scale and strided views of one qkv tensor") {
  // As in nn::SelfAttention: q, k, v are head views [B, H, T, hd] of one [B, T, 3, H, hd] projection.
  const int64_t B = 2, T = 9, H = 3, hd = 4;
  Generator gen(3);
  Tensor qkv = randn({B, T, 3, H, hd}, {.dtype = DType::Float64}, gen);
  auto head = [&](int64_t which) { return qkv.select(2, which).permute({0, 2, 1, 3}); };
  for (bool causal : {true, false}) {
    CAPTURE(causal);
    Tensor expected = reference_attention(head(0), head(1), head(2), causal, 0.3);
    CHECK(close(scaled_dot_product_attention(head(0), head(1), head(2), causal, 0.3), {B, H, T, hd},
                values(expected), 1e-12));
  }
}

TEST_CASE("scaled_dot_product_attention_forward keeps the log-sum-exp of each scaled, masked score row") {
  for (bool causal : {true, false})
    for (const Shape& shape : kShapes) {
      CAPTURE(causal);
      CAPTURE(shape);
      auto qkv = random_qkv(shape, DType::Float64, 11);
      const double scale = default_scale(shape);
      Tensor out = empty(shape, {.dtype = DType::Float64});
      Tensor lse = empty({shape[0], shape[1], shape[2]}, {.dtype = DType::Float64});
      cpu::scaled_dot_product_attention_forward(out, lse, qkv[0], qkv[1], qkv[2], causal, scale);
      Tensor expected = logsumexp(reference_scores(qkv[0], qkv[1], causal, scale), {-1});
      CHECK(close(lse, {shape[0], shape[1], shape[2]}, values(expected), 1e-12));
    }
}

TEST_CASE("scaled_dot_product_attention gradients equal the composite's") {
  for (bool causal : {true, false})
    for (const Shape& shape : kShapes) {
      CAPTURE(causal);
      CAPTURE(shape);
      auto qkv = random_qkv(shape, DType::Float64, 5);
      Generator gen(9);
      Tensor cotangent = randn(shape, {.dtype = DType::Float64}, gen);
      std::vector<Tensor> fused_in, reference_in;
      for (const Tensor& t : qkv) {
        fused_in.push_back(t.clone().requires_grad_());
        reference_in.push_back(t.clone().requires_grad_());
      }
      scaled_dot_product_attention(fused_in[0], fused_in[1], fused_in[2], causal).backward(cotangent);
      reference_attention(reference_in[0], reference_in[1], reference_in[2], causal, default_scale(shape))
          .backward(cotangent);
      for (int i = 0; i < 3; ++i) {
        CAPTURE(i);
        CHECK(close(fused_in[i].grad(), shape, values(reference_in[i].grad()), 1e-10));
      }
    }
}

TEST_CASE("scaled_dot_product_attention computes only the gradients asked for") {
  const Shape shape = {1, 2, 6, 3};
  auto qkv = random_qkv(shape, DType::Float64, 13);
  Tensor v = qkv[2].clone().requires_grad_();
  Tensor v_reference = qkv[2].clone().requires_grad_();
  sum(scaled_dot_product_attention(qkv[0], qkv[1], v)).backward();
  sum(reference_attention(qkv[0], qkv[1], v_reference, true, default_scale(shape))).backward();
  CHECK(close(v.grad(), shape, values(v_reference.grad()), 1e-12));
}

TEST_CASE("scaled_dot_product_attention errors name the op and the shapes") {
  Tensor x = ones({2, 2, 5, 3});
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(x, ones({2, 2, 4, 3}), x),
                       "scaled_dot_product_attention: expected q, k, v of one shape [B, H, T, hd], got [2,2,5,3], "
                       "[2,2,4,3] and [2,2,5,3]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(ones({5, 3}), ones({5, 3}), ones({5, 3})),
                       "scaled_dot_product_attention: expected q, k, v of one shape [B, H, T, hd], got [5,3], [5,3] "
                       "and [5,3]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({1, 1, 2, 2}, {.dtype = DType::Int64}),
                                                    zeros({1, 1, 2, 2}, {.dtype = DType::Int64}),
                                                    zeros({1, 1, 2, 2}, {.dtype = DType::Int64})),
                       "scaled_dot_product_attention: expected a floating dtype (float32, float64), got int64 for "
                       "shape [1,1,2,2]",
                       DTypeError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(x, x, ones({2, 2, 5, 3}, {.dtype = DType::Float64})),
                       "scaled_dot_product_attention: dtypes float32 and float64 differ (shapes [2,2,5,3] and "
                       "[2,2,5,3]); convert one with .to(dtype)",
                       DTypeError);
}

// The packed form: qkv [B, T, 3·H·hd] = [q | k | v], each H heads side by side, as Linear(d, 3d) makes it.
TEST_CASE("scaled_dot_product_attention on a packed qkv equals the three-tensor form, values and gradient") {
  for (bool causal : {true, false})
    for (const Shape& shape : kShapes) {  // [B, H, T, hd]
      CAPTURE(causal);
      CAPTURE(shape);
      const int64_t B = shape[0], H = shape[1], T = shape[2], hd = shape[3];
      Generator gen(21);
      Tensor packed = (rand({B, T, 3 * H * hd}, {.dtype = DType::Float64}, gen) * 4.0 - 2.0).requires_grad_();
      Tensor cotangent = randn({B, T, H * hd}, {.dtype = DType::Float64}, gen);
      Tensor got = scaled_dot_product_attention(packed, H, causal);
      REQUIRE(got.shape() == Shape{B, T, H * hd});
      got.backward(cotangent);

      Tensor unpacked = packed.detach().clone().requires_grad_();
      std::vector<Tensor> q_k_v = split(unpacked, H * hd, 2);
      auto heads = [&](const Tensor& t) { return t.view({B, T, H, hd}).permute({0, 2, 1, 3}); };
      Tensor expected = scaled_dot_product_attention(heads(q_k_v[0]), heads(q_k_v[1]), heads(q_k_v[2]), causal)
                            .permute({0, 2, 1, 3})
                            .reshape({B, T, H * hd});
      expected.backward(cotangent);
      CHECK(close(got, got.shape(), values(expected), 1e-12));
      CHECK(close(packed.grad(), packed.shape(), values(unpacked.grad()), 1e-12));
    }
}

TEST_CASE("scaled_dot_product_attention hands out its heads over [B, T, H, hd] memory: side by side again without a copy") {
  auto qkv = random_qkv({2, 3, 4, 5}, DType::Float32, 3);
  Tensor out = scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);
  CHECK(out.shape() == Shape{2, 3, 4, 5});
  CHECK(out.permute({0, 2, 1, 3}).is_contiguous());
}

TEST_CASE("scaled_dot_product_attention on a packed qkv: errors name the op and the shape") {
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(ones({2, 5, 10}), 2),
                       "scaled_dot_product_attention: expected a packed qkv [B, T, 3·heads·hd] with heads = 2 > 0, "
                       "got shape [2,5,10]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(ones({2, 5, 12}), 0),
                       "scaled_dot_product_attention: expected a packed qkv [B, T, 3·heads·hd] with heads = 0 > 0, "
                       "got shape [2,5,12]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(ones({5, 12}), 2),
                       "scaled_dot_product_attention: expected a packed qkv [B, T, 3·heads·hd] with heads = 2 > 0, "
                       "got shape [5,12]",
                       ShapeError);
  CHECK_THROWS_AS(scaled_dot_product_attention(zeros({1, 2, 6}, {.dtype = DType::Int64}), 1), DTypeError);
}
