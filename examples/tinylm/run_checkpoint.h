// A training run's checkpoint: one safetensors file holding the model's weights under their names
// ("wte.weight", "blocks.0.attn.qkv.weight", ...), the AdamW state under "optimizer.state.<i>.*", and in
// its metadata the model config, the training settings and the position of every random stream — all
// a resumed run needs to continue exactly where the saved one stopped. PyTorch's safetensors reads it
// as it is (the weights load into an equivalent torch module by name).
#pragma once

#include <charconv>
#include <cstdint>
#include <map>
#include <string>

#include "hcgrad/nn/checkpoint.h"
#include "hcgrad/nn/gpt.h"
#include "hcgrad/nn/optim.h"

namespace tinylm {

inline constexpr const char* kCheckpointFile = "checkpoint.safetensors";
inline constexpr const char* kFormat = "hcgrad-tinylm-1";

// Everything besides the tensors, flattened to the string map safetensors metadata holds.
struct RunState {
  hcgrad::nn::GPTConfig model;
  std::map<std::string, std::string> settings;  // "train.lr" -> "0.002", ...: the run's options
  int64_t step = 0;                             // optimizer steps done
  uint64_t data_rng_offset = 0;                 // the batch generator's position
  uint64_t dropout_rng_offset = 0;              // the model's dropout generator's position
};

// Metadata holds text. Numbers go in as the shortest text that reads back to the same value, and come back
// strictly: the whole text must be the number, else an Error "<what> = '<text>' is not a valid number".
std::string format_number(double value);
template <class T>
T parse_number(const std::string& text, const std::string& what) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  HC_CHECK(ec == std::errc() && end == text.data() + text.size(), hcgrad::Error, what, " = '", text,
           "' is not a valid number");
  return value;
}

// A file path: `path` itself, or path/checkpoint.safetensors when it is a directory.
std::string checkpoint_path(const std::string& path);

// Writes atomically (a crash leaves the previous checkpoint intact); refuses, before writing, a model or
// optimizer state holding NaN or Inf, so that the checkpoint on disk is always a good one.
void save_run(const std::string& file, const hcgrad::nn::GPT& model, const hcgrad::nn::Optimizer* optimizer,
              const RunState& state);

// The name of the first floating-point tensor holding a NaN or an Inf, or "" when all are finite.
std::string first_non_finite(const hcgrad::nn::NamedTensors& tensors);

// A checkpoint's metadata as a RunState (model config, settings, step); refuses metadata that is not a
// tinylm checkpoint's or is damaged, naming the key. `file` names the checkpoint in messages.
RunState run_state_from(const std::map<std::string, std::string>& metadata, const std::string& file);

// Reads a checkpoint: the file (its checksum verified when it has one), its RunState, and a check that every
// weight is finite (a diverged model is refused). A file without a checksum loads with a note on stderr.
struct LoadedRun {
  hcgrad::nn::Safetensors file;
  RunState state;
};
LoadedRun read_run(const std::string& file);

// Copies the weights (and the optimizer state, when given) into existing objects; all or nothing.
void restore_run(const LoadedRun& run, const std::string& file, hcgrad::nn::GPT& model,
                 hcgrad::nn::Optimizer* optimizer);

}  // namespace tinylm
