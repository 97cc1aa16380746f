// The device memory Storage needs from a GPU backend, declared in the base layer so that core/storage.cpp
// does not include the backend (docs/architecture.md). The CUDA backend defines these in
// cuda/allocator.cpp (its caching allocator); a build without CUDA defines them in cuda/unavailable.cpp,
// where allocating throws a DeviceError that says why.
#pragma once

#include <cstddef>

namespace hcgrad::cuda {

// `nbytes` (> 0) bytes on GPU `device`, from the cache when a freed block fits.
void* allocate(size_t nbytes, int device);
// Gives a block back to the cache; `nbytes` and `device` as allocated.
void release(void* ptr, size_t nbytes, int device);

}  // namespace hcgrad::cuda
