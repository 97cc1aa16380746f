// The replaceable global operators new and delete (failed_allocation.h): malloc and free, plus a note of the
// size when malloc fails. Every non-aligned form is replaced, so that whatever allocates with one form and
// frees with another (std::get_temporary_buffer: nothrow new, then delete) meets malloc and free on both
// sides. The aligned forms stay the runtime's (hcgrad's tensors use them and report their own size). In a
// file of its own, so that no caller's code is compiled with these inlined.
#include "failed_allocation.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {

std::atomic<size_t> failed_size{0};

void* allocate(size_t size) noexcept {
  void* block = std::malloc(size == 0 ? 1 : size);
  if (block == nullptr) failed_size = size;
  return block;
}

void* allocate_or_throw(size_t size) {
  if (void* block = allocate(size)) return block;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(size_t size) { return allocate_or_throw(size); }
void* operator new[](size_t size) { return allocate_or_throw(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept { return allocate(size); }
void* operator new[](size_t size, const std::nothrow_t&) noexcept { return allocate(size); }
void operator delete(void* block) noexcept { std::free(block); }
void operator delete[](void* block) noexcept { std::free(block); }
void operator delete(void* block, size_t) noexcept { std::free(block); }
void operator delete[](void* block, size_t) noexcept { std::free(block); }
void operator delete(void* block, const std::nothrow_t&) noexcept { std::free(block); }
void operator delete[](void* block, const std::nothrow_t&) noexcept { std::free(block); }

namespace tinylm {

size_t failed_allocation_bytes() { return failed_size; }

}  // namespace tinylm
