// tinylm end to end on a small synthetic text: exact resume, divergence handling, checkpoint refusals.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "helpers.h"
#include "run_checkpoint.h"
#include "run_lock.h"
#include "trainer.h"

using namespace hctest;
namespace fs = std::filesystem;

namespace {

// A scratch directory with a small training text, removed at the end of the test.
struct Scratch {
  fs::path dir;
  std::string text_file;
  Scratch() {
    dir = fs::temp_directory_path() / ("hcgrad_tinylm_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(dir);
    fs::create_directories(dir);
    text_file = (dir / "text.txt").string();
    std::ofstream out(text_file);
    for (int i = 0; i < 300; ++i) out << "line " << i << ": the cat sat on the mat, " << (i * 7919 % 1000) << "\n";
  }
  ~Scratch() { fs::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

tinylm::TrainOptions small_run(const Scratch& scratch, const std::string& out) {
  tinylm::TrainOptions o;
  o.data = scratch.text_file;
  o.steps = 12;
  o.model.layers = 1;
  o.model.dim = 16;
  o.model.heads = 2;
  o.model.context = 16;
  o.model.dropout = 0.1;  // so the dropout generator's position must be restored too
  o.batch = 4;
  o.warmup = 2;
  o.eval_every = 4;
  o.eval_batches = 2;
  o.out = scratch.path(out);
  o.sample_tokens = 10;
  return o;
}

// small_run stopped at step 4 as if interrupted: a run directory with a checkpoint to resume, edit or lock.
void train_until_step_4(const Scratch& scratch, const std::string& out) {
  tinylm::TrainOptions o = small_run(scratch, out);
  o.stop_at = 4;
  tinylm::train(o);
}

}  // namespace

TEST_CASE("tinylm: a run resumed from its checkpoint continues exactly like an uninterrupted one") {
  Scratch scratch;
  tinylm::TrainResult whole = tinylm::train(small_run(scratch, "whole"));
  REQUIRE(whole.train_losses.size() == 12);

  tinylm::TrainOptions first = small_run(scratch, "split");
  first.stop_at = 6;  // interrupted after step 6 (not an evaluation step)
  tinylm::TrainResult head = tinylm::train(first);
  REQUIRE(head.train_losses.size() == 6);
  tinylm::TrainOptions second;
  second.resume = scratch.path("split");  // everything else comes from the checkpoint
  tinylm::TrainResult tail = tinylm::train(second);
  CHECK(tail.first_step == 6);
  REQUIRE(tail.train_losses.size() == 6);
  for (size_t i = 0; i < 6; ++i) {
    CHECK(head.train_losses[i] == whole.train_losses[i]);
    CHECK(tail.train_losses[i] == whole.train_losses[6 + i]);  // bit for bit, not approximately
  }
  CHECK(tail.final_val_loss == whole.final_val_loss);
  CHECK(tail.sample == whole.sample);
  // The final weights and optimizer moments are identical too.
  auto a = nn::load_safetensors(scratch.path("whole/checkpoint.safetensors"));
  auto b = nn::load_safetensors(scratch.path("split/checkpoint.safetensors"));
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    CHECK(a.tensors[i].first == b.tensors[i].first);
    CHECK(max_abs_diff(values(a.tensors[i].second), values(b.tensors[i].second)) == 0);
  }
  // metrics.csv of the resumed run has one row per evaluation: 4, 6 (the interruption), 8, 12.
  std::ifstream metrics(scratch.path("split/metrics.csv"));
  std::string line;
  std::vector<std::string> steps;
  std::getline(metrics, line);
  CHECK(line == "step,train_loss,val_loss,lr,tokens_per_s");
  while (std::getline(metrics, line)) steps.push_back(line.substr(0, line.find(',')));
  CHECK(steps == std::vector<std::string>{"4", "6", "8", "12"});
}

TEST_CASE("tinylm: a resumed run refuses changed settings or data, and an existing run is never overwritten") {
  Scratch scratch;
  train_until_step_4(scratch, "run");
  const std::string checkpoint = scratch.path("run/checkpoint.safetensors");
  std::ifstream in(checkpoint, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(in)), {});

