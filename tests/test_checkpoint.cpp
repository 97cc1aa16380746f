// Safetensors checkpoints (nn/checkpoint.h): exact round trips, the byte layout as an independent reader
// sees it, a file from the reference Python library, every refusal the reader promises, copy_into's all-or-
// nothing checks, atomic saves that never lose the previous file, and a PyTorch state_dict of Conv2d, Conv1d and
// GroupNorm loaded into nn's layers.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "helpers.h"
#include "hcgrad/nn/checkpoint.h"

using namespace hctest;
using namespace hcgrad::nn;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

// A fresh directory under the system's temp directory, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("hcgrad-checkpoint-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A file made by hand: the 8-byte little-endian header size, the header text as given, the data bytes.
Bytes make_file(const std::string& header, const Bytes& data = {}) {
  Bytes out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <class T>
Bytes raw_bytes(const std::vector<T>& values) {
  Bytes out(values.size() * sizeof(T));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// The message of the CheckpointError that `f` throws, or a note that it threw none. Any other exception
// escapes and fails the test.
template <class F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "<no CheckpointError>";
}

std::string parse_refusal(const Bytes& bytes) {
  return refusal([&] { parse_safetensors(bytes.data(), bytes.size(), "hand-made.safetensors"); });
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// FNV-1a 64, written again here from its definition (offset basis and prime from the FNV reference).
uint64_t fnv1a64(const Bytes& bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ULL;
  return h;
}

void append_u64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void append_string(Bytes& out, const std::string& s) {
  append_u64(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// The reference file, found beside this source file (tests/fixtures/safetensors/), made by
// tools/make_safetensors_fixture.py with Python's safetensors library.
std::string fixture_path(const std::string& name = "reference.safetensors") {
  return (fs::path(__FILE__).parent_path() / "fixtures" / "safetensors" / name).string();
}

}  // namespace

TEST_CASE("checkpoint: round trip is exact for every dtype, views, 0-d and empty tensors") {
  TempDir dir;
  const double tiny = std::numeric_limits<double>::denorm_min();
  const int64_t lowest = std::numeric_limits<int64_t>::min(), highest = std::numeric_limits<int64_t>::max();
  Tensor f32 = from_vector(std::vector<float>{0.1f, -2.5f, 3e38f, -0.0f, 1e-40f, 7.0f}, {2, 3});
  Tensor f64 = from_vector(std::vector<double>{0.1, -1e300, tiny}, {3});
  Tensor i64 = from_vector(std::vector<int64_t>{lowest, -1, 0, highest}, {2, 2});
  Tensor mask = from_vector(std::vector<bool>{true, false, false, true, true}, {5});
  // A transposed view: [3,2] over [2,3] storage, so row-major order differs from storage order.
  Tensor transposed = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}).t();
  Tensor every_other = from_vector(std::vector<int64_t>{10, 11, 12, 13, 14, 15}).slice(0, 1, 6, 2);  // 11, 13, 15
  Tensor scalar = scalar_tensor(2.5, {.dtype = DType::Float64});
  Tensor nothing = zeros({0, 3});
  REQUIRE(!transposed.is_contiguous());
  REQUIRE(!every_other.is_contiguous());

  const NamedTensors saved = {{"f32", f32},
                              {"f64", f64},
                              {"i64", i64},
                              {"mask", mask},
                              {"transposed", transposed},
                              {"every_other", every_other},
                              {"scalar", scalar},
                              {"nothing", nothing}};
  const Metadata metadata = {{"step", "1000"}, {"note", "héllo, wörld"}, {"empty", ""}};
  save_safetensors(dir.file("model.safetensors"), saved, metadata);
  Safetensors file = load_safetensors(dir.file("model.safetensors"));

  CHECK(file.checksum_verified);
  CHECK(file.metadata == metadata);  // the checksum entry is not handed back as user metadata
  REQUIRE(file.tensors.size() == saved.size());
  for (size_t i = 0; i < saved.size(); ++i) CHECK(file.tensors[i].first == saved[i].first);  // saved order kept

  auto get = [&](const std::string& name) {
    const Tensor* t = file.find(name);
    REQUIRE_MESSAGE(t != nullptr, name);
    return *t;
  };
  CHECK(get("f32").dtype() == DType::Float32);
  CHECK(get("f32").shape() == Shape{2, 3});
  CHECK(get("f32").to_vector<float>() == std::vector<float>{0.1f, -2.5f, 3e38f, -0.0f, 1e-40f, 7.0f});
  CHECK(std::signbit(get("f32").to_vector<float>()[3]));  // -0.0 stays negative
  CHECK(get("f64").to_vector<double>() == std::vector<double>{0.1, -1e300, tiny});
  CHECK(get("i64").shape() == Shape{2, 2});
  CHECK(get("i64").to_vector<int64_t>() == std::vector<int64_t>{lowest, -1, 0, highest});
  CHECK(get("mask").dtype() == DType::Bool);
  CHECK(get("mask").to_vector<bool>() == std::vector<bool>{true, false, false, true, true});
  CHECK(get("transposed").shape() == Shape{3, 2});
  CHECK(get("transposed").to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK(get("every_other").to_vector<int64_t>() == std::vector<int64_t>{11, 13, 15});
  CHECK(get("scalar").dim() == 0);
  CHECK(get("scalar").item() == 2.5);
  CHECK(get("nothing").shape() == Shape{0, 3});
  CHECK(file.find("absent") == nullptr);

  // The loaded tensors own their memory: changing the originals does not change them.
  f32.fill_(9.0);
  CHECK(get("f32").to_vector<float>()[0] == 0.1f);
}

TEST_CASE("checkpoint: an independent reader sees the documented byte layout") {
  TempDir dir;
  const std::vector<float> a = {1.5f, -2.0f};
  const std::vector<int64_t> b = {1, -2, 3};
  save_safetensors(dir.file("layout.safetensors"),
                   {{"a", from_vector(a)}, {"b", from_vector(b)}, {"c", from_vector(std::vector<bool>{true, false})}},
                   {{"k", "v"}});
  const Bytes bytes = read_bytes(dir.file("layout.safetensors"));

  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  CHECK(n % 8 == 0);  // padded like the reference writer
  REQUIRE(8 + n <= bytes.size());
  const std::string text(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  const size_t json_end = text.rfind('}') + 1;
  CHECK(text.find_first_not_of(' ', json_end) == std::string::npos);  // only spaces after the JSON
  CHECK(text.size() - json_end < 8);

  const nlohmann::json header = nlohmann::json::parse(text);
  CHECK(header["a"]["dtype"] == "F32");
  CHECK(header["a"]["shape"] == nlohmann::json::array({2}));
  CHECK(header["a"]["data_offsets"] == nlohmann::json::array({0, 8}));
  CHECK(header["b"]["dtype"] == "I64");
  CHECK(header["b"]["data_offsets"] == nlohmann::json::array({8, 32}));
  CHECK(header["c"]["dtype"] == "BOOL");
  CHECK(header["c"]["data_offsets"] == nlohmann::json::array({32, 34}));
  CHECK(header["__metadata__"]["k"] == "v");
  CHECK(header.size() == 4);  // a, b, c, __metadata__

  // The data section is exactly the three tensors' raw little-endian values, back to back.
  const Bytes data(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
  Bytes expected_data = raw_bytes(a);
  Bytes b_bytes = raw_bytes(b);
  expected_data.insert(expected_data.end(), b_bytes.begin(), b_bytes.end());
  expected_data.push_back(1);
  expected_data.push_back(0);
  CHECK(data == expected_data);

  // The checksum, recomputed from its documented canonical form with a separately written FNV-1a.
  CHECK(fnv1a64({}) == 0xcbf29ce484222325ULL);  // published FNV-1a 64 test vectors
  CHECK(fnv1a64({'a'}) == 0xaf63dc4c8601ec8cULL);
  CHECK(fnv1a64({'f', 'o', 'o', 'b', 'a', 'r'}) == 0x85944171f73967e8ULL);
  // Version 2: the metadata by key, then each tensor by name with its bytes; no offsets.
  Bytes canonical;
  append_string(canonical, "hcgrad-checksum-2");
  append_u64(canonical, 1);
  append_string(canonical, "k");
  append_string(canonical, "v");
  append_u64(canonical, 3);
  struct Row {
    std::string name, dtype;
    std::vector<uint64_t> shape;
    Bytes bytes;
  };
  for (const Row& row : {Row{"a", "F32", {2}, raw_bytes(a)}, Row{"b", "I64", {3}, b_bytes}, Row{"c", "BOOL", {2}, {1, 0}}}) {
    append_string(canonical, row.name);
    append_string(canonical, row.dtype);
    append_u64(canonical, row.shape.size());
    for (uint64_t size : row.shape) append_u64(canonical, size);
    append_u64(canonical, row.bytes.size());
    canonical.insert(canonical.end(), row.bytes.begin(), row.bytes.end());
  }
  char expected_checksum[40];
  std::snprintf(expected_checksum, sizeof(expected_checksum), "fnv1a64-v2:%016llx",
                static_cast<unsigned long long>(fnv1a64(canonical)));
  CHECK(header["__metadata__"]["hcgrad_checksum"] == std::string(expected_checksum));
}

TEST_CASE("checkpoint: a file written by Python's safetensors library loads with its values") {
  Safetensors file = load_safetensors(fixture_path());
  CHECK_FALSE(file.checksum_verified);  // the reference writer adds no checksum
  CHECK(file.metadata == Metadata{{"format", "np"}, {"made_by", "tools/make_safetensors_fixture.py"}});
  REQUIRE(file.tensors.size() == 5);

  REQUIRE(file.find("weight") != nullptr);
  const Tensor& weight = *file.find("weight");
  CHECK(weight.dtype() == DType::Float32);
  CHECK(weight.shape() == Shape{2, 3});
  CHECK(weight.to_vector<float>() == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});

  REQUIRE(file.find("ids") != nullptr);
  CHECK(file.find("ids")->to_vector<int64_t>() == std::vector<int64_t>{-3, 0, 7, (int64_t{1} << 40) + 1});

  REQUIRE(file.find("mask") != nullptr);
  CHECK(file.find("mask")->shape() == Shape{2, 2});
  CHECK(file.find("mask")->to_vector<bool>() == std::vector<bool>{true, false, false, true});

  REQUIRE(file.find("scale") != nullptr);
  CHECK(file.find("scale")->dtype() == DType::Float64);
  CHECK(file.find("scale")->dim() == 0);
  CHECK(file.find("scale")->item() == 0.1);

  REQUIRE(file.find("empty") != nullptr);
  CHECK(file.find("empty")->shape() == Shape{0, 3});
}

TEST_CASE("checkpoint: every truncation of a valid file is refused") {
  TempDir dir;
  save_safetensors(dir.file("small.safetensors"),
                   {{"w", from_vector(std::vector<float>{1, 2, 3})}, {"n", from_vector(std::vector<int64_t>{4})}});
  const Bytes bytes = read_bytes(dir.file("small.safetensors"));
  CHECK(parse_safetensors(bytes.data(), bytes.size(), "small").tensors.size() == 2);
  int refused = 0;
  for (size_t length = 0; length < bytes.size(); ++length) {
    CAPTURE(length);
    std::string message = refusal([&] { parse_safetensors(bytes.data(), length, "small"); });
    CHECK(contains(message, "parse_safetensors: 'small': "));
    refused += contains(message, "<no CheckpointError>") ? 0 : 1;
  }
  CHECK(refused == static_cast<int>(bytes.size()));
}

TEST_CASE("checkpoint: a flipped data byte or a wrong checksum is refused") {
  TempDir dir;
  save_safetensors(dir.file("c.safetensors"), {{"w", from_vector(std::vector<float>{1, 2, 3, 4})}});
  const Bytes good = read_bytes(dir.file("c.safetensors"));

  Bytes flipped = good;
  flipped[flipped.size() - 3] ^= 0x10;  // inside the last float
  CHECK(contains(parse_refusal(flipped), "checksum mismatch: the file was edited or is corrupt"));

  // Swapping in a different but well-formed checksum, and a malformed one.
  const std::string text(good.begin(), good.end());
  const std::string prefix = "fnv1a64-v2:";
  const size_t at = text.find(prefix) + prefix.size();
  REQUIRE(at != std::string::npos + prefix.size());
  Bytes other = good;
  other[at] = other[at] == '0' ? '1' : '0';
  CHECK(contains(parse_refusal(other), "checksum mismatch"));
  Bytes malformed = good;
  malformed[at] = 'X';
  const std::string message = parse_refusal(malformed);
  CHECK(contains(message, "hcgrad_checksum"));
  CHECK(contains(message, "16 hex digits"));
}

TEST_CASE("checkpoint: malformed headers are refused with a message naming the problem") {
  const std::string f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const Bytes eight(8, 0);
  struct Bad {
    std::string what;
    Bytes file;
    std::vector<std::string> words;  // each must appear in the message
  };
  std::vector<Bad> cases = {
      {"shorter than 8 bytes", {1, 2, 3}, {"3 bytes long", "shorter than the 8-byte"}},
      {"header size beyond the file",
       Bytes{100, 0, 0, 0, 0, 0, 0, 0, '{', '}'},
       {"header size 100", "only 2 bytes follow", "truncated"}},
      {"absurd header size", Bytes{0, 0, 0, 0, 0, 0, 0, 1, '{', '}'}, {"100 MB limit"}},
      {"empty header", make_file(""), {"does not start with '{'"}},
      {"header not an object", make_file("[1,2]"), {"does not start with '{'"}},
      {"header not JSON", make_file("{nope"), {"header is not valid JSON"}},
      {"invalid UTF-8 in the header", make_file("{\"\xff\":1}"), {"header is not valid JSON"}},
      {"trailing junk after the JSON", make_file("{} x"), {"header is not valid JSON"}},
      {"entry not an object", make_file(R"({"w":3})"), {"tensor \"w\"", "number", "expected an object"}},
      {"missing dtype",
       make_file(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", eight),
       {"\"w\"", "missing \"dtype\""}},
      {"dtype not a string",
       make_file(R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", eight),
       {"\"w\"", "\"dtype\" is a JSON number"}},
      {"unsupported dtype",
       make_file(R"({"half":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", Bytes(4, 0)),
       {"tensor \"half\"", "dtype \"F16\" is not supported"}},
      {"missing shape", make_file(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", eight), {"missing \"shape\""}},
      {"shape not an array",
       make_file(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", eight),
       {"\"shape\" is a JSON number"}},
      {"negative size",
       make_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
       {"\"w\"", "-2", "non-negative integers"}},
      {"float size",
       make_file(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight),
       {"2.0", "non-negative integers"}},
      {"string size",
       make_file(R"({"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", eight),
       {"\"2\"", "non-negative integers"}},
      {"byte count overflows",
       make_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight),
       {"\"w\"", "too large"}},
      {"sizes overflow before a zero",
       make_file(R"({"w":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})"),
       {"too large"}},
      {"byte count past int64",
       make_file(R"({"m":{"dtype":"BOOL","shape":[0,4611686018427387904,2],"data_offsets":[0,0]}})"),
       {"\"m\"", "too large"}},
      {"size beyond u64",
       make_file(R"({"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}})", eight),
       {"non-negative integers"}},
      {"missing data_offsets", make_file(R"({"w":{"dtype":"F32","shape":[2]}})", eight), {"missing \"data_offsets\""}},
      {"one offset",
       make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", eight),
       {"\"data_offsets\" is [8]", "[begin, end]"}},
      {"float offset",
       make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}})", eight),
       {"\"data_offsets\" is [0,8.0]"}},
      {"negative offset",
       make_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[-8,-8]}})"),
       {"\"data_offsets\""}},
      {"string offset",
       make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":["0",8]}})", eight),
       {"\"data_offsets\""}},
      {"end before begin",
       make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight),
       {"\"w\"", "[8, 0] end before they begin"}},
      {"offsets do not match the shape",
       make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", Bytes(4, 0)),
       {"\"w\"", "span 4 bytes", "shape [2] of F32 needs 8"}},
      {"offsets past the data",
       make_file(R"({"w":)" + f32x2 + "}", Bytes(4, 0)),
       {"\"w\"", "past the end of the data section (4 bytes)"}},
      {"overlap",
       make_file(R"({"a":)" + f32x2 + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", Bytes(12, 0)),
       {"\"a\" and \"b\" overlap"}},
      {"hole",
       make_file(R"({"a":)" + f32x2 + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", Bytes(20, 0)),
       {"hole of 4 bytes before tensor \"b\""}},
      {"bytes after the last tensor",
       make_file(R"({"a":)" + f32x2 + "}", Bytes(12, 0)),
       {"4 bytes after the last tensor"}},
      {"duplicate tensor", make_file(R"({"a":)" + f32x2 + R"(,"a":)" + f32x2 + "}", eight), {"the key \"a\" twice"}},
      {"duplicate field",
       make_file(R"({"a":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})", eight),
       {"the key \"dtype\" twice"}},
      {"empty name", make_file(R"({"":)" + f32x2 + "}", eight), {"empty tensor name"}},
      {"metadata not an object", make_file(R"({"__metadata__":["a"]})"), {"\"__metadata__\" is a JSON array"}},
      {"metadata value not a string",
       make_file(R"({"__metadata__":{"step":3}})"),
       {"metadata \"step\"", "must be strings"}},
      {"malformed checksum",
       make_file(R"({"__metadata__":{"hcgrad_checksum":"md5:00"}})"),
       {"\"md5:00\"", "16 hex digits"}},
      {"BOOL byte not 0 or 1",
       make_file(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", Bytes{1, 0, 2}),
       {"tensor \"m\"", "element 2 is the byte 2"}},
  };
  // Nesting a million deep must not overflow the stack (in parsing, in messages, or in freeing the JSON).
  const std::string deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  cases.push_back({"deeply nested size",
                   make_file(R"({"w":{"dtype":"F32","shape":[)" + deep + R"(],"data_offsets":[0,0]}})"),
                   {"\"shape\" has a JSON array with 1 element"}});
  cases.push_back({"deeply nested offsets",
                   make_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":)" + deep + "}}"),
                   {"\"data_offsets\" is a JSON array with 1 element"}});
  cases.push_back({"deeply nested metadata",
                   make_file(R"({"__metadata__":{"k":)" + deep + "}}"),
                   {"metadata \"k\" is a JSON array"}});
  // A hostile name is shown escaped and cut short, not pasted whole into the message.
  const std::string long_name = "\\u0001" + std::string(100'000, 'x');
  cases.push_back({"huge escaped name",
                   make_file("{\"" + long_name + R"(":{"dtype":"F16","shape":[0],"data_offsets":[0,0]}})"),
                   {"tensor \"\\u0001xxx", "xxx...", "\"F16\" is not supported"}});

  for (const Bad& bad : cases) {
    INFO(bad.what);
    const std::string message = parse_refusal(bad.file);
    CHECK(message.size() < 1000);
    CAPTURE(message);
    CHECK(contains(message, "parse_safetensors: 'hand-made.safetensors': "));
    for (const std::string& word : bad.words) CHECK_MESSAGE(contains(message, word), word);
  }

  // The same rules leave well-formed edge cases alone: no tensors at all, unknown extra fields.
  CHECK(parse_safetensors(make_file("{}").data(), make_file("{}").size(), "x").tensors.empty());
  Bytes extra = make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"note":1}})", eight);
  CHECK(parse_safetensors(extra.data(), extra.size(), "x").tensors.size() == 1);
}

