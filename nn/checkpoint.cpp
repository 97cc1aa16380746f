// Safetensors checkpoints: the atomic, checksummed writer, the validating reader and copy_into.
// The format and the API are described in checkpoint.h.
//
// The reader treats every file as hostile: each size and offset in the header is checked (types,
// overflow, bounds, exact tiling of the data section) before a single byte is copied, so a truncated,
// corrupt or malicious file gives a CheckpointError, never a crash. tests/fuzz/fuzz_safetensors.cpp
// holds it to that.
#include "hcgrad/nn/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/fnv1a.h"

// Safetensors stores little-endian values and this file copies them as raw bytes.
static_assert(std::endian::native == std::endian::little, "checkpoint.cpp assumes a little-endian host");

namespace hcgrad::nn {
namespace {

using json = nlohmann::json;

constexpr size_t kLengthPrefixBytes = 8;           // the u64 header size at the start of the file
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's limit: larger means corrupt
constexpr size_t kMaxProblemsListed = 10;          // copy_into lists at most this many mismatches

// ---------------------------------------------------------------------------------------------------
// Names in messages

constexpr size_t kMaxShownChars = 300;  // longer names and values are cut short in messages

std::string shortened(std::string text) {
  if (text.size() > kMaxShownChars) text = text.substr(0, kMaxShownChars) + "...";
  return text;
}

// A name as a JSON string literal: quoted, with control characters and invalid UTF-8 made printable, so
// a hostile name cannot garble the message (nor make it megabytes long).
std::string json_quoted(const std::string& name) {
  return shortened(json(name).dump(-1, ' ', false, json::error_handler_t::replace));
}

// A JSON value from the header, for a message: scalars and short flat arrays as JSON text, anything else
// by its type. dump() recurses, and a hostile header may nest arrays a million deep.
std::string describe(const json& value) {
  bool flat =
      value.is_primitive() || (value.is_array() && value.size() <= 8 &&
                               std::all_of(value.begin(), value.end(), [](const json& v) { return v.is_primitive(); }));
  if (flat) return shortened(value.dump(-1, ' ', false, json::error_handler_t::replace));
  return detail::concat("a JSON ", value.type_name(), " with ", value.size(),
                        value.size() == 1 ? " element" : " elements");
}

bool is_valid_utf8(const std::string& text) {
  try {
    (void)json(text).dump();  // the strict handler throws on invalid UTF-8
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Dtypes

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "F32";
    case DType::Float64:
      return "F64";
    case DType::Int64:
      return "I64";
    case DType::Bool:
      return "BOOL";
  }
  return "?";
}

std::optional<DType> dtype_from_safetensors(const std::string& name) {
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::Bool})
    if (name == safetensors_dtype(dtype)) return dtype;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------------
// The tensor table and its checksum

// One row of the header's tensor table.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // byte offsets in the data section: [begin, end)
};

// Table rows in the order of their data; zero-byte tensors share an offset, so the name breaks ties.
std::vector<const Entry*> in_data_order(const std::vector<Entry>& entries) {
  std::vector<const Entry*> sorted;
  for (const Entry& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  return sorted;
}

// The checksum covers what a reader trusts: the metadata and each tensor by name (dtype, shape, values). Its
// canonical form does not depend on how a writer lays the file out (tensor order, offsets, header spacing,
// padding), so a file re-saved by any conforming safetensors writer that keeps the metadata still verifies,
// while any edited value or annotation does not. The canonical bytes, as u64 little-endian integers and
// length-prefixed strings (u64 length, then the bytes):
//   "hcgrad-checksum-2"
//   the number of metadata entries, then each entry but the checksum itself, sorted by key: key, value
//   the number of tensors, then each tensor sorted by name: name, dtype ("F32"...), ndim, each size, byte
//   count, the raw little-endian bytes
// The stored value is "fnv1a64-v2:" and the FNV-1a 64-bit hash of those bytes in 16 hex digits.
constexpr const char* kChecksumPrefix = "fnv1a64-v2:";
// Files saved before version 2 carry "fnv1a64:<hex>", a hash of the tensor table in data order (name, dtype,
// ndim, sizes, begin, end) and then the data section, which leaves the metadata out. They still verify.
constexpr const char* kLegacyChecksumPrefix = "fnv1a64:";

// One tensor of the file for the checksum: its table row and where its bytes are.
struct TensorBytes {
  const Entry* entry;
  const uint8_t* bytes;
};

uint64_t content_digest(const Metadata& metadata, std::vector<TensorBytes> tensors) {
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorBytes& a, const TensorBytes& b) { return a.entry->name < b.entry->name; });
  Fnv1a64 hash;
  hash.update_string("hcgrad-checksum-2");
  hash.update_u64(metadata.size() - metadata.count(kChecksumKey));
  for (const auto& [key, value] : metadata) {  // std::map: sorted by key
    if (key == kChecksumKey) continue;
    hash.update_string(key);
    hash.update_string(value);
  }
  hash.update_u64(tensors.size());
  for (const TensorBytes& t : tensors) {
    const Entry& e = *t.entry;
    hash.update_string(e.name);
    hash.update_string(safetensors_dtype(e.dtype));
    hash.update_u64(e.shape.size());
    for (int64_t size : e.shape) hash.update_u64(static_cast<uint64_t>(size));
    hash.update_u64(e.end - e.begin);
    hash.update(t.bytes, e.end - e.begin);
  }
  return hash.digest();
}

