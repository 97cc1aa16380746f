// Row reductions on the GPU: rows is a contiguous [outer, inner] matrix (the op in core/ops/reduce.cpp
// moves the reduced dims last), one block per row, threads striding along it, then a block reduction.
#include <algorithm>
#include <cmath>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

// Rows beyond gridDim.x are taken in turn (grid-stride over rows).
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads) sum_rows_kernel(T* out, const T* rows, int64_t outer, int64_t inner) {
  for (int64_t r = blockIdx.x; r < outer; r += gridDim.x) {
    const T* row = rows + r * inner;
    T s = 0;
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) s += row[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[r] = s;
  }
}

// One candidate of a max/min search: the value and its position in the row.
template <class T>
struct Best {
  T value;
  int64_t index;
};

// Does b beat a? NaN beats numbers, the extreme value beats the rest, and on ties the first position wins
// (as the CPU loop, which keeps the first maximum and the first NaN).
template <class T>
__device__ bool beats(const Best<T>& b, const Best<T>& a, bool take_max) {
  const bool a_nan = a.value != a.value, b_nan = b.value != b.value;
  if (a.index < 0) return b.index >= 0;  // a is empty
  if (b.index < 0) return false;
  if (a_nan || b_nan) return b_nan && (!a_nan || b.index < a.index);
  if (b.value == a.value) return b.index < a.index;
  return take_max ? b.value > a.value : b.value < a.value;
}

// One block per segment: segment s is chunk s % chunks of row s / chunks (positions [c·chunk, (c+1)·chunk)),
// its best value and position into values[s], indices[s]. With one chunk per row, a segment is a row.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads) max_rows_kernel(T* values, int64_t* indices, const T* rows, int64_t outer, int64_t inner,
                                bool take_max, int64_t chunks, int64_t chunk) {
  __shared__ T best_value[1024];
  __shared__ int64_t best_index[1024];
  for (int64_t segment = blockIdx.x; segment < outer * chunks; segment += gridDim.x) {
    const int64_t r = segment / chunks, begin = segment % chunks * chunk;
    const int64_t end = begin + chunk < inner ? begin + chunk : inner;
    const T* row = rows + r * inner;
    Best<T> best{T(0), -1};
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const Best<T> candidate{row[i], i};
      if (beats(candidate, best, take_max)) best = candidate;
    }
    __syncthreads();  // the previous row's readers are done with the scratch
    best_value[threadIdx.x] = best.value;
    best_index[threadIdx.x] = best.index;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) {
        const Best<T> mine{best_value[threadIdx.x], best_index[threadIdx.x]};
        const Best<T> other{best_value[threadIdx.x + stride], best_index[threadIdx.x + stride]};
        if (beats(other, mine, take_max)) {
          best_value[threadIdx.x] = other.value;
          best_index[threadIdx.x] = other.index;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      values[segment] = best_value[0];
      indices[segment] = best_index[0];
    }
  }
}

// The rows' chunks in order, one thread per row: the same winner as one pass over the row.
template <class T>
__global__ void combine_max_chunks_kernel(T* values, int64_t* indices, const T* chunk_values,
                                          const int64_t* chunk_indices, int64_t outer, int64_t chunks, bool take_max) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < outer; r += int64_t(gridDim.x) * blockDim.x) {
    Best<T> best{T(0), -1};
    for (int64_t c = 0; c < chunks; ++c) {
      const Best<T> candidate{chunk_values[r * chunks + c], chunk_indices[r * chunks + c]};
      if (beats(candidate, best, take_max)) best = candidate;
    }
    values[r] = best.value;
    indices[r] = best.index;
  }
}

