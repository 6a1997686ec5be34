/// @brief Engine implementation (see engine.h).
#include "core/train/engine.h"

#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

#include "core/dist/communicator.h"
#include "core/dist/gradient_reducer.h"
#include "core/kernels/fused_adamw.h"
#include "core/train/losses.h"
#include "core/util/devices.h"
#include "core/util/error.h"
#include "core/util/torch_compat.h"

namespace mst {
namespace {

using Named = std::vector<std::pair<std::string, torch::Tensor>>;

void collect(Named& out, const std::string& prefix, torch::nn::Module& module) {
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    out.emplace_back(prefix + item.key(), item.value());
}

/// The schedules' view of the config: the lr is scaled by the global batch (METHOD.md step 8).
Config scheduleConfig(Config c, const EngineOptions& o) {
  if (o.comm) c.train.batch_size *= o.comm->worldSize();
  return c;
}

ModelConfig teacherModel(ModelConfig m) {
  m.drop_path = 0.0;
  return m;
}

/// Images to the global crop size, float [0,1], with the network's channel count.
torch::Tensor probeInput(const MultiCrop& augment, const torch::Tensor& images, int64_t size,
                         const torch::Device& device) {
  auto x = augment.toFloat(images.to(device));
  if (x.size(2) != size || x.size(3) != size) {
    x = torch::nn::functional::interpolate(
        x, torch::nn::functional::InterpolateFuncOptions()
               .size(std::vector<int64_t>{size, size})
               .mode(torch::kBilinear)
               .align_corners(false));
  }
  return x;
}

/// The memory of `device` as listDevices() reports it (0: the CPU, or unknown).
int64_t deviceMemoryBytes(const torch::Device& device) {
  if (!device.is_cuda()) return 0;
  const std::string id = "cuda:" + std::to_string(device.has_index() ? device.index() : 0);
  for (const auto& d : listDevices())
    if (d.id == id) return d.memory_bytes;
  return 0;
}

}  // namespace

bool recomputeGeluByDefault(const torch::Device& device, int64_t device_memory_bytes) {
  constexpr int64_t kLarge = int64_t{32} << 30;
  return device.is_cuda() && device_memory_bytes < kLarge;
}

Engine::Engine(const Config& config, const EngineOptions& options)
    : config_(config), options_(options),
      schedules_(scheduleConfig(config, options), options.steps_per_epoch, options.total_steps),
      augment_(config.crops, config.augment, config.model.channels, options.mean, options.std),
      strategy_(parseMaskStrategy(config.masking.strategy)) {
  // The initial weights are a function of the seed alone.
  torch::manual_seed(static_cast<uint64_t>(config.train.seed));
  student_vit = Vit(config.model);
  student_head = DinoHead(config.model);
  decoder = Decoder(config.model);
  teacher_vit = Vit(teacherModel(config.model));
  teacher_head = DinoHead(teacherModel(config.model));
  for (torch::nn::Module* m : std::initializer_list<torch::nn::Module*>{
           student_vit.get(), student_head.get(), decoder.get(), teacher_vit.get(),
           teacher_head.get()})
    m->to(options.device);
  teacher_vit->eval();
  teacher_head->eval();

  Named s, t;
  collect(s, "vit.", *student_vit);
  collect(s, "head.", *student_head);
  const size_t shared = s.size();
  collect(s, "decoder.", *decoder);
  collect(t, "vit.", *teacher_vit);
  collect(t, "head.", *teacher_head);
  TORCH_CHECK(t.size() == shared, "Engine: teacher and student parameter lists differ");
  student = FlatParams(s, /*with_grads=*/true);
  teacher = FlatParams(t, /*with_grads=*/false);
  for (auto& [name, p] : t) p.set_requires_grad(false);
  {
    torch::NoGradGuard guard;
    teacher.values().copy_(student.values().narrow(0, 0, teacher.numel()));
  }
  for (const auto& slice : student.slices()) {
    if (slice.name.rfind("head.", 0) == 0 && DinoHeadImpl::isLastLayer(slice.name)) {
      if (last_numel_ == 0) last_offset_ = slice.offset;
      TORCH_CHECK(slice.offset == last_offset_ + last_numel_, "Engine: last layer not contiguous");
      last_numel_ += slice.numel;
    }
  }
  exp_avg = torch::zeros_like(student.values());
  exp_avg_sq = torch::zeros_like(student.values());
  decay_mask = student.decayMask();
  center = torch::zeros({1, config.model.out_dim}, student.values().options());
  sched_ = torch::zeros({10}, student.values().options());
  const auto& precision = config.train.precision;
  if (options.device.is_cuda()) {
    bf16_ = precision != "fp32";
    auto& ctx = at::globalContext();
    ctx.setBenchmarkCuDNN(true);  // the decoder's convolutions have fixed shapes
    // TF32 for what autocast leaves in fp32; an fp32 run stays exact fp32 (the CPU agreement).
    ctx.setAllowTF32CuBLAS(bf16_);
    ctx.setAllowTF32CuDNN(bf16_);
    if (config.train.cuda_graph && options.comm)
      throw MstError("config key train.cuda_graph: CUDA graphs are for one process; this run has " +
                     std::to_string(options.comm->worldSize()) +
                     " data-parallel ranks (their collectives are not captured): set it to false");
    graph_wanted_ = config.train.cuda_graph;
    if (graph_wanted_ && !StepGraph::available())
      throw MstError("config key train.cuda_graph: this build of LibTorch has no CUDA graphs");
    if (precision == "bf16_stream") {
      student_vit->stream_dtype = torch::kBFloat16;
      teacher_vit->stream_dtype = torch::kBFloat16;
    }
  } else if (precision == "bf16" || precision == "bf16_stream") {
    throw MstError("config key train.precision: " + precision + " needs a CUDA device (this run is on " +
                   options.device.str() + ")");
  }
  configureKernels(config, options);
  const auto& recompute = config.train.recompute_gelu;
  recompute_gelu_ = recompute == "on" ||
                    (recompute == "auto" &&
                     recomputeGeluByDefault(options.device, deviceMemoryBytes(options.device)));
  student_vit->setRecomputeGelu(recompute_gelu_);
  if (options.comm) {
    std::vector<torch::Tensor> params;
    for (auto& [name, p] : s) params.push_back(p);
    reducer_ = std::make_unique<GradientReducer>(*options.comm, std::move(params), student.grads(),
                                                 options.bucket_bytes);
    decoder->setSync(options.comm);
  }
}

Engine::~Engine() = default;

void Engine::syncFromRank0() {
  if (!options_.comm) return;
  torch::NoGradGuard guard;
  std::vector<torch::Tensor> state{student.values(), teacher.values(), exp_avg, exp_avg_sq,
                                   center};
  for (auto& b : decoder->named_buffers()) state.push_back(b.value());
  auto step = torch::full({1}, step_, torch::TensorOptions(torch::kInt64).device(options_.device));
  state.push_back(step);
  options_.comm->broadcast(state, /*root=*/0);
  step_ = step.item<int64_t>();
}

int64_t Engine::patchesPerCrop() const {
  int64_t g = config_.crops.global_size / config_.model.patch_size;
  return g * g;
}

torch::Tensor Engine::lastLayerSlice(torch::Tensor& flat) const {
  return flat.narrow(0, last_offset_, last_numel_);
}

bool Engine::graphActive() const { return graph_ && graph_->captured(); }

void Engine::phase(const char* name) {
  if (!phase_timing_ || graph_) return;  // never wait inside (or after) a graph capture
  const auto& d = options_.device;
  if (d.is_cuda()) torch::cuda::synchronize(d.has_index() ? d.index() : 0);
  const auto now = std::chrono::steady_clock::now();
  if (name != nullptr)
    phase_ms_[name] += std::chrono::duration<double, std::milli>(now - phase_start_).count();
  phase_start_ = now;
}

void Engine::loadSchedule(const ScheduleValues& s) {
  const auto& o = config_.optim;
  const double t = static_cast<double>(step_ + 1);
  // The frozen last layer gets no gradient, so its moments start at its first unfrozen step:
  // its bias corrections count from there, as if its optimiser state began then (DINO leaves
  // its gradient out, so AdamW starts the parameter's state fresh). With the global t its first
  // updates would be up to several times too large.
  const double t_last = std::max<double>(1.0, t - static_cast<double>(schedules_.freezeSteps()));
  const std::vector<float> values{static_cast<float>(s.lr),
                                  static_cast<float>(s.weight_decay),
                                  static_cast<float>(s.momentum),
                                  static_cast<float>(s.teacher_temp),
                                  s.freeze_last_layer ? 1.0f : 0.0f,
                                  static_cast<float>(1.0 - std::pow(o.beta1, t)),
                                  static_cast<float>(1.0 - std::pow(o.beta2, t)),
                                  0.0f,
                                  static_cast<float>(1.0 - std::pow(o.beta1, t_last)),
                                  static_cast<float>(1.0 - std::pow(o.beta2, t_last))};
  auto host = torch::tensor(values, torch::kFloat);
  if (sched_.is_cuda()) host = host.pin_memory();  // asynchronous, and safe to reuse
  sched_.copy_(host, /*non_blocking=*/true);
}

StepMetrics Engine::trainStep(const torch::Tensor& images, bool stop_vote) {
  const auto schedule = schedules_.at(step_);
  loadSchedule(schedule);
  StepMetrics m;
  const bool graph_shape = !graph_ || images.sizes() == graph_images_.sizes();
  if (graph_wanted_ && eager_steps_ >= kGraphWarmupSteps && graph_shape) {
    m = replayGraph(images);
  } else {
    // Eager. host_rng: the CPU generator's draws, copied to the device (agreement checks).
    const auto rng_device = options_.host_rng ? torch::Device(torch::kCPU) : options_.device;
    at::Generator gen = makeGenerator(rng_device, mixSeed(config_.train.seed, step_));
    m = stepBody(toDeviceOverlapped(images, options_.device), gen, stop_vote);
    ++eager_steps_;
  }
  m.step = step_++;
  m.schedule = schedule;
  return m;
}

StepMetrics Engine::replayGraph(const torch::Tensor& images) {
  if (!graph_) {
    graph_images_ = images.to(options_.device).clone();
    graph_gen_ = makeGenerator(options_.device, mixSeed(config_.train.seed, step_));
    graph_ = std::make_unique<StepGraph>(options_.device);
    graph_->capture([&] { graph_out_ = stepBody(graph_images_, *graph_gen_, false); }, *graph_gen_);
  }
  graph_images_.copy_(images, /*non_blocking=*/true);
  // A replay draws from the generator's seed and offset as they are now: this step's stream.
  graph_gen_->set_current_seed(mixSeed(config_.train.seed, step_));
  graph_->replay();
  // The graph overwrites its outputs on the next replay: hand out copies (one small kernel).
  auto packed = torch::stack({graph_out_.loss, graph_out_.loss_ce, graph_out_.loss_rec,
                              graph_out_.grad_norm, graph_out_.mask_ratio});
  StepMetrics out;
  out.loss = packed[0];
  out.loss_ce = packed[1];
  out.loss_rec = packed[2];
  out.grad_norm = packed[3];
  out.mask_ratio = packed[4];
  return out;
}

StepMetrics Engine::stepBody(const torch::Tensor& images, at::Generator& gen, bool stop_vote) {
  Communicator* comm = options_.comm;
  // Which rows of the global batch these are; the whole batch (plain torch::rand) without comm.
  const BatchShard shard =
      comm ? shardOf(comm->rank(), comm->worldSize(), images.size(0)) : BatchShard{};
  StepMetrics m;
  phase(nullptr);
  auto views = augment_(images, gen, shard);
  phase("augment");

  torch::Tensor teacher_out, mask, loss;
  {
    AutocastGuard autocast(bf16_);  // forward and losses; the backward follows the casts
    // Teacher on the global crops only, never masked; its last-block CLS attention picks the mask.
    torch::Tensor attention;
    {
      torch::NoGradGuard guard;
      // Only the CLS token is read: the last block computes that row alone.
      auto out = teacher_vit->forward(views.globals, {}, /*want_attention=*/true, 0.0, nullptr,
                                      {}, /*want_patches=*/false);
      teacher_out = teacher_head->forward(out.cls).to(torch::kFloat);
      attention = out.cls_attention.to(torch::kFloat);
    }
    phase("teacher");
    auto uniform = shard.grouped(2).rand(attention.sizes(), gen, attention.options());
    mask = makeMask(strategy_, attention, uniform, config_.masking.p, config_.masking.num);
    phase("mask");

    const double drop = config_.model.drop_path;
    auto global_out = student_vit->forward(views.globals, mask, false, drop, &gen, shard.grouped(2));
    torch::Tensor cls = global_out.cls;
    phase("student_global");
    if (views.locals.defined()) {
      auto local_out = student_vit->forward(views.locals, {}, false, drop, &gen,
                                            shard.grouped(config_.crops.local_crops),
                                            /*want_patches=*/false);
      cls = torch::cat({cls, local_out.cls.to(cls.scalar_type())}, 0);
    }
    phase("student_local");
    // (The fused loss reads the head's bf16 logits as they are: no fp32 copy.)
    auto student_out = student_head->forward(cls);
    if (!fused_loss_) student_out = student_out.to(torch::kFloat);
    phase("student_head");
    // Where the decoder ends with an upsampling convolution, the loss reads its phases: fused,
    // the gather is part of the loss's kernels (train.fused_loss).
    const bool phases = decoder->endsWithPhases();
    auto decoded = decoder->forward(global_out.patches, /*gather_last=*/!phases);
    phase("decoder");

    m.loss_ce = distillationLoss(student_out, teacher_out, center, config_.loss.student_temp,
                                 sched_[3], fused_loss_);
    // (Unmasked, against the normalised crops.)
    m.loss_rec = phases ? reconstructionLossFromPhases(decoded, decoder->out->weight.size(0),
                                                       views.globals, fused_loss_)
                        : reconstructionLoss(decoded.to(torch::kFloat), views.globals);
    loss = config_.loss.lambda_ce * m.loss_ce + config_.loss.lambda_rec * m.loss_rec;
    phase("losses");
  }

  student.grads().zero_();
  if (reducer_) reducer_->prepare();
  loss.backward();  // data parallel: SyncBN's and the gradient buckets' all-reduces run inside
  if (reducer_) reducer_->finish();  // grads = mean over ranks = the global batch's gradient
  phase("backward");
  m.loss = loss.detach();
  {
    torch::NoGradGuard guard;
    auto& grads = student.grads();
    const bool may_freeze = config_.optim.freeze_last_layer_epochs > 0;
    auto frozen_flag = sched_[4];
    if (may_freeze) lastLayerSlice(grads).mul_(1 - frozen_flag);  // no gradient while frozen
    m.grad_norm = grads.norm();
    const double clip = config_.optim.clip_grad;
    if (clip > 0 && config_.optim.clip_mode == "per_tensor") {
      // Each parameter's own min(1, clip / norm), as tensors: no host synchronisation.
      const auto& slices = student.slices();
      std::vector<torch::Tensor> parts, norms;
      parts.reserve(slices.size());
      norms.reserve(slices.size());
      for (const auto& s : slices) {
        parts.push_back(grads.narrow(0, s.offset, s.numel));
        norms.push_back(parts.back().norm());
      }
      auto scales = (clip / (torch::stack(norms) + 1e-6)).clamp_max(1.0);
      for (size_t i = 0; i < parts.size(); ++i) parts[i].mul_(scales[static_cast<int64_t>(i)]);
    } else if (clip > 0) {
      // min(1, clip / norm) as a tensor: no host synchronisation.
      grads.mul_((clip / (m.grad_norm + 1e-6)).clamp_max(1.0));
    }
    // AdamW, the frozen last layer held, and the teacher's EMA over the shared (ViT + head)
    // prefix of the flat buffers: one kernel under train.fused_optimizer.
    OptimizerStep step;
    step.params = student.values();
    step.grads = grads;
    step.exp_avg = exp_avg;
    step.exp_avg_sq = exp_avg_sq;
    step.decay_mask = decay_mask;
    step.teacher = teacher.values();
    step.schedule = sched_;
    step.last_offset = last_offset_;
    step.last_numel = last_numel_;
    step.freeze_last_layer = may_freeze;
    step.beta1 = config_.optim.beta1;
    step.beta2 = config_.optim.beta2;
    step.eps = config_.optim.eps;
    optimizerStep(step, fused_optimizer_);
    m.mask_ratio = mask.to(torch::kFloat).mean();
    if (!comm) {
      updateCenter(center, teacher_out, config_.loss.center_momentum);
    } else {
      // One all-reduce for everything global about the step: the teacher's batch mean (the
      // centre's input, METHOD.md step 7), the losses and mask ratio for the log, the stop votes.
      const int64_t K = teacher_out.size(1);
      auto fopt = center.options();
      auto stats = torch::cat({teacher_out.mean(0).to(fopt.dtype()),
                               torch::stack({m.loss, m.loss_ce.detach(), m.loss_rec.detach(),
                                             m.mask_ratio})
                                   .to(fopt.dtype()),
                               torch::full({1}, stop_vote ? 1.0 : 0.0, fopt)});
      comm->allReduceSum(stats);
      auto mean = stats.narrow(0, 0, K + 4) / static_cast<double>(comm->worldSize());
      const double cm = config_.loss.center_momentum;
      center.mul_(cm).add_(mean.narrow(0, 0, K).view({1, K}), 1.0 - cm);
      m.loss = mean[K];
      m.loss_ce = mean[K + 1];
      m.loss_rec = mean[K + 2];
      m.mask_ratio = mean[K + 3];
      m.stop_votes = stats[K + 4];
    }
  }
  m.loss_ce = m.loss_ce.detach();
  m.loss_rec = m.loss_rec.detach();
  phase("update");
  return m;
}

ProbeViews Engine::probe(const torch::Tensor& images, uint64_t seed, const MaskConfig& masking,
                         bool every_block) {
  torch::NoGradGuard guard;
  AutocastGuard autocast(bf16_);  // (a bf16 residual stream needs it; results leave as fp32)
  const int64_t G = config_.crops.global_size, P = config_.model.patch_size, g = G / P;
  auto x = probeInput(augment_, images, G, options_.device);
  auto normalized = augment_.normalize(x);
  auto out = teacher_vit->forward(normalized, {}, /*want_attention=*/true, 0.0, nullptr, {},
                                  /*want_patches=*/false);
  at::Generator gen = makeGenerator(options_.device, seed);
  auto uniform = torch::rand(out.cls_attention.sizes(), gen, out.cls_attention.options());
  auto strategy = parseMaskStrategy(masking.strategy);
  bool high = strategy == MaskStrategy::AttentionHigh;
  auto guided = makeMask(high ? MaskStrategy::AttentionHigh : MaskStrategy::AttentionGuided,
                         out.cls_attention, uniform, masking.p, masking.num);
  auto random = makeMask(MaskStrategy::Random, out.cls_attention, uniform, masking.p, masking.num);
  auto seen = makeMask(strategy, out.cls_attention, uniform, masking.p, masking.num);
  decoder->eval();
  auto recon = decoder->forward(student_vit->forward(normalized, seen).patches);
  decoder->train();
  const int64_t N = images.size(0);
  ProbeViews v;
  v.images = x.cpu();
  v.attention = out.cls_attention.reshape({N, g, g}).to(torch::kFloat).cpu();
  v.attention_heads =
      out.cls_attention_heads.reshape({N, out.cls_attention_heads.size(1), g, g}).to(torch::kFloat).cpu();
  v.mask_random = random.reshape({N, g, g}).to(torch::kUInt8).cpu();
  v.mask_guided = guided.reshape({N, g, g}).to(torch::kUInt8).cpu();
  // fp32 before denormalising: the statistics cache stays in the dtype the training step uses.
  v.reconstruction = augment_.denormalize(recon.to(torch::kFloat)).clamp(0, 1).cpu();
  if (every_block) {
    const auto rows = teacher_vit->clsAttentionPerBlock(normalized);  // (N, L, heads, n)
    v.attention_blocks =
        rows.reshape({N, rows.size(1), rows.size(2), g, g}).to(torch::kFloat).cpu();
  }
  return v;
}

torch::Tensor Engine::teacherFeatures(const torch::Tensor& images, int64_t blocks) {
  torch::NoGradGuard guard;
  AutocastGuard autocast(bf16_);  // the read-outs' feature pass, at training precision
  auto x = probeInput(augment_, images, config_.crops.global_size, options_.device);
  if (blocks <= 1)
    return teacher_vit->forward(augment_.normalize(x), {}, false, 0.0, nullptr, {},
                                /*want_patches=*/false)
        .cls.to(torch::kFloat);
  return teacher_vit->lastBlocksCls(augment_.normalize(x), blocks).to(torch::kFloat);
}

torch::Tensor Engine::teacherPatchMean(const torch::Tensor& images) {
  torch::NoGradGuard guard;
  AutocastGuard autocast(bf16_);
  auto x = probeInput(augment_, images, config_.crops.global_size, options_.device);
  return teacher_vit->forward(augment_.normalize(x)).patches.mean(1).to(torch::kFloat);
}

void Engine::saveCheckpoint(const std::string& path, const nlohmann::json& extra) const {
  nlohmann::json meta;
  meta["format"] = "mst-checkpoint-1";
  meta["step"] = step_;
  meta["model"] = configToJson(config_)["model"];
  meta["config"] = configToJson(config_);
  meta["torch"] = torchVersionString();
  // What the config's "auto" switches resolved to for the run that wrote this (the config keeps
  // "auto": a checkpoint may continue on another device or build).
  meta["effective"] = {{"device", options_.device.str()},
                       {"arithmetic", arithmetic()},
                       {"fused_norm", fusedNorm()},
                       {"fused_augment", fusedAugment() && options_.device.is_cuda()},
                       {"fused_loss", fusedLoss()},
                       {"fused_optimizer", fusedOptimizer()},
                       {"fused_decoder", fusedDecoder()},
                       {"fused_mlp", fusedMlp()},
                       {"recompute_gelu", recomputeGelu()},
                       {"cuda_graph", config_.train.cuda_graph && options_.device.is_cuda()}};
  if (!kernel_notes_.empty()) meta["effective"]["kernel_notes"] = kernel_notes_;
  meta["extra"] = extra;
  torch::serialize::OutputArchive archive;
  archive.write("meta", c10::IValue(meta.dump()));
  archive.write("student", student.values().cpu());
  archive.write("teacher", teacher.values().cpu());
  archive.write("exp_avg", exp_avg.cpu());
  archive.write("exp_avg_sq", exp_avg_sq.cpu());
  archive.write("center", center.cpu());
  for (const auto& b : decoder->named_buffers()) archive.write("decoder." + b.key(), b.value().cpu());
  const std::string tmp = path + ".tmp";
  try {
    archive.save_to(tmp);
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    throw MstError("cannot write checkpoint " + tmp + ": " + e.what());
  }
  int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw MstError("cannot move checkpoint into place at " + path);
  }
}

