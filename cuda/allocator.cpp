// The CUDA caching allocator. cudaMalloc and cudaFree are slow (a millisecond, and cudaFree waits for the
// whole GPU), and a training step frees and re-allocates the same few hundred sizes every time. So freed
// blocks are kept in per-device free lists keyed by their size class and handed out again; cudaMalloc
// runs only when no freed block of the class exists (in a steady training loop: never after step 1).
//
// Why reuse is safe without events: every kernel of hcgrad runs on its device's one stream (common.h). A
// block freed on the host while a queued kernel still reads it can only be given to a tensor whose
// kernels are queued after that one, so they run after it.
//
// Size classes: multiples of 512 bytes up to 1 MiB, multiples of 2 MiB above; at most 512 bytes or 2 MiB
// are wasted per block, and a [B, T, D] activation of any step size maps to the same class every step.
#include <mutex>
#include <unordered_map>
#include <vector>

#include "hcgrad/core/device_memory.h"
#include "hcgrad/cuda/common.h"
#include "hcgrad/cuda/runtime.h"

namespace hcgrad::cuda {

namespace {

constexpr size_t kSmallStep = 512, kLargeStep = size_t(2) << 20, kSmallLimit = size_t(1) << 20;

size_t size_class(size_t nbytes) {
  const size_t step = nbytes <= kSmallLimit ? kSmallStep : kLargeStep;
  return (nbytes + step - 1) / step * step;
}

struct DeviceCache {
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // size class -> blocks
  MemoryStats stats;
};

struct Cache {
  std::mutex mutex;
  std::vector<DeviceCache> devices;

  DeviceCache& of(int device) {
    if (devices.empty()) devices.resize(static_cast<size_t>(device_count()));
    return devices[static_cast<size_t>(device)];
  }
};

// Never destroyed: tensors in static objects may be freed after the end of main().
Cache& cache() {
  static Cache* instance = new Cache;
  return *instance;
}

// cudaFree of every cached block of one device (the caller holds the lock and has set the device); the first
// failure is thrown after every block has been tried (a sticky error of an earlier kernel fails them all).
void free_cached(DeviceCache& dev) {
  cudaError_t first_error = cudaSuccess;
  for (auto& [size, blocks] : dev.free_blocks)
    for (void* block : blocks) {
      const cudaError_t status = cudaFree(block);
      if (status != cudaSuccess && first_error == cudaSuccess) first_error = status;
      dev.stats.cached -= size;
      dev.stats.reserved -= size;
    }
  dev.free_blocks.clear();
  HC_CUDA_CHECK("empty_cache", first_error);
}

double mib(size_t bytes) { return static_cast<double>(bytes) / double(1 << 20); }

}  // namespace

void* allocate(size_t nbytes, int device) {
  HC_CHECK(is_available(), DeviceError, "storage: cannot allocate ", nbytes, " bytes on cuda:", device, ": ",
           unavailable_reason());
  stream_for(device);  // checks the index and makes the device current
  const size_t size = size_class(nbytes);
  std::lock_guard<std::mutex> lock(cache().mutex);
  DeviceCache& dev = cache().of(device);
  void* block = nullptr;
  if (auto found = dev.free_blocks.find(size); found != dev.free_blocks.end() && !found->second.empty()) {
    block = found->second.back();
    found->second.pop_back();
    dev.stats.cached -= size;
  } else {
    cudaError_t status = cudaMalloc(&block, size);
    if (status == cudaErrorMemoryAllocation) {  // out of memory: give the cache back and try once more
      cudaGetLastError();
      free_cached(dev);
      status = cudaMalloc(&block, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      if (status == cudaErrorMemoryAllocation)
        throw OutOfMemoryError(detail::concat("storage: cannot allocate ", mib(size), " MiB on cuda:", device, " (",
                                              mib(dev.stats.allocated), " MiB held by tensors): out of memory"));
      throw DeviceError(detail::concat("storage: cannot allocate ", mib(size), " MiB on cuda:", device, " (",
                                       mib(dev.stats.allocated), " MiB held by tensors): ", cudaGetErrorString(status)));
    }
    dev.stats.reserved += size;
    ++dev.stats.device_allocations;
  }
  dev.stats.allocated += size;
  if (dev.stats.allocated > dev.stats.peak_allocated) dev.stats.peak_allocated = dev.stats.allocated;
  return block;
}

void release(void* ptr, size_t nbytes, int device) {
  const size_t size = size_class(nbytes);
  std::lock_guard<std::mutex> lock(cache().mutex);
  DeviceCache& dev = cache().of(device);
  dev.free_blocks[size].push_back(ptr);
  dev.stats.allocated -= size;
  dev.stats.cached += size;
}

MemoryStats memory_stats(int device) {
  if (device < 0 || device >= device_count()) return {};
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().of(device).stats;
}

void empty_cache() {
  for (int d : used_devices()) {  // not the GPUs this process never touched (see synchronize)
    HC_CUDA_CHECK("empty_cache", cudaStreamSynchronize(stream_for(d)));  // no kernel may still use a block
    std::lock_guard<std::mutex> lock(cache().mutex);
    free_cached(cache().of(d));
  }
}

}  // namespace hcgrad::cuda
