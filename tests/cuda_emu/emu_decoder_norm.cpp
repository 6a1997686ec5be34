/// @brief core/kernels/decoder_norm_cuda.cu compiled for the CPU emulator (emu.h).
#include "core/kernels/decoder_norm_cuda.cu"
