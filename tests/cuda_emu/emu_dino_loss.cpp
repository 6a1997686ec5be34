/// @brief core/kernels/dino_loss_cuda.cu compiled for the CPU emulator (emu.h).
#include "core/kernels/dino_loss_cuda.cu"
