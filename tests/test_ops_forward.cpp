// Forward values of every op, against expectations computed independently in the test (plain loops in
// double, or values worked out by hand). Gradients are checked in test_gradcheck.cpp.
#include <algorithm>
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace hctest;

namespace {

// Row-major [rows, cols] values of a tensor as a nested-index helper.
struct Mat {
  std::vector<double> v;
  int64_t rows, cols;
  double operator()(int64_t r, int64_t c) const { return v[r * cols + c]; }
};

std::vector<double> naive_matmul(const std::vector<double>& a, const std::vector<double>& b, int64_t n, int64_t k,
                                 int64_t m) {
  std::vector<double> c(n * m, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t p = 0; p < k; ++p) c[i * m + j] += a[i * k + p] * b[p * m + j];
  return c;
}

Tensor seq(const Shape& shape, DType dtype = DType::Float32) {
  return arange(0.0, static_cast<double>(numel(shape)), 1.0, {.dtype = dtype}).reshape(shape);
}

// Sinkhorn-Knopp of one row-major [M, N] matrix, straight from the definition (core/ops.h), in double.
std::vector<double> naive_sinkhorn(const std::vector<double>& logits, int64_t M, int64_t N, int iters,
                                   SinkhornDomain domain) {
  std::vector<std::vector<double>> a(M, std::vector<double>(N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) a[i][j] = logits[i * N + j];
  if (domain == SinkhornDomain::Log) {
    for (int t = 0; t < iters; ++t) {
      for (int64_t j = 0; j < N; ++j) {  // log_softmax down each column
        double lse = 0;
        for (int64_t i = 0; i < M; ++i) lse += std::exp(a[i][j]);
        for (int64_t i = 0; i < M; ++i) a[i][j] -= std::log(lse);
      }
      for (int64_t i = 0; i < M; ++i) {  // then along each row
        double lse = 0;
        for (int64_t j = 0; j < N; ++j) lse += std::exp(a[i][j]);
        for (int64_t j = 0; j < N; ++j) a[i][j] -= std::log(lse);
      }
    }
    for (auto& row : a)
      for (double& v : row) v = std::exp(v);
  } else {
    for (int64_t j = 0; j < N; ++j) {
      double column_max = a[0][j];
      for (int64_t i = 1; i < M; ++i) column_max = std::max(column_max, a[i][j]);
      for (int64_t i = 0; i < M; ++i) a[i][j] = std::exp(a[i][j] - column_max);
    }
    for (int t = 0; t < iters; ++t) {
      for (int64_t j = 0; j < N; ++j) {
        double column_sum = 0;
        for (int64_t i = 0; i < M; ++i) column_sum += a[i][j];
        for (int64_t i = 0; i < M; ++i) a[i][j] /= std::max(column_sum, 1e-12);
      }
      for (int64_t i = 0; i < M; ++i) {
        double row_sum = 0;
        for (int64_t j = 0; j < N; ++j) row_sum += a[i][j];
        for (int64_t j = 0; j < N; ++j) a[i][j] /= std::max(row_sum, 1e-12);
      }
    }
  }
  std::vector<double> flat;
  for (const auto& row : a) flat.insert(flat.end(), row.begin(), row.end());
  return flat;
}

}  // namespace

TEST_CASE("binary ops broadcast like NumPy") {
  Tensor a = seq({2, 1, 3});                  // a[i,0,k] = 3i + k
  Tensor b = tensor({10, 20, 30, 40}, {4, 1});  // b[j,0] = 10(j+1)
  std::vector<double> sum_expected, prod_expected, sub_expected, div_expected;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) {
        double x = 3 * i + k, y = 10 * (j + 1);
        sum_expected.push_back(x + y);
        prod_expected.push_back(x * y);
        sub_expected.push_back(x - y);
        div_expected.push_back(x / y);
      }
  CHECK(close(a + b, {2, 4, 3}, sum_expected));
  CHECK(close(a * b, {2, 4, 3}, prod_expected));
  CHECK(close(a - b, {2, 4, 3}, sub_expected));
  CHECK(close(a / b, {2, 4, 3}, div_expected, 1e-7));
  CHECK(close(2.0 * a - 1.0, {2, 1, 3}, {-1, 1, 3, 5, 7, 9}));
  CHECK(close(1.0 / (a + 1.0), {2, 1, 3}, {1, 0.5, 1.0 / 3, 0.25, 0.2, 1.0 / 6}, 1e-7));
  CHECK(close(-a, {2, 1, 3}, {0, -1, -2, -3, -4, -5}));
}

TEST_CASE("binary ops on non-contiguous operands") {
  Tensor m = seq({3, 4});
  Tensor t = m.t();  // [4,3], t[i,j] = m[j,i] = 4j + i
  std::vector<double> expected;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) expected.push_back((4 * j + i) * 2.0);
  CHECK(close(t + t, {4, 3}, expected));
  Tensor every_other = m.slice(1, 0, 4, 2);  // columns 0 and 2
  CHECK(close(every_other * every_other, {3, 2}, {0, 4, 16, 36, 64, 100}));
}