TEST_CASE("checkpoint: a missing or unreadable file is refused with its path") {
  TempDir dir;
  std::string message = refusal([&] { load_safetensors(dir.file("absent.safetensors")); });
  CHECK(contains(message, "load_safetensors: cannot open '" + dir.file("absent.safetensors") + "'"));
  CHECK(contains(message, "No such file"));
  message = refusal([&] { load_safetensors(dir.path.string()); });  // a directory
  CHECK(contains(message, "load_safetensors: cannot"));
  CHECK(contains(message, dir.path.string()));
  // Streams that never end (or, for a FIFO without a writer, never begin) are refused before a byte is read.
  CHECK(contains(refusal([] { load_safetensors("/dev/zero"); }), "'/dev/zero' is not a regular file"));
  REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0600) == 0);
  CHECK(contains(refusal([&] { load_safetensors(dir.file("fifo")); }), "is not a regular file"));
}

TEST_CASE("checkpoint: copy_into checks every tensor first, then copies all of them") {
  TempDir dir;
  save_safetensors(dir.file("ckpt.safetensors"), {{"w", tensor({1, 2, 3, 4}, {2, 2})}, {"b", tensor({5, 6})}});
  const Safetensors file = load_safetensors(dir.file("ckpt.safetensors"));

  Tensor w = zeros({2, 2}, {.requires_grad = true});  // parameters require grad
  Tensor b = zeros({2}, {.requires_grad = true});
  auto untouched = [&] {
    return w.to_vector<float>() == std::vector<float>{0, 0, 0, 0} && b.to_vector<float>() == std::vector<float>{0, 0};
  };

  SUBCASE("wrong shape") {
    Tensor w_t = zeros({4}, {.requires_grad = true});
    std::string message = refusal([&] { copy_into(file, {{"b", b}, {"w", w_t}}, "ckpt.safetensors"); });
    CHECK(contains(message, "copy_into: 'ckpt.safetensors'"));
    CHECK(contains(message, "tensor \"w\" is float32 [2,2] in the file but float32 [4] in the destination"));
    CHECK(untouched());  // b matched, but nothing is copied when anything fails
  }
  SUBCASE("wrong dtype") {
    Tensor w64 = zeros({2, 2}, {.dtype = DType::Float64});
    std::string message = refusal([&] { copy_into(file, {{"w", w64}, {"b", b}}, "ckpt.safetensors"); });
    CHECK(contains(message, "tensor \"w\" is float32 [2,2] in the file but float64 [2,2] in the destination"));
    CHECK(untouched());
  }
  SUBCASE("missing from the file") {
    Tensor extra = zeros({3});
    std::string message = refusal([&] { copy_into(file, {{"w", w}, {"b", b}, {"gamma", extra}}, "ckpt.safetensors"); });
    CHECK(contains(message, "tensor \"gamma\" is missing from the file"));
    CHECK(untouched());
  }
  SUBCASE("unexpected in the file, unless allowed") {
    std::string message = refusal([&] { copy_into(file, {{"w", w}}, "ckpt.safetensors"); });
    CHECK(contains(message, "unexpected tensor \"b\" in the file"));
    CHECK(untouched());
    copy_into(file, {{"w", w}}, "ckpt.safetensors", /*allow_extra=*/true);
    CHECK(w.to_vector<float>() == std::vector<float>{1, 2, 3, 4});
    CHECK(b.to_vector<float>() == std::vector<float>{0, 0});
  }
  SUBCASE("every problem in one message") {
    std::string message = refusal([&] { copy_into(file, {{"w", zeros({1})}, {"z", zeros({1})}}, "ckpt.safetensors"); });
    CHECK(contains(message, "\"w\" is float32 [2,2]"));
    CHECK(contains(message, "\"z\" is missing"));
    CHECK(contains(message, "unexpected tensor \"b\""));
  }
  SUBCASE("a match copies everything, into parameters that require grad") {
    copy_into(file, {{"w", w}, {"b", b}}, "ckpt.safetensors");
    CHECK(w.to_vector<float>() == std::vector<float>{1, 2, 3, 4});
    CHECK(b.to_vector<float>() == std::vector<float>{5, 6});
    CHECK(w.requires_grad());
    CHECK(w.is_leaf());
    // A strided destination (a transposed view) receives the values in its own row-major order.
    Tensor storage = zeros({2, 2});
    copy_into(file, {{"w", storage.t()}}, "ckpt.safetensors", true);
    CHECK(storage.to_vector<float>() == std::vector<float>{1, 3, 2, 4});
  }
}

