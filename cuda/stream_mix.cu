// Stream mixing on the GPU (the kernels of core/cpu/stream_mix.cpp): for each row m (one token), a small
// [S, K] weight matrix mixes S feature rows of length D into K. All tensors are contiguous [M, ., .].
//
// Forward: one block per row m (grid-stride over rows). The block stages the row's S·K weights in shared
// memory, then each thread takes features d (coalesced across the warp), loads x[m, :, d] into registers
// once and writes all K outputs out[m, :, d]. Every thread reads the same weight at the same time: a
// shared-memory broadcast. The optional extra pair (the connections' branch output and its weights, a row
// or a few) is added to the same accumulators before the one write.
// Backward (weights): one block per row m; each warp computes whole (s, k) dot products over d (lanes
// stride over d, coalesced) and reduces them with warp_sum. Fixed order: results are deterministic.
#include <cstdint>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

// The weights of one row live in shared memory up to this size (else they are read from global memory).
constexpr size_t kMaxSharedWeightBytes = 32 * 1024;

// kMaxS > 0: x[m, :, d] is kept in kMaxS registers (S <= kMaxS); kMaxS == 0: any S, x re-read per k.
template <class T, int kMaxS>
__global__ void stream_mix_kernel(T* __restrict__ out, const T* __restrict__ weights, const T* __restrict__ x,
                                  int64_t M, int S, int K, int64_t D, bool stage_weights,
                                  const T* __restrict__ extra_weights, const T* __restrict__ extra_x, int E) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* shared_weights = reinterpret_cast<T*>(shared_bytes);
  const int SK = S * K;
  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    const T* w = weights + m * SK;
    if (stage_weights) {
      __syncthreads();  // every thread is done with the previous row's weights
      for (int i = threadIdx.x; i < SK; i += blockDim.x) shared_weights[i] = w[i];
      __syncthreads();
      w = shared_weights;
    }
    const T* xm = x + m * S * D;
    T* om = out + m * K * D;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      if constexpr (kMaxS > 0) {
        T xs[kMaxS];
#pragma unroll
        for (int s = 0; s < kMaxS; ++s) xs[s] = s < S ? xm[s * D + d] : T(0);
        for (int k = 0; k < K; ++k) {
          T acc = 0;
#pragma unroll
          for (int s = 0; s < kMaxS; ++s)
            if (s < S) acc += w[s * K + k] * xs[s];
          for (int e = 0; e < E; ++e) acc += extra_weights[(m * E + e) * K + k] * extra_x[(m * E + e) * D + d];
          om[k * D + d] = acc;
        }
      } else {
        for (int k = 0; k < K; ++k) {
          T acc = 0;
          for (int s = 0; s < S; ++s) acc += w[s * K + k] * xm[s * D + d];
          for (int e = 0; e < E; ++e) acc += extra_weights[(m * E + e) * K + k] * extra_x[(m * E + e) * D + d];
          om[k * D + d] = acc;
        }
      }
    }
  }
}

// Both gradients of row m's pair, either one null when not wanted:
//   grad_weights[m, s, k] = sum_d x[m, s, d] * grad_out[m, k, d]  (one warp per (s, k) pair at a time)
//   grad_x[m, s, d]       = sum_k weights[m, s, k] * grad_out[m, k, d]  (the threads over d)
template <class T>
__global__ void stream_mix_backward_kernel(T* __restrict__ grad_weights, T* __restrict__ grad_x,
                                           const T* __restrict__ weights, const T* __restrict__ x,
                                           const T* __restrict__ grad_out, int64_t M, int S, int K, int64_t D) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  const int SK = S * K;
  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    const T* g = grad_out + m * K * D;
    // grad_weights: one warp per (s, k) dot product of length D.
    for (int pair = warp; grad_weights && pair < SK; pair += warps) {
      const int s = pair / K, k = pair % K;
      const T* xs = x + (m * S + s) * D;
      const T* gk = g + k * D;
      T partial = 0;
      for (int64_t d = lane; d < D; d += kWarp) partial += xs[d] * gk[d];
      partial = warp_sum(partial);  // the whole warp takes part: `pair` is the same for all its lanes
      if (lane == 0) grad_weights[m * SK + pair] = partial;
    }
    // grad_x: the block's threads over the features, each summing the K rows for every stream s.
    for (int64_t d = threadIdx.x; grad_x && d < D; d += blockDim.x)
      for (int s = 0; s < S; ++s) {
        const T* ws = weights + (m * S + s) * K;
        T acc = 0;
        for (int k = 0; k < K; ++k) acc += ws[k] * g[k * D + d];
        grad_x[(m * S + s) * D + d] = acc;
      }
  }
}

