/// @brief Mask strategies implementation (see masking.h).
#include "core/masking/masking.h"

#include "core/util/error.h"

namespace mst {

MaskStrategy parseMaskStrategy(const std::string& name) {
  if (name == "none") return MaskStrategy::None;
  if (name == "random") return MaskStrategy::Random;
  if (name == "attention_guided") return MaskStrategy::AttentionGuided;
  if (name == "attention_high") return MaskStrategy::AttentionHigh;
  throw MstError("config key masking.strategy must be one of: none, random, attention_guided, "
                 "attention_high (got '" + name + "')");
}

std::string maskStrategyName(MaskStrategy strategy) {
  switch (strategy) {
    case MaskStrategy::None: return "none";
    case MaskStrategy::Random: return "random";
    case MaskStrategy::AttentionGuided: return "attention_guided";
    case MaskStrategy::AttentionHigh: return "attention_high";
  }
  return "none";
}

torch::Tensor maskCandidates(const torch::Tensor& attention, int64_t num, bool highest) {
  TORCH_CHECK(attention.dim() == 2, "maskCandidates: attention must be (B, n)");
  TORCH_CHECK(num >= 1, "maskCandidates: num must be >= 1");
  const int64_t n = attention.size(1);
  const int64_t count = n / num;
  auto candidates = torch::zeros(attention.sizes(), attention.options().dtype(torch::kBool));
  if (count == 0) return candidates;
  // A stable sort keeps equal attentions in patch-index order, so exactly `count` are chosen.
  auto order = std::get<1>(attention.sort(/*stable=*/true, /*dim=*/1, /*descending=*/highest));
  candidates.scatter_(1, order.narrow(1, 0, count), true);
  return candidates;
}

torch::Tensor makeMask(MaskStrategy strategy, const torch::Tensor& attention,
                       const torch::Tensor& uniform, double p, int64_t num) {
  TORCH_CHECK(uniform.dim() == 2, "makeMask: uniform must be (B, n)");
  auto hit = uniform < p;
  switch (strategy) {
    case MaskStrategy::None: return torch::zeros_like(hit);
    case MaskStrategy::Random: return hit;  // Eq. 3
    case MaskStrategy::AttentionGuided:
    case MaskStrategy::AttentionHigh:
      TORCH_CHECK(attention.defined() && attention.sizes() == uniform.sizes(),
                  "makeMask: attention must be (B, n) like uniform");
      return hit.logical_and(
          maskCandidates(attention, num, strategy == MaskStrategy::AttentionHigh));  // Eq. 5
  }
  return torch::zeros_like(hit);
}

}  // namespace mst
