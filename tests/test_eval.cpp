/// @brief k-NN (App. D), linear probe (App. E) and resumable sweeps.
#include <torch/torch.h>
#include <QtTest/QtTest>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>
#include <tuple>

#include "core/config/config.h"
#include "core/eval/class_readout.h"
#include "core/eval/eval_record.h"
#include "core/eval/evaluate.h"
#include "core/eval/knn.h"
#include "core/eval/linear_probe.h"
#include "core/eval/sweep.h"
#include "core/eval/sweep_record.h"
#include "core/log/log_reader.h"
#include "core/log/run_log.h"
#include "core/train/engine.h"
#include "core/util/claim.h"
#include "core/util/error.h"

using namespace mst;

namespace {

/// `per_class` points around each of `classes` orthogonal directions, well separated.
FeatureSet clusters(int64_t classes, int64_t per_class, int64_t dim, double noise, uint64_t seed) {
  torch::manual_seed(seed);
  auto labels = torch::arange(classes).repeat_interleave(per_class);
  auto centres = torch::eye(classes, dim) * 5.0;
  auto x = centres.index_select(0, labels) + noise * torch::randn({classes * per_class, dim});
  return {x, labels};
}

/// A 28x28 image whose bright half says its pattern: 0 left, 1 right, 2 top.
std::string halfImage(int pattern) {
  std::string pixels(28 * 28, '\0');
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x)
      if ((pattern == 0 && x < 14) || (pattern == 1 && x >= 14) || (pattern == 2 && y < 14))
        pixels[static_cast<size_t>(y * 28 + x)] = '\xff';
  return pixels;
}

