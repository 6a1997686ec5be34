/// @brief File helpers shared by everything that replaces a file atomically.
#pragma once

#include <string>

namespace mst {

/// A temporary file name beside `path` that no other process, on this machine or on another
/// one sharing the folder, uses at the same time: `path.tmp.<host>.<pid>`. Written, then renamed
/// over `path`, it lets several writers (sweep shards) replace one file without mixing bytes.
std::string temporarySibling(const std::string& path);

}  // namespace mst
