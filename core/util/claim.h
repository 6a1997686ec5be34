/// @brief Claim files: one holder at a time works on a thing (a sweep cell), among the threads,
/// processes and machines that share a folder.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace mst {

/// A held claim: the file at `path`, created exclusively and holding "<host> <pid> <serial> <start>"
/// (start: the process's start time, so that a reused pid is not taken for the holder).
/// While held, a thread refreshes its modification time (the heartbeat) every
/// `heartbeat`; the destructor removes the file.
///
/// A claim is live while its holder is: on this host, while its process runs; from another host,
/// while its heartbeat is younger than `stale_after` (so a machine that died frees its cells
/// after that long). The heartbeat's age is read by the clock of the file system that holds the
/// claim (a probe file's modification time), not by this host's clock: on a shared file system
/// the server stamps both, so hosts whose clocks disagree still judge alike.
/// A claim that is not live is taken over, one taker at a time (a lock on `path.take`).
class Claim {
 public:
  static constexpr std::chrono::seconds kStaleAfter{600};
  static constexpr std::chrono::seconds kHeartbeat{30};

  /// Takes the claim at `path` (its folder must exist) when nobody holds it, or when its holder
  /// is gone; nullptr when a live holder has it. MstError naming `path` when the file cannot be
  /// created for another reason.
  static std::unique_ptr<Claim> tryTake(const std::string& path,
                                        std::chrono::seconds stale_after = kStaleAfter,
                                        std::chrono::milliseconds heartbeat = kHeartbeat);
  ~Claim();
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;

  const std::string& path() const { return path_; }
  /// This claim's holder text, "<host> <pid> <serial> <start>".
  const std::string& holder() const { return holder_; }

 private:
  Claim(std::string path, std::string holder, std::chrono::milliseconds heartbeat);

  std::string path_, holder_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool released_ = false;
  std::thread heartbeat_;
};

/// Who holds the claim at `path` ("held by host H, pid P, claim S of that process, which started T
/// clock ticks after boot; refreshed N s ago"),
/// for error messages; empty when there is no claim.
std::string claimHolder(const std::string& path);

/// Tests only: this host's clock reads `skew` away from the true time (where a claim's age falls
/// back to it: a folder this process cannot write in). 0 restores it.
void setClaimClockSkewForTesting(std::chrono::seconds skew);

/// Whether the claim file at `path` exists and its holder is live (see Claim).
bool claimIsLive(const std::string& path, std::chrono::seconds stale_after = Claim::kStaleAfter);

}  // namespace mst
