// The CUDA runtime: devices, copies between CPU and GPU, the caching allocator, errors, and a whole
// training step of a small GPT on the GPU against the same step on the CPU.
#include "helpers.h"

namespace {

using namespace hctest;

const Device kGpu = Device::cuda(0);

TEST_CASE("gpu: a tensor goes to the GPU and back unchanged") {
  HC_SKIP_WITHOUT_GPU();
  MESSAGE("GPU: ", cuda::device_name(0));
  Tensor x = randn({3, 5}, {.dtype = DType::Float64});
  Tensor on_gpu = x.to(kGpu);
  CHECK(on_gpu.device() == kGpu);
  CHECK(on_gpu.shape() == x.shape());
  CHECK(max_abs_diff(values(on_gpu.to(Device::cpu())), values(x)) == 0);
  // A transposed (non-contiguous) view arrives with its values in row-major order.
  CHECK(max_abs_diff(values(x.t().to(kGpu)), values(x.t())) == 0);
  // Every dtype survives the round trip.
  CHECK(values(arange(5, {.device = kGpu})) == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(values(gt(tensor({1, -1}), tensor({0, 0})).to(kGpu)) == std::vector<double>{1, 0});
  CHECK(on_gpu.select(0, 1).select(0, 2).item() == x.select(0, 1).select(0, 2).item());
}

TEST_CASE("gpu: creation functions give the same numbers as on the CPU") {
  HC_SKIP_WITHOUT_GPU();
  Generator a(7), b(7);
  CHECK(max_abs_diff(values(randn({4, 4}, {.device = kGpu}, a)), values(randn({4, 4}, {}, b))) == 0);
  CHECK(values(full({2}, 3.5, {.device = kGpu})) == std::vector<double>{3.5, 3.5});
  CHECK(values(eye(2, {.device = kGpu})) == std::vector<double>{1, 0, 0, 1});
}

TEST_CASE("gpu: the caching allocator reuses freed blocks") {
  HC_SKIP_WITHOUT_GPU();
  cuda::synchronize();
  { Tensor warm = zeros({1000}, {.device = kGpu}); }
  const int64_t before = cuda::memory_stats(0).device_allocations;
  for (int i = 0; i < 100; ++i) Tensor t = zeros({1000}, {.device = kGpu});
  CHECK(cuda::memory_stats(0).device_allocations == before);  // no cudaMalloc in the loop
  const cuda::MemoryStats stats = cuda::memory_stats(0);
  CHECK(stats.peak_allocated >= 4000);
  CHECK(stats.reserved == stats.allocated + stats.cached);
}

TEST_CASE("gpu: mixing devices is an error naming the op and both devices") {
  HC_SKIP_WITHOUT_GPU();
  Tensor a = ones({2}), b = ones({2}, {.device = kGpu});
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("cpu"), DeviceError);
  CHECK_THROWS_WITH_AS(matmul(a.unsqueeze(0), b.unsqueeze(1)), doctest::Contains("matmul"), DeviceError);
  CHECK_THROWS_WITH_AS(b.data<float>(), doctest::Contains("to(Device::cpu())"), DeviceError);
  CHECK_THROWS_AS(ones({2}, {.device = Device::cuda(cuda::device_count())}), DeviceError);
}

// GPU ids and targets are checked by the kernels, not read back first (cuda/index_fault.h): the error comes at
// the next wait for the GPU, and only once.
TEST_CASE("gpu: out-of-range ids and targets are reported at the next wait for the GPU") {
  HC_SKIP_WITHOUT_GPU();
  Tensor weight = randn({4, 3}, {.device = kGpu});
  const Tensor rows = embedding(from_vector<int64_t>({0, 4}).to(kGpu), weight);  // queued, not yet checked
  CHECK_THROWS_WITH_AS(cuda::synchronize(), doctest::Contains("index 4"), IndexError);
  CHECK_NOTHROW(cuda::synchronize());  // reported once
  Tensor logits = randn({2, 3}, {.device = kGpu});
  const Tensor loss = cross_entropy(logits, from_vector<int64_t>({0, 3}).to(kGpu));
  CHECK_THROWS_WITH_AS(loss.item(), doctest::Contains("target 3"), IndexError);
  const Tensor picked = gather(logits, 1, from_vector<int64_t>({2, 5}, {2, 1}).to(kGpu));
  CHECK_THROWS_WITH_AS(cuda::synchronize(), doctest::Contains("gather, scatter_add or nll_loss: index 5"), IndexError);
  const Tensor nll = nll_loss(log_softmax(logits, 1), from_vector<int64_t>({-100, 7}).to(kGpu));
  CHECK_THROWS_WITH_AS(nll.item(), doctest::Contains("index 7"), IndexError);
  // Good ids afterwards run as ever.
  CHECK(values(embedding(from_vector<int64_t>({3}).to(kGpu), weight)) == values(weight.narrow(0, 3, 1)));
  const Tensor targets = from_vector<int64_t>({2, -100});
  CHECK(nll_loss(log_softmax(logits, 1), targets.to(kGpu)).item() ==
        doctest::Approx(nll_loss(log_softmax(logits.to(Device::cpu()), 1), targets).item()).epsilon(1e-6));
}

// clip_grad_norm_ keeps the norm and the clipping factor on the GPU; the values are the CPU's.
TEST_CASE("gpu: clip_grad_norm_ clips on the GPU as on the CPU, and leaves non-finite gradients alone") {
  HC_SKIP_WITHOUT_GPU();
  Tensor a = zeros({2}, {.dtype = DType::Float64}).requires_grad_(), b = zeros({1}).requires_grad_();
  Tensor ga = zeros({2}, {.dtype = DType::Float64, .device = kGpu}).requires_grad_();
  Tensor gb = zeros({1}, {.device = kGpu}).requires_grad_();
  a.set_grad(from_vector<double>({3.0, 4.0}));
  b.set_grad(from_vector<float>({12.0f}));
  ga.set_grad(a.grad().to(kGpu));
  gb.set_grad(b.grad().to(kGpu));
  const Tensor norm = nn::clip_grad_norm_({ga, gb}, 10.4);
  CHECK(norm.device() == kGpu);
  CHECK(norm.item() == doctest::Approx(nn::clip_grad_norm_({a, b}, 10.4).item()).epsilon(1e-12));
  CHECK(max_abs_diff(values(ga.grad()), values(a.grad())) < 1e-12);
  CHECK(max_abs_diff(values(gb.grad()), values(b.grad())) < 1e-6);
  ga.set_grad(from_vector<double>({NAN, 1.0}).to(kGpu));
  CHECK(std::isnan(nn::clip_grad_norm_({ga, gb}, 1.0).item()));
  CHECK(values(ga.grad())[1] == 1.0);
}

TEST_CASE("gpu: gradients flow back across a device copy") {
  HC_SKIP_WITHOUT_GPU();
  Tensor x = randn({3}, {.dtype = DType::Float64}).requires_grad_();
  Tensor y = (x.to(kGpu) * 2.0).sum();
  y.backward();
  CHECK(x.grad().device().is_cpu());
  CHECK(values(x.grad()) == std::vector<double>{2, 2, 2});
}

// One AdamW step of the tiny LM on both devices from the same weights and batch: the loss, every
// gradient and every updated parameter agree.
void check_gpt_step(const std::string& connection) {
  CAPTURE(connection);
  nn::GPTConfig config{.vocab_size = 256, .context = 32, .layers = 2, .dim = 32, .heads = 2};
  config.connection = connection;
  config.streams = connection == "residual" ? 1 : 4;
  nn::GPT cpu_model(config, 3), gpu_model(config, 3);
  gpu_model.to(kGpu);
  Generator data(5);
  Tensor ids = randint(0, 256, {4, 32}, {.dtype = DType::Int64}, data);
  Tensor targets = randint(0, 256, {4, 32}, {.dtype = DType::Int64}, data);

  nn::AdamW cpu_opt(cpu_model.parameters(), {.lr = 1e-3, .weight_decay = 0.1});
  nn::AdamW gpu_opt(gpu_model.parameters(), {.lr = 1e-3, .weight_decay = 0.1});
  Tensor cpu_loss = cpu_model.loss(ids, targets);
  Tensor gpu_loss = gpu_model.loss(ids.to(kGpu), targets.to(kGpu));
  CHECK(relative_error(gpu_loss, cpu_loss) < 1e-5);
  cpu_loss.backward();
  gpu_loss.backward();
  const nn::NamedTensors cpu_params = cpu_model.named_parameters(), gpu_params = gpu_model.named_parameters();
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    CAPTURE(cpu_params[i].first);
    CHECK(relative_error(gpu_params[i].second.grad(), cpu_params[i].second.grad()) < 1e-4);
  }
  cpu_opt.step();
  gpu_opt.step();
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    CAPTURE(cpu_params[i].first);
    CHECK(relative_error(gpu_params[i].second, cpu_params[i].second) < 1e-5);
  }
}

