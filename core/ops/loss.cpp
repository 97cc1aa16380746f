// cross_entropy(logits [N, C], targets [N]): the fused, numerically stable form of
// nll_loss(log_softmax(logits), targets), with ignore_index and mean / sum / none reduction.
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {
const OpName kCrossEntropy{"cross_entropy"};
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, CrossEntropyOptions options) {
  check_floating("cross_entropy", logits);
  check_same_device("cross_entropy", logits, targets);
  HC_CHECK(targets.dtype() == DType::Int64, DTypeError, "cross_entropy: targets must be int64 class indices, got ",
           targets.dtype(), " for shape ", targets.shape());
  HC_CHECK(logits.dim() == 2 && targets.dim() == 1 && targets.shape()[0] == logits.shape()[0], ShapeError,
           "cross_entropy: expected logits [N,C] and targets [N], got ", logits.shape(), " and ", targets.shape(),
           "; flatten them with reshape({-1, C}) and reshape({-1})");
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  HC_CHECK(C > 0, ShapeError, "cross_entropy: logits ", logits.shape(), " have no classes");
  Tensor t = as_contiguous(targets);
  const Tensor host_targets = t.to(Device::cpu());  // GPU targets are checked from a copy
  const int64_t* target_values = host_targets.data<int64_t>();
  int64_t count = 0;  // targets that are not ignored
  for (int64_t n = 0; n < N; ++n) {
    int64_t target = target_values[n];
    if (target == options.ignore_index) continue;
    HC_CHECK(target >= 0 && target < C, IndexError, "cross_entropy: target ", target, " at row ", n,
             " out of range for ", C, " classes (logits ", logits.shape(), ")");
    ++count;
  }

  Tensor x = as_contiguous(logits);
  Tensor losses = Tensor::empty({N}, logits.options());
  Tensor lse = Tensor::empty({N}, logits.options());
  HC_KERNEL(cross_entropy_forward, losses, losses, lse, x, t, options.ignore_index);

  Tensor out;
  double scale = 1.0;  // d out / d losses[n] for the reductions
  if (options.reduction == Reduction::None) {
    out = losses;
  } else {
    out = Tensor::empty({1}, logits.options());
    HC_KERNEL(sum_rows, out, out, losses.reshape({1, N}));
    if (options.reduction == Reduction::Mean) {
      scale = 1.0 / static_cast<double>(count);  // every target ignored: 0/0 = nan, as in PyTorch
      out.mul_(scale);
    }
    out = out.reshape({});
  }
  return record(kCrossEntropy, out, {logits},
                [x = save(x, kCrossEntropy), t, lse, reduction = options.reduction, scale,
                 ignore = options.ignore_index](const Tensor& g, const Needs&) {
                  Tensor logits = x.get();
                  Tensor grad_losses = reduction == Reduction::None
                                           ? as_contiguous(g)
                                           : full({logits.shape()[0]}, g.item() * scale, g.options());
                  Tensor grad = Tensor::empty(logits.shape(), logits.options());
                  HC_KERNEL(cross_entropy_backward, grad, grad, logits, t, lse, grad_losses, ignore);
                  return TensorList{grad};
                });
}

}  // namespace hcgrad
