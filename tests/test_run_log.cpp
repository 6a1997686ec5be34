/// @brief Run log properties: rows, NaNs, resume, snapshots, SWMR readers, inspect file.
// LibTorch before Qt: Qt's `slots` keyword macro breaks LibTorch's IValue headers.
#include <hdf5.h>
#include <torch/torch.h>

#include <QtTest/QtTest>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/log/run_log.h"
#include "core/util/error.h"

namespace {

const char* const kChildEnv = "MST_TEST_RUN_LOG_CHILD";

/// "1,2,3" for integral columns such as step, so that failures print readably.
QString joined(const std::vector<double>& values) {
  QStringList parts;
  for (double v : values) parts << QString::number(v);
  return parts.join(',');
}

QStringList toList(const std::vector<std::string>& values) {
  QStringList out;
  for (const std::string& v : values) out << QString::fromStdString(v);
  return out;
}

QString qs(const std::string& s) { return QString::fromStdString(s); }

mst::RunLogShape smallShape() {
  mst::RunLogShape shape;
  shape.metrics = {"loss", "lr", "mask_ratio"};
  shape.evals = {"knn_top1"};
  shape.probes = 2;
  shape.channels = 1;
  shape.height = 4;
  shape.width = 4;
  shape.grid_h = 2;
  shape.grid_w = 2;
  return shape;
}

/// Distinct known values per snapshot `k`; masks are bool to exercise the dtype conversion.
mst::ProbeViews knownViews(const mst::RunLogShape& s, int k) {
  mst::ProbeViews v;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  v.images = torch::arange(s.probes * s.channels * s.height * s.width, f64)
                     .reshape({s.probes, s.channels, s.height, s.width}) /
                 100.0 +
             k;
  v.attention =
      torch::arange(s.probes * s.grid_h * s.grid_w, f64).reshape({s.probes, s.grid_h, s.grid_w}) *
          0.5 +
      k;
  v.mask_random = (torch::arange(s.probes * s.grid_h * s.grid_w) % 2 == k % 2)
                      .reshape({s.probes, s.grid_h, s.grid_w});
  v.mask_guided = (torch::arange(s.probes * s.grid_h * s.grid_w) % 3 == 0)
                      .reshape({s.probes, s.grid_h, s.grid_w});
  v.reconstruction = 1.0 - v.images;
  return v;
}

/// The stored HDF5 type of a dataset, as "f32", "f64", "i64", "u8", "str" or "other".
QString storedType(const std::string& path, const std::string& dataset) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
  if (file < 0) file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dset = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
  hid_t type = H5Dget_type(dset);
  std::string name = "other";
  if (H5Tequal(type, H5T_IEEE_F32LE) > 0) name = "f32";
  if (H5Tequal(type, H5T_IEEE_F64LE) > 0) name = "f64";
  if (H5Tequal(type, H5T_STD_I64LE) > 0) name = "i64";
  if (H5Tequal(type, H5T_STD_U8LE) > 0) name = "u8";
  if (H5Tget_class(type) == H5T_STRING) name = "str";
  H5Tclose(type);
  H5Dclose(dset);
  H5Fclose(file);
  return qs(name);
}

/// The test binary doubles as the second process of the SWMR tests: when spawned with the
/// environment variable set, it does that job and exits before Qt Test starts.
///   "read <path>": prints /metrics/step and /events/message of a file being written.
///   "write-and-die <path>": writes steps 1..5 and exits without closing, like a killed trainer.
int runChild(const std::string& job) {
  try {
    const std::string path = job.substr(job.find(' ') + 1);
    if (job.rfind("read ", 0) == 0) {
      std::vector<std::string> messages = mst::readLogStrings(path, "/events/message");
      std::cout << joined(mst::readLogDataset(path, "/metrics/step")).toStdString() << ";"
                << (messages.empty() ? "" : messages.back()) << std::endl;
      return 0;
    }
    if (job.rfind("write-and-die ", 0) == 0) {
      mst::RunLog* log = new mst::RunLog(path, "{}", smallShape(), false, 0);
      for (int step = 1; step <= 5; ++step) {
        log->appendMetrics(step, step / 10.0, {{"loss", step * 1.5}});
        log->appendEvent(step, "event " + std::to_string(step));
      }
      std::_Exit(0);  // no destructor, no H5Fclose: the file keeps its SWMR-writing mark
    }
  } catch (const std::exception& e) {
    std::cerr << e.what() << std::endl;
  }
  return 1;
}

