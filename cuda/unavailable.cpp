// cuda/runtime.h and core/device_memory.h in a build without the CUDA backend (HCGRAD_CUDA=OFF): there is
// no GPU to use, and anything that would put a tensor on one says so.
#include "hcgrad/core/device_memory.h"
#include "hcgrad/core/error.h"
#include "hcgrad/core/tensor.h"
#include "hcgrad/cuda/runtime.h"

namespace hcgrad::cuda {

namespace {
constexpr const char* kReason = "hcgrad was built without CUDA (HCGRAD_CUDA=OFF, or no nvcc at configure time)";
}

bool is_available() { return false; }
int device_count() { return 0; }
std::string unavailable_reason() { return kReason; }
std::string device_name(int) { return "none"; }
void synchronize() {}
void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }
MemoryStats memory_stats(int) { return {}; }
void empty_cache() {}

void* allocate(size_t nbytes, int device) {
  throw DeviceError(detail::concat("storage: cannot allocate ", nbytes, " bytes on cuda:", device, ": ", kReason));
}
void release(void*, size_t, int) {}
void copy_between_devices(const Tensor& dst, const Tensor& src) {
  throw DeviceError(detail::concat("to: cannot copy ", src.shape(), " from ", src.device(), " to ", dst.device(), ": ",
                                   kReason));
}

}  // namespace hcgrad::cuda
