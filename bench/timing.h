// Median wall time of a call, after warm-up. Shared by the benchmark programs.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

inline double median_seconds(const std::function<void()>& call, int repeats, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) call();  // caches, thread pools, page faults
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    call();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}
