// The fused attention kernels on the GPU (cuda/scaled_dot_product_attention.cu) against the CPU kernels, which
// test_scaled_dot_product_attention.cpp checks against the composite softmax(q k^T * scale) v: the output and all three
// gradients, causal and not, float32 and float64, head dims that fill the kernels' tiles and odd ones
// that do not.
#include "helpers.h"

namespace {

using namespace hctest;

const Device kGpu = Device::cuda(0);

struct AttentionRun {
  Tensor out, grad_q, grad_k, grad_v;
};

// Forward and backward of scaled_dot_product_attention on `device`, from the CPU tensors given.
AttentionRun run_attention(const std::vector<Tensor>& qkv, const Tensor& cotangent, bool causal, Device device) {
  std::vector<Tensor> inputs;
  for (const Tensor& t : qkv) inputs.push_back(t.to(device).detach().requires_grad_());
  Tensor out = scaled_dot_product_attention(inputs[0], inputs[1], inputs[2], causal);
  out.backward(cotangent.to(device));
  return {out, inputs[0].grad(), inputs[1].grad(), inputs[2].grad()};
}

// Random inputs in [-2, 2) (never all zero: the softmax is far from uniform) and a random output gradient.
void check_gpu_matches_cpu(const Shape& shape, DType dtype, bool causal, double tol) {
  CAPTURE(shape);
  CAPTURE(dtype);
  CAPTURE(causal);
  Generator gen(17);
  std::vector<Tensor> qkv;
  for (int i = 0; i < 3; ++i) qkv.push_back(rand(shape, {.dtype = dtype}, gen) * 4.0 - 2.0);
  Tensor cotangent = randn(shape, {.dtype = dtype}, gen);
  const AttentionRun gpu = run_attention(qkv, cotangent, causal, kGpu);
  const AttentionRun cpu = run_attention(qkv, cotangent, causal, Device::cpu());
  CHECK(gpu.out.device() == kGpu);
  CHECK(relative_error(gpu.out, cpu.out) < tol);
  CHECK(relative_error(gpu.grad_q, cpu.grad_q) < tol);
  CHECK(relative_error(gpu.grad_k, cpu.grad_k) < tol);
  CHECK(relative_error(gpu.grad_v, cpu.grad_v) < tol);
}

}  // namespace

TEST_CASE("gpu: scaled_dot_product_attention in float32 matches the CPU, T = 256, hd = 64") {
  HC_SKIP_WITHOUT_GPU();
  for (bool causal : {true, false}) check_gpu_matches_cpu({2, 4, 256, 64}, DType::Float32, causal, 1e-5);
}

TEST_CASE("gpu: scaled_dot_product_attention in float32 matches the CPU, odd sizes T = 77, hd = 40") {
  HC_SKIP_WITHOUT_GPU();
  for (bool causal : {true, false}) check_gpu_matches_cpu({3, 2, 77, 40}, DType::Float32, causal, 1e-5);
}

TEST_CASE("gpu: scaled_dot_product_attention in float64 matches the CPU, both sizes") {
  HC_SKIP_WITHOUT_GPU();
  for (bool causal : {true, false}) {
    check_gpu_matches_cpu({2, 4, 256, 64}, DType::Float64, causal, 1e-12);
    check_gpu_matches_cpu({3, 2, 77, 40}, DType::Float64, causal, 1e-12);
  }
}

TEST_CASE("gpu: scaled_dot_product_attention covers every head-dim kernel and the shortest sequences") {
  HC_SKIP_WITHOUT_GPU();
  // hd 1 and 32 (the 32-wide kernel), 65 and 128 (the 128-wide one), T = 2 and T just past a tile.
  // (Not T = 1: a softmax over one key is constant, so dq and dk are rounding noise on both devices.)
  for (bool causal : {true, false}) {
    check_gpu_matches_cpu({1, 2, 2, 32}, DType::Float32, causal, 1e-5);
    check_gpu_matches_cpu({1, 1, 33, 1}, DType::Float32, causal, 1e-5);
    check_gpu_matches_cpu({1, 2, 17, 65}, DType::Float64, causal, 1e-12);
    check_gpu_matches_cpu({2, 1, 100, 128}, DType::Float64, causal, 1e-12);
  }
}

TEST_CASE("gpu: scaled_dot_product_attention refuses head dims above 128, naming the op") {
  HC_SKIP_WITHOUT_GPU();
  Tensor x = zeros({1, 1, 4, 129}, {.device = kGpu});
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(x, x, x),
                       "scaled_dot_product_attention: the CUDA kernels take head dims up to 128, got shape [1,1,4,129]",
                       ShapeError);
}
