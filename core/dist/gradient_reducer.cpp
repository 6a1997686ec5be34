/// @brief GradientReducer implementation (see gradient_reducer.h).
#include "core/dist/gradient_reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>

namespace mst {

class GradientReducer::ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(GradientReducer* owner, size_t param) : owner_(owner), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    owner_->markReady(param_);
    return outputs;
  }

 private:
  GradientReducer* owner_;
  size_t param_;
};

GradientReducer::GradientReducer(Communicator& comm, std::vector<torch::Tensor> params,
                                 torch::Tensor grads, int64_t bucket_bytes)
    : comm_(comm), grads_(std::move(grads)), params_(std::move(params)) {
  TORCH_CHECK(grads_.dim() == 1 && grads_.is_contiguous(), "GradientReducer: flat grads expected");
  const int64_t cap =
      std::max<int64_t>(1, bucket_bytes / static_cast<int64_t>(grads_.element_size()));
  const auto base = static_cast<const char*>(grads_.data_ptr());
  bucket_of_.resize(params_.size());
  // From the last parameter backwards: each grad is a view at a known offset of grads_.
  int64_t end = -1;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& g = params_[k].grad();
    TORCH_CHECK(g.defined() && g.is_contiguous(), "GradientReducer: parameter ", k,
                " has no flat-buffer gradient view");
    const int64_t offset =
        (static_cast<const char*>(g.data_ptr()) - base) / static_cast<int64_t>(g.element_size());
    const int64_t stop = offset + g.numel();
    if (buckets_.empty() || (end - offset) > cap) {
      Bucket b;
      b.offset = offset;
      b.numel = g.numel();
      buckets_.push_back(std::move(b));
      end = stop;
    } else {
      TORCH_CHECK(stop == buckets_.back().offset, "GradientReducer: gradients are not contiguous");
      buckets_.back().offset = offset;
      buckets_.back().numel = end - offset;
    }
    ++buckets_.back().params;
    bucket_of_[k] = buckets_.size() - 1;
  }
  int64_t covered = 0;
  for (const auto& b : buckets_) covered += b.numel;
  TORCH_CHECK(!buckets_.empty() && buckets_.back().offset == 0 && covered == grads_.numel(),
              "GradientReducer: the parameters' gradients must tile the flat buffer");
  for (size_t k = 0; k < params_.size(); ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[k]);
    TORCH_CHECK(acc, "GradientReducer: parameter ", k, " is not a leaf that requires grad");
    hook_keys_.push_back(acc->add_post_hook(std::make_unique<ReadyHook>(this, k)));
    accumulators_.push_back(std::move(acc));
  }
  prepare();
}

GradientReducer::~GradientReducer() {
  // The accumulators outlive this object (the parameters hold them): unhook.
  for (size_t k = 0; k < accumulators_.size(); ++k) accumulators_[k]->del_post_hook(hook_keys_[k]);
}

void GradientReducer::prepare() {
  for (auto& b : buckets_) {
    b.pending = b.params;
    b.started = false;
  }
}

void GradientReducer::markReady(size_t param) {
  Bucket& b = buckets_[bucket_of_[param]];
  if (--b.pending == 0) start(b);
}

void GradientReducer::start(Bucket& b) {
  if (b.started) return;
  b.started = true;
  b.work =
      comm_.allReduceSumAsync(grads_.narrow(0, b.offset, b.numel),
                              "gradient all-reduce (bucket at " + std::to_string(b.offset) + ")");
}

void GradientReducer::finish() {
  for (auto& b : buckets_) start(b);  // in bucket order: the same on every rank
  for (auto& b : buckets_) comm_.wait(b.work);
  grads_.div_(static_cast<double>(comm_.worldSize()));
}

}  // namespace mst
