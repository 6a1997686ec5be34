/// @brief The GPU checks of our own kernels and of the fused MLP (see gpu_checks.h): each against
/// the ATen arithmetic it replaces, from the same inputs.
#include <algorithm>
#include <cmath>

#include "core/augment/multicrop.h"
#include "core/bench/check_math.h"
#include "core/bench/gpu_checks.h"
#include "core/kernels/decoder_norm.h"
#include "core/kernels/dino_loss.h"
#include "core/kernels/fused_mlp.h"
#include "core/kernels/gelu_backward.h"
#include "core/kernels/qkv_heads.h"
#include "core/kernels/residual_norm.h"
#include "core/model/decoder.h"
#include "core/model/vit.h"
#include "core/train/losses.h"
#include "core/util/torch_compat.h"

namespace mst {
namespace {

using checks::relNorm;

/// A build without the fused kernels fails their checks, saying so.
bool missingKernels(GpuCheck& r) {
  if (fusedKernelsBuilt()) return false;
  r.values["error"] = "this build has no fused kernels (CMake found no CUDA compiler)";
  return true;
}

}  // namespace

GpuCheck checkFusedNorm() {
  GpuCheck r;
  r.name = "fused_norm_vs_reference";
  if (missingKernels(r)) return r;
  const torch::Device cuda(torch::kCUDA, 0);
  auto gen = at::detail::createCPUGenerator(11);
  auto randn = [&](std::vector<int64_t> shape) { return torch::randn(shape, gen); };
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  int64_t cases = 0;
  struct Shape {
    int64_t B, T, D;
  };
  // DeiT-S global and local crops, the Fashion-MNIST widths, widths that are no multiple of 32,
  // the widest row the kernels take, and a batch of empty samples.
  // (96 × 197 rows: more rows than the backward grid has warps, so that each warp adds up
  // several rows' γ and β gradients.)
  for (auto shape : {Shape{96, 197, 384}, Shape{8, 197, 384}, Shape{24, 37, 384}, Shape{16, 50, 192}, Shape{3, 9, 1000},
                     Shape{2, 3, 64}, Shape{1, 7, 33}, Shape{2, 5, 1024}, Shape{2, 0, 384}}) {
    for (auto stream : {torch::kFloat, torch::kBFloat16}) {
      // branch + scale, branch, no branch, branch + its linear's bias + scale
      for (int variant = 0; variant < 4; ++variant) {
        const auto [B, T, D] = shape;
        const bool has_branch = variant != 2, has_bias = variant == 3;
        auto x = randn({B, T, D}).to(stream);
        auto branch = has_branch ? randn({B, T, D}).to(torch::kBFloat16) : torch::Tensor();
        auto bias = has_bias ? 0.3 * randn({D}) : torch::Tensor();
        auto scale = variant == 0 || variant == 3 ? (torch::rand({B}, gen) < 0.7)
                                        .to(torch::kBFloat16).div_(0.7).to(torch::kFloat)
                                  : torch::Tensor();
        auto gamma = 1 + 0.1 * randn({D}), beta = 0.1 * randn({D});
        auto gz = randn({B, T, D}).to(torch::kBFloat16), gy = randn({B, T, D}).to(stream);
        // Forward outputs and every gradient, on the CPU (ATen arithmetic) or the GPU (kernels).
        auto run = [&](const torch::Device& d) {
          // Fresh leaves on every run (to() alone would hand the CPU run the inputs themselves).
          auto leaf = [&](const torch::Tensor& t) {
            return t.to(d, /*non_blocking=*/false, /*copy=*/true).requires_grad_(true);
          };
          auto xd = leaf(x), gd = leaf(gamma), be = leaf(beta);
          auto bd = has_branch ? leaf(branch) : torch::Tensor();
          auto bias_d = has_bias ? leaf(bias) : torch::Tensor();
          auto out = residualLayerNorm(xd, bd, bias_d, scale.defined() ? scale.to(d) : scale, gd,
                                       be, 1e-6, torch::kBFloat16);
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
        auto ref = run(torch::kCPU);
        auto got = run(cuda);
        const bool bf16 = stream == torch::kBFloat16;
        const char* names[] = {"y", "z", "dx", "dbranch", "dgamma", "dbeta", "dbias"};
        // y is rounded the same way on both devices; z and the branch's gradient are bf16; the
        // stream's gradient is in the stream's dtype; the parameters' sums differ in order, and
        // the bias's sums a gradient that a bf16 stream rounds (one step where the devices'
        // fp32 arithmetic lands on either side of a rounding boundary).
        const double tolerance[] = {1e-6, 1e-2, bf16 ? 1e-2 : 1e-4, 1e-2, 1e-4, 1e-4,
                                    bf16 ? 1e-3 : 1e-4};
        nlohmann::json row{{"B", B}, {"T", T}, {"D", D}, {"stream", bf16 ? "bf16" : "fp32"},
                           {"branch", has_branch}, {"bias", has_bias}, {"scale", scale.defined()}};
        for (int i = 0; i < 7; ++i) {
          const double rel = relNorm(got[i], ref[i]);
          row[names[i]] = rel;
          if (!(rel <= tolerance[i])) all_ok = false;
        }
        rows.push_back(row);
        ++cases;
      }
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"y", 1e-6}, {"z", 1e-2}, {"dx", "1e-4 (fp32 stream), 1e-2 (bf16)"},
                           {"dbranch", 1e-2}, {"dgamma_dbeta", 1e-4},
                           {"dbias", "1e-4 (fp32 stream), 1e-3 (bf16)"}};
  r.passed = cases > 0 && all_ok;
  return r;
}

GpuCheck checkFusedAugment() {
  GpuCheck r;
  r.name = "fused_augment_vs_aten";
  if (missingKernels(r)) return r;
  const torch::Device cuda(torch::kCUDA, 0);
  // Exact fp32 on both sides: TF32 would round affine_grid's coordinates in the ATen path. (Left
  // off afterwards: every Engine sets both flags for its own arithmetic when it is made.)
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  const double tolerance = 1e-4, max_tolerance = 0.05;
  for (int64_t channels : {int64_t{1}, int64_t{3}}) {
    CropConfig crops;
    AugmentConfig augment;
    MultiCrop multicrop(crops, augment, channels, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
    auto host = at::detail::createCPUGenerator(21 + channels);
    // Sources of another size than the crops, so that crops scale both ways and reflect.
    auto source = torch::rand({16, channels, 160, 120}, host).to(cuda);
    struct Set {
      const char* name;
      int64_t rows, size;
      double smin, smax, blur_p, solarize_p;
    };
    for (auto set : {Set{"global1", 16, 224, 0.4, 1.0, 1.0, 0.0},
                     Set{"global2", 16, 224, 0.4, 1.0, 0.1, 0.2},
                     Set{"locals", 96, 96, 0.05, 0.4, 0.5, 0.0},
                     Set{"unblurred", 32, 64, 0.05, 1.0, 0.0, 0.5}}) {
      at::Generator gen = makeGenerator(cuda, 100 + channels);
      auto draws = multicrop.draw(set.rows, set.size, set.smin, set.smax, set.blur_p,
                                  set.solarize_p, gen, {}, source.options());
      auto ref = multicrop.apply(source, draws, set.size);
      torch::Tensor got;
      const bool ran = multicrop.applyFused(source, draws, set.size, got);
      const double rel = ran ? relNorm(got, ref) : 1.0;
      const double worst = ran ? (got - ref).abs().max().item<double>() : 1.0;
      rows.push_back({{"channels", channels}, {"set", set.name}, {"rows", set.rows},
                      {"size", set.size}, {"fused_ran", ran}, {"rel", rel},
                      {"max_abs", worst}});
      if (!(rel <= tolerance && worst <= max_tolerance)) all_ok = false;
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"rel", tolerance}, {"max_abs", max_tolerance}};
  r.passed = !rows.empty() && all_ok;
  return r;
}

GpuCheck checkGeluBackward() {
  GpuCheck r;
  r.name = "gelu_backward_kernel_vs_reference";
  if (missingKernels(r)) return r;
  const torch::Device cuda(torch::kCUDA, 0);
  auto gen = at::detail::createCPUGenerator(23);
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t rows, hidden;
  };
  // DeiT-S's MLP over many rows (several per thread), the CLS-only rows, a width that is no
  // multiple of the 256-channel tile, the narrowest width, no rows.
  for (auto c : {Case{20000, 1536}, Case{1280, 1536}, Case{999, 264}, Case{5, 8}, Case{0, 384}}) {
    for (const char* approximate : {"none", "tanh"}) {
      // Every combination of the optional outputs: the fused MLP asks for the bias gradient
      // with GELU's output (recomputed) or without it (stored, train.recompute_gelu off).
      for (int outputs = 0; outputs < 4; ++outputs) {
        const bool want_gelu = (outputs & 1) == 0, want_bias = (outputs & 2) == 0;
        auto pre = (torch::randn({c.rows, c.hidden}, gen) * 2.5).to(torch::kBFloat16);
        auto dgelu = torch::randn({c.rows, c.hidden}, gen).to(torch::kBFloat16);
        const bool ran = geluBackwardKernelApplies(pre.to(cuda));
        auto got = geluBackward(dgelu.to(cuda), pre.to(cuda), approximate, want_gelu, want_bias);
        // ATen's gelu_backward and gelu on the GPU compute in fp32 from the bf16 values and round
        // once, as the kernel does; their erff, tanhf and FMA contractions may differ from the
        // kernel's in the last fp32 bit, which in GELU's far negative tail (where 1 + erf
        // cancels) moves some elements one bf16 step.
        GeluBackwardOut ref;
        {
          auto p = pre.to(cuda), g = dgelu.to(cuda);
          ref.dpre = torch::gelu_backward(g, p, approximate).cpu();
          if (want_gelu) ref.gelu = torch::gelu(p, approximate).cpu();
          if (want_bias) ref.dbias = got.dpre.to(torch::kFloat).sum(0).cpu();  // of what it stored
        }
        auto compare = [&](const torch::Tensor& mine, const torch::Tensor& theirs) {
          if (theirs.numel() == 0) return std::pair{1.0, true};
          auto a = mine.cpu().to(torch::kFloat), b = theirs.to(torch::kFloat);
          const double same = a.eq(b).to(torch::kFloat).mean().item<double>();
          const bool close = ((a - b).abs() <= b.abs() / 128 + 1e-5).all().item<bool>();
          return std::pair{same, close};
        };
        nlohmann::json row = {{"rows", c.rows}, {"hidden", c.hidden}, {"approximate", approximate},
                              {"gelu", want_gelu}, {"bias", want_bias}, {"kernel_ran", ran}};
        bool ok = ran && got.gelu.defined() == want_gelu && got.dbias.defined() == want_bias;
        const auto [same_d, close_d] = compare(got.dpre, ref.dpre);
        row["dpre_equal"] = same_d;
        ok = ok && same_d >= 0.9 && close_d;
        if (ok && want_gelu) {
          const auto [same_g, close_g] = compare(got.gelu, ref.gelu);
          row["gelu_equal"] = same_g;
          ok = same_g >= 0.9 && close_g;
        }
        if (ok && want_bias) {
          // bf16's rounding of the sums alone is ~2e-3; one row left out of 20,000 is ~7e-3.
          const double bias = relNorm(got.dbias.cpu(), ref.dbias);
          row["dbias_rel"] = bias;
          ok = c.rows == 0 ? got.dbias.abs().max().item<double>() == 0.0 : bias <= 4e-3;
        }
        row["passed"] = ok;
        rows.push_back(row);
        all_ok = all_ok && ok;
      }
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"equal_fraction", 0.9}, {"max_rel", 1.0 / 128}, {"max_abs", 1e-5},
                           {"dbias_rel", 4e-3}};
  r.passed = all_ok;
  return r;
}

GpuCheck checkQkvHeads() {
  GpuCheck r;
  r.name = "qkv_heads_kernel_vs_reference";
  if (missingKernels(r)) return r;
  const torch::Device cuda(torch::kCUDA, 0);
  auto gen = at::detail::createCPUGenerator(29);
  auto bf16 = [&](std::vector<int64_t> shape) {
    return torch::randn(shape, gen).to(torch::kBFloat16).to(cuda);
  };
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t B, T, heads, d, in;
  };
  // DeiT-S global and local crops, the Fashion-MNIST widths, the narrowest head, no tokens.
  for (auto c : {Case{64, 197, 6, 64, 384}, Case{128, 37, 6, 64, 384}, Case{16, 50, 3, 64, 192},
                 Case{3, 5, 2, 8, 24}, Case{2, 0, 6, 64, 384}}) {
    // The attention kernels' gradient layouts: (B, h, T, d) contiguous, (B, T, h, d) memory seen
    // through a transpose, or one packed (B, T, 3, h, d) buffer (k's and v's at an offset); and
    // v's gradient missing (then zero).
    const char* layouts[] = {"BhTd", "BThd", "packed BT3hd", "BhTd without v"};
    for (int layout = 0; layout < 4; ++layout) {
      const bool transposed = layout == 1, packed = layout == 2, skip_v = layout == 3;
      torch::nn::Linear fc(c.in, 3 * c.heads * c.d);
      {
        torch::NoGradGuard no_grad;
        fc->bias.normal_(0.0, 0.5);
      }
      fc->to(cuda, torch::kBFloat16);
      auto x = bf16({c.B, c.T, c.in});
      std::vector<torch::Tensor> upstream;
      auto buffer = packed ? bf16({c.B, c.T, 3, c.heads, c.d}) : torch::Tensor();
      for (int i = 0; i < 3; ++i)
        upstream.push_back(packed       ? buffer.select(2, i).transpose(1, 2)
                           : transposed ? bf16({c.B, c.T, c.heads, c.d}).transpose(1, 2)
                                        : bf16({c.B, c.heads, c.T, c.d}));
      // Gradients of (x, W, b) through the fused function or through linear + splitHeads.
      auto run = [&](bool fused, bool& kernel_ran) {
        fc->zero_grad();
        auto xl = x.clone().requires_grad_(true);
        auto parts = fused ? qkvHeads(xl, *fc, c.heads)
                           : splitHeads(torch::linear(xl, fc->weight, fc->bias), 3, c.heads);
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
      auto got = run(true, ran);
      auto ref = run(false, unused);
      // q's values and the input's and weight's gradients: the same products of the same
      // (gathered) gradient; the bias's: bf16 sums of it, added in another order.
      const char* names[] = {"q", "dx", "dweight", "dbias"};
      const double tolerance[] = {1e-6, 1e-3, 1e-3, 4e-3};
      nlohmann::json row{{"B", c.B}, {"T", c.T}, {"heads", c.heads}, {"d", c.d},
                         {"layout", layouts[layout]},
                         {"kernel_ran", ran}};
      bool ok = ran || c.B * c.T == 0;  // (no rows: the kernel may rightly decline)
      for (int i = 0; i < 4; ++i) {
        const double rel = got[i].numel() == 0 ? 0.0 : relNorm(got[i], ref[i]);
        row[names[i]] = rel;
        if (!(rel <= tolerance[i])) ok = false;
      }
      row["passed"] = ok;
      rows.push_back(row);
      all_ok = all_ok && ok;
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"q", 1e-6}, {"dx", 1e-3}, {"dweight", 1e-3}, {"dbias", 4e-3}};
  r.passed = all_ok;
  return r;
}

GpuCheck checkDecoderNorm() {
  GpuCheck r;
  r.name = "decoder_norm_kernel_vs_reference";
  if (missingKernels(r)) return r;
  const torch::Device cuda(torch::kCUDA, 0);
  auto gen = at::detail::createCPUGenerator(41);
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    torch::ScalarType dtype;
    int64_t B, C, H, W;
    double beta;  // β's mean: −2 cuts most outputs at ReLU
    bool nchw_grad = false;
    double shift = 0.3;  // the input's mean (its standard deviation is 1.5)
  };
  const auto bf16 = torch::kBFloat16, fp32 = torch::kFloat;
  // DeiT-S/16's stage widths (256 to 32), the Fashion-MNIST decoder's 128, a 56 × 56 stage, odd
  // sizes, and fp32 (the CPU agreement runs).
  for (auto c : {Case{bf16, 4, 32, 9, 7, 0.0}, Case{bf16, 2, 64, 8, 8, 0.0},
                 Case{bf16, 2, 128, 5, 6, 0.0}, Case{bf16, 2, 256, 3, 4, 0.0},
                 Case{bf16, 8, 32, 56, 56, 0.0}, Case{bf16, 3, 64, 6, 5, -2.0},
                 Case{fp32, 4, 32, 9, 7, 0.0}, Case{fp32, 2, 128, 5, 6, 0.0},
                 Case{fp32, 3, 64, 6, 5, -2.0}, Case{bf16, 2, 64, 6, 5, 0.0, true},
                 Case{fp32, 4, 32, 9, 7, 0.0, false, 40.0}, Case{bf16, 4, 32, 9, 7, 0.0, false, 40.0}}) {
    auto y = (torch::randn({c.B, 4 * c.C, c.H + 1, c.W + 1}, gen) * 1.5 + c.shift)
                 .to(c.dtype)
                 .to(cuda)
                 .contiguous(at::MemoryFormat::ChannelsLast);
    auto g = torch::randn({c.B, c.C, 2 * c.H, 2 * c.W}, gen)
                 .to(c.dtype)
                 .to(cuda)
                 .contiguous(at::MemoryFormat::ChannelsLast);
    auto gamma = 1 + 0.2 * torch::randn({c.C}, gen), beta = c.beta + 0.2 * torch::randn({c.C}, gen);
    auto rmean = 0.1 * torch::randn({c.C}, gen), rvar = 1 + 0.1 * torch::rand({c.C}, gen);
    // Output, running statistics and gradients: fused, or ATen's gather + BatchNorm + ReLU.
    auto run = [&](bool fused, bool& applied) {
      torch::nn::BatchNorm2d bn(c.C);
      bn->to(cuda);
      {
        torch::NoGradGuard no_grad;
        bn->weight.copy_(gamma);
        bn->bias.copy_(beta);
        bn->running_mean.copy_(rmean);
        bn->running_var.copy_(rvar);
      }
      auto yl = y.clone().requires_grad_(true);
      applied = decoderNormApplies(yl, c.C, *bn);
      auto out = fused && applied ? decoderNorm(yl, c.C, *bn)
                                  : torch::relu(bn->forward(phaseGather(yl, c.C)));
      // (One case hands the backward pass an fp32 gradient in NCHW order, as a consumer in
      // another dtype or layout would.)
      out.backward(c.nchw_grad ? g.to(torch::kFloat).contiguous() : g);
      return std::vector<torch::Tensor>{out.detach(), bn->running_mean.clone(),
                                        bn->running_var.clone(), yl.grad(), bn->weight.grad(),
                                        bn->bias.grad(), bn->num_batches_tracked.clone()};
    };
    bool applied = false, unused = false;
    const auto got = run(true, applied);
    const auto ref = run(false, unused);
    const bool low = c.dtype == bf16;
    const char* names[] = {"out", "running_mean", "running_var", "dy", "dgamma", "dbeta"};
    const double tolerance[] = {low ? 1e-2 : 1e-5, 1e-5, 1e-5, low ? 1e-2 : 1e-4,
                                low ? 2e-3 : 1e-4, low ? 2e-3 : 1e-4};
    nlohmann::json row{{"dtype", low ? "bf16" : "fp32"}, {"B", c.B}, {"C", c.C}, {"H", c.H},
                       {"W", c.W}, {"beta", c.beta}, {"nchw_grad", c.nchw_grad},
                       {"shift", c.shift}, {"applied", applied},
                       {"zero_outputs", (ref[0] == 0).to(torch::kFloat).mean().item<double>()}};
    bool ok = applied && torch::equal(got[6], ref[6]);
    for (int i = 0; i < 6; ++i) {
      const double rel = relNorm(got[i], ref[i]);
      row[names[i]] = rel;
      if (!(rel <= tolerance[i])) ok = false;
    }
    row["passed"] = ok;
    rows.push_back(row);
    all_ok = all_ok && ok;
  }
  r.values["cases"] = rows;
  {  // A whole decoder with DeiT-S/16's stage widths (256 to 32), fp32: fused stages or not.
    ModelConfig mc = modelPreset("vit_micro28");
    mc.patch_size = 16;
    mc.dim = 64;
    mc.channels = 3;
    Decoder decoder(mc);
    decoder->to(cuda);
    auto patches = torch::randn({2, 16, mc.dim}, gen).to(cuda);
    auto grad = torch::randn({2, mc.channels, 64, 64}, gen).to(cuda);
    std::vector<torch::Tensor> buffers0;
    for (auto& b : decoder->buffers()) buffers0.push_back(b.clone());
    auto run = [&](bool fused) {
      {
        torch::NoGradGuard no_grad;
        auto buffers = decoder->buffers();
        for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(buffers0[i]);
      }
      decoder->zero_grad();
      decoder->fused_stages = fused;
      auto p = patches.clone().requires_grad_(true);
      auto out = decoder->forward(p);
      out.backward(grad);
      std::vector<torch::Tensor> v{out.detach(), p.grad()};
      for (auto& q : decoder->parameters()) v.push_back(q.grad().clone());
      for (auto& b : decoder->buffers()) v.push_back(b.clone().to(torch::kDouble));
      return v;
    };
    const auto got = run(true);
    // How many of the stages after an upsampling (three here) the kernels took: one whose
    // layout or alignment they cannot take runs ATen's operations, correct but not fused, and
    // is reported here (and by `mst bench`); none at all would leave this comparison empty.
    r.values["decoder_fused_stages"] = std::to_string(decoder->fused_stages_last) + " of " +
                                       std::to_string(decoder->norm_stages_last);
    if (decoder->fused_stages_last == 0) all_ok = false;
    const auto ref = run(false);
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); ++i)
      worst = std::max(worst, got[i].numel() == 0 ? 0.0 : relNorm(got[i], ref[i]));
    r.values["decoder_fp32_max_rel"] = worst;
    if (!(worst <= 1e-4)) all_ok = false;
  }
  r.values["tolerance"] = "bf16: output and dy 1e-2, dγ and dβ 2e-3; fp32: 1e-5, 1e-4, 1e-4; "
                          "running statistics 1e-5; the decoder 1e-4 (relative norms)";
  r.passed = all_ok;
  return r;
}