TEST_CASE("unary ops match their formulas") {
  const std::vector<double> xs = {-2.5, -1.0, -0.25, 0.0, 0.3, 1.0, 4.0};
  Tensor x = from_vector(xs).to(DType::Float64);
  auto apply = [&](double (*f)(double)) {
    std::vector<double> out;
    for (double v : xs) out.push_back(f(v));
    return out;
  };
  const Shape s{7};
  CHECK(close(neg(x), s, apply([](double v) { return -v; })));
  CHECK(close(exp(x), s, apply([](double v) { return std::exp(v); }), 1e-12));
  CHECK(close(tanh(x), s, apply([](double v) { return std::tanh(v); }), 1e-12));
  CHECK(close(abs(x), s, apply([](double v) { return std::fabs(v); })));
  CHECK(close(sigmoid(x), s, apply([](double v) { return 1.0 / (1.0 + std::exp(-v)); }), 1e-12));
  CHECK(close(relu(x), s, apply([](double v) { return v > 0 ? v : 0.0; })));
  CHECK(close(silu(x), s, apply([](double v) { return v / (1.0 + std::exp(-v)); }), 1e-12));
  // GELU, tanh approximation (PyTorch's approximate='tanh'); gelu_tanh(1) = 0.8411919906082768.
  CHECK(close(gelu_tanh(x), s, apply([](double v) {
          return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        }), 1e-12));
  const Tensor one = tensor({1.0}, {1}, {.dtype = DType::Float64});
  CHECK(gelu_tanh(one).item() == doctest::Approx(0.8411919906082768).epsilon(1e-12));
  CHECK(gelu(one, "tanh").item() == gelu_tanh(one).item());
  // GELU, exact (PyTorch's default): x Phi(x); torch.nn.functional.gelu(torch.tensor(1.0, dtype=float64)) =
  // 0.8413447460685429.
  CHECK(close(gelu(x), s, apply([](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }), 1e-12));
  CHECK(gelu(one).item() == doctest::Approx(0.8413447460685429).epsilon(1e-12));
  CHECK(gelu(one, "none").item() == gelu(one).item());
  CHECK_THROWS_WITH_AS(gelu(one, "fast"), doctest::Contains("approximate must be 'none' or 'tanh'"), Error);
  CHECK(close(erf(x), s, apply([](double v) { return std::erf(v); }), 1e-12));
  CHECK(close(sin(x), s, apply([](double v) { return std::sin(v); }), 1e-12));
  CHECK(close(cos(x), s, apply([](double v) { return std::cos(v); }), 1e-12));
  CHECK(close(expm1(x), s, apply([](double v) { return std::expm1(v); }), 1e-12));
  CHECK(close(softplus(x), s, apply([](double v) { return std::log(1.0 + std::exp(v)); }), 1e-12));
  // softplus: no overflow where e^x does, no loss where 1 + e^x rounds to 1; log1p and expm1 exact near 0.
  const Tensor extreme = tensor({-800.0, -40.0, 40.0, 800.0}, {4}, {.dtype = DType::Float64});
  CHECK(close(softplus(extreme), {4}, {0.0, std::exp(-40.0), 40.0, 800.0}, 1e-15));
  CHECK(close(softplus(x, 2.0), s, apply([](double v) { return std::log(1.0 + std::exp(2 * v)) / 2; }), 1e-12));
  CHECK_THROWS_WITH_AS(softplus(x, 0.0), doctest::Contains("beta must be finite and non-zero"), Error);
  CHECK(close(leaky_relu(x), s, apply([](double v) { return v > 0 ? v : 0.01 * v; }), 1e-15));
  CHECK(close(leaky_relu(x, -0.5), s, apply([](double v) { return v > 0 ? v : -0.5 * v; }), 1e-15));
  CHECK(close(elu(x), s, apply([](double v) { return v > 0 ? v : std::expm1(v); }), 1e-15));
  CHECK(close(elu(x, 2.0), s, apply([](double v) { return v > 0 ? v : 2 * std::expm1(v); }), 1e-15));
  const Tensor tiny = tensor({1e-17, -1e-17}, {2}, {.dtype = DType::Float64});
  CHECK(close(log1p(tiny), {2}, {1e-17, -1e-17}, 1e-30));
  CHECK(close(expm1(tiny), {2}, {1e-17, -1e-17}, 1e-30));

  Tensor p = tensor({0.25, 1.0, 4.0, 9.0}, {4}, {.dtype = DType::Float64});
  CHECK(close(log(p), {4}, {std::log(0.25), 0.0, std::log(4.0), std::log(9.0)}, 1e-12));
  CHECK(close(sqrt(p), {4}, {0.5, 1, 2, 3}, 1e-12));
  CHECK(close(rsqrt(p), {4}, {2, 1, 0.5, 1.0 / 3}, 1e-12));
  CHECK(close(pow(p, 2.0), {4}, {0.0625, 1, 16, 81}, 1e-12));
  CHECK(close(pow(p, 0.5), {4}, {0.5, 1, 2, 3}, 1e-12));
  CHECK(close(pow(p, -1.0), {4}, {4, 1, 0.25, 1.0 / 9}, 1e-12));
  CHECK(close(clamp(x, -1.0, 1.0), s, {-1, -1, -0.25, 0, 0.3, 1, 1}));
  CHECK(close(clamp(x, std::nullopt, 0.0), s, {-2.5, -1, -0.25, 0, 0, 0, 0}));
}

TEST_CASE("unary ops in float32 on a large tensor agree with double") {
  Tensor x = data32({1000, 70}, -4, 4);  // big enough to run in parallel chunks
  std::vector<double> xv = values(x), expected;
  for (double v : xv) expected.push_back(std::tanh(v));
  CHECK(close(tanh(x), {1000, 70}, expected, 1e-6));
}

TEST_CASE("gelu_tanh in float32 (the vectorised dense path) agrees with the double formula, forward and backward") {
  const double k = std::sqrt(2.0 / M_PI);
  for (bool dense : {true, false}) {
    Tensor base = data32({300, 70}, -6, 6);
    Tensor x = (dense ? base : base.t()).detach().requires_grad_();  // the transpose takes the generic loop
    Tensor g = data32(x.shape(), -1, 1);
    Tensor y = gelu_tanh(x);
    y.backward(g);
    std::vector<double> xv = values(x), gv = values(g), expected_y, expected_dx;
    for (size_t i = 0; i < xv.size(); ++i) {
      const double v = xv[i], t = std::tanh(k * (v + 0.044715 * v * v * v));
      expected_y.push_back(0.5 * v * (1 + t));
      expected_dx.push_back(gv[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v)));
    }
    INFO("dense path: ", dense);
    CHECK(close(y, x.shape(), expected_y, 2e-6));
    CHECK(close(x.grad(), x.shape(), expected_dx, 1e-6));
  }
}

TEST_CASE("comparisons, where and masked_fill") {
  Tensor a = tensor({1, 2, 3, 4}, {2, 2});
  Tensor b = tensor({2, 2}, {2});
  CHECK(close(lt(a, b), {2, 2}, {1, 0, 0, 0}));
  CHECK(close(le(a, b), {2, 2}, {1, 1, 0, 0}));
  CHECK(close(eq(a, b), {2, 2}, {0, 1, 0, 0}));
  CHECK(close(ne(a, b), {2, 2}, {1, 0, 1, 1}));
  CHECK(close(gt(a, b), {2, 2}, {0, 0, 1, 1}));
  CHECK(close(ge(a, b), {2, 2}, {0, 1, 1, 1}));
  CHECK(lt(a, b).dtype() == DType::Bool);
  CHECK(close(where(gt(a, b), a, -a), {2, 2}, {-1, -2, 3, 4}));
  Tensor causal = gt(arange(3).unsqueeze(0), arange(3).unsqueeze(1));  // [i,j]: j > i
  CHECK(close(masked_fill(ones({3, 3}), causal, -1e9), {3, 3}, {1, -1e9, -1e9, 1, 1, -1e9, 1, 1, 1}));
}

TEST_CASE("sum, mean, max, min over dims") {
  Tensor x = seq({2, 3, 4});  // x[i,j,k] = 12i + 4j + k
  CHECK(sum(x).item() == 276.0);
  CHECK(sum(x).shape() == Shape{});
  std::vector<double> over_j;  // sum over dim 1
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) over_j.push_back(3 * (12 * i + k) + 4 * (0 + 1 + 2));
  CHECK(close(sum(x, {1}), {2, 4}, over_j));
  CHECK(close(sum(x, {1}, true), {2, 1, 4}, over_j));
  CHECK(close(sum(x, {0, 2}), {3}, {60, 92, 124}));  // 4*(0+12) + 2*4*4j + 2*(0+1+2+3)
  CHECK(close(sum(x, {-1, 0}), {3}, values(sum(x, {0, 2}))));
  CHECK(close(mean(x, {2}), {2, 3}, {1.5, 5.5, 9.5, 13.5, 17.5, 21.5}));
  CHECK(mean(x).item() == doctest::Approx(11.5));
  CHECK(close(max(x, {1}), {2, 4}, {8, 9, 10, 11, 20, 21, 22, 23}));
  CHECK(close(min(x, {0, 1}, true), {1, 1, 4}, {0, 1, 2, 3}));
  CHECK(close(max(x.transpose(0, 2), {0}), {3, 2}, {3, 15, 7, 19, 11, 23}));
  CHECK(close(argmax(tensor({3, 9, 9, 1, 0, 2}, {2, 3}), 1), {2}, {1, 2}));
  // NaN propagates through max, as in PyTorch.
  Tensor with_nan = tensor({1, NAN, 3}, {3});
  CHECK(std::isnan(max(with_nan).item()));
  CHECK(std::isnan(sum(with_nan).item()));
}

