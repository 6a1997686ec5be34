/// @brief File helpers shared by everything that replaces a file atomically.
#pragma once

#include <string>

namespace mst {

/// A temporary file name beside `path` that no other process, on this machine or on another
/// one sharing the folder, uses at the same time: `path.tmp.<host>.<pid>`. Written, then renamed
/// over `path`, it lets several writers (sweep shards) replace one file without mixing bytes.
std::string temporarySibling(const std::string& path);

/// Writes `text` to a temporary sibling and renames it over `path`: readers see the old file or
/// the new one, never half of one, and a failed write leaves the old file as it was. MstError
/// naming `path` when it cannot be written.
void writeTextAtomically(const std::string& path, const std::string& text);

}  // namespace mst
