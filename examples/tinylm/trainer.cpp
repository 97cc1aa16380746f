// tinylm training and sampling. train() reads top to bottom:
//   1. data   2. model and optimizer (fresh, or restored from a checkpoint)   3. the training loop:
//   batch -> forward -> loss -> backward -> clip -> AdamW step, with evaluation, metrics and checkpoints
//   4. the final validation loss and a sample.
#include "trainer.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "hcgrad/core/fnv1a.h"
#include "diagnostics.h"
#include "hcgrad/hcgrad.h"
#include "progress.h"
#include "step_csv.h"
#include "run_checkpoint.h"
#include "run_lock.h"

namespace tinylm {

using namespace hcgrad;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// FNV-1a, 64 bit: a fingerprint of the training text, so a resumed run can tell it is given the same data.
std::string fingerprint(std::string_view text) {
  Fnv1a64 hash;
  hash.update(text);
  char buffer[20];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(hash.digest()));
  return buffer;
}

// The settings a checkpoint records and a resumed run must keep, as text: flag name -> value.
std::map<std::string, std::string> settings_of(const TrainOptions& o, const std::string& data_fingerprint) {
  // The data file's absolute path, so that a resumed run started from another directory finds it too.
  return {{"train.data", o.data.empty() ? "default" : fs::absolute(o.data).lexically_normal().string()},
          {"train.data_fingerprint", data_fingerprint},
          {"train.steps", std::to_string(o.steps)},
          {"train.batch", std::to_string(o.batch)},
          {"train.lr", format_number(o.lr)},
          {"train.warmup", std::to_string(o.warmup)},
          {"train.weight_decay", format_number(o.weight_decay)},
          {"train.clip", format_number(o.clip)},
          {"train.seed", std::to_string(o.seed)},
          {"train.eval_every", std::to_string(o.eval_every)},
          {"train.eval_batches", std::to_string(o.eval_batches)},
          {"train.sample_tokens", std::to_string(o.sample_tokens)},
          {"train.ranks", std::to_string(nn::distributed::world_size())}};
}


// The mean loss over the validation batches. Under mpirun rank r evaluates batches r, r + N, ... and the
// sum is reduced over the ranks.
double evaluate(nn::GPT& model, const std::vector<nn::Batch>& batches, Device device) {
  autograd::NoGradGuard no_grad;
  model.eval();
  const size_t ranks = nn::distributed::world_size();
  Tensor total = zeros({}, {.dtype = DType::Float64, .device = device});  // summed on the device, read once
  for (size_t i = nn::distributed::rank(); i < batches.size(); i += ranks)
    total = total + model.loss(batches[i].inputs.to(device), batches[i].targets.to(device)).to(DType::Float64);
  model.train();
  const Tensor sum = total.to(Device::cpu());
  nn::distributed::all_reduce(sum);
  return sum.item() / static_cast<double>(batches.size());
}

// A new run directory, created here so that two runs started in the same second cannot both take it:
// runs/tinylm-20261123-141500 (then -2, -3, ...).
std::string fresh_run_directory() {
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  const std::string base = std::string("runs/tinylm-") + stamp;
  std::error_code ec;
  fs::create_directories("runs", ec);
  HC_CHECK(!ec, Error, "train: cannot create the directory 'runs': ", ec.message());
  for (int i = 1;; ++i) {
    const std::string dir = i == 1 ? base : base + "-" + std::to_string(i);
    if (fs::create_directory(dir, ec)) return dir;  // false (and no error) when it exists already
    HC_CHECK(!ec, Error, "train: cannot create the run directory '", dir, "': ", ec.message());
  }
}

// --device's GPU. Under mpirun every rank takes a GPU of its own: --device cuda means cuda:<the rank's index on
// its machine>.
Device rank_device(const std::string& name) {
  const Device device = parse_device(name);
  if (device.is_cpu() || nn::distributed::world_size() == 1) return device;
  HC_CHECK(name == "cuda", Error, "--device ", name, ": under mpirun every rank takes a GPU of its own; pass "
           "--device cuda (the ranks on a machine use cuda:0, cuda:1, ...)");
  const int local = nn::distributed::local_rank();
  HC_CHECK(local < cuda::device_count(), DeviceError, "--device cuda: rank ", nn::distributed::rank(), " is rank ",
           local, " on its machine, which has ", cuda::device_count(), " GPU(s); start at most one rank per GPU");
  return Device::cuda(local);
}