TEST_CASE("gpu: a GPT training step matches the CPU, for every connection") {
  HC_SKIP_WITHOUT_GPU();
  for (const char* connection : {"residual", "hc", "frac", "mhc", "mhc-paper"}) check_gpt_step(connection);
}

}  // namespace

namespace {

// A copy between two GPUs runs on the destination's stream; the source's block must not be reused on the
// source's stream before the copy has read it (cuda/runtime.cpp). Both races of the review: a freed source
// handed to the next tensor of its size, and the source written in place right after the copy.
TEST_CASE("gpu: a copy to another GPU is not overwritten by later work on the source GPU") {
  HC_SKIP_WITHOUT_GPU();
  if (cuda::device_count() < 2) {
    std::cout << "GPU test skipped: needs two GPUs, this machine has " << cuda::device_count() << std::endl;
    return;
  }
  const Device first = Device::cuda(0), second = Device::cuda(1);
  Generator gen(3);
  const Tensor a = randn({1 << 24}, {.device = first}, gen);  // 64 MB: the copy takes a while
  const std::vector<double> twice = values(a * 2.0);
  const Tensor b = (a * 2.0).to(second);  // the temporary a * 2 dies here, its block free on cuda:0
  const Tensor c = a + 1.0;               // likely the same block, written on cuda:0's stream
  CHECK(values(b) == twice);
  Tensor d = a.clone();
  const Tensor e = d.to(second);
  d.mul_(0.0);  // written on cuda:0 right after the copy was queued on cuda:1
  CHECK(values(e) == values(a));
  CHECK(values(c).size() == twice.size());
}

}  // namespace
