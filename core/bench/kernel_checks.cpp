/// @brief The GPU checks of our own kernels and of the fused MLP (see gpu_checks.h): each against
/// the ATen arithmetic it replaces, from the same inputs.
#include <algorithm>
#include <cmath>

#include "core/augment/multicrop.h"
#include "core/util/check_math.h"
#include "core/bench/gpu_checks.h"
#include "core/kernels/decoder_norm.h"
#include "core/kernels/dino_loss.h"
#include "core/kernels/fused_mlp.h"
#include "core/kernels/gelu_backward.h"
#include "core/kernels/qkv_heads.h"
#include "core/kernels/residual_norm.h"
#include "core/model/decoder.h"
#include "core/model/vit.h"
#include "core/train/kernel_selfcheck.h"
#include "core/train/losses.h"
#include "core/util/torch_compat.h"

namespace mst {
namespace {

using checks::relNorm;

const torch::Device kCuda(torch::kCUDA, 0);

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
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Shape {
    int64_t B, T, D;
  };
  uint64_t seed = 11;
  // DeiT-S global and local crops, the Fashion-MNIST widths, widths that are no multiple of 32,
  // the widest row the kernels take, and a batch of empty samples.
  // (96 × 197 rows: more rows than the backward grid has warps, so that each warp adds up
  // several rows' γ and β gradients.)
  for (auto shape : {Shape{96, 197, 384}, Shape{8, 197, 384}, Shape{24, 37, 384}, Shape{16, 50, 192}, Shape{3, 9, 1000},
                     Shape{2, 3, 64}, Shape{1, 7, 33}, Shape{2, 5, 1024}, Shape{2, 0, 384}}) {
    for (auto stream : {torch::kFloat, torch::kBFloat16}) {
      // branch + scale, branch, no branch, branch + its linear's bias (+ scale), and into the
      // final norm (its output in the stream's dtype)
      for (int variant = 0; variant < 6; ++variant) {
        auto c = kernel_cases::junction(shape.B, shape.T, shape.D, stream, variant, kCuda, ++seed);
        rows.push_back(c.row);
        all_ok = all_ok && c.passed;
      }
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"y", 1e-6}, {"z", "1e-2 (bf16), 1e-4 (fp32)"},
                           {"dx", "1e-4 (fp32 stream), 1e-2 (bf16)"},
                           {"dbranch", 1e-2}, {"dgamma_dbeta", 1e-4},
                           {"dbias", "1e-4 (fp32 stream), 1e-3 (bf16)"}};
  r.passed = !rows.empty() && all_ok;
  return r;
}

GpuCheck checkFusedAugment() {
  GpuCheck r;
  r.name = "fused_augment_vs_aten";
  if (missingKernels(r)) return r;
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  for (int64_t channels : {int64_t{1}, int64_t{3}}) {
    struct Set {
      const char* name;
      int64_t rows, size;
      double smin, smax, blur_p, solarize_p;
    };
    uint64_t seed = 100 + 10 * channels;
    // Sources (160 × 120) of another size than the crops, so that crops scale both ways and
    // reflect.
    for (auto set : {Set{"global1", 16, 224, 0.4, 1.0, 1.0, 0.0},
                     Set{"global2", 16, 224, 0.4, 1.0, 0.1, 0.2},
                     Set{"locals", 96, 96, 0.05, 0.4, 0.5, 0.0},
                     Set{"unblurred", 32, 64, 0.05, 1.0, 0.0, 0.5}}) {
      auto c = kernel_cases::augment(CropConfig{}, AugmentConfig{}, channels, set.name, 16,
                                     set.rows, set.size, set.smin, set.smax, set.blur_p,
                                     set.solarize_p, 160, 120, kCuda, ++seed);
      rows.push_back(c.row);
      all_ok = all_ok && c.passed && c.ran;
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"rel", 1e-4}, {"max_abs", 0.05}};
  r.passed = !rows.empty() && all_ok;
  return r;
}

GpuCheck checkGeluBackward() {
  GpuCheck r;
  r.name = "gelu_backward_kernel_vs_reference";
  if (missingKernels(r)) return r;
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t rows, hidden;
  };
  uint64_t seed = 23;
  // DeiT-S's MLP over many rows (several per thread), the CLS-only rows, a width that is no
  // multiple of the 256-channel tile, the narrowest width, no rows.
  for (auto c : {Case{20000, 1536}, Case{1280, 1536}, Case{999, 264}, Case{5, 8}, Case{0, 384}}) {
    for (const char* approximate : {"none", "tanh"}) {
      // Every combination of the optional outputs: the fused MLP asks for the bias gradient
      // with GELU's output (recomputed) or without it (stored, train.recompute_gelu off).
      for (int outputs = 0; outputs < 4; ++outputs) {
        auto one = kernel_cases::geluBackward(c.rows, c.hidden, approximate, (outputs & 1) == 0,
                                              (outputs & 2) == 0, kCuda, ++seed);
        rows.push_back(one.row);
        all_ok = all_ok && one.passed && one.ran;
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
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t B, T, heads, d, in;
  };
  uint64_t seed = 29;
  // DeiT-S global and local crops, the Fashion-MNIST widths, the narrowest head, no tokens; each
  // with the attention kernels' gradient layouts: (B, h, T, d) contiguous, (B, T, h, d) memory
  // seen through a transpose, one packed (B, T, 3, h, d) buffer (k's and v's at an offset), and
  // v's gradient missing (then zero).
  for (auto c : {Case{64, 197, 6, 64, 384}, Case{128, 37, 6, 64, 384}, Case{16, 50, 3, 64, 192},
                 Case{3, 5, 2, 8, 24}, Case{2, 0, 6, 64, 384}}) {
    for (int layout = 0; layout < 4; ++layout) {
      auto one = kernel_cases::qkvGather(c.B, c.T, c.heads, c.d, c.in, layout, kCuda, ++seed);
      rows.push_back(one.row);
      // (no rows: the kernel may rightly decline)
      all_ok = all_ok && one.passed && (one.ran || c.B * c.T == 0);
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
  const torch::Device cuda = kCuda;
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
  uint64_t seed = 41;
  // DeiT-S/16's stage widths (256 to 32), the Fashion-MNIST decoder's 128, a 56 × 56 stage, odd
  // sizes, and fp32 (the CPU agreement runs).
  for (auto c : {Case{bf16, 4, 32, 9, 7, 0.0}, Case{bf16, 2, 64, 8, 8, 0.0},
                 Case{bf16, 2, 128, 5, 6, 0.0}, Case{bf16, 2, 256, 3, 4, 0.0},
                 Case{bf16, 8, 32, 56, 56, 0.0}, Case{bf16, 3, 64, 6, 5, -2.0},
                 Case{fp32, 4, 32, 9, 7, 0.0}, Case{fp32, 2, 128, 5, 6, 0.0},
                 Case{fp32, 3, 64, 6, 5, -2.0}, Case{bf16, 2, 64, 6, 5, 0.0, true},
                 Case{fp32, 4, 32, 9, 7, 0.0, false, 40.0}, Case{bf16, 4, 32, 9, 7, 0.0, false, 40.0}}) {
    auto one = kernel_cases::decoderStage(c.dtype, c.B, c.C, c.H, c.W, c.beta, c.nchw_grad,
                                          c.shift, cuda, ++seed);
    rows.push_back(one.row);
    all_ok = all_ok && one.passed && one.ran;
  }
  r.values["cases"] = rows;
  {  // A whole decoder with DeiT-S/16's stage widths (256 to 32), fp32: fused stages or not.
    // (Exact fp32: with TF32, which the checks' bf16 engines leave on, the convolutions alone
    // differed by 3.4e-4 on the H200 while every stage matched.)
    checks::ExactFp32 exact;
    ModelConfig mc = modelPreset("vit_micro28");
    mc.patch_size = 16;
    mc.dim = 64;
    mc.channels = 3;
    mc.decoder_widths.clear();  // (the preset names its own two widths)
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
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t S, B, K;
    double scale;  ///< of the logits: 8 puts most of each softmax on a few classes
    double tt;     ///< the teacher's temperature: 10 spreads its targets over every class
  };
  uint64_t seed = 31;
  // The paper's step (2 + 10 crops, 65,536 classes), Fashion-MNIST's, the most crops the kernels
  // take, the two global crops alone over few classes, sharply peaked logits, and flat targets
  // (where every class's target counts: a class segment read twice or skipped would show).
  for (auto c : {Case{12, 128, 65536, 1.0, 0.04}, Case{8, 64, 4096, 1.0, 0.04},
                 Case{32, 2, 65536, 1.0, 0.04}, Case{2, 3, 8, 1.0, 0.04},
                 Case{12, 16, 65536, 8.0, 0.04}, Case{12, 16, 65536, 1.0, 10.0}}) {
    for (auto dtype : {torch::kBFloat16, torch::kFloat}) {
      auto one = kernel_cases::loss(c.S, c.B, c.K, c.scale, 0.1, c.tt, dtype, kCuda, ++seed);
      rows.push_back(one.row);
      all_ok = all_ok && one.passed && one.ran;
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"loss_rel", 1e-5}, {"grad_rel", "4e-3 (bf16 logits), 1e-4 (fp32)"}};
  r.passed = all_ok;
  return r;
}

GpuCheck checkTokenEmbed() {
  GpuCheck r;
  r.name = "token_embed_vs_reference";
  if (missingKernels(r)) return r;
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t B, n, D;
    torch::ScalarType x, stream;
    bool masked;
  };
  const auto bf = torch::kBFloat16, fp = torch::kFloat;
  uint64_t seed = 71;
  for (auto c : {Case{256, 196, 384, bf, fp, true}, Case{256, 196, 384, bf, bf, true},
                 Case{1280, 36, 384, bf, fp, false}, Case{1280, 36, 384, bf, bf, false},
                 Case{64, 49, 192, fp, fp, true}, Case{7, 5, 12, bf, fp, true}}) {
    auto one = kernel_cases::tokenEmbed(c.B, c.n, c.D, c.x, c.stream, c.masked, kCuda, ++seed);
    rows.push_back(one.row);
    all_ok = all_ok && one.passed && one.ran;
  }
  r.values["cases"] = rows;
  r.passed = all_ok;
  return r;
}

GpuCheck checkFusedReconstruction() {
  GpuCheck r;
  r.name = "fused_reconstruction_vs_reference";
  if (missingKernels(r)) return r;
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t B, C, H, W;
    bool padded;  // the decoder's phase channels (paddedPhaseChannels), else exactly 4C
  };
  uint64_t seed = 61;
  // DeiT-S/16's 224-px global crops (2 × 64 images), Fashion-MNIST's 28 px, one channel, and an
  // odd, non-square size (rows that end inside a warp's turn); the first two as the decoder
  // pads them, the others also unpadded.
  for (auto c : {Case{128, 3, 112, 112, true}, Case{64, 1, 14, 14, true}, Case{3, 1, 5, 5, false},
                 Case{5, 3, 37, 21, false}, Case{5, 3, 37, 21, true}}) {
    for (auto dtype : {torch::kBFloat16, torch::kFloat}) {
      auto one = kernel_cases::reconstruction(dtype, c.B, c.C, c.H, c.W, kCuda, ++seed,
                                              c.padded ? paddedPhaseChannels(c.C) : 0);
      rows.push_back(one.row);
      all_ok = all_ok && one.passed && one.ran;
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"loss", 1e-5}, {"dy", 1e-6}};
  r.passed = all_ok;
  return r;
}

GpuCheck checkFusedOptimizer() {
  GpuCheck r;
  r.name = "fused_optimizer_vs_reference";
  if (missingKernels(r)) return r;
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t numel, offset, teacher;
  };
  uint64_t seed = 41;
  // An odd count over several grid-stride turns with a shorter teacher, the same off 16 bytes
  // (one value per thread), a count just past a vector with the teacher ending inside one, the
  // tail alone, a single value.
  for (auto c : {Case{3000017, 0, 2500001}, Case{3000017, 1, 3000017}, Case{4099, 2, 4097},
                 Case{3, 0, 2}, Case{1, 0, 1}}) {
    // No freezing, the frozen layer held, and its own bias corrections after the freeze.
    for (auto [with_freeze, frozen] : {std::pair{false, false}, std::pair{true, true},
                                       std::pair{true, false}}) {
      auto one = kernel_cases::optimizer(c.numel, c.offset, with_freeze, frozen, c.teacher, kCuda,
                                         ++seed);
      rows.push_back(one.row);
      all_ok = all_ok && one.passed && one.ran;
    }
  }
  r.values["cases"] = rows;
  r.values["tolerance"] = {{"p_m_v_teacher", 1e-6}, {"step", 1e-4}, {"frozen", "exact"}};
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
  const torch::Device cuda = kCuda;
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
