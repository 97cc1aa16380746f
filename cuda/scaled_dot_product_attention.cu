// Fused scaled dot-product attention on the GPU, tiled as in FlashAttention-2 (Dao 2023): the [T, T]
// scores live only in registers, one tile at a time, so memory stays linear in T.
//
// Every kernel has the same layout. A block owns kBlockRows rows of one (batch, head): each of its
// warps owns kRowsPerWarp of them. The block walks over the other side in tiles of 32, one per lane,
// staged in shared memory. For one row and one tile a lane computes the score of "its" column; the warp
// then reduces across lanes (softmax statistics) or broadcasts each lane's value (__shfl_sync) to
// accumulate rows of length hd, where lane l owns the dims l, l + 32, l + 64, l + 96.
//
//   forward   rows = queries, tiles = keys:     online softmax (running max m, sum l), out = acc / l,
//                                               lse = m + log(l)
//   grad_q    rows = queries, tiles = keys:     dq_i = scale sum_j dS_ij k_j
//   grad_k/v  rows = keys,    tiles = queries:  dv_j = sum_i P_ij dout_i,  dk_j = scale sum_i dS_ij q_i
// with P_ij = exp(scale q_i . k_j - lse_i), dS_ij = P_ij (dout_i . v_j - D_i), D_i = dout_i . out_i
// (its own small kernel). Each gradient row is owned by one block: no atomics. When causal, tiles that
// lie entirely above the diagonal are never visited.
#include <algorithm>
#include <type_traits>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kBlockRows = kWarpsPerBlock * kRowsPerWarp;  // rows a block owns
constexpr int kTileColumns = kWarp;                        // columns per tile: one per lane
constexpr int kBlockThreads = kWarpsPerBlock * kWarp;
constexpr int kMaxHeadDim = 128;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline float exp_of(float x) { return expf(x); }
__device__ inline double exp_of(double x) { return exp(x); }
__device__ inline float log_of(float x) { return logf(x); }
__device__ inline double log_of(double x) { return log(x); }

// What every kernel needs to know about one call.
struct AttentionShape {
  int64_t T;    // sequence length
  int hd;       // head dim, <= the kernel's kHeadDim
  int stride;   // row stride of the shared-memory tiles: odd, so lanes reading different rows of a tile
                // (same column) hit different banks
  bool causal;  // key j is visible from query i only when j <= i
};

// Where one tensor's heads lie ([B, H, T, hd], last dim contiguous): head h = b·H + hb starts at
// data + b·batch + hb·head, its T rows `row` elements apart. A contiguous tensor has (H·T·hd, T·hd, hd), a head
// of a packed qkv projection [B, T, 3·H·hd] (T·3·H·hd, hd, 3·H·hd).
template <class Scalar>
struct Heads {
  Scalar* data;
  int64_t batch, head, row, H;
  __device__ Scalar* of(int64_t h) const { return data + (h / H) * batch + (h % H) * head; }
};

// Copies rows [first, first + rows) of one head ([T, hd], rows `ld` apart) into a shared tile, times `factor`;
// rows past the end of the sequence become zeros. Called by every thread of the block.
template <class Scalar>
__device__ void load_rows(Scalar* tile, const Scalar* head, int64_t ld, int64_t first, int rows,
                          const AttentionShape& shape, Scalar factor = Scalar(1)) {
  for (int index = threadIdx.x; index < rows * shape.hd; index += blockDim.x) {
    const int r = index / shape.hd, d = index % shape.hd;
    const int64_t row = first + r;
    tile[r * shape.stride + d] = row < shape.T ? head[row * ld + d] * factor : Scalar(0);
  }
}

__device__ inline bool visible(int64_t query, int64_t key, const AttentionShape& shape) {
  return query < shape.T && key < shape.T && (!shape.causal || key <= query);
}

