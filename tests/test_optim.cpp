// Optimizers, gradient clipping and the cosine schedule (nn/optim.h). Each update is compared with the
// algorithm written out again here for one scalar (the textbook form of torch.optim's formulas), or with
// literal numbers worked out by hand in the comments. Gradients are set by hand with set_grad.
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;

namespace {

// A float64 leaf that requires grad.
Tensor param(const std::vector<double>& values) { return from_vector(values, {}, /*requires_grad=*/true); }
void set_grad(const Tensor& p, const std::vector<double>& grad) { p.set_grad(from_vector(grad)); }

// torch.optim.SGD for one scalar, straight from its documentation.
struct SGDRef {
  double lr, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  double buf = 0;
  bool started = false;
  double step(double p, double g) {
    g += weight_decay * p;
    if (momentum != 0) {
      buf = started ? momentum * buf + (1 - dampening) * g : g;
      started = true;
      g = nesterov ? g + momentum * buf : buf;
    }
    return p - lr * g;
  }
};

// Adam / AdamW for one scalar in the textbook form p -= lr * m_hat / (sqrt(v_hat) + eps).
struct AdamRef {
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false;
  double m = 0, v = 0;
  int t = 0;
  double step(double p, double g) {
    ++t;
    if (decoupled) p -= lr * weight_decay * p;
    else g += weight_decay * p;
    m = beta1 * m + (1 - beta1) * g;
    v = beta2 * v + (1 - beta2) * g * g;
    const double m_hat = m / (1 - std::pow(beta1, t)), v_hat = v / (1 - std::pow(beta2, t));
    return p - lr * m_hat / (std::sqrt(v_hat) + eps);
  }
};

// Three steps on a 3-element parameter, each with its hand-picked gradient; returns the optimizer's
// parameter values and the scalar reference's after every step.
const std::vector<double> kStart = {1.0, -2.0, 0.5};
const std::vector<std::vector<double>> kGrads = {{0.5, 1.0, -0.2}, {-1.0, 2.0, 0.3}, {0.25, -0.5, 0.0}};

template <class Ref>
void check_three_steps(Optimizer& opt, const Tensor& p, std::vector<Ref> refs) {
  std::vector<double> expected = kStart;
  for (const auto& grad : kGrads) {
    set_grad(p, grad);
    opt.step();
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = refs[i].step(expected[i], grad[i]);
    CHECK(close(p, {3}, expected, 1e-12));
  }
}

}  // namespace

TEST_CASE("optim: SGD, plain and with weight decay") {
  Tensor p = param(kStart);
  SGD plain({p}, {.lr = 0.1});
  // By hand: 1 - 0.1*0.5 = 0.95, -2 - 0.1*1 = -2.1, 0.5 + 0.1*0.2 = 0.52.
  set_grad(p, kGrads[0]);
  plain.step();
  CHECK(close(p, {3}, {0.95, -2.1, 0.52}, 1e-15));

  Tensor q = param(kStart);
  SGD plain2({q}, {.lr = 0.1});
  check_three_steps(plain2, q, std::vector<SGDRef>(3, SGDRef{.lr = 0.1}));

  Tensor r = param(kStart);
  SGD decayed({r}, {.lr = 0.1, .weight_decay = 0.2});
  check_three_steps(decayed, r, std::vector<SGDRef>(3, SGDRef{.lr = 0.1, .weight_decay = 0.2}));
}

TEST_CASE("optim: SGD with momentum, dampening and nesterov") {
  // By hand, momentum 0.9, lr 0.1, p = 1: g = 0.5 starts the buffer at 0.5, p = 0.95; then g = -1 gives
  // b = 0.9*0.5 - 1 = -0.55 and p = 0.95 + 0.055 = 1.005.
  Tensor p = param({1.0});
  SGD momentum({p}, {.lr = 0.1, .momentum = 0.9});
  set_grad(p, {0.5});
  momentum.step();
  CHECK(close(p, {1}, {0.95}, 1e-15));
  set_grad(p, {-1.0});
  momentum.step();
  CHECK(close(p, {1}, {1.005}, 1e-15));

  // Dampening applies from the second step on (the first gradient starts the buffer undamped).
  const std::vector<SGDRef> configs = {
      {.lr = 0.1, .momentum = 0.9},
      {.lr = 0.05, .momentum = 0.8, .dampening = 0.5},
      {.lr = 0.1, .momentum = 0.9, .nesterov = true},
      {.lr = 0.1, .momentum = 0.5, .dampening = 0.25, .weight_decay = 0.1},
      {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true},
  };
  for (const SGDRef& c : configs) {
    CAPTURE(c.momentum);
    CAPTURE(c.dampening);
    CAPTURE(c.nesterov);
    Tensor q = param(kStart);
    SGD opt({q}, {.lr = c.lr, .momentum = c.momentum, .dampening = c.dampening, .weight_decay = c.weight_decay,
                  .nesterov = c.nesterov});
    check_three_steps(opt, q, std::vector<SGDRef>(3, c));
  }
}

