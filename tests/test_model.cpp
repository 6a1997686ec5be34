/// @brief ViT, CLS attention (Eq. 4), [MASK] substitution (Eq. 6), head and decoder shapes.
#include <QtTest/QtTest>
#include <torch/torch.h>
#include <ATen/autocast_mode.h>

#include <filesystem>
#include <map>

#include "core/config/config.h"
#include "core/kernels/fused_mlp.h"
#include "core/kernels/gelu_backward.h"
#include "core/kernels/qkv_heads.h"
#include "core/kernels/residual_norm.h"
#include "core/model/decoder.h"
#include "core/model/export.h"
#include "core/model/dino_head.h"
#include "core/model/vit.h"
#include "core/util/error.h"

using namespace mst;

namespace {
ModelConfig micro() { return modelPreset("vit_micro28"); }

/// One forward and backward pass of `vit` with stochastic depth drawn from `seed`: the outputs
/// and every parameter's gradient (zeros where a parameter got none).
std::pair<VitOutput, std::vector<torch::Tensor>> forwardBackward(Vit& vit, const torch::Tensor& x,
                                                                 const torch::Tensor& mask,
                                                                 double drop_path, uint64_t seed,
                                                                 bool want_patches) {
  vit->zero_grad();
  at::Generator gen = at::globalContext().defaultGenerator(torch::kCPU).clone();
  gen.set_current_seed(seed);
  auto out = vit->forward(x, mask, /*want_attention=*/true, drop_path, &gen, {}, want_patches);
  auto loss = out.cls.pow(2).sum();
  if (want_patches) loss = loss + out.patches.sin().mean();
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : vit->parameters())
    grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return {out, grads};
}
/// Eq. 4 per head by hand: block's CLS query against its keys on the stream `t` it receives,
/// softmax over all T tokens, the patch part: (B, heads, T - 1).
torch::Tensor manualClsAttention(BlockImpl& block, const torch::Tensor& t, int64_t heads) {
  const int64_t B = t.size(0), T = t.size(1), D = t.size(2), d = D / heads;
  auto qkv = block.attn->qkv(block.norm1(t));  // (B, T, 3D)
  auto q = qkv.narrow(2, 0, D).reshape({B, T, heads, d});
  auto k = qkv.narrow(2, D, D).reshape({B, T, heads, d});
  std::vector<torch::Tensor> rows;
  for (int64_t head = 0; head < heads; ++head) {
    auto logits = torch::einsum("bd,btd->bt", {q.select(2, head).select(1, 0), k.select(2, head)}) /
                  std::sqrt(static_cast<double>(d));
    rows.push_back(logits.softmax(-1).narrow(1, 1, T - 1));
  }
  return torch::stack(rows, 1);
}

// Stand-ins for at::Context's attention switches: 2.0–2.1's (no cuDNN switch), every switch of a
// recent 2.x (FA3 included), and a context without any.
struct OldSdpaContext {
  bool flash = true, efficient = true, math = true;
  void setSDPUseFlash(bool e) { flash = e; }
  bool userEnabledFlashSDP() const { return flash; }
  void setSDPUseMemEfficient(bool e) { efficient = e; }
  bool userEnabledMemEfficientSDP() const { return efficient; }
  void setSDPUseMath(bool e) { math = e; }
  bool userEnabledMathSDP() const { return math; }
};
struct FakeSdpaContext : OldSdpaContext {
  bool cudnn = true, fa3 = true;
  void setSDPUseCuDNN(bool e) { cudnn = e; }
  bool userEnabledCuDNNSDP() const { return cudnn; }
  void setSDPUseFA3(bool e) { fa3 = e; }
  bool userEnabledFA3SDP() const { return fa3; }
  std::vector<bool> state() const { return {cudnn, flash, efficient, math, fa3}; }
};
struct NoSdpaContext {};
}  // namespace

class TestModel : public QObject {
  Q_OBJECT

 private slots:
  void attentionKernelSwitchesAllowOneKernelAndRestoreTheRest() {
    // train.attention_kernel: while the switches live, the chosen kernel alone is allowed (and
    // math too once asked for); afterwards every switch is as it was (a user's own choice
    // included).
    using K = AttentionKernel;
    FakeSdpaContext ctx;
    ctx.efficient = false;
    const auto before = ctx.state();
    struct Want {
      K kernel;
      std::vector<bool> state;  // cudnn, flash, efficient, math, fa3
    };
    for (const auto& want : {Want{K::CuDnn, {true, false, false, false, false}},
                             Want{K::Flash, {false, true, false, false, false}},
                             Want{K::Efficient, {false, false, true, false, false}},
                             Want{K::Math, {false, false, false, true, false}},
                             Want{K::Auto, before}}) {
      {
        SdpaSwitches<FakeSdpaContext> switches(ctx, want.kernel);
        QVERIFY(switches.available());
        QCOMPARE(ctx.state(), want.state);
        switches.allowMath();
        auto with_math = want.state;
        if (want.kernel != K::Auto) with_math[3] = true;  // (Auto changed nothing to add to)
        QCOMPARE(ctx.state(), with_math);
      }
      QCOMPARE(ctx.state(), before);
    }
    // Without a cuDNN switch, cudnn changes nothing and says so; the others still work.
    OldSdpaContext old;
    old.math = false;
    {
      SdpaSwitches<OldSdpaContext> switches(old, K::CuDnn);
      QVERIFY(!switches.available());
      QVERIFY(old.flash && old.efficient && !old.math);
    }
    {
      SdpaSwitches<OldSdpaContext> switches(old, K::Efficient);
      QVERIFY(switches.available());
      QVERIFY(!old.flash && old.efficient && !old.math);
      switches.allowMath();
      QVERIFY(!old.flash && old.efficient && old.math);
    }
    QVERIFY(old.flash && old.efficient && !old.math);
    NoSdpaContext none;
    SdpaSwitches<NoSdpaContext> switches(none, K::Flash);
    QVERIFY(!switches.available());
    // Names: each value round-trips; anything else is refused naming the key.
    for (const auto& name : attentionKernelNames())
      QCOMPARE(std::string(attentionKernelName(attentionKernelFromName(name, "k"))), name);
    try {
      attentionKernelFromName("fast", "train.attention_kernel_short");
      QFAIL("an unknown kernel was accepted");
    } catch (const MstError& e) {
      QVERIFY(std::string(e.what()).find("train.attention_kernel_short") != std::string::npos);
    }
    // Auto: the memory-efficient kernel for short sequences where the context has its switch
    // (1.5 % faster per step than LibTorch's cuDNN choice on an H200), LibTorch's choice for
    // longer ones and where there is no switch.
    QCOMPARE(autoAttentionKernel<FakeSdpaContext>(37), K::Efficient);
    QCOMPARE(autoAttentionKernel<FakeSdpaContext>(kShortSequence), K::Efficient);
    QCOMPARE(autoAttentionKernel<FakeSdpaContext>(kShortSequence + 1), K::Auto);
    QCOMPARE(autoAttentionKernel<FakeSdpaContext>(197), K::Auto);
    QCOMPARE(autoAttentionKernel<OldSdpaContext>(37), K::Efficient);
    QCOMPARE(autoAttentionKernel<NoSdpaContext>(37), K::Auto);
    // The engine's reading: this build has the switches, so every name stands on CUDA too.
    QVERIFY(attentionSwitchesBuilt());
    QCOMPARE(attentionKernelSetting("flash", "train.attention_kernel", true), K::Flash);
    QCOMPARE(attentionKernelSetting("math", "train.attention_kernel", false), K::Math);
    QVERIFY_EXCEPTION_THROWN(attentionKernelSetting("fast", "train.attention_kernel", false), MstError);
    // The Vit hands both choices to every block; the CPU's attention ignores them.
    ModelConfig mc = micro();
    torch::manual_seed(0);
    Vit vit(mc);
    auto x = torch::randn({2, mc.channels, mc.image_size, mc.image_size});
    auto ref = vit->forward(x, {}, /*want_attention=*/true);
    vit->setAttentionKernels(K::Flash, K::Math);
    for (auto& block : *vit->blocks) {
      QCOMPARE(block->as<Block>()->attn->kernel_long, K::Flash);
      QCOMPARE(block->as<Block>()->attn->kernel_short, K::Math);
    }
    auto got = vit->forward(x, {}, /*want_attention=*/true);
    QVERIFY(torch::equal(got.cls, ref.cls));
  }

