/// @brief StepGraph implementation (see step_graph.h).
#include "core/train/step_graph.h"

#include <optional>

#include "core/util/error.h"

#if defined(MST_HAVE_CUDA) && TORCH_VERSION_MAJOR >= 2 && !defined(MST_NO_CUDA_GRAPHS)
#define MST_HAVE_CUDA_GRAPH 1
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace mst {

#ifdef MST_HAVE_CUDA_GRAPH

torch::Tensor toDeviceOverlapped(const torch::Tensor& images, const torch::Device& device) {
  if (!device.is_cuda() || images.is_cuda() || !images.is_pinned())
    return images.to(device, /*non_blocking=*/true);
  const c10::DeviceIndex index = device.has_index() ? device.index() : 0;
  auto compute = c10::cuda::getCurrentCUDAStream(index);
  static thread_local std::optional<c10::cuda::CUDAStream> copy_stream;
  if (!copy_stream || copy_stream->device_index() != index)
    copy_stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index);
  torch::Tensor out;
  {
    c10::cuda::CUDAStreamGuard guard(*copy_stream);
    out = images.to(device, /*non_blocking=*/true);
  }
  at::cuda::CUDAEvent copied;
  copied.record(*copy_stream);
  copied.block(compute);
  // Allocated on the copy stream, used on the compute stream: the allocator must not hand the
  // block out again before the step that reads it is done.
  c10::cuda::CUDACachingAllocator::recordStream(out.storage().data_ptr(), compute);
  return out;
}

struct StepGraph::Impl {
  explicit Impl(const torch::Device& d) : device(d.has_index() ? d.index() : 0) {}
  c10::DeviceIndex device;
  at::cuda::CUDAGraph graph;
};

bool StepGraph::available() { return true; }

StepGraph::StepGraph(const torch::Device& device) : impl_(std::make_unique<Impl>(device)) {
  if (!device.is_cuda()) throw MstError("train.cuda_graph needs a CUDA device (got " + device.str() + ")");
}

StepGraph::~StepGraph() = default;

void StepGraph::capture(const std::function<void()>& enqueue, at::Generator& gen) {
  c10::cuda::CUDAGuard device_guard(impl_->device);
  // Everything queued so far (the eager steps) must be done before the capture's stream starts,
  // and their cached blocks go back to the driver: the graph keeps its own pool.
  torch::cuda::synchronize(impl_->device);
  c10::cuda::CUDACachingAllocator::emptyCache();
  auto side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, impl_->device);
  {
    c10::cuda::CUDAStreamGuard stream_guard(side);
    impl_->graph.register_generator_state(gen);
    // Thread-local mode: the data loader's threads may allocate pinned memory meanwhile.
    impl_->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    try {
      enqueue();
    } catch (...) {
      try {
        impl_->graph.capture_end();
      } catch (...) {
      }
      throw;
    }
    impl_->graph.capture_end();
  }
  torch::cuda::synchronize(impl_->device);
  captured_ = true;
}

void StepGraph::replay() {
  c10::cuda::CUDAGuard device_guard(impl_->device);
  impl_->graph.replay();
}

#else

torch::Tensor toDeviceOverlapped(const torch::Tensor& images, const torch::Device& device) {
  return images.to(device, /*non_blocking=*/true);
}

struct StepGraph::Impl {};

bool StepGraph::available() { return false; }

StepGraph::StepGraph(const torch::Device& device) {
  throw MstError("train.cuda_graph needs a CUDA build of LibTorch 2.x (this one is " +
                 std::string(device.is_cuda() ? "too old" : "CPU only") + ")");
}

StepGraph::~StepGraph() = default;

void StepGraph::capture(const std::function<void()>&, at::Generator&) {}

void StepGraph::replay() {}

#endif

}  // namespace mst