/// Uncompressed Fashion-MNIST IDX files for one split: image i is halfImage(patterns[i]) under
/// label labels[i].
void writeIdxSplit(const std::string& folder, const std::string& prefix,
                   const std::vector<int>& patterns, const std::vector<int>& labels) {
  auto big = [](uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16 & 0xff), char(v >> 8 & 0xff), char(v & 0xff)};
  };
  const auto n = static_cast<uint32_t>(patterns.size());
  std::ofstream images(folder + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
  images << big(0x803) << big(n) << big(28) << big(28);
  for (int p : patterns) images << halfImage(p);
  std::ofstream label_file(folder + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
  label_file << big(0x801) << big(n);
  for (int l : labels) label_file << char(l);
}

/// The (C, C) counts of a result's "confusion" key.
std::vector<std::vector<int64_t>> confusionOf(const nlohmann::json& result) {
  return result.at("confusion").get<std::vector<std::vector<int64_t>>>();
}

bool fashionMnistPresent() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

/// A sweep small enough for a test: the micro ViT on 64 images, two steps a cell, tiny read-outs.
nlohmann::json tinySweepBase() {
  return {{"model", {{"preset", "vit_micro28"}}},
          {"data", {{"limit", 64}}},
          {"crops", {{"local_crops", 1}}},
          {"train", {{"batch_size", 16}, {"epochs", 1}, {"snapshot_every", 0}}}};
}

SweepOptions tinySweepOptions(const std::string& out_dir) {
  SweepOptions o;
  o.out_dir = out_dir;
  o.max_steps = 2;
  o.eval.train_limit = 200;
  o.eval.test_limit = 100;
  o.eval.ks = {5};
  o.eval.linear.epochs = 2;
  return o;
}

void writeText(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// The config a tinySweepBase cell with masking.num = `num` trains with, as a result stores it.
nlohmann::json tinyCellConfig(int64_t num) {
  auto j = tinySweepBase();
  j["masking"]["num"] = num;
  return configToJson(configFromJson(j));
}

/// `what` is thrown as an MstError whose message holds every one of `parts` and none of `absent`.
template <typename F>
void expectError(F what, const QStringList& parts, const QStringList& absent = {}) {
  try {
    what();
  } catch (const MstError& e) {
    const QString message = QString::fromUtf8(e.what());
    for (const auto& part : parts) QVERIFY2(message.contains(part), qPrintable(message));
    for (const auto& part : absent) QVERIFY2(!message.contains(part), qPrintable(message));
    return;
  }
  QFAIL(qPrintable("no error; expected one naming " + parts.join(", ")));
}

/// A sweep of masking.num=1,2 cut at 2 steps with k-NN only, in `out_dir`, as a finished one
/// leaves it (results written here, so nothing trains): its cells, tables and sweep.json.
std::vector<SweepCell> finishedTinySweep(const std::string& out_dir) {
  const std::vector<SweepAxis> axes{parseAxis("masking.num=1,2")};
  SweepOptions o = tinySweepOptions(out_dir);
  o.linear = false;
  for (const auto& cell : expandGrid(tinySweepBase(), axes, out_dir))
    writeText(cell.dir + "/result.json",
              nlohmann::json{{"steps", 2}, {"total_steps", 8}, {"knn_top1", 40.0 + cell.index},
                             {"config", tinyCellConfig(cell.values[0].get<int64_t>())}}
                  .dump());
  return runSweep(tinySweepBase(), axes, o);
}

class StopAfterFirst : public SweepObserver {
 public:
  explicit StopAfterFirst(std::atomic<bool>* stop) : stop_(stop) {}
  void onCellStarted(const SweepCell& c) override { started.push_back(c.index); }
  void onCellFinished(const SweepCell&) override {
    if (stop_) stop_->store(true);
  }
  std::vector<int64_t> started;

 private:
  std::atomic<bool>* stop_;
};

/// Records started cells; the first one waits (up to a minute) until another sweep's observer
/// has counted a start too, so that two concurrent sweeps both get cells.
class WaitForOther : public SweepObserver {
 public:
  WaitForOther(std::atomic<int>* mine, const std::atomic<int>* other) : mine_(mine), other_(other) {}
  void onCellStarted(const SweepCell& c) override {
    started.push_back(c.index);
    ++*mine_;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (started.size() == 1 && other_->load() == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<int64_t> started;

 private:
  std::atomic<int>* mine_;
  const std::atomic<int>* other_;
};

}  // namespace

class TestEval : public QObject {
  Q_OBJECT

 private slots:
  void knnSeparatedClustersAreExact() {
    auto bank = clusters(5, 40, 16, 0.3, 1), queries = clusters(5, 10, 16, 0.3, 2);
    KnnOptions o;
    o.ks = {1, 10, 20};
    o.num_classes = 5;
    auto acc = knnAccuracy(torch::nn::functional::normalize(bank.features,
                                                            torch::nn::functional::NormalizeFuncOptions().dim(1)),
                           bank.labels,
                           torch::nn::functional::normalize(queries.features,
                                                            torch::nn::functional::NormalizeFuncOptions().dim(1)),
                           queries.labels, o);
    for (auto& [k, a] : acc) QCOMPARE(a, 100.0);
  }

  void knnVoteIsWeightedByExpSimOverT() {
    // Two class-0 neighbours at cosine 0.5 and one class-1 neighbour at cosine 0.6 (k = 3):
    // a plain majority says 0; the exp(sim/T) vote says 1 when exp(0.6/T) > 2 exp(0.5/T).
    auto unit = [](double c) { return std::vector<double>{c, std::sqrt(1 - c * c)}; };
    auto a = unit(0.5), b = unit(0.6);
    auto bank = torch::tensor({a[0], a[1], a[0], -a[1], b[0], b[1]}, torch::kFloat).view({3, 2});
    auto labels = torch::tensor({0, 0, 1}, torch::kLong);
    auto query = torch::tensor({1.0, 0.0}, torch::kFloat).view({1, 2});
    KnnOptions o;
    o.ks = {3};
    o.num_classes = 2;
    o.temperature = 0.07;  // exp(0.1/0.07) = 4.17 > 2 → class 1
    QCOMPARE(knnPredict(bank, labels, query, o)[3].item<int64_t>(), int64_t{1});
    o.temperature = 0.5;   // exp(0.1/0.5) = 1.22 < 2 → class 0
    QCOMPARE(knnPredict(bank, labels, query, o)[3].item<int64_t>(), int64_t{0});
  }

  void chunkedEqualsUnchunked() {
    torch::manual_seed(3);
    auto norm = [](const torch::Tensor& x) {
      return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1));
    };
    auto bank = norm(torch::randn({500, 24})), queries = norm(torch::randn({77, 24}));
    auto labels = torch::randint(0, 7, {500}, torch::kLong);
    KnnOptions whole;
    whole.ks = {5, 20};
    whole.num_classes = 7;
    KnnOptions chunked = whole;
    chunked.bank_chunk = 37;
    chunked.query_chunk = 11;
    auto a = knnPredict(bank, labels, queries, whole), b = knnPredict(bank, labels, queries, chunked);
    for (int64_t k : whole.ks) QVERIFY(torch::equal(a[k], b[k]));
  }

  void linearProbeSeparatesLinearlySeparableData() {
    torch::manual_seed(4);
    auto x = torch::randn({600, 8});
    auto w = torch::randn({8, 3});
    auto y = torch::matmul(x, w).argmax(1);  // labels from a linear rule: separable
    FeatureSet train{x.narrow(0, 0, 500), y.narrow(0, 0, 500)};
    FeatureSet test{x.narrow(0, 500, 100), y.narrow(0, 500, 100)};
    LinearProbeOptions o;
    o.epochs = 60;
    o.num_classes = 3;
    o.lr = 0.5;
    auto r = linearProbe(train, test, o);
    QVERIFY2(r.train_top1 > 97.0, qPrintable(QString::number(r.train_top1)));
    QVERIFY2(r.test_top1 > 93.0, qPrintable(QString::number(r.test_top1)));
  }

  void linearProbeRefusesNoEpochsOrNoLearningRate_data() {
    QTest::addColumn<int64_t>("epochs");
    QTest::addColumn<double>("lr");
    QTest::newRow("0 epochs") << int64_t{0} << 0.1;  // trained nothing, reported a top-1
    QTest::newRow("lr 0") << int64_t{1} << 0.0;
    QTest::newRow("lr -1") << int64_t{1} << -1.0;
  }
  void linearProbeRefusesNoEpochsOrNoLearningRate() {
    QFETCH(int64_t, epochs);
    QFETCH(double, lr);
    FeatureSet data{torch::randn({20, 4}), torch::randint(0, 2, {20}, torch::kLong)};
    LinearProbeOptions o;
    o.epochs = epochs;
    o.lr = lr;
    o.num_classes = 2;
    QVERIFY_THROWS_EXCEPTION(MstError, linearProbe(data, data, o));
  }

  void confusionRowsAreTruthColumnsArePredictions() {
    // Class 0: one right, one taken for 1; class 1: right; class 2: two taken for 0, one right;
    // class 3: no test image. The matrix is not symmetric, so swapped axes fail.
    const auto truth = torch::tensor({0, 0, 1, 2, 2, 2}, torch::kLong);
    const auto predicted = torch::tensor({0, 1, 1, 0, 0, 2}, torch::kLong);
    const auto confusion = confusionMatrix(truth, predicted, /*num_classes=*/4);
    QCOMPARE(confusion.sizes(), (torch::IntArrayRef{4, 4}));
    const auto expected =
        torch::tensor({1, 1, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0}, torch::kLong).view({4, 4});
    QVERIFY(torch::equal(confusion, expected));
    QVERIFY(torch::equal(confusion.sum(1), torch::bincount(truth, {}, 4)));  // rows: class counts
    QVERIFY(torch::equal(confusion.sum(0), torch::bincount(predicted, {}, 4)));
    QCOMPARE(100.0 * confusion.trace().item<double>() / confusion.sum().item<double>(),
             top1Percent(predicted, truth));

    const auto j = perClassReadout(confusion, {"a", "b", "c", "d"});
    QCOMPARE(j["per_class_top1"].size(), size_t{4});
    QCOMPARE(j["per_class_top1"][0].get<double>(), 50.0);
    QCOMPARE(j["per_class_top1"][1].get<double>(), 100.0);
    QCOMPARE(j["per_class_top1"][2].get<double>(), 33.3333);  // 4 decimals, as top-1 is reported
    QVERIFY(j["per_class_top1"][3].is_null());                // no test image: unknown, not 0
    QCOMPARE(confusionOf(j), (std::vector<std::vector<int64_t>>{
                                 {1, 1, 0, 0}, {0, 1, 0, 0}, {2, 0, 1, 0}, {0, 0, 0, 0}}));
    QCOMPARE(j["classes"].get<std::vector<std::string>>(),
             (std::vector<std::string>{"a", "b", "c", "d"}));
    QVERIFY(!perClassReadout(confusion, {}).contains("classes"));  // names unknown
    QVERIFY(!perClassReadout(confusion, {"a", "b"}).contains("classes"));
    // Many classes: each class's top-1 stays, the C x C matrix is left out.
    const int64_t many = kMaxConfusionClasses + 1;
    const auto labels = torch::arange(many);
    const auto big = perClassReadout(confusionMatrix(labels, labels, many), {});
    QCOMPARE(big["per_class_top1"].size(), static_cast<size_t>(many));
    QCOMPARE(big["per_class_top1"][many - 1].get<double>(), 100.0);
    QVERIFY(!big.contains("confusion"));
    QVERIFY(perClassReadout(confusionMatrix(labels.slice(0, 0, many - 1), labels.slice(0, 0, many - 1),
                                            many - 1),
                            {})
                .contains("confusion"));
    // Nothing to classify: every class null, no NaN.
    const auto none = perClassReadout(
        confusionMatrix(torch::empty({0}, torch::kLong), torch::empty({0}, torch::kLong), 2), {});
    QVERIFY(none["per_class_top1"][0].is_null() && none["per_class_top1"][1].is_null());
    QVERIFY_THROWS_EXCEPTION(c10::Error,
                             confusionMatrix(torch::tensor({0, 4}), torch::tensor({0, 1}), 4));
  }

  void perClassTableLinesUpInCharacters() {
    // Rows = truth: 3 of "café" right, 1 taken for "Shirt"; 2 of "Shirt" right; "z" has none.
    nlohmann::json result{{"knn_top1", 83.3333},
                          {"per_class_top1", {75.0, 100.0, nullptr}},
                          {"confusion", {{3, 1, 0}, {0, 2, 0}, {0, 0, 0}}},
                          {"classes", {"café", "Shirt", "z"}}};
    const std::string table = perClassTable(result, "k-NN top-1 at k = 20");
    const QStringList lines = QString::fromStdString(table).split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), qsizetype{6});  // title, header, 3 classes, all
    QCOMPARE(lines[0], QString("k-NN top-1 at k = 20, test split, per class:"));
    // Values end under the end of "top-1 %" in every row, "café" (4 characters, 5 bytes) included.
    const qsizetype end = lines[1].indexOf("top-1 %") + 7;
    QVERIFY(end > 7);
    QCOMPARE(lines[2].indexOf("75.00") + 5, end);
    QCOMPARE(lines[3].indexOf("100.00") + 6, end);
    QCOMPARE(lines[5].indexOf("83.33") + 5, end);
    QVERIFY2(lines[2].startsWith("  café") && lines[2].endsWith("Shirt (1)"),
             qPrintable(lines[2]));                               // the most frequent mistake
    QVERIFY2(!lines[3].contains("("), qPrintable(lines[3]));     // none for Shirt
    QVERIFY2(lines[4].startsWith("  z") && lines[4].contains(" - ") && lines[4].endsWith(" 0"),
             qPrintable(lines[4]));                               // no test image: "-", 0
    QVERIFY2(lines[5].startsWith("  all") && lines[5].endsWith(" 6"), qPrintable(lines[5]));
    // No matrix (more than 100 classes): no table.
    result.erase("confusion");
    QVERIFY(perClassTable(result, "k-NN").empty());
  }

  void readOutsReportEachClassOfTheTestSplit() {
    // A Fashion-MNIST folder of half-bright images read out on raw pixels: the bank holds
    // patterns 0 (left), 1 (right), 2 (top) as classes 0, 1, 2; the test split's class 2 images
    // show pattern 0, so both read-outs always take class 2 for class 0. Classes 3..9 have no
    // test image.
    QTemporaryDir tmp;
    const std::string dir = tmp.path().toStdString();
    writeIdxSplit(dir, "train", {0, 1, 2, 0, 1, 2, 0, 1, 2}, {0, 1, 2, 0, 1, 2, 0, 1, 2});
    writeIdxSplit(dir, "t10k", {0, 0, 1, 0, 0, 0}, {0, 0, 1, 2, 2, 2});
    Config config;
    config.model = modelPreset("vit_micro28");
    config.data.path = dir;
    auto engine = makeEvalEngine(config, "", torch::kCPU);
    EvalOptions o;
    o.ks = {1, 3};
    o.linear.epochs = 50;
    std::vector<std::vector<int64_t>> expected(10, std::vector<int64_t>(10, 0));
    expected[0][0] = 2, expected[1][1] = 1, expected[2][0] = 3;
    const std::vector<int64_t> class_counts{2, 1, 3, 0, 0, 0, 0, 0, 0, 0};
    const auto knn = evaluateKnn(*engine, config, FeatureKind::Pixels, o);
    const auto linear = evaluateLinear(*engine, config, FeatureKind::Pixels, o);
    QCOMPARE(linear["linear_train_top1"].get<double>(), 100.0);  // the probe fits the bank
    for (const auto& [result, top1] :
         {std::pair{knn, "knn_top1"}, std::pair{linear, "linear_top1"}}) {
      const auto confusion = confusionOf(result);
      QCOMPARE(confusion, expected);
      int64_t trace = 0, total = 0;
      for (size_t t = 0; t < confusion.size(); ++t) {
        int64_t row = 0;
        for (int64_t n : confusion[t]) row += n;
        QCOMPARE(row, class_counts[t]);
        trace += confusion[t][t];
        total += row;
      }
      QCOMPARE(total, result["test"].get<int64_t>());
      QCOMPARE(result[top1].get<double>(), 50.0);
      QCOMPARE(roundPercent(100.0 * double(trace) / double(total)), result[top1].get<double>());
      const auto& per_class = result["per_class_top1"];
      QCOMPARE(per_class.size(), size_t{10});
      QCOMPARE(per_class[0].get<double>(), 100.0);
      QCOMPARE(per_class[1].get<double>(), 100.0);
      QCOMPARE(per_class[2].get<double>(), 0.0);  // tested, always wrong: 0, not null
      for (size_t c = 3; c < 10; ++c)
        QVERIFY2(per_class[c].is_null(), qPrintable(QString::number(c)));
      const auto classes = result["classes"].get<std::vector<std::string>>();
      QCOMPARE(classes.size(), size_t{10});
      QCOMPARE(classes[0], std::string("T-shirt/top"));
      QCOMPARE(classes[6], std::string("Shirt"));
      QCOMPARE(classes[9], std::string("Ankle boot"));
    }
    QCOMPARE(knn["knn_k"].get<int64_t>(), int64_t{3});
    // The old keys keep their meaning beside the new ones.
    QCOMPARE(knn["knn_top1_k1"].get<double>(), 50.0);
    QCOMPARE(knn["train"].get<int64_t>(), int64_t{9});
  }

  void gridParsingAndExpansion() {
    auto axis = parseAxis("masking.strategy=none,random,attention_guided");
    QCOMPARE(axis.values.size(), size_t{3});
    QVERIFY(axis.values[1].is_string());
    auto num = parseAxis("masking.num=1,2");
    QVERIFY(num.values[0].is_number_integer());
    auto cells = expandGrid(nlohmann::json::object(), {axis, num}, "/tmp/x");
    QCOMPARE(cells.size(), size_t{6});
    QCOMPARE(cells[1].values[1].get<int>(), 2);  // last axis fastest
    QVERIFY_THROWS_EXCEPTION(MstError, parseAxis("masking.p"));
    QVERIFY_THROWS_EXCEPTION(MstError, expandGrid(nlohmann::json::object(),
                                                  {parseAxis("masking.p=0.1,7")}, "/tmp/x"));
    QCOMPARE(defaultGrid().size(), size_t{2});
    // Table 5's layout, as the paper, the experiment file and the workbench have it: rows num.
    QCOMPARE(defaultGrid().front().key, std::string("masking.num"));
    const auto table5 =
        readSweepFile(std::string(MST_SOURCE_DIR) + "/experiments/table5_p_num.json").axes;
    QVERIFY2(sameGrid(table5, defaultGrid()), gridFlags(table5).c_str());
  }

  void sweepSummarisesSeeds() {
    // Two strategies x three seeds; one cell of "random" not finished: mean and sample sd over
    // the finished seeds, grouped in grid order.
    std::vector<SweepAxis> axes{parseAxis("masking.strategy=none,random"),
                                parseAxis("train.seed=0,1,2")};
    std::vector<SweepCell> cells;
    const std::vector<double> knn{70, 72, 74, 60, 64, 0}, linear{80, 80, 80, 66, 70, 0};
    for (int i = 0; i < 6; ++i) {
      SweepCell c;
      c.index = i;
      c.values = {axes[0].values[size_t(i / 3)], axes[1].values[size_t(i % 3)]};
      c.status = i == 5 ? "failed" : "done";
      if (i != 5) c.knn_top1 = knn[size_t(i)], c.linear_top1 = linear[size_t(i)];
      cells.push_back(c);
    }
    auto groups = summarizeSeeds(axes, cells);
    QCOMPARE(groups.size(), size_t(2));
    QCOMPARE(groups[0].values.at(0).get<std::string>(), std::string("none"));
    QCOMPARE(groups[0].done, int64_t(3));
    QCOMPARE(groups[0].knn_mean, 72.0);
    QCOMPARE(groups[0].knn_sd, 2.0);          // sqrt((4 + 0 + 4) / 2)
    QCOMPARE(groups[0].linear_sd, 0.0);
    QCOMPARE(groups[1].done, int64_t(2));
    QCOMPARE(groups[1].knn_mean, 62.0);
    QVERIFY(std::abs(groups[1].knn_sd - std::sqrt(8.0)) < 1e-12);  // (4 + 4) / 1
    QCOMPARE(groups[1].linear_mean, 68.0);
    // Paired by seed against the first setting, over the seeds both finished (0 and 1):
    // k-NN 60 - 70 = -10 and 64 - 72 = -8; linear -14 and -10.
    QCOMPARE(groups[0].paired, int64_t(0));
    QVERIFY(std::isnan(groups[0].knn_delta_mean));
    QCOMPARE(groups[1].paired, int64_t(2));
    QCOMPARE(groups[1].knn_delta_mean, -9.0);
    QVERIFY(std::abs(groups[1].knn_delta_sd - std::sqrt(2.0)) < 1e-12);  // (1 + 1) / 1
    QCOMPARE(groups[1].linear_delta_mean, -12.0);
    QVERIFY(std::abs(groups[1].linear_delta_sd - std::sqrt(8.0)) < 1e-12);
    // No seed axis: no summary.
    QVERIFY(summarizeSeeds({axes[0]}, {}).empty());
  }

  void shardSpecsParse() {
    QCOMPARE(parseShard("0/2"), (std::pair<int64_t, int64_t>{0, 2}));
    QCOMPARE(parseShard("3/4"), (std::pair<int64_t, int64_t>{3, 4}));
    QCOMPARE(parseShard("0/1"), (std::pair<int64_t, int64_t>{0, 1}));
    for (const char* bad : {"2/2", "1", "a/2", "-1/2", "0/0", "1/2/3", "/2", "0/", " 0/2"}) {
      try {
        parseShard(bad);
        QFAIL(qPrintable(QString("accepted --shard ") + bad));
      } catch (const MstError& e) {
        QVERIFY2(std::string(e.what()).find("--shard") != std::string::npos, e.what());
      }
    }
  }

  void sweepShardsSplitTheGrid() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    at::set_num_threads(2);
    QTemporaryDir dir;
    std::vector<SweepAxis> axes{parseAxis("masking.num=1,2,8")};
    SweepOptions o = tinySweepOptions(dir.path().toStdString());
    o.shards = 2;
    o.shard = 1;
    StopAfterFirst one(nullptr);
    auto cells = runSweep(tinySweepBase(), axes, o, &one, nullptr);
    QCOMPARE(one.started, (std::vector<int64_t>{1}));  // index % 2 == 1 only
    QCOMPARE(cells[0].status, std::string("pending"));
    QCOMPARE(cells[1].status, std::string("done"));
    QCOMPARE(cells[2].status, std::string("pending"));

    o.shard = 0;
    StopAfterFirst zero(nullptr);
    cells = runSweep(tinySweepBase(), axes, o, &zero, nullptr);
    QCOMPARE(zero.started, (std::vector<int64_t>{0, 2}));  // cell 1 is the other shard's
    for (const auto& c : cells) QCOMPARE(c.status, std::string("done"));
    QVERIFY(cells[1].knn_top1.has_value());  // read from shard 1's result.json

    // The table written last shows every shard's cells; no temporary file is left behind.
    std::ifstream csv(o.out_dir + "/sweep.csv");
    std::vector<std::string> lines;
    for (std::string line; std::getline(csv, line);) lines.push_back(line);
    QCOMPARE(lines.size(), size_t{4});
    for (size_t i = 1; i < lines.size(); ++i)
      QVERIFY2(QString::fromStdString(lines[i]).contains(",done,"), lines[i].c_str());
    for (const auto& entry : std::filesystem::directory_iterator(o.out_dir))
      QVERIFY2(entry.path().string().find(".tmp") == std::string::npos,
               entry.path().string().c_str());

    // Another shard's cell without a result shows as running while its claim is held, and as
    // pending (interrupted) once it is not.
    std::filesystem::remove(cells[1].dir + "/result.json");
    o.shard = 0;
    {
      auto claim = Claim::tryTake(cells[1].dir + "/claim");
      QVERIFY(claim);
      cells = runSweep(tinySweepBase(), axes, o, nullptr, nullptr);
      QCOMPARE(cells[1].status, std::string("running"));
    }
    cells = runSweep(tinySweepBase(), axes, o, nullptr, nullptr);
    QCOMPARE(cells[1].status, std::string("pending"));
  }

  void sweepsOnOneFolderShareItsCells() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    at::set_num_threads(1);
    QTemporaryDir dir;
    std::vector<SweepAxis> axes{parseAxis("masking.num=1,2,4,8")};
    SweepOptions o = tinySweepOptions(dir.path().toStdString());
    o.knn = o.linear = false;
    // Two sweeps of the same grid into one folder, as two processes would run them: each cell
    // is claimed by exactly one of them, and both get cells (each one's first cell waits until
    // the other has started one).
    std::atomic<int> count_a{0}, count_b{0};
    WaitForOther a(&count_a, &count_b), b(&count_b, &count_a);
    std::vector<SweepCell> cells_a, cells_b;
    std::thread other([&] { cells_b = runSweep(tinySweepBase(), axes, o, &b, nullptr); });
    cells_a = runSweep(tinySweepBase(), axes, o, &a, nullptr);
    other.join();
    std::vector<int64_t> all = a.started;
    all.insert(all.end(), b.started.begin(), b.started.end());
    std::sort(all.begin(), all.end());
    QCOMPARE(all, (std::vector<int64_t>{0, 1, 2, 3}));
    QVERIFY(!a.started.empty() && !b.started.empty());
    for (const auto& c : cells_a) {
      QVERIFY(readCellResult(c.dir).has_value());
      QVERIFY(!std::filesystem::exists(c.dir + "/claim"));
    }
    // The sweep that ended last wrote a table where every cell, its own or not, is done.
    std::ifstream csv(o.out_dir + "/sweep.csv");
    std::vector<std::string> lines;
    for (std::string line; std::getline(csv, line);) lines.push_back(line);
    QCOMPARE(lines.size(), size_t{5});
    for (size_t i = 1; i < lines.size(); ++i)
      QVERIFY2(QString::fromStdString(lines[i]).contains(",done,"), lines[i].c_str());

    // A cell another machine holds is left to it while its heartbeat is fresh; once the
    // heartbeat is old the machine is taken for gone and the cell is run here.
    std::filesystem::remove(cells_a[2].dir + "/result.json");
    const std::string claim = cells_a[2].dir + "/claim";
    std::ofstream(claim) << "elsewhere-host 4242 1\n";
    StopAfterFirst c(nullptr);
    auto cells = runSweep(tinySweepBase(), axes, o, &c, nullptr);
    QVERIFY(c.started.empty());
    QCOMPARE(cells[2].status, std::string("running"));
    std::filesystem::last_write_time(
        claim, std::filesystem::file_time_type::clock::now() - std::chrono::hours(1));
    // A status pass (mst sweep --status) runs nothing and sees the cell as free.
    o.run_cells = false;
    StopAfterFirst status(nullptr);
    cells = runSweep(tinySweepBase(), axes, o, &status, nullptr);
    QVERIFY(status.started.empty());
    QCOMPARE(cells[2].status, std::string("pending"));
    QVERIFY(std::filesystem::exists(claim));
    o.run_cells = true;
    StopAfterFirst d(nullptr);
    cells = runSweep(tinySweepBase(), axes, o, &d, nullptr);
    QCOMPARE(d.started, (std::vector<int64_t>{2}));
    QCOMPARE(cells[2].status, std::string("done"));
    QVERIFY(!std::filesystem::exists(claim));
  }

  void aFailedCellIsRecordedInItsFolder() {
    QTemporaryDir dir;
    std::vector<SweepAxis> axes{parseAxis("data.path=" + dir.filePath("no-such-data").toStdString())};
    SweepOptions o = tinySweepOptions(dir.filePath("sweep").toStdString());
    StopAfterFirst first(nullptr);
    auto cells = runSweep(tinySweepBase(), axes, o, &first, nullptr);
    QCOMPARE(cells[0].status, std::string("failed"));
    QVERIFY(std::filesystem::exists(cells[0].dir + "/failed.json"));
    QVERIFY(!std::filesystem::exists(cells[0].dir + "/claim"));
    // Another sweep on the folder shows it failed, with the error, and does not run it...
    o.run_cells = false;
    cells = runSweep(tinySweepBase(), axes, o, nullptr, nullptr);
    QCOMPARE(cells[0].status, std::string("failed"));
    QVERIFY2(cells[0].error.find("no-such-data") != std::string::npos, cells[0].error.c_str());
    // ...while a sweep started later tries it again.
    o.run_cells = true;
    StopAfterFirst again(nullptr);
    cells = runSweep(tinySweepBase(), axes, o, &again, nullptr);
    QCOMPARE(again.started, (std::vector<int64_t>{0}));
    QCOMPARE(cells[0].status, std::string("failed"));
  }

  void trainingSummaryReadsTheLog() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("run.h5").toStdString();
    {
      RunLogShape shape;
      shape.metrics = {"loss", "loss_ce", "mask_ratio"};  // no loss_rec: left out of the summary
      RunLog log(path, "{}", shape, false, 0);
      for (int step = 1; step <= 25; ++step) {
        std::map<std::string, double> row{{"loss", 1.0}, {"loss_ce", double(step)}};
        if (step % 5 != 0) row["mask_ratio"] = step <= 10 ? 0.2 : 0.1;  // every fifth row: NaN
        log.appendMetrics(step, step / 25.0, row);
      }
    }
    const auto summary = readTrainingSummary(path);
    // mask_ratio: the 20 rows with a value, 8 of 0.2 and 12 of 0.1.
    QVERIFY(std::abs(summary["mask_ratio"].get<double>() - (8 * 0.2 + 12 * 0.1) / 20) < 1e-6);
    // loss_ce_end: the last tenth of 25 rows = the last 2 (24, 25).
    QCOMPARE(summary["loss_ce_end"].get<double>(), 24.5);
    QVERIFY(!summary.contains("loss_rec_end"));
    QVERIFY_THROWS_EXCEPTION(MstError, readTrainingSummary(dir.filePath("none.h5").toStdString()));
  }

  void sweepTablesCarryTheTrainingSummary() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    at::set_num_threads(2);
    QTemporaryDir dir;
    std::vector<SweepAxis> axes{parseAxis("masking.strategy=none,random")};
    SweepOptions o = tinySweepOptions(dir.path().toStdString());
    o.knn = o.linear = false;  // the summary comes from training alone
    auto base = tinySweepBase();
    base["train"]["log_every"] = 1;
    base["masking"]["p"] = 0.5;
    auto cells = runSweep(base, axes, o, nullptr, nullptr);
    QCOMPARE(cells[0].status, std::string("done"));
    QCOMPARE(cells[1].status, std::string("done"));
    for (const auto& cell : cells) {
      // The values equal those computed here from the cell's own log.
      const auto ratio = readLogDataset(cell.dir + "/run.h5", "/metrics/mask_ratio");
      const auto ce = readLogDataset(cell.dir + "/run.h5", "/metrics/loss_ce");
      QCOMPARE(ratio.size(), size_t{2});
      QVERIFY(cell.mask_ratio && cell.loss_ce_end && cell.loss_rec_end);
      QVERIFY(std::abs(*cell.mask_ratio - (ratio[0] + ratio[1]) / 2) < 1e-6);
      QVERIFY(std::abs(*cell.loss_ce_end - ce[1]) < 1e-6);  // the last tenth of 2 rows: 1
      QVERIFY((*readCellResult(cell.dir)).contains("loss_rec_end"));
    }
    QCOMPARE(*cells[0].mask_ratio, 0.0);                                  // none
    QVERIFY(*cells[1].mask_ratio > 0.3 && *cells[1].mask_ratio < 0.7);  // random, p = 0.5

    std::ifstream csv(o.out_dir + "/sweep.csv");
    std::string header, row;
    std::getline(csv, header);
    std::getline(csv, row);
    QCOMPARE(QString::fromStdString(header),
             QString("cell,masking.strategy,status,knn_top1,linear_top1,mask_ratio,loss_ce_end,"
                     "loss_rec_end,dir"));
    QVERIFY(QString::fromStdString(row).startsWith("0,none,done,,,0,"));
    const auto h5 = readLogDataset(o.out_dir + "/sweep.h5", "/sweep/mask_ratio");
    QCOMPARE(h5.size(), size_t{2});
    QVERIFY(std::abs(h5[1] - *cells[1].mask_ratio) < 1e-6);

    // A result written before the summary was part of it: the summary comes from run.h5.
    auto result = *readCellResult(cells[1].dir);
    for (const char* key : {"mask_ratio", "loss_ce_end", "loss_rec_end"}) result.erase(key);
    std::ofstream(cells[1].dir + "/result.json") << result.dump();
    SweepCell old;
    old.dir = cells[1].dir;
    QVERIFY(loadCellResult(old));
    QCOMPARE(old.status, std::string("done"));
    QVERIFY(old.mask_ratio && std::abs(*old.mask_ratio - *cells[1].mask_ratio) < 1e-9);
    QVERIFY(old.loss_rec_end && std::abs(*old.loss_rec_end - *cells[1].loss_rec_end) < 1e-9);
    SweepCell unfinished;
    unfinished.dir = dir.filePath("nothing").toStdString();
    QVERIFY(!loadCellResult(unfinished));
    QCOMPARE(unfinished.status, std::string("pending"));
  }

  void sweepResumesWithoutRedoingCells() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    at::set_num_threads(2);
    QTemporaryDir dir;
    nlohmann::json base = tinySweepBase();
    std::vector<SweepAxis> axes{parseAxis("masking.num=1,8")};
    SweepOptions o = tinySweepOptions(dir.path().toStdString());
    std::atomic<bool> stop{false};
    StopAfterFirst first(&stop);
    auto cells = runSweep(base, axes, o, &first, &stop);
    QCOMPARE(first.started, (std::vector<int64_t>{0}));
    QCOMPARE(cells[0].status, std::string("done"));
    QCOMPARE(cells[1].status, std::string("pending"));
    QVERIFY(cells[0].knn_top1.has_value() && *cells[0].knn_top1 >= 0 && *cells[0].knn_top1 <= 100);

    StopAfterFirst second(nullptr);
    cells = runSweep(base, axes, o, &second, nullptr);
    QCOMPARE(second.started, (std::vector<int64_t>{1}));  // cell 0 is not redone
    QCOMPARE(cells[1].status, std::string("done"));

    std::ifstream csv(o.out_dir + "/sweep.csv");
    std::vector<std::string> lines;
    for (std::string line; std::getline(csv, line);) lines.push_back(line);
    QCOMPARE(lines.size(), size_t{3});  // header + one row per cell
    QVERIFY(QString::fromStdString(lines[0]).startsWith("cell,masking.num,status,knn_top1"));
    QVERIFY(QString::fromStdString(lines[1]).startsWith("0,1,done,"));
    QVERIFY(QString::fromStdString(lines[2]).startsWith("1,8,done,"));
    auto nums = readLogDataset(o.out_dir + "/sweep.h5", "/sweep/masking.num");
    QCOMPARE(nums, (std::vector<double>{1, 8}));
    auto knn = readLogDataset(o.out_dir + "/sweep.h5", "/sweep/knn_top1");
    QCOMPARE(knn.size(), size_t{2});
    QVERIFY(std::isfinite(knn[0]) && std::isfinite(knn[1]));
  }

  void sweepFileKeepsItsKeyOrder() {
    QTemporaryDir dir;
    const std::string file = dir.filePath("order.json").toStdString();
    // Not alphabetical: a sorting reader would make masking.strategy the rows.
    writeText(file, R"({"_comment": "x", "sweep": {"_note": "ignored",
      "grid": {"train.seed": [0, 1], "masking.strategy": ["none", "random"]},
      "readout": "linear", "max_steps": 5}})");
    const auto sweep = readSweepFile(file);
    QCOMPARE(sweep.axes.size(), size_t{2});
    QCOMPARE(sweep.axes[0].key, std::string("train.seed"));
    QCOMPARE(sweep.axes[1].key, std::string("masking.strategy"));
    QCOMPARE(sweep.axes[1].values[1].get<std::string>(), std::string("random"));
    QVERIFY(sweep.axes[0].source.find(file + ": sweep.grid") != std::string::npos);
    QCOMPARE(sweep.max_steps.value_or(-1), int64_t{5});
    QCOMPARE(sweep.readout.value_or(""), std::string("linear"));
    // Cells follow the order: the first key is the slowest.
    const auto cells = expandGrid(nlohmann::json::object(), sweep.axes, "/tmp/x");
    QCOMPARE(cells[1].values[0].get<int>(), 0);
    QCOMPARE(cells[1].values[1].get<std::string>(), std::string("random"));
    // A file without a sweep object: nothing.
    writeText(file, R"({"masking": {"p": 0.1}})");
    QVERIFY(readSweepFile(file).axes.empty() && !readSweepFile(file).readout);
  }

  void sweepFileErrorsNameTheFileAndKey_data() {
    QTest::addColumn<QString>("sweep");
    QTest::addColumn<QStringList>("parts");
    QTest::newRow("unknown key") << R"({"bogus": 1, "grid": {"masking.p": [0.1]}})"
                                 << QStringList{"sweep.bogus", "grid, readout, max_steps"};
    QTest::newRow("empty grid") << R"({"grid": {}})" << QStringList{"sweep.grid", "empty"};
    QTest::newRow("grid not an object") << R"({"grid": [1]})" << QStringList{"sweep.grid"};
    QTest::newRow("axis not an array") << R"({"grid": {"masking.p": 0.1}})"
                                       << QStringList{"sweep.grid key masking.p", "array"};
    QTest::newRow("bad readout") << R"({"readout": "knnx"})"
                                 << QStringList{"sweep.readout", "knnx"};
    QTest::newRow("readout not a string") << R"({"readout": ["knn"]})"
                                          << QStringList{"sweep.readout", "string"};
    QTest::newRow("bad max_steps") << R"({"max_steps": "3"})" << QStringList{"sweep.max_steps"};
    QTest::newRow("negative max_steps") << R"({"max_steps": -1})" << QStringList{"sweep.max_steps"};
    QTest::newRow("not an object") << R"("knn")" << QStringList{"sweep must be an object"};
  }
  void sweepFileErrorsNameTheFileAndKey() {
    QFETCH(QString, sweep);
    QFETCH(QStringList, parts);
    QTemporaryDir dir;
    const QString file = dir.filePath("bad.json");
    writeText(file.toStdString(), "{\"sweep\": " + sweep.toStdString() + "}");
    expectError([&] { readSweepFile(file.toStdString()); }, parts + QStringList{file},
                {"--readout", "--grid", "--set"});
  }

  void gridErrorsNameWhereTheGridCameFrom() {
    QTemporaryDir dir;
    const std::string file = dir.filePath("grid.json").toStdString();
    // A key that is no config key, from the file: the file and sweep.grid, never --set.
    writeText(file, R"({"sweep": {"grid": {"masking.p": [0.1], "masking.pp": [1, 2]}}})");
    auto axes = readSweepFile(file).axes;
    expectError([&] { expandGrid(nlohmann::json::object(), axes, "/tmp/x"); },
                {QString::fromStdString(file), "sweep.grid", "masking.pp"}, {"--set", "--grid"});
    // A value out of range: the file, the cell and its values.
    writeText(file, R"({"sweep": {"grid": {"masking.num": [1], "masking.p": [0.1, 7]}}})");
    axes = readSweepFile(file).axes;
    expectError([&] { expandGrid(nlohmann::json::object(), axes, "/tmp/x"); },
                {QString::fromStdString(file), "sweep.grid cell 1 (masking.num=1, masking.p=7)",
                 "masking.p"},
                {"--grid"});
    // The same from the command line names the flag.
    expectError([&] { expandGrid(nlohmann::json::object(), {parseAxis("masking.pp=1")}, "/x"); },
                {"--grid", "masking.pp"}, {"--set"});
    // Read-outs: the flag's name, and the strict list.
    SweepOptions o;
    expectError([&] { parseReadouts("knn,bogus", "--readout", o); }, {"--readout", "bogus"});
    expectError([&] { parseReadouts("", "--readout", o); }, {"--readout"});
    parseReadouts("linear", "--readout", o);
    QVERIFY(!o.knn && o.linear);
    parseReadouts("knn, linear", "--readout", o);
    QVERIFY(o.knn && o.linear);
  }

  void sweepKeysAreDocumented() {
    // docs/config.md embeds `mst sweep --keys`: regenerate with scripts/update_docs.sh.
    const std::string doc = readText(std::string(MST_SOURCE_DIR) + "/docs/config.md");
    QVERIFY2(doc.find(sweepKeysMarkdown()) != std::string::npos,
             "docs/config.md is out of date: run scripts/update_docs.sh");
    for (const char* key : {"`sweep.grid`", "`sweep.readout`", "`sweep.max_steps`"})
      QVERIFY2(sweepKeysMarkdown().find(key) != std::string::npos, key);
  }

  void sweepCommandReadsItsFileInOrder() {
    const QString mst = QString(MST_BINARY_DIR) + "/mst";
    if (!QFileInfo::exists(mst)) QSKIP("the mst binary is not built");
    QTemporaryDir dir;
    const QString file = dir.filePath("order.json"), out = dir.filePath("sweep");
    writeText(file.toStdString(), R"({"model": {"preset": "vit_micro28"}, "sweep": {
      "grid": {"train.seed": [0, 1], "masking.strategy": ["none", "random"]}, "readout": "knn"}})");
    QProcess status;
    status.start(mst, {"sweep", "--config", file, "--out", out, "--status"});
    QVERIFY(status.waitForFinished(120000));
    QVERIFY2(status.exitCode() == 0, status.readAllStandardError().constData());
    QVERIFY2(readText((out + "/sweep.csv").toStdString())
                 .rfind("cell,train.seed,masking.strategy,status,", 0) == 0,
             readText((out + "/sweep.csv").toStdString()).c_str());
    // A bad value in the file is reported as the file's, not as a flag.
    writeText(file.toStdString(), R"({"sweep": {"readout": "knnx"}})");
    QProcess bad;
    bad.start(mst, {"sweep", "--config", file, "--out", out, "--status"});
    QVERIFY(bad.waitForFinished(120000));
    QCOMPARE(bad.exitCode(), 1);
    const QString error = bad.readAllStandardError();
    QVERIFY2(error.contains(file + ": sweep.readout") && !error.contains("--readout"),
             qPrintable(error));
  }

  void resultShortfallFollowsTheRequest() {
    const nlohmann::json cut{{"steps", 3}, {"total_steps", 8}, {"knn_top1", 40.0}};
    SweepOptions o;
    o.linear = false;
    o.max_steps = 3;
    QCOMPARE(resultShortfall(cut, o), std::string());
    o.max_steps = 2;  // trained beyond the cap: nothing to do
    QCOMPARE(resultShortfall(cut, o), std::string());
    o.max_steps = 6;
    QCOMPARE(resultShortfall(cut, o), std::string("trained 3 of 6 steps"));
    o.max_steps = 20;  // the schedule is shorter than the cap
    QCOMPARE(resultShortfall(cut, o), std::string("trained 3 of 8 steps"));
    o.max_steps = 0;
    QCOMPARE(resultShortfall(cut, o), std::string("trained 3 of 8 steps"));
    o.max_steps = 3;
    o.linear = true;
    QCOMPARE(resultShortfall(cut, o), std::string("no linear read-out"));
    const nlohmann::json full{{"steps", 8}, {"total_steps", 8}, {"linear_top1", 50.0}};
    o.max_steps = 0;
    QCOMPARE(resultShortfall(full, o), std::string("no k-NN read-out"));
    o.knn = false;
    QCOMPARE(resultShortfall(full, o), std::string());
    // A result from before total_steps was recorded: finished only as far as the cap says.
    const nlohmann::json old{{"steps", 8}, {"linear_top1", 50.0}};
    o.max_steps = 8;
    QCOMPARE(resultShortfall(old, o), std::string());
    o.max_steps = 0;
    QVERIFY(!resultShortfall(old, o).empty());
  }

  void sweepStatusFollowsTheRequest() {
    // A cell whose result.json says it was cut at 3 of 8 steps, with k-NN only: done for a sweep
    // asking for 3 steps and k-NN, pending (without its old numbers) for one asking for more.
    QTemporaryDir dir;
    std::vector<SweepAxis> axes{parseAxis("masking.num=1")};
    SweepOptions o = tinySweepOptions(dir.path().toStdString());
    o.run_cells = false;
    o.linear = false;
    o.max_steps = 3;
    const std::string cell_dir = expandGrid(tinySweepBase(), axes, o.out_dir)[0].dir;
    writeText(cell_dir + "/result.json",
              nlohmann::json{{"steps", 3}, {"total_steps", 8}, {"knn_top1", 42.0},
                             {"config", tinyCellConfig(1)}}
                  .dump());
    auto cells = runSweep(tinySweepBase(), axes, o);
    QCOMPARE(cells[0].status, std::string("done"));
    QCOMPARE(cells[0].knn_top1.value_or(0), 42.0);
    QVERIFY(cells[0].outdated.empty());
    QVERIFY(readText(o.out_dir + "/sweep.csv").find("\n0,1,done,42,") != std::string::npos);
    for (int64_t steps : {6, 0}) {
      o.max_steps = steps;
      cells = runSweep(tinySweepBase(), axes, o);
      QCOMPARE(cells[0].status, std::string("pending"));
      QVERIFY(!cells[0].knn_top1);
      const std::string why = steps == 6 ? "trained 3 of 6 steps" : "trained 3 of 8 steps";
      QCOMPARE(cells[0].outdated, why);
      QVERIFY(readText(o.out_dir + "/sweep.csv").find("\n0,1,pending,,") != std::string::npos);
    }
    o.max_steps = 3;
    o.linear = true;
    cells = runSweep(tinySweepBase(), axes, o);
    QCOMPARE(cells[0].status, std::string("pending"));
    QCOMPARE(cells[0].outdated, std::string("no linear read-out"));
  }

  void aResultFromBeforeTotalStepsAnswersWhenItsLogShowsTheWholeSchedule() {
    // Results written before total_steps existed (the recorded Table 4 / 5 cells): the cell's
    // run.h5 decides whether it trained its whole schedule.
    QTemporaryDir dir;
    std::vector<SweepAxis> axes{parseAxis("masking.num=1")};
    SweepOptions o = tinySweepOptions(dir.path().toStdString());
    o.run_cells = false;
    o.linear = false;
    o.max_steps = 0;  // the full schedule
    const auto config = tinyCellConfig(1);
    const double epochs = config["train"]["epochs"].get<double>();
    const std::string cell_dir = expandGrid(tinySweepBase(), axes, o.out_dir)[0].dir;
    writeText(cell_dir + "/result.json",
              nlohmann::json{{"steps", 8}, {"knn_top1", 42.0}, {"config", config}}.dump());
    QCOMPARE(runSweep(tinySweepBase(), axes, o)[0].status, std::string("pending"));
    for (const double last : {epochs - 0.5, epochs}) {
      {
        RunLogShape shape;
        shape.metrics = {"loss"};
        RunLog log(cell_dir + "/run.h5", config.dump(), shape, false, 0);
        log.appendMetrics(4, last / 2, {{"loss", 1.0}});
        log.appendMetrics(8, last, {{"loss", 1.0}});
      }
      const auto cells = runSweep(tinySweepBase(), axes, o);
      QCOMPARE(cells[0].status, std::string(last < epochs ? "pending" : "done"));
      if (last >= epochs) QCOMPARE(cells[0].knn_top1.value_or(0), 42.0);
    }
  }

  void aChangedConfigRefusesTheSweep() {
    QTemporaryDir dir;
    std::vector<SweepAxis> axes{parseAxis("masking.num=1,2")};
    SweepOptions o = tinySweepOptions(dir.path().toStdString());
    o.linear = false;
    const auto grid = expandGrid(tinySweepBase(), axes, o.out_dir);
    // Cell 1 was trained with another learning rate; its masking.num (the grid's) is the same.
    auto other = tinyCellConfig(2);
    other["optim"]["lr"] = 0.01;
    const std::string result =
        nlohmann::json{{"steps", 2}, {"total_steps", 8}, {"knn_top1", 42.0}, {"config", other}}
            .dump();
    writeText(grid[1].dir + "/result.json", result);
    for (bool run : {false, true}) {
      o.run_cells = run;
      StopAfterFirst observer(nullptr);
      expectError([&] { runSweep(tinySweepBase(), axes, o, &observer); },
                  {QString::fromStdString(o.out_dir), QString::fromStdString(grid[1].dir),
                   "another config (optim.lr 0.01 → 0.0005)", "--out"});
      QVERIFY(observer.started.empty());
      // Nothing on disk changed: no tables, no other cell's folder, the result as it was.
      QVERIFY(!std::filesystem::exists(o.out_dir + "/sweep.csv"));
      QVERIFY(!std::filesystem::exists(grid[0].dir));
      QCOMPARE(readText(grid[1].dir + "/result.json"), result);
    }
    // Operational keys may differ: the cell is this sweep's.
    auto operational = tinyCellConfig(2);
    operational["train"]["threads"] = 3;
    operational["eval"]["k"] = 7;
    writeText(grid[1].dir + "/result.json",
              nlohmann::json{{"steps", 2}, {"total_steps", 8}, {"knn_top1", 42.0},
                             {"config", operational}}.dump());
    o.run_cells = false;
    QCOMPARE(runSweep(tinySweepBase(), axes, o)[1].status, std::string("done"));
    // A result without its config: read from run.h5's /config...
    writeText(grid[1].dir + "/result.json",
              nlohmann::json{{"steps", 2}, {"total_steps", 8}, {"knn_top1", 42.0}}.dump());
    std::filesystem::remove(o.out_dir + "/sweep.csv");
    {
      RunLogShape shape;
      shape.metrics = {"loss"};
      RunLog log(grid[1].dir + "/run.h5", other.dump(), shape, false, 0);
    }
    expectError([&] { runSweep(tinySweepBase(), axes, o); },
                {QString::fromStdString(grid[1].dir), "optim.lr"});
    // ...and without any record of it, the result cannot be vouched for.
    std::filesystem::remove(grid[1].dir + "/run.h5");
    expectError([&] { runSweep(tinySweepBase(), axes, o); },
                {QString::fromStdString(grid[1].dir), "no record of the config"});
  }

  void aSweepFolderKeepsItsGridAndSteps() {
    QTemporaryDir dir;
    const std::string out = dir.filePath("sweep").toStdString();
    const auto cells = finishedTinySweep(out);
    QCOMPARE(cells[1].status, std::string("done"));
    const auto record = readSweepRecord(out);
    QVERIFY(record && sameGrid(record->axes, {parseAxis("masking.num=1,2")}));
    QCOMPARE(record->max_steps, int64_t{2});
    QVERIFY(record->knn && !record->linear);
    const std::string csv = readText(out + "/sweep.csv"), stored = readText(sweepRecordPath(out));
    QVERIFY(csv.find("\n1,2,done,41,") != std::string::npos);

    // Another grid (other values, another order, one more axis), as a sweep or a status pass:
    // refused before anything is written, naming the folder and both grids.
    SweepOptions o = tinySweepOptions(out);
    o.linear = false;
    const std::vector<std::vector<SweepAxis>> others{
        {parseAxis("masking.num=4")},
        {parseAxis("masking.num=2,1")},
        {parseAxis("masking.num=1,2"), parseAxis("masking.p=0.1")}};
    for (bool run : {true, false})
      for (const auto& axes : others) {
        o.run_cells = run;
        StopAfterFirst observer(nullptr);
        expectError([&] { runSweep(tinySweepBase(), axes, o, &observer); },
                    {QString::fromStdString("sweep " + out), "another grid",
                     "--grid masking.num=1,2;",
                     QString::fromStdString("asked: " + gridFlags(axes)), "--out"});
        QVERIFY(observer.started.empty());
        QCOMPARE(readText(out + "/sweep.csv"), csv);
        QCOMPARE(readText(sweepRecordPath(out)), stored);
        QVERIFY(!std::filesystem::exists(out + "/00_masking.num=4"));
      }
    // Fewer steps (0 is the most: the full schedule is more than 2) would mix lengths; a status
    // pass shows the sweep only with its own step cap.
    const std::vector<SweepAxis> axes{parseAxis("masking.num=1,2")};
    for (const auto& [run, steps] :
         std::vector<std::pair<bool, int64_t>>{{true, 1}, {false, 1}, {false, 6}, {false, 0}}) {
      o.run_cells = run;
      o.max_steps = steps;
      expectError([&] { runSweep(tinySweepBase(), axes, o); },
                  {QString::fromStdString("sweep " + out), "--max-steps 2",
                   run ? "not 1: fewer steps" : "--status"});
      QCOMPARE(readText(out + "/sweep.csv"), csv);
      QCOMPARE(readText(sweepRecordPath(out)), stored);
    }
    // The same sweep, with another read-out asked for: a status pass shows it (and records
    // nothing); the record keeps every read-out a sweep asked for.
    o.run_cells = false;
    o.max_steps = 2;
    o.linear = true;
    QCOMPARE(runSweep(tinySweepBase(), axes, o)[0].outdated, std::string("no linear read-out"));
    QCOMPARE(readText(sweepRecordPath(out)), stored);
  }

  void sweepStatusShowsTheFolderAsItRan() {
    const QString mst = QString(MST_BINARY_DIR) + "/mst";
    if (!QFileInfo::exists(mst)) QSKIP("the mst binary is not built");
    QTemporaryDir dir;
    const std::string out = dir.filePath("sweep").toStdString();
    finishedTinySweep(out);
    const std::string csv = readText(out + "/sweep.csv");
    // The base experiment, with a sweep object whose grid is not the folder's (the user ran it
    // with --grid flags): without --grid, --max-steps or --readout, --status takes the folder's
    // (not the file's 4 cells, the full schedule, both read-outs) and the tables stay as they are.
    auto file = tinySweepBase();
    file["sweep"] = {{"grid", {{"masking.num", {1, 2, 4, 8}}}}};
    const QString config = dir.filePath("base.json");
    writeText(config.toStdString(), file.dump());
    const auto run = [&](const QStringList& extra) {
      QProcess p;
      p.start(mst, QStringList{"sweep", "--config", config, "--out",
                               QString::fromStdString(out), "--status"} + extra);
      p.waitForFinished(120000);
      return std::make_tuple(p.exitCode(), QString(p.readAllStandardOutput()),
                             QString(p.readAllStandardError()));
    };
    const auto [code, stdout_text, stderr_text] = run({});
    QVERIFY2(code == 0, qPrintable(stderr_text));
    QCOMPARE(readText(out + "/sweep.csv"), csv);
    QVERIFY2(stderr_text.contains("keeps the grid of its sweep.json"), qPrintable(stderr_text));
    // The table on stdout, then the final JSON line.
    const QStringList lines = stdout_text.trimmed().split('\n');
    QCOMPARE(lines.mid(0, lines.size() - 1).join('\n') + '\n', QString::fromStdString(csv));
    const auto result = nlohmann::json::parse(lines.last().toStdString());
    QCOMPARE(result["cells"].get<int64_t>(), int64_t{2});
    QCOMPARE(result["done"].get<int64_t>(), int64_t{2});
    // Another grid on the command line: one error line naming the folder and both grids.
    const auto [bad, bad_out, bad_err] = run({"--grid", "masking.p=0.15"});
    QCOMPARE(bad, 1);
    QCOMPARE(bad_err.trimmed().count('\n'), 0);
    for (const QString& part : {QString::fromStdString(out), QString("--grid masking.num=1,2"),
                                QString("--grid masking.p=0.15"), QString("--out")})
      QVERIFY2(bad_err.contains(part), qPrintable(bad_err));
    QCOMPARE(readText(out + "/sweep.csv"), csv);
  }

  void sweepRerunsContinueAndAddReadOuts() {
    if (!fashionMnistPresent()) QSKIP("Fashion-MNIST is not installed");
    at::set_num_threads(2);
    QTemporaryDir dir;
    nlohmann::json base = tinySweepBase();
    base["train"]["epochs"] = 2;  // 64 images of 16: 8 steps in all
    std::vector<SweepAxis> axes{parseAxis("masking.num=1")};
    SweepOptions o = tinySweepOptions(dir.path().toStdString());
    o.linear = false;
    o.max_steps = 3;
    auto cells = runSweep(base, axes, o);
    QCOMPARE(cells[0].status, std::string("done"));
    auto result = *readCellResult(cells[0].dir);
    QCOMPARE(result["steps"].get<int64_t>(), int64_t{3});
    QCOMPARE(result["total_steps"].get<int64_t>(), int64_t{8});
    QVERIFY(result.contains("config") && !result.contains("linear_top1"));
    // The same request again: nothing to do.
    StopAfterFirst same(nullptr);
    runSweep(base, axes, o, &same);
    QVERIFY(same.started.empty());

    // More steps: the cell continues from its checkpoint to 6 and is read out again.
    o.max_steps = 6;
    StopAfterFirst more(nullptr);
    cells = runSweep(base, axes, o, &more);
    QCOMPARE(more.started, (std::vector<int64_t>{0}));
    QCOMPARE(cells[0].status, std::string("done"));
    result = *readCellResult(cells[0].dir);
    QCOMPARE(result["steps"].get<int64_t>(), int64_t{6});
    const auto steps = readLogDataset(cells[0].dir + "/run.h5", "/metrics/step");
    QCOMPARE(steps.back(), 6.0);
    QVERIFY(std::find(steps.begin(), steps.end(), 3.0) != steps.end());  // resumed, not restarted
    QCOMPARE(readSweepRecord(o.out_dir)->max_steps, int64_t{6});  // the folder's sweep now

    // Another read-out: computed from the checkpoint, the k-NN one kept (a sentinel shows it was
    // not recomputed), no training (the checkpoint is untouched).
    result["knn_top1"] = 12.5;
    writeText(cells[0].dir + "/result.json", result.dump());
    const auto checkpoint_time = std::filesystem::last_write_time(cells[0].dir + "/checkpoint.pt");
    o.linear = true;
    StopAfterFirst readout(nullptr);
    cells = runSweep(base, axes, o, &readout);
    QCOMPARE(readout.started, (std::vector<int64_t>{0}));
    QCOMPARE(cells[0].status, std::string("done"));
    QCOMPARE(cells[0].knn_top1.value_or(0), 12.5);
    QVERIFY(cells[0].linear_top1.has_value());
    result = *readCellResult(cells[0].dir);
    QCOMPARE(result["steps"].get<int64_t>(), int64_t{6});
    QVERIFY(result.contains("linear_top1"));
    QVERIFY(std::filesystem::last_write_time(cells[0].dir + "/checkpoint.pt") == checkpoint_time);
    QVERIFY(readText(o.out_dir + "/sweep.csv").find("\n0,1,done,12.5,") != std::string::npos);
    QVERIFY(readSweepRecord(o.out_dir)->linear);
    // Asked for k-NN alone again, the record keeps the linear read-out asked before.
    o.linear = false;
    runSweep(base, axes, o);
    QVERIFY(readSweepRecord(o.out_dir)->knn && readSweepRecord(o.out_dir)->linear);
    o.linear = true;

    // Another base config: refused before anything runs, also when the only record of the
    // cell's config is its checkpoint.
    result.erase("config");
    const std::string without_config = result.dump();
    writeText(cells[0].dir + "/result.json", without_config);
    std::filesystem::remove(cells[0].dir + "/run.h5");
    auto changed = base;
    changed["optim"]["lr"] = 0.01;
    StopAfterFirst refused(nullptr);
    expectError([&] { runSweep(changed, axes, o, &refused); },
                {QString::fromStdString(cells[0].dir), "optim.lr"});
    QVERIFY(refused.started.empty());
    QCOMPARE(readText(cells[0].dir + "/result.json"), without_config);
  }

  void copiedCheckpointKeepsItsResults() {
    QTemporaryDir tmp;
    namespace fs = std::filesystem;
    const fs::path a = fs::path(tmp.path().toStdString()) / "a", b = a.parent_path() / "b";
    fs::create_directories(a);
    const std::string ckpt = (a / "checkpoint.pt").string();
    torch::save(torch::arange(64, torch::kFloat), ckpt);  // a real torch zip archive
    const std::string fingerprint = checkpointFingerprint(ckpt);
    QVERIFY(!fingerprint.empty());
    QCOMPARE(checkpointFingerprint(ckpt), fingerprint);  // stable
    recordEvaluation(ckpt, "knn", {{"knn_top1", 70.0}}, checkpointMtime(ckpt), fingerprint);
    QCOMPARE(nlohmann::json::parse(std::ifstream(a / "eval.json"))["knn"]["checkpoint_fingerprint"]
                 .get<std::string>(),
             fingerprint);
    // A copy gets a new mtime (cp -r without -p): the same records, so not stale.
    fs::copy(a, b);
    const fs::path copied = b / "checkpoint.pt";
    fs::last_write_time(copied, fs::last_write_time(ckpt) + std::chrono::seconds(30));
    QCOMPARE(checkpointFingerprint(copied.string()), fingerprint);
    RunReadouts r = readRunReadouts(b.string());
    QCOMPARE(r.knn_top1.value_or(-1), 70.0);
    QVERIFY(!r.stale);
    // Other weights of the same shapes (the next checkpoint of a run) change it: stale.
    torch::save(torch::arange(64, torch::kFloat) + 1, copied.string());
    fs::last_write_time(copied, fs::last_write_time(ckpt) + std::chrono::seconds(60));
    QVERIFY(checkpointFingerprint(copied.string()) != fingerprint);
    QCOMPARE(fs::file_size(copied), fs::file_size(ckpt));  // the size alone would not tell
    QVERIFY(readRunReadouts(b.string()).stale);
    // A record without a fingerprint (older files) goes by the mtime alone.
    recordEvaluation(ckpt, "knn", {{"knn_top1", 70.0}}, checkpointMtime(ckpt));
    fs::last_write_time(ckpt, fs::last_write_time(ckpt) + std::chrono::seconds(30));
    QVERIFY(readRunReadouts(a.string()).stale);
    // Not a zip: no fingerprint, nothing thrown.
    std::ofstream(a / "other.pt") << "weights";
    QVERIFY(checkpointFingerprint((a / "other.pt").string()).empty());
    QVERIFY(checkpointFingerprint((a / "missing.pt").string()).empty());
  }

  void evalRecordMergesKeepsAndRefusesDamage() {
    QTemporaryDir tmp;
    namespace fs = std::filesystem;
    const fs::path dir(tmp.path().toStdString());
    const std::string ckpt = (dir / "checkpoint.pt").string();
    std::ofstream(ckpt) << "weights";
    QCOMPARE(evalRecordKey("knn", "teacher", 1), std::string("knn"));
    QCOMPARE(evalRecordKey("linear", "teacher", 4), std::string("linear_4blocks"));
    QCOMPARE(evalRecordKey("knn", "pixels", 1), std::string("knn_pixels"));
    const int64_t weights = checkpointMtime(ckpt);
    QVERIFY(weights > 0);
    checkEvalRecord(ckpt);  // no record yet: nothing to refuse
    QCOMPARE(recordEvaluation(ckpt, "knn",
                              {{"knn_top1", 64.25}, {"knn_k", 20}, {"train", 60000},
                               {"test", 10000}, {"full_protocol", true}},
                              weights),
             (dir / "eval.json").string());
    // A result with the per-class keys is stored whole (null included); the run list reads past them.
    const nlohmann::json per_class{{"per_class_top1", {100.0, nullptr}},
                                   {"confusion", {{2, 0}, {0, 0}}},
                                   {"classes", {"a", "b"}}};
    nlohmann::json linear{{"linear_top1", 73.5}, {"epochs", 100}, {"train", 60000},
                          {"test", 10000}, {"full_protocol", true}};
    linear.update(per_class);
    recordEvaluation(ckpt, "linear", linear, weights);
    recordEvaluation(ckpt, "knn_pixels", {{"knn_top1", 85.7}}, weights);
    auto record = nlohmann::json::parse(std::ifstream(dir / "eval.json"));
    QCOMPARE(record.size(), size_t{3});  // each read-out under its own key, none lost
    QCOMPARE(record["knn"]["knn_top1"].get<double>(), 64.25);
    QVERIFY(record["knn"]["recorded_at"].get<std::string>().size() == 20);  // ...T..:..:..Z
    QCOMPARE(record["knn"]["checkpoint_mtime"].get<int64_t>(), weights);
    for (const char* key : {"per_class_top1", "confusion", "classes"})
      QCOMPARE(record["linear"][key], per_class[key]);
    QVERIFY(!fs::exists(dir / "eval.json.lock"));  // the lock is hidden: .eval.json.lock

    RunReadouts r = readRunReadouts(dir.string());
    QCOMPARE(r.knn_top1.value_or(-1), 64.25);  // the teacher's, not the pixels' 85.7
    QCOMPARE(r.linear_top1.value_or(-1), 73.5);
    QVERIFY(!r.stale && !r.partial && r.error.empty());
    QCOMPARE(r.source, (dir / "eval.json").string());
    QCOMPARE(r.detail, std::string("k-NN: k = 20, bank 60000, test 10000; linear: 100 epochs, "
                                   "60000 training images, test 10000"));
    // A checkpoint written after the weights were read makes the record stale, even when the
    // record itself was written later (the mtime is the one taken before reading).
    fs::last_write_time(ckpt, fs::last_write_time(ckpt) + std::chrono::seconds(5));
    recordEvaluation(ckpt, "knn", {{"knn_top1", 64.0}, {"full_protocol", false}}, weights);
    r = readRunReadouts(dir.string());
    QVERIFY(r.stale);
    QVERIFY(r.partial);  // a quick look (limits) is marked as such

    // A damaged eval.json is named before any computing and left as it was; the read-outs
    // fall back to result.json and say why.
    std::ofstream(dir / "eval.json") << "{\"knn\": ";
    for (auto attempt : {std::function<void()>([&] { checkEvalRecord(ckpt); }),
                         std::function<void()>([&] {
                           recordEvaluation(ckpt, "knn", {{"knn_top1", 1.0}}, weights);
                         })}) {
      try {
        attempt();
        QFAIL("a damaged eval.json was accepted");
      } catch (const MstError& e) {
        const std::string what = e.what();
        QVERIFY2(what.find((dir / "eval.json").string()) != std::string::npos &&
                     what.find("not valid JSON") != std::string::npos,
                 e.what());
      }
    }
    std::ifstream damaged(dir / "eval.json");
    QCOMPARE(std::string(std::istreambuf_iterator<char>(damaged), {}), std::string("{\"knn\": "));
    r = readRunReadouts(dir.string());
    QVERIFY(!r.knn_top1);
    QVERIFY(r.error.find("eval.json") != std::string::npos);
    std::ofstream(dir / "result.json") << R"({"knn_top1": 61.5, "linear_top1": 70.25})";
    r = readRunReadouts(dir.string());
    QCOMPARE(r.knn_top1.value_or(-1), 61.5);
    QCOMPARE(r.source, (dir / "result.json").string());
    std::ofstream(dir / "eval.json") << "[1, 2]";
    try {
      checkEvalRecord(ckpt);
      QFAIL("an eval.json that is not an object was accepted");
    } catch (const MstError& e) {
      QVERIFY2(std::string(e.what()).find("not a JSON object") != std::string::npos, e.what());
    }
  }

  void runReadoutsReadThePerClassKeysWhenPresent() {
    QTemporaryDir tmp;
    namespace fs = std::filesystem;
    const fs::path dir(tmp.path().toStdString());
    // A record from before the per-class keys: the top-1 reads as before, nothing per class.
    std::ofstream(dir / "eval.json")
        << R"({"knn": {"knn_top1": 64.25, "knn_k": 20, "train": 60000, "test": 10000},
               "linear": {"linear_top1": 73.5, "epochs": 100, "train": 60000, "test": 10000}})";
    RunReadouts r = readRunReadouts(dir.string());
    QCOMPARE(r.knn_top1.value_or(-1), 64.25);
    QCOMPARE(r.linear_top1.value_or(-1), 73.5);
    QVERIFY(r.knn_classes.empty() && r.linear_classes.empty() && r.error.empty());

    // With them: rows = true class as recorded (the matrix is not symmetric), null = no images.
    std::ofstream(dir / "eval.json") << R"({
      "knn": {"knn_top1": 50.0, "per_class_top1": [50.0, 100.0, 33.3333, null],
              "confusion": [[1, 1, 0, 0], [0, 1, 0, 0], [2, 0, 1, 0], [0, 0, 0, 0]],
              "classes": ["a", "b", "c", "d"]},
      "linear": {"linear_top1": 60.0, "per_class_top1": [100.0, 0.0, 66.6667, null]}})";
    r = readRunReadouts(dir.string());
    QCOMPARE(r.knn_top1.value_or(-1), 50.0);
    QCOMPARE(r.knn_classes.top1.size(), size_t{4});
    QCOMPARE(r.knn_classes.top1[2].value_or(-1), 33.3333);
    QVERIFY(!r.knn_classes.top1[3]);
    QCOMPARE(r.knn_classes.confusion[2], (std::vector<int64_t>{2, 0, 1, 0}));
    QCOMPARE(r.knn_classes.confusion[0], (std::vector<int64_t>{1, 1, 0, 0}));
    QCOMPARE(r.knn_classes.classes, (std::vector<std::string>{"a", "b", "c", "d"}));
    // The linear result has no matrix (as above 100 classes) and no names: its top-1 stays.
    QCOMPARE(r.linear_classes.top1[1].value_or(-1), 0.0);
    QVERIFY(r.linear_classes.confusion.empty() && r.linear_classes.classes.empty());

    // A key of the wrong shape is dropped on its own; the record and the other keys still read.
    std::ofstream(dir / "eval.json") << R"({
      "knn": {"knn_top1": 50.0, "per_class_top1": [50.0, 100.0],
              "confusion": [[1, 1], [0]], "classes": ["a", "b", "c"]},
      "linear": {"linear_top1": 60.0, "per_class_top1": "high"}})";
    r = readRunReadouts(dir.string());
    QCOMPARE(r.knn_top1.value_or(-1), 50.0);
    QCOMPARE(r.linear_top1.value_or(-1), 60.0);
    QCOMPARE(r.knn_classes.top1.size(), size_t{2});
    QVERIFY(r.knn_classes.confusion.empty() && r.knn_classes.classes.empty());
    QVERIFY(r.linear_classes.empty());
    QVERIFY(r.error.empty());
  }
};

QTEST_APPLESS_MAIN(TestEval)
#include "test_eval.moc"
