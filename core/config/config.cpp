/// @brief The single table of config keys: parsing, validation, JSON output and documentation.
#include "core/config/config.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/util/error.h"

namespace mst {
namespace {

using json = nlohmann::json;

/// One documented key. `set` parses and range-checks the JSON value, throwing a message without
/// the key (the caller adds it); `get` returns the current value as JSON.
struct KeyDef {
  std::string key;
  std::string type;
  std::string help;
  std::function<json(const Config&)> get;
  std::function<void(Config&, const json&)> set;
  std::vector<std::string> choices;  ///< enumerated strings (for forms)
};

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
                      "Loader threads that decode and batch ahead of the step.",
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
                      "Which patches the student sees as [MASK] (METHOD.md step 3).",
                      {"none", "random", "attention_guided", "attention_high"}));
    t.push_back(field("masking.p", &C::masking, &MaskConfig::p,
                      "Masking probability of each candidate patch.", inRange(0, 1)));
    t.push_back(field("masking.num", &C::masking, &MaskConfig::num,
                      "The lowest (highest) floor(n/num) attention patches are candidates.",
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
                      "Clip the global gradient norm to this value; 0 = off.",
                      atLeast<double>(0)));
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
    t.push_back(field("train.fused_norm", &C::train, &TrainConfig::fused_norm,
                      "CUDA with bf16 autocast: run each ViT residual add (with its stochastic "
                      "depth) and the LayerNorm after it as one fused kernel, forward and "
                      "backward; refused in a build without the kernels (CMake found no nvcc), "
                      "ignored on the CPU and in fp32."));
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

}  // namespace

std::vector<std::string> modelPresetNames() {
  return {"vit_micro28", "vit_tiny28", "vit_small28", "deit_t16", "deit_s16"};
}

ModelConfig modelPreset(const std::string& name) {
  ModelConfig m;
  m.preset = name;
  if (name == "vit_micro28") {  // test-sized: seconds per step on one core
    m.image_size = 28, m.patch_size = 4, m.channels = 1, m.dim = 64, m.depth = 2, m.heads = 2;
    m.head_hidden = 128, m.head_bottleneck = 32, m.out_dim = 256, m.decoder_widths = {32, 16};
  } else if (name == "vit_tiny28") {  // Fashion-MNIST default, sized for 2 CPU cores
    m.image_size = 28, m.patch_size = 4, m.channels = 1, m.dim = 96, m.depth = 4, m.heads = 3;
    m.head_hidden = 512, m.head_bottleneck = 128, m.out_dim = 1024, m.decoder_widths = {64, 32};
  } else if (name == "vit_small28") {  // bench_tiny28's network
    m.image_size = 28, m.patch_size = 4, m.channels = 3, m.dim = 192, m.depth = 6, m.heads = 3;
    m.head_hidden = 1024, m.head_bottleneck = 128, m.out_dim = 4096, m.decoder_widths = {96, 48};
  } else if (name == "deit_t16") {
    m.image_size = 224, m.patch_size = 16, m.channels = 3, m.dim = 192, m.depth = 12, m.heads = 3;
    m.head_hidden = 2048, m.head_bottleneck = 256, m.out_dim = 65536, m.decoder_widths = {};
  } else if (name == "deit_s16") {  // the paper's DeiT-S/16
    m.image_size = 224, m.patch_size = 16, m.channels = 3, m.dim = 384, m.depth = 12, m.heads = 6;
    m.head_hidden = 2048, m.head_bottleneck = 256, m.out_dim = 65536, m.decoder_widths = {};
  } else {
    std::string list;
    for (const auto& n : modelPresetNames()) list += (list.empty() ? "" : ", ") + n;
    throw MstError("config key model.preset: unknown preset '" + name + "' (allowed: " + list +
                   ")");
  }
  return m;
}

Config configFromJson(const json& input, const std::string& source) {
  if (!input.is_object()) throw MstError(source + ": the config must be a JSON object");
  Config config;
  // Flatten {"a": {"b": 1}} to "a.b" so nested and dotted spellings are both accepted.
  std::vector<std::pair<std::string, json>> flat;
  std::function<void(const std::string&, const json&)> walk = [&](const std::string& prefix,
                                                                   const json& node) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it.key().empty() && it.key()[0] == '_') continue;  // "_comment" and friends
      std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
      if (it->is_object())
        walk(key, *it);
      else
        flat.emplace_back(key, *it);
    }
  };
  walk("", input);
  auto apply = [&](const std::string& key, const json& value) {
    const KeyDef* def = findKey(key);
    if (!def) {
      // Suggest the closest known key so a typo is fixed at once.
      std::string section = key.substr(0, key.find('.'));
      std::string known;
      for (const auto& d : keyTable())
        if (d.key.rfind(section + ".", 0) == 0) known += (known.empty() ? "" : ", ") + d.key;
      throw MstError(source + ": unknown config key '" + key + "'" +
                     (known.empty() ? std::string(" (sections: data, model, crops, augment, "
                                                  "masking, loss, optim, train, eval)")
                                    : " (keys of '" + section + "': " + known + ")"));
    }
    try {
      def->set(config, value);
    } catch (const std::invalid_argument& e) {
      throw MstError(source + ": config key " + key + " " + e.what());
    }
  };
  // The preset sets every model.* default; explicit model.* keys then override it.
  for (const auto& [key, value] : flat)
    if (key == "model.preset") {
      apply(key, value);
      config.model = modelPreset(config.model.preset);
    }
  for (const auto& [key, value] : flat)
    if (key != "model.preset") apply(key, value);
  validateConfig(config);
  return config;
}

