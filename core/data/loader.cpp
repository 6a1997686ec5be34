/// @brief Loader: in-order batches from worker threads, bounded queue, (seed, epoch) orders.
#include "core/data/loader.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>

#include "core/util/error.h"

namespace mst {
namespace {

/// splitmix64 finaliser: neighbouring (seed, epoch) pairs give unrelated generator states.
uint64_t splitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Depends on (seed, epoch) only, never on how many epochs ran before: that is what makes a
/// resumed run see the same order. Folded to 32 bits because the CPU mt19937 keeps only those.
uint64_t epochSeed(int64_t seed, int64_t epoch) {
  const uint64_t mixed =
      splitMix64(splitMix64(static_cast<uint64_t>(seed)) ^ static_cast<uint64_t>(epoch));
  return (mixed ^ (mixed >> 32)) & 0xffffffffULL;
}

}  // namespace

Loader::Loader(const Dataset& dataset, LoaderOptions options)
    : dataset_(dataset), options_(options) {
  if (options_.batch_size <= 0) {
    throw MstError("loader: batch size must be positive, got " +
                   std::to_string(options_.batch_size));
  }
  if (options_.shard_count < 1 || options_.shard_rank < 0 ||
      options_.shard_rank >= options_.shard_count ||
      options_.batch_size % options_.shard_count != 0) {
    throw MstError("loader: shard " + std::to_string(options_.shard_rank) + " of " +
                   std::to_string(options_.shard_count) + " does not divide the batch of " +
                   std::to_string(options_.batch_size));
  }
  options_.workers = std::max(1, options_.workers);
  options_.prefetch = std::max(1, options_.prefetch);
  pin_ = options_.pin_memory && torch::cuda::is_available();
}

Loader::~Loader() { stopWorkers(); }

int64_t Loader::batchesPerEpoch() const {
  const int64_t n = dataset_.size();
  const int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void Loader::start(int64_t epoch, int64_t first_batch) {
  const int64_t batches = batchesPerEpoch();
  if (first_batch < 0 || first_batch > batches) {
    throw MstError("loader: cannot start epoch " + std::to_string(epoch) + " at batch " +
                   std::to_string(first_batch) + ": an epoch has " + std::to_string(batches) +
                   " batches of " + std::to_string(options_.batch_size));
  }
  if (epoch < 0) throw MstError("loader: cannot start epoch " + std::to_string(epoch));
  const int64_t target = epoch * batches + first_batch;
  {
    // Where the batches in flight already lead (the next epoch after the last one's end), the
    // workers go on: the first batches of the new epoch are decoded or on their way.
    std::lock_guard<std::mutex> lock(mutex_);
    if (!workers_.empty() && !stopping_ && per_epoch_ == batches && next_to_deliver_ == target &&
        (error_ == nullptr || error_batch_ > target)) {  // a failed batch is decoded again
      deliver_end_ = (epoch + 1) * batches;
      orders_.erase(orders_.begin(), orders_.lower_bound(epoch));
      return;
    }
  }
  stopWorkers();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    per_epoch_ = batches;
    deliver_end_ = (epoch + 1) * batches;
    next_to_deliver_ = target;
    next_to_claim_ = target;
    next_part_ = 0;
    building_.clear();
    ready_.clear();
    orders_.clear();
    error_ = nullptr;
    error_batch_ = std::numeric_limits<int64_t>::max();
    stopping_ = false;
  }
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back(&Loader::workerLoop, this);
}

const torch::Tensor& Loader::orderOf(int64_t epoch) {
  auto it = orders_.find(epoch);
  if (it != orders_.end()) return it->second;
  const int64_t n = dataset_.size();
  torch::Tensor order;
  if (options_.shuffle) {
    at::Generator generator = at::detail::createCPUGenerator(epochSeed(options_.seed, epoch));
    order = torch::randperm(n, generator, torch::kInt64);
  } else {
    order = torch::arange(n, torch::kInt64);
  }
  return orders_.emplace(epoch, std::move(order)).first->second;
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_to_deliver_ >= deliver_end_) return std::nullopt;
  // Every batch below error_batch_ was claimed before the failure and will arrive, so this wait
  // ends: the consumer sees the same batches, then the same exception, whatever the timing.
  cv_.wait(lock, [this] {
    return ready_.count(next_to_deliver_) > 0 || next_to_deliver_ >= error_batch_;
  });
  auto it = ready_.find(next_to_deliver_);
  if (it == ready_.end()) std::rethrow_exception(error_);
  Batch batch = std::move(it->second);
  ready_.erase(it);
  ++next_to_deliver_;
  corrupt_ += batch.corrupt;
  lock.unlock();
  cv_.notify_all();  // a prefetch slot is free
  return batch;
}

