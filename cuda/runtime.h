// The CUDA runtime as the rest of hcgrad sees it: plain C++, no CUDA headers. It is the CUDA backend's
// public header, in the kernels layer (docs/architecture.md): the ops (Tensor::to), the umbrella header and
// programs include it; the base layer gets its device memory through core/device_memory.h instead.
// In a build without CUDA (HCGRAD_CUDA=OFF) these functions still exist (cuda/unavailable.cpp): nothing
// is available, and allocating or copying to a GPU throws a DeviceError that says why.
//
//   if (cuda::is_available()) model.to(Device::cuda());
//   else std::cout << "no GPU: " << cuda::unavailable_reason() << "\n";
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hcgrad {
class Tensor;
}

namespace hcgrad::cuda {

// True when this build has the CUDA backend and the machine has at least one GPU it can use.
bool is_available();
// GPUs visible to this process (0 without the backend, a driver or a device).
int device_count();
// Why is_available() is false, in words ("hcgrad was built without CUDA", "CUDA driver: no CUDA-capable
// device is detected", ...); empty when it is true.
std::string unavailable_reason();
// The GPU's name and compute capability, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".
std::string device_name(int device = 0);

// Kernels run asynchronously on one stream per device; this waits until all of them have finished
// (for timing; copies to the CPU, item() and to_vector() already wait).
void synchronize();

// Lets cuBLAS multiply float32 matrices in TF32 on tensor cores: several times faster, with a relative
// error around 1e-3 instead of 1e-6. Off by default, as in PyTorch (torch.backends.cuda.matmul.allow_tf32).
void set_allow_tf32(bool allow);
bool allow_tf32();

// The caching allocator's books for one device, in bytes (like torch.cuda.memory_stats).
struct MemoryStats {
  size_t allocated = 0;       // held by live tensors
  size_t peak_allocated = 0;  // the most ever held at once
  size_t cached = 0;          // freed by tensors, kept for reuse
  size_t reserved = 0;        // obtained from cudaMalloc: allocated + cached
  int64_t device_allocations = 0;  // cudaMalloc calls so far
};
MemoryStats memory_stats(int device = 0);
// Hands every cached block back to the driver (torch.cuda.empty_cache).
void empty_cache();

// ---- internals, for Tensor::to (Storage's allocate and release are in core/device_memory.h) ----
// Copies the bytes of `src` into `dst`: both contiguous, same shape and dtype, on any two devices.
void copy_between_devices(const Tensor& dst, const Tensor& src);

}  // namespace hcgrad::cuda
