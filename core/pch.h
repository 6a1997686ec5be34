/// @brief Precompiled header for LibTorch-heavy translation units (build speed only).
#pragma once
#include <torch/torch.h>
