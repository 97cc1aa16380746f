// The run directory's lock (run_lock.h).
#include "run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "hcgrad/core/error.h"

namespace tinylm {

namespace fs = std::filesystem;
using hcgrad::Error;

namespace {

// The PID in a temporary file's name "<anything>.tmp-<pid>-<n>", or 0 when the name is not of that form.
pid_t writer_of(const std::string& name) {
  const size_t at = name.rfind(".tmp-");
  if (at == std::string::npos) return 0;
  const char* first = name.data() + at + 5;
  const char* last = name.data() + name.size();
  long pid = 0;
  auto [end, ec] = std::from_chars(first, last, pid);
  if (ec != std::errc() || end == first || end == last || *end != '-' || pid <= 0) return 0;
  return static_cast<pid_t>(pid);
}

bool is_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

}  // namespace

RunLock::RunLock(const std::string& directory) {
  std::error_code ec;
  fs::create_directories(directory, ec);
  HC_CHECK(!ec, Error, "train: cannot create the run directory '", directory, "': ", ec.message());
  const std::string path = (fs::path(directory) / kLockFile).string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  HC_CHECK(fd_ >= 0, Error, "train: cannot create the lock file '", path, "': ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char holder[32] = {};
    const ssize_t got = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    HC_CHECK(error != EWOULDBLOCK, Error, "train: '", directory, "' is in use by another tinylm run (pid ",
             got > 0 ? std::string(holder, static_cast<size_t>(got)) : std::string("unknown"),
             "); wait for it to finish, stop it, or choose another --out");
    throw Error(hcgrad::detail::concat("train: cannot lock '", path, "': ", std::strerror(error)));
  }
  // The holder's PID, for the message above; the lock itself is the flock, not the file's contents.
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw Error(hcgrad::detail::concat("train: cannot write the lock file '", path, "': ", std::strerror(error)));
  }

  // With the lock held no other run writes here, so a temporary file of a process that is gone is garbage.
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    const pid_t writer = writer_of(name);
    if (writer == 0 || writer == ::getpid() || is_alive(writer)) continue;
    if (fs::remove(entry.path(), ec)) removed_.push_back(entry.path().string());
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace tinylm
