/// @brief Nothing saved is lost: failed checkpoint writes, non-finite losses, kill -9 and resume.
#include <torch/torch.h>

#include <QtTest/QtTest>

#include <csignal>
#include <filesystem>
#include <functional>
#include <memory>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "core/config/config.h"
#include "core/log/run_log.h"
#include "core/train/engine.h"
#include "core/train/trainer.h"
#include "core/util/error.h"

using namespace mst;
namespace fs = std::filesystem;

namespace {

bool fashionMnistPresent() {
  return fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

nlohmann::json tinyRun() {
  return {{"model", {{"preset", "vit_micro28"}}},
          {"data", {{"limit", 256}, {"workers", 1}}},
          {"crops", {{"local_crops", 1}}},
          {"train",
           {{"batch_size", 16}, {"epochs", 2}, {"log_every", 1}, {"checkpoint_every", 3},
            {"snapshot_every", 5}, {"threads", 1}, {"probe_images", {0, 1}}}}};
}

EngineOptions engineOptions() {
  EngineOptions o;
  o.mean = {0.3};
  o.std = {0.35};
  return o;
}

QString mstBinary() { return QString(MST_BINARY_DIR) + "/mst"; }

/// An engine of tinyRun() after one step, saved as the checkpoint `path`.
std::unique_ptr<Engine> savedAfterOneStep(const std::string& path) {
  auto engine = std::make_unique<Engine>(configFromJson(tinyRun()), engineOptions());
  engine->trainStep(torch::randint(0, 256, {16, 1, 28, 28}, torch::kUInt8));
  engine->saveCheckpoint(path);
  return engine;
}

/// Copies checkpoint `from` to `to`, editing its meta record with `edit` and, when `key` names
/// one of its tensors, dropping it ("drop"), casting it to int64 ("int64") or cutting its last
/// value ("short").
void rewriteCheckpoint(const std::string& from, const std::string& to,
                       const std::function<void(nlohmann::json&)>& edit,
                       const std::string& key = "", const std::string& replacement = "") {
  torch::serialize::InputArchive in;
  in.load_from(from);
  torch::serialize::OutputArchive out;
  for (const std::string& name : in.keys()) {
    c10::IValue value;
    in.read(name, value);
    if (name == "meta") {
      auto meta = nlohmann::json::parse(value.toStringRef());
      edit(meta);
      value = c10::IValue(meta.dump());
    } else if (name == key) {
      const torch::Tensor t = value.toTensor();
      if (replacement == "drop") continue;
      if (replacement == "int64") value = t.to(torch::kInt64);
      if (replacement == "short") value = t.flatten().narrow(0, 0, t.numel() - 1).clone();
    }
    out.write(name, value);
  }
  out.save_to(to);
}

}  // namespace

class TestRobustness : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { at::set_num_threads(1); }