void Loader::stopWorkers() {
  {
    // Under the lock so a worker between its predicate check and its wait cannot miss the flag.
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(mutex_);
  building_.clear();
  ready_.clear();
  deliver_end_ = next_to_deliver_;  // nothing left to wait for: next() returns nullopt
}

void Loader::workerLoop() {
  const int64_t prefetch = options_.prefetch;
  for (;;) {
    int64_t batch_index = 0, part = 0;
    Building* job = nullptr;  // stays valid: only its last part's worker (or a join) erases it
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Batches are numbered across epochs (epoch × batches per epoch + index): the workers run
      // on into the next epoch, whose order depends on (seed, epoch) alone.
      const auto more = [&] { return per_epoch_ > 0 && next_to_claim_ < error_batch_; };
      // A begun batch takes every helper; a new one starts only while fewer than `prefetch`
      // claimed batches wait for the consumer: that bounds memory.
      cv_.wait(lock, [&] {
        return stopping_ || !more() || next_part_ > 0 ||
               next_to_claim_ - next_to_deliver_ < prefetch;
      });
      if (stopping_ || !more()) return;
      batch_index = next_to_claim_;
      if (next_part_ == 0) {
        // Allocated here, under the lock, so that every part finds its tensors (pinned memory
        // comes from LibTorch's caching host allocator: fast after the first batches).
        Batch batch;
        torch::Tensor order;
        try {
          batch = allocateBatch(batch_index);
          order = orderOf(batch_index / per_epoch_);
        } catch (...) {  // the consumer gets it in order, like a failed decode
          if (batch_index < error_batch_) {
            error_ = std::current_exception();
            error_batch_ = batch_index;
          }
          lock.unlock();
          cv_.notify_all();
          continue;
        }
        Building& b = building_[batch_index];
        b.batch = std::move(batch);
        b.order = std::move(order);
        b.parts = std::max<int64_t>(1, std::min<int64_t>(options_.workers, b.batch.images.size(0)));
        b.parts_left = b.parts;
      }
      job = &building_.at(batch_index);
      part = next_part_;
      if (++next_part_ == job->parts) {
        next_part_ = 0;
        ++next_to_claim_;
      }
    }
    const int64_t rows = job->batch.images.size(0);
    std::exception_ptr error;
    int64_t failed_reads = 0;
    try {
      failed_reads = fillRows(job->batch, job->order, part * rows / job->parts,
                              (part + 1) * rows / job->parts);
    } catch (...) {
      // Carried to the consumer thread: an exception escaping a std::thread would terminate.
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job->batch.corrupt += failed_reads;
      if (error && part < job->error_part) {  // the same error whatever the timing
        job->error = error;
        job->error_part = part;
      }
      if (--job->parts_left == 0) {
        if (job->error) {
          if (batch_index < error_batch_) {
            error_ = job->error;
            error_batch_ = batch_index;
          }
        } else if (!stopping_) {
          ready_.emplace(batch_index, std::move(job->batch));
        }
        building_.erase(batch_index);
      }
    }
    cv_.notify_all();
  }
}

std::pair<int64_t, int64_t> Loader::shardRows(int64_t batch_index) const {
  const int64_t local = options_.batch_size / options_.shard_count;
  const int64_t first = batch_index * options_.batch_size + options_.shard_rank * local;
  return {first, std::max<int64_t>(0, std::min(local, dataset_.size() - first))};
}

Batch Loader::allocateBatch(int64_t global_index) const {
  const int64_t count = shardRows(global_index % per_epoch_).second;
  const ImageShape shape = dataset_.shape();
  // Allocated page-locked up front rather than pinned afterwards: saves one copy per batch.
  const auto options = torch::TensorOptions().pinned_memory(pin_);
  Batch batch;
  batch.epoch = global_index / per_epoch_;
  batch.index = global_index % per_epoch_;
  batch.images = torch::empty({count, shape.channels, shape.height, shape.width},
                              options.dtype(torch::kUInt8));
  batch.labels = torch::empty({count}, options.dtype(torch::kInt64));
  batch.indices = torch::empty({count}, options.dtype(torch::kInt64));
  return batch;
}

int64_t Loader::fillRows(Batch& batch, const torch::Tensor& order_tensor, int64_t begin,
                         int64_t end) {
  const int64_t n = dataset_.size();
  const int64_t first = shardRows(batch.index).first;
  const int64_t bytes = dataset_.shape().bytes();
  uint8_t* images = batch.images.data_ptr<uint8_t>();
  int64_t* labels = batch.labels.data_ptr<int64_t>();
  int64_t* indices = batch.indices.data_ptr<int64_t>();
  const int64_t* order = order_tensor.data_ptr<int64_t>();
  int64_t failed = 0;
  for (int64_t i = begin; i < end; ++i) {
    // A decode can take milliseconds: check between images so start()/~Loader() return quickly.
    if (stopping_) return failed;
    int64_t index = order[first + i];
    int64_t attempts = 0;
    // Replacement walks the data set order, not the permutation, so it is the same every epoch.
    while (!dataset_.read(index, images + i * bytes)) {
      ++failed;
      if (++attempts >= n) {
        throw MstError("loader: no image of " + dataset_.describe() + " could be decoded");
      }
      index = (index + 1) % n;
    }
    labels[i] = dataset_.label(index);
    indices[i] = index;
  }
  return failed;
}

}  // namespace mst
