// GEMM on the GPU through cuBLAS: out [B..., n, m] (contiguous) = a [B..., n, k] @ b [B..., k, m], where a
// and b carry out's batch dims with any strides (0 where broadcast).
//
// cuBLAS is column-major. A row-major [n, m] matrix is the column-major [m, n] matrix of its transpose, so
// row-major C = A B is computed as column-major C^T = B^T A^T: cuBLAS is handed b first, then a. A
// transposed view (column-major in memory) is passed with the transpose flag instead of being copied.
// Batch dims are coalesced; the innermost one becomes cuBLAS's strided batch, any others are looped.
#include <cublas_v2.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <type_traits>
#include <vector>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/common.h"
#include "hcgrad/cuda/runtime.h"

namespace hcgrad::cuda {

namespace {

std::atomic<bool> tf32_allowed{false};

void check_cublas(cublasStatus_t status, const char* call, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw DeviceError(detail::concat("matmul: cuBLAS error: ", cublasGetStatusString(status), " (", call,
                                     ", cuda/matmul.cpp:", line, ")"));
}
#define HC_CUBLAS_CHECK(call) check_cublas((call), #call, __LINE__)

// One handle per device, bound to the device's stream; its math mode follows set_allow_tf32. The handle is
// shared by every host thread, so the lock is held from setting the math mode until the GEMMs are queued: a
// set_allow_tf32 in another thread cannot change the mode under a GEMM of this one.
struct LockedHandle {
  std::unique_lock<std::mutex> lock;
  cublasHandle_t handle;
};

LockedHandle handle_for(const Tensor& t) {
  static std::mutex mutex;
  static std::vector<cublasHandle_t> handles;
  cudaStream_t stream = stream_for(t);  // also makes the device current
  std::unique_lock<std::mutex> lock(mutex);
  if (handles.empty()) handles.resize(static_cast<size_t>(device_count()), nullptr);
  cublasHandle_t& handle = handles[static_cast<size_t>(t.device().index)];
  if (!handle) {
    HC_CUBLAS_CHECK(cublasCreate(&handle));
    HC_CUBLAS_CHECK(cublasSetStream(handle, stream));
  }
  HC_CUBLAS_CHECK(cublasSetMathMode(handle, tf32_allowed ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return {std::move(lock), handle};
}

// How cuBLAS reads one [rows, cols] row-major operand in place: `transpose` when the memory is column-major
// (a transposed view), and the leading dimension. Empty when the memory is neither (then it is copied).
struct Operand {
  bool usable = false;
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t ld = 1;
};

Operand operand_of(const Tensor& t) {
  const int64_t rows = t.size(-2), cols = t.size(-1), row_stride = t.stride(-2), col_stride = t.stride(-1);
  if (cols == 1 || col_stride == 1) {  // row-major: as column-major it is the transpose, read as is
    const int64_t ld = rows == 1 ? std::max<int64_t>(cols, 1) : row_stride;
    if (ld >= std::max<int64_t>(cols, 1)) return {true, CUBLAS_OP_N, ld};
  }
  if (rows == 1 || row_stride == 1) {  // column-major: cuBLAS transposes it
    const int64_t ld = cols == 1 ? std::max<int64_t>(rows, 1) : col_stride;
    if (ld >= std::max<int64_t>(rows, 1)) return {true, CUBLAS_OP_T, ld};
  }
  return {};
}

// A row-major copy of `t` on its GPU, for an operand cuBLAS cannot read in place (the copy kernel, as the op
// layer's as_contiguous would run it; kernels do not call ops).
Tensor dense_copy(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  HC_KERNEL(copy, /*on=*/out, /*out=*/out, /*src=*/t);
  return out;
}

template <class T>
void gemm_batched(cublasHandle_t handle, cublasOperation_t op_b, cublasOperation_t op_a, int m, int n, int k,
                  const T* b, int64_t ldb, int64_t stride_b, const T* a, int64_t lda, int64_t stride_a, T* c,
                  int64_t stride_c, int batch) {
  const T one = 1, zero = 0;
  if constexpr (std::is_same_v<T, float>)
    HC_CUBLAS_CHECK(cublasSgemmStridedBatched(handle, op_b, op_a, m, n, k, &one, b, int(ldb), stride_b, a, int(lda),
                                              stride_a, &zero, c, m, stride_c, batch));
  else
    HC_CUBLAS_CHECK(cublasDgemmStridedBatched(handle, op_b, op_a, m, n, k, &one, b, int(ldb), stride_b, a, int(lda),
                                              stride_a, &zero, c, m, stride_c, batch));
}

}  // namespace

void set_allow_tf32(bool allow) { tf32_allowed = allow; }
bool allow_tf32() { return tf32_allowed; }

namespace {

void gemm_into(const Tensor& out, const Tensor& a_in, const Tensor& b_in);

}  // namespace

// cuBLAS writes the product; the bias, when there is one, is one more elementwise pass (cuBLASLt's bias
// epilogue would save it; not done yet).
void matmul(const Tensor& out, const Tensor& a_in, const Tensor& b_in, const Tensor& bias) {
  gemm_into(out, a_in, b_in);
  if (bias.defined() && out.numel() > 0) binary(BinaryOp::Add, out, out, bias);
}

namespace {

void gemm_into(const Tensor& out, const Tensor& a_in, const Tensor& b_in) {
  const int64_t n = out.size(-2), m = out.size(-1), k = a_in.size(-1);
  if (out.numel() == 0) return;
  constexpr int64_t kIntMax = 2147483647;  // cuBLAS takes int sizes
  HC_CHECK(n <= kIntMax && m <= kIntMax && k <= kIntMax, ShapeError, "matmul: sizes of ", a_in.shape(), " @ ",
           b_in.shape(), " exceed cuBLAS's int range");
  if (k == 0) {  // an empty sum: zeros
    fill(out, 0.0);
    return;
  }
  Tensor a = a_in, b = b_in;
  Operand op_a = operand_of(a), op_b = operand_of(b);
  // A leading dimension past int (a view of rows 2^31 apart) is copied too: dense, its ld is k or m.
  if (!op_a.usable || op_a.ld > kIntMax) a = dense_copy(a), op_a = operand_of(a);
  if (!op_b.usable || op_b.ld > kIntMax) b = dense_copy(b), op_b = operand_of(b);

  // Batch dims: coalesce a's and b's strides over out's batch shape; the last run is cuBLAS's batch.
  Shape batch(out.shape().begin(), out.shape().end() - 2);
  std::array<Strides, 3> strides{Strides(a.strides().begin(), a.strides().end() - 2),
                                 Strides(b.strides().begin(), b.strides().end() - 2),
                                 Strides(out.strides().begin(), out.strides().end() - 2)};
  coalesce_dims<3>(batch, strides);
  const int64_t inner = batch.back(), outer = numel(batch) / std::max<int64_t>(inner, 1);
  const int64_t a_step = strides[0].back(), b_step = strides[1].back(), c_step = strides[2].back();
  const LockedHandle locked = handle_for(out);
  cublasHandle_t handle = locked.handle;

  dispatch_floating("matmul", out.dtype(), [&]<class T>() {
    const T* a_data = static_cast<const T*>(a.raw_data());
    const T* b_data = static_cast<const T*>(b.raw_data());
    T* c_data = static_cast<T*>(out.raw_data());
    for (int64_t o = 0; o < outer; ++o) {
      // Offsets of batch `o` of the outer (looped) dims, row-major over batch[0 .. end-1].
      int64_t rest = o, a_off = 0, b_off = 0, c_off = 0;
      for (int64_t d = batch.ndim() - 2; d >= 0; --d) {
        const int64_t index = rest % batch[d];
        rest /= batch[d];
        a_off += index * strides[0][d];
        b_off += index * strides[1][d];
        c_off += index * strides[2][d];
      }
      // cuBLAS counts the batch in an int: more than that many matrices go in several calls.
      for (int64_t first = 0; first < inner; first += kIntMax) {
        const int64_t count = std::min(inner - first, kIntMax);
        gemm_batched<T>(handle, op_b.op, op_a.op, int(m), int(n), int(k), b_data + b_off + first * b_step, op_b.ld,
                        b_step, a_data + a_off + first * a_step, op_a.ld, a_step, c_data + c_off + first * c_step,
                        c_step, int(count));
      }
    }
  });
}

}  // namespace

}  // namespace hcgrad::cuda