// logsumexp = m + log(sum(exp(x - m))), m = max(x); when m is not finite (all -inf, some +inf, or NaN)
// m is the answer, as on the CPU.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads) logsumexp_rows_kernel(T* out, const T* rows, int64_t outer, int64_t inner) {
  for (int64_t r = blockIdx.x; r < outer; r += gridDim.x) {
    const auto [m, s] = block_max_and_sum_exp(rows + r * inner, inner);
    if (threadIdx.x == 0) out[r] = isfinite(m) ? m + log(s) : m;
  }
}

// A chunk's max m and sum of exp(x - m) (0 when m is not finite: it alone decides the row's result then).
template <class T>
__global__ void logsumexp_chunks_kernel(T* chunk_max, T* chunk_sum, const T* rows, int64_t outer, int64_t inner,
                                        int64_t chunks, int64_t chunk) {
  for (int64_t segment = blockIdx.x; segment < outer * chunks; segment += gridDim.x) {
    const int64_t r = segment / chunks, begin = segment % chunks * chunk;
    const int64_t end = begin + chunk < inner ? begin + chunk : inner;
    const auto [m, s] = block_max_and_sum_exp(rows + r * inner + begin, end - begin);
    if (threadIdx.x == 0) {
      chunk_max[segment] = m;
      chunk_sum[segment] = isfinite(m) ? s : T(0);
    }
  }
}

// logsumexp of a row from its chunks: M = the max of the chunks' maxima (NaN wins); M itself when it is not
// finite, else M + log(sum_c s_c exp(m_c - M)).
template <class T>
__global__ void combine_logsumexp_chunks_kernel(T* out, const T* chunk_max, const T* chunk_sum, int64_t outer,
                                                int64_t chunks) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < outer; r += int64_t(gridDim.x) * blockDim.x) {
    T m = -INFINITY;
    for (int64_t c = 0; c < chunks; ++c) m = max_nan(m, chunk_max[r * chunks + c]);
    if (!isfinite(m)) {
      out[r] = m;
      continue;
    }
    T s = 0;
    for (int64_t c = 0; c < chunks; ++c)
      if (isfinite(chunk_max[r * chunks + c])) s += chunk_sum[r * chunks + c] * exp(chunk_max[r * chunks + c] - m);
    out[r] = m + log(s);
  }
}

// Pass 1 of the column sums (cuda/launch.cuh): the chunk blockIdx.y of rows, columns of tile blockIdx.x.
template <class T>
__global__ void sum_column_chunks_kernel(T* partials, const T* cols, int64_t outer, int64_t inner, int64_t chunk_rows) {
  const int64_t j = blockIdx.x * int64_t(kColumnTile) + threadIdx.x;
  const int64_t begin = blockIdx.y * chunk_rows, end = begin + chunk_rows < outer ? begin + chunk_rows : outer;
  T s = 0;
  if (j < inner)
    for (int64_t r = begin + threadIdx.y; r < end; r += kRowGroups) s += cols[r * inner + j];
  s = add_row_groups(s);
  if (threadIdx.y == 0 && j < inner) partials[blockIdx.y * inner + j] = s;
}

// Long rows, few of them (a whole-tensor sum: outer = 1): each row is cut into chunks of kRowChunk elements,
// one block per (row, chunk), the chunks' sums into partials [outer, chunks]; sum_rows_kernel then adds each
// row's chunks. One block per row would leave every SM but one idle.
constexpr int64_t kRowChunk = 16384;

// Few long rows are split into chunks of kRowChunk, one block each, and the chunks combined per row: sum_rows,
// max_rows and logsumexp_rows.
bool split_rows(int64_t outer, int64_t inner) { return outer < 128 && inner > 4 * kRowChunk; }

template <class T>
__global__ void sum_row_chunks_kernel(T* partials, const T* rows, int64_t outer, int64_t inner, int64_t chunks) {
  for (int64_t b = blockIdx.x; b < outer * chunks; b += gridDim.x) {
    const int64_t r = b / chunks, c = b % chunks;
    const int64_t begin = c * kRowChunk, end = begin + kRowChunk < inner ? begin + kRowChunk : inner;
    T s = 0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += rows[r * inner + i];
    s = block_sum(s);
    if (threadIdx.x == 0) partials[b] = s;
  }
}

