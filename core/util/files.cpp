/// @brief File helpers (see files.h).
#include "core/util/files.h"

#include <unistd.h>

#include <array>

namespace mst {

std::string temporarySibling(const std::string& path) {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  std::string name = host.data();
  for (char& ch : name)
    if (ch == '/' || ch == '\\') ch = '_';
  return path + ".tmp." + (name.empty() ? "host" : name) + "." + std::to_string(::getpid());
}

}  // namespace mst
