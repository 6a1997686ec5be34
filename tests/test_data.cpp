/// @brief Data sets and loader: file-format checks, split sizes, reproducible batch order.
// LibTorch before Qt: Qt's `slots` keyword macro breaks LibTorch's IValue headers otherwise.
#include <torch/torch.h>
#include <zlib.h>

#include <QtTest/QtTest>

#include <QDir>
#include <QElapsedTimer>
#include <QTemporaryDir>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#ifdef MST_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif

#include "core/config/config.h"
#include "core/data/dataset.h"
#include "core/data/jpeg_decode.h"
#include "core/data/loader.h"
#include "core/eval/evaluate.h"
#include "core/eval/features.h"
#include "core/train/engine.h"
#include "core/util/error.h"

namespace {

const char* const kFashionDir = "/usr/share/datasets/fashion-mnist";

/// The MstError message thrown by `action`, or an empty string when it did not throw.
QString errorOf(const std::function<void()>& action) {
  try {
    action();
  } catch (const mst::MstError& error) {
    return QString::fromStdString(error.what());
  }
  return {};
}

std::string path(const QTemporaryDir& dir, const QString& name) {
  return dir.filePath(name).toStdString();
}

void appendBigEndian32(QByteArray& bytes, uint32_t value) {
  bytes.append(char(value >> 24))
      .append(char(value >> 16))
      .append(char(value >> 8))
      .append(char(value));
}

void writePlain(const std::string& file, const QByteArray& bytes) {
  std::ofstream out(file, std::ios::binary);
  out.write(bytes.constData(), bytes.size());
  QVERIFY(out.good());
}

void writeGz(const std::string& file, const QByteArray& bytes) {
  gzFile out = gzopen(file.c_str(), "wb");
  QVERIFY(out != nullptr);
  QCOMPARE(gzwrite(out, bytes.constData(), unsigned(bytes.size())), int(bytes.size()));
  QCOMPARE(gzclose(out), Z_OK);
}

uint8_t idxPixel(int64_t image, int64_t offset) { return uint8_t((image * 31 + offset * 7) % 256); }

/// IDX images whose header promises `header_count` 28x28 images and that holds `actual_count`.
QByteArray idxImages(uint32_t magic, uint32_t header_count, int64_t actual_count) {
  QByteArray bytes;
  appendBigEndian32(bytes, magic);
  appendBigEndian32(bytes, header_count);
  appendBigEndian32(bytes, 28);
  appendBigEndian32(bytes, 28);
  for (int64_t i = 0; i < actual_count; ++i) {
    for (int64_t j = 0; j < 28 * 28; ++j) bytes.append(char(idxPixel(i, j)));
  }
  return bytes;
}

QByteArray idxLabels(uint32_t magic, uint32_t header_count, const QByteArray& labels) {
  QByteArray bytes;
  appendBigEndian32(bytes, magic);
  appendBigEndian32(bytes, header_count);
  return bytes + labels;
}

uint8_t cifarPixel(int64_t record, int64_t offset) {
  return uint8_t((record * 13 + offset * 5 + offset / 1024) % 256);
}

/// CIFAR-10 records for global record numbers first.. with the given labels.
QByteArray cifarRecords(int64_t first, const std::vector<int>& labels) {
  QByteArray bytes;
  for (size_t r = 0; r < labels.size(); ++r) {
    bytes.append(char(labels[r]));
    for (int64_t j = 0; j < 3072; ++j) bytes.append(char(cifarPixel(first + int64_t(r), j)));
  }
  return bytes;
}

/// Train batches of 2, 3, 1, 2, 2 records (labels = record % 10) and a 3-record test batch.
void writeCifar(const QString& dir) {
  QVERIFY(QDir().mkpath(dir));
  const int counts[5] = {2, 3, 1, 2, 2};
  int64_t record = 0;
  for (int b = 0; b < 5; ++b) {
    std::vector<int> labels;
    for (int r = 0; r < counts[b]; ++r) labels.push_back(int((record + r) % 10));
    writePlain(QDir(dir).filePath(QString("data_batch_%1.bin").arg(b + 1)).toStdString(),
               cifarRecords(record, labels));
    record += counts[b];
  }
  writePlain(QDir(dir).filePath("test_batch.bin").toStdString(), cifarRecords(100, {9, 0, 5}));
}

/// In-memory data set of 1x2x3 images whose bytes encode the index; can fail or throw on demand.
class FakeDataset : public mst::Dataset {
 public:
  explicit FakeDataset(int64_t n, std::set<int64_t> corrupt = {}, int64_t throw_at = -1,
                       int sleep_us = 0)
      : n_(n), corrupt_(std::move(corrupt)), throw_at_(throw_at), sleep_us_(sleep_us) {}

  static uint8_t byte(int64_t index, int64_t j) { return uint8_t((index * 7 + j) % 256); }

