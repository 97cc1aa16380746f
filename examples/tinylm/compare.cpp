// tinylm compare (compare.h): runs `tinylm train` once per (connection, seed) as a child process, reads what
// each run wrote, and summarises.
#include "compare.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "hcgrad/core/error.h"
#include "hcgrad/nn/hyper_connections_factory.h"
#include "plots.h"
#include "progress.h"
#include "step_csv.h"

extern char** environ;

namespace tinylm {

using hcgrad::Error;
namespace fs = std::filesystem;

namespace {

struct RunResult {
  std::string variant;
  int64_t seed = 0;
  double val_loss = NAN, tokens_per_s = NAN, peak_rss_mb = NAN;
  std::map<int64_t, double> val_curve;  // step -> val loss (metrics.csv)
};

// The train flags of one variant.
std::vector<std::string> connection_flags(const std::string& variant, int64_t streams) {
  if (variant == "residual") return {"--connection", "residual"};
  if (variant.starts_with("frac")) return {"--connection", variant, "--fracs", std::to_string(streams)};
  if (hcgrad::nn::is_connection_name(variant)) return {"--connection", variant, "--streams", std::to_string(streams)};
  throw Error("compare: --connections: unknown connection '" + variant + "'; expected " +
              hcgrad::nn::connection_names_phrase());
}

// Runs this program with `args`, stdout and stderr into `log`; returns the exit status and the child's peak RSS.
int run_child(const std::string& program, const std::vector<std::string>& args, const std::string& log,
              double& peak_rss_mb) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, program.c_str(), &files, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  HC_CHECK(spawned == 0, Error, "compare: cannot start tinylm train: ", std::strerror(spawned));
  int status = 0;
  rusage usage{};
  HC_CHECK(wait4(pid, &status, 0, &usage) == pid, Error, "compare: lost the child process");
  peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: KiB
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string last_lines(const std::string& path, int count) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > size_t(count) ? lines.size() - count : 0; i < lines.size(); ++i) out += lines[i] + "\n";
  return out;
}

// The final "final val_loss=X tokens_per_s=Y" line of a run's log and its metrics.csv curve.
void read_run(const fs::path& dir, RunResult& r) {
  std::ifstream log(dir / "log.txt");
  for (std::string line; std::getline(log, line);) {
    double loss = 0, speed = 0;
    if (std::sscanf(line.c_str(), "final val_loss=%lf tokens_per_s=%lf", &loss, &speed) == 2) {
      r.val_loss = loss;
      r.tokens_per_s = speed;
    }
  }
  std::ifstream metrics(dir / "metrics.csv");
  std::string line;
  std::getline(metrics, line);  // header: step,train_loss,val_loss,lr,tokens_per_s
  while (std::getline(metrics, line)) {
    long long step = 0;
    double train_loss = 0, val_loss = 0;
    if (std::sscanf(line.c_str(), "%lld,%lf,%lf", &step, &train_loss, &val_loss) == 3) r.val_curve[step] = val_loss;
  }
  HC_CHECK(std::isfinite(r.val_loss) && !r.val_curve.empty(), Error, "compare: run ", dir.string(),
           " finished without a final validation loss; see ", (dir / "log.txt").string());
}

struct MeanStd {
  double mean = 0, std = 0;  // std: sample standard deviation (0 for one value)
};
MeanStd mean_std(const std::vector<double>& v) {
  MeanStd m;
  for (double x : v) m.mean += x / static_cast<double>(v.size());
  for (double x : v) m.std += (x - m.mean) * (x - m.mean);
  m.std = v.size() > 1 ? std::sqrt(m.std / static_cast<double>(v.size() - 1)) : 0.0;
  return m;
}

std::string plus_minus(const MeanStd& m, const char* pattern) { return format(pattern, m.mean) + format(" ± %.4f", m.std); }

}  // namespace