uint64_t legacy_digest(const std::vector<const Entry*>& table, const uint8_t* section, uint64_t section_bytes) {
  Fnv1a64 hash;
  for (const Entry* e : table) {
    hash.update_string(e->name);
    hash.update_string(safetensors_dtype(e->dtype));
    hash.update_u64(e->shape.size());
    for (int64_t size : e->shape) hash.update_u64(static_cast<uint64_t>(size));
    hash.update_u64(e->begin);
    hash.update_u64(e->end);
  }
  hash.update(section, section_bytes);
  return hash.digest();
}

std::string format_checksum(const char* prefix, uint64_t digest) {
  char text[40];
  std::snprintf(text, sizeof(text), "%s%016" PRIx64, prefix, digest);
  return text;
}

// The prefix of a well-formed checksum value ("fnv1a64-v2:" or the legacy "fnv1a64:"), or nullptr.
const char* checksum_prefix(const std::string& text) {
  for (const char* prefix : {kChecksumPrefix, kLegacyChecksumPrefix}) {
    const size_t n = std::strlen(prefix);
    if (text.size() == n + 16 && text.compare(0, n, prefix) == 0 &&
        std::all_of(text.begin() + static_cast<std::ptrdiff_t>(n), text.end(),
                    [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
      return prefix;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------------
// Writing

// Writes a file at `path` atomically: the bytes go to a temporary file in the same directory (a rename
// is only atomic within one filesystem), which is flushed to disk and renamed over `path`; then the
// directory is synced so the rename itself survives a power cut. Until commit() succeeds, the destructor
// removes the temporary file, so a failure at any step leaves `path` as it was.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path) : path_(path) {
    static std::atomic<uint64_t> counter{0};  // two saves in one process never share a temporary file
    temp_path_ = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    file_ = std::fopen(temp_path_.c_str(), "wbx");  // x: never clobber an existing file of that name
    if (!file_) fail("cannot create temporary file '" + temp_path_ + "'");
  }
  ~AtomicFile() {
    if (file_) std::fclose(file_);
    if (!committed_) std::remove(temp_path_.c_str());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* bytes, size_t count) {
    if (count > 0 && std::fwrite(bytes, 1, count, file_) != count) fail("cannot write '" + temp_path_ + "'");
  }

  void commit() {
    if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) fail("cannot flush '" + temp_path_ + "' to disk");
    FILE* file = file_;
    file_ = nullptr;
    if (std::fclose(file) != 0) fail("cannot close '" + temp_path_ + "'");
    if (std::rename(temp_path_.c_str(), path_.c_str()) != 0)
      fail("cannot rename '" + temp_path_ + "' to '" + path_ + "'");
    committed_ = true;
    sync_directory();
  }

 private:
  [[noreturn]] static void fail(const std::string& what) {
    throw CheckpointError("save_safetensors: " + what + ": " + std::strerror(errno));
  }

  void sync_directory() const {
    std::string dir = std::filesystem::path(path_).parent_path().string();
    if (dir.empty()) dir = ".";
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    // EINVAL: this filesystem cannot sync directories; there is nothing more to do.
    bool ok = fd >= 0 && (::fsync(fd) == 0 || errno == EINVAL);
    int saved_errno = errno;
    if (fd >= 0) ::close(fd);
    errno = saved_errno;
    if (!ok) fail("wrote '" + path_ + "' but cannot sync its directory '" + dir + "', so it may not survive a crash");
  }

  std::string path_, temp_path_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

void check_saveable(const NamedTensors& tensors, const Metadata& metadata, const std::string& path) {
  auto fail = [&](const auto&... parts) {
    throw CheckpointError(detail::concat("save_safetensors: '", path, "': ", parts...));
  };
  std::set<std::string> seen;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    if (name.empty()) fail("tensor #", i, " has an empty name");
    if (name == "__metadata__")
      fail("the name \"__metadata__\" is reserved for the header's metadata (tensor #", i, ")");
    if (!is_valid_utf8(name)) fail("tensor name ", json_quoted(name), " is not valid UTF-8");
    if (!seen.insert(name).second) fail("tensor name ", json_quoted(name), " appears twice");
    if (!tensor.defined()) fail("tensor ", json_quoted(name), " is undefined");
    if (!tensor.device().is_cpu())
      fail("tensor ", json_quoted(name), " is on ", tensor.device(), "; move it to the cpu first");
  }
  for (const auto& [key, value] : metadata) {
    if (key == kChecksumKey) fail("metadata key \"", kChecksumKey, "\" is reserved (save_safetensors computes it)");
    if (!is_valid_utf8(key) || !is_valid_utf8(value)) fail("metadata entry ", json_quoted(key), " is not valid UTF-8");
  }
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  check_saveable(tensors, metadata, path);

  // Row-major copies of strided tensors (contiguous ones are used as they are), laid out back to back.
  autograd::NoGradGuard no_grad;  // copying a parameter must not record autograd history
  std::vector<Entry> entries;
  std::vector<Tensor> dense;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    dense.push_back(tensor.detach().to(Device::cpu()).contiguous());  // GPU tensors are saved from a copy
    uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * itemsize(tensor.dtype());
    entries.push_back({name, tensor.dtype(), tensor.shape(), offset, offset + bytes});
    offset += bytes;
  }

  std::vector<TensorBytes> contents;
  for (size_t i = 0; i < dense.size(); ++i)
    contents.push_back({&entries[i], static_cast<const uint8_t*>(dense[i].raw_data())});

  json header = json::object();
  json& meta = header["__metadata__"] = json::object();
  for (const auto& [key, value] : metadata) meta[key] = value;
  meta[kChecksumKey] = format_checksum(kChecksumPrefix, content_digest(metadata, contents));
  for (const Entry& e : entries)
    header[e.name] = {{"dtype", safetensors_dtype(e.dtype)},
                      {"shape", std::vector<int64_t>(e.shape.begin(), e.shape.end())},
                      {"data_offsets", {e.begin, e.end}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // like the reference writer: the data section starts 8-aligned

  AtomicFile file(path);
  uint8_t length[kLengthPrefixBytes];
  for (size_t i = 0; i < kLengthPrefixBytes; ++i) length[i] = static_cast<uint8_t>(text.size() >> (8 * i));
  file.write(length, sizeof(length));
  file.write(text.data(), text.size());
  for (size_t i = 0; i < dense.size(); ++i) file.write(dense[i].raw_data(), entries[i].end - entries[i].begin);
  file.commit();
}

// ---------------------------------------------------------------------------------------------------
// Reading

namespace {

// Parses the header and refuses duplicate keys at any level (nlohmann would silently keep the last one,
// hiding a tensor table that lies).
json parse_header(const char* text, size_t size, const std::string& context) {
  std::vector<std::set<std::string>> keys_of_open_objects;
  std::optional<std::string> duplicate;
  auto watch_keys = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys_of_open_objects.emplace_back();
    if (event == json::parse_event_t::object_end) keys_of_open_objects.pop_back();
    if (event == json::parse_event_t::key && !keys_of_open_objects.back().insert(parsed.get<std::string>()).second &&
        !duplicate)
      duplicate = parsed.get<std::string>();
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + size, watch_keys);
  } catch (const json::exception& e) {
    throw CheckpointError(context + "header is not valid JSON: " + shortened(e.what()));
  }
  if (duplicate) throw CheckpointError(context + "header has the key " + json_quoted(*duplicate) + " twice");
  if (!header.is_object())
    throw CheckpointError(context + "header is a JSON " + header.type_name() + ", not an object");
  return header;
}

// A JSON number that is a non-negative integer: not a float (2.0), a string ("2") or a negative number.
bool is_count(const json& value) { return value.is_number_unsigned(); }

// One tensor's table row, checked on its own: field types, dtype, overflow, and that the offsets span
// exactly the bytes the shape needs and stay inside a data section of `section_bytes`.
Entry parse_entry(const std::string& name, const json& value, uint64_t section_bytes, const std::string& context) {
  auto fail = [&](const auto&... parts) {
    throw CheckpointError(detail::concat(context, "tensor ", json_quoted(name), ": ", parts...));
  };
  if (name.empty()) fail("empty tensor name");
  if (!value.is_object()) fail("entry is a JSON ", value.type_name(), ", expected an object");

  auto dtype_field = value.find("dtype");
  if (dtype_field == value.end()) fail("missing \"dtype\"");
  if (!dtype_field->is_string()) fail("\"dtype\" is a JSON ", dtype_field->type_name(), ", expected a string");
  std::string dtype_text = dtype_field->get<std::string>();
  std::optional<DType> dtype = dtype_from_safetensors(dtype_text);
  if (!dtype) fail("dtype ", json_quoted(dtype_text), " is not supported (hcgrad reads F32, F64, I64 and BOOL)");

  auto shape_field = value.find("shape");
  if (shape_field == value.end()) fail("missing \"shape\"");
  if (!shape_field->is_array()) fail("\"shape\" is a JSON ", shape_field->type_name(), ", expected an array");
  Shape shape;
  // The sizes' product, with 0 counted as 1, in bytes: every partial product hcgrad computes from this
  // shape (element counts, strides, byte sizes) stays below it, so capping it at INT64_MAX rules out overflow.
  uint64_t bound = itemsize(*dtype);
  for (const json& size : *shape_field) {
    if (!is_count(size)) fail("\"shape\" has ", describe(size), "; sizes must be non-negative integers");
    uint64_t n = size.get<uint64_t>();
    if (__builtin_mul_overflow(bound, std::max<uint64_t>(n, 1), &bound) ||
        bound > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("shape ", describe(*shape_field), " is too large (its byte count overflows)");
    shape.push_back(static_cast<int64_t>(n));
  }
  uint64_t bytes = static_cast<uint64_t>(numel(shape)) * itemsize(*dtype);

  auto offsets_field = value.find("data_offsets");
  if (offsets_field == value.end()) fail("missing \"data_offsets\"");
  if (!offsets_field->is_array() || offsets_field->size() != 2 || !is_count((*offsets_field)[0]) ||
      !is_count((*offsets_field)[1]))
    fail("\"data_offsets\" is ", describe(*offsets_field), ", expected [begin, end] as non-negative integers");
  uint64_t begin = (*offsets_field)[0].get<uint64_t>(), end = (*offsets_field)[1].get<uint64_t>();
  if (end < begin) fail("data_offsets [", begin, ", ", end, "] end before they begin");
  if (end - begin != bytes)
    fail("data_offsets [", begin, ", ", end, "] span ", end - begin, " bytes, but shape ", shape, " of ", dtype_text,
         " needs ", bytes);
  if (end > section_bytes)
    fail("data_offsets [", begin, ", ", end, "] reach past the end of the data section (", section_bytes,
         " bytes); truncated file?");
  return {name, *dtype, shape, begin, end};
}

// Safetensors requires the tensors to cover the data section exactly: no overlaps, no holes, nothing after.
void check_tiling(const std::vector<const Entry*>& table, uint64_t section_bytes, const std::string& context) {
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : table) {
    if (e->begin < covered)
      throw CheckpointError(detail::concat(context, "tensors ", json_quoted(previous->name), " and ",
                                           json_quoted(e->name), " overlap in the data section"));
    if (e->begin > covered)
      throw CheckpointError(detail::concat(context, "data section has a hole of ", e->begin - covered,
                                           " bytes before tensor ", json_quoted(e->name)));
    covered = e->end;
    previous = e;
  }
  if (covered != section_bytes)
    throw CheckpointError(detail::concat(context, "data section has ", section_bytes - covered,
                                         " bytes after the last tensor that no tensor claims"));
}

Safetensors parse(const char* op, const uint8_t* data, size_t size, const std::string& source) {
  const std::string context = detail::concat(op, ": '", source, "': ");
  auto fail = [&](const auto&... parts) { throw CheckpointError(detail::concat(context, parts...)); };

  if (size < kLengthPrefixBytes)
    fail("file is ", size, " bytes long, shorter than the 8-byte header size; truncated or not a safetensors file");
  uint64_t header_bytes = 0;
  for (size_t i = 0; i < kLengthPrefixBytes; ++i) header_bytes |= static_cast<uint64_t>(data[i]) << (8 * i);
  if (header_bytes > kMaxHeaderBytes)
    fail("header size ", header_bytes, " is larger than the 100 MB limit; corrupt or not a safetensors file");
  if (header_bytes > size - kLengthPrefixBytes)
    fail("header size ", header_bytes, " but only ", size - kLengthPrefixBytes, " bytes follow; truncated file");
  const char* header_text = reinterpret_cast<const char*>(data + kLengthPrefixBytes);
  if (header_bytes == 0 || header_text[0] != '{') fail("header does not start with '{'; not a safetensors file");
  json header = parse_header(header_text, header_bytes, context);

  const uint8_t* section = data + kLengthPrefixBytes + header_bytes;
  const uint64_t section_bytes = size - kLengthPrefixBytes - header_bytes;
  Safetensors result;
  std::optional<std::string> checksum;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key != "__metadata__") {
      entries.push_back(parse_entry(key, value, section_bytes, context));
      continue;
    }
    if (!value.is_object()) fail("\"__metadata__\" is a JSON ", value.type_name(), ", expected an object");
    for (const auto& [meta_key, meta_value] : value.items()) {
      if (!meta_value.is_string())
        fail("metadata ", json_quoted(meta_key), " is a JSON ", meta_value.type_name(),
             "; metadata values must be strings");
      if (meta_key == kChecksumKey)
        checksum = meta_value.get<std::string>();
      else
        result.metadata[meta_key] = meta_value.get<std::string>();
    }
  }
  const std::vector<const Entry*> table = in_data_order(entries);
  check_tiling(table, section_bytes, context);

  if (checksum) {
    const char* prefix = checksum_prefix(*checksum);
    if (!prefix)
      fail("metadata \"", kChecksumKey, "\" is ", json_quoted(*checksum), ", expected \"", kChecksumPrefix,
           "\" and 16 hex digits");
    std::string actual;
    if (prefix == kChecksumPrefix) {
      std::vector<TensorBytes> contents;
      for (const Entry* e : table) contents.push_back({e, section + e->begin});
      actual = format_checksum(prefix, content_digest(result.metadata, contents));
    } else {
      actual = format_checksum(prefix, legacy_digest(table, section, section_bytes));
    }
    if (actual != *checksum)
      fail("checksum mismatch: the file was edited or is corrupt (the header says ", *checksum,
           ", its tensors and metadata hash to ", actual, ")");
    result.checksum_verified = true;
  }

  for (const Entry* e : table) {
    const uint8_t* bytes = section + e->begin;
    const size_t count = e->end - e->begin;
    // A C++ bool holding any byte but 0 or 1 is undefined behaviour, so such files are refused.
    if (e->dtype == DType::Bool)
      for (size_t i = 0; i < count; ++i)
        if (bytes[i] > 1)
          fail("tensor ", json_quoted(e->name), ": BOOL element ", i, " is the byte ", int(bytes[i]),
               "; expected 0 or 1");
    Tensor tensor = Tensor::empty(e->shape, {.dtype = e->dtype});
    if (count > 0) std::memcpy(tensor.raw_data(), bytes, count);
    result.tensors.emplace_back(e->name, std::move(tensor));
  }
  return result;
}

