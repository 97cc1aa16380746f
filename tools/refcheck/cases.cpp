// Reading refcheck's case files (refcheck.h). A case file is input like any other: a malformed one is refused
// with a message, never a crash or a tensor of garbage.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "refcheck.h"

namespace refcheck {

using hcgrad::Error;

namespace {
constexpr uintmax_t kMaxFileBytes = uintmax_t(256) << 20;  // the largest case file today is under 1 MiB
}

json parse_case_file(std::string_view text, const std::string& source) {
  json file;
  try {
    file = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw Error(hcgrad::detail::concat(source, ": not valid JSON: ", e.what()));
  }
  HC_CHECK(file.is_object() && file.contains("cases") && file.at("cases").is_array(), Error, source,
           ": expected a JSON object with an array \"cases\"");
  return file;
}

json read_case_file(const std::string& path) {
  std::error_code ec;
  HC_CHECK(std::filesystem::is_regular_file(path, ec), Error, "cannot open ", path, ": not a regular file");
  const uintmax_t size = std::filesystem::file_size(path, ec);
  HC_CHECK(!ec && size <= kMaxFileBytes, Error, path, ": ", size, " bytes, more than a case file's limit of ",
           kMaxFileBytes);
  std::ifstream in(path, std::ios::binary);
  HC_CHECK(in, Error, "cannot open ", path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_case_file(text, path);
}

CaseHeader case_header(const json& c, size_t index, const std::string& source) {
  auto fail = [&](const std::string& what) { throw Error(hcgrad::detail::concat(source, ": case ", index, ": ", what)); };
  if (!c.is_object()) fail("is not a JSON object");
  CaseHeader header;
  for (const char* key : {"name", "kind"})
    if (!c.contains(key) || !c.at(key).is_string()) fail(std::string("needs a string \"") + key + "\"");
  header.name = c.at("name").get<std::string>();
  header.kind = c.at("kind").get<std::string>();
  if (c.contains("tolerance")) {
    const json& tolerance = c.at("tolerance");
    if (!tolerance.is_number()) fail("\"tolerance\" is not a number");
    header.tolerance = tolerance.get<double>();
    if (!(std::isfinite(header.tolerance) && header.tolerance > 0)) fail("\"tolerance\" must be finite and > 0");
  }
  return header;
}

Tensor tensor_of(const json& t) {
  HC_CHECK(t.is_object() && t.contains("data") && t.contains("shape"), Error,
           "refcheck: a tensor is {\"data\": [...], \"shape\": [...]}");
  const json& data = t.at("data");
  const json& dims = t.at("shape");
  HC_CHECK(data.is_array() && dims.is_array(), Error, "refcheck: a tensor's \"data\" and \"shape\" must be arrays");
  std::vector<float> values;
  values.reserve(data.size());
  for (const json& v : data) {
    HC_CHECK(v.is_number(), Error, "refcheck: a tensor's \"data\" holds a JSON ", v.type_name(), ", not a number");
    const double value = v.get<double>();  // a double out of float's range would be undefined as a float
    HC_CHECK(std::abs(value) <= std::numeric_limits<float>::max(), Error, "refcheck: a tensor's \"data\" holds ",
             value, ", outside float32's range");
    values.push_back(static_cast<float>(value));
  }
  hcgrad::Shape shape;
  for (const json& d : dims) {
    HC_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()), Error,
             "refcheck: a tensor's \"shape\" holds ", d.dump(), ", not a size");
    shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  // from_vector checks the shape (overflow included) against the values; a 0-d shape [] is one value.
  return hcgrad::from_vector(values, shape.empty() ? hcgrad::Shape{1} : shape).reshape(shape);
}

}  // namespace refcheck
