// Saving and restoring a tinylm run; layout in run_checkpoint.h.
#include "run_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "hcgrad/core/dispatch.h"

namespace tinylm {

using hcgrad::Error;
using hcgrad::nn::NamedTensors;

namespace {

const std::string kOptimizerPrefix = "optimizer.";

// Reads metadata[key] as a T, with a message naming the key when it is missing or malformed.
template <class T>
T read_key(const std::map<std::string, std::string>& metadata, const std::string& key, const std::string& file) {
  auto it = metadata.find(key);
  HC_CHECK(it != metadata.end(), Error, "checkpoint ", file, ": metadata key '", key, "' is missing");
  return parse_number<T>(it->second, "checkpoint " + file + ": metadata '" + key + "'");
}

}  // namespace

std::string first_non_finite(const NamedTensors& tensors) {
  for (const auto& [name, tensor] : tensors) {
    if (tensor.dtype() != hcgrad::DType::Float32 && tensor.dtype() != hcgrad::DType::Float64) continue;
    const hcgrad::Tensor values = tensor.detach().to(hcgrad::Device::cpu()).contiguous();  // no copy when both hold
    const bool finite = hcgrad::dispatch_floating("first_non_finite", values.dtype(), [&]<class T>() {
      const T* data = values.data<T>();
      return std::all_of(data, data + values.numel(), [](T v) { return std::isfinite(v); });
    });
    if (!finite) return name;
  }
  return "";
}

std::string format_number(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

std::string checkpoint_path(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) ? (std::filesystem::path(path) / kCheckpointFile).string() : path;
}

void save_run(const std::string& file, const hcgrad::nn::GPT& model, const hcgrad::nn::Optimizer* optimizer,
              const RunState& state) {
  NamedTensors tensors = model.named_parameters();
  if (optimizer)
    for (auto& [key, tensor] : optimizer->state_dict()) tensors.emplace_back(kOptimizerPrefix + key, tensor);
  // On the CPU once, for both the finiteness check and the file (a GPU run's weights would otherwise cross twice).
  for (auto& [name, tensor] : tensors) tensor = tensor.detach().to(hcgrad::Device::cpu());

  std::map<std::string, std::string> metadata = state.settings;
  const hcgrad::nn::GPTConfig& m = state.model;
  metadata["format"] = kFormat;
  metadata["model.vocab_size"] = std::to_string(m.vocab_size);
  metadata["model.context"] = std::to_string(m.context);
  metadata["model.layers"] = std::to_string(m.layers);
  metadata["model.dim"] = std::to_string(m.dim);
  metadata["model.heads"] = std::to_string(m.heads);
  metadata["model.mlp_ratio"] = std::to_string(m.mlp_ratio);
  metadata["model.dropout"] = format_number(m.dropout);
  metadata["model.bias"] = std::to_string(m.bias ? 1 : 0);
  metadata["model.connection"] = m.connection;
  metadata["model.streams"] = std::to_string(m.streams);
  metadata["model.fracs"] = std::to_string(m.fracs);
  metadata["state.step"] = std::to_string(state.step);
  metadata["state.data_rng_offset"] = std::to_string(state.data_rng_offset);
  metadata["state.dropout_rng_offset"] = std::to_string(state.dropout_rng_offset);
  const std::string bad = first_non_finite(tensors);
  HC_CHECK(bad.empty(), Error, "train: not saving step ", state.step, ": tensor '", bad,
           "' holds NaN or Inf (the run has diverged; try a lower --lr)");
  hcgrad::nn::save_safetensors(file, tensors, metadata);
}

RunState run_state_from(const std::map<std::string, std::string>& metadata, const std::string& file) {
  auto format = metadata.find("format");
  HC_CHECK(format != metadata.end() && format->second == kFormat, Error, "checkpoint ", file,
           ": not a tinylm checkpoint (metadata 'format' is ",
           format == metadata.end() ? "missing" : "'" + format->second + "'", ", expected '", kFormat, "')");
  RunState state;
  hcgrad::nn::GPTConfig& m = state.model;
  m.vocab_size = read_key<int64_t>(metadata, "model.vocab_size", file);
  m.context = read_key<int64_t>(metadata, "model.context", file);
  m.layers = read_key<int64_t>(metadata, "model.layers", file);
  m.dim = read_key<int64_t>(metadata, "model.dim", file);
  m.heads = read_key<int64_t>(metadata, "model.heads", file);
  m.mlp_ratio = read_key<int64_t>(metadata, "model.mlp_ratio", file);
  m.dropout = read_key<double>(metadata, "model.dropout", file);
  m.bias = read_key<int>(metadata, "model.bias", file) != 0;
  auto connection = metadata.find("model.connection");
  HC_CHECK(connection != metadata.end(), Error, "checkpoint ", file, ": metadata key 'model.connection' is missing");
  m.connection = connection->second;  // checked by validate() below
  m.streams = read_key<int64_t>(metadata, "model.streams", file);
  // Checkpoints written before Frac-Connections existed have no fractions.
  m.fracs = metadata.count("model.fracs") ? read_key<int64_t>(metadata, "model.fracs", file) : 1;
  try {
    m.validate();
  } catch (const Error& e) {
    throw Error(hcgrad::detail::concat("checkpoint ", file, ": invalid model config: ", e.what()));
  }
  state.step = read_key<int64_t>(metadata, "state.step", file);
  HC_CHECK(state.step >= 0, Error, "checkpoint ", file, ": metadata 'state.step' is ", state.step,
           "; a step count cannot be negative");
  state.data_rng_offset = read_key<uint64_t>(metadata, "state.data_rng_offset", file);
  state.dropout_rng_offset = read_key<uint64_t>(metadata, "state.dropout_rng_offset", file);
  for (const auto& [key, value] : metadata)
    if (key.starts_with("train.")) state.settings[key] = value;
  return state;
}

LoadedRun read_run(const std::string& file) {
  LoadedRun run{hcgrad::nn::load_safetensors(file), {}};
  // A file without a checksum (re-saved by a tool that drops it) still loads, but nothing vouches for its
  // metadata; every message about it says so.
  const std::string unverified =
      run.file.checksum_verified ? "" : " (the file carries no checksum, so it may have been edited)";
  try {
    run.state = run_state_from(run.file.metadata, file);
  } catch (const Error& e) {
    throw Error(e.what() + unverified);
  }
  if (!unverified.empty())
    std::fprintf(stderr, "tinylm: note: %s carries no checksum; its weights and settings are used unverified\n",
                 file.c_str());
  const std::string bad = first_non_finite(run.file.tensors);
  HC_CHECK(bad.empty(), Error, "checkpoint ", file, ": tensor '", bad, "' holds NaN or Inf; a diverged model cannot "
           "be sampled from or resumed", unverified);
  return run;
}

void restore_run(const LoadedRun& run, const std::string& file, hcgrad::nn::GPT& model,
                 hcgrad::nn::Optimizer* optimizer) {
  NamedTensors destinations = model.named_parameters();
  if (optimizer)
    for (auto& [key, tensor] : optimizer->state_dict()) destinations.emplace_back(kOptimizerPrefix + key, tensor);
  // Without an optimizer (sampling), its state in the file is simply not needed.
  hcgrad::nn::copy_into(run.file, destinations, file, /*allow_extra=*/optimizer == nullptr);
}

}  // namespace tinylm
