/// @brief core/kernels/augment_cuda.cu compiled for the CPU emulator (emu.h).
#include "core/kernels/augment_cuda.cu"
