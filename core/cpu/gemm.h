// One single-threaded GEMM, C[n, m] = A[n, k] B[k, m]: the building block of matmul (which splits its
// rows over threads) and of attention (one task per head). float32 goes to oneDNN's sgemm when hcgrad is
// built with it (CMake option HCGRAD_ONEDNN; the measurement that chose it is in bench/README.md), every
// other case to Eigen's GEMM.
#pragma once

#include <cstdint>

namespace hcgrad::cpu {

// How a matrix lies in memory: row-major with `ld` elements between rows, or column-major with `ld` between
// columns. A transposed row-major matrix (x.t()) is column-major, so it is read in place.
enum class Layout { RowMajor, ColMajor };

template <class T>
struct ConstMatrix {
  const T* data;
  Layout layout;
  int64_t ld;
};

// C (row-major, `ldc` between rows) = A B, with A [n, k] and B [k, m]. k >= 1.
template <class T>
void gemm(T* c, int64_t ldc, ConstMatrix<T> a, ConstMatrix<T> b, int64_t n, int64_t k, int64_t m);

// How a rows x cols matrix with element strides (rs, cs) can be read in place, if at all.
bool layout_of(int64_t rows, int64_t cols, int64_t rs, int64_t cs, Layout& layout, int64_t& ld);

}  // namespace hcgrad::cpu