  int64_t size() const override { return n_; }
  mst::ImageShape shape() const override { return {1, 2, 3}; }
  int64_t numClasses() const override { return 10; }
  int64_t label(int64_t index) const override { return index % 10; }
  bool read(int64_t index, uint8_t* dst) const override {
    ++reads;
    const int now = ++active;
    for (int seen = max_active.load(); now > seen && !max_active.compare_exchange_weak(seen, now);) {
    }
    if (sleep_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    --active;
    if (index == throw_at_) throw mst::MstError("fake: index " + std::to_string(index) + " broke");
    if (corrupt_.count(index) > 0) return false;
    for (int64_t j = 0; j < 6; ++j) dst[j] = byte(index, j);
    return true;
  }
  std::vector<double> defaultMean() const override { return {0.5}; }
  std::vector<double> defaultStd() const override { return {0.5}; }
  std::string describe() const override { return "fake (" + std::to_string(n_) + " images)"; }

  mutable std::atomic<int64_t> reads{0};
  mutable std::atomic<int> active{0}, max_active{0};  ///< reads in progress, and their peak

 private:
  int64_t n_;
  std::set<int64_t> corrupt_;
  int64_t throw_at_;
  int sleep_us_;
};

/// Every batch of one epoch, in delivery order.
std::vector<mst::Batch> epochBatches(mst::Loader& loader, int64_t epoch, int64_t first = 0) {
  loader.start(epoch, first);
  std::vector<mst::Batch> batches;
  while (auto batch = loader.next()) batches.push_back(std::move(*batch));
  return batches;
}

std::vector<int64_t> indicesOf(const std::vector<mst::Batch>& batches) {
  std::vector<int64_t> indices;
  for (const mst::Batch& batch : batches) {
    const auto* data = batch.indices.data_ptr<int64_t>();
    indices.insert(indices.end(), data, data + batch.indices.numel());
  }
  return indices;
}

#ifdef MST_HAVE_OPENCV
/// train/cat: 3 PNGs (solid 40x30, red-centred 64x16 stripes, solid 8x8) and a .txt;
/// train/dog: 2 PNGs and a corrupt .jpg (index 5 once sorted); val/cat and val/dog: 1 PNG each.
void writeImageFolder(const QString& root) {
  const QDir dir(root);
  for (const char* sub : {"train/cat", "train/dog", "val/cat", "val/dog"}) QVERIFY(dir.mkpath(sub));
  auto write = [&](const QString& name, const cv::Mat& image) {
    QVERIFY(cv::imwrite(dir.filePath(name).toStdString(), image));
  };
  write("train/cat/c0.png", cv::Mat(30, 40, CV_8UC3, cv::Scalar(10, 20, 30)));  // BGR
  cv::Mat stripes(16, 64, CV_8UC3, cv::Scalar(255, 0, 0));
  stripes(cv::Rect(24, 0, 16, 16)).setTo(cv::Scalar(0, 0, 255));
  stripes(cv::Rect(40, 0, 24, 16)).setTo(cv::Scalar(0, 255, 0));
  write("train/cat/c1.png", stripes);
  write("train/cat/c2.png", cv::Mat(8, 8, CV_8UC3, cv::Scalar(200, 100, 50)));
  writePlain(dir.filePath("train/cat/notes.txt").toStdString(), "not an image");
  write("train/dog/d0.png", cv::Mat(20, 20, CV_8UC3, cv::Scalar(1, 2, 3)));
  write("train/dog/d1.png", cv::Mat(20, 20, CV_8UC3, cv::Scalar(4, 5, 6)));
  QByteArray noise;
  for (int i = 0; i < 500; ++i) noise.append(char((i * 37 + 11) % 256));
  writePlain(dir.filePath("train/dog/zz_corrupt.jpg").toStdString(), noise);
  write("val/cat/v0.png", cv::Mat(20, 20, CV_8UC3, cv::Scalar(7, 8, 9)));
  write("val/dog/v1.png", cv::Mat(20, 20, CV_8UC3, cv::Scalar(7, 8, 9)));
}

mst::DataConfig imageFolderConfig(const QString& root) {
  mst::DataConfig config;
  config.format = "image_folder";
  config.path = root.toStdString();
  config.load_size = 16;
  return config;
}
#endif

}  // namespace

class TestData : public QObject {
  Q_OBJECT

