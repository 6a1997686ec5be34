/// @brief The kernels' comparison cases (see kernel_cases.h).
#include "core/train/kernel_cases.h"

#include <cmath>

#include "core/augment/multicrop.h"
#include "core/kernels/decoder_norm.h"
#include "core/kernels/dino_loss.h"
#include "core/kernels/fused_adamw.h"
#include "core/kernels/gelu_backward.h"
#include "core/kernels/kernel_device.h"
#include "core/kernels/qkv_heads.h"
#include "core/kernels/recon_loss.h"
#include "core/kernels/residual_norm.h"
#include "core/kernels/token_embed.h"
#include "core/model/decoder.h"
#include "core/model/vit.h"
#include "core/train/losses.h"
#include "core/util/check_math.h"
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

KernelCase tokenEmbed(int64_t B, int64_t n, int64_t D, torch::ScalarType x_dtype,
                      torch::ScalarType stream, bool masked, const torch::Device& device,
                      uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto f32 = torch::TensorOptions().device(device);
  auto x = torch::randn({B, n, D}, gen).to(x_dtype).to(device);
  auto mask = masked ? (torch::rand({B, n}, gen) < 0.4).to(device) : torch::Tensor();
  auto token = torch::randn({1, 1, D}, gen).to(f32), cls = torch::randn({1, 1, D}, gen).to(f32);
  auto pos = torch::randn({1, n + 1, D}, gen).to(f32);
  auto g = torch::randn({B, n + 1, D}, gen).to(stream).to(device);
  auto run = [&](bool fused) {
    auto xl = x.clone().requires_grad_(true), tl = token.clone().requires_grad_(true);
    auto cl = cls.clone().requires_grad_(true), pl = pos.clone().requires_grad_(true);
    auto out = mst::tokenEmbed(xl, mask, tl, cl, pl, stream, fused);
    out.backward(g);
    return std::vector<torch::Tensor>{out.detach(), xl.grad(),
                                      masked ? tl.grad() : torch::zeros({0}, f32), cl.grad(),
                                      pl.grad()};
  };
  const bool applied = fusedTokenEmbedApplies(x, mask, token, cls, pos, stream);
  const auto got = run(true);
  const auto ref = run(false);
  const bool low_x = x_dtype == torch::kBFloat16, low_stream = stream == torch::kBFloat16;
  KernelCase r;
  r.ran = applied;
  r.row = {{"B", B}, {"n", n}, {"D", D}, {"x", low_x ? "bf16" : "fp32"},
           {"stream", low_stream ? "bf16" : "fp32"}, {"masked", masked}, {"applied", applied}};
  r.passed = got[0].scalar_type() == stream && got[1].scalar_type() == x_dtype;
  // ATen rounds the tokens' gradients to x's dtype before its sums, and in a bf16 stream the
  // position embedding's too.
  compareOutputs(r, {"out", "dx", "dtoken", "dcls", "dpos"}, got, ref,
                 {1e-6, 1e-6, low_x ? 1e-2 : 1e-5, low_x ? 1e-2 : 1e-5, low_stream ? 1e-2 : 1e-5});
  return r;
}

KernelCase reconstruction(torch::ScalarType dtype, int64_t B, int64_t C, int64_t H, int64_t W,
                          const torch::Device& device, uint64_t seed, int64_t phase_channels) {
  auto gen = at::detail::createCPUGenerator(seed);
  const int64_t K = phase_channels == 0 ? 4 * C : phase_channels;
  auto y = (torch::randn({B, K, H + 1, W + 1}, gen) * 0.8)
               .to(dtype)
               .to(device)
               .contiguous(at::MemoryFormat::ChannelsLast);
  auto target = torch::randn({B, C, 2 * H, 2 * W}, gen);
  {
    // Every tenth value equals the reconstruction: sign(0) = 0 on both sides.
    auto same = torch::rand({B, C, 2 * H, 2 * W}, gen) < 0.1;
    auto gathered = phaseGather(y.detach(), C).to(torch::kFloat).cpu().contiguous();
    target = torch::where(same, gathered, target);
  }
  target = target.to(device);
  const double upstream = 0.7;
  auto run = [&](bool fused) {
    auto yl = y.clone().requires_grad_(true);
    auto loss = reconstructionLossFromPhases(yl, C, target, fused);
    (loss * upstream).backward();
    return std::vector<torch::Tensor>{loss.detach().reshape({1}), yl.grad()};
  };
  const bool applied = fusedReconstructionApplies(y, C, target);
  const auto got = run(true);
  const auto ref = run(false);
  const bool low = dtype == torch::kBFloat16;
  KernelCase r;
  r.ran = applied;
  r.row = {{"dtype", low ? "bf16" : "fp32"}, {"B", B}, {"C", C}, {"K", K}, {"H", H}, {"W", W},
           {"applied", applied}, {"loss", got[0].item<double>()}};
  // The sum in another order; each gradient element is ±g/N or 0 on both sides, from the same
  // fp32 difference (g/N itself may differ in its last bit where ATen divides instead).
  r.passed = got[1].scalar_type() == dtype && got[1].sizes() == y.sizes();
  compareOutputs(r, {"loss", "dy"}, got, ref, {1e-5, 1e-6});
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

}  // namespace mst