// ---- train(), step by step ----

// The options a run trains with: a resumed run's settings from its checkpoint, then every value checked.
TrainOptions resolved_options(const TrainOptions& requested, const std::optional<LoadedRun>& resumed,
                              const std::string& resume_file) {
  TrainOptions o = requested;
  HC_CHECK(!o.given.count("data") || !o.data.empty(), Error, "train: --data is empty; name a text file, or leave "
           "the flag out for the default corpus");
  HC_CHECK(!o.given.count("out") || !o.out.empty(), Error, "train: --out is empty; name a directory, or leave the "
           "flag out for a new one under runs/");
  HC_CHECK(!o.given.count("resume") || !o.resume.empty(), Error, "train: --resume is empty; name a run directory "
           "or a checkpoint file");
  if (resumed) {
    o = resumed_options(o, resumed->state);
    if (!o.given.count("out")) o.out = fs::path(resume_file).parent_path().string();
  }
  o = checked_options(o);
  HC_CHECK(!resumed || resumed->state.step < o.steps, Error, "train: the checkpoint is already at step ",
           resumed->state.step, " of ", o.steps, "; pass a larger --steps to train further");
  return o;
}

// The text, split 90% / 10%, and the fixed validation batches. A resumed run must see the same text.
struct RunData {
  std::string source;       // "Debian fortunes (...)" or the file name
  std::string fingerprint;  // of the whole text, kept in the checkpoint
  nn::TextDataset data;
  std::vector<nn::Batch> val_batches;
};

// --data's text: a regular file of at most --max-data-mb.
std::string read_training_text(const TrainOptions& o) {
  const uint64_t limit = static_cast<uint64_t>(o.max_data_mb) << 20;
  std::error_code ec;
  const uintmax_t size = fs::file_size(o.data, ec);  // an error here is reported by read_text_file
  HC_CHECK(ec || size <= limit, Error, "train: --data '", o.data, "' is ", size, " bytes, more than --max-data-mb ",
           o.max_data_mb, " allows; raise it if this text is meant");
  return nn::read_text_file(o.data, limit);
}

RunData load_data(const TrainOptions& o, const std::optional<LoadedRun>& resumed) {
  const nn::Corpus corpus = o.data.empty() ? nn::load_default_corpus() : nn::Corpus{read_training_text(o), o.data};
  const std::string data_fingerprint = fingerprint(corpus.text);
  if (resumed) {
    auto it = resumed->state.settings.find("train.data_fingerprint");
    HC_CHECK(it != resumed->state.settings.end(), Error, "--resume: the checkpoint lacks the setting train.data_fingerprint");
    const std::string& saved = it->second;
    HC_CHECK(saved == data_fingerprint, Error, "--resume: the training text (", corpus.description,
             ") is not the text the checkpoint was trained on (fingerprint ", data_fingerprint, " vs ", saved, ")");
  }
  nn::TextDataset data = nn::TextDataset::from_text(corpus.text, 0.1);
  data.check_fits(o.model.context);
  std::vector<nn::Batch> val_batches = nn::eval_batches(data.val(), o.batch, o.model.context, o.eval_batches);
  return {corpus.description, data_fingerprint, std::move(data), std::move(val_batches)};
}

// AdamW with weight decay on the weight matrices only (nn/gpt.h, decay_split); built after the model has
// moved to its device, so that its state buffers are created next to the weights.
nn::AdamW make_optimizer(nn::GPT& model, const TrainOptions& o) {
  nn::GPT::DecaySplit split = model.decay_split();
  return nn::AdamW({{.params = split.decay, .weight_decay = o.weight_decay},
                    {.params = split.no_decay, .weight_decay = 0.0}},
                   {.lr = o.lr, .beta1 = 0.9, .beta2 = 0.95, .weight_decay = o.weight_decay});
}

// The directory a resumed run writes to: --out, else the checkpoint's own directory.
std::string resumed_run_directory(const TrainOptions& requested, const std::string& resume_file) {
  std::error_code ec;
  HC_CHECK(fs::exists(resume_file, ec), Error, "--resume: no checkpoint at '", resume_file, "'");
  if (!requested.out.empty()) return requested.out;
  const std::string parent = fs::path(resume_file).parent_path().string();
  return parent.empty() ? "." : parent;
}