// One thread per row, multiplying in order (the CPU loop's order, so both give the same bits): a product
// is rarely taken over long rows, and a tree would reorder the roundings.
template <class T>
__global__ void prod_rows_kernel(T* out, const T* rows, int64_t outer, int64_t inner) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < outer; r += int64_t(gridDim.x) * blockDim.x) {
    T p = 1;
    for (int64_t i = 0; i < inner; ++i) p *= rows[r * inner + i];
    out[r] = p;
  }
}

// grad[i] = grad_out * (x[0] ... x[i-1]) * (x[i+1] ... x[n-1]): suffix products first, then the prefix.
template <class T>
__global__ void prod_rows_backward_kernel(T* grad_rows, const T* rows, const T* grad_out, int64_t outer,
                                          int64_t inner) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < outer; r += int64_t(gridDim.x) * blockDim.x) {
    const T* row = rows + r * inner;
    T* grad = grad_rows + r * inner;
    T suffix = 1;
    for (int64_t i = inner - 1; i >= 0; --i) {
      grad[i] = suffix;
      suffix *= row[i];
    }
    T prefix = grad_out[r];
    for (int64_t i = 0; i < inner; ++i) {
      grad[i] *= prefix;
      prefix *= row[i];
    }
  }
}

}  // namespace

void prod_rows(const Tensor& out, const Tensor& rows) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  if (outer == 0) return;
  dispatch_floating("prod", rows.dtype(), [&]<class T>() {
    prod_rows_kernel<T><<<blocks_for(outer), kThreads, 0, stream_for(out)>>>(ptr<T>(out), ptr<T>(rows), outer, inner);
    HC_CUDA_LAUNCH_CHECK("prod");
  });
}

void prod_rows_backward(const Tensor& grad_rows, const Tensor& rows, const Tensor& grad_out) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  if (outer == 0 || inner == 0) return;
  dispatch_floating("prod_backward", rows.dtype(), [&]<class T>() {
    prod_rows_backward_kernel<T><<<blocks_for(outer), kThreads, 0, stream_for(grad_rows)>>>(
        ptr<T>(grad_rows), ptr<T>(rows), ptr<T>(grad_out), outer, inner);
    HC_CUDA_LAUNCH_CHECK("prod_backward");
  });
}

void sum_columns(const Tensor& out, const Tensor& cols) {
  const int64_t outer = cols.shape()[0], inner = cols.shape()[1];
  if (inner == 0) return;
  const int64_t chunks = chunks_for(outer);
  const Tensor partials = Tensor::empty({chunks, inner}, out.options());
  dispatch_floating("sum", cols.dtype(), [&]<class T>() {
    cudaStream_t stream = stream_for(out);
    sum_column_chunks_kernel<T><<<column_chunk_grid(outer, inner), dim3(kColumnTile, kRowGroups), 0, stream>>>(
        ptr<T>(partials), ptr<T>(cols), outer, inner, chunk_rows_for(outer));
    HC_CUDA_LAUNCH_CHECK("sum");
    add_chunks_kernel<T><<<blocks_for(inner), kThreads, 0, stream>>>(ptr<T>(out), ptr<T>(partials), chunks, inner,
                                                                      false);
    HC_CUDA_LAUNCH_CHECK("sum");
  });
}

