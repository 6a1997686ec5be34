/// @brief InspectService / LiveProbe: probe views off the GUI thread (see inspect_service.h).
// LibTorch before any Qt header: Qt's `slots` macro breaks LibTorch's IValue headers.
#include <torch/torch.h>

#include "app/gui/inspect_service.h"

#include <QFileInfo>
#include <QJsonDocument>
#include <QThread>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "app/gui/run_reader.h"
#include "core/config/config.h"
#include "core/data/dataset.h"
#include "core/eval/evaluate.h"
#include "core/inspect/inspect.h"
#include "core/log/log_reader.h"
#include "core/log/run_log.h"
#include "core/train/engine.h"
#include "core/util/error.h"

namespace mst {

namespace {

QVector<float> floatsOf(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return QVector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}
QVector<quint8> bytesOf(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kUInt8).contiguous();
  return QVector<quint8>(c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
}

/// Copies `base` with the request's mask settings; MstError naming the key when out of range.
MaskConfig maskSettings(const Config& base, const ProbeRequest& r) {
  const std::pair<const char*, nlohmann::json> checks[] = {
      {"masking.strategy", r.strategy.toStdString()}, {"masking.p", r.p}, {"masking.num", r.num}};
  for (const auto& [key, value] : checks) {
    const std::string why = checkConfigValue(base, key, value);
    if (!why.empty()) throw MstError(why);
  }
  MaskConfig m = base.masking;
  m.strategy = r.strategy.toStdString();
  m.p = r.p;
  m.num = r.num;
  return m;
}

MaskSettings maskSettingsOf(const Config& config) {
  MaskSettings m;
  m.strategy = QString::fromStdString(config.masking.strategy);
  m.p = config.masking.p;
  m.num = static_cast<int>(config.masking.num);
  return m;
}

/// Training images of the config's data set after data.limit. Opening a data set reads it whole
/// (Fashion-MNIST: 47 MB), so the count is kept per data set for the life of the process.
/// Thread-safe: the inspect thread and the training thread both ask.
qint64 trainingImageCount(const Config& config) {
  static std::mutex mutex;
  static std::map<std::string, qint64> counts;
  const std::string key =
      config.data.format + "\n" + config.data.path + "\n" + std::to_string(config.data.limit);
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = counts.find(key);
    if (it != counts.end()) return it->second;
  }
  const qint64 n = openDataset(config.data, /*train=*/true)->size();
  std::lock_guard<std::mutex> lock(mutex);
  counts[key] = n;
  return n;
}

ProbeResult computeProbe(Engine& engine, const ProbeRequest& r) {
  const Config& config = engine.config();
  ProbeResult result;
  result.id = r.id;
  result.step = engine.step();
  torch::Tensor images;
  QStringList titles;
  if (!r.folder.isEmpty()) {
    images = loadImageFolder(config, r.folder.toStdString());
    for (int64_t i = 0; i < images.size(0); ++i) titles << QString("file %1").arg(i + 1);
  } else {
    result.indices = r.random_count > 0 ? randomImageIndices(trainingImageCount(config),
                                                             r.random_count, r.random_seed)
                                        : r.indices;
    std::vector<int64_t> indices(result.indices.begin(), result.indices.end());
    images = loadProbeImages(config, indices);
    for (qint64 i : result.indices) titles << QString("#%1").arg(i);
  }
  const auto views = engine.probe(images, static_cast<uint64_t>(r.seed), maskSettings(config, r),
                                  /*every_block=*/true);
  result.images = probeImagesOf(views);
  for (int i = 0; i < result.images.size() && i < titles.size(); ++i)
    result.images[i].title = titles[i];
  return result;
}

}  // namespace

namespace {

/// The config of a checkpoint (.pt) or of a run folder / run.h5 (/config json).
Config configOfRun(const QString& run_or_checkpoint) {
  const std::string source = run_or_checkpoint.toStdString();
  if (run_or_checkpoint.endsWith(".pt", Qt::CaseInsensitive))
    return configFromJson(checkpointConfig(source), source);
  const std::string log = runLogPath(run_or_checkpoint).toStdString();
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(readLogAttribute(log, "/config", "json"));
  } catch (const nlohmann::json::exception& e) {
    throw MstError(log + ": /config json: " + e.what());
  }
  return configFromJson(json, log);
}

Config configOfJson(const QString& json) {
  try {
    return configFromJson(nlohmann::json::parse(json.toStdString()), "experiment");
  } catch (const nlohmann::json::exception& e) {
    throw MstError(std::string("experiment: ") + e.what());
  }
}

SnapshotSettings snapshotSettingsOf(const Config& config) {
  SnapshotSettings s;
  s.masking = maskSettingsOf(config);
  s.probe_images =
      QVector<qint64>(config.train.probe_images.begin(), config.train.probe_images.end());
  s.default_probes = config.train.probe_images == TrainConfig{}.probe_images;
  s.seed = config.train.seed;
  return s;
}

}  // namespace

