// tinylm's command line (cli.h).
#include "cli.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace tinylm {

namespace {

// CLI11 reads integers with strtoll, which clamps 99999999999999999999 to INT64_MAX and reads "010" as
// octal; this check runs first and lets through decimal numbers that fit the flag's type only.
template <class T>
CLI::Validator whole_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        T value{};
        const char* first = text.data();
        const char* last = first + text.size();
        auto [end, ec] = std::from_chars(first, last, value);
        const bool negative_unsigned = std::is_unsigned_v<T> && !text.empty() && text[0] == '-';
        if (ec == std::errc::result_out_of_range || negative_unsigned)
          return "'" + text + "' is out of range (" + std::to_string(std::numeric_limits<T>::min()) + " to " +
                 std::to_string(std::numeric_limits<T>::max()) + ")";
        if (ec != std::errc() || end != last) return "'" + text + "' is not a whole number";
        return "";
      },
      "INT");
}

// add_option, with the whole-number check on integer fields.
template <class T>
CLI::Option* option(CLI::App* command, const std::string& name, T& field, const std::string& description) {
  CLI::Option* added = command->add_option(name, field, description);
  if constexpr (std::is_integral_v<T>) added->check(whole_number<T>());
  return added;
}

// Levenshtein distance: how many single-character edits turn a into b.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known name closest to `word`, if it is close enough to be a typo (at most 2 edits, and fewer than
// half the word's letters); empty otherwise.
std::string closest(const std::string& word, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = std::min<size_t>(3, (word.size() + 1) / 2);
  for (const std::string& name : known) {
    const size_t d = edit_distance(word, name);
    if (d < best_distance) best = name, best_distance = d;
  }
  return best;
}

void add_train_flags(CLI::App* cmd, TrainOptions& train) {
  option(cmd, "--data", train.data, "training text file (default: the fortunes corpus)");
  option(cmd, "--max-data-mb", train.max_data_mb, "refuse a --data file larger than this (MiB)")->capture_default_str();
  option(cmd, "--steps", train.steps, "optimizer steps")->capture_default_str();
  option(cmd, "--layers", train.model.layers, "transformer blocks")->capture_default_str();
  option(cmd, "--dim", train.model.dim, "model width")->capture_default_str();
  option(cmd, "--heads", train.model.heads, "attention heads (must divide --dim)")->capture_default_str();
  option(cmd, "--ctx", train.model.context, "context length in bytes")->capture_default_str();
  option(cmd, "--connection", train.model.connection,
         "residual | hc (hyper-connections) | frac (Frac-Connections, as the reference library) | frac-paper (as "
         "the Frac paper writes them) | mhc (manifold-constrained, as the reference library) | mhc-paper (mHC as "
         "the paper writes it) | mhc-identity, mhc-paper-identity (the same, starting as a pre-norm residual)")
      ->capture_default_str();
  option(cmd, "--streams", train.model.streams,
         "residual streams (default: 4 for hc and the mhc variants; 1 for residual, frac and frac-paper)");
  option(cmd, "--fracs", train.model.fracs, "fractions of the width (default: 4 for frac and frac-paper, else 1)");
  option(cmd, "--batch", train.batch, "sequences per step")->capture_default_str();
  option(cmd, "--lr", train.lr, "peak learning rate")->capture_default_str();
  option(cmd, "--warmup", train.warmup, "warm-up steps")->capture_default_str();
  option(cmd, "--weight-decay", train.weight_decay, "AdamW weight decay")->capture_default_str();
  option(cmd, "--clip", train.clip, "gradient-norm clip, 0 for none")->capture_default_str();
  option(cmd, "--dropout", train.model.dropout, "dropout probability")->capture_default_str();
  option(cmd, "--seed", train.seed, "random seed")->capture_default_str();
  option(cmd, "--threads", train.threads, "CPU threads (0: all cores)")->capture_default_str();
  option(cmd, "--device", train.device, "cpu, cuda or cuda:N (a GPU build and a GPU)")->capture_default_str();
  option(cmd, "--eval-every", train.eval_every, "steps between evaluations and checkpoints")->capture_default_str();
  option(cmd, "--out", train.out, "run directory (default: a new runs/tinylm-<date>-<time>)");
  option(cmd, "--resume", train.resume, "continue the run in this directory (or checkpoint file)");
  option(cmd, "--stop-at", train.stop_at, "stop after this step, as if interrupted");
  option(cmd, "--sample-tokens", train.sample_tokens, "bytes to generate at the end")->capture_default_str();
  cmd->add_flag("--diagnostics", train.diagnostics,
                "record the stream diagnostics (gains, maps, cosine similarity) into OUT/diagnostics, with plots");
  cmd->add_flag("!--no-overlap", train.overlap,
                "under mpirun: average the gradients after backward instead of during it (for debugging)");
}

