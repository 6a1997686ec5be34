/// @brief GELU's fused backward pass (see gelu_backward.h): the CUDA kernel where it applies,
/// ATen's operations elsewhere, and the kernel's arithmetic as a CPU loop for the tests.
#include "core/kernels/gelu_backward.h"

#include <limits>

#include "core/kernels/gelu_math.h"
#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"

#ifdef MST_HAVE_FUSED_KERNELS
#include "core/kernels/gelu_cuda.h"
#endif

namespace mst {
namespace {

bool tanhApproximation(const std::string& approximate) {
  TORCH_CHECK(approximate == "none" || approximate == "tanh",
              "geluBackward: approximate must be \"none\" or \"tanh\", not \"", approximate, "\"");
  return approximate == "tanh";
}

void checkOperands(const torch::Tensor& dgelu, const torch::Tensor& pre) {
  TORCH_CHECK(pre.dim() == 2 && dgelu.sizes() == pre.sizes(),
              "geluBackward: dgelu ", dgelu.sizes(), " and pre ", pre.sizes(),
              " must be the same (rows, hidden)");
  TORCH_CHECK(dgelu.scalar_type() == pre.scalar_type() && dgelu.device() == pre.device(),
              "geluBackward: dgelu and pre must share dtype and device");
}

}  // namespace

bool geluBackwardKernelApplies(const torch::Tensor& pre) {
  if (!fusedKernelsBuilt() || !kernels::kernelDevice(pre.device()) || pre.dim() != 2) return false;
  if (pre.scalar_type() != torch::kBFloat16 || !pre.is_contiguous()) return false;
  if (pre.size(1) == 0 || pre.size(1) % 8 != 0 || pre.size(1) > std::numeric_limits<int>::max())
    return false;
  if (pre.numel() > 0 && !aligned16(pre)) return false;
  return fusedKernelsRunOn(pre.device());
}

GeluBackwardOut geluBackward(const torch::Tensor& dgelu, const torch::Tensor& pre,
                             const std::string& approximate, bool want_gelu, bool want_bias) {
  checkOperands(dgelu, pre);
  [[maybe_unused]] const bool tanh_approx = tanhApproximation(approximate);
  GeluBackwardOut out;
  const bool kernel = geluBackwardKernelApplies(pre) && dgelu.is_contiguous() &&
                      (dgelu.numel() == 0 || aligned16(dgelu));
  if (!kernel) countKernelFallback("gelu_backward", pre.device());
  if (kernel) {
#ifdef MST_HAVE_FUSED_KERNELS
    const kernels::DeviceGuard device(pre.device());
    const int64_t rows = pre.size(0);
    const int hidden = static_cast<int>(pre.size(1));
    out.dpre = torch::empty_like(pre);
    if (want_gelu) out.gelu = torch::empty_like(pre);
    kernels::GeluBackwardArgs a;
    a.dgelu = dgelu.data_ptr();
    a.pre = pre.data_ptr();
    a.dpre = out.dpre.data_ptr();
    a.gelu = want_gelu ? out.gelu.data_ptr() : nullptr;
    a.rows = rows;
    a.hidden = hidden;
    a.row_blocks = kernels::geluBackwardRowBlocks(rows, hidden);
    a.tanh_approx = tanh_approx;
    a.stream = kernels::launchStream(pre.device());
    torch::Tensor partial;
    if (want_bias) {
      partial = torch::empty({a.row_blocks, hidden}, pre.options().dtype(torch::kFloat));
      out.dbias = torch::empty({hidden}, pre.options());
      a.partial = partial.data_ptr<float>();
      a.dbias = out.dbias.data_ptr();
    }
    const char* error = kernels::geluBackward(a);
    TORCH_CHECK(error == nullptr, "fused GELU backward: ", error);
    return out;
#endif
  }
  out.dpre = torch::gelu_backward(dgelu, pre, approximate);
  if (want_gelu) out.gelu = torch::gelu(pre, approximate);
  if (want_bias) out.dbias = out.dpre.sum(0);
  return out;
}

GeluBackwardOut geluBackwardReference(const torch::Tensor& dgelu, const torch::Tensor& pre,
                                      const std::string& approximate, bool want_gelu,
                                      bool want_bias) {
  checkOperands(dgelu, pre);
  TORCH_CHECK(pre.device().is_cpu(), "geluBackwardReference: CPU tensors only");
  const bool tanh_approx = tanhApproximation(approximate);
  auto g = dgelu.to(torch::kFloat).contiguous(), x = pre.to(torch::kFloat).contiguous();
  auto d = torch::empty_like(x), v = torch::empty_like(x);
  const float *gp = g.data_ptr<float>(), *xp = x.data_ptr<float>();
  float *dp = d.data_ptr<float>(), *vp = v.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    float slope = 0.0f;
    kernels::gelu::valueAndDerivative(xp[i], tanh_approx, vp[i], slope);
    dp[i] = gp[i] * slope;
  }
  GeluBackwardOut out;
  out.dpre = d.to(pre.scalar_type());
  if (want_gelu) out.gelu = v.to(pre.scalar_type());
  if (want_bias) out.dbias = out.dpre.to(torch::kFloat).sum(0).to(pre.scalar_type());
  return out;
}

}  // namespace mst
