/// @brief Per-class read-out of a classifier on the test split: the confusion matrix and the
/// top-1 of each class, as evaluateKnn and evaluateLinear report them.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mst {

/// A top-1 percentage as reported: 4 decimals, so that 29 % prints as 29.0, not
/// 28.999999999999996.
double roundPercent(double value);

/// Top-1 in percent, unrounded (0 when there is nothing to classify). predicted, truth: (M)
/// integer class indices.
double top1Percent(const torch::Tensor& predicted, const torch::Tensor& truth);

/// confusion: (C, C) int64 on the CPU; [t][p] counts the images of true class t predicted as p
/// (rows = truth, columns = prediction), so row t sums to the images of class t. truth,
/// predicted: (M) integer class indices in [0, num_classes).
torch::Tensor confusionMatrix(const torch::Tensor& truth, const torch::Tensor& predicted,
                              int64_t num_classes);

/// The result line's per-class keys for `confusion` (C, C) as confusionMatrix gives it:
/// "per_class_top1" (C values in percent, 4 decimals; null for a class without test images),
/// "confusion" (C rows of C counts; left out above kMaxConfusionClasses classes, where the matrix
/// would swell the result line and eval.json to megabytes) and, when `class_names` holds C names,
/// "classes".
constexpr int64_t kMaxConfusionClasses = 100;

nlohmann::json perClassReadout(const torch::Tensor& confusion,
                               const std::vector<std::string>& class_names);

/// The per-class keys of a read-out's result as a table for people, headed "<what>, test split,
/// per class:": each class's top-1, its test images and the class its images were most often
/// taken for, then "all" with the result's top-1. Columns line up in characters (UTF-8 names).
/// Empty when the result has no per_class_top1 or no confusion (above kMaxConfusionClasses).
std::string perClassTable(const nlohmann::json& result, const std::string& what);

}  // namespace mst