// ---- forward: one block per (head, 16 queries); lse is the log-sum-exp of each scaled score row ----
template <class Scalar, int kHeadDim>
__global__ void __launch_bounds__(kBlockThreads)
    scaled_dot_product_attention_forward_kernel(Heads<Scalar> out, Scalar* lse, Heads<const Scalar> q,
                                                Heads<const Scalar> k, Heads<const Scalar> v, AttentionShape shape,
                                                int64_t query_blocks, Scalar scale) {
  constexpr int kDimsPerLane = kHeadDim / kWarp;
  constexpr Scalar kNegInf = -std::numeric_limits<Scalar>::infinity();
  extern __shared__ __align__(16) unsigned char shared[];
  const int stride = shape.stride, hd = shape.hd;
  Scalar* q_tile = reinterpret_cast<Scalar*>(shared);  // [kBlockRows, stride], times scale
  Scalar* k_tile = q_tile + kBlockRows * stride;        // [kTileColumns, stride]
  Scalar* v_tile = k_tile + kTileColumns * stride;      // [kTileColumns, stride]

  // The last query blocks see the most keys when causal: start those first, so the tail of the grid is short.
  const int64_t head = blockIdx.x / query_blocks;
  const int64_t query0 = (query_blocks - 1 - blockIdx.x % query_blocks) * kBlockRows;
  const int lane = threadIdx.x % kWarp, warp_row0 = threadIdx.x / kWarp * kRowsPerWarp;
  const Scalar *q_head = q.of(head), *k_head = k.of(head), *v_head = v.of(head);
  Scalar* out_head = out.of(head);
  lse += head * shape.T;

  load_rows(q_tile, q_head, q.row, query0, kBlockRows, shape, scale);
  Scalar row_max[kRowsPerWarp], row_sum[kRowsPerWarp], acc[kRowsPerWarp][kDimsPerLane];
  for (int r = 0; r < kRowsPerWarp; ++r) {
    row_max[r] = kNegInf;
    row_sum[r] = 0;
    for (int c = 0; c < kDimsPerLane; ++c) acc[r][c] = 0;
  }

  const int64_t key_end = shape.causal ? std::min<int64_t>(shape.T, query0 + kBlockRows) : shape.T;
  for (int64_t key0 = 0; key0 < key_end; key0 += kTileColumns) {
    __syncthreads();  // every warp is done with the previous key tile
    load_rows(k_tile, k_head, k.row, key0, kTileColumns, shape);
    load_rows(v_tile, v_head, v.row, key0, kTileColumns, shape);
    __syncthreads();  // the tiles (and, the first time, q_tile) are in place

    // This lane's key against each of the warp's queries.
    Scalar score[kRowsPerWarp] = {};
    for (int d = 0; d < hd; ++d) {
      const Scalar kd = k_tile[lane * stride + d];
      for (int r = 0; r < kRowsPerWarp; ++r) score[r] += q_tile[(warp_row0 + r) * stride + d] * kd;
    }
    // Online softmax: rescale what was accumulated under the old running max.
    Scalar prob[kRowsPerWarp];
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const bool seen = visible(query0 + warp_row0 + r, key0 + lane, shape);
      const Scalar s = seen ? score[r] : kNegInf;
      const Scalar new_max = max(row_max[r], warp_max(s));
      prob[r] = seen ? exp_of(s - new_max) : Scalar(0);
      // No key seen yet (row_max = -inf): nothing accumulated, and -inf - -inf would be NaN.
      const Scalar rescale = row_max[r] == kNegInf ? Scalar(0) : exp_of(row_max[r] - new_max);
      row_sum[r] = row_sum[r] * rescale + warp_sum(prob[r]);
      row_max[r] = new_max;
      for (int c = 0; c < kDimsPerLane; ++c) acc[r][c] *= rescale;
    }
    // acc_i += sum_j p_ij v_j, p_ij broadcast from lane j.
    for (int j = 0; j < kTileColumns; ++j) {
      Scalar vj[kDimsPerLane];
      for (int c = 0; c < kDimsPerLane; ++c) {
        const int d = lane + c * kWarp;
        vj[c] = d < hd ? v_tile[j * stride + d] : Scalar(0);
      }
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const Scalar p = __shfl_sync(kFullMask, prob[r], j);
        for (int c = 0; c < kDimsPerLane; ++c) acc[r][c] += p * vj[c];
      }
    }
  }

  // Every real query saw at least itself (causal) or all keys, so row_sum > 0.
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t query = query0 + warp_row0 + r;
    if (query >= shape.T) continue;
    const Scalar inv = Scalar(1) / row_sum[r];
    for (int c = 0; c < kDimsPerLane; ++c) {
      const int d = lane + c * kWarp;
      if (d < hd) out_head[query * out.row + d] = acc[r][c] * inv;
    }
    if (lane == 0) lse[query] = row_max[r] + log_of(row_sum[r]);
  }
}