MaskSettings readMaskSettings(const QString& run_or_checkpoint) {
  return maskSettingsOf(configOfRun(run_or_checkpoint));
}

MaskSettings maskSettingsOfJson(const QString& json) { return maskSettingsOf(configOfJson(json)); }

SnapshotSettings readSnapshotSettings(const QString& run) {
  return snapshotSettingsOf(configOfRun(run));
}

SnapshotSettings snapshotSettingsOfJson(const QString& json) {
  return snapshotSettingsOf(configOfJson(json));
}

QVector<qint64> SnapshotSettings::indicesFor(int count) const {
  if (count == probe_images.size()) return probe_images;
  // The trainer keeps the default list's indices below the data set's size: a prefix, as the
  // list ascends. A list the user chose is kept whole or refused.
  if (default_probes && count >= 0 && count < probe_images.size() &&
      std::is_sorted(probe_images.begin(), probe_images.end()))
    return probe_images.mid(0, count);
  return {};
}

QVector<qint64> randomImageIndices(qint64 dataset_size, int count, quint64 seed) {
  QVector<qint64> out;
  if (dataset_size <= 0 || count <= 0) return out;
  if (dataset_size <= count) {
    for (qint64 i = 0; i < dataset_size; ++i) out.append(i);
    return out;
  }
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<qint64> pick(0, dataset_size - 1);
  std::set<qint64> chosen;
  while (static_cast<int>(chosen.size()) < count) chosen.insert(pick(gen));
  return QVector<qint64>(chosen.begin(), chosen.end());
}

QVector<ProbeImage> probeImagesOf(const ProbeViews& views) {
  QVector<ProbeImage> out;
  if (!views.images.defined()) return out;
  const int64_t n = views.images.size(0);
  for (int64_t i = 0; i < n; ++i) {
    ProbeImage p;
    p.title = QString("#%1").arg(i);
    p.channels = static_cast<int>(views.images.size(1));
    p.height = static_cast<int>(views.images.size(2));
    p.width = static_cast<int>(views.images.size(3));
    p.image = floatsOf(views.images[i]);
    p.grid_h = static_cast<int>(views.attention.size(1));
    p.grid_w = static_cast<int>(views.attention.size(2));
    p.attention = floatsOf(views.attention[i]);
    p.mask_random = bytesOf(views.mask_random[i]);
    p.mask_guided = bytesOf(views.mask_guided[i]);
    if (views.reconstruction.defined()) p.reconstruction = floatsOf(views.reconstruction[i]);
    if (views.attention_heads.defined()) {
      p.heads = static_cast<int>(views.attention_heads.size(1));
      p.attention_heads = floatsOf(views.attention_heads[i]);
    }
    if (views.attention_blocks.defined() && views.attention_blocks.numel() > 0 &&
        views.attention_blocks.size(2) == p.heads) {
      p.blocks = static_cast<int>(views.attention_blocks.size(1));
      p.attention_blocks = floatsOf(views.attention_blocks[i]);
    }
    out.push_back(std::move(p));
  }
  return out;
}

struct InspectService::Pending {
  QString checkpoint, experiment_json;
  ProbeRequest request;
};

InspectService::InspectService(QObject* parent) : QObject(parent) {
  qRegisterMetaType<mst::ProbeResult>();
}

InspectService::~InspectService() {
  if (thread_) {
    thread_->wait();
    delete thread_;
  }
}

bool InspectService::busy() const { return running_.load(); }

void InspectService::request(const QString& checkpoint, const QString& experiment_json,
                             const ProbeRequest& r) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = std::make_unique<Pending>(Pending{checkpoint, experiment_json, r});
  }
  if (running_.load()) return;  // the running thread picks the newest request up when done
  if (thread_) {
    thread_->wait();
    delete thread_;
  }
  running_ = true;
  thread_ = QThread::create([this] { serve(); });
  thread_->setObjectName("mst-inspect");
  thread_->start();
}

void InspectService::serve() {
  // The engine of the last checkpoint is kept while requests for it follow (redraws are cheap).
  std::unique_ptr<Engine> engine;
  QString engine_key;
  for (;;) {
    std::unique_ptr<Pending> job;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job = std::move(pending_);
      if (!job) {
        running_ = false;
        return;
      }
    }
    ProbeResult result;
    result.id = job->request.id;
    try {
      const QString key = job->checkpoint + "|" +
                          (job->checkpoint.isEmpty() ? job->experiment_json : QString()) + "|" +
                          QString::number(QFileInfo(job->checkpoint).lastModified().toMSecsSinceEpoch());
      if (!engine || key != engine_key) {
        nlohmann::json json =
            job->checkpoint.isEmpty()
                ? nlohmann::json::parse(job->experiment_json.toStdString())
                : checkpointConfig(job->checkpoint.toStdString());
        Config config = configFromJson(json, job->checkpoint.isEmpty()
                                                 ? std::string("experiment")
                                                 : job->checkpoint.toStdString());
        engine = makeEvalEngine(config, job->checkpoint.toStdString(), torch::kCPU);
        engine_key = key;
      }
      result = computeProbe(*engine, job->request);
    } catch (const std::exception& e) {
      result.error = QString::fromStdString(e.what());
    }
    emit ready(result);
  }
}