TEST_CASE("checkpoint: a failed save leaves the previous file byte-identical and no temporary file") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  save_safetensors(path, {{"w", tensor({1, 2, 3})}});
  const Bytes before = read_bytes(path);
  const std::vector<std::string> only_the_file = {"model.safetensors"};

  struct Bad {
    std::string what;
    NamedTensors tensors;
    Metadata metadata;
    std::string words;
  };
  const std::vector<Bad> cases = {
      {"duplicate names", {{"w", tensor({1})}, {"w", tensor({2})}}, {}, "tensor name \"w\" appears twice"},
      {"undefined tensor", {{"w", tensor({1})}, {"ghost", Tensor()}}, {}, "tensor \"ghost\" is undefined"},
      {"empty name", {{"", tensor({1})}}, {}, "tensor #0 has an empty name"},
      {"reserved name", {{"__metadata__", tensor({1})}}, {}, "\"__metadata__\" is reserved"},
      {"reserved metadata key", {{"w", tensor({1})}}, {{"hcgrad_checksum", "x"}}, "\"hcgrad_checksum\" is reserved"},
      {"name not UTF-8", {{"w\xff", tensor({1})}}, {}, "is not valid UTF-8"},
  };
  for (const Bad& bad : cases) {
    INFO(bad.what);
    std::string message = refusal([&] { save_safetensors(path, bad.tensors, bad.metadata); });
    CHECK(contains(message, "save_safetensors: '" + path + "': "));
    CHECK(contains(message, bad.words));
    CHECK(read_bytes(path) == before);
    CHECK(dir.listing() == only_the_file);
  }

  // A failure after the data is written: the rename onto a non-empty directory fails, the temporary
  // file goes, the directory stays.
  fs::create_directories(dir.path / "taken" / "inside");
  std::string message = refusal([&] { save_safetensors(dir.file("taken"), {{"w", tensor({1})}}); });
  CHECK(contains(message, "cannot rename"));
  CHECK(fs::is_directory(dir.path / "taken" / "inside"));
  CHECK(dir.listing() == std::vector<std::string>{"model.safetensors", "taken"});

  // Nowhere to write: the directory does not exist.
  message = refusal([&] { save_safetensors(dir.file("no/such/dir/m.safetensors"), {{"w", tensor({1})}}); });
  CHECK(contains(message, "cannot create temporary file"));

  // A successful save replaces the old file whole and leaves nothing else behind.
  save_safetensors(path, {{"w", tensor({7, 8})}});
  CHECK(load_safetensors(path).find("w")->to_vector<float>() == std::vector<float>{7, 8});
  CHECK(dir.listing() == std::vector<std::string>{"model.safetensors", "taken"});
}

