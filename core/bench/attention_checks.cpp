/// @brief The GPU check of train.attention_kernel(_short) (see gpu_checks.h): each choice of
/// LibTorch's attention kernel against fp32 attention from the same values.
#include <cmath>

#include "core/util/check_math.h"
#include "core/bench/gpu_checks.h"
#include "core/model/attention_kernel.h"

namespace mst {

using checks::relNorm;

GpuCheck checkAttentionKernels() {
  GpuCheck r;
  r.name = "attention_kernels_vs_reference";
  const torch::Device cuda(torch::kCUDA, 0);
  auto gen = at::detail::createCPUGenerator(37);
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  struct Case {
    int64_t B, heads, T, d;
  };
  // DeiT-S/16's local and global crops, and the Fashion-MNIST ViT's 28-px crops.
  for (auto c : {Case{48, 6, 37, 64}, Case{8, 6, 197, 64}, Case{32, 3, 50, 64}}) {
    auto q = torch::randn({c.B, c.heads, c.T, c.d}, gen).to(torch::kBFloat16).to(cuda);
    auto k = torch::randn({c.B, c.heads, c.T, c.d}, gen).to(torch::kBFloat16).to(cuda);
    auto v = torch::randn({c.B, c.heads, c.T, c.d}, gen).to(torch::kBFloat16).to(cuda);
    auto g = torch::randn({c.B, c.heads, c.T, c.d}, gen).to(torch::kBFloat16).to(cuda);
    // Output and gradients of q, k, v: through the kernel, or in fp32 from the same bf16 values.
    auto run = [&](bool reference, AttentionKernel kernel) {
      auto leaf = [&](const torch::Tensor& t) {
        return (reference ? t.to(torch::kFloat) : t.clone()).requires_grad_(true);
      };
      auto ql = leaf(q), kl = leaf(k), vl = leaf(v);
      torch::Tensor out;
      if (reference) {
        const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
        out = torch::matmul(torch::softmax(torch::matmul(ql * scale, kl.transpose(-2, -1)), -1), vl);
      } else {
        out = scaledDotProductAttention(ql, kl, vl, kernel);
      }
      out.backward(reference ? g.to(torch::kFloat) : g);
      return std::vector<torch::Tensor>{out.detach(), ql.grad(), kl.grad(), vl.grad()};
    };
    const auto ref = run(true, AttentionKernel::Auto);
    for (const auto& name : attentionKernelNames()) {
      if (name != "auto" && !attentionSwitchesBuilt()) continue;  // (LibTorch's choice only)
      const auto kernel = attentionKernelFromName(name, "train.attention_kernel");
      nlohmann::json row{{"B", c.B}, {"heads", c.heads}, {"T", c.T}, {"d", c.d}, {"kernel", name}};
      try {
        row["ran"] = attentionKernelChoice(q.clone().requires_grad_(true), k, v, kernel);
      } catch (const std::exception& e) {
        row["ran"] = std::string("error: ") + e.what();
      }
      const auto got = run(false, kernel);
      const char* names[] = {"out", "dq", "dk", "dv"};
      bool ok = true;
      for (int i = 0; i < 4; ++i) {
        const double rel = relNorm(got[i], ref[i]);
        row[names[i]] = rel;
        if (!(rel <= 2e-2)) ok = false;
      }
      row["passed"] = ok;
      rows.push_back(row);
      all_ok = all_ok && ok;
    }
  }
  r.values["cases"] = rows;
  r.values["switches_built"] = attentionSwitchesBuilt();
  r.values["tolerance"] = 2e-2;
  r.passed = all_ok;
  return r;
}

}  // namespace mst
