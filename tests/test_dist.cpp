/// @brief Data parallel on c10d (Gloo on loopback): N ranks × B equal one process on N×B.
#include <torch/torch.h>

#include <QtTest/QtTest>
#include <csignal>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/config/config.h"
#include "core/dist/communicator.h"
#include "core/dist/dist_context.h"
#include "core/log/log_reader.h"
#include "core/train/engine.h"
#include "core/util/error.h"

using namespace mst;
namespace fs = std::filesystem;

namespace {

Config microConfig() {
  Config c;
  c.model = modelPreset("vit_micro28");  // drop_path 0.1: the student's per-sample draws count
  c.crops.local_crops = 2;
  c.train.batch_size = 4;  // per rank
  c.train.seed = 11;
  c.train.epochs = 10;
  c.masking.strategy = "random";
  c.masking.p = 0.3;  // many masked patches: the mask draw must be the global one
  c.optim.freeze_last_layer_epochs = 0;
  c.optim.lr = 0.05;  // ×8/256: steps of ~1e-3, so that 1e-5 is a tight bound
  return c;
}

EngineOptions engineOptions() {
  EngineOptions o;
  o.steps_per_epoch = 2;  // short warm-up: the lr is non-zero from step 1
  o.total_steps = 20;
  o.mean = {0.3};
  o.std = {0.35};
  o.bucket_bytes = 64 << 10;  // several buckets for the micro model
  return o;
}

/// The global batch of step i: (8, 1, 28, 28) uint8.
torch::Tensor globalBatch(int64_t i) {
  auto gen = at::globalContext().defaultGenerator(torch::kCPU).clone();
  gen.set_current_seed(500 + i);
  return torch::randint(0, 256, {8, 1, 28, 28}, gen, torch::kUInt8);
}

bool fashionMnistPresent() {
  return fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

QString mstBinary() { return QString(MST_BINARY_DIR) + "/mst"; }

nlohmann::json tinyRun() {
  return {{"model", {{"preset", "vit_micro28"}}},
          {"data", {{"limit", 64}, {"workers", 1}}},
          {"crops", {{"local_crops", 2}}},
          {"masking", {{"strategy", "random"}, {"p", 0.3}}},
          {"optim", {{"freeze_last_layer_epochs", 0}, {"lr", 0.05}}},
          {"train",
           {{"batch_size", 4},
            {"epochs", 4},
            {"log_every", 1},
            {"checkpoint_every", 100},
            {"snapshot_every", 0},
            {"threads", 1},
            {"seed", 5}}}};
}

/// One rank of a two-process run on `port`, as torchrun would start it.
std::unique_ptr<QProcess> startRank(int rank, int port, const QStringList& args) {
  auto p = std::make_unique<QProcess>();
  auto env = QProcessEnvironment::systemEnvironment();
  env.insert("RANK", QString::number(rank));
  env.insert("WORLD_SIZE", "2");
  env.insert("LOCAL_RANK", QString::number(rank));
  env.insert("MASTER_ADDR", "127.0.0.1");
  env.insert("MASTER_PORT", QString::number(port));
  p->setProcessEnvironment(env);
  p->start(mstBinary(), args);
  return p;
}

struct Saved {
  torch::Tensor student, center;
};

Saved readCheckpoint(const QString& path) {
  torch::serialize::InputArchive archive;
  archive.load_from(path.toStdString());
  Saved s;
  archive.read("student", s.student);
  archive.read("center", s.center);
  return s;
}

double maxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace

class TestDist : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { at::set_num_threads(1); }

  void contextReadsTorchrunThenSlurmVariables() {
    for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                          "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"})
      qunsetenv(v);
    QVERIFY(!distContextFromEnv().has_value());
    qputenv("SLURM_PROCID", "3");
    qputenv("SLURM_NTASKS", "8");
    qputenv("SLURM_LOCALID", "1");
    qputenv("MASTER_ADDR", "node7");
    auto c = distContextFromEnv();
    QVERIFY(c.has_value());
    QCOMPARE(c->rank, 3);
    QCOMPARE(c->world_size, 8);
    QCOMPARE(c->local_rank, 1);
    QCOMPARE(QString::fromStdString(c->master_addr), QString("node7"));
    QCOMPARE(c->master_port, 29500);
    qputenv("RANK", "5");  // torchrun's variables win over SLURM's
    qputenv("WORLD_SIZE", "6");
    qputenv("MASTER_PORT", "1234");
    c = distContextFromEnv();
    QCOMPARE(c->rank, 5);
    QCOMPARE(c->world_size, 6);
    QCOMPARE(c->master_port, 1234);
    qputenv("RANK", "6");
    QVERIFY_THROWS_EXCEPTION(MstError, distContextFromEnv());
    qputenv("RANK", "x");
    QVERIFY_THROWS_EXCEPTION(MstError, distContextFromEnv());
    for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                          "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"})
      qunsetenv(v);
  }

  /// Two ranks as two threads, each its own process group on one TCPStore: same crops, masks
  /// and drop-path as one process on the concatenated batch, so the same update.
  void twoRanksEqualOneProcessOnTheGlobalBatch() {
    const int port = freeTcpPort();
    auto connect = [port](int rank) {
      DistContext c;
      c.rank = rank;
      c.world_size = 2;
      c.master_port = port;
      c.timeout = std::chrono::seconds(30);
      return std::make_unique<Communicator>(c, torch::kCPU);
    };
    auto f0 = std::async(std::launch::async, connect, 0);
    auto f1 = std::async(std::launch::async, connect, 1);
    std::unique_ptr<Communicator> comms[2] = {f0.get(), f1.get()};
    QCOMPARE(QString::fromStdString(comms[0]->backendName()).toLower(), QString("gloo"));

    // Construction draws from the global generator: one engine at a time. The single process's
    // batch (hence its lr) is the global batch.
    auto global = microConfig();
    global.train.batch_size = 8;
    Engine single(global, engineOptions());
    std::unique_ptr<Engine> ranks[2];
    for (int r = 0; r < 2; ++r) {
      auto o = engineOptions();
      o.comm = comms[r].get();
      ranks[r] = std::make_unique<Engine>(microConfig(), o);
    }
    auto run = [&](int r, int64_t step) {
      at::set_num_threads(1);
      return ranks[r]->trainStep(globalBatch(step).narrow(0, 4 * r, 4));
    };
    const int steps = 4;
    for (int64_t i = 0; i < steps; ++i) {
      auto m1 = std::async(std::launch::async, run, 1, i);
      auto m0 = run(0, i);
      auto m1v = m1.get();
      auto ms = single.trainStep(globalBatch(i));
      // The logged values are the global batch's on every rank.
      QVERIFY2(std::abs(m0.loss.item<double>() - ms.loss.item<double>()) < 1e-5,
               qPrintable(QString("step %1 loss %2 vs %3")
                              .arg(i)
                              .arg(m0.loss.item<double>())
                              .arg(ms.loss.item<double>())));
      QCOMPARE(m0.loss.item<double>(), m1v.loss.item<double>());
      QVERIFY(std::abs(m0.mask_ratio.item<double>() - ms.mask_ratio.item<double>()) < 1e-6);
      QVERIFY(std::abs(m0.grad_norm.item<double>() - ms.grad_norm.item<double>()) <
              1e-4 * ms.grad_norm.item<double>());
    }
    QVERIFY(torch::equal(ranks[0]->student.values(), ranks[1]->student.values()));
    QVERIFY(torch::equal(ranks[0]->teacher.values(), ranks[1]->teacher.values()));
    QVERIFY(torch::equal(ranks[0]->center, ranks[1]->center));
    const double moved = maxAbsDiff(single.student.values(),
                                    Engine(microConfig(), engineOptions()).student.values());
    QVERIFY2(moved > 1e-3, "the weights must move for the comparison to mean anything");
    const double dw = maxAbsDiff(ranks[0]->student.values(), single.student.values());
    qInfo("in-process: weights moved by up to %g; two ranks vs one process: %g", moved, dw);
    QVERIFY2(dw < 1e-5, qPrintable(QString("student differs by %1").arg(dw)));
    const double dc = maxAbsDiff(ranks[0]->center, single.center);
    QVERIFY2(dc < 1e-6, qPrintable(QString("centre differs by %1").arg(dc)));
    // SyncBN: the decoder's running statistics are the global batch's.
    auto b0 = ranks[0]->decoder->named_buffers(), bs = single.decoder->named_buffers();
    for (const auto& item : bs) {
      const auto& mine = b0[item.key()];
      QVERIFY2(maxAbsDiff(mine.to(torch::kDouble), item.value().to(torch::kDouble)) < 1e-5,
               item.key().c_str());
    }
  }

  /// Two `mst train` processes under torchrun's variables against one process with the batch
  /// doubled: the loader's shards, the lr scaling and the whole step, end to end.
  void twoProcessesMatchOneAndOnlyRankZeroWrites() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    QTemporaryDir dir;
    const QString cfg = dir.filePath("run.json");
    {
      QFile f(cfg);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(QByteArray::fromStdString(tinyRun().dump()));
    }
    const int port = freeTcpPort();
    auto args = [&](const QString& out) {
      return QStringList{"train", "--config",       cfg, "--out", dir.filePath(out), "--max-steps",
                         "3",     "--dist-timeout", "30"};
    };
    auto r0 = startRank(0, port, args("rank0"));
    auto r1 = startRank(1, port, args("rank1"));
    QProcess single;
    single.start(mstBinary(), args("single") << "--set"
                                             << "train.batch_size=8");
    for (QProcess* p : {r0.get(), r1.get(), &single}) {
      QVERIFY(p->waitForFinished(60000));
      QVERIFY2(p->exitCode() == 0, p->readAllStandardError().constData());
    }
    // One result line, from rank 0.
    QVERIFY(r1->readAllStandardOutput().trimmed().isEmpty());
    auto result = nlohmann::json::parse(r0->readAllStandardOutput().trimmed().toStdString());
    QCOMPARE(result["world_size"].get<int>(), 2);
    QCOMPARE(result["steps"].get<int>(), 3);
    QVERIFY(!fs::exists(dir.filePath("rank1").toStdString()));  // rank 1 wrote nothing

    auto dist = readCheckpoint(dir.filePath("rank0/checkpoint.pt"));
    auto one = readCheckpoint(dir.filePath("single/checkpoint.pt"));
    const double dw = maxAbsDiff(dist.student, one.student);
    qInfo("two processes vs one: student differs by at most %g", dw);
    QVERIFY2(dw < 1e-5, qPrintable(QString("student differs by %1").arg(dw)));
    QVERIFY(maxAbsDiff(dist.center, one.center) < 1e-6);
    const std::string log = dir.filePath("rank0/run.h5").toStdString();
    auto l2 = readLogDataset(log, "/metrics/loss");
    auto l1 = readLogDataset(dir.filePath("single/run.h5").toStdString(), "/metrics/loss");
    QCOMPARE(l2.size(), l1.size());
    for (size_t i = 0; i < l1.size(); ++i) QVERIFY(std::abs(l1[i] - l2[i]) < 1e-5);
    QCOMPARE(readLogDataset(log, "/metrics/lr"),
             readLogDataset(dir.filePath("single/run.h5").toStdString(), "/metrics/lr"));
    for (const char* name : {"/metrics/img_s_rank0", "/metrics/img_s_rank1"}) {
      auto v = readLogDataset(log, name);
      QCOMPARE(v.size(), size_t{3});
      QVERIFY2(v.back() > 0, name);
    }
  }

  /// The local launcher (one child process per rank) and --resume with the same world size.
  void launcherResumesExactlyWithTheSameWorldSize() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    QTemporaryDir dir;
    const QString cfg = dir.filePath("run.json");
    {
      QFile f(cfg);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(QByteArray::fromStdString(tinyRun().dump()));
    }
    auto train = [&](const QString& out, int steps, QStringList extra) {
      QProcess p;
      p.start(mstBinary(),
              QStringList{"train", "--config", cfg, "--out", dir.filePath(out), "--max-steps",
                          QString::number(steps), "--dist-timeout", "30"} +
                  extra);
      p.waitForFinished(60000);
      return std::make_pair(p.exitCode(), QString(p.readAllStandardError()));
    };
    QCOMPARE(train("straight", 4, {"--ranks", "2"}).first, 0);
    QCOMPARE(train("resumed", 2, {"--ranks", "2"}).first, 0);
    QCOMPARE(train("resumed", 4, {"--ranks", "2", "--resume"}).first, 0);
    auto a = readCheckpoint(dir.filePath("straight/checkpoint.pt"));
    auto b = readCheckpoint(dir.filePath("resumed/checkpoint.pt"));
    QVERIFY(torch::equal(a.student, b.student));
    QVERIFY(torch::equal(a.center, b.center));
    auto steps = readLogDataset(dir.filePath("resumed/run.h5").toStdString(), "/metrics/step");
    QCOMPARE(steps, (std::vector<double>{1, 2, 3, 4}));
    // Another world size is another global batch: refused, checkpoint untouched.
    const auto before = fs::last_write_time(dir.filePath("resumed/checkpoint.pt").toStdString());
    auto [code, err] = train("resumed", 6, {"--resume"});
    QVERIFY(code != 0);
    QVERIFY2(err.contains("same number"), qPrintable(err));
    QVERIFY(fs::last_write_time(dir.filePath("resumed/checkpoint.pt").toStdString()) == before);
  }

  void deadOrHungPeerStopsTheOtherWithinTheTimeout_data() {
    QTest::addColumn<int>("signal");
    QTest::newRow("killed") << int(SIGKILL);
    QTest::newRow("hung") << int(SIGSTOP);
  }
  void deadOrHungPeerStopsTheOtherWithinTheTimeout() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    QFETCH(int, signal);
    QTemporaryDir dir;
    auto run = tinyRun();
    run["data"]["limit"] = 2048;
    run["train"]["checkpoint_every"] = 5;
    const QString cfg = dir.filePath("run.json");
    {
      QFile f(cfg);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(QByteArray::fromStdString(run.dump()));
    }
    const int port = freeTcpPort();
    const double timeout_s = 3;
    QStringList args{"train",
                     "--config",
                     cfg,
                     "--out",
                     dir.filePath("out"),
                     "--dist-timeout",
                     QString::number(timeout_s)};
    auto r0 = startRank(0, port, args);
    auto r1 = startRank(1, port, args);
    // Both are training once rank 0 has written its first checkpoint.
    const std::string ckpt = dir.filePath("out/checkpoint.pt").toStdString();
    QTRY_VERIFY_WITH_TIMEOUT(fs::exists(ckpt), 30000);
    QElapsedTimer clock;
    clock.start();
    ::kill(static_cast<pid_t>(r1->processId()), signal);
    QVERIFY(r0->waitForFinished(static_cast<int>((timeout_s + 10) * 1000)));
    const double took = clock.elapsed() / 1000.0;
    ::kill(static_cast<pid_t>(r1->processId()), SIGKILL);
    r1->waitForFinished(5000);
    QVERIFY(r0->exitCode() != 0);
    const QString err = QString(r0->readAllStandardError()).trimmed();
    const QString last = err.split('\n').last();
    QVERIFY2(last.contains("data-parallel rank 0 of 2") && last.contains("peer"), qPrintable(err));
    QVERIFY2(took < timeout_s + 5, qPrintable(QString("took %1 s").arg(took)));
    qInfo("rank 0 exited after %.1f s: %s", took, qPrintable(last));
    // The last checkpoint is intact: it loads.
    Engine check(configFromJson(run), engineOptions());
    check.loadCheckpoint(ckpt);
    QVERIFY(check.step() >= 5);
  }

  void twoGpusMatchOne() {
    if (!torch::cuda::is_available() || torch::cuda::device_count() < 2)
      QSKIP("needs two CUDA devices");
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    QTemporaryDir dir;
    const QString cfg = dir.filePath("run.json");
    {
      QFile f(cfg);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(QByteArray::fromStdString(tinyRun().dump()));
    }
    auto train = [&](const QString& out, QStringList extra) {
      QProcess p;
      p.start(mstBinary(), QStringList{"train", "--config", cfg, "--out", dir.filePath(out),
                                       "--max-steps", "3", "--dist-timeout", "60"} +
                               extra);
      p.waitForFinished(120000);
      return p.exitCode();
    };
    QCOMPARE(train("two", {"--device", "cuda:0,1"}), 0);
    QCOMPARE(train("one", {"--device", "cuda:0", "--set", "train.batch_size=8"}), 0);
    auto a = readCheckpoint(dir.filePath("two/checkpoint.pt"));
    auto b = readCheckpoint(dir.filePath("one/checkpoint.pt"));
    const double dw = maxAbsDiff(a.student, b.student);
    QVERIFY2(dw < 1e-4, qPrintable(QString("student differs by %1").arg(dw)));
  }
};

QTEST_APPLESS_MAIN(TestDist)
#include "test_dist.moc"