GpuCheck checkFusedLoss() {
  GpuCheck r;
  r.name = "fused_loss_vs_reference";
  if (missingKernels(r)) return r;
  const torch::Device cuda(torch::kCUDA, 0);
  auto gen = at::detail::createCPUGenerator(31);
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t S, B, K;
    double scale;  ///< of the logits: 8 puts most of each softmax on a few classes
    double tt;     ///< the teacher's temperature: 10 spreads its targets over every class
  };
  // The paper's step (2 + 10 crops, 65,536 classes), Fashion-MNIST's, the most crops the kernels
  // take, the two global crops alone over few classes, sharply peaked logits, and flat targets
  // (where every class's target counts: a class segment read twice or skipped would show).
  for (auto c : {Case{12, 128, 65536, 1.0, 0.04}, Case{8, 64, 4096, 1.0, 0.04},
                 Case{32, 2, 65536, 1.0, 0.04}, Case{2, 3, 8, 1.0, 0.04},
                 Case{12, 16, 65536, 8.0, 0.04}, Case{12, 16, 65536, 1.0, 10.0}}) {
    for (auto dtype : {torch::kBFloat16, torch::kFloat}) {
      const double ts = 0.1, tt = c.tt;
      auto teacher = torch::randn({2 * c.B, c.K}, gen).to(cuda);
      auto center = (0.1 * torch::randn({1, c.K}, gen)).to(cuda);
      auto logits = (c.scale * torch::randn({c.S * c.B, c.K}, gen)).to(dtype).to(cuda);
      auto probs = ((teacher - center) / tt).softmax(-1);
      const bool ran = fusedDistillationApplies(logits, probs);
      auto z = logits.clone().requires_grad_(true);
      auto got = distillationLoss(z, teacher, center, ts, tt, /*fused=*/true);
      auto got_grad = torch::autograd::grad({got * 1.5}, {z})[0];
      // The reference: autograd through ATen on the logits' fp32 copy (train.fused_loss off).
      auto z_ref = logits.to(torch::kFloat).requires_grad_(true);
      auto ref = distillationLoss(z_ref, teacher, center, ts, tt, /*fused=*/false);
      auto ref_grad = torch::autograd::grad({ref * 1.5}, {z_ref})[0];
      const double loss_rel = std::abs(got.item<double>() - ref.item<double>()) /
                              std::max(std::abs(ref.item<double>()), 1e-30);
      const double grad_rel = relNorm(got_grad, ref_grad);
      // fp32 sums over the classes in another order; the bf16 gradient is rounded once.
      const double grad_tol = dtype == torch::kBFloat16 ? 4e-3 : 1e-4;
      const bool ok = ran && got_grad.scalar_type() == dtype && loss_rel <= 1e-5 &&
                      grad_rel <= grad_tol;
      rows.push_back({{"S", c.S}, {"B", c.B}, {"K", c.K}, {"scale", c.scale}, {"teacher_temp", c.tt},
                      {"dtype", dtype == torch::kBFloat16 ? "bf16" : "fp32"}, {"kernel_ran", ran},
                      {"loss", got.item<double>()}, {"loss_rel", loss_rel}, {"grad_rel", grad_rel},
                      {"passed", ok}});
      all_ok = all_ok && ok;
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"loss_rel", 1e-5}, {"grad_rel", "4e-3 (bf16 logits), 1e-4 (fp32)"}};
  r.passed = all_ok;
  return r;
}

