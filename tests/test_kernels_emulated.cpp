/// @brief The fused CUDA kernels themselves, without a GPU: core/kernels/*.cu compiled as C++
/// and run by the CPU emulator of tests/cuda_emu/ (one block at a time, its threads as fibers
/// that meet at every __syncthreads and warp shuffle), through the same launchers the engine
/// calls, on CPU memory. Each kernel's results are compared with the ATen arithmetic it mirrors
/// (the autograd functions' CPU paths, which test_model/test_losses check against autograd). The
/// emulated device has 3 multiprocessors × 2 resident blocks, so the kernels' grid-stride loops
/// and partial sums take several turns on these small shapes. What only a GPU shows (timing,
/// the memory model, the real math library's last bits) stays with `mst gpucheck`.
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "core/augment/multicrop.h"
#include "core/bench/gpu_checks.h"
#include "core/kernels/adamw_cuda.h"
#include "core/kernels/augment_cuda.h"
#include "core/kernels/decoder_norm.h"
#include "core/kernels/decoder_norm_cuda.h"
#include "core/kernels/dino_loss.h"
#include "core/kernels/dino_loss_cuda.h"
#include "core/kernels/embed_cuda.h"
#include "core/kernels/fused_adamw.h"
#include "core/kernels/gelu_backward.h"
#include "core/kernels/gelu_cuda.h"
#include "core/kernels/heads_cuda.h"
#include "core/kernels/kernel_device.h"
#include "core/kernels/qkv_heads.h"
#include "core/kernels/recon_loss.h"
#include "core/kernels/recon_loss_cuda.h"
#include "core/kernels/residual_norm.h"
#include "core/kernels/residual_norm_cuda.h"
#include "core/kernels/token_embed.h"
#include "core/model/decoder.h"
#include "core/train/engine.h"
#include "core/train/losses.h"
#include "core/train/kernel_selfcheck.h"
#include "core/util/error.h"
#include "tests/cuda_emu/emu_selftest.h"

namespace k = mst::kernels;

namespace {

std::string describe(const torch::Tensor& got, const torch::Tensor& want) {
  auto d = (got.to(torch::kDouble) - want.to(torch::kDouble)).abs();
  return "max |difference| " + std::to_string(d.max().item<double>()) + " of max |value| " +
         std::to_string(want.to(torch::kDouble).abs().max().item<double>());
}

/// Whether bf16 `got` equals `want` (any dtype, rounded to bf16 here) to within `ulps` bf16
/// steps of each value, or of `floor` × want's largest value for values near zero: different
/// summation orders move a sum by a few fp32 ulps, which can tip its bf16 rounding by one step,
/// and a difference of nearly equal terms keeps their absolute error.
bool withinBf16(const torch::Tensor& got, const torch::Tensor& want, double ulps = 1,
                double floor_fraction = 1e-3) {
  auto g = got.to(torch::kDouble), w = want.to(torch::kBFloat16).to(torch::kDouble);
  const double floor = floor_fraction * w.abs().max().item<double>();
  auto step = (w.abs() * (ulps / 128.0)).clamp_min(floor);
  return ((g - w).abs() <= step).all().item<bool>();
}

/// For one scope, CPU tensors go through the kernels' host code (the autograd functions as a
/// CUDA build compiles them: tests/CMakeLists.txt's mst_core_emulated) to the emulated kernels;
/// outside it the same calls take the ATen paths. `launched()`: kernel launches in the scope, so
/// that a comparison cannot pass with both sides in ATen.
#ifdef MST_EMULATED_KERNELS
#define MST_REQUIRE_EMULATED_HOST_CODE()
#else  // (CMake before 3.24: tests/CMakeLists.txt builds no emulated host code)
#define MST_REQUIRE_EMULATED_HOST_CODE() QSKIP("no emulated host code in this build (CMake < 3.24)")
namespace mst::kernels {
inline bool& kernelEmulation() {
  static bool on = false;
  return on;
}
}  // namespace mst::kernels
#endif
class Emulated {
 public:
  Emulated() : first_(emu_selftest::launches()) { k::kernelEmulation() = true; }
  ~Emulated() { k::kernelEmulation() = false; }
  Emulated(const Emulated&) = delete;
  Emulated& operator=(const Emulated&) = delete;
  uint64_t launched() const { return emu_selftest::launches() - first_; }

 private:
  uint64_t first_;
};

/// Leaves with gradients of `t` (undefined stays undefined).
torch::Tensor leafOf(const torch::Tensor& t) {
  return t.defined() ? t.detach().clone().requires_grad_(true) : torch::Tensor();
}

torch::Tensor randomBf16(std::vector<int64_t> sizes) {
  return torch::randn(sizes).to(torch::kBFloat16);
}

/// An output buffer the kernel must fill: NaN wherever it writes nothing.
torch::Tensor unwritten(std::vector<int64_t> sizes, torch::ScalarType dtype = torch::kFloat) {
  return torch::full(sizes, std::nanf(""), torch::TensorOptions().dtype(dtype));
}

}  // namespace

class TestKernelsEmulated : public QObject {
  Q_OBJECT

 private slots:
  void emulatorCatchesBrokenKernels() {
    // The emulator can fail: lanes missing from a shuffle, a shuffle half a warp never
    // reaches, lanes that disagree on a shuffle (an error thrown inside a thread reaches the
    // caller), a block too large to launch; and a plain exchange gives the partner's value.
    std::vector<float> out(64, -1.0f);
    QVERIFY(emu_selftest::shuffleAfterReturnError(out.data()).find("returned") != std::string::npos);
    QVERIFY(emu_selftest::splitBarrierError(out.data()).find("deadlock") != std::string::npos);
    QVERIFY(emu_selftest::mixedMasksError(out.data()).find("lane masks") != std::string::npos);
    QCOMPARE(emu_selftest::oversizedBlockError(out.data()), 9);
    QCOMPARE(QString::fromStdString(emu_selftest::exchangeError(out.data())), QString());
    for (int t = 0; t < 64; ++t) QCOMPARE(out[t], static_cast<float>(t ^ 5));
  }

  void junctionMatchesTheAtenPath_data() {
    QTest::addColumn<bool>("bf16_stream");
    QTest::addColumn<int>("D");
    QTest::addColumn<bool>("branch");
    QTest::addColumn<bool>("bias");
    QTest::addColumn<bool>("scale");
    QTest::addColumn<bool>("gy");
    QTest::addColumn<bool>("scalar_access");
    QTest::addColumn<bool>("out_fp32");
    QTest::addColumn<bool>("misaligned");
    // D = 384 (DeiT-S, 12 channels a lane), 200 (lanes with a short last column), 96 (the
    // Fashion-MNIST ViT), 1024 (the most: 48 KiB of shared sums with the bias), 202 (not a
    // multiple of 4: one channel per access). The kernels read 4 channels per access wherever
    // they can; scalar_access asks for one, as D = 202 gets. out_fp32: z (and its gradient) fp32.
    // misaligned: x, y, z, dx and z's gradient start one element past a 16-byte boundary.
    QTest::newRow("fp32 D384 bias scale") << false << 384 << true << true << true << true << false << false << false;
    QTest::newRow("fp32 D384 no bias") << false << 384 << true << false << true << true << false << false << false;
    QTest::newRow("bf16 D384 bias scale") << true << 384 << true << true << true << true << false << false << false;
    QTest::newRow("fp32 D200 bias no scale") << false << 200 << true << true << false << true << false << false << false;
    QTest::newRow("bf16 D96 bias scale") << true << 96 << true << true << true << false << false << false << false;
    QTest::newRow("fp32 D1024 bias scale") << false << 1024 << true << true << true << true << false << false << false;
    QTest::newRow("fp32 D384 norm only") << false << 384 << false << false << false << false << false << false << false;
    QTest::newRow("bf16 D384 scalar access") << true << 384 << true << true << true << true << true << false << false;
    QTest::newRow("fp32 D384 scalar access") << false << 384 << true << true << true << true << true << false << false;
    QTest::newRow("bf16 D202 bias scale") << true << 202 << true << true << true << true << false << false << false;
    // The final norm of an fp32 stream keeps its dtype (the student's last junction).
    QTest::newRow("fp32 D384 fp32 out") << false << 384 << true << true << true << true << false << true << false;
    QTest::newRow("fp32 D202 fp32 out") << false << 202 << true << true << true << false << false << true << false;
    // x, z's gradient and the outputs one element off their allocation's 16-byte alignment:
    // every 4-channel access would be misaligned, so the kernels must take one channel.
    QTest::newRow("fp32 D384 misaligned") << false << 384 << true << true << true << true << false << false << true;
    QTest::newRow("bf16 D384 misaligned") << true << 384 << true << true << true << true << false << false << true;
    QTest::newRow("fp32 D202 norm only") << false << 202 << false << false << false << false << false << false << false;
  }
  void junctionMatchesTheAtenPath() {
    QFETCH(bool, bf16_stream);
    QFETCH(int, D);
    QFETCH(bool, branch);
    QFETCH(bool, bias);
    QFETCH(bool, scale);
    QFETCH(bool, gy);
    QFETCH(bool, scalar_access);
    QFETCH(bool, out_fp32);
    QFETCH(bool, misaligned);
    const auto out_dtype = out_fp32 ? torch::kFloat : torch::kBFloat16;
    torch::manual_seed(D + 10 * bias + 100 * scale);
    const int64_t B = 3, T = 23, rows = B * T;  // 69 rows: not a multiple of 4 warps
    const auto stream_dtype = bf16_stream ? torch::kBFloat16 : torch::kFloat;
    auto x = torch::randn({B, T, D}).to(stream_dtype);
    auto br = branch ? randomBf16({B, T, D}) : torch::Tensor();
    auto b = bias ? torch::randn({D}) * 0.5 : torch::Tensor();
    auto s = scale ? torch::tensor({0.0f, 1.25f, 1.0f / 0.9f}) : torch::Tensor();
    auto gamma = 1 + 0.3 * torch::randn({D}), beta = 0.2 * torch::randn({D});
    // (fp32 values that bf16 cannot hold where z is fp32: a kernel that rounded it would show)
    auto gz = out_fp32 ? torch::randn({B, T, D}) : randomBf16({B, T, D});
    auto gyv = gy ? torch::randn({B, T, D}).to(stream_dtype) : torch::Tensor();
    // The same values one element past the start of an allocation (16-byte aligned itself).
    auto place = [&](const torch::Tensor& t) {
      if (!misaligned) return t;
      auto storage = torch::full({t.numel() + 1}, std::nanf(""), t.options());
      auto view = storage.narrow(0, 1, t.numel()).view(t.sizes());
      view.copy_(t);
      return view;
    };
    x = place(x);
    gz = place(gz);

    // The reference: the same autograd function's ATen path on the CPU.
    auto leaf = [](const torch::Tensor& t) {
      return t.defined() ? t.clone().requires_grad_(true) : torch::Tensor();
    };
    auto rx = leaf(x), rbr = leaf(br), rb = leaf(b), rg = leaf(gamma), rbeta = leaf(beta);
    auto ref = mst::residualLayerNorm(rx, rbr, rb, s, rg, rbeta, 1e-6, out_dtype);
    std::vector<torch::Tensor> outs{ref.z}, grads{gz};
    if (branch && gy) outs.push_back(ref.y), grads.push_back(gyv);
    torch::autograd::backward(outs, grads);

    // The kernels, through their launchers, as residual_norm.cpp calls them.
    auto y = branch ? place(unwritten({B, T, D}, stream_dtype)) : x;
    auto z = place(unwritten({B, T, D}, out_dtype));
    if (misaligned) QVERIFY(reinterpret_cast<uintptr_t>(x.data_ptr()) % 8 != 0);
    auto stats = unwritten({2, rows});
    k::ResidualNormForwardArgs f;
    f.x = x.data_ptr();
    f.branch = branch ? br.data_ptr() : nullptr;
    f.bias = bias ? b.data_ptr<float>() : nullptr;
    f.scale = scale ? s.data_ptr<float>() : nullptr;
    f.gamma = gamma.data_ptr<float>();
    f.beta = beta.data_ptr<float>();
    f.y = y.data_ptr();
    f.z = z.data_ptr();
    f.mean = stats[0].data_ptr<float>();
    f.rstd = stats[1].data_ptr<float>();
    f.rows = rows;
    f.tokens = T;
    f.D = D;
    f.eps = 1e-6f;
    f.stream_bf16 = bf16_stream;
    f.scalar_access = scalar_access;
    f.out_fp32 = out_fp32;
    const char* error = k::residualNormForward(f);
    QVERIFY2(error == nullptr, error);
    if (branch) QVERIFY2(torch::equal(y, ref.y.detach()), describe(y, ref.y).c_str());
    if (out_fp32)
      QVERIFY2(torch::allclose(z, ref.z.detach(), 1e-5, 1e-5), describe(z, ref.z).c_str());
    else
      QVERIFY2(withinBf16(z, ref.z.detach()), describe(z, ref.z).c_str());

    const int sums = bias ? 3 : 2;
    auto dx = place(unwritten({B, T, D}, stream_dtype));
    auto dbranch = unwritten({B, T, D}, torch::kBFloat16);
    k::ResidualNormBackwardArgs g;
    g.gz = gz.data_ptr();
    g.gy = gy && branch ? gyv.data_ptr() : nullptr;
    g.y = y.data_ptr();
    g.mean = f.mean;
    g.rstd = f.rstd;
    g.gamma = f.gamma;
    g.scale = f.scale;
    g.dx = dx.data_ptr();
    g.dbranch = branch ? dbranch.data_ptr() : nullptr;
    g.sums = sums;
    g.rows = rows;
    g.tokens = T;
    g.D = D;
    g.stream_bf16 = bf16_stream;
    g.scalar_access = scalar_access;
    g.out_fp32 = out_fp32;
    g.blocks = k::residualNormBackwardBlocks(g);
    QVERIFY(g.blocks >= 1 && g.blocks <= 6);  // the emulated device holds 3 × 2 blocks
    auto partial = unwritten({g.blocks, sums, D});
    auto affine = torch::full({sums, D}, std::nanf(""));
    g.partial = partial.data_ptr<float>();
    g.affine = affine.data_ptr<float>();
    error = k::residualNormBackward(g);
    QVERIFY2(error == nullptr, error);
    const auto& want_dx = rx.grad();
    if (bf16_stream)
      QVERIFY2(withinBf16(dx, want_dx), describe(dx, want_dx).c_str());
    else
      QVERIFY2(torch::allclose(dx, want_dx, 1e-4, 1e-5), describe(dx, want_dx).c_str());
    if (branch) QVERIFY2(withinBf16(dbranch, rbr.grad()), describe(dbranch, rbr.grad()).c_str());
    QVERIFY2(torch::allclose(affine[0], rg.grad(), 1e-4, 1e-4), describe(affine[0], rg.grad()).c_str());
    QVERIFY2(torch::allclose(affine[1], rbeta.grad(), 1e-4, 1e-4),
             describe(affine[1], rbeta.grad()).c_str());
    if (bias) QVERIFY2(torch::allclose(affine[2], rb.grad(), 1e-4, 1e-4), describe(affine[2], rb.grad()).c_str());
  }

