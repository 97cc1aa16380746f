// Several processes training one model: the collective operations of data-parallel training over MPI, as
// llm.c and PyTorch's DDP use them. MPI launches the processes (`mpirun -np N program ...`); every process is a
// rank 0..N-1 of one world. hcgrad calls Open MPI (CMake option HCGRAD_MPI, on when libopenmpi-dev is found);
// without it, and in a process not started by mpirun, the world is this process alone: rank 0 of 1, and
// every collective leaves its tensor as it is.
//
//   nn::distributed::init(&argc, &argv);          // once, first thing in main
//   nn::distributed::broadcast(parameter, 0);     // every rank starts from rank 0's weights
//   nn::distributed::all_reduce(grad);            // sum over ranks, in place (divide by world_size() to average)
//
// Data-parallel training (PyTorch's DDP, llm.c's multi-process training) from these: broadcast_parameters()
// once, then after every backward average_gradients() before clipping and the optimizer step, so every
// rank takes the same step from the gradient of the whole global batch.
//
// Collectives are blocking and every rank must call them in the same order with tensors of the same shape and
// dtype. They take contiguous float32 / float64 tensors: on the CPU over MPI, on a GPU over NCCL (CMake option
// HCGRAD_NCCL; each rank its own GPU, whose communicator is set up at its first collective), or through a copy
// in host memory in a CUDA build without NCCL. An MPI or NCCL error is raised as hcgrad::Error naming the
// operation and this rank.
#pragma once

#include <memory>
#include <vector>

#include "hcgrad/core/tensor.h"
#include "hcgrad/nn/module.h"

namespace hcgrad::nn::distributed {

// Whether this build has MPI (HCGRAD_MPI); without it every process is a world of one.
bool built_with_mpi();

// Whether this process was started by mpirun (Open MPI's or a PMI launcher's environment is set): a program
// that also runs alone calls init() only then.
bool launched_by_mpirun();
// Starts MPI (MPI_Init) once; later calls do nothing. argc / argv may be null. MPI_Finalize runs at exit.
void init(int* argc = nullptr, char*** argv = nullptr);
bool initialized();

int rank();        // this process's rank, 0 before init() or without MPI
int world_size();  // the number of ranks, 1 before init() or without MPI
// This rank's index among the ranks on its machine (0 alone): with one GPU per rank, its GPU is
// cuda:local_rank().
int local_rank();

enum class ReduceOp { Sum, Max, Min };

// t = op over all ranks of t, element by element, on every rank (MPI_Allreduce in place).
void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::Sum);
// t = root's t on every rank (MPI_Bcast).
void broadcast(const Tensor& t, int root = 0);
// Returns when every rank has called it.
void barrier();
// Ends every rank of the job with `code` (MPI_Abort) after a rank failed, so that the others do not wait in a
// collective for it; alone, exits this process with `code`.
[[noreturn]] void abort_all(int code);

// Every parameter of `module` = root's (the same starting weights on every rank).
void broadcast_parameters(const Module& module, int root = 0);

// Averages the gradients of `params` over the ranks after every backward, in buckets that start while
// backward is still running (PyTorch DDP's Reducer). The parameters are grouped, last first (the order in
// which backward finishes them), into buckets of about `bucket_bytes` of one dtype. Once every gradient of a
// bucket has been accumulated, a hook on the parameters (autograd::AccumulateGrad::add_post_hook) copies them
// into the bucket's flat buffer and starts its all-reduce (MPI_Iallreduce); the next layers' backward runs
// meanwhile. Buckets start in index order on every rank, as MPI requires of collectives. finish(), after
// backward and before clipping, starts what has not started, waits, and writes each mean into its gradient.
//
//   nn::distributed::GradientAverager averager(model.parameters());
//   loss.backward();      // buckets start during backward
//   averager.finish();    // every gradient is now the mean over the ranks
//
// `params` must be in the same order on every rank. A parameter without a gradient on this rank counts as
// zeros there and stays without one. Call finish() after every backward(): with overlap, a second backward
// before it is refused (accumulating over several backward passes needs overlap off). In a world of one,
// nothing happens.
struct GradientAveragerOptions {
  int64_t bucket_bytes = int64_t{1} << 20;  // 1 MiB: a few buckets for a small model, PyTorch's 25 MiB for big ones
  bool overlap = true;                      // false: nothing starts before finish() (debugging, accumulation)
};
class GradientAverager {
 public:
  explicit GradientAverager(std::vector<Tensor> params, GradientAveragerOptions options = {});
  ~GradientAverager();
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;
  void finish();
  int64_t bucket_count() const;

 private:
  struct State;                   // the buckets and their requests (nn/distributed.cpp)
  std::shared_ptr<State> state_;  // shared with the hooks (as weak_ptr), which may outlive this object
};

// Each parameter's gradient = its mean over the ranks, all at once after backward: GradientAverager with
// overlap off, for a loop that does not keep one.
void average_gradients(const std::vector<Tensor>& params);

}  // namespace hcgrad::nn::distributed
