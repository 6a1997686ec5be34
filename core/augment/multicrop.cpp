/// @brief Batched multi-crop augmentation implementation (see multicrop.h).
#include "core/augment/multicrop.h"

#include <cmath>

namespace mst {
namespace F = torch::nn::functional;

namespace {

/// (B) uniform draws in [lo, hi): this shard's rows of the global batch's draw.
torch::Tensor uniform(int64_t n, double lo, double hi, at::Generator& gen,
                      const torch::TensorOptions& options, const BatchShard& shard) {
  return shard.rand({n}, gen, options).mul_(hi - lo).add_(lo);
}

/// (B) bool, true with probability p.
torch::Tensor coin(int64_t n, double p, at::Generator& gen, const torch::TensorOptions& options,
                   const BatchShard& shard) {
  return shard.rand({n}, gen, options) < p;
}

/// Rows of `yes` where `apply` (B) is true, else rows of `no`.
torch::Tensor pick(const torch::Tensor& apply, const torch::Tensor& yes, const torch::Tensor& no) {
  return torch::where(apply.view({-1, 1, 1, 1}), yes, no);
}

/// ITU-R 601 luminance, (B, 3, H, W) → (B, 1, H, W).
torch::Tensor luminance(const torch::Tensor& x) {
  return x.select(1, 0).mul(0.299).add_(x.select(1, 1), 0.587).add_(x.select(1, 2), 0.114).unsqueeze(1);
}

}  // namespace

MultiCrop::MultiCrop(const CropConfig& crops, const AugmentConfig& augment, int64_t channels,
                     std::vector<double> mean, std::vector<double> std)
    : crops_(crops), augment_(augment), channels_(channels), mean_(std::move(mean)),
      std_(std::move(std)) {
  // Statistics of 3-channel data seen through a 1-channel network: the mean of the channels.
  auto fit = [this](std::vector<double>& v) {
    if (static_cast<int64_t>(v.size()) == channels_) return;
    double avg = 0;
    for (double x : v) avg += x / static_cast<double>(v.size());
    v.assign(channels_, v.empty() ? 0.5 : avg);
  };
  fit(mean_);
  fit(std_);
}

torch::Tensor MultiCrop::toFloat(const torch::Tensor& images) const {
  auto x = images.scalar_type() == torch::kUInt8 ? images.to(torch::kFloat).div_(255.0)
                                                  : images.to(torch::kFloat);
  if (x.size(1) == channels_) return x;
  if (channels_ == 1) return luminance(x);
  return x.expand({x.size(0), channels_, x.size(2), x.size(3)}).contiguous();
}

torch::Tensor MultiCrop::statistic(const std::vector<double>& values, torch::Tensor& cache,
                                   const torch::TensorOptions& options) const {
  if (!cache.defined() || cache.device() != options.device() ||
      cache.scalar_type() != options.dtype().toScalarType())
    cache = torch::tensor(values, torch::kDouble).to(options).view({1, -1, 1, 1});
  return cache;
}

torch::Tensor MultiCrop::normalize(const torch::Tensor& x) const {
  return (x - statistic(mean_, mean_cache_, x.options())) / statistic(std_, std_cache_, x.options());
}

torch::Tensor MultiCrop::denormalize(const torch::Tensor& x) const {
  return x * statistic(std_, std_cache_, x.options()) + statistic(mean_, mean_cache_, x.options());
}

torch::Tensor MultiCrop::randomResizedCrop(const torch::Tensor& x, int64_t size, double smin,
                                           double smax, at::Generator& gen,
                                           const BatchShard& shard) const {
  const int64_t B = x.size(0);
  auto opt = x.options();
  // Area fraction and log-uniform aspect ratio, as torchvision's RandomResizedCrop; crops that
  // would leave the image are shrunk to fit instead of re-drawn, to stay batched.
  auto area = uniform(B, smin, smax, gen, opt, shard);
  auto log_ratio = uniform(B, std::log(3.0 / 4.0), std::log(4.0 / 3.0), gen, opt, shard);
  auto ratio = log_ratio.exp();
  auto w = (area * ratio).sqrt().clamp_max_(1.0);  // fractions of the side
  auto h = (area / ratio).sqrt().clamp_max_(1.0);
  auto cx = (shard.rand({B}, gen, opt) * 2 - 1) * (1 - w);  // centre in [-1, 1] coordinates
  auto cy = (shard.rand({B}, gen, opt) * 2 - 1) * (1 - h);
  auto flip = torch::where(coin(B, augment_.flip_p, gen, opt, shard), torch::full({B}, -1.0, opt),
                           torch::ones({B}, opt));
  auto zero = torch::zeros({B}, opt);
  auto theta = torch::stack({torch::stack({w * flip, zero, cx}, 1), torch::stack({zero, h, cy}, 1)},
                            1);  // (B, 2, 3)
  auto grid = F::affine_grid(theta, {B, x.size(1), size, size}, /*align_corners=*/false);
  return F::grid_sample(x, grid, F::GridSampleFuncOptions()
                                     .mode(torch::kBilinear)
                                     .padding_mode(torch::kReflection)
                                     .align_corners(false));
}

torch::Tensor MultiCrop::gaussianBlur(const torch::Tensor& x, double p, at::Generator& gen,
                                      const BatchShard& shard) const {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto opt = x.options();
  auto apply = coin(B, p, gen, opt, shard);
  auto sigma = uniform(B, augment_.blur_sigma_min, augment_.blur_sigma_max, gen, opt, shard);
  if (p <= 0) return x;
  int64_t radius = static_cast<int64_t>(std::ceil(3.0 * augment_.blur_sigma_max));
  radius = std::min<int64_t>(radius, std::min(H, W) / 2 - 1);
  if (radius < 1) return x;
  auto offsets = torch::arange(-radius, radius + 1, opt).view({1, -1});
  auto kernel = (-(offsets * offsets) / (2 * sigma.view({-1, 1}).pow(2))).exp();
  kernel = kernel / kernel.sum(1, true);
  // Rows not drawn get the identity kernel, so one grouped convolution serves the whole batch.
  auto identity = (offsets == 0).to(opt.dtype()).expand({B, -1});
  kernel = torch::where(apply.view({-1, 1}), kernel, identity);                 // (B, k)
  auto k = kernel.repeat_interleave(C, 0);                                       // (B*C, k)
  auto y = x.reshape({1, B * C, H, W});
  y = F::pad(y, F::PadFuncOptions({radius, radius, radius, radius}).mode(torch::kReflect));
  y = F::conv2d(y, k.view({B * C, 1, 1, -1}), F::Conv2dFuncOptions().groups(B * C));
  y = F::conv2d(y, k.view({B * C, 1, -1, 1}), F::Conv2dFuncOptions().groups(B * C));
  return y.view({B, C, H, W});
}

torch::Tensor MultiCrop::colorJitter(const torch::Tensor& x, at::Generator& gen,
                                     const BatchShard& shard) const {
  const int64_t B = x.size(0);
  auto opt = x.options();
  auto apply = coin(B, augment_.jitter_p, gen, opt, shard);
  const auto& a = augment_;
  auto b = uniform(B, 1 - a.brightness, 1 + a.brightness, gen, opt, shard).view({-1, 1, 1, 1});
  auto c = uniform(B, 1 - a.contrast, 1 + a.contrast, gen, opt, shard).view({-1, 1, 1, 1});
  auto s = uniform(B, 1 - a.saturation, 1 + a.saturation, gen, opt, shard).view({-1, 1, 1, 1});
  auto hue = uniform(B, -a.hue, a.hue, gen, opt, shard).view({-1, 1, 1});
  auto y = (x * b).clamp_(0, 1);
  auto gray = channels_ == 3 ? luminance(y) : y;
  y = ((y - gray.mean({1, 2, 3}, true)) * c + gray.mean({1, 2, 3}, true)).clamp_(0, 1);
  if (channels_ == 3) {  // grayscale data skips saturation and hue (METHOD.md step 1)
    auto l = luminance(y);
    y = ((y - l) * s + l).clamp_(0, 1);
    // Hue: rotate the chroma plane of YIQ by 2*pi*hue (a close, batched stand-in for HSV).
    auto Y = y.select(1, 0) * 0.299 + y.select(1, 1) * 0.587 + y.select(1, 2) * 0.114;
    auto I = y.select(1, 0) * 0.596 - y.select(1, 1) * 0.274 - y.select(1, 2) * 0.322;
    auto Q = y.select(1, 0) * 0.211 - y.select(1, 1) * 0.523 + y.select(1, 2) * 0.312;
    auto angle = hue * (2 * M_PI);
    auto cosA = angle.cos(), sinA = angle.sin();
    auto I2 = I * cosA - Q * sinA, Q2 = I * sinA + Q * cosA;
    y = torch::stack({Y + 0.956 * I2 + 0.621 * Q2, Y - 0.272 * I2 - 0.647 * Q2,
                      Y - 1.106 * I2 + 1.703 * Q2},
                     1)
            .clamp_(0, 1);
  }
  return pick(apply, y, x);
}

torch::Tensor MultiCrop::randomGrayscale(const torch::Tensor& x, at::Generator& gen,
                                         const BatchShard& shard) const {
  auto apply = coin(x.size(0), augment_.grayscale_p, gen, x.options(), shard);
  if (channels_ != 3) return x;
  return pick(apply, luminance(x).expand_as(x), x);
}

torch::Tensor MultiCrop::solarize(const torch::Tensor& x, double p, at::Generator& gen,
                                  const BatchShard& shard) const {
  auto apply = coin(x.size(0), p, gen, x.options(), shard);
  return pick(apply, torch::where(x >= 0.5, 1 - x, x), x);
}

Views MultiCrop::operator()(const torch::Tensor& images, at::Generator& gen,
                            const BatchShard& shard) const {
  auto x = toFloat(images);
  const auto& c = crops_;
  auto globalView = [&](double blur_p, double solarize_p) {
    auto v =
        randomResizedCrop(x, c.global_size, c.global_scale_min, c.global_scale_max, gen, shard);
    v = randomGrayscale(colorJitter(v, gen, shard), gen, shard);
    v = gaussianBlur(v, blur_p, gen, shard);
    if (solarize_p > 0) v = solarize(v, solarize_p, gen, shard);
    return normalize(v);
  };
  Views views;
  auto g1 = globalView(augment_.blur_p_global1, 0.0);
  auto g2 = globalView(augment_.blur_p_global2, augment_.solarize_p);
  views.globals = torch::cat({g1, g2}, 0);
  if (c.local_crops > 0) {
    // All local crops in one batch: (N*B) rows, each crop j a contiguous block of B rows.
    auto rep = x.repeat({c.local_crops, 1, 1, 1});
    const auto blocks = shard.grouped(c.local_crops);
    auto v = randomResizedCrop(rep, c.local_size, c.local_scale_min, c.local_scale_max, gen,
                               blocks);
    v = randomGrayscale(colorJitter(v, gen, blocks), gen, blocks);
    v = gaussianBlur(v, augment_.blur_p_local, gen, blocks);
    views.locals = normalize(v);
  }
  return views;
}

}  // namespace mst
