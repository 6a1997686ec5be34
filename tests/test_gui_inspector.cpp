/// @brief The inspector and the sweep panel against the engine: the same masks as `mst inspect`,
/// the p = 1 rule on what is shown, redraws, and a real sweep filling its heat-map cells.
#include <QtTest/QtTest>

#include <QLineEdit>
#include <QProcess>
#include <QPushButton>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "app/gui/inspector_panel.h"
#include "tests/test_util.h"
#include "app/gui/sweep_panel.h"
#include "core/eval/sweep.h"
#include "core/eval/sweep_record.h"
#include "core/log/log_reader.h"
#include "core/log/run_log.h"
#include "widgets/inspector_grid.h"
#include "widgets/sweep_heatmap.h"

using namespace mst;
using namespace mst::test;

namespace {

nlohmann::json tinyExperiment() {
  // Mask settings other than the inspector's defaults (0.1, 8): a panel given this run must
  // take them from the run.
  return {{"model", {{"preset", "vit_micro28"}}},
          {"data", {{"limit", 512}, {"workers", 1}}},
          {"masking", {{"strategy", "attention_guided"}, {"p", 0.05}, {"num", 2}}},
          {"crops", {{"local_crops", 1}}},
          {"eval", {{"every_epochs", 0}}},
          {"train",
           {{"batch_size", 16},
            {"epochs", 1},
            {"log_every", 1},
            {"snapshot_every", 0},
            {"threads", 1}}}};
}

QString mst() { return QString(MST_BINARY_DIR) + "/mst"; }

bool run(const QStringList& args, QByteArray* err = nullptr) {
  QProcess p;
  p.start(mst(), args);
  if (!p.waitForFinished(300000)) return false;
  if (err) *err = p.readAllStandardError();
  return p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

}  // namespace

class TestGuiInspector : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  QString config_, checkpoint_;
  QString snapshot_run_;  ///< a run with snapshots of its own probe images and seed

  /// `mst inspect` of the fixture's checkpoint: images 2,5,9, seed 3, p 0.5, num 2.
  QString inspectFile(const QString& name) {
    const QString file = dir_.filePath(name);
    if (QFileInfo::exists(file)) return file;
    QByteArray err;
    if (!run({"inspect", "--checkpoint", checkpoint_, "--images", "2,5,9", "--seed", "3", "--set",
              "masking.p=0.5", "--set", "masking.num=2", "--out", file, "--threads", "1"},
             &err))
      qWarning("mst inspect: %s", err.constData());
    return file;
  }

  static nlohmann::json inspectConfig(const QString& file) {
    return nlohmann::json::parse(readLogAttribute(file.toStdString(), "/inspect/config", "json"));
  }

  /// Every value of `dataset` in both files agrees (same shape, within 1e-6).
  static bool sameDataset(const QString& a, const QString& b, const char* dataset) {
    std::vector<int64_t> da, db;
    const auto va = readLogArray(a.toStdString(), dataset, &da);
    const auto vb = readLogArray(b.toStdString(), dataset, &db);
    if (da != db) {
      qWarning("%s: shapes differ", dataset);
      return false;
    }
    for (size_t i = 0; i < va.size(); ++i) {
      if (std::abs(va[i] - vb[i]) > 1e-6) {
        qWarning("%s: value %zu differs: %g vs %g", dataset, i, va[i], vb[i]);
        return false;
      }
    }
    return true;
  }

  /// Waits until the panel shows weights drawn with these settings.
  static bool waitFor(InspectorPanel& panel, int num, qint64 seed) {
    const QString want = QString("num = %1, seed %2").arg(num).arg(seed);
    QElapsedTimer t;
    t.start();
    while (t.elapsed() < 120000) {
      QTest::qWait(50);
      if (panel.statusText().contains(want) && panel.statusText().startsWith("weights"))
        return true;
    }
    qWarning("inspector status: %s", qPrintable(panel.statusText()));
    return false;
  }

