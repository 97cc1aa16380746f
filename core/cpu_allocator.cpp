#include "hcgrad/core/cpu_allocator.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "hcgrad/core/error.h"
#include "hcgrad/core/profile.h"

namespace hcgrad {

namespace {

constexpr std::align_val_t kAlignment{64};  // one cache line, any SIMD width
constexpr size_t kSmall = size_t(4) << 10, kMedium = size_t(1) << 20, kLargeStep = size_t(256) << 10;

size_t size_class(size_t nbytes) {
  const size_t step = nbytes <= kMedium ? kSmall : kLargeStep;
  return (nbytes + step - 1) / step * step;
}

// Under AddressSanitizer (GCC's macro, clang's feature test) nothing is cached.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HCGRAD_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(HCGRAD_UNDER_ASAN)
constexpr size_t kCacheLimit = 0;
#else
constexpr size_t kCacheLimit = size_t(1) << 30;
#endif

struct Cache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // size class -> blocks
  CpuMemoryStats stats;
};

// Never destroyed: tensors in static objects may be freed after the end of main().
Cache& cache() {
  static Cache* instance = new Cache;
  return *instance;
}

// The system said no: an OutOfMemoryError that names the size, instead of a bare std::bad_alloc.
[[noreturn]] void out_of_memory(size_t nbytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double size = static_cast<double>(nbytes);
  int unit = 0;
  for (; size >= 1024 && unit < 6; ++unit) size /= 1024;
  char readable[32];
  std::snprintf(readable, sizeof readable, unit == 0 ? "%.0f %s" : "%.1f %s", size, units[unit]);
  throw OutOfMemoryError(detail::concat("storage: cannot allocate ", readable, " (", nbytes,
                                        " bytes) on the cpu: out of memory, or over the process's memory limit"));
}

}  // namespace

void* cpu_allocate(size_t nbytes) {
  profile::Scope scope("allocate", profile::Category::Allocator);
  // The nothrow forms: a failure is a null pointer to turn into an OutOfMemoryError, also under
  // AddressSanitizer, whose throwing operator new aborts instead of throwing.
  if (nbytes < kSmall) {
    if (void* block = ::operator new(nbytes, kAlignment, std::nothrow)) return block;
    out_of_memory(nbytes);
  }
  const size_t size = size_class(nbytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.stats.allocated += size;
    c.stats.peak_allocated = std::max(c.stats.peak_allocated, c.stats.allocated);
    if (auto found = c.free_blocks.find(size); found != c.free_blocks.end() && !found->second.empty()) {
      void* block = found->second.back();
      found->second.pop_back();
      c.stats.cached -= size;
      return block;
    }
    ++c.stats.system_allocations;
  }
  void* block = ::operator new(size, kAlignment, std::nothrow);
  if (block == nullptr) {
    cpu_empty_cache();  // out of memory: give the cache back and try once more
    block = ::operator new(size, kAlignment, std::nothrow);
  }
  if (block == nullptr) {
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      c.stats.allocated -= size;
    }
    out_of_memory(size);
  }
  return block;
}

void cpu_release(void* block, size_t nbytes) {
  profile::Scope scope("release", profile::Category::Allocator);
  if (nbytes < kSmall) {
    ::operator delete(block, kAlignment);
    return;
  }
  const size_t size = size_class(nbytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.stats.allocated -= size;
    if (c.stats.cached + size <= kCacheLimit) {
      // Keeping the block needs a little memory itself; when even that fails (memory is exhausted, and this
      // may run during the unwinding of an out-of-memory error) the block goes back to the system instead.
      try {
        c.free_blocks[size].push_back(block);
        c.stats.cached += size;
        return;
      } catch (const std::bad_alloc&) {
      }
    }
  }
  ::operator delete(block, kAlignment);
}

CpuMemoryStats cpu_memory_stats() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().stats;
}

void cpu_empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [size, blocks] : c.free_blocks)
    for (void* block : blocks) ::operator delete(block, kAlignment);
  c.free_blocks.clear();
  c.stats.cached = 0;
}

}  // namespace hcgrad
