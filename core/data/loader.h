/// @brief Batches a Dataset on worker threads, ahead of the training step, in a reproducible order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "core/data/dataset.h"

namespace mst {

struct LoaderOptions {
  int64_t batch_size = 64;
  int64_t seed = 0;
  bool shuffle = true;
  bool drop_last = true;
  int workers = 2;
  int prefetch = 4;
  bool pin_memory = false;  ///< page-locked host tensors (only when CUDA is available)
  /// Data parallel: batch_size is the global batch, which fixes the order and the batches per
  /// epoch; this loader delivers only rows [rank × b, (rank + 1) × b) of each, b = batch_size /
  /// shard_count, so the ranks together read every global batch once.
  int64_t shard_rank = 0, shard_count = 1;
};

struct Batch {
  torch::Tensor images;   ///< (B, C, H, W) uint8
  torch::Tensor labels;   ///< (B) int64
  torch::Tensor indices;  ///< (B) int64 data set indices actually delivered
  int64_t epoch = 0;
  int64_t index = 0;      ///< batch index within the epoch
  int64_t corrupt = 0;    ///< failed reads replaced while decoding it
};

/// The order of epoch e is a permutation drawn from (seed, e) alone, so a run resumed at
/// (epoch, batch) sees exactly the batches the uninterrupted run would have seen. A corrupt image
/// is replaced by the next readable index (deterministically) and counted.
///
/// Threading: start(), next() and the destructor are called from one consumer thread; workers
/// only touch the queue under `mutex_` and read the dataset through its thread-safe read().
/// Each batch is split into as many row ranges as there are workers, claimed one at a time, so
/// every worker helps with the earliest undelivered batch: the first batch of an epoch is ready
/// as soon as the workers together have decoded it, and `prefetch` (batches begun ahead of the
/// consumer) bounds memory without idling workers beyond it. The workers run on past the end of
/// an epoch into the next one: start(e + 1) right after epoch e's last batch finds its first
/// batches ready (a small data set's epochs do not each begin with an empty queue).
class Loader {
 public:
  Loader(const Dataset& dataset, LoaderOptions options);
  ~Loader();  ///< stops and joins the workers
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batchesPerEpoch() const;
  /// Starts delivering epoch `epoch` from batch `first_batch`: continues the batches in flight
  /// when they lead there (epoch e + 1 after epoch e's end), else stops them and starts afresh.
  void start(int64_t epoch, int64_t first_batch = 0);
  /// Next batch in order, or nullopt at the end of the epoch.
  std::optional<Batch> next();
  /// Images that failed to decode in the batches delivered so far (each counted once per failed
  /// read; batches decoded ahead count when next() delivers them).
  int64_t corruptCount() const { return corrupt_.load(); }

 private:
  void stopWorkers();
  void workerLoop();
  /// This shard's rows of batch `batch_index`: the position in the epoch's order of its first
  /// row, and how many rows it has (the whole batch when not sharded; fewer at the epoch's end).
  std::pair<int64_t, int64_t> shardRows(int64_t batch_index) const;
  /// The tensors of batch `global_index` (epoch × batches per epoch + index; pinned when
  /// pin_), unfilled, with its epoch and index set.
  Batch allocateBatch(int64_t global_index) const;
  /// Decodes rows [begin, end) of `batch` (its epoch's `order`) into it; returns the failed
  /// reads it replaced.
  int64_t fillRows(Batch& batch, const torch::Tensor& order, int64_t begin, int64_t end);
  /// The permutation of epoch `epoch`, made on first use (under mutex_).
  const torch::Tensor& orderOf(int64_t epoch);

  /// A batch being decoded: its row ranges still out, and the error of the lowest failed one.
  struct Building {
    Batch batch;
    torch::Tensor order;  ///< its epoch's permutation
    int64_t parts = 1;
    int64_t parts_left = 1;
    int64_t error_part = std::numeric_limits<int64_t>::max();
    std::exception_ptr error;
  };

  const Dataset& dataset_;
  LoaderOptions options_;
  // Batches are counted across epochs: global index = epoch × per_epoch_ + index in the epoch.
  std::map<int64_t, torch::Tensor> orders_;  ///< (N) int64 permutation of each epoch in flight
  int64_t per_epoch_ = 0;
  int64_t deliver_end_ = 0;  ///< next() returns nullopt from this global index on (epoch end)
  int64_t next_to_deliver_ = 0;
  int64_t next_to_claim_ = 0;
  int64_t next_part_ = 0;  ///< the next unclaimed row range of batch next_to_claim_
  std::map<int64_t, Building> building_;  ///< claimed batches not yet whole
  std::map<int64_t, Batch> ready_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> corrupt_{0};
  std::vector<std::thread> workers_;
  /// First exception thrown by a worker, rethrown by next() once the batches before
  /// `error_batch_` are delivered; workers claim nothing at or after `error_batch_`.
  std::exception_ptr error_;
  int64_t error_batch_ = std::numeric_limits<int64_t>::max();
  bool pin_ = false;  ///< options_.pin_memory and CUDA is available
};

}  // namespace mst
