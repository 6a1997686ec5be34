/// @brief Batched multi-crop augmentation implementation (see multicrop.h).
#include "core/augment/multicrop.h"

#include <cmath>

#include "core/kernels/augment_cuda.h"
#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"

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

CropDraws MultiCrop::draw(int64_t rows, int64_t size, double smin, double smax, double blur_p,
                          double solarize_p, at::Generator& gen, const BatchShard& shard,
                          const torch::TensorOptions& opt) const {
  const int64_t R = rows;
  const auto& a = augment_;
  CropDraws d;
  // Crop: area fraction and log-uniform aspect ratio, as torchvision's RandomResizedCrop; crops
  // that would leave the image are shrunk to fit instead of re-drawn, to stay batched.
  auto area = uniform(R, smin, smax, gen, opt, shard);
  auto log_ratio = uniform(R, std::log(3.0 / 4.0), std::log(4.0 / 3.0), gen, opt, shard);
  auto ratio = log_ratio.exp();
  auto w = (area * ratio).sqrt().clamp_max_(1.0);  // fractions of the side
  auto h = (area / ratio).sqrt().clamp_max_(1.0);
  auto cx = (shard.rand({R}, gen, opt) * 2 - 1) * (1 - w);  // centre in [-1, 1] coordinates
  auto cy = (shard.rand({R}, gen, opt) * 2 - 1) * (1 - h);
  auto flip = torch::where(coin(R, a.flip_p, gen, opt, shard), torch::full({R}, -1.0, opt),
                           torch::ones({R}, opt));
  auto zero = torch::zeros({R}, opt);
  d.theta = torch::stack({torch::stack({w * flip, zero, cx}, 1), torch::stack({zero, h, cy}, 1)},
                         1);  // (R, 2, 3)
  // Colour jitter, then random grayscale.
  d.jitter = coin(R, a.jitter_p, gen, opt, shard);
  d.brightness = uniform(R, 1 - a.brightness, 1 + a.brightness, gen, opt, shard);
  d.contrast = uniform(R, 1 - a.contrast, 1 + a.contrast, gen, opt, shard);
  d.saturation = uniform(R, 1 - a.saturation, 1 + a.saturation, gen, opt, shard);
  d.hue = uniform(R, -a.hue, a.hue, gen, opt, shard);
  d.gray = coin(R, a.grayscale_p, gen, opt, shard);
  // Gaussian blur: rows not drawn get the identity taps, so one convolution serves the batch.
  auto apply_blur = coin(R, blur_p, gen, opt, shard);
  auto sigma = uniform(R, a.blur_sigma_min, a.blur_sigma_max, gen, opt, shard);
  int64_t radius = static_cast<int64_t>(std::ceil(3.0 * a.blur_sigma_max));
  radius = std::min<int64_t>(radius, size / 2 - 1);
  if (blur_p > 0 && radius >= 1) {
    auto offsets = torch::arange(-radius, radius + 1, opt).view({1, -1});
    auto taps = (-(offsets * offsets) / (2 * sigma.view({-1, 1}).pow(2))).exp();
    taps = taps / taps.sum(1, true);
    auto identity = (offsets == 0).to(opt.dtype()).expand({R, -1});
    d.blur = torch::where(apply_blur.view({-1, 1}), taps, identity);  // (R, k)
    d.radius = radius;
  }
  if (solarize_p > 0) d.solarize = coin(R, solarize_p, gen, opt, shard);
  return d;
}

torch::Tensor MultiCrop::crop(const torch::Tensor& x, const CropDraws& d, int64_t size) const {
  const int64_t R = d.theta.size(0);
  auto grid = F::affine_grid(d.theta, {R, x.size(1), size, size}, /*align_corners=*/false);
  return F::grid_sample(x, grid, F::GridSampleFuncOptions()
                                     .mode(torch::kBilinear)
                                     .padding_mode(torch::kReflection)
                                     .align_corners(false));
}

torch::Tensor MultiCrop::gaussianBlur(const torch::Tensor& x, const CropDraws& d) const {
  if (!d.blur.defined()) return x;
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), r = d.radius;
  auto k = d.blur.repeat_interleave(C, 0);  // (B*C, k)
  auto y = x.reshape({1, B * C, H, W});
  y = F::pad(y, F::PadFuncOptions({r, r, r, r}).mode(torch::kReflect));
  y = F::conv2d(y, k.view({B * C, 1, 1, -1}), F::Conv2dFuncOptions().groups(B * C));
  y = F::conv2d(y, k.view({B * C, 1, -1, 1}), F::Conv2dFuncOptions().groups(B * C));
  return y.view({B, C, H, W});
}