[[maybe_unused]] const bool kIsChild = [] {
  const char* job = std::getenv(kChildEnv);
  if (job) std::_Exit(runChild(job));
  return false;
}();

/// Runs this binary as a child with `job`; returns its stdout line, fails the test on error.
QString runChildJob(const QString& job) {
  QProcess child;
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.insert(kChildEnv, job);
  child.setProcessEnvironment(env);
  child.start(QString::fromStdString(std::filesystem::read_symlink("/proc/self/exe").string()), {});
  if (!child.waitForFinished(120000)) return "timeout";
  if (child.exitCode() != 0) return "failed: " + QString::fromUtf8(child.readAllStandardError());
  return QString::fromUtf8(child.readAllStandardOutput()).trimmed();
}

}  // namespace

class TestRunLog : public QObject {
  Q_OBJECT

 private slots:
  void metricRowsRoundTripWithNaN();
  void resumeDropsLaterRowsInEveryGroup();
  void resumeAddsNewMetricAsNaN();
  void newRunReplacesExistingFile();
  void snapshotsRoundTrip();
  void snapshotShapeMismatchThrows();
  void noProbesGivesEmptySnapshots();
  void readerSeesRowsAppendedWhileWriterIsOpen();
  void readerInAnotherProcessSeesFlushedRows();
  void resumeAfterKilledWriter();
  void inspectFileLayout();
  void resumeOnForeignFileNamesIt_data();
  void resumeOnForeignFileNamesIt();
  void readersNameFileAndDataset();

 private:
  QTemporaryDir dir_;
  std::string file(const char* name) const { return dir_.filePath(name).toStdString(); }
};

void TestRunLog::metricRowsRoundTripWithNaN() {
  const std::string path = file("metrics.h5");
  const std::string config = R"({"model":{"dim":64},"note":"ünïcode"})";
  {
    mst::RunLog log(path, config, smallShape(), false, 0);
    for (int step = 1; step <= 5; ++step) {
      std::map<std::string, double> values{{"loss", 1.0 / step}, {"lr", step * 1e-3}};
      if (step != 3) values["mask_ratio"] = 0.5;  // the missing value
      values["not_a_metric"] = 42.0;              // unknown names are ignored
      log.appendMetrics(step * 10, step * 0.25, values);
    }
    log.appendEvent(10, std::string(254, 'x') + "é");  // a cut would split the 2-byte é
  }
  QCOMPARE(joined(mst::readLogDataset(path, "/metrics/step")), QString("10,20,30,40,50"));
  std::vector<double> epoch = mst::readLogDataset(path, "/metrics/epoch");
  std::vector<double> loss = mst::readLogDataset(path, "/metrics/loss");
  std::vector<double> ratio = mst::readLogDataset(path, "/metrics/mask_ratio");
  QCOMPARE(loss.size(), size_t(5));
  QCOMPARE(ratio.size(), size_t(5));
  for (int i = 0; i < 5; ++i) {
    QCOMPARE(epoch[i], (i + 1) * 0.25);
    QCOMPARE(loss[i], double(float(1.0 / (i + 1))));  // stored as float32
    QVERIFY(i == 2 ? std::isnan(ratio[i]) : ratio[i] == 0.5);
  }
  QCOMPARE(toList(mst::listLogGroup(path, "/metrics")),
           QStringList({"epoch", "loss", "lr", "mask_ratio", "step"}));
  QCOMPARE(qs(mst::readLogAttribute(path, "/config", "json")), qs(config));
  QCOMPARE(storedType(path, "/metrics/loss"), QString("f32"));
  QCOMPARE(storedType(path, "/metrics/step"), QString("i64"));
  QCOMPARE(storedType(path, "/events/message"), QString("str"));
  QCOMPARE(toList(mst::readLogStrings(path, "/events/message")), QStringList({QString(254, 'x')}));
  QVERIFY(!std::filesystem::exists(path + ".tmp"));
}

