// core/cpu/gemm.h on Eigen, and float32 on oneDNN's sgemm when built with it (HCGRAD_WITH_ONEDNN).
#include "hcgrad/core/cpu/gemm.h"

#include <Eigen/Core>

#ifdef HCGRAD_WITH_ONEDNN
#include <dlfcn.h>

#include <dnnl.h>

#include "hcgrad/core/error.h"
#endif

namespace hcgrad::cpu {

bool layout_of(int64_t rows, int64_t cols, int64_t rs, int64_t cs, Layout& layout, int64_t& ld) {
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= cols)) {
    layout = Layout::RowMajor;
    ld = rows == 1 ? cols : rs;
    return ld >= 1;
  }
  if ((rs == 1 || rows == 1) && (cols == 1 || cs >= rows)) {
    layout = Layout::ColMajor;
    ld = cols == 1 ? rows : cs;
    return ld >= 1;
  }
  return false;
}

namespace {

template <class T, int Order>
using MatrixMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, Eigen::Unaligned,
                             Eigen::OuterStride<>>;

template <class T>
void eigen_gemm(T* c, int64_t ldc, ConstMatrix<T> a, ConstMatrix<T> b, int64_t n, int64_t k, int64_t m) {
  using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>> C(c, n, m, Eigen::OuterStride<>(ldc));
  auto with_a = [&](const auto& a_map) {
    auto with_b = [&](const auto& b_map) { C.noalias() = a_map * b_map; };
    if (b.layout == Layout::RowMajor) with_b(MatrixMap<T, Eigen::RowMajor>(b.data, k, m, Eigen::OuterStride<>(b.ld)));
    else with_b(MatrixMap<T, Eigen::ColMajor>(b.data, k, m, Eigen::OuterStride<>(b.ld)));
  };
  if (a.layout == Layout::RowMajor) with_a(MatrixMap<T, Eigen::RowMajor>(a.data, n, k, Eigen::OuterStride<>(a.ld)));
  else with_a(MatrixMap<T, Eigen::ColMajor>(a.data, n, k, Eigen::OuterStride<>(a.ld)));
}

#ifdef HCGRAD_WITH_ONEDNN
// Debian's oneDNN threads with OpenMP, which knows nothing of oneTBB: left alone, each of our tasks' calls
// would start a team of nproc threads. Every caller is already one task of a parallel loop, so each thread
// asks OpenMP for one thread, once (the setting is per thread). libgomp is loaded with libdnnl; looking it up
// at run time spares every build a link to one OpenMP runtime or another.
void use_one_openmp_thread() {
  thread_local bool done = false;
  if (done) return;
  using SetThreads = void (*)(int);
  static const auto set_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set_threads) set_threads(1);
  done = true;
}

// oneDNN's row-major sgemm: a column-major operand is the transpose ('T') of a row-major one.
void onednn_sgemm(float* c, int64_t ldc, ConstMatrix<float> a, ConstMatrix<float> b, int64_t n, int64_t k,
                  int64_t m) {
  use_one_openmp_thread();
  const char trans_a = a.layout == Layout::RowMajor ? 'N' : 'T', trans_b = b.layout == Layout::RowMajor ? 'N' : 'T';
  const dnnl_status_t status =
      dnnl_sgemm(trans_a, trans_b, n, m, k, 1.0f, a.data, a.ld, b.data, b.ld, 0.0f, c, ldc);
  HC_CHECK(status == dnnl_success, Error, "matmul: oneDNN's sgemm failed (status ", static_cast<int>(status),
           ") on [", n, ", ", k, "] @ [", k, ", ", m, "]");
}
#endif

}  // namespace

template <>
void gemm<float>(float* c, int64_t ldc, ConstMatrix<float> a, ConstMatrix<float> b, int64_t n, int64_t k, int64_t m) {
#ifdef HCGRAD_WITH_ONEDNN
  onednn_sgemm(c, ldc, a, b, n, k, m);
#else
  eigen_gemm(c, ldc, a, b, n, k, m);
#endif
}

template <>
void gemm<double>(double* c, int64_t ldc, ConstMatrix<double> a, ConstMatrix<double> b, int64_t n, int64_t k,
                  int64_t m) {
  eigen_gemm(c, ldc, a, b, n, k, m);
}

}  // namespace hcgrad::cpu