json configToJson(const Config& config) {
  json out = json::object();
  for (const auto& def : keyTable()) {
    std::string section = def.key.substr(0, def.key.find('.'));
    out[section][def.key.substr(def.key.find('.') + 1)] = def.get(config);
  }
  return out;
}

json loadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw MstError("cannot open config file " + path);
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    throw MstError("config file " + path + " is not valid JSON: " + e.what());
  }
}

void applyOverride(json& target, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw MstError("--set expects key.path=value, got '" + assignment + "'");
  std::string key = assignment.substr(0, eq);
  std::string text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error&) {
    value = text;  // bare words such as attention_guided are strings
  }
  if (!findKey(key)) {
    // Let configFromJson produce the one error message format for unknown keys.
    configFromJson(json{{key, value}}, "--set");
  }
  json* node = &target;
  std::stringstream parts(key);
  std::string part;
  std::vector<std::string> path;
  while (std::getline(parts, part, '.')) path.push_back(part);
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (!node->contains(path[i]) || !(*node)[path[i]].is_object()) (*node)[path[i]] = json::object();
    node = &(*node)[path[i]];
  }
  // A dotted key written flat in the file would shadow the nested one: drop it.
  target.erase(key);
  (*node)[path.back()] = value;
}

void validateConfig(const Config& c) {
  auto fail = [](const std::string& key, const std::string& why) {
    throw MstError("config key " + key + " " + why);
  };
  const auto& m = c.model;
  if (m.dim % m.heads != 0)
    fail("model.heads", "must divide model.dim (" + std::to_string(m.dim) + "), got " +
                            std::to_string(m.heads));
  if ((m.patch_size & (m.patch_size - 1)) != 0)
    fail("model.patch_size", "must be a power of two, got " + std::to_string(m.patch_size));
  if (m.image_size % m.patch_size != 0)
    fail("model.image_size", "must be divisible by model.patch_size (" +
                                 std::to_string(m.patch_size) + "), got " +
                                 std::to_string(m.image_size));
  int64_t stages = 0;
  for (int64_t p = m.patch_size; p > 1; p >>= 1) ++stages;
  if (!m.decoder_widths.empty() && static_cast<int64_t>(m.decoder_widths.size()) != stages)
    fail("model.decoder_widths", "must have log2(patch_size) = " + std::to_string(stages) +
                                     " entries, got " + std::to_string(m.decoder_widths.size()));
  if (c.crops.global_size % m.patch_size != 0)
    fail("crops.global_size", "must be divisible by model.patch_size (" +
                                  std::to_string(m.patch_size) + "), got " +
                                  std::to_string(c.crops.global_size));
  if (c.crops.local_crops > 0 && c.crops.local_size % m.patch_size != 0)
    fail("crops.local_size", "must be divisible by model.patch_size (" +
                                 std::to_string(m.patch_size) + "), got " +
                                 std::to_string(c.crops.local_size));
  if (c.crops.local_crops > 0 && c.crops.local_size > c.crops.global_size)
    fail("crops.local_size", "must not exceed crops.global_size (" +
                                 std::to_string(c.crops.global_size) + "), got " +
                                 std::to_string(c.crops.local_size));
  if (c.crops.global_scale_min > c.crops.global_scale_max)
    fail("crops.global_scale_min", "must not exceed crops.global_scale_max");
  if (c.crops.local_scale_min > c.crops.local_scale_max)
    fail("crops.local_scale_min", "must not exceed crops.local_scale_max");
  if (c.augment.blur_sigma_min > c.augment.blur_sigma_max)
    fail("augment.blur_sigma_min", "must not exceed augment.blur_sigma_max");
  if (!c.data.mean.empty() && c.data.mean.size() != c.data.std.size())
    fail("data.std", "must have as many entries as data.mean");
}

std::vector<ConfigKeyInfo> configKeys() {
  std::vector<ConfigKeyInfo> out;
  for (const auto& def : keyTable()) out.push_back({def.key, def.type, def.help, def.choices});
  return out;
}

json configValue(const Config& config, const std::string& key) {
  const KeyDef* def = findKey(key);
  if (!def) throw MstError("unknown config key '" + key + "'");
  return def->get(config);
}

std::string checkConfigValue(const Config& config, const std::string& key, const json& value) {
  const KeyDef* def = findKey(key);
  if (!def) return "unknown config key '" + key + "'";
  Config trial = config;
  try {
    def->set(trial, value);
    if (key == "model.preset") trial.model = modelPreset(trial.model.preset);
    validateConfig(trial);
  } catch (const std::invalid_argument& e) {
    return "config key " + key + " " + e.what();
  } catch (const MstError& e) {
    return e.what();
  }
  return "";
}

std::string configKeysMarkdown() {
  Config defaults;
  std::ostringstream out;
  out << "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const auto& def : keyTable()) {
    out << "| `" << def.key << "` | " << def.type << " | `" << def.get(defaults).dump() << "` | "
        << def.help << " |\n";
  }
  return out.str();
}

}  // namespace mst
