/// @brief Weighted k-NN classification on L2-normalised features (paper App. D, DINO's protocol).
#pragma once

#include <map>
#include <vector>

#include <torch/torch.h>

namespace mst {

struct KnnOptions {
  std::vector<int64_t> ks{10, 20};
  double temperature = 0.07;  ///< a neighbour's vote weighs exp(similarity / T)
  int64_t num_classes = 10;
  int64_t query_chunk = 0;    ///< test rows per similarity block; 0 = fit ~256 MB of similarities
  int64_t bank_chunk = 0;     ///< training rows per block; 0 = the whole bank at once
};

/// Class predictions (M) int64 for each k. bank: (N, D), queries: (M, D), both L2-normalised
/// (cosine similarity = dot product); bank_labels: (N) int64. Works in blocks of queries and of
/// the bank, keeping a running top-k, so the N×M similarity matrix never exists whole.
std::map<int64_t, torch::Tensor> knnPredict(const torch::Tensor& bank,
                                            const torch::Tensor& bank_labels,
                                            const torch::Tensor& queries,
                                            const KnnOptions& options);

/// Top-1 accuracy in percent for each k.
std::map<int64_t, double> knnAccuracy(const torch::Tensor& bank, const torch::Tensor& bank_labels,
                                      const torch::Tensor& queries,
                                      const torch::Tensor& query_labels, const KnnOptions& options);

}  // namespace mst
