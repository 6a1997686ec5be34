/// @brief Training step properties: EMA, centre, checkpoint round trip, resume, a short real run.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>

#include "core/config/config.h"
#include "core/log/run_log.h"
#include "core/train/engine.h"
#include "core/train/trainer.h"
#include "core/util/claim.h"
#include "core/util/error.h"
#include "core/util/torch_compat.h"

using namespace mst;

namespace {

Config microConfig() {
  Config c;
  c.model = modelPreset("vit_micro28");
  c.crops.local_crops = 2;
  c.train.batch_size = 8;
  c.train.seed = 7;
  c.train.epochs = 10;
  c.optim.freeze_last_layer_epochs = 0.5;
  return c;
}

EngineOptions engineOptions() {
  EngineOptions o;
  o.steps_per_epoch = 4;
  o.total_steps = 40;
  o.mean = {0.3};
  o.std = {0.35};
  return o;
}

/// Deterministic images for step i.
torch::Tensor batchFor(int64_t i) {
  auto gen = at::globalContext().defaultGenerator(torch::kCPU).clone();
  gen.set_current_seed(100 + i);
  return torch::randint(0, 256, {8, 1, 28, 28}, gen, torch::kUInt8);
}

/// 64 Fashion-MNIST images in batches of 16, no snapshots: a run of a few seconds.
Config smallRunConfig() {
  auto c = microConfig();
  c.data.limit = 64;
  c.train.batch_size = 16;
  c.train.snapshot_every = 0;
  return c;
}

/// Trains `c` for two steps into the new folder `out_dir`; the options of that run.
TrainerOptions twoStepsInto(const Config& c, const std::string& out_dir) {
  TrainerOptions o;
  o.out_dir = out_dir;
  o.max_steps = 2;
  Trainer(c, o).run();
  return o;
}

/// Asks the run to stop once `at` steps are done, as Ctrl-C or the workbench's Stop would.
class StopAt : public TrainObserver {
 public:
  StopAt(std::atomic<bool>* stop, int64_t at) : stop_(stop), at_(at) {}
  void onProgress(const TrainProgress& p) override {
    if (p.step >= at_) stop_->store(true);
  }

 private:
  std::atomic<bool>* stop_;
  int64_t at_;
};

bool fashionMnistPresent() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

}  // namespace