 private slots:
  void fashionMnistReal_data();
  void fashionMnistReal();
  void fashionMnistLimit();
  void idxErrors_data();
  void idxErrors();
  void idxTruncatedGzipStream();
  void idxUncompressed();
  void idxGzipBombStopsAtThePromise();
  void cifar10Synthetic_data();
  void cifar10Synthetic();
  void cifar10Errors_data();
  void cifar10Errors();
  void imageFolder();
  void resizeAreaAndBilinear();
  void jpegDecoderMatchesOpenCv();
  void imageFolderFlat();
  void imageFolderErrors_data();
  void imageFolderErrors();
  void unknownFormat();
  void loaderCoversEpoch_data();
  void loaderCoversEpoch();
  void loaderOrderDeterministic();
  void loaderResume_data();
  void loaderResume();
  void loaderRestartMidEpoch();
  void loaderCorrupt_data();
  void loaderCorrupt();
  void loaderImageFolderCorrupt();
  void readOutsSkipUndecodableImages();
  void loaderWorkerException();
  void loaderPrefetchBound();
  void loaderWorkersShareABatch();
  void loaderRunsOnIntoTheNextEpoch();
  void loaderAllocationFailureReachesTheConsumer();
  void loaderDestructorMidEpoch();
};

void TestData::fashionMnistReal_data() {
  QTest::addColumn<bool>("train");
  QTest::addColumn<qint64>("size");
  QTest::newRow("train") << true << qint64(60000);
  QTest::newRow("test") << false << qint64(10000);
}

void TestData::fashionMnistReal() {
  QFETCH(bool, train);
  QFETCH(qint64, size);
  if (!QFileInfo::exists(kFashionDir)) QSKIP("Fashion-MNIST files not installed");
  mst::DataConfig config;
  config.path = kFashionDir;
  config.limit = 512;  // applies to the training split only
  const auto dataset = mst::openDataset(config, train);
  QCOMPARE(dataset->size(), train ? 512 : size);
  config.limit = 0;
  const auto full = mst::openDataset(config, train);
  QCOMPARE(full->size(), size);
  QCOMPARE(full->shape().channels, 1);
  QCOMPARE(full->shape().height, 28);
  QCOMPARE(full->shape().width, 28);
  QCOMPARE(full->numClasses(), 10);
  QCOMPARE(full->classNames().size(), size_t(10));
  QCOMPARE(full->classNames()[6], std::string("Shirt"));
  QCOMPARE(dataset->classNames(), full->classNames());  // data.limit's prefix keeps them
  QCOMPARE(full->defaultMean().size(), size_t(1));
  QVERIFY(QString::fromStdString(full->describe()).contains(QString::number(size)));

  std::vector<int64_t> per_class(10, 0);
  for (int64_t i = 0; i < full->size(); ++i) {
    const int64_t label = full->label(i);
    QVERIFY(label >= 0 && label < 10);
    ++per_class[size_t(label)];
  }
  // Fashion-MNIST is balanced: every class present, equally often.
  for (int64_t count : per_class) QCOMPARE(count, size / 10);

  std::vector<uint8_t> image(784);
  QVERIFY(full->read(size - 1, image.data()));
  QVERIFY(*std::max_element(image.begin(), image.end()) > 0);
}

void TestData::fashionMnistLimit() {
  if (!QFileInfo::exists(kFashionDir)) QSKIP("Fashion-MNIST files not installed");
  mst::DataConfig config;
  config.path = kFashionDir;
  const auto full = mst::openDataset(config, true);
  config.limit = 512;
  const auto limited = mst::openDataset(config, true);
  QCOMPARE(limited->size(), 512);
  QVERIFY(QString::fromStdString(limited->describe()).contains("512"));
  // A prefix, not a sample: index i is the same image with or without the limit.
  std::vector<uint8_t> a(784), b(784);
  for (int64_t i : {0, 200, 511}) {
    QVERIFY(limited->read(i, a.data()));
    QVERIFY(full->read(i, b.data()));
    QVERIFY(a == b);
    QCOMPARE(limited->label(i), full->label(i));
  }

  mst::LoaderOptions options;
  options.batch_size = 128;
  mst::Loader loader(*limited, options);
  QCOMPARE(loader.batchesPerEpoch(), 4);
  const auto batches = epochBatches(loader, 0);
  QCOMPARE(batches.size(), size_t(4));
  QCOMPARE(batches[0].images.sizes(), (torch::IntArrayRef{128, 1, 28, 28}));
  QCOMPARE(batches[0].images.scalar_type(), torch::kUInt8);
  QCOMPARE(batches[0].labels.scalar_type(), torch::kInt64);
  QVERIFY(batches[0].labels.max().item<int64_t>() <= 9);
}

void TestData::idxErrors_data() {
  QTest::addColumn<uint>("imageMagic");
  QTest::addColumn<uint>("imageHeaderCount");
  QTest::addColumn<int>("imageCount");
  QTest::addColumn<uint>("labelMagic");
  QTest::addColumn<uint>("labelHeaderCount");
  QTest::addColumn<QByteArray>("labels");
  QTest::addColumn<QString>("badFile");
  QTest::addColumn<QString>("detail");
  const QByteArray good("\x01\x02\x03", 3);
  const QString images = "train-images-idx3-ubyte.gz";
  const QString labels = "train-labels-idx1-ubyte.gz";
  QTest::newRow("image magic") << 0x804u << 3u << 3 << 0x801u << 3u << good << images << "magic";
  QTest::newRow("label magic") << 0x803u << 3u << 3 << 0x803u << 3u << good << labels << "magic";
  // 16 + 100 * 784 = 78416 bytes promised, 16 + 3 * 784 = 2368 present.
  QTest::newRow("images truncated")
      << 0x803u << 100u << 3 << 0x801u << 3u << good << images << "78416 bytes), found 2368";
  QTest::newRow("images trailing")
      << 0x803u << 2u << 3 << 0x801u << 3u << good << images << "trailing";
  QTest::newRow("labels truncated")
      << 0x803u << 3u << 3 << 0x801u << 10u << good << labels << "truncated";
  QTest::newRow("label out of range")
      << 0x803u << 3u << 3 << 0x801u << 3u << QByteArray("\x01\x0a\x03", 3) << labels << "0..9";
  QTest::newRow("count mismatch") << 0x803u << 3u << 3 << 0x801u << 4u
                                  << QByteArray("\x01\x02\x03\x04", 4) << labels << "3 images";
}

void TestData::idxErrors() {
  QFETCH(uint, imageMagic);
  QFETCH(uint, imageHeaderCount);
  QFETCH(int, imageCount);
  QFETCH(uint, labelMagic);
  QFETCH(uint, labelHeaderCount);
  QFETCH(QByteArray, labels);
  QFETCH(QString, badFile);
  QFETCH(QString, detail);
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  writeGz(path(dir, "train-images-idx3-ubyte.gz"),
          idxImages(imageMagic, imageHeaderCount, imageCount));
  writeGz(path(dir, "train-labels-idx1-ubyte.gz"), idxLabels(labelMagic, labelHeaderCount, labels));
  mst::DataConfig config;
  config.path = dir.path().toStdString();
  const QString message = errorOf([&] { mst::openDataset(config, true); });
  QVERIFY2(message.contains(dir.filePath(badFile)), qPrintable(message));
  QVERIFY2(message.contains(detail), qPrintable(message));
}

void TestData::idxTruncatedGzipStream() {
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  const std::string images = path(dir, "train-images-idx3-ubyte.gz");
  writeGz(images, idxImages(0x803, 50, 50));
  writeGz(path(dir, "train-labels-idx1-ubyte.gz"), idxLabels(0x801, 50, QByteArray(50, '\x02')));
  // Cut the compressed stream itself, as an interrupted download would.
  std::ifstream in(images, std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  writePlain(images, QByteArray::fromStdString(whole.substr(0, whole.size() / 2)));
  mst::DataConfig config;
  config.path = dir.path().toStdString();
  const QString message = errorOf([&] { mst::openDataset(config, true); });
  QVERIFY2(message.contains(QString::fromStdString(images)), qPrintable(message));
}

void TestData::idxUncompressed() {
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  writePlain(path(dir, "t10k-images-idx3-ubyte"), idxImages(0x803, 4, 4));
  writePlain(path(dir, "t10k-labels-idx1-ubyte"),
             idxLabels(0x801, 4, QByteArray("\x09\x00\x05\x01", 4)));
  mst::DataConfig config;
  config.path = dir.path().toStdString();
  const auto dataset = mst::openDataset(config, false);
  QCOMPARE(dataset->size(), 4);
  QCOMPARE(dataset->label(0), 9);
  QCOMPARE(dataset->label(2), 5);
  std::vector<uint8_t> image(784);
  QVERIFY(dataset->read(3, image.data()));
  for (int64_t j : {0, 1, 400, 783}) QCOMPARE(image[size_t(j)], idxPixel(3, j));

  // The training split is absent: the error names the file it looked for.
  const QString message = errorOf([&] { mst::openDataset(config, true); });
  QVERIFY2(message.contains(dir.filePath("train-images-idx3-ubyte.gz")), qPrintable(message));
}

void TestData::idxGzipBombStopsAtThePromise() {
  // A 256 KiB .gz that inflates to 256 MiB behind a header promising one 28x28 image: the reader
  // used to inflate all of it before the byte-count check (a real bomb: all memory). Now it
  // stops one byte past the promise, which the message reflects.
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  const std::string images = path(dir, "train-images-idx3-ubyte.gz");
  gzFile out = gzopen(images.c_str(), "wb1");
  QVERIFY(out != nullptr);
  const QByteArray header = idxImages(0x803, 1, 1);
  QCOMPARE(gzwrite(out, header.constData(), unsigned(header.size())), int(header.size()));
  const std::vector<char> zeros(size_t(1) << 20, 0);
  for (int i = 0; i < 256; ++i)
    QCOMPARE(gzwrite(out, zeros.data(), unsigned(zeros.size())), int(zeros.size()));
  QCOMPARE(gzclose(out), Z_OK);
  writeGz(path(dir, "train-labels-idx1-ubyte.gz"), idxLabels(0x801, 1, QByteArray("\x01", 1)));
  mst::DataConfig config;
  config.path = dir.path().toStdString();
  const QString message = errorOf([&] { mst::openDataset(config, true); });
  QVERIFY2(message.contains(QString::fromStdString(images)), qPrintable(message));
  QVERIFY2(message.contains("more than the 800 bytes expected"), qPrintable(message));
}

void TestData::cifar10Synthetic_data() {
  QTest::addColumn<QString>("subfolder");
  QTest::newRow("flat") << QString();
  QTest::newRow("tarball layout") << QString("cifar-10-batches-bin");
}

void TestData::cifar10Synthetic() {
  QFETCH(QString, subfolder);
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  writeCifar(subfolder.isEmpty() ? dir.path() : dir.filePath(subfolder));
  mst::DataConfig config;
  config.format = "cifar10";
  config.path = dir.path().toStdString();

  const auto train = mst::openDataset(config, true);
  QCOMPARE(train->size(), 10);
  QCOMPARE(train->numClasses(), 10);
  QCOMPARE(train->classNames().size(), size_t(10));
  QCOMPARE(train->classNames()[0], std::string("airplane"));
  QCOMPARE(train->shape().bytes(), 3072);
  QCOMPARE(train->defaultMean().size(), size_t(3));
  for (int64_t i = 0; i < train->size(); ++i) QCOMPARE(train->label(i), i % 10);
  std::vector<uint8_t> image(3072);
  // Record 3 is the second record of data_batch_2: batches concatenate in order.
  QVERIFY(train->read(3, image.data()));
  const int64_t green_y5_x7 = 1024 + 5 * 32 + 7;  // CHW: R plane (1024 bytes), then G, then B
  QCOMPARE(image[size_t(green_y5_x7)], cifarPixel(3, green_y5_x7));
  QCOMPARE(image[0], cifarPixel(3, 0));
  QCOMPARE(image[3071], cifarPixel(3, 3071));

  config.limit = 4;
  QCOMPARE(mst::openDataset(config, true)->size(), 4);
  const auto test = mst::openDataset(config, false);
  QCOMPARE(test->size(), 3);
  QCOMPARE(test->label(0), 9);
  QCOMPARE(test->label(2), 5);
  QVERIFY(test->read(1, image.data()));
  QCOMPARE(image[2048], cifarPixel(101, 2048));
}

void TestData::cifar10Errors_data() {
  QTest::addColumn<QString>("file");
  QTest::addColumn<QByteArray>("content");  // empty = delete the file
  QTest::addColumn<bool>("train");
  QTest::addColumn<QString>("detail");
  QTest::newRow("size not a multiple")
      << "data_batch_3.bin" << cifarRecords(0, {1, 2}) + QByteArray(5, '\0') << true << "3073";
  QTest::newRow("missing file") << "data_batch_4.bin" << QByteArray() << true << "missing";
  QTest::newRow("label out of range")
      << "test_batch.bin" << cifarRecords(0, {3, 10}) << false << "0..9";
}

void TestData::cifar10Errors() {
  QFETCH(QString, file);
  QFETCH(QByteArray, content);
  QFETCH(bool, train);
  QFETCH(QString, detail);
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  writeCifar(dir.path());
  if (content.isEmpty()) {
    QVERIFY(QFile::remove(dir.filePath(file)));
  } else {
    writePlain(path(dir, file), content);
  }
  mst::DataConfig config;
  config.format = "cifar10";
  config.path = dir.path().toStdString();
  const QString message = errorOf([&] { mst::openDataset(config, train); });
  QVERIFY2(message.contains(dir.filePath(file)), qPrintable(message));
  QVERIFY2(message.contains(detail), qPrintable(message));
}

void TestData::resizeAreaAndBilinear() {
  // 4x4 grey → 2x2: each output is the mean of its 2x2 block (area averaging).
  const std::vector<uint8_t> src{0, 10, 20, 30,  40, 50, 60, 70,  80, 90, 100, 110,  120, 130, 140, 150};
  QCOMPARE(mst::resizeInterleaved(src, 4, 4, 1, 2, 2), (std::vector<uint8_t>{25, 45, 105, 125}));
  // 3 → 2 along x: output 0 covers [0, 1.5): (1 · 0 + 0.5 · 30) / 1.5 = 10.
  QCOMPARE(mst::resizeInterleaved({0, 30, 60}, 1, 3, 1, 1, 2), (std::vector<uint8_t>{10, 50}));
  // 2 → 4 along x: bilinear between the centres, clamped at the edges.
  QCOMPARE(mst::resizeInterleaved({0, 100}, 1, 2, 1, 1, 4), (std::vector<uint8_t>{0, 25, 75, 100}));
  // Interleaved channels stay apart; the same size copies.
  const std::vector<uint8_t> rgb{1, 2, 3, 4, 5, 6};
  QCOMPARE(mst::resizeInterleaved(rgb, 1, 2, 3, 1, 2), rgb);
  // A window of the result, computed alone, is that block of the whole result (shrinking and
  // enlarging, windows at the edges and inside).
  std::mt19937 rng(5);
  std::vector<uint8_t> image(37 * 53 * 3);
  for (auto& v : image) v = static_cast<uint8_t>(rng() % 256);
  struct Case {
    int out_h, out_w, top, left, rows, cols;
  };
  for (const Case& k : {Case{29, 41, 0, 0, 29, 41}, Case{29, 41, 3, 5, 20, 30},
                        Case{29, 41, 28, 40, 1, 1}, Case{70, 90, 10, 20, 50, 60},
                        Case{37, 53, 2, 0, 30, 53}}) {
    const auto whole = mst::resizeInterleaved(image, 37, 53, 3, k.out_h, k.out_w);
    const auto window = mst::resizeInterleavedWindow(image.data(), 37, 53, 3, k.out_h, k.out_w,
                                                     k.top, k.left, k.rows, k.cols);
    QCOMPARE(window.size(), size_t(k.rows * k.cols * 3));
    for (int y = 0; y < k.rows; ++y)
      for (int i = 0; i < k.cols * 3; ++i)
        QCOMPARE(window[size_t(y * k.cols * 3 + i)],
                 whole[size_t((k.top + y) * k.out_w * 3 + k.left * 3 + i)]);
  }
}

void TestData::jpegDecoderMatchesOpenCv() {
  // The GPU machine's ImageFolder decodes with libjpeg (no OpenCV there): same crop, same pixels
  // up to the two resize filters' rounding.
  if (!mst::jpegDecoderAvailable()) QSKIP("built without libjpeg");
#ifndef MST_HAVE_OPENCV
  QSKIP("built without OpenCV, the reference");
#else
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  cv::Mat photo(375, 500, CV_8UC3);
  for (int y = 0; y < photo.rows; ++y)
    for (int x = 0; x < photo.cols; ++x)
      photo.at<cv::Vec3b>(y, x) = cv::Vec3b(uchar(127 + 100 * std::sin(x * 0.03)),
                                            uchar(127 + 100 * std::cos(y * 0.05)), uchar((x + y) % 256));
  const std::string file = dir.filePath("p.jpg").toStdString();
  QVERIFY(cv::imwrite(file, photo, {cv::IMWRITE_JPEG_QUALITY, 95}));
  // The reference: the JPEG's own pixels as a lossless PNG, which ImageFolder reads through
  // OpenCV (its JPEGs now go to libjpeg in this build too).
  const QDir root(dir.path());
  QVERIFY(root.mkpath("train/a") && root.mkpath("train/b") && root.mkpath("train/c"));
  QVERIFY(cv::imwrite(root.filePath("train/a/p.png").toStdString(), cv::imread(file)));
  QVERIFY(QFile::copy(QString::fromStdString(file), root.filePath("train/b/p.jpg")));
  // The same JPEG with an EXIF orientation tag (6: rotate 90° clockwise) after its SOI marker.
  {
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const unsigned char tiff[] = {'I', 'I', 42, 0, 8, 0, 0, 0,            // header, IFD at 8
                                  1, 0,                                     // one entry
                                  0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, // orientation = 6
                                  0, 0, 0, 0};                              // no next IFD
    std::string app1 = std::string("Exif\0\0", 6) + std::string(reinterpret_cast<const char*>(tiff), sizeof tiff);
    const size_t length = app1.size() + 2;
    app1 = std::string{char(0xFF), char(0xE1), char(length >> 8), char(length & 0xFF)} + app1;
    bytes.insert(2, app1);
    writePlain(root.filePath("train/c/p.jpg").toStdString(),
               QByteArray(bytes.data(), qsizetype(bytes.size())));
  }
  // The tag is real: OpenCV's default read turns the image.
  QCOMPARE(cv::imread(root.filePath("train/c/p.jpg").toStdString(), cv::IMREAD_COLOR).rows, 500);
  mst::DataConfig config;
  config.format = "image_folder";
  config.path = dir.path().toStdString();
  for (int side : {64, 256, 375, 400}) {  // DCT scaling + area, area, the decoded size, enlarge
    config.load_size = side;
    const auto set = mst::openDataset(config, true);
    QCOMPARE(set->size(), int64_t{3});
    std::vector<uint8_t> reference(size_t(3 * side * side)), decoded(reference.size()),
        folder_jpeg(reference.size()), rotated(reference.size());
    QVERIFY(set->read(0, reference.data()));  // train/a/p.png
    QVERIFY(mst::decodeJpegCentreCrop(file, side, decoded.data()));
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < decoded.size(); ++i) {
      const int d = std::abs(int(decoded[i]) - int(reference[i]));
      sum += d;
      worst = std::max(worst, d);
    }
    const double mean = sum / double(decoded.size());
    QVERIFY2(mean < 2.0, qPrintable(QString("side %1: mean |diff| %2").arg(side).arg(mean)));
    QVERIFY2(worst < 64, qPrintable(QString("side %1: max |diff| %2").arg(side).arg(worst)));
    // ImageFolder's JPEGs are libjpeg's pixels in this build as on the GPU machine, and an EXIF
    // orientation is ignored (as libjpeg and torchvision's PIL loader do).
    QVERIFY(set->read(1, folder_jpeg.data()));
    QVERIFY(set->read(2, rotated.data()));
    QVERIFY(folder_jpeg == decoded);
    QVERIFY(rotated == decoded);
  }
  const std::string junk = dir.filePath("junk.jpg").toStdString();
  writePlain(junk, "not a jpeg at all");
  std::vector<uint8_t> out(3 * 16 * 16);
  QVERIFY(!mst::decodeJpegCentreCrop(junk, 16, out.data()));
  QVERIFY(!mst::decodeJpegCentreCrop(dir.filePath("missing.jpg").toStdString(), 16, out.data()));
  // A header that claims 65,000 × 65,000 pixels (the frame marker of a real file, patched), in a
  // baseline and a progressive file: past OpenCV's 2^30-pixel limit, so both decoders call it
  // unreadable, whatever the load size, before allocating anything of that size.
  for (const bool progressive : {false, true}) {
    std::vector<uchar> bytes;
    QVERIFY(cv::imencode(".jpg", photo, bytes, {cv::IMWRITE_JPEG_PROGRESSIVE, progressive ? 1 : 0}));
    const uchar frame = progressive ? 0xC2 : 0xC0;  // SOF2 / SOF0
    size_t sof = 2;
    while (sof + 9 < bytes.size() && !(bytes[sof] == 0xFF && bytes[sof + 1] == frame)) ++sof;
    QVERIFY(sof + 9 < bytes.size());
    for (size_t at : {sof + 5, sof + 7}) {  // height, then width: big-endian 16-bit
      bytes[at] = 0xFD;
      bytes[at + 1] = 0xE8;
    }
    const std::string huge = dir.filePath("huge.jpg").toStdString();
    writePlain(huge, QByteArray(reinterpret_cast<const char*>(bytes.data()), qsizetype(bytes.size())));
    QVERIFY(!mst::decodeJpegCentreCrop(huge, 16, out.data()));
    bool opencv_refuses = false;  // (OpenCV 4.6 throws from imread here; ImageFolder catches it)
    try {
      opencv_refuses = cv::imread(huge, cv::IMREAD_COLOR).empty();
    } catch (const cv::Exception&) {
      opencv_refuses = true;
    }
    QVERIFY(opencv_refuses);
  }
#endif
}

void TestData::imageFolder() {
#ifndef MST_HAVE_OPENCV
  QSKIP("built without OpenCV");
#else
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  writeImageFolder(dir.path());
  const mst::DataConfig config = imageFolderConfig(dir.path());
  const auto train = mst::openDataset(config, true);
  QCOMPARE(train->size(), 6);  // the .txt is not listed; the corrupt .jpg is (found at read time)
  QCOMPARE(train->numClasses(), 2);
  QCOMPARE(train->shape().channels, 3);
  QCOMPARE(train->shape().height, 16);
  QCOMPARE(train->shape().width, 16);
  QCOMPARE(train->defaultMean(), (std::vector<double>{0.485, 0.456, 0.406}));
  const std::vector<int64_t> labels{0, 0, 0, 1, 1, 1};
  for (int64_t i = 0; i < 6; ++i) QCOMPARE(train->label(i), labels[size_t(i)]);

  const int64_t plane = 16 * 16;
  std::vector<uint8_t> image(size_t(3 * plane));
  auto planeIs = [&](int64_t channel, int expected, int tolerance) {
    for (int64_t j = 0; j < plane; ++j) {
      if (std::abs(int(image[size_t(channel * plane + j)]) - expected) > tolerance) return false;
    }
    return true;
  };
  // Solid BGR (10, 20, 30), shrunk: RGB planes, CHW.
  QVERIFY(train->read(0, image.data()));
  QVERIFY(planeIs(0, 30, 0) && planeIs(1, 20, 0) && planeIs(2, 10, 0));
  // 64x16 with a red 16-column centre: shorter side already 16, so only the centre crop remains.
  QVERIFY(train->read(1, image.data()));
  QVERIFY(planeIs(0, 255, 0) && planeIs(1, 0, 0) && planeIs(2, 0, 0));
  // 8x8 enlarged to 16x16.
  QVERIFY(train->read(2, image.data()));
  QVERIFY(planeIs(0, 50, 1) && planeIs(1, 100, 1) && planeIs(2, 200, 1));
  QVERIFY(!train->read(5, image.data()));  // corrupt: false, no exception
  QVERIFY(train->read(4, image.data()));

  const auto val = mst::openDataset(config, false);
  QCOMPARE(val->size(), 2);
  QCOMPARE(val->numClasses(), 2);
  QCOMPARE(val->classNames(), (std::vector<std::string>{"cat", "dog"}));  // the folder names
  QCOMPARE(val->label(0), 0);
  QCOMPARE(val->label(1), 1);
  QVERIFY(val->read(1, image.data()));
  QVERIFY(planeIs(0, 9, 0));
#endif
}

void TestData::imageFolderFlat() {
#ifndef MST_HAVE_OPENCV
  QSKIP("built without OpenCV");
#else
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  writeImageFolder(dir.path());
  // No train/ subfolder: the folder itself is the training split.
  const QString flat = dir.filePath("train");
  const auto train = mst::openDataset(imageFolderConfig(flat), true);
  QCOMPARE(train->size(), 6);
  QCOMPARE(train->numClasses(), 2);
  const QString message = errorOf([&] { mst::openDataset(imageFolderConfig(flat), false); });
  QVERIFY2(message.contains(QDir(flat).filePath("val")), qPrintable(message));
#endif
}

void TestData::imageFolderErrors_data() {
  QTest::addColumn<QString>("layout");  // folders to create below the root, comma separated
  QTest::addColumn<QString>("named");   // the folder the message must name, relative to the root
  QTest::newRow("missing") << QString() << QString("absent");
  QTest::newRow("empty") << QString("empty") << QString("empty");
  QTest::newRow("classes without images") << QString("bare/a,bare/b") << QString("bare");
  QTest::newRow("empty train/") << QString("split/train,split/val/a") << QString("split/train");
}

void TestData::imageFolderErrors() {
#ifndef MST_HAVE_OPENCV
  QSKIP("built without OpenCV");
#else
  QFETCH(QString, layout);
  QFETCH(QString, named);
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  for (const QString& folder : layout.split(',', Qt::SkipEmptyParts)) {
    QVERIFY(QDir(dir.path()).mkpath(folder));
  }
  if (layout.contains("bare")) writePlain(path(dir, "bare/a/readme.txt"), "text only");
  const QString root = dir.filePath(named.section('/', 0, 0));
  const QString message = errorOf([&] { mst::openDataset(imageFolderConfig(root), true); });
  QVERIFY2(message.contains(dir.filePath(named)), qPrintable(message));
#endif
}

void TestData::unknownFormat() {
  mst::DataConfig config;
  config.format = "hdf5";
  const QString message = errorOf([&] { mst::openDataset(config, true); });
  QVERIFY2(message.contains("data.format") && message.contains("hdf5") &&
               message.contains("image_folder"),
           qPrintable(message));
}

void TestData::loaderCoversEpoch_data() {
  QTest::addColumn<qint64>("n");
  QTest::addColumn<qint64>("batch");
  QTest::addColumn<bool>("dropLast");
  QTest::addColumn<bool>("shuffle");
  QTest::addColumn<int>("workers");
  QTest::addColumn<int>("prefetch");
  QTest::addColumn<qint64>("batches");
  QTest::newRow("shuffled, drop last")
      << qint64(100) << qint64(8) << true << true << 3 << 2 << qint64(12);
  QTest::newRow("shuffled, keep last")
      << qint64(100) << qint64(8) << false << true << 2 << 4 << qint64(13);
  QTest::newRow("ordered, one worker")
      << qint64(37) << qint64(5) << false << false << 1 << 1 << qint64(8);
  QTest::newRow("batch > n, keep")
      << qint64(5) << qint64(8) << false << true << 2 << 2 << qint64(1);
  QTest::newRow("batch > n, drop") << qint64(5) << qint64(8) << true << true << 2 << 2 << qint64(0);
  QTest::newRow("zero workers = 1")
      << qint64(20) << qint64(4) << true << true << 0 << 0 << qint64(5);
}

void TestData::loaderCoversEpoch() {
  QFETCH(qint64, n);
  QFETCH(qint64, batch);
  QFETCH(bool, dropLast);
  QFETCH(bool, shuffle);
  QFETCH(int, workers);
  QFETCH(int, prefetch);
  QFETCH(qint64, batches);
  FakeDataset dataset(n);
  mst::LoaderOptions options;
  options.batch_size = batch;
  options.drop_last = dropLast;
  options.shuffle = shuffle;
  options.workers = workers;
  options.prefetch = prefetch;
  options.seed = 7;
  mst::Loader loader(dataset, options);
  QCOMPARE(loader.batchesPerEpoch(), batches);

  const auto delivered = epochBatches(loader, 3);
  QCOMPARE(int64_t(delivered.size()), batches);
  QVERIFY(!loader.next().has_value());  // stays at the end
  for (size_t k = 0; k < delivered.size(); ++k) {
    const mst::Batch& b = delivered[k];
    QCOMPARE(b.index, int64_t(k));
    QCOMPARE(b.epoch, 3);
    const int64_t rows = b.indices.numel();
    QCOMPARE(b.images.sizes(), (torch::IntArrayRef{rows, 1, 2, 3}));
    QCOMPARE(b.labels.numel(), rows);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t index = b.indices[r].item<int64_t>();
      QCOMPARE(b.labels[r].item<int64_t>(), index % 10);
      const uint8_t* pixels = b.images.data_ptr<uint8_t>() + r * 6;
      for (int64_t j = 0; j < 6; ++j) QCOMPARE(pixels[j], FakeDataset::byte(index, j));
    }
  }
  const std::vector<int64_t> indices = indicesOf(delivered);
  QCOMPARE(int64_t(indices.size()), dropLast ? (n / batch) * batch : n);
  QCOMPARE(std::set<int64_t>(indices.begin(), indices.end()).size(), indices.size());
  std::vector<int64_t> identity(indices.size());
  std::iota(identity.begin(), identity.end(), 0);
  if (!shuffle) QCOMPARE(indices, identity);
  if (shuffle && indices.size() > 8) QVERIFY(indices != identity);
  QCOMPARE(loader.corruptCount(), 0);
}

