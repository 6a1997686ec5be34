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

/// A data-parallel rank's error that only follows another rank's (rank 0 could not start, say):
/// that rank reports the cause. A rank started by `mst train --ranks` leaves it unprinted, so
/// that the one error line on the terminal is the cause.
class FollowerError : public MstError {
 public:
  using MstError::MstError;
};

}  // namespace mst
