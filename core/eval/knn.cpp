/// @brief Weighted k-NN implementation (see knn.h).
#include "core/eval/knn.h"

#include <algorithm>

#include "core/eval/class_readout.h"

namespace mst {

std::map<int64_t, torch::Tensor> knnPredict(const torch::Tensor& bank,
                                            const torch::Tensor& bank_labels,
                                            const torch::Tensor& queries,
                                            const KnnOptions& o) {
  torch::NoGradGuard guard;
  TORCH_CHECK(bank.dim() == 2 && queries.dim() == 2 && bank.size(1) == queries.size(1),
              "knn: bank (N, D) and queries (M, D) must share D");
  TORCH_CHECK(!o.ks.empty(), "knn: no k given");
  const int64_t N = bank.size(0), M = queries.size(0);
  const int64_t kmax = std::min(*std::max_element(o.ks.begin(), o.ks.end()), N);
  const int64_t bank_chunk = o.bank_chunk > 0 ? o.bank_chunk : N;
  const int64_t query_chunk =
      o.query_chunk > 0 ? o.query_chunk
                        : std::clamp<int64_t>((int64_t{64} << 20) / std::max<int64_t>(bank_chunk, 1),
                                              1, std::max<int64_t>(M, 1));
  auto labels = bank_labels.to(bank.device(), torch::kLong);
  std::map<int64_t, std::vector<torch::Tensor>> parts;
  for (int64_t q0 = 0; q0 < M; q0 += query_chunk) {
    auto q = queries.narrow(0, q0, std::min(query_chunk, M - q0)).to(bank.device(), bank.scalar_type());
    torch::Tensor best_sim, best_idx;  // running top-k over the bank blocks seen so far
    for (int64_t b0 = 0; b0 < N; b0 += bank_chunk) {
      const int64_t nb = std::min(bank_chunk, N - b0);
      auto sim = torch::matmul(q, bank.narrow(0, b0, nb).t());
      auto top = sim.topk(std::min(kmax, nb), /*dim=*/1);
      auto sim_b = std::get<0>(top), idx_b = std::get<1>(top) + b0;
      if (best_sim.defined()) {
        sim_b = torch::cat({best_sim, sim_b}, 1);
        idx_b = torch::cat({best_idx, idx_b}, 1);
      }
      auto merged = sim_b.topk(std::min<int64_t>(kmax, sim_b.size(1)), 1);
      best_sim = std::get<0>(merged);
      best_idx = idx_b.gather(1, std::get<1>(merged));
    }
    auto neighbour_labels = labels.index_select(0, best_idx.flatten()).view(best_idx.sizes());
    auto weights = (best_sim / o.temperature).exp();
    for (int64_t k : o.ks) {
      const int64_t kk = std::min(k, best_idx.size(1));
      auto votes = torch::zeros({q.size(0), o.num_classes}, weights.options());
      votes.scatter_add_(1, neighbour_labels.narrow(1, 0, kk), weights.narrow(1, 0, kk));
      parts[k].push_back(votes.argmax(1).cpu());
    }
  }
  std::map<int64_t, torch::Tensor> out;
  for (auto& [k, p] : parts) out[k] = torch::cat(p);
  for (int64_t k : o.ks)
    if (!out.count(k)) out[k] = torch::empty({0}, torch::kLong);
  return out;
}

std::map<int64_t, double> knnAccuracy(const torch::Tensor& bank, const torch::Tensor& bank_labels,
                                      const torch::Tensor& queries,
                                      const torch::Tensor& query_labels, const KnnOptions& o) {
  std::map<int64_t, double> acc;
  auto truth = query_labels.cpu().to(torch::kLong);
  for (auto& [k, pred] : knnPredict(bank, bank_labels, queries, o))
    acc[k] = top1Percent(pred, truth);
  return acc;
}

}  // namespace mst