void sum_rows(const Tensor& out, const Tensor& rows) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  if (outer == 0) return;
  dispatch_floating("sum", rows.dtype(), [&]<class T>() {
    cudaStream_t stream = stream_for(out);
    if (split_rows(outer, inner)) {  // few long rows: split each, then add the pieces
      const int64_t chunks = (inner + kRowChunk - 1) / kRowChunk;
      const Tensor partials = Tensor::empty({outer, chunks}, out.options());
      sum_row_chunks_kernel<T><<<blocks_for_rows(outer * chunks), kThreads, 0, stream>>>(ptr<T>(partials), ptr<T>(rows),
                                                                                     outer, inner, chunks);
      HC_CUDA_LAUNCH_CHECK("sum");
      sum_rows_kernel<T><<<blocks_for_rows(outer), threads_for_row(chunks), 0, stream>>>(ptr<T>(out),
                                                                                        ptr<T>(partials), outer, chunks);
    } else {
      sum_rows_kernel<T><<<blocks_for_rows(outer), threads_for_row(inner), 0, stream>>>(ptr<T>(out), ptr<T>(rows),
                                                                                        outer, inner);
    }
    HC_CUDA_LAUNCH_CHECK("sum");
  });
}

void max_rows(const Tensor& values, const Tensor& indices, const Tensor& rows, bool take_max) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  if (outer == 0) return;
  const char* op = take_max ? "max" : "min";
  dispatch_floating(op, rows.dtype(), [&]<class T>() {
    cudaStream_t stream = stream_for(values);
    if (!split_rows(outer, inner)) {
      max_rows_kernel<T><<<blocks_for_rows(outer), threads_for_row(inner), 0, stream>>>(
          ptr<T>(values), ptr<int64_t>(indices), ptr<T>(rows), outer, inner, take_max, 1, inner);
      HC_CUDA_LAUNCH_CHECK(op);
      return;
    }
    const int64_t chunks = (inner + kRowChunk - 1) / kRowChunk;
    const Tensor chunk_values = Tensor::empty({outer, chunks}, values.options());
    const Tensor chunk_indices = Tensor::empty({outer, chunks}, indices.options());
    max_rows_kernel<T><<<blocks_for_rows(outer * chunks), kThreads, 0, stream>>>(
        ptr<T>(chunk_values), ptr<int64_t>(chunk_indices), ptr<T>(rows), outer, inner, take_max, chunks, kRowChunk);
    HC_CUDA_LAUNCH_CHECK(op);
    combine_max_chunks_kernel<T><<<blocks_for(outer), kThreads, 0, stream>>>(
        ptr<T>(values), ptr<int64_t>(indices), ptr<T>(chunk_values), ptr<int64_t>(chunk_indices), outer, chunks,
        take_max);
    HC_CUDA_LAUNCH_CHECK(op);
  });
}

void logsumexp_rows(const Tensor& out, const Tensor& rows) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  if (outer == 0) return;
  dispatch_floating("logsumexp", rows.dtype(), [&]<class T>() {
    cudaStream_t stream = stream_for(out);
    if (!split_rows(outer, inner)) {
      logsumexp_rows_kernel<T><<<blocks_for_rows(outer), threads_for_row(inner), 0, stream>>>(
          ptr<T>(out), ptr<T>(rows), outer, inner);
      HC_CUDA_LAUNCH_CHECK("logsumexp");
      return;
    }
    const int64_t chunks = (inner + kRowChunk - 1) / kRowChunk;
    const Tensor chunk_max = Tensor::empty({outer, chunks}, out.options());
    const Tensor chunk_sum = Tensor::empty({outer, chunks}, out.options());
    logsumexp_chunks_kernel<T><<<blocks_for_rows(outer * chunks), kThreads, 0, stream>>>(
        ptr<T>(chunk_max), ptr<T>(chunk_sum), ptr<T>(rows), outer, inner, chunks, kRowChunk);
    HC_CUDA_LAUNCH_CHECK("logsumexp");
    combine_logsumexp_chunks_kernel<T><<<blocks_for(outer), kThreads, 0, stream>>>(
        ptr<T>(out), ptr<T>(chunk_max), ptr<T>(chunk_sum), outer, chunks);
    HC_CUDA_LAUNCH_CHECK("logsumexp");
  });
}

}  // namespace hcgrad::cuda