TEST_CASE("a long sum is accurate and cut into fixed blocks") {
  const int64_t n = 1 << 20;
  Tensor x = ones({n});
  CHECK(sum(x).item() == static_cast<double>(n));  // exact in float32 thanks to blockwise partial sums
  Tensor r = data32({n});
  double reference = 0;
  for (double v : values(r)) reference += v;
  CHECK(sum(r).item() == doctest::Approx(reference).epsilon(1e-5));
}

TEST_CASE("logsumexp is stable") {
  Tensor x = tensor({1000, 1000, -1000, 0, 1, 2}, {2, 3}, {.dtype = DType::Float64});
  double row1 = std::log(std::exp(0.0) + std::exp(1.0) + std::exp(2.0));
  CHECK(close(logsumexp(x, {1}), {2}, {1000 + std::log(2.0), row1}, 1e-9));
  Tensor neg_inf = full({3}, -INFINITY);
  CHECK(std::isinf(logsumexp(neg_inf, {0}).item()));
}

TEST_CASE("matmul matches a naive triple loop") {
  SUBCASE("2-d, sizes across the row-block boundary") {
    Tensor a = data32({130, 70}), b = data32({70, 90});
    CHECK(close(matmul(a, b), {130, 90}, naive_matmul(values(a), values(b), 130, 70, 90), 1e-4));
  }
  SUBCASE("transposed operands are read in place") {
    Tensor at = data32({7, 5}).t(), bt = data32({3, 7}).t();  // [5,7] and [7,3], column-major
    CHECK(close(matmul(at, bt), {5, 3}, naive_matmul(values(at), values(bt), 5, 7, 3), 1e-5));
  }
  SUBCASE("batched with broadcast batch dims") {
    Tensor a = data32({2, 1, 3, 4}), b = data32({5, 4, 2});
    Tensor c = matmul(a, b);
    REQUIRE(c.shape() == Shape{2, 5, 3, 2});
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 5; ++j)
        CHECK(close(c.select(0, i).select(0, j), {3, 2},
                    naive_matmul(values(a.select(0, i).select(0, 0)), values(b.select(0, j)), 3, 4, 2), 1e-5));
  }
  SUBCASE("a batch folded into rows: [B,T,C] @ [C,D]") {
    Tensor a = data32({3, 4, 5}), b = data32({5, 6});
    CHECK(close(matmul(a, b), {3, 4, 6}, naive_matmul(values(a), values(b), 12, 5, 6), 1e-5));
  }
  SUBCASE("vectors") {
    Tensor v = tensor({1, 2, 3}, {3}), m = seq({3, 2});
    CHECK(close(matmul(v, m), {2}, {0 + 2 * 2 + 3 * 4, 1 + 2 * 3 + 3 * 5}));
    CHECK(close(matmul(m.t(), v), {2}, {16, 22}));
    CHECK(close(matmul(v, v), {}, {14}));
  }
  SUBCASE("float64 and an empty inner dim") {
    Tensor a = seq({2, 3}, DType::Float64), b = seq({3, 2}, DType::Float64);
    CHECK(close(matmul(a, b), {2, 2}, {10, 13, 28, 40}, 0));
    CHECK(close(matmul(zeros({2, 0}), zeros({0, 3})), {2, 3}, std::vector<double>(6, 0.0)));
  }
}

TEST_CASE("linear matches a naive triple loop plus the bias, and names its operands when they do not fit") {
  // x W^T + b for rows across the row-block boundary, the bias added in the GEMM's row blocks.
  auto reference = [](const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t in, int64_t out) {
    std::vector<double> y = naive_matmul(values(x), values(w.t()), n, in, out);
    if (b.defined())
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < out; ++j) y[r * out + j] += values(b)[j];
    return y;
  };
  SUBCASE("3-d input, float32") {
    Tensor x = data32({2, 65, 7}), w = data32({9, 7}), b = data32({9});
    CHECK(close(linear(x, w, b), {2, 65, 9}, reference(x, w, b, 130, 7, 9), 1e-5));
  }
  SUBCASE("a transposed input, a strided bias, float64") {
    Tensor x = seq({5, 3}, DType::Float64).t(), w = seq({4, 5}, DType::Float64);
    Tensor b = seq({4, 2}, DType::Float64).select(1, 1);  // stride 2
    CHECK(close(linear(x, w, b), {3, 4}, reference(x, w, b, 3, 5, 4), 0));
    CHECK(close(linear(x, w), {3, 4}, reference(x, w, Tensor(), 3, 5, 4), 0));
  }
  SUBCASE("an empty inner dim gives the bias on every row") {
    CHECK(close(linear(zeros({2, 0}), zeros({3, 0}), tensor({1, 2, 3}, {3})), {2, 3}, {1, 2, 3, 1, 2, 3}));
  }
  SUBCASE("errors") {
    CHECK_THROWS_WITH_AS(linear(zeros({2, 4}), zeros({3, 5})),
                         "linear: input [2,4] and weight [3,5] do not fit (the weight is [out, in], the input [..., in])",
                         ShapeError);
    CHECK_THROWS_WITH_AS(linear(zeros({2, 4}), zeros({3, 4}), zeros({4})),
                         "linear: bias [4] does not match the weight [3,4] (expected [3])", ShapeError);
  }
}

TEST_CASE("softmax and log_softmax") {
  Tensor x = tensor({1, 2, 3, 1000, 1000, 1000}, {2, 3}, {.dtype = DType::Float64});
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(close(softmax(x, 1), {2, 3}, {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z, 1. / 3, 1. / 3, 1. / 3},
              1e-12));
  CHECK(close(log_softmax(x, -1), {2, 3}, {1 - std::log(z), 2 - std::log(z), 3 - std::log(z), -std::log(3.0),
                                           -std::log(3.0), -std::log(3.0)}, 1e-12));
  // Over dim 0 of a [2,3]: each column is a pair.
  Tensor y = tensor({0, 1, 2, 0, 1, 2}, {2, 3}, {.dtype = DType::Float64});
  CHECK(close(softmax(y, 0), {2, 3}, std::vector<double>(6, 0.5), 1e-12));
  Tensor big = data32({64, 300}, -5, 5);
  CHECK(close(sum(softmax(big, 1), {1}), {64}, std::vector<double>(64, 1.0), 1e-5));
}

TEST_CASE("cat, stack, split, chunk") {
  Tensor a = seq({2, 2}), b = tensor({9, 8}, {2, 1});
  CHECK(close(cat({a, b}, 1), {2, 3}, {0, 1, 9, 2, 3, 8}));
  CHECK(close(cat({a, a}, 0), {4, 2}, {0, 1, 2, 3, 0, 1, 2, 3}));
  CHECK(close(stack({a, a * 2.0}, 0), {2, 2, 2}, {0, 1, 2, 3, 0, 2, 4, 6}));
  CHECK(close(stack({a, a * 2.0}, 2), {2, 2, 2}, {0, 0, 1, 2, 2, 4, 3, 6}));
  auto pieces = split(seq({5}), 2, 0);
  REQUIRE(pieces.size() == 3);
  CHECK(close(pieces[2], {1}, {4}));
  auto uneven = split(seq({2, 5}), Shape{1, 4}, 1);
  CHECK(close(uneven[1], {2, 4}, {1, 2, 3, 4, 6, 7, 8, 9}));
  auto chunks = chunk(seq({6}), 3, 0);
  REQUIRE(chunks.size() == 3);
  CHECK(close(chunks[1], {2}, {2, 3}));
  CHECK(chunks[1].storage() == chunks[0].storage());  // views, not copies
}

