/// @brief The MST training state and one training step (METHOD.md steps 1-8, Alg. 2).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/augment/multicrop.h"
#include "core/config/config.h"
#include "core/dist/batch_shard.h"
#include "core/log/run_log.h"
#include "core/masking/masking.h"
#include "core/model/decoder.h"
#include "core/model/dino_head.h"
#include "core/model/vit.h"
#include "core/train/flat_params.h"
#include "core/train/schedules.h"
#include "core/train/step_graph.h"

namespace mst {

/// Losses and schedule values of one step. Tensors stay on the device (0-dim) so that a step
/// needs no host synchronisation; read them with .item() only when logging.
struct StepMetrics {
  int64_t step = 0;
  torch::Tensor loss, loss_ce, loss_rec, grad_norm, mask_ratio;
  /// Data parallel only: ranks that asked to stop at this step (0-dim float, summed over ranks);
  /// every rank reads the same value, so all stop after the same step. Undefined otherwise.
  torch::Tensor stop_votes;
  ScheduleValues schedule;
};

class Communicator;
class GradientReducer;

struct EngineOptions {
  torch::Device device = torch::kCPU;
  int64_t steps_per_epoch = 1;
  int64_t total_steps = 1;
  std::vector<double> mean, std;  ///< normalisation (data set defaults unless the config sets it)
  /// Data parallel (not owned, outlives the engine); nullptr = one process. Then every rank
  /// passes trainStep its rows of a global batch of world_size × B (B the same on every rank):
  /// the lr follows the global batch, random draws are global-batch shaped, gradients and the
  /// centre are averaged over ranks and the decoder's BatchNorm is synchronised, so the update
  /// equals one process's on the global batch up to float summation order.
  Communicator* comm = nullptr;
  /// Gradient all-reduce bucket size (data parallel only).
  int64_t bucket_bytes = int64_t{25} << 20;
  /// Draw every random number of a step on the CPU and copy it to the device. Off in training;
  /// the CPU-vs-CUDA agreement checks turn it on so both devices see the same crops and masks.
  bool host_rng = false;
};

/// Eager steps before the step is captured as a CUDA graph (train.cuda_graph): they pick the
/// cuDNN algorithms and fill the allocator before capture.
inline constexpr int64_t kGraphWarmupSteps = 3;

/// What train.recompute_gelu = auto resolves to for a run on `device`, whose memory is
/// `device_memory_bytes` (0: unknown): recompute GELU's output (on) only on CUDA devices of less
/// than 32 GiB (24 GB cards; a 40 GB A100 reports 39.6 GiB and keeps it). Keeping it costs
/// DeiT-S/16 at batch 128 about 3.4 GB (16.4 → 19.8 GB peak on an H200, session 18) and makes
/// its step 3 % faster (1,612 → 1,659 images/s); the CPU keeps it too (there the exact GELU
/// costs more than the memory saved).
bool recomputeGeluByDefault(const torch::Device& device, int64_t device_memory_bytes);

/// The meta record of a checkpoint (format, step, model, config, effective, extra) without loading
/// weights. `effective`: what the config's automatic settings resolved to where it was written
/// (device, arithmetic, fused_norm, fused_augment, fused_loss, fused_optimizer, fused_decoder,
/// fused_mlp, recompute_gelu, cuda_graph; kernel_notes where a kernel self-check left an `auto` setting off); absent in
/// checkpoints from before it was recorded.
/// MstError naming the file when it is missing, corrupt or not an MST checkpoint.
nlohmann::json readCheckpointMeta(const std::string& path);

class Engine {
 public:
  Engine(const Config& config, const EngineOptions& options);
  ~Engine();

  /// One step on a batch of raw images (B, C, H, W) uint8 (any device): augment, teacher, mask,
  /// student, losses, AdamW, EMA, centre. All randomness comes from (seed, step). Data parallel:
  /// `images` are this rank's rows of the global batch, and the returned losses, mask ratio and
  /// grad norm are global-batch values; `stop_vote` is this rank's wish to stop after the step.
  StepMetrics trainStep(const torch::Tensor& images, bool stop_vote = false);
  /// Data parallel: every rank takes rank 0's weights, optimiser state, centre, decoder
  /// statistics and step (after construction or rank 0's loadCheckpoint). No-op otherwise.
  void syncFromRank0();

  /// Attention, masks from one shared draw (seed), and reconstruction for unaugmented images
  /// (N, C, H, W) uint8, resized to the global crop size. Uses the current weights, eval mode.
  /// `every_block` also fills attention_blocks (one more teacher pass over the images).
  ProbeViews probe(const torch::Tensor& images, uint64_t seed, const MaskConfig& masking,
                   bool every_block = false);
  /// Teacher CLS features, (B, blocks * D) float: the final-norm CLS of the last `blocks` blocks,
  /// concatenated (blocks = 1: the k-NN feature; 4: DINO's linear-probe feature).
  torch::Tensor teacherFeatures(const torch::Tensor& images, int64_t blocks = 1);
  /// (B, D) float: the mean of the teacher's final-norm patch tokens (a diagnostic read-out).
  torch::Tensor teacherPatchMean(const torch::Tensor& images);

  /// Atomic write (temporary file, fsync, rename): a crash mid-write leaves the old file intact.
  void saveCheckpoint(const std::string& path, const nlohmann::json& extra = {}) const;
  /// Restores everything saved; MstError naming the file for a corrupt file or another
  /// architecture. Returns the `extra` object that was saved with it; `meta`, when given, receives
  /// the whole meta record (with the config the run was trained with).
  nlohmann::json loadCheckpoint(const std::string& path, nlohmann::json* meta = nullptr);