// ---- backward, step 1: D_i = dout_i . out_i, one warp per row of [B * H * T, hd] ----
template <class Scalar>
__global__ void attention_delta_kernel(Scalar* delta, Heads<const Scalar> grad_out, Heads<const Scalar> out,
                                       int64_t rows, AttentionShape shape) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (row >= rows) return;  // the whole warp leaves together
  const int lane = threadIdx.x % kWarp;
  const int64_t head = row / shape.T, t = row % shape.T;
  const Scalar* dout_row = grad_out.of(head) + t * grad_out.row;
  const Scalar* out_row = out.of(head) + t * out.row;
  Scalar sum = 0;
  for (int d = lane; d < shape.hd; d += kWarp) sum += dout_row[d] * out_row[d];
  sum = warp_sum(sum);
  if (lane == 0) delta[row] = sum;
}

// ---- backward, step 2: dq, one block per (head, 16 queries), walking over the key tiles ----
template <class Scalar, int kHeadDim>
__global__ void __launch_bounds__(kBlockThreads)
    attention_grad_q_kernel(Heads<Scalar> grad_q, Heads<const Scalar> grad_out, Heads<const Scalar> q,
                            Heads<const Scalar> k, Heads<const Scalar> v, const Scalar* lse, const Scalar* delta,
                            AttentionShape shape, int64_t query_blocks, Scalar scale) {
  constexpr int kDimsPerLane = kHeadDim / kWarp;
  extern __shared__ __align__(16) unsigned char shared[];
  const int stride = shape.stride, hd = shape.hd;
  Scalar* q_tile = reinterpret_cast<Scalar*>(shared);  // [kBlockRows, stride], times scale
  Scalar* dout_tile = q_tile + kBlockRows * stride;     // [kBlockRows, stride]
  Scalar* k_tile = dout_tile + kBlockRows * stride;     // [kTileColumns, stride]
  Scalar* v_tile = k_tile + kTileColumns * stride;      // [kTileColumns, stride]

  const int64_t head = blockIdx.x / query_blocks;
  const int64_t query0 = (query_blocks - 1 - blockIdx.x % query_blocks) * kBlockRows;
  const int lane = threadIdx.x % kWarp, warp_row0 = threadIdx.x / kWarp * kRowsPerWarp;
  const Scalar *q_head = q.of(head), *k_head = k.of(head), *v_head = v.of(head), *dout_head = grad_out.of(head);
  Scalar* grad_q_head = grad_q.of(head);
  lse += head * shape.T, delta += head * shape.T;

  load_rows(q_tile, q_head, q.row, query0, kBlockRows, shape, scale);
  load_rows(dout_tile, dout_head, grad_out.row, query0, kBlockRows, shape);
  Scalar row_lse[kRowsPerWarp], row_delta[kRowsPerWarp], acc[kRowsPerWarp][kDimsPerLane];
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t query = query0 + warp_row0 + r;
    row_lse[r] = query < shape.T ? lse[query] : Scalar(0);
    row_delta[r] = query < shape.T ? delta[query] : Scalar(0);
    for (int c = 0; c < kDimsPerLane; ++c) acc[r][c] = 0;
  }

  const int64_t key_end = shape.causal ? std::min<int64_t>(shape.T, query0 + kBlockRows) : shape.T;
  for (int64_t key0 = 0; key0 < key_end; key0 += kTileColumns) {
    __syncthreads();
    load_rows(k_tile, k_head, k.row, key0, kTileColumns, shape);
    load_rows(v_tile, v_head, v.row, key0, kTileColumns, shape);
    __syncthreads();

    // Scores and dP = dout_i . v_j for this lane's key j.
    Scalar score[kRowsPerWarp] = {}, dprob[kRowsPerWarp] = {};
    for (int d = 0; d < hd; ++d) {
      const Scalar kd = k_tile[lane * stride + d], vd = v_tile[lane * stride + d];
      for (int r = 0; r < kRowsPerWarp; ++r) {
        score[r] += q_tile[(warp_row0 + r) * stride + d] * kd;
        dprob[r] += dout_tile[(warp_row0 + r) * stride + d] * vd;
      }
    }
    Scalar dscore[kRowsPerWarp];
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const bool seen = visible(query0 + warp_row0 + r, key0 + lane, shape);
      const Scalar p = seen ? exp_of(score[r] - row_lse[r]) : Scalar(0);
      dscore[r] = p * (dprob[r] - row_delta[r]);
    }
    // acc_i += sum_j dS_ij k_j, dS_ij broadcast from lane j.
    for (int j = 0; j < kTileColumns; ++j) {
      Scalar kj[kDimsPerLane];
      for (int c = 0; c < kDimsPerLane; ++c) {
        const int d = lane + c * kWarp;
        kj[c] = d < hd ? k_tile[j * stride + d] : Scalar(0);
      }
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const Scalar ds = __shfl_sync(kFullMask, dscore[r], j);
        for (int c = 0; c < kDimsPerLane; ++c) acc[r][c] += ds * kj[c];
      }
    }
  }

  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t query = query0 + warp_row0 + r;
    if (query >= shape.T) continue;
    for (int c = 0; c < kDimsPerLane; ++c) {
      const int d = lane + c * kWarp;
      if (d < hd) grad_q_head[query * grad_q.row + d] = acc[r][c] * scale;
    }
  }
}