  void failedCheckpointWriteKeepsThePreviousOne() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("checkpoint.pt").toStdString();
    Config c = configFromJson(tinyRun());
    Engine engine(c, engineOptions());
    engine.saveCheckpoint(path);
    auto saved = engine.student.values().clone();
    engine.trainStep(torch::randint(0, 256, {16, 1, 28, 28}, torch::kUInt8));
    // The temporary path is taken by a directory: the write fails as on a full disk.
    fs::create_directory(path + ".tmp");
    fs::create_directory(path + ".tmp/occupied");
    QVERIFY_THROWS_EXCEPTION(MstError, engine.saveCheckpoint(path));
    Engine reloaded(c, engineOptions());
    reloaded.loadCheckpoint(path);
    QCOMPARE(reloaded.step(), int64_t{0});
    QVERIFY(torch::equal(reloaded.student.values(), saved));
  }

  void truncatedCheckpointIsAClearError() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("checkpoint.pt").toStdString();
    Config c = configFromJson(tinyRun());
    Engine engine(c, engineOptions());
    engine.saveCheckpoint(path);
    fs::resize_file(path, fs::file_size(path) / 2);
    try {
      engine.loadCheckpoint(path);
      QFAIL("a truncated checkpoint loaded");
    } catch (const MstError& e) {
      QVERIFY(QString(e.what()).contains("checkpoint.pt"));
    }
  }

  void editedCheckpointIsAClearErrorAndChangesNothing_data() {
    QTest::addColumn<QString>("metaPatch");  // JSON merge patch on the meta record
    QTest::addColumn<QString>("key");        // tensor to replace ("" = none)
    QTest::addColumn<QString>("replacement");
    QTest::addColumn<QString>("detail");
    // Found by fuzz/fuzz_checkpoint.cpp: a negative step loaded (NaN weights on the next step),
    // a non-string tag or step gave a bare json type_error, and a bad tensor after a good one
    // left the engine half restored.
    QTest::newRow("negative step") << R"({"step": -3})" << "" << "" << "step";
    QTest::newRow("step is a string") << R"({"step": "7"})" << "" << "" << "step";
    QTest::newRow("step beyond int64") << R"({"step": 1e300})" << "" << "" << "step";
    QTest::newRow("format is a number") << R"({"format": 1})" << "" << "" << "not an MST";
    QTest::newRow("no model record") << R"({"model": null})" << "" << "" << "model";
    QTest::newRow("teacher missing") << "{}" << "teacher" << "drop" << "lacks 'teacher'";
    QTest::newRow("exp_avg as int64") << "{}" << "exp_avg" << "int64" << "'exp_avg'";
    QTest::newRow("center too short") << "{}" << "center" << "short" << "'center'";
  }
  void checkpointsFromBeforeModelGeluLoad() {
    // Checkpoints written before model.gelu existed have no such key in their model record:
    // they were trained with the exact GELU, and load into an erf network (not a tanh one).
    QTemporaryDir dir;
    const std::string good = dir.filePath("good.pt").toStdString();
    const std::string old = dir.filePath("old.pt").toStdString();
    const Config c = configFromJson(tinyRun());
    const auto trained = savedAfterOneStep(good);
    rewriteCheckpoint(good, old, [](nlohmann::json& meta) {
      meta["model"].erase("gelu");
      meta["config"]["model"].erase("gelu");
    });
    QVERIFY(!readCheckpointMeta(old)["model"].contains("gelu"));
    Engine fresh(c, engineOptions());
    fresh.loadCheckpoint(old);
    QVERIFY(torch::equal(fresh.teacher.values(), trained->teacher.values()));
    Config tanh_config = c;
    tanh_config.model.gelu = "tanh";
    Engine tanh_engine(tanh_config, engineOptions());
    QVERIFY_THROWS_EXCEPTION(MstError, tanh_engine.loadCheckpoint(old));
  }

  void exportWritesTheTeacherAndRefusesBadInput() {
    // `mst export`: the teacher backbone of a checkpoint under timm's names, in one JSON line;
    // a checkpoint that is not one is one error naming it, and the output already there stays.
    if (!QFileInfo::exists(mstBinary())) QSKIP("the mst binary is not built");
    QTemporaryDir dir;
    const QString ckpt = dir.filePath("c.pt"), out = dir.filePath("t.safetensors");
    const Config c = configFromJson(tinyRun());
    const auto trained = savedAfterOneStep(ckpt.toStdString());
    QProcess run;
    run.start(mstBinary(), {"export", "--checkpoint", ckpt, "--out", out});
    QVERIFY(run.waitForFinished(120000));
    QCOMPARE(run.exitCode(), 0);
    const auto lines = QString(run.readAllStandardOutput()).trimmed().split('\n');
    const auto result = nlohmann::json::parse(lines.last().toStdString());
    int64_t numel = 0;
    for (const auto& p : trained->teacher_vit->parameters()) numel += p.numel();
    numel -= c.model.dim;  // timm has no [MASK] token
    QCOMPARE(result["parameters"].get<int64_t>(), numel);
    QCOMPARE(result["timm_kwargs"]["depth"].get<int64_t>(), c.model.depth);
    const auto size = QFileInfo(out).size();
    QVERIFY(size > numel * 4);
    // A checkpoint of a bf16 GPU run whose data set is not on this machine: the weights alone
    // are exported, on the CPU.
    const QString gpu_run = dir.filePath("gpu.pt");
    rewriteCheckpoint(ckpt.toStdString(), gpu_run.toStdString(), [](nlohmann::json& meta) {
      meta["config"]["train"]["precision"] = "bf16";
      meta["config"]["data"]["path"] = "/nowhere/imagenet";
    });
    QProcess from_gpu;
    from_gpu.start(mstBinary(), {"export", "--checkpoint", gpu_run, "--out", dir.filePath("g.safetensors")});
    QVERIFY(from_gpu.waitForFinished(120000));
    QVERIFY2(from_gpu.exitCode() == 0, from_gpu.readAllStandardError().constData());
    QCOMPARE(QFileInfo(dir.filePath("g.safetensors")).size(), size);

    const QString junk = dir.filePath("junk.pt");
    QFile f(junk);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("not a checkpoint");
    f.close();
    QProcess bad;
    bad.start(mstBinary(), {"export", "--checkpoint", junk, "--out", out});
    QVERIFY(bad.waitForFinished(120000));
    QCOMPARE(bad.exitCode(), 1);
    QVERIFY(QString(bad.readAllStandardError()).contains("junk.pt"));
    QCOMPARE(QFileInfo(out).size(), size);
  }

  void editedCheckpointIsAClearErrorAndChangesNothing() {
    QFETCH(QString, metaPatch);
    QFETCH(QString, key);
    QFETCH(QString, replacement);
    QFETCH(QString, detail);
    QTemporaryDir dir;
    const std::string good = dir.filePath("good.pt").toStdString();
    const std::string edited = dir.filePath("edited.pt").toStdString();
    const Config c = configFromJson(tinyRun());
    savedAfterOneStep(good);

    rewriteCheckpoint(good, edited, [&](nlohmann::json& meta) {
      meta.merge_patch(nlohmann::json::parse(metaPatch.toStdString()));
    }, key.toStdString(), replacement.toStdString());

    Engine fresh(c, engineOptions());
    const torch::Tensor before = fresh.student.values().clone();
    try {
      fresh.loadCheckpoint(edited);
      QFAIL("the edited checkpoint loaded");
    } catch (const MstError& e) {
      const QString message = e.what();
      QVERIFY2(message.contains("edited.pt") && message.contains(detail), qPrintable(message));
    }
    QCOMPARE(fresh.step(), int64_t{0});
    QVERIFY(torch::equal(fresh.student.values(), before));
  }

  void nonFiniteLossStopsNamingStepAndTerm() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    QTemporaryDir dir;
    TrainerOptions o;
    o.out_dir = dir.path().toStdString();
    o.max_steps = 2;
    Trainer(configFromJson(tinyRun()), o).run();
    auto good = readCheckpointMeta(o.out_dir + "/checkpoint.pt");
    QCOMPARE(good["step"].get<int64_t>(), int64_t{2});

    auto exploding = tinyRun();
    exploding["loss"]["lambda_ce"] = 1e300;  // overflows float: the weighted loss is infinite
    o.resume = true;
    o.allow_config_change = true;  // the change is the point
    o.max_steps = 10;
    try {
      Trainer(configFromJson(exploding), o).run();
      QFAIL("the run went on with a non-finite loss");
    } catch (const MstError& e) {
      QString message = e.what();
      // Named as the log counts steps (the third step ends with 3 done), with the checkpoint kept.
      QVERIFY2(message.contains("non-finite") && message.contains("at step 3"), qPrintable(message));
      QVERIFY2(message.contains("checkpoint.pt (step 2) is kept"), qPrintable(message));
    }
    // The last good checkpoint is still there, loadable and finite.
    Engine engine(configFromJson(tinyRun()), engineOptions());
    engine.loadCheckpoint(o.out_dir + "/checkpoint.pt");
    QCOMPARE(engine.step(), int64_t{2});
    QVERIFY(torch::isfinite(engine.student.values()).all().item<bool>());
    auto events = readLogStrings(o.out_dir + "/run.h5", "/events/message");
    QVERIFY(!events.empty() && QString::fromStdString(events.back()).contains("non-finite"));
    QCOMPARE(readLogDataset(o.out_dir + "/run.h5", "/events/step").back(), 3.0);

    // On a new run's first step there is no checkpoint to keep, and none is claimed.
    TrainerOptions fresh;
    fresh.out_dir = dir.filePath("fresh").toStdString();
    fresh.max_steps = 2;
    try {
      Trainer(configFromJson(exploding), fresh).run();
      QFAIL("the run went on with a non-finite loss");
    } catch (const MstError& e) {
      const QString message = e.what();
      QVERIFY2(message.contains("at step 1:") && message.contains("no checkpoint was written yet"),
               qPrintable(message));
      QVERIFY2(!message.contains("is kept"), qPrintable(message));
    }
    QVERIFY(!std::filesystem::exists(fresh.out_dir + "/checkpoint.pt"));
  }

  void outOfMemoryMessageNamesTheBatchAndAHint() {
    Config c = configFromJson(tinyRun());
    c.train.batch_size = 384;
    const QString m = QString::fromStdString(
        outOfMemoryMessage(c, torch::Device("cuda:1"), 12, "/runs/a/checkpoint.pt"));
    for (const char* part : {"out of memory on cuda:1", "at step 12", "train.batch_size=384",
                             "3 crops per image", "lower train.batch_size", "/runs/a/checkpoint.pt"})
      QVERIFY2(m.contains(part), qPrintable(m + " lacks " + part));
    // Before the first checkpoint there is none to point to.
    const QString first =
        QString::fromStdString(outOfMemoryMessage(c, torch::Device("cpu"), 1, ""));
    QVERIFY2(first.contains("at step 1") && first.contains("no checkpoint was written yet") &&
                 !first.contains("intact"),
             qPrintable(first));
  }

  void resumeOnTheCommandLineUsesTheRunsOwnConfig() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    if (!QFileInfo::exists(mstBinary())) QSKIP("the mst binary is not built");
    QTemporaryDir dir;
    const QString config = dir.filePath("tiny.json"), out = dir.filePath("run");
    std::ofstream(config.toStdString()) << tinyRun().dump();
    auto mst = [](const QStringList& args, QString* err = nullptr) {
      QProcess p;
      p.start(mstBinary(), args);
      p.waitForFinished(120000);
      if (err) *err = QString::fromUtf8(p.readAllStandardError());
      const auto lines = QString::fromUtf8(p.readAllStandardOutput()).trimmed().split('\n');
      return std::make_pair(p.exitCode(),
                            p.exitCode() == 0 ? nlohmann::json::parse(lines.back().toStdString())
                                              : nlohmann::json());
    };
    QString err;
    QCOMPARE(mst({"train", "--config", config, "--out", out, "--max-steps", "2"}).first, 0);
    // Without --config: the run's own (non-default) settings, not the defaults.
    auto [rc, result] = mst({"train", "--out", out, "--resume", "--max-steps", "3"}, &err);
    QVERIFY2(rc == 0, qPrintable(err));
    QCOMPARE(result["steps"].get<int64_t>(), int64_t{3});
    QCOMPARE(result["steps_run"].get<int64_t>(), int64_t{1});
    // A change to the trajectory is one clear error naming the key; allowed, it goes on.
    rc = mst({"train", "--out", out, "--resume", "--set", "train.batch_size=8"}, &err).first;
    QVERIFY(rc != 0);
    QVERIFY2(err.contains("train.batch_size 16 → 8") && err.trimmed().count('\n') == 0, qPrintable(err));
    std::tie(rc, result) = mst({"train", "--out", out, "--resume", "--max-steps", "4", "--set",
                                "optim.lr=0.001", "--allow-config-change"}, &err);
    QVERIFY2(rc == 0, qPrintable(err));
    QCOMPARE(result["steps"].get<int64_t>(), int64_t{4});
    // Without --resume the folder's run is not replaced.
    rc = mst({"train", "--config", config, "--out", out}, &err).first;
    QVERIFY(rc != 0);
    QVERIFY2(err.contains("already holds a run"), qPrintable(err));
    QCOMPARE(readCheckpointMeta((out + "/checkpoint.pt").toStdString())["step"].get<int64_t>(),
             int64_t{4});
    // Resuming a finished run runs no step: no loss or speed to report.
    std::tie(rc, result) = mst({"train", "--out", out, "--resume", "--max-steps", "4"}, &err);
    QVERIFY2(rc == 0, qPrintable(err));
    QCOMPARE(result["steps_run"].get<int64_t>(), int64_t{0});
    QVERIFY(result["loss"].is_null() && result["img_s"].is_null());
  }

  void killNineThenResumeEqualsAnUninterruptedRun() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    if (!QFileInfo::exists(mstBinary())) QSKIP("the mst binary is not built");
    QTemporaryDir dir;
    const QString config = dir.filePath("tiny.json");
    std::ofstream(config.toStdString()) << tinyRun().dump();
    const QString straight = dir.filePath("straight"), killed = dir.filePath("killed");

    QProcess full;
    full.start(mstBinary(), {"train", "--config", config, "--out", straight});
    QVERIFY(full.waitForFinished(120000));
    QCOMPARE(full.exitCode(), 0);

    std::mt19937 rng(static_cast<unsigned>(QDateTime::currentMSecsSinceEpoch()));
    QProcess victim;
    victim.start(mstBinary(), {"train", "--config", config, "--out", killed});
    QVERIFY(victim.waitForStarted());
    // Wait for a first checkpoint, then kill at a random moment of the following steps.
    QElapsedTimer timer;
    timer.start();
    while (!QFileInfo::exists(killed + "/checkpoint.pt") && timer.elapsed() < 60000 &&
           victim.state() == QProcess::Running)
      QThread::msleep(2);
    QThread::msleep(std::uniform_int_distribution<int>(0, 150)(rng));
    const bool killed_mid_run = victim.state() == QProcess::Running;
    ::kill(static_cast<pid_t>(victim.processId()), SIGKILL);
    victim.waitForFinished();
    if (!killed_mid_run) QWARN("the run ended before the kill: the resume below has nothing to do");

    QProcess resume;
    resume.start(mstBinary(), {"train", "--config", config, "--out", killed, "--resume"});
    QVERIFY(resume.waitForFinished(120000));
    QVERIFY2(resume.exitCode() == 0, resume.readAllStandardError().constData());

    Config c = configFromJson(tinyRun());
    Engine a(c, engineOptions()), b(c, engineOptions());
    a.loadCheckpoint((straight + "/checkpoint.pt").toStdString());
    b.loadCheckpoint((killed + "/checkpoint.pt").toStdString());
    QCOMPARE(b.step(), a.step());
    const double diff = (a.student.values() - b.student.values()).abs().max().item<double>();
    QVERIFY2(diff <= 1e-6, qPrintable(QString::number(diff)));
    QVERIFY(torch::equal(a.teacher.values(), b.teacher.values()));

    // The log stayed readable and the resumed run appended without duplicates or gaps.
    auto steps = readLogDataset((killed + "/run.h5").toStdString(), "/metrics/step");
    QCOMPARE(static_cast<int64_t>(steps.size()), a.step());
    for (size_t i = 0; i < steps.size(); ++i) QCOMPARE(steps[i], static_cast<double>(i + 1));
    QCOMPARE(readLogDataset((killed + "/run.h5").toStdString(), "/metrics/loss"),
             readLogDataset((straight + "/run.h5").toStdString(), "/metrics/loss"));
  }
};

QTEST_APPLESS_MAIN(TestRobustness)
#include "test_robustness.moc"
