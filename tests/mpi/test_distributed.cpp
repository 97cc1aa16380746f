// nn::distributed across processes: CTest runs this under `mpirun -np 2` (tests/CMakeLists.txt), each rank one
// thread. Every rank runs every case in the same order, so the collectives meet; the checks that refuse a
// tensor do so before any MPI call. (A process alone: tests/test_distributed.cpp.)
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <vector>

#include "hcgrad/hcgrad.h"

using namespace hcgrad;
namespace dist = hcgrad::nn::distributed;

namespace {

// t[i] = (rank + 1) · i + 0.5: exact in float32 for these sizes, and different on every rank.
Tensor rank_values(int64_t n, DType dtype, int rank) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = (rank + 1) * static_cast<double>(i) + 0.5;
  return from_vector(v, {n}).to(dtype);
}

std::vector<double> values_of(const Tensor& t) {
  const Tensor d = t.to(DType::Float64).contiguous();
  return std::vector<double>(d.data<double>(), d.data<double>() + d.numel());
}

}  // namespace

TEST_CASE("distributed: ranks and world") {
  CHECK(dist::built_with_mpi());
  CHECK(dist::initialized());
  CHECK(dist::world_size() == 2);
  CHECK(dist::rank() >= 0);
  CHECK(dist::rank() < dist::world_size());
}

TEST_CASE("distributed: all_reduce sums, maxima and minima over the ranks, float32 and float64, odd sizes") {
  const int ranks = dist::world_size(), me = dist::rank();
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const int64_t n : {1, 7, 1000, 0}) {
      CAPTURE(dtype);
      CAPTURE(n);
      Tensor sum = rank_values(n, dtype, me), most = rank_values(n, dtype, me), least = rank_values(n, dtype, me);
      dist::all_reduce(sum);
      dist::all_reduce(most, dist::ReduceOp::Max);
      dist::all_reduce(least, dist::ReduceOp::Min);
      const std::vector<double> s = values_of(sum), hi = values_of(most), lo = values_of(least);
      REQUIRE(s.size() == static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        double expected = 0;  // Σ_r ((r + 1) i + 0.5)
        for (int r = 0; r < ranks; ++r) expected += (r + 1) * static_cast<double>(i) + 0.5;
        CHECK(s[i] == expected);
        CHECK(hi[i] == ranks * static_cast<double>(i) + 0.5);
        CHECK(lo[i] == static_cast<double>(i) + 0.5);
      }
    }
}

TEST_CASE("distributed: broadcast gives every rank the root's values") {
  for (int root = 0; root < dist::world_size(); ++root)
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      CAPTURE(root);
      Tensor t = rank_values(13, dtype, dist::rank());
      dist::broadcast(t, root);
      CHECK(values_of(t) == values_of(rank_values(13, dtype, root)));
    }
  dist::barrier();
}

TEST_CASE("distributed: tensors MPI cannot read in place are refused on every rank, naming the op") {
  const Tensor wide = zeros({4, 6});
  CHECK_THROWS_WITH_AS(dist::all_reduce(wide.t()), doctest::Contains("all_reduce: tensor [6,4] must be contiguous"),
                       Error);
  CHECK_THROWS_WITH_AS(dist::broadcast(zeros({3}), 2), doctest::Contains("root 2 is not a rank of 2"), Error);
  CHECK_THROWS_AS(dist::all_reduce(zeros({3}, {.dtype = DType::Int64})), Error);
  dist::barrier();  // every rank got here: no collective was left half-entered
}

TEST_CASE("distributed: broadcast_parameters starts every rank from rank 0's weights") {
  Generator gen(100 + dist::rank());  // a different init on every rank
  nn::Linear layer(5, 3, gen);
  dist::broadcast_parameters(layer);
  Generator gen0(100);  // rank 0's init
  const nn::Linear reference(5, 3, gen0);
  const std::vector<Tensor> got = layer.parameters(), want = reference.parameters();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(values_of(got[i]) == values_of(want[i]));
}

TEST_CASE("distributed: average_gradients leaves every rank the mean gradient, in one buffer per dtype") {
  const int ranks = dist::world_size(), me = dist::rank();
  Tensor a = zeros({2, 3}).requires_grad_(), b = zeros({4}, {.dtype = DType::Float64}).requires_grad_();
  Tensor unused = zeros({2}).requires_grad_();  // no gradient on any rank: stays without one
  a.set_grad(rank_values(6, DType::Float32, me).reshape({2, 3}));
  b.set_grad(rank_values(4, DType::Float64, me));
  dist::average_gradients({a, unused, b});
  CHECK_FALSE(unused.grad().defined());
  for (const Tensor* p : {&a, &b}) {
    const std::vector<double> got = values_of(p->grad());
    for (size_t i = 0; i < got.size(); ++i) {
      double mean = 0;
      for (int r = 0; r < ranks; ++r) mean += ((r + 1) * static_cast<double>(i) + 0.5) / ranks;
      CHECK(got[i] == doctest::Approx(mean).epsilon(1e-7));
    }
  }
}

