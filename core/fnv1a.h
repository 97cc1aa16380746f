// FNV-1a, 64-bit (http://www.isthe.com/chongo/tech/comp/fnv/): a short, well-known hash that catches
// corruption (flipped bits, truncation, mixed-up files). Not a defence against deliberate tampering.
// Used for the checkpoint checksum (nn/checkpoint.cpp) and tinylm's fingerprint of its training text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hcgrad {

class Fnv1a64 {
 public:
  void update(const uint8_t* bytes, size_t count) {
    for (size_t i = 0; i < count; ++i) hash_ = (hash_ ^ bytes[i]) * 0x100000001b3ULL;
  }
  void update(std::string_view bytes) { update(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()); }
  void update_u64(uint64_t value) {  // as 8 little-endian bytes
    uint8_t bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
    update(bytes, 8);
  }
  void update_string(const std::string& text) {  // length first, so "ab","c" differs from "a","bc"
    update_u64(text.size());
    update(text);
  }
  uint64_t digest() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

}  // namespace hcgrad
