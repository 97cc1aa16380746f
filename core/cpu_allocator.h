// The caching CPU allocator behind Storage. A training step frees and allocates the same few hundred
// activation and gradient sizes every time; from the system allocator each large block is a fresh mmap,
// so every step would page-fault its whole working set in again (and zero it, in the kernel). Freed blocks
// are kept in free lists keyed by size class and handed out again instead.
//
// Size classes: blocks under 4 KiB go straight to operator new (glibc keeps those in its own bins); above,
// multiples of 4 KiB up to 1 MiB and multiples of 256 KiB beyond, so a block wastes at most one step.
// At most 1 GiB is kept free; past that, frees go back to the system. Under AddressSanitizer nothing is
// cached, so that a use after free is still caught.
#pragma once

#include <cstddef>

namespace hcgrad {

struct CpuMemoryStats {
  size_t allocated = 0;       // bytes in live tensors (rounded to size classes)
  size_t peak_allocated = 0;  // the most `allocated` has been
  size_t cached = 0;          // bytes in free lists, ready for reuse
  size_t system_allocations = 0;  // calls that reached the system allocator (cache misses)
};

void* cpu_allocate(size_t nbytes);  // 64-byte aligned
void cpu_release(void* block, size_t nbytes);
CpuMemoryStats cpu_memory_stats();
void cpu_empty_cache();  // returns every cached block to the system

}  // namespace hcgrad
