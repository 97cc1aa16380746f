// tinylm: train a byte-level GPT on text, and sample from it.
//
//   tinylm train  [--data FILE] [--steps N] [--layers L --dim D --heads H --ctx T --batch B]
//                 [--connection residual|hc|frac|mhc|mhc-paper [--streams S] [--fracs F]]
//                 [--lr X --warmup N --weight-decay X --clip X] [--seed S] [--threads N]
//                 [--eval-every N] [--out DIR] [--resume DIR] [--stop-at N]
//   tinylm compare [--connections residual,hc,frac,mhc,mhc-paper] [--seeds 3] [--steps N] [--out DIR]
//                 [--diagnostics] [--streams S] [--threads N] [--layers L --dim D --heads H --ctx T --batch B]
//   tinylm sample --checkpoint FILE|DIR [--prompt STR] [--tokens N] [--temperature X] [--top-k K] [--seed S]
//
// Errors (bad flags, unreadable data, a corrupt checkpoint, a diverging run) print one message and exit
// non-zero. The work itself is in trainer.cpp.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "hcgrad/core/error.h"
#include "compare.h"
#include "trainer.h"

namespace {

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

// After a parse error: "did you mean ...?" for each argument that is a near miss of a subcommand or of a
// flag of the chosen subcommand.
void suggest_corrections(const CLI::App& app, int argc, char** argv) {
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

// The connections with several streams get 4 of them unless told otherwise (one stream would be a residual
// with extra weights); Frac-Connections likewise get 4 fractions of one stream.
void default_streams(tinylm::TrainOptions& train) {
  const std::string& connection = train.model.connection;
  if (connection == "frac") {
    if (!train.given.count("fracs")) train.model.fracs = 4;
  } else if (connection != "residual" && !train.given.count("streams")) {
    train.model.streams = 4;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tinylm: a tiny byte-level GPT, trained and sampled with hcgrad"};
  app.require_subcommand(1);

  tinylm::TrainOptions train;
  CLI::App* train_cmd = app.add_subcommand("train", "train a model (default corpus: Debian's fortunes)");
  train_cmd->add_option("--data", train.data, "training text file (default: the fortunes corpus)");
  train_cmd->add_option("--steps", train.steps, "optimizer steps")->capture_default_str();
  train_cmd->add_option("--layers", train.model.layers, "transformer blocks")->capture_default_str();
  train_cmd->add_option("--dim", train.model.dim, "model width")->capture_default_str();
  train_cmd->add_option("--heads", train.model.heads, "attention heads (must divide --dim)")->capture_default_str();
  train_cmd->add_option("--ctx", train.model.context, "context length in bytes")->capture_default_str();
  train_cmd
      ->add_option("--connection", train.model.connection,
                   "residual | hc (hyper-connections) | frac (Frac-Connections) | mhc (manifold-constrained, as "
                   "the reference library) | mhc-paper (mHC as the paper writes it)")
      ->capture_default_str();
  train_cmd->add_option("--streams", train.model.streams, "residual streams (default: 4 for hc, mhc, mhc-paper; 1 for "
                        "residual and frac)");
  train_cmd->add_option("--fracs", train.model.fracs, "fractions of the width (default: 4 for frac, else 1)");
  train_cmd->add_option("--batch", train.batch, "sequences per step")->capture_default_str();
  train_cmd->add_option("--lr", train.lr, "peak learning rate")->capture_default_str();
  train_cmd->add_option("--warmup", train.warmup, "warm-up steps")->capture_default_str();
  train_cmd->add_option("--weight-decay", train.weight_decay, "AdamW weight decay")->capture_default_str();
  train_cmd->add_option("--clip", train.clip, "gradient-norm clip, 0 for none")->capture_default_str();
  train_cmd->add_option("--dropout", train.model.dropout, "dropout probability")->capture_default_str();
  train_cmd->add_option("--seed", train.seed, "random seed")->capture_default_str();
  train_cmd->add_option("--threads", train.threads, "CPU threads (0: all cores)")->capture_default_str();
  train_cmd->add_option("--device", train.device, "cpu, cuda or cuda:N (a GPU build and a GPU)")->capture_default_str();
  train_cmd->add_option("--eval-every", train.eval_every, "steps between evaluations and checkpoints")
      ->capture_default_str();
  train_cmd->add_option("--out", train.out, "run directory (default: a new runs/tinylm-<date>-<time>)");
  train_cmd->add_option("--resume", train.resume, "continue the run in this directory (or checkpoint file)");
  train_cmd->add_option("--stop-at", train.stop_at, "stop after this step, as if interrupted");
  train_cmd->add_option("--sample-tokens", train.sample_tokens, "bytes to generate at the end")
      ->capture_default_str();
  train_cmd->add_flag("--diagnostics", train.diagnostics,
                      "record the stream diagnostics (gains, maps, cosine similarity) into OUT/diagnostics, with plots");

  tinylm::SampleOptions sample;
  CLI::App* sample_cmd = app.add_subcommand("sample", "generate text from a checkpoint");
  sample_cmd->add_option("--checkpoint", sample.checkpoint, "checkpoint file or run directory")->required();
  sample_cmd->add_option("--prompt", sample.prompt, "text to continue")->capture_default_str();
  sample_cmd->add_option("--tokens", sample.tokens, "bytes to generate")->capture_default_str();
  sample_cmd->add_option("--temperature", sample.temperature, "0: greedy")->capture_default_str();
  sample_cmd->add_option("--top-k", sample.top_k, "sample among the k likeliest (0: all)")->capture_default_str();
  sample_cmd->add_option("--seed", sample.seed, "random seed")->capture_default_str();

  tinylm::CompareOptions compare;
  CLI::App* compare_cmd =
      app.add_subcommand("compare", "train every connection for several seeds: summary.csv, summary.md, plots");
  compare_cmd->add_option("--connections", compare.connections, "comma-separated: residual,hc,frac,mhc,mhc-paper")
      ->delimiter(',')
      ->capture_default_str();
  compare_cmd->add_option("--seeds", compare.seeds, "runs per connection (seeds 1..N)")->capture_default_str();
  compare_cmd->add_option("--steps", compare.steps, "optimizer steps per run")->capture_default_str();
  compare_cmd->add_option("--streams", compare.streams, "streams of hc / mhc / mhc-paper, fractions of frac")
      ->capture_default_str();
  compare_cmd->add_option("--eval-every", compare.eval_every, "steps between evaluations (0: steps / 10)")
      ->capture_default_str();
  compare_cmd->add_option("--threads", compare.threads, "CPU threads per run (0: all cores)")->capture_default_str();
  // The model size, passed to every run.
  compare_cmd->add_option("--layers", compare.layers, "transformer blocks (default: train's)");
  compare_cmd->add_option("--dim", compare.dim, "model width (default: train's)");
  compare_cmd->add_option("--heads", compare.heads, "attention heads (default: train's)");
  compare_cmd->add_option("--ctx", compare.context, "context length in bytes (default: train's)");
  compare_cmd->add_option("--batch", compare.batch, "sequences per step (default: train's)");
  compare_cmd->add_option("--data", compare.data, "training text file (default: the fortunes corpus)");
  compare_cmd->add_option("--out", compare.out, "directory for the runs, the summary and the plots")
      ->capture_default_str();
  compare_cmd->add_flag("--diagnostics", compare.diagnostics, "record the stream diagnostics in every run");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    if (status != 0) suggest_corrections(app, argc, argv);
    return status;
  }

  try {
    if (*train_cmd) {
      for (const CLI::Option* option : train_cmd->get_options())
        if (option->count() > 0) train.given.insert(option->get_name(false, true).substr(2));  // "--lr" -> "lr"
      default_streams(train);
      tinylm::train(train);
    } else if (*compare_cmd) {
      tinylm::compare(compare);
    } else {
      std::printf("%s\n", tinylm::sample(sample).c_str());
    }
  } catch (const hcgrad::Error& e) {
    std::fprintf(stderr, "tinylm: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinylm: unexpected error: %s\n", e.what());
    return 1;
  }
  return 0;
}
