// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), the format
// PyTorch, JAX and NumPy users share weights in, so a model trained here loads there and back.
//
//   file = [u64 N, little-endian] [N bytes of JSON header, space-padded to a multiple of 8] [data section]
//   header = {"__metadata__": {"key": "value", ...},
//             "fc.weight": {"dtype": "F32", "shape": [64, 32], "data_offsets": [0, 8192]}, ...}
//
// Offsets count from the start of the data section; the tensors tile it exactly (no holes, no
// overlaps), each stored row-major as raw little-endian values. hcgrad reads and writes F32, F64, I64
// and BOOL; other dtypes (F16, BF16, ...) are refused with the tensor's name.
//
// Saving is atomic (a crash mid-save never destroys the previous checkpoint) and adds a checksum to the
// metadata, so that loading notices a corrupt file instead of training on garbage:
//
//   nn::save_safetensors("model.safetensors", {{"fc.weight", w}, {"fc.bias", b}}, {{"step", "1000"}});
//   nn::Safetensors file = nn::load_safetensors("model.safetensors");
//   nn::copy_into(file, {{"fc.weight", w}, {"fc.bias", b}}, "model.safetensors");  // all or nothing
//
// Every refusal (missing file, truncated or malformed file, wrong shapes) throws CheckpointError, whose
// message names the file and the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "hcgrad/core/error.h"
#include "hcgrad/core/tensor.h"
#include "hcgrad/nn/named_tensors.h"

namespace hcgrad::nn {

class CheckpointError : public Error {
 public:
  using Error::Error;
};

// Free-form string annotations stored in the header's "__metadata__" (step counts, configs, ...).
using Metadata = std::map<std::string, std::string>;

// The metadata key hcgrad stores its checksum under: "fnv1a64-v2:<16 hex digits>", an FNV-1a 64-bit hash of
// the metadata and of each tensor by name (dtype, shape, bytes). It does not depend on the byte layout, so
// a file re-saved by another safetensors writer that keeps the metadata still verifies, and any edited value
// is refused. checkpoint.cpp spells out the exact bytes. Reserved: save_safetensors refuses it in the caller's
// metadata.
inline constexpr const char* kChecksumKey = "hcgrad_checksum";

// Writes `tensors` (CPU, defined, any strides, unique non-empty names other than "__metadata__") and
// `metadata` to `path`. The tensors are laid out in the order given. Atomic: the bytes go to a temporary
// file beside `path` (PATH.tmp-<pid>-<n>), which is flushed to disk and then renamed over `path`; on any
// failure the temporary file is removed and `path` is left as it was.
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});

// A loaded file: the tensors in the order of their data (for an hcgrad file: the order they were saved
// in), the metadata without the checksum entry, and whether a checksum was present and matched (a file
// whose checksum does not match is refused). Files from other writers (PyTorch, NumPy) carry no checksum
// and load with checksum_verified == false: nothing vouches for their metadata.
struct Safetensors {
  NamedTensors tensors;
  Metadata metadata;
  bool checksum_verified = false;

  // The tensor called `name`, or nullptr.
  const Tensor* find(const std::string& name) const;
};

// Reads and validates the file at `path`; see parse_safetensors.
Safetensors load_safetensors(const std::string& path);

// Validates and decodes the `size` bytes at `data` (a whole safetensors file); `source` names them in
// error messages. The loaded tensors own copies of their values. Refuses, with CheckpointError: a short
// or truncated buffer, an absurd header size, a header that is not a JSON object or has duplicate keys,
// entries with missing or mistyped fields (sizes and offsets must be non-negative JSON integers),
// unsupported dtypes, sizes whose byte count overflows, offsets that do not match the shape or do not
// tile the data section exactly, BOOL bytes other than 0 and 1, non-string metadata values, and a
// checksum that does not match.
Safetensors parse_safetensors(const uint8_t* data, size_t size, const std::string& source);

// Copies the file's tensors into existing tensors of the same names (a model's parameters, say), for
// example to resume training. Checks everything before writing anything: every destination has a tensor
// of that name in the file with the same dtype and shape, and, unless allow_extra, the file has no
// tensors beyond the destinations. Then copies under NoGradGuard, so parameters that require grad can be
// filled. On refusal no destination has changed. `source` names the file in error messages.
void copy_into(const Safetensors& file, const NamedTensors& destinations, const std::string& source,
               bool allow_extra = false);

}  // namespace hcgrad::nn