namespace {
// Replaces the first `from` in the bytes with `to` (same length, so the header size stays right).
Bytes edited(Bytes bytes, const std::string& from, const std::string& to) {
  REQUIRE(from.size() == to.size());
  std::string text(bytes.begin(), bytes.end());
  const size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  std::copy(to.begin(), to.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at));
  return bytes;
}
}  // namespace

TEST_CASE("checkpoint: the checksum covers the metadata, so an edited value is refused") {
  TempDir dir;
  save_safetensors(dir.file("run.safetensors"), {{"w", from_vector(std::vector<float>{1, 2})}},
                   {{"state.step", "10"}, {"train.lr", "0.003"}});
  const Bytes good = read_bytes(dir.file("run.safetensors"));
  CHECK(parse_safetensors(good.data(), good.size(), "run").checksum_verified);
  // A pair, not a structured binding: clang before 16 cannot capture a binding in CAPTURE's lambda.
  for (auto edit : {std::pair{"\"state.step\":\"10\"", "\"state.step\":\"11\""},
                    std::pair{"\"train.lr\":\"0.003\"", "\"train.lr\":\"0.004\""},
                    std::pair{"\"state.step\"", "\"state_step\""}}) {
    CAPTURE(edit.second);
    CHECK(contains(parse_refusal(edited(good, edit.first, edit.second)),
                   "checksum mismatch: the file was edited or is corrupt"));
  }
}

