/// @brief File helpers (see files.h).
#include "core/util/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <atomic>
#include <cstdio>
#include <fstream>

#include "core/util/error.h"

namespace mst {

std::string temporarySibling(const std::string& path) {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  std::string name = host.data();
  for (char& ch : name)
    if (ch == '/' || ch == '\\') ch = '_';
  static std::atomic<long long> serial{0};  // threads of one process (two sweeps) differ too
  return path + ".tmp." + (name.empty() ? "host" : name) + "." + std::to_string(::getpid()) + "." +
         std::to_string(++serial);
}

void writeTextAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = temporarySibling(path);
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      throw MstError("cannot write " + path);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw MstError("cannot write " + path + " (renaming " + tmp + " over it failed)");
  }
}

ScopedFileLock::ScopedFileLock(const std::string& path)
    : fd_(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)) {
  // O_CLOEXEC: a child process started meanwhile (the workbench starts `mst train`) must not
  // inherit the lock and hold it for its whole life.
  if (fd_ >= 0)
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
}

ScopedFileLock::~ScopedFileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace mst