// ---- backward, step 3: dk and dv, one block per (head, 16 keys), walking over the query tiles ----
// grad_k or grad_v may be null (not wanted).
template <class Scalar, int kHeadDim>
__global__ void __launch_bounds__(kBlockThreads)
    attention_grad_kv_kernel(Heads<Scalar> grad_k, Heads<Scalar> grad_v, Heads<const Scalar> grad_out,
                             Heads<const Scalar> q, Heads<const Scalar> k, Heads<const Scalar> v, const Scalar* lse,
                             const Scalar* delta, AttentionShape shape, int64_t key_blocks, Scalar scale) {
  constexpr int kDimsPerLane = kHeadDim / kWarp;
  extern __shared__ __align__(16) unsigned char shared[];
  const int stride = shape.stride, hd = shape.hd;
  Scalar* k_tile = reinterpret_cast<Scalar*>(shared);  // [kBlockRows, stride], times scale
  Scalar* v_tile = k_tile + kBlockRows * stride;        // [kBlockRows, stride]
  Scalar* q_tile = v_tile + kBlockRows * stride;        // [kTileColumns, stride]
  Scalar* dout_tile = q_tile + kTileColumns * stride;   // [kTileColumns, stride]

  // When causal the first key blocks are seen by the most queries: they come first in the grid.
  const int64_t head = blockIdx.x / key_blocks;
  const int64_t key0 = blockIdx.x % key_blocks * kBlockRows;
  const int lane = threadIdx.x % kWarp, warp_row0 = threadIdx.x / kWarp * kRowsPerWarp;
  const Scalar *q_head = q.of(head), *k_head = k.of(head), *v_head = v.of(head), *dout_head = grad_out.of(head);
  lse += head * shape.T, delta += head * shape.T;

  load_rows(k_tile, k_head, k.row, key0, kBlockRows, shape, scale);
  load_rows(v_tile, v_head, v.row, key0, kBlockRows, shape);
  Scalar acc_k[kRowsPerWarp][kDimsPerLane], acc_v[kRowsPerWarp][kDimsPerLane];
  for (int r = 0; r < kRowsPerWarp; ++r)
    for (int c = 0; c < kDimsPerLane; ++c) acc_k[r][c] = acc_v[r][c] = 0;

  // Queries before key0 see none of this block's keys when causal.
  for (int64_t query0 = shape.causal ? key0 : 0; query0 < shape.T; query0 += kTileColumns) {
    __syncthreads();
    load_rows(q_tile, q_head, q.row, query0, kTileColumns, shape);
    load_rows(dout_tile, dout_head, grad_out.row, query0, kTileColumns, shape);
    __syncthreads();

    // Scores and dP = dout_i . v_j for this lane's query i.
    const int64_t query = query0 + lane;
    const Scalar query_lse = query < shape.T ? lse[query] : Scalar(0);
    const Scalar query_delta = query < shape.T ? delta[query] : Scalar(0);
    Scalar score[kRowsPerWarp] = {}, dprob[kRowsPerWarp] = {};
    for (int d = 0; d < hd; ++d) {
      const Scalar qd = q_tile[lane * stride + d], dod = dout_tile[lane * stride + d];
      for (int r = 0; r < kRowsPerWarp; ++r) {
        score[r] += k_tile[(warp_row0 + r) * stride + d] * qd;
        dprob[r] += v_tile[(warp_row0 + r) * stride + d] * dod;
      }
    }
    Scalar prob[kRowsPerWarp], dscore[kRowsPerWarp];
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const bool seen = visible(query, key0 + warp_row0 + r, shape);
      prob[r] = seen ? exp_of(score[r] - query_lse) : Scalar(0);
      dscore[r] = prob[r] * (dprob[r] - query_delta);
    }
    // dv_j += sum_i P_ij dout_i and dk_j += sum_i dS_ij q_i, the coefficients broadcast from lane i.
    for (int i = 0; i < kTileColumns; ++i) {
      Scalar qi[kDimsPerLane], douti[kDimsPerLane];
      for (int c = 0; c < kDimsPerLane; ++c) {
        const int d = lane + c * kWarp;
        qi[c] = d < hd ? q_tile[i * stride + d] : Scalar(0);
        douti[c] = d < hd ? dout_tile[i * stride + d] : Scalar(0);
      }
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const Scalar p = __shfl_sync(kFullMask, prob[r], i), ds = __shfl_sync(kFullMask, dscore[r], i);
        for (int c = 0; c < kDimsPerLane; ++c) {
          acc_v[r][c] += p * douti[c];
          acc_k[r][c] += ds * qi[c];
        }
      }
    }
  }

  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t key = key0 + warp_row0 + r;
    if (key >= shape.T) continue;
    for (int c = 0; c < kDimsPerLane; ++c) {
      const int d = lane + c * kWarp;
      if (d >= hd) continue;
      if (grad_k.data) grad_k.of(head)[key * grad_k.row + d] = acc_k[r][c] * scale;
      if (grad_v.data) grad_v.of(head)[key * grad_v.row + d] = acc_v[r][c];
    }
  }
}

