// refcheck: runs reference cases (tests/fixtures/connections/*.json, format in tests/fixtures/connections/README.md)
// through hcgrad and compares every output and gradient with the reference library's values.
//
//   build/tools/refcheck FILE.json [FILE.json ...]
//
// One line per case: its name, the largest absolute and relative error, and pass / FAIL / skipped with the
// reason (a documented library bug, or a kind hcgrad does not run). Ends with "N passed, N failed,
// N skipped"; exits 1 if any case failed or a file could not be read.
#include <cmath>
#include <cstdio>

#include "refcheck.h"

namespace refcheck {

void compare(Comparison& c, const std::string& what, const Tensor& got, const json& ref, double tol) {
  std::vector<double> a = got.to(hcgrad::DType::Float64).contiguous().to_vector<double>();
  std::vector<float> b = ref.at("data").get<std::vector<float>>();
  if (a.size() != b.size()) {
    if (c.failure.empty())
      c.failure = what + ": " + std::to_string(a.size()) + " values, reference has " + std::to_string(b.size());
    return;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = std::abs(a[i] - b[i]), rel = err / std::max(std::abs(double(b[i])), 1e-30);
    c.max_abs = std::max(c.max_abs, err);
    if (std::abs(b[i]) > 1e-6) c.max_rel = std::max(c.max_rel, rel);
    if (!(err <= tol + tol * std::abs(double(b[i]))) && c.failure.empty())
      c.failure = what + "[" + std::to_string(i) + "]: " + std::to_string(a[i]) + " vs " + std::to_string(b[i]);
  }
}

void load_params(const json& params, const hcgrad::nn::NamedTensors& destinations,
                 const std::function<Tensor(const std::string&, const Tensor&)>& adapt) {
  using namespace hcgrad;
  std::map<std::string, const json*> given;
  for (auto& [name, t] : params.items()) given[name] = &t;
  HC_CHECK(given.size() == destinations.size(), Error, "refcheck: the case has ", given.size(),
           " parameters, the module ", destinations.size());
  autograd::NoGradGuard no_grad;
  for (const auto& [name, dest] : destinations) {
    auto it = given.find(name);
    HC_CHECK(it != given.end(), Error, "refcheck: the case has no parameter '", name, "'");
    Tensor value = tensor_of(*it->second);
    if (adapt) value = adapt(name, value);
    HC_CHECK(value.numel() == dest.numel(), ShapeError, "refcheck: parameter '", name, "' has shape ", value.shape(),
             ", the module's is ", dest.shape());
    Tensor(dest).copy_(value.reshape(dest.shape()));
  }
}

void skip_library_bug(const json& c) {
  if (c.contains("library_bug"))
    throw Skip{"library bug, hcgrad does the right thing: " + c.at("library_bug").get<std::string>()};
}

}  // namespace refcheck

int main(int argc, char** argv) {
  using namespace refcheck;
  if (argc < 2) {
    std::fprintf(stderr, "usage: refcheck FILE.json [FILE.json ...]\n");
    return 2;
  }
  RunnerTable runners;
  add_hc_runners(runners);
  add_mhc_runners(runners);
  add_stream_runners(runners);
  add_module_runners(runners);
  add_vit_runners(runners);

  int passed = 0, failed = 0, skipped = 0;
  for (int a = 1; a < argc; ++a) {
    json file;
    try {
      file = read_case_file(argv[a]);
    } catch (const std::exception& e) {
      std::printf("refcheck: %s\n", e.what());
      ++failed;
      continue;
    }
    const json& cases = file.at("cases");
    for (size_t i = 0; i < cases.size(); ++i) {
      const json& c = cases[i];
      CaseHeader header;
      try {
        header = case_header(c, i, argv[a]);
      } catch (const std::exception& e) {
        std::printf("refcheck: %s\n", e.what());
        ++failed;
        continue;
      }
      const std::string& name = header.name;
      auto runner = runners.find(header.kind);
      try {
        if (runner == runners.end()) {
          skip_library_bug(c);
          throw Skip{"kind '" + header.kind + "' is not run by hcgrad"};
        }
        Comparison r = runner->second(c, header.tolerance);
        std::printf("%-34s max abs %.2e  max rel %.2e  %s%s%s\n", name.c_str(), r.max_abs, r.max_rel,
                    r.failure.empty() ? "pass" : "FAIL: ", r.failure.c_str(),
                    r.failure.empty() && !r.note.empty() ? (" (" + r.note + ")").c_str() : "");
        (r.failure.empty() ? passed : failed)++;
      } catch (const Skip& skip) {
        std::printf("%-34s skipped: %s\n", name.c_str(), skip.reason.c_str());
        ++skipped;
      } catch (const std::exception& e) {
        std::printf("%-34s FAIL: %s\n", name.c_str(), e.what());
        ++failed;
      }
    }
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed > 0 ? 1 : 0;
}