  tinylm::TrainOptions again = small_run(scratch, "run");  // same --out, no --resume
  CHECK_THROWS_WITH_AS(tinylm::train(again), doctest::Contains("already holds a checkpoint"), Error);
  tinylm::TrainOptions changed;
  changed.resume = scratch.path("run");
  changed.lr = 0.5;
  changed.given = {"lr"};
  CHECK_THROWS_WITH_AS(tinylm::train(changed), doctest::Contains("--lr 0.5 differs from the checkpoint's 0.003"), Error);
  tinylm::TrainOptions other_data;
  other_data.resume = scratch.path("run");
  other_data.data = scratch.path("other.txt");
  other_data.given = {"data"};
  std::ofstream(other_data.data) << std::string(5000, 'x');
  CHECK_THROWS_WITH_AS(tinylm::train(other_data), doctest::Contains("is not the text the checkpoint was trained on"),
                       Error);

  // Resuming into another run's directory would overwrite that run: refused.
  train_until_step_4(scratch, "other_run");
  tinylm::TrainOptions into_other;
  into_other.resume = scratch.path("run");
  into_other.out = scratch.path("other_run");
  into_other.given = {"out"};
  CHECK_THROWS_WITH_AS(tinylm::train(into_other), doctest::Contains("other_run already holds a checkpoint"), Error);

  std::ifstream after_in(checkpoint, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(after_in)), {});
  CHECK(before == after);
}

TEST_CASE("tinylm: a diverging run stops with the step number and keeps the last good checkpoint") {
  Scratch scratch;
  train_until_step_4(scratch, "run");
  // The same run continued with a learning rate of 1e30 (its checkpoint re-saved with that setting): one AdamW
  // step moves every weight by ~1e30, and the next forward overflows float32.
  auto run = tinylm::read_run(scratch.path("run/checkpoint.safetensors"));
  run.file.metadata["train.lr"] = "1e30";
  nn::save_safetensors(scratch.path("run/checkpoint.safetensors"), run.file.tensors, run.file.metadata);
  tinylm::TrainOptions resume;
  resume.resume = scratch.path("run");
  // The host reads the losses only every few steps (here at step 8, before the evaluation): the step named is
  // still the first bad one, and the checkpoint is not rewritten.
  CHECK_THROWS_WITH_AS(tinylm::train(resume),
                       doctest::Contains("at step 6; training stopped, the last good checkpoint (step 4) is kept"),
                       Error);
  run = tinylm::read_run(scratch.path("run/checkpoint.safetensors"));
  CHECK(run.state.step == 4);
  for (const auto& [name, t] : run.file.tensors)
    for (double v : values(t)) REQUIRE(std::isfinite(v));
}

TEST_CASE("tinylm: sampling refuses a checkpoint that is not a tinylm run or does not match its config") {
  Scratch scratch;
  nn::save_safetensors(scratch.path("plain.safetensors"), {{"w", ones({2})}});
  tinylm::SampleOptions o;
  o.checkpoint = scratch.path("plain.safetensors");
  CHECK_THROWS_WITH_AS(tinylm::sample(o), doctest::Contains("not a tinylm checkpoint"), Error);

  train_until_step_4(scratch, "run");
  auto run = tinylm::read_run(scratch.path("run/checkpoint.safetensors"));
  // The same tensors under metadata that claims a wider model: refused, naming a tensor and both shapes.
  run.file.metadata["model.dim"] = "32";
  run.file.metadata.erase("hcgrad_checksum");
  nn::save_safetensors(scratch.path("wrong.safetensors"), run.file.tensors, run.file.metadata);
  o.checkpoint = scratch.path("wrong.safetensors");
  CHECK_THROWS_WITH_AS(tinylm::sample(o), doctest::Contains("wte.weight"), Error);
  o.checkpoint = scratch.path("missing.safetensors");
  CHECK_THROWS_AS(tinylm::sample(o), Error);
}

