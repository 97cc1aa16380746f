// GEMM throughput: hcgrad's matmul against plain Eigen on the same shapes and thread count.
//
//   build/bench/bench_matmul [n k m] [threads]        (default: 2048 512 512, 2 threads)
//
// Each side runs warm-up calls, then timed repeats; the median GFLOP/s (2nk m flops per call) is reported.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "bench/eigen_gemm.h"
#include "hcgrad.h"

using namespace hcgrad;

namespace {

double median_seconds(const std::function<void()>& call, int repeats) {
  for (int i = 0; i < 3; ++i) call();  // warm-up: caches, thread pools, page faults
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    call();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int n = 2048, k = 512, m = 512, threads = 2;
  if (argc >= 4) {
    n = std::atoi(argv[1]);
    k = std::atoi(argv[2]);
    m = std::atoi(argv[3]);
  }
  if (argc >= 5) threads = std::atoi(argv[4]);
  if (n <= 0 || k <= 0 || m <= 0 || threads <= 0) {
    std::fprintf(stderr, "usage: bench_matmul [n k m] [threads]  (all positive)\n");
    return 2;
  }
  set_num_threads(threads);
  Generator gen(0);
  Tensor a = randn({n, k}, {}, gen), b = randn({k, m}, {}, gen);
  const double flops = 2.0 * n * k * m;
  const int repeats = 20;

  Tensor c;
  double t_hcgrad = median_seconds([&] { c = matmul(a, b); }, repeats);
  std::vector<float> c_eigen(static_cast<size_t>(n) * m);
  double t_eigen = median_seconds([&] { eigen_gemm(a.data<float>(), b.data<float>(), c_eigen.data(), n, k, m, threads); },
                                  repeats);
  // The two must agree, or the timing means nothing.
  std::vector<float> c_ours = c.to_vector<float>();
  double worst = 0;
  for (size_t i = 0; i < c_ours.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(c_ours[i] - c_eigen[i])));

  const double g_hcgrad = flops / t_hcgrad / 1e9, g_eigen = flops / t_eigen / 1e9;
  std::printf("matmul f32 [%d,%d] @ [%d,%d], %d threads, median of %d\n", n, k, k, m, threads, repeats);
  std::printf("  hcgrad matmul : %8.1f GFLOP/s  (%.3f ms)\n", g_hcgrad, 1e3 * t_hcgrad);
  std::printf("  plain Eigen   : %8.1f GFLOP/s  (%.3f ms)\n", g_eigen, 1e3 * t_eigen);
  std::printf("  max |difference| = %.2e\n", worst);
  std::printf("gflops_hcgrad=%.1f gflops_eigen=%.1f ratio=%.2f\n", g_hcgrad, g_eigen, g_hcgrad / g_eigen);
  return 0;
}
