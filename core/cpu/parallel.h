// oneTBB helpers for the CPU kernels. Two rules keep results reproducible:
//  * elementwise work may be split anyhow: every output element is computed the same way;
//  * sums are split into blocks of a fixed size, not one block per thread, and the block results are
//    added in order, so a reduction gives the same bits whatever the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

namespace hcgrad::cpu {

// Below this many elements a loop stays on the calling thread: a hand-off costs more than it saves.
inline constexpr int64_t kGrain = 32 * 1024;

// body(begin, end) over [begin, end), in chunks of at least `grain` iterations.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& body) {
  if (end <= begin) return;
  if (end - begin <= grain) {
    body(begin, end);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(begin, end, std::max<int64_t>(grain, 1)),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
}

// Iterations per chunk so that a chunk holds about kGrain elements of `work_per_iteration` each.
inline int64_t grain_for(int64_t work_per_iteration) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work_per_iteration));
}

// f(row) for each of `outer` rows of `inner` elements, in parallel when there is enough work.
template <class F>
void for_each_row(int64_t outer, int64_t inner, const F& f) {
  parallel_for(0, outer, grain_for(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) f(r);
  });
}

// partial(begin, end) -> T over fixed blocks of [0, n), summed in block order (deterministic).
template <class T, class F>
T blocked_sum(int64_t n, int64_t block, const F& partial) {
  int64_t blocks = (n + block - 1) / block;
  if (blocks <= 1) return n > 0 ? partial(0, n) : T(0);
  std::vector<T> parts(blocks);
  parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) parts[b] = partial(b * block, std::min(n, (b + 1) * block));
  });
  T total = T(0);
  for (const T& part : parts) total += part;
  return total;
}

}  // namespace hcgrad::cpu
