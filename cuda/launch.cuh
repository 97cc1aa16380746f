// Device-side building blocks of the CUDA kernels: launch sizes, strided indexing, and warp/block
// reductions. Included by cuda/*.cu only.
#pragma once

#include <algorithm>
#include <array>
#include <cfloat>
#include <cstdint>
#include <limits>

#include "hcgrad/cuda/common.h"

namespace hcgrad::cuda {

constexpr int kThreads = 256;  // threads per block of the 1-d kernels
constexpr int kWarp = 32;
constexpr int kMaxDims = 8;    // elementwise kernels index tensors of up to this many dims (after coalescing)

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, never more than the work needs.
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

// Element offsets of N operands that share one shape but not their strides: for a linear (row-major)
// index i of the shape, offsets(i)[k] = sum over dims of index[d] * strides[k][d]. Built on the host from
// the coalesced shape (core/shape.h), so contiguous operands walk one dim.
template <int N>
struct StridedIndex {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  __device__ void offsets(int64_t linear, int64_t (&out)[N]) const {
    if (ndim == 1) {  // contiguous or evenly strided operands coalesce to one dim: no 64-bit divide at all
      for (int k = 0; k < N; ++k) out[k] = linear * strides[k][0];
      return;
    }
    for (int k = 0; k < N; ++k) out[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t size = sizes[d];
      const int64_t index = linear % size;
      linear /= size;
      for (int k = 0; k < N; ++k) out[k] += index * strides[k][d];
    }
  }
};

// Describes operands (all of tensors[0]'s shape) for a kernel; throws when more than kMaxDims dims remain.
template <int N>
StridedIndex<N> strided_index(const char* op, const std::array<const Tensor*, N>& tensors) {
  Shape shape = tensors[0]->shape();
  std::array<Strides, N> strides;
  for (int k = 0; k < N; ++k) strides[k] = tensors[k]->strides();
  coalesce_dims<N>(shape, strides);
  HC_CHECK(shape.ndim() <= kMaxDims, ShapeError, op, ": the CUDA kernels take at most ", kMaxDims,
           " non-contiguous dims, got shape ", tensors[0]->shape());
  StridedIndex<N> index;
  index.ndim = static_cast<int>(shape.ndim());
  for (int d = 0; d < index.ndim; ++d) {
    index.sizes[d] = shape[d];
    for (int k = 0; k < N; ++k) index.strides[k][d] = strides[k][d];
  }
  return index;
}

// ---- reductions within a warp and a block ----

// The larger of a and b, NaN if either is NaN (as the CPU kernels: NaN wins; CUDA's max() drops NaNs).
template <class T>
__device__ T max_nan(T a, T b) {
  return (a != a || a > b) ? a : b;
}

struct Sum {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxNan {
  template <class T>
  __device__ T operator()(T a, T b) const { return max_nan(a, b); }
};

template <class T, class Combine>
__device__ T warp_reduce(T v, Combine combine) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = combine(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// combine() of v over the whole block, returned to every thread. blockDim.x is a multiple of 32 (up to
// 1024) and every thread of the block calls it; `identity` fills the unused warp slots.
template <class T, class Combine>
__device__ T block_reduce(T v, Combine combine, T identity) {
  __shared__ T partial[kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = warp_reduce(v, combine);
  __syncthreads();  // a previous call may still be reading the scratch
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : identity;
  return warp_reduce(v, combine);
}

template <class T>
__device__ T warp_sum(T v) { return warp_reduce(v, Sum{}); }
template <class T>
__device__ T warp_max(T v) { return warp_reduce(v, MaxNan{}); }
template <class T>
__device__ T block_sum(T v) { return block_reduce(v, Sum{}, T(0)); }
template <class T>
__device__ T block_max(T v) { return block_reduce(v, MaxNan{}, -std::numeric_limits<T>::infinity()); }

// The max m of a row of n values and sum(exp(x - m)) over it, by the whole block (every thread gets both):
// the start of softmax, logsumexp and cross-entropy, where subtracting m keeps exp from overflowing.
template <class T>
struct MaxAndSumExp {
  T max;
  T sum_exp;
};

template <class T>
__device__ MaxAndSumExp<T> block_max_and_sum_exp(const T* row, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = max_nan(m, row[i]);
  m = block_max(m);
  T s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += exp(row[i] - m);
  return {m, block_sum(s)};
}

// ---- indices checked on the GPU (cuda/index_fault.h) ----
// Records the first bad index of the process; the caller skips the access it would have made.
__device__ inline void record_index_fault(IndexFault* fault, IndexFaultKernel kernel, int64_t index, int64_t limit) {
  if (atomicCAS(&fault->recorded, 0, 1) == 0) {
    fault->kernel = kernel;
    fault->index = index;
    fault->limit = limit;
  }
}

// ---- column sums of tall matrices, in two deterministic passes ----
// A sum down the rows of a [N, D] matrix (a bias gradient: N = B·T tokens, D channels) has D-way parallelism
// only, too little when D is small or N large. So the rows are cut into chunks of chunk_rows_for(N) rows,
// fixed by N alone: pass 1 gives each (32-column tile, chunk) pair a block of 32 columns × 8 row groups
// (neighbouring threads read neighbouring columns) and writes the chunk's sums to its own row of partials
// [chunks, D]; pass 2 (add_chunks_kernel) adds each column's chunks in chunk order. The same bits on every run
// and every GPU, whatever the scheduling.
constexpr int kColumnTile = 32, kRowGroups = 8;

inline int64_t chunk_rows_for(int64_t rows) {
  constexpr int64_t kChunkRows = 256, kMaxChunks = 65535;  // a chunk per grid row: gridDim.y <= 65535
  return std::max<int64_t>(kChunkRows, (rows + kMaxChunks - 1) / kMaxChunks);
}
inline int64_t chunks_for(int64_t rows) {
  const int64_t chunk = chunk_rows_for(rows);
  return std::max<int64_t>(1, (rows + chunk - 1) / chunk);
}
inline dim3 column_chunk_grid(int64_t rows, int64_t columns) {
  return dim3(static_cast<unsigned>((columns + kColumnTile - 1) / kColumnTile), static_cast<unsigned>(chunks_for(rows)));
}

// Pass 1's last step: the 8 row groups' sums of the block's columns, added in row-group order; thread
// (x, 0) gets column x's chunk sum. Every thread of the block calls it.
template <class T>
__device__ T add_row_groups(T v) {
  __shared__ T groups[kRowGroups][kColumnTile];
  __syncthreads();  // a previous call may still be reading the scratch
  groups[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  T s = 0;
  if (threadIdx.y == 0)
    for (int k = 0; k < kRowGroups; ++k) s += groups[k][threadIdx.x];
  return s;
}

// Pass 2: out[d] = (out[d] if accumulate, else 0) + sum over c of partials[c, d], c in order.
template <class T>
__global__ void add_chunks_kernel(T* out, const T* partials, int64_t chunks, int64_t columns, bool accumulate) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < columns; d += int64_t(gridDim.x) * blockDim.x) {
    T s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += partials[c * columns + d];
    out[d] = accumulate ? out[d] + s : s;
  }
}

// Blocks for a kernel that gives one block to each row (rows beyond the grid are taken in turn).
inline unsigned blocks_for_rows(int64_t rows) {
  return static_cast<unsigned>(rows < 1 ? 1 : (rows > 65535 ? 65535 : rows));
}

// The most threads threads_for_row gives a block. The kernels launched with it are declared
// __launch_bounds__(kMaxRowThreads), so that nvcc keeps them within 64 registers a thread (65,536 per SM /
// 1,024): a kernel that grew past that would otherwise compile and then fail only on a GPU, at launch, with
// "too many resources requested".
constexpr int kMaxRowThreads = 1024;

// Threads for a kernel that gives one block to each row of n elements: a multiple of 32, at most 1024.
inline int threads_for_row(int64_t n) {
  int threads = kWarp;
  while (threads < kMaxRowThreads && threads < n) threads *= 2;
  return threads;
}

}  // namespace hcgrad::cuda
