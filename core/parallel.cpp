#include "hcgrad/core/parallel.h"

#include <memory>
#include <mutex>

#include <tbb/global_control.h>

namespace hcgrad {

namespace {
std::mutex control_mutex;
std::unique_ptr<tbb::global_control> thread_cap;  // alive while a cap is in force
}  // namespace

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(control_mutex);
  thread_cap.reset();
  if (n > 0) thread_cap = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
}

int num_threads() {
  return static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

}  // namespace hcgrad
