// A CSV file of rows that start with a training step (metrics.csv, the diagnostics' gain.csv, ...). A resumed
// run drops the rows past its checkpoint (written after the checkpoint by the interrupted run), so the file
// always describes one consistent run.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "hcgrad/core/error.h"

namespace tinylm {

class StepCsv {
 public:
  StepCsv() = default;
  StepCsv(std::string path, const std::string& header, int64_t resume_step) : path_(std::move(path)) {
    std::vector<std::string> kept;
    if (resume_step > 0 && std::filesystem::exists(path_)) {
      std::ifstream in(path_);
      std::string line;
      std::getline(in, line);  // header
      while (std::getline(in, line))
        if (long long step = 0; std::sscanf(line.c_str(), "%lld", &step) == 1 && step <= resume_step)
          kept.push_back(line);
    }
    // Rewritten beside and renamed over the old file, so that a failure here never leaves it cut short.
    const std::string temp = path_ + ".tmp-" + std::to_string(::getpid()) + "-0";
    {
      std::ofstream out(temp, std::ios::trunc);
      out << header << "\n";
      for (const auto& line : kept) out << line << "\n";
      out.flush();
      HC_CHECK(out, hcgrad::Error, "tinylm: cannot write ", temp);
    }
    std::error_code ec;
    std::filesystem::rename(temp, path_, ec);
    if (ec) std::filesystem::remove(temp, ec);
    HC_CHECK(!ec, hcgrad::Error, "tinylm: cannot replace ", path_, ": ", ec.message());
  }

  // Appends one line (without its newline).
  void add(const std::string& row) {
    std::ofstream out(path_, std::ios::app);
    out << row << "\n";
    HC_CHECK(out, hcgrad::Error, "tinylm: cannot write ", path_);
  }

 private:
  std::string path_;
};

// printf into a std::string.
template <class... Args>
std::string format(const char* pattern, Args... args) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, pattern, args...);
  return buffer;
}

}  // namespace tinylm
