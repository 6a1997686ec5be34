/// @brief Claim files (see claim.h).
#include "core/util/claim.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/util/error.h"
#include "core/util/files.h"

namespace mst {

namespace fs = std::filesystem;

namespace {

std::string hostName() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0') return "host";
  std::string name = host.data();
  for (char& ch : name)
    if (ch == ' ' || ch == '\n') ch = '_';
  return name;
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// When process `pid` started, in clock ticks since boot (/proc/PID/stat, field 22); 0 when it
/// cannot be read. With the pid it names one process: pids are reused, start times are not.
unsigned long long processStartTime(long long pid) {
  const std::string stat = readText("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');  // the command name, in parentheses, may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22 && (fields >> field); ++i)
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  return 0;
}

std::atomic<long long> g_clock_skew_s{0};  // (tests) this host's clock, set wrong on purpose

fs::file_time_type localNow() {
  return fs::file_time_type::clock::now() + std::chrono::seconds(g_clock_skew_s.load());
}

/// "Now" by the clock of the file system that holds `dir`: the modification time it gives a
/// probe file created there. A file server stamps its own clock on the heartbeats of every host
/// (utimensat with no time), so ages measured against it do not depend on how far this host's
/// clock is from the others'. This host's clock when the folder is not writable.
fs::file_time_type fileSystemNow(const fs::path& dir) {
  std::string probe = ((dir.empty() ? fs::path(".") : dir) / ".mst-clock.XXXXXX").string();
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) return localNow();
  // Stamped the way the heartbeats are (utimensat with no time: the file server's clock where
  // the server sets it, as NFS does), so that the two compare on any file system.
  const bool stamped = ::futimens(fd, nullptr) == 0;
  ::close(fd);
  std::error_code ec;
  const auto now = fs::last_write_time(probe, ec);
  ::unlink(probe.c_str());
  return stamped && !ec ? now : localNow();
}

/// Whether the holder text read from a claim file names a holder that is still there.
bool holderIsLive(const std::string& holder, const fs::path& path, std::chrono::seconds stale) {
  std::istringstream in(holder);
  std::string host;
  long long pid = 0, serial = 0;
  unsigned long long started = 0;
  if ((in >> host >> pid) && host == hostName() && pid > 0) {
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
    // A running process with that pid: the holder itself, unless the holder's start time (absent
    // in claims written before it was recorded) says the pid has since been given to another.
    if (in >> serial >> started && started > 0) {
      const unsigned long long now = processStartTime(pid);
      if (now != 0 && now != started) return false;
    }
    return true;
  }
  // Another host (or a file we cannot read): its heartbeat tells, read against the clock that
  // stamped it.
  std::error_code ec;
  const auto written = fs::last_write_time(path, ec);
  if (ec) return false;
  return fileSystemNow(path.parent_path()) - written < stale;
}

/// Creates `path` exclusively with `holder` in it; false when it exists.
bool createExclusive(const std::string& path, const std::string& holder) {
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw MstError("cannot create the claim " + path + ": " + std::strerror(errno));
  }
  const std::string line = holder + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw MstError("cannot write the claim " + path);
  }
  return true;
}

}  // namespace

void setClaimClockSkewForTesting(std::chrono::seconds skew) { g_clock_skew_s = skew.count(); }

std::string claimHolder(const std::string& path) {
  std::error_code ec;
  const auto written = fs::last_write_time(path, ec);
  if (ec) return {};
  std::string holder = readText(path);
  while (!holder.empty() && holder.back() == '\n') holder.pop_back();
  // Labelled fields for a reader; a claim written before serial and start were recorded (or not
  // by us) keeps what it has, as it is.
  std::istringstream in(holder);
  std::string host;
  long long pid = 0, serial = 0;
  unsigned long long started = 0;
  if (in >> host >> pid) {
    std::string text = "host " + host + ", pid " + std::to_string(pid);
    if (in >> serial >> started)
      text += ", claim " + std::to_string(serial) + " of that process, which started " +
              std::to_string(started) + " clock ticks after boot";
    holder = text;
  }
  const auto age = std::chrono::duration_cast<std::chrono::seconds>(
      fileSystemNow(fs::path(path).parent_path()) - written);
  return "held by " + holder + "; refreshed " + std::to_string(age.count()) + " s ago";
}

bool claimIsLive(const std::string& path, std::chrono::seconds stale_after) {
  if (!fs::exists(path)) return false;
  return holderIsLive(readText(path), path, stale_after);
}

std::unique_ptr<Claim> Claim::tryTake(const std::string& path, std::chrono::seconds stale_after,
                                      std::chrono::milliseconds heartbeat) {
  static std::atomic<long long> serial{0};
  const std::string holder = hostName() + " " + std::to_string(::getpid()) + " " +
                             std::to_string(++serial) + " " +
                             std::to_string(processStartTime(::getpid()));
  if (!createExclusive(path, holder)) {
    if (holderIsLive(readText(path), path, stale_after)) return nullptr;
    // Take over a dead holder's claim, one taker at a time: under the lock, judge it again (an
    // earlier taker may have replaced it with its own live claim), remove it, create ours.
    ScopedFileLock lock(path + ".take");
    if (fs::exists(path) && holderIsLive(readText(path), path, stale_after)) return nullptr;
    ::unlink(path.c_str());
    if (!createExclusive(path, holder)) return nullptr;
  }
  return std::unique_ptr<Claim>(new Claim(path, holder, heartbeat));
}

Claim::Claim(std::string path, std::string holder, std::chrono::milliseconds heartbeat)
    : path_(std::move(path)), holder_(std::move(holder)) {
  heartbeat_ = std::thread([this, heartbeat] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, heartbeat, [this] { return released_; })) {
      // "Now" as the file system sees it (a file server stamps its own clock); a file removed by
      // hand is not this thread's to report.
      ::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0);
    }
  });
}

Claim::~Claim() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    released_ = true;
  }
  wake_.notify_all();
  heartbeat_.join();
  // Remove the file only while it is still ours (a taker may have judged us dead).
  if (readText(path_) == holder_ + "\n") ::unlink(path_.c_str());
}

}  // namespace mst