// The whole file. Only a regular file: a device (/dev/zero) or a pipe may never end, and opening a FIFO
// waits for a writer, so it is opened non-blocking and checked before a byte is read.
std::vector<uint8_t> read_file(const std::string& path) {
  auto fail = [&](const std::string& what) {
    throw CheckpointError("load_safetensors: cannot " + what + " '" + path + "': " + std::strerror(errno));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail("open");
  std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* f) {
    ::close(*f);
    delete f;
  });
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail("stat");
  if (S_ISDIR(info.st_mode)) {
    errno = EISDIR;
    fail("read");
  }
  if (!S_ISREG(info.st_mode))
    throw CheckpointError("load_safetensors: '" + path + "' is not a regular file (a device or pipe may never end)");
  std::vector<uint8_t> bytes(static_cast<size_t>(info.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail("read");
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  uint8_t extra;
  if (done != bytes.size() || ::read(fd, &extra, 1) != 0)
    throw CheckpointError("load_safetensors: '" + path + "' changed size while it was read; try again");
  return bytes;
}

}  // namespace

const Tensor* Safetensors::find(const std::string& name) const {
  for (const auto& [tensor_name, tensor] : tensors)
    if (tensor_name == name) return &tensor;
  return nullptr;
}

Safetensors parse_safetensors(const uint8_t* data, size_t size, const std::string& source) {
  return parse("parse_safetensors", data, size, source);
}

