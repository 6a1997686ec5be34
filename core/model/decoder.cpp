/// @brief Global image decoder implementation (see decoder.h).
#include "core/model/decoder.h"

#include <cmath>

#include "core/dist/sync_batch_norm.h"

namespace mst {

std::vector<int64_t> decoderWidths(const ModelConfig& c) {
  if (!c.decoder_widths.empty()) return c.decoder_widths;
  std::vector<int64_t> widths;
  int64_t w = 256;
  for (int64_t p = c.patch_size; p > 1; p >>= 1, w = std::max<int64_t>(w / 2, 1)) widths.push_back(w);
  return widths;
}

DecoderImpl::DecoderImpl(const ModelConfig& c) {
  namespace nn = torch::nn;
  stages = register_module("stages", nn::Sequential());
  int64_t in = c.dim;
  for (int64_t w : decoderWidths(c)) {
    stages->push_back(nn::Conv2d(nn::Conv2dOptions(in, w, 3).padding(1).bias(false)));
    stages->push_back(nn::BatchNorm2d(w));
    stages->push_back(nn::ReLU(nn::ReLUOptions(true)));
    stages->push_back(nn::Upsample(
        nn::UpsampleOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest)));
    in = w;
  }
  out = register_module("out", nn::Conv2d(nn::Conv2dOptions(in, c.channels, 3).padding(1)));
}

torch::Tensor upsampleNearest2x(const torch::Tensor& x) {
  // Each pixel repeated 2x2 by a broadcast copy: the values of nearest upsampling, in the input's
  // dtype and layout. (Autocast runs upsample_nearest2d in fp32, which doubled the traffic of the
  // decoder's largest tensors and cast them back for the next convolution.)
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous()) {
    auto nhwc = x.permute({0, 2, 3, 1});  // dense (B, H, W, C)
    return nhwc.unsqueeze(2).unsqueeze(4).expand({B, H, 2, W, 2, C}).reshape({B, 2 * H, 2 * W, C})
        .permute({0, 3, 1, 2});
  }
  return x.unsqueeze(3).unsqueeze(5).expand({B, C, H, 2, W, 2}).reshape({B, C, 2 * H, 2 * W});
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& patches) {
  const int64_t B = patches.size(0), n = patches.size(1), D = patches.size(2);
  const auto g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  TORCH_CHECK(g * g == n, "Decoder: patch count ", n, " is not a square grid");
  torch::Tensor x;
  if (patches.is_cuda()) {
    // (B, g, g, D) is already the channels-last layout of (B, D, g, g): cuDNN's NHWC kernels
    // (with tensor cores under bf16) take it without a transposition.
    x = patches.reshape({B, g, g, D}).permute({0, 3, 1, 2}).contiguous(at::MemoryFormat::ChannelsLast);
  } else {
    x = patches.transpose(1, 2).reshape({B, D, g, g});
  }
  for (auto& stage : *stages) {
    if (auto* bn = stage.ptr()->as<torch::nn::BatchNorm2dImpl>(); bn && sync_ && is_training())
      x = syncBatchNorm(x, *bn, *sync_);
    else if (stage.ptr()->as<torch::nn::UpsampleImpl>())
      x = upsampleNearest2x(x);
    else
      x = stage.forward<torch::Tensor>(x);
  }
  return out(x);
}

}  // namespace mst
