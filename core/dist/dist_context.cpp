/// @brief DistContext from the environment (see dist_context.h).
#include "core/dist/dist_context.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

#include "core/util/error.h"

namespace mst {
namespace {

/// The first of `names` that is set, parsed as an integer; nullopt when none is set. `found`,
/// when given, receives "NAME=value" of the variable read.
std::optional<int> intFromEnv(std::initializer_list<const char*> names,
                              std::string* found = nullptr) {
  for (const char* name : names) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') continue;
    char* end = nullptr;
    const long value = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < 0 || value > 1000000)
      throw MstError(std::string("environment variable ") + name +
                     " must be a non-negative integer (got '" + text + "')");
    if (found) *found = std::string(name) + "=" + text;
    return static_cast<int>(value);
  }
  return std::nullopt;
}

}  // namespace

std::optional<DistContext> distContextFromEnv() {
  std::string world_var, rank_var;
  const auto world = intFromEnv({"WORLD_SIZE", "SLURM_NTASKS"}, &world_var);
  if (!world) return std::nullopt;
  DistContext c;
  c.world_size = *world;
  if (c.world_size < 1) throw MstError("environment variable WORLD_SIZE must be at least 1");
  c.rank = intFromEnv({"RANK", "SLURM_PROCID"}, &rank_var).value_or(0);
  c.source = world_var + (rank_var.empty() ? "" : ", " + rank_var);
  c.local_rank = intFromEnv({"LOCAL_RANK", "SLURM_LOCALID"}).value_or(0);
  if (c.rank >= c.world_size)
    throw MstError("environment: RANK " + std::to_string(c.rank) + " is not below WORLD_SIZE " +
                   std::to_string(c.world_size));
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) c.master_addr = addr;
  c.master_port = intFromEnv({"MASTER_PORT"}).value_or(c.master_port);
  if (c.master_port < 1 || c.master_port > 65535)
    throw MstError("environment variable MASTER_PORT must be a TCP port (1-65535)");
  return c;
}

int freeTcpPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw MstError("cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  if (port <= 0) throw MstError("cannot find a free TCP port on this machine");
  return port;
}

}  // namespace mst
