/// @brief The CUDA path's correctness (issue 6). Every case QSKIPs without a CUDA device: CI has
/// none; scripts/gpu_check.sh runs the same checks through `mst gpucheck` on the GPU machine.
#include <QtTest>

#include "core/bench/gpu_checks.h"
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
  void masksFollowTheSameRuleOnTheGpu() {
    MST_REQUIRE_CUDA();
    expect(checkMaskRule());
  }
  void graphReplayMatchesEager() {
    MST_REQUIRE_CUDA();
    if (!StepGraph::available()) QSKIP("this LibTorch has no CUDA graphs");
    expect(checkGraphReplay(gpuCheckConfig(), "fp32", 7, 1e-3));
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
