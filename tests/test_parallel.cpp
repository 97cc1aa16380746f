// Results do not depend on the thread count: elementwise and GEMM split work into fixed pieces, and
// reductions add fixed-size blocks in a fixed order.
#include <functional>

#include "helpers.h"

using namespace hctest;

namespace {
// Runs f with 1, 2 and 4 threads and checks the outputs are bit-identical.
void check_thread_independent(const char* what, const std::function<std::vector<float>()>& f) {
  CAPTURE(what);
  set_num_threads(1);
  std::vector<float> reference = f();
  for (int threads : {2, 4}) {
    set_num_threads(threads);
    CHECK_MESSAGE(f() == reference, what, " differs with ", threads, " threads");
  }
  set_num_threads(0);
}
}  // namespace

TEST_CASE("set_num_threads caps the worker count") {
  set_num_threads(2);
  CHECK(num_threads() == 2);
  set_num_threads(0);
  CHECK(num_threads() >= 1);
}

TEST_CASE("results are identical on 1, 2 and 4 threads") {
  Tensor x = data32({512, 600}, -3, 3);
  Tensor w = data32({600, 256});
  Tensor gamma = data32({600}), beta = data32({600});
  check_thread_independent("sum", [&] { return sum(x).to_vector<float>(); });
  check_thread_independent("sum over rows", [&] { return sum(x, {0}).to_vector<float>(); });
  check_thread_independent("gelu", [&] { return gelu(x).to_vector<float>(); });
  check_thread_independent("softmax", [&] { return softmax(x, 1).to_vector<float>(); });
  check_thread_independent("matmul", [&] { return matmul(x, w).to_vector<float>(); });
  check_thread_independent("layer_norm backward", [&] {
    Tensor g = gamma.detach().requires_grad_(), b = beta.detach().requires_grad_();
    sum(layer_norm(x, {600}, g, b) * x).backward();
    std::vector<float> out = g.grad().to_vector<float>(), db = b.grad().to_vector<float>();
    out.insert(out.end(), db.begin(), db.end());
    return out;
  });
  Generator gen(3);
  Tensor ids = randint(0, 50, {4000}, {.dtype = DType::Int64}, gen);  // repeated ids collide in the scatter-add
  Tensor upstream = data32({4000, 600});
  check_thread_independent("embedding backward", [&] {
    Tensor table = zeros({50, 600}, {.requires_grad = true});
    sum(embedding(ids, table) * upstream).backward();
    return table.grad().to_vector<float>();
  });
}