TEST_CASE("checkpoint: the checksum does not depend on the layout: a file laid out another way still verifies") {
  TempDir dir;
  const std::vector<float> a = {1.5f, -2.0f};
  const std::vector<int64_t> b = {1, -2, 3};
  save_safetensors(dir.file("one.safetensors"), {{"a", from_vector(a)}, {"b", from_vector(b)}}, {{"k", "v"}});
  const Bytes bytes = read_bytes(dir.file("one.safetensors"));
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));

  // The same tensors and metadata, b first, with spaces in the JSON and 16 bytes of padding: what another
  // writer (Python's safetensors orders by alignment, then name) might produce.
  header["b"]["data_offsets"] = {0, 24};
  header["a"]["data_offsets"] = {24, 32};
  Bytes data = raw_bytes(b), a_bytes = raw_bytes(a);
  data.insert(data.end(), a_bytes.begin(), a_bytes.end());
  std::string text = header.dump(2) + std::string(16, ' ');
  const Bytes relaid = make_file(text, data);
  REQUIRE(relaid != bytes);
  Safetensors file = parse_safetensors(relaid.data(), relaid.size(), "relaid");
  CHECK(file.checksum_verified);
  CHECK(file.find("a")->to_vector<float>() == a);
  CHECK(file.find("b")->to_vector<int64_t>() == b);

  // And swapping the two tensors' names is a change, not a layout: refused.
  header["a"]["data_offsets"] = {0, 24};
  header["a"]["dtype"] = "I64";
  header["a"]["shape"] = {3};
  header["b"]["data_offsets"] = {24, 32};
  header["b"]["dtype"] = "F32";
  header["b"]["shape"] = {2};
  const Bytes swapped = make_file(header.dump(), data);
  CHECK(contains(parse_refusal(swapped), "checksum mismatch"));
}