// ---- host side ----

int64_t ceil_div(int64_t n, int64_t d) { return (n + d - 1) / d; }

// B * H, and the shape the kernels see; throws for head dims the kernels do not take.
struct Problem {
  int64_t heads;
  AttentionShape shape;
};

Problem problem_of(const char* op, const Tensor& q, bool causal) {
  const int64_t hd = q.shape()[3];
  HC_CHECK(hd <= kMaxHeadDim, ShapeError, op, ": the CUDA kernels take head dims up to ", kMaxHeadDim, ", got shape ",
           q.shape());
  const int hd32 = static_cast<int>(hd);
  return {q.shape()[0] * q.shape()[1], {q.shape()[2], hd32, hd32 % 2 == 0 ? hd32 + 1 : hd32, causal}};
}

// fn.template operator()<kHeadDim>() with the smallest of 32, 64, 128 that holds hd.
template <class Fn>
void with_head_dim(int hd, Fn&& fn) {
  if (hd <= 32)
    fn.template operator()<32>();
  else if (hd <= 64)
    fn.template operator()<64>();
  else
    fn.template operator()<128>();
}

// Bytes of shared memory for tiles of `rows` rows in all; above 48 KiB a kernel must opt in.
template <class Scalar, class Kernel>
size_t shared_memory_for(const char* op, Kernel* kernel, int rows, const AttentionShape& shape) {
  const size_t bytes = static_cast<size_t>(rows) * shape.stride * sizeof(Scalar);
  if (bytes > 48 * 1024) {
    HC_CUDA_CHECK(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(bytes)));
  }
  return bytes;
}

// A tensor's heads (null data when the tensor is undefined: a gradient not wanted).
template <class Scalar>
Heads<Scalar> heads_of(const Tensor& t) {
  if (!t.defined()) return {nullptr, 0, 0, 0, 1};
  return {ptr<std::remove_const_t<Scalar>>(t), t.strides()[0], t.strides()[1], t.strides()[2], t.shape()[1]};
}

}  // namespace