namespace {

// A three-layer perceptron's loss on rows that differ by rank, so that every rank has other gradients.
struct SmallNet {
  Generator gen{7};  // the same weights on every rank
  nn::Linear first{6, 16, gen}, second{16, 16, gen}, third{16, 2, gen};
  std::vector<Tensor> parameters() const {
    std::vector<Tensor> all;
    for (const nn::Linear* layer : {&first, &second, &third})
      for (const Tensor& p : layer->parameters()) all.push_back(p);
    return all;
  }
  Tensor loss(int rank, int step) const {
    Generator data(1000 + 10 * rank + step);
    const Tensor x = randn({5, 6}, {}, data);
    return pow(third.forward(tanh(second.forward(tanh(first.forward(x))))), 2.0).mean();
  }
};

// Each gradient's mean over the ranks, by the plain collective.
std::vector<std::vector<double>> mean_gradients(const std::vector<Tensor>& params) {
  std::vector<std::vector<double>> means;
  for (const Tensor& p : params) {
    Tensor sum = p.grad().clone();
    dist::all_reduce(sum);
    means.push_back(values_of(sum * (1.0 / dist::world_size())));
  }
  return means;
}

}  // namespace

TEST_CASE("distributed: GradientAverager, buckets overlapped with backward or not, leaves the mean gradients") {
  for (const bool overlap : {true, false}) {
    CAPTURE(overlap);
    SmallNet reference, net;
    // 300 bytes: the weights (96, 256, 32 floats) alone, biases with their neighbours: several buckets
    dist::GradientAverager averager(net.parameters(), {.bucket_bytes = 300, .overlap = overlap});
    CHECK(averager.bucket_count() >= 3);
    for (int step = 0; step < 3; ++step) {  // the buffers are reused from step to step
      for (const SmallNet* n : {&reference, &net})
        for (const Tensor& p : n->parameters()) p.zero_grad();
      reference.loss(dist::rank(), step).backward();
      const std::vector<std::vector<double>> want = mean_gradients(reference.parameters());
      net.loss(dist::rank(), step).backward();
      averager.finish();
      const std::vector<Tensor> got = net.parameters();
      for (size_t i = 0; i < got.size(); ++i) {
        const std::vector<double> g = values_of(got[i].grad());
        REQUIRE(g.size() == want[i].size());
        for (size_t k = 0; k < g.size(); ++k) CHECK(g[k] == doctest::Approx(want[i][k]).epsilon(1e-6));
      }
    }
  }
}

TEST_CASE("distributed: GradientAverager: a gradient one rank lacks counts as zeros there and stays undefined") {
  Tensor shared = zeros({3}).requires_grad_(), mine = zeros({2}).requires_grad_();
  dist::GradientAverager averager({shared, mine}, {.bucket_bytes = 8});  // one bucket each
  Tensor loss = pow(shared + 1.0, 2.0).sum();
  if (dist::rank() == 0) loss = loss + (mine * 4.0).sum();  // only rank 0 uses `mine`
  loss.backward();
  averager.finish();
  CHECK(values_of(shared.grad()) == std::vector<double>{2, 2, 2});  // the same on every rank
  if (dist::rank() == 0)
    CHECK(values_of(mine.grad()) == std::vector<double>(2, 4.0 / dist::world_size()));
  else
    CHECK_FALSE(mine.grad().defined());
}

TEST_CASE("distributed: GradientAverager with overlap refuses a second backward before finish()") {
  Tensor w = ones({4}).requires_grad_();
  dist::GradientAverager averager({w});
  (w * 2.0).sum().backward();
  CHECK_THROWS_WITH_AS((w * 2.0).sum().backward(), doctest::Contains("second gradient before finish()"), Error);
  averager.finish();  // the first pass's all-reduce, which had started, completes on every rank
  CHECK(values_of(w.grad()) == std::vector<double>(4, 2.0));  // the first pass's mean; the refused one is dropped
}

TEST_CASE("distributed: GPU tensors all-reduce and broadcast (NCCL), one GPU per rank, and average gradients") {
  if (!cuda::is_available() || cuda::device_count() < dist::world_size()) {
    if (dist::rank() == 0)
      std::printf("skipped: GPU collectives need a GPU per rank (%d here%s%s)\n", cuda::device_count(),
                  cuda::is_available() ? "" : ": ", cuda::unavailable_reason().c_str());
    return;
  }
  const Device gpu = Device::cuda(dist::local_rank());
  const int ranks = dist::world_size(), me = dist::rank();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype);
    const Tensor sum = rank_values(1001, dtype, me).to(gpu), most = rank_values(1001, dtype, me).to(gpu);
    dist::all_reduce(sum);
    dist::all_reduce(most, dist::ReduceOp::Max);
    const std::vector<double> s = values_of(sum), hi = values_of(most);
    for (int64_t i = 0; i < 1001; ++i) {
      double expected = 0;
      for (int r = 0; r < ranks; ++r) expected += (r + 1) * static_cast<double>(i) + 0.5;
      CHECK(s[i] == expected);
      CHECK(hi[i] == ranks * static_cast<double>(i) + 0.5);
    }
    const Tensor t = rank_values(13, dtype, me).to(gpu);
    dist::broadcast(t, 1);
    CHECK(values_of(t) == values_of(rank_values(13, dtype, 1)));
  }
  Tensor w = rank_values(6, DType::Float32, 0).to(gpu).requires_grad_();
  dist::GradientAverager averager({w}, {.bucket_bytes = 8});
  (w * static_cast<double>(me + 1)).sum().backward();
  averager.finish();
  CHECK(values_of(w.grad()) == std::vector<double>(6, (ranks + 1) / 2.0));  // mean of 1, 2, ..., ranks
}

int main(int argc, char** argv) {
  dist::init(&argc, &argv);
  set_num_threads(1);  // two ranks on two cores
  doctest::Context context(argc, argv);
  const int failed = context.run();
  std::printf("rank %d of %d: %s\n", dist::rank(), dist::world_size(), failed ? "FAILED" : "passed");
  return failed;
}