TEST_CASE("checkpoint: a checksummed file re-saved by Python's safetensors with its metadata verifies") {
  // tools/make_safetensors_fixture.py computed hcgrad's checksum in Python and let the reference writer lay
  // the file out: a different order and padding than hcgrad's.
  Safetensors file = load_safetensors(fixture_path("resaved_with_checksum.safetensors"));
  CHECK(file.checksum_verified);
  CHECK(file.metadata == Metadata{{"format", "np"}, {"made_by", "tools/make_safetensors_fixture.py"}});
  REQUIRE(file.find("weight") != nullptr);
  CHECK(file.find("weight")->to_vector<float>() == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});
  CHECK(file.tensors.front().first != "weight");  // laid out by the reference writer, not in hcgrad's order
}

TEST_CASE("checkpoint: a file with the checksum of earlier versions (fnv1a64:, no metadata) still verifies") {
  Safetensors file = load_safetensors(fixture_path("legacy_checksum.safetensors"));
  CHECK(file.checksum_verified);
  CHECK(file.metadata == Metadata{{"step", "7"}});
  REQUIRE(file.find("step") != nullptr);
  CHECK(file.find("step")->item() == 7);
  Bytes flipped = read_bytes(fixture_path("legacy_checksum.safetensors"));
  flipped.back() ^= 1;
  CHECK(contains(parse_refusal(flipped), "checksum mismatch"));
}

