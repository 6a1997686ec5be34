/// @brief Who this process is in a data-parallel run: rank, world size, rendezvous address.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace mst {

/// One rank of a data-parallel run. world_size == 1 means an ordinary single-process run.
struct DistContext {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  ///< rank on this machine: picks the GPU
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// A collective (or the rendezvous) that waits longer than this on a peer fails with MstError:
  /// a dead or hung rank stops the others instead of hanging them forever.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  /// Where the rank and world size came from, for messages: "WORLD_SIZE=2, RANK=0" (the
  /// environment; SLURM's variables too), or empty (the command line).
  std::string source;

  bool distributed() const { return world_size > 1; }
};

/// The torchrun variables RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, with SLURM's
/// SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID as fallbacks for the first three (srun sets them;
/// MASTER_ADDR must still come from the batch script). nullopt when neither names a world size.
/// MstError naming the variable when one is malformed or inconsistent (rank >= world size).
std::optional<DistContext> distContextFromEnv();

/// A TCP port on this machine that was free a moment ago (bind to port 0), for local launches.
int freeTcpPort();

}  // namespace mst
