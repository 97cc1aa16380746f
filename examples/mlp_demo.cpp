// A first hcgrad program: train a 2-layer MLP to classify points on a three-armed spiral, with nothing
// but tensors, autograd and a hand-written SGD step. Reads top to bottom:
//   1. make the data   2. make the parameters   3. train: forward, loss, backward, update   4. check
//
//   build/examples/mlp_demo [steps] [threads]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <vector>

#include "hcgrad/hcgrad.h"

using namespace hcgrad;

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 1500;
  if (argc > 2) set_num_threads(std::atoi(argv[2]));
  if (steps <= 0) {
    std::fprintf(stderr, "mlp_demo: steps must be positive, got %s\n", argv[1]);
    return 2;
  }
  Generator gen(0);

  // 1. Data: 3 classes x 200 points, class c along the arm r -> (r sin t, r cos t), t = 4c + 4r + noise.
  const int64_t per_class = 200, classes = 3, n = per_class * classes;
  std::vector<float> noise = randn({n}, {}, gen).to_vector<float>();
  std::vector<float> points;
  std::vector<int64_t> labels;
  for (int64_t c = 0; c < classes; ++c) {
    for (int64_t i = 0; i < per_class; ++i) {
      const float r = static_cast<float>(i) / per_class;
      const float t = 4.0f * c + 4.0f * r + 0.2f * noise[c * per_class + i];
      points.insert(points.end(), {r * std::sin(t), r * std::cos(t)});
      labels.push_back(c);
    }
  }
  Tensor x = from_vector(points, {n, 2});  // [600, 2]
  Tensor y = from_vector(labels);          // [600]

  // 2. Parameters: 2 -> 64 -> 3, He-style init for the ReLU layer.
  const int64_t hidden = 64;
  auto parameter = [](Tensor t) { return t.detach().requires_grad_(); };
  Tensor w1 = parameter(randn({2, hidden}, {}, gen) * std::sqrt(2.0 / 2));
  Tensor b1 = parameter(zeros({hidden}));
  Tensor w2 = parameter(randn({hidden, classes}, {}, gen) * std::sqrt(1.0 / hidden));
  Tensor b2 = parameter(zeros({classes}));
  std::vector<Tensor> params = {w1, b1, w2, b2};
  std::vector<Tensor> velocity;
  for (const Tensor& p : params) velocity.push_back(zeros_like(p));

  // 3. Train: full-batch SGD with momentum.
  const double lr = 0.2, momentum = 0.9;
  std::printf("mlp_demo: 2-layer MLP (2 -> %lld -> %lld) on a %lld-point spiral, %d steps\n",
              static_cast<long long>(hidden), static_cast<long long>(classes), static_cast<long long>(n), steps);
  double loss_value = 0, first_loss = 0, accuracy = 0;
  for (int step = 1; step <= steps; ++step) {
    Tensor h = relu(matmul(x, w1) + b1);  // [600, 64]
    Tensor logits = matmul(h, w2) + b2;   // [600, 3]
    Tensor loss = cross_entropy(logits, y);
    loss_value = loss.item();
    if (!std::isfinite(loss_value)) {
      std::fprintf(stderr, "mlp_demo: loss became %f at step %d\n", loss_value, step);
      return 1;
    }
    if (step == 1) first_loss = loss_value;

    for (const Tensor& p : params) p.zero_grad();
    loss.backward();
    {
      autograd::NoGradGuard no_grad;  // the update itself is not part of the model
      for (size_t i = 0; i < params.size(); ++i) {
        velocity[i].mul_(momentum).add_(params[i].grad());
        params[i].add_(velocity[i], -lr);
      }
    }
    if (step == 1 || step % 100 == 0 || step == steps) {
      autograd::NoGradGuard no_grad;
      accuracy = mean(eq(argmax(logits, 1), y).to(DType::Float32)).item();
      std::printf("step %5d  loss %.4f  train accuracy %5.1f%%\n", step, loss_value, 100 * accuracy);
    }
  }

  // 4. Check: the loss fell and the classes are separated.
  std::printf("final loss %.4f (from %.4f), train accuracy %.1f%%\n", loss_value, first_loss, 100 * accuracy);
  if (!(loss_value < 0.5 * first_loss) || accuracy < 0.9) {
    std::fprintf(stderr, "mlp_demo: training did not converge\n");
    return 1;
  }
  return 0;
}
