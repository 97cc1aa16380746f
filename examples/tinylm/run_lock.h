// One writer per run directory. A training run holds an advisory lock (flock) on DIR/.tinylm.lock for its
// whole life, so a second `tinylm train` on the same --out, or a second --resume of it, is refused with the
// holder's PID instead of both writing metrics.csv and overwriting each other's checkpoints. The kernel drops
// the lock when the holder exits in any way (kill -9 included), so a dead run never blocks the next.
//
// Taking the lock also clears what dead writers left behind: the temporary files of an interrupted
// checkpoint save (checkpoint.safetensors.tmp-<pid>-<n>, see nn/checkpoint.h) whose process is gone.
#pragma once

#include <string>
#include <vector>

namespace tinylm {

class RunLock {
 public:
  // Creates `directory` when needed and locks it; throws hcgrad::Error naming the holder's PID when another
  // process holds it, or saying why the directory or the lock file cannot be made.
  explicit RunLock(const std::string& directory);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // The stale temporary files removed when the lock was taken (for the run's log).
  const std::vector<std::string>& removed() const { return removed_; }

 private:
  int fd_ = -1;
  std::vector<std::string> removed_;
};

inline constexpr const char* kLockFile = ".tinylm.lock";

}  // namespace tinylm