void TestRunLog::resumeDropsLaterRowsInEveryGroup() {
  const std::string path = file("resume.h5");
  const mst::RunLogShape shape = smallShape();
  {
    mst::RunLog log(path, R"({"epochs":5})", shape, false, 0);
    for (int step = 1; step <= 5; ++step) {
      log.appendMetrics(step, step, {{"loss", step}});
      log.appendEval(step, step, {{"knn_top1", step / 10.0}});
      log.appendSnapshot(step, knownViews(shape, step));
      log.appendEvent(step, "event " + std::to_string(step));
    }
  }
  const std::vector<std::string> groups{"/metrics", "/eval", "/snapshots", "/events"};
  {
    mst::RunLog log(path, R"({"epochs":9})", shape, true, 3);
    for (const std::string& g : groups) {
      QCOMPARE(joined(mst::readLogDataset(path, g + "/step")), QString("1,2,3"));
      for (const std::string& name : mst::listLogGroup(path, g)) {
        std::vector<int64_t> dims;
        if (name == "message")
          dims = {int64_t(mst::readLogStrings(path, g + "/" + name).size())};
        else
          mst::readLogArray(path, g + "/" + name, &dims);
        QVERIFY2(dims.at(0) == 3, (g + "/" + name).c_str());
      }
    }
    QCOMPARE(qs(mst::readLogAttribute(path, "/config", "json")), QString(R"({"epochs":9})"));
    log.appendMetrics(4, 4, {{"loss", 40}});
    log.appendEval(4, 4, {{"knn_top1", 0.9}});
    log.appendSnapshot(4, knownViews(shape, 40));
    log.appendEvent(4, "resumed");
  }
  for (const std::string& g : groups)
    QCOMPARE(joined(mst::readLogDataset(path, g + "/step")), QString("1,2,3,4"));
  QCOMPARE(joined(mst::readLogDataset(path, "/metrics/loss")), QString("1,2,3,40"));
  QCOMPARE(toList(mst::readLogStrings(path, "/events/message")),
           QStringList({"event 1", "event 2", "event 3", "resumed"}));
  std::vector<int64_t> dims;
  std::vector<float> images = mst::readLogArray(path, "/snapshots/images", &dims);
  QCOMPARE(dims, (std::vector<int64_t>{4, 2, 1, 4, 4}));
  QCOMPARE(images.at(3 * 32), 40.0f);  // snapshot 4, first pixel: 0 / 100 + 40
}

void TestRunLog::resumeAddsNewMetricAsNaN() {
  const std::string path = file("new_metric.h5");
  mst::RunLogShape shape = smallShape();
  {
    mst::RunLog log(path, "{}", shape, false, 0);
    log.appendMetrics(1, 0, {{"loss", 1}});
    log.appendMetrics(2, 0, {{"loss", 2}});
  }
  shape.metrics = {"loss", "teacher_temp"};  // lr and mask_ratio dropped, teacher_temp new
  {
    mst::RunLog log(path, "{}", shape, true, 2);
    log.appendMetrics(3, 0, {{"loss", 3}, {"teacher_temp", 0.04}, {"lr", 9}});
  }
  std::vector<double> temp = mst::readLogDataset(path, "/metrics/teacher_temp");
  std::vector<double> lr = mst::readLogDataset(path, "/metrics/lr");
  QCOMPARE(temp.size(), size_t(3));
  QVERIFY(std::isnan(temp[0]) && std::isnan(temp[1]));
  QCOMPARE(temp[2], double(0.04f));
  // A column kept from the earlier run stays aligned with step; `values` still fills it.
  QCOMPARE(lr.size(), size_t(3));
  QCOMPARE(lr[2], 9.0);
}

