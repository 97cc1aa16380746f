#include "core/storage.h"

#include <new>

#include "core/error.h"
#include "cuda/runtime.h"

namespace hcgrad {

namespace {
constexpr std::align_val_t kAlignment{64};
}

// GPU memory comes from the CUDA caching allocator (cuda/allocator.cpp), which throws a DeviceError when
// this build or this machine has no such device.
Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (nbytes == 0) return;
  if (device.is_cuda()) data_ = cuda::allocate(nbytes, device.index);
  else data_ = ::operator new(nbytes, kAlignment);
}

Storage::~Storage() {
  if (!data_) return;
  if (device_.is_cuda()) cuda::release(data_, nbytes_, device_.index);
  else ::operator delete(data_, kAlignment);
}

}  // namespace hcgrad
