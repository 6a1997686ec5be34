/// @brief The `mst` command line on bad input: one line `mst: error: ...` naming the flag, file or
/// key, a non-zero exit, checked before any data is read; and what `mst log` and `mst eval` print.
#include <QtTest/QtTest>

#include <signal.h>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/log/run_log.h"
#include "test_util.h"

using namespace mst;

namespace {

QString mstBinary() { return QString(MST_BINARY_DIR) + "/mst"; }

struct Outcome {
  int exit_code = -1;
  bool crashed = true;
  QString out, err;
  /// The non-empty lines of stderr (the run errors start with a newline that ends a progress line).
  QStringList errLines() const { return err.split('\n', Qt::SkipEmptyParts); }
};

Outcome runMst(const QStringList& args) {
  QProcess p;
  p.start(mstBinary(), args);
  Outcome o;
  if (!p.waitForFinished(120000)) {
    p.kill();
    p.waitForFinished();
    return o;
  }
  o.crashed = p.exitStatus() != QProcess::NormalExit;
  o.exit_code = p.exitCode();
  o.out = QString::fromUtf8(p.readAllStandardOutput());
  o.err = QString::fromUtf8(p.readAllStandardError());
  return o;
}

}  // namespace

class TestCli : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    if (!QFileInfo::exists(mstBinary())) QSKIP("the mst binary is not built");
    QVERIFY(dir_.isValid());
  }

  void badInputIsOneLineNamingIt_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QStringList>("needles");
    // data.path points nowhere: a flag error must come before the data are read.
    const QString nowhere = "data.path=/nonexistent/fashion-mnist";
    QTest::newRow("bench --batch 0")
        << QStringList{"bench", "--batch", "0"} << QStringList{"--batch", ">= 1"};
    QTest::newRow("bench --batch -1")
        << QStringList{"bench", "--batch", "-1"} << QStringList{"--batch"};
    QTest::newRow("bench --steps 0")
        << QStringList{"bench", "--steps", "0"} << QStringList{"--steps"};
    QTest::newRow("bench --steps -1")
        << QStringList{"bench", "--steps", "-1"} << QStringList{"--steps"};
    QTest::newRow("bench --warmup -1")
        << QStringList{"bench", "--warmup", "-1"} << QStringList{"--warmup", ">= 0"};
    QTest::newRow("bench --data-batches 0")
        << QStringList{"bench", "--data-batches", "0"} << QStringList{"--data-batches"};
    QTest::newRow("bench --batch abc")
        << QStringList{"bench", "--batch", "abc"} << QStringList{"--batch", "abc"};
    // Our CUDA kernels alone: no kernels in a CPU build, no CUDA device on the CPU.
    QTest::newRow("bench --micro without the kernels or a GPU")
        << QStringList{"bench", "--micro"} << QStringList{"--micro"};
    QTest::newRow("--threads -2") << QStringList{"config", "--threads", "-2"}
                                  << QStringList{"--threads"};
    QTest::newRow("unknown command")
        << QStringList{"foo"} << QStringList{"unknown command 'foo'", "train", "export"};
    QTest::newRow("no command") << QStringList{} << QStringList{"train", "export"};
    QTest::newRow("unknown sub-command")
        << QStringList{"eval", "foo"} << QStringList{"'foo'", "knn", "linear"};
    QTest::newRow("option a command lacks")
        << QStringList{"export", "--checkpoint", "c.pt", "--out", "t.safetensors", "--threads", "1"}
        << QStringList{"mst export", "--threads 1"};
    QTest::newRow("--train-limit -5")
        << QStringList{"eval", "knn", "--train-limit", "-5"} << QStringList{"--train-limit"};
    QTest::newRow("--test-limit -1")
        << QStringList{"eval", "linear", "--test-limit", "-1"} << QStringList{"--test-limit"};
    QTest::newRow("--epochs 0") << QStringList{"eval", "linear", "--epochs", "0"}
                                << QStringList{"--epochs"};
    QTest::newRow("--lr -1 before the data")
        << QStringList{"eval", "linear", "--set", nowhere, "--lr", "-1"}
        << QStringList{"--lr", "> 0"};
    QTest::newRow("--k abc before the data")
        << QStringList{"eval", "knn", "--set", nowhere, "--k", "abc"}
        << QStringList{"--k", "neighbour"};
    QTest::newRow("--k 0") << QStringList{"eval", "knn", "--set", nowhere, "--k", "5,0"}
                           << QStringList{"--k", ">= 1"};
    QTest::newRow("--record without a checkpoint")
        << QStringList{"eval", "knn", "--set", nowhere, "--record"}
        << QStringList{"--record", "--checkpoint"};
    QTest::newRow("--config a folder")
        << QStringList{"config", "--config", dir_.path()} << QStringList{dir_.path(), "directory"};
    QTest::newRow("--set 1e400") << QStringList{"config", "--set", "optim.lr=1e400"}
                                 << QStringList{"optim.lr", "range"};
    QTest::newRow("data.mean alone")
        << QStringList{"config", "--set", "data.mean=[0.5]"} << QStringList{"config key data.mean"};
    QTest::newRow("masking.num > patches")
        << QStringList{"config", "--set", "masking.num=1000"} << QStringList{"masking.num", "49"};
    QTest::newRow("export --out a folder")
        << QStringList{"export", "--checkpoint", "c.pt", "--out", dir_.path()}
        << QStringList{"--out", dir_.path()};
    QTest::newRow("export --checkpoint a folder without one")
        << QStringList{"export", "--checkpoint", dir_.path(), "--out",
                       dir_.filePath("t.safetensors")}
        << QStringList{dir_.path(), "folder without a checkpoint.pt"};
    QTest::newRow("eval --checkpoint a folder without one")
        << QStringList{"eval", "knn", "--set", nowhere, "--checkpoint", dir_.path()}
        << QStringList{dir_.path(), "folder without a checkpoint.pt"};
    QTest::newRow("inspect --out in a missing folder")
        << QStringList{"inspect", "--set", nowhere, "--out", dir_.filePath("no/probe.h5")}
        << QStringList{"--out", "does not exist"};
  }
  void badInputIsOneLineNamingIt() {
    QFETCH(QStringList, args);
    QFETCH(QStringList, needles);
    const Outcome o = runMst(args);
    QVERIFY2(!o.crashed, qPrintable(args.join(' ')));
    QVERIFY2(o.exit_code != 0, qPrintable(args.join(' ')));
    const QStringList lines = o.errLines();
    QVERIFY2(lines.size() == 1, qPrintable(o.err));
    QVERIFY2(lines.front().startsWith("mst: error: "), qPrintable(o.err));
    for (const auto& needle : needles)
      QVERIFY2(lines.front().contains(needle), qPrintable(needle + " not in: " + o.err));
    QVERIFY2(!o.err.contains("indices"), qPrintable(o.err));  // --images' wording
    QVERIFY2(o.out.isEmpty(), qPrintable(o.out));
  }

  void launcherVariablesAreNamedAndASecondStopQuits() {
    if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
      QSKIP("Fashion-MNIST is not installed");
    const QStringList tiny{"train", "--set", "model.preset=vit_micro28", "--set", "data.limit=64",
                           "--set", "train.batch_size=16", "--threads", "1"};
    // srun's variables in a plain shell must not silently override --ranks.
    QProcess p;
    auto env = QProcessEnvironment::systemEnvironment();
    env.insert("SLURM_NTASKS", "4");
    env.insert("SLURM_PROCID", "0");
    p.setProcessEnvironment(env);
    p.start(mstBinary(), tiny + QStringList{"--ranks", "2", "--out", dir_.filePath("ranks")});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY(p.exitCode() != 0);
    const QString err = QString::fromUtf8(p.readAllStandardError());
    QVERIFY2(err.contains("--ranks 2 disagrees") && err.contains("SLURM_NTASKS=4"), qPrintable(err));

    // A rank waiting for a peer that never comes: the first stop request cannot be served before
    // the timeout, the second quits at once.
    QProcess lone;
    env = QProcessEnvironment::systemEnvironment();
    env.insert("WORLD_SIZE", "2");
    env.insert("RANK", "0");
    env.insert("MASTER_PORT", QString::number(20000 + QCoreApplication::applicationPid() % 20000));
    lone.setProcessEnvironment(env);
    lone.start(mstBinary(), tiny + QStringList{"--dist-timeout", "120", "--out", dir_.filePath("lone")});
    QVERIFY(lone.waitForStarted());
    lone.setReadChannel(QProcess::StandardError);
    QByteArray said_first;  // the rank's first line comes once its stop handlers are in place
    QElapsedTimer wait;
    wait.start();
    while (!said_first.contains("WORLD_SIZE=2, RANK=0)\n") && wait.elapsed() < 60000)
      if (lone.waitForReadyRead(1000)) said_first += lone.readAllStandardError();
    QVERIFY2(said_first.contains("WORLD_SIZE=2"), said_first.constData());
    QElapsedTimer timer;
    timer.start();
    ::kill(static_cast<pid_t>(lone.processId()), SIGINT);
    // The second request goes only once the first has been served: two signals sent while the
    // process is not scheduled (a loaded CI machine) merge into one pending signal.
    QByteArray said_stop;
    while (!said_stop.contains("stop again to quit at once") && timer.elapsed() < 20000)
      if (lone.waitForReadyRead(1000)) said_stop += lone.readAllStandardError();
    QVERIFY2(said_stop.contains("stop again to quit at once"), said_stop.constData());
    timer.restart();
    ::kill(static_cast<pid_t>(lone.processId()), SIGINT);
    // Well under --dist-timeout 120: the second request quits without waiting for the peer.
    QVERIFY2(lone.waitForFinished(20000), "the second stop request did not quit");
    QCOMPARE(lone.exitCode(), 130);
    const QString said = QString::fromUtf8(said_stop + lone.readAllStandardError());
    QVERIFY2(said.contains("quitting now"), qPrintable(said));
  }

  void helpStillPrintsAndSucceeds() {
    const Outcome o = runMst({"eval", "knn", "--help"});
    QCOMPARE(o.exit_code, 0);
    QVERIFY(o.out.contains("--k"));
    QVERIFY(o.out.contains("knn_top1"));
    QVERIFY2(!o.out.contains("none ="), qPrintable(o.out));  // --checkpoint none is a file name
    // Defaults that come from the config say so, and so does the read-outs' use of the whole
    // training split.
    QVERIFY2(o.out.contains("eval.k") && o.out.contains("data.limit"), qPrintable(o.out));
    const Outcome linear = runMst({"eval", "linear", "--help"});
    QCOMPARE(linear.exit_code, 0);
    QVERIFY2(linear.out.contains("probe's training images"), qPrintable(linear.out));
    QVERIFY2(!linear.out.contains("k-NN bank"), qPrintable(linear.out));
    const Outcome bench = runMst({"bench", "--help"});
    QVERIFY2(bench.exit_code == 0 && bench.out.contains("train.batch_size"), qPrintable(bench.out));
    const Outcome log = runMst({"log", "--help"});
    QVERIFY2(log.exit_code == 0 && log.out.contains("step,message"), qPrintable(log.out));
  }

  void benchTakesTheConfigsBatchUnlessGiven() {
    const QStringList base{"bench", "--set", "model.preset=vit_micro28", "--set",
                           "train.batch_size=3", "--steps", "1", "--warmup", "0", "--threads", "1"};
    for (const auto& [extra, batch] :
         {std::pair<QStringList, int64_t>{{}, 3},
          std::pair<QStringList, int64_t>{{"--batch", "2"}, 2}}) {
      const Outcome o = runMst(base + extra);
      QVERIFY2(o.exit_code == 0, qPrintable(o.err));
      const auto r = nlohmann::json::parse(o.out.trimmed().split('\n').last().toStdString());
      QCOMPARE(r["batch"].get<int64_t>(), batch);
    }
  }

  void logPrintsEvalColumnsAndEachColumnOnce() {
    const QString run = dir_.filePath("run");
    QVERIFY(QDir().mkpath(run));
    {
      RunLogShape shape;
      shape.metrics = {"loss", "loss_ce"};
      shape.evals = {"knn_top1"};
      RunLog log((run + "/run.h5").toStdString(), "{}", shape, /*resume=*/false, 0);
      for (int64_t step = 1; step <= 4; ++step)
        log.appendMetrics(step, 0.25 * step, {{"loss", 1.0 / step}, {"loss_ce", 0.5 / step}});
      log.appendEval(4, 1.0, {{"knn_top1", 42.5}});
      log.appendEvent(2, "resumed at step 2");
      log.appendEvent(3, "changed: \"a\", b\nc");
    }
    // Events as CSV: a header, and a message quoted where it holds a comma, a quote or a newline.
    Outcome events = runMst({"log", run, "--events"});
    QVERIFY2(events.exit_code == 0, qPrintable(events.err));
    QCOMPARE(events.out,
             QString("step,message\n2,resumed at step 2\n3,\"changed: \"\"a\"\", b\nc\"\n"));
    Outcome o = runMst({"log", run, "--metrics", "knn_top1"});
    QVERIFY2(o.exit_code == 0, qPrintable(o.err));
    QCOMPARE(o.out.trimmed().split('\n'), (QStringList{"step,epoch,knn_top1", "4,1,42.5"}));

    o = runMst({"log", run, "--metrics", "step,loss,loss"});
    QVERIFY2(o.exit_code == 0, qPrintable(o.err));
    const QStringList rows = o.out.trimmed().split('\n');
    QCOMPARE(rows.front(), QString("step,epoch,loss"));
    QCOMPARE(rows.size(), 5);

    for (const QStringList& bad :
         {QStringList{"--metrics", "loss,knn_top1"}, QStringList{"--metrics", "nosuch"},
          QStringList{"--metrics", "knn_top1", "--group", "metrics"}}) {
      o = runMst(QStringList{"log", run} + bad);
      QVERIFY2(o.exit_code != 0 && o.errLines().size() == 1, qPrintable(o.err));
      QVERIFY2(o.errLines().front().startsWith("mst: error: "), qPrintable(o.err));
      QVERIFY2(o.out.isEmpty(), qPrintable(o.out));
    }
  }

  void evalChecksKAgainstTheBankAndRoundsPercentages() {
    if (!test::fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    const QStringList base{"--threads",     "1",   "--features",   "pixels",
                           "--train-limit", "300", "--test-limit", "70"};
    Outcome o = runMst(QStringList{"eval", "knn", "--k", "1000"} + base);
    QVERIFY2(o.exit_code != 0 && o.errLines().size() == 1, qPrintable(o.err));
    QVERIFY2(o.err.contains("--k 1000") && o.err.contains("300"), qPrintable(o.err));

    o = runMst(QStringList{"eval", "knn", "--k", "3,10"} + base);
    QVERIFY2(o.exit_code == 0, qPrintable(o.err));
    auto r = nlohmann::json::parse(o.out.trimmed().split('\n').last().toStdString());
    QCOMPARE(r["knn_k"].get<int64_t>(), int64_t{10});
    QVERIFY2(r.contains("checkpoint") && r["checkpoint"].is_null(), r.dump().c_str());  // pixels
    QCOMPARE(r["knn_top1"].get<double>(), r["knn_top1_k10"].get<double>());
    // 70 test images: most percentages are not exact in binary; 4 decimals are printed.
    for (const char* key : {"knn_top1_k3", "knn_top1_k10"}) {
      const double v = r[key].get<double>() * 1e4;
      QVERIFY2(std::abs(v - std::round(v)) < 1e-6, r.dump().c_str());
      QVERIFY2(r[key].dump().size() <= 8, r.dump().c_str());  // "87.1429", not 87.14285714285714
    }
    // Per class at knn_k, in the one JSON line; the table for people goes to stderr.
    QCOMPARE(o.out.trimmed().split('\n').size(), qsizetype{1});
    QCOMPARE(r["per_class_top1"].size(), size_t{10});
    for (const auto& v : r["per_class_top1"])
      QVERIFY2(v.is_null() || v.dump().size() <= 8, r.dump().c_str());
    QVERIFY2(o.err.contains("k = 10") && o.err.contains("Ankle boot"), qPrintable(o.err));

    // Without --k, the config's eval.k (as sweeps use it), checked against the bank as --k is.
    o = runMst(QStringList{"eval", "knn", "--set", "eval.k=5"} + base);
    QVERIFY2(o.exit_code == 0, qPrintable(o.err));
    r = nlohmann::json::parse(o.out.trimmed().split('\n').last().toStdString());
    QCOMPARE(r["knn_k"].get<int64_t>(), int64_t{5});
    QVERIFY2(r.contains("knn_top1_k5") && !r.contains("knn_top1_k10"), r.dump().c_str());
    o = runMst(QStringList{"eval", "knn", "--set", "eval.k=1000"} + base);
    QVERIFY2(o.exit_code != 0 && o.errLines().size() == 1, qPrintable(o.err));
    QVERIFY2(o.err.contains("eval.k 1000") && o.err.contains("300"), qPrintable(o.err));

    o = runMst(QStringList{"eval", "linear", "--epochs", "1"} + base);
    QVERIFY2(o.exit_code == 0, qPrintable(o.err));
    r = nlohmann::json::parse(o.out.trimmed().split('\n').last().toStdString());
    for (const char* key : {"linear_top1", "linear_train_top1"})
      QVERIFY2(r[key].dump().size() <= 8, r.dump().c_str());
  }

  void aRunFolderStandsForItsCheckpoint() {
    // As `mst log` takes a run folder for its run.h5, export, eval and inspect take it for its
    // checkpoint.pt.
    if (!test::fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    const QString run = dir_.filePath("folder_run");
    Outcome o = runMst({"train", "--set", "model.preset=vit_micro28", "--set", "data.limit=64",
                        "--set", "train.batch_size=16", "--set", "train.snapshot_every=0",
                        "--out", run, "--max-steps", "1", "--threads", "1"});
    QVERIFY2(o.exit_code == 0, qPrintable(o.err));
    o = runMst({"export", "--checkpoint", run, "--out", dir_.filePath("t.safetensors")});
    QVERIFY2(o.exit_code == 0, qPrintable(o.err));
    QCOMPARE(nlohmann::json::parse(o.out.trimmed().toStdString())["step"].get<int64_t>(),
             int64_t{1});
    o = runMst({"eval", "knn", "--checkpoint", run, "--k", "1", "--train-limit", "20",
                "--test-limit", "10", "--threads", "1"});
    QVERIFY2(o.exit_code == 0, qPrintable(o.err));
    const auto r = nlohmann::json::parse(o.out.trimmed().split('\n').last().toStdString());
    QCOMPARE(QString::fromStdString(r["checkpoint"].get<std::string>()),
             QDir(run).filePath("checkpoint.pt"));
    o = runMst({"inspect", "--checkpoint", run, "--images", "0", "--out", dir_.filePath("p.h5"),
                "--threads", "1"});
    QVERIFY2(o.exit_code == 0, qPrintable(o.err));
  }

 private:
  QTemporaryDir dir_;
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