class TestEngine : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { at::set_num_threads(2); }

  void recomputeGeluAutoDependsOnTheDevice() {
    // train.recompute_gelu = auto: recompute GELU's output only on CUDA devices of less than
    // 32 GiB (or of unknown memory); keep it on larger ones and on the CPU.
    const torch::Device cpu(torch::kCPU), cuda(torch::kCUDA, 0);
    constexpr int64_t GiB = int64_t{1} << 30;
    QVERIFY(!recomputeGeluByDefault(cpu, 0));
    QVERIFY(!recomputeGeluByDefault(cuda, 80 * GiB));
    QVERIFY(!recomputeGeluByDefault(cuda, 42505273344));  // an A100 40 GB (39.6 GiB)
    QVERIFY(!recomputeGeluByDefault(cuda, 32 * GiB));
    QVERIFY(recomputeGeluByDefault(cuda, 32 * GiB - 1));
    QVERIFY(recomputeGeluByDefault(cuda, 24 * GiB));
    QVERIFY(recomputeGeluByDefault(cuda, 0));
    // On this machine's CPU the engine keeps it; "on" recomputes all the same.
    Config c = microConfig();
    Engine keep(c, engineOptions());
    QVERIFY(!keep.recomputeGelu());
    c.train.recompute_gelu = "on";
    Engine again(c, engineOptions());
    QVERIFY(again.recomputeGelu());
  }

  void stepUpdatesTeacherByEma() {
    Engine e(microConfig(), engineOptions());
    QVERIFY(torch::equal(e.teacher.values(), e.student.values().narrow(0, 0, e.teacher.numel())));
    // Step 0 has lr 0 (the warm-up starts there): the student moves from step 1 on.
    e.trainStep(batchFor(0));
    auto teacher_before = e.teacher.values().clone();
    auto m = e.trainStep(batchFor(1));
    const double mom = m.schedule.momentum;
    QVERIFY(mom > 0.99 && mom < 1.0);
    auto expected = teacher_before * mom + e.student.values().narrow(0, 0, e.teacher.numel()) * (1 - mom);
    QVERIFY(torch::allclose(e.teacher.values(), expected, 1e-6, 1e-7));
    QVERIFY(!torch::equal(e.teacher.values(), teacher_before));
  }

  void clippingScalesAllGradientsOrEachTensor() {
    // optim.clip_mode: "global" scales the whole gradient by min(1, clip / ‖g‖); "per_tensor"
    // (DINO's) scales each parameter tensor's gradient by min(1, clip / ‖g_i‖). Checked against
    // the unclipped gradient of the same step on an identical engine.
    Config c = microConfig();
    c.optim.freeze_last_layer_epochs = 0;
    c.optim.clip_grad = 0;
    Engine raw(c, engineOptions());
    raw.trainStep(batchFor(0));
    const auto g = raw.student.grads().clone();
    std::vector<double> norms;
    for (const auto& s : raw.student.slices())
      norms.push_back(g.narrow(0, s.offset, s.numel).norm().item<double>());
    auto sorted = norms;
    std::sort(sorted.begin(), sorted.end());
    const double clip = sorted[sorted.size() / 2];  // about half the tensors get clipped
    QVERIFY(clip > 0 && clip < g.norm().item<double>());

    c.optim.clip_grad = clip;
    c.optim.clip_mode = "per_tensor";
    Engine per(c, engineOptions());
    per.trainStep(batchFor(0));
    int clipped = 0, kept = 0;
    for (size_t i = 0; i < norms.size(); ++i) {
      const auto& s = per.student.slices()[i];
      const double scale = std::min(1.0, clip / (norms[i] + 1e-6));
      (scale < 1.0 ? clipped : kept) += 1;
      auto got = per.student.grads().narrow(0, s.offset, s.numel);
      QVERIFY2(torch::allclose(got, g.narrow(0, s.offset, s.numel) * scale, 1e-5, 1e-9), s.name.c_str());
    }
    QVERIFY(clipped > 0 && kept > 0);

    c.optim.clip_mode = "global";
    Engine global(c, engineOptions());
    global.trainStep(batchFor(0));
    const double scale = clip / (g.norm().item<double>() + 1e-6);
    QVERIFY(torch::allclose(global.student.grads(), g * scale, 1e-5, 1e-9));
  }

  void stepAppliesAdamWFromTheScheduleInDeviceMemory() {
    // The update reads lr, weight decay and the bias corrections from the engine's schedule
    // tensor; check it against AdamW written out by hand from the gradient the step used.
    Config c = microConfig();
    c.optim.warmup_epochs = 0;  // lr > 0 at step 0
    c.optim.freeze_last_layer_epochs = 0;
    Engine e(c, engineOptions());
    auto before = e.student.values().clone();
    auto m = e.trainStep(batchFor(0));
    const auto& o = c.optim;
    const double lr = m.schedule.lr, wd = m.schedule.weight_decay;
    QVERIFY(lr > 0 && wd > 0);
    auto g = e.student.grads();  // after clipping: what AdamW consumed
    auto m1 = g * (1 - o.beta1);
    auto v1 = g * g * (1 - o.beta2);
    QVERIFY(torch::allclose(e.exp_avg, m1, 1e-6, 1e-9));
    QVERIFY(torch::allclose(e.exp_avg_sq, v1, 1e-6, 1e-12));
    const double bc1 = 1 - o.beta1, bc2 = 1 - o.beta2;
    auto decayed = before - before * e.decay_mask * (lr * wd);
    auto expected = decayed - (m1 / bc1) / ((v1 / bc2).sqrt() + o.eps) * lr;
    QVERIFY2(torch::allclose(e.student.values(), expected, 1e-5, 1e-7),
             std::to_string((e.student.values() - expected).abs().max().item<double>()).c_str());
    QVERIFY(!torch::equal(e.student.values(), before));
  }

  void stepLossesAreTheMethodOnTheTeachersMaskedViews() {
    // Step 0 rebuilt from its parts on an identical engine (same seed, same weights, the step's
    // own generator): the teacher sees both global crops unmasked; each crop's mask comes from
    // the teacher's attention of that crop (Eq. 5); the student sees the masked globals and the
    // unmasked locals; L_CE pairs every teacher crop with every other student crop, using the
    // centre from before this step and τ_t of step 0; L_rec is the MAE against the unmasked,
    // normalised globals; L = 1.0 L_CE + 0.6 L_rec. Then c ← 0.9 c + 0.1 mean(teacher logits).
    Config c = microConfig();
    c.masking.strategy = "attention_guided";
    c.masking.p = 0.5;  // many masked patches, so that a mask from the wrong place shows
    c.masking.num = 2;
    Engine e(c, engineOptions()), ref(c, engineOptions());
    QVERIFY(torch::equal(e.student.values(), ref.student.values()));
    const auto images = batchFor(0);
    const int64_t B = images.size(0), S = 2 + c.crops.local_crops;
    torch::Tensor teacher_out, mask, want_ce, want_rec;
    {
      torch::NoGradGuard guard;
      at::Generator gen = makeGenerator(torch::kCPU, mixSeed(c.train.seed, 0));
      auto views = ref.augment()(images, gen);
      QCOMPARE(views.globals.size(0), 2 * B);
      auto t = ref.teacher_vit->forward(views.globals, {}, /*want_attention=*/true, 0.0, nullptr,
                                        {}, /*want_patches=*/false);
      teacher_out = ref.teacher_head->forward(t.cls);
      auto uniform = torch::rand(t.cls_attention.sizes(), gen);
      mask = uniform.lt(0.5).logical_and(maskCandidates(t.cls_attention, 2, false));
      const double drop = c.model.drop_path;
      auto g = ref.student_vit->forward(views.globals, mask, false, drop, &gen, BatchShard{}.grouped(2));
      auto l = ref.student_vit->forward(views.locals, {}, false, drop, &gen,
                                        BatchShard{}.grouped(c.crops.local_crops), false);
      auto student_out = ref.student_head->forward(torch::cat({g.cls, l.cls}, 0));
      auto recon = ref.decoder->forward(g.patches);
      // Centre 0 before step 0; τ_t = 0.04 and τ_s = 0.1 (METHOD.md step 7).
      auto tp = (teacher_out / 0.04).softmax(-1).view({2, B, -1});
      auto sl = (student_out / 0.1).log_softmax(-1).view({S, B, -1});
      want_ce = torch::zeros({}, torch::kDouble);
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < S; ++j)
          if (i != j) want_ce += -(tp[i] * sl[j]).sum(-1).mean().to(torch::kDouble);
      want_ce /= static_cast<double>(2 * S - 2);
      want_rec = (recon - views.globals).abs().mean().to(torch::kDouble);
    }
    QVERIFY(mask.any().item<bool>() && !mask.all().item<bool>());
    auto m = e.trainStep(images);
    auto close = [](const torch::Tensor& got, const torch::Tensor& want) {
      const double g = got.item<double>(), w = want.item<double>();
      return std::abs(g - w) <= 1e-5 * std::abs(w) + 1e-7;
    };
    auto show = [](const torch::Tensor& got, const torch::Tensor& want) {
      return qPrintable(QString("%1 vs %2").arg(got.item<double>(), 0, 'g', 10)
                            .arg(want.item<double>(), 0, 'g', 10));
    };
    QVERIFY2(close(m.loss_ce, want_ce), show(m.loss_ce, want_ce));
    QVERIFY2(close(m.loss_rec, want_rec), show(m.loss_rec, want_rec));
    auto want_loss = 1.0 * want_ce + 0.6 * want_rec;
    QVERIFY2(close(m.loss, want_loss), show(m.loss, want_loss));
    QCOMPARE(m.mask_ratio.item<float>(), mask.to(torch::kFloat).mean().item<float>());
    QVERIFY(torch::allclose(e.center, 0.1 * teacher_out.mean(0, true), 1e-5, 1e-8));

    // Step 1: the centre keeps 0.9 of itself and takes 0.1 of this step's teacher mean.
    const auto center_before = e.center.clone();
    torch::Tensor teacher_mean;
    {
      torch::NoGradGuard guard;
      at::Generator gen = makeGenerator(torch::kCPU, mixSeed(c.train.seed, 1));
      auto views = e.augment()(batchFor(1), gen);
      auto t = e.teacher_vit->forward(views.globals, {}, false, 0.0, nullptr, {}, false);
      teacher_mean = e.teacher_head->forward(t.cls).mean(0, true);
    }
    e.trainStep(batchFor(1));
    QVERIFY(torch::allclose(e.center, 0.9 * center_before + 0.1 * teacher_mean, 1e-5, 1e-8));
  }

  void patchMeanFeatureIsTheMeanPatchToken() {
    Engine e(microConfig(), engineOptions());
    auto images = batchFor(3);
    auto f = e.teacherPatchMean(images);
    QCOMPARE(f.sizes(), (torch::IntArrayRef{8, microConfig().model.dim}));
    torch::NoGradGuard guard;
    auto x = e.augment().normalize(e.augment().toFloat(images));  // 28 px: no resize
    auto expected = e.teacher_vit->forward(x).patches.mean(1);
    QVERIFY(torch::allclose(f, expected, 1e-5, 1e-6));
    QVERIFY(!torch::allclose(f, e.teacherFeatures(images), 1e-2, 1e-2));  // not the CLS
  }

  void stepMovesCenterAndFreezesLastLayer() {
    Engine e(microConfig(), engineOptions());
    auto last = [&] {
      for (const auto& s : e.student.slices())
        if (s.name == "head.last_v") return e.student.values().narrow(0, s.offset, s.numel).clone();
      return torch::Tensor();
    };
    auto before = last();
    QVERIFY(before.defined());
    e.trainStep(batchFor(0));  // step 0 < 0.5 epoch = 2 steps: frozen
    QVERIFY(torch::equal(last(), before));
    QVERIFY(e.center.abs().sum().item<double>() > 0);
    e.trainStep(batchFor(1));
    auto m = e.trainStep(batchFor(2));  // step 2: free
    QVERIFY(!torch::equal(last(), before));
    // Its first update is a first Adam step (its moments began now, so bias-correcting them with
    // the global t = 3 would enlarge it): -lr · g / (|g| + eps), after the decoupled decay.
    torch::Tensor g, decay;
    for (const auto& s : e.student.slices())
      if (s.name == "head.last_v") {
        g = e.student.grads().narrow(0, s.offset, s.numel);
        decay = e.decay_mask.narrow(0, s.offset, s.numel);
      }
    const double lr = m.schedule.lr, wd = m.schedule.weight_decay;
    const double eps = microConfig().optim.eps;
    auto expected = before * (1 - lr * wd * decay) - lr * g / (g.abs() + eps);
    QVERIFY2(torch::allclose(last(), expected, 1e-5, 1e-7),
             std::to_string((last() - expected).abs().max().item<double>()).c_str());
  }

  void lossesFiniteAndGradientsFlowToAllStudentParts() {
    Engine e(microConfig(), engineOptions());
    auto m = e.trainStep(batchFor(0));
    QVERIFY(std::isfinite(m.loss.item<double>()));
    QVERIFY(m.loss_rec.item<double>() > 0);
    double expected = m.loss_ce.item<double>() + 0.6 * m.loss_rec.item<double>();
    QVERIFY(std::abs(m.loss.item<double>() - expected) < 1e-4);
    for (const auto& s : e.student.slices()) {
      if (s.name.find("mask_token") != std::string::npos) continue;  // p=0.1 may mask nothing
      if (s.name.find("last_") != std::string::npos) continue;       // frozen in epoch 0
      double g = e.student.grads().narrow(0, s.offset, s.numel).abs().sum().item<double>();
      QVERIFY2(g > 0, s.name.c_str());
    }
  }

  void checkpointRoundTripContinuesBitForBit() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("ckpt.pt").toStdString();
    Engine a(microConfig(), engineOptions());
    for (int i = 0; i < 3; ++i) a.trainStep(batchFor(i));
    a.saveCheckpoint(path);
    std::vector<double> straight;
    for (int i = 3; i < 5; ++i) straight.push_back(a.trainStep(batchFor(i)).loss.item<double>());

    Engine b(microConfig(), engineOptions());
    b.loadCheckpoint(path);
    QCOMPARE(b.step(), int64_t{3});
    std::vector<double> resumed;
    for (int i = 3; i < 5; ++i) resumed.push_back(b.trainStep(batchFor(i)).loss.item<double>());
    QCOMPARE(resumed, straight);
    QVERIFY(torch::equal(a.student.values(), b.student.values()));
    QVERIFY(torch::equal(a.teacher.values(), b.teacher.values()));
    QVERIFY(torch::equal(a.center, b.center));
    QVERIFY(torch::equal(a.exp_avg, b.exp_avg));
    QVERIFY(torch::equal(a.exp_avg_sq, b.exp_avg_sq));
    // The meta record says what the automatic settings resolved to (the config keeps "auto").
    const auto meta = readCheckpointMeta(path);
    QCOMPARE(meta["config"]["train"]["fused_norm"].get<std::string>(), std::string("auto"));
    QCOMPARE(meta["effective"]["device"].get<std::string>(), std::string("cpu"));
    QCOMPARE(meta["effective"]["arithmetic"].get<std::string>(), std::string("fp32"));
    QCOMPARE(meta["effective"]["fused_norm"].get<bool>(), false);
    QCOMPARE(meta["effective"]["fused_augment"].get<bool>(), false);
    QCOMPARE(meta["effective"]["fused_loss"].get<bool>(), false);
    QCOMPARE(meta["effective"]["fused_optimizer"].get<bool>(), false);
    QCOMPARE(meta["effective"]["fused_decoder"].get<bool>(), false);
    QCOMPARE(meta["config"]["train"]["fused_decoder"].get<std::string>(), std::string("auto"));
    QCOMPARE(meta["effective"]["recompute_gelu"].get<bool>(), a.recomputeGelu());
    // The decoder's BatchNorm statistics: the training loss never reads them (batch statistics),
    // but the probe's reconstructions (eval mode) do, so they must come back too.
    auto a_buffers = a.decoder->named_buffers(), b_buffers = b.decoder->named_buffers();
    QCOMPARE(b_buffers.size(), a_buffers.size());
    QVERIFY(a_buffers.size() > 0);
    for (const auto& buffer : a_buffers)
      QVERIFY2(torch::equal(buffer.value(), b_buffers[buffer.key()]), buffer.key().c_str());
    Engine fresh(microConfig(), engineOptions());  // they differ from a fresh engine's
    QVERIFY(!torch::equal(fresh.decoder->named_buffers()[a_buffers.begin()->key()],
                          a_buffers.begin()->value()));
  }

  void checkpointOfAnotherArchitectureIsRejected() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("ckpt.pt").toStdString();
    Engine a(microConfig(), engineOptions());
    a.saveCheckpoint(path);
    auto other = microConfig();
    other.model.depth = 3;
    Engine b(other, engineOptions());
    try {
      b.loadCheckpoint(path);
      QFAIL("loaded a checkpoint of another architecture");
    } catch (const MstError& e) {
      QVERIFY(QString(e.what()).contains("architecture"));
      QVERIFY(QString(e.what()).contains("ckpt.pt"));
    }
    std::ofstream(dir.filePath("junk.pt").toStdString()) << "not a checkpoint";
    QVERIFY_THROWS_EXCEPTION(MstError, b.loadCheckpoint(dir.filePath("junk.pt").toStdString()));
  }

  void trainerResumeEqualsUninterruptedRun() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    auto c = microConfig();
    c.data.limit = 128;
    c.train.batch_size = 16;  // 8 steps per epoch
    c.train.epochs = 2;
    c.train.log_every = 1;
    c.train.snapshot_every = 4;
    c.train.probe_images = {0, 1};
    QTemporaryDir dir;
    TrainerOptions straight;
    straight.out_dir = dir.filePath("straight").toStdString();
    straight.max_steps = 11;
    auto s1 = Trainer(c, straight).run();
    QCOMPARE(s1.steps, int64_t{11});

    TrainerOptions part = straight;
    part.out_dir = dir.filePath("resumed").toStdString();
    part.max_steps = 6;  // crosses no epoch boundary; the resume then crosses one
    Trainer(c, part).run();
    part.max_steps = 11;
    part.resume = true;
    auto s2 = Trainer(c, part).run();
    QCOMPARE(s2.steps, int64_t{11});
    QCOMPARE(s2.loss, s1.loss);

    auto steps = readLogDataset(part.out_dir + "/run.h5", "/metrics/step");
    QCOMPARE(static_cast<int64_t>(steps.size()), int64_t{11});  // no duplicated or lost rows
    for (size_t i = 0; i < steps.size(); ++i) QCOMPARE(steps[i], static_cast<double>(i + 1));
    auto l1 = readLogDataset(straight.out_dir + "/run.h5", "/metrics/loss");
    auto l2 = readLogDataset(part.out_dir + "/run.h5", "/metrics/loss");
    QCOMPARE(l1, l2);
    auto snaps = readLogDataset(part.out_dir + "/run.h5", "/snapshots/step");
    QCOMPARE(snaps, (std::vector<double>{0, 4, 8}));
  }

  void trainerWritesTheRunLogContract() {
    // DESIGN.md's run.h5 names as a real run writes them, with rows that mean what they say.
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    auto c = smallRunConfig();  // 64 images in batches of 16: 4 steps per epoch
    c.train.epochs = 2;         // 8 steps
    c.train.log_every = 1;
    c.train.snapshot_every = 4;
    c.train.probe_images = {0, 1, 2};
    c.eval.every_epochs = 2;  // once, at the end (k-NN over the 10,000 test images takes seconds)
    c.eval.subset = 64;
    QTemporaryDir dir;
    TrainerOptions o;
    o.out_dir = dir.path().toStdString();
    QCOMPARE(Trainer(c, o).run().steps, int64_t{8});
    const std::string log = o.out_dir + "/run.h5";
    QVERIFY(std::filesystem::exists(o.out_dir + "/checkpoint.pt"));

    const auto names = listLogGroup(log, "/metrics");
    for (const char* name : {"step", "epoch", "loss", "loss_ce", "loss_rec", "lr", "wd",
                             "momentum", "teacher_temp", "mask_ratio"})
      QVERIFY2(std::find(names.begin(), names.end(), name) != names.end(), name);
    for (const auto& name : names)
      QVERIFY2(readLogDataset(log, "/metrics/" + name).size() == 8, name.c_str());
    auto metric = [&](const char* name) { return readLogDataset(log, std::string("/metrics/") + name); };
    const auto step = metric("step"), epoch = metric("epoch"), loss = metric("loss"),
               ce = metric("loss_ce"), rec = metric("loss_rec"), lr = metric("lr"),
               wd = metric("wd"), momentum = metric("momentum"), temp = metric("teacher_temp"),
               ratio = metric("mask_ratio");
    // Row i: the step that ended with `step` = i + 1 steps done, run with the schedule of step i.
    const Schedules sched(c, /*steps_per_epoch=*/4, /*total_steps=*/8);
    auto f32 = [](double v) { return static_cast<double>(static_cast<float>(v)); };
    for (size_t i = 0; i < 8; ++i) {
      const auto want = sched.at(static_cast<int64_t>(i));
      const QByteArray row = QByteArray::number(static_cast<int>(i));
      QCOMPARE(step[i], static_cast<double>(i + 1));
      QCOMPARE(epoch[i], static_cast<double>(i + 1) / 4.0);
      QVERIFY2(lr[i] == f32(want.lr), row);
      QVERIFY2(wd[i] == f32(want.weight_decay), row);
      QVERIFY2(momentum[i] == f32(want.momentum), row);
      QVERIFY2(temp[i] == f32(want.teacher_temp), row);
      QVERIFY2(std::abs(loss[i] - (ce[i] + 0.6 * rec[i])) < 1e-5 * std::abs(loss[i]), row);
      QVERIFY2(ratio[i] >= 0 && ratio[i] <= 1, row);
    }
    QVERIFY(wd.front() < wd.back() && momentum.front() < momentum.back());  // not swapped

    // k-NN at the end; snapshots at step 0 and every 4 steps, probe images on the second axis.
    QCOMPARE(readLogDataset(log, "/eval/step"), (std::vector<double>{8}));
    const auto knn = readLogDataset(log, "/eval/knn_top1");
    QCOMPARE(knn.size(), size_t{1});
    for (double v : knn) QVERIFY2(v > 0 && v <= 100, qPrintable(QString::number(v)));
    QCOMPARE(readLogDataset(log, "/snapshots/step"), (std::vector<double>{0, 4, 8}));
    const int64_t g = c.crops.global_size / c.model.patch_size;
    const std::vector<std::pair<const char*, std::vector<int64_t>>> shapes{
        {"images", {3, 3, 1, 28, 28}},     {"attention", {3, 3, g, g}},
        {"mask_random", {3, 3, g, g}},     {"mask_guided", {3, 3, g, g}},
        {"reconstruction", {3, 3, 1, 28, 28}}};
    for (const auto& [name, want] : shapes) {
      std::vector<int64_t> dims;
      readLogArray(log, std::string("/snapshots/") + name, &dims);
      QVERIFY2(dims == want, name);
    }
    const auto config = nlohmann::json::parse(readLogAttribute(log, "/config", "json"));
    QCOMPARE(config["data"]["limit"].get<int64_t>(), int64_t{64});
  }

  void aStoppedRunLogsItsLastStepOnce() {
    // A stop between logged steps ends the log with the last step's row, as --max-steps does;
    // a stop on a logged step adds none.
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    auto c = smallRunConfig();
    c.train.log_every = 4;
    QTemporaryDir dir;
    for (const auto& [at, rows] : {std::pair<int64_t, std::vector<double>>{3, {3}},
                                   std::pair<int64_t, std::vector<double>>{8, {4, 8}}}) {
      TrainerOptions o;
      o.out_dir = dir.filePath(QString("stop%1").arg(at)).toStdString();
      std::atomic<bool> stop{false};
      StopAt stopper(&stop, at);
      const auto s = Trainer(c, o, &stopper).run(&stop);
      QVERIFY(s.stopped);
      QCOMPARE(s.steps, at);
      const std::string log = o.out_dir + "/run.h5";
      QCOMPARE(readLogDataset(log, "/metrics/step"), rows);
      QCOMPARE(readLogDataset(log, "/metrics/loss").back(), s.loss);  // the last step's own row
      for (const auto& name : listLogGroup(log, "/metrics"))
        QVERIFY2(readLogDataset(log, "/metrics/" + name).size() == rows.size(), name.c_str());
    }
  }

  void aFolderBeingTrainedIsNotTrainedTwice() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    const auto c = smallRunConfig();
    QTemporaryDir dir;
    TrainerOptions o = twoStepsInto(c, dir.filePath("run").toStdString());
    QVERIFY(!std::filesystem::exists(o.out_dir + "/run.claim"));  // released when it ended
    const auto log_before = readLogDataset(o.out_dir + "/run.h5", "/metrics/loss");
    const auto ckpt_time = std::filesystem::last_write_time(o.out_dir + "/checkpoint.pt");

    // Another run holds the folder: a second writer stops with one error naming it, and leaves
    // the folder's log and checkpoint as they were.
    auto held = Claim::tryTake(o.out_dir + "/run.claim");
    QVERIFY(held);
    // Without --resume too, the live run is what stops it (resuming would be refused as well),
    // and its holder reads as labelled fields.
    try {
      Trainer(c, o).run();
      QFAIL("trained a folder another run holds");
    } catch (const MstError& e) {
      const std::string what = e.what();
      QVERIFY2(what.find("being trained") != std::string::npos, e.what());
      QVERIFY2(what.find("already holds") == std::string::npos, e.what());
      QVERIFY2(what.find(", pid " + std::to_string(::getpid()) + ",") != std::string::npos,
               e.what());
      QVERIFY2(what.find("host ") != std::string::npos, e.what());
    }
    o.resume = true;
    o.max_steps = 4;
    try {
      Trainer(c, o).run();
      QFAIL("trained a folder another run holds");
    } catch (const MstError& e) {
      const std::string what = e.what();
      QVERIFY2(what.find(o.out_dir) != std::string::npos, e.what());
      QVERIFY2(what.find("being trained") != std::string::npos, e.what());
    }
    QCOMPARE(readLogDataset(o.out_dir + "/run.h5", "/metrics/loss"), log_before);
    QCOMPARE(std::filesystem::last_write_time(o.out_dir + "/checkpoint.pt"), ckpt_time);
    held.reset();
    QCOMPARE(Trainer(c, o).run().steps, int64_t{4});  // free again: it resumes
  }

  void aRunIsNeitherOverwrittenNorResumedAsAnotherRun() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    const auto c = smallRunConfig();
    QTemporaryDir dir;
    TrainerOptions o = twoStepsInto(c, dir.filePath("run").toStdString());
    const auto log_before = readLogDataset(o.out_dir + "/run.h5", "/metrics/loss");
    const auto ckpt_time = std::filesystem::last_write_time(o.out_dir + "/checkpoint.pt");
    auto refused = [&](const Config& config, const TrainerOptions& options, const char* part) {
      try {
        Trainer(config, options).run();
        QFAIL(qPrintable(QString("not refused: ") + part));
      } catch (const MstError& e) {
        QVERIFY2(std::string(e.what()).find(part) != std::string::npos, e.what());
      }
      QCOMPARE(readLogDataset(o.out_dir + "/run.h5", "/metrics/loss"), log_before);
      QCOMPARE(std::filesystem::last_write_time(o.out_dir + "/checkpoint.pt"), ckpt_time);
    };
    // A new run into the folder would replace its checkpoint and log.
    refused(c, o, "already holds a run (checkpoint.pt, run.h5)");
    refused(c, o, ("mst train --out " + o.out_dir + " --resume)").c_str());  // advice to paste
    // Resuming with another trajectory: refused, naming the key and both values.
    TrainerOptions r = o;
    r.resume = true;
    r.max_steps = 3;
    auto other = c;
    other.train.batch_size = 8;
    other.optim.lr = 1e-3;
    refused(other, r, "train.batch_size 16 → 8");
    refused(other, r, "optim.lr");
    // The advice names every flag it takes: --allow-config-change alone is refused.
    refused(other, r, ("--out " + o.out_dir + " --resume --allow-config-change").c_str());
    // Keys that only change how the run computes or logs may change; the change is an event.
    auto operational = c;
    operational.train.threads = 1;
    operational.train.log_every = 2;
    QCOMPARE(Trainer(operational, r).run().steps, int64_t{3});
    auto events = readLogStrings(o.out_dir + "/run.h5", "/events/message");
    QVERIFY(!events.empty());
    QVERIFY2(events.back().find("train.log_every 10 → 2") != std::string::npos, events.back().c_str());
    // Allowed explicitly, the trajectory changes too, and the log says so.
    r.allow_config_change = true;
    r.max_steps = 4;
    auto changed_lr = c;
    changed_lr.optim.lr = 1e-3;
    QCOMPARE(Trainer(changed_lr, r).run().steps, int64_t{4});
    events = readLogStrings(o.out_dir + "/run.h5", "/events/message");
    QVERIFY2(events.back().find("optim.lr") != std::string::npos, events.back().c_str());
    // A file where the folder should be, and a probe image the data set lacks.
    TrainerOptions f;
    f.out_dir = dir.filePath("a_file").toStdString();
    std::ofstream(f.out_dir) << "x";
    try {
      Trainer(c, f).run();
      QFAIL("trained into a file");
    } catch (const MstError& e) {
      QVERIFY2(std::string(e.what()).find("is a file") != std::string::npos, e.what());
    }
    auto probes = c;
    probes.train.probe_images = {0, 64};
    f.out_dir = dir.filePath("probes").toStdString();
    try {
      Trainer(probes, f).run();
      QFAIL("a probe image past the data set was accepted");
    } catch (const MstError& e) {
      QVERIFY2(std::string(e.what()).find("train.probe_images: image 64") != std::string::npos,
               e.what());
    }
  }

  void thirtyStepsOnFashionMnistLowerTheLoss() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    auto c = microConfig();
    c.data.limit = 512;
    c.train.batch_size = 32;
    c.train.epochs = 2;  // 16 steps per epoch
    c.train.log_every = 1;
    c.optim.lr = 4e-3;
    QTemporaryDir dir;
    TrainerOptions o;
    o.out_dir = dir.path().toStdString();
    o.max_steps = 30;
    auto s = Trainer(c, o).run();
    QCOMPARE(s.steps, int64_t{30});
    const std::string log = o.out_dir + "/run.h5";
    for (const char* name : {"loss", "loss_ce", "loss_rec"}) {
      auto v = readLogDataset(log, std::string("/metrics/") + name);
      QCOMPARE(static_cast<int64_t>(v.size()), int64_t{30});
      for (double x : v) QVERIFY2(std::isfinite(x), name);
    }
    // L_rec falls at once. L_CE first rises towards ln K while the centre flattens the initially
    // peaked teacher (DINO's early phase), so it is held to that bound rather than to a fall; the
    // total must end below its peak.
    auto mean5 = [](const std::vector<double>& v, size_t from) {
      double m = 0;
      for (size_t i = from; i < from + 5; ++i) m += v[i] / 5;
      return m;
    };
    auto rec = readLogDataset(log, "/metrics/loss_rec");
    QVERIFY2(mean5(rec, 25) < 0.7 * mean5(rec, 0),
             qPrintable(QString("rec %1 -> %2").arg(mean5(rec, 0)).arg(mean5(rec, 25))));
    auto ce = readLogDataset(log, "/metrics/loss_ce");
    const double ln_k = std::log(static_cast<double>(c.model.out_dim));
    for (double x : ce) QVERIFY2(x > 0 && x < ln_k + 0.2, qPrintable(QString::number(x)));
    auto loss = readLogDataset(log, "/metrics/loss");
    QVERIFY(mean5(loss, 25) < *std::max_element(loss.begin(), loss.end()));
    auto ratio = readLogDataset(log, "/metrics/mask_ratio");
    QVERIFY(ratio.back() >= 0 && ratio.back() < 0.2);
    QVERIFY(std::filesystem::exists(s.checkpoint));
  }
};

QTEST_APPLESS_MAIN(TestEngine)
#include "test_engine.moc"
