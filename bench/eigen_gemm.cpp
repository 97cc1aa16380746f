// The reference: plain Eigen, C = A * B with Eigen's own (OpenMP) threading, nothing of hcgrad.
#include <Eigen/Core>

#include "bench/eigen_gemm.h"

void eigen_gemm(const float* a, const float* b, float* c, int n, int k, int m, int threads) {
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::setNbThreads(threads);
  Eigen::Map<const Matrix> A(a, n, k), B(b, k, m);
  Eigen::Map<Matrix> C(c, n, m);
  C.noalias() = A * B;
}
