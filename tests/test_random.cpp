// Seeded generation: the same seed gives the same numbers, on any thread count.
#include <cmath>

#include "helpers.h"

using namespace hctest;

TEST_CASE("philox4x32-10 matches the Random123 known-answer vector") {
  // Random123 kat_vectors: philox4x32 10 rounds, counter 0, key 0.
  auto w = philox4x32(0, 0);
  CHECK(w[0] == 0x6627e8d5u);
  CHECK(w[1] == 0xe169c58du);
  CHECK(w[2] == 0xbc57ac4cu);
  CHECK(w[3] == 0x9b00dbd8u);
}

TEST_CASE("same seed, same numbers, the offset advances") {
  Generator g1(7), g2(7);
  Tensor a = randn({100}, {}, g1);
  Tensor b = randn({100}, {}, g2);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  Tensor c = randn({100}, {}, g1);  // the next draw differs
  CHECK(a.to_vector<float>() != c.to_vector<float>());
  CHECK(g1.offset() == 200);
  g2.manual_seed(7);
  CHECK(randn({100}, {}, g2).to_vector<float>() == a.to_vector<float>());
  // Restoring (seed, offset) resumes the stream, as a checkpoint will.
  Generator g3(7);
  g3.set_offset(100);
  CHECK(randn({100}, {}, g3).to_vector<float>() == c.to_vector<float>());
}

TEST_CASE("random numbers do not depend on the thread count") {
  std::vector<float> reference;
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    Generator gen(123);
    std::vector<float> v = randn({300000}, {}, gen).to_vector<float>();  // large: filled in parallel
    if (reference.empty()) reference = v;
    CHECK(v == reference);
  }
  set_num_threads(0);
}

TEST_CASE("rand, randn and randint have the right distributions") {
  Generator gen(1);
  std::vector<double> u = values(rand({100000}, {.dtype = DType::Float64}, gen));
  double mean = 0, lo = 1, hi = 0;
  for (double v : u) {
    mean += v / u.size();
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  CHECK(mean == doctest::Approx(0.5).epsilon(0.01));
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  std::vector<double> z = values(randn({100000}, {.dtype = DType::Float64}, gen));
  double m = 0, var = 0;
  for (double v : z) m += v / z.size();
  for (double v : z) var += (v - m) * (v - m) / z.size();
  CHECK(std::abs(m) < 0.02);
  CHECK(var == doctest::Approx(1.0).epsilon(0.02));
  std::vector<double> k = values(randint(3, 7, {10000}, {.dtype = DType::Int64}, gen));
  std::vector<int> counts(4, 0);
  for (double v : k) {
    REQUIRE(v >= 3);
    REQUIRE(v < 7);
    counts[static_cast<int>(v) - 3]++;
  }
  for (int c : counts) CHECK(c > 2300);
}
