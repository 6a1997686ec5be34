/// @brief Trainer implementation (see trainer.h).
#include "core/train/trainer.h"

#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <thread>

#include "core/config/config_diff.h"
#include "core/data/dataset.h"
#include "core/dist/communicator.h"
#include "core/data/loader.h"
#include "core/eval/evaluate.h"
#include "core/train/engine.h"
#include "core/util/claim.h"
#include "core/util/error.h"
#if defined(MST_HAVE_CUDA)
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace mst {
namespace fs = std::filesystem;

const std::vector<std::string>& metricNames() {
  static const std::vector<std::string> names{"loss", "loss_ce",      "loss_rec",   "lr",
                                              "wd",   "momentum",     "teacher_temp",
                                              "mask_ratio", "grad_norm", "img_s",
                                              "wall_s"};
  return names;
}

std::string outOfMemoryMessage(const Config& config, const torch::Device& device, int64_t step,
                               const std::string& checkpoint) {
  const int64_t crops = 2 + config.crops.local_crops;
  return "out of memory on " + device.str() + " at step " + std::to_string(step) +
         " with train.batch_size=" + std::to_string(config.train.batch_size) + " (" +
         std::to_string(crops) + " crops per image, " + std::to_string(config.crops.global_size) +
         " px global): lower train.batch_size (per device), crops.local_crops or the model size; " +
         (checkpoint.empty() ? std::string("no checkpoint was written yet")
                             : "the last checkpoint " + checkpoint +
                                   " is intact and --resume continues from it");
}

Trainer::Trainer(Config config, TrainerOptions options, TrainObserver* observer)
    : config_(std::move(config)), options_(std::move(options)), observer_(observer) {}

TrainSummary Trainer::run(const std::atomic<bool>* stop, const std::atomic<bool>* pause) {
  using Clock = std::chrono::steady_clock;
#if defined(MST_HAVE_CUDA)
  // Per-thread current device: NCCL and the caching allocator follow it.
  if (options_.device.is_cuda() && options_.device.has_index())
    c10::cuda::set_device(options_.device.index());
#endif
  // Data parallel: the process group first, so that a missing peer fails before any work.
  std::unique_ptr<Communicator> comm;
  if (options_.dist.distributed())
    comm = std::make_unique<Communicator>(options_.dist, options_.device);
  const int world = comm ? comm->worldSize() : 1;
  const bool writer = !comm || comm->rank() == 0;  // run.h5, checkpoints, observer
  TrainObserver* const observer = writer ? observer_ : nullptr;
  // One writer per run folder, checked before any work: a second run into a folder being
  // trained stops here, having changed nothing in it.
  std::unique_ptr<Claim> writer_claim;  // held while this run writes the folder
  std::string claim_error;
  if (writer) {
    const fs::path dir(options_.out_dir);
    std::error_code ec;
    const std::string claim_path = (dir / "run.claim").string();
    const auto being_trained = [&] {
      return "run folder " + options_.out_dir + " is being trained by another run (" + claim_path +
             ": " + claimHolder(claim_path) +
             "); two writers would corrupt its run.h5 and checkpoint.pt. Stop that run first, "
             "or train into another folder";
    };
    // A new run into a folder that holds one would overwrite its checkpoint and log.
    std::string held;
    for (const char* name : {"checkpoint.pt", "run.h5"})
      if (!options_.resume && fs::exists(dir / name, ec)) held += (held.empty() ? "" : ", ") + std::string(name);
    if (!held.empty()) {
      // A live run there comes first: resuming it now would be refused as well.
      claim_error = claimIsLive(claim_path)
                        ? being_trained()
                        : "run folder " + options_.out_dir + " already holds a run (" + held +
                              "); nothing was changed: resume it (mst train --out " +
                              options_.out_dir + " --resume), or train into another folder";
    } else if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
      claim_error = "run folder " + options_.out_dir + " is a file, not a folder";
    } else if (fs::create_directories(dir, ec); ec) {
      claim_error = "cannot create run folder " + options_.out_dir + ": " + ec.message();
    } else {
      writer_claim = Claim::tryTake(claim_path);
      if (!writer_claim) claim_error = being_trained();
    }
    if (!claim_error.empty() && !comm) throw MstError(claim_error);  // ranks learn it below
  }
  auto say = [observer](const std::string& text) {
    if (observer) observer->onMessage(text);
  };
  const int64_t step_images = config_.train.batch_size * world;  // the global batch

  auto dataset = openDataset(config_.data, /*train=*/true);
  const auto shape = dataset->shape();
  LoaderOptions lo;
  lo.batch_size = step_images;  // the order and the epoch are the global batch's
  lo.shard_rank = comm ? comm->rank() : 0;
  lo.shard_count = world;
  lo.seed = config_.train.seed;
  lo.workers = config_.data.workers;
  lo.prefetch = config_.data.prefetch;
  lo.pin_memory = options_.device.is_cuda();
  if (dataset->size() < lo.batch_size)
    throw MstError("config key train.batch_size (" + std::to_string(config_.train.batch_size) +
                   (world > 1 ? " × " + std::to_string(world) + " ranks" : std::string()) +
                   ") exceeds the " + std::to_string(dataset->size()) + " training images of " +
                   config_.data.path);
  Loader loader(*dataset, lo);
  const int64_t per_epoch = loader.batchesPerEpoch();
  const auto total = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(config_.train.epochs * static_cast<double>(per_epoch))));

  EngineOptions eo;
  eo.device = options_.device;
  eo.steps_per_epoch = per_epoch;
  eo.total_steps = total;
  eo.mean = config_.data.mean.empty() ? dataset->defaultMean() : config_.data.mean;
  eo.std = config_.data.std.empty() ? dataset->defaultStd() : config_.data.std;
  eo.comm = comm.get();
  Engine engine(config_, eo);
  if (options_.device.is_cuda() && writer) {
    for (const auto& note : engine.kernelNotes()) say(note);
    std::string kernels;
    for (auto [on, name] : {std::pair{engine.fusedNorm(), "residual junctions"},
                            std::pair{engine.fusedAugment(), "augmentation"},
                            std::pair{engine.fusedLoss(), "distillation loss"},
                            std::pair{engine.fusedDecoder(), "decoder stages"},
                            std::pair{engine.fusedMlp(), "MLP"}})
      if (on) kernels += (kernels.empty() ? "" : ", ") + std::string(name);
    say("CUDA arithmetic: " + engine.arithmetic() +
        (kernels.empty() ? "" : "; fused kernels: " + kernels +
                                    " (ours checked against ATen on this GPU at this run's shapes)") +
        (config_.train.cuda_graph ? "; the step is captured as a CUDA graph after " +
                                        std::to_string(kGraphWarmupSteps) + " eager steps"
                                  : ""));
  }

  const std::string ckpt = (fs::path(options_.out_dir) / "checkpoint.pt").string();
  const std::string log_path = (fs::path(options_.out_dir) / "run.h5").string();
  bool resumed = false;
  double wall_offset = 0;  // training seconds before this invocation (pauses excluded)
  std::vector<ConfigChange> changes;  // a resumed run's config against the checkpoint's
  std::string resume_error = claim_error;
  if (writer && resume_error.empty()) {
    try {
      if (options_.resume && fs::exists(ckpt)) {
        nlohmann::json meta;
        const auto extra = engine.loadCheckpoint(ckpt, &meta);
        if (extra.is_object() && extra.contains("wall_s") && extra["wall_s"].is_number())
          wall_offset = extra["wall_s"].get<double>();
        // Another world size means another global batch: other steps per epoch, another lr.
        const int64_t then = extra.is_object() ? extra.value("world_size", int64_t{1}) : 1;
        if (then != world)
          throw MstError("checkpoint " + ckpt + " was written by a run of " +
                         std::to_string(then) + " rank(s); resume it with the same number (not " +
                         std::to_string(world) + ")");
        // "Continue exactly" holds only with the run's own trajectory: the same batches,
        // schedules, loss and network. data.path may move, but not to a data set of another size.
        changes = configChanges(meta["config"], configToJson(config_));
        std::string moved = describeChanges(changes, /*trajectory_only=*/true);
        const auto was = extra.is_object() ? extra.find("steps_per_epoch") : extra.end();
        // (said only when no key explains it: the data set itself changed)
        if (moved.empty() && was != extra.end() && was->is_number_integer() &&
            was->get<int64_t>() != per_epoch) {
          changes.push_back({"steps per epoch (the data set's size)", was->dump(),
                             std::to_string(per_epoch), true});
          moved = describeChanges(changes, /*trajectory_only=*/true);
        }
        if (!moved.empty() && !options_.allow_config_change)
          throw MstError("cannot resume " + ckpt + " with this config: it changes the run (" +
                         moved + "). Resume with the run's own settings (mst train --out " +
                         options_.out_dir + " --resume, without --config or --set, uses them), "
                         "or go on with the new values, recorded in run.h5's events (mst train "
                         "--out " + options_.out_dir + " --resume --allow-config-change, with "
                         "the same --config / --set); nothing was changed");
        resumed = true;
        say("resumed from " + ckpt + " at step " + std::to_string(engine.step()));
      } else if (options_.resume) {
        say("no checkpoint in " + options_.out_dir + ": starting a new run");
      }
    } catch (const std::exception& e) {
      if (!comm) throw;
      resume_error = e.what();
    }
  }
  if (comm) {
    // Rank 0's verdict on the checkpoint first, so that the others do not wait for weights that
    // never come; then rank 0's state (fresh or resumed) everywhere.
    auto failed = torch::full({1}, resume_error.empty() ? 0 : 1,
                              torch::TensorOptions(torch::kInt64).device(options_.device));
    comm->broadcast({failed}, 0);
    if (failed.item<int64_t>() != 0) {
      if (writer) throw MstError(resume_error);
      throw FollowerError("data-parallel rank " + std::to_string(comm->rank()) +
                     ": rank 0 could not start or resume (see its error)");
    }
    engine.syncFromRank0();
  }

  // Probe images: fixed training-set indices, shown in every snapshot.
  // The default list is cut to a small data set; an index the user chose must exist.
  std::vector<int64_t> probes;
  const bool default_probes = config_.train.probe_images == TrainConfig{}.probe_images;
  for (int64_t i : config_.train.probe_images) {
    if (i < dataset->size())
      probes.push_back(i);
    else if (!default_probes)
      throw MstError("config key train.probe_images: image " + std::to_string(i) +
                     " is past the " + std::to_string(dataset->size()) + " training images of " +
                     config_.data.path);
  }
  torch::Tensor probe_images;
  if (writer && !probes.empty() && config_.train.snapshot_every > 0) {
    probe_images = torch::empty({static_cast<int64_t>(probes.size()), shape.channels,
                                 shape.height, shape.width},
                                torch::kUInt8);
    for (size_t i = 0; i < probes.size(); ++i)
      if (!dataset->read(probes[i], probe_images[static_cast<int64_t>(i)].data_ptr<uint8_t>()))
        probe_images[static_cast<int64_t>(i)].zero_();
  }

  RunLogShape ls;
  ls.metrics = metricNames();
  for (int r = 0; r < world && world > 1; ++r) ls.metrics.push_back("img_s_rank" + std::to_string(r));
  ls.evals = {"knn_top1"};
  ls.probes = probe_images.defined() ? probe_images.size(0) : 0;
  ls.channels = config_.model.channels;
  ls.height = ls.width = config_.crops.global_size;
  ls.grid_h = ls.grid_w = config_.crops.global_size / config_.model.patch_size;
  std::unique_ptr<RunLog> log;
  if (writer) {
    std::error_code ec;
    const bool log_was_there = fs::exists(log_path, ec);
    log = std::make_unique<RunLog>(log_path, configToJson(config_).dump(), ls, resumed,
                                   engine.step());
    if (resumed && !log_was_there)
      log->appendEvent(engine.step(), "resumed from " + ckpt + " without its run log: steps before " +
                                          std::to_string(engine.step()) + " are not in this log");
    if (!changes.empty()) {
      const std::string text = "resumed at step " + std::to_string(engine.step()) +
                               " with a changed config: " + describeChanges(changes, false);
      log->appendEvent(engine.step(), text);
      say(text);
    }
  }

  const int64_t target = options_.max_steps > 0 ? std::min(options_.max_steps, total) : total;
  TrainSummary summary;
  summary.total_steps = total;
  summary.checkpoint = ckpt;
  summary.log = log_path;
  TrainProgress progress;
  progress.total_steps = total;
  progress.target_steps = target;
  progress.step = engine.step();
  progress.epoch = static_cast<double>(engine.step()) / static_cast<double>(per_epoch);
  if (observer) observer->onStart(progress);

  auto snapshot = [&](int64_t step) {
    if (!probe_images.defined()) return;
    auto views = engine.probe(probe_images, static_cast<uint64_t>(config_.train.seed),
                              config_.masking);
    log->appendSnapshot(step, views);
    if (observer) observer->onSnapshot(step, views);
  };

  // k-NN of the teacher during training, on a subset of the training set as the bank. Every rank
  // computes it (no collectives inside): rank 0 alone would leave the others waiting in the next
  // step's all-reduce for as long as the evaluation takes, which may exceed the timeout.
  const int64_t eval_every =
      config_.eval.every_epochs > 0
          ? std::max<int64_t>(1, static_cast<int64_t>(std::llround(config_.eval.every_epochs *
                                                                   static_cast<double>(per_epoch))))
          : 0;
  const auto started = Clock::now();
  double aside_s = 0;  // seconds not spent training: pauses, in-training k-NN, snapshots
  // Training seconds: img/s, the ETA and wall_s count the steps, not the side work.
  auto trainClock = [&] {
    return std::chrono::duration<double>(Clock::now() - started).count() - aside_s;
  };
  auto aside = [&](auto&& work) {
    const auto from = Clock::now();
    work();
    aside_s += std::chrono::duration<double>(Clock::now() - from).count();
  };
  if (!resumed && engine.step() == 0) aside([&] { snapshot(0); });

  auto evaluate = [&](int64_t step) {
    EvalOptions eo;
    eo.device = options_.device;
    eo.ks = {config_.eval.k};
    eo.temperature = config_.eval.temperature;
    eo.train_limit = config_.eval.subset;
    auto result = evaluateKnn(engine, config_, FeatureKind::TeacherCls, eo);
    std::map<std::string, double> values{{"knn_top1", result["knn_top1"].get<double>()}};
    const double epoch = static_cast<double>(step) / static_cast<double>(per_epoch);
    if (log) log->appendEval(step, epoch, values);
    if (observer) observer->onEval(step, epoch, values);
  };

  int64_t loaded_epoch = -1;
  std::deque<std::pair<double, int64_t>> recent;  // (trainClock, step) for img/s over the last steps
  recent.emplace_back(trainClock(), engine.step());
  StepMetrics last;
  bool have_last = false;
  const int64_t first_step = engine.step();
  int64_t logged_step = -1;  // the step of this invocation's last metrics row
  int64_t saved_step = resumed || engine.step() > 0 ? engine.step() : -1;  // -1: no checkpoint
  auto wallSeconds = [&] { return wall_offset + trainClock(); };
  auto save = [&] {
    if (!writer) return;  // one writer; its write is atomic (temporary file, fsync, rename)
    nlohmann::json extra{{"epoch", static_cast<double>(engine.step()) / per_epoch},
                         {"wall_s", wallSeconds()}, {"steps_per_epoch", per_epoch}};
    if (world > 1) extra["world_size"] = world;
    engine.saveCheckpoint(ckpt, extra);
    saved_step = engine.step();
  };
  // Steps are named as the log counts them: the row of the step run at engine.step() == i is
  // logged as step i + 1 (the steps done), as the progress bar shows it.
  auto checkFinite = [&](int64_t done) {
    const std::pair<const char*, const torch::Tensor*> terms[] = {
        {"loss_ce", &last.loss_ce}, {"loss_rec", &last.loss_rec}, {"loss", &last.loss},
        {"grad_norm", &last.grad_norm}};  // a non-finite gradient has already spoilt the update
    for (const auto& [name, value] : terms) {
      if (std::isfinite(value->item<double>())) continue;
      std::string msg = std::string("non-finite ") + name + " at step " + std::to_string(done) +
                        ": the run stopped; " +
                        (saved_step >= 0 ? "the last good checkpoint " + ckpt + " (step " +
                                               std::to_string(saved_step) + ") is kept"
                                         : std::string("no checkpoint was written yet"));
      if (log) {
        log->appendEvent(done, msg);
        log->flush();
      }
      throw MstError(msg);
    }
  };
  // One /metrics row for the step that ended with `done` steps done (progress already updated).
  auto logRow = [&](int64_t done) {
    std::map<std::string, double> values{
        {"loss", last.loss.item<double>()},
        {"loss_ce", last.loss_ce.item<double>()},
        {"loss_rec", last.loss_rec.item<double>()},
        {"lr", last.schedule.lr},
        {"wd", last.schedule.weight_decay},
        {"momentum", last.schedule.momentum},
        {"teacher_temp", last.schedule.teacher_temp},
        {"mask_ratio", last.mask_ratio.item<double>()},
        {"grad_norm", last.grad_norm.item<double>()},
        {"img_s", progress.img_s},
        {"wall_s", wallSeconds()}};
    if (comm) {
      // Per-rank throughput: a slow GPU or host shows here, not in the global img/s. Each rank
      // fills its slot; the sum is everyone's.
      auto each = torch::zeros({world}, torch::TensorOptions(torch::kDouble).device(
                                             options_.device));
      each[comm->rank()] = progress.img_s / world;  // this rank's own images per second
      comm->allReduceSum(each);
      each = each.cpu();
      progress.rank_img_s.assign(each.data_ptr<double>(), each.data_ptr<double>() + world);
      for (int r = 0; r < world; ++r)
        values["img_s_rank" + std::to_string(r)] = progress.rank_img_s[r];
    }
    if (log) log->appendMetrics(done, progress.epoch, values);
    progress.loss = values["loss"];
    progress.loss_ce = values["loss_ce"];
    progress.loss_rec = values["loss_rec"];
    progress.has_loss = true;
    if (observer) observer->onMetrics(done, progress.epoch, values);
    logged_step = done;
  };
  // Data parallel: stop votes of the last two steps. Reading the older one lets the host run a
  // step ahead of the device (CUDA); every rank reads the same sums, so all stop together.
  torch::Tensor votes_older, votes_newer;

  while (engine.step() < target) {
    const bool stop_asked = stop && stop->load();
    if (comm ? (votes_older.defined() && votes_older.item<double>() > 0) : stop_asked) {
      summary.stopped = true;
      break;
    }
    if (observer_) observer_->betweenSteps(engine);
    if (!comm && pause && pause->load()) {
      aside([&] {
        while (pause->load() && !(stop && stop->load())) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          if (observer_) observer_->betweenSteps(engine);
        }
      });
    }
    if (!comm && stop && stop->load()) {
      summary.stopped = true;
      break;
    }
    const int64_t step = engine.step();
    const int64_t epoch = step / per_epoch;
    if (epoch != loaded_epoch) {
      loader.start(epoch, step % per_epoch);
      loaded_epoch = epoch;
    }
    auto batch = loader.next();
    if (!batch) throw MstError("data loader ended early in epoch " + std::to_string(epoch));
    try {
      last = engine.trainStep(batch->images, stop_asked);
    } catch (const c10::OutOfMemoryError&) {
      // Named as the log and the progress bar count steps (from 1).
      throw MstError(outOfMemoryMessage(config_, options_.device, step + 1,
                                        saved_step >= 0 ? ckpt : std::string()));
    } catch (const std::bad_alloc&) {
      throw MstError(outOfMemoryMessage(config_, options_.device, step + 1,
                                        saved_step >= 0 ? ckpt : std::string()));
    }
    have_last = true;
    votes_older = votes_newer;
    votes_newer = last.stop_votes;
    const int64_t done = engine.step();

    const bool log_now = done % config_.train.log_every == 0 || done == target;
    // On the CPU every step is checked (a scalar read is free); on CUDA only where the host reads
    // anyway, and always before a checkpoint, so that no checkpoint ever holds non-finite weights.
    const bool checkpoint_now = done % config_.train.checkpoint_every == 0 || done == target;
    if (!options_.device.is_cuda() || log_now || checkpoint_now) checkFinite(done);
    recent.emplace_back(trainClock(), done);
    while (recent.size() > 20) recent.pop_front();
    double seconds = recent.back().first - recent.front().first;
    double img_s = seconds > 0 ? static_cast<double>(recent.back().second - recent.front().second) *
                                     static_cast<double>(step_images) / seconds
                               : 0.0;
    progress.step = done;
    progress.epoch = static_cast<double>(done) / static_cast<double>(per_epoch);
    progress.img_s = img_s;
    progress.eta_s = img_s > 0 ? static_cast<double>(target - done) *
                                     static_cast<double>(step_images) / img_s
                               : 0.0;
    if (log_now) logRow(done);
    if (config_.train.snapshot_every > 0 && done % config_.train.snapshot_every == 0)
      aside([&] { snapshot(done); });
    if (eval_every > 0 && (done % eval_every == 0 || done == total)) aside([&] { evaluate(done); });
    if (checkpoint_now && done != target) save();
    if (observer) observer->onProgress(progress);
  }
  // Stopped (Ctrl-C, SIGTERM, Stop) between logged steps: the last step's row, as --max-steps
  // writes it, checked like every row before the checkpoint below holds its weights.
  if (summary.stopped && have_last && logged_step != engine.step()) {
    checkFinite(engine.step());
    logRow(engine.step());
  }
  save();
  if (loader.corruptCount() > 0) {
    std::string msg = std::to_string(loader.corruptCount()) +
                      " images could not be decoded and were skipped";
    if (log) log->appendEvent(engine.step(), msg);
    say(msg);
  }
  if (log) log->flush();
  // No rank reports success before rank 0's checkpoint and log are complete.
  if (comm) comm->barrier();
  summary.steps = engine.step();
  summary.epoch = static_cast<double>(engine.step()) / static_cast<double>(per_epoch);
  summary.finished = engine.step() >= total;
  summary.corrupt_images = loader.corruptCount();
  summary.img_s = progress.img_s;
  summary.steps_run = engine.step() - first_step;
  if (have_last) {
    summary.loss = last.loss.item<double>();
    summary.loss_ce = last.loss_ce.item<double>();
    summary.loss_rec = last.loss_rec.item<double>();
  }
  return summary;
}

}  // namespace mst