void TestData::loaderOrderDeterministic() {
  FakeDataset dataset(200);
  auto order = [&](int64_t seed, int64_t epoch, int workers) {
    mst::LoaderOptions options;
    options.batch_size = 16;
    options.seed = seed;
    options.workers = workers;
    mst::Loader loader(dataset, options);
    return indicesOf(epochBatches(loader, epoch));
  };
  const auto reference = order(1, 5, 2);
  QCOMPARE(order(1, 5, 2), reference);
  QCOMPARE(order(1, 5, 5), reference);  // worker count and timing do not change the order
  QVERIFY(order(1, 6, 2) != reference);
  QVERIFY(order(2, 5, 2) != reference);

  // The same loader revisiting an epoch after others gets the same order: (seed, epoch) alone.
  mst::LoaderOptions options;
  options.batch_size = 16;
  options.seed = 1;
  mst::Loader loader(dataset, options);
  epochBatches(loader, 0);
  epochBatches(loader, 9);
  QCOMPARE(indicesOf(epochBatches(loader, 5)), reference);
}

void TestData::loaderResume_data() {
  QTest::addColumn<qint64>("first");
  QTest::newRow("from 0") << qint64(0);
  QTest::newRow("from 3") << qint64(3);
  QTest::newRow("last batch") << qint64(9);
  QTest::newRow("past the end") << qint64(10);
}

