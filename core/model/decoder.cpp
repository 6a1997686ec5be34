/// @brief Global image decoder implementation (see decoder.h).
#include "core/model/decoder.h"

#include <cmath>

#include "core/dist/sync_batch_norm.h"
#include "core/kernels/decoder_norm.h"
#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"

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

namespace {

/// out[n, c, 2i+a, 2j+b] = y[n, (2a+b) C + c, i+a, j+b] for y (B, K ≥ 4C, H+1, W+1): an affine
/// gather, so one strided view of y over (n, c, i, a, j, b) and one copy, in y's memory format.
/// Its backward pass writes the gradient back through the same view into zeros: every element of
/// y is read at most once, so nothing is summed.
class PhaseGather : public torch::autograd::Function<PhaseGather> {
 public:
  static torch::Tensor view(const torch::Tensor& y, int64_t C) {
    const int64_t B = y.size(0), H = y.size(2) - 1, W = y.size(3) - 1;
    const auto st = y.strides();
    return y.as_strided({B, C, H, 2, W, 2},
                        {st[0], st[1], st[2], 2 * C * st[1] + st[2], st[3], C * st[1] + st[3]},
                        y.storage_offset());
  }
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& y,
                               int64_t C) {
    ctx->saved_data["C"] = C;
    ctx->saved_data["sizes"] = y.sizes().vec();
    const bool nhwc = y.is_contiguous(at::MemoryFormat::ChannelsLast) && !y.is_contiguous();
    ctx->saved_data["nhwc"] = nhwc;
    const int64_t B = y.size(0), H = y.size(2) - 1, W = y.size(3) - 1;
    auto out = torch::empty({B, C, 2 * H, 2 * W}, y.options().memory_format(
                                                      nhwc ? at::MemoryFormat::ChannelsLast
                                                           : at::MemoryFormat::Contiguous));
    out.view({B, C, H, 2, W, 2}).copy_(view(y, C));
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const int64_t C = ctx->saved_data["C"].toInt();
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    const bool nhwc = ctx->saved_data["nhwc"].toBool();
    auto dy = torch::zeros(sizes, grads[0].options().memory_format(
                                      nhwc ? at::MemoryFormat::ChannelsLast
                                           : at::MemoryFormat::Contiguous));
    const auto& g = grads[0];
    const int64_t B = sizes[0], H = sizes[2] - 1, W = sizes[3] - 1;
    view(dy, C).copy_(g.as_strided({B, C, H, 2, W, 2},
                                   {g.stride(0), g.stride(1), 2 * g.stride(2), g.stride(2),
                                    2 * g.stride(3), g.stride(3)},
                                   g.storage_offset()));
    return {dy, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor phaseGather(const torch::Tensor& y, int64_t C) { return PhaseGather::apply(y, C); }

torch::Tensor upsampleConv2x(const torch::Tensor& x, torch::nn::Conv2dImpl& conv) {
  return PhaseGather::apply(upsampleConvPhases(x, conv), conv.weight.size(0));
}

int64_t paddedPhaseChannels(int64_t C_out) { return (4 * C_out + 7) / 8 * 8; }

torch::Tensor upsampleConvPhases(const torch::Tensor& x, torch::nn::Conv2dImpl& conv,
                                 int64_t channels) {
  const auto& o = conv.options;
  // (The decoder builds its convolutions with padding 1, which the phase kernels below assume.)
  TORCH_CHECK(conv.weight.dim() == 4 && conv.weight.size(2) == 3 && conv.weight.size(3) == 3 &&
                  o.stride()->at(0) == 1 && o.stride()->at(1) == 1 && o.groups() == 1,
              "upsampleConv2x: needs a 3x3 convolution with stride 1");
  const auto& w = conv.weight;  // (C_out, C_in, 3, 3)
  // Along one axis, output phase 0 (even row 2i) sees input rows i-1, i, i with taps w0, w1, w2,
  // and phase 1 (odd row 2i+1) sees i, i, i+1: two taps each, [w0, w1 + w2] over rows (i-1, i)
  // and [w0 + w1, w2] over rows (i, i+1).
  auto phases = [](const torch::Tensor& k, int64_t dim) {
    auto t0 = k.select(dim, 0), t1 = k.select(dim, 1), t2 = k.select(dim, 2);
    return std::pair{torch::stack({t0, t1 + t2}, dim), torch::stack({t0 + t1, t2}, dim)};
  };
  auto [row0, row1] = phases(w, 2);
  auto [k00, k01] = phases(row0, 3);
  auto [k10, k11] = phases(row1, 3);
  // One 2x2 convolution over x padded by 1 gives every 2x2 window: window (r, s) covers input
  // rows r-1, r and columns s-1, s, so phase (a, b) of output pixel (i, j) is window (i+a, j+b)
  // of the channel block 2a + b. A quarter more windows than pixels, against 9/4 times the taps
  // of one 3x3 kernel per phase.
  auto weight = torch::cat({k00, k01, k10, k11}, 0);  // (4 C_out, C_in, 2, 2)
  auto bias = conv.bias.defined() ? conv.bias.repeat({4}) : torch::Tensor();
  const int64_t phases_out = weight.size(0);
  TORCH_CHECK(channels == 0 || channels >= phases_out, "upsampleConvPhases: ", channels,
              " output channels for ", phases_out, " phases");
  if (channels > phases_out) {  // zero filters (constants: no gradient reaches them)
    weight = torch::cat({weight, torch::zeros({channels - phases_out, weight.size(1), 2, 2},
                                              weight.options())});
    if (bias.defined()) bias = torch::cat({bias, torch::zeros({channels - phases_out}, bias.options())});
  }
  return torch::nn::functional::conv2d(
      x, weight, torch::nn::functional::Conv2dFuncOptions().bias(bias).padding(1));
}

bool DecoderImpl::endsWithPhases() const {
  return subpixel && !stages->is_empty() &&
         stages->ptr(stages->size() - 1)->as<torch::nn::UpsampleImpl>() != nullptr;
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& patches, bool gather_last) {
  const int64_t B = patches.size(0), n = patches.size(1), D = patches.size(2);
  const auto g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  TORCH_CHECK(g * g == n, "Decoder: patch count ", n, " is not a square grid");
  torch::Tensor x;
  if (kernels::kernelDevice(patches.device())) {  // (CUDA; the tests' emulated kernels)
    // (B, g, g, D) is already the channels-last layout of (B, D, g, g): cuDNN's NHWC kernels
    // (with tensor cores under bf16) take it without a transposition.
    x = patches.reshape({B, g, g, D}).permute({0, 3, 1, 2}).contiguous(at::MemoryFormat::ChannelsLast);
  } else {
    x = patches.transpose(1, 2).reshape({B, D, g, g});
  }
  bool upsample_pending = false;  // (subpixel) an upsampling that the next convolution does
  norm_stages_last = fused_stages_last = 0;
  const auto first = stages->begin();
  const auto n_stages = static_cast<size_t>(stages->end() - first);
  for (size_t i = 0; i < n_stages; ++i) {
    auto& stage = *(first + static_cast<std::ptrdiff_t>(i));
    if (auto* bn = stage.ptr()->as<torch::nn::BatchNorm2dImpl>(); bn && sync_ && is_training()) {
      x = syncBatchNorm(x, *bn, *sync_);
    } else if (stage.ptr()->as<torch::nn::UpsampleImpl>()) {
      if (subpixel)
        upsample_pending = true;
      else
        x = upsampleNearest2x(x);
    } else if (auto* conv = stage.ptr()->as<torch::nn::Conv2dImpl>(); conv && upsample_pending) {
      upsample_pending = false;
      auto y = upsampleConvPhases(x, *conv);
      const int64_t C = conv->weight.size(0);
      // train.fused_decoder: the gather, the BatchNorm and the ReLU after it in one operation.
      auto* bn = i + 2 < n_stages ? (first + static_cast<std::ptrdiff_t>(i + 1))
                                        ->ptr()->as<torch::nn::BatchNorm2dImpl>()
                                  : nullptr;
      const bool relu = bn != nullptr &&
                        (first + static_cast<std::ptrdiff_t>(i + 2))->ptr()->as<torch::nn::ReLUImpl>();
      norm_stages_last += relu ? 1 : 0;
      if (fused_stages && relu && sync_ == nullptr && decoderNormApplies(y, C, *bn)) {
        x = decoderNorm(y, C, *bn);
        ++fused_stages_last;
        i += 2;
      } else {
        if (fused_stages && relu && sync_ == nullptr && is_training())
          countKernelFallback("decoder_stage", y.device());
        x = phaseGather(y, C);
      }
    } else {
      x = stage.forward<torch::Tensor>(x);
    }
  }
  if (!upsample_pending) return out(x);
  if (gather_last) return upsampleConv2x(x, *out);
  // The phases for the loss. Where cuDNN runs (and in the emulated tests), 4 C_out phases that
  // are not a multiple of 8 channels (12 for RGB, 4 for one channel) get zero filters up to the
  // next one: bf16 tensor-core convolutions want 8-channel multiples, and for 12 channels cuDNN
  // padded and unpadded the output and its gradient on every call (nhwcAddPaddingKernel: 0.38 ms
  // per step at DeiT-S/16's 224-px crops, batch 128, in session 18's H200 profile).
  const int64_t C_out = out->weight.size(0);
  return upsampleConvPhases(x, *out, kernels::kernelDevice(x.device()) ? paddedPhaseChannels(C_out) : 0);
}

}  // namespace mst
