// nn::distributed in a process that MPI did not start and that never called init(): a world of one, where
// every collective leaves its tensor as it is, and the same refusals as across processes
// (tests/mpi/test_distributed.cpp runs the collectives under mpirun).
#include "helpers.h"

#include "hcgrad/nn/distributed.h"

using namespace hctest;
namespace dist = hcgrad::nn::distributed;

TEST_CASE("distributed: a process alone is rank 0 of a world of 1, and collectives keep its values") {
  CHECK_FALSE(dist::initialized());
  CHECK(dist::rank() == 0);
  CHECK(dist::world_size() == 1);
  const Tensor t = from_vector(std::vector<double>{1.5, -2, 3}, {3});
  dist::all_reduce(t);
  dist::all_reduce(t, dist::ReduceOp::Max);
  dist::broadcast(t, 0);
  dist::barrier();
  CHECK(values(t) == std::vector<double>{1.5, -2, 3});
}

TEST_CASE("distributed: collectives refuse what MPI could not read, also in a world of one") {
  CHECK_THROWS_WITH_AS(dist::all_reduce(zeros({4, 6}).t()), doctest::Contains("must be contiguous"), Error);
  CHECK_THROWS_WITH_AS(dist::broadcast(zeros({3}), 1), doctest::Contains("root 1 is not a rank of 1"), Error);
  CHECK_THROWS_WITH_AS(dist::all_reduce(zeros({3}, {.dtype = DType::Int64})), doctest::Contains("all_reduce"),
                       Error);
}

TEST_CASE("distributed: alone, GradientAverager and average_gradients leave the gradients as backward made them") {
  Tensor w = from_vector(std::vector<double>{1, 2}, {2}).requires_grad_();
  dist::GradientAverager averager({w});
  CHECK(averager.bucket_count() == 0);  // no buckets, no hooks
  (w * w).sum().backward();
  averager.finish();
  dist::average_gradients({w});
  CHECK(values(w.grad()) == std::vector<double>{2, 4});
  CHECK_THROWS_WITH_AS(dist::GradientAverager({w}, {.bucket_bytes = 0}), doctest::Contains("bucket_bytes"), Error);
}

TEST_CASE("autograd: a post-accumulate hook sees the leaf once per backward, its gradient final") {
  Tensor w = from_vector(std::vector<double>{3}, {1}).requires_grad_();
  std::shared_ptr<autograd::Node> sink = autograd::gradient_edge(w);  // kept: it holds the hook
  std::vector<double> seen;
  dynamic_cast<autograd::AccumulateGrad&>(*sink).add_post_hook(
      [&](const Tensor& leaf) { seen.push_back(leaf.grad().item()); });
  (w * w + w * 5.0).sum().backward();  // two uses of w: one call, with their sum
  (w * 2.0).sum().backward();          // a second pass accumulates
  CHECK(seen == std::vector<double>{11, 13});
}