void TestData::loaderResume() {
  QFETCH(qint64, first);
  FakeDataset dataset(83);
  mst::LoaderOptions options;
  options.batch_size = 8;
  options.seed = 42;
  options.workers = 3;
  mst::Loader full(dataset, options);
  QCOMPARE(full.batchesPerEpoch(), 10);
  const auto reference = epochBatches(full, 2);
  mst::Loader resumed(dataset, options);
  const auto rest = epochBatches(resumed, 2, first);
  QCOMPARE(int64_t(rest.size()), 10 - first);
  for (size_t k = 0; k < rest.size(); ++k) {
    const mst::Batch& expected = reference[size_t(first) + k];
    QCOMPARE(rest[k].index, expected.index);
    QVERIFY(torch::equal(rest[k].indices, expected.indices));
    QVERIFY(torch::equal(rest[k].images, expected.images));
    QVERIFY(torch::equal(rest[k].labels, expected.labels));
  }
  QVERIFY(!errorOf([&] { resumed.start(2, 11); }).isEmpty());
  QVERIFY(!resumed.next().has_value());
}

void TestData::loaderRestartMidEpoch() {
  FakeDataset dataset(64);
  mst::LoaderOptions options;
  options.batch_size = 4;
  options.workers = 4;
  options.prefetch = 6;
  mst::Loader loader(dataset, options);
  mst::Loader fresh(dataset, options);
  const auto reference = indicesOf(epochBatches(fresh, 1));
  loader.start(0);
  QVERIFY(loader.next().has_value());
  QVERIFY(loader.next().has_value());
  // Batches of epoch 0 still queued or in flight must not leak into epoch 1.
  QCOMPARE(indicesOf(epochBatches(loader, 1)), reference);
}