 private slots:
  void initTestCase() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    config_ = writeJson(dir_.filePath("tiny.json"), tinyExperiment());
    QByteArray err;
    QVERIFY2(run({"train", "--config", config_, "--out", dir_.filePath("run"), "--max-steps", "3",
                  "--threads", "1"},
                 &err),
             err.constData());
    checkpoint_ = dir_.filePath("run/checkpoint.pt");
    QVERIFY(QFileInfo::exists(checkpoint_));
    // Snapshots of probe images and a seed that are not the inspector's defaults (0-7, 0).
    nlohmann::json snap = tinyExperiment();
    snap["train"]["snapshot_every"] = 1;
    snap["train"]["probe_images"] = {3, 11, 40};
    snap["train"]["seed"] = 5;
    snapshot_run_ = dir_.filePath("snaprun");
    QVERIFY2(run({"train", "--config", writeJson(dir_.filePath("snap.json"), snap), "--out",
                  snapshot_run_, "--max-steps", "1", "--threads", "1"},
                 &err),
             err.constData());
  }

  void showsTheMasksMstInspectWrites() {
    const QString file = dir_.filePath("inspect.h5");
    QByteArray err;
    QVERIFY2(run({"inspect", "--checkpoint", checkpoint_, "--images", "0-3", "--seed", "7",
                  "--set", "masking.p=0.5", "--set", "masking.num=2", "--out", file,
                  "--threads", "1"},
                 &err),
             err.constData());
    InspectorPanel panel;
    panel.setImageIndices("0-3");
    panel.setCheckpoint(checkpoint_);  // first: it brings the run's settings along
    panel.setMaskSettings("attention_guided", 0.5, 2);
    panel.setSeed(7);
    QVERIFY(waitFor(panel, 2, 7));
    QVERIFY2(panel.statusText().contains("p = 0.5, num = 2, seed 7"),
             qPrintable(panel.statusText()));
    const auto& shown = panel.shownImages();
    QCOMPARE(shown.size(), 4);
    std::vector<int64_t> dims;
    const auto guided = readLogArray(file.toStdString(), "/inspect/mask_guided", &dims);
    const auto random = readLogArray(file.toStdString(), "/inspect/mask_random", &dims);
    const auto attention = readLogArray(file.toStdString(), "/inspect/attention", &dims);
    const int n = static_cast<int>(dims[1] * dims[2]);
    int masked = 0, differ = 0;
    for (int i = 0; i < 4; ++i) {
      for (int j = 0; j < n; ++j) {
        QCOMPARE(static_cast<float>(shown[i].mask_guided[j]), guided[i * n + j]);
        QCOMPARE(static_cast<float>(shown[i].mask_random[j]), random[i * n + j]);
        QVERIFY(std::abs(shown[i].attention[j] - attention[i * n + j]) < 1e-6);
        masked += shown[i].mask_guided[j];
        differ += shown[i].mask_guided[j] != shown[i].mask_random[j];
      }
    }
    QVERIFY(masked > 0);  // p = 0.5 over 24 candidates: some are masked
    QVERIFY(differ > 0);  // and the strategies pick different patches from the same draw
  }

  void opensAnMstInspectFileAsSaved() {
    const QString file = dir_.filePath("inspect_open.h5");
    QByteArray err;
    QVERIFY2(run({"inspect", "--checkpoint", checkpoint_, "--images", "2,5,9", "--seed", "3",
                  "--set", "masking.p=0.5", "--set", "masking.num=2", "--out", file,
                  "--threads", "1"},
                 &err),
             err.constData());
    InspectorPanel panel;
    QString error;
    QVERIFY2(panel.openInspectFile(file, &error), qPrintable(error));
    QVERIFY2(panel.statusText().contains("as saved") &&
                 panel.statusText().contains("p = 0.5, num = 2, seed 3") &&
                 panel.statusText().contains(checkpoint_),
             qPrintable(panel.statusText()));
    const auto& shown = panel.shownImages();
    QCOMPARE(shown.size(), 3);
    QCOMPARE(shown[0].title, QString("#2"));
    QCOMPARE(shown[2].title, QString("#9"));
    std::vector<int64_t> di, da, dh;
    const auto images = readLogArray(file.toStdString(), "/inspect/images", &di);
    const auto attention = readLogArray(file.toStdString(), "/inspect/attention", &da);
    const auto guided = readLogArray(file.toStdString(), "/inspect/mask_guided", &da);
    const auto recon = readLogArray(file.toStdString(), "/inspect/reconstruction", &di);
    const auto heads = readLogArray(file.toStdString(), "/inspect/attention_heads", &dh);
    const int plane = static_cast<int>(di[1] * di[2] * di[3]);
    const int cells = static_cast<int>(da[1] * da[2]);
    for (int i = 0; i < 3; ++i) {
      QCOMPARE(shown[i].image.size(), plane);
      for (int j = 0; j < plane; ++j) {
        QCOMPARE(shown[i].image[j], images[i * plane + j]);
        QCOMPARE(shown[i].reconstruction[j], recon[i * plane + j]);
      }
      for (int j = 0; j < cells; ++j) {
        QCOMPARE(shown[i].attention[j], attention[i * cells + j]);
        QCOMPARE(static_cast<float>(shown[i].mask_guided[j]), guided[i * cells + j]);
      }
    }
    // The heads as saved: head 2 of image 1 is the file's block (1, 1).
    QCOMPARE(shown[1].heads, static_cast<int>(dh[1]));
    panel.setHead(1);
    for (int j = 0; j < cells; ++j)
      QCOMPARE(panel.shownImages()[1].attention[j], heads[(1 * dh[1] + 1) * cells + j]);
    QVERIFY(!panel.grid()->headsView());
    // All heads: the grid shows the mean and every head of the file side by side.
    panel.setHead(InspectorPanel::kAllHeads);
    QVERIFY(panel.grid()->headsView());
    QCOMPARE(panel.grid()->headColumns(), static_cast<int>(dh[1]));
    for (int j = 0; j < cells; ++j)
      QCOMPARE(panel.grid()->images()[1].attention[j], attention[1 * cells + j]);
    panel.setHead(-1);
    QVERIFY(!panel.grid()->headsView());
    // Every block's maps: the last block's are the heads above; block 1's mean replaces the mean.
    std::vector<int64_t> db;
    const auto blocks = readLogArray(file.toStdString(), "/inspect/attention_blocks", &db);
    QCOMPARE(db.size(), size_t(5));
    QCOMPARE(db[2], dh[1]);
    const int64_t L = db[1], H = db[2];
    QVERIFY(L >= 2);
    QCOMPARE(shown[1].blocks, static_cast<int>(L));
    for (int64_t j = 0; j < H * cells; ++j)
      QVERIFY(std::abs(blocks[(1 * L + L - 1) * H * cells + j] - heads[1 * H * cells + j]) < 1e-6);
    panel.setBlock(0);
    QCOMPARE(panel.grid()->attentionSource(), QString("block 1"));
    for (int j = 0; j < cells; ++j) {
      double mean = 0.0;
      for (int64_t h = 0; h < H; ++h) mean += blocks[((1 * L + 0) * H + h) * cells + j] / H;
      QVERIFY(std::abs(panel.shownImages()[1].attention[j] - mean) < 1e-6);
    }
    QVERIFY(std::abs(panel.shownImages()[1].attention[0] - attention[1 * cells]) > 1e-7 ||
            std::abs(panel.shownImages()[1].attention[1] - attention[1 * cells + 1]) > 1e-7);
    panel.setBlock(-1);
    QVERIFY(panel.grid()->attentionSource().isEmpty());
    for (int j = 0; j < cells; ++j)
      QCOMPARE(panel.shownImages()[1].attention[j], attention[1 * cells + j]);

    // Exporting what is shown writes the file's settings back, not the controls' defaults.
    const QString again = dir_.filePath("inspect_again.h5");
    QVERIFY2(panel.exportHdf5(again, &error), qPrintable(error));
    const auto meta = nlohmann::json::parse(
        readLogAttribute(again.toStdString(), "/inspect/config", "json"));
    QCOMPARE(meta.at("p").get<double>(), 0.5);
    QCOMPARE(meta.at("num").get<int>(), 2);
    QCOMPARE(meta.at("seed").get<int>(), 3);
    QCOMPARE(meta.at("images"), nlohmann::json({2, 5, 9}));
    QCOMPARE(QString::fromStdString(meta.at("checkpoint").get<std::string>()), checkpoint_);
    std::vector<int64_t> d2;
    QCOMPARE(readLogArray(again.toStdString(), "/inspect/attention", &d2), attention);

    // A run log is not an inspect file: one message naming the file; the views stay.
    const QString log = dir_.filePath("run/run.h5");
    QVERIFY(!panel.openInspectFile(log, &error));
    QVERIFY2(error.contains(log) && error.contains("not an inspect file"), qPrintable(error));
    QCOMPARE(panel.shownImages().size(), 3);
  }

  void exportsTheMeanAndEveryHeadWhateverTheHeadShown() {
    const QString file = inspectFile("inspect_heads.h5");
    InspectorPanel panel;
    panel.setImageIndices("2,5,9");
    panel.setCheckpoint(checkpoint_);
    panel.setMaskSettings("attention_guided", 0.5, 2);
    panel.setSeed(3);
    QVERIFY(waitFor(panel, 2, 3));
    panel.setHead(1);  // "head 2" in the combo box
    QVERIFY(panel.shownImages()[0].heads > 1);
    const QString out = dir_.filePath("panel_heads.h5");
    QString error;
    QVERIFY2(panel.exportHdf5(out, &error), qPrintable(error));
    // What `mst inspect` writes: the mean as /inspect/attention, every head beside it.
    for (const char* dataset :
         {"/inspect/attention", "/inspect/attention_heads", "/inspect/mask_guided"})
      QVERIFY(sameDataset(out, file, dataset));
    const auto meta = inspectConfig(out);
    QCOMPARE(meta.at("images"), nlohmann::json({2, 5, 9}));
    QCOMPARE(meta.at("seed").get<int>(), 3);
    QCOMPARE(QString::fromStdString(meta.at("checkpoint").get<std::string>()), checkpoint_);
    // Reopened, the file has its heads again.
    InspectorPanel reopened;
    QVERIFY2(reopened.openInspectFile(out, &error), qPrintable(error));
    QCOMPARE(reopened.shownImages()[0].heads, panel.shownImages()[0].heads);
  }

  void exportsTheImagesARandomPickShows() {
    InspectorPanel panel;
    panel.setCheckpoint(checkpoint_);
    QVERIFY(waitFor(panel, 2, 0));
    QSignalSpy updated(&panel, &InspectorPanel::updated);
    panel.pickRandomImages(4);
    QVERIFY(updated.wait(120000));
    const QVector<qint64> picks = panel.currentRequest().indices;
    QCOMPARE(picks.size(), 4);
    const QString out = dir_.filePath("panel_random.h5");
    QString error;
    QVERIFY2(panel.exportHdf5(out, &error), qPrintable(error));
    QCOMPARE(inspectConfig(out).at("images"),
             nlohmann::json(std::vector<qint64>(picks.begin(), picks.end())));
    InspectorPanel reopened;
    QVERIFY2(reopened.openInspectFile(out, &error), qPrintable(error));
    QCOMPARE(reopened.shownImages()[3].title, QString("#%1").arg(picks[3]));
  }

  void exportsWhatASnapshotWasDrawnWith() {
    // The trainer draws snapshots of train.probe_images with train.seed, not of the controls'
    // images (0-7) and seed (0); their weights are in no file.
    InspectorPanel panel;
    panel.setRun(snapshot_run_);
    QVERIFY2(panel.statusText().startsWith("snapshot at step 1"), qPrintable(panel.statusText()));
    QCOMPARE(panel.shownImages().size(), 3);
    QCOMPARE(panel.shownImages()[1].title, QString("#11"));
    const QString out = dir_.filePath("panel_snapshot.h5");
    QString error;
    QVERIFY2(panel.exportHdf5(out, &error), qPrintable(error));
    const auto meta = inspectConfig(out);
    QCOMPARE(meta.at("images"), nlohmann::json({3, 11, 40}));
    QCOMPARE(meta.at("seed").get<int>(), 5);
    QCOMPARE(meta.at("p").get<double>(), 0.05);
    QCOMPARE(meta.at("num").get<int>(), 2);
    QVERIFY(meta.at("checkpoint").is_null());
    QCOMPARE(meta.at("step").get<int>(), 1);
    InspectorPanel reopened;
    QVERIFY2(reopened.openInspectFile(out, &error), qPrintable(error));
    QCOMPARE(reopened.shownImages()[2].title, QString("#40"));
    QCOMPARE(reopened.currentRequest().seed, qint64{5});
  }

  void anOpenedFileSetsTheControlsAndItsWeightsRedraw() {
    const QString file = inspectFile("inspect_redraw.h5");
    InspectorPanel panel;
    panel.setRun(snapshot_run_);  // other weights and settings: the file's must win
    QSignalSpy updated(&panel, &InspectorPanel::updated);
    QString error;
    QVERIFY2(panel.openInspectFile(file, &error), qPrintable(error));
    const ProbeRequest r = panel.currentRequest();
    QCOMPARE(r.seed, qint64{3});
    QCOMPARE(r.p, 0.5);
    QCOMPARE(r.num, 2);
    QCOMPARE(r.strategy, QString("attention_guided"));
    QCOMPARE(r.indices, QVector<qint64>({2, 5, 9}));
    QVERIFY2(panel.statusText().contains("Redraw computes from " + checkpoint_),
             qPrintable(panel.statusText()));
    // Setting the controls did not redraw: the file stays shown.
    QTest::qWait(300);
    QCOMPARE(updated.count(), 1);
    QVERIFY(panel.statusText().contains("as saved"));
    // Redraw reproduces the file from its weights.
    panel.redraw();
    QVERIFY(waitFor(panel, 2, 3));
    const QString again = dir_.filePath("panel_redrawn.h5");
    QVERIFY2(panel.exportHdf5(again, &error), qPrintable(error));
    for (const char* dataset :
         {"/inspect/attention", "/inspect/attention_heads", "/inspect/attention_blocks",
          "/inspect/mask_random", "/inspect/mask_guided", "/inspect/images"})
      QVERIFY(sameDataset(again, file, dataset));
  }

  void pOneMasksExactlyTheLowestAttention() {
    InspectorPanel panel;
    panel.setImageIndices("0-5");
    panel.setCheckpoint(checkpoint_);
    panel.setMaskSettings("attention_guided", 1.0, 4);
    QVERIFY(waitFor(panel, 4, 0));
    QSignalSpy updated(&panel, &InspectorPanel::updated);
    for (const ProbeImage& p : panel.shownImages()) {
      const int n = p.grid_h * p.grid_w;
      int count = 0;
      float max_masked = -1, min_kept = 2;
      for (int j = 0; j < n; ++j) {
        if (p.mask_guided[j]) {
          ++count;
          max_masked = std::max(max_masked, p.attention[j]);
        } else {
          min_kept = std::min(min_kept, p.attention[j]);
        }
      }
      QCOMPARE(count, n / 4);  // floor(n / num) candidates, every one masked at p = 1
      QVERIFY(max_masked <= min_kept);
    }
    // Changing num redraws: floor(49 / 2) patches now.
    panel.setMaskSettings("attention_guided", 1.0, 2);
    QVERIFY(waitFor(panel, 2, 0));
    QVERIFY(updated.count() >= 1);
    const ProbeImage& p = panel.shownImages().front();
    QCOMPARE(static_cast<int>(std::count(p.mask_guided.begin(), p.mask_guided.end(), 1)),
             p.grid_h * p.grid_w / 2);
    // Exports.
    for (const auto& [name, magic] : {std::pair<const char*, QByteArray>{"fig.png", "\x89PNG"},
                                      {"fig.pdf", "%PDF"}}) {
      QString error;
      QVERIFY2(panel.exportFigure(dir_.filePath(name), &error), qPrintable(error));
      QCOMPARE(fileHead(dir_.filePath(name), magic.size()), magic);
    }
    QString error;
    QVERIFY2(panel.exportFigure(dir_.filePath("fig.svg"), &error), qPrintable(error));
    QVERIFY(fileHead(dir_.filePath("fig.svg"), 4096).contains("<svg"));
    // MST_WIDGET_SHOTS=DIR keeps the figure of real weights for review.
    const QString shots = qEnvironmentVariable("MST_WIDGET_SHOTS");
    if (!shots.isEmpty()) QVERIFY(panel.exportFigure(shots + "/inspector_panel_figure.png"));
    QVERIFY2(panel.exportHdf5(dir_.filePath("panel.h5"), &error), qPrintable(error));
    std::vector<int64_t> dims;
    const auto guided =
        readLogArray(dir_.filePath("panel.h5").toStdString(), "/inspect/mask_guided", &dims);
    QCOMPARE(dims[0], 6);
    QCOMPARE(static_cast<int>(std::accumulate(guided.begin(), guided.end(), 0.0f)),
             6 * (p.grid_h * p.grid_w / 2));
  }

  void followsTheRunsMaskSettings() {
    InspectorPanel panel;
    QCOMPARE(panel.currentRequest().p, 0.1);  // the defaults, before any run
    QCOMPARE(panel.currentRequest().num, 8);
    panel.setRun(dir_.filePath("run"));
    QVERIFY(panel.runMaskSettings().has_value());
    ProbeRequest r = panel.currentRequest();
    QCOMPARE(r.strategy, QString("attention_guided"));
    QCOMPARE(r.p, 0.05);
    QCOMPARE(r.num, 2);
    // Redraw uses them (the label says so) ...
    panel.setImageIndices("0-1");
    QVERIFY(waitFor(panel, 2, 0));
    QVERIFY2(panel.statusText().contains("attention_guided, p = 0.05, num = 2, seed 0"),
             qPrintable(panel.statusText()));
    QVERIFY(!panel.statusText().contains("trained with"));
    // ... the user may still change them, and the label then names both.
    panel.setMaskSettings("attention_high", 0.3, 5);
    QVERIFY(waitFor(panel, 5, 0));
    QVERIFY2(panel.statusText().contains("attention_high, p = 0.3, num = 5, seed 0 (trained "
                                         "with attention_guided, p = 0.05, num = 2)"),
             qPrintable(panel.statusText()));
    // Choosing a checkpoint takes its config's settings again.
    panel.setCheckpoint(checkpoint_);
    QCOMPARE(panel.currentRequest().strategy, QString("attention_guided"));
    QCOMPARE(panel.currentRequest().p, 0.05);
    QCOMPARE(panel.currentRequest().num, 2);
    QVERIFY(waitFor(panel, 2, 0));
    QVERIFY(!panel.statusText().contains("trained with"));
  }

  void randomIndicesStayInTheDataSet_data() {
    QTest::addColumn<qint64>("size");
    QTest::addColumn<int>("count");
    QTest::newRow("large") << qint64(60000) << 8;
    QTest::newRow("limit") << qint64(512) << 8;
    QTest::newRow("just enough") << qint64(9) << 8;
    QTest::newRow("fewer than asked") << qint64(5) << 8;
    QTest::newRow("one") << qint64(1) << 8;
  }
  void randomIndicesStayInTheDataSet() {
    QFETCH(qint64, size);
    QFETCH(int, count);
    for (quint64 seed : {0ull, 1ull, 12345ull}) {
      const QVector<qint64> picks = randomImageIndices(size, count, seed);
      QCOMPARE(picks.size(), int(std::min<qint64>(size, count)));
      for (int i = 0; i < picks.size(); ++i) {
        QVERIFY(picks[i] >= 0 && picks[i] < size);
        if (i > 0) QVERIFY(picks[i] > picks[i - 1]);  // ascending, so distinct
      }
      QCOMPARE(randomImageIndices(size, count, seed), picks);
    }
  }

  void randomPicksFromTheRunsImages() {
    // The run's data.limit is 512: every pick is below it (picks below 10000 would not be).
    InspectorPanel panel;
    panel.setCheckpoint(checkpoint_);
    QVERIFY(waitFor(panel, 2, 0));
    for (int attempt = 0; attempt < 2; ++attempt) {
      QSignalSpy updated(&panel, &InspectorPanel::updated);
      panel.pickRandomImages(8);
      QVERIFY(updated.wait(120000));
      const QVector<qint64> picks = panel.currentRequest().indices;  // the field names them
      QCOMPARE(picks.size(), 8);
      QCOMPARE(panel.shownImages().size(), 8);
      for (int i = 0; i < picks.size(); ++i) {
        QVERIFY2(picks[i] < 512, qPrintable(QString::number(picks[i])));
        QCOMPARE(panel.shownImages()[i].title, QString("#%1").arg(picks[i]));
      }
    }
    // A data set smaller than eight images: all of them.
    InspectorPanel small;
    nlohmann::json json = tinyExperiment();
    json["data"]["limit"] = 5;
    small.setExperimentJson(QString::fromStdString(json.dump()));
    QSignalSpy updated(&small, &InspectorPanel::updated);
    small.pickRandomImages(8);
    QVERIFY(updated.wait(120000));
    QCOMPARE(small.currentRequest().indices, QVector<qint64>({0, 1, 2, 3, 4}));
  }

  void emptyTextNamesButtonsThatExist() {
    InspectorPanel panel;
    const QString text = panel.grid()->emptyText();
    QStringList buttons;
    for (const QPushButton* b : panel.findChildren<QPushButton*>()) buttons << b->text();
    // Every button-like name in the text ("Redraw", "Checkpoint…", ...) is a button.
    QRegularExpression names("(Redraw|Random|Checkpoint…|Folder…|Inspect\\w*|Open\\w*)");
    int named = 0;
    for (auto it = names.globalMatch(text); it.hasNext(); ++named) {
      const QString name = it.next().captured(1);
      QVERIFY2(buttons.contains(name), qPrintable(name + " is no button: " + text));
    }
    QVERIFY(named >= 3);
  }

  void aSweepFolderGivesBackItsGridAsTyped() {
    // The grid read back from sweep.h5 is what a person would type, and parses to the same cells.
    std::vector<mst::SweepAxis> axes{mst::parseAxis("masking.strategy=none,attention_guided"),
                                     mst::parseAxis("train.seed=0,1"),
                                     mst::parseAxis("data.path=\"1\",a b")};
    const std::string folder = dir_.filePath("typed").toStdString();
    mst::SweepCell cell;  // the tables need cells; the grid is what is read back
    cell.values = {"none", 0, "1"};
    cell.dir = folder + "/00";
    mst::writeSweepTables(folder, axes, {cell});
    QStringList read;
    QString error;
    QVERIFY2(SweepService::readAxes(QString::fromStdString(folder), &read, &error),
             qPrintable(error));
    QCOMPARE(read, QStringList({"masking.strategy=none,attention_guided", "train.seed=0,1",
                                "data.path=\"1\",\"a b\""}));
    for (int a = 0; a < read.size(); ++a)
      QCOMPARE(mst::parseAxis(read[a].toStdString()).values, axes[size_t(a)].values);
    // A folder that records its sweep (sweep.json) gives its grid and step cap from there, even
    // where sweep.h5 shows another grid; one from before sweep.json has no recorded steps.
    qint64 steps = 0;
    QVERIFY(SweepService::readAxes(QString::fromStdString(folder), &read, &error, &steps));
    QCOMPARE(steps, qint64{-1});
    mst::writeSweepRecord(folder, {{axes[1]}, 5, true, false});
    QVERIFY2(SweepService::readAxes(QString::fromStdString(folder), &read, &error, &steps),
             qPrintable(error));
    QCOMPARE(read, QStringList({"train.seed=0,1"}));
    QCOMPARE(steps, qint64{5});
  }

  void aCellFromBeforeStoredConfigsGivesItsExperimentFromItsLog() {
    // Cells written before result.json held the config (the recorded Table 4 / 5 folders): the
    // sweep's experiment comes from the cell's run.h5, so that reopening shows its results.
    const std::string cell_dir = dir_.filePath("oldcell/00").toStdString();
    std::filesystem::create_directories(cell_dir);
    {
      std::ofstream(cell_dir + "/result.json") << R"({"steps": 4, "knn_top1": 50.0})";
      mst::RunLogShape shape;
      shape.metrics = {"loss"};
      mst::RunLog log(cell_dir + "/run.h5", tinyExperiment().dump(), shape, false, 0);
    }
    SweepCellInfo cell;
    cell.dir = QString::fromStdString(cell_dir);
    QString found;
    qint64 steps = -1;
    SweepService::readSettings({cell}, &found, &steps);
    QVERIFY(!found.isEmpty());
    QCOMPARE(nlohmann::json::parse(found.toStdString()), tinyExperiment());
    QCOMPARE(steps, qint64{0});
  }

  void aSweepFillsItsHeatMap() {
    SweepPanel panel;
    panel.setExperimentJson(QString::fromStdString(tinyExperiment().dump()));
    panel.setGrid({"masking.num=1,4", "masking.p=0.1"});
    panel.setOutDir(dir_.filePath("sweep"));
    panel.setMaxSteps(2);
    panel.setReadoutLimits(512, 256);
    QSignalSpy finished(panel.service(), &SweepService::finished);
    QString error;
    QVERIFY2(panel.launch(&error), qPrintable(error));
    QCOMPARE(panel.heatmap()->state("1", "0.1"), CellState::Pending);
    QVERIFY(finished.wait(300000));
    QVERIFY(finished.front().at(0).toBool());
    for (const QString num : {"1", "4"}) {
      QCOMPARE(panel.heatmap()->state(num, "0.1"), CellState::Done);
      // The value shown is the cell's own result.
      const QString cell_dir = dir_.filePath("sweep");
      QDir sweep(cell_dir);
      const QStringList cells = sweep.entryList({"*masking.num=" + num + "*"}, QDir::Dirs);
      QCOMPARE(cells.size(), 1);
      QFile result(sweep.filePath(cells.front() + "/result.json"));
      QVERIFY(result.open(QIODevice::ReadOnly));
      const auto json = nlohmann::json::parse(result.readAll().toStdString());
      QCOMPARE(panel.heatmap()->value(num, "0.1"), json["knn_top1"].get<double>());
      // What the run log says about training is a read-out too: the masked share in percent.
      panel.setReadout("mask_ratio");
      QCOMPARE(panel.heatmap()->value(num, "0.1"), 100.0 * json["mask_ratio"].get<double>());
      panel.setReadout("loss_ce_end");
      QCOMPARE(panel.heatmap()->value(num, "0.1"), json["loss_ce_end"].get<double>());
      panel.setReadout("knn");
      // The tooltip names the other read-outs too.
      const QString tip = panel.heatmap()->toolTipFor(num, "0.1");
      QVERIFY2(tip.contains("linear top-1 %: " +
                            QString::number(json["linear_top1"].get<double>(), 'f', 2)),
               qPrintable(tip));
      QVERIFY2(tip.contains("masked share of patches %: "), qPrintable(tip));
      QCOMPARE(tip.count("k-NN top-1 %: "), 1);  // the coloured one, shown once
    }
    // Reopened later, it shows its finished cells.
    // Reopened, it also brings back what its cells were trained with: a relaunch must use it.
    SweepPanel reopened;
    QSignalSpy found(&reopened, &SweepPanel::experimentFound);
    QVERIFY2(reopened.open(dir_.filePath("sweep"), &error), qPrintable(error));
    QCOMPARE(found.count(), 1);
    const auto trained = nlohmann::json::parse(found.front().at(0).toString().toStdString());
    QCOMPARE(trained["data"]["limit"].get<int64_t>(), int64_t{512});
    QCOMPARE(trained["model"]["preset"].get<std::string>(), std::string("vit_micro28"));
    QCOMPARE(reopened.maxSteps(), qint64{2});
    // Asked for more steps than the cells trained, they are pending again (a launch continues
    // them); back at 2 they are done.
    reopened.setMaxSteps(3);
    QCOMPARE(reopened.heatmap()->state("4", "0.1"), CellState::Pending);
    reopened.setMaxSteps(2);
    QCOMPARE(reopened.heatmap()->state("4", "0.1"), CellState::Done);
    QCOMPARE(reopened.heatmap()->value("4", "0.1"), panel.heatmap()->value("4", "0.1"));
    // Another grid in the same folder is refused at once, naming the folder's grid; the heat map
    // keeps showing the folder's cells.
    reopened.setGrid({"masking.num=8", "masking.p=0.1"});
    QVERIFY(!reopened.launch(&error));
    QVERIFY2(error.contains("another grid") && error.contains("--grid masking.num=1,4"),
             qPrintable(error));
    QCOMPARE(reopened.heatmap()->state("4", "0.1"), CellState::Done);
    QVERIFY2(panel.heatmap()->exportFigure(dir_.filePath("heat.png"), &error), qPrintable(error));
    QCOMPARE(fileHead(dir_.filePath("heat.png"), 4), QByteArray("\x89PNG"));
    QVERIFY2(panel.heatmap()->exportCsv(dir_.filePath("heat.csv"), &error), qPrintable(error));
    QCOMPARE(fileHead(dir_.filePath("heat.csv"), 1 << 16).trimmed().split('\n').size(), 1 + 2);
  }

  /// A panel shown as its own window with the focus in Images: closing it on destruction moves
  /// the focus out, and the field's editingFinished used to redraw from members already destroyed
  /// (a use after free that glibc aborted on).
  void destroyWithFocusInImages() {
    for (int round = 0; round < 3; ++round) {
      auto* panel = new InspectorPanel;
      panel->setImageIndices("0,1");
      panel->setCheckpoint(checkpoint_);
      panel->setMaskSettings("attention_guided", 0.5, 2);
      panel->setSeed(3 + round);
      QVERIFY(waitFor(*panel, 2, 3 + round));
      panel->show();
      panel->activateWindow();
      auto* images = panel->findChild<QLineEdit*>();
      QVERIFY(images);
      images->setFocus();
      images->setText("0,1,2");  // edited, not yet confirmed
      QTest::qWait(50);
      delete panel;
      QTest::qWait(50);
    }
  }

  /// Not a check: with MST_WIDGET_SHOTS=DIR, saves the panel in the heads view as a person sees it
  /// (MST_REVIEW_CHECKPOINT=FILE for a trained run's weights instead of this test's 3 steps).
  void renderForReview() {
    const QString out = qEnvironmentVariable("MST_WIDGET_SHOTS");
    if (out.isEmpty()) QSKIP("MST_WIDGET_SHOTS is not set");
    InspectorPanel panel;
    panel.setImageIndices("0,1,2,7");
    panel.setCheckpoint(qEnvironmentVariable("MST_REVIEW_CHECKPOINT", checkpoint_));
    panel.setMaskSettings("attention_guided", 0.5, 2);
    panel.setSeed(3);
    QVERIFY(waitFor(panel, 2, 3));
    panel.setHead(InspectorPanel::kAllHeads);
    panel.resize(900, 700);
    panel.show();
    QTest::qWait(100);
    QVERIFY(panel.grab().toImage().save(out + "/inspector_panel_heads.png"));
    QString error;
    QVERIFY2(panel.exportFigure(out + "/inspector_figure_heads.png", &error), qPrintable(error));
    panel.setAttentionOverlay(true);
    QVERIFY2(panel.exportFigure(out + "/inspector_figure_heads_overlay.png", &error),
             qPrintable(error));
    panel.setBlock(0);
    QVERIFY2(panel.exportFigure(out + "/inspector_figure_heads_block1.png", &error),
             qPrintable(error));
  }
};

QTEST_MAIN(TestGuiInspector)
#include "test_gui_inspector.moc"
