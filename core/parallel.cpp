#include "hcgrad/core/parallel.h"

#include <memory>
#include <mutex>

#include <tbb/global_control.h>

namespace hcgrad {

namespace {
std::mutex control_mutex;
// Alive while a cap is in force. Never destroyed at exit: ending a cap may make oneTBB start worker threads,
// and a destructor that throws then (pthread_create fails when memory has run out) would abort the program.
tbb::global_control* thread_cap = nullptr;
}  // namespace

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(control_mutex);
  delete thread_cap;
  thread_cap = nullptr;
  if (n > 0) thread_cap = new tbb::global_control(tbb::global_control::max_allowed_parallelism, n);
}

int num_threads() {
  return static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

}  // namespace hcgrad