void TestData::loaderCorrupt_data() {
  QTest::addColumn<QList<qint64>>("corrupt");
  QTest::addColumn<QList<qint64>>("delivered");
  QTest::addColumn<qint64>("failures");
  QTest::newRow("one") << QList<qint64>{3} << QList<qint64>{0, 1, 2, 4, 4, 5, 6, 7} << qint64(1);
  // Index 3 fails, then its replacement 4 fails; index 4 itself fails once more.
  QTest::newRow("two adjacent") << QList<qint64>{3, 4} << QList<qint64>{0, 1, 2, 5, 5, 5, 6, 7}
                                << qint64(3);
  QTest::newRow("wraps around") << QList<qint64>{7} << QList<qint64>{0, 1, 2, 3, 4, 5, 6, 0}
                                << qint64(1);
}

void TestData::loaderCorrupt() {
  QFETCH(QList<qint64>, corrupt);
  QFETCH(QList<qint64>, delivered);
  QFETCH(qint64, failures);
  FakeDataset dataset(8, std::set<int64_t>(corrupt.begin(), corrupt.end()));
  mst::LoaderOptions options;
  options.batch_size = 4;
  options.shuffle = false;
  mst::Loader loader(dataset, options);
  const auto batches = epochBatches(loader, 0);
  const std::vector<int64_t> indices = indicesOf(batches);
  QCOMPARE(indices, std::vector<int64_t>(delivered.begin(), delivered.end()));
  QCOMPARE(loader.corruptCount(), failures);
  // The replacement's pixels and label travel with it.
  for (size_t i = 0; i < indices.size(); ++i) {
    const mst::Batch& b = batches[i / 4];
    QCOMPARE(b.images.data_ptr<uint8_t>()[(i % 4) * 6], FakeDataset::byte(indices[i], 0));
    QCOMPARE(b.labels[int64_t(i % 4)].item<int64_t>(), indices[i] % 10);
  }
}