// The run directory, locked for this run (run_lock.h; a resumed run has locked it already), and its
// checkpoint file. A run continues in place, or starts in a directory of its own: another run's checkpoint
// is never overwritten.
std::string open_run_directory(TrainOptions& o, std::optional<RunLock>& lock, bool resumed,
                               const std::string& resume_file) {
  if (o.out.empty()) o.out = fresh_run_directory();
  if (!lock) lock.emplace(o.out);
  for (const std::string& file : lock->removed())
    std::printf("tinylm: removed %s, left by an interrupted save\n", file.c_str());
  const std::string checkpoint_file = (fs::path(o.out) / kCheckpointFile).string();
  std::error_code ec;
  const bool exists = fs::exists(checkpoint_file, ec);
  const bool continues_in_place = resumed && exists && fs::equivalent(checkpoint_file, resume_file, ec);
  HC_CHECK(continues_in_place || !exists, Error, "train: ", o.out, " already holds a checkpoint; continue it with "
           "--resume ", o.out, " or choose another --out");
  return checkpoint_file;
}

void print_banner(const TrainOptions& o, const nn::GPT& model, Device device, const RunData& run) {
  std::printf("tinylm: %s, %.2fM parameters, on %s\n", o.model.describe().c_str(), model.num_parameters() / 1e6,
              device.is_cpu() ? "the CPU" : cuda::device_name(device.index).c_str());
  std::printf("tinylm: data %s: %zu training bytes, %zu validation bytes\n", run.source.c_str(),
              run.data.train().size(), run.data.val().size());
  std::printf("tinylm: %lld steps of %lld x %lld tokens, AdamW lr %g (warm-up %lld, cosine to %g), %d threads -> %s\n",
              (long long)o.steps, (long long)o.batch, (long long)o.model.context, o.lr, (long long)o.warmup,
              o.lr / 10, num_threads(), o.out.c_str());
}

// What a step leaves on its device: the loss and the gradient norm (undefined without clipping), 0-d tensors
// read by the host only every few steps (read_steps): reading them at once would make every step wait for the GPU.
struct QueuedStep {
  int64_t step = 0;  // 0-based
  double lr = 0;
  Tensor loss, grad_norm;
};

// One optimizer step on one batch: forward, backward, clip, update, all queued on the device.
// Under mpirun each rank holds its equal share of the global batch: the gradients are averaged over the ranks
// during backward (in buckets), the global batch's mean, before clipping, so every rank takes the same step.
QueuedStep train_step(nn::GPT& model, nn::AdamW& optimizer, const std::vector<Tensor>& parameters,
                      nn::distributed::GradientAverager& averager, const nn::Batch& batch, Device device, double clip,
                      int64_t step, double lr) {
  Tensor loss = model.loss(batch.inputs.to(device), batch.targets.to(device));
  optimizer.zero_grad();
  loss.backward();
  averager.finish();
  Tensor grad_norm = clip > 0 ? nn::clip_grad_norm_(parameters, clip) : Tensor();
  optimizer.step();
  return {step, lr, loss.detach(), grad_norm};
}

// The queued steps' losses (averaged over the ranks: one all-reduce for them all), read in one wait for the
// device. Throws, saying which checkpoint is kept, at the first step whose loss or gradient norm is not
// finite: the steps after it have run on broken weights, but nothing of them is saved, since the trainer
// reads its queue before every evaluation and checkpoint.
std::vector<double> read_steps(const std::vector<QueuedStep>& queued, const std::string& kept) {
  std::vector<double> losses;
  for (const QueuedStep& s : queued) losses.push_back(s.loss.item());
  const Tensor global = from_vector(losses, {static_cast<int64_t>(losses.size())});
  nn::distributed::all_reduce(global);
  losses = global.to_vector<double>();
  for (size_t i = 0; i < queued.size(); ++i) {
    losses[i] /= nn::distributed::world_size();
    const double grad_norm = queued[i].grad_norm.defined() ? queued[i].grad_norm.item() : 0.0;
    const bool loss_ok = std::isfinite(losses[i]);
    HC_CHECK(loss_ok && std::isfinite(grad_norm), Error, "train: ", loss_ok ? "the gradient norm" : "the loss", " is ",
             loss_ok ? grad_norm : losses[i], " at step ", queued[i].step + 1, "; training stopped, ", kept,
             ". Try a lower --lr.");
  }
  return losses;
}