TEST_CASE("optim: Adam with and without weight decay") {
  // By hand, first step: m_hat = g and v_hat = g^2, so p moves by lr * g / (|g| + eps): 1 - 0.1 * 0.5/(0.5 + 1e-8).
  Tensor p = param({1.0});
  Adam first({p}, {.lr = 0.1});
  set_grad(p, {0.5});
  first.step();
  CHECK(close(p, {1}, {1 - 0.1 * 0.5 / (0.5 + 1e-8)}, 1e-15));

  Tensor q = param(kStart);
  Adam plain({q}, {.lr = 0.1});
  check_three_steps(plain, q, std::vector<AdamRef>(3, AdamRef{.lr = 0.1}));

  Tensor r = param(kStart);
  Adam decayed({r}, {.lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1});
  check_three_steps(decayed, r,
                    std::vector<AdamRef>(3, AdamRef{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6,
                                                    .weight_decay = 0.1}));
}

TEST_CASE("optim: AdamW decouples the weight decay") {
  // By hand, first step, lr 0.1, weight decay 0.01: p = 1 * (1 - 0.001) = 0.999, then the Adam step of
  // about lr * sign(g): 0.999 - 0.1 * 0.5/(0.5 + 1e-8).
  Tensor p = param({1.0});
  AdamW first({p}, {.lr = 0.1});  // default weight decay 0.01
  set_grad(p, {0.5});
  first.step();
  CHECK(close(p, {1}, {0.999 - 0.1 * 0.5 / (0.5 + 1e-8)}, 1e-15));

  Tensor q = param(kStart);
  AdamW opt({q}, {.lr = 0.1, .weight_decay = 0.2});
  check_three_steps(opt, q, std::vector<AdamRef>(3, AdamRef{.lr = 0.1, .weight_decay = 0.2, .decoupled = true}));

  // A zero gradient still decays the parameter under AdamW (the moments stay 0, so the Adam step is 0).
  Tensor z = param({2.0, -4.0});
  AdamW zero({z}, {.lr = 0.5, .weight_decay = 0.1});
  set_grad(z, {0.0, 0.0});
  zero.step();
  CHECK(close(z, {2}, {2.0 * 0.95, -4.0 * 0.95}, 1e-15));
}

TEST_CASE("optim: float32 parameters are updated in float32") {
  Tensor p = from_vector<float>({1.0f, -2.0f}, {}, true);
  AdamW opt({p}, {.lr = 0.1, .weight_decay = 0.1});
  std::vector<AdamRef> refs(2, AdamRef{.lr = 0.1, .weight_decay = 0.1, .decoupled = true});
  std::vector<double> expected = {1.0, -2.0};
  for (const std::vector<double>& grad : {std::vector<double>{0.5, 1.0}, std::vector<double>{-1.0, 2.0}}) {
    p.set_grad(from_vector(grad).to(DType::Float32));
    opt.step();
    for (size_t i = 0; i < 2; ++i) expected[i] = refs[i].step(expected[i], grad[i]);
  }
  CHECK(p.dtype() == DType::Float32);
  CHECK(close(p, {2}, expected, 1e-6));
}

TEST_CASE("optim: an optimizer minimises a quadratic through backward()") {
  // loss = sum((p - target)^2) has its minimum at p = target.
  Tensor p = param({3.0, -1.0});
  Tensor target = tensor({1.0, 2.0}, {2}, {.dtype = DType::Float64});
  SGD opt({p}, {.lr = 0.1, .momentum = 0.5});
  for (int it = 0; it < 200; ++it) {
    opt.zero_grad();
    sum(pow(p - target, 2.0)).backward();
    opt.step();
  }
  CHECK(close(p, {2}, {1.0, 2.0}, 1e-9));
}

