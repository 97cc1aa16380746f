// What every CUDA file of hcgrad shares: checked CUDA calls, the stream kernels run on, device pointers.
// Host C++ (compiled by nvcc or g++); the device-side helpers are in cuda/launch.cuh.
#pragma once

#include <cuda_runtime.h>

#include "hcgrad/core/error.h"
#include "hcgrad/core/tensor.h"

namespace hcgrad::cuda {

// Throws a DeviceError: "<op>: CUDA error: <CUDA's message> (<call>, cuda/<file>:<line>)".
[[noreturn]] void throw_error(const char* op, cudaError_t status, const char* call, const char* file, int line);

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

// After a kernel<<<...>>> launch: a bad launch configuration (or a fault of an earlier kernel, since
// kernels run asynchronously) is reported here, naming the op.
#define HC_CUDA_LAUNCH_CHECK(op) HC_CUDA_CHECK(op, cudaGetLastError())