void TestData::loaderImageFolderCorrupt() {
#ifndef MST_HAVE_OPENCV
  QSKIP("built without OpenCV");
#else
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  writeImageFolder(dir.path());
  const auto dataset = mst::openDataset(imageFolderConfig(dir.path()), true);
  mst::LoaderOptions options;
  options.batch_size = 2;
  options.drop_last = false;
  mst::Loader loader(*dataset, options);
  const auto batches = epochBatches(loader, 0);
  QCOMPARE(batches.size(), size_t(3));
  QCOMPARE(batches[0].images.sizes(), (torch::IntArrayRef{2, 3, 16, 16}));
  const std::vector<int64_t> indices = indicesOf(batches);
  QCOMPARE(std::count(indices.begin(), indices.end(), 5), 0);  // the corrupt .jpg
  QCOMPARE(std::count(indices.begin(), indices.end(), 0), 2);  // its replacement (5 + 1) mod 6
  QCOMPARE(loader.corruptCount(), 1);
#endif
}

void TestData::readOutsSkipUndecodableImages() {
#ifndef MST_HAVE_OPENCV
  QSKIP("built without OpenCV");
#else
  // As training skips and counts an image it cannot decode, so do the read-outs (k-NN, linear
  // probe): no black image under the label of the file that failed.
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  writeImageFolder(dir.path());
  mst::Config config;
  config.model = mst::modelPreset("vit_micro28");
  config.data = imageFolderConfig(dir.path());
  config.data.load_size = config.crops.global_size;
  auto engine = mst::makeEvalEngine(config, "", torch::kCPU);
  const auto train = mst::openDataset(config.data, true);
  for (int64_t batch : {2, 256}) {  // the corrupt .jpg (index 5) alone in its batch, or not
    const auto set = mst::extractFeatures(*engine, *train, mst::FeatureKind::Pixels, 0, batch);
    QCOMPARE(set.corrupt, int64_t{1});
    QCOMPARE(set.features.size(0), int64_t{5});
    const auto labels = set.labels;
    QCOMPARE(std::vector<int64_t>(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + 5),
             (std::vector<int64_t>{0, 0, 0, 1, 1}));
  }
  mst::EvalOptions options;
  options.ks = {1};
  options.linear.epochs = 1;
  for (const auto& result :
       {mst::evaluateKnn(*engine, config, mst::FeatureKind::Pixels, options),
        mst::evaluateLinear(*engine, config, mst::FeatureKind::Pixels, options)}) {
    QCOMPARE(result["train"].get<int64_t>(), int64_t{5});
    QCOMPARE(result["test"].get<int64_t>(), int64_t{2});
    QCOMPARE(result["corrupt_images"].get<int64_t>(), int64_t{1});
  }
  // Without undecodable images the result line has no such key.
  QFile::remove(QDir(dir.path()).filePath("train/dog/zz_corrupt.jpg"));
  const auto clean = mst::evaluateKnn(*engine, config, mst::FeatureKind::Pixels, options);
  QCOMPARE(clean["train"].get<int64_t>(), int64_t{5});
  QVERIFY(!clean.contains("corrupt_images"));
#endif
}