void add_sample_flags(CLI::App* cmd, SampleOptions& sample) {
  option(cmd, "--checkpoint", sample.checkpoint, "checkpoint file or run directory")->required();
  option(cmd, "--prompt", sample.prompt, "text to continue")->capture_default_str();
  option(cmd, "--tokens", sample.tokens, "bytes to generate")->capture_default_str();
  option(cmd, "--temperature", sample.temperature, "0: greedy")->capture_default_str();
  option(cmd, "--top-k", sample.top_k, "sample among the k likeliest (0: all)")->capture_default_str();
  option(cmd, "--seed", sample.seed, "random seed")->capture_default_str();
}

void add_compare_flags(CLI::App* cmd, CompareOptions& compare) {
  option(cmd, "--connections", compare.connections,
         "comma-separated, of: residual,hc,frac,frac-paper,mhc,mhc-identity,mhc-paper,mhc-paper-identity")
      ->delimiter(',')
      ->capture_default_str();
  option(cmd, "--seeds", compare.seeds, "runs per connection (seeds 1..N)")->capture_default_str();
  option(cmd, "--steps", compare.steps, "optimizer steps per run")->capture_default_str();
  option(cmd, "--streams", compare.streams, "streams of hc and the mhc variants, fractions of frac and frac-paper")
      ->capture_default_str();
  option(cmd, "--eval-every", compare.eval_every, "steps between evaluations (0: steps / 10)")->capture_default_str();
  option(cmd, "--threads", compare.threads, "CPU threads per run (0: all cores)")->capture_default_str();
  // The model size, passed to every run.
  option(cmd, "--layers", compare.layers, "transformer blocks (default: train's)");
  option(cmd, "--dim", compare.dim, "model width (default: train's)");
  option(cmd, "--heads", compare.heads, "attention heads (default: train's)");
  option(cmd, "--ctx", compare.context, "context length in bytes (default: train's)");
  option(cmd, "--batch", compare.batch, "sequences per step (default: train's)");
  option(cmd, "--data", compare.data, "training text file (default: the fortunes corpus)");
  option(cmd, "--out", compare.out, "directory for the runs, the summary and the plots")->capture_default_str();
  cmd->add_flag("--diagnostics", compare.diagnostics, "record the stream diagnostics in every run");
}

}  // namespace

std::unique_ptr<CLI::App> make_app(Command& command) {
  auto app = std::make_unique<CLI::App>("tinylm: a tiny byte-level GPT, trained and sampled with hcgrad");
  app->require_subcommand(1);
  command.train_cmd = app->add_subcommand("train", "train a model (default corpus: Debian's fortunes)");
  add_train_flags(command.train_cmd, command.train);
  command.sample_cmd = app->add_subcommand("sample", "generate text from a checkpoint");
  add_sample_flags(command.sample_cmd, command.sample);
  command.compare_cmd =
      app->add_subcommand("compare", "train every connection for several seeds: summary.csv, summary.md, plots");
  add_compare_flags(command.compare_cmd, command.compare);
  return app;
}

void finish_parse(Command& command) {
  TrainOptions& train = command.train;
  for (const CLI::Option* option : command.train_cmd->get_options())
    if (option->count() > 0) train.given.insert(option->get_name(false, true).substr(2));  // "--lr" -> "lr"
  // The connections with several streams get 4 of them unless told otherwise (one stream would be a residual
  // with extra weights); Frac-Connections likewise get 4 fractions of one stream.
  const std::string& connection = train.model.connection;
  if (connection.starts_with("frac")) {
    if (!train.given.count("fracs")) train.model.fracs = 4;
  } else if (connection != "residual" && !train.given.count("streams")) {
    train.model.streams = 4;
  }
}

void suggest_corrections(const CLI::App& app, int argc, const char* const* argv) {
  std::vector<std::string> subcommands;
  const CLI::App* chosen = nullptr;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    subcommands.push_back(sub->get_name());
    if (argc > 1 && sub->get_name() == argv[1]) chosen = sub;
  }
  if (argc > 1 && !chosen && argv[1][0] != '-') {
    const std::string guess = closest(argv[1], subcommands);
    if (!guess.empty()) std::fprintf(stderr, "tinylm: unknown command '%s'; did you mean '%s'?\n", argv[1], guess.c_str());
    return;
  }
  if (!chosen) return;
  std::vector<std::string> flags;
  for (const CLI::Option* option : chosen->get_options()) flags.push_back(option->get_name(false, true));
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || std::find(flags.begin(), flags.end(), arg) != flags.end()) continue;
    const std::string guess = closest(arg.substr(0, arg.find('=')), flags);
    if (!guess.empty()) std::fprintf(stderr, "tinylm: unknown flag '%s'; did you mean '%s'?\n", arg.c_str(), guess.c_str());
  }
}

}  // namespace tinylm
