// Autograd semantics: what backward() computes, when graphs are kept or freed, no-grad, in-place rules.
#include "helpers.h"

using namespace hctest;

TEST_CASE("backward computes gradients into leaves") {
  Tensor x = tensor({1, 2, 3}, {3}, {.dtype = DType::Float64, .requires_grad = true});
  Tensor w = tensor({0.5, -1, 2}, {3}, {.dtype = DType::Float64, .requires_grad = true});
  Tensor loss = sum(x * w + x * x);  // dL/dx = w + 2x, dL/dw = x
  loss.backward();
  CHECK(close(x.grad(), {3}, {2.5, 3, 8}));
  CHECK(close(w.grad(), {3}, {1, 2, 3}));
  CHECK(loss.grad_fn() != nullptr);
  CHECK(x.is_leaf());
  CHECK_FALSE(loss.is_leaf());
}

TEST_CASE("a node used twice sums its gradients (diamond graph)") {
  Tensor x = tensor({2}, {1}, {.dtype = DType::Float64, .requires_grad = true});
  Tensor a = x * 3.0;     // 3x
  Tensor b = a * a + a;   // 9x^2 + 3x
  b.backward(ones({1}, {.dtype = DType::Float64}));
  CHECK(close(x.grad(), {1}, {18 * 2 + 3}));
}

TEST_CASE("summing gradients in place never writes into a gradient another edge still holds") {
  // add's backward hands one gradient tensor to both inputs: s's and a's incoming sums start as the same
  // buffer, so adding s's contribution into a's sum in place would change b's gradient too.
  Tensor x = tensor({1, 2}, {2}, {.dtype = DType::Float64, .requires_grad = true});
  Tensor a = x * 2.0;
  Tensor b = x * 3.0;
  Tensor s = a + b;
  Tensor t = (s + a) + a * a;  // dt/da = 1 + 1 + 2a, dt/db = 1
  sum(t).backward();
  // dx = 2 * (2 + 2a) + 3 = 7 + 8x
  CHECK(close(x.grad(), {2}, {15, 23}));
}

TEST_CASE("gradients accumulate across backward calls until cleared") {
  Tensor x = tensor({1, -1}, {2}, {.requires_grad = true});
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();
  CHECK(close(x.grad(), {2}, {6, 6}));
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x * x).backward();
  CHECK(close(x.grad(), {2}, {2, -2}));
}

TEST_CASE("the graph is freed after backward unless retained") {
  Tensor x = tensor({1, 2}, {2}, {.requires_grad = true});
  Tensor hidden = x * 3.0;
  std::weak_ptr<Storage> hidden_storage = hidden.storage();
  Tensor y = sum(exp(hidden) * hidden);  // mul saves `hidden`
  hidden = Tensor();
  CHECK_FALSE(hidden_storage.expired());  // kept alive for backward
  y.backward(Tensor(), /*retain_graph=*/true);
  CHECK_FALSE(hidden_storage.expired());  // retained
  y.backward();                            // second pass works, and frees
  CHECK(hidden_storage.expired());
  CHECK_THROWS_WITH_AS(y.backward(),
                       doctest::Contains("was freed by an earlier backward(); call backward(gradient, "
                                         "/*retain_graph=*/true)"),
                       Error);
  // Two full passes were accumulated: d/dx sum(3x e^{3x}) = 3 e^{3x} (1 + 3x)
  std::vector<double> expected;
  for (double v : {1.0, 2.0}) expected.push_back(2 * 3 * std::exp(3 * v) * (1 + 3 * v));
  CHECK(close(x.grad(), {2}, expected, 1e-1));
}

TEST_CASE("dropping the output frees the whole graph") {
  Tensor x = ones({4}, {.requires_grad = true});
  std::weak_ptr<Storage> saved;
  {
    Tensor h = x * 2.0;
    saved = h.storage();
    Tensor y = sum(h * h);
  }
  CHECK(saved.expired());
}

TEST_CASE("a very deep graph neither overflows in backward nor when freed") {
  Tensor x = ones({1}, {.requires_grad = true});
  Tensor y = x;
  for (int i = 0; i < 50000; ++i) y = y * 1.0;
  sum(y).backward();
  CHECK(x.grad().item() == 1.0);
  Tensor z = x;
  for (int i = 0; i < 50000; ++i) z = z + 0.0;
  z = Tensor();  // freeing 50k nodes: iterative teardown in ~Node
  CHECK(x.requires_grad());
}

TEST_CASE("no-grad mode records nothing") {
  Tensor x = ones({2}, {.requires_grad = true});
  {
    autograd::NoGradGuard no_grad;
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    CHECK_FALSE(autograd::is_grad_enabled());
  }
  CHECK(autograd::is_grad_enabled());
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("detach cuts the history but shares storage") {
  Tensor x = ones({2}, {.requires_grad = true});
  Tensor y = x * 2.0;
  Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.storage() == y.storage());
  sum(y * d).backward();  // d is a constant: dL/dx = 2 * d = 4
  CHECK(close(x.grad(), {2}, {4, 4}));
}

TEST_CASE("gradients flow through views back to the base leaf") {
  Tensor x = arange(0.0, 6.0, 1.0, {.dtype = DType::Float64}).reshape({2, 3}).detach().requires_grad_();
  Tensor y = x.t().narrow(0, 1, 2).reshape({4}).expand({2, 4});  // x[:, 1:3] transposed, flattened, twice
  sum(y * 3.0).backward();
  CHECK(close(x.grad(), {2, 3}, {0, 6, 6, 0, 6, 6}));
}

TEST_CASE("backward needs a gradient for non-scalar outputs") {
  Tensor x = ones({2, 2}, {.requires_grad = true});
  Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.backward(),
                       "backward: a gradient can be implied only for a one-element output, got shape [2,2]; pass "
                       "the gradient explicitly",
                       ShapeError);
  y.backward(full({2, 2}, 0.5));
  CHECK(close(x.grad(), {2, 2}, {1, 1, 1, 1}));
  CHECK_THROWS_AS(ones({1}).backward(), Error);  // nothing requires grad
}

TEST_CASE("in-place updates: refused on tensors that require grad, allowed under no-grad") {
  Tensor w = ones({3}, {.requires_grad = true});
  CHECK_THROWS_WITH_AS(w.add_(ones({3})), doctest::Contains("add_: in-place update of a tensor that requires grad"),
                       Error);
  {
    autograd::NoGradGuard no_grad;
    w.add_(ones({3}), -0.5);
  }
  CHECK(close(w, {3}, {0.5, 0.5, 0.5}));
}

TEST_CASE("modifying a saved tensor before backward is detected") {
  Tensor x = ones({3}, {.requires_grad = true});
  Tensor w = full({3}, 2.0, {.requires_grad = true});
  Tensor y = sum(x * w);  // mul saved w
  {
    autograd::NoGradGuard no_grad;
    w.mul_(10.0);  // an optimizer step before backward: the gradient for x would be wrong
  }
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("mul: a tensor saved for backward was modified in place"),
                       Error);
}

TEST_CASE("requires_grad rules") {
  Tensor y = ones({2}, {.requires_grad = true}) * 2.0;
  CHECK_THROWS_WITH_AS(y.requires_grad_(false), doctest::Contains("only leaf tensors"), Error);
  CHECK_THROWS_AS(arange(3).requires_grad_(), DTypeError);
  Tensor ids = arange(3);
  CHECK_FALSE(ids.requires_grad());
}
