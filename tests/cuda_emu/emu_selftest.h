/// @brief The emulator's own checks (emu_selftest.cpp): each runs a 64-thread kernel over
/// `out64` (64 floats) and returns the emulator's error, empty (0) when there was none.
#pragma once

#include <cstdint>
#include <string>

namespace emu_selftest {

std::string shuffleAfterReturnError(float* out64);
std::string splitBarrierError(float* out64);
std::string mixedMasksError(float* out64);
/// No error expected: out64[t] = t ^ 5.
std::string exchangeError(float* out64);
/// cudaGetLastError's code after a launch of 2048 threads per block (9: invalid configuration).
int oversizedBlockError(float* out64);

/// Kernel launches so far (valid or not), for tests that must know the kernels ran.
uint64_t launches();

}  // namespace emu_selftest
