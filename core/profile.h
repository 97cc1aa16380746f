// The built-in profiler: where a training step spends its time, op by op. Off by default; when off, every
// scope below is one test of a global flag and nothing else (bench/README.md has the measured cost).
//
//   profile::enable(true);
//   ... train some steps ...
//   std::cout << profile::report(steps);   // ms per step by category, then the heaviest scopes
//
// What is timed, on the thread that calls the ops (the kernels' own oneTBB workers run inside a scope):
//   * every kernel call, through HC_KERNEL (core/kernels.h), named after the kernel (on a GPU, until the GPU
//     has finished it: see timed_kernel);
//   * every backward node (FunctionNode::apply, autograd/engine.cpp), named after its op;
//   * the CPU allocator (core/cpu_allocator.cpp);
//   * regions, which claim everything inside them for one category: the connection modules
//     (nn/connection.cpp), the optimizer step and gradient clipping (nn/optim.cpp).
// Each scope adds its *exclusive* time (its own time minus that of the scopes nested in it) to the entry
// (category, name, enclosing scope, phase), so the entries add up to the time spent inside scopes. A kernel's category is
// that of the innermost region around it, or else its own (matmul, attention, norm, ...). Backward nodes
// recorded inside a region are replayed inside it, so a connection's backward counts as "connection" too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hcgrad::profile {

enum class Category { Matmul, Attention, Norm, Connection, Loss, Optimizer, Elementwise, Copy, Allocator, Autograd, Other };
const char* category_name(Category c);
// The category of a kernel, from its name (matmul -> Matmul, layer_norm_forward -> Norm, ...).
Category kernel_category(const char* kernel);

namespace detail {
inline bool enabled = false;
}
inline bool enabled() { return detail::enabled; }
void enable(bool on);  // also clears the table when turning on
void reset();

struct Entry {
  Category category;
  std::string name;
  std::string within;  // the enclosing scope's name (the op whose backward called a kernel), or empty
  bool backward;  // inside backward() (the engine's pass), else forward / optimizer
  double seconds;
  int64_t calls;
};
std::vector<Entry> entries();  // heaviest first
// A table in ms per step: totals by category, then the `top` heaviest entries.
std::string report(int64_t steps, int top = 25);

// A timed scope (none when `name` is null). `region`: a category claimed for every scope nested inside.
class Scope {
 public:
  explicit Scope(const char* name, Category category = Category::Other, bool region = false) {
    if (detail::enabled && name) begin(name, category, region);
  }
  ~Scope() {
    if (active_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  void begin(const char* name, Category category, bool region);
  void end();
  bool active_ = false;
};

// Marks the autograd engine's pass, so that scopes inside it are reported as backward.
class BackwardPass {
 public:
  BackwardPass();
  ~BackwardPass();
  BackwardPass(const BackwardPass&) = delete;
  BackwardPass& operator=(const BackwardPass&) = delete;

 private:
  bool previous_;
};

// The innermost open region on this thread (to replay it around a backward node), or null.
struct RegionTag {
  const char* name = nullptr;
  Category category = Category::Other;
};
RegionTag current_region();

// Runs a kernel call inside a Scope named after it: HC_KERNEL's helper. A GPU kernel only queues work, so
// when profiling, `wait` (the CUDA backend's synchronize, for a kernel on a GPU) is called inside the scope:
// the scope then holds the kernel's GPU time, instead of the next op that happens to wait for the GPU. The
// GPU then runs each kernel alone, without the host queueing ahead, so a profiled GPU run is slower than an
// unprofiled one, but each op's share is its own.
template <class Call>
void timed_kernel(const char* name, Call&& call, void (*wait)() = nullptr) {
  if (!detail::enabled) return call();
  Scope scope(name, kernel_category(name));
  call();
  if (wait) wait();
}

}  // namespace hcgrad::profile
