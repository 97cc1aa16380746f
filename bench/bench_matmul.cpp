// GEMM throughput of hcgrad's matmul (f32). Prints `gflops=<x>` on its last line.
//
//   build/bench/bench_matmul [n k m] [threads]        (default: 2048 512 512, 2 threads)
//
// bench/matmul.sh runs it beside bench_eigen_gemm (plain Eigen, same shapes and threads).
#include "bench_util.h"
#include "hcgrad/hcgrad.h"

using namespace hcgrad;

int main(int argc, char** argv) {
  const auto [n, k, m, threads] = parse_gemm_args(argc, argv, "bench_matmul");
  set_num_threads(threads);
  Generator gen(0);
  Tensor a = randn({n, k}, {}, gen), b = randn({k, m}, {}, gen);
  Tensor c;
  const int repeats = 30;
  const double seconds = median_seconds([&] { c = matmul(a, b); }, repeats, /*warmup=*/20);
  const double gflops = 2.0 * n * k * m / seconds / 1e9;
  std::printf("hcgrad matmul f32 [%d,%d] @ [%d,%d], %d threads: %.3f ms, median of %d\n", n, k, k, m, threads,
              1e3 * seconds, repeats);
  std::printf("gflops=%.1f\n", gflops);
  return 0;
}