  int64_t step() const { return step_; }
  const Config& config() const { return config_; }
  const Schedules& schedules() const { return schedules_; }
  const MultiCrop& augment() const { return augment_; }
  torch::Device device() const { return options_.device; }
  /// Number of masked-input patches per global crop.
  int64_t patchesPerCrop() const;
  /// bf16 autocast in use (CUDA with train.precision auto or bf16).
  bool bf16() const { return bf16_; }
  /// The arithmetic in effect: "fp32", "bf16" (autocast) or "bf16_stream" (autocast and a bf16
  /// residual stream); "auto" resolved for this device.
  std::string arithmetic() const {
    if (!bf16_) return "fp32";
    return student_vit->stream_dtype == torch::kBFloat16 ? "bf16_stream" : "bf16";
  }
  /// train.fused_norm in effect (CUDA, bf16 autocast, a build with the kernels).
  bool fusedNorm() const { return student_vit->fused_norm; }
  /// train.recompute_gelu in effect (its "auto" resolved for this device).
  bool recomputeGelu() const { return recompute_gelu_; }
  /// train.fused_mlp in effect (CUDA with bf16 autocast; refused at construction where the
  /// build cannot run it: no cuBLASLt for the tanh GELU, no kernels for the GPU with erf).
  bool fusedMlp() const { return fused_mlp_; }
  /// train.fused_loss in effect (CUDA, a build with the kernels for the GPU).
  bool fusedLoss() const { return fused_loss_; }
  /// train.fused_optimizer in effect (CUDA, a build with the kernels for the GPU): AdamW, the
  /// frozen last layer and the teacher's EMA as one kernel (fused_adamw.h).
  bool fusedOptimizer() const { return fused_optimizer_; }
  /// train.fused_decoder in effect (CUDA, one process, a build with the kernels for the GPU;
  /// stages whose operands the kernels do not take still run ATen's operations).
  bool fusedDecoder() const { return decoder->fused_stages; }
  /// train.fused_augment asked for (it applies on CUDA, to 1- and 3-channel crops).
  bool fusedAugment() const { return augment_.fused(); }
  /// What the kernels' self-checks changed (kernel_selfcheck.h): one line per `auto` setting
  /// whose kernels disagreed with ATen on this device and were left off. Empty when none did.
  const std::vector<std::string>& kernelNotes() const { return kernel_notes_; }
  /// Steps now replay a captured CUDA graph.
  bool graphActive() const;
  /// Profiling (`mst bench --phases`, eager steps only): when on, every phase of a step waits for
  /// the device and its wall time is added to phaseTimes() (ms, summed over steps).
  void setPhaseTiming(bool on) { phase_timing_ = on; }
  const std::map<std::string, double>& phaseTimes() const { return phase_ms_; }

  Vit student_vit{nullptr}, teacher_vit{nullptr};
  DinoHead student_head{nullptr}, teacher_head{nullptr};
  Decoder decoder{nullptr};
  FlatParams student, teacher;
  torch::Tensor exp_avg, exp_avg_sq, decay_mask, center;

 private:
  /// Everything a step launches, from device images and the step's generator; schedule values
  /// come from sched_, so the same launches serve every step (eager or captured). Fills the
  /// tensors of the result (losses, grad norm, mask ratio, stop votes).
  StepMetrics stepBody(const torch::Tensor& images, at::Generator& gen, bool stop_vote);
  /// Copies this step's schedule values into sched_ (no host synchronisation).
  void loadSchedule(const ScheduleValues& s);
  /// The fused kernels (train.fused_*) and attention kernels this run uses (engine_kernels.cpp);
  /// refuses a setting that cannot run, naming its key. After the device and precision are set.
  void configureKernels(const Config& config, const EngineOptions& options);
  StepMetrics replayGraph(const torch::Tensor& images);
  /// Ends the phase `name` (a no-op unless phase timing is on).
  void phase(const char* name);
  torch::Tensor lastLayerSlice(torch::Tensor& flat) const;

  Config config_;
  EngineOptions options_;
  Schedules schedules_;
  MultiCrop augment_;
  MaskStrategy strategy_;
  int64_t step_ = 0;
  int64_t last_offset_ = 0, last_numel_ = 0;  ///< the head's last layer inside the flat buffer
  std::unique_ptr<GradientReducer> reducer_;  ///< data parallel only
  /// (10) float on the device: lr, weight decay, EMA momentum, teacher temperature, last layer
  /// frozen (0/1), Adam bias corrections 1 - β1^t and 1 - β2^t, unused, and the last layer's
  /// own bias corrections (t counted from the end of its freeze).
  torch::Tensor sched_;
  bool bf16_ = false;
  bool recompute_gelu_ = false;
  bool fused_mlp_ = false;
  bool fused_loss_ = false;
  bool fused_optimizer_ = false;
  std::vector<std::string> kernel_notes_;
  bool graph_wanted_ = false;
  int64_t eager_steps_ = 0;
  std::unique_ptr<StepGraph> graph_;
  torch::Tensor graph_images_;  ///< the captured step's input
  std::optional<at::Generator> graph_gen_;
  StepMetrics graph_out_;  ///< the captured step's outputs, overwritten by every replay
  bool phase_timing_ = false;
  std::map<std::string, double> phase_ms_;
  std::chrono::steady_clock::time_point phase_start_;
};

}  // namespace mst
