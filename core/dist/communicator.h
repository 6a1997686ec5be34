/// @brief The process group of a data-parallel run (c10d: TCPStore, Gloo on CPU, NCCL on CUDA).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/dist/dist_context.h"

namespace mst {

/// One rank's handle on the run's process group. c10d's headers (and gloo's) stay in the .cpp.
///
/// Errors: every collective waits at most context.timeout for its peers, then throws MstError
/// with one line naming this rank and the operation; a peer that died fails it at once.
/// Threading: collectives must be issued in the same order on every rank; calls from the
/// autograd thread (SyncBN, gradient buckets) keep that order because every rank runs the same
/// graph. An instance is used by one training thread (and its backward) only.
class Communicator {
 public:
  /// In-flight asynchronous collective; wait() on it through the communicator.
  class Pending {
   public:
    Pending();
    ~Pending();
    Pending(Pending&&) noexcept;
    Pending& operator=(Pending&&) noexcept;
    bool active() const;

   private:
    friend class Communicator;
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string what_;
  };

  /// Rendezvous at master_addr:master_port (rank 0 hosts the TCPStore), then the process group
  /// for `device`: Gloo on the CPU, NCCL on CUDA (CUDA builds only).
  Communicator(const DistContext& context, const torch::Device& device);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return context_.rank; }
  int worldSize() const { return context_.world_size; }
  const DistContext& context() const { return context_; }
  /// "Gloo" or "NCCL".
  std::string backendName() const;

  /// Every tensor (dense, contiguous, on the device) becomes rank `root`'s, in place.
  void broadcast(std::vector<torch::Tensor> tensors, int root = 0);
  /// Element-wise sum over ranks, in place (and waited for).
  void allReduceSum(torch::Tensor& tensor);
  /// Starts a sum all-reduce of `tensor` in place; the tensor must not be touched until wait().
  Pending allReduceSumAsync(torch::Tensor tensor, const std::string& what);
  void wait(Pending& pending);
  /// Returns once every rank has called it.
  void barrier();

 private:
  [[noreturn]] void fail(const std::string& what, const std::exception& e) const;

  DistContext context_;
  torch::Device device_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mst