void scaled_dot_product_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       bool causal, double scale) {
  const char* op = "scaled_dot_product_attention";
  const Problem problem = problem_of(op, q, causal);
  const AttentionShape& shape = problem.shape;
  if (problem.heads == 0 || shape.T == 0) return;
  cudaStream_t stream = stream_for(q);
  const int64_t query_blocks = ceil_div(shape.T, kBlockRows);
  dispatch_floating(op, q.dtype(), [&]<class Scalar>() {
    with_head_dim(shape.hd, [&]<int kHeadDim>() {
      const size_t bytes = shared_memory_for<Scalar>(op, scaled_dot_product_attention_forward_kernel<Scalar, kHeadDim>,
                                                     kBlockRows + 2 * kTileColumns, shape);
      scaled_dot_product_attention_forward_kernel<Scalar, kHeadDim>
          <<<static_cast<unsigned>(problem.heads * query_blocks), kBlockThreads, bytes, stream>>>(
              heads_of<Scalar>(out), ptr<Scalar>(lse), heads_of<const Scalar>(q), heads_of<const Scalar>(k),
              heads_of<const Scalar>(v), shape, query_blocks, static_cast<Scalar>(scale));
      HC_CUDA_LAUNCH_CHECK(op);
    });
  });
}

void scaled_dot_product_attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v, const Tensor& grad_out,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        bool causal, double scale) {
  const char* op = "scaled_dot_product_attention_backward";
  const Problem problem = problem_of(op, q, causal);
  const AttentionShape& shape = problem.shape;
  if (problem.heads == 0 || shape.T == 0) return;
  cudaStream_t stream = stream_for(q);
  const int64_t blocks_per_head = ceil_div(shape.T, kBlockRows);  // of queries (grad_q) or keys (grad_k/v)
  const unsigned grid = static_cast<unsigned>(problem.heads * blocks_per_head);
  Tensor delta = Tensor::empty(lse.shape(), lse.options());  // [B, H, T]: D_i = dout_i . out_i
  dispatch_floating(op, q.dtype(), [&]<class Scalar>() {
    const int64_t rows = problem.heads * shape.T;
    constexpr int kRowsPerBlock = kThreads / kWarp;  // one warp per row
    attention_delta_kernel<Scalar><<<static_cast<unsigned>(ceil_div(rows, kRowsPerBlock)), kThreads, 0, stream>>>(
        ptr<Scalar>(delta), heads_of<const Scalar>(grad_out), heads_of<const Scalar>(out), rows, shape);
    HC_CUDA_LAUNCH_CHECK(op);

    with_head_dim(shape.hd, [&]<int kHeadDim>() {
      if (grad_q.defined()) {
        const size_t bytes = shared_memory_for<Scalar>(op, attention_grad_q_kernel<Scalar, kHeadDim>,
                                                       2 * kBlockRows + 2 * kTileColumns, shape);
        attention_grad_q_kernel<Scalar, kHeadDim><<<grid, kBlockThreads, bytes, stream>>>(
            heads_of<Scalar>(grad_q), heads_of<const Scalar>(grad_out), heads_of<const Scalar>(q),
            heads_of<const Scalar>(k), heads_of<const Scalar>(v), ptr<Scalar>(lse), ptr<Scalar>(delta), shape,
            blocks_per_head, static_cast<Scalar>(scale));
        HC_CUDA_LAUNCH_CHECK(op);
      }
      if (grad_k.defined() || grad_v.defined()) {
        const size_t bytes = shared_memory_for<Scalar>(op, attention_grad_kv_kernel<Scalar, kHeadDim>,
                                                       2 * kBlockRows + 2 * kTileColumns, shape);
        attention_grad_kv_kernel<Scalar, kHeadDim><<<grid, kBlockThreads, bytes, stream>>>(
            heads_of<Scalar>(grad_k), heads_of<Scalar>(grad_v), heads_of<const Scalar>(grad_out),
            heads_of<const Scalar>(q), heads_of<const Scalar>(k), heads_of<const Scalar>(v), ptr<Scalar>(lse),
            ptr<Scalar>(delta), shape, blocks_per_head, static_cast<Scalar>(scale));
        HC_CUDA_LAUNCH_CHECK(op);
      }
    });
  });
}

}  // namespace hcgrad::cuda
