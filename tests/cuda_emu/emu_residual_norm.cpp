/// @brief core/kernels/residual_norm_cuda.cu compiled for the CPU emulator (emu.h).
#include "core/kernels/residual_norm_cuda.cu"