Safetensors load_safetensors(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  return parse("load_safetensors", bytes.data(), bytes.size(), path);
}

// ---------------------------------------------------------------------------------------------------
// Loading into existing tensors

void copy_into(const Safetensors& file, const NamedTensors& destinations, const std::string& source, bool allow_extra) {
  // Collect every problem first, so one message lists them all and nothing is written unless all is well.
  std::vector<std::string> problems;
  std::unordered_map<std::string, const Tensor*> in_file;
  for (const auto& [name, tensor] : file.tensors) in_file.emplace(name, &tensor);
  std::set<std::string> wanted;
  for (const auto& [name, dst] : destinations) {
    if (!wanted.insert(name).second) {
      problems.push_back("destination " + json_quoted(name) + " is listed twice");
      continue;
    }
    if (!dst.defined()) {
      problems.push_back("destination " + json_quoted(name) + " is undefined");
      continue;
    }
    auto found = in_file.find(name);
    if (found == in_file.end()) {
      problems.push_back("tensor " + json_quoted(name) + " is missing from the file");
      continue;
    }
    const Tensor& src = *found->second;
    if (src.dtype() != dst.dtype() || src.shape() != dst.shape())
      problems.push_back(detail::concat("tensor ", json_quoted(name), " is ", src.dtype(), " ", src.shape(),
                                        " in the file but ", dst.dtype(), " ", dst.shape(), " in the destination"));
    else if (!dst.device().is_cpu())
      problems.push_back(detail::concat("destination ", json_quoted(name), " is on ", dst.device(), ", not the cpu"));
  }
  if (!allow_extra)
    for (const auto& [name, tensor] : file.tensors)
      if (!wanted.count(name))
        problems.push_back("unexpected tensor " + json_quoted(name) +
                           " in the file (pass allow_extra = true to ignore it)");

  if (!problems.empty()) {
    std::string message = detail::concat("copy_into: '", source, "' does not match the destinations: ");
    for (size_t i = 0; i < problems.size() && i < kMaxProblemsListed; ++i) message += (i ? "; " : "") + problems[i];
    if (problems.size() > kMaxProblemsListed)
      message += detail::concat("; and ", problems.size() - kMaxProblemsListed, " more");
    throw CheckpointError(message);
  }

  autograd::NoGradGuard no_grad;  // parameters require grad; filling them is not part of any graph
  for (const auto& [name, dst] : destinations) Tensor(dst).copy_(*in_file.at(name));
}

}  // namespace hcgrad::nn
