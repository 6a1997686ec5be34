/// @brief The project exception: a message that already names the offending file or config key.
#pragma once

#include <stdexcept>
#include <string>

namespace mst {

/// Thrown at API boundaries for bad input (files, config keys, checkpoints). The message is meant
/// to be shown to the user as-is, on one line.
class MstError : public std::runtime_error {
 public:
  explicit MstError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace mst
