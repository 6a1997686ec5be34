/// @brief core/kernels/heads_cuda.cu compiled for the CPU emulator (emu.h).
#include "core/kernels/heads_cuda.cu"
