/// @brief core/kernels/adamw_cuda.cu compiled for the CPU emulator (emu.h).
#include "core/kernels/adamw_cuda.cu"
