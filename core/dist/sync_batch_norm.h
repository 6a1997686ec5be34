/// @brief Batch normalisation over the union of every rank's batch (SyncBN, paper App. C).
#pragma once

#include <torch/torch.h>

namespace mst {

class Communicator;

/// Sum over ranks that autograd differentiates: forward all-reduces a copy of `x`, backward
/// all-reduces the incoming gradient (d(Σ_r L_r)/dx_r needs every rank's gradient of the sum).
/// x: any shape, contiguous → same shape.
torch::Tensor allReduceSumDifferentiable(const torch::Tensor& x, Communicator& comm);

/// Training-mode BatchNorm2d with statistics over all ranks' rows: x (B, C, H, W) → (B, C, H, W).
/// Uses and updates `bn`'s weight, bias, running statistics and batch counter exactly as
/// torch::nn::BatchNorm2d does on the global batch (every rank must hold the same number of
/// rows). Per-channel sums and sums of squares are all-reduced in one call; they are taken
/// about the (rank-identical) running mean so that E[x²] − E[x]² does not cancel.
torch::Tensor syncBatchNorm(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn,
                            Communicator& comm);

}  // namespace mst