TEST_CASE("index_select and embedding gather rows") {
  Tensor w = seq({4, 3});
  Tensor idx = from_vector<int64_t>({2, 0, 2});
  CHECK(close(index_select(w, 0, idx), {3, 3}, {6, 7, 8, 0, 1, 2, 6, 7, 8}));
  CHECK(close(index_select(w, 1, from_vector<int64_t>({1})), {4, 1}, {1, 4, 7, 10}));
  Tensor ids = from_vector<int64_t>({3, 1, 1, 0}, {2, 2});
  CHECK(close(embedding(ids, w), {2, 2, 3}, {9, 10, 11, 3, 4, 5, 3, 4, 5, 0, 1, 2}));
}

TEST_CASE("maximum and minimum: values, NaN, and a tie's gradient split in halves as torch") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor a = tensor({1, 5, 2, nan, 3}, {5}, {.dtype = DType::Float64}).requires_grad_();
  const Tensor b = tensor({4, 0, 2, 1, nan}, {5}, {.dtype = DType::Float64}).requires_grad_();
  const std::vector<double> most = values(maximum(a, b)), least = values(minimum(a, b));
  CHECK(most[0] == 4);
  CHECK(most[1] == 5);
  CHECK(most[2] == 2);
  CHECK(std::isnan(most[3]));
  CHECK(std::isnan(most[4]));
  CHECK(least[0] == 1);
  CHECK(least[1] == 0);
  CHECK(std::isnan(least[3]));
  maximum(a, b).narrow(0, 0, 3).sum().backward();
  CHECK(values(a.grad()) == std::vector<double>{0, 1, 0.5, 0, 0});
  CHECK(values(b.grad()) == std::vector<double>{1, 0, 0.5, 0, 0});
  CHECK(values(maximum(tensor({1, 2}, {2, 1}), tensor({0, 3, 1.5}, {3}))) == std::vector<double>{1, 3, 1.5, 2, 3, 2});
}

TEST_CASE("conv2d equals the direct sum with stride, padding, dilation and groups, and so do conv1d and the pools") {
  const Tensor x = randn({2, 4, 6, 5}, {.dtype = DType::Float64}), w = randn({6, 2, 3, 2}, {.dtype = DType::Float64});
  const Tensor b = randn({6}, {.dtype = DType::Float64});
  const Conv2dOptions o{.stride = {2, 1}, .padding = {1, 2}, .dilation = {2, 1}, .groups = 2};
  const Tensor y = conv2d(x, w, b, o);
  const int64_t out_h = (6 + 2 - 2 * 2 - 1) / 2 + 1, out_w = (5 + 4 - 1 - 1) / 1 + 1;
  REQUIRE(y.shape() == Shape{2, 6, out_h, out_w});
  const std::vector<double> xv = values(x), wv = values(w), bv = values(b), yv = values(y);
  for (int n = 0; n < 2; ++n)
    for (int oc = 0; oc < 6; ++oc)
      for (int i = 0; i < out_h; ++i)
        for (int j = 0; j < out_w; ++j) {
          double sum = bv[oc];
          const int group = oc / 3;
          for (int c = 0; c < 2; ++c)
            for (int a = 0; a < 3; ++a)
              for (int e = 0; e < 2; ++e) {
                const int row = i * 2 + a * 2 - 1, col = j + e - 2;
                if (row < 0 || row >= 6 || col < 0 || col >= 5) continue;  // zero padding
                sum += xv[((n * 4 + group * 2 + c) * 6 + row) * 5 + col] * wv[((oc * 2 + c) * 3 + a) * 2 + e];
              }
          CHECK(yv[((n * 6 + oc) * out_h + i) * out_w + j] == doctest::Approx(sum).epsilon(1e-12));
        }
  CHECK_THROWS_WITH_AS(conv2d(x, w, b), doctest::Contains("do not fit"), ShapeError);  // 4 channels, weight for 2
  CHECK_THROWS_WITH_AS(conv2d(x, randn({1, 4, 9, 1}, {.dtype = DType::Float64})), doctest::Contains("does not fit"),
                       ShapeError);
  // conv1d is conv2d on a height of 1
  const Tensor s = randn({1, 2, 7}, {.dtype = DType::Float64}), k = randn({3, 2, 3}, {.dtype = DType::Float64});
  CHECK(close(conv1d(s, k, {}, {.padding = 1}), {1, 3, 7},
              values(conv2d(s.unsqueeze(2), k.unsqueeze(2), {}, {.padding = {0, 1}})), 1e-14));
  // pools: torch.nn.functional.max_pool2d / avg_pool2d on 1..16 in a 4x4 image
  std::vector<double> ramp(16);
  for (int i = 0; i < 16; ++i) ramp[i] = i + 1;
  const Tensor image = from_vector(ramp, {1, 1, 4, 4});
  CHECK(values(max_pool2d(image, 2)) == std::vector<double>{6, 8, 14, 16});
  CHECK(values(avg_pool2d(image, 2)) == std::vector<double>{3.5, 5.5, 11.5, 13.5});
  CHECK(values(max_pool2d(image, 3, 2, 1)) == std::vector<double>{6, 8, 14, 16});
  CHECK(close(avg_pool2d(image, 3, 2, 1), {1, 1, 2, 2}, {14.0 / 9, 30.0 / 9, 57.0 / 9, 99.0 / 9}, 1e-6));
  CHECK_THROWS_WITH_AS(max_pool2d(image, 2, 2, 2), doctest::Contains("at most half the kernel"), Error);
}

TEST_CASE("nn::Conv2d, Conv1d and MaxPool2d: torch's parameter names, shapes and bounds") {
  Generator gen(3);
  nn::Conv2d conv(4, 6, 3, gen, {.padding = 1, .groups = 2});
  const auto params = conv.named_parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0].first == "weight");
  CHECK(params[1].first == "bias");
  CHECK(conv.weight.shape() == Shape{6, 2, 3, 3});
  CHECK(conv.bias.shape() == Shape{6});
  for (double v : values(conv.weight)) CHECK(std::abs(v) <= 1 / std::sqrt(18.0));  // fan_in 2·3·3
  CHECK(conv.forward(zeros({1, 4, 5, 5})).shape() == Shape{1, 6, 5, 5});
  nn::Conv1d line(3, 2, 2, gen, {.stride = 2, .bias = false});
  CHECK(line.named_parameters().size() == 1);
  CHECK(line.forward(zeros({2, 3, 8})).shape() == Shape{2, 2, 4});
  CHECK(nn::MaxPool2d(2).forward(zeros({1, 1, 4, 6})).shape() == Shape{1, 1, 2, 3});
  CHECK_THROWS_WITH_AS(nn::Conv2d(4, 6, 3, gen, {.groups = 4}), doctest::Contains("divisible by groups"), Error);
}