void TestRunLog::newRunReplacesExistingFile() {
  const std::string path = file("replaced.h5");
  {
    mst::RunLog log(path, "{}", smallShape(), false, 0);
    log.appendMetrics(1, 0, {{"loss", 1}});
  }
  { mst::RunLog log(path, "{}", smallShape(), false, 0); }
  QVERIFY(mst::readLogDataset(path, "/metrics/step").empty());
  QVERIFY(!std::filesystem::exists(path + ".tmp"));
  // resume=true on a missing file starts a new log.
  const std::string fresh = file("fresh.h5");
  { mst::RunLog log(fresh, "{}", smallShape(), true, 100); }
  QVERIFY(mst::readLogDataset(fresh, "/metrics/step").empty());
}

void TestRunLog::snapshotsRoundTrip() {
  const std::string path = file("snapshots.h5");
  const mst::RunLogShape shape = smallShape();
  {
    mst::RunLog log(path, "{}", shape, false, 0);
    log.appendSnapshot(100, knownViews(shape, 1));
    log.appendSnapshot(200, knownViews(shape, 2));
  }
  const std::map<std::string, std::vector<int64_t>> expectedDims{
      {"images", {2, 2, 1, 4, 4}},
      {"reconstruction", {2, 2, 1, 4, 4}},
      {"attention", {2, 2, 2, 2}},
      {"mask_random", {2, 2, 2, 2}},
      {"mask_guided", {2, 2, 2, 2}}};
  for (const auto& [name, expected] : expectedDims) {
    std::vector<int64_t> dims;
    std::vector<float> values = mst::readLogArray(path, "/snapshots/" + name, &dims);
    QCOMPARE(dims, expected);
    std::vector<torch::Tensor> rows;
    for (int k : {1, 2}) {
      mst::ProbeViews v = knownViews(shape, k);
      const std::map<std::string, torch::Tensor> byName{{"images", v.images},
                                                        {"reconstruction", v.reconstruction},
                                                        {"attention", v.attention},
                                                        {"mask_random", v.mask_random},
                                                        {"mask_guided", v.mask_guided}};
      rows.push_back(byName.at(name).to(torch::kFloat32));
    }
    torch::Tensor want = torch::stack(rows).contiguous();
    torch::Tensor got = torch::from_blob(values.data(), {int64_t(values.size())}).reshape(dims);
    QVERIFY2(torch::equal(got, want), name.c_str());
  }
  QCOMPARE(storedType(path, "/snapshots/mask_random"), QString("u8"));
  QCOMPARE(storedType(path, "/snapshots/images"), QString("f32"));
  QCOMPARE(joined(mst::readLogDataset(path, "/snapshots/step")), QString("100,200"));
}

void TestRunLog::snapshotShapeMismatchThrows() {
  const std::string path = file("mismatch.h5");
  const mst::RunLogShape shape = smallShape();
  mst::RunLog log(path, "{}", shape, false, 0);
  mst::ProbeViews views = knownViews(shape, 0);
  views.attention = torch::zeros({2, 3, 3});
  QVERIFY_THROWS_EXCEPTION(c10::Error, log.appendSnapshot(1, views));
  QVERIFY(mst::readLogDataset(path, "/snapshots/step").empty());
  // Reopening with other probe dimensions is refused rather than mixing shapes.
  mst::RunLogShape other = shape;
  other.probes = 3;
  const std::string closed = file("mismatch_closed.h5");
  { mst::RunLog first(closed, "{}", shape, false, 0); }
  try {
    mst::RunLog second(closed, "{}", other, true, 0);
    QFAIL("expected MstError");
  } catch (const mst::MstError& e) {
    QVERIFY2(std::string(e.what()).find(closed) != std::string::npos, e.what());
  }
}