GpuCheck checkFusedMlp() {
  GpuCheck r;
  r.name = "fused_mlp_vs_reference";
  if (!cublasLtBuilt()) {
    r.values["error"] = "this build has no cuBLASLt (CMake option MST_CUBLASLT)";
    return r;
  }
  const torch::Device cuda(torch::kCUDA, 0);
  auto gen = at::detail::createCPUGenerator(17);
  auto bf16 = [&](std::vector<int64_t> shape, double scale, double shift) {
    return (torch::randn(shape, gen) * scale + shift).to(torch::kBFloat16);
  };
  struct Case {
    int64_t rows, in, hidden, out;
    double bias;  ///< shift of fc1's bias: -3 puts the pre-activations where the GELUs differ
  };
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  // DeiT-S rows of global and local crops, the CLS-only last block, the Fashion-MNIST widths,
  // no rows, and the tail case that tells the tanh GELU from the erf one (~10 % apart at -3).
  for (auto c : {Case{1024, 384, 1536, 384, 0.0}, Case{197 * 3, 384, 1536, 384, 0.0},
                 Case{64, 384, 1536, 384, 0.0}, Case{600, 96, 384, 96, 0.0},
                 Case{0, 384, 1536, 384, 0.0}, Case{512, 64, 256, 64, -3.0}}) {
    auto h = bf16({c.rows, c.in}, 1.0, 0.0);
    auto w1 = bf16({c.hidden, c.in}, c.bias == 0.0 ? 0.05 : 0.01, 0.0);
    auto b1 = bf16({c.hidden}, 0.1, c.bias);
    auto w2 = bf16({c.out, c.hidden}, 0.05, 0.0);
    // (No fc2 bias in the tail case: y's bf16 rounding of a 0.1 bias would hide the ~3e-4 that
    // tells the two GELUs apart.)
    auto b2 = c.bias == 0.0 ? bf16({c.out}, 0.1, 0.0) : torch::zeros({c.out}).to(torch::kBFloat16);
    auto dy = bf16({c.rows, c.out}, 1.0, 0.0);
    // The fused MLP on the GPU from these bf16 values (GELU's output recomputed, and stored);
    // the unfused MLP in fp32 on the CPU from the same values, with the same GELU and (for
    // comparison) with the other one.
    auto run = [&](const torch::Device& d, torch::ScalarType dtype, const std::string& gelu,
                   bool fused, bool store) {
      torch::nn::Linear fc1(c.in, c.hidden), fc2(c.hidden, c.out);
      fc1->to(d, dtype);
      fc2->to(d, dtype);
      {
        torch::NoGradGuard no_grad;
        fc1->weight.copy_(w1);
        fc1->bias.copy_(b1);
        fc2->weight.copy_(w2);
        fc2->bias.copy_(b2);
      }
      auto x = h.to(d, dtype).requires_grad_(true);
      auto y = fused ? fusedMlp(x, *fc1, *fc2, store, gelu, true) : fc2(torch::gelu(fc1(x), gelu));
      y.backward(dy.to(d, dtype));
      std::vector<torch::Tensor> v{y.detach(), x.grad(), fc1->weight.grad(), fc1->bias.grad(),
                                   fc2->weight.grad(), fc2->bias.grad()};
      if (fused) {  // without grad mode: the epilogue without the pre-activation
        torch::NoGradGuard no_grad;
        v.push_back(fusedMlp(x, *fc1, *fc2, store, gelu, true));
      } else {
        v.push_back(y.detach());
      }
      for (auto& t : v) t = t.cpu().to(torch::kFloat);
      return v;
    };
    for (const std::string gelu : {"tanh", "none"}) {
      const std::string other = gelu == "tanh" ? "none" : "tanh";
      auto ref = run(torch::kCPU, torch::kFloat, gelu, false, false);
      auto wrong = run(torch::kCPU, torch::kFloat, other, false, false);
      for (bool store : {false, true}) {
        auto got = run(cuda, torch::kBFloat16, gelu, true, store);
        const char* names[] = {"y", "dh", "dw1", "db1", "dw2", "db2", "y_no_grad"};
        nlohmann::json row{{"rows", c.rows}, {"in", c.in},     {"hidden", c.hidden},
                           {"out", c.out},   {"gelu", gelu},   {"store_gelu", store},
                           {"fc1_bias_shift", c.bias}};
        for (int i = 0; i < 7; ++i) {
          if (c.rows == 0) break;
          const double rel = relNorm(got[i], ref[i]);
          row[names[i]] = rel;
          if (!(rel <= 2e-2)) all_ok = false;
        }
        if (c.rows == 0 && (got[0].numel() != 0 || got[3].abs().max().item<double>() != 0.0))
          all_ok = false;  // no rows: an empty output and zero bias gradients
        if (c.bias != 0.0) {  // each GELU is much nearer itself than the other one
          const double to_own = relNorm(got[0], ref[0]), to_other = relNorm(got[0], wrong[0]);
          row["y_vs_other_gelu"] = to_other;
          // The backward pass's GELU too: fc1's bias gradient passes through its derivative.
          const double d_own = relNorm(got[3], ref[3]), d_other = relNorm(got[3], wrong[3]);
          row["db1_vs_other_gelu"] = d_other;
          // (GELU's derivatives differ less there than GELU itself, ~4 % against ~10 %.)
          if (!(to_own < 0.3 * to_other) || !(d_own < 0.5 * d_other)) all_ok = false;
        }
        rows.push_back(row);
      }
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = "2e-2 relative (bf16 against fp32 from the same bf16 values)";
  // Every call must have taken the cuBLASLt path: a fallback would check ATen against ATen.
  r.values["fallbacks"] = fusedMlpFallbacks();
  r.passed = all_ok && fusedMlpFallbacks() == 0;
  return r;
}

}  // namespace mst
