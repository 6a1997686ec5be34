/// @brief core/kernels/gelu_cuda.cu compiled for the CPU emulator (emu.h).
#include "core/kernels/gelu_cuda.cu"
