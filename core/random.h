// Seeded random numbers that do not depend on the thread count.
//
// The generator is counter-based (Philox4x32-10, Salmon et al. 2011, the generator PyTorch uses on GPUs):
// element i of a rand/randn call is a pure function of (seed, offset + i). Any thread can compute any
// element, so a parallel fill gives the same numbers as a serial one, and the state is two integers
// that a checkpoint can store.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace hcgrad {

// Philox4x32 with 10 rounds: four 32-bit random words from a 64-bit counter and a 64-bit key.
std::array<uint32_t, 4> philox4x32(uint64_t counter, uint64_t key);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}

  void manual_seed(uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  uint64_t seed() const { return seed_; }
  // How many counters have been used: with the seed, the whole state (for checkpoints).
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }

  // Reserves `count` counters and returns the first; the caller draws element i from counter first + i.
  uint64_t reserve(uint64_t count) {
    uint64_t first = offset_;
    offset_ += count;
    return first;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The generator used when none is passed. Not thread-safe: seed and use it from one thread.
Generator& default_generator();
void manual_seed(uint64_t seed);

// Draws for one element, from its counter (shared by every kernel that fills tensors).
double uniform_from_counter(uint64_t counter, uint64_t seed);   // in [0, 1), 53 random bits
double normal_from_counter(uint64_t counter, uint64_t seed);    // N(0, 1), Box-Muller

// Fisher-Yates with counter-based draws (std::shuffle's algorithm, and so its result, differs between standard
// libraries): for i = n down to 2, items[i - 1] swaps with items[j], j drawn in [0, i) from counter
// first_counter + i - 1. Uses counters first_counter + 1 .. first_counter + n - 1.
template <class T>
void shuffle_by_counter(std::vector<T>& items, uint64_t first_counter, uint64_t seed) {
  for (size_t i = items.size(); i > 1; --i) {
    const auto j = static_cast<size_t>(uniform_from_counter(first_counter + i - 1, seed) * static_cast<double>(i));
    std::swap(items[i - 1], items[std::min(j, i - 1)]);
  }
}

}  // namespace hcgrad