torch::Tensor MultiCrop::colorJitter(const torch::Tensor& x, const CropDraws& d) const {
  auto b = d.brightness.view({-1, 1, 1, 1}), c = d.contrast.view({-1, 1, 1, 1});
  auto s = d.saturation.view({-1, 1, 1, 1});
  auto hue = d.hue.view({-1, 1, 1});
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
  return pick(d.jitter, y, x);
}

torch::Tensor MultiCrop::randomGrayscale(const torch::Tensor& x, const CropDraws& d) const {
  if (channels_ != 3) return x;
  return pick(d.gray, luminance(x).expand_as(x), x);
}

torch::Tensor MultiCrop::solarize(const torch::Tensor& x, const CropDraws& d) const {
  if (!d.solarize.defined()) return x;
  return pick(d.solarize, torch::where(x >= 0.5, 1 - x, x), x);
}

torch::Tensor MultiCrop::apply(const torch::Tensor& source, const CropDraws& d,
                               int64_t size) const {
  const int64_t R = d.theta.size(0), B = source.size(0);
  TORCH_CHECK(R % B == 0, "MultiCrop: ", R, " crops of ", B, " images");
  auto x = R == B ? source : source.repeat({R / B, 1, 1, 1});  // crop set j: rows [jB, (j+1)B)
  auto v = randomGrayscale(colorJitter(crop(x, d, size), d), d);
  return normalize(solarize(gaussianBlur(v, d), d));
}

/// Scratch, outputs and the kernels' argument block for one crop set (host or device tensors).
struct MultiCrop::FusedCall {
  torch::Tensor src, work, work2, partial, out, theta, jitter, gray, brightness, contrast,
      saturation, hue, blur, solarize, mean, std;
  kernels::AugmentArgs args;
};

MultiCrop::FusedCall MultiCrop::prepareFused(const torch::Tensor& source, const CropDraws& d,
                                             int64_t size, bool on_host,
                                             const torch::Tensor& out) const {
  FusedCall f;
  const int64_t R = d.theta.size(0), C = channels_, S = size;
  f.src = source.to(torch::kFloat).contiguous();
  auto opt = f.src.options();
  const bool blur = d.blur.defined();
  if (on_host || blur) f.work = torch::empty({R, C, S, S}, opt);
  if (blur && (on_host || kernels::augmentBlurTakesTwoPasses(static_cast<int>(d.radius))))
    f.work2 = torch::empty({R, C, S, S}, opt);
  f.partial = torch::empty({R, kernels::augmentPartialStride(static_cast<int>(S))}, opt);
  if (out.defined()) {
    TORCH_CHECK(out.sizes() == torch::IntArrayRef({R, C, S, S}) && out.scalar_type() == torch::kFloat &&
                    out.device() == f.src.device() && out.is_contiguous(),
                "MultiCrop::applyFused: out is ", out.sizes(), " ", out.scalar_type(), " on ",
                out.device(), ", not a contiguous (", R, ", ", C, ", ", S, ", ", S, ") float on ",
                f.src.device());
    f.out = out;
  } else {
    f.out = torch::empty({R, C, S, S}, opt);
  }
  f.theta = d.theta.contiguous();
  f.jitter = d.jitter.contiguous();
  f.gray = d.gray.contiguous();
  f.brightness = d.brightness.contiguous();
  f.contrast = d.contrast.contiguous();
  f.saturation = d.saturation.contiguous();
  f.hue = d.hue.contiguous();
  if (d.blur.defined()) f.blur = d.blur.contiguous();
  if (d.solarize.defined()) f.solarize = d.solarize.contiguous();
  f.mean = statistic(mean_, mean_cache_, opt);
  f.std = statistic(std_, std_cache_, opt);
  auto& a = f.args;
  a.src = f.src.data_ptr<float>();
  a.src_rows = f.src.size(0);
  a.C = static_cast<int>(C);
  a.H = static_cast<int>(f.src.size(2));
  a.W = static_cast<int>(f.src.size(3));
  a.rows = R;
  a.S = static_cast<int>(S);
  a.theta = f.theta.data_ptr<float>();
  a.jitter = f.jitter.data_ptr<bool>();
  a.brightness = f.brightness.data_ptr<float>();
  a.contrast = f.contrast.data_ptr<float>();
  a.saturation = f.saturation.data_ptr<float>();
  a.hue = f.hue.data_ptr<float>();
  a.gray = f.gray.data_ptr<bool>();
  a.blur = f.blur.defined() ? f.blur.data_ptr<float>() : nullptr;
  a.radius = static_cast<int>(d.radius);
  a.solarize = f.solarize.defined() ? f.solarize.data_ptr<bool>() : nullptr;
  a.mean = f.mean.data_ptr<float>();
  a.std = f.std.data_ptr<float>();
  a.work = f.work.defined() ? f.work.data_ptr<float>() : nullptr;
  a.work2 = f.work2.defined() ? f.work2.data_ptr<float>() : nullptr;
  a.partial = f.partial.data_ptr<float>();
  a.out = f.out.data_ptr<float>();
  return f;
}