  void qkvGatherMatchesTheStack_data() {
    QTest::addColumn<int>("heads");
    QTest::addColumn<int>("d");
    QTest::addColumn<bool>("token_major");
    QTest::addColumn<bool>("bias");
    // 6 × 64 (DeiT-S: 1152 columns, 4.5 tiles of 256), 3 × 32 (the Fashion-MNIST ViT), 2 × 8
    // (48 columns: most of the one tile idle); the attention's gradients either in (B, heads,
    // T, d) memory or as views of (B, T, heads, d).
    QTest::newRow("6x64 head-major") << 6 << 64 << false << true;
    QTest::newRow("6x64 token-major no bias") << 6 << 64 << true << false;
    QTest::newRow("3x32 token-major") << 3 << 32 << true << true;
    QTest::newRow("2x8 head-major") << 2 << 8 << false << true;
  }
  void qkvGatherMatchesTheStack() {
    QFETCH(int, heads);
    QFETCH(int, d);
    QFETCH(bool, token_major);
    QFETCH(bool, bias);
    torch::manual_seed(heads * d);
    const int64_t B = 4, T = 37, width = 3 * heads * d;
    std::vector<torch::Tensor> parts;
    for (int p = 0; p < 3; ++p) {
      parts.push_back(token_major ? randomBf16({B, T, heads, d}).transpose(1, 2)
                                  : randomBf16({B, heads, T, d}));
    }
    auto want = mst::stackHeadGradients(parts, B, T, heads, d).view({B * T, width});
    auto out = unwritten({B * T, width}, torch::kBFloat16);
    auto dbias = unwritten({width}, torch::kBFloat16);
    k::HeadsGatherArgs a;
    for (int p = 0; p < 3; ++p) {
      a.part[p] = parts[p].data_ptr();
      for (int s = 0; s < 3; ++s) a.stride[p][s] = parts[p].stride(s);
    }
    a.out = out.data_ptr();
    a.dbias = bias ? dbias.data_ptr() : nullptr;
    a.batch = B;
    a.tokens = T;
    a.heads = heads;
    a.d = d;
    a.row_blocks = k::headsGatherRowBlocks(B * T, static_cast<int>(width));
    auto partial = unwritten({a.row_blocks, width});
    a.partial = bias ? partial.data_ptr<float>() : nullptr;
    const char* error = k::headsGather(a);
    QVERIFY2(error == nullptr, error);
    QVERIFY2(torch::equal(out, want), describe(out, want).c_str());  // a copy: bit for bit
    if (bias) {
      auto sum = want.to(torch::kFloat).sum(0);
      QVERIFY2(withinBf16(dbias, sum), describe(dbias, sum).c_str());
    }
  }

  void qkvGatherRefusesMisalignedStrides() {
    auto part = randomBf16({2, 2, 5, 12});  // d = 12: not a multiple of 8
    k::HeadsGatherArgs a;
    for (int p = 0; p < 3; ++p) {
      a.part[p] = part.data_ptr();
      for (int s = 0; s < 3; ++s) a.stride[p][s] = part.stride(s);
    }
    a.batch = 2;
    a.tokens = 5;
    a.heads = 2;
    a.d = 12;
    const char* error = k::headsGather(a);
    QVERIFY(error != nullptr && std::string(error).find("multiple of 8") != std::string::npos);
  }

  void distillationLossMatchesTheAtenPath_data() {
    QTest::addColumn<int>("crops");
    QTest::addColumn<int>("classes");
    QTest::addColumn<bool>("bf16");
    QTest::addColumn<double>("spread");
    // 4 crops (the 4-crop instance), 12 (the paper's 2 + 10), 13 (the 32-crop instance); 16,384
    // classes split into 4 segments per sample on the emulated device, 1,032 into one. Logits
    // of standard deviation 0.3 (3 after ÷ τ: every class counts in the log-sum-exp and the
    // softmax), and 3 (30: peaked, the online maximum moves).
    QTest::newRow("S4 K16384 bf16") << 4 << 16384 << true << 0.3;
    QTest::newRow("S12 K1032 bf16") << 12 << 1032 << true << 0.3;
    QTest::newRow("S13 K16384 fp32") << 13 << 16384 << false << 0.3;
    QTest::newRow("S2 K1032 fp32") << 2 << 1032 << false << 0.3;
    QTest::newRow("S12 K16384 bf16 peaked") << 12 << 16384 << true << 3.0;
  }
  void distillationLossMatchesTheAtenPath() {
    QFETCH(int, crops);
    QFETCH(int, classes);
    QFETCH(bool, bf16);
    QFETCH(double, spread);
    torch::manual_seed(crops * 7 + classes);
    const int64_t B = 3, S = crops, K = classes;
    const double temp = 0.1;
    auto student = (torch::randn({S * B, K}) * spread).to(bf16 ? torch::kBFloat16 : torch::kFloat);
    auto teacher = torch::softmax(torch::randn({2 * B, K}) * 2, -1);
    auto rs = student.clone().requires_grad_(true);
    auto loss = mst::fusedDistillationLoss(rs, teacher, temp);  // the CPU: its ATen path
    const double upstream = 0.7;
    loss.backward(torch::full({}, upstream, loss.options()));

    k::DinoLossArgs a;
    a.student = student.data_ptr();
    a.teacher = teacher.data_ptr<float>();
    a.batch = B;
    a.classes = K;
    a.crops = crops;
    a.student_bf16 = bf16;
    a.inv_temp = static_cast<float>(1.0 / temp);
    a.segments = k::dinoLossSegments(B, K);
    QCOMPARE(a.segments, K >= 16384 ? 4 : 1);
    auto partial = unwritten({k::dinoLossPartialFloats(a.segments, B, crops)});
    auto stats = unwritten({3, S * B});
    a.partial = partial.data_ptr<float>();
    a.stats = stats.data_ptr<float>();
    const char* error = k::dinoLossForward(a);
    QVERIFY2(error == nullptr, error);
    auto got = -(stats[1] - stats[2] * stats[0]).sum() / static_cast<double>(B * (2 * S - 2));
    QVERIFY2(std::abs(got.item<double>() - loss.item<double>()) <= 1e-5 * std::abs(loss.item<double>()),
             (std::to_string(got.item<double>()) + " against " + std::to_string(loss.item<double>())).c_str());
    // Each row's log-sum-exp, target dot product and target sum against ATen's, in double.
    auto x = student.to(torch::kDouble) / temp;
    auto t = teacher.to(torch::kDouble).view({2, B, K});
    auto c = torch::cat({t[1].unsqueeze(0), t[0].unsqueeze(0),
                         (t[0] + t[1]).unsqueeze(0).expand({S - 2, B, K})}).view({S * B, K});
    auto lse = x.logsumexp(-1), dot = (x * c).sum(-1), csum = c.sum(-1);
    QVERIFY2(torch::allclose(stats[0].to(torch::kDouble), lse, 1e-6, 1e-6), describe(stats[0], lse).c_str());
    QVERIFY2(torch::allclose(stats[1].to(torch::kDouble), dot, 1e-5, 1e-5), describe(stats[1], dot).c_str());
    QVERIFY2(torch::allclose(stats[2].to(torch::kDouble), csum, 1e-6, 1e-6), describe(stats[2], csum).c_str());

    auto grad = torch::full({1}, static_cast<float>(upstream));
    auto dz = unwritten({S * B, K}, student.scalar_type());
    a.grad = grad.data_ptr<float>();
    a.coef = static_cast<float>(-1.0 / (temp * static_cast<double>(B * (2 * S - 2))));
    a.dstudent = dz.data_ptr();
    error = k::dinoLossBackward(a);
    QVERIFY2(error == nullptr, error);
    const auto& want = rs.grad();
    if (bf16) {
      QVERIFY2(withinBf16(dz, want, 2, 1e-5), describe(dz, want).c_str());
    } else {
      const double scale = want.abs().max().item<double>();
      QVERIFY2(torch::allclose(dz, want, 1e-4, 1e-7 * scale), describe(dz, want).c_str());
    }
  }