void TestRunLog::noProbesGivesEmptySnapshots() {
  const std::string path = file("no_probes.h5");
  mst::RunLogShape shape = smallShape();
  shape.probes = 0;
  {
    mst::RunLog log(path, "{}", shape, false, 0);
    log.appendSnapshot(7, knownViews(shape, 0));
  }
  { mst::RunLog resumed(path, "{}", shape, true, 7); }
  std::vector<int64_t> dims;
  QVERIFY(mst::readLogArray(path, "/snapshots/images", &dims).empty());
  QCOMPARE(dims, (std::vector<int64_t>{1, 0, 1, 4, 4}));
  QCOMPARE(joined(mst::readLogDataset(path, "/snapshots/step")), QString("7"));
}

void TestRunLog::readerSeesRowsAppendedWhileWriterIsOpen() {
  // Same process: HDF5 shares the writer's open file with the reader, so this checks the reader
  // API on a live log; the next test checks a reader in another process.
  const std::string path = file("live.h5");
  mst::RunLog log(path, "{}", smallShape(), false, 0);
  log.appendMetrics(1, 0, {{"loss", 1}});
  QCOMPARE(joined(mst::readLogDataset(path, "/metrics/step")), QString("1"));
  log.appendMetrics(2, 0, {{"loss", 2}});
  log.appendMetrics(3, 0, {{"loss", 3}});
  QCOMPARE(joined(mst::readLogDataset(path, "/metrics/step")), QString("1,2,3"));
  QCOMPARE(joined(mst::readLogDataset(path, "/metrics/loss")), QString("1,2,3"));
}

void TestRunLog::readerInAnotherProcessSeesFlushedRows() {
  const std::string path = file("swmr.h5");
  mst::RunLog log(path, "{}", smallShape(), false, 0);
  log.appendMetrics(1, 0, {{"loss", 1}});
  log.appendEvent(1, "first");
  const QString job = QString::fromStdString("read " + path);
  QCOMPARE(runChildJob(job), QString("1;first"));
  log.appendMetrics(2, 0, {{"loss", 2}});
  log.appendEvent(2, std::string(300, 'x'));  // cut to the 255 bytes the field holds
  QCOMPARE(runChildJob(job), QString("1,2;") + QString(255, 'x'));
}

void TestRunLog::resumeAfterKilledWriter() {
  const std::string path = file("killed.h5");
  QCOMPARE(runChildJob(QString::fromStdString("write-and-die " + path)), QString());
  // Readable as left behind, then resumable.
  QCOMPARE(joined(mst::readLogDataset(path, "/metrics/step")), QString("1,2,3,4,5"));
  {
    mst::RunLog log(path, "{}", smallShape(), true, 3);
    log.appendMetrics(4, 0, {{"loss", 4}});
  }
  QCOMPARE(joined(mst::readLogDataset(path, "/metrics/step")), QString("1,2,3,4"));
  QCOMPARE(joined(mst::readLogDataset(path, "/events/step")), QString("1,2,3"));
}

