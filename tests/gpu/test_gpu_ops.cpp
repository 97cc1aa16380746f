// Every op on the GPU against the CPU: each case of the gradcheck table (tests/op_cases.h) runs forward
// and backward on both devices from the same inputs and upstream gradient, in float64 (inputs keep their
// strides, so broadcast and transposed operands reach the GPU kernels as views) and in float32.
// Bar: relative error ||gpu - cpu|| / ||cpu|| below 1e-5 in float32 (1e-10 in float64), for the output and
// every input gradient.
#include "helpers.h"
#include "op_cases.h"

namespace {

using namespace hctest;

const Device kGpu = Device::cuda(0);

// The same tensor on the GPU with the same strides and offset: its whole storage is copied, then viewed.
Tensor same_layout_on_gpu(const Tensor& x) {
  const int64_t elements = static_cast<int64_t>(x.storage()->nbytes() / itemsize(x.dtype()));
  const Tensor storage_on_gpu = as_strided(x.detach(), {elements}, {1}, 0).to(kGpu);
  return as_strided(storage_on_gpu, x.shape(), x.strides(), x.offset());
}

// A leaf copy of `x` in `dtype` on `device` (float64 inputs keep their layout; int64 ids stay int64).
Tensor input_copy(const Tensor& x, DType dtype, Device device) {
  if (!is_floating(x.dtype())) return device.is_cpu() ? x : x.to(device);
  Tensor converted = x.detach().to(dtype);
  Tensor moved = device.is_cpu() ? converted : (dtype == x.dtype() ? same_layout_on_gpu(converted) : converted.to(device));
  return x.requires_grad() ? moved.detach().requires_grad_() : moved;
}

void check_case(const OpCase& c, DType dtype, double tolerance) {
  CAPTURE(c.name);
  CAPTURE(dtype);
  const std::vector<Tensor> inputs = c.inputs();
  std::vector<Tensor> on_cpu, on_gpu;
  for (const Tensor& x : inputs) {
    on_cpu.push_back(input_copy(x, dtype, Device::cpu()));
    on_gpu.push_back(input_copy(x, dtype, kGpu));
  }
  const Tensor out_cpu = c.f(on_cpu);
  op_case_inputs::case_device = kGpu;  // the case's own index tensors go to the GPU too
  const Tensor out_gpu = c.f(on_gpu);
  op_case_inputs::case_device = Device::cpu();
  CHECK(out_gpu.device() == kGpu);
  CHECK(relative_error(out_gpu, out_cpu) < tolerance);
  if (!out_cpu.requires_grad()) return;
  // One upstream gradient for both (never zero, so every path of the backward carries a signal).
  Generator gen(11);
  const Tensor upstream = (rand(out_cpu.shape(), {.dtype = dtype}, gen) + 0.5);
  sum(out_cpu * upstream).backward();
  sum(out_gpu * upstream.to(kGpu)).backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!on_cpu[i].requires_grad()) continue;
    CAPTURE(i);
    REQUIRE(on_gpu[i].grad().defined());
    CHECK(on_gpu[i].grad().device() == kGpu);
    CHECK(relative_error(on_gpu[i].grad(), on_cpu[i].grad()) < tolerance);
  }
}

TEST_CASE("gpu: every op matches the CPU in float64, views included") {
  HC_SKIP_WITHOUT_GPU();
  for (const OpCase& c : op_cases()) check_case(c, DType::Float64, 1e-10);
}

TEST_CASE("gpu: every op matches the CPU in float32") {
  HC_SKIP_WITHOUT_GPU();
  for (const OpCase& c : op_cases()) check_case(c, DType::Float32, 1e-5);
}

TEST_CASE("gpu: matmul with TF32 stays within 1e-3 of the CPU") {
  HC_SKIP_WITHOUT_GPU();
  Generator gen(3);
  const Tensor a = randn({64, 256}, {}, gen), b = randn({256, 96}, {}, gen);
  cuda::set_allow_tf32(true);
  const Tensor c = matmul(a.to(kGpu), b.to(kGpu));
  cuda::set_allow_tf32(false);
  CHECK(relative_error(c, matmul(a, b)) < 1e-3);
  CHECK(relative_error(matmul(a.to(kGpu), b.to(kGpu)), matmul(a, b)) < 1e-5);
}

TEST_CASE("gpu: large rows and many rows reduce like the CPU") {
  HC_SKIP_WITHOUT_GPU();
  Generator gen(4);
  const Tensor wide = randn({3, 100000}, {}, gen), tall = randn({20000, 7}, {}, gen);
  for (const Tensor& x : {wide, tall}) {
    const Tensor g = x.to(kGpu);
    CHECK(relative_error(sum(g, {1}), sum(x, {1})) < 1e-5);
    CHECK(relative_error(max(g, {1}), max(x, {1})) == 0);
    CHECK(values(argmax(g, 1)) == values(argmax(x, 1)));
    CHECK(relative_error(logsumexp(g, {1}), logsumexp(x, {1})) < 1e-5);
    CHECK(relative_error(softmax(g, 1), softmax(x, 1)) < 1e-5);
    CHECK(relative_error(sum(g, {0}), sum(x, {0})) < 1e-5);
  }
}

}  // namespace