// How often the host reads the queued steps' losses: a wait for the GPU every 10 steps costs little, and the
// progress line still moves.
constexpr int64_t kReadEvery = 10;

// The losses and time since the last evaluation.
struct Window {
  double seconds = 0, loss = 0;
  int64_t steps = 0;
};

}  // namespace

TrainOptions resumed_options(TrainOptions o, const RunState& saved) {
  const auto mismatch = [&](const std::string& flag, const std::string& given, const std::string& saved_value) {
    throw Error(detail::concat("--resume: --", flag, " ", given, " differs from the checkpoint's ", saved_value,
                               "; a resumed run keeps its model, data and optimizer settings"));
  };
  auto keep_int = [&](const std::string& flag, int64_t& field, int64_t saved_value) {
    if (o.given.count(flag) && field != saved_value) mismatch(flag, std::to_string(field), std::to_string(saved_value));
    field = saved_value;
  };
  auto setting = [&](const std::string& key) {
    auto it = saved.settings.find("train." + key);
    HC_CHECK(it != saved.settings.end(), Error, "--resume: the checkpoint lacks the setting train.", key);
    return it->second;
  };
  auto int_setting = [&](const std::string& key) {
    return parse_number<int64_t>(setting(key), "--resume: the checkpoint's setting train." + key);
  };
  auto keep_double = [&](const std::string& flag, double& field, const std::string& key) {
    const double saved_value = parse_number<double>(setting(key), "--resume: the checkpoint's setting train." + key);
    if (o.given.count(flag) && field != saved_value) mismatch(flag, format_number(field), format_number(saved_value));
    field = saved_value;
  };
  keep_int("layers", o.model.layers, saved.model.layers);
  keep_int("dim", o.model.dim, saved.model.dim);
  keep_int("heads", o.model.heads, saved.model.heads);
  keep_int("ctx", o.model.context, saved.model.context);
  keep_int("streams", o.model.streams, saved.model.streams);
  keep_int("fracs", o.model.fracs, saved.model.fracs);
  if (o.given.count("connection") && o.model.connection != saved.model.connection)
    mismatch("connection", o.model.connection, saved.model.connection);
  o.model = saved.model;
  keep_int("batch", o.batch, int_setting("batch"));
  keep_int("warmup", o.warmup, int_setting("warmup"));
  keep_double("lr", o.lr, "lr");
  keep_double("weight-decay", o.weight_decay, "weight_decay");
  keep_double("clip", o.clip, "clip");
  const uint64_t saved_seed = parse_number<uint64_t>(setting("seed"), "--resume: the checkpoint's setting train.seed");
  if (o.given.count("seed") && o.seed != saved_seed) mismatch("seed", std::to_string(o.seed), std::to_string(saved_seed));
  o.seed = saved_seed;
  // The text is known by its fingerprint (load_data checks it), not by its path: --data may name the same
  // text anywhere. Without --data, the run reads the file the checkpoint recorded.
  if (!o.given.count("data")) {
    const std::string data = setting("data");
    o.data = data == "default" ? "" : data;
    std::error_code ec;
    HC_CHECK(o.data.empty() || fs::exists(o.data, ec), Error, "--resume: the checkpoint's training text '", o.data,
             "' is not there; pass --data with the same text");
  }
  // These may change on resume; unless given, they keep the saved run's values.
  if (!o.given.count("steps")) o.steps = int_setting("steps");
  if (!o.given.count("eval-every")) o.eval_every = int_setting("eval_every");
  if (!o.given.count("sample-tokens")) o.sample_tokens = int_setting("sample_tokens");
  o.eval_batches = int_setting("eval_batches");
  return o;
}

