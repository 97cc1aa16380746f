// tinylm's two jobs, as functions the program (main.cpp) and the tests both call:
//   train():  a byte-level GPT on a text corpus — AdamW, warm-up + cosine lr, gradient clipping,
//             periodic validation, metrics.csv, atomic checkpoints, exact resume.
//   sample(): text from a checkpoint.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "hcgrad/nn/gpt.h"

namespace tinylm {

struct TrainOptions {
  std::string data;  // a text file; empty: the default corpus (Debian's fortunes)
  int64_t max_data_mb = 1024;  // a larger --data file is refused (a stream such as /dev/zero never ends)
  int64_t steps = 2000;
  hcgrad::nn::GPTConfig model;  // layers, dim, heads, context (vocab is 256: bytes)
  int64_t batch = 16;
  double lr = 3e-3;            // peak learning rate; the schedule decays it to lr / 10
  int64_t warmup = 100;        // steps of linear warm-up
  double weight_decay = 0.1;   // AdamW, on the weight matrices only
  double clip = 1.0;           // global gradient-norm clip (0: off)
  uint64_t seed = 1337;        // initialisation, batches and dropout all derive from it
  int threads = 0;             // 0: every core
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:N": where the model trains
  int64_t eval_every = 250;    // validation loss and checkpoint every N steps (and at the end)
  int64_t eval_batches = 8;    // batches of validation windows per evaluation
  std::string out;              // empty: a new directory runs/tinylm-<date>-<time>
  std::string resume;          // a run directory (or checkpoint file) to continue from
  int64_t stop_at = 0;         // stop after this step as if interrupted (0: run to `steps`)
  int64_t sample_tokens = 300; // generated at the end
  bool diagnostics = false;    // record the stream diagnostics into OUT/diagnostics (diagnostics.h)
  bool overlap = true;         // under mpirun: average gradients during backward (false: after it, to debug)
  // Flags the user gave explicitly (a resumed run refuses to change the others).
  std::set<std::string> given;
};

struct TrainResult {
  std::vector<double> train_losses;  // one per step run in this invocation, in order
  int64_t first_step = 0;            // 0, or the step a resumed run started from
  double final_val_loss = 0;
  double tokens_per_s = 0;
  std::string sample;
};

TrainResult train(const TrainOptions& options);

// The options with every value checked, as train() checks them before it reads or writes anything (for a
// resumed run, after taking the checkpoint's settings). Throws hcgrad::Error naming the flag.
TrainOptions checked_options(const TrainOptions& options);

// A resumed run's options: the checkpoint's model and settings, where a flag given on the command line (listed
// in requested.given) must agree with them; steps, eval-every and sample-tokens may change. Throws
// hcgrad::Error naming the flag or the damaged setting.
struct RunState;
TrainOptions resumed_options(TrainOptions requested, const RunState& saved);

// --device: "cpu" -> -1, "cuda" -> 0, "cuda:N" -> N; anything else throws hcgrad::Error.
int device_index(const std::string& name);
// The device itself; a GPU that is not there (or a build without CUDA) is refused with the reason.
hcgrad::Device parse_device(const std::string& name);

struct SampleOptions {
  std::string checkpoint;  // a file, or a run directory holding checkpoint.safetensors
  std::string prompt = "\n";
  int64_t tokens = 300;
  double temperature = 0.8;
  int64_t top_k = 40;
  uint64_t seed = 0;
};

// Throws hcgrad::Error naming the flag when a value is out of range.
void check_sample_options(const SampleOptions& options);

std::string sample(const SampleOptions& options);

}  // namespace tinylm