void LiveProbe::post(const ProbeRequest& request, const QString& experiment_json) {
  std::lock_guard<std::mutex> lock(mutex_);
  request_ = request;
  experiment_json_ = experiment_json;
  has_ = true;
}

bool LiveProbe::serve(Engine& engine, ProbeResult* result) {
  ProbeRequest request;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!has_) return false;
    request = request_;
    has_ = false;
  }
  try {
    *result = computeProbe(engine, request);
  } catch (const std::exception& e) {
    *result = ProbeResult{};
    result->id = request.id;
    result->error = QString::fromStdString(e.what());
  }
  return true;
}

void writeInspectFileFromImages(const QString& path, const QVector<ProbeImage>& images,
                                const ProbeRequest& settings, const QString& source,
                                const QJsonObject& overrides) {
  if (images.isEmpty()) throw MstError(path.toStdString() + ": nothing to write (no images)");
  const ProbeImage& f = images.front();
  const int64_t n = images.size(), C = f.channels, H = f.height, W = f.width, h = f.grid_h,
                w = f.grid_w;
  ProbeViews v;
  v.images = torch::empty({n, C, H, W});
  v.reconstruction = torch::zeros({n, C, H, W});
  v.attention = torch::empty({n, h, w});
  v.mask_random = torch::empty({n, h, w}, torch::kUInt8);
  v.mask_guided = torch::empty({n, h, w}, torch::kUInt8);
  // Per head only when every image has them (the file's dataset covers all N).
  const int64_t heads = f.heads;
  bool with_heads = heads > 0;
  for (const ProbeImage& p : images)
    with_heads = with_heads && p.heads == heads && p.attention_heads.size() == heads * h * w;
  if (with_heads) v.attention_heads = torch::empty({n, heads, h, w});
  const int64_t blocks = f.blocks;
  bool with_blocks = with_heads && blocks > 0;
  for (const ProbeImage& p : images)
    with_blocks = with_blocks && p.blocks == blocks &&
                  p.attention_blocks.size() == blocks * heads * h * w;
  if (with_blocks) v.attention_blocks = torch::empty({n, blocks, heads, h, w});
  for (int64_t i = 0; i < n; ++i) {
    const ProbeImage& p = images[static_cast<int>(i)];
    if (p.channels != C || p.height != H || p.width != W || p.grid_h != h || p.grid_w != w)
      throw MstError(path.toStdString() + ": the images differ in size");
    std::memcpy(v.images[i].data_ptr<float>(), p.image.constData(), sizeof(float) * C * H * W);
    if (p.reconstruction.size() == C * H * W)
      std::memcpy(v.reconstruction[i].data_ptr<float>(), p.reconstruction.constData(),
                  sizeof(float) * C * H * W);
    std::memcpy(v.attention[i].data_ptr<float>(), p.attention.constData(), sizeof(float) * h * w);
    std::memcpy(v.mask_random[i].data_ptr<uint8_t>(), p.mask_random.constData(), h * w);
    std::memcpy(v.mask_guided[i].data_ptr<uint8_t>(), p.mask_guided.constData(), h * w);
    if (with_heads)
      std::memcpy(v.attention_heads[i].data_ptr<float>(), p.attention_heads.constData(),
                  sizeof(float) * heads * h * w);
    if (with_blocks)
      std::memcpy(v.attention_blocks[i].data_ptr<float>(), p.attention_blocks.constData(),
                  sizeof(float) * blocks * heads * h * w);
  }
  nlohmann::json meta{{"p", settings.p},
                      {"num", settings.num},
                      {"strategy", settings.strategy.toStdString()},
                      {"seed", settings.seed},
                      {"images", std::vector<qint64>(settings.indices.begin(), settings.indices.end())},
                      {"folder", settings.folder.toStdString()},
                      {"checkpoint", source.toStdString()}};
  const auto extra =
      nlohmann::json::parse(QJsonDocument(overrides).toJson(QJsonDocument::Compact).toStdString());
  for (const auto& [key, value] : extra.items()) meta[key] = value;
  writeInspectFile(path.toStdString(), v, meta.dump());
}

}  // namespace mst
