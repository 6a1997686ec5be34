/// @brief Averages the flat gradient buffer over ranks in buckets, overlapping the backward pass.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/dist/communicator.h"
#include "core/util/torch_compat.h"

namespace mst {

/// Buckets are contiguous ranges of the flat gradient buffer (FlatParams), laid out from its end
/// because backward produces the last layers' gradients first; each holds at most `bucket_bytes`
/// (a larger parameter gets a bucket of its own).
///
/// Overlap, as LibTorch 1.13 allows it: a post-hook on each parameter's AccumulateGrad node (the
/// mechanism c10d's Reducer uses; 1.13 has no post-accumulate-grad tensor hooks) counts down its
/// bucket, and a bucket whose every gradient is final starts an asynchronous all-reduce while
/// backward goes on with earlier layers. Gloo runs it on its own threads, NCCL on its own stream.
/// Hooks fire on the autograd thread in graph order, which is the same on every rank, so the
/// buckets start in the same order everywhere, as c10d requires.
class GradientReducer {
 public:
  /// `params`: the leaf parameters in flat-buffer order, each with .grad a view of `grads` (1-D).
  GradientReducer(Communicator& comm, std::vector<torch::Tensor> params, torch::Tensor grads,
                  int64_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Before backward: re-arms the bucket counters.
  void prepare();
  /// After backward: starts any bucket whose parameters got no gradient this step, waits for all,
  /// and divides by the world size. Then `grads` holds the mean over ranks.
  void finish();
  int64_t bucketCount() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    int64_t offset = 0, numel = 0;
    int64_t params = 0;  ///< parameters whose gradient lands in it
    int64_t pending = 0;
    Communicator::Pending work;
    bool started = false;
  };
  class ReadyHook;
  void markReady(size_t param);
  void start(Bucket& bucket);

  Communicator& comm_;
  torch::Tensor grads_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;              ///< per parameter
  std::vector<AutogradNodePtr> accumulators_;  ///< kept alive: hooks on them
  std::vector<uintptr_t> hook_keys_;
  std::vector<torch::Tensor> params_;
};

}  // namespace mst
