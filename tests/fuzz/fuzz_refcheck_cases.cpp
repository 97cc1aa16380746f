// libFuzzer target for refcheck's case-file reader (tools/refcheck/cases.cpp): arbitrary bytes as a case file;
// each case's header is read and every {"data", "shape"} object under "inputs", "outputs", "params" and
// "grads" becomes a tensor. Any input must give cases and tensors, or an hcgrad::Error — nothing else.
//
//   bash tools/fuzz.sh 60 refcheck_cases
//   build-fuzz/tests/fuzz/fuzz_refcheck_cases FILE
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "refcheck.h"

namespace {

void read_tensors(const refcheck::json& group) {
  if (!group.is_object()) return;
  for (const auto& [key, value] : group.items()) {
    try {
      if (value.is_object() && value.contains("data")) (void)refcheck::tensor_of(value).sum().item();
    } catch (const hcgrad::Error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const refcheck::json file =
        refcheck::parse_case_file(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
    const refcheck::json& cases = file.at("cases");
    for (size_t i = 0; i < cases.size(); ++i) {
      try {
        (void)refcheck::case_header(cases[i], i, "fuzz input");
        for (const char* group : {"inputs", "outputs", "params", "grads"})
          if (cases[i].contains(group)) read_tensors(cases[i].at(group));
      } catch (const hcgrad::Error&) {
      }
    }
  } catch (const hcgrad::Error&) {
  }
  return 0;
}