TEST_CASE("group_norm normalises each group of channels and positions, then scales per channel") {
  const Tensor x = randn({2, 4, 3}, {.dtype = DType::Float64});
  const Tensor weight = tensor({1, 2, 3, 4}, {4}, {.dtype = DType::Float64});
  const Tensor bias = tensor({0, 0.5, 0, -1}, {4}, {.dtype = DType::Float64});
  const std::vector<double> got = values(group_norm(x, 2, weight, bias, 1e-5)), xv = values(x);
  for (int n = 0; n < 2; ++n)
    for (int g = 0; g < 2; ++g) {  // group g: channels 2g, 2g + 1, 6 values at n·12 + g·6
      const int first = n * 12 + g * 6;
      double mean = 0, var = 0;
      for (int i = 0; i < 6; ++i) mean += xv[first + i] / 6;
      for (int i = 0; i < 6; ++i) var += (xv[first + i] - mean) * (xv[first + i] - mean) / 6;  // population
      for (int i = 0; i < 6; ++i) {
        const int channel = 2 * g + i / 3;
        const double want = (xv[first + i] - mean) / std::sqrt(var + 1e-5) * values(weight)[channel] + values(bias)[channel];
        CHECK(got[first + i] == doctest::Approx(want).epsilon(1e-12));
      }
    }
  CHECK_THROWS_WITH_AS(group_norm(x, 3), doctest::Contains("4 channels cannot be split into 3 groups"), ShapeError);
  nn::GroupNorm norm(2, 4);
  CHECK(norm.named_parameters().size() == 2);  // "weight" and "bias", as torch.nn.GroupNorm
  CHECK(values(norm.forward(x.to(DType::Float32))).size() == 24);
}

