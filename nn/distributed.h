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
// dtype. They take contiguous CPU float32 / float64 tensors (GPU tensors: NCCL, not built yet). An MPI error
// is raised as hcgrad::Error naming the operation and this rank.
#pragma once

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
// Each parameter's gradient = its mean over the ranks, in one all-reduce per dtype over a flat buffer of all of
// them (in `params` order, which must be the same on every rank). A parameter without a gradient on this rank
// counts as zeros there and stays without one.
void average_gradients(const std::vector<Tensor>& params);

}  // namespace hcgrad::nn::distributed
