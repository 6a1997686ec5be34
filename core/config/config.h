/// @brief Typed experiment configuration, one struct per concern, stored as JSON.
///
/// Every key, its default and its meaning live in one table (config_keys.cpp); the parser, the
/// validator and `mst config` documentation are generated from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mst {

struct DataConfig {
  std::string path = "/usr/share/datasets/fashion-mnist";
  std::string format = "fashion_mnist";  ///< fashion_mnist | cifar10 | image_folder
  int64_t limit = 0;                     ///< use only the first N training images; 0 = all
  int64_t load_size = 256;               ///< image_folder: decoded images are resized to this square
  int workers = 2;                       ///< loader threads decoding ahead of the step
  int prefetch = 4;                      ///< batches queued ahead of the step
  std::vector<double> mean;              ///< per-channel normalisation mean; empty = data set default
  std::vector<double> std;               ///< per-channel normalisation std; empty = data set default
};

/// Defaults = the vit_tiny28 preset (the Fashion-MNIST experiment).
struct ModelConfig {
  std::string preset = "vit_tiny28";
  int64_t image_size = 28;     ///< global crop size G the position embedding is made for
  int64_t patch_size = 4;      ///< P
  int64_t channels = 1;        ///< 1 or 3
  int64_t dim = 96;            ///< D
  int64_t depth = 4;
  int64_t heads = 3;
  double mlp_ratio = 4.0;
  double drop_path = 0.1;      ///< stochastic depth of the student only
  int64_t head_hidden = 512;
  int64_t head_bottleneck = 128;
  int64_t out_dim = 1024;      ///< K
  bool norm_last_layer = true;
  std::vector<int64_t> decoder_widths{64, 32};  ///< empty = 256 halving per stage (log2(P) stages)
  /// GELU of the ViT's MLPs and the head: "erf" (exact, as DeiT) or "tanh" (the tanh
  /// approximation, which train.fused_mlp's matrix-product epilogues compute).
  std::string gelu = "erf";
};

struct CropConfig {
  int64_t global_size = 28;
  int64_t local_size = 12;
  int64_t local_crops = 4;
  double global_scale_min = 0.4, global_scale_max = 1.0;
  double local_scale_min = 0.05, local_scale_max = 0.4;
};

struct AugmentConfig {
  double flip_p = 0.5;
  double jitter_p = 0.8;
  double brightness = 0.4, contrast = 0.4, saturation = 0.2, hue = 0.1;
  double grayscale_p = 0.2;
  double blur_sigma_min = 0.1, blur_sigma_max = 2.0;
  double blur_p_global1 = 1.0, blur_p_global2 = 0.1, blur_p_local = 0.5;
  double solarize_p = 0.2;  ///< second global crop only
};

struct MaskConfig {
  std::string strategy = "attention_guided";  ///< none | random | attention_guided | attention_high
  double p = 0.1;
  int64_t num = 8;
};

struct LossConfig {
  double lambda_ce = 1.0;
  double lambda_rec = 0.6;
  double student_temp = 0.1;
  double teacher_temp_start = 0.04;
  double teacher_temp = 0.07;
  double teacher_temp_warmup_epochs = 30;
  double center_momentum = 0.9;
};

