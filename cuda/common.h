// What every CUDA file of hcgrad shares: checked CUDA calls, the stream kernels run on, device pointers.
// Host C++ (compiled by nvcc or g++); the device-side helpers are in cuda/launch.cuh.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "hcgrad/core/error.h"
#include "hcgrad/core/tensor.h"
#include "hcgrad/cuda/index_fault.h"

namespace hcgrad::cuda {

// Throws a DeviceError: "<op>: CUDA error: <CUDA's message> (<call>, cuda/<file>:<line>)".
[[noreturn]] void throw_error(const char* op, cudaError_t status, const char* call, const char* file, int line);

// After a kernel launch (HC_CUDA_LAUNCH_CHECK): throws for a bad launch configuration and, in the
// HCGRAD_CUDA_SYNC=1 mode, waits for the kernel and throws for a fault while it ran, naming its op.
void check_launch(const char* op, const char* file, int line);
// HCGRAD_CUDA_SYNC set (and not 0): every kernel is waited for and checked as it is launched. Slow; for finding
// the kernel behind an error (like CUDA_LAUNCH_BLOCKING=1, which also works).
bool sync_after_launch();
// The devices this process has used (has a stream on), in order.
std::vector<int> used_devices();

// Where the kernels record an index out of range (cuda/index_fault.h): one record for the process, in mapped
// host memory, as a pointer the kernels can write through.
IndexFault* index_fault();
// Throws the IndexError for a recorded fault, and clears the record; call after waiting for the GPU.
void check_index_fault();

// Makes GPU `device` current for this thread (a no-op when it already is) and returns its stream. Every
// kernel, copy and cuBLAS call of hcgrad goes on this one stream per device, so they run in the order they
// were issued and a freed block can be reused at once by the next kernel (see cuda/allocator.cpp).
cudaStream_t stream_for(int device);
// The same for the device `t` lives on.
inline cudaStream_t stream_for(const Tensor& t) { return stream_for(t.device().index); }

// Device pointer to element (0,...,0) of a GPU tensor (Tensor::data<T>() is for CPU tensors only).
template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

}  // namespace hcgrad::cuda

// HC_CUDA_CHECK("matmul", cudaMemsetAsync(...)): runs a CUDA runtime call and throws, naming the op, the
// call, the file and the line, unless it returned cudaSuccess.
#define HC_CUDA_CHECK(op, call)                                                                   \
  do {                                                                                            \
    const cudaError_t hc_status_ = (call);                                                        \
    if (hc_status_ != cudaSuccess) ::hcgrad::cuda::throw_error(op, hc_status_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel<<<...>>> launch: a bad launch configuration is reported here, naming the op; a fault while
// the kernel runs is reported by a later CUDA call, or here with HCGRAD_CUDA_SYNC=1 (cuda/runtime.cpp).
#define HC_CUDA_LAUNCH_CHECK(op) ::hcgrad::cuda::check_launch(op, __FILE__, __LINE__)
