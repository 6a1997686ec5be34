/// @brief Helpers shared by the fuzz targets: scratch files in /dev/shm and the exception policy.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace mst::fuzz {

/// A folder private to this process (libFuzzer's -fork/-jobs run several processes side by side),
/// in /dev/shm so that writing every input costs no disk I/O. Removed at exit.
inline const std::filesystem::path& scratchDir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                     ? "/dev/shm"
                                     : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("mst-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratchDir(), ec);
    });
    return d;
  }();
  return dir;
}

inline void writeFile(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

/// The contract under test: bad bytes give a std::exception with a message. Anything else
/// (an empty message, a non-std exception) is a finding, so abort and let libFuzzer save the input.
inline void checkMessage(const std::exception& e) {
  if (e.what() == nullptr || e.what()[0] == '\0') {
    std::fprintf(stderr, "exception without a message\n");
    std::abort();
  }
}

}  // namespace mst::fuzz