TEST_CASE("optim: param groups have their own lr and weight decay") {
  // Zero gradients: only the weight decay moves a parameter, p -= lr * wd * p under SGD.
  Tensor decayed = param({1.0, 2.0});
  Tensor not_decayed = param({3.0});
  Tensor fast = param({4.0});
  SGD opt({{.params = {decayed}}, {.params = {not_decayed}, .weight_decay = 0.0}, {.params = {fast}, .lr = 0.5}},
          {.lr = 0.1, .weight_decay = 0.2});
  CHECK(opt.lr(0) == 0.1);
  CHECK(opt.lr(2) == 0.5);
  CHECK(opt.param_groups()[0].weight_decay == 0.2);  // filled in from the options
  CHECK(opt.param_groups()[1].weight_decay == 0.0);
  for (const Tensor& t : {decayed, not_decayed, fast}) t.set_grad(zeros_like(t));
  opt.step();
  CHECK(close(decayed, {2}, {1.0 * 0.98, 2.0 * 0.98}, 1e-15));  // 1 - 0.1 * 0.2
  CHECK(close(not_decayed, {1}, {3.0}, 0));
  CHECK(close(fast, {1}, {4.0 * 0.9}, 1e-15));  // 1 - 0.5 * 0.2

  // The gradient step uses each group's lr; set_lr then sets every group's.
  set_grad(decayed, {1.0, 1.0});
  set_grad(not_decayed, {1.0});
  set_grad(fast, {1.0});
  opt.set_lr(0.01);
  CHECK(opt.lr(0) == 0.01);
  CHECK(opt.lr(2) == 0.01);
  opt.step();
  CHECK(close(not_decayed, {1}, {3.0 - 0.01}, 1e-15));
  CHECK(close(fast, {1}, {3.6 - 0.01 * (1 + 0.2 * 3.6)}, 1e-15));
}

TEST_CASE("optim: parameters without a gradient are left alone") {
  Tensor used = param({1.0});
  Tensor unused = param({5.0, 6.0});
  AdamW opt({used, unused}, {.lr = 0.1, .weight_decay = 0.5});
  set_grad(used, {1.0});
  opt.step();
  CHECK(close(unused, {2}, {5.0, 6.0}, 0));  // not even decayed, as in PyTorch
  CHECK(used.to_vector<double>()[0] < 1.0);
  // Its step count has not advanced.
  for (const auto& [key, t] : opt.state_dict()) {
    if (key == "state.0.step") CHECK(t.item() == 1);
    if (key == "state.1.step") CHECK(t.item() == 0);
  }
  opt.zero_grad();
  CHECK_FALSE(used.grad().defined());
  const std::vector<double> before = used.to_vector<double>();
  opt.step();  // nothing has a gradient: nothing moves
  CHECK(used.to_vector<double>() == before);
}

TEST_CASE("optim: a step bumps the parameter's version, like an in-place op") {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 0.1});
  const uint64_t version = p.storage()->version();
  set_grad(p, {1.0});
  opt.step();
  CHECK(p.storage()->version() > version);
}

TEST_CASE("optim: clip_grad_norm_") {
  // Gradients [3, 4] and [12]: total norm sqrt(9 + 16 + 144) = 13.
  Tensor a = param({0.0, 0.0}), b = param({0.0}), no_grad = param({0.0});
  auto reset = [&] {
    set_grad(a, {3.0, 4.0});
    set_grad(b, {12.0});
  };
  reset();
  CHECK(clip_grad_norm_({a, b, no_grad}, 20.0).item() == doctest::Approx(13.0).epsilon(1e-15));
  CHECK(close(a.grad(), {2}, {3.0, 4.0}, 0));  // below the maximum: untouched
  CHECK(close(b.grad(), {1}, {12.0}, 0));
  CHECK_FALSE(no_grad.grad().defined());

  // Above it: scaled by 10.4 / (13 + 1e-6), about 0.8, to a norm of (almost exactly) 10.4.
  CHECK(clip_grad_norm_({a, b, no_grad}, 10.4).item() == doctest::Approx(13.0).epsilon(1e-15));
  const double scale = 10.4 / (13.0 + 1e-6);
  CHECK(close(a.grad(), {2}, {3.0 * scale, 4.0 * scale}, 1e-14));
  CHECK(close(b.grad(), {1}, {12.0 * scale}, 1e-14));
  CHECK(close(a.grad(), {2}, {2.4, 3.2}, 1e-6));
  CHECK(clip_grad_norm_({a, b}, 100.0).item() == doctest::Approx(10.4).epsilon(1e-6));

  // Mixed dtypes: a float32 gradient counts the same.
  Tensor f = from_vector<float>({5.0f}, {}, true);
  f.set_grad(from_vector<float>({5.0f}));
  reset();
  CHECK(clip_grad_norm_({a, b, f}, 100.0).item() == doctest::Approx(std::sqrt(169.0 + 25.0)).epsilon(1e-15));

  // A non-finite norm comes back as it is, and the gradients are not touched.
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  set_grad(a, {inf, 1.0});
  set_grad(b, {12.0});
  CHECK(std::isinf(clip_grad_norm_({a, b}, 1.0).item()));
  CHECK(close(b.grad(), {1}, {12.0}, 0));
  CHECK(a.grad().to_vector<double>()[1] == 1.0);
  set_grad(a, {nan, 1.0});
  CHECK(std::isnan(clip_grad_norm_({a, b}, 1.0).item()));
  CHECK(close(b.grad(), {1}, {12.0}, 0));

  CHECK(clip_grad_norm_({no_grad}, 1.0).item() == 0.0);
  CHECK_THROWS_WITH_AS(clip_grad_norm_({a}, -1.0), doctest::Contains("clip_grad_norm_: max_norm must be >= 0"),
                       Error);
}

