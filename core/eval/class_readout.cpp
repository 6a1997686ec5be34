/// @brief Confusion matrix and per-class top-1 (see class_readout.h).
#include "core/eval/class_readout.h"

#include <cmath>

namespace mst {

double roundPercent(double value) { return std::round(value * 1e4) / 1e4; }

double top1Percent(const torch::Tensor& predicted, const torch::Tensor& truth) {
  if (truth.numel() == 0) return 0.0;
  return 100.0 * predicted.cpu()
                     .to(torch::kLong)
                     .eq(truth.cpu().to(torch::kLong))
                     .to(torch::kDouble)
                     .mean()
                     .item<double>();
}

torch::Tensor confusionMatrix(const torch::Tensor& truth, const torch::Tensor& predicted,
                              int64_t num_classes) {
  TORCH_CHECK(num_classes >= 1, "confusionMatrix: num_classes must be >= 1, got ", num_classes);
  TORCH_CHECK(truth.dim() == 1 && predicted.dim() == 1 && truth.size(0) == predicted.size(0),
              "confusionMatrix: truth (M) and predicted (M) disagree");
  auto t = truth.cpu().to(torch::kLong), p = predicted.cpu().to(torch::kLong);
  if (t.numel() > 0)
    TORCH_CHECK(t.min().item<int64_t>() >= 0 && t.max().item<int64_t>() < num_classes &&
                    p.min().item<int64_t>() >= 0 && p.max().item<int64_t>() < num_classes,
                "confusionMatrix: a class index outside [0, ", num_classes, ")");
  // One bin per (truth, prediction) pair, row-major: row t holds class t's images.
  return torch::bincount(t * num_classes + p, /*weights=*/{},
                         /*minlength=*/num_classes * num_classes)
      .view({num_classes, num_classes});
}

nlohmann::json perClassReadout(const torch::Tensor& confusion,
                               const std::vector<std::string>& class_names) {
  TORCH_CHECK(confusion.dim() == 2 && confusion.size(0) == confusion.size(1),
              "perClassReadout: confusion must be (C, C)");
  const auto counts = confusion.cpu().to(torch::kLong).contiguous();
  const int64_t C = counts.size(0);
  const auto* c = counts.data_ptr<int64_t>();
  nlohmann::json per_class = nlohmann::json::array(), matrix = nlohmann::json::array();
  for (int64_t t = 0; t < C; ++t) {
    int64_t images = 0;
    nlohmann::json row = nlohmann::json::array();
    for (int64_t p = 0; p < C; ++p) {
      images += c[t * C + p];
      row.push_back(c[t * C + p]);
    }
    matrix.push_back(std::move(row));
    // No test image of the class: its top-1 is unknown, not 0 (an ImageFolder val split may lack
    // a class; a --test-limit prefix may miss one).
    per_class.push_back(
        images == 0 ? nlohmann::json()
                    : nlohmann::json(roundPercent(100.0 * static_cast<double>(c[t * C + t]) /
                                                  static_cast<double>(images))));
  }
  nlohmann::json out{{"per_class_top1", std::move(per_class)}};
  if (C <= kMaxConfusionClasses) out["confusion"] = std::move(matrix);
  if (static_cast<int64_t>(class_names.size()) == C) out["classes"] = class_names;
  return out;
}

}  // namespace mst
