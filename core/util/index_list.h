/// @brief Index lists as people type them ("0-7", "1,3,5", "0-3,8"), shared by the CLI's
/// --images and --k and the workbench's Inspector.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mst {

/// Comma-separated indices and inclusive ranges a-b, every index >= 0; spaces around parts are
/// ignored. MstError naming `what` for text that is not such a list, for an empty list, and for
/// a list of more than `max_count` indices (checked before a range is expanded).
std::vector<int64_t> parseIndexList(const std::string& text, const std::string& what,
                                    int64_t max_count = 1000000);

}  // namespace mst