TEST_CASE("optim: CosineSchedule warms up linearly, then decays along a cosine") {
  const CosineSchedule s{.max_lr = 1.0, .min_lr = 0.1, .warmup_steps = 10, .total_steps = 110};
  CHECK(s(0) == doctest::Approx(0.1));  // 1.0 * 1/10
  CHECK(s(4) == doctest::Approx(0.5));
  CHECK(s(9) == doctest::Approx(1.0));   // end of warm-up
  CHECK(s(10) == doctest::Approx(1.0));  // start of the decay: cos(0) = 1
  // A quarter of the way: 0.1 + 0.9 * (1 + cos(pi/4)) / 2 = 0.1 + 0.9 * 0.8535534 = 0.8681980.
  CHECK(s(35) == doctest::Approx(0.8681980).epsilon(1e-6));
  CHECK(s(60) == doctest::Approx(0.55));  // half-way: cos(pi/2) = 0
  CHECK(s(110) == doctest::Approx(0.1));  // end
  CHECK(s(1000) == doctest::Approx(0.1));  // after the end
  const CosineSchedule no_warmup{.max_lr = 2.0, .min_lr = 0.0, .warmup_steps = 0, .total_steps = 4};
  CHECK(no_warmup(0) == doctest::Approx(2.0));
  CHECK(no_warmup(2) == doctest::Approx(1.0));
  CHECK(no_warmup(4) == doctest::Approx(0.0));

  CHECK_THROWS_WITH_AS((CosineSchedule{.max_lr = 0.1, .min_lr = 0.5, .warmup_steps = 0, .total_steps = 10}(0)),
                       doctest::Contains("CosineSchedule: needs 0 <= min_lr <= max_lr, got min_lr 0.5 and max_lr 0.1"),
                       Error);
  CHECK_THROWS_WITH_AS((CosineSchedule{.max_lr = 1, .min_lr = 0, .warmup_steps = 20, .total_steps = 10}(0)),
                       doctest::Contains("warmup_steps 20 and total_steps 10"), Error);
  CHECK_THROWS_WITH_AS(s(-1), doctest::Contains("CosineSchedule: step must be >= 0, got -1"), Error);
}

TEST_CASE("optim: state_dict names the buffers like PyTorch") {
  Tensor w = param({1.0, 2.0}), b = param({3.0});
  Adam adam({w, b});
  std::vector<std::string> keys;
  for (const auto& entry : adam.state_dict()) keys.push_back(entry.first);
  CHECK(keys == std::vector<std::string>{"state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq", "state.1.step",
                                         "state.1.exp_avg", "state.1.exp_avg_sq"});
  CHECK(adam.state_dict()[0].second.dtype() == DType::Int64);
  CHECK(adam.state_dict()[0].second.dim() == 0);
  CHECK(adam.state_dict()[4].second.shape() == Shape{1});

  SGD momentum({w}, {.lr = 0.1, .momentum = 0.9});
  CHECK(momentum.state_dict().size() == 2);  // state.0.step, state.0.momentum_buffer
  CHECK(momentum.state_dict()[1].first == "state.0.momentum_buffer");
  SGD plain({w}, {.lr = 0.1});
  CHECK(plain.state_dict().empty());
}

