// The collectives nn/distributed.cpp needs for GPU tensors, over NCCL, declared in the base layer so that the
// nn layer does not include the backend (docs/architecture.md). cuda/nccl.cpp defines them (CMake option
// HCGRAD_NCCL, on when the CUDA toolkit's NCCL is found); a build without NCCL defines them in
// cuda/nccl_unavailable.cpp, where everything but nccl_built() and nccl_joined() throws a DeviceError that
// says why.
//
// MPI starts the processes and NCCL moves the GPU data. One communicator per GPU: rank 0 makes an id, MPI
// broadcasts it, every rank joins with it, then collectives run on that GPU's communicator.
//
//   std::string id = rank == 0 ? cuda::nccl_unique_id() : std::string(cuda::kNcclUniqueIdBytes, '\0');
//   MPI_Bcast(id.data(), int(id.size()), MPI_BYTE, 0, MPI_COMM_WORLD);
//   cuda::nccl_join(id, rank, world_size, device);
//   cuda::nccl_all_reduce(grad, cuda::NcclOp::Sum);
#pragma once

#include <cstddef>
#include <string>

namespace hcgrad {
class Tensor;
}

namespace hcgrad::cuda {

constexpr size_t kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
// The same three as nn::distributed::ReduceOp, in the same order.
enum class NcclOp { Sum, Max, Min };

// Whether this build has NCCL (HCGRAD_NCCL).
bool nccl_built();
// A new communicator id (ncclGetUniqueId), kNcclUniqueIdBytes bytes. One rank makes it and sends it to the
// others, which all pass the same id to nccl_join.
std::string nccl_unique_id();
// Makes this process rank `rank` of `world_size` in the communicator `unique_id` names, on GPU `device`
// (ncclCommInitRank; blocks until every rank has joined). Once per device per process: a second call for a
// device that has joined throws. The communicator lasts as long as the process.
void nccl_join(const std::string& unique_id, int rank, int world_size, int device);
// Whether nccl_join has run for GPU `device` in this process (false for a device that does not exist).
bool nccl_joined(int device);

// The collectives take a contiguous float32 or float64 tensor on a GPU that has joined, run on that GPU's
// hcgrad stream (after the kernels that wrote it) and return when it is done. Every rank calls them in the
// same order with tensors of the same shape and dtype.
// t = op over all ranks of t, element by element, on every rank (ncclAllReduce in place).
void nccl_all_reduce(const Tensor& t, NcclOp op = NcclOp::Sum);
// t = root's t on every rank (ncclBroadcast in place).
void nccl_broadcast(const Tensor& t, int root = 0);

}  // namespace hcgrad::cuda
