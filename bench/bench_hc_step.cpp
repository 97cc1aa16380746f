// One connection call of the tiny LM's shape, forward and backward, fused (hc_width / hc_depth) against the
// unfused composition of small ops, run alternately:
//
//   build/bench/bench_hc_step [--connection hc|frac|mhc] [--threads N] [--rounds N]
//
// Shapes: batch 16 × 128 tokens, D = 128, 4 streams (hc, mhc) or 4 fractions of one stream (frac), the
// streams next to the features as in the GPT; the branch is the identity, the loss sum(new · probe).
// Each round times 20 calls of each form; the lines report the best round in ms per call.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "hcgrad/hcgrad.h"

using namespace hcgrad;

namespace {

std::shared_ptr<nn::ConnectionModule> make(const std::string& connection, bool fused) {
  const int64_t D = 128;
  if (connection.starts_with("mhc")) {  // mhc, mhc-paper
    nn::ManifoldHyperConnectionsOptions o;
    o.dim = D;
    o.layer_index = 1;
    o.streams_in_batch = false;
    o.fused = fused;
    o.variant = connection == "mhc-paper" ? nn::MhcVariant::Paper : nn::MhcVariant::Library;
    return nn::make_manifold_hyper_connections(4, o);
  }
  const bool frac = connection == "frac";
  return std::make_shared<nn::HyperConnections>(
      frac ? 1 : 4, nn::HyperConnectionsOptions{.dim = D, .layer_index = 1, .num_fracs = frac ? 4 : 1,
                                                .streams_in_batch = false, .fused = fused});
}

// ms per call of forward + backward, over `calls` calls.
double time_calls(const nn::ConnectionModule& module, const Tensor& x, const Tensor& probe, int calls) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    Tensor r = x.detach().requires_grad_();
    nn::ConnectionSplit s = module.split(r);
    sum(s.add_residual(s.branch_input) * probe).backward();
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / calls;
}

}  // namespace

int main(int argc, char** argv) {
  std::string connection = "hc";
  int threads = 2, rounds = 5;
  CLI::App app{"hcgrad: one connection call, fused against unfused"};
  app.add_option("--connection", connection, "hc, frac, mhc or mhc-paper")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads")->capture_default_str();
  app.add_option("--rounds", rounds, "rounds of 20 calls of each form")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (connection != "hc" && connection != "frac" && connection != "mhc" && connection != "mhc-paper") {
    std::fprintf(stderr, "bench_hc_step: --connection must be hc, frac, mhc or mhc-paper\n");
    return 2;
  }
  set_num_threads(threads);
  Generator gen(0);
  const int64_t streams = connection == "frac" ? 1 : 4;
  const Tensor x = randn({16, 128, streams, 128}, {}, gen), probe = randn(x.shape(), {}, gen);
  auto fused = make(connection, true), unfused = make(connection, false);
  {
    autograd::NoGradGuard no_grad;  // the dynamic weights off zero, as after some training
    for (auto* m : {fused.get(), unfused.get()})
      for (const Tensor& p : m->parameters()) Tensor(p).add_(randn(p.shape(), p.options(), gen) * 0.1);
  }
  double best_fused = 1e30, best_unfused = 1e30;
  time_calls(*fused, x, probe, 3);  // warm-up: the allocator's cache, the first pages
  time_calls(*unfused, x, probe, 3);
  for (int round = 0; round < rounds; ++round) {
    best_fused = std::min(best_fused, time_calls(*fused, x, probe, 20));
    best_unfused = std::min(best_unfused, time_calls(*unfused, x, probe, 20));
  }
  std::printf("%s, %d threads: fused %.3f ms/call, unfused %.3f ms/call (forward + backward, best of %d rounds)\n",
              connection.c_str(), threads, best_fused, best_unfused, rounds);
  return 0;
}