void check_compare_options(const CompareOptions& o) {
  HC_CHECK(o.seeds >= 1 && o.steps >= 1 && o.streams >= 1, Error, "compare: --seeds, --steps and --streams must be "
           "positive, got ", o.seeds, ", ", o.steps, ", ", o.streams);
  HC_CHECK(!o.connections.empty(), Error, "compare: --connections is empty");
  HC_CHECK(o.seeds <= 1000, Error, "compare: --seeds ", o.seeds, " is more than 1000 runs per connection");
  HC_CHECK(o.layers >= 0 && o.dim >= 0 && o.heads >= 0 && o.context >= 0 && o.batch >= 0, Error,
           "compare: --layers, --dim, --heads, --ctx and --batch must be positive");
  HC_CHECK(o.threads >= 0 && o.eval_every >= 0, Error, "compare: --threads and --eval-every must be >= 0, got ",
           o.threads, " and ", o.eval_every);
  HC_CHECK(!o.out.empty(), Error, "compare: --out is empty");
  for (const std::string& variant : o.connections) connection_flags(variant, o.streams);  // validates the names
}

void compare(const CompareOptions& requested) {
  CompareOptions o = requested;
  check_compare_options(o);
  if (o.eval_every == 0) o.eval_every = std::max<int64_t>(1, o.steps / 10);
  std::error_code ec;
  HC_CHECK(!fs::exists(o.out, ec) || fs::is_empty(o.out, ec), Error, "compare: ", o.out,
           " already holds files (an earlier comparison?); choose another --out or remove it");
  fs::create_directories(o.out, ec);
  HC_CHECK(!ec, Error, "compare: cannot create '", o.out, "': ", ec.message());

  const int64_t total = static_cast<int64_t>(o.connections.size()) * o.seeds;
  std::printf("compare: %s x %lld seed(s), %lld steps each -> %s\n", [&] {
    std::string names;
    for (const std::string& v : o.connections) names += (names.empty() ? "" : ",") + v;
    return names;
  }().c_str(), (long long)o.seeds, (long long)o.steps, o.out.c_str());
  std::fflush(stdout);

  std::vector<RunResult> results;
  const auto start = std::chrono::steady_clock::now();
  int64_t done = 0;
  for (int64_t seed = 1; seed <= o.seeds; ++seed)  // seed-major: a stopped comparison has every variant at seed 1
    for (const std::string& variant : o.connections) {
      const fs::path dir = fs::path(o.out) / (variant + "-seed" + std::to_string(seed));
      std::error_code ec;
      fs::create_directories(dir, ec);
      HC_CHECK(!ec, Error, "compare: cannot create '", dir.string(), "': ", ec.message());
      std::vector<std::string> args{"tinylm", "train", "--steps", std::to_string(o.steps), "--seed",
                                    std::to_string(seed), "--eval-every", std::to_string(o.eval_every),
                                    "--sample-tokens", "0", "--out", dir.string()};
      for (const std::string& flag : connection_flags(variant, o.streams)) args.push_back(flag);
      if (o.threads > 0) args.insert(args.end(), {"--threads", std::to_string(o.threads)});
      for (const auto& [flag, value] : {std::pair{"--layers", o.layers}, {"--dim", o.dim}, {"--heads", o.heads},
                                        {"--ctx", o.context}, {"--batch", o.batch}})
        if (value > 0) args.insert(args.end(), {flag, std::to_string(value)});
      if (!o.data.empty()) args.insert(args.end(), {"--data", o.data});
      if (o.diagnostics) args.push_back("--diagnostics");

      RunResult r;
      r.variant = variant;
      r.seed = seed;
      const std::string log = (dir / "log.txt").string();
      const int status = run_child(o.program, args, log, r.peak_rss_mb);
      HC_CHECK(status == 0, Error, "compare: ", variant, " seed ", seed, " failed (exit ", status, "); the end of ",
               log, ":\n", last_lines(log, 5));
      read_run(dir, r);
      results.push_back(r);
      ++done;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("compare: [%lld/%lld] %-9s seed %lld: val_loss %.4f, %.0f tokens/s, peak %.0f MB (ETA %s)\n",
                  (long long)done, (long long)total, variant.c_str(), (long long)seed, r.val_loss, r.tokens_per_s,
                  r.peak_rss_mb, format_duration(elapsed / done * (total - done)).c_str());
      std::fflush(stdout);
    }

  // summary.csv: one row per run.
  {
    std::ofstream csv(fs::path(o.out) / "summary.csv");
    csv << "variant,seed,final_val_loss,tokens_per_s,peak_rss_mb\n";
    for (const RunResult& r : results)
      csv << format("%s,%lld,%.6f,%.1f,%.1f\n", r.variant.c_str(), (long long)r.seed, r.val_loss, r.tokens_per_s,
                    r.peak_rss_mb);
    HC_CHECK(csv, Error, "compare: cannot write ", (fs::path(o.out) / "summary.csv").string());
  }

  // summary.md: mean ± std per variant; Δ vs residual as the mean ± std of the per-seed differences (same
  // batches per seed, so the pairing removes the data-order part of the noise).
  std::map<std::string, std::map<int64_t, const RunResult*>> by_variant;
  for (const RunResult& r : results) by_variant[r.variant][r.seed] = &r;
  const bool has_residual = by_variant.count("residual") > 0;
  std::ostringstream md;
  md << format("%lld steps, %lld seed(s)", (long long)o.steps, (long long)o.seeds)
     << (o.streams > 1 ? format(", %lld streams (frac: fractions)", (long long)o.streams) : "") << ".\n\n"
     << "| variant | val loss (nats/byte) | Δ vs residual | tokens/s | peak RSS (MB) |\n|---|---|---|---|---|\n";
  std::vector<CompareVariant> plotted;
  double y_max = 0;  // the plot starts at the highest mean loss a fifth of the way in
  for (const std::string& variant : o.connections) {
    std::vector<double> losses, speeds, memory, deltas;
    for (const auto& [seed, r] : by_variant[variant]) {
      losses.push_back(r->val_loss);
      speeds.push_back(r->tokens_per_s);
      memory.push_back(r->peak_rss_mb);
      if (has_residual) deltas.push_back(r->val_loss - by_variant["residual"].at(seed)->val_loss);
    }
    const std::string delta = !has_residual ? "-" : variant == "residual" ? "0" : plus_minus(mean_std(deltas), "%+.4f");
    md << "| " << variant << " | " << plus_minus(mean_std(losses), "%.4f") << " | " << delta << " | "
       << format("%.0f", mean_std(speeds).mean) << " | " << format("%.0f", mean_std(memory).mean) << " |\n";

    // The validation curve over seeds (steps every run evaluated).
    std::string curve;
    for (const auto& [step, first] : by_variant[variant].begin()->second->val_curve) {
      std::vector<double> at_step;
      for (const auto& [seed, r] : by_variant[variant])
        if (auto it = r->val_curve.find(step); it != r->val_curve.end()) at_step.push_back(it->second);
      const MeanStd m = mean_std(at_step);
      if (step >= o.steps / 5 && step < o.steps / 5 + o.eval_every) y_max = std::max(y_max, m.mean + m.std);
      curve += format("%lld %.6f %.6f\n", (long long)step, m.mean, m.std);
    }
    const std::string curve_file = "curve-" + variant + ".dat";
    std::ofstream(fs::path(o.out) / curve_file) << curve;
    const std::string diagnostics_dir = o.diagnostics ? variant + "-seed1/diagnostics" : "";
    plotted.push_back({.name = variant, .curve_file = curve_file, .diagnostics_dir = diagnostics_dir,
                       .has_maps = o.diagnostics && fs::exists(fs::path(o.out) / diagnostics_dir / "gain.dat")});
  }
  std::ofstream(fs::path(o.out) / "summary.md") << md.str();
  render_compare_plots(o.out, plotted, o.seeds, y_max);
  std::printf("\n%s\ncompare: summary.csv, summary.md and %s in %s\n", md.str().c_str(),
              gnuplot_available() ? "plots" : "plot scripts (no gnuplot: no PNGs)", o.out.c_str());
}

}  // namespace tinylm
