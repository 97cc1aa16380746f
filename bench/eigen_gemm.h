#pragma once
// C [n, m] = A [n, k] @ B [k, m], row-major float32, using plain Eigen on `threads` threads.
void eigen_gemm(const float* a, const float* b, float* c, int n, int k, int m, int threads);