TEST_CASE("gather and scatter_add as torch, with repeated indices and the refusals") {
  const Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor rows = from_vector(std::vector<int64_t>{2, 0, 1, 1}, {2, 2});
  CHECK(values(gather(x, 1, rows)) == std::vector<double>{3, 1, 5, 5});  // torch.gather(x, 1, rows)
  CHECK(values(gather(x, 0, from_vector(std::vector<int64_t>{1, 0, 1}, {1, 3}))) == std::vector<double>{4, 2, 6});
  const Tensor src = tensor({10, 20, 30, 40, 50, 60}, {2, 3});
  // torch.zeros(2, 3).scatter_add(1, rows, src): row 0 gets 20 at 0 and 10 at 2; row 1 gets 40 + 50 at 1
  CHECK(values(scatter_add(zeros({2, 3}), 1, rows, src)) == std::vector<double>{20, 0, 10, 0, 90, 0});
  CHECK(values(scatter_add(x, 1, rows, src)) == std::vector<double>{21, 2, 13, 4, 95, 6});
  CHECK_THROWS_WITH_AS(gather(x, 1, from_vector(std::vector<int64_t>{3}, {1, 1})),
                       doctest::Contains("index 3 out of range for dim 1 of size 3"), IndexError);
  CHECK_THROWS_WITH_AS(gather(x, 1, from_vector(std::vector<int64_t>{0, 0}, {2})), doctest::Contains("2 dims"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(scatter_add(x, 1, rows, tensor({1}, {1, 1})), doctest::Contains("larger than src"), ShapeError);
}

TEST_CASE("var, std and argmin as torch: corrections, dims, keepdim") {
  const Tensor x = tensor({1, 2, 3, 4, 6, 8}, {2, 3}, {.dtype = DType::Float64});
  CHECK(close(var(x, {1}), {2}, {1.0, 4.0}, 1e-15));
  CHECK(close(var(x, {1}, 0.0), {2}, {2.0 / 3, 8.0 / 3}, 1e-15));
  CHECK(var(x).item() == doctest::Approx(6.8).epsilon(1e-14));  // all 6: mean 4, squares 26 + 8 = 34, / 5
  CHECK(close(hcgrad::std(x, {0}, 1.0, true), {1, 3}, {std::sqrt(4.5), std::sqrt(8.0), std::sqrt(12.5)}, 1e-14));
  CHECK(std::isnan(var(tensor({3.0}, {1}, {.dtype = DType::Float64})).item()));  // one element, correction 1
  CHECK(values(argmin(tensor({3, 1, 2, 1}, {2, 2}), 1)) == std::vector<double>{1, 1});
  CHECK(values(argmin(tensor({2, 1, 1, 5}, {4}), 0)) == std::vector<double>{1});  // the first minimum
}

TEST_CASE("flip, tril, triu, roll, repeat and pad give torch's values and refuse what torch refuses") {
  const Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(values(flip(x, {1})) == std::vector<double>{3, 2, 1, 6, 5, 4});
  CHECK(values(flip(x, {0, 1})) == std::vector<double>{6, 5, 4, 3, 2, 1});
  CHECK(values(flip(x, {})) == values(x));
  CHECK_THROWS_WITH_AS(flip(x, {1, -1}), doctest::Contains("appears twice"), Error);
  CHECK(values(tril(x)) == std::vector<double>{1, 0, 0, 4, 5, 0});
  CHECK(values(tril(x, 1)) == std::vector<double>{1, 2, 0, 4, 5, 6});
  CHECK(values(triu(x)) == std::vector<double>{1, 2, 3, 0, 5, 6});
  CHECK(values(triu(x, -1)) == values(x));
  CHECK(values(triu(x.reshape({1, 2, 3}), 2)) == std::vector<double>{0, 0, 3, 0, 0, 0});
  CHECK_THROWS_WITH_AS(tril(tensor({1, 2}, {2})), doctest::Contains("at least 2 dims"), ShapeError);
  CHECK(values(roll(x, {1}, {1})) == std::vector<double>{3, 1, 2, 6, 4, 5});
  CHECK(values(roll(x, {-4}, {1})) == std::vector<double>{2, 3, 1, 5, 6, 4});
  CHECK(values(roll(x, {2})) == std::vector<double>{5, 6, 1, 2, 3, 4});  // flattened
  CHECK(values(roll(x, {1, 1}, {0, 1})) == std::vector<double>{6, 4, 5, 3, 1, 2});
  CHECK_THROWS_WITH_AS(roll(x, {1, 2}), doctest::Contains("expected one shift"), Error);
  const Tensor tiled = repeat(tensor({1, 2}, {2}), {2, 3});
  CHECK(tiled.shape() == Shape{2, 6});
  CHECK(values(tiled) == std::vector<double>{1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2});
  CHECK(values(repeat(x, {2, 1})) == std::vector<double>{1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6});
  CHECK_THROWS_WITH_AS(repeat(x, {2}), doctest::Contains("2 dims"), Error);
  CHECK_THROWS_WITH_AS(repeat(x, {int64_t{1} << 62, 8}), doctest::Contains("overflow"), ShapeError);
  const Tensor padded = pad(x, {1, 0, 0, 1}, -1);  // last dim: 1 left; first dim: 1 below
  CHECK(padded.shape() == Shape{3, 4});
  CHECK(values(padded) == std::vector<double>{-1, 1, 2, 3, -1, 4, 5, 6, -1, -1, -1, -1});
  CHECK(values(pad(x, {-1, 1})) == std::vector<double>{2, 3, 0, 5, 6, 0});  // a negative pad crops
  CHECK(values(pad(x, {-3, 2}, 9)) == std::vector<double>{9, 9, 9, 9});  // all cropped, then padded
  CHECK_THROWS_WITH_AS(pad(x, {-4, 2}), doctest::Contains("crop more than the 3 elements"), ShapeError);
  CHECK_THROWS_WITH_AS(pad(x, {1, 1, 1}), doctest::Contains("expected pairs"), Error);
}

TEST_CASE("nll_loss, mse_loss and binary_cross_entropy_with_logits: values, reductions, extremes, refusals") {
  const Tensor logits = tensor({0.5, -1.0, 2.0, 0.25, 3.0, -0.5}, {2, 3}, {.dtype = DType::Float64});
  const Tensor targets = from_vector(std::vector<int64_t>{2, 0}, {2});
  // nll_loss of log_softmax is cross_entropy, with every reduction and ignore_index
  const Tensor log_probs = log_softmax(logits, 1);
  CHECK(nll_loss(log_probs, targets).item() == doctest::Approx(cross_entropy(logits, targets).item()).epsilon(1e-14));
  CHECK(close(nll_loss(log_probs, targets, {.reduction = Reduction::None}), {2},
              values(cross_entropy(logits, targets, {.reduction = Reduction::None})), 1e-14));
  const Tensor one_ignored = from_vector(std::vector<int64_t>{-100, 1}, {2});
  CHECK(nll_loss(log_probs, one_ignored).item() == doctest::Approx(-values(log_probs)[4]).epsilon(1e-14));
  CHECK_THROWS_WITH_AS(nll_loss(log_probs, from_vector(std::vector<int64_t>{3, 0}, {2})),
                       doctest::Contains("nll_loss: target 3 at row 0 out of range for 3 classes"), IndexError);

  const Tensor input = tensor({1.0, 2.0, -3.0, 0.5}, {2, 2}, {.dtype = DType::Float64});
  const Tensor target = tensor({0.0, 2.5, -1.0, 0.5}, {2, 2}, {.dtype = DType::Float64});
  CHECK(mse_loss(input, target).item() == doctest::Approx((1 + 0.25 + 4 + 0) / 4.0).epsilon(1e-15));
  CHECK(mse_loss(input, target, Reduction::Sum).item() == doctest::Approx(5.25).epsilon(1e-15));
  CHECK(close(mse_loss(input, target, Reduction::None), {2, 2}, {1, 0.25, 4, 0}, 1e-15));
  CHECK_THROWS_WITH_AS(mse_loss(input, target.reshape({4})), doctest::Contains("must have one shape"), ShapeError);

  // -(t log s + (1 - t) log(1 - s)), s = sigmoid(x); finite for logits where sigmoid rounds to 0 or 1
  const Tensor x = tensor({0.3, -2.0, 100.0, -100.0}, {4}, {.dtype = DType::Float64});
  const Tensor t = tensor({1.0, 0.25, 0.0, 1.0}, {4}, {.dtype = DType::Float64});
  std::vector<double> expected;
  for (const auto& [xv, tv] : {std::pair{0.3, 1.0}, {-2.0, 0.25}}) {
    const double sv = 1 / (1 + std::exp(-xv));
    expected.push_back(-(tv * std::log(sv) + (1 - tv) * std::log(1 - sv)));
  }
  expected.push_back(100.0);
  expected.push_back(100.0);
  CHECK(close(binary_cross_entropy_with_logits(x, t, Reduction::None), {4}, expected, 1e-13));
  CHECK(binary_cross_entropy_with_logits(x, t).item() ==
        doctest::Approx((expected[0] + expected[1] + 200) / 4).epsilon(1e-13));
}

TEST_CASE("cross_entropy equals -log softmax at the target") {
  Tensor logits = tensor({2, 1, 0.1, 0.5, 2.5, 0.3, 1000, 0, 0}, {3, 3}, {.dtype = DType::Float64});
  std::vector<int64_t> t = {0, 1, 0};
  std::vector<double> per_row;
  Mat L{values(logits), 3, 3};
  for (int n = 0; n < 3; ++n) {
    double m = std::max({L(n, 0), L(n, 1), L(n, 2)});
    double lse = m + std::log(std::exp(L(n, 0) - m) + std::exp(L(n, 1) - m) + std::exp(L(n, 2) - m));
    per_row.push_back(lse - L(n, t[n]));
  }
  Tensor targets = from_vector(t);
  CHECK(close(cross_entropy(logits, targets, {.reduction = Reduction::None}), {3}, per_row, 1e-12));
  CHECK(cross_entropy(logits, targets).item() == doctest::Approx((per_row[0] + per_row[1] + per_row[2]) / 3));
  CHECK(cross_entropy(logits, targets, {.reduction = Reduction::Sum}).item() ==
        doctest::Approx(per_row[0] + per_row[1] + per_row[2]));
  // Ignored rows count neither in the sum nor in the mean's denominator.
  Tensor some_ignored = from_vector<int64_t>({0, -100, 0});
  CHECK(cross_entropy(logits, some_ignored).item() == doctest::Approx((per_row[0] + per_row[2]) / 2));
  CHECK(std::isnan(cross_entropy(logits, from_vector<int64_t>({-100, -100, -100})).item()));  // 0/0, as PyTorch
}

TEST_CASE("layer_norm and rms_norm match their definitions") {
  Tensor x = data32({5, 8}, -3, 3);
  Tensor w = data32({8}), b = data32({8});
  Mat X{values(x), 5, 8};
  std::vector<double> wv = values(w), bv = values(b), ln, rms;
  for (int r = 0; r < 5; ++r) {
    double mean = 0, var = 0, ms = 0;
    for (int i = 0; i < 8; ++i) mean += X(r, i) / 8;
    for (int i = 0; i < 8; ++i) var += (X(r, i) - mean) * (X(r, i) - mean) / 8;
    for (int i = 0; i < 8; ++i) ms += X(r, i) * X(r, i) / 8;
    for (int i = 0; i < 8; ++i) ln.push_back((X(r, i) - mean) / std::sqrt(var + 1e-5) * wv[i] + bv[i]);
    for (int i = 0; i < 8; ++i) rms.push_back(X(r, i) / std::sqrt(ms + 1e-6) * wv[i]);
  }
  CHECK(close(layer_norm(x, {8}, w, b), {5, 8}, ln, 1e-5));
  CHECK(close(rms_norm(x, {8}, w, 1e-6), {5, 8}, rms, 1e-5));
  // Without affine parameters each row has mean 0 and variance 1.
  Tensor y = layer_norm(x.reshape({5, 2, 4}), {2, 4});
  CHECK(close(mean(y, {1, 2}), {5}, std::vector<double>(5, 0.0), 1e-6));
  CHECK(close(mean(y * y, {1, 2}), {5}, std::vector<double>(5, 1.0), 1e-4));
}

TEST_CASE("scaled_rms_norm_matmul equals the library's RMSNorm followed by the projection") {
  // x / max(|x|, 1e-12) * sqrt(K) * (1 + gamma) @ W, in double, row by row; one row is all zeros (clamped norm).
  Tensor x = data32({4, 6}, -2, 2) * tensor({1, 1, 0, 1}, {4, 1});
  Tensor gamma = data32({6}), w = data32({6, 3});
  Mat X{values(x), 4, 6}, Wm{values(w), 6, 3};
  std::vector<double> g = values(gamma), expected;
  for (int r = 0; r < 4; ++r) {
    double norm = 0;
    for (int k = 0; k < 6; ++k) norm += X(r, k) * X(r, k);
    norm = std::max(std::sqrt(norm), 1e-12);
    for (int m = 0; m < 3; ++m) {
      double v = 0;
      for (int k = 0; k < 6; ++k) v += X(r, k) / norm * std::sqrt(6.0) * (1 + g[k]) * Wm(k, m);
      expected.push_back(v);
    }
  }
  CHECK(close(scaled_rms_norm_matmul(x, gamma, w), {4, 3}, expected, 1e-5));
  CHECK(close(scaled_rms_norm_matmul(x.reshape({2, 2, 6}), gamma, w), {2, 2, 3}, expected, 1e-5));
  CHECK_THROWS_WITH_AS(scaled_rms_norm_matmul(x, gamma, ones({5, 3})), doctest::Contains("[4,6], [6] and [5,3]"),
                       ShapeError);
}

TEST_CASE("sinkhorn matches a naive double implementation, in both domains and dtypes") {
  // Logits in [-2, 2), batch [2, 3] of non-square 4x5 matrices; inputs small enough that exp needs no shift.
  Tensor x = data32({2, 3, 4, 5}, -2, 2);
  std::vector<double> xv = values(x);
  for (SinkhornDomain domain : {SinkhornDomain::Linear, SinkhornDomain::Log}) {
    for (int iters : {1, 3, 20}) {
      CAPTURE(iters);
      CAPTURE(domain == SinkhornDomain::Log);
      std::vector<double> expected;
      for (int b = 0; b < 6; ++b) {
        std::vector<double> matrix(xv.begin() + b * 20, xv.begin() + (b + 1) * 20);
        std::vector<double> result = naive_sinkhorn(matrix, 4, 5, iters, domain);
        expected.insert(expected.end(), result.begin(), result.end());
      }
      CHECK(close(sinkhorn(x.to(DType::Float64), iters, domain), {2, 3, 4, 5}, expected, 1e-13));
      CHECK(close(sinkhorn(x, iters, domain), {2, 3, 4, 5}, expected, 1e-6));
    }
  }
  // A transposed (non-contiguous) input is read through its strides: a 5x4 matrix.
  Tensor xt = x.select(0, 1).select(0, 2).t();
  std::vector<double> xtv = values(xt);
  CHECK(close(sinkhorn(xt, 3), {5, 4}, naive_sinkhorn(xtv, 5, 4, 3, SinkhornDomain::Linear), 1e-6));
}

TEST_CASE("sinkhorn: rows sum to 1, columns converge, the domains and dtypes agree") {
  Tensor x32 = data32({8, 6, 6}, -2, 2);
  Tensor x64 = x32.to(DType::Float64);
  const std::vector<double> ones_8x6(48, 1.0);
  for (SinkhornDomain domain : {SinkhornDomain::Linear, SinkhornDomain::Log}) {
    CAPTURE(domain == SinkhornDomain::Log);
    // The last half-step normalises the rows: they sum to 1 after any number of iterations.
    CHECK(close(sum(sinkhorn(x64, 2, domain), {-1}), {8, 6}, ones_8x6, 1e-14));
    CHECK(close(sum(sinkhorn(x32, 2, domain), {-1}), {8, 6}, ones_8x6, 1e-6));
    // Columns only approach 1; after 1 iteration they are visibly off, after 20 close.
    CHECK(max_abs_diff(values(sum(sinkhorn(x64, 1, domain), {-2})), ones_8x6) > 1e-3);
    CHECK(close(sum(sinkhorn(x64, 20, domain), {-2}), {8, 6}, ones_8x6, 1e-6));
  }
  // A non-square 4x2 matrix cannot be doubly stochastic: its columns approach M / N = 2.
  // (Fixed values: how fast the columns converge depends on the input.)
  Tensor wide = tensor({0.3, -1.2, 1.5, 0.4, -0.7, 0.9, 0.1, -0.5}, {4, 2}, {.dtype = DType::Float64});
  CHECK(close(sum(sinkhorn(wide, 20), {0}), {2}, {2.0, 2.0}, 1e-6));
  // Linear and log domain are the same iteration written two ways.
  CHECK(close(sinkhorn(x64, 20), {8, 6, 6}, values(sinkhorn(x64, 20, SinkhornDomain::Log)), 1e-13));
  CHECK(close(sinkhorn(x32, 20), {8, 6, 6}, values(sinkhorn(x32, 20, SinkhornDomain::Log)), 1e-6));
  // float32 follows float64.
  CHECK(close(sinkhorn(x32, 20), {8, 6, 6}, values(sinkhorn(x64, 20)), 1e-6));
  CHECK(close(sinkhorn(x32, 20, SinkhornDomain::Log), {8, 6, 6}, values(sinkhorn(x64, 20, SinkhornDomain::Log)),
              1e-6));
}

TEST_CASE("sinkhorn at mHC's init: logits 0 on the diagonal, -1 off it") {
  // exp(I - 1) has diagonal 1 and off-diagonal 1/e; it is symmetric, so one column normalisation already
  // makes it doubly stochastic: diagonal 1 / (1 + (S - 1) / e), off-diagonal (1 / e) / (1 + (S - 1) / e).
  const int S = 4;
  std::vector<double> logits(S * S, -1.0), expected(S * S);
  for (int i = 0; i < S; ++i) logits[i * S + i] = 0.0;
  const double diagonal = 1.0 / (1.0 + (S - 1) / std::exp(1.0)), off = diagonal / std::exp(1.0);
  CHECK(diagonal == doctest::Approx(0.4753669).epsilon(1e-7));  // mHC's H_res at init for S = 4
  CHECK(off == doctest::Approx(0.1748777).epsilon(1e-7));
  for (int k = 0; k < S * S; ++k) expected[k] = k % (S + 1) == 0 ? diagonal : off;
  Tensor x = from_vector(logits, {S, S}).to(DType::Float32);
  for (SinkhornDomain domain : {SinkhornDomain::Linear, SinkhornDomain::Log})
    for (int iters : {1, 20}) {
      CAPTURE(iters);
      CHECK(close(sinkhorn(x, iters, domain), {S, S}, expected, 1e-6));
    }
}

TEST_CASE("sinkhorn gives the same bits on 1 and 4 threads, forward and backward") {
  Tensor x = data32({2048, 4, 4}, -2, 2).requires_grad_();
  Tensor cotangent = data32({2048, 4, 4});
  auto run = [&] {
    x.zero_grad();
    Tensor y = sinkhorn(x, 20);
    y.backward(cotangent);
    std::vector<float> result = y.to_vector<float>(), grad = x.grad().to_vector<float>();
    result.insert(result.end(), grad.begin(), grad.end());
    return result;
  };
  set_num_threads(1);
  std::vector<float> one_thread = run();
  set_num_threads(4);
  CHECK(run() == one_thread);
  set_num_threads(0);
}

TEST_CASE("prod: values and a gradient exact with one zero, two zeros, or none") {
  const TensorOptions f64{.dtype = DType::Float64};
  const Tensor x = tensor({1, 2, 3, 0, 4, 5, 0, 7, 0}, {3, 3}, f64).requires_grad_();
  const Tensor p = prod(x, {1});
  CHECK(close(p, {3}, {6, 0, 0}, 0));
  p.sum().backward();
  // Row 0: the others' products; row 1: only the zero's place sees 4 * 5; row 2: two zeros, all 0.
  CHECK(values(x.grad()) == std::vector<double>{6, 3, 2, 20, 0, 0, 0, 0, 0});
  CHECK(prod(tensor({1, 2, 3, 4}, {2, 2}, f64)).item() == 24);
  CHECK(close(prod(tensor({1, 2, 3, 4}, {2, 2}, f64), {0}, true), {1, 2}, {3, 8}, 0));
  CHECK(prod(Tensor::empty({0}, f64)).item() == 1);  // the empty product, as torch
}

TEST_CASE("cumsum: along any dim, a 0-d input, and the reversed running sum as its gradient") {
  const Tensor x = tensor({1, 2, 3, 4}, {4}, {.dtype = DType::Float64}).requires_grad_();
  CHECK(close(cumsum(x, 0), {4}, {1, 3, 6, 10}, 0));
  cumsum(x, -1).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{4, 3, 2, 1});
  CHECK(close(cumsum(tensor({1, 2, 3, 4}, {2, 2}), 0), {2, 2}, {1, 2, 4, 6}, 0));
  CHECK(close(cumsum(tensor({1, 2, 3, 4}, {2, 2}).t(), 1), {2, 2}, {1, 4, 2, 6}, 0));
  CHECK(close(cumsum(scalar_tensor(5.0), 0), {}, {5}, 0));
  CHECK_THROWS_AS(cumsum(x, 1), IndexError);
}

TEST_CASE("sort, argsort and topk: stable, NaN above every number, values differentiable") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = tensor({3, nan, 1, 3, 2}, {5}, {.dtype = DType::Float64});
  const auto [up, up_at] = sort(x);
  CHECK(values(up_at) == std::vector<double>{2, 4, 0, 3, 1});
  CHECK(values(up.narrow(0, 0, 4)) == std::vector<double>{1, 2, 3, 3});
  CHECK(std::isnan(values(up)[4]));
  CHECK(values(argsort(x, 0, /*descending=*/true)) == std::vector<double>{1, 0, 3, 4, 2});  // ties keep order
  // Along dim 0 of a matrix.
  CHECK(values(sort(tensor({4, 1, 2, 3}, {2, 2}), 0).first) == std::vector<double>{2, 1, 4, 3});
  const Tensor y = tensor({1, 5, 2, 5}, {4}, {.dtype = DType::Float64}).requires_grad_();
  const auto [top, top_at] = topk(y, 2);
  CHECK(values(top) == std::vector<double>{5, 5});
  CHECK(values(top_at) == std::vector<double>{1, 3});
  (top * tensor({1, 2}, {2}, {.dtype = DType::Float64})).sum().backward();
  CHECK(values(y.grad()) == std::vector<double>{0, 1, 0, 2});  // each value's gradient goes where it came from
  CHECK(values(topk(y, 2, 0, /*largest=*/false).second) == std::vector<double>{0, 2});
  CHECK(topk(y, 0).first.numel() == 0);
  CHECK_THROWS_AS(topk(y, 5), ShapeError);
  CHECK_THROWS_AS(topk(y, -1), ShapeError);
}

