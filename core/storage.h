// Storage: one reference-counted block of memory on one device. Tensors hold a shared_ptr to it, so a
// view (transpose, slice, reshape, detach) keeps the memory alive for as long as any view exists.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hcgrad/core/device.h"

namespace hcgrad {

class Storage {
 public:
  // Allocates `nbytes` uninitialised bytes on `device`, 64-byte aligned (one cache line, any SIMD width).
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Bumped by every in-place write (add_, copy_, ...). Autograd records it when a tensor is saved for
  // backward and refuses to use the tensor if the number changed: the gradient would silently be wrong.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  uint64_t version_ = 0;
};

}  // namespace hcgrad
