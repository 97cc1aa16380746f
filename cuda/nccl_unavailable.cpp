// core/gpu_collectives.h in a build without NCCL (HCGRAD_NCCL=OFF, no CUDA backend, or no NCCL found at
// configure time): no GPU communicator can be made, and anything that would need one says so.
#include "hcgrad/core/error.h"
#include "hcgrad/core/gpu_collectives.h"

namespace hcgrad::cuda {

namespace {
constexpr const char* kReason =
    "hcgrad was built without NCCL (HCGRAD_NCCL=OFF or HCGRAD_CUDA=OFF, or no nccl.h and libnccl at configure "
    "time: NCCL comes with the CUDA toolkit, or install NVIDIA's libnccl-dev, then configure again)";
}

bool nccl_built() { return false; }
std::string nccl_unique_id() { throw DeviceError(detail::concat("nccl_unique_id: ", kReason)); }
void nccl_join(const std::string&, int, int, int device) {
  throw DeviceError(detail::concat("nccl_join: cannot join on cuda:", device, ": ", kReason));
}
bool nccl_joined(int) { return false; }
void nccl_all_reduce(const Tensor&, NcclOp) { throw DeviceError(detail::concat("nccl_all_reduce: ", kReason)); }
void nccl_broadcast(const Tensor&, int) { throw DeviceError(detail::concat("nccl_broadcast: ", kReason)); }

}  // namespace hcgrad::cuda
