/// @brief Confusion matrix and per-class top-1 (see class_readout.h).
#include "core/eval/class_readout.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

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

std::string perClassTable(const nlohmann::json& result, const std::string& what) {
  if (!result.contains("per_class_top1") || !result.contains("confusion")) return {};
  const nlohmann::json& top1 = result["per_class_top1"];
  const nlohmann::json& confusion = result["confusion"];
  const size_t C = top1.size();
  const bool named = result.contains("classes") && result["classes"].size() == C;
  std::vector<std::string> names;
  for (size_t c = 0; c < C; ++c)
    names.push_back(named ? result["classes"][c].get<std::string>() : std::to_string(c));
  // Widths in characters, not bytes: an ImageFolder class may be named "café".
  auto length = [](const std::string& text) {
    return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
      return (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // not a UTF-8 continuation byte
    }));
  };
  size_t width = 5;  // "class"
  for (const auto& name : names) width = std::max(width, length(name));
  auto pad = [&](const std::string& text) {
    return text + std::string(width - std::min(width, length(text)), ' ');
  };
  auto right = [](const std::string& text, size_t n) {
    return std::string(n - std::min(n, text.size()), ' ') + text;
  };
  auto fixed2 = [](double v) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.2f", v);
    return std::string(text);
  };
  std::ostringstream table;
  table << what << ", test split, per class:\n  " << pad("class")
        << "  top-1 %  images  most often taken for\n";
  int64_t total = 0;
  for (size_t t = 0; t < C; ++t) {
    int64_t images = 0, wrong = 0;
    size_t taken_for = t;
    for (size_t p = 0; p < C; ++p) {
      const auto n = confusion[t][p].get<int64_t>();
      images += n;
      if (p != t && n > wrong) wrong = n, taken_for = p;
    }
    total += images;
    table << "  " << pad(names[t]) << "  "
          << right(top1[t].is_null() ? "-" : fixed2(top1[t].get<double>()), 7) << "  "
          << right(std::to_string(images), 6);
    if (wrong > 0) table << "  " << names[taken_for] << " (" << wrong << ")";
    table << "\n";
  }
  const char* key = result.contains("knn_top1") ? "knn_top1" : "linear_top1";
  if (result.contains(key) && result[key].is_number())
    table << "  " << pad("all") << "  " << right(fixed2(result[key].get<double>()), 7) << "  "
          << right(std::to_string(total), 6) << "\n";
  return table.str();
}

}  // namespace mst
