/// @brief The fused MLP's autograd function (see fused_mlp.h): cuBLASLt epilogues where they
/// apply, the same arithmetic in ATen operations elsewhere.
#include "core/kernels/fused_mlp.h"

#include "core/kernels/gelu_backward.h"

#include "core/util/torch_compat.h"

#ifdef MST_HAVE_CUBLASLT
#include <atomic>
#include <cstdint>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cublasLt.h>
#endif

namespace mst {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#ifdef MST_HAVE_CUBLASLT
void ltCheck(cublasStatus_t status, const char* what) {
  TORCH_CHECK(status == CUBLAS_STATUS_SUCCESS, "train.fused_mlp: cuBLASLt ", what,
              " failed with status ", static_cast<int>(status),
              " (set train.fused_mlp=false to train without it)");
}

/// One handle per thread: the forward pass runs on the training thread, the backward pass on
/// autograd's device thread.
cublasLtHandle_t ltHandle() {
  struct Handle {
    cublasLtHandle_t h = nullptr;
    Handle() { ltCheck(cublasLtCreate(&h), "handle creation"); }
  };
  thread_local Handle handle;
  return handle.h;
}

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // what cuBLAS asks for on Hopper

/// The descriptors of one call, destroyed however the call ends.
struct LtDescriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  LtDescriptors() = default;
  LtDescriptors(const LtDescriptors&) = delete;
  LtDescriptors& operator=(const LtDescriptors&) = delete;
  ~LtDescriptors() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    for (auto layout : {d, b, a})
      if (layout) cublasLtMatrixLayoutDestroy(layout);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

/// The largest power of two up to 256 that divides the address (cuBLASLt assumes 256 unless told).
uint32_t alignmentOf(const void* p) {
  uint32_t a = 256;
  while (reinterpret_cast<uintptr_t>(p) % a != 0) a /= 2;
  return a;
}

std::atomic<int64_t> lt_fallbacks{0};

/// D (column-major m × n, leading dimension m) = epilogue(op(A) · op(B)), all bf16 with fp32
/// accumulation. A is (m × k) after op, B (k × n); lda, ldb are their stored leading dimensions.
/// `bias` is read (bias epilogues) or written (gradient epilogues); `aux` is the GELU input,
/// written by GELU_AUX_BIAS and read by DGELU_BGRAD, column-major with leading dimension m.
/// Returns false, having done nothing, when cuBLASLt has no algorithm for the call (the caller
/// then takes the ATen path); other failures throw.
bool ltMatmul(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
              const void* A, int64_t lda, const void* B, int64_t ldb, void* D,
              cublasLtEpilogue_t epilogue, void* bias, void* aux, const torch::Tensor& like) {
  const c10::cuda::CUDAGuard device_guard(like.device());
  LtDescriptors desc;
  ltCheck(cublasLtMatmulDescCreate(&desc.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "descriptor");
  auto set = [&](cublasLtMatmulDescAttributes_t attribute, const void* value, size_t size) {
    ltCheck(cublasLtMatmulDescSetAttribute(desc.op, attribute, value, size),
            "descriptor attribute");
  };
  set(CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  set(CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  set(CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
  set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
  if (aux != nullptr) {
    set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux);
    const int64_t aux_ld = m;
    set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld);
  }
  const bool a_n = ta == CUBLAS_OP_N, b_n = tb == CUBLAS_OP_N;
  ltCheck(cublasLtMatrixLayoutCreate(&desc.a, CUDA_R_16BF, a_n ? m : k, a_n ? k : m, lda), "layout");
  ltCheck(cublasLtMatrixLayoutCreate(&desc.b, CUDA_R_16BF, b_n ? k : n, b_n ? n : k, ldb), "layout");
  ltCheck(cublasLtMatrixLayoutCreate(&desc.d, CUDA_R_16BF, m, n, m), "layout");
  ltCheck(cublasLtMatmulPreferenceCreate(&desc.preference), "preference");
  auto prefer = [&](cublasLtMatmulPreferenceAttributes_t attribute, const void* value,
                    size_t size) {
    ltCheck(cublasLtMatmulPreferenceSetAttribute(desc.preference, attribute, value, size),
            "preference attribute");
  };
  const size_t workspace_bytes = kWorkspaceBytes;
  prefer(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes, sizeof workspace_bytes);
  // The operands' real alignment (cuBLASLt otherwise assumes 256 bytes and may pick kernels
  // that fault on a tensor that starts inside an allocation).
  const uint32_t align_a = alignmentOf(A), align_b = alignmentOf(B), align_d = alignmentOf(D);
  prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof align_a);
  prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof align_b);
  prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof align_d);
  prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof align_d);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  auto handle = ltHandle();
  const auto searched = cublasLtMatmulAlgoGetHeuristic(handle, desc.op, desc.a, desc.b, desc.d,
                                                       desc.d, desc.preference, 1, &heuristic,
                                                       &found);
  if (searched == CUBLAS_STATUS_NOT_SUPPORTED || (searched == CUBLAS_STATUS_SUCCESS && found == 0)) {
    TORCH_WARN_ONCE("train.fused_mlp: cuBLASLt has no algorithm for epilogue ",
                    static_cast<int>(epilogue), " at ", m, " x ", n, " x ", k,
                    "; these MLPs run unfused (mst bench reports fused_mlp_fallbacks)");
    ++lt_fallbacks;
    return false;
  }
  ltCheck(searched, "algorithm search");
  auto workspace = torch::empty({static_cast<int64_t>(workspace_bytes)},
                                like.options().dtype(torch::kByte));
  const float alpha = 1.0f, beta = 0.0f;
  auto stream = at::cuda::getCurrentCUDAStream(like.device().index()).stream();
  ltCheck(cublasLtMatmul(handle, desc.op, &alpha, A, desc.a, B, desc.b, &beta, D, desc.d, D,
                         desc.d, &heuristic.algo, workspace.data_ptr(), workspace_bytes, stream),
          "matmul");
  return true;
}
#endif

