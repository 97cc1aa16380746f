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
