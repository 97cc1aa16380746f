// The reference for bench_matmul: plain Eigen, C = A * B in f32, threaded by Eigen itself (OpenMP),
// nothing of hcgrad. Prints `gflops=<x>` on its last line.
//
//   build/bench/bench_eigen_gemm [n k m] [threads]
#include <Eigen/Core>

#include "bench_util.h"

int main(int argc, char** argv) {
  const auto [n, k, m, threads] = parse_gemm_args(argc, argv, "bench_eigen_gemm");
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::setNbThreads(threads);
  Matrix a = Matrix::Random(n, k), b = Matrix::Random(k, m), c(n, m);
  const int repeats = 30;
  const double seconds = median_seconds([&] { c.noalias() = a * b; }, repeats, /*warmup=*/20);
  const double gflops = 2.0 * n * k * m / seconds / 1e9;
  std::printf("plain Eigen f32 [%d,%d] @ [%d,%d], %d threads: %.3f ms, median of %d\n", n, k, k, m,
              Eigen::nbThreads(), 1e3 * seconds, repeats);
  std::printf("gflops=%.1f\n", gflops);
  return 0;
}
