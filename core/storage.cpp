#include "core/storage.h"

#include <new>

#include "core/error.h"

namespace hcgrad {

namespace {
constexpr std::align_val_t kAlignment{64};
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  HC_CHECK(device.is_cpu(), DeviceError, "storage: device ", device, " is not available in this build");
  if (nbytes > 0) data_ = ::operator new(nbytes, kAlignment);
}

Storage::~Storage() {
  if (data_) ::operator delete(data_, kAlignment);
}

}  // namespace hcgrad