namespace {

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream cells_of(line);
    for (std::string cell; std::getline(cells_of, cell, ',');) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace

TEST_CASE("tinylm: --diagnostics records gains and cosines per evaluation, then maps and a Sinkhorn sweep") {
  Scratch scratch;
  tinylm::TrainOptions o = small_run(scratch, "diag");
  o.model.connection = "mhc-paper";
  o.model.streams = 2;
  o.model.dropout = 0;
  o.diagnostics = true;
  tinylm::train(o);
  const std::string dir = scratch.path("diag/diagnostics/");
  const auto gain = read_csv(dir + "gain.csv");
  REQUIRE(gain.size() == 1 + 3 * 2 * 2);  // header + (evaluations 4, 8, 12) x (2 sub-layers) x (single, composite)
  CHECK(gain[0] == std::vector<std::string>{"step", "layer", "kind", "max_abs_row_sum", "max_abs_col_sum", "min_col_sum"});
  for (size_t r = 1; r < gain.size(); ++r) {
    // mHC: doubly stochastic, so every gain is 1; the paper's rows are normalised last, so they are exact.
    CHECK(std::abs(std::stod(gain[r][3]) - 1) < 1e-5);
    CHECK(std::abs(std::stod(gain[r][4]) - 1) < 1e-2);
  }
  CHECK(gain.back()[0] == "12");
  const auto cosine = read_csv(dir + "cosine.csv");
  CHECK(cosine.size() == 1 + 3);  // one pair of consecutive sub-layers per evaluation
  CHECK(std::stod(cosine[1][2]) <= std::stod(cosine[1][3]));  // p5 <= median
  CHECK(read_csv(dir + "maps.csv").size() == 1 + 2 * 2 * 4);  // (single, composite) x 2 layers x 2 x 2 entries
  CHECK(read_csv(dir + "unfolded.csv").size() == 1 + 6);     // the lower triangle of a 3 x 3 matrix
  const auto sweep = read_csv(dir + "sinkhorn.csv");
  REQUIRE(sweep.size() == 1 + 6);
  CHECK(sweep[1][0] == "1");
  CHECK(std::stod(sweep[1][1]) < 1e-5);                       // rows: exact after one iteration
  CHECK(std::stod(sweep[6][2]) <= std::stod(sweep[1][2]));    // columns: closer to 1 after 50 than after 1

  // A plain residual model has no maps, only the cosine similarities.
  tinylm::TrainOptions plain = small_run(scratch, "plain");
  plain.diagnostics = true;
  tinylm::train(plain);
  CHECK(read_csv(scratch.path("plain/diagnostics/gain.csv")).size() == 1);
  CHECK(read_csv(scratch.path("plain/diagnostics/cosine.csv")).size() == 1 + 3);
  CHECK_FALSE(fs::exists(scratch.path("plain/diagnostics/maps.csv")));
}

namespace {

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace

TEST_CASE("tinylm: a validation loss or weights that are not finite stop the run before the checkpoint") {
  Scratch scratch;
  tinylm::TrainOptions o = small_run(scratch, "run");
  o.lr = 1e39;  // inf in float32: the first update makes every weight NaN or Inf, the training loss stays finite
  o.warmup = 0;
  o.eval_every = 1;
  CHECK_THROWS_WITH_AS(tinylm::train(o), doctest::Contains("no checkpoint had been written yet"), Error);
  CHECK_FALSE(fs::exists(scratch.path("run/checkpoint.safetensors")));

  // save_run itself refuses NaN or Inf, naming the tensor.
  tinylm::TrainOptions fine = small_run(scratch, "fine");
  nn::GPTConfig config = fine.model;
  config.vocab_size = nn::ByteTokenizer::vocab_size;
  nn::GPT model(config, 1);
  {
    autograd::NoGradGuard no_grad;
    Tensor(model.named_parameters().back().second).fill_(std::nan(""));
  }
  fs::create_directories(scratch.path("fine"));
  CHECK_THROWS_WITH_AS(tinylm::save_run(scratch.path("fine/checkpoint.safetensors"), model, nullptr,
                                        {config, {}, 3, 0, 0}),
                       doctest::Contains(("not saving step 3: tensor '" + model.named_parameters().back().first +
                                          "' holds NaN or Inf").c_str()),
                       Error);
  CHECK_FALSE(fs::exists(scratch.path("fine/checkpoint.safetensors")));
}

TEST_CASE("tinylm: sample and --resume refuse a checkpoint whose weights are not finite") {
  Scratch scratch;
  train_until_step_4(scratch, "run");
  // The run's checkpoint with one weight set to Inf, re-saved with a valid checksum (as another tool could).
  auto run = tinylm::read_run(scratch.path("run/checkpoint.safetensors"));
  nn::NamedTensors tensors = run.file.tensors;
  tensors.front().second = full(tensors.front().second.shape(), INFINITY);
  nn::save_safetensors(scratch.path("inf.safetensors"), tensors, run.file.metadata);

  tinylm::SampleOptions sample;
  sample.checkpoint = scratch.path("inf.safetensors");
  CHECK_THROWS_WITH_AS(tinylm::sample(sample),
                       doctest::Contains(("tensor '" + tensors.front().first + "' holds NaN or Inf").c_str()), Error);
  tinylm::TrainOptions resume;
  resume.resume = scratch.path("inf.safetensors");
  resume.out = scratch.path("resumed");
  resume.given = {"out"};
  CHECK_THROWS_WITH_AS(tinylm::train(resume), doctest::Contains("a diverged model cannot be sampled from or resumed"),
                       Error);
}

TEST_CASE("tinylm: a run directory has one writer, and a second is refused with the holder's PID") {
  Scratch scratch;
  std::optional<tinylm::RunLock> holder;
  holder.emplace(scratch.path("run"));
  // flock locks belong to an open file description, so a second lock in this process conflicts like another
  // process would.
  CHECK_THROWS_WITH_AS(tinylm::RunLock(scratch.path("run")),
                       doctest::Contains(("is in use by another tinylm run (pid " + std::to_string(::getpid()) + ")").c_str()),
                       Error);
  CHECK_THROWS_WITH_AS(tinylm::train(small_run(scratch, "run")), doctest::Contains("is in use by another tinylm run"),
                       Error);
  CHECK_FALSE(fs::exists(scratch.path("run/metrics.csv")));
  holder.reset();  // released: the next run proceeds
  train_until_step_4(scratch, "run");
  CHECK(fs::exists(scratch.path("run/checkpoint.safetensors")));
}

TEST_CASE("tinylm: taking the lock removes temporary files of dead writers, and keeps those of live ones") {
  Scratch scratch;
  train_until_step_4(scratch, "run");
  // PID 2^22 + 1 is above Linux's largest PID, so no process has it; PID 1 is always alive.
  const std::string dead = scratch.path("run/checkpoint.safetensors.tmp-4194305-0");
  const std::string live = scratch.path("run/checkpoint.safetensors.tmp-1-0");
  std::ofstream(dead) << "half a checkpoint";
  std::ofstream(live) << "someone else's";
  tinylm::TrainOptions resume;
  resume.resume = scratch.path("run");
  resume.stop_at = 8;
  resume.given = {"stop-at"};
  tinylm::train(resume);
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(live));
}

TEST_CASE("tinylm: a resume is known by its text, not its path, and fails before touching metrics.csv") {
  Scratch scratch;
  train_until_step_4(scratch, "run");
  // The same text at another path: accepted (the fingerprint decides).
  const std::string copy = scratch.path("copy.txt");
  fs::copy_file(scratch.text_file, copy);
  tinylm::TrainOptions moved;
  moved.resume = scratch.path("run");
  moved.data = copy;
  moved.stop_at = 8;
  moved.given = {"data", "stop-at"};
  CHECK(tinylm::train(moved).first_step == 4);
  // The recorded path is absolute: a resume from another working directory finds the text without --data.
  CHECK(fs::path(tinylm::read_run(scratch.path("run/checkpoint.safetensors")).state.settings.at("train.data"))
            .is_absolute());

  // A checkpoint whose step is negative (metadata edited, checksum recomputed) is refused, and metrics.csv,
  // which a resume rewrites, is left as it was.
  const std::string metrics = file_text(scratch.path("run/metrics.csv"));
  auto run = tinylm::read_run(scratch.path("run/checkpoint.safetensors"));
  run.file.metadata["state.step"] = "-5";
  nn::save_safetensors(scratch.path("run/checkpoint.safetensors"), run.file.tensors, run.file.metadata);
  tinylm::TrainOptions bad;
  bad.resume = scratch.path("run");
  CHECK_THROWS_WITH_AS(tinylm::train(bad), doctest::Contains("'state.step' is -5"), Error);
  CHECK(file_text(scratch.path("run/metrics.csv")) == metrics);
}

TEST_CASE("tinylm: --data must be a regular file within --max-data-mb") {
  Scratch scratch;
  tinylm::TrainOptions o = small_run(scratch, "run");
  o.data = "/dev/zero";
  CHECK_THROWS_WITH_AS(tinylm::train(o), doctest::Contains("'/dev/zero' is not a regular file"), Error);
  o.data = scratch.path("big.txt");
  std::ofstream(o.data) << std::string((1 << 20) + 1, 'a');
  o.max_data_mb = 1;
  CHECK_THROWS_WITH_AS(tinylm::train(o), doctest::Contains("is 1048577 bytes, more than --max-data-mb 1 allows"),
                       Error);
  o.data = scratch.path("run");  // a directory
  fs::create_directories(o.data);
  CHECK_THROWS_WITH_AS(tinylm::train(o), doctest::Contains("is a directory"), Error);
  CHECK_THROWS_WITH_AS(nn::read_text_file(scratch.text_file, 100), doctest::Contains("more than the limit of 100 bytes"),
                       Error);
}