  void distillationLossRefusesBadShapes() {
    k::DinoLossArgs a;
    a.batch = 2;
    a.crops = 2;
    a.classes = 12;  // not a multiple of 8
    QVERIFY(k::dinoLossForward(a) != nullptr);
    a.classes = 16;
    a.crops = 33;  // more than the kernels take
    QVERIFY(k::dinoLossBackward(a) != nullptr);
  }

  void tokenEmbeddingMatchesTheAtenPath_data() {
    QTest::addColumn<bool>("x_bf16");
    QTest::addColumn<bool>("stream_bf16");
    QTest::addColumn<bool>("masked");
    QTest::addColumn<int>("batch");
    QTest::addColumn<int>("patches");
    QTest::addColumn<int>("width");
    // Autocast's bf16 projections into an fp32 and a bf16 stream, fp32 runs; D = 384 (96
    // threads, three warps), 12 (one partial warp) and 260 (65 groups of 4 channels: 96
    // threads, 65 of them busy); 37 crops of the batch, in several chunks.
    QTest::newRow("bf16 into fp32, masked, D384") << true << false << true << 3 << 16 << 384;
    QTest::newRow("bf16 into bf16, masked, D384") << true << true << true << 2 << 9 << 384;
    QTest::newRow("fp32, unmasked, D12, 37 crops") << false << false << false << 37 << 4 << 12;
    QTest::newRow("bf16 into fp32, unmasked, D260") << true << false << false << 5 << 3 << 260;
    // An fp32 x into a bf16 stream (rounded to it before the add, as ATen's x.to(stream)), and
    // D = 1032: 258 4-channel groups, a second turn for two threads of 256.
    QTest::newRow("fp32 into bf16, masked, D16") << false << true << true << 4 << 6 << 16;
    QTest::newRow("bf16 into fp32, masked, D1032") << true << false << true << 2 << 3 << 1032;
  }
  void tokenEmbeddingMatchesTheAtenPath() {
    // train.fused_norm's token embedding through the host code and the emulated kernels against
    // ATen's where, cat and add: output, x's gradient, and the position embedding's and the
    // tokens' gradients.
    MST_REQUIRE_EMULATED_HOST_CODE();
    QFETCH(bool, x_bf16);
    QFETCH(bool, stream_bf16);
    QFETCH(bool, masked);
    QFETCH(int, batch);
    QFETCH(int, patches);
    QFETCH(int, width);
    mst::KernelCase r;
    {
      Emulated emulated;
      r = mst::kernel_cases::tokenEmbed(batch, patches, width,
                                        x_bf16 ? torch::kBFloat16 : torch::kFloat,
                                        stream_bf16 ? torch::kBFloat16 : torch::kFloat, masked,
                                        torch::kCPU, static_cast<uint64_t>(batch + width));
      QVERIFY2(emulated.launched() >= 3, "the embedding kernels did not run");  // 1 + 1 + sums
    }
    QVERIFY2(r.ran, r.row.dump().c_str());
    QVERIFY2(r.passed, r.row.dump().c_str());
  }

  void tokenEmbeddingDeclinesWhatItCannotTake() {
    k::EmbedArgs a;
    a.batch = 2;
    a.tokens = 5;
    a.D = 6;  // not a multiple of 4
    QVERIFY(k::embedForward(a) != nullptr);
    a.D = 8;
    a.chunks = 0;
    QVERIFY(k::embedBackward(a) != nullptr);
    MST_REQUIRE_EMULATED_HOST_CODE();
    Emulated emulated;
    auto x = torch::randn({2, 4, 8});
    auto pos = torch::randn({1, 5, 8});
    auto t8 = torch::randn({1, 1, 8}), c8 = torch::randn({1, 1, 8});
    auto applies = [&](const torch::Tensor& xx, const torch::Tensor& m, const torch::Tensor& p,
                       torch::ScalarType stream) {
      return mst::fusedTokenEmbedApplies(xx, m, t8, c8, p, stream);
    };
    QVERIFY(applies(x, {}, pos, torch::kFloat));
    QVERIFY(applies(x, torch::rand({2, 4}) < 0.5, pos, torch::kBFloat16));
    QVERIFY(!mst::fusedTokenEmbedApplies(torch::randn({2, 4, 6}), {}, torch::randn({1, 1, 6}),
                                         torch::randn({1, 1, 6}), torch::randn({1, 5, 6}), torch::kFloat));
    QVERIFY(!applies(x, {}, torch::randn({1, 4, 8}), torch::kFloat));
    QVERIFY(!applies(x, torch::zeros({2, 4}), pos, torch::kFloat));  // not bool
    QVERIFY(!applies(torch::randn({2, 8, 4}).transpose(1, 2), {}, pos, torch::kFloat));  // strided
    QVERIFY(!applies(x, {}, pos.to(torch::kBFloat16), torch::kFloat));
    QVERIFY(!applies(x, {}, pos, torch::kHalf));
    QVERIFY(!mst::fusedTokenEmbedApplies(x, {}, t8.to(torch::kDouble), c8, pos, torch::kFloat));
    QVERIFY(!mst::fusedTokenEmbedApplies(x, {}, t8, torch::randn({1, 1, 4}), pos, torch::kFloat));
    // Where it declines, tokenEmbed still gives ATen's result (and counts the fallback).
    auto odd = torch::randn({2, 4, 6});
    auto token = torch::randn({1, 1, 6}), cls = torch::randn({1, 1, 6}), p6 = torch::randn({1, 5, 6});
    auto mask = torch::rand({2, 4}) < 0.5;
    const auto before = mst::kernelFallbacks();
    auto got = mst::tokenEmbed(odd, mask, token, cls, p6, torch::kFloat, true);
    auto want = torch::cat({cls.expand({2, 1, 6}), torch::where(mask.unsqueeze(-1), token, odd)}, 1) + p6;
    QVERIFY(torch::equal(got, want));
    auto after = mst::kernelFallbacks();
    QCOMPARE(after["embed"], before.count("embed") ? before.at("embed") + 1 : 1);
  }

  void reconstructionLossMatchesTheAtenPath_data() {
    QTest::addColumn<bool>("bf16");
    QTest::addColumn<int>("batch");
    QTest::addColumn<int>("channels");
    QTest::addColumn<int>("height");
    QTest::addColumn<int>("width");
    QTest::addColumn<int>("phase_channels");  // 0: 4C
    // RGB and one channel; rows of 2W = 28 outputs (fewer than a warp), 74 (three turns and a
    // part), and y's rows of (W + 1) · K elements that end inside a warp's turn. K: 4C, or the
    // decoder's padding to 8 (RGB 16, one channel 8), or more.
    QTest::newRow("bf16 B3 C3 14x14") << true << 3 << 3 << 14 << 14 << 0;
    QTest::newRow("bf16 B3 C3 14x14, K 16") << true << 3 << 3 << 14 << 14 << 16;
    QTest::newRow("fp32 B2 C3 9x37") << false << 2 << 3 << 9 << 37 << 0;
    QTest::newRow("fp32 B2 C3 9x37, K 16") << false << 2 << 3 << 9 << 37 << 16;
    QTest::newRow("bf16 B5 C1 7x5") << true << 5 << 1 << 7 << 5 << 0;
    QTest::newRow("bf16 B5 C1 7x5, K 8") << true << 5 << 1 << 7 << 5 << 8;
    QTest::newRow("fp32 B1 C2 1x1, K 13") << false << 1 << 2 << 1 << 1 << 13;
  }
  void reconstructionLossMatchesTheAtenPath() {
    // train.fused_loss's reconstruction loss through the host code and the emulated kernels
    // against ATen's gather, cast and mean absolute error: the loss, and y's gradient, which is
    // ±g/N where an output reads y (0 for an equal target) and 0 in the padding windows.
    MST_REQUIRE_EMULATED_HOST_CODE();
    QFETCH(bool, bf16);
    QFETCH(int, batch);
    QFETCH(int, channels);
    QFETCH(int, height);
    QFETCH(int, width);
    QFETCH(int, phase_channels);
    const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
    mst::KernelCase r;
    {
      Emulated emulated;
      r = mst::kernel_cases::reconstruction(dtype, batch, channels, height, width, torch::kCPU,
                                            static_cast<uint64_t>(batch * 100 + height),
                                            phase_channels);
      QVERIFY2(emulated.launched() >= 3, "the reconstruction kernels did not run");  // 2 + 1
    }
    QVERIFY2(r.ran, r.row.dump().c_str());
    QVERIFY2(r.passed, r.row.dump().c_str());

    // The gradient's values themselves, for a y stored NCHW (the host code makes it
    // channels-last for the kernels).
    torch::manual_seed(batch + channels);
    const int64_t B = batch, C = channels, H = height, W = width;
    const int64_t K = phase_channels == 0 ? 4 * C : phase_channels;
    auto y = torch::randn({B, K, H + 1, W + 1}).to(dtype);  // (NCHW: made channels-last)
    auto target = torch::randn({B, C, 2 * H, 2 * W});
    auto ly = leafOf(y);
    torch::Tensor loss;
    {
      Emulated emulated;
      QVERIFY(mst::fusedReconstructionApplies(ly, C, target));
      loss = mst::fusedReconstructionLoss(ly, C, target);
      (loss * 3.0).backward();
    }
    auto want = (mst::phaseGather(y, C).to(torch::kFloat) - target).abs().mean();
    QVERIFY2(std::abs(loss.item<double>() - want.item<double>()) <= 1e-5 * want.item<double>(),
             (std::to_string(loss.item<double>()) + " against " + std::to_string(want.item<double>())).c_str());
    const double step = 3.0 / static_cast<double>(B * C * 4 * H * W);
    auto dy = ly.grad().to(torch::kDouble);
    auto reads = mst::phaseGather(torch::ones_like(y, torch::kFloat), C);  // (ones where read)
    auto read_mask = torch::zeros_like(y, torch::kFloat).requires_grad_(true);
    mst::phaseGather(read_mask, C).backward(reads);
    auto used = read_mask.grad() > 0;
    QVERIFY(torch::equal(dy.masked_select(~used), torch::zeros({(~used).sum().item<int64_t>()},
                                                               torch::kDouble)));
    auto magnitudes = dy.masked_select(used).abs();
    const double tolerance = bf16 ? step / 128 : step * 1e-6;
    QVERIFY2((magnitudes - step).abs().max().item<double>() <= tolerance, describe(magnitudes, torch::full_like(magnitudes, step)).c_str());
  }

  void reconstructionLossRefusesBadInputs() {
    k::ReconLossArgs a;
    a.batch = 0;
    a.height = a.width = 4;
    a.channels = 3;
    QVERIFY(k::reconLossForward(a) != nullptr);
    a.batch = 2;
    a.blocks = 0;
    QVERIFY(k::reconLossBackward(a) != nullptr);
    // The host code declines what the kernels cannot take: the target's size, dtype or channels.
    MST_REQUIRE_EMULATED_HOST_CODE();
    Emulated emulated;
    auto y = torch::randn({2, 12, 5, 5});
    QVERIFY(mst::fusedReconstructionApplies(y, 3, torch::zeros({2, 3, 8, 8})));
    QVERIFY(!mst::fusedReconstructionApplies(y, 3, torch::zeros({2, 3, 8, 9})));
    QVERIFY(!mst::fusedReconstructionApplies(y, 3, torch::zeros({2, 3, 8, 8}, torch::kDouble)));
    QVERIFY(!mst::fusedReconstructionApplies(y, 4, torch::zeros({2, 4, 8, 8})));
    // (More channels than 4C: the padding the decoder adds, which the kernels skip.)
    QVERIFY(mst::fusedReconstructionApplies(y, 2, torch::zeros({2, 2, 8, 8})));
    QVERIFY(!mst::fusedReconstructionApplies(y.to(torch::kHalf), 3, torch::zeros({2, 3, 8, 8})));
    // Fewer phase channels than 4C: declined by the host code, an error from the kernels.
    QVERIFY(!mst::fusedReconstructionApplies(y.narrow(1, 0, 11), 3, torch::zeros({2, 3, 8, 8})));
    a.blocks = 1;
    a.phase_channels = 11;
    QVERIFY(k::reconLossForward(a) != nullptr);
  }