void TestData::loaderWorkerException() {
  FakeDataset dataset(20, {}, /*throw_at=*/9);
  mst::LoaderOptions options;
  options.batch_size = 4;
  options.shuffle = false;
  options.workers = 3;
  mst::Loader loader(dataset, options);
  loader.start(0);
  // Batches before the failing one arrive, then the worker's exception surfaces here, every time.
  QCOMPARE(loader.next()->index, 0);
  QCOMPARE(loader.next()->index, 1);
  for (int attempt = 0; attempt < 2; ++attempt) {
    const QString message = errorOf([&] { loader.next(); });
    QVERIFY2(message.contains("index 9 broke"), qPrintable(message));
  }
  // A start at the failed batch decodes it again (a passing failure could succeed) rather than
  // replaying the stored error.
  const int64_t reads = dataset.reads.load();
  loader.start(0, 2);
  const QString again = errorOf([&] { loader.next(); });
  QVERIFY2(again.contains("index 9 broke"), qPrintable(again));
  QVERIFY(dataset.reads.load() > reads);
  // A new start recovers: batches 3 and 4 do not touch index 9.
  const auto rest = epochBatches(loader, 0, 3);
  QCOMPARE(rest.size(), size_t(2));
}

void TestData::loaderPrefetchBound() {
  FakeDataset dataset(1000);
  mst::LoaderOptions options;
  options.batch_size = 10;
  options.workers = 4;
  options.prefetch = 3;
  mst::Loader loader(dataset, options);
  loader.start(0);
  QTRY_COMPARE(dataset.reads.load(), 30);
  QTest::qWait(100);
  QCOMPARE(dataset.reads.load(), 30);  // workers wait instead of running ahead
  QVERIFY(loader.next().has_value());
  QTRY_COMPARE(dataset.reads.load(), 40);
}

void TestData::loaderWorkersShareABatch() {
  // With one batch allowed ahead, the four workers still decode together: each batch is split
  // into row ranges, one per worker. (A worker per batch would read one image at a time here.)
  FakeDataset dataset(64, {}, -1, /*sleep_us=*/3000);
  mst::LoaderOptions options;
  options.batch_size = 32;
  options.workers = 4;
  options.prefetch = 1;
  options.shuffle = false;
  mst::Loader loader(dataset, options);
  const auto batches = epochBatches(loader, 0);
  QCOMPARE(batches.size(), size_t(2));
  QVERIFY2(dataset.max_active.load() >= 2, qPrintable(QString::number(dataset.max_active.load())));
  QVERIFY(dataset.max_active.load() <= 4);
  std::vector<int64_t> identity(64);
  std::iota(identity.begin(), identity.end(), 0);
  QCOMPARE(indicesOf(batches), identity);  // every row in its place
}

void TestData::loaderRunsOnIntoTheNextEpoch() {
  // While the consumer finishes epoch 0, the workers decode epoch 1's first batches (up to the
  // prefetch bound); start(1) continues with them, and the batches are those a fresh start of
  // epoch 1 delivers. Any other start begins afresh.
  FakeDataset dataset(40);
  mst::LoaderOptions options;
  options.batch_size = 10;  // 4 batches per epoch
  options.workers = 2;
  options.prefetch = 3;
  options.seed = 5;
  mst::Loader loader(dataset, options);
  const auto first = epochBatches(loader, 0);
  QCOMPARE(first.size(), size_t(4));
  QTRY_COMPARE(dataset.reads.load(), int64_t{70});  // epoch 0, and 3 batches of epoch 1
  QTest::qWait(50);
  QCOMPARE(dataset.reads.load(), int64_t{70});  // still bounded by the prefetch
  const auto second = epochBatches(loader, 1);
  QCOMPARE(second.size(), size_t(4));
  QTRY_COMPARE(dataset.reads.load(), int64_t{110});  // nothing decoded twice; epoch 2's 3 ahead
  mst::Loader fresh(dataset, options);
  const auto expected = epochBatches(fresh, 1);
  QCOMPARE(indicesOf(second), indicesOf(expected));
  QVERIFY(indicesOf(second) != indicesOf(first));
  for (size_t i = 0; i < second.size(); ++i) {
    QCOMPARE(second[i].epoch, int64_t{1});
    QCOMPARE(second[i].index, int64_t(i));
    QVERIFY(torch::equal(second[i].images, expected[i].images));
    QVERIFY(torch::equal(second[i].labels, expected[i].labels));
  }
  // Elsewhere than where the batches lead: back to epoch 0, mid-epoch, and an epoch skipped.
  QCOMPARE(indicesOf(epochBatches(loader, 0)), indicesOf(first));
  const auto tail = epochBatches(loader, 1, 2);
  QCOMPARE(tail.size(), size_t(2));
  QCOMPARE(tail[0].index, int64_t{2});
  QCOMPARE(indicesOf(tail), indicesOf({expected[2], expected[3]}));
  const auto third = epochBatches(loader, 3);
  QCOMPARE(indicesOf(third), indicesOf(epochBatches(fresh, 3)));
}

void TestData::loaderAllocationFailureReachesTheConsumer() {
  // A batch that cannot be allocated (here 4 TiB) is an error of that batch, thrown by next(),
  // not an exception escaping a worker thread (which would end the process).
  class Huge : public FakeDataset {
   public:
    using FakeDataset::FakeDataset;
    mst::ImageShape shape() const override { return {1, int64_t{1} << 20, int64_t{1} << 20}; }
  };
  Huge dataset(16);
  mst::LoaderOptions options;
  options.batch_size = 4;
  options.workers = 3;
  mst::Loader loader(dataset, options);
  loader.start(0);
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool thrown = false;
    try {
      loader.next();
    } catch (const std::exception&) {  // the allocator's own error (c10::Error)
      thrown = true;
    }
    QVERIFY(thrown);
  }
  QCOMPARE(dataset.reads.load(), int64_t{0});
}

void TestData::loaderDestructorMidEpoch() {
  FakeDataset dataset(100000, {}, -1, /*sleep_us=*/500);
  mst::LoaderOptions options;
  options.batch_size = 64;
  options.workers = 4;
  options.prefetch = 4;
  QElapsedTimer timer;
  timer.start();
  { mst::Loader never_started(dataset, options); }
  {
    mst::Loader loader(dataset, options);
    loader.start(0);
  }
  {
    mst::Loader loader(dataset, options);
    loader.start(0);
    QVERIFY(loader.next().has_value());
  }
  // A batch takes 64 * 0.5 ms; the workers notice the stop between images.
  QVERIFY2(timer.elapsed() < 2000, qPrintable(QString::number(timer.elapsed())));
}

QTEST_APPLESS_MAIN(TestData)
#include "test_data.moc"
