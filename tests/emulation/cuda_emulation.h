// Just enough of CUDA, on the host, to run hcgrad's kernels on the CPU: every launch runs its blocks one
// after another, each block as blockDim.x * blockDim.y real threads, with a real barrier for
// __syncthreads() and a per-warp exchange for the shuffles. __shared__ variables become static locals:
// with one block alive at a time they are shared exactly by the threads of that block.
//
// It checks what a CPU can check: indexing, synchronisation structure (a missing __syncthreads shows up
// as wrong values, a misplaced one as a deadlock), reductions and formulas, under AddressSanitizer in
// the sanitizer build. It cannot check timing, memory coalescing, occupancy or launch limits.
#pragma once

#include <math.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(threads)
#define __align__(bytes)
#define __shared__ static

using std::max;
using std::min;

using cudaStream_t = int;
using cudaError_t = int;
constexpr cudaError_t cudaSuccess = 0;
constexpr int cudaFuncAttributeMaxDynamicSharedMemorySize = 8;
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
template <class Kernel>
cudaError_t cudaFuncSetAttribute(Kernel*, int, int) {
  return cudaSuccess;
}

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emu {

// The state one block's threads share.
struct Block {
  explicit Block(unsigned threads, size_t shared_bytes)
      : barrier(threads), lanes(threads), dynamic_shared(shared_bytes + 16, 0xCD) {
    for (unsigned w = 0; w < (threads + 31) / 32; ++w) warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
  }
  std::barrier<> barrier;
  std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
  std::vector<double> lanes;  // one exchange slot per thread, for the shuffles
  std::vector<unsigned char> dynamic_shared;
};
inline thread_local Block* block = nullptr;

inline unsigned char* dynamic_shared() { return block->dynamic_shared.data(); }

struct Config {
  dim3 grid, threads;
  size_t shared_bytes = 0;
  cudaStream_t stream = 0;
};

// kernel<<<grid, threads, shared, stream>>>(args) is rewritten (cuda_to_host.pl) into
// emu::launch({grid, threads, shared, stream}, [&] { kernel(args); }).
template <class Run>
void launch(const Config& c, const Run& run) {
  const unsigned threads = c.threads.x * c.threads.y;
  if (threads == 0 || threads > 1024 || threads % 32 != 0)
    throw std::runtime_error("emulated launch: block of " + std::to_string(threads) +
                             " threads (must be a multiple of 32, at most 1024)");
  if (c.grid.x == 0 || c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535)
    throw std::runtime_error("emulated launch: bad grid");
  for (unsigned bz = 0; bz < c.grid.z; ++bz)
    for (unsigned by = 0; by < c.grid.y; ++by)
      for (unsigned bx = 0; bx < c.grid.x; ++bx) {
        Block state(threads, c.shared_bytes);
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (unsigned t = 0; t < threads; ++t)
          pool.emplace_back([&, t] {
            threadIdx = dim3(t % c.threads.x, t / c.threads.x);
            blockIdx = dim3(bx, by, bz);
            blockDim = c.threads;
            gridDim = c.grid;
            block = &state;
            run();
          });
        for (std::thread& thread : pool) thread.join();
      }
}

inline unsigned linear_thread() { return threadIdx.y * blockDim.x + threadIdx.x; }

}  // namespace emu

inline void __syncthreads() { emu::block->barrier.arrive_and_wait(); }

// Every lane of the warp publishes its value, waits, reads the source lane's, waits again (so the slot
// is not overwritten before everyone has read it).
template <class T>
T __shfl_sync(unsigned, T value, int source_lane) {
  const unsigned t = emu::linear_thread(), warp = t / 32;
  std::barrier<>& warp_barrier = *emu::block->warp_barriers[warp];
  emu::block->lanes[t] = static_cast<double>(value);
  warp_barrier.arrive_and_wait();
  const T result = static_cast<T>(emu::block->lanes[warp * 32 + (static_cast<unsigned>(source_lane) & 31u)]);
  warp_barrier.arrive_and_wait();
  return result;
}

template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask) {
  return __shfl_sync(mask, value, static_cast<int>(emu::linear_thread() % 32) ^ lane_mask);
}

inline std::mutex& atomic_mutex() {
  static std::mutex mutex;
  return mutex;
}

template <class T>
T atomicAdd(T* address, T value) {
  std::lock_guard<std::mutex> lock(atomic_mutex());
  const T old = *address;
  *address = old + value;
  return old;
}

inline int atomicCAS(int* address, int compare, int value) {
  std::lock_guard<std::mutex> lock(atomic_mutex());
  const int old = *address;
  if (old == compare) *address = value;
  return old;
}
