// The built-in profiler (core/profile.h) and the caching CPU allocator (core/cpu_allocator.h).
#include "helpers.h"

using namespace hctest;
namespace profile = hcgrad::profile;

namespace {
const profile::Entry* find_entry(const std::vector<profile::Entry>& entries, const std::string& name,
                                 const std::string& within, bool backward, profile::Category category) {
  for (const auto& e : entries)
    if (e.name == name && e.within == within && e.backward == backward && e.category == category) return &e;
  return nullptr;
}
}  // namespace

TEST_CASE("profile: off records nothing, on times kernels, backward nodes and regions by category") {
  Tensor a = data32({64, 32}), b = data32({32, 16});
  a.requires_grad_();
  profile::enable(false);
  profile::reset();
  (void)sum(matmul(a, b));
  CHECK(profile::entries().empty());

  profile::enable(true);
  {
    profile::Scope region("connection", profile::Category::Connection, /*region=*/true);
    Tensor y = sum(matmul(a, b) * 2.0);
    y.backward();
  }
  (void)matmul(a, b);
  profile::enable(false);
  const auto entries = profile::entries();
  // A kernel outside any region has its own category; inside the region the region's.
  const auto* outside = find_entry(entries, "matmul", "", false, profile::Category::Matmul);
  REQUIRE(outside != nullptr);
  CHECK(outside->calls == 1);
  const auto* inside = find_entry(entries, "matmul", "", false, profile::Category::Connection);
  REQUIRE(inside != nullptr);
  CHECK(inside->calls == 1);
  // The backward of matmul ran its GEMMs inside the "matmul" node, reported as backward.
  // replayed in the forward's region
  const auto* backward_gemm = find_entry(entries, "matmul", "matmul", true, profile::Category::Connection);
  REQUIRE(backward_gemm != nullptr);
  CHECK(backward_gemm->calls == 1);  // only a needs a gradient: one GEMM
  double total = 0;
  for (const auto& e : entries) {
    CHECK(e.seconds >= 0);
    total += e.seconds;
  }
  CHECK(total > 0);
  const std::string table = profile::report(1);
  CHECK(table.find("connections") != std::string::npos);
  CHECK(table.find("matmul in matmul (bwd)") != std::string::npos);
}

TEST_CASE("profile: nested scopes add exclusive times that sum to the outer scope") {
  profile::enable(true);
  {
    profile::Scope outer("outer");
    { profile::Scope inner("inner"); (void)(data32({300, 300}) * 2.0); }
  }
  profile::enable(false);
  const auto entries = profile::entries();
  const auto* outer = find_entry(entries, "outer", "", false, profile::Category::Other);
  const auto* inner = find_entry(entries, "inner", "outer", false, profile::Category::Other);
  REQUIRE(outer != nullptr);
  REQUIRE(inner != nullptr);
  CHECK(inner->seconds > 0);
  CHECK(outer->seconds >= 0);
}

TEST_CASE("cpu allocator: a freed block is reused for the next tensor of its size class") {
  hcgrad::cpu_empty_cache();
  [[maybe_unused]] const size_t misses_before = hcgrad::cpu_memory_stats().system_allocations;
  [[maybe_unused]] const void* first = nullptr;
  {
    Tensor t = Tensor::empty({1000, 100}, {.dtype = DType::Float32});  // 400 kB
    first = t.raw_data();
    CHECK(hcgrad::cpu_memory_stats().allocated >= 400000);
  }
  const auto after_free = hcgrad::cpu_memory_stats();
#if defined(__SANITIZE_ADDRESS__)
  CHECK(after_free.cached == 0);  // nothing is cached under AddressSanitizer
#else
  CHECK(after_free.cached >= 400000);
  Tensor again = Tensor::empty({999, 100}, {.dtype = DType::Float32});  // same 4 KiB class
  CHECK(again.raw_data() == first);
  CHECK(hcgrad::cpu_memory_stats().system_allocations == misses_before + 1);
  CHECK(hcgrad::cpu_memory_stats().peak_allocated >= 400000);
#endif
  hcgrad::cpu_empty_cache();
  CHECK(hcgrad::cpu_memory_stats().cached == 0);
}
