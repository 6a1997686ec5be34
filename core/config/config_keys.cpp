/// @brief The config key table (see config_keys.h): each key's type, help text, reader and range
/// check, in one place for parsing, validation messages, `mst config --keys` and the forms.
#include "core/config/config_keys.h"

#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "core/util/error.h"

namespace mst::config_detail {
namespace {

template <class T>
T typed(const json& value);

template <>
double typed<double>(const json& value) {
  if (!value.is_number()) throw std::invalid_argument("expects a number");
  return value.get<double>();
}
template <>
int64_t typed<int64_t>(const json& value) {
  // Out-of-range values must be rejected, not converted: casting 1e300 to int64 is undefined and
  // 2^64-1 would wrap to -1 (found by fuzz/fuzz_config.cpp).
  if (value.is_number_unsigned() &&
      value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    throw std::invalid_argument("expects an integer in the 64-bit range (got " + value.dump() +
                                ")");
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>()) {
    const double v = value.get<double>();
    if (v >= -0x1p63 && v < 0x1p63) return static_cast<int64_t>(v);
    throw std::invalid_argument("expects an integer in the 64-bit range (got " + value.dump() +
                                ")");
  }
  throw std::invalid_argument("expects an integer");
}
template <>
int typed<int>(const json& value) {
  const int64_t v = typed<int64_t>(value);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    throw std::invalid_argument("expects an integer in the 32-bit range (got " + value.dump() +
                                ")");
  return static_cast<int>(v);
}
template <>
bool typed<bool>(const json& value) {
  if (!value.is_boolean()) throw std::invalid_argument("expects true or false");
  return value.get<bool>();
}
template <>
std::string typed<std::string>(const json& value) {
  if (!value.is_string()) throw std::invalid_argument("expects a string");
  // A --set value is taken verbatim from argv and may be Latin-1; the config is written back as
  // JSON (config.json, the checkpoint's meta), where dump() throws on it mid-run.
  try {
    (void)value.dump();
  } catch (const json::type_error&) {
    throw std::invalid_argument("expects a UTF-8 string");
  }
  return value.get<std::string>();
}
template <>
std::vector<double> typed<std::vector<double>>(const json& value) {
  if (!value.is_array()) throw std::invalid_argument("expects an array of numbers");
  std::vector<double> out;
  for (const auto& v : value) out.push_back(typed<double>(v));
  return out;
}
template <>
std::vector<int64_t> typed<std::vector<int64_t>>(const json& value) {
  if (!value.is_array()) throw std::invalid_argument("expects an array of integers");
  std::vector<int64_t> out;
  for (const auto& v : value) out.push_back(typed<int64_t>(v));
  return out;
}

template <class T>
const char* typeName();
template <> const char* typeName<double>() { return "number"; }
template <> const char* typeName<int64_t>() { return "integer"; }
template <> const char* typeName<int>() { return "integer"; }
template <> const char* typeName<bool>() { return "bool"; }
template <> const char* typeName<std::string>() { return "string"; }
template <> const char* typeName<std::vector<double>>() { return "number[]"; }
template <> const char* typeName<std::vector<int64_t>>() { return "integer[]"; }

/// Range check for one value: returns an empty string when valid, else the allowed values.
template <class T>
using Check = std::function<std::string(const T&)>;

template <class T>
Check<T> atLeast(double lo) {
  return [lo](const T& v) {
    // "must be >= 1" for integer bounds, not "1.0".
    const json bound = std::floor(lo) == lo && std::abs(lo) < 1e15 ? json(static_cast<int64_t>(lo))
                                                                    : json(lo);
    return static_cast<double>(v) >= lo ? std::string() : "must be >= " + bound.dump();
  };
}
Check<double> inRange(double lo, double hi) {
  return [lo, hi](const double& v) {
    return v >= lo && v <= hi ? std::string()
                              : "must be in [" + json(lo).dump() + ", " + json(hi).dump() + "]";
  };
}
Check<std::string> oneOf(std::vector<std::string> allowed) {
  return [allowed](const std::string& v) {
    for (const auto& a : allowed)
      if (a == v) return std::string();
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    return "must be one of: " + list;
  };
}
Check<std::vector<double>> allInRange(double lo, double hi) {
  return [lo, hi](const std::vector<double>& v) {
    for (double x : v)
      if (!(x >= lo && x <= hi))
        return "every entry must be in [" + json(lo).dump() + ", " + json(hi).dump() + "]";
    return std::string();
  };
}
Check<std::vector<int64_t>> allAtLeast(int64_t lo) {
  return [lo](const std::vector<int64_t>& v) {
    for (int64_t x : v)
      if (x < lo) return "every entry must be >= " + std::to_string(lo);
    return std::string();
  };
}

template <class S, class T>
KeyDef field(std::string key, S Config::*section, T S::*member, std::string help,
             Check<T> check = {}) {
  KeyDef def;
  def.key = std::move(key);
  def.type = typeName<T>();
  def.help = std::move(help);
  def.get = [section, member](const Config& c) { return json((c.*section).*member); };
  def.set = [section, member, check](Config& c, const json& value) {
    T v = typed<T>(value);
    if (check) {
      std::string why = check(v);
      if (!why.empty()) throw std::invalid_argument(why + " (got " + value.dump() + ")");
    }
    (c.*section).*member = v;
  };
  return def;
}

/// An enumerated string key: checked with oneOf() and listed for forms.
template <class S>
KeyDef choiceField(std::string key, S Config::*section, std::string S::*member, std::string help,
                   std::vector<std::string> choices) {
  KeyDef def = field(std::move(key), section, member, std::move(help), oneOf(choices));
  def.choices = std::move(choices);
  return def;
}

/// auto | on | off, where a JSON bool (what the key was before it had "auto") means on / off:
/// configs and checkpoints written then still load, with the meaning they had.
template <class S>
KeyDef switchField(std::string key, S Config::*section, std::string S::*member, std::string help) {
  KeyDef def = choiceField(std::move(key), section, member, std::move(help), {"auto", "on", "off"});
  def.set = [set = def.set](Config& c, const json& value) {
    set(c, value.is_boolean() ? json(value.get<bool>() ? "on" : "off") : value);
  };
  return def;
}

}  // namespace

const std::vector<KeyDef>& keyTable() {
  static const std::vector<KeyDef> table = [] {
    using C = Config;
    std::vector<KeyDef> t;
    // data
    t.push_back(field("data.path", &C::data, &DataConfig::path,
                      "Data set location: the Fashion-MNIST folder (IDX .gz), the CIFAR-10 "
                      "binary folder, or an ImageFolder root (train/ and val/ with one sub-folder "
                      "per class)."));
    t.push_back(choiceField("data.format", &C::data, &DataConfig::format, "Reader for data.path.",
                      {"fashion_mnist", "cifar10", "image_folder"}));
    t.push_back(field("data.limit", &C::data, &DataConfig::limit,
                      "Use only the first N training images; 0 = all.", atLeast<int64_t>(0)));
    t.push_back(field("data.load_size", &C::data, &DataConfig::load_size,
                      "image_folder: decoded images are resized (shorter side) and centre-cropped "
                      "to this square before the crops are drawn.",
                      atLeast<int64_t>(8)));
    t.push_back(field("data.workers", &C::data, &DataConfig::workers,
                      "Loader threads that decode ahead of the step; they share each batch's "
                      "images, so all of them work on the earliest batches.",
                      atLeast<int>(1)));
    t.push_back(field("data.prefetch", &C::data, &DataConfig::prefetch,
                      "Batches prepared ahead of the step.", atLeast<int>(1)));
    t.push_back(field("data.mean", &C::data, &DataConfig::mean,
                      "Per-channel normalisation mean in [0,1] units; [] = the data set's own.",
                      allInRange(0, 1)));
    t.push_back(field("data.std", &C::data, &DataConfig::std,
                      "Per-channel normalisation std; [] = the data set's own.",
                      allInRange(1e-6, 10)));
    // model
    t.push_back(choiceField("model.preset", &C::model, &ModelConfig::preset,
                      "Architecture preset applied before the other model.* keys: vit_micro28, "
                      "vit_tiny28, vit_small28, deit_s16, deit_t16.",
                      modelPresetNames()));
    t.push_back(field("model.image_size", &C::model, &ModelConfig::image_size,
                      "Global crop size G that the position embedding is made for.",
                      atLeast<int64_t>(4)));
    t.push_back(field("model.patch_size", &C::model, &ModelConfig::patch_size,
                      "Patch size P (a power of two: the decoder upsamples log2(P) times).",
                      atLeast<int64_t>(2)));
    t.push_back(field("model.channels", &C::model, &ModelConfig::channels,
                      "Image channels seen by the network (1 or 3); 3-channel data is converted "
                      "to luminance for 1, 1-channel data replicated for 3.",
                      Check<int64_t>([](const int64_t& v) {
                        return v == 1 || v == 3 ? std::string() : std::string("must be 1 or 3");
                      })));
    t.push_back(field("model.dim", &C::model, &ModelConfig::dim, "Token width D.",
                      atLeast<int64_t>(8)));
    t.push_back(field("model.depth", &C::model, &ModelConfig::depth, "Transformer blocks.",
                      atLeast<int64_t>(1)));
    t.push_back(field("model.heads", &C::model, &ModelConfig::heads,
                      "Attention heads (must divide model.dim).", atLeast<int64_t>(1)));
    t.push_back(field("model.mlp_ratio", &C::model, &ModelConfig::mlp_ratio,
                      "MLP hidden width as a multiple of D.", inRange(0.25, 16)));
    t.push_back(field("model.drop_path", &C::model, &ModelConfig::drop_path,
                      "Stochastic depth rate of the student (the teacher has none).",
                      inRange(0, 0.9)));
    t.push_back(field("model.head_hidden", &C::model, &ModelConfig::head_hidden,
                      "Hidden width of the projection head's MLP.", atLeast<int64_t>(8)));
    t.push_back(field("model.head_bottleneck", &C::model, &ModelConfig::head_bottleneck,
                      "Bottleneck width before L2 normalisation.", atLeast<int64_t>(8)));
    t.push_back(field("model.out_dim", &C::model, &ModelConfig::out_dim,
                      "K, width of the weight-normalised last layer (65536 for ImageNet).",
                      atLeast<int64_t>(2)));
    t.push_back(choiceField("model.gelu", &C::model, &ModelConfig::gelu,
                            "GELU of the ViT's MLPs and of the head: erf = exact (DeiT's); tanh = "
                            "the tanh approximation (cuBLASLt's GELU epilogue, which "
                            "train.fused_mlp uses with it).",
                            {"erf", "tanh"}));
    t.push_back(field("model.norm_last_layer", &C::model, &ModelConfig::norm_last_layer,
                      "Freeze the weight-norm gain of the head's last layer at 1."));
    t.push_back(field("model.decoder_widths", &C::model, &ModelConfig::decoder_widths,
                      "Channel widths of the decoder's log2(P) stages; [] = 256 halving per "
                      "stage.",
                      allAtLeast(1)));
    // crops
    t.push_back(field("crops.global_size", &C::crops, &CropConfig::global_size,
                      "Size of the two global crops (normally model.image_size).",
                      atLeast<int64_t>(4)));
    t.push_back(field("crops.local_size", &C::crops, &CropConfig::local_size,
                      "Size of the local crops (a multiple of the patch size).",
                      atLeast<int64_t>(2)));
    t.push_back(field("crops.local_crops", &C::crops, &CropConfig::local_crops,
                      "Number N of local crops per image.", atLeast<int64_t>(0)));
    t.push_back(field("crops.global_scale_min", &C::crops, &CropConfig::global_scale_min,
                      "Random-resized-crop area range of the global crops (min).", inRange(0.01, 1)));
    t.push_back(field("crops.global_scale_max", &C::crops, &CropConfig::global_scale_max,
                      "Random-resized-crop area range of the global crops (max).", inRange(0.01, 1)));
    t.push_back(field("crops.local_scale_min", &C::crops, &CropConfig::local_scale_min,
                      "Random-resized-crop area range of the local crops (min).", inRange(0.01, 1)));
    t.push_back(field("crops.local_scale_max", &C::crops, &CropConfig::local_scale_max,
                      "Random-resized-crop area range of the local crops (max).", inRange(0.01, 1)));
    // augment
    t.push_back(field("augment.flip_p", &C::augment, &AugmentConfig::flip_p,
                      "Horizontal flip probability.", inRange(0, 1)));
    t.push_back(field("augment.jitter_p", &C::augment, &AugmentConfig::jitter_p,
                      "Colour-jitter probability.", inRange(0, 1)));
    t.push_back(field("augment.brightness", &C::augment, &AugmentConfig::brightness,
                      "Brightness jitter: factor in [1-b, 1+b].", inRange(0, 1)));
    t.push_back(field("augment.contrast", &C::augment, &AugmentConfig::contrast,
                      "Contrast jitter: factor in [1-c, 1+c].", inRange(0, 1)));
    t.push_back(field("augment.saturation", &C::augment, &AugmentConfig::saturation,
                      "Saturation jitter (3-channel data only).", inRange(0, 1)));
    t.push_back(field("augment.hue", &C::augment, &AugmentConfig::hue,
                      "Hue jitter in turns (3-channel data only).", inRange(0, 0.5)));
    t.push_back(field("augment.grayscale_p", &C::augment, &AugmentConfig::grayscale_p,
                      "Grayscale probability (3-channel data only).", inRange(0, 1)));
    t.push_back(field("augment.blur_sigma_min", &C::augment, &AugmentConfig::blur_sigma_min,
                      "Gaussian blur sigma range in pixels (min).", inRange(0.01, 50)));
    t.push_back(field("augment.blur_sigma_max", &C::augment, &AugmentConfig::blur_sigma_max,
                      "Gaussian blur sigma range in pixels (max).", inRange(0.01, 50)));
    t.push_back(field("augment.blur_p_global1", &C::augment, &AugmentConfig::blur_p_global1,
                      "Blur probability of the first global crop.", inRange(0, 1)));
    t.push_back(field("augment.blur_p_global2", &C::augment, &AugmentConfig::blur_p_global2,
                      "Blur probability of the second global crop.", inRange(0, 1)));
    t.push_back(field("augment.blur_p_local", &C::augment, &AugmentConfig::blur_p_local,
                      "Blur probability of each local crop.", inRange(0, 1)));
    t.push_back(field("augment.solarize_p", &C::augment, &AugmentConfig::solarize_p,
                      "Solarisation probability of the second global crop.", inRange(0, 1)));
    // masking
    t.push_back(choiceField("masking.strategy", &C::masking, &MaskConfig::strategy,
                      "Which patches of the student's global crops are [MASK] (local crops never "
                      "are): none; random (each patch with probability masking.p); "
                      "attention_guided (each of the floor(n/masking.num) patches of lowest "
                      "teacher attention with probability masking.p, paper Eq. 5); "
                      "attention_high (the same on the highest).",
                      {"none", "random", "attention_guided", "attention_high"}));
    t.push_back(field("masking.p", &C::masking, &MaskConfig::p,
                      "Masking probability of each candidate patch.", inRange(0, 1)));
    t.push_back(field("masking.num", &C::masking, &MaskConfig::num,
                      "The lowest (highest) floor(n/num) attention patches of a global crop's n "
                      "are candidates; at most n.",
                      atLeast<int64_t>(1)));
    // loss
    t.push_back(field("loss.lambda_ce", &C::loss, &LossConfig::lambda_ce,
                      "Weight of the self-distillation cross-entropy L_CE.", atLeast<double>(0)));
    t.push_back(field("loss.lambda_rec", &C::loss, &LossConfig::lambda_rec,
                      "Weight of the reconstruction loss L_rec.", atLeast<double>(0)));
    t.push_back(field("loss.student_temp", &C::loss, &LossConfig::student_temp,
                      "Student temperature tau_s.", inRange(1e-3, 10)));
    t.push_back(field("loss.teacher_temp_start", &C::loss, &LossConfig::teacher_temp_start,
                      "Teacher temperature at step 0.", inRange(1e-3, 10)));
    t.push_back(field("loss.teacher_temp", &C::loss, &LossConfig::teacher_temp,
                      "Teacher temperature after the warm-up.", inRange(1e-3, 10)));
    t.push_back(field("loss.teacher_temp_warmup_epochs", &C::loss,
                      &LossConfig::teacher_temp_warmup_epochs,
                      "Linear teacher-temperature warm-up, capped at 30% of train.epochs.",
                      atLeast<double>(0)));
    t.push_back(field("loss.center_momentum", &C::loss, &LossConfig::center_momentum,
                      "Momentum of the teacher-output centre.", inRange(0, 1)));
    // optim
    t.push_back(field("optim.lr", &C::optim, &OptimConfig::lr,
                      "Peak learning rate per 256 images (scaled by batch/256).",
                      inRange(0, 10)));
    t.push_back(field("optim.min_lr", &C::optim, &OptimConfig::min_lr,
                      "Learning rate at the end of the cosine.", inRange(0, 10)));
    t.push_back(field("optim.warmup_epochs", &C::optim, &OptimConfig::warmup_epochs,
                      "Linear learning-rate warm-up, capped at 10% of train.epochs.",
                      atLeast<double>(0)));
    t.push_back(field("optim.weight_decay", &C::optim, &OptimConfig::weight_decay,
                      "Weight decay at the start of the cosine.", inRange(0, 10)));
    t.push_back(field("optim.weight_decay_end", &C::optim, &OptimConfig::weight_decay_end,
                      "Weight decay at the end of the cosine.", inRange(0, 10)));
    t.push_back(field("optim.clip_grad", &C::optim, &OptimConfig::clip_grad,
                      "Clip the gradient norm to this value (as optim.clip_mode says); 0 = off.",
                      atLeast<double>(0)));
    t.push_back(choiceField("optim.clip_mode", &C::optim, &OptimConfig::clip_mode,
                            "global = one norm over all of the student's gradients, scaled "
                            "together (torch's clip_grad_norm_); per_tensor = each parameter "
                            "tensor's gradient scaled to at most optim.clip_grad on its own "
                            "(DINO's clip_gradients, which MST's code inherits).",
                            {"global", "per_tensor"}));
    t.push_back(field("optim.freeze_last_layer_epochs", &C::optim,
                      &OptimConfig::freeze_last_layer_epochs,
                      "Epochs during which the head's last layer is not updated.",
                      atLeast<double>(0)));
    t.push_back(field("optim.momentum_teacher", &C::optim, &OptimConfig::momentum_teacher,
                      "EMA momentum of the teacher at step 0 (cosine to the end value).",
                      inRange(0, 1)));
    t.push_back(field("optim.momentum_teacher_end", &C::optim,
                      &OptimConfig::momentum_teacher_end, "EMA momentum at the last step.",
                      inRange(0, 1)));
    t.push_back(field("optim.beta1", &C::optim, &OptimConfig::beta1, "AdamW beta1.",
                      inRange(0, 0.9999)));
    t.push_back(field("optim.beta2", &C::optim, &OptimConfig::beta2, "AdamW beta2.",
                      inRange(0, 0.99999)));
    t.push_back(field("optim.eps", &C::optim, &OptimConfig::eps, "AdamW epsilon.",
                      inRange(1e-12, 1)));
    // train
    t.push_back(field("train.epochs", &C::train, &TrainConfig::epochs,
                      "Length of the run in epochs (fractions allowed).", inRange(1e-3, 1e5)));
    t.push_back(field("train.batch_size", &C::train, &TrainConfig::batch_size,
                      "Images per step (per process when data-parallel).", atLeast<int64_t>(1)));
    t.push_back(field("train.seed", &C::train, &TrainConfig::seed,
                      "Seed of the initial weights, the data order and every step's randomness.",
                      atLeast<int64_t>(0)));
    t.push_back(field("train.threads", &C::train, &TrainConfig::threads,
                      "CPU threads for LibTorch; 0 = all cores.", atLeast<int>(0)));
    t.push_back(field("train.log_every", &C::train, &TrainConfig::log_every,
                      "Steps between rows of /metrics in run.h5.", atLeast<int64_t>(1)));
    t.push_back(field("train.checkpoint_every", &C::train, &TrainConfig::checkpoint_every,
                      "Steps between checkpoints (one is always written at the end and on "
                      "Stop).",
                      atLeast<int64_t>(1)));
    t.push_back(field("train.snapshot_every", &C::train, &TrainConfig::snapshot_every,
                      "Steps between probe-image snapshots in run.h5; 0 = off.",
                      atLeast<int64_t>(0)));
    t.push_back(field("train.probe_images", &C::train, &TrainConfig::probe_images,
                      "Training-set indices of the probe images shown in snapshots.",
                      allAtLeast(0)));
    t.push_back(choiceField("train.precision", &C::train, &TrainConfig::precision,
                            "Arithmetic: auto = bf16 autocast on CUDA (TF32 for what stays in "
                            "fp32), fp32 on the CPU; bf16 = the same, refused on the CPU; "
                            "bf16_stream = bf16 autocast with the ViT's residual stream and "
                            "LayerNorms in bf16 too (half the bytes between the matrix products; "
                            "CUDA only); fp32 = full fp32 everywhere (no TF32).",
                            {"auto", "bf16", "bf16_stream", "fp32"}));
    t.push_back(field("train.cuda_graph", &C::train, &TrainConfig::cuda_graph,
                      "CUDA, one process: capture the whole training step as a CUDA graph after "
                      "3 eager steps and replay it (removes kernel-launch overhead); ignored on "
                      "the CPU, refused with data-parallel ranks."));
    t.push_back(switchField("train.fused_norm", &C::train, &TrainConfig::fused_norm,
                            "CUDA with bf16 autocast: run each ViT residual add (with its "
                            "stochastic depth and the branch's output bias) and the LayerNorm "
                            "after it as one fused kernel, forward and backward, and gather the "
                            "attention's q/k/v gradients with their bias sum in one pass, and "
                            "put the [MASK] and CLS tokens and the position embedding into the "
                            "stream in one pass each way (the "
                            "same arithmetic, the bias added in fp32; +21 % images/s for "
                            "DeiT-S/16 on an H200): auto = on where the build has kernels for "
                            "this GPU (CMake found nvcc; MST_CUDA_ARCHITECTURES, 90 by default) "
                            "and they pass their self-check against ATen at the run's shapes "
                            "when it starts (else ATen's operations, with a note); on = refused "
                            "where they cannot run or fail it; off. "
                            "Ignored on the CPU and in fp32; true / false mean on / off."));
    t.push_back(switchField("train.fused_augment", &C::train, &TrainConfig::fused_augment,
                            "CUDA: run each crop set's augmentation (crop, colour jitter, "
                            "grayscale, blur, solarisation, normalisation) as four fused kernels "
                            "with the same random draws: auto = on where the build has kernels "
                            "for this GPU and they pass their self-check; on = refused where they "
                            "cannot run or fail it; off. Ignored on "
                            "the CPU; true / false mean on / off."));
    t.push_back(switchField("train.fused_loss", &C::train, &TrainConfig::fused_loss,
                            "CUDA: compute the self-distillation cross-entropy (L_CE) from the "
                            "student's logits in one kernel pass forward and one backward, "
                            "without their fp32 copy (the same arithmetic, in fp32), and the "
                            "reconstruction loss (L_rec) from the decoder's last convolution "
                            "with its phase gather in the same kernels: auto = on "
                            "where the build has kernels for this GPU and they pass their "
                            "self-check; on = refused where they cannot run or fail it; off. "
                            "Ignored on the CPU; true / false mean on / off."));
    t.push_back(switchField("train.fused_optimizer", &C::train, &TrainConfig::fused_optimizer,
                            "CUDA: run the optimiser's step after the backward pass (AdamW with "
                            "decoupled weight decay, the frozen last layer held, the teacher's "
                            "EMA) as one kernel pass over the flat parameter buffers instead of "
                            "about fifteen ATen operations (the same arithmetic, in fp32): auto = "
                            "on where the build has kernels for this GPU and they pass their "
                            "self-check; on = refused where they cannot run or fail it; off. "
                            "Ignored on the CPU; true / false mean on / off."));
    t.push_back(switchField("train.fused_decoder", &C::train, &TrainConfig::fused_decoder,
                            "CUDA: run each decoder upsampling stage's phase gather, BatchNorm "
                            "(batch statistics, running statistics updated) and ReLU as two "
                            "kernel passes forward and two backward, keeping only the "
                            "convolution's output for the backward pass (the same arithmetic, "
                            "statistics summed in fp64): auto = on where the build has kernels "
                            "for this GPU, they pass their self-check, and in one process "
                            "(data-parallel ranks normalise with SyncBN); on = refused where they "
                            "cannot run or fail it; off. Stages whose widths "
                            "the kernels do not take run ATen's operations. Ignored on the CPU; "
                            "true / false mean on / off."));
    t.push_back(choiceField("train.recompute_gelu", &C::train, &TrainConfig::recompute_gelu,
                            "The ViT's MLPs keep only GELU's input for the backward pass, which "
                            "recomputes GELU's output (the same values and gradients, about a "
                            "fifth less activation memory for one more elementwise pass): auto = "
                            "on with CUDA devices of less than 32 GiB, off on larger ones (DeiT-S/16 "
                            "at batch 128: 3.4 GB more, a 3 % faster step) and on the CPU (where "
                            "the exact GELU costs more than the memory saved); on; off.",
                            {"auto", "on", "off"}));
    t.push_back(field("train.fused_mlp", &C::train, &TrainConfig::fused_mlp,
                      "CUDA with bf16 autocast: each ViT MLP's backward pass takes GELU's "
                      "derivative, GELU's output and fc1's bias gradient in one pass over the "
                      "activations (the build's CUDA kernels); with model.gelu = tanh the "
                      "first matrix product also adds the bias and applies GELU in its "
                      "epilogue (cuBLASLt; its backward epilogue stands in where the build has "
                      "no kernels). GELU's output is stored or recomputed as "
                      "train.recompute_gelu says. Refused where it cannot run (tanh: no "
                      "cuBLASLt; erf: no kernels for the GPU) and where the GELU backward "
                      "kernel fails its self-check against ATen when the run starts; ignored "
                      "on the CPU and in fp32."));
    t.push_back(choiceField("train.attention_kernel", &C::train, &TrainConfig::attention_kernel,
                            "CUDA with LibTorch 2.x: the scaled-dot-product attention kernel for "
                            "sequences of more than 64 tokens (DeiT-S/16's global crops): auto = "
                            "LibTorch's choice; cudnn, flash (FlashAttention-2), efficient "
                            "(memory-efficient) = that kernel, with LibTorch's math path where it "
                            "cannot take the inputs (flash and cudnn in fp32); math. The same "
                            "attention up to rounding; ignored on the CPU.",
                            {"auto", "cudnn", "flash", "efficient", "math"}));
    t.push_back(choiceField("train.attention_kernel_short", &C::train,
                            &TrainConfig::attention_kernel_short,
                            "As train.attention_kernel, for sequences of at most 64 tokens "
                            "(DeiT-S/16's 96-px local crops: 37 tokens), except that auto runs "
                            "the memory-efficient kernel where LibTorch has its switch and it "
                            "takes the inputs (1.5 % faster per step than LibTorch's choice, "
                            "cuDNN's, on an H200), LibTorch's choice otherwise.",
                            {"auto", "cudnn", "flash", "efficient", "math"}));
    // eval
    t.push_back(field("eval.every_epochs", &C::eval, &EvalConfig::every_epochs,
                      "k-NN evaluation during training every this many epochs; 0 = off.",
                      atLeast<double>(0)));
    t.push_back(field("eval.k", &C::eval, &EvalConfig::k, "Neighbours of the k-NN vote.",
                      atLeast<int64_t>(1)));
    t.push_back(field("eval.subset", &C::eval, &EvalConfig::subset,
                      "Training images in the k-NN bank during training; 0 = all.",
                      atLeast<int64_t>(0)));
    t.push_back(field("eval.temperature", &C::eval, &EvalConfig::temperature,
                      "k-NN vote weight exp(sim / T).", inRange(1e-3, 10)));
    return t;
  }();
  return table;
}

const KeyDef* findKey(const std::string& key) {
  for (const auto& def : keyTable())
    if (def.key == key) return &def;
  return nullptr;
}

}  // namespace mst::config_detail
