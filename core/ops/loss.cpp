// cross_entropy(logits [N, C], targets [N]): the fused, numerically stable form of
// nll_loss(log_softmax(logits), targets), with ignore_index and mean / sum / none reduction.
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {
const OpName kCrossEntropy{"cross_entropy"};

// Checks class-index targets [N] against scores [N, C] (named `scores_name` in messages): shapes and dtype.
void check_class_targets(const char* op, const char* scores_name, const Tensor& scores, const Tensor& targets) {
  check_floating(op, scores);
  check_same_device(op, scores, targets);
  HC_CHECK(targets.dtype() == DType::Int64, DTypeError, op, ": targets must be int64 class indices, got ",
           targets.dtype(), " for shape ", targets.shape());
  HC_CHECK(scores.dim() == 2 && targets.dim() == 1 && targets.shape()[0] == scores.shape()[0], ShapeError, op,
           ": expected ", scores_name, " [N,C] and targets [N], got ", scores.shape(), " and ", targets.shape(),
           "; flatten them with reshape({-1, C}) and reshape({-1})");
  HC_CHECK(scores.shape()[1] > 0, ShapeError, op, ": ", scores_name, " ", scores.shape(), " have no classes");
}

// check_class_targets, then each target in [0, C) or ignore_index (GPU targets are read from a copy); returns
// how many are not ignore_index.
int64_t count_class_targets(const char* op, const char* scores_name, const Tensor& scores, const Tensor& targets,
                            int64_t ignore_index) {
  check_class_targets(op, scores_name, scores, targets);
  const int64_t N = scores.shape()[0], C = scores.shape()[1];
  const Tensor host_targets = as_contiguous(targets).to(Device::cpu());
  const int64_t* target_values = host_targets.data<int64_t>();
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t target = target_values[n];
    if (target == ignore_index) continue;
    HC_CHECK(target >= 0 && target < C, IndexError, op, ": target ", target, " at row ", n, " out of range for ", C,
             " classes (", scores_name, " ", scores.shape(), ")");
    ++count;
  }
  return count;
}

// losses [N] (or any shape) reduced as asked; `count` is what Mean divides by.
Tensor reduced(const Tensor& losses, Reduction reduction, double count) {
  if (reduction == Reduction::None) return losses;
  const Tensor total = sum(losses);
  return reduction == Reduction::Sum ? total : total * (1.0 / count);  // count 0: nan, as PyTorch
}

void check_same_shape(const char* op, const Tensor& input, const Tensor& target) {
  HC_CHECK(input.shape() == target.shape(), ShapeError, op, ": input ", input.shape(), " and target ",
           target.shape(), " must have one shape (PyTorch would broadcast them, usually by mistake)");
}

// The targets that count (not ignore_index), as a 0-d tensor of the logits' dtype on their device: on the CPU
// checked and counted on the host; on a GPU counted there and checked by the kernel (cuda/index_fault.h), so
// that nothing waits for the GPU in the middle of a training step.
Tensor counted_targets(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  if (targets.device().is_cuda()) {
    check_class_targets("cross_entropy", "logits", logits, targets);
    const Tensor kept = ne(targets, scalar_tensor(static_cast<double>(ignore_index), targets.options()));
    return sum(kept.to(logits.dtype()));
  }
  const int64_t count = count_class_targets("cross_entropy", "logits", logits, targets, ignore_index);
  return scalar_tensor(static_cast<double>(count), logits.options());
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, CrossEntropyOptions options) {
  const Tensor count = counted_targets(logits, targets, options.ignore_index);  // 0-d
  const int64_t N = logits.shape()[0];
  const Tensor t = as_contiguous(targets);

  Tensor x = as_contiguous(logits);
  Tensor losses = Tensor::empty({N}, logits.options());
  Tensor lse = Tensor::empty({N}, logits.options());
  HC_KERNEL(cross_entropy_forward, losses, losses, lse, x, t, options.ignore_index);

  Tensor out;
  if (options.reduction == Reduction::None) {
    out = losses;
  } else {
    out = Tensor::empty({1}, logits.options());
    HC_KERNEL(sum_rows, out, out, losses.reshape({1, N}));
    if (options.reduction == Reduction::Mean)  // every target ignored: 0/0 = nan, as in PyTorch
      HC_KERNEL(binary, out, BinaryOp::Div, out, out, count.reshape({1}));
    out = out.reshape({});
  }
  return record(kCrossEntropy, out, {logits},
                [x = save(x, kCrossEntropy), t, lse, count, reduction = options.reduction,
                 ignore = options.ignore_index](const Tensor& g, const Needs&) {
                  Tensor logits = x.get();
                  // Reduced: every row's loss gets d out / d losses[n] = g (Sum) or g / count (Mean), computed
                  // and broadcast on g's device (g.item() would wait for the GPU to finish the forward first).
                  const Tensor per_row = reduction == Reduction::Mean ? g.detach() / count : g.detach();
                  Tensor grad_losses = reduction == Reduction::None
                                           ? as_contiguous(g)
                                           : as_contiguous(per_row.reshape({1}).expand({logits.shape()[0]}));
                  Tensor grad = Tensor::empty(logits.shape(), logits.options());
                  HC_KERNEL(cross_entropy_backward, grad, grad, logits, t, lse, grad_losses, ignore);
                  return TensorList{grad};
                });
}

// ---- losses written with other ops: their backward is the ops' ----

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_floating("mse_loss", input);
  check_same_shape("mse_loss", input, target);
  const Tensor difference = input - target;
  return reduced(difference * difference, reduction, static_cast<double>(input.numel()));
}

// -log_probs[n, targets[n]], picked with gather (whose backward scatters the gradient back to the picked
// places); an ignored row picks class 0, weighted 0. Everything stays on the targets' device: GPU targets are
// range-checked by gather's kernel and counted there, never read by the host.
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, CrossEntropyOptions options) {
  if (targets.device().is_cpu())  // the host checks CPU targets with the message naming the row
    count_class_targets("nll_loss", "log_probs", log_probs, targets, options.ignore_index);
  else
    check_class_targets("nll_loss", "log_probs", log_probs, targets);
  const Tensor ignore = scalar_tensor(static_cast<double>(options.ignore_index), targets.options());
  const Tensor classes = where(eq(targets, ignore), zeros_like(targets), targets);
  const Tensor picked = gather(log_probs, 1, classes.unsqueeze(1)).squeeze(1);
  const Tensor kept = ne(targets, ignore).to(log_probs.dtype());
  const Tensor losses = -(picked * kept);
  if (options.reduction == Reduction::None) return losses;
  const Tensor total = sum(losses);
  return options.reduction == Reduction::Sum ? total : total / sum(kept);  // none kept: 0/0 = nan, as PyTorch
}

// max(x, 0) - x t + log(1 + e^-|x|) = softplus(x) - x t: stable for logits of any size.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, Reduction reduction) {
  check_floating("binary_cross_entropy_with_logits", logits);
  check_same_shape("binary_cross_entropy_with_logits", logits, target);
  return reduced(softplus(logits) - logits * target, reduction, static_cast<double>(logits.numel()));
}

}  // namespace hcgrad