TEST_CASE("pow with a tensor exponent: values, broadcasting, and PyTorch's gradients at 0") {
  const TensorOptions f64{.dtype = DType::Float64};
  const Tensor a = tensor({2, -2, 0, 0, 4}, {5}, f64).requires_grad_();
  const Tensor b = tensor({3, 2, 0, 2, 0.5}, {5}, f64).requires_grad_();
  const Tensor y = pow(a, b);
  CHECK(close(y, {5}, {8, 4, 1, 0, 2}, 1e-15));
  y.sum().backward();
  // d/da = b a^(b-1), 0 where b = 0; d/db = a^b log a, 0 where a = 0 and b >= 0; log(-2) is NaN, as torch.
  const std::vector<double> da = values(a.grad()), db = values(b.grad());
  CHECK(close(a.grad().narrow(0, 0, 4), {4}, {12, -4, 0, 0}, 1e-14));
  CHECK(da[4] == doctest::Approx(0.25));
  CHECK(db[0] == doctest::Approx(8 * std::log(2.0)));
  CHECK(std::isnan(db[1]));
  CHECK(db[2] == 0);
  CHECK(db[3] == 0);
  CHECK(close(pow(tensor({2, 3}, {2, 1}), tensor({0, 1, 2}, {3})), {2, 3}, {1, 2, 4, 1, 3, 9}, 1e-6));
  CHECK_THROWS_AS(pow(tensor({2}, {1}), tensor({2}, {1}, f64)), DTypeError);
}

