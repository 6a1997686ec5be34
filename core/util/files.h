/// @brief File helpers shared by everything that replaces a file atomically.
#pragma once

#include <string>

namespace mst {

/// A temporary file name beside `path` that no other process, on this machine or on another
/// one sharing the folder, uses at the same time: `path.tmp.<host>.<pid>.<serial>`. Written, then
/// renamed over `path`, it lets several writers (sweeps sharing a folder, in one process or many)
/// replace one file without mixing bytes.
std::string temporarySibling(const std::string& path);

/// Writes `text` to a temporary sibling and renames it over `path`: readers see the old file or
/// the new one, never half of one, and a failed write leaves the old file as it was. MstError
/// naming `path` when it cannot be written.
void writeTextAtomically(const std::string& path, const std::string& text);

/// An exclusive lock on the file `path` (created if missing) for the scope (flock): writers in
/// other processes and threads that lock the same file wait for it. Where the file system has no
/// locks, it does nothing rather than fail.
class ScopedFileLock {
 public:
  explicit ScopedFileLock(const std::string& path);
  ~ScopedFileLock();
  ScopedFileLock(const ScopedFileLock&) = delete;
  ScopedFileLock& operator=(const ScopedFileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace mst
