/// @brief core/kernels/embed_cuda.cu compiled for the CPU emulator (emu.h).
#include "core/kernels/embed_cuda.cu"