TEST_CASE("scaled_dot_product_attention with a mask or dropout: the fused kernel's values where they meet") {
  Generator gen(5);
  const TensorOptions f64{.dtype = DType::Float64};
  const Tensor q = randn({1, 2, 4, 3}, f64, gen), k = randn({1, 2, 4, 3}, f64, gen), v = randn({1, 2, 4, 3}, f64, gen);
  const Tensor everywhere = ge(ones({4, 4}, f64), zeros({}, f64));  // bool, all true
  const Tensor causal_mask = le(arange(4, f64).unsqueeze(0), arange(4, f64).unsqueeze(1));
  CHECK(relative_error(scaled_dot_product_attention(q, k, v, {.attn_mask = everywhere}),
                       scaled_dot_product_attention(q, k, v, /*causal=*/false)) < 1e-14);
  CHECK(relative_error(scaled_dot_product_attention(q, k, v, {.attn_mask = causal_mask}),
                       scaled_dot_product_attention(q, k, v, /*causal=*/true)) < 1e-14);
  // An additive mask of 0 / -inf is the bool mask.
  const Tensor additive = where(causal_mask, zeros({}, f64), scalar_tensor(-INFINITY, f64));
  CHECK(relative_error(scaled_dot_product_attention(q, k, v, {.attn_mask = additive}),
                       scaled_dot_product_attention(q, k, v, /*causal=*/true)) < 1e-14);
  // A query allowed no key gets zeros, and no NaN reaches the gradients.
  const Tensor qg = q.clone().requires_grad_(), kg = k.clone().requires_grad_();
  const Tensor first_row_blind = ne(arange(4, f64).unsqueeze(1), zeros({}, f64)).expand({4, 4});
  const Tensor out = scaled_dot_product_attention(qg, kg, v, {.attn_mask = first_row_blind});
  CHECK(values(abs(out.narrow(2, 0, 1)).sum()) == std::vector<double>{0});
  out.sum().backward();
  for (double g : values(qg.grad())) CHECK(std::isfinite(g));
  for (double g : values(kg.grad())) CHECK(std::isfinite(g));
  // Dropout zeroes weights and scales the rest by 1 / (1 - p): with v = 1 each output is in [0, 1 / (1 - p)].
  Generator drop(9);
  const Tensor dropped = scaled_dot_product_attention(q, k, ones({1, 2, 4, 1}, f64), {.dropout_p = 0.5, .generator = &drop});
  const std::vector<double> d = values(dropped);
  CHECK(std::any_of(d.begin(), d.end(), [](double x) { return std::abs(x - 1) > 1e-9; }));
  for (double x : d) CHECK((x >= -1e-12 && x <= 2 + 1e-12));
  CHECK_THROWS_AS(scaled_dot_product_attention(q, k, v, {.attn_mask = everywhere, .is_causal = true}), Error);
  CHECK_THROWS_AS(scaled_dot_product_attention(q, k, v, {.dropout_p = 1.0}), Error);
  CHECK_THROWS_AS(scaled_dot_product_attention(q, k, v, {.attn_mask = ones({4, 4})}), DTypeError);
  CHECK_THROWS_AS(scaled_dot_product_attention(q, k.narrow(3, 0, 2), v, {.attn_mask = everywhere}), ShapeError);
}
