// stream_mix on the GPU (cuda/stream_mix.cu) against the CPU kernels: the same random inputs on both
// devices, forward and backward, compared by relative error. Sizes: the tiny LM's (M = 16·128 tokens,
// S = 4 streams, K = 4 mixes or K = 1 for the branch input, D = 128), and odd ones that reach the kernels'
// other paths (S > 16, weights too large for shared memory, D over one block of threads, D = 1). Then the
// connection modules that mix with it, moved to the GPU whole.
#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;

namespace {

struct Results {
  Tensor out, grad_weights, grad_x;
};

// Forward and backward of stream_mix on `device`, from CPU inputs and a CPU output gradient.
Results run_on(Device device, const Tensor& weights, const Tensor& x, const Tensor& grad_out) {
  Tensor w = weights.to(device).detach().requires_grad_(), xs = x.to(device).detach().requires_grad_();
  Tensor out = stream_mix(w, xs);
  out.backward(grad_out.to(device));
  return {out, w.grad(), xs.grad()};
}

// x and weights random, never all zero; `transpose_x` hands the op a non-contiguous x.
void check_gpu_matches_cpu(const Shape& weight_shape, const Shape& x_shape, DType dtype = DType::Float32,
                           bool transpose_x = false) {
  CAPTURE(weight_shape);
  CAPTURE(x_shape);
  CAPTURE(dtype);
  Generator gen(1234);
  Tensor weights = randn(weight_shape, {.dtype = dtype}, gen);
  Tensor x = randn(x_shape, {.dtype = dtype}, gen);
  if (transpose_x) x = x.transpose(-1, -2);  // x_shape is given with its last two dims swapped
  Shape out_shape = x.shape();
  out_shape[out_shape.ndim() - 2] = weight_shape.back();
  Tensor grad_out = randn(out_shape, {.dtype = dtype}, gen);

  const Results gpu = run_on(Device::cuda(0), weights, x, grad_out);
  const Results cpu = run_on(Device::cpu(), weights, x, grad_out);
  CHECK(gpu.out.device() == Device::cuda(0));
  const double tol = dtype == DType::Float32 ? 1e-5 : 1e-12;
  CHECK(relative_error(gpu.out, cpu.out) < tol);
  CHECK(relative_error(gpu.grad_x, cpu.grad_x) < tol);
  CHECK(relative_error(gpu.grad_weights, cpu.grad_weights) < tol);
}

// A connection module's width and depth steps (run_connection, tests/helpers.h) on the GPU against the same
// module on the CPU: output, input gradient and every parameter's gradient. Many ops and long reductions
// (Sinkhorn, norms, parameter gradients summed over every token) lie between input and result, so the
// float32 tolerance is wider than for stream_mix alone.
template <class Connection>
void check_module_gpu_matches_cpu(Connection& on_cpu, Connection& on_gpu, const Shape& input_shape) {
  perturb(on_cpu, 5, 0.3);  // away from the init, where the dynamic weights are zero
  copy_parameters(on_cpu, on_gpu);
  on_gpu.to(Device::cuda(0));
  Generator gen(99);
  Tensor input = randn(input_shape, {}, gen);
  Tensor x_cpu = input.detach().requires_grad_(), x_gpu = input.to(Device::cuda(0)).detach().requires_grad_();
  Tensor y_cpu = run_connection(on_cpu, x_cpu), y_gpu = run_connection(on_gpu, x_gpu);
  Tensor grad_y = randn(y_cpu.shape(), {}, gen);
  y_cpu.backward(grad_y);
  y_gpu.backward(grad_y.to(Device::cuda(0)));

  const double tol = 1e-4;
  CHECK(y_gpu.device() == Device::cuda(0));
  CHECK(relative_error(y_gpu, y_cpu) < tol);
  CHECK(relative_error(x_gpu.grad(), x_cpu.grad()) < tol);
  const NamedTensors params_cpu = on_cpu.named_parameters(), params_gpu = on_gpu.named_parameters();
  REQUIRE(params_cpu.size() == params_gpu.size());
  for (size_t i = 0; i < params_cpu.size(); ++i) {
    CAPTURE(params_cpu[i].first);
    CHECK(params_gpu[i].second.device() == Device::cuda(0));
    REQUIRE(params_gpu[i].second.grad().defined());
    CHECK(relative_error(params_gpu[i].second.grad(), params_cpu[i].second.grad()) < tol);
  }
}

}  // namespace

TEST_CASE("gpu stream_mix: tiny-LM sizes, K = 4 and K = 1, float32") {
  HC_SKIP_WITHOUT_GPU();
  check_gpu_matches_cpu({16, 128, 4, 4}, {16, 128, 4, 128});  // H_res / alpha mixes
  check_gpu_matches_cpu({16, 128, 4, 1}, {16, 128, 4, 128});  // H_pre: the branch input
  check_gpu_matches_cpu({16, 128, 1, 4}, {16, 128, 1, 128});  // the depth connection's write to S streams
}

TEST_CASE("gpu stream_mix: broadcast weights are summed back in backward") {
  HC_SKIP_WITHOUT_GPU();
  check_gpu_matches_cpu({4, 4}, {16, 128, 4, 128});
  check_gpu_matches_cpu({16, 1, 4, 5}, {16, 128, 4, 128});
}

TEST_CASE("gpu stream_mix: odd sizes and non-contiguous x") {
  HC_SKIP_WITHOUT_GPU();
  check_gpu_matches_cpu({3, 7, 5, 3}, {3, 7, 5, 33});      // odd S, K, D
  check_gpu_matches_cpu({9, 12, 6}, {9, 12, 1});           // D = 1, S in the 8..16 register path
  check_gpu_matches_cpu({5, 20, 6}, {5, 20, 45});          // S > 16: x read per output
  check_gpu_matches_cpu({37, 4, 4}, {37, 4, 1000});        // D over one block of threads
  check_gpu_matches_cpu({2, 4, 3000}, {2, 4, 8});          // weights too large for shared memory
  check_gpu_matches_cpu({6, 4, 4}, {6, 130, 4}, DType::Float32, /*transpose_x=*/true);
  check_gpu_matches_cpu({16, 128, 4, 4}, {16, 128, 4, 128}, DType::Float64);
}

TEST_CASE("gpu stream_mix: HyperConnections and ManifoldHyperConnections on the GPU match the CPU") {
  HC_SKIP_WITHOUT_GPU();
  const int64_t S = 4, B = 2, N = 16, D = 64;
  SUBCASE("HyperConnections, two fractions") {
    const HyperConnectionsOptions options{.dim = D, .layer_index = 1, .num_fracs = 2};
    HyperConnections on_cpu(S, options), on_gpu(S, options);
    check_module_gpu_matches_cpu(on_cpu, on_gpu, {B * S, N, D});  // [B·S, N, D]
  }
  SUBCASE("ManifoldHyperConnections, streams next to the features, with the stream mix before the norm") {
    const ManifoldHyperConnectionsOptions options{
        .dim = D, .layer_index = 2, .streams_in_batch = false, .mix_streams_before_norm = true};
    ManifoldHyperConnections on_cpu(S, options), on_gpu(S, options);
    check_module_gpu_matches_cpu(on_cpu, on_gpu, {B, N, S, D});  // [B, N, S, D]
  }
  SUBCASE("PaperManifoldHyperConnections") {
    const ManifoldHyperConnectionsOptions options{.dim = D, .layer_index = 3};
    PaperManifoldHyperConnections on_cpu(S, options), on_gpu(S, options);
    check_module_gpu_matches_cpu(on_cpu, on_gpu, {B * S, N, D});
  }
}