namespace {

/// Loads `path` into `archive` and returns its validated meta record.
nlohmann::json openCheckpoint(const std::string& path, torch::serialize::InputArchive& archive) {
  nlohmann::json meta;
  try {
    archive.load_from(path);
    c10::IValue value;
    archive.read("meta", value);
    meta = nlohmann::json::parse(value.toStringRef());
  } catch (const std::exception&) {
    throw MstError("checkpoint " + path + " cannot be read (missing, corrupt or not an MST checkpoint)");
  }
  // json::value() would throw a bare type_error for a non-string tag; compare instead.
  if (!meta.is_object() || !meta.contains("format") || meta["format"] != "mst-checkpoint-1" ||
      !meta.contains("config"))
    throw MstError("checkpoint " + path + " is not an MST checkpoint");
  // The step indexes the schedules (a negative one gives a negative lr and a zero Adam bias
  // correction: NaN weights) and the model record is compared with the config: a foreign or
  // hand-edited meta record must fail here, naming the file (found by fuzz/fuzz_checkpoint.cpp).
  const auto step = meta.find("step");
  if (step == meta.end() || !step->is_number_integer() || step->get<int64_t>() < 0)
    throw MstError("checkpoint " + path + ": the meta record's step is not an integer >= 0");
  if (!meta.contains("model") || !meta["model"].is_object())
    throw MstError("checkpoint " + path + ": the meta record has no model object");
  return meta;
}

}  // namespace