TrainOptions checked_options(const TrainOptions& requested) {
  TrainOptions o = requested;
  o.model.vocab_size = nn::ByteTokenizer::vocab_size;
  o.model.validate();
  auto positive = [](const char* flag, int64_t value) {
    HC_CHECK(value > 0, Error, "train: --", flag, " must be positive, got ", value);
  };
  auto not_negative = [](const char* flag, int64_t value) {
    HC_CHECK(value >= 0, Error, "train: --", flag, " must be >= 0, got ", value);
  };
  positive("steps", o.steps);
  positive("batch", o.batch);
  positive("eval-every", o.eval_every);
  positive("eval-batches", o.eval_batches);
  positive("max-data-mb", o.max_data_mb);
  HC_CHECK(o.max_data_mb <= (int64_t(1) << 24), Error, "train: --max-data-mb must be at most 16777216 (16 TiB), got ",
           o.max_data_mb);
  not_negative("threads", o.threads);
  not_negative("stop-at", o.stop_at);
  not_negative("sample-tokens", o.sample_tokens);
  HC_CHECK(o.lr > 0 && std::isfinite(o.lr), Error, "train: --lr must be positive, got ", o.lr);
  if (!o.given.count("warmup")) o.warmup = std::min(o.warmup, o.steps);  // the default suits long runs only
  HC_CHECK(o.warmup >= 0 && o.warmup <= o.steps, Error, "train: --warmup must be in [0, steps = ", o.steps,
           "], got ", o.warmup);
  HC_CHECK(o.weight_decay >= 0 && o.clip >= 0 && std::isfinite(o.weight_decay), Error,
           "train: --weight-decay and --clip must be >= 0, got ", o.weight_decay, " and ", o.clip);
  device_index(o.device);  // the name's form; whether that GPU is here is checked when the run starts
  return o;
}

int device_index(const std::string& name) {
  if (name == "cpu") return -1;
  auto malformed = [&] { return Error(detail::concat("--device: expected cpu, cuda or cuda:N, got '", name, "'")); };
  if (name.rfind("cuda", 0) != 0) throw malformed();
  int index = 0;
  if (name.size() > 4) {
    const char *first = name.data() + 5, *last = name.data() + name.size();
    auto [end, ec] = std::from_chars(first, last, index);
    if (name[4] != ':' || ec != std::errc() || end != last || index < 0) throw malformed();
  }
  return index;
}

Device parse_device(const std::string& name) {
  const int index = device_index(name);
  if (index < 0) return Device::cpu();
  HC_CHECK(cuda::is_available(), DeviceError, "--device ", name, ": ", cuda::unavailable_reason());
  HC_CHECK(index < cuda::device_count(), DeviceError, "--device ", name, ": this machine has ", cuda::device_count(),
           " GPU(s)");
  return Device::cuda(index);
}

void check_sample_options(const SampleOptions& o) {
  HC_CHECK(o.tokens >= 0, Error, "sample: --tokens must be >= 0, got ", o.tokens);
  HC_CHECK(!o.prompt.empty(), Error, "sample: --prompt must not be empty");
  HC_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, Error, "sample: --temperature must be >= 0, got ",
           o.temperature);
  HC_CHECK(o.top_k >= 0, Error, "sample: --top-k must be >= 0, got ", o.top_k);
}