TEST_CASE("optim: a loaded state continues bit-identically") {
  // Deterministic gradients that differ per step and element.
  auto grads_for = [](int step, const Tensor& p) {
    std::vector<double> g(static_cast<size_t>(p.numel()));
    for (size_t i = 0; i < g.size(); ++i) g[i] = std::sin(1.7 * step + 0.9 * static_cast<double>(i)) * (1 + step);
    p.set_grad(from_vector(g));
  };
  auto run = [&](Optimizer& opt, const std::vector<Tensor>& params, int from, int to) {
    for (int s = from; s < to; ++s) {
      for (const Tensor& p : params) grads_for(s, p);
      opt.step();
    }
  };
  auto copies = [](const std::vector<Tensor>& params) {
    std::vector<Tensor> out;
    for (const Tensor& p : params) out.push_back(p.detach().clone().requires_grad_());
    return out;
  };

  SUBCASE("AdamW, two groups") {
    std::vector<Tensor> a = {param({0.5, -1.5, 2.0}), param({0.25})};
    auto make = [](const std::vector<Tensor>& p) {
      return AdamW({{.params = {p[0]}}, {.params = {p[1]}, .weight_decay = 0.0}}, {.lr = 0.05});
    };
    AdamW original = make(a);
    run(original, a, 0, 3);
    std::vector<Tensor> b = copies(a), c = copies(a);
    AdamW resumed = make(b), fresh = make(c);
    resumed.load_state_dict(original.state_dict());
    run(original, a, 3, 6);
    run(resumed, b, 3, 6);
    run(fresh, c, 3, 6);
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i].to_vector<double>() == b[i].to_vector<double>());
    CHECK(a[0].to_vector<double>() != c[0].to_vector<double>());  // without the state it goes elsewhere
  }
  SUBCASE("SGD with momentum and dampening") {
    std::vector<Tensor> a = {param({0.5, -1.5, 2.0})};
    SGDOptions options{.lr = 0.1, .momentum = 0.9, .dampening = 0.3};
    SGD original(a, options);
    run(original, a, 0, 2);
    std::vector<Tensor> b = copies(a), c = copies(a);
    SGD resumed(b, options), fresh(c, options);
    resumed.load_state_dict(original.state_dict());
    run(original, a, 2, 5);
    run(resumed, b, 2, 5);
    run(fresh, c, 2, 5);
    CHECK(a[0].to_vector<double>() == b[0].to_vector<double>());
    CHECK(a[0].to_vector<double>() != c[0].to_vector<double>());
  }
}

TEST_CASE("optim: load_state_dict refuses mismatched state and changes nothing") {
  Tensor w = param({1.0, 2.0}), b = param({3.0});
  Adam opt({w, b});
  auto good = [] {
    Tensor w2 = param({0.0, 0.0}), b2 = param({0.0});
    Adam other({w2, b2});
    set_grad(w2, {1.0, 1.0});
    set_grad(b2, {1.0});
    other.step();
    NamedTensors state;
    for (const auto& [key, t] : other.state_dict()) state.emplace_back(key, t.clone());
    return state;
  };
  auto unchanged = [&] {
    for (const auto& [key, t] : opt.state_dict()) CHECK_MESSAGE(values(t) == std::vector<double>(t.numel(), 0.0), key);
  };

  NamedTensors wrong_shape = good();
  wrong_shape[5].second = zeros({2}, {.dtype = DType::Float64});  // state.1.exp_avg_sq
  CHECK_THROWS_WITH_AS(opt.load_state_dict(wrong_shape),
                       "Adam.load_state_dict: 'state.1.exp_avg_sq' has shape [2], this optimizer's has [1]",
                       ShapeError);
  unchanged();

  NamedTensors wrong_dtype = good();
  wrong_dtype[1].second = zeros({2});  // float32 instead of float64
  CHECK_THROWS_WITH_AS(opt.load_state_dict(wrong_dtype), doctest::Contains("'state.0.exp_avg' [2] has dtype float32"),
                       DTypeError);

  NamedTensors missing = good();
  missing.erase(missing.begin() + 3);
  CHECK_THROWS_WITH_AS(opt.load_state_dict(missing), doctest::Contains("missing key 'state.1.step'"), Error);

  NamedTensors extra = good();
  extra.emplace_back("state.2.exp_avg", zeros({1}, {.dtype = DType::Float64}));
  CHECK_THROWS_WITH_AS(opt.load_state_dict(extra), doctest::Contains("unexpected key 'state.2.exp_avg'"), Error);

  NamedTensors twice = good();
  twice.push_back(twice[0]);
  CHECK_THROWS_WITH_AS(opt.load_state_dict(twice), doctest::Contains("key 'state.0.step' appears twice"), Error);
  unchanged();

  // A state from SGD does not fit Adam.
  SGD sgd({param({0.0, 0.0}), param({0.0})}, {.lr = 0.1, .momentum = 0.9});
  CHECK_THROWS_WITH_AS(opt.load_state_dict(sgd.state_dict()), doctest::Contains("missing key 'state.0.exp_avg'"),
                       Error);

  opt.load_state_dict(good());  // and the good one loads
  CHECK(opt.state_dict()[0].second.item() == 1);
}

