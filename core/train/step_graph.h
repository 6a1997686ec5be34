/// @brief One training step captured as a CUDA graph and replayed (train.cuda_graph).
///
/// A ViT step is thousands of small kernels: launched one by one from the host, the GPU waits on
/// the launches. Captured once, the whole step (augmentation, teacher, mask, student, decoder,
/// backward, clipping, AdamW, EMA, centre) is one graph launch. Randomness stays a function of
/// (seed, step): the step's generator is registered with the graph and re-seeded before every
/// replay, so a replay draws what an eager step with the same seed draws.
#pragma once

#include <functional>
#include <memory>

#include <torch/torch.h>

namespace mst {

/// `images` on `device`. A pinned host tensor bound for CUDA is copied on a side stream that the
/// current stream then waits for, so the copy overlaps the tail of the step still running on the
/// GPU (the host is usually a step ahead); otherwise a plain (non-blocking) copy. Lives here, in
/// the one file that holds the newer CUDA APIs (a build without MST_CUDA_GRAPHS has the plain copy).
torch::Tensor toDeviceOverlapped(const torch::Tensor& images, const torch::Device& device);

class StepGraph {
 public:
  /// True in builds with CUDA graphs (the GPU machine's LibTorch 2.x); false on Debian's CPU build.
  static bool available();

  explicit StepGraph(const torch::Device& device);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  /// Records what `enqueue` launches on a side stream (nothing runs). `gen` is the generator
  /// the step draws from; it is registered with the graph. Frees the allocator's cached blocks
  /// first, so the graph's private pool does not double the memory of the eager steps.
  void capture(const std::function<void()>& enqueue, at::Generator& gen);
  /// Launches the captured step on the current stream.
  void replay();
  bool captured() const { return captured_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool captured_ = false;
};

}  // namespace mst
