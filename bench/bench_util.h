// Shared by the benchmark programs: argument parsing and a median timer.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

// The GEMM shape and thread count: `[n k m] [threads]`, default 2048 512 512 on 2 threads.
struct GemmArgs {
  int n = 2048, k = 512, m = 512, threads = 2;
};

inline GemmArgs parse_gemm_args(int argc, char** argv, const char* program) {
  GemmArgs args;
  if (argc >= 4) {
    args.n = std::atoi(argv[1]);
    args.k = std::atoi(argv[2]);
    args.m = std::atoi(argv[3]);
  }
  if (argc >= 5) args.threads = std::atoi(argv[4]);
  if (args.n <= 0 || args.k <= 0 || args.m <= 0 || args.threads <= 0) {
    std::fprintf(stderr, "usage: %s [n k m] [threads]  (all positive)\n", program);
    std::exit(2);
  }
  return args;
}

// Median wall time of `repeats` calls, after `warmup` untimed ones.
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