TrainResult train(const TrainOptions& requested) {
  // 1. Options: a resumed run's from its checkpoint, all checked.
  std::optional<LoadedRun> resumed;
  std::string resume_file;
  std::optional<RunLock> lock;  // one writer per run directory (run_lock.h), for the whole run
  if (!requested.resume.empty()) {
    resume_file = checkpoint_path(requested.resume);
    // Locked before the checkpoint is read: a run still writing it is refused, never resumed from a stale step.
    // Under mpirun rank 0 holds the lock for all.
    if (nn::distributed::rank() == 0) lock.emplace(resumed_run_directory(requested, resume_file));
    nn::distributed::barrier();
    resumed = read_run(resume_file);
  }
  TrainOptions o = resolved_options(requested, resumed, resume_file);
  if (o.threads > 0) set_num_threads(o.threads);

  // 2. Data: bytes of the corpus, 90% to train on, the last 10% to validate.
  const RunData run = load_data(o, resumed);
  // Data-parallel (under mpirun): rank r trains on rows [r·B/N, (r+1)·B/N) of every global batch, which every
  // rank draws alike; rank 0 alone writes the run directory and prints.
  const int ranks = nn::distributed::world_size(), rank = nn::distributed::rank();
  const bool leader = rank == 0;
  HC_CHECK(o.batch % ranks == 0, Error, "train: --batch ", o.batch, " (the global batch) must be divisible by the ",
           ranks, " ranks");
  const int64_t shard = o.batch / ranks;
  if (resumed) {  // the sums over ranks come in another order under another count: not the same run
    auto saved = resumed->state.settings.find("train.ranks");
    const std::string saved_ranks = saved == resumed->state.settings.end() ? "1" : saved->second;
    HC_CHECK(saved_ranks == std::to_string(ranks), Error, "--resume: the checkpoint was trained by ", saved_ranks,
             " rank(s) and this run has ", ranks, "; resume it under the same count (mpirun -np ", saved_ranks,
             ") to continue it exactly");
  }

  // 3. Model, optimizer, schedule. The weights are initialised on the CPU (the same numbers on every
  // device), then moved; a resumed run restores weights, optimizer state and the random streams' positions.
  const Device device = rank_device(o.device);
  nn::GPT model(o.model, o.seed);
  model.to(device);
  nn::AdamW optimizer = make_optimizer(model, o);
  const nn::CosineSchedule schedule{.max_lr = o.lr, .min_lr = o.lr / 10, .warmup_steps = o.warmup,
                                    .total_steps = o.steps};
  Generator data_gen(o.seed + 1);  // batch positions
  int64_t start_step = 0;
  nn::distributed::broadcast_parameters(model);  // the same start on every rank (already so by seed)
  // Dropout: a stream of its own on each rank (rank 0's is a single process's), drawn alike in count, so
  // that rank 0's position in the checkpoint is every rank's.
  if (rank > 0) model.dropout_generator().manual_seed(model.dropout_generator().seed() + rank);
  if (resumed) {
    restore_run(*resumed, resume_file, model, &optimizer);
    start_step = resumed->state.step;
    data_gen.set_offset(resumed->state.data_rng_offset);
    model.dropout_generator().set_offset(resumed->state.dropout_rng_offset);
  }

  // 4. The run directory: checkpoint, metrics.csv (one row per evaluation), diagnostics.
  const std::string checkpoint_file = leader ? open_run_directory(o, lock, resumed.has_value(), resume_file) : "";
  StepCsv metrics;
  if (leader)
    metrics = StepCsv((fs::path(o.out) / "metrics.csv").string(), "step,train_loss,val_loss,lr,tokens_per_s",
                      start_step);
  const std::map<std::string, std::string> settings = settings_of(o, run.fingerprint);
  // The diagnostics watch one fixed sequence: the first context window of the validation text.
  std::optional<Diagnostics> diagnostics;
  if (o.diagnostics && leader) {
    std::vector<int64_t> first_window(run.data.val().begin(), run.data.val().begin() + o.model.context);
    diagnostics.emplace((fs::path(o.out) / "diagnostics").string(),
                        from_vector(first_window, {1, o.model.context}).to(device), start_step);
  }
  if (!leader && !std::freopen("/dev/null", "w", stdout)) std::fclose(stdout);  // one voice: rank 0's
  print_banner(o, model, device, run);
  if (resumed) std::printf("tinylm: resumed from %s at step %lld\n", resume_file.c_str(), (long long)start_step);
  std::fflush(stdout);

  // 5. Training: a step per batch; every eval_every steps, the validation loss and a checkpoint.
  TrainResult result;
  result.first_step = start_step;
  Progress progress(/*log_every=*/50);
  const int64_t tokens_per_step = o.batch * o.model.context;
  const int64_t end_step = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
  double train_seconds = 0;
  Window window;
  int64_t last_saved = resumed ? start_step : -1;
  const std::vector<Tensor> parameters = model.parameters();  // for clipping, once rather than every step
  nn::distributed::GradientAverager averager(parameters, {.overlap = o.overlap});  // nothing alone
  const Clock::time_point run_start = Clock::now();

  std::vector<QueuedStep> queued;  // steps whose loss the host has not read yet
  for (int64_t step = start_step; step < end_step; ++step) {
    const Clock::time_point step_start = Clock::now();
    const double lr = schedule(step);
    optimizer.set_lr(lr);
    nn::Batch batch = nn::sample_batch(run.data.train(), o.batch, o.model.context, data_gen);
    if (ranks > 1) batch = {batch.inputs.narrow(0, rank * shard, shard), batch.targets.narrow(0, rank * shard, shard)};
    queued.push_back(train_step(model, optimizer, parameters, averager, batch, device, o.clip, step, lr));
    const int64_t done = step + 1;
    const bool evaluates = done % o.eval_every == 0 || done == end_step;
    // The host reads the losses every kReadEvery steps (one wait for the GPU per read, not one per step), and
    // before an evaluation: so a non-finite step is found before the next checkpoint could keep it.
    const auto clock_step = [&] {
      const double seconds = seconds_since(step_start);
      train_seconds += seconds;
      window.seconds += seconds;
    };
    if (done % kReadEvery != 0 && !evaluates) {
      clock_step();
      continue;
    }
    const std::string kept = last_saved >= 0 ? detail::concat("the last good checkpoint (step ", last_saved,
                                                              ") is kept in ", checkpoint_file)
                                             : std::string("no checkpoint had been written yet");
    const std::vector<double> losses = read_steps(queued, kept);
    clock_step();  // the wait for the queued steps included
    for (double loss : losses) window.loss += loss;
    window.steps += static_cast<int64_t>(losses.size());
    result.train_losses.insert(result.train_losses.end(), losses.begin(), losses.end());
    const double eta = seconds_since(run_start) / (done - start_step) * (o.steps - done);
    progress.step(done, o.steps, losses.back(), queued.back().lr, tokens_per_step * window.steps / window.seconds, eta);
    queued.clear();
    if (!evaluates) continue;

    // Evaluation and checkpoint. Only a finite model is saved: the last checkpoint is always a good one.
    const double val_loss = evaluate(model, run.val_batches, device);
    HC_CHECK(std::isfinite(val_loss), Error, "train: the validation loss is ", val_loss, " at step ", done,
             "; training stopped, ", kept, ". Try a lower --lr.");
    if (diagnostics) {  // in eval mode, as the validation loss: no dropout, no draws from its generator
      model.eval();
      diagnostics->record(model, done);
      model.train();
    }
    const double tokens_per_s = tokens_per_step * window.steps / window.seconds;
    if (leader) metrics.add(format("%lld,%.6f,%.6f,%.6g,%.1f", (long long)done, window.loss / window.steps, val_loss, lr,
                       tokens_per_s));
    try {
      if (leader)
        save_run(checkpoint_file, model, &optimizer,
                 {o.model, settings, done, data_gen.offset(), model.dropout_generator().offset()});
    } catch (const Error& e) {
      throw Error(detail::concat(e.what(), "; training stopped, ", kept));
    }
    last_saved = done;
    progress.note(detail::concat("step ", done, ": train_loss ", window.loss / window.steps, "  val_loss ",
                                 val_loss, "  (checkpoint saved)"));
    result.final_val_loss = val_loss;
    window = {};
  }

  // 6. Result: the last validation loss, the training throughput, the diagnostics' summary and a sample.
  const int64_t steps_run = end_step - start_step;
  result.tokens_per_s = steps_run > 0 ? tokens_per_step * steps_run / train_seconds : 0;
  if (end_step < o.steps) {
    std::printf("tinylm: stopped at step %lld as asked (--stop-at); continue with --resume %s\n",
                (long long)end_step, o.out.c_str());
    return result;
  }
  model.eval();
  if (diagnostics) {
    diagnostics->finish(model, o.model.connection + (o.model.streams > 1 ? " x" + std::to_string(o.model.streams) : ""));
    std::printf("tinylm: diagnostics in %s\n", (fs::path(o.out) / "diagnostics").c_str());
  }
  Generator sample_gen(o.seed + 2);
  result.sample = nn::ByteTokenizer::decode(model.generate({'\n'}, o.sample_tokens, 0.8, 40, sample_gen));
  std::printf("final val_loss=%.4f tokens_per_s=%.0f\n", result.final_val_loss, result.tokens_per_s);
  std::printf("--- sample (temperature 0.8, top-k 40) ---%s\n---\n", result.sample.c_str());
  return result;
}

std::string sample(const SampleOptions& o) {
  check_sample_options(o);
  const std::string file = checkpoint_path(o.checkpoint);
  LoadedRun run = read_run(file);
  nn::GPT model(run.state.model, 0);
  restore_run(run, file, model, nullptr);
  model.eval();
  std::vector<int64_t> prompt;
  for (uint8_t byte : nn::ByteTokenizer::encode(o.prompt)) prompt.push_back(byte);
  Generator gen(o.seed);
  return nn::ByteTokenizer::decode(model.generate(prompt, o.tokens, o.temperature, o.top_k, gen));
}

}  // namespace tinylm