bool applies(const torch::Tensor& h2, const torch::Tensor& w1, const torch::Tensor& b1,
             const torch::Tensor& w2, const torch::Tensor& b2) {
  if (!fusedMlpApplies(h2, w1.size(0))) return false;
  for (const auto* t : {&h2, &w1, &b1, &w2, &b2}) {
    if (t == &b2 && b2.numel() == 0) continue;  // no fc2 bias here: the junction adds it
    if (t->scalar_type() != torch::kBFloat16 || !t->is_contiguous() ||
        reinterpret_cast<uintptr_t>(t->data_ptr()) % 16 != 0)
      return false;
  }
  return true;
}

class FusedMlpFunction : public torch::autograd::Function<FusedMlpFunction> {
 public:
  /// `keep`: whether a backward pass may follow (grad mode was on); without one the forward
  /// product applies bias + GELU without writing the pre-activation. `store`: keep GELU's
  /// output too, rather than recomputing it in the backward pass (train.recompute_gelu off).
  /// An empty b2: fc2 adds no bias (the caller adds it and takes its gradient).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& h,
                               const torch::Tensor& w1, const torch::Tensor& b1,
                               const torch::Tensor& w2, const torch::Tensor& b2, bool keep,
                               bool store, const std::string& approximate) {
    const int64_t in = w1.size(1), out = w2.size(0);
    [[maybe_unused]] const int64_t hidden = w1.size(0);
    auto h2 = h.reshape({-1, in}).contiguous();
    [[maybe_unused]] const int64_t rows = h2.size(0);
    // cuBLASLt's GELU epilogue is the tanh approximation: the erf GELU's forward pass is ATen's.
    const bool tanh_gelu = approximate == "tanh";
    const bool lt = tanh_gelu && applies(h2, w1, b1, w2, b2);
    torch::Tensor pre, g;
    bool done = false;
#ifdef MST_HAVE_CUBLASLT
    if (tanh_gelu && !lt && h2.is_cuda()) ++lt_fallbacks;  // dtype, layout or alignment
    if (lt) {
      // Row-major (rows × hidden) is column-major (hidden × rows): D = W1 · h2ᵀ in cuBLAS terms.
      if (keep) pre = torch::empty({rows, hidden}, h2.options());
      g = torch::empty({rows, hidden}, h2.options());
      done = rows == 0 ||
             ltMatmul(CUBLAS_OP_T, CUBLAS_OP_N, hidden, rows, in, w1.data_ptr(), in,
                      h2.data_ptr(), in, g.data_ptr(),
                      keep ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_BIAS,
                      b1.data_ptr(), keep ? pre.data_ptr() : nullptr, h2);
    }
#endif
    if (!done) {  // the ATen path (also where cuBLASLt found no algorithm)
      pre = torch::addmm(b1, h2, w1.t());
      g = torch::gelu(pre, approximate);
    }
    const bool has_b2 = b2.numel() > 0;
    auto y = has_b2 ? torch::addmm(b2, g, w2.t()) : g.mm(w2.t());
    ctx->saved_data["has_b2"] = has_b2;
    if (keep) ctx->save_for_backward({h2, pre, w1, w2, store ? g : torch::empty({0}, g.options())});
    ctx->saved_data["stored"] = keep && store;
    ctx->saved_data["lt"] = lt;
    ctx->saved_data["approximate"] = approximate;
    std::vector<int64_t> shape = h.sizes().vec();
    shape.back() = out;
    return y.view(shape);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &h2 = saved[0], &pre = saved[1], &w1 = saved[2], &w2 = saved[3];
    const bool stored = ctx->saved_data["stored"].toBool();
    const std::string approximate = ctx->saved_data["approximate"].toStringRef();
    const int64_t out = w2.size(0);
    [[maybe_unused]] const int64_t hidden = w1.size(0);
    auto dy = grads[0].reshape({-1, out}).contiguous();
    auto db2 = ctx->saved_data["has_b2"].toBool() ? dy.sum(0) : torch::Tensor();
    torch::Tensor da, db1, g;
    bool done = false;
    if (dy.scalar_type() == pre.scalar_type() && geluBackwardKernelApplies(pre)) {
      // fc2's input gradient as a plain product, then one pass over the activations for GELU's
      // derivative, GELU's output (fc2's weight gradient needs it, unless stored) and fc1's
      // bias gradient (cuBLASLt's DGELU_BGRAD epilogue ran as a separate, slower kernel).
      auto fused = geluBackward(dy.mm(w2), pre, approximate, /*want_gelu=*/!stored,
                                /*want_bias=*/true);
      da = fused.dpre;
      db1 = fused.dbias;
      g = stored ? saved[4] : fused.gelu;
      done = true;
    }
    if (!g.defined()) g = stored ? saved[4] : torch::gelu(pre, approximate);
    // fc2: its weight gradient needs GELU's output (stored, or recomputed from pre).
    auto dw2 = dy.t().mm(g);
#ifdef MST_HAVE_CUBLASLT
    if (!done && ctx->saved_data["lt"].toBool() && dy.scalar_type() == torch::kBFloat16) {
      // Builds without the CUDA kernels: da (rows × hidden) = (dy · W2) ⊙ gelu'(pre) in the
      // product's epilogue, i.e. column-major D = W2ᵀ · dyᵀ.
      const int64_t rows = dy.size(0);
      da = torch::empty({rows, hidden}, dy.options());
      db1 = torch::empty({hidden}, dy.options());
      if (rows == 0) {
        db1.zero_();
        done = true;
      } else {
        done = ltMatmul(CUBLAS_OP_N, CUBLAS_OP_N, hidden, rows, out, w2.data_ptr(), hidden,
                        dy.data_ptr(), out, da.data_ptr(), CUBLASLT_EPILOGUE_DGELU_BGRAD,
                        db1.data_ptr(), pre.data_ptr(), dy);
      }
    }
#endif
    if (!done) {
      da = torch::gelu_backward(dy.mm(w2), pre, approximate);
      db1 = da.sum(0);
    }
    auto dw1 = da.t().mm(h2);
    auto dh = da.mm(w1);
    std::vector<int64_t> shape = grads[0].sizes().vec();
    shape.back() = w1.size(1);
    return {dh.view(shape), dw1, db1, dw2, db2, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool cublasLtBuilt() {
#ifdef MST_HAVE_CUBLASLT
  return true;
#else
  return false;
#endif
}

int64_t fusedMlpFallbacks() {
#ifdef MST_HAVE_CUBLASLT
  return lt_fallbacks.load();
#else
  return 0;
#endif
}

bool fusedMlpApplies(const torch::Tensor& h, int64_t hidden) {
  return cublasLtBuilt() && h.is_cuda() && h.scalar_type() == torch::kBFloat16 &&
         hidden % 8 == 0 && h.size(-1) % 8 == 0;
}

torch::Tensor fusedMlp(const torch::Tensor& h, torch::nn::LinearImpl& fc1,
                       torch::nn::LinearImpl& fc2, bool store_gelu,
                       const std::string& approximate, bool fc2_bias) {
  TORCH_CHECK(approximate == "none" || approximate == "tanh",
              "fusedMlp: approximate must be \"none\" or \"tanh\", not \"", approximate, "\"");
  TORCH_CHECK(fc1.bias.defined() && fc2.bias.defined(), "fusedMlp: fc1 and fc2 need biases");
  auto [w1, b1] = autocastLinearParams(fc1.weight, fc1.bias);
  auto [w2, b2] = autocastLinearParams(fc2.weight, fc2_bias ? fc2.bias : torch::Tensor());
  if (!b2.defined()) b2 = torch::empty({0}, w2.options());
  auto x = h.scalar_type() == w1.scalar_type() ? h : h.to(w1.scalar_type());
#ifdef MST_HAVE_AUTOCAST
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
#endif
  return FusedMlpFunction::apply(x, w1, b1, w2, b2, torch::GradMode::is_enabled(), store_gelu,
                                 approximate);
}

}  // namespace mst
