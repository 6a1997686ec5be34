/// @brief Mask strategies of METHOD.md step 3 (Alg. 1, Eq. 3 and Eq. 5) as pure functions.
#pragma once

#include <string>

#include <torch/torch.h>

namespace mst {

enum class MaskStrategy { None, Random, AttentionGuided, AttentionHigh };

/// "none" | "random" | "attention_guided" | "attention_high" (MstError otherwise).
MaskStrategy parseMaskStrategy(const std::string& name);
std::string maskStrategyName(MaskStrategy strategy);

/// Candidate patches of Alg. 1: attention (B, n) → (B, n) bool marking exactly floor(n/num)
/// patches per row, the lowest attentions (highest when `highest`), ties broken by patch index.
torch::Tensor maskCandidates(const torch::Tensor& attention, int64_t num, bool highest = false);

/// Mask (B, n) bool from one uniform draw `uniform` (B, n) in [0, 1): `random` masks every patch
/// with u < p (Eq. 3); the attention strategies mask candidates with u < p (Eq. 5); `none` masks
/// nothing. Sharing `uniform` between strategies makes their masks differ only by the rule.
torch::Tensor makeMask(MaskStrategy strategy, const torch::Tensor& attention,
                       const torch::Tensor& uniform, double p, int64_t num);

}  // namespace mst
