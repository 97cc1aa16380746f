// Matrix multiplication: the (batch, block of rows) pairs run as independent single-threaded GEMMs
// (core/cpu/gemm.h: oneDNN or Eigen) on oneTBB. Each operand matrix is read in place, row-major or
// column-major as its strides say, so a transposed view (x.t()) costs no copy.
// With few batch entries the rows are split into about one block per thread: each block packs B once,
// so fewer, larger blocks waste less. Every output element is still one dot product summed in the same
// order (the GEMMs' depth blocking depends on k, not on the number of rows), so results match across thread
// counts; tests/test_parallel.cpp checks it.
#include <vector>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/gemm.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/parallel.h"

namespace hcgrad::cpu {

namespace {

constexpr int64_t kMinRowBlock = 64;           // smaller blocks spend more time packing than multiplying
constexpr int64_t kSerialFlops = 1 << 20;      // below this, one thread does everything

// A matrix operand: the tensor (copied to contiguous when its strides defeat the GEMM), its layout.
struct Operand {
  Tensor t;
  Layout layout = Layout::RowMajor;
  int64_t ld = 0;
};

Operand prepare(const Tensor& x) {
  const int64_t nd = x.dim();
  const int64_t rows = x.shape()[nd - 2], cols = x.shape()[nd - 1];
  Operand op{x};
  if (layout_of(rows, cols, x.strides()[nd - 2], x.strides()[nd - 1], op.layout, op.ld)) return op;
  // Neither layout fits (e.g. a stride-0 expanded matrix): copy, keeping batch broadcasting as is.
  Tensor dense = Tensor::empty(x.shape(), x.options());
  copy(dense, x);
  op.t = dense;
  layout_of(rows, cols, cols, 1, op.layout, op.ld);
  return op;
}

// Rows [r0, r1) of a matrix that starts at `data`: a row offset when row-major, a column offset of the
// stored (transposed) matrix when column-major.
template <class T>
ConstMatrix<T> rows_from(const T* data, const Operand& op, int64_t r0) {
  return {data + (op.layout == Layout::RowMajor ? r0 * op.ld : r0), op.layout, op.ld};
}

// c[r, :] += bias for rows r of a row-major [rows, m] block.
template <class T>
void add_to_rows(T* c, const T* bias, int64_t rows, int64_t m) {
  for (int64_t r = 0; r < rows; ++r) {
    T* row = c + r * m;
    for (int64_t j = 0; j < m; ++j) row[j] += bias[j];
  }
}

// Element offset of each batch entry of x (batch dims = all but the last two), in row-major batch order.
std::vector<int64_t> batch_offsets(const Tensor& x, int64_t batch) {
  const int64_t nb = x.dim() - 2;
  std::vector<int64_t> offsets(batch);
  for (int64_t i = 0; i < batch; ++i) {
    int64_t offset = 0;
    for (int64_t d = nb - 1, rest = i; d >= 0; --d) {
      offset += (rest % x.shape()[d]) * x.strides()[d];
      rest /= x.shape()[d];
    }
    offsets[i] = offset;
  }
  return offsets;
}

}  // namespace

void matmul(const Tensor& out, const Tensor& a_in, const Tensor& b_in, const Tensor& bias) {
  const int64_t nd = out.dim();
  const int64_t n = out.shape()[nd - 2], m = out.shape()[nd - 1], k = a_in.shape()[nd - 1];
  if (out.numel() == 0) return;
  if (k == 0) {  // an empty sum: zeros, plus the bias
    fill(out, 0.0);
    if (bias.defined()) binary(BinaryOp::Add, out, out, bias);
    return;
  }
  const int64_t batch = out.numel() / (n * m);
  const Operand A = prepare(a_in), B = prepare(b_in);
  const std::vector<int64_t> a_offsets = batch_offsets(A.t, batch), b_offsets = batch_offsets(B.t, batch);
  const bool serial = 2.0 * static_cast<double>(n) * m * k * batch < kSerialFlops;
  const int64_t threads = serial ? 1 : num_threads();
  const int64_t blocks_wanted = std::max<int64_t>(1, (threads + batch - 1) / batch);
  const int64_t row_block = std::max(kMinRowBlock, (n + blocks_wanted - 1) / blocks_wanted);
  const int64_t blocks = (n + row_block - 1) / row_block, tasks = batch * blocks;

  dispatch_floating("matmul", out.dtype(), [&]<class T>() {
    const T* a = static_cast<const T*>(A.t.raw_data());
    const T* b = static_cast<const T*>(B.t.raw_data());
    T* c = out.data<T>();
    auto run = [&](int64_t t0, int64_t t1) {
      for (int64_t task = t0; task < t1; ++task) {
        const int64_t i = task / blocks, r0 = (task % blocks) * row_block;
        const int64_t rows = std::min(n, r0 + row_block) - r0;
        T* c_block = c + i * n * m + r0 * m;
        gemm<T>(c_block, m, rows_from(a + a_offsets[i], A, r0), {b + b_offsets[i], B.layout, B.ld}, rows, k, m);
        if (bias.defined()) add_to_rows(c_block, bias.data<T>(), rows, m);  // the [m] vector under the view
      }
    };
    if (serial) run(0, tasks);
    else parallel_for(0, tasks, 1, run);
  });
}

}  // namespace hcgrad::cpu