  void bf16StreamFollowsTheFp32Stream() {
    // train.precision bf16_stream keeps the residual stream and LayerNorms in bf16 under autocast.
    // CUDA runs it; here the CPU's autocast checks the mechanics: dtypes, values, gradients.
    ModelConfig mc = modelPreset("vit_micro28");
    torch::manual_seed(0);
    Vit vit(mc);
    auto x = torch::randn({4, mc.channels, mc.image_size, mc.image_size});
    auto ref = vit->forward(x, {}, /*want_attention=*/true);
#if TORCH_VERSION_MAJOR >= 2
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
#else
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
    vit->stream_dtype = torch::kBFloat16;
    auto out = vit->forward(x, {}, /*want_attention=*/true);
    auto loss = out.cls.to(torch::kFloat).pow(2).sum() + out.patches.to(torch::kFloat).mean();
    at::autocast::decrement_nesting();
    at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR >= 2
    at::autocast::set_autocast_enabled(at::kCPU, false);
#else
    at::autocast::set_cpu_enabled(false);
#endif
    QCOMPARE(out.cls.scalar_type(), torch::kBFloat16);
    QCOMPARE(out.patches.scalar_type(), torch::kBFloat16);
    auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
      return ((a.to(torch::kFloat) - b).norm() / b.norm()).item<double>();
    };
    QVERIFY2(rel(out.cls, ref.cls) < 0.05, std::to_string(rel(out.cls, ref.cls)).c_str());
    QVERIFY2(rel(out.patches, ref.patches) < 0.05, std::to_string(rel(out.patches, ref.patches)).c_str());
    QVERIFY(rel(out.cls_attention, ref.cls_attention) < 0.05);
    loss.backward();
    auto& norm_weight = vit->blocks[0]->as<Block>()->norm1->weight;
    QVERIFY(norm_weight.grad().defined());
    QCOMPARE(norm_weight.grad().scalar_type(), torch::kFloat);  // fp32 parameters keep fp32 grads
    QVERIFY(torch::isfinite(norm_weight.grad()).all().item<bool>());
    QVERIFY(norm_weight.grad().abs().sum().item<double>() > 0);
  }


  void upsampleMatchesNearestInBothLayouts() {
    auto x = torch::randn({2, 5, 3, 4});
    auto expected = torch::nn::functional::interpolate(
        x, torch::nn::functional::InterpolateFuncOptions()
               .scale_factor(std::vector<double>{2.0, 2.0})
               .mode(torch::kNearest));
    QVERIFY(torch::equal(upsampleNearest2x(x), expected));
    auto cl = x.contiguous(at::MemoryFormat::ChannelsLast);
    auto up = upsampleNearest2x(cl);
    QVERIFY(torch::equal(up, expected));
    QVERIFY(up.is_contiguous(at::MemoryFormat::ChannelsLast));
  }

  void positionEmbeddingMatchesAtenBicubic() {
    // The separable products give upsample_bicubic2d's values and gradients: DeiT-S/16's local
    // crops (14 → 6), the Fashion-MNIST ViT's (7 → 3), an upsampling (4 → 9) and one sample.
    for (auto [from, to] : std::vector<std::pair<int64_t, int64_t>>{{14, 6}, {7, 3}, {4, 9}, {5, 1}}) {
      torch::manual_seed(from * 10 + to);
      auto c = micro();
      c.dim = c.heads * 8;
      c.image_size = from * c.patch_size;
      Vit vit(c);
      {
        torch::NoGradGuard no_grad;
        vit->pos_embed.normal_();
      }
      auto ours = vit->positionEmbedding(to);
      auto leaf = vit->pos_embed.detach().clone().requires_grad_(true);
      auto grid = leaf.narrow(1, 1, from * from).reshape({1, from, from, c.dim}).permute({0, 3, 1, 2});
      auto up = torch::nn::functional::interpolate(
          grid, torch::nn::functional::InterpolateFuncOptions()
                    .size(std::vector<int64_t>{to, to})
                    .mode(torch::kBicubic)
                    .align_corners(false));
      auto want = torch::cat({leaf.narrow(1, 0, 1), up.permute({0, 2, 3, 1}).reshape({1, to * to, c.dim})}, 1);
      QCOMPARE(ours.sizes().vec(), want.sizes().vec());
      QVERIFY2(torch::allclose(ours, want, 1e-5, 1e-5),
               (std::to_string(from) + " → " + std::to_string(to) + ": max |difference| " +
                std::to_string((ours - want).abs().max().item<double>()))
                   .c_str());
      auto g = torch::randn_like(want);
      ours.backward(g);
      want.backward(g);
      QVERIFY2(torch::allclose(vit->pos_embed.grad(), leaf.grad(), 1e-5, 1e-5),
               std::to_string((vit->pos_embed.grad() - leaf.grad()).abs().max().item<double>()).c_str());
    }
    // Each row of weights sums to 1 (a constant embedding stays constant).
    QVERIFY(torch::allclose(bicubicWeights(14, 6).sum(1), torch::ones({6})));
  }

  void forwardShapes() {
    torch::manual_seed(0);
    auto c = micro();
    Vit vit(c);
    auto out = vit->forward(torch::randn({3, 1, 28, 28}), {}, true);
    QCOMPARE(out.cls.sizes().vec(), (std::vector<int64_t>{3, c.dim}));
    QCOMPARE(out.patches.sizes().vec(), (std::vector<int64_t>{3, 49, c.dim}));
    QCOMPARE(out.cls_attention.sizes().vec(), (std::vector<int64_t>{3, 49}));
    // Local crops use an interpolated position embedding.
    auto local = vit->forward(torch::randn({2, 1, 12, 12}));
    QCOMPARE(local.patches.size(1), int64_t{9});
  }

  void clsAttentionMatchesManualEq4() {
    torch::manual_seed(1);
    auto c = micro();
    c.heads = 4;
    Vit vit(c);
    vit->eval();
    torch::NoGradGuard guard;
    auto x = torch::randn({2, 1, 28, 28});
    auto out = vit->forward(x, {}, true);

    // Recompute from the last block's q and k by hand.
    auto t = vit->embed(x);
    const int64_t depth = static_cast<int64_t>(vit->blocks->size());
    for (int64_t i = 0; i + 1 < depth; ++i) t = vit->blocks[i]->as<Block>()->forward(t, 0, nullptr);
    auto expected = manualClsAttention(*vit->blocks[depth - 1]->as<Block>(), t, c.heads).mean(1);
    QVERIFY(torch::allclose(out.cls_attention, expected, 1e-5, 1e-6));
    // Each head's row sums to 1 over T tokens, so the patch part sums to less than 1.
    QVERIFY((out.cls_attention.sum(1) < 1.0).all().item<bool>());
    // Per head: the mean over heads is the Eq. 4 map.
    QCOMPARE(out.cls_attention_heads.size(1), c.heads);
    QVERIFY(torch::allclose(out.cls_attention_heads.mean(1), out.cls_attention));
  }

  void clsAttentionOfEveryBlock() {
    torch::manual_seed(2);
    auto c = micro();
    c.heads = 4;
    Vit vit(c);
    vit->eval();
    torch::NoGradGuard guard;
    auto x = torch::randn({3, 1, 28, 28});
    const auto rows = vit->clsAttentionPerBlock(x);
    const int64_t depth = static_cast<int64_t>(vit->blocks->size()), n = vit->grid * vit->grid;
    QVERIFY(depth >= 2);
    QCOMPARE(rows.sizes(), torch::IntArrayRef({3, depth, c.heads, n}));
    // The last block's is the one forward gives the mask (Eq. 4 per head).
    const auto out = vit->forward(x, {}, true);
    QVERIFY(torch::allclose(rows.select(1, depth - 1), out.cls_attention_heads, 1e-5, 1e-6));
    // Block i's is its own CLS query against its own keys, on the stream that block receives.
    auto t = vit->embed(x);
    for (int64_t i = 0; i < depth; ++i) {
      auto block = vit->blocks[i]->as<Block>();
      QVERIFY2(torch::allclose(rows.select(1, i), manualClsAttention(*block, t, c.heads), 1e-5, 1e-6),
               qPrintable(QString("block %1").arg(i)));
      t = block->forward(t, 0, nullptr);
    }
    // Different blocks attend differently (a check that the rows are not one block repeated).
    QVERIFY(!torch::allclose(rows.select(1, 0), rows.select(1, depth - 1)));
  }

  void maskTokenReplacesPatchBeforePositionEmbedding() {
    torch::manual_seed(2);
    auto c = micro();
    Vit vit(c);
    torch::NoGradGuard guard;
    vit->mask_token.normal_();
    auto a = torch::randn({1, 1, 28, 28}), b = torch::randn({1, 1, 28, 28});
    auto mask = torch::zeros({1, 49}, torch::kBool);
    mask[0][5] = true;
    auto ea = vit->embed(a, mask), eb = vit->embed(b, mask);
    // Masked position: [MASK] + position embedding, whatever the image.
    auto expected = vit->mask_token[0][0] + vit->pos_embed[0][6];
    QVERIFY(torch::allclose(ea[0][6], expected, 1e-6, 1e-6));
    QVERIFY(torch::allclose(eb[0][6], expected, 1e-6, 1e-6));
    // Unmasked positions still depend on the image.
    QVERIFY(!torch::allclose(ea[0][7], eb[0][7]));
    // Without a mask, the same position depends on the image.
    QVERIFY(!torch::allclose(vit->embed(a)[0][6], vit->embed(b)[0][6]));
  }

  void patchEmbeddingEqualsConvolution() {
    torch::manual_seed(3);
    auto c = micro();
    c.channels = 3;
    Vit vit(c);
    torch::NoGradGuard guard;
    auto x = torch::randn({2, 3, 28, 28});
    auto e = vit->embed(x).narrow(1, 1, 49) - vit->pos_embed.narrow(1, 1, 49);
    auto w = vit->patch_embed->weight.view({c.dim, 3, 4, 4});
    auto conv = torch::conv2d(x, w, vit->patch_embed->bias, 4).flatten(2).transpose(1, 2);
    QVERIFY(torch::allclose(e, conv, 1e-4, 1e-5));
  }

  void decoderRestoresCropSize_data() {
    QTest::addColumn<int>("patch");
    QTest::addColumn<int>("size");
    QTest::addColumn<int>("channels");
    QTest::newRow("P=4") << 4 << 28 << 1;
    QTest::newRow("P=8") << 8 << 32 << 3;
    QTest::newRow("P=16") << 16 << 64 << 3;
  }
  void decoderRestoresCropSize() {
    QFETCH(int, patch);
    QFETCH(int, size);
    QFETCH(int, channels);
    auto c = micro();
    c.patch_size = patch;
    c.image_size = size;
    c.channels = channels;
    c.decoder_widths = {};
    Decoder decoder(c);
    const int64_t g = size / patch;
    auto out = decoder->forward(torch::randn({2, g * g, c.dim}));
    QCOMPARE(out.sizes().vec(), (std::vector<int64_t>{2, channels, size, size}));
    // log2(P) stages whose widths halve from 256 (METHOD.md step 6; P=16: 256, 128, 64, 32).
    const std::map<int, std::vector<int64_t>> by_patch{
        {4, {256, 128}}, {8, {256, 128, 64}}, {16, {256, 128, 64, 32}}};
    auto widths = by_patch.at(patch);
    QCOMPARE(decoderWidths(c), widths);
    // The convolutions really are that wide, and the last one gives the image's channels.
    std::vector<int64_t> conv_out;
    for (const auto& p : decoder->named_parameters())
      if (p.value().dim() == 4) conv_out.push_back(p.value().size(0));
    widths.push_back(channels);
    QCOMPARE(conv_out, widths);
  }

  void headIsWeightNormalised() {
    torch::manual_seed(4);
    auto c = micro();
    DinoHead head(c);
    auto out = head->forward(torch::randn({5, c.dim}));
    QCOMPARE(out.sizes().vec(), (std::vector<int64_t>{5, c.out_dim}));
    // Unit bottleneck and unit weight rows (gain 1): every logit is a cosine in [-1, 1].
    QVERIFY(out.abs().max().item<float>() <= 1.0f + 1e-5f);
    // Scaling the direction does not change the output (weight normalisation).
    auto x = torch::randn({5, c.dim});
    auto before = head->forward(x);
    {
      torch::NoGradGuard guard;
      head->last_v.mul_(3.0);
    }
    QVERIFY(torch::allclose(before, head->forward(x), 1e-5, 1e-6));
    // norm_last_layer: the gain is not a trainable parameter.
    bool gain_trainable = false;
    for (const auto& p : head->named_parameters())
      if (p.key().find("last_g") != std::string::npos) gain_trainable = true;
    QVERIFY(!gain_trainable);
  }

  void dropPathOnlyWithAGenerator() {
    torch::manual_seed(5);
    auto c = micro();
    Vit vit(c);
    auto x = torch::randn({4, 1, 28, 28});
    auto a = vit->forward(x, {}, false, 0.5, nullptr).cls;
    auto b = vit->forward(x, {}, false, 0.0, nullptr).cls;
    QVERIFY(torch::allclose(a, b));  // no generator → deterministic, no drop
    at::Generator gen = at::globalContext().defaultGenerator(torch::kCPU).clone();
    gen.set_current_seed(1);
    auto d = vit->forward(x, {}, false, 0.9, &gen).cls;
    QVERIFY(!torch::allclose(d, b));
  }

  void subpixelDecoderMatchesUpsampleThenConvolve() {
    // The decoder's default folds each nearest upsampling into the next 3x3 convolution; in
    // double it gives the literal upsample-then-convolve's image and weight gradients, for the
    // Fashion-MNIST (P = 4) and DeiT (P = 16) decoders.
    for (int64_t P : {4, 16}) {
      {
        auto c = micro();
        c.patch_size = P;
        c.image_size = 7 * P;
        c.decoder_widths = {};
        if (P == 16) c.decoder_widths = {24, 16, 8, 4};  // small widths, the same four stages
        torch::manual_seed(9);
        Decoder decoder(c);
        decoder->to(torch::kDouble);
        auto patches = torch::randn({3, 49, c.dim}, torch::kDouble);
        auto run = [&](bool subpixel) {
          decoder->subpixel = subpixel;
          decoder->zero_grad();
          auto y = decoder->forward(patches);
          (y * y.detach().sin()).sum().backward();
          std::vector<torch::Tensor> grads;
          for (auto& p : decoder->parameters()) grads.push_back(p.grad().clone());
          return std::make_pair(y.detach(), grads);
        };
        auto [plain, plain_grads] = run(false);
        auto [fused, fused_grads] = run(true);
        QCOMPARE(fused.sizes(), plain.sizes());
        QVERIFY2(torch::allclose(fused, plain, 1e-10, 1e-10),
                 std::to_string((fused - plain).abs().max().item<double>()).c_str());
        for (size_t i = 0; i < plain_grads.size(); ++i)
          QVERIFY2(torch::allclose(fused_grads[i], plain_grads[i], 1e-9, 1e-10), std::to_string(i).c_str());
        // train.fused_decoder where its kernels cannot run (the CPU): every stage still runs,
        // the same operations bit for bit, and each BatchNorm counts every batch.
        decoder->fused_stages = true;
        auto [again, again_grads] = run(true);
        QVERIFY(torch::equal(again, fused));
        for (size_t i = 0; i < plain_grads.size(); ++i) QVERIFY(torch::equal(again_grads[i], fused_grads[i]));
        for (auto& m : decoder->stages->children())
          if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>())
            QCOMPARE(bn->num_batches_tracked.item<int64_t>(), int64_t{3});
        // The last convolution's phases (the fused reconstruction loss reads them): gathered,
        // the image; only the subpixel decoder ends with them.
        QVERIFY(decoder->endsWithPhases());
        torch::Tensor phases;
        {
          torch::NoGradGuard no_grad;
          phases = decoder->forward(patches, /*gather_last=*/false);
        }
        const int64_t half = c.image_size / 2;
        QCOMPARE(phases.sizes(), torch::IntArrayRef({3, 4 * c.channels, half + 1, half + 1}));
        QVERIFY(torch::equal(phaseGather(phases, c.channels), fused));
        decoder->subpixel = false;
        QVERIFY(!decoder->endsWithPhases());
        decoder->subpixel = true;
      }
    }
  }

  void subpixelConvolutionKeepsTheLayout() {
    // Channels-last in, channels-last out (cuDNN's NHWC kernels stay in use); values as the
    // literal upsample-then-convolve in either layout.
    torch::manual_seed(10);
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(6, 5, 3).padding(1));
    conv->to(torch::kDouble);
    auto x = torch::randn({2, 6, 5, 7}, torch::kDouble);
    auto ref = conv(upsampleNearest2x(x));
    auto plain = upsampleConv2x(x, *conv);
    auto nhwc = upsampleConv2x(x.contiguous(at::MemoryFormat::ChannelsLast), *conv);
    QVERIFY(torch::allclose(plain, ref, 1e-12, 1e-12));
    QVERIFY(torch::allclose(nhwc, ref, 1e-12, 1e-12));
    QVERIFY(nhwc.is_contiguous(at::MemoryFormat::ChannelsLast));
    QCOMPARE(nhwc.sizes(), ref.sizes());
    // Gradients for the input and the weights through the phase gather, in both layouts.
    auto grads = [&](const torch::Tensor& input, bool literal) {
      auto xi = input.detach().requires_grad_(true);
      conv->zero_grad();
      auto y = literal ? conv(upsampleNearest2x(xi)) : upsampleConv2x(xi, *conv);
      (y * y.detach().cos()).sum().backward();
      return std::vector<torch::Tensor>{xi.grad().contiguous(), conv->weight.grad().clone(),
                                        conv->bias.grad().clone()};
    };
    const auto want = grads(x, true);
    for (const auto& input : {x, x.contiguous(at::MemoryFormat::ChannelsLast)}) {
      const auto got = grads(input, false);
      for (size_t i = 0; i < want.size(); ++i)
        QVERIFY2(torch::allclose(got[i], want[i], 1e-10, 1e-12), std::to_string(i).c_str());
    }
  }

  void exportedBackboneRunsAsATimmVit() {
    // mst export's timm names and layouts: the file read back drives a forward pass written the
    // way timm's VisionTransformer computes it (a P×P convolution for the patches, qkv split as
    // (3, heads, head_dim), pre-norm blocks, final norm, CLS token), which must give the
    // backbone's own CLS feature; the workbench's names round-trip every tensor unchanged.
    auto c = micro();
    c.channels = 3;
    c.heads = 2;
    torch::manual_seed(21);
    Vit vit(c);
    vit->to(torch::kDouble);
    vit->eval();
    QTemporaryDir dir;
    const std::string timm_file = dir.filePath("timm.safetensors").toStdString();
    writeSafetensors(timm_file, backboneTensors(*vit, ExportNames::Timm), {{"format", "test"}});
    std::map<std::string, std::string> meta;
    std::map<std::string, torch::Tensor> w;
    for (auto& [name, t] : readSafetensors(timm_file, &meta)) w[name] = t.to(torch::kDouble);
    QCOMPARE(meta["format"], std::string("test"));
    QVERIFY(!w.count("mask_token") && !w.count("patch_embed.weight") && !w.count("blocks.0.fc1.weight"));
    const int64_t D = c.dim, P = c.patch_size, H = c.heads, d = D / H;
    QCOMPARE(w.at("patch_embed.proj.weight").sizes(), (torch::IntArrayRef{D, 3, P, P}));

    auto images = torch::randn({2, 3, c.image_size, c.image_size}, torch::kDouble);
    namespace F = torch::nn::functional;
    auto x = torch::conv2d(images, w.at("patch_embed.proj.weight"), w.at("patch_embed.proj.bias"), P)
                 .flatten(2).transpose(1, 2);
    const int64_t B = x.size(0);
    x = torch::cat({w.at("cls_token").expand({B, 1, D}), x}, 1) + w.at("pos_embed");
    const int64_t N = x.size(1);
    auto norm = [&](const torch::Tensor& t, const std::string& name) {
      return torch::layer_norm(t, {D}, w.at(name + ".weight"), w.at(name + ".bias"), 1e-6);
    };
    auto linear = [&](const torch::Tensor& t, const std::string& name) {
      return torch::linear(t, w.at(name + ".weight"), w.at(name + ".bias"));
    };
    for (int64_t i = 0; i < c.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i);
      auto qkv = linear(norm(x, b + ".norm1"), b + ".attn.qkv").reshape({B, N, 3, H, d}).permute({2, 0, 3, 1, 4});
      auto attn = torch::matmul(qkv[0], qkv[1].transpose(-2, -1)).mul(1.0 / std::sqrt(double(d))).softmax(-1);
      x = x + linear(torch::matmul(attn, qkv[2]).transpose(1, 2).reshape({B, N, D}), b + ".attn.proj");
      x = x + linear(torch::gelu(linear(norm(x, b + ".norm2"), b + ".mlp.fc1")), b + ".mlp.fc2");
    }
    auto timm_cls = norm(x, "norm").select(1, 0);
    torch::NoGradGuard no_grad;
    auto ours = vit->forward(images).cls;
    QVERIFY2(torch::allclose(timm_cls, ours, 1e-10, 1e-12),
             std::to_string((timm_cls - ours).abs().max().item<double>()).c_str());

    // The workbench's names: every parameter, [MASK] token included, bit for bit.
    const std::string mst_file = dir.filePath("mst.safetensors").toStdString();
    const auto mst_tensors = backboneTensors(*vit, ExportNames::Mst);
    writeSafetensors(mst_file, mst_tensors, {});
    const auto back = readSafetensors(mst_file);
    QCOMPARE(back.size(), vit->parameters().size());
    std::map<std::string, torch::Tensor> by_name(back.begin(), back.end());
    for (const auto& p : vit->named_parameters())
      QVERIFY2(torch::equal(by_name.at(p.key()), p.value().to(torch::kFloat)), p.key().c_str());

    // A cut file is one error naming it; the file that was there stays whole.
    std::filesystem::resize_file(mst_file, std::filesystem::file_size(mst_file) - 4);
    try {
      readSafetensors(mst_file);
      QFAIL("a truncated file was read");
    } catch (const MstError& e) {
      QVERIFY2(QString(e.what()).contains("mst.safetensors"), e.what());
    }
    QVERIFY_THROWS_EXCEPTION(MstError, writeSafetensors(dir.filePath("no/such/dir/x.safetensors").toStdString(),
                                                        mst_tensors, {}));
    QCOMPARE(readSafetensors(timm_file).size(), w.size());
  }

  void fusedJunctionMatchesTheOperationsItReplaces() {
    // train.fused_norm's autograd function (here its ATen arithmetic, which the CUDA kernels
    // mirror): y = x + s * (branch + bias), z = LayerNorm(y); its hand-written backward against
    // autograd through the unfused operations, in double, with both outputs feeding the loss.
    torch::manual_seed(3);
    const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
    const int64_t B = 3, T = 5, D = 24;
    // branch + bias + scale, branch + scale, branch + bias, branch alone, no branch
    for (int variant = 0; variant < 5; ++variant) {
      const bool has_branch = variant < 4, has_scale = variant < 2,
                 has_bias = variant == 0 || variant == 2;
      auto x = torch::randn({B, T, D}, f64).requires_grad_(true);
      auto branch = has_branch ? torch::randn({B, T, D}, f64).requires_grad_(true) : torch::Tensor();
      auto bias = has_bias ? torch::randn({D}, f64).requires_grad_(true) : torch::Tensor();
      auto scale = has_scale ? torch::tensor({0.0f, 1.25f, 1.25f}) : torch::Tensor();
      auto gamma = (1 + 0.1 * torch::randn({D}, f64)).requires_grad_(true);
      auto beta = (0.1 * torch::randn({D}, f64)).requires_grad_(true);
      auto wy = torch::randn({B, T, D}, f64), wz = torch::randn({B, T, D}, f64);
      std::vector<torch::Tensor> inputs{x};
      if (has_branch) inputs.push_back(branch);
      if (has_bias) inputs.push_back(bias);
      inputs.push_back(gamma);
      inputs.push_back(beta);

      auto fused = residualLayerNorm(x, branch, bias, scale, gamma, beta, 1e-6, torch::kDouble);
      auto loss = (fused.y * wy).sum() + (fused.z * wz).sum();
      auto grads = torch::autograd::grad({loss}, inputs);

      auto y = x;
      if (has_branch) {
        auto b = has_bias ? branch + bias : branch;
        y = x + (has_scale ? b * scale.to(torch::kDouble).view({B, 1, 1}) : b);
      }
      auto z = torch::layer_norm(y, {D}, gamma, beta, 1e-6);
      auto ref_loss = (y * wy).sum() + (z * wz).sum();
      auto ref = torch::autograd::grad({ref_loss}, inputs);
      QVERIFY(torch::allclose(fused.y, y, 0, 1e-12));
      QVERIFY2(torch::allclose(fused.z, z, 1e-9, 1e-9),
               std::to_string((fused.z - z).abs().max().item<double>()).c_str());
      QCOMPARE(grads.size(), ref.size());
      for (size_t i = 0; i < grads.size(); ++i)
        QVERIFY2(torch::allclose(grads[i], ref[i], 1e-9, 1e-9),
                 (std::to_string(variant) + "/" + std::to_string(i) + ": " +
                  std::to_string((grads[i] - ref[i]).abs().max().item<double>())).c_str());
      if (has_scale)  // the dropped sample gets no gradient through its branch
        QCOMPARE(grads[1][0].abs().sum().item<double>(), 0.0);
    }
  }

  void fusedJunctionRoundsLikeTheUnfusedOperations() {
    // bf16 branch and stream: the branch is scaled in bf16 and added in the stream's dtype, so
    // the new stream is bit for bit what dropPath, the cast and the add store. With a bias, the
    // bias is first added in fp32 to the stored branch and the sum rounded to bf16.
    torch::manual_seed(4);
    const int64_t B = 4, T = 7, D = 40;
    auto branch = torch::randn({B, T, D}).to(torch::kBFloat16);
    auto keep = torch::tensor({1.0, 0.0, 1.0, 1.0}).to(torch::kBFloat16).div_(0.9);
    auto gamma = torch::ones({D}), beta = torch::zeros({D});
    auto bias = 0.3f * torch::randn({D});
    for (auto stream : {torch::kBFloat16, torch::kFloat})
    for (bool with_bias : {false, true}) {
      auto x = torch::randn({B, T, D}).to(stream);
      auto fused = residualLayerNorm(x, branch, with_bias ? bias : torch::Tensor(),
                                     keep.to(torch::kFloat), gamma, beta, 1e-6, torch::kBFloat16);
      auto biased = with_bias ? (branch.to(torch::kFloat) + bias).to(torch::kBFloat16) : branch;
      auto unfused = x + (biased * keep.view({B, 1, 1})).to(stream);
      QCOMPARE(fused.y.scalar_type(), stream);
      QCOMPARE(fused.z.scalar_type(), torch::kBFloat16);
      QVERIFY(torch::equal(fused.y, unfused));
      auto z = torch::layer_norm(unfused.to(torch::kFloat), {D}, gamma, beta, 1e-6);
      QVERIFY(torch::allclose(fused.z.to(torch::kFloat), z, 1e-2, 1e-2));
    }
  }

  void fusedJunctionTakesEmptySamplesAndUnusedOutputs() {
    // A real branch with no elements is still a branch: both outputs come back.
    auto x = torch::randn({2, 0, 8}).requires_grad_(true);
    auto branch = torch::randn({2, 0, 8}).requires_grad_(true);
    auto gamma = torch::ones({8}), beta = torch::zeros({8});
    auto out = residualLayerNorm(x, branch, {}, {}, gamma, beta, 1e-6, torch::kFloat);
    QCOMPARE(out.y.sizes(), x.sizes());
    QCOMPARE(out.z.sizes(), x.sizes());
    // Only z used (the last junction's y is not): the stream still gets its gradient.
    auto x2 = torch::randn({3, 4, 8}).requires_grad_(true);
    auto b2 = torch::randn({3, 4, 8}).requires_grad_(true);
    auto only_z = residualLayerNorm(x2, b2, {}, {}, gamma, beta, 1e-6, torch::kFloat);
    only_z.z.pow(2).sum().backward();
    QVERIFY(x2.grad().defined() && b2.grad().defined());
    QVERIFY(torch::allclose(x2.grad(), b2.grad()));  // y = x + b: the same gradient reaches both
    QVERIFY(x2.grad().abs().sum().item<double>() > 0);
  }

  void clsOnlyLastBlockGivesTheSameClsToken() {
    // want_patches = false: the last block computes the CLS row alone. The CLS token, the CLS
    // attention, the stochastic-depth draws and every parameter gradient are those of the whole
    // forward pass (in double), with and without the fused junctions.
    auto c = micro();
    c.depth = 3;
    torch::manual_seed(12);
    Vit vit(c);
    vit->to(torch::kDouble);
    auto x = torch::randn({5, 1, 28, 28}, torch::kDouble);
    for (bool fused : {false, true}) {
      vit->fused_norm = fused;
      auto run = [&](bool want_patches) {
        vit->zero_grad();
        at::Generator gen = at::globalContext().defaultGenerator(torch::kCPU).clone();
        gen.set_current_seed(13);
        auto out = vit->forward(x, {}, /*want_attention=*/true, 0.5, &gen, {}, want_patches);
        out.cls.pow(2).sum().backward();
        std::vector<torch::Tensor> grads;
        for (auto& p : vit->parameters())
          grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
        // The generator's next draw: equal when both passes drew the same number of values.
        return std::make_tuple(out, grads, torch::rand({1}, gen).item<double>());
      };
      auto [full, full_grads, full_next] = run(true);
      auto [cls, cls_grads, cls_next] = run(false);
      QVERIFY(!cls.patches.defined());
      QVERIFY(torch::allclose(cls.cls, full.cls, 1e-10, 1e-12));
      QVERIFY(torch::allclose(cls.cls_attention, full.cls_attention, 1e-10, 1e-12));
      QCOMPARE(cls_next, full_next);
      for (size_t i = 0; i < full_grads.size(); ++i)
        QVERIFY2(torch::allclose(cls_grads[i], full_grads[i], 1e-9, 1e-11), std::to_string(i).c_str());
    }
    vit->fused_norm = false;
  }

  void fusedVitMatchesTheUnfusedVit() {
    // Vit::fused_norm restructures the forward pass around the junctions: the same outputs,
    // attention, stochastic-depth draws and parameter gradients as the block-by-block pass (in
    // double, so that only a wrong formula, not the order of fp32 sums, could tell them apart).
    auto c = micro();
    torch::manual_seed(6);
    Vit vit(c);
    vit->to(torch::kDouble);
    auto x = torch::randn({4, 1, 28, 28}, torch::kDouble);
    auto mask = torch::rand({4, 49}) < 0.3;
    auto run = [&](bool fused) {
      vit->fused_norm = fused;
      vit->zero_grad();
      at::Generator gen = at::globalContext().defaultGenerator(torch::kCPU).clone();
      gen.set_current_seed(11);
      auto out = vit->forward(x, mask, /*want_attention=*/true, 0.5, &gen);
      (out.cls.pow(2).sum() + out.patches.mean()).backward();
      std::vector<torch::Tensor> grads;
      for (auto& p : vit->parameters()) grads.push_back(p.grad().clone());
      return std::make_pair(out, grads);
    };
    auto [plain, plain_grads] = run(false);
    auto [fused, fused_grads] = run(true);
    vit->fused_norm = false;
    QVERIFY(torch::allclose(fused.cls, plain.cls, 1e-10, 1e-10));
    QVERIFY(torch::allclose(fused.patches, plain.patches, 1e-10, 1e-10));
    QVERIFY(torch::allclose(fused.cls_attention, plain.cls_attention, 1e-10, 1e-12));
    QCOMPARE(fused_grads.size(), plain_grads.size());
    for (size_t i = 0; i < fused_grads.size(); ++i)
      QVERIFY2(torch::allclose(fused_grads[i], plain_grads[i], 1e-9, 1e-11),
               (std::to_string(i) + ": " +
                std::to_string((fused_grads[i] - plain_grads[i]).abs().max().item<double>()) +
                " of " + std::to_string(plain_grads[i].abs().max().item<double>()))
                   .c_str());
  }

  void recomputedGeluGivesTheSameNumbers() {
    // train.recompute_gelu changes what the backward pass keeps, not what it computes: in fp32
    // the outputs, attention, draws and every parameter gradient are the same numbers, bit for
    // bit, through the block-by-block pass, the fused junctions and the CLS-only last block.
    auto c = micro();
    torch::manual_seed(21);
    Vit vit(c);
    auto x = torch::randn({4, 1, 28, 28});
    auto mask = torch::rand({4, 49}) < 0.3;
    for (bool fused : {false, true}) {
      for (bool want_patches : {true, false}) {
        auto run = [&](bool recompute) {
          vit->setRecomputeGelu(recompute);
          vit->fused_norm = fused;
          return forwardBackward(vit, x, mask, 0.3, 5, want_patches);
        };
        auto [plain, plain_grads] = run(false);
        auto [recomputed, recomputed_grads] = run(true);
        const auto where = std::string(fused ? "fused" : "unfused") +
                           (want_patches ? ", all tokens" : ", CLS only");
        QVERIFY2(torch::equal(recomputed.cls, plain.cls), where.c_str());
        QVERIFY2(torch::equal(recomputed.cls_attention, plain.cls_attention), where.c_str());
        if (want_patches) QVERIFY2(torch::equal(recomputed.patches, plain.patches), where.c_str());
        for (size_t i = 0; i < plain_grads.size(); ++i)
          QVERIFY2(torch::equal(recomputed_grads[i], plain_grads[i]),
                   (where + ", parameter " + std::to_string(i) + ": max |difference| " +
                    std::to_string((recomputed_grads[i] - plain_grads[i]).abs().max().item<double>()))
                       .c_str());
      }
    }
    vit->setRecomputeGelu(false);
    vit->fused_norm = false;
  }

  void splitHeadsMatchesReshapePermuteUnbind() {
    // The same views forward; backward the same gradient as through reshape, permute and unbind,
    // bit for bit, also when one of the parts gets no gradient (the CLS row's keys and values).
    torch::manual_seed(3);
    const int64_t B = 2, T = 5, heads = 3, d = 4;
    for (int64_t parts : {3, 2}) {
      auto x = torch::randn({B, T, parts * heads * d}).requires_grad_(true);
      auto ref = x.reshape({B, T, parts, heads, d}).permute({2, 0, 3, 1, 4}).unbind(0);
      auto got = splitHeads(x, parts, heads);
      QCOMPARE(got.size(), ref.size());
      std::vector<torch::Tensor> upstream;
      for (int64_t i = 0; i < parts; ++i) {
        QVERIFY(torch::equal(got[i], ref[i]));
        QCOMPARE(got[i].sizes(), torch::IntArrayRef({B, heads, T, d}));
        upstream.push_back(torch::randn({B, heads, T, d}));
      }
      auto loss = [&](const std::vector<torch::Tensor>& v, bool skip_last) {
        auto total = torch::zeros({});
        for (int64_t i = 0; i < parts - (skip_last ? 1 : 0); ++i) total = total + (v[i] * upstream[i]).sum();
        return total;
      };
      for (bool skip_last : {false, true}) {
        auto g_ref = torch::autograd::grad({loss(ref, skip_last)}, {x}, {}, /*retain_graph=*/true)[0];
        auto g_got = torch::autograd::grad({loss(got, skip_last)}, {x}, {}, /*retain_graph=*/true)[0];
        QVERIFY(torch::equal(g_got, g_ref));
        QVERIFY(g_got.is_contiguous());
      }
    }
  }

  void qkvHeadsMatchesLinearAndSplitHeads() {
    // The fused q/k/v projection (here its ATen path; mst gpucheck compares the CUDA kernel with
    // this): the same views as linear + splitHeads, and the gradients of the input, the weight
    // and the bias as autograd gives them through those, in double, for contiguous and
    // transposed (B, T, h, d)-laid-out upstream gradients and with one output unused.
    torch::manual_seed(5);
    const int64_t B = 2, T = 5, heads = 3, d = 4, in = 7;
    torch::nn::Linear fc(in, 3 * heads * d);
    fc->to(torch::kDouble);
    auto x = torch::randn({B, T, in}, torch::kDouble).requires_grad_(true);
    std::vector<torch::Tensor> params{x, fc->weight, fc->bias};
    auto ref = splitHeads(torch::linear(x, fc->weight, fc->bias), 3, heads);
    auto got = qkvHeads(x, *fc, heads);
    QCOMPARE(got.size(), size_t{3});
    for (size_t i = 0; i < 3; ++i) {
      QCOMPARE(got[i].sizes(), torch::IntArrayRef({B, heads, T, d}));
      QVERIFY(torch::allclose(got[i], ref[i], 1e-14, 1e-14));
    }
    for (bool transposed : {false, true}) {
      for (bool skip_last : {false, true}) {
        std::vector<torch::Tensor> upstream;
        for (int i = 0; i < 3; ++i)
          upstream.push_back(transposed
                                 ? torch::randn({B, T, heads, d}, torch::kDouble).transpose(1, 2)
                                 : torch::randn({B, heads, T, d}, torch::kDouble));
        auto loss = [&](const std::vector<torch::Tensor>& v) {
          auto total = torch::zeros({}, torch::kDouble);
          for (int i = 0; i < (skip_last ? 2 : 3); ++i) total = total + (v[i] * upstream[i]).sum();
          return total;
        };
        auto g_ref = torch::autograd::grad({loss(ref)}, params, {}, /*retain_graph=*/true);
        auto g_got = torch::autograd::grad({loss(got)}, params, {}, /*retain_graph=*/true);
        for (size_t i = 0; i < params.size(); ++i)
          QVERIFY2(torch::allclose(g_got[i], g_ref[i], 1e-12, 1e-13),
                   (std::to_string(i) + (transposed ? " transposed" : "") +
                    (skip_last ? " without v" : "")).c_str());
      }
    }
    QVERIFY_THROWS_EXCEPTION(c10::Error, qkvHeads(x, *fc, 5));  // 36 outputs are not 3 × 5 × d
  }

  void fusedMlpGradientsAreTheDerivatives() {
    // train.fused_mlp's autograd function, here on its ATen path (the cuBLASLt path is checked
    // against it by mst gpucheck): its hand-written backward against autograd through
    // fc2(gelu_tanh(fc1(h))), in double, for an input with leading dimensions; and the same
    // output without grad mode (no pre-activation kept).
    torch::manual_seed(14);
    torch::nn::Linear fc1(10, 16), fc2(16, 6);
    fc1->to(torch::kDouble);
    fc2->to(torch::kDouble);
    auto h = torch::randn({3, 5, 10}, torch::kDouble).requires_grad_(true);
    auto upstream = torch::randn({3, 5, 6}, torch::kDouble);
    std::vector<torch::Tensor> params{h, fc1->weight, fc1->bias, fc2->weight, fc2->bias};
    auto y_ref = fc2(torch::gelu(fc1(h), "tanh"));
    auto ref = torch::autograd::grad({(y_ref * upstream).sum()}, params);
    auto y = fusedMlp(h, *fc1, *fc2, false, "tanh", true);
    QCOMPARE(y.sizes(), y_ref.sizes());
    QVERIFY(torch::allclose(y, y_ref, 1e-12, 1e-14));
    auto got = torch::autograd::grad({(y * upstream).sum()}, params);
    for (size_t i = 0; i < ref.size(); ++i)
      QVERIFY2(torch::allclose(got[i], ref[i], 1e-12, 1e-14), std::to_string(i).c_str());
    // Storing GELU's output instead of recomputing it: the same numbers, bit for bit.
    auto stored = torch::autograd::grad({(fusedMlp(h, *fc1, *fc2, true, "tanh", true) * upstream).sum()}, params);
    for (size_t i = 0; i < ref.size(); ++i)
      QVERIFY2(torch::equal(stored[i], got[i]), std::to_string(i).c_str());
    {
      torch::NoGradGuard no_grad;
      QVERIFY(torch::allclose(fusedMlp(h, *fc1, *fc2, false, "tanh", true), y_ref, 1e-12, 1e-14));
    }
    // The erf GELU is a different function: the fused MLP must not pass for it.
    auto y_erf = fc2(torch::gelu(fc1(h)));
    QVERIFY(!torch::allclose(y, y_erf, 1e-6, 1e-8));
    // ... unless asked for it: then its derivatives are the erf network's.
    auto erf_ref = torch::autograd::grad({(y_erf * upstream).sum()}, params);
    auto y_fused_erf = fusedMlp(h, *fc1, *fc2, false, "none", true);
    QVERIFY(torch::allclose(y_fused_erf, y_erf, 1e-12, 1e-14));
    auto erf_got = torch::autograd::grad({(y_fused_erf * upstream).sum()}, params);
    for (size_t i = 0; i < erf_ref.size(); ++i)
      QVERIFY2(torch::allclose(erf_got[i], erf_ref[i], 1e-12, 1e-14), std::to_string(i).c_str());
    QVERIFY_THROWS_EXCEPTION(c10::Error, fusedMlp(h, *fc1, *fc2, false, "erf", true));
    // Without fc2's bias (the fused junction adds it): the same product less the bias, the same
    // gradients for everything else, and none for fc2's bias.
    auto y_nb = fusedMlp(h, *fc1, *fc2, false, "tanh", false);
    QVERIFY(torch::allclose(y_nb + fc2->bias, y_ref, 1e-12, 1e-14));
    auto nb = torch::autograd::grad({(y_nb * upstream).sum()}, params, {}, false, false,
                                    /*allow_unused=*/true);
    QVERIFY(!nb[4].defined());
    for (size_t i = 0; i < 4; ++i)
      QVERIFY2(torch::allclose(nb[i], ref[i], 1e-12, 1e-14), std::to_string(i).c_str());
  }

  void fusedMlpVitMatchesTheUnfusedVit_data() {
    QTest::addColumn<QString>("gelu");
    QTest::newRow("tanh") << "tanh";
    QTest::newRow("erf") << "erf";
  }
  void fusedMlpVitMatchesTheUnfusedVit() {
    // A ViT through fusedMlp against the same ViT block by block (double), for either GELU,
    // with and without the fused junctions and the CLS-only last block: outputs, attention and
    // every parameter gradient. And model.gelu = tanh is a different network from erf.
    QFETCH(QString, gelu);
    auto c = micro();
    c.gelu = gelu.toStdString();
    torch::manual_seed(23);
    Vit vit(c);
    vit->to(torch::kDouble);
    auto x = torch::randn({3, 1, 28, 28}, torch::kDouble);
    for (bool fused_norm : {false, true}) {
      for (bool want_patches : {true, false}) {
        auto run = [&](bool fused_mlp) {
          vit->fused_norm = fused_norm;
          vit->setFusedMlp(fused_mlp);
          return forwardBackward(vit, x, {}, 0.4, 9, want_patches);
        };
        auto [plain, plain_grads] = run(false);
        auto [fused, fused_grads] = run(true);
        QVERIFY(torch::allclose(fused.cls, plain.cls, 1e-10, 1e-12));
        QVERIFY(torch::allclose(fused.cls_attention, plain.cls_attention, 1e-10, 1e-12));
        for (size_t i = 0; i < plain_grads.size(); ++i)
          QVERIFY2(torch::allclose(fused_grads[i], plain_grads[i], 1e-9, 1e-11),
                   std::to_string(i).c_str());
      }
    }
    vit->setFusedMlp(false);
    vit->fused_norm = false;
    auto other_config = micro();
    other_config.gelu = gelu == "tanh" ? "erf" : "tanh";
    torch::manual_seed(23);
    Vit other(other_config);
    other->to(torch::kDouble);
    QVERIFY(!torch::allclose(other->forward(x).cls, vit->forward(x).cls, 1e-8, 1e-10));
    // The fused MLP keeps each network's own GELU.
    other->setFusedMlp(true);
    vit->setFusedMlp(true);
    QVERIFY(!torch::allclose(other->forward(x).cls, vit->forward(x).cls, 1e-8, 1e-10));
  }

  void geluLinearGradientsAreTheDerivatives() {
    // Its own backward pass against autograd through gelu and linear, in double, for an input
    // with leading dimensions, with and without a bias; and a gradient that is not contiguous.
    torch::manual_seed(8);
    for (bool with_bias : {true, false}) {
      torch::nn::Linear fc(torch::nn::LinearOptions(12, 5).bias(with_bias));
      fc->to(torch::kDouble);
      auto a = torch::randn({3, 4, 12}, torch::kDouble).requires_grad_(true);
      auto upstream = torch::randn({3, 5, 4}, torch::kDouble).transpose(1, 2);  // strided
      auto grads = [&](const torch::Tensor& y) {
        fc->zero_grad();
        a.mutable_grad() = torch::Tensor();
        (y * upstream).sum().backward();
        std::vector<torch::Tensor> g{a.grad().clone(), fc->weight.grad().clone()};
        if (with_bias) g.push_back(fc->bias.grad().clone());
        return g;
      };
      auto y_ref = fc(torch::gelu(a));
      auto ref = grads(y_ref);
      auto y = geluLinear(a, *fc);
      QVERIFY(torch::allclose(y, y_ref, 1e-12, 1e-14));
      auto got = grads(y);
      QCOMPARE(got.size(), ref.size());
      for (size_t i = 0; i < ref.size(); ++i)
        QVERIFY2(torch::allclose(got[i], ref[i], 1e-12, 1e-14), std::to_string(i).c_str());
      if (with_bias) {  // asked to leave the bias out (the fused junction adds it)
        fc->zero_grad();
        a.mutable_grad() = torch::Tensor();
        auto y_nb = geluLinear(a, *fc, "none", /*with_bias=*/false);
        QVERIFY(torch::allclose(y_nb + fc->bias, y_ref, 1e-12, 1e-14));
        (y_nb * upstream).sum().backward();
        QVERIFY(torch::allclose(a.grad(), ref[0], 1e-12, 1e-14));
        QVERIFY(!fc->bias.grad().defined() || fc->bias.grad().abs().sum().item<double>() == 0);
      }
    }
  }
  void fusedGeluBackwardComputesGelusDerivative() {
    // The fused GELU backward kernel's arithmetic (gelu_math.h, run here as a CPU loop) against
    // ATen's gelu_backward, gelu and sum in double, for both approximations. In fp32 to float
    // rounding; from bf16 inputs, rounded to bf16 as the kernel stores it, within one bf16 step
    // everywhere and equal to the correctly rounded value almost everywhere (fp32's erf and
    // tanh lose relative accuracy where 1 + erf and 1 + tanh cancel, in GELU's far negative
    // tail). (ATen's own bf16 GELU on the CPU rounds its intermediates to bf16 and is further
    // off; on CUDA it computes in fp32 as the kernel does, and mst gpucheck compares the two.)
    torch::manual_seed(21);
    auto pre32 = torch::randn({67, 40}) * 2.5;  // into GELU's tails, where the two GELUs differ
    auto dgelu32 = torch::randn({67, 40});
    for (const char* approximate : {"none", "tanh"}) {
      for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
        const std::string what = std::string(approximate) + (dtype == torch::kFloat ? " fp32" : " bf16");
        auto pre = pre32.to(dtype), dgelu = dgelu32.to(dtype);
        auto got = geluBackwardReference(dgelu, pre, approximate, true, true);
        auto dpre = torch::gelu_backward(dgelu.to(torch::kDouble), pre.to(torch::kDouble), approximate);
        auto value = torch::gelu(pre.to(torch::kDouble), approximate);
        QCOMPARE(got.dpre.scalar_type(), dtype);
        QCOMPARE(got.gelu.scalar_type(), dtype);
        QCOMPARE(got.dbias.sizes(), torch::IntArrayRef({40}));
        for (const auto& [mine, exact] : {std::pair{got.dpre, dpre}, std::pair{got.gelu, value}}) {
          auto error = (mine.to(torch::kDouble) - exact).abs();
          if (dtype == torch::kFloat) {
            QVERIFY2(error.max().item<double>() < 1e-6, what.c_str());
          } else {
            QVERIFY2((error <= exact.abs() / 128 + 1e-6).all().item<bool>(), what.c_str());
            const double same = mine.eq(exact.to(torch::kFloat).to(dtype)).to(torch::kFloat).mean().item<double>();
            QVERIFY2(same >= 0.95, (what + ": " + std::to_string(same) + " correctly rounded").c_str());
          }
        }
        auto dbias = got.dpre.to(torch::kDouble).sum(0);  // the sum of what is stored
        QVERIFY2(torch::allclose(got.dbias.to(torch::kDouble), dbias, dtype == torch::kFloat ? 1e-5 : 1e-2, 1e-4),
                 what.c_str());
        auto without = geluBackwardReference(dgelu, pre, approximate, false, false);
        QVERIFY(!without.gelu.defined() && !without.dbias.defined());
        QVERIFY(torch::equal(without.dpre, got.dpre));
      }
    }
    // The approximation flag reaches the arithmetic: the two GELUs differ in their tails.
    auto erf = geluBackwardReference(dgelu32, pre32, "none", true, false);
    auto tanh = geluBackwardReference(dgelu32, pre32, "tanh", true, false);
    QVERIFY(!torch::allclose(erf.dpre, tanh.dpre, 1e-5, 1e-6));
    // The dispatcher (ATen on the CPU) gives ATen's numbers and names what it rejects.
    auto aten = geluBackward(dgelu32, pre32, "tanh", true, true);
    QVERIFY(torch::equal(aten.dpre, torch::gelu_backward(dgelu32, pre32, "tanh")));
    QVERIFY(!geluBackwardKernelApplies(pre32));
    QVERIFY_THROWS_EXCEPTION(c10::Error, geluBackward(dgelu32, pre32, "erf", false, false));
    QVERIFY_THROWS_EXCEPTION(c10::Error, geluBackward(dgelu32.narrow(0, 0, 3), pre32, "none", false, false));
  }
};

QTEST_APPLESS_MAIN(TestModel)
#include "test_model.moc"
