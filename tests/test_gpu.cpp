/// @brief The CUDA path's correctness (issue 6). Every case QSKIPs without a CUDA device: CI has
/// none; scripts/gpu_check.sh runs the same checks through `mst gpucheck` on the GPU machine.
#include <QtTest>

#include "core/augment/multicrop.h"
#include "core/bench/gpu_checks.h"
#include "core/bench/kernel_profile.h"
#include "core/kernels/fused_mlp.h"
#include "core/kernels/residual_norm.h"
#include "core/train/step_graph.h"

using namespace mst;

// QSKIP returns from the function it is written in: a macro, so that is the test itself.
#define MST_REQUIRE_CUDA() \
  if (!cudaPresent()) QSKIP("no CUDA device")

class TestGpu : public QObject {
  Q_OBJECT

 private:
  static void expect(const GpuCheck& check) {
    QVERIFY2(check.passed, (check.name + ": " + check.values.dump()).c_str());
  }

 private slots:
  void cpuAndCudaAgreeInFp32() {
    MST_REQUIRE_CUDA();
    expect(checkCpuCudaAgreement(gpuCheckConfig(), "fp32", 1e-4));
  }
  void cpuAndCudaAgreeInBf16() {
    MST_REQUIRE_CUDA();
    expect(checkCpuCudaAgreement(gpuCheckConfig(), "bf16", 1e-2));
  }
  void fusedKernelsMatchTheirReference() {
    MST_REQUIRE_CUDA();
    if (!fusedKernelsBuilt()) QSKIP("this build has no fused kernels (no nvcc at configure time)");
    expect(checkFusedNorm());
  }
  void tokenEmbeddingMatchesItsReference() {
    MST_REQUIRE_CUDA();
    if (!fusedKernelsBuilt()) QSKIP("this build has no fused kernels (no nvcc at configure time)");
    expect(checkTokenEmbed());
  }
  void fusedReconstructionLossMatchesItsReference() {
    MST_REQUIRE_CUDA();
    if (!fusedKernelsBuilt()) QSKIP("this build has no fused kernels (no nvcc at configure time)");
    expect(checkFusedReconstruction());
  }
  void masksFollowTheSameRuleOnTheGpu() {
    MST_REQUIRE_CUDA();
    expect(checkMaskRule());
  }
  void inspectorMapsAgreeOnTheGpu() {
    MST_REQUIRE_CUDA();
    expect(checkProbeAttention(gpuCheckConfig()));
  }
  void graphReplayMatchesEager() {
    MST_REQUIRE_CUDA();
    if (!StepGraph::available()) QSKIP("this LibTorch has no CUDA graphs");
    expect(checkGraphReplay(gpuCheckConfig(), "fp32", 7, 1e-3));
  }
  void fusedMlpMatchesItsReference() {
    MST_REQUIRE_CUDA();
    if (!cublasLtBuilt()) QSKIP("this build has no cuBLASLt");
    expect(checkFusedMlp());
  }
  void geluBackwardKernelMatchesItsArithmetic() {
    MST_REQUIRE_CUDA();
    if (!fusedKernelsBuilt()) QSKIP("this build has no fused kernels (no nvcc at configure time)");
    expect(checkGeluBackward());
  }
  void recomputedGeluMatchesKeptGelu() {
    MST_REQUIRE_CUDA();
    expect(checkRecomputeGelu(gpuCheckConfig(), "bf16", 4, 1e-3));
  }
  void kernelNamesFallIntoTheirKinds() {
    // `mst bench --kernels` groups CUDA kernels (names as CUPTI reports them) and CPU operators.
    const std::vector<std::pair<std::string, std::string>> cases{
        {"nvjet_tst_128x192_64x4_2x1_v_bz_TNT", "matmul"},
        {"sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matmul"},
        {"void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>", "attention"},
        {"sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", "convolution"},
        {"void cudnn::engines_precompiled::nchwToNhwcKernel<float>", "convolution"},
        {"void mst::kernels::(anonymous namespace)::forwardKernel<float, __nv_bfloat16>", "fused_norm"},
        {"void mst::kernels::(anonymous namespace)::backwardKernel<float, __nv_bfloat16, __nv_bfloat16, 12>(__nv_bfloat16 const*)", "fused_norm"},
        {"void mst::kernels::(anonymous namespace)::columnSumsKernel<float>(float const*, int, int, float*)", "fused_sums"},
        {"mst::kernels::(anonymous namespace)::blurRowsKernel(mst::kernels::AugmentArgs, int)", "fused_augment"},
        {"mst::kernels::(anonymous namespace)::geluBackwardKernel(__nv_bfloat16 const*, __nv_bfloat16 const*, __nv_bfloat16*, __nv_bfloat16*, float*, long, int, bool)", "fused_gelu"},
        {"void mst::kernels::(anonymous namespace)::columnSumsKernel<__nv_bfloat16>(float const*, int, int, __nv_bfloat16*)", "fused_sums"},
        {"mst::kernels::(anonymous namespace)::gatherKernel(mst::kernels::HeadsGatherArgs)", "fused_heads"},
        {"void mst::kernels::(anonymous namespace)::dinoLossForwardKernel<__nv_bfloat16, 12>(mst::kernels::DinoLossArgs)", "fused_loss"},
        {"mst::kernels::(anonymous namespace)::dinoLossCombineKernel(mst::kernels::DinoLossArgs)", "fused_loss"},
        {"void mst::kernels::(anonymous namespace)::decoderSumsKernel<__nv_bfloat16, true>(__nv_bfloat16 const*, __nv_bfloat16 const*, float const*, float const*, float const*, float const*, mst::kernels::(anonymous namespace)::Geometry, double*)", "fused_decoder"},
        {"mst::kernels::(anonymous namespace)::decoderStatsKernel(double const*, int, int, double, double, double, float*, float*, float*, float*)", "fused_decoder"},
        {"void mst::kernels::(anonymous namespace)::pixelKernel<3>(mst::kernels::AugmentArgs, int)", "fused_augment"},
        {"void mst::kernels::(anonymous namespace)::lumaKernel<1>(mst::kernels::AugmentArgs)", "fused_augment"},
        {"mst::kernels::(anonymous namespace)::blurTileKernel(mst::kernels::AugmentArgs, int, int)", "fused_augment"},
        {"mst::kernels::(anonymous namespace)::rowStatsKernel(mst::kernels::AugmentArgs, int)", "fused_augment"},
        {"mst::kernels::(anonymous namespace)::fusedAdamwKernel(mst::kernels::FusedAdamwArgs)", "fused_optimizer"},
        {"mst::kernels::(anonymous namespace)::reconFinishKernel(double const*, int, double, float*)", "fused_loss"},
        {"void mst::kernels::(anonymous namespace)::reconSumsKernel<float>(float const*, float const*, mst::kernels::(anonymous namespace)::Geometry, double*)", "fused_loss"},
        {"void mst::kernels::(anonymous namespace)::embedBackwardKernel<__nv_bfloat16, float>(mst::kernels::EmbedArgs)", "fused_embed"},
        {"void mst::kernels::(anonymous namespace)::reconGradKernel<__nv_bfloat16>(__nv_bfloat16 const*, float const*, float const*, float, mst::kernels::(anonymous namespace)::Geometry, __nv_bfloat16*)", "fused_loss"},
        {"void cudnn::fusion::compute_dot_do_o_specialized<true, 64>(void const*, void const*, void*, void*, unsigned int)", "attention"},
        {"void cudnn::fusion::convert_dq_to_16bits<true>(void const*, void*, unsigned int, unsigned int, unsigned int)", "attention"},
        {"void mst::kernels::(anonymous namespace)::backwardKernel<float, __nv_bfloat16, float, 12, 4>(float const*)", "fused_norm"},
        {"void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16>", "layernorm"},
        {"void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "elementwise"},
        {"void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float>>", "reduction"},
        {"void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float>", "softmax"},
        {"Memcpy HtoD (Pinned -> Device)", "copy_cast"},
        {"aten::mm", "matmul"},
        {"something_else", "other"}};
    for (const auto& [name, kind] : cases)
      QVERIFY2(kernelCategory(name) == kind, (name + " -> " + kernelCategory(name)).c_str());
  }
  void profileSumsEachOperatorPerStep() {
    // On the CPU the profiler records operators: three matrix products and one GELU per step.
    auto a = torch::randn({64, 64}), b = torch::randn({64, 64});
    auto profile = profileSteps(
        [&] {
          auto c = torch::mm(torch::mm(torch::mm(a, b), b), b);
          c = torch::gelu(c);
        },
        4, torch::kCPU);
    QCOMPARE(profile.steps, int64_t{4});
    bool found_mm = false, found_gelu = false;
    double sum = 0;
    for (const auto& k : profile.kernels) {
      sum += k.ms_per_step;
      if (k.name == "aten::mm") {
        found_mm = true;
        QCOMPARE(k.calls_per_step, 3.0);
        QCOMPARE(k.category, std::string("matmul"));
        QVERIFY(k.ms_per_step > 0);
      }
      if (k.name == "aten::gelu") found_gelu = k.calls_per_step == 1.0;
    }
    QVERIFY(found_mm);
    QVERIFY(found_gelu);
    QVERIFY(std::abs(sum - profile.total_ms_per_step) < 1e-9 * std::max(1.0, sum));
    for (size_t i = 1; i < profile.kernels.size(); ++i)  // most time first
      QVERIFY(profile.kernels[i - 1].ms_per_step >= profile.kernels[i].ms_per_step);
    auto json = kernelProfileJson(profile, 2);
    QCOMPARE(json["top"].size(), size_t{2});
    QVERIFY(json["categories"].contains("matmul"));
  }
  void fusedKernelsSayWhyTheyCannotRun() {
    // train.fused_norm / fused_augment = auto ask this; on insists and quotes it.
    const std::string cpu = fusedKernelsUnavailable(torch::kCPU);
    QVERIFY(!cpu.empty());
    if (!fusedKernelsBuilt()) {
      QVERIFY2(cpu.find("no fused CUDA kernels") != std::string::npos, cpu.c_str());
      if (torch::cuda::is_available())
        QVERIFY(!fusedKernelsUnavailable(torch::Device(torch::kCUDA, 0)).empty());
    } else {
      QVERIFY2(cpu.find("CUDA devices only") != std::string::npos, cpu.c_str());
    }
  }
  void profileNamesEachKernelsSources() {
    // Each kernel's time is split by where it comes from: the inputs' shapes and dtypes and the
    // scopes around it. Here: the forward product of (64×32)·(32×16), and the two products of
    // its backward pass inside autograd's MmBackward0.
    auto a = torch::randn({64, 32}).requires_grad_(), b = torch::randn({32, 16}).requires_grad_();
    auto profile = profileSteps([&] { torch::mm(a, b).sum().backward(); }, 2, torch::kCPU);
    const KernelTime* mm = nullptr;
    for (const auto& k : profile.kernels)
      if (k.name == "aten::mm") mm = &k;
    QVERIFY(mm != nullptr);
    QCOMPARE(mm->calls_per_step, 3.0);
    double calls = 0, ms = 0;
    bool forward = false;
    int backward = 0;
    for (const auto& s : mm->sources) {
      calls += s.calls_per_step;
      ms += s.ms_per_step;
      if (s.inputs == "[64, 32] float, [32, 16] float") {
        forward = s.within.find("evaluate_function") == std::string::npos;
        QCOMPARE(s.calls_per_step, 1.0);
      }
      if (s.within.find("MmBackward0") != std::string::npos) ++backward;
    }
    QCOMPARE(calls, 3.0);  // every call has exactly one source
    QVERIFY(std::abs(ms - mm->ms_per_step) < 1e-9 * std::max(1.0, ms));
    QVERIFY2(forward, "no forward source with the inputs' shapes");
    QCOMPARE(backward, 2);  // dA = dC·Bᵀ (64×16·16×32) and dB = Aᵀ·dC (32×64·64×16)
    auto json = kernelProfileJson(profile, profile.kernels.size());
    bool listed = false;
    for (const auto& row : json["top"])
      if (row["name"] == "aten::mm") listed = row["sources"].size() == 3;
    QVERIFY(listed);
  }
  void fusedAugmentArithmeticMatchesAten() {
    // train.fused_augment's per-pixel functions (the CUDA kernels' own code, run here in plain
    // loops) against MultiCrop's ATen operations, from the same draws: crops that scale up and
    // down and reflect at the border, flips, colour jitter, grayscale, blur, solarisation.
    for (int64_t channels : {int64_t{1}, int64_t{3}}) {
      CropConfig crops;
      AugmentConfig augment;
      augment.blur_sigma_max = 1.5;
      MultiCrop multicrop(crops, augment, channels, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
      auto gen = at::detail::createCPUGenerator(31 + channels);
      auto source = torch::rand({6, channels, 50, 40}, gen);
      struct Set {
        int64_t rows, size;
        double smin, smax, blur_p, solarize_p;
      };
      for (auto set : {Set{6, 64, 0.4, 1.0, 1.0, 0.0}, Set{6, 64, 0.4, 1.0, 0.3, 0.5},
                       Set{24, 24, 0.05, 0.4, 0.5, 0.0}, Set{12, 32, 0.05, 1.0, 0.0, 0.5}}) {
        at::Generator draws_gen = at::detail::createCPUGenerator(7 + set.rows);
        auto draws = multicrop.draw(set.rows, set.size, set.smin, set.smax, set.blur_p,
                                    set.solarize_p, draws_gen, {}, source.options());
        QVERIFY(draws.jitter.any().item<bool>() && !draws.jitter.all().item<bool>());
        auto ref = multicrop.apply(source, draws, set.size);
        auto got = multicrop.applyOnHost(source, draws, set.size);
        QCOMPARE(got.sizes(), ref.sizes());
        const double rel = ((got - ref).norm() / ref.norm()).item<double>();
        const double worst = (got - ref).abs().max().item<double>();
        QVERIFY2(rel < 1e-5 && worst < 1e-3,
                 (std::to_string(channels) + " channels, " + std::to_string(set.rows) +
                  " rows: rel " + std::to_string(rel) + ", max " + std::to_string(worst)).c_str());
      }
    }
  }
  void gpuBuildFallbackKnowsEveryOptionalSource() {
    // scripts/gpu_build.sh turns off an optional part of the GPU build when a source only that
    // part compiles fails there; a source missing from its list ends that build instead (the
    // decoder kernels were, for a while). Every such source in core/CMakeLists.txt must match
    // its part's pattern, and each part must be in the order the script tries them.
    auto read = [](const QString& path) {
      QFile f(QString(MST_SOURCE_DIR) + "/" + path);
      if (!f.open(QIODevice::ReadOnly)) qFatal("cannot read %s", qPrintable(path));
      return QString::fromUtf8(f.readAll());
    };
    const QString script = read("scripts/gpu_build.sh");
    const QString cmake = read("core/CMakeLists.txt");
    QMap<QString, QRegularExpression> parts;
    auto it = QRegularExpression("\\[(MST_[A-Z_]+)\\]=\"([^\"]+)\"").globalMatch(script);
    while (it.hasNext()) {
      const auto m = it.next();
      parts[m.captured(1)] = QRegularExpression(m.captured(2));  // grep -E's search, as there
    }
    const auto order = QRegularExpression("\\nPARTS=\\(([^)]*)\\)").match(script);
    QVERIFY(order.hasMatch());
    const QStringList ordered = order.captured(1).split(' ', Qt::SkipEmptyParts);
    for (const QString& part : parts.keys())
      QVERIFY2(ordered.contains(part), qPrintable(part + " is not in PARTS"));
    // Each part is a CMake option (a misspelt -D would be ignored without a word).
    const QString top = read("CMakeLists.txt");
    for (const QString& part : ordered)
      QVERIFY2(top.contains("option(" + part + " "), qPrintable(part + " is no option() in CMakeLists.txt"));
    // Which part owns which sources, as core/CMakeLists.txt says.
    QList<QPair<QString, QString>> owned;  // (part, source basename)
    const int fused = cmake.indexOf("if(MST_FUSED_KERNELS)");
    const int fusedEnd = cmake.indexOf("\nendif()", fused);
    QVERIFY(fused >= 0 && fusedEnd > fused);
    auto files = QRegularExpression("/(\\w+)\\.(cu|cpp)\\b").globalMatch(cmake.mid(fused, fusedEnd - fused));
    while (files.hasNext()) owned.append({"MST_CUDA_KERNELS", files.next().captured(1)});
    auto noDefs = QRegularExpression(
        "if\\(NOT (MST_\\w+)\\)[^\\n]*\\n\\s*set_source_files_properties\\(\\S*/(\\w+)\\.cpp").globalMatch(cmake);
    while (noDefs.hasNext()) {
      const auto m = noDefs.next();
      owned.append({m.captured(1), m.captured(2)});
    }
    auto have = QRegularExpression("/(\\w+)\\.cpp APPEND PROPERTY\\s+COMPILE_DEFINITIONS MST_HAVE_CUBLASLT").globalMatch(cmake);
    while (have.hasNext()) owned.append({"MST_CUBLASLT", have.next().captured(1)});
    QVERIFY2(owned.size() >= 15, qPrintable(QString::number(owned.size()) + " sources found"));
    for (const auto& [part, source] : owned) {
      QVERIFY2(parts.contains(part), qPrintable(part + " (owns " + source + ") has no SOURCES entry"));
      QVERIFY2(parts[part].match(source).hasMatch(),
               qPrintable(source + " is missing from SOURCES[" + part + "] in scripts/gpu_build.sh"));
    }
  }
  void graphNeedsACudaBuild() {
    // On a CPU-only build, asking for a graph fails with a message that says why.
    if (StepGraph::available()) QSKIP("this build has CUDA graphs");
    try {
      StepGraph graph(torch::kCPU);
      QFAIL("StepGraph on a CPU-only build did not throw");
    } catch (const std::exception& e) {
      QVERIFY(QString(e.what()).contains("train.cuda_graph"));
    }
  }
};

QTEST_GUILESS_MAIN(TestGpu)
#include "test_gpu.moc"
