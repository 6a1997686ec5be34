/// @brief core/kernels/recon_loss_cuda.cu compiled for the CPU emulator (emu.h).
#include "core/kernels/recon_loss_cuda.cu"
