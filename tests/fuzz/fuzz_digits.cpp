// libFuzzer target for vit_digits' data loader (examples/vit_digits/digits.h, load_digits): arbitrary bytes as
// the digits file, plain or gzip-compressed. Any input must give images and labels in range, or an
// hcgrad::Error — nothing else.
//
//   bash tools/fuzz.sh 60 digits
//   build-fuzz/tests/fuzz/fuzz_digits FILE
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "digits.h"
#include "hcgrad/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // load_digits reads a path (zlib opens it), so the input goes into an in-memory file.
  static const int fd = memfd_create("fuzz_digits", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) __builtin_trap();
  try {
    const vit::Digits digits = vit::load_digits("/proc/self/fd/" + std::to_string(fd));
    for (int64_t label : digits.labels.to_vector<int64_t>())
      if (label < 0 || label > 9) __builtin_trap();
    for (float pixel : digits.images.to_vector<float>())
      if (!(pixel >= 0 && pixel <= 1)) __builtin_trap();
  } catch (const hcgrad::Error&) {
  }
  return 0;
}
