// The Adam / AdamW update of one parameter on the CPU, as Eigen array expressions (vectorised) over chunks
// of the parameter on oneTBB.
// The formula (torch.optim.Adam / AdamW) is in core/kernel_list.h; nn/optim.cpp computes the scalars.
#include <Eigen/Core>

#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"

namespace hcgrad::cpu {

void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamUpdateOptions& s) {
  dispatch_floating("adam_update", param.dtype(), [&]<class T>() {
    using Array = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
    using ConstArray = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
    // Every element is updated on its own, so the chunks may go to any thread in any order.
    parallel_for(0, param.numel(), kGrain, [&](int64_t begin, int64_t end) {
      const int64_t n = end - begin;
      Array p(param.data<T>() + begin, n), m(exp_avg.data<T>() + begin, n), v(exp_avg_sq.data<T>() + begin, n);
      const ConstArray g(grad.data<T>() + begin, n);
      if (s.decoupled_decay != 0) p *= T(1 - s.lr * s.decoupled_decay);  // AdamW shrinks the parameter itself
      if (s.l2_decay != 0) {                                              // Adam adds the decay to the gradient
        const Eigen::Array<T, Eigen::Dynamic, 1> decayed = g + T(s.l2_decay) * p;
        m += T(1 - s.beta1) * (decayed - m);
        v = T(s.beta2) * v + T(1 - s.beta2) * decayed * decayed;
      } else {
        m += T(1 - s.beta1) * (g - m);
        v = T(s.beta2) * v + T(1 - s.beta2) * g * g;
      }
      p -= T(s.step_size) * m / (v.sqrt() / T(s.bias_correction2_sqrt) + T(s.eps));
    });
  });
}

}  // namespace hcgrad::cpu
