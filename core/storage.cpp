#include "hcgrad/core/storage.h"

#include "hcgrad/core/cpu_allocator.h"
#include "hcgrad/core/device_memory.h"
#include "hcgrad/core/error.h"

namespace hcgrad {

// Memory comes from the caching allocators: core/cpu_allocator.cpp, and for GPUs the backend's allocate and
// release (core/device_memory.h: cuda/allocator.cpp, which throws a DeviceError when this machine has no such
// device, or cuda/unavailable.cpp in a build without CUDA).
Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (nbytes == 0) return;
  if (device.is_cuda()) data_ = cuda::allocate(nbytes, device.index);
  else data_ = cpu_allocate(nbytes);
}

Storage::~Storage() {
  if (!data_) return;
  if (device_.is_cuda()) cuda::release(data_, nbytes_, device_.index);
  else cpu_release(data_, nbytes_);
}

}  // namespace hcgrad
