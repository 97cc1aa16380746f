// The training progress display: one line rewritten in place on a terminal, plain lines in a log.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace tinylm {

inline std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buffer[32];
  if (s >= 3600) std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
  else if (s >= 60) std::snprintf(buffer, sizeof buffer, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else std::snprintf(buffer, sizeof buffer, "%llds", (long long)s);
  return buffer;
}

class Progress {
 public:
  // Plain lines are printed every `log_every` steps when stdout is not a terminal.
  explicit Progress(int64_t log_every) : terminal_(isatty(fileno(stdout))), log_every_(log_every) {}

  void step(int64_t step, int64_t total, double loss, double lr, double tokens_per_s, double eta_s) {
    char line[160];
    std::snprintf(line, sizeof line, "step %5lld/%lld | loss %.4f | lr %.2e | %6.0f tok/s | ETA %s",
                  (long long)step, (long long)total, loss, lr, tokens_per_s, format_duration(eta_s).c_str());
    if (terminal_) {
      std::printf("\r%-90s", line);
      std::fflush(stdout);
      open_ = true;
    } else if (step % log_every_ == 0 || step == total) {
      std::printf("%s\n", line);
      std::fflush(stdout);
    }
  }

  // A line that stays (evaluation results, messages): ends the live line first.
  void note(const std::string& text) {
    if (open_) std::printf("\n");
    open_ = false;
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  }

 private:
  bool terminal_;
  int64_t log_every_;
  bool open_ = false;
};

}  // namespace tinylm
