// The replaceable global operator new and delete (failed_allocation.h): malloc and free, plus a note of the
// size when malloc fails. In a file of its own, so that no caller's code is compiled with these inlined.
#include "failed_allocation.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<size_t> failed_size{0};
}

void* operator new(size_t size) {
  if (void* block = std::malloc(size == 0 ? 1 : size)) return block;
  failed_size = size;
  throw std::bad_alloc();
}
void operator delete(void* block) noexcept { std::free(block); }
void operator delete(void* block, size_t) noexcept { std::free(block); }

namespace tinylm {

size_t failed_allocation_bytes() { return failed_size; }

}  // namespace tinylm
