// One GPU kernel family at a time, at the shapes of tools/run.sh gpu-bench (6 layers, d 384, 6 heads, ctx 256,
// batch 64: B·T = 16,384 tokens; 4 streams): time per call and the bandwidth it reaches, counting the bytes the
// kernel must at least read and write once. Compare the GB/s column with the GPU's memory bandwidth (H100 SXM
// about 3,350 GB/s, H200 about 4,800): a memory-bound kernel far below it is the one to work on. GEMMs and
// attention are reported in GFLOP/s instead.
//
//   build/bench/bench_gpu_kernels [--repeats 20]
//
// Each line is the median of `repeats` timings of 10 back-to-back calls, synchronised, divided by 10, so a
// kernel's launch cost counts (as it does in training) but the host's clock resolution does not.
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench_util.h"
#include "hcgrad/hcgrad.h"

using namespace hcgrad;

namespace {

struct Case {
  std::string family, name, shape;
  double bytes = 0;  // at least read + written once; 0 when flops says more
  double flops = 0;
  std::function<void()> run;
};

constexpr int64_t kTokens = 16384, kDim = 384, kStreams = 4, kVocab = 256;

std::vector<Case> cases() {
  const TensorOptions f32{.dtype = DType::Float32, .device = Device::cuda(0)};
  const TensorOptions i64{.dtype = DType::Int64, .device = Device::cuda(0)};
  Generator gen(1);
  const double f = 4;  // bytes per float
  const Tensor x = randn({kTokens, kDim}, f32, gen), y = randn({kTokens, kDim}, f32, gen);
  const Tensor bias = randn({kDim}, f32, gen), hidden = randn({kTokens, 4 * kDim}, f32, gen);
  const Tensor logits = randn({kTokens, kVocab}, f32, gen);
  const Tensor targets = randint(0, kVocab, {kTokens}, i64, gen);
  const Tensor wide = randn({kTokens, 3 * kDim}, f32, gen), scales = randn({kTokens * kStreams, 5}, f32, gen);
  const Tensor streams = randn({kTokens * kStreams, kDim}, f32, gen), proj = randn({kDim, 6}, f32, gen);
  const Tensor mix = randn({kTokens, kStreams, kStreams}, f32, gen), stream_x = randn({kTokens, kStreams, kDim}, f32, gen);
  const Tensor q = randn({64, 6, 256, 64}, f32, gen), k = randn({64, 6, 256, 64}, f32, gen),
               v = randn({64, 6, 256, 64}, f32, gen);
  const Tensor w = randn({kDim, 3 * kDim}, f32, gen), ln_w = randn({kDim}, f32, gen), ln_b = randn({kDim}, f32, gen);
  const Tensor embedding_table = randn({kVocab, kDim}, f32, gen), ids = randint(0, kVocab, {kTokens}, i64, gen);
  const Tensor param = randn({kDim, 4 * kDim}, f32, gen), grad = randn({kDim, 4 * kDim}, f32, gen);
  const Tensor m1 = zeros({kDim, 4 * kDim}, f32), m2 = zeros({kDim, 4 * kDim}, f32);
  const double n = double(kTokens) * kDim;
  return {
      {"elementwise", "add", "[16384, 384] + [16384, 384]", 3 * n * f, 0, [=] { add(x, y); }},
      {"elementwise", "add, broadcast bias", "[16384, 384] + [384]", 2 * n * f, 0, [=] { add(x, bias); }},
      {"elementwise", "gelu_tanh", "[16384, 1536]", 2 * 4 * n * f, 0, [=] { gelu_tanh(hidden); }},
      {"reduce", "sum over rows", "[16384, 384] -> [16384]", n * f, 0, [=] { sum(x, {1}); }},
      {"reduce", "sum over columns (bias gradient)", "[16384, 1152] -> [1152]", 3 * n * f, 0,
       [=] { sum(wide, {0}); }},
      {"reduce", "sum over columns (scale gradient)", "[65536, 5] -> [5]", kTokens * kStreams * 5 * f, 0,
       [=] { sum(scales, {0}); }},
      {"reduce", "sum of everything", "[16384, 384] -> []", n * f, 0, [=] { sum(x); }},
      {"softmax", "softmax", "[16384, 256]", 2 * kTokens * kVocab * f, 0, [=] { softmax(logits, -1); }},
      {"loss", "cross_entropy", "[16384, 256]", kTokens * kVocab * f, 0, [=] { cross_entropy(logits, targets); }},
      {"norm", "layer_norm", "[16384, 384]", 2 * n * f, 0, [=] { layer_norm(x, {kDim}, ln_w, ln_b); }},
      {"norm", "layer_norm forward + backward", "[16384, 384]", 5 * n * f, 0,
       [=] {
         const Tensor xg = x.detach().requires_grad_(), wg = ln_w.detach().requires_grad_(),
                      bg = ln_b.detach().requires_grad_();
         layer_norm(xg, {kDim}, wg, bg).sum().backward();
       }},
      {"scaled_rms_norm_matmul", "forward + backward", "[65536, 384] @ [384, 6]", 3 * kStreams * n * f, 0,
       [=] {
         const Tensor xg = streams.detach().requires_grad_(), wg = proj.detach().requires_grad_();
         scaled_rms_norm_matmul(xg, ones({kDim}, f32), wg).sum().backward();
       }},
      {"stream_mix", "stream_mix", "[16384, 4, 4]^T @ [16384, 4, 384]", 2 * kStreams * n * f, 0,
       [=] { stream_mix(mix, stream_x); }},
      {"index", "embedding", "[256, 384] rows by [16384] ids", 2 * n * f, 0, [=] { embedding(ids, embedding_table); }},
      {"scan", "cumsum", "[16384, 256] along 256", 2 * kTokens * kVocab * f, 0, [=] { cumsum(logits, 1); }},
      {"scan", "topk 5", "[16384, 256] along 256", kTokens * kVocab * f, 0, [=] { topk(logits, 5); }},
      {"optim", "adam_update_", "[384, 1536]", 7 * 4 * kDim * kDim * f, 0,
       [=] { adam_update_(param, grad, m1, m2, {.lr = 1e-4, .step_size = 1e-4}); }},
      {"matmul", "matmul (qkv)", "[16384, 384] @ [384, 1152]", 0, 2 * n * 3 * kDim, [=] { matmul(x, w); }},
      {"attention", "scaled_dot_product_attention, causal", "[64, 6, 256, 64]", 0,
       2 * 2 * 64 * 6 * 256.0 * 256 * 64 / 2, [=] { scaled_dot_product_attention(q, k, v, true); }},
  };
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_gpu_kernels: time and bandwidth of each GPU kernel family at the tiny LM's GPU shapes"};
  int repeats = 20;
  app.add_option("--repeats", repeats, "timings per case (the median is reported)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (!cuda::is_available()) {
    std::printf("bench_gpu_kernels: skipped: %s\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  try {
    std::printf("bench_gpu_kernels on %s\n\n", cuda::device_name(0).c_str());
    std::printf("| family | case | shape | µs per call | GB/s | GFLOP/s |\n|---|---|---|---|---|---|\n");
    for (const Case& c : cases()) {
      constexpr int kCalls = 10;
      const double seconds = median_seconds(
                                 [&] {
                                   for (int i = 0; i < kCalls; ++i) c.run();
                                   cuda::synchronize();
                                 },
                                 repeats) /
                             kCalls;
      const std::string bandwidth = c.bytes > 0 ? std::to_string(int(c.bytes / seconds / 1e9)) : "";
      const std::string rate = c.flops > 0 ? std::to_string(int(c.flops / seconds / 1e9)) : "";
      std::printf("| %s | %s | %s | %.1f | %s | %s |\n", c.family.c_str(), c.name.c_str(), c.shape.c_str(),
                  seconds * 1e6, bandwidth.c_str(), rate.c_str());
      std::fflush(stdout);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_gpu_kernels: %s\n", e.what());
    return 1;
  }
  return 0;
}
