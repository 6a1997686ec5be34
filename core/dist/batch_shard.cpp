/// @brief BatchShard implementation (see batch_shard.h).
#include "core/dist/batch_shard.h"

namespace mst {

namespace {

/// torch::rand on the generator's own device, moved to `options`' device when they differ (a CPU
/// generator feeding a CUDA step: the CPU-vs-CUDA agreement checks draw the same numbers so).
torch::Tensor draw(at::IntArrayRef shape, at::Generator& gen, const torch::TensorOptions& options) {
  if (gen.device().type() == options.device().type()) return torch::rand(shape, gen, options);
  return torch::rand(shape, gen, options.device(gen.device())).to(options.device());
}

}  // namespace

torch::Tensor BatchShard::rand(at::IntArrayRef shape, at::Generator& gen,
                               const torch::TensorOptions& options) const {
  if (whole()) return draw(shape, gen, options);
  TORCH_CHECK(!shape.empty() && groups >= 1 && shape[0] % groups == 0, "BatchShard: ", shape[0],
              " rows are not ", groups, " equal blocks");
  const int64_t local = shape[0] / groups;
  TORCH_CHECK(offset + local <= global, "BatchShard: rows ", offset, "+", local,
              " exceed the global block of ", global);
  // Same element count as the single-process draw, hence the same numbers (CPU and CUDA
  // generators fill a tensor in element order whatever its shape).
  std::vector<int64_t> full{groups, global};
  full.insert(full.end(), shape.begin() + 1, shape.end());
  return draw(full, gen, options).narrow(1, offset, local).reshape(shape);
}

}  // namespace mst
