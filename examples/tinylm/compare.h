// tinylm compare: one training run per connection and seed, then a summary and plots.
//
//   DIR/<variant>-seed<k>/      each run (tinylm train's run directory: metrics.csv, checkpoint, log.txt,
//                               diagnostics/ with --diagnostics)
//   DIR/summary.csv             variant, seed, final val loss, tokens/s, peak RSS
//   DIR/summary.md              per variant: mean ± std over seeds, and the paired difference to residual
//   DIR/val_loss.png            validation-loss curves, mean and ±1 std band over seeds (plots.h)
//   DIR/gain.png, cosine.png    with --diagnostics: the composite gains and the cosine similarities, seed 1
//
// Each run is a child process (`tinylm train`), so its peak memory is its own. Seed k gives every variant the
// same batches (and the same initial weights outside the connections).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hcgrad/nn/hyper_connections_factory.h"

namespace tinylm {

struct CompareOptions {
  // Every connection tinylm knows, but the -fused ones (the same models as hc, frac, frac-paper, mhc, mhc-paper).
  std::vector<std::string> connections = [] {
    std::vector<std::string> names;
    for (const std::string& name : hcgrad::nn::connection_names())
      if (!name.ends_with("-fused")) names.push_back(name);
    return names;
  }();
  int64_t seeds = 3;
  int64_t steps = 600;
  int64_t streams = 4;     // hc and the mhc variants: streams; frac, frac-paper: fractions
  int64_t eval_every = 0;  // 0: steps / 10
  int threads = 0;
  // The model size of every run; 0: train's default.
  int64_t layers = 0, dim = 0, heads = 0, context = 0, batch = 0;
  std::string data;        // empty: the default corpus
  std::string out = "runs/compare";
  bool diagnostics = false;
  std::string program = "/proc/self/exe";  // the tinylm executable that runs each training (Linux: this one)
};

void compare(const CompareOptions& options);

// Throws hcgrad::Error naming the flag when a value is out of range (compare() checks this first).
void check_compare_options(const CompareOptions& options);

}  // namespace tinylm
