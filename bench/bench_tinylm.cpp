// Training throughput of the canonical tiny LM (issue "bench-small"): byte-level GPT, 4 layers, d 128,
// 4 heads, ctx 128, batch 16 (2048 tokens a step), pre-LayerNorm, GELU (tanh), tied embeddings, no
// dropout, AdamW with weight decay on the matrices, gradient clip 1.0. One step = forward + backward +
// clip + optimizer step on random bytes.
//
//   build/bench/bench_tinylm [--connection residual|hc|frac|frac-paper|mhc|mhc-paper|...] [--threads N] [--steps N]
//                            [--device cpu|cuda] [--profile] [--keep-coefficients]
//
// It runs 5 untimed warm-up steps, then `steps` timed steps in 5 windows, and reports the median window.
// The last line reads: tokens_per_s=<x> ms_per_step=<y> peak_rss_mb=<z> (the process's peak resident
// set; on a GPU also the allocator's peak). tools/torch_peer.py prints the same line for PyTorch eager.
// --profile: the timed steps run under the built-in profiler (core/profile.h), whose table of ms per step
// by category and by op comes before the last line (the profiler's own cost is in the figures then).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "hcgrad/hcgrad.h"

using namespace hcgrad;

namespace {

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

}  // namespace

int main(int argc, char** argv) {
  std::string connection = "residual", device_name = "cpu";
  int threads = 2, steps = 50;
  bool profiled = false, keep_coefficients = false;
  CLI::App app{"hcgrad: training throughput of the tiny LM"};
  app.add_option("--connection", connection, "one of tinylm's connections (residual, hc, frac, frac-paper, mhc, mhc-paper, ...)")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads")->capture_default_str();
  app.add_option("--steps", steps, "timed steps (after 5 warm-up steps)")->capture_default_str();
  app.add_option("--device", device_name, "cpu or cuda")->capture_default_str();
  app.add_flag("--profile", profiled, "print the per-op time breakdown of the timed steps");
  app.add_flag("--keep-coefficients", keep_coefficients,
               "fused connections keep their coefficients for backward instead of recomputing them");
  CLI11_PARSE(app, argc, argv);
  if (steps < 5 || threads < 1) {
    std::fprintf(stderr, "bench_tinylm: needs --steps >= 5 and --threads >= 1\n");
    return 2;
  }

  try {
    set_num_threads(threads);
    nn::GPTConfig config;  // the canonical tiny LM: tinylm's defaults
    config.connection = connection;
    config.recompute_connections = !keep_coefficients;
    if (connection.starts_with("frac")) config.fracs = 4;
    else if (connection != "residual") config.streams = 4;
    const Device device = device_name == "cpu" ? Device::cpu() : Device::cuda(0);
    nn::GPT model(config, /*seed=*/0);
    model.to(device);
    const nn::GPT::DecaySplit split = model.decay_split();
    nn::AdamW optimizer({{.params = split.decay, .weight_decay = 0.1}, {.params = split.no_decay, .weight_decay = 0.0}},
                        {.lr = 3e-3, .beta1 = 0.9, .beta2 = 0.95, .weight_decay = 0.1});
    const int64_t batch = 16, T = config.context, tokens_per_step = batch * T;
    Generator data(1);

    auto step = [&] {
      const Tensor ids = randint(0, 256, {batch, T + 1}, {.dtype = DType::Int64}, data).to(device);
      const Tensor loss = model.loss(ids.narrow(1, 0, T), ids.narrow(1, 1, T));
      optimizer.zero_grad();
      loss.backward();
      nn::clip_grad_norm_(model.parameters(), 1.0);  // the norm stays on the device: no wait, as in torch
      optimizer.step();
    };
    for (int i = 0; i < 5; ++i) step();
    cuda::synchronize();

    const int windows = 5, per_window = std::max(1, steps / windows);
    profile::enable(profiled);
    std::vector<double> ms;
    for (int w = 0; w < windows; ++w) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < per_window; ++i) step();
      cuda::synchronize();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
                   per_window);
    }
    profile::enable(false);
    std::sort(ms.begin(), ms.end());
    const double median_ms = ms[ms.size() / 2];
    std::printf("hcgrad tinylm, %s, %d threads, %s: %d x %d steps, windows %.1f-%.1f ms/step\n",
                config.describe().c_str(), threads, device_name.c_str(), windows, per_window, ms.front(), ms.back());
    if (profiled) std::printf("%s", profile::report(windows * per_window).c_str());
    if (device.is_cuda())
      std::printf("gpu_peak_allocated_mb=%.0f\n", static_cast<double>(cuda::memory_stats(0).peak_allocated) / (1 << 20));
    std::printf("tokens_per_s=%.0f ms_per_step=%.2f peak_rss_mb=%.0f\n", tokens_per_step / median_ms * 1e3,
                median_ms, peak_rss_mb());
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_tinylm: %s\n", e.what());
    return 1;
  }
  return 0;
}
