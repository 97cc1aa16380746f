// libFuzzer target for the safetensors reader: arbitrary bytes go to parse_safetensors, and whatever loads
// is read back value by value and copied into a small fixed "model". The reader promises that any input
// either loads or is refused with a CheckpointError; so hcgrad errors are caught and everything else (a
// crash, an ASan or UBSan report, a leak, any other exception) fails the run.
//
//   bash tools/fuzz.sh 60                                  # builds this with clang, fuzzes for 60 seconds
//   build-fuzz/tests/fuzz/fuzz_safetensors CRASH_FILE     # replays one input
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/nn/checkpoint.h"

namespace {

// Reads every value of `t`, so ASan sees any read past the tensor's memory and UBSan any bool that is
// neither 0 nor 1. Returns a value that depends on them, so the reads are not optimised away.
double touch_values(const hcgrad::Tensor& t) {
  double sum = 0;
  hcgrad::dispatch_all("fuzz", t.dtype(), [&]<class T>() {
    for (T v : t.to_vector<T>()) sum += static_cast<double>(v);
  });
  return sum;
}

void read_checkpoint(const uint8_t* data, size_t size) {
  using namespace hcgrad;
  try {
    nn::Safetensors file = nn::parse_safetensors(data, size, "fuzz input");
    volatile double sink = 0;
    for (const auto& [name, tensor] : file.tensors) {
      if (file.find(name) != &tensor) __builtin_trap();  // names are unique, so find returns this one
      sink = sink + touch_values(tensor);
    }
    // The parameters of a tiny model; the seed corpus has files that match them.
    nn::NamedTensors model = {{"weight", zeros({2, 3}, {.requires_grad = true})},
                              {"bias", zeros({3}, {.requires_grad = true})},
                              {"step", zeros({}, {.dtype = DType::Int64})}};
    nn::copy_into(file, model, "fuzz input", /*allow_extra=*/size % 2 == 0);
  } catch (const Error&) {
    // Refused: what the reader is meant to do with bad input (CheckpointError is an hcgrad::Error).
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  read_checkpoint(data, size);

  // Inputs shaped "{header JSON}\0data" are also turned into a file with the right length prefix. A raw
  // file whose header grows or shrinks under mutation almost always breaks its prefix and stops at the
  // first check; this way mutations of the JSON reach the checks of shapes, offsets and checksums.
  if (size > 0 && data[0] == '{') {
    const void* nul = std::memchr(data, 0, size);
    if (nul != nullptr) {
      const uint8_t* end_of_header = static_cast<const uint8_t*>(nul);
      const uint64_t header_bytes = static_cast<uint64_t>(end_of_header - data);
      std::vector<uint8_t> file;
      for (int i = 0; i < 8; ++i) file.push_back(static_cast<uint8_t>(header_bytes >> (8 * i)));
      file.insert(file.end(), data, end_of_header);
      file.insert(file.end(), end_of_header + 1, data + size);
      read_checkpoint(file.data(), file.size());
    }
  }
  return 0;
}