void TestRunLog::inspectFileLayout() {
  const std::string path = file("inspect.h5");
  {
    std::ofstream old(path);
    old << "an older file that must be replaced whole";
  }
  const mst::RunLogShape shape = smallShape();
  const std::string config = R"({"p":0.5,"num":2,"strategy":"guided","seed":1})";
  mst::ProbeViews views = knownViews(shape, 3);
  mst::writeInspectFile(path, views, config);
  QVERIFY(!std::filesystem::exists(path + ".tmp"));
  QCOMPARE(qs(mst::readLogAttribute(path, "/inspect/config", "json")), qs(config));
  const std::map<std::string, std::pair<std::vector<int64_t>, std::string>> expected{
      {"images", {{2, 1, 4, 4}, "f32"}},
      {"reconstruction", {{2, 1, 4, 4}, "f32"}},
      {"attention", {{2, 2, 2}, "f32"}},
      {"mask_random", {{2, 2, 2}, "u8"}},
      {"mask_guided", {{2, 2, 2}, "u8"}}};
  QCOMPARE(mst::listLogGroup(path, "/inspect").size(), expected.size() + 1);  // + config
  for (const auto& [name, want] : expected) {
    std::vector<int64_t> dims;
    std::vector<float> values = mst::readLogArray(path, "/inspect/" + name, &dims);
    QCOMPARE(dims, want.first);
    QCOMPARE(storedType(path, "/inspect/" + name), qs(want.second));
  }
  std::vector<int64_t> dims;
  std::vector<float> masks = mst::readLogArray(path, "/inspect/mask_random", &dims);
  torch::Tensor want = views.mask_random.to(torch::kFloat32).flatten();
  QVERIFY(torch::equal(torch::from_blob(masks.data(), {int64_t(masks.size())}), want));

  // A bad view leaves the existing file untouched.
  views.reconstruction = torch::zeros({1, 1, 4, 4});
  QVERIFY_THROWS_EXCEPTION(c10::Error, mst::writeInspectFile(path, views, "{}"));
  QCOMPARE(qs(mst::readLogAttribute(path, "/inspect/config", "json")), qs(config));
}

void TestRunLog::resumeOnForeignFileNamesIt_data() {
  QTest::addColumn<QString>("kind");
  QTest::newRow("text file") << "text";
  QTest::newRow("empty file") << "empty";
  QTest::newRow("inspect file") << "inspect";
}

void TestRunLog::resumeOnForeignFileNamesIt() {
  QFETCH(QString, kind);
  const std::string path = file(("foreign_" + kind + ".h5").toUtf8().constData());
  if (kind == "inspect") {
    mst::writeInspectFile(path, knownViews(smallShape(), 0), "{}");
  } else {
    std::ofstream out(path);
    if (kind == "text") out << "step,loss\n1,0.5\n";
  }
  const auto before = std::filesystem::file_size(path);
  try {
    mst::RunLog log(path, "{}", smallShape(), true, 3);
    QFAIL("expected MstError");
  } catch (const mst::MstError& e) {
    const std::string message = e.what();
    QVERIFY2(message.find(path) != std::string::npos, e.what());
    QVERIFY2(message.find("not an MST run log") != std::string::npos, e.what());
    if (kind == "inspect") QVERIFY2(message.find("/metrics/step") != std::string::npos, e.what());
  }
  QCOMPARE(std::filesystem::file_size(path), before);
}

void TestRunLog::readersNameFileAndDataset() {
  const std::string path = file("readers.h5");
  { mst::RunLog log(path, "{}", smallShape(), false, 0); }
  const auto messageOf = [](const std::function<void()>& read) -> std::string {
    try {
      read();
    } catch (const mst::MstError& e) {
      return e.what();
    }
    return "no error";
  };
  std::string m = messageOf([&] { mst::readLogDataset(path, "/metrics/nope"); });
  QVERIFY2(m.find(path) != std::string::npos && m.find("/metrics/nope") != std::string::npos,
           m.c_str());
  m = messageOf([&] { mst::readLogDataset(path, "/events/message"); });
  QVERIFY2(m.find("/events/message") != std::string::npos, m.c_str());
  m = messageOf([&] { mst::readLogAttribute(path, "/config", "missing"); });
  QVERIFY2(m.find(path) != std::string::npos && m.find("missing") != std::string::npos, m.c_str());
  m = messageOf([&] { mst::listLogGroup(file("absent.h5"), "/metrics"); });
  QVERIFY2(m.find(file("absent.h5")) != std::string::npos, m.c_str());
}

QTEST_APPLESS_MAIN(TestRunLog)
#include "test_run_log.moc"