  void decoderPadsItsLastPhasesForTheKernels() {
    // Where the kernels run, the decoder's last phases come with zero filters up to a multiple
    // of 8 channels; the image they gather into is the unpadded one's (the zero channels are
    // not read), and so are the loss and every gradient.
    QCOMPARE(mst::paddedPhaseChannels(3), int64_t{16});
    QCOMPARE(mst::paddedPhaseChannels(1), int64_t{8});
    QCOMPARE(mst::paddedPhaseChannels(2), int64_t{8});
    QCOMPARE(mst::paddedPhaseChannels(4), int64_t{16});
    torch::manual_seed(5);
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(6, 3, 3).padding(1));
    auto x = torch::randn({2, 6, 5, 4});
    auto target = torch::randn({2, 3, 10, 8});
    auto plain = mst::upsampleConvPhases(x, *conv);
    auto padded = mst::upsampleConvPhases(x, *conv, 16);
    QCOMPARE(plain.size(1), int64_t{12});
    QCOMPARE(padded.size(1), int64_t{16});
    // (The CPU's convolution may block 12 and 16 output channels differently: last bits.)
    QVERIFY2(torch::allclose(padded.narrow(1, 0, 12), plain, 1e-5, 1e-6),
             describe(padded.narrow(1, 0, 12), plain).c_str());
    QVERIFY(torch::equal(padded.narrow(1, 12, 4), torch::zeros_like(padded.narrow(1, 12, 4))));
    auto gradients = [&](const torch::Tensor& y) {
      for (auto& p : conv->parameters()) p.mutable_grad().reset();
      auto loss = mst::reconstructionLossFromPhases(y, 3, target, false);
      loss.backward();
      return std::vector<torch::Tensor>{loss.detach(), conv->weight.grad().clone(), conv->bias.grad().clone()};
    };
    const auto a = gradients(mst::upsampleConvPhases(x, *conv));
    const auto b = gradients(mst::upsampleConvPhases(x, *conv, 16));
    for (size_t i = 0; i < a.size(); ++i) QVERIFY2(torch::allclose(a[i], b[i], 1e-6, 1e-7), describe(b[i], a[i]).c_str());
    QVERIFY_THROWS_EXCEPTION(c10::Error, mst::upsampleConvPhases(x, *conv, 8));
    // The decoder itself: padded phases where the kernels run (here emulated), 4C elsewhere.
    mst::ModelConfig c;
    c.dim = 16;
    c.patch_size = 4;
    c.decoder_widths = {8, 8};
    c.channels = 3;
    mst::Decoder decoder(c);
    auto patches = torch::randn({2, 4, c.dim});
    QVERIFY(decoder->endsWithPhases());
    QCOMPARE(decoder->forward(patches, false).size(1), int64_t{12});
    MST_REQUIRE_EMULATED_HOST_CODE();
    Emulated emulated;
    QCOMPARE(decoder->forward(patches, false).size(1), int64_t{16});
  }

  void geluBackwardMatchesItsReference_data() {
    QTest::addColumn<int>("hidden");
    QTest::addColumn<bool>("tanh");
    QTest::addColumn<bool>("want_gelu");  // gelu(pre) too
    QTest::addColumn<bool>("want_bias");  // the bias sum too
    QTest::newRow("1536 erf all") << 1536 << false << true << true;
    QTest::newRow("1536 tanh all") << 1536 << true << true << true;
    QTest::newRow("264 erf dpre only") << 264 << false << false << false;
    QTest::newRow("264 tanh gelu, no bias") << 264 << true << true << false;
    QTest::newRow("264 erf bias, no gelu") << 264 << false << false << true;
    QTest::newRow("8 tanh all") << 8 << true << true << true;
  }
  void geluBackwardMatchesItsReference() {
    QFETCH(int, hidden);
    QFETCH(bool, tanh);
    QFETCH(bool, want_gelu);
    QFETCH(bool, want_bias);
    torch::manual_seed(hidden);
    const int64_t rows = 75;
    auto dgelu = randomBf16({rows, hidden}), pre = (torch::randn({rows, hidden}) * 2).to(torch::kBFloat16);
    auto want = mst::geluBackwardReference(dgelu, pre, tanh ? "tanh" : "none", want_gelu, want_bias);
    auto dpre = unwritten({rows, hidden}, torch::kBFloat16), value = unwritten({rows, hidden}, torch::kBFloat16);
    auto dbias = unwritten({hidden}, torch::kBFloat16);
    k::GeluBackwardArgs a;
    a.dgelu = dgelu.data_ptr();
    a.pre = pre.data_ptr();
    a.dpre = dpre.data_ptr();
    a.gelu = want_gelu ? value.data_ptr() : nullptr;
    a.rows = rows;
    a.hidden = hidden;
    a.row_blocks = k::geluBackwardRowBlocks(rows, hidden);
    auto partial = unwritten({a.row_blocks, hidden});
    a.partial = want_bias ? partial.data_ptr<float>() : nullptr;
    a.dbias = want_bias ? dbias.data_ptr() : nullptr;
    a.tanh_approx = tanh;
    const char* error = k::geluBackward(a);
    QVERIFY2(error == nullptr, error);
    // The same fp32 formulas on the same stored inputs: bit for bit.
    QVERIFY2(torch::equal(dpre, want.dpre), describe(dpre, want.dpre).c_str());
    if (want_gelu) QVERIFY2(torch::equal(value, want.gelu), describe(value, want.gelu).c_str());
    if (want_bias)
      QVERIFY2(withinBf16(dbias, want.dbias.to(torch::kFloat)), describe(dbias, want.dbias).c_str());
  }

  void optimizerStepMatchesTheAtenPath_data() {
    QTest::addColumn<int>("numel");
    QTest::addColumn<int>("offset");  // values into each buffer's allocation: 1 and 2 are off 16 bytes
    QTest::addColumn<bool>("with_freeze");  // the last layer's own bias corrections and hold rule
    QTest::addColumn<bool>("frozen");
    QTest::addColumn<int>("teacher");  // the teacher's prefix
    // 20,011 values: five thousand vectors, several grid-stride turns of the emulated grid.
    QTest::newRow("frozen") << 20011 << 0 << true << true << 15001;
    QTest::newRow("after the freeze") << 20011 << 0 << true << false << 15001;
    QTest::newRow("no freezing, whole teacher") << 20008 << 0 << false << false << 20008;
    QTest::newRow("off 16 bytes") << 20011 << 1 << true << false << 20009;
    QTest::newRow("off 16 bytes, frozen") << 4099 << 2 << true << true << 4099;
    QTest::newRow("the tail alone") << 3 << 0 << true << false << 2;
    QTest::newRow("one value") << 1 << 0 << false << false << 1;
  }
  void optimizerStepMatchesTheAtenPath() {
    // optimizerStep's kernel (emulated, through the host code the engine calls) against its ATen
    // operations (kernelEmulation() off: the CPU takes them) from the same values.
    MST_REQUIRE_EMULATED_HOST_CODE();
    QFETCH(int, numel);
    QFETCH(int, offset);
    QFETCH(bool, with_freeze);
    QFETCH(bool, frozen);
    QFETCH(int, teacher);
    torch::manual_seed(numel + offset);
    const int64_t last_offset = 2 * (numel / 5) + 1, last_numel = std::min<int64_t>(numel - last_offset, numel / 4 + 3);
    auto p0 = torch::randn({numel}) * 0.05, g = torch::randn({numel}) * 0.01, m0 = torch::randn({numel}) * 0.005;
    auto v0 = torch::rand({numel}) * 1e-4, mask = (torch::rand({numel}) < 0.7).to(torch::kFloat);
    if (frozen) g.narrow(0, last_offset, last_numel).zero_();
    auto t0 = p0.narrow(0, 0, teacher) + 0.01 * torch::randn({teacher});
    auto schedule = torch::tensor({5e-4f, 0.05f, 0.996f, 0.04f, frozen ? 1.0f : 0.0f,
                                   float(1 - std::pow(0.9, 7)), float(1 - std::pow(0.999, 7)), 0.0f,
                                   float(1 - std::pow(0.9, 2)), float(1 - std::pow(0.999, 2))});
    // Each buffer `offset` values into its allocation, and 4 values of 7 after its end.
    auto placed = [&](const torch::Tensor& t) {
      auto whole = torch::full({offset + t.numel() + 4}, 7.0f);
      whole.narrow(0, offset, t.numel()).copy_(t);
      return whole.narrow(0, offset, t.numel());
    };
    auto buffers = [&] {
      mst::OptimizerStep s;
      s.params = placed(p0);
      s.grads = placed(g);
      s.exp_avg = placed(m0);
      s.exp_avg_sq = placed(v0);
      s.decay_mask = placed(mask);
      s.teacher = placed(t0);
      s.schedule = schedule.clone();
      s.last_offset = last_offset;
      s.last_numel = last_numel;
      s.freeze_last_layer = with_freeze;
      return s;
    };
    auto want = buffers();
    mst::optimizerStep(want, /*fused=*/false);
    auto got = buffers();
    {
      Emulated emulated;
      mst::optimizerStep(got, /*fused=*/true);
      QCOMPARE(emulated.launched(), uint64_t{1});  // the kernel, not ATen's sequence
    }
    auto rel = [](const torch::Tensor& x, const torch::Tensor& y) {
      return ((x - y).norm() / y.norm().clamp_min(1e-30)).item<double>();
    };
    for (auto [name, x, y, tolerance] :
         {std::tuple{"p", got.params, want.params, 1e-6}, std::tuple{"m", got.exp_avg, want.exp_avg, 1e-6},
          std::tuple{"v", got.exp_avg_sq, want.exp_avg_sq, 1e-6}, std::tuple{"teacher", got.teacher, want.teacher, 1e-6},
          // The step alone (~lr, where p's norm would hide an error in it).
          std::tuple{"step", got.params - p0, want.params - p0, 1e-5}}) {
      const double r = rel(x, y);
      QVERIFY2(r <= tolerance, (std::string(name) + ": relative " + std::to_string(r) + "; " + describe(x, y)).c_str());
    }
    if (with_freeze && frozen)  // held exactly, as torch::where holds it
      QVERIFY(torch::equal(got.params.narrow(0, last_offset, last_numel), p0.narrow(0, last_offset, last_numel)));
    // Nothing written past a buffer's end (the teacher's ends inside a vector of the others).
    for (const auto* t : {&got.params, &got.exp_avg, &got.exp_avg_sq, &got.teacher})
      QVERIFY(torch::equal(torch::from_blob(t->data_ptr<float>() + t->numel(), {4}), torch::full({4}, 7.0f)));
  }

  void optimizerStepRefusesBadExtents() {
    float x = 0.0f;
    k::FusedAdamwArgs a;
    a.param = a.exp_avg = a.exp_avg_sq = a.teacher = &x;
    a.grad = a.decay_mask = a.schedule = &x;
    a.numel = 1;
    a.teacher_numel = 2;  // longer than the parameters
    QVERIFY(k::fusedAdamwEma(a) != nullptr);
    a.teacher_numel = 1;
    a.last_offset = 1;
    a.last_numel = 1;  // past their end
    QVERIFY(k::fusedAdamwEma(a) != nullptr);
  }

  void augmentationMatchesItsHostTwin_data() {
    QTest::addColumn<int>("C");
    QTest::addColumn<int>("S");
    QTest::addColumn<bool>("blur");
    QTest::addColumn<int>("radius");
    // 24 px: 576 pixels, three blocks of 256 per crop (the last partly idle) and their partial
    // luminance sums, one partial 32-px blur tile; 12 px: one block. 40 px: 2 × 2 blur tiles,
    // the last 8 px wide. Radius 20 of 24: reflections far into the tile's margins. Radius 33:
    // a tile too large for 48 KiB of shared memory, so the blur takes its two-pass kernels.
    QTest::newRow("RGB 24 blur") << 3 << 24 << true << 3;
    QTest::newRow("gray 24 blur") << 1 << 24 << true << 3;
    QTest::newRow("RGB 12 no blur") << 3 << 12 << false << 3;
    QTest::newRow("RGB 40 blur, 4 tiles") << 3 << 40 << true << 3;
    QTest::newRow("gray 24 blur, radius 20") << 1 << 24 << true << 20;
    QTest::newRow("RGB 64 blur, 4 whole tiles, radius 9") << 3 << 64 << true << 9;
    QTest::newRow("RGB 40 blur, radius 31 (the largest tile)") << 3 << 40 << true << 31;
    QTest::newRow("RGB 40 blur, radius 32 (two passes)") << 3 << 40 << true << 32;
  }
  void augmentationMatchesItsHostTwin() {
    // The kernels against augment_reference.cpp's loops over the same arguments (which
    // test_gpu's fusedAugmentArithmeticMatchesAten compares with MultiCrop's ATen operations).
    QFETCH(int, C);
    QFETCH(int, S);
    QFETCH(bool, blur);
    QFETCH(int, radius);
    torch::manual_seed(C * 100 + S + radius);
    const int64_t R = 7, Bsrc = 3;
    const int H = 40, W = 36;
    QCOMPARE(k::augmentBlurTakesTwoPasses(radius), radius > 31);
    auto src = torch::rand({Bsrc, C, H, W});
    // Crops from a third of the image to more than all of it (reflection padding), some flipped.
    auto sc = torch::rand({R}) * 1.1 + 0.3;
    auto flip = (torch::rand({R}) < 0.5).to(torch::kFloat) * 2 - 1;
    auto theta = torch::zeros({R, 2, 3});
    theta.select(1, 0).select(1, 0).copy_(sc * flip);
    theta.select(1, 1).select(1, 1).copy_(sc);
    theta.select(1, 0).select(1, 2).copy_(torch::rand({R}) * 0.8 - 0.4);
    theta.select(1, 1).select(1, 2).copy_(torch::rand({R}) * 0.8 - 0.4);
    auto jitter = torch::rand({R}) < 0.7, gray = torch::rand({R}) < 0.4,
         solarize = torch::rand({R}) < 0.4;
    // Every kind of row at least once: grayscale without jitter (row 0, blurred: row 1 below),
    // neither (row 2), jitter alone (row 3), blurred and solarised (row 1).
    jitter[0] = false, gray[0] = true;
    jitter[1] = false, solarize[1] = true;
    jitter[2] = false, gray[2] = false;
    jitter[3] = true, gray[3] = false;
    auto factor = [&] { return torch::rand({R}) * 0.8 + 0.6; };
    auto brightness = factor(), contrast = factor(), saturation = factor();
    auto hue = torch::rand({R}) * 0.2 - 0.1;
    auto taps = torch::exp(-torch::arange(-radius, radius + 1).to(torch::kFloat).pow(2).unsqueeze(0) /
                           (2 * (torch::rand({R, 1}) * 1.5 + 0.5).pow(2)));
    taps = taps / taps.sum(1, true);
    // Rows the blur was not drawn for get the identity taps, as MultiCrop gives them (the kernels
    // skip those rows; the host twin convolves them).
    auto identity = torch::zeros({1, 2 * radius + 1});
    identity[0][radius] = 1.0f;
    auto skip = torch::rand({R, 1}) < 0.4;
    skip[0][0] = true;  // (at least one row of each kind)
    skip[1][0] = false;
    skip[2][0] = false;
    taps = torch::where(skip, identity, taps).contiguous();
    auto mean = torch::rand({C}) * 0.2 + 0.4, std = torch::rand({C}) * 0.2 + 0.2;
    auto run = [&](bool emulated) {
      auto work = torch::full({R, C, S, S}, std::nanf("")), work2 = torch::full({R, C, S, S}, std::nanf(""));
      auto partial = torch::full({R, k::augmentPartialStride(S)}, std::nanf(""));
      auto out = torch::full({R, C, S, S}, std::nanf(""));
      k::AugmentArgs a;
      a.src = src.data_ptr<float>();
      a.src_rows = Bsrc;
      a.C = C;
      a.H = H;
      a.W = W;
      a.rows = R;
      a.S = S;
      a.theta = theta.data_ptr<float>();
      a.jitter = jitter.data_ptr<bool>();
      a.brightness = brightness.data_ptr<float>();
      a.contrast = contrast.data_ptr<float>();
      a.saturation = saturation.data_ptr<float>();
      a.hue = hue.data_ptr<float>();
      a.gray = gray.data_ptr<bool>();
      a.blur = blur ? taps.data_ptr<float>() : nullptr;
      a.radius = radius;
      a.solarize = solarize.data_ptr<bool>();
      a.mean = mean.data_ptr<float>();
      a.std = std.data_ptr<float>();
      a.work = work.data_ptr<float>();
      a.work2 = work2.data_ptr<float>();
      a.partial = partial.data_ptr<float>();
      a.out = out.data_ptr<float>();
      const char* error = emulated ? k::augmentCrops(a) : k::augmentCropsOnHost(a);
      return std::make_pair(out, std::string(error == nullptr ? "" : error));
    };
    auto [want, want_error] = run(false);
    auto [got, got_error] = run(true);
    QCOMPARE(QString::fromStdString(got_error), QString::fromStdString(want_error));
    QVERIFY(!want.isnan().any().item<bool>());
    QVERIFY2(torch::allclose(got, want, 1e-5, 1e-6), describe(got, want).c_str());
    // Rows without colour jitter read no luminance sum, whose order differs (a tree in the
    // kernels): there the kernels and the host twin add the same products in the same order,
    // both compiled for this CPU by the same compiler with the same flags (no -march: neither
    // contracts products into fused multiply-adds), so they agree bit for bit. (A blur
    // that summed its taps in another order, or a tile that skipped the horizontal pass for a
    // margin row, would differ here in the last bit.)
    auto plain = (~jitter).nonzero().squeeze(1);
    QVERIFY(plain.numel() >= 3);
    QVERIFY2(torch::equal(got.index_select(0, plain), want.index_select(0, plain)),
             describe(got.index_select(0, plain), want.index_select(0, plain)).c_str());
  }

  void augmentationRejectsARadiusOfTheCropSide() {
    // Reflection reaches at most one crop side back: a radius of S or more is an error, from the
    // kernels and the host twin alike, before anything runs.
    float taps[17] = {};
    k::AugmentArgs a;
    a.C = 3;
    a.rows = 1;
    a.S = 8;
    a.blur = taps;
    a.radius = 7;
    QVERIFY(k::augmentArgsError(a) == nullptr);
    a.radius = 8;
    QVERIFY(k::augmentArgsError(a) != nullptr);
    QVERIFY(k::augmentCrops(a) != nullptr);
    QVERIFY(k::augmentCropsOnHost(a) != nullptr);
    a.blur = nullptr;  // (no blur: the radius is not read)
    QVERIFY(k::augmentArgsError(a) == nullptr);
  }

  void decoderStageMatchesTheAtenPath_data() {
    QTest::addColumn<bool>("bf16");
    QTest::addColumn<int>("C");
    QTest::addColumn<int>("B");
    QTest::addColumn<int>("H");
    QTest::addColumn<int>("W");
    QTest::addColumn<double>("beta");  // β's mean: −2 cuts most outputs at ReLU
    // Lanes per pixel (C · element size / 16 bytes): 1 to 32, so every shuffle distance occurs.
    QTest::newRow("bf16 C32 (4 lanes)") << true << 32 << 3 << 9 << 7 << 0.0;
    QTest::newRow("bf16 C64 (8 lanes)") << true << 64 << 2 << 5 << 6 << 0.0;
    QTest::newRow("bf16 C128 (16 lanes)") << true << 128 << 2 << 4 << 3 << 0.0;
    QTest::newRow("bf16 C256 (32 lanes)") << true << 256 << 2 << 3 << 4 << 0.0;
    QTest::newRow("bf16 C8 (1 lane)") << true << 8 << 2 << 12 << 13 << 0.0;
    QTest::newRow("bf16 C32, ReLU cuts most") << true << 32 << 2 << 8 << 8 << -2.0;
    QTest::newRow("fp32 C32 (8 lanes)") << false << 32 << 3 << 9 << 7 << 0.0;
    QTest::newRow("fp32 C128 (32 lanes)") << false << 128 << 2 << 3 << 4 << 0.0;
    QTest::newRow("fp32 C8 (2 lanes)") << false << 8 << 2 << 6 << 5 << 0.5;
  }
  void decoderStageMatchesTheAtenPath() {
    // The decoder stage's four passes against the phase gather + BatchNorm (training) + ReLU of
    // ATen in double, from the same stored values: output, running statistics, and the
    // gradients of y, γ and β.
    QFETCH(bool, bf16);
    QFETCH(int, C);
    QFETCH(int, B);
    QFETCH(int, H);
    QFETCH(int, W);
    QFETCH(double, beta);
    torch::manual_seed(C * 1000 + H * 10 + W);
    const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
    const double momentum = 0.1, eps = 1e-5;
    auto y = (torch::randn({B, 4 * C, H + 1, W + 1}) * 1.5 + 0.3).to(dtype)
                 .contiguous(at::MemoryFormat::ChannelsLast);
    auto g = torch::randn({B, C, 2 * H, 2 * W}).to(dtype).contiguous(at::MemoryFormat::ChannelsLast);
    auto gamma = 1 + 0.2 * torch::randn({C}), bias = beta + 0.2 * torch::randn({C});
    auto rmean = 0.1 * torch::randn({C}), rvar = 1 + 0.1 * torch::rand({C});
    // ATen, in double.
    auto yd = y.to(torch::kDouble).requires_grad_(true);
    auto gd = gamma.to(torch::kDouble).requires_grad_(true), bd = bias.to(torch::kDouble).requires_grad_(true);
    auto rmd = rmean.to(torch::kDouble), rvd = rvar.to(torch::kDouble);
    auto want = torch::relu(torch::batch_norm(mst::phaseGather(yd, C), gd, bd, rmd, rvd,
                                              /*training=*/true, momentum, eps, false));
    want.backward(g.to(torch::kDouble));
    // The kernels.
    QVERIFY(k::decoderNormSupports(C, bf16));
    auto out = unwritten({B, C, 2 * H, 2 * W}, dtype).contiguous(at::MemoryFormat::ChannelsLast);
    auto dy = unwritten({B, 4 * C, H + 1, W + 1}, dtype).contiguous(at::MemoryFormat::ChannelsLast);
    auto mean = unwritten({C}), invstd = unwritten({C}), dgamma = unwritten({C}), dbeta = unwritten({C});
    auto rm = rmean.clone(), rv = rvar.clone();
    k::DecoderNormArgs a;
    a.batch = B;
    a.height = H;
    a.width = W;
    a.channels = C;
    a.bf16 = bf16;
    a.momentum = momentum;
    a.eps = eps;
    a.blocks = k::decoderNormBlocks(B, H, W, C, bf16);
    auto partial = torch::full({a.blocks, 2 * C}, std::nan(""), torch::TensorOptions().dtype(torch::kDouble));
    a.y = y.data_ptr();
    a.out = out.data_ptr();
    a.dout = g.data_ptr();
    a.dy = dy.data_ptr();
    a.gamma = gamma.data_ptr<float>();
    a.beta = bias.data_ptr<float>();
    a.mean = mean.data_ptr<float>();
    a.invstd = invstd.data_ptr<float>();
    a.running_mean = rm.data_ptr<float>();
    a.running_var = rv.data_ptr<float>();
    a.dgamma = dgamma.data_ptr<float>();
    a.dbeta = dbeta.data_ptr<float>();
    a.partial = partial.data_ptr<double>();
    const char* error = k::decoderNormForward(a);
    QVERIFY2(error == nullptr, error);
    error = k::decoderNormBackward(a);
    QVERIFY2(error == nullptr, error);
    QVERIFY(a.blocks > 1);  // several blocks' partial sums meet in the finishing kernels
    auto close = [&](const torch::Tensor& got, const torch::Tensor& ref, double rel) {
      return torch::allclose(got.to(torch::kDouble), ref, rel, rel * ref.abs().max().item<double>());
    };
    if (bf16) {
      QVERIFY2(withinBf16(out, want.detach()), describe(out, want.detach()).c_str());
      QVERIFY2(withinBf16(dy, yd.grad(), 1, 2e-3), describe(dy, yd.grad()).c_str());
    } else {
      QVERIFY2(close(out, want.detach(), 1e-5), describe(out, want.detach()).c_str());
      QVERIFY2(close(dy, yd.grad(), 1e-4), describe(dy, yd.grad()).c_str());
    }
    QVERIFY2(close(rm, rmd, 1e-6), describe(rm, rmd).c_str());
    QVERIFY2(close(rv, rvd, 1e-6), describe(rv, rvd).c_str());
    QVERIFY2(close(dgamma, gd.grad(), 1e-5), describe(dgamma, gd.grad()).c_str());
    QVERIFY2(close(dbeta, bd.grad(), 1e-5), describe(dbeta, bd.grad()).c_str());
    // Every element of dy is written, and exactly zero where no output pixel reads y: phase
    // (a, b) (channel block 2a + b) reads window rows a .. H − 1 + a and columns b .. W − 1 + b.
    QVERIFY(!dy.isnan().any().item<bool>());
    for (int a_ = 0; a_ < 2; ++a_)
      for (int b_ = 0; b_ < 2; ++b_) {
        auto block = dy.narrow(1, (2 * a_ + b_) * C, C);
        QVERIFY(block.select(2, a_ == 0 ? H : 0).eq(0).all().item<bool>());
        QVERIFY(block.select(3, b_ == 0 ? W : 0).eq(0).all().item<bool>());
        QVERIFY(block.narrow(2, a_, H).narrow(3, b_, W).ne(0).any().item<bool>());
      }
  }

  // ---- The host code: the public functions the model calls, kernels (emulated) against ATen.

  void hostCodeRunsTheJunction_data() {
    QTest::addColumn<bool>("bf16_stream");
    QTest::addColumn<int>("D");
    QTest::addColumn<bool>("branch");
    QTest::addColumn<bool>("bias");
    QTest::addColumn<bool>("scale");
    QTest::newRow("fp32 stream, DeiT-S width, all operands") << false << 384 << true << true << true;
    QTest::newRow("bf16 stream, 96, no bias") << true << 96 << true << false << true;
    QTest::newRow("fp32 stream, 96, no branch (first norm)") << false << 96 << false << false << false;
    QTest::newRow("bf16 stream, 64, bias, no scale") << true << 64 << true << true << false;
  }
  void hostCodeRunsTheJunction() {
    // residualLayerNorm as the fused ViT blocks call it, through ResidualNormFunction's kernel
    // branch, against its ATen branch on the same operands: the stream, the normalised copy and
    // every gradient, with a non-contiguous stream and an unused y gradient in the mix.
    MST_REQUIRE_EMULATED_HOST_CODE();
    QFETCH(bool, bf16_stream);
    QFETCH(int, D);
    QFETCH(bool, branch);
    QFETCH(bool, bias);
    QFETCH(bool, scale);
    torch::manual_seed(D + 3 * branch + 5 * bias);
    const int64_t B = 3, T = 21;
    const auto stream_dtype = bf16_stream ? torch::kBFloat16 : torch::kFloat;
    // A transposed view: the host code makes it contiguous for the kernels.
    auto x = torch::randn({T, B, D}).to(stream_dtype).transpose(0, 1);
    auto br = branch ? randomBf16({B, T, D}) : torch::Tensor();
    auto b = bias ? torch::randn({D}) * 0.5 : torch::Tensor();
    auto s = scale ? torch::tensor({0.0f, 1.25f, 1.0f / 0.9f}) : torch::Tensor();
    auto gamma = 1 + 0.3 * torch::randn({D}), beta = 0.2 * torch::randn({D});
    auto gz = randomBf16({B, T, D});
    auto gy = torch::randn({B, T, D}).to(stream_dtype);
    struct Result {
      torch::Tensor y, z, dx, dbranch, dbias, dgamma, dbeta;
    };
    auto run = [&] {
      auto lx = leafOf(x), lbr = leafOf(br), lb = leafOf(b), lg = leafOf(gamma), lbeta = leafOf(beta);
      auto out = mst::residualLayerNorm(lx, lbr, lb, s, lg, lbeta, 1e-6, torch::kBFloat16);
      std::vector<torch::Tensor> outs{out.z}, grads{gz};
      if (branch) outs.push_back(out.y), grads.push_back(gy);
      torch::autograd::backward(outs, grads);
      return Result{out.y.detach(), out.z.detach(), lx.grad(),
                    branch ? lbr.grad() : torch::Tensor(), bias ? lb.grad() : torch::Tensor(),
                    lg.grad(), lbeta.grad()};
    };
    const Result want = run();
    Result got;
    {
      Emulated emulated;
      QVERIFY(mst::fusedNormApplies(x, torch::kBFloat16, torch::kBFloat16));
      const auto fallbacks = mst::kernelFallbacks();
      got = run();
      QVERIFY2(emulated.launched() >= 3, "the junction's kernels did not run");
      QVERIFY(mst::kernelFallbacks() == fallbacks);
      // An fp32 branch is none the kernels take: ATen runs it, and the fallback is counted.
      if (branch) {
        mst::residualLayerNorm(x, br.to(torch::kFloat), b, s, gamma, beta, 1e-6, torch::kBFloat16);
        QCOMPARE(mst::kernelFallbacks()["junction"], fallbacks.count("junction") ? fallbacks.at("junction") + 1 : 1);
      }
    }
    QVERIFY(!mst::fusedNormApplies(x, torch::kBFloat16, torch::kBFloat16));
    QVERIFY2(torch::equal(got.y, want.y), describe(got.y, want.y).c_str());
    QCOMPARE(got.z.scalar_type(), torch::kBFloat16);
    QVERIFY2(withinBf16(got.z, want.z), describe(got.z, want.z).c_str());
    QCOMPARE(got.dx.scalar_type(), stream_dtype);
    if (bf16_stream)
      QVERIFY2(withinBf16(got.dx, want.dx, 1, 2e-3), describe(got.dx, want.dx).c_str());
    else
      QVERIFY2(torch::allclose(got.dx, want.dx, 1e-4, 1e-5), describe(got.dx, want.dx).c_str());
    if (branch) {
      QCOMPARE(got.dbranch.scalar_type(), torch::kBFloat16);
      QVERIFY2(withinBf16(got.dbranch, want.dbranch, 1, 2e-3), describe(got.dbranch, want.dbranch).c_str());
    }
    QVERIFY2(torch::allclose(got.dgamma, want.dgamma, 1e-4, 1e-4), describe(got.dgamma, want.dgamma).c_str());
    QVERIFY2(torch::allclose(got.dbeta, want.dbeta, 1e-4, 1e-4), describe(got.dbeta, want.dbeta).c_str());
    if (bias) {
      QCOMPARE(got.dbias.scalar_type(), torch::kFloat);
      QVERIFY2(torch::allclose(got.dbias, want.dbias, 1e-4, 1e-4), describe(got.dbias, want.dbias).c_str());
    }
  }

  void hostCodeRunsTheQkvGather() {
    // qkvHeads on a bf16 projection (what autocast hands it on the GPU): the backward pass's
    // gather kernel against the stack + sum, through attention-like use of q, k and v (their
    // gradients in the layouts the attention leaves), and with v unused.
    MST_REQUIRE_EMULATED_HOST_CODE();
    torch::manual_seed(11);
    const int64_t B = 2, T = 13, heads = 3, d = 16, in = 40;
    torch::nn::Linear fc(torch::nn::LinearOptions(in, 3 * heads * d));
    fc->to(torch::kBFloat16);
    auto x = randomBf16({B, T, in});
    auto upstream = randomBf16({B, heads, T, d});
    for (bool use_v : {true, false}) {
      auto run = [&] {
        fc->zero_grad();
        auto lx = leafOf(x);
        auto qkv = mst::qkvHeads(lx, *fc, heads);
        // Scores as a broadcast product, so that k's gradient keeps its channels contiguous, as
        // the attention kernels leave it (a transposed one would send the gather to ATen).
        auto q = qkv[0].to(torch::kFloat), k_ = qkv[1].to(torch::kFloat), v = qkv[2].to(torch::kFloat);
        auto att = torch::softmax((q.unsqueeze(3) * k_.unsqueeze(2)).sum(-1) * 0.25, -1);
        auto y = use_v ? att.matmul(v) : att.sum(-1, true) * q;
        (y * upstream.to(torch::kFloat)).sum().backward();
        return std::vector<torch::Tensor>{lx.grad(), fc->weight.grad().clone(), fc->bias.grad().clone()};
      };
      const auto want = run();
      std::vector<torch::Tensor> got;
      {
        Emulated emulated;
        const int64_t fallbacks = mst::kernelFallbacks()["qkv_gather"];
        got = run();
        QVERIFY2(emulated.launched() >= 1, "the gather kernel did not run");
        QCOMPARE(mst::kernelFallbacks()["qkv_gather"], fallbacks);
        // Gradients the kernel cannot take (k's transposed, as a matmul leaves it) are stacked
        // by ATen, and counted.
        auto lx = leafOf(x);
        auto qkv = mst::qkvHeads(lx, *fc, heads);
        (qkv[0].to(torch::kFloat).matmul(qkv[1].to(torch::kFloat).transpose(-2, -1)).sum() +
         qkv[2].to(torch::kFloat).sum()).backward();
        QCOMPARE(mst::kernelFallbacks()["qkv_gather"], fallbacks + 1);
      }
      const char* names[] = {"x", "weight", "bias"};
      for (int i = 0; i < 3; ++i) {
        QCOMPARE(got[i].scalar_type(), want[i].scalar_type());
        QVERIFY2(withinBf16(got[i], want[i], 2, 1e-2),
                 (std::string(names[i]) + (use_v ? "" : " (v unused)") + ": " + describe(got[i], want[i])).c_str());
      }
    }
  }

  void hostCodeRunsTheDistillationLoss() {
    // fusedDistillationLoss from bf16 and fp32 logits, kernels against its ATen branch: the
    // loss and the logits' gradient under an upstream factor.
    MST_REQUIRE_EMULATED_HOST_CODE();
    for (bool bf16 : {true, false}) {
      torch::manual_seed(bf16 ? 5 : 6);
      const int64_t B = 4, S = 5, K = 256;
      auto student = (torch::randn({S * B, K}) * 3).to(bf16 ? torch::kBFloat16 : torch::kFloat);
      auto teacher = torch::softmax(torch::randn({2 * B, K}) * 2, -1);
      auto run = [&] {
        auto ls = leafOf(student);
        auto loss = mst::fusedDistillationLoss(ls, teacher, 0.1);
        (loss * 0.7).backward();
        return std::pair{loss.detach(), ls.grad()};
      };
      const auto want = run();
      std::pair<torch::Tensor, torch::Tensor> got;
      {
        Emulated emulated;
        QVERIFY(mst::fusedDistillationApplies(student, teacher));
        got = run();
        QVERIFY2(emulated.launched() >= 3, "the loss kernels did not run");  // 2 forward, 1 backward
      }
      QVERIFY2(torch::allclose(got.first, want.first, 1e-5, 0), describe(got.first, want.first).c_str());
      QCOMPARE(got.second.scalar_type(), student.scalar_type());
      if (bf16) {
        QVERIFY2(withinBf16(got.second, want.second, 2, 1e-5), describe(got.second, want.second).c_str());
      } else {
        const double scale = want.second.abs().max().item<double>();
        QVERIFY2(torch::allclose(got.second, want.second, 1e-4, 1e-7 * scale),
                 describe(got.second, want.second).c_str());
      }
    }
  }

  void hostCodeRunsTheGeluBackward() {
    // geluBackward as the fused MLP calls it, every combination of outputs, kernels against the
    // kernel's arithmetic as a plain loop (geluBackwardReference, which test_model checks
    // against ATen in double: ATen's own bf16 GELU on the CPU rounds its intermediates).
    MST_REQUIRE_EMULATED_HOST_CODE();
    torch::manual_seed(21);
    auto pre = randomBf16({37, 48}), dgelu = randomBf16({37, 48});
    for (const std::string approximate : {"none", "tanh"})
      for (bool want_gelu : {true, false})
        for (bool want_bias : {true, false}) {
          const auto want = mst::geluBackwardReference(dgelu, pre, approximate, want_gelu, want_bias);
          mst::GeluBackwardOut got;
          {
            Emulated emulated;
            QVERIFY(mst::geluBackwardKernelApplies(pre));
            got = mst::geluBackward(dgelu, pre, approximate, want_gelu, want_bias);
            QVERIFY2(emulated.launched() >= 1, "the GELU kernel did not run");
          }
          const std::string what = approximate + (want_gelu ? " +gelu" : "") + (want_bias ? " +bias" : "");
          QVERIFY2(withinBf16(got.dpre, want.dpre, 1, 1e-3), (what + ": " + describe(got.dpre, want.dpre)).c_str());
          // The same fp32 arithmetic from the same inputs, rounded once: equal but for the odd
          // last bit (the other approximation, ~1e-3 away, would change about a fifth of them).
          const double equal = got.dpre.eq(want.dpre).to(torch::kDouble).mean().item<double>();
          QVERIFY2(equal >= 0.99, (what + ": " + std::to_string(equal) + " of dpre equal").c_str());
          QCOMPARE(got.gelu.defined(), want_gelu);
          QCOMPARE(got.dbias.defined(), want_bias);
          if (want_gelu) QVERIFY2(withinBf16(got.gelu, want.gelu, 1, 1e-3), (what + ": " + describe(got.gelu, want.gelu)).c_str());
          if (want_bias)
            QVERIFY2(torch::allclose(got.dbias.to(torch::kFloat), want.dbias.to(torch::kFloat), 1e-2, 1e-2),
                     (what + ": " + describe(got.dbias, want.dbias)).c_str());
        }
  }

  void hostCodeRunsTheDecoderStage() {
    // decoderNorm on a BatchNorm module in training, kernels against the ATen phase gather +
    // batch_norm + ReLU: output, running statistics, batches tracked, and the gradients of y,
    // γ and β, for bf16 and fp32 channels-last inputs.
    MST_REQUIRE_EMULATED_HOST_CODE();
    for (bool bf16 : {true, false}) {
      torch::manual_seed(bf16 ? 31 : 32);
      const int64_t B = 2, C = 8, H = 5, W = 6;
      const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
      auto y = (torch::randn({B, 4 * C, H + 1, W + 1}) + 0.4).to(dtype).contiguous(at::MemoryFormat::ChannelsLast);
      auto g = torch::randn({B, C, 2 * H, 2 * W}).to(dtype);
      struct Result {
        torch::Tensor out, dy, dgamma, dbeta, rmean, rvar, tracked;
      };
      auto run = [&] {
        torch::manual_seed(77);  // the same γ and β
        torch::nn::BatchNorm2d bn(C);
        bn->weight.data().uniform_(0.5, 1.5);
        bn->bias.data().uniform_(-0.3, 0.3);
        bn->train();
        auto ly = leafOf(y);
        torch::Tensor out;
        if (mst::decoderNormApplies(ly, C, *bn))
          out = mst::decoderNorm(ly, C, *bn);
        else
          out = torch::relu(bn->forward(mst::phaseGather(ly, C).to(torch::kFloat))).to(dtype);
        out.backward(g);
        return Result{out.detach(), ly.grad(), bn->weight.grad(), bn->bias.grad(),
                      bn->running_mean.clone(), bn->running_var.clone(), bn->num_batches_tracked.clone()};
      };
      const auto want = run();
      Result got;
      {
        Emulated emulated;
        got = run();
        QVERIFY2(emulated.launched() >= 4, "the decoder kernels did not run");
      }
      const std::string what = bf16 ? "bf16: " : "fp32: ";
      QCOMPARE(got.out.scalar_type(), dtype);
      QVERIFY(got.out.is_contiguous(at::MemoryFormat::ChannelsLast));
      auto close = [](const torch::Tensor& a, const torch::Tensor& b, double rel) {
        auto a64 = a.to(torch::kDouble), b64 = b.to(torch::kDouble);
        return torch::allclose(a64, b64, rel, rel * b64.abs().max().item<double>());
      };
      if (bf16) {
        QVERIFY2(withinBf16(got.out, want.out, 1, 1e-2), (what + describe(got.out, want.out)).c_str());
        QVERIFY2(withinBf16(got.dy, want.dy, 2, 1e-2), (what + describe(got.dy, want.dy)).c_str());
      } else {
        QVERIFY2(close(got.out, want.out, 1e-5), (what + describe(got.out, want.out)).c_str());
        QVERIFY2(close(got.dy, want.dy, 1e-4), (what + describe(got.dy, want.dy)).c_str());
      }
      QVERIFY2(close(got.dgamma, want.dgamma, bf16 ? 2e-2 : 1e-4), (what + describe(got.dgamma, want.dgamma)).c_str());
      QVERIFY2(close(got.dbeta, want.dbeta, bf16 ? 2e-2 : 1e-4), (what + describe(got.dbeta, want.dbeta)).c_str());
      QVERIFY2(close(got.rmean, want.rmean, 1e-4), (what + describe(got.rmean, want.rmean)).c_str());
      QVERIFY2(close(got.rvar, want.rvar, 1e-4), (what + describe(got.rvar, want.rvar)).c_str());
      QVERIFY(torch::equal(got.tracked, want.tracked));
    }
  }

  void hostCodeRunsTheDecoder() {
    // The whole decoder with train.fused_decoder (the CUDA build's channels-last layout, each
    // upsampling stage's gather + BatchNorm + ReLU through decoderNorm) against the ATen
    // decoder in NCHW: the image, every parameter's gradient and the running statistics, fp32.
    MST_REQUIRE_EMULATED_HOST_CODE();
    mst::ModelConfig c;
    c.dim = 48;
    c.patch_size = 8;  // three upsampling stages: 256, 128, 64 channels
    c.decoder_widths = {32, 16, 8};
    c.channels = 3;
    const int64_t B = 2, g = 3;
    torch::manual_seed(41);
    auto patches = torch::randn({B, g * g, c.dim});
    auto upstream = torch::randn({B, c.channels, g * c.patch_size, g * c.patch_size});
    struct Result {
      torch::Tensor image;
      std::vector<torch::Tensor> grads, buffers;
    };
    auto run = [&](bool fused) {
      torch::manual_seed(42);  // the same parameters
      mst::Decoder decoder(c);
      decoder->fused_stages = fused;
      decoder->train();
      auto lp = leafOf(patches);
      auto image = decoder->forward(lp);
      image.backward(upstream);
      // Both stages after an upsampling, through the kernels where they are on.
      if (decoder->norm_stages_last != 2 || decoder->fused_stages_last != (fused ? 2 : 0))
        throw std::runtime_error("fused stages: " + std::to_string(decoder->fused_stages_last) +
                                 " of " + std::to_string(decoder->norm_stages_last));
      Result r{image.detach(), {lp.grad()}, {}};
      for (const auto& p : decoder->parameters()) r.grads.push_back(p.grad());
      for (const auto& b : decoder->buffers()) r.buffers.push_back(b.clone());
      return r;
    };
    const auto want = run(false);
    Result got;
    {
      Emulated emulated;
      got = run(true);
      // Two launches forward and two backward for each of the two stages after an upsampling.
      QVERIFY2(emulated.launched() >= 8, std::to_string(emulated.launched()).c_str());
    }
    auto close = [](const torch::Tensor& a, const torch::Tensor& b, double rel) {
      auto a64 = a.to(torch::kDouble), b64 = b.to(torch::kDouble);
      return torch::allclose(a64, b64, rel, rel * b64.abs().max().item<double>() + 1e-12);
    };
    QCOMPARE(got.image.sizes(), want.image.sizes());
    QVERIFY2(close(got.image, want.image, 1e-4), describe(got.image, want.image).c_str());
    QCOMPARE(got.grads.size(), want.grads.size());
    for (size_t i = 0; i < want.grads.size(); ++i)
      QVERIFY2(close(got.grads[i], want.grads[i], 1e-3),
               ("gradient " + std::to_string(i) + ": " + describe(got.grads[i], want.grads[i])).c_str());
    QCOMPARE(got.buffers.size(), want.buffers.size());
    for (size_t i = 0; i < want.buffers.size(); ++i)
      QVERIFY2(close(got.buffers[i], want.buffers[i], 1e-5),
               ("buffer " + std::to_string(i) + ": " + describe(got.buffers[i], want.buffers[i])).c_str());
  }

  void hostCodeRunsTheTrainingStep() {
    // Whole training steps of `mst gpucheck`'s small network in fp32, with every kernel family
    // that takes fp32 on (the augmentation, the distillation loss, the decoder stages, the
    // optimiser's step; the junctions need the bf16 operands of CUDA autocast) against the plain
    // ATen engine: the losses of three steps, as cpu_vs_cuda_fp32_fused_* compare them on the
    // GPU, and the weights they leave.
    MST_REQUIRE_EMULATED_HOST_CODE();
    auto config = mst::gpuCheckConfig();
    config.train.cuda_graph = false;
    config.train.recompute_gelu = "off";
    // The last layer frozen for the first two steps (of 100 an epoch), then on its own bias
    // corrections: every rule of the optimiser's step.
    config.optim.freeze_last_layer_epochs = 0.02;
    auto options = [](const mst::Config& c) { return mst::checkOptions(c, torch::kCPU); };
    auto images = [&](int64_t step) { return mst::checkImages(config, step); };
    const int steps = 3;
    std::vector<mst::StepMetrics> plain;
    torch::Tensor initial, plain_student, plain_teacher;
    {
      torch::manual_seed(3);
      mst::Engine engine(config, options(config));
      QVERIFY(!engine.fusedLoss() && !engine.fusedDecoder() && !engine.fusedAugment() && !engine.fusedOptimizer());
      initial = engine.student.values().clone();
      for (int i = 0; i < steps; ++i) plain.push_back(engine.trainStep(images(i)));
      plain_student = engine.student.values().clone();
      plain_teacher = engine.teacher.values().clone();
    }
    auto fused_config = config;
    fused_config.train.fused_augment = fused_config.train.fused_loss = fused_config.train.fused_decoder = "on";
    fused_config.train.fused_optimizer = "on";
    Emulated emulated;
    {
      // auto (the default) turns every family on that passes its self-check, and notes none.
      auto automatic_config = config;
      automatic_config.train.fused_augment = automatic_config.train.fused_loss = "auto";
      automatic_config.train.fused_decoder = automatic_config.train.fused_optimizer = "auto";
      mst::Engine automatic(automatic_config, options(automatic_config));
      std::string notes;
      for (const auto& n : automatic.kernelNotes()) notes += n + "\n";
      QVERIFY2(notes.empty(), notes.c_str());
      QVERIFY(automatic.fusedLoss() && automatic.fusedDecoder() && automatic.fusedAugment() &&
              automatic.fusedOptimizer());
    }
    torch::manual_seed(3);
    mst::Engine engine(fused_config, options(fused_config));
    QVERIFY(engine.fusedLoss() && engine.fusedDecoder() && engine.fusedAugment() && engine.fusedOptimizer());
    const auto fallbacks = mst::kernelFallbacks();
    uint64_t before = emulated.launched();
    for (int i = 0; i < steps; ++i) {
      const auto m = engine.trainStep(images(i));
      QCOMPARE(engine.decoder->fused_stages_last, engine.decoder->norm_stages_last);
      QVERIFY(mst::kernelFallbacks() == fallbacks);  // every call through the kernels
      QVERIFY(engine.decoder->norm_stages_last >= 1);
      // Each step launches the augmentation (at least one per crop set: 3), the distillation
      // loss (2 + 1), the reconstruction loss (2 + 1), the decoder stage after the first
      // upsampling (4) and the optimiser's step (1): a family left to ATen at run time shows here.
      QVERIFY2(emulated.launched() - before >= 14, std::to_string(emulated.launched() - before).c_str());
      before = emulated.launched();
      for (auto [name, got, want] : {std::tuple{"loss", m.loss, plain[i].loss},
                                     std::tuple{"loss_ce", m.loss_ce, plain[i].loss_ce},
                                     std::tuple{"loss_rec", m.loss_rec, plain[i].loss_rec}}) {
        const double g = got.item<double>(), w = want.item<double>();
        QVERIFY2(std::abs(g - w) <= 1e-4 * std::abs(w),
                 ("step " + std::to_string(i) + " " + name + ": " + std::to_string(g) + " against " +
                  std::to_string(w)).c_str());
      }
    }
    // What the steps did to the weights, against the plain engine's changes (0.3 % apart: the
    // other families' roundings reach the gradients, whose small values Adam's normalisation
    // magnifies): the last layer held, then on its own bias corrections (a third larger steps
    // there than with the others'), the teacher's EMA over the right prefix.
    const auto teacher_initial = initial.narrow(0, 0, plain_teacher.numel());
    for (auto [name, got, want, from] :
         {std::tuple{"student", engine.student.values(), plain_student, initial},
          std::tuple{"teacher", engine.teacher.values(), plain_teacher, teacher_initial}}) {
      const double r = ((got - want).norm() / (want - from).norm()).item<double>();
      QVERIFY2(r <= 1e-2, (std::string(name) + ": the change differs by " + std::to_string(r)).c_str());
    }
  }

  void selfChecksPassAtTheRunsShapes_data() {
    QTest::addColumn<QString>("preset");
    QTest::addColumn<bool>("bf16_stream");
    QTest::addColumn<int>("local_crops");
    QTest::newRow("gpucheck's network, fp32 stream") << "" << false << 3;
    QTest::newRow("gpucheck's network, bf16 stream, 7 local crops") << "" << true << 7;
    QTest::newRow("DeiT-S/16, the paper's crops") << "deit_s16" << false << 10;
  }
  void selfChecksPassAtTheRunsShapes() {
    // Every kernel family's self-check at a run's own shapes (the engine runs them before its
    // first step), through the emulated kernels: each passes, and the kernels took every case's
    // operands (a width they declined would be compared ATen against ATen).
    MST_REQUIRE_EMULATED_HOST_CODE();
    QFETCH(QString, preset);
    QFETCH(bool, bf16_stream);
    QFETCH(int, local_crops);
    auto config = mst::gpuCheckConfig();
    config.crops.local_crops = local_crops;
    if (!preset.isEmpty()) {
      config.model = mst::modelPreset(preset.toStdString());
      config.crops.global_size = 224;
      config.crops.local_size = 96;
      config.model.out_dim = 65536;
    }
    Emulated emulated;
    const auto launched_before = emulated.launched();
    for (const char* family :
         {"junction", "qkv_gather", "embed", "gelu_backward", "decoder_stage", "loss", "reconstruction",
          "optimizer", "augment"}) {
      const auto r = mst::selfCheckKernels(family, config, torch::kCPU, true, bf16_stream);
      QVERIFY2(r.passed, (std::string(family) + ": " + r.detail).c_str());
      QVERIFY2(r.total > 0 && r.ran == r.total,
               (std::string(family) + ": the kernels took " + std::to_string(r.ran) + " of " +
                std::to_string(r.total) + " cases").c_str());
      // Asked again with the same shapes: the process's result, not a second run.
      const auto launched = emulated.launched();
      QCOMPARE(mst::selfCheckKernels(family, config, torch::kCPU, true, bf16_stream).ms, r.ms);
      QCOMPARE(emulated.launched(), launched);
    }
    QVERIFY(emulated.launched() > launched_before);
    // The run's random draws are its own: the checks put the global generator back (the q/k/v
    // case builds a Linear, whose initial weights come from it).
    torch::manual_seed(5);
    const auto expected = torch::rand({4});
    torch::manual_seed(5);
    config.model.out_dim += 8;  // (another model: each family is checked again)
    const auto launched = emulated.launched();
    QVERIFY(mst::selfCheckKernels("qkv_gather", config, torch::kCPU, true, bf16_stream).passed);
    QVERIFY(emulated.launched() > launched);
    QVERIFY(torch::equal(torch::rand({4}), expected));
  }

  void settlingAKernelSetting() {
    // What auto, on and off make of a kernel setting, from the build's availability and the
    // self-checks of the setting's families (here stand-ins that pass or fail as told).
    std::vector<std::string> asked;
    auto checks = [&](std::set<std::string> failing) {
      return [&asked, failing](const std::string& family) {
        asked.push_back(family);
        mst::KernelSelfCheck r;
        r.family = family;
        r.passed = failing.count(family) == 0;
        if (!r.passed) r.detail = "disagree with ATen's operations on this device: dz 0.5 > 0.01";
        return r;
      };
    };
    std::vector<std::string> notes;
    // off: never checked.
    QVERIFY(!mst::settleKernelSetting("off", "train.fused_norm", "", checks({"junction"}), notes));
    QVERIFY(asked.empty() && notes.empty());
    // Kernels that cannot run: auto quietly without them, on refused by name.
    QVERIFY(!mst::settleKernelSetting("auto", "train.fused_loss", "no kernels for sm_80", checks({}), notes));
    try {
      mst::settleKernelSetting("on", "train.fused_loss", "no kernels for sm_80", checks({}), notes);
      QFAIL("on without kernels was accepted");
    } catch (const mst::MstError& e) {
      QVERIFY(std::string(e.what()).find("train.fused_loss") != std::string::npos);
      QVERIFY(std::string(e.what()).find("sm_80") != std::string::npos);
    }
    QVERIFY(asked.empty() && notes.empty());
    // Every family passes: on, with each of the setting's families checked.
    QVERIFY(mst::settleKernelSetting("auto", "train.fused_norm", "", checks({}), notes));
    QCOMPARE(asked, (std::vector<std::string>{"junction", "qkv_gather", "embed"}));
    QVERIFY(notes.empty());
    // One family fails (the second of three): auto goes on without the setting's kernels and says
    // which family and setting; on is refused, naming both.
    QVERIFY(!mst::settleKernelSetting("auto", "train.fused_norm", "", checks({"qkv_gather"}), notes));
    QCOMPARE(notes.size(), size_t{1});
    QVERIFY2(notes[0].find("train.fused_norm") != std::string::npos &&
                 notes[0].find("qkv_gather") != std::string::npos &&
                 notes[0].find("dz 0.5") != std::string::npos,
             notes[0].c_str());
    try {
      mst::settleKernelSetting("on", "train.fused_decoder", "", checks({"decoder_stage"}), notes);
      QFAIL("on with a failing self-check was accepted");
    } catch (const mst::MstError& e) {
      const std::string what = e.what();
      QVERIFY2(what.find("train.fused_decoder") != std::string::npos &&
                   what.find("decoder_stage") != std::string::npos,
               what.c_str());
    }
    QCOMPARE(notes.size(), size_t{1});
  }

  void hostCodeRunsTheAugmentation() {
    // MultiCrop with train.fused_augment, as the engine calls it: every crop set through
    // applyFused to the kernels, against the ATen operations from the same generator state.
    MST_REQUIRE_EMULATED_HOST_CODE();
    for (int64_t channels : {int64_t{1}, int64_t{3}}) {
      mst::CropConfig crops;
      crops.global_size = 32;
      crops.local_size = 16;
      crops.local_crops = 3;
      mst::AugmentConfig augment;
      augment.blur_sigma_max = 1.5;
      mst::MultiCrop multicrop(crops, augment, channels, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
      torch::manual_seed(channels);
      auto images = (torch::rand({4, channels, 40, 36}) * 255).to(torch::kUInt8);
      auto views = [&](bool fused) {
        multicrop.setFused(fused);
        auto gen = at::detail::createCPUGenerator(123);
        return multicrop(images, gen);
      };
      const auto want = views(false);
      mst::Views got;
      {
        Emulated emulated;
        got = views(true);
        QVERIFY2(emulated.launched() >= 3, "the augmentation kernels did not run");
      }
      for (const auto& [g, w] : {std::pair{got.globals, want.globals}, std::pair{got.locals, want.locals}}) {
        QCOMPARE(g.sizes(), w.sizes());
        const double rel = ((g - w).norm() / w.norm()).item<double>();
        const double worst = (g - w).abs().max().item<double>();
        QVERIFY2(rel < 1e-5 && worst < 1e-3, (std::to_string(channels) + " channels: rel " +
                                              std::to_string(rel) + ", max " + std::to_string(worst)).c_str());
      }
      // An output given to applyFused: the crops land in it (a slice of a larger tensor here);
      // one of another shape or dtype is refused before anything runs.
      Emulated emulated;
      auto gen = at::detail::createCPUGenerator(7);
      auto source = torch::rand({4, channels, 40, 36});
      auto draws = multicrop.draw(4, 16, 0.3, 1.0, 0.5, 0.2, gen, {}, source.options());
      auto both = torch::full({8, channels, 16, 16}, std::nanf(""));
      torch::Tensor slice = both.narrow(0, 4, 4), fresh;
      QVERIFY(multicrop.applyFused(source, draws, 16, slice));
      QVERIFY(multicrop.applyFused(source, draws, 16, fresh));
      QVERIFY(slice.data_ptr() == both.narrow(0, 4, 4).data_ptr());
      QVERIFY(torch::equal(both.narrow(0, 4, 4), fresh));
      QVERIFY(both.narrow(0, 0, 4).isnan().all().item<bool>());
      torch::Tensor wrong = torch::empty({4, channels, 16, 15}), half = slice.to(torch::kHalf);
      QVERIFY_THROWS_EXCEPTION(c10::Error, multicrop.applyFused(source, draws, 16, wrong));
      QVERIFY_THROWS_EXCEPTION(c10::Error, multicrop.applyFused(source, draws, 16, half));
    }
  }
};

QTEST_GUILESS_MAIN(TestKernelsEmulated)
#include "test_kernels_emulated.moc"