struct OptimConfig {
  double lr = 5e-4;  ///< per 256 images; the step lr is lr * batch / 256
  double min_lr = 1e-6;
  double warmup_epochs = 10;
  double weight_decay = 0.04, weight_decay_end = 0.4;
  double clip_grad = 3.0;  ///< gradient-norm clip; 0 = off
  /// "global": one norm over all the student's gradients (torch's clip_grad_norm_); "per_tensor":
  /// each parameter tensor's gradient clipped to its own norm (DINO's clip_gradients).
  std::string clip_mode = "global";
  double freeze_last_layer_epochs = 1;
  double momentum_teacher = 0.996, momentum_teacher_end = 1.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

struct TrainConfig {
  double epochs = 10;  ///< may be fractional for short runs
  int64_t batch_size = 128;
  int64_t seed = 0;
  int threads = 0;  ///< CPU threads; 0 = all cores
  int64_t log_every = 10;       ///< steps between metric rows in run.h5
  int64_t checkpoint_every = 500;
  int64_t snapshot_every = 200;  ///< steps between probe-image snapshots; 0 = off
  std::vector<int64_t> probe_images{0, 1, 2, 3, 4, 5, 6, 7};
  /// CUDA arithmetic: "auto" (bf16 autocast on CUDA, fp32 on the CPU), "bf16", "bf16_stream"
  /// (bf16 autocast plus a bf16 residual stream and LayerNorms) or "fp32".
  std::string precision = "auto";
  /// CUDA only: capture the whole training step as one CUDA graph after a few eager steps and
  /// replay it (fixed shapes; one process). Ignored on the CPU.
  bool cuda_graph = false;
  /// "auto" (on with CUDA where the build has kernels for the GPU's architecture, core/kernels),
  /// "on" (refused where they cannot run) or "off"; JSON true / false stand for on / off. With
  /// bf16 autocast, each ViT residual add and the LayerNorm after it run as one fused kernel
  /// forward and one backward, and so do the tokens entering the first block (token_embed.h).
  std::string fused_norm = "auto";
  /// "auto", "on" or "off", as fused_norm: on CUDA, each crop set's augmentation (crop, colour
  /// jitter, grayscale, blur, solarisation, normalisation) in four fused passes.
  std::string fused_augment = "auto";
  /// "auto", "on" or "off", as fused_norm: on CUDA, the self-distillation cross-entropy (Eq. 2)
  /// from the student's logits as one kernel pass forward and one backward (dino_loss.h), and
  /// the reconstruction loss from the decoder's last convolution phases, the gather included
  /// (recon_loss.h).
  std::string fused_loss = "auto";
  /// "auto", "on" or "off", as fused_norm: on CUDA, the optimiser's step after the backward pass
  /// (AdamW, the frozen last layer, the teacher's EMA) as one kernel pass (fused_adamw.h).
  std::string fused_optimizer = "auto";
  /// "auto", "on" or "off", as fused_norm: on CUDA, each decoder upsampling stage's phase gather,
  /// BatchNorm (batch statistics) and ReLU as two kernel passes forward and two backward
  /// (core/kernels/decoder_norm.h); not with SyncBN (data-parallel ranks).
  std::string fused_decoder = "auto";
  /// "auto" (on with CUDA devices of less than 32 GiB, off on larger ones and on the CPU:
  /// recomputeGeluByDefault in core/train/engine.h), "on" or "off": the ViT's MLPs keep gelu's
  /// input alone for the backward pass and recompute gelu(x) there (less activation memory).
  std::string recompute_gelu = "auto";
  /// CUDA with bf16 autocast: each ViT MLP's backward pass takes GELU's derivative, its output
  /// and fc1's bias gradient in one pass (gelu_backward.h); with model.gelu "tanh" the first
  /// matrix product also applies bias + GELU in its cuBLASLt epilogue (whose backward epilogue
  /// stands in in builds without the CUDA kernels); GELU's output as recompute_gelu says.
  bool fused_mlp = false;
  /// CUDA: the scaled-dot-product attention kernel for sequences of more than 64 tokens
  /// (DeiT-S/16's global crops): "auto" (LibTorch's choice), "cudnn", "flash", "efficient" or
  /// "math" (core/model/attention_kernel.h).
  std::string attention_kernel = "auto";
  /// The same for sequences of at most 64 tokens (DeiT-S/16's local crops: 37); here "auto" runs
  /// the memory-efficient kernel where LibTorch 2.x has its switch and it takes the inputs
  /// (autoAttentionKernel in core/model/attention_kernel.h), LibTorch's choice otherwise.
  std::string attention_kernel_short = "auto";
};

struct EvalConfig {
  double every_epochs = 0;  ///< k-NN during training; 0 = off
  int64_t k = 20;
  int64_t subset = 10000;  ///< training images used as the k-NN bank during training; 0 = all
  double temperature = 0.07;
};

struct Config {
  DataConfig data;
  ModelConfig model;
  CropConfig crops;
  AugmentConfig augment;
  MaskConfig masking;
  LossConfig loss;
  OptimConfig optim;
  TrainConfig train;
  EvalConfig eval;
};

/// Parses a JSON object into a Config: presets first, then explicit keys. Unknown keys, wrong types
/// and out-of-range values throw MstError naming the key (and `source`, e.g. the file name).
Config configFromJson(const nlohmann::json& json, const std::string& source = "config");
nlohmann::json configToJson(const Config& config);
/// Reads a JSON file (MstError names the file on I/O or syntax errors), then configFromJson.
nlohmann::json loadJsonFile(const std::string& path);
/// Applies `key.path=value` to a JSON object; the value is parsed as JSON, else taken as a string.
void applyOverride(nlohmann::json& json, const std::string& assignment);
/// Checks cross-field rules (image size divisible by the patch, heads divide dim, ...).
void validateConfig(const Config& config);
/// One documented key, for forms that list every key (the workbench's config editor).
struct ConfigKeyInfo {
  std::string key;   ///< dotted path, e.g. masking.p
  std::string type;  ///< number | integer | bool | string | number[] | integer[]
  std::string help;
  std::vector<std::string> choices;  ///< the allowed values of an enumerated string, else empty
};
std::vector<ConfigKeyInfo> configKeys();
/// Value of `key` in `config` as JSON (MstError for an unknown key).
nlohmann::json configValue(const Config& config, const std::string& key);
/// The error a form shows at the field: "" when `key` = `value` is valid on top of `config`
/// (type, range and the cross-field rules), else the same one-line message the parser gives.
std::string checkConfigValue(const Config& config, const std::string& key,
                             const nlohmann::json& value);
/// Markdown table of every key with its type, default and meaning.
std::string configKeysMarkdown();
/// Names of the model presets, and the model config of one (MstError for an unknown name).
std::vector<std::string> modelPresetNames();
ModelConfig modelPreset(const std::string& name);

}  // namespace mst