torch::Tensor MultiCrop::applyOnHost(const torch::Tensor& source, const CropDraws& d,
                                     int64_t size) const {
  TORCH_CHECK(source.device().is_cpu() && d.theta.device().is_cpu(),
              "MultiCrop::applyOnHost: CPU tensors");
  auto f = prepareFused(source, d, size, true);
  const char* error = kernels::augmentCropsOnHost(f.args);
  TORCH_CHECK(error == nullptr, error);
  return f.out;
}

bool MultiCrop::applyFused(const torch::Tensor& source, const CropDraws& d, int64_t size,
                           torch::Tensor& out) const {
#ifdef MST_HAVE_FUSED_KERNELS
  if (!kernels::kernelDevice(source.device()) || (channels_ != 1 && channels_ != 3) || d.theta.size(0) > 65535 ||
      source.size(1) != channels_)
    return false;
  const kernels::DeviceGuard device(source.device());
  auto f = prepareFused(source, d, size, false, out);
  f.args.stream = kernels::launchStream(source.device());
  const char* error = kernels::augmentCrops(f.args);
  TORCH_CHECK(error == nullptr, "fused augmentation: ", error);
  out = f.out;
  return true;
#else
  (void)source, (void)d, (void)size, (void)out;
  return false;
#endif
}

Views MultiCrop::operator()(const torch::Tensor& images, at::Generator& gen,
                            const BatchShard& shard) const {
  auto x = toFloat(images);
  const auto& c = crops_;
  const int64_t B = x.size(0);
  // A crop set into `out` where that is defined (and then returned), else into a new tensor.
  auto cropSet = [&](int64_t rows, int64_t size, double smin, double smax, double blur_p,
                     double solarize_p, const BatchShard& rows_shard, torch::Tensor out) {
    auto d = draw(rows, size, smin, smax, blur_p, solarize_p, gen, rows_shard, x.options());
    if (fused_ && applyFused(x, d, size, out)) return out;
    if (fused_) countKernelFallback("augment", x.device());
    auto crops = apply(x, d, size);
    return out.defined() ? out.copy_(crops) : crops;
  };
  Views views;
  // The kernels write both global crop sets into one tensor, which torch::cat would otherwise
  // copy (154 MB at batch 128 and 224 px); the ATen path fills it with each set's copy.
  const int64_t G = c.global_size;
  views.globals = torch::empty({2 * B, x.size(1), G, G}, x.options());
  cropSet(B, G, c.global_scale_min, c.global_scale_max, augment_.blur_p_global1, 0.0, shard,
          views.globals.narrow(0, 0, B));
  cropSet(B, G, c.global_scale_min, c.global_scale_max, augment_.blur_p_global2,
          augment_.solarize_p, shard, views.globals.narrow(0, B, B));
  if (c.local_crops > 0) {
    // All local crops in one set: (N*B) rows, each crop j a contiguous block of B rows.
    views.locals = cropSet(c.local_crops * B, c.local_size, c.local_scale_min, c.local_scale_max,
                           augment_.blur_p_local, 0.0, shard.grouped(c.local_crops), {});
  }
  return views;
}

}  // namespace mst
