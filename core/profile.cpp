#include "hcgrad/core/profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

namespace hcgrad::profile {

namespace {

using Clock = std::chrono::steady_clock;

struct Frame {
  const char* name;
  const char* parent;  // the enclosing scope's name, or ""
  Category category;
  bool region;
  Clock::time_point start;
  double nested = 0;  // seconds spent in scopes nested in this one
};

struct Totals {
  double seconds = 0;
  int64_t calls = 0;
};

using Key = std::tuple<Category, std::string, std::string, bool>;

std::mutex table_mutex;
std::map<Key, Totals>& table() {
  static std::map<Key, Totals> t;
  return t;
}

thread_local std::vector<Frame> stack;
thread_local bool in_backward = false;

}  // namespace

const char* category_name(Category c) {
  switch (c) {
    case Category::Matmul: return "matmul";
    case Category::Attention: return "attention";
    case Category::Norm: return "norms";
    case Category::Connection: return "connections";
    case Category::Loss: return "loss";
    case Category::Optimizer: return "optimizer";
    case Category::Elementwise: return "elementwise";
    case Category::Copy: return "copy";
    case Category::Allocator: return "allocator";
    case Category::Autograd: return "autograd";
    case Category::Other: return "other";
  }
  return "other";
}

Category kernel_category(const char* kernel) {
  auto starts = [kernel](const char* prefix) { return std::strncmp(kernel, prefix, std::strlen(prefix)) == 0; };
  if (starts("matmul") || starts("linear")) return Category::Matmul;
  if (starts("attention")) return Category::Attention;
  if (starts("layer_norm") || starts("rms_norm")) return Category::Norm;
  if (starts("stream_mix") || starts("sinkhorn")) return Category::Connection;
  if (starts("cross_entropy")) return Category::Loss;
  if (starts("adam")) return Category::Optimizer;
  if (starts("copy")) return Category::Copy;
  return Category::Elementwise;
}

void enable(bool on) {
  if (on) reset();
  detail::enabled = on;
}

void reset() {
  std::lock_guard<std::mutex> lock(table_mutex);
  table().clear();
}

void Scope::begin(const char* name, Category category, bool region) {
  // A plain scope inside a region is claimed by the region's category; its parent is the innermost
  // enclosing plain scope (regions only recategorise).
  const char* parent = nullptr;
  bool claimed = region;
  for (auto it = stack.rbegin(); it != stack.rend() && !(parent && claimed); ++it) {
    if (it->region && !claimed) {
      category = it->category;
      claimed = true;
    }
    if (!it->region && !parent) parent = it->name;
  }
  stack.push_back({name, parent ? parent : "", category, region, Clock::now()});
  active_ = true;
}

void Scope::end() {
  const Frame frame = stack.back();
  stack.pop_back();
  const double elapsed = std::chrono::duration<double>(Clock::now() - frame.start).count();
  if (!stack.empty()) stack.back().nested += elapsed;
  std::lock_guard<std::mutex> lock(table_mutex);
  Totals& t = table()[Key{frame.category, frame.name, frame.parent, in_backward}];
  t.seconds += elapsed - frame.nested;
  t.calls += 1;
}

BackwardPass::BackwardPass() : previous_(in_backward) { in_backward = true; }
BackwardPass::~BackwardPass() { in_backward = previous_; }

RegionTag current_region() {
  for (auto it = stack.rbegin(); it != stack.rend(); ++it)
    if (it->region) return {it->name, it->category};
  return {};
}

std::vector<Entry> entries() {
  std::vector<Entry> out;
  {
    std::lock_guard<std::mutex> lock(table_mutex);
    for (const auto& [key, t] : table())
      out.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), std::get<3>(key), t.seconds, t.calls});
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.seconds > b.seconds; });
  return out;
}

std::string report(int64_t steps, int top) {
  const std::vector<Entry> all = entries();
  const double per_step = 1e3 / static_cast<double>(std::max<int64_t>(steps, 1));
  std::map<Category, double> by_category;
  double total = 0;
  for (const Entry& e : all) {
    by_category[e.category] += e.seconds;
    total += e.seconds;
  }
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "profile over %lld steps: %.2f ms/step inside scopes\n",
                static_cast<long long>(steps), total * per_step);
  out += line;
  std::vector<std::pair<Category, double>> sorted(by_category.begin(), by_category.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  out += "  category      ms/step  share\n";
  for (const auto& [category, seconds] : sorted) {
    std::snprintf(line, sizeof line, "  %-12s %8.2f  %4.1f%%\n", category_name(category), seconds * per_step,
                  total > 0 ? 100.0 * seconds / total : 0.0);
    out += line;
  }
  out += "  heaviest scopes (exclusive time; in: the enclosing op)    ms/step  calls/step  category\n";
  for (int i = 0; i < top && i < static_cast<int>(all.size()); ++i) {
    const Entry& e = all[i];
    const std::string name = e.name + (e.within.empty() ? "" : " in " + e.within) + (e.backward ? " (bwd)" : "");
    std::snprintf(line, sizeof line, "  %-56s %8.2f  %10.1f  %s\n", name.c_str(), e.seconds * per_step,
                  static_cast<double>(e.calls) / static_cast<double>(std::max<int64_t>(steps, 1)),
                  category_name(e.category));
    out += line;
  }
  return out;
}

}  // namespace hcgrad::profile
