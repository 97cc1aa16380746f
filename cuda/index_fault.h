// An index out of range met by a GPU kernel. A kernel cannot throw, and checking GPU indices on the host
// first would make every training step wait for the GPU (the ids and targets are copied back, after all the
// work queued before them). So the kernels check their indices themselves: the first bad one is recorded
// here, in host memory the GPU writes to directly (mapped), its access is skipped, and the host throws an
// IndexError the next time it waits for the GPU (a copy to the CPU, item(), cuda::synchronize()).
// Plain C++: included by cuda/common.h and by the host emulation's stand-in for it.
#pragma once

#include <cstdint>

namespace hcgrad::cuda {

enum class IndexFaultKernel : int { None = 0, IndexSelect, IndexAdd, CrossEntropy, GatherPlaces };

struct IndexFault {
  int recorded = 0;  // set to 1 (atomically) by the first kernel to find a bad index; the fields follow
  IndexFaultKernel kernel = IndexFaultKernel::None;
  int64_t index = 0;  // the bad index (a class target, for cross_entropy)
  int64_t limit = 0;  // the valid range is [0, limit)
};

}  // namespace hcgrad::cuda
