// The collectives of core/gpu_collectives.h over NCCL, built when CMake finds it (HCGRAD_NCCL; NCCL comes
// with the CUDA toolkit). One communicator per GPU, made by nccl_join.
//
// The collectives run on the device's hcgrad stream (common.h), so NCCL reads the tensor after the kernels
// that wrote it without an event, and they wait for it before returning: like their MPI halves in
// nn/distributed.cpp they are blocking, and the caller may read the tensor, free it or call MPI at once.
#include <cstring>
#include <mutex>
#include <vector>

#include <nccl.h>

#include "hcgrad/core/gpu_collectives.h"
#include "hcgrad/cuda/common.h"
#include "hcgrad/cuda/runtime.h"

namespace hcgrad::cuda {

namespace {

static_assert(sizeof(ncclUniqueId) == kNcclUniqueIdBytes);

struct Communicator {
  ncclComm_t comm = nullptr;  // set once nccl_join has succeeded
  bool joining = false;       // nccl_join is under way (it blocks until every rank has joined)
  int rank = 0, world_size = 0;
};

// One per device, never destroyed: collectives may run until the end of main(), and ncclCommDestroy in a
// static destructor could run after the CUDA runtime has shut down. The process's exit frees the GPU's side.
struct Communicators {
  std::mutex mutex;
  std::vector<Communicator> devices;

  // The caller holds the lock; `device` is a valid index.
  Communicator& of(int device) {
    if (devices.empty()) devices.resize(static_cast<size_t>(device_count()));
    return devices[static_cast<size_t>(device)];
  }
};

Communicators& communicators() {
  static Communicators* instance = new Communicators;
  return *instance;
}

// A failed NCCL call as a DeviceError naming the op, where it ran, NCCL's words and its last message, which
// says more ("unhandled system error" alone says little).
void check_nccl(ncclResult_t status, const char* op, const char* call, const std::string& where = "") {
  if (status == ncclSuccess) return;
  const char* last = ncclGetLastError(nullptr);
  throw DeviceError(detail::concat(op, ": NCCL error", where, ": ", ncclGetErrorString(status), " (", call,
                                   last && *last ? std::string("; ") + last : "", ")"));
}

std::string where(int rank, int world_size, int device) {
  return detail::concat(" on rank ", rank, " of ", world_size, " (cuda:", device, ")");
}

// t's communicator, after the checks every collective needs.
Communicator joined(const char* op, const Tensor& t) {
  HC_CHECK(t.defined(), Error, op, ": undefined tensor");
  HC_CHECK(t.device().is_cuda(), DeviceError, op, ": tensor ", t.shape(), " is on ", t.device(),
           "; NCCL takes GPU tensors");
  HC_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, DTypeError, op, ": tensor has dtype ",
           t.dtype(), "; float32 or float64 only");
  HC_CHECK(t.is_contiguous(), Error, op, ": tensor ", t.shape(),
           " must be contiguous (NCCL reads its memory as one block)");
  std::lock_guard<std::mutex> lock(communicators().mutex);
  const Communicator c = communicators().of(t.device().index);
  HC_CHECK(c.comm, DeviceError, op, ": ", t.device(), " has no NCCL communicator (nccl_join first)");
  return c;
}

ncclDataType_t nccl_type(const Tensor& t) { return t.dtype() == DType::Float64 ? ncclFloat64 : ncclFloat32; }

ncclRedOp_t nccl_op(NcclOp op) {
  switch (op) {
    case NcclOp::Max: return ncclMax;
    case NcclOp::Min: return ncclMin;
    default: return ncclSum;
  }
}

}  // namespace

bool nccl_built() { return true; }

std::string nccl_unique_id() {
  ncclUniqueId id;
  check_nccl(ncclGetUniqueId(&id), "nccl_unique_id", "ncclGetUniqueId");
  return std::string(id.internal, sizeof id.internal);
}

void nccl_join(const std::string& unique_id, int rank, int world_size, int device) {
  HC_CHECK(unique_id.size() == kNcclUniqueIdBytes, Error, "nccl_join: the id has ", unique_id.size(),
           " bytes, not ", kNcclUniqueIdBytes, " (pass nccl_unique_id()'s string as it is)");
  HC_CHECK(rank >= 0 && rank < world_size, Error, "nccl_join: rank ", rank, " is not in a world of ", world_size);
  stream_for(device);  // checks the index and makes the device current, which ncclCommInitRank joins on
  Communicators& all = communicators();
  {
    std::lock_guard<std::mutex> lock(all.mutex);
    Communicator& c = all.of(device);
    HC_CHECK(!c.comm && !c.joining, DeviceError, "nccl_join: cuda:", device,
             " has already joined a communicator; once per device per process");
    c.joining = true;
  }
  // Outside the lock: it waits for the other ranks, which in one process may be other threads joining.
  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), kNcclUniqueIdBytes);
  ncclComm_t comm = nullptr;
  const ncclResult_t status = ncclCommInitRank(&comm, world_size, id, rank);
  std::lock_guard<std::mutex> lock(all.mutex);
  Communicator& c = all.of(device);
  c.joining = false;
  check_nccl(status, "nccl_join", "ncclCommInitRank", where(rank, world_size, device));
  c.comm = comm;
  c.rank = rank;
  c.world_size = world_size;
}

bool nccl_joined(int device) {
  if (device < 0 || device >= device_count()) return false;
  std::lock_guard<std::mutex> lock(communicators().mutex);
  return communicators().of(device).comm != nullptr;
}

void nccl_all_reduce(const Tensor& t, NcclOp op) {
  const Communicator c = joined("nccl_all_reduce", t);
  if (t.numel() == 0) return;
  cudaStream_t stream = stream_for(t);
  void* data = t.raw_data();
  check_nccl(ncclAllReduce(data, data, static_cast<size_t>(t.numel()), nccl_type(t), nccl_op(op), c.comm, stream),
             "nccl_all_reduce", "ncclAllReduce", where(c.rank, c.world_size, t.device().index));
  HC_CUDA_CHECK("nccl_all_reduce", cudaStreamSynchronize(stream));
}

void nccl_broadcast(const Tensor& t, int root) {
  const Communicator c = joined("nccl_broadcast", t);
  HC_CHECK(root >= 0 && root < c.world_size, Error, "nccl_broadcast: root ", root, " is not a rank of ",
           c.world_size);
  if (t.numel() == 0) return;
  cudaStream_t stream = stream_for(t);
  void* data = t.raw_data();
  check_nccl(ncclBroadcast(data, data, static_cast<size_t>(t.numel()), nccl_type(t), root, c.comm, stream),
             "nccl_broadcast", "ncclBroadcast", where(c.rank, c.world_size, t.device().index));
  HC_CUDA_CHECK("nccl_broadcast", cudaStreamSynchronize(stream));
}

}  // namespace hcgrad::cuda