namespace {

// The layers of tools/make_conv_layers_fixture.py, registered under the torch module's attribute names so that
// named_parameters() reads as its state_dict ("conv2d.weight", "norm.bias", ...).
struct ConvLayers : Module {
  std::shared_ptr<Conv2d> conv2d, conv2d_grouped;
  std::shared_ptr<Conv1d> conv1d;
  std::shared_ptr<GroupNorm> norm;
  explicit ConvLayers(Generator& gen) {
    conv2d = register_module("conv2d", std::make_shared<Conv2d>(2, 4, 3, gen, ConvOptions{.padding = 1}));
    conv2d_grouped = register_module(
        "conv2d_grouped",
        std::make_shared<Conv2d>(4, 6, 3, gen, ConvOptions{.stride = 2, .dilation = 2, .groups = 2, .bias = false}));
    conv1d = register_module("conv1d", std::make_shared<Conv1d>(2, 3, 3, gen));
    norm = register_module("norm", std::make_shared<GroupNorm>(2, 4));
  }
};

}  // namespace

TEST_CASE("checkpoint: torch's Conv2d, Conv1d and GroupNorm state_dict loads into nn layers, outputs as torch's") {
  // conv_layers.safetensors: torch.nn's state_dict (safetensors.torch.save_file) plus input.<layer> and
  // output.<layer>, torch's output of each layer on that input.
  const std::string path = fixture_path("conv_layers.safetensors");
  const Safetensors file = load_safetensors(path);
  CHECK_FALSE(file.checksum_verified);
  CHECK(file.metadata == Metadata{{"made_by", "tools/make_conv_layers_fixture.py"}});

  Generator gen(5);
  ConvLayers layers(gen);
  const NamedTensors params = layers.named_parameters();
  std::vector<std::string> names;
  for (const auto& [name, p] : params) names.push_back(name);
  CHECK(names == std::vector<std::string>{"conv2d.weight", "conv2d.bias", "conv2d_grouped.weight", "conv1d.weight",
                                          "conv1d.bias", "norm.weight", "norm.bias"});
  // Every tensor of the file is a parameter or one of the inputs / outputs.
  for (const auto& [name, t] : file.tensors) {
    CAPTURE(name);
    CHECK((name.starts_with("input.") || name.starts_with("output.") ||
           std::find(names.begin(), names.end(), name) != names.end()));
  }
  for (const auto& [name, p] : params) {
    CAPTURE(name);
    REQUIRE(file.find(name) != nullptr);
    CHECK(file.find(name)->shape() == p.shape());  // torch's layouts: [out, in / groups, k(, k)], [C]
    CHECK(values(*file.find(name)) != values(p));  // not already equal by chance of init
  }
  copy_into(file, params, path, /*allow_extra=*/true);  // the inputs and outputs are the extra tensors
  for (const auto& [name, p] : params) {
    CAPTURE(name);
    CHECK(values(p) == values(*file.find(name)));
  }

  hcgrad::autograd::NoGradGuard no_grad;
  auto check_layer = [&](const std::string& layer, const Tensor& got) {
    CAPTURE(layer);
    REQUIRE(file.find("output." + layer) != nullptr);
    const Tensor& expected = *file.find("output." + layer);
    CHECK(got.shape() == expected.shape());
    CHECK(max_abs_diff(values(got), values(expected)) <= 1e-5);
  };
  auto input = [&](const std::string& layer) {
    REQUIRE(file.find("input." + layer) != nullptr);
    return *file.find("input." + layer);
  };
  check_layer("conv2d", layers.conv2d->forward(input("conv2d")));                          // [2, 4, 5, 5]
  check_layer("conv2d_grouped", layers.conv2d_grouped->forward(input("conv2d_grouped")));  // [1, 6, 2, 1]
  check_layer("conv1d", layers.conv1d->forward(input("conv1d")));                          // [2, 3, 4]
  check_layer("norm", layers.norm->forward(input("norm")));                                // [2, 4, 3, 3]
}