TEST_CASE("optim: bad options and parameters are refused") {
  Tensor p = param({1.0});
  CHECK_THROWS_WITH_AS(SGD({p}, {.lr = -1}), "SGD: lr must be a finite number >= 0, got -1", Error);
  CHECK_THROWS_WITH_AS(SGD({p}, {.lr = 0.1, .momentum = -0.5}), "SGD: momentum must be >= 0, got -0.5", Error);
  CHECK_THROWS_WITH_AS(SGD({p}, {.lr = 0.1, .nesterov = true}),
                       "SGD: nesterov needs momentum > 0 and dampening 0, got momentum 0 and dampening 0", Error);
  CHECK_THROWS_WITH_AS(SGD({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                       doctest::Contains("nesterov needs momentum > 0 and dampening 0"), Error);
  CHECK_THROWS_WITH_AS(SGD({p}, {.lr = 0.1, .weight_decay = -0.1}),
                       "SGD: weight_decay must be a finite number >= 0, got -0.1", Error);
  CHECK_THROWS_WITH_AS(Adam({p}, {.beta1 = 1.0}), "Adam: beta1 must be in [0, 1), got 1", Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, {.beta2 = -0.1}), "AdamW: beta2 must be in [0, 1), got -0.1", Error);
  CHECK_THROWS_WITH_AS(Adam({p}, {.eps = 0}), "Adam: eps must be > 0, got 0", Error);
  CHECK_THROWS_WITH_AS(Adam({{.params = {p}, .lr = -2.0}}), "Adam: lr must be a finite number >= 0, got -2 (group 0)",
                       Error);

  // The parameters themselves.
  CHECK_THROWS_WITH_AS(SGD(std::vector<ParamGroup>{}), doctest::Contains("SGD: got no parameter groups"), Error);
  CHECK_THROWS_WITH_AS(SGD({{.params = {p}}, {.params = {}}}), "SGD: parameter group 1 is empty", Error);
  CHECK_THROWS_WITH_AS(Adam({arange(3)}), doctest::Contains("Adam: parameter 0 (group 0) [3] has dtype int64"),
                       DTypeError);
  CHECK_THROWS_WITH_AS(Adam({p * 2.0}), doctest::Contains("is not a leaf (it was computed by 'mul')"), Error);
  CHECK_THROWS_WITH_AS(Adam({zeros({2})}), doctest::Contains("does not require grad"), Error);
  Tensor transposed = zeros({2, 3}, {.dtype = DType::Float64}).t().detach().requires_grad_();
  CHECK_THROWS_WITH_AS(Adam({transposed}),
                       "Adam: parameter 0 (group 0) [3,2] is not contiguous (strides [1,3]); optimizers update the "
                       "raw data in place",
                       Error);
  Tensor q = param({2.0});
  CHECK_THROWS_WITH_AS(AdamW({{.params = {p, q}}, {.params = {p}}}),
                       doctest::Contains("AdamW: parameter 2 (group 1) [1] shares its memory with parameter 0"), Error);

  SGD opt({p, q}, {.lr = 0.1});
  CHECK_THROWS_WITH_AS(opt.set_lr(-1), doctest::Contains("lr must be a finite number >= 0, got -1"), Error);
  CHECK_THROWS_WITH_AS(opt.lr(1), "SGD.lr: group 1 out of range for 1 groups", IndexError);

  // A gradient of the wrong shape (set behind set_grad's back) is refused before any parameter moves.
  set_grad(p, {1.0});
  q.impl().grad = zeros({3}, {.dtype = DType::Float64}).impl_ptr();
  CHECK_THROWS_WITH_AS(opt.step(), "SGD.step: gradient of parameter 1 has shape [3], the parameter has [1]",
                       ShapeError);
  CHECK(close(p, {1}, {1.0}, 0));
}