nlohmann::json readCheckpointMeta(const std::string& path) {
  torch::serialize::InputArchive archive;
  return openCheckpoint(path, archive);
}

nlohmann::json Engine::loadCheckpoint(const std::string& path, nlohmann::json* meta_out) {
  torch::serialize::InputArchive archive;
  nlohmann::json meta = openCheckpoint(path, archive);
  auto model_now = configToJson(config_)["model"];
  auto model_then = meta["model"];
  model_now.erase("drop_path");
  model_then.erase("drop_path");
  // Model keys added after checkpoints were first written, with the value that every checkpoint
  // written before them was trained with.
  if (model_then.is_object() && !model_then.contains("gelu")) model_then["gelu"] = "erf";
  if (model_now != model_then)
    throw MstError("checkpoint " + path + " has another architecture: " + model_then.dump() +
                   " (this config: " + model_now.dump() + ")");
  torch::NoGradGuard guard;
  // Every tensor is read and checked before any is copied: a bad entry must leave the engine as it
  // was, not half restored.
  std::vector<std::pair<torch::Tensor, torch::Tensor*>> loaded;
  auto read = [&](const std::string& key, torch::Tensor& target) {
    torch::Tensor value;
    try {
      archive.read(key, value);
    } catch (const std::exception&) {
      throw MstError("checkpoint " + path + " lacks '" + key + "'");
    }
    // Dense, and floating point exactly where the target is (BatchNorm counts are int64).
    if (value.layout() != torch::kStrided || value.is_complex() ||
        value.is_floating_point() != target.is_floating_point())
      throw MstError("checkpoint " + path + ": '" + key + "' is not a dense " +
                     std::string(target.is_floating_point() ? "floating-point" : "integer") +
                     " tensor");
    if (value.numel() != target.numel())
      throw MstError("checkpoint " + path + ": '" + key + "' has " +
                     std::to_string(value.numel()) + " values, expected " +
                     std::to_string(target.numel()));
    loaded.emplace_back(value.reshape(target.sizes()), &target);
  };
  read("student", student.values());
  read("teacher", teacher.values());
  read("exp_avg", exp_avg);
  read("exp_avg_sq", exp_avg_sq);
  read("center", center);
  auto buffers = decoder->named_buffers();  // handles share the module's storage
  for (auto& b : buffers) read("decoder." + b.key(), b.value());
  for (auto& [value, target] : loaded) target->copy_(value);
  step_ = meta["step"].get<int64_t>();
  if (meta_out) *meta_out = meta;
  return meta.value("extra", nlohmann::json::object());
}

}  // namespace mst