template <class T, int kMaxS>
void launch_stream_mix(const Tensor& out, const Tensor& weights, const Tensor& x, const Tensor& extra_weights,
                       const Tensor& extra_x, int64_t M, int S, int K, int64_t D) {
  const int E = extra_x.defined() ? static_cast<int>(extra_x.shape()[1]) : 0;
  const size_t weight_bytes = static_cast<size_t>(S) * K * sizeof(T);
  const bool stage = weight_bytes <= kMaxSharedWeightBytes;
  // Threads cover a row's D features (a multiple of 32, up to 256); rows with more features loop.
  const int threads = threads_for_row(D < 256 ? D : 256);
  stream_mix_kernel<T, kMaxS><<<blocks_for_rows(M), threads, stage ? weight_bytes : 0, stream_for(out)>>>(
      ptr<T>(out), ptr<const T>(weights), ptr<const T>(x), M, S, K, D, stage,
      E > 0 ? ptr<const T>(extra_weights) : nullptr, E > 0 ? ptr<const T>(extra_x) : nullptr, E);
  HC_CUDA_LAUNCH_CHECK("stream_mix");
}

}  // namespace

// One pass for both pairs; with extra_x undefined it is stream_mix (below).
void stream_mix_add(const Tensor& out, const Tensor& weights, const Tensor& x, const Tensor& extra_weights,
                    const Tensor& extra_x) {
  const int64_t M = x.shape()[0], D = x.shape()[2];
  const int64_t S = x.shape()[1], K = weights.shape()[2];
  if (out.numel() == 0) return;
  HC_CHECK(S * K <= INT32_MAX, ShapeError, "stream_mix: weights [", S, ", ", K,
           "] per row are too large for the GPU kernel");
  dispatch_floating("stream_mix", x.dtype(), [&]<class T>() {
    const int s = static_cast<int>(S), k = static_cast<int>(K);
    // Register-resident x for the common stream counts (S = 4 streams, or up to 16 stream fractions).
    if (S <= 4) launch_stream_mix<T, 4>(out, weights, x, extra_weights, extra_x, M, s, k, D);
    else if (S <= 8) launch_stream_mix<T, 8>(out, weights, x, extra_weights, extra_x, M, s, k, D);
    else if (S <= 16) launch_stream_mix<T, 16>(out, weights, x, extra_weights, extra_x, M, s, k, D);
    else launch_stream_mix<T, 0>(out, weights, x, extra_weights, extra_x, M, s, k, D);
  });
}

void stream_mix(const Tensor& out, const Tensor& weights, const Tensor& x) {
  stream_mix_add(out, weights, x, Tensor(), Tensor());  // no extra pair: E = 0
}

// One launch for both gradients: a block per row m.
void stream_mix_backward(const Tensor& grad_weights, const Tensor& grad_x, const Tensor& weights, const Tensor& x,
                         const Tensor& grad_out) {
  const int64_t M = x.shape()[0], S = x.shape()[1], D = x.shape()[2], K = grad_out.shape()[1];
  const bool want_w = grad_weights.defined() && grad_weights.numel() > 0;
  const bool want_x = grad_x.defined() && grad_x.numel() > 0;
  if (!want_w && !want_x) return;
  HC_CHECK(S * K <= INT32_MAX, ShapeError, "stream_mix: weights [", S, ", ", K,
           "] per row are too large for the GPU kernel");
  dispatch_floating("stream_mix_backward", x.dtype(), [&]<class T>() {
    // Up to 8 warps: one per (s, k) pair for the weights, all of them over the features for x.
    const int64_t pairs = S * K;
    const int64_t warps = want_x ? 8 : (pairs < 8 ? pairs : 8);
    const int threads = kWarp * static_cast<int>(warps < 1 ? 1 : warps);
    stream_mix_backward_kernel<T><<<blocks_for_rows(M), threads, 0, stream_for(x)>>>(
        want_w ? ptr<T>(grad_weights) : nullptr, want_x ? ptr<T>(grad_x) : nullptr, want_x ? ptr<const T>(weights) : nullptr,
        ptr<const T>(x), ptr<const T>(grad_out), M, static_cast<int>(S), static_cast<int>(K), D);
    HC_CUDA_LAUNCH_CHECK("stream_mix_backward");
  });
}

}  // namespace hcgrad::cuda
