// Fused cross-entropy over logits: loss[n] = logsumexp(logits[n]) - logits[n, target[n]].
// The forward keeps only lse [N]; the backward recomputes softmax from it row by row, so no [N, C]
// probability matrix is ever stored.
#include <cmath>
#include <limits>

#include "hcgrad/core/kernels.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"

namespace hcgrad::cpu {

void cross_entropy_forward(const Tensor& losses, const Tensor& lse, const Tensor& logits, const Tensor& targets,
                           int64_t ignore_index) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  dispatch_floating("cross_entropy", logits.dtype(), [&]<class T>() {
    const T* x = logits.data<T>();
    const int64_t* t = targets.data<int64_t>();
    T* loss = losses.data<T>();
    T* l = lse.data<T>();
    parallel_for(0, N, grain_for(C), [&](int64_t r0, int64_t r1) {
      for (int64_t n = r0; n < r1; ++n) {
        const T* row = x + n * C;
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t c = 0; c < C; ++c) m = std::max(m, row[c]);
        T s = 0;
        for (int64_t c = 0; c < C; ++c) s += std::exp(row[c] - m);
        l[n] = m + std::log(s);
        loss[n] = t[n] == ignore_index ? T(0) : l[n] - row[t[n]];
      }
    });
  });
}

// d loss[n] / d logits[n, c] = softmax(logits[n])[c] - [c == target[n]]
void cross_entropy_backward(const Tensor& grad_logits, const Tensor& logits, const Tensor& targets,
                            const Tensor& lse, const Tensor& grad_losses, int64_t ignore_index) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  dispatch_floating("cross_entropy_backward", logits.dtype(), [&]<class T>() {
    const T* x = logits.data<T>();
    const int64_t* t = targets.data<int64_t>();
    const T* l = lse.data<T>();
    const T* g = grad_losses.data<T>();
    T* dx = grad_logits.data<T>();
    parallel_for(0, N, grain_for(C), [&](int64_t r0, int64_t r1) {
      for (int64_t n = r0; n < r1; ++n) {
        T* drow = dx + n * C;
        if (t[n] == ignore_index) {
          std::fill(drow, drow + C, T(0));
          continue;
        }
        const T* row = x + n * C;
        for (int64_t c = 0; c < C; ++c) drow[c] = std::exp(row[c] - l[n]) * g[n];
        drow[t[n]] -= g[n];
      }
    });
  });
}

}  // namespace hcgrad::cpu
