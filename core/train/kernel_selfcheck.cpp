/// @brief The kernels' self-checks and the comparisons they share with `mst gpucheck` (see
/// kernel_selfcheck.h). Compiled twice, like the kernels' host code: into mst_core, and against
/// the CPU emulator for the tests (tests/CMakeLists.txt), where the kernels' device is the CPU.
#include "core/train/kernel_selfcheck.h"

#include <chrono>
#include <cmath>
#include <map>
#include <mutex>

#include "core/augment/multicrop.h"
#include "core/config/config.h"
#include "core/kernels/decoder_norm.h"
#include "core/kernels/dino_loss.h"
#include "core/kernels/fused_adamw.h"
#include "core/kernels/gelu_backward.h"
#include "core/kernels/kernel_device.h"
#include "core/kernels/qkv_heads.h"
#include "core/kernels/residual_norm.h"
#include "core/model/decoder.h"
#include "core/model/vit.h"
#include "core/train/losses.h"
#include "core/util/check_math.h"
#include "core/util/error.h"
#include "core/util/torch_compat.h"

namespace mst {
namespace kernel_cases {

using checks::relNorm;

/// Each output's relative difference from its reference, recorded in r.row under its name; r.passed
/// falls where one exceeds its tolerance (an empty output counts as equal).
void compareOutputs(KernelCase& r, const std::vector<const char*>& names,
                    const std::vector<torch::Tensor>& got, const std::vector<torch::Tensor>& ref,
                    const std::vector<double>& tolerance) {
  for (size_t i = 0; i < names.size(); ++i) {
    const double rel = got[i].numel() == 0 ? 0.0 : relNorm(got[i], ref[i]);
    r.row[names[i]] = rel;
    if (!(rel <= tolerance[i])) r.passed = false;
  }
  r.row["passed"] = r.passed;
}

KernelCase junction(int64_t B, int64_t T, int64_t D, torch::ScalarType stream, int variant,
                    const torch::Device& device, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto randn = [&](std::vector<int64_t> shape) { return torch::randn(shape, gen); };
  const bool has_branch = variant != 2, has_bias = variant >= 3;
  // Variant 5 is the last block's junction into the final norm, whose output keeps the stream's
  // dtype (fp32 with an fp32 stream); the others normalise into bf16 for the next block.
  const auto out_dtype = variant == 5 ? stream : torch::kBFloat16;
  auto x = randn({B, T, D}).to(stream);
  auto branch = has_branch ? randn({B, T, D}).to(torch::kBFloat16) : torch::Tensor();
  auto bias = has_bias ? 0.3 * randn({D}) : torch::Tensor();
  auto scale = variant == 0 || variant == 3 || variant == 5
                   ? (torch::rand({B}, gen) < 0.7).to(torch::kBFloat16).div_(0.7).to(torch::kFloat)
                   : torch::Tensor();
  auto gamma = 1 + 0.1 * randn({D}), beta = 0.1 * randn({D});
  auto gz = randn({B, T, D}).to(out_dtype), gy = randn({B, T, D}).to(stream);
  // Forward outputs and every gradient, on the CPU (ATen arithmetic) or the device (kernels).
  auto run = [&](const torch::Device& d) {
    // Fresh leaves on every run (to() alone would hand the CPU run the inputs themselves).
    auto leaf = [&](const torch::Tensor& t) {
      return t.to(d, /*non_blocking=*/false, /*copy=*/true).requires_grad_(true);
    };
    auto xd = leaf(x), gd = leaf(gamma), be = leaf(beta);
    auto bd = has_branch ? leaf(branch) : torch::Tensor();
    auto bias_d = has_bias ? leaf(bias) : torch::Tensor();
    auto out = residualLayerNorm(xd, bd, bias_d, scale.defined() ? scale.to(d) : scale, gd, be,
                                 1e-6, out_dtype);
    std::vector<torch::Tensor> outs{out.z}, grads{gz.to(d)};
    if (has_branch) {
      outs.push_back(out.y);
      grads.push_back(gy.to(d));
    }
    torch::autograd::backward(outs, grads);
    std::vector<torch::Tensor> v{out.y.detach(), out.z.detach(), xd.grad(),
                                 has_branch ? bd.grad() : torch::zeros({1}), gd.grad(),
                                 be.grad(), has_bias ? bias_d.grad() : torch::zeros({1})};
    for (auto& t : v) t = t.cpu().to(torch::kFloat);
    return v;
  };
  std::vector<torch::Tensor> ref;
  {
    kernels::ReferencePath reference;
    ref = run(torch::kCPU);
  }
  const auto got = run(device);
  const bool bf16 = stream == torch::kBFloat16;
  const bool ran = fusedNormApplies(x.to(device), torch::kBFloat16, out_dtype);
  // y is rounded the same way on both devices; z and the branch's gradient are bf16; the
  // stream's gradient is in the stream's dtype; the parameters' sums differ in order, and the
  // bias's sums a gradient that a bf16 stream rounds (one step where the devices' fp32
  // arithmetic lands on either side of a rounding boundary).
  KernelCase r;
  r.row = {{"B", B},           {"T", T},           {"D", D},
           {"stream", bf16 ? "bf16" : "fp32"},     {"branch", has_branch},
           {"bias", has_bias}, {"scale", scale.defined()},
           {"out", out_dtype == torch::kFloat ? "fp32" : "bf16"}, {"kernel_ran", ran}};
  r.ran = ran;
  r.passed = true;
  compareOutputs(r, {"y", "z", "dx", "dbranch", "dgamma", "dbeta", "dbias"}, got, ref,
                 {1e-6, out_dtype == torch::kFloat ? 1e-4 : 1e-2, bf16 ? 1e-2 : 1e-4, 1e-2, 1e-4,
                  1e-4, bf16 ? 1e-3 : 1e-4});
  return r;
}

KernelCase qkvGather(int64_t B, int64_t T, int64_t heads, int64_t d, int64_t in, int layout,
                     const torch::Device& device, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto bf16 = [&](std::vector<int64_t> shape) {
    return torch::randn(shape, gen).to(torch::kBFloat16).to(device);
  };
  const bool transposed = layout == 1, packed = layout == 2, skip_v = layout == 3;
  const char* layouts[] = {"BhTd", "BThd", "packed BT3hd", "BhTd without v"};
  torch::nn::Linear fc(in, 3 * heads * d);
  {
    torch::NoGradGuard no_grad;
    fc->weight.copy_(torch::randn(fc->weight.sizes(), gen) / std::sqrt(double(in)));
    fc->bias.copy_(torch::randn(fc->bias.sizes(), gen) * 0.5);
  }
  fc->to(device, torch::kBFloat16);
  auto x = bf16({B, T, in});
  std::vector<torch::Tensor> upstream;
  auto buffer = packed ? bf16({B, T, 3, heads, d}) : torch::Tensor();
  for (int i = 0; i < 3; ++i)
    upstream.push_back(packed       ? buffer.select(2, i).transpose(1, 2)
                       : transposed ? bf16({B, T, heads, d}).transpose(1, 2)
                                    : bf16({B, heads, T, d}));
  // Gradients of (x, W, b) through the fused function or through linear + splitHeads.
  auto run = [&](bool fused, bool& kernel_ran) {
    fc->zero_grad();
    auto xl = x.clone().requires_grad_(true);
    auto parts = fused ? qkvHeads(xl, *fc, heads)
                       : splitHeads(torch::linear(xl, fc->weight, fc->bias), 3, heads);
    std::vector<torch::Tensor> outs{parts[0], parts[1]}, grads{upstream[0], upstream[1]};
    if (!skip_v) {
      outs.push_back(parts[2]);
      grads.push_back(upstream[2]);
    }
    std::vector<torch::Tensor> g_in(grads);
    if (skip_v) g_in.push_back(torch::zeros_like(upstream[0]));
    kernel_ran = headsGatherKernelApplies(g_in);
    torch::autograd::backward(outs, grads);
    return std::vector<torch::Tensor>{parts[0].detach().cpu(), xl.grad().cpu(),
                                      fc->weight.grad().cpu(), fc->bias.grad().cpu()};
  };
  bool ran = false, unused = false;
  const auto got = run(true, ran);
  const auto ref = run(false, unused);
  // q's values and the input's and weight's gradients: the same products of the same (gathered)
  // gradient; the bias's: bf16 sums of it, added in another order.
  KernelCase r;
  r.row = {{"B", B}, {"T", T}, {"heads", heads}, {"d", d}, {"layout", layouts[layout]},
           {"kernel_ran", ran}};
  r.ran = ran;
  r.passed = true;
  compareOutputs(r, {"q", "dx", "dweight", "dbias"}, got, ref, {1e-6, 1e-3, 1e-3, 4e-3});
  return r;
}

KernelCase geluBackward(int64_t rows, int64_t hidden, const std::string& approximate,
                        bool want_gelu, bool want_bias, const torch::Device& device,
                        uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto pre = (torch::randn({rows, hidden}, gen) * 2.5).to(torch::kBFloat16).to(device);
  auto dgelu = torch::randn({rows, hidden}, gen).to(torch::kBFloat16).to(device);
  KernelCase r;
  r.row = {{"rows", rows}, {"hidden", hidden}, {"approximate", approximate},
           {"gelu", want_gelu}, {"bias", want_bias}, {"kernel_ran", false}};
  if (!geluBackwardKernelApplies(pre)) {
    r.passed = true;
    r.row["passed"] = true;
    return r;
  }
  r.ran = true;
  r.row["kernel_ran"] = true;
  const auto got = mst::geluBackward(dgelu, pre, approximate, want_gelu, want_bias);
  // The reference: ATen's gelu_backward and gelu computed in fp32 from the bf16 values and
  // rounded once, as ATen does on CUDA and as the kernel does (ATen's bf16 GELU on the CPU rounds
  // its intermediates). erff, tanhf and FMA contractions may differ from the kernel's in the last
  // fp32 bit, which in GELU's far negative tail (where 1 + erf cancels) moves some elements one
  // bf16 step.
  GeluBackwardOut ref;
  {
    auto p = pre.to(torch::kFloat), g = dgelu.to(torch::kFloat);
    ref.dpre = torch::gelu_backward(g, p, approximate).to(torch::kBFloat16).cpu();
    if (want_gelu) ref.gelu = torch::gelu(p, approximate).to(torch::kBFloat16).cpu();
    if (want_bias) ref.dbias = got.dpre.to(torch::kFloat).sum(0).cpu();  // of what it stored
  }
  auto compare = [&](const torch::Tensor& mine, const torch::Tensor& theirs) {
    if (theirs.numel() == 0) return std::pair{1.0, true};
    auto a = mine.cpu().to(torch::kFloat), b = theirs.to(torch::kFloat);
    const double same = a.eq(b).to(torch::kFloat).mean().item<double>();
    const bool close = ((a - b).abs() <= b.abs() / 128 + 1e-5).all().item<bool>();
    return std::pair{same, close};
  };
  bool ok = got.gelu.defined() == want_gelu && got.dbias.defined() == want_bias;
  const auto [same_d, close_d] = compare(got.dpre, ref.dpre);
  r.row["dpre_equal"] = same_d;
  ok = ok && same_d >= 0.9 && close_d;
  if (ok && want_gelu) {
    const auto [same_g, close_g] = compare(got.gelu, ref.gelu);
    r.row["gelu_equal"] = same_g;
    ok = same_g >= 0.9 && close_g;
  }
  if (ok && want_bias) {
    // bf16's rounding of the sums alone is ~2e-3; one row left out of 20,000 is ~7e-3.
    const double bias = relNorm(got.dbias.cpu(), ref.dbias);
    r.row["dbias_rel"] = bias;
    ok = rows == 0 ? got.dbias.abs().max().item<double>() == 0.0 : bias <= 4e-3;
  }
  r.passed = ok;
  r.row["passed"] = ok;
  return r;
}

KernelCase decoderStage(torch::ScalarType dtype, int64_t B, int64_t C, int64_t H, int64_t W,
                        double beta_mean, bool nchw_grad, double shift,
                        const torch::Device& device, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto y = (torch::randn({B, 4 * C, H + 1, W + 1}, gen) * 1.5 + shift)
               .to(dtype)
               .to(device)
               .contiguous(at::MemoryFormat::ChannelsLast);
  auto g = torch::randn({B, C, 2 * H, 2 * W}, gen)
               .to(dtype)
               .to(device)
               .contiguous(at::MemoryFormat::ChannelsLast);
  auto gamma = 1 + 0.2 * torch::randn({C}, gen), beta = beta_mean + 0.2 * torch::randn({C}, gen);
  auto rmean = 0.1 * torch::randn({C}, gen), rvar = 1 + 0.1 * torch::rand({C}, gen);
  // Output, running statistics and gradients: fused, or ATen's gather + BatchNorm + ReLU, in
  // fp32 from the stored values and rounded once.
  auto run = [&](bool fused, bool& applied) {
    torch::nn::BatchNorm2d bn(C);
    bn->to(device);
    {
      torch::NoGradGuard no_grad;
      bn->weight.copy_(gamma);
      bn->bias.copy_(beta);
      bn->running_mean.copy_(rmean);
      bn->running_var.copy_(rvar);
    }
    auto yl = y.clone().requires_grad_(true);
    applied = decoderNormApplies(yl, C, *bn);
    auto out = fused && applied
                   ? decoderNorm(yl, C, *bn)
                   : torch::relu(bn->forward(phaseGather(yl, C).to(torch::kFloat))).to(dtype);
    // (nchw_grad hands the backward pass an fp32 gradient in NCHW order, as a consumer in
    // another dtype or layout would.)
    out.backward(nchw_grad ? g.to(torch::kFloat).contiguous() : g);
    return std::vector<torch::Tensor>{out.detach(), bn->running_mean.clone(),
                                      bn->running_var.clone(), yl.grad(), bn->weight.grad(),
                                      bn->bias.grad(), bn->num_batches_tracked.clone()};
  };
  bool applied = false, unused = false;
  const auto got = run(true, applied);
  const auto ref = run(false, unused);
  const bool low = dtype == torch::kBFloat16;
  KernelCase r;
  r.row = {{"dtype", low ? "bf16" : "fp32"}, {"B", B}, {"C", C}, {"H", H}, {"W", W},
           {"beta", beta_mean}, {"nchw_grad", nchw_grad}, {"shift", shift}, {"applied", applied},
           {"zero_outputs", (ref[0] == 0).to(torch::kFloat).mean().item<double>()}};
  r.ran = applied;
  r.passed = torch::equal(got[6].cpu(), ref[6].cpu());  // batches tracked
  compareOutputs(r, {"out", "running_mean", "running_var", "dy", "dgamma", "dbeta"}, got, ref,
                 {low ? 1e-2 : 1e-5, 1e-5, 1e-5, low ? 1e-2 : 1e-4, low ? 2e-3 : 1e-4,
                  low ? 2e-3 : 1e-4});
  return r;
}

KernelCase loss(int64_t S, int64_t B, int64_t K, double scale, double student_temp,
                double teacher_temp, torch::ScalarType dtype, const torch::Device& device,
                uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const double ts = student_temp;
  auto teacher = torch::randn({2 * B, K}, gen).to(device);
  auto center = (0.1 * torch::randn({1, K}, gen)).to(device);
  auto logits = (scale * torch::randn({S * B, K}, gen)).to(dtype).to(device);
  auto probs = ((teacher - center) / teacher_temp).softmax(-1);
  const bool ran = fusedDistillationApplies(logits, probs);
  auto z = logits.clone().requires_grad_(true);
  auto got = distillationLoss(z, teacher, center, ts, teacher_temp, /*fused=*/true);
  auto got_grad = torch::autograd::grad({got * 1.5}, {z})[0];
  // The reference: autograd through ATen on the logits' fp32 copy (train.fused_loss off).
  auto z_ref = logits.to(torch::kFloat).requires_grad_(true);
  auto ref = distillationLoss(z_ref, teacher, center, ts, teacher_temp, /*fused=*/false);
  auto ref_grad = torch::autograd::grad({ref * 1.5}, {z_ref})[0];
  const double loss_rel = std::abs(got.item<double>() - ref.item<double>()) /
                          std::max(std::abs(ref.item<double>()), 1e-30);
  const double grad_rel = relNorm(got_grad, ref_grad);
  // fp32 sums over the classes in another order; the bf16 gradient is rounded once.
  const double grad_tol = dtype == torch::kBFloat16 ? 4e-3 : 1e-4;
  KernelCase r;
  r.ran = ran;
  r.passed = got_grad.scalar_type() == dtype && loss_rel <= 1e-5 && grad_rel <= grad_tol;
  r.row = {{"S", S}, {"B", B}, {"K", K}, {"scale", scale}, {"teacher_temp", teacher_temp},
           {"dtype", dtype == torch::kBFloat16 ? "bf16" : "fp32"}, {"kernel_ran", ran},
           {"loss", got.item<double>()}, {"loss_rel", loss_rel}, {"grad_rel", grad_rel},
           {"passed", r.passed}};
  return r;
}

KernelCase optimizer(int64_t numel, int64_t offset, bool with_freeze, bool frozen,
                     int64_t teacher_numel, const torch::Device& device, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto randn = [&](double scale) { return torch::randn({numel}, gen) * scale; };
  // Weights and moments of a trained ViT's sizes; v ≥ 0; decay on about two thirds.
  auto p0 = randn(0.05), g = randn(0.01), m0 = randn(0.005);
  auto v0 = torch::rand({numel}, gen) * 1e-4, mask = (torch::rand({numel}, gen) < 0.7).to(torch::kFloat);
  // Unaligned and straddling vectors: the last layer starts one past a multiple of 4.
  const int64_t last_offset = std::min<int64_t>(numel, 2 * (numel / 5) + 1);
  const int64_t last_numel = std::min<int64_t>(numel - last_offset, numel / 4 + 3);
  if (frozen) g.narrow(0, last_offset, last_numel).zero_();  // (the engine's frozen gradient)
  auto t0 = p0.narrow(0, 0, teacher_numel) + 0.01 * torch::randn({teacher_numel}, gen);
  // lr, wd, EMA momentum, (teacher temperature), frozen, bc1 and bc2 at t = 7, (unused), and
  // the last layer's at t = 2.
  auto schedule = torch::tensor({5e-4f, 0.05f, 0.996f, 0.04f, frozen ? 1.0f : 0.0f,
                                 static_cast<float>(1.0 - std::pow(0.9, 7)),
                                 static_cast<float>(1.0 - std::pow(0.999, 7)), 0.0f,
                                 static_cast<float>(1.0 - std::pow(0.9, 2)),
                                 static_cast<float>(1.0 - std::pow(0.999, 2))});
  // Each buffer `offset` values into an allocation of its own on the device.
  auto place = [&](const torch::Tensor& t) {
    auto whole = torch::zeros({offset + t.numel()}).to(device);
    whole.narrow(0, offset, t.numel()).copy_(t);
    return whole.narrow(0, offset, t.numel());
  };
  bool ran = false;
  auto run = [&](bool fused) {
    OptimizerStep s;
    s.params = place(p0);
    s.grads = place(g);
    s.exp_avg = place(m0);
    s.exp_avg_sq = place(v0);
    s.decay_mask = place(mask);
    s.teacher = place(t0);
    s.schedule = schedule.to(device);
    s.last_offset = last_offset;
    s.last_numel = last_numel;
    s.freeze_last_layer = with_freeze;
    if (fused) ran = fusedOptimizerApplies(s);
    optimizerStep(s, fused);
    std::vector<torch::Tensor> v{s.params, s.exp_avg, s.exp_avg_sq, s.teacher};
    for (auto& t : v) t = t.cpu();
    v.push_back(v[0] - p0);  // the step alone
    return v;
  };
  const auto got = run(true);
  const auto ref = run(false);
  KernelCase r;
  r.row = {{"numel", numel}, {"offset", offset}, {"teacher", teacher_numel},
           {"freeze", with_freeze}, {"frozen", frozen}, {"kernel_ran", ran}};
  r.ran = ran;
  // The held layer keeps its values exactly, as torch::where keeps them.
  r.passed = !frozen || !with_freeze ||
             torch::equal(got[0].narrow(0, last_offset, last_numel),
                          p0.narrow(0, last_offset, last_numel));
  // One rounding apart (fused multiply-adds); the step (~lr) carries the rounding of p (~20 lr)
  // as well, so its tolerance is wider, and it sees an error in the step that p's norm hides.
  compareOutputs(r, {"p", "m", "v", "teacher", "step"}, got, ref, {1e-6, 1e-6, 1e-6, 1e-6, 1e-4});
  return r;
}

KernelCase augment(const CropConfig& crops, const AugmentConfig& augment, int64_t channels,
                   const char* set, int64_t sources, int64_t rows, int64_t size,
                   double scale_min, double scale_max, double blur_p, double solarize_p,
                   int64_t source_h, int64_t source_w, const torch::Device& device,
                   uint64_t seed) {
  // Exact fp32 on both sides: TF32 would round affine_grid's coordinates in the ATen path.
  checks::ExactFp32 exact;
  const double tolerance = 1e-4, max_tolerance = 0.05;
  MultiCrop multicrop(crops, augment, channels, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
  auto host = at::detail::createCPUGenerator(seed);
  auto source = torch::rand({sources, channels, source_h, source_w}, host).to(device);
  at::Generator gen = makeGenerator(device, seed + 1);
  auto draws = multicrop.draw(rows, size, scale_min, scale_max, blur_p, solarize_p, gen, {},
                              source.options());
  auto ref = multicrop.apply(source, draws, size);
  torch::Tensor got;
  const bool ran = multicrop.applyFused(source, draws, size, got);
  const double rel = ran ? relNorm(got, ref) : 0.0;
  const double worst = ran ? (got - ref).abs().max().item<double>() : 0.0;
  KernelCase r;
  r.ran = ran;
  r.passed = rel <= tolerance && worst <= max_tolerance;
  r.row = {{"channels", channels}, {"set", set}, {"rows", rows}, {"size", size},
           {"fused_ran", ran}, {"rel", rel}, {"max_abs", worst}, {"passed", r.passed}};
  return r;
}

}  // namespace kernel_cases

std::vector<std::string> kernelFamilies(const std::string& key) {
  if (key == "train.fused_norm") return {"junction", "qkv_gather"};
  if (key == "train.fused_mlp") return {"gelu_backward"};
  if (key == "train.fused_decoder") return {"decoder_stage"};
  if (key == "train.fused_loss") return {"loss"};
  if (key == "train.fused_optimizer") return {"optimizer"};
  if (key == "train.fused_augment") return {"augment"};
  return {};
}

namespace {

std::mutex& checksMutex() {
  static std::mutex m;
  return m;
}
std::vector<KernelSelfCheck>& checksRun() {
  static std::vector<KernelSelfCheck> v;
  return v;
}
std::map<std::string, KernelSelfCheck>& checksByKey() {
  static std::map<std::string, KernelSelfCheck> m;
  return m;
}

/// The cases of `family` at the run's shapes, as (description, case) pairs.
std::vector<std::function<KernelCase()>> familyCases(const std::string& family, const Config& config,
                                                     const torch::Device& dev, bool bf16,
                                                     bool bf16_stream, nlohmann::json& shapes) {
  const auto& m = config.model;
  const auto& c = config.crops;
  const int64_t D = m.dim, p = m.patch_size;
  const int64_t t_global = (c.global_size / p) * (c.global_size / p) + 1;
  const int64_t t_local = (c.local_size / p) * (c.local_size / p) + 1;
  std::vector<int64_t> tokens{t_global};
  if (c.local_crops > 0 && t_local != t_global) tokens.push_back(t_local);
  std::vector<std::function<KernelCase()>> cases;
  const uint64_t seed = 7001;
  // Rows: two samples where the kernels are emulated (the tests; the emulated device's small grid
  // already gives each warp several rows), and on a GPU enough rows that the grid-stride loops and
  // partial sums take several turns there too (the junction's backward grid holds a few thousand
  // warps on an H100): 4,800 token rows, still milliseconds.
  const bool gpu = dev.is_cuda();
  const auto samples = [&](int64_t T) {
    return gpu ? std::max<int64_t>(2, (4800 + std::max<int64_t>(T, 1) - 1) / std::max<int64_t>(T, 1))
               : int64_t{2};
  };
  std::vector<torch::ScalarType> dtypes{torch::kFloat};  // the decoder's and the loss's
  if (bf16) dtypes.push_back(torch::kBFloat16);
  // Each family in the run's dtype, and in fp32 where the kernels take it: the fp32 cases' tight
  // tolerances see an error of a tenth of a percent that bf16's rounding would hide.
  if (family == "junction") {
    std::vector<torch::ScalarType> streams{torch::kFloat};
    if (bf16_stream) streams.push_back(torch::kBFloat16);
    shapes = {{"D", D}, {"tokens", tokens}, {"bf16_stream", bf16_stream}};
    for (auto stream : streams)
      for (int64_t T : tokens)
        for (int variant : {2, 3, 4, 5})  // (the variants the ViT launches)
          cases.push_back([=] {
            return kernel_cases::junction(samples(T), T, D, stream, variant, dev,
                                          seed + 4 * T + variant);
          });
  } else if (family == "qkv_gather") {
    shapes = {{"D", D}, {"heads", m.heads}, {"tokens", tokens}};
    for (int64_t T : tokens)
      for (int layout = 0; layout < 4; ++layout)
        cases.push_back([=] {
          return kernel_cases::qkvGather(samples(T), T, m.heads, D / m.heads, D, layout, dev,
                                         seed + 4 * T + layout);
        });
  } else if (family == "gelu_backward") {
    const int64_t hidden = static_cast<int64_t>(std::llround(D * m.mlp_ratio));
    const std::string approximate = m.gelu == "tanh" ? "tanh" : "none";
    shapes = {{"hidden", hidden}, {"gelu", approximate}};
    // (The fused MLP always asks for the bias gradient, and for GELU's output unless stored.)
    for (bool want_gelu : {true, false})
      cases.push_back([=] {
        return kernel_cases::geluBackward(samples(t_global) * t_global, hidden, approximate,
                                          want_gelu, true, dev,
                                          seed + want_gelu);
      });
  } else if (family == "decoder_stage") {
    // The stages after an upsampling: every width but the first.
    const auto widths = decoderWidths(m);
    std::vector<int64_t> stage_widths(widths.size() > 1 ? widths.begin() + 1 : widths.end(),
                                      widths.end());
    shapes = {{"widths", stage_widths}, {"bf16", bf16}};
    for (auto dtype : dtypes)
      for (int64_t C : stage_widths)
        cases.push_back([=] {
          return kernel_cases::decoderStage(dtype, gpu ? 8 : 2, C, gpu ? 14 : 3, gpu ? 15 : 4, 0.0,
                                            false, 0.3, dev, seed + C);
        });
  } else if (family == "loss") {
    const int64_t S = 2 + c.local_crops;
    const double ts = config.loss.student_temp;
    shapes = {{"crops", S}, {"classes", m.out_dim}, {"bf16", bf16}};
    for (auto dtype : dtypes)
      for (double tt : {config.loss.teacher_temp_start, config.loss.teacher_temp})
        cases.push_back([=] {
          return kernel_cases::loss(S, gpu ? 16 : 2, m.out_dim, 1.0, ts, tt, dtype, dev, seed + S);
        });
  } else if (family == "optimizer") {
    // Sizes of its own (the run's 45 M parameters would take seconds emulated): an odd count
    // (whose grid-stride loop takes several turns on the emulated device), a handful of values
    // (the tail alone), and buffers off 16 bytes; the last layer frozen, after its freeze, and
    // without one.
    const int64_t n = gpu ? 1000003 : 20011;
    shapes = {{"numel", std::vector<int64_t>{n, 7}}};
    struct Case {
      int64_t numel, offset;
      bool with_freeze, frozen;
      int64_t teacher;
    };
    for (auto o : {Case{n, 0, true, true, 3 * n / 4 + 1}, Case{n, 0, true, false, 3 * n / 4 + 1},
                   Case{n, 0, false, false, n}, Case{n, 1, true, false, n - 2},
                   Case{7, 0, true, false, 5}}) {
      const uint64_t case_seed = seed + cases.size();
      cases.push_back([=] {
        return kernel_cases::optimizer(o.numel, o.offset, o.with_freeze, o.frozen, o.teacher, dev,
                                       case_seed);
      });
    }
  } else if (family == "augment") {
    shapes = {{"channels", m.channels}, {"global", c.global_size}, {"local", c.local_size}};
    const auto& a = config.augment;
    // Sources of another size than the crops, so that crops scale both ways and reflect.
    const int64_t h = c.global_size + c.global_size / 4 + 3, w = c.global_size - c.global_size / 8;
    // Source images as a run's B: its crop sets have B and local_crops × B rows.
    const int64_t B = gpu ? 8 : 2;
    cases.push_back([=] {
      return kernel_cases::augment(c, a, m.channels, "global1", B, B, c.global_size,
                                   c.global_scale_min, c.global_scale_max, a.blur_p_global1, 0.0,
                                   h, w, dev, seed + 1);
    });
    cases.push_back([=] {
      return kernel_cases::augment(c, a, m.channels, "global2", B, B, c.global_size,
                                   c.global_scale_min, c.global_scale_max, a.blur_p_global2,
                                   a.solarize_p, h, w, dev, seed + 2);
    });
    if (c.local_crops > 0)
      cases.push_back([=] {
        return kernel_cases::augment(c, a, m.channels, "locals", B, B * c.local_crops, c.local_size,
                                     c.local_scale_min, c.local_scale_max, a.blur_p_local, 0.0, h,
                                     w, dev, seed + 3);
      });
  } else {
    throw MstError("selfCheckKernels: unknown kernel family " + family);
  }
  return cases;
}

}  // namespace

KernelSelfCheck selfCheckKernels(const std::string& family, const Config& config,
                                 const torch::Device& device, bool bf16, bool bf16_stream) {
  KernelSelfCheck r;
  r.family = family;
  nlohmann::json shapes;
  auto cases = familyCases(family, config, device, bf16, bf16_stream, shapes);
  // Everything the cases read: the model, the crops, the augmentation and the loss settings.
  const auto json = configToJson(config);
  const std::string key = family + " " + device.str() + (bf16 ? " bf16" : " fp32") +
                          (bf16_stream ? " stream" : "") + " " + json["model"].dump() +
                          json["crops"].dump() + json["augment"].dump() + json["loss"].dump();
  std::lock_guard<std::mutex> lock(checksMutex());
  if (auto it = checksByKey().find(key); it != checksByKey().end()) return it->second;
  const auto start = std::chrono::steady_clock::now();
  // The cases' modules draw their initial weights from the global CPU generator: it is put back,
  // so that a run's own draws do not depend on whether its kernels were checked. (Another thread
  // drawing from it meanwhile, a sweep's engine on another device, would be rewound too: as with
  // torch::manual_seed, runs in parallel threads share that generator.)
  struct KeepGlobalRng {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    torch::Tensor state;
    KeepGlobalRng() {
      std::lock_guard<std::mutex> hold(gen.mutex());
      state = gen.get_state();
    }
    ~KeepGlobalRng() {
      std::lock_guard<std::mutex> hold(gen.mutex());
      gen.set_state(state);
    }
  } keep_rng;
  r.passed = true;
  r.cases = nlohmann::json::array();
  bool errored = false;
  try {
    torch::AutoGradMode grad(true);
    for (auto& run : cases) {
      auto one = run();
      r.cases.push_back(one.row);
      ++r.total;
      r.ran += one.ran ? 1 : 0;
      if (!one.passed && r.passed) {
        r.passed = false;
        r.detail = "disagree with ATen's operations on this device: " + one.row.dump();
      }
    }
  } catch (const std::exception& e) {
    // Out of memory, or a fault (after which CUDA fails every later call in the process, and
    // the run with it): not a disagreement, and not kept, so that a later engine checks again.
    errored = true;
    r.passed = false;
    const std::string what = e.what();
    r.detail = "could not be checked on this device: " + what.substr(0, what.find('\n'));
  }
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  r.cases = {{"shapes", shapes}, {"cases", r.cases}};
  if (!errored) checksByKey()[key] = r;
  checksRun().push_back(r);
  return r;
}

std::vector<KernelSelfCheck> kernelSelfChecks() {
  std::lock_guard<std::mutex> lock(checksMutex());
  return checksRun();
}

bool settleKernelSetting(const std::string& value, const std::string& key,
                         const std::string& unavailable,
                         const std::function<KernelSelfCheck(const std::string&)>& check,
                         std::vector<std::string>& notes) {
  if (value == "off") return false;
  if (!unavailable.empty()) {
    if (value == "on")
      throw MstError("config key " + key + ": " + unavailable + ": set it to auto or off");
    return false;
  }
  for (const auto& family : kernelFamilies(key)) {
    const auto result = check(family);
    if (result.passed) continue;
    const std::string what = "the " + family + " kernels " + result.detail;
    // (train.fused_mlp is true / false.)
    const char* remedy = key == "train.fused_mlp" ? "set it to false" : "set it to auto or off";
    if (value == "on") throw MstError("config key " + key + ": " + what + ": " + remedy);
    notes.push_back(key + " (auto): " + what + "; this run uses ATen's operations instead");
    return false;
  }
  return true;
}

}  // namespace mst
