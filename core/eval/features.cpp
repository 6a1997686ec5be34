/// @brief Feature extraction implementation (see features.h).
#include "core/eval/features.h"

#include "core/train/engine.h"

namespace mst {

torch::Tensor l2Normalize(const torch::Tensor& x) {
  return torch::nn::functional::normalize(x,
                                          torch::nn::functional::NormalizeFuncOptions().dim(1));
}

FeatureSet extractFeatures(Engine& engine, const Dataset& dataset, FeatureKind kind,
                           int64_t limit, int64_t batch,
                           const std::function<void(int64_t, int64_t)>& progress) {
  torch::NoGradGuard guard;
  const int64_t total = limit > 0 ? std::min(limit, dataset.size()) : dataset.size();
  const auto shape = dataset.shape();
  std::vector<torch::Tensor> features;
  auto labels = torch::empty({total}, torch::kLong);
  auto images = torch::empty({batch, shape.channels, shape.height, shape.width}, torch::kUInt8);
  int64_t kept = 0;  // rows filled; images that fail to decode get none
  for (int64_t start = 0; start < total; start += batch) {
    const int64_t n = std::min(batch, total - start);
    int64_t ok = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!dataset.read(start + i, images[ok].data_ptr<uint8_t>())) continue;
      labels[kept + ok] = dataset.label(start + i);
      ++ok;
    }
    kept += ok;
    if (ok > 0) {
      auto x = images.narrow(0, 0, ok);
      torch::Tensor f;
      switch (kind) {
        case FeatureKind::TeacherCls: f = engine.teacherFeatures(x); break;
        case FeatureKind::TeacherLast4Cls: f = engine.teacherFeatures(x, /*blocks=*/4); break;
        case FeatureKind::TeacherPatchMean: f = engine.teacherPatchMean(x); break;
        case FeatureKind::Pixels:
          f = engine.augment().normalize(engine.augment().toFloat(x)).flatten(1);
          break;
      }
      features.push_back(f.to(torch::kCPU, torch::kFloat));
    }
    if (progress) progress(start + n, total);
  }
  FeatureSet out;
  out.features = features.empty() ? torch::empty({0, 0}) : torch::cat(features);
  out.labels = labels.narrow(0, 0, kept);
  out.corrupt = total - kept;
  return out;
}

}  // namespace mst
