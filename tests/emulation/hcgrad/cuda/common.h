// Stands in for cuda/common.h when the CUDA kernels are compiled for the host emulation (the include path
// puts this directory first). The rewritten kernels live in namespace hcgrad::emulated_cuda.
#pragma once

#include "hcgrad/core/error.h"
#include "hcgrad/core/tensor.h"
#include "hcgrad/cuda/index_fault.h"
#include "cuda_emulation.h"

namespace hcgrad::emulated_cuda {

using cuda::IndexFault;
using cuda::IndexFaultKernel;
// The emulated kernels' fault record: ordinary memory, read by the tests directly.
inline IndexFault* index_fault() {
  static IndexFault record;
  return &record;
}

inline cudaStream_t stream_for(const Tensor&) { return 0; }
inline cudaStream_t stream_for(int) { return 0; }

template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

}  // namespace hcgrad::emulated_cuda

#define HC_CUDA_CHECK(op, call)                                                                 \
  do {                                                                                          \
    if ((call) != cudaSuccess) throw ::hcgrad::DeviceError(std::string(op) + ": emulated CUDA call failed"); \
  } while (0)
#define HC_CUDA_LAUNCH_CHECK(op) HC_CUDA_CHECK(op, cudaGetLastError())
