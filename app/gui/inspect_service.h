/// @brief Probe views (attention, both masks, reconstruction) computed away from the GUI thread:
/// from a checkpoint on a thread of its own, or from a running trainer's current weights.
#pragma once

#include <QJsonObject>
#include <QObject>
#include <QString>
#include <QVector>

#include <atomic>
#include <memory>
#include <mutex>

#include "widgets/probe_image.h"

namespace mst {

class Engine;
struct ProbeViews;

/// Tensors → the widgets' plain values (per-head attention included when present).
QVector<ProbeImage> probeImagesOf(const ProbeViews& views);

/// What to show: which images, and how to draw the masks.
struct ProbeRequest {
  qint64 id = 0;                 ///< echoed back with the result
  QVector<qint64> indices;       ///< training-set images (ignored when folder is set)
  QString folder;                ///< the user's own image files
  /// > 0: instead of `indices`, this many distinct training images at random (all of them when
  /// the data set, after data.limit, has fewer); the result names the ones picked.
  int random_count = 0;
  quint64 random_seed = 0;       ///< of that pick
  qint64 seed = 0;               ///< of the uniform draw both masks share
  /// masking.strategy: the mask the reconstruction sees (none | random | attention_guided |
  /// attention_high); the guided column is attention_high for attention_high, else
  /// attention_guided.
  QString strategy = "attention_guided";
  double p = 0.1;
  int num = 8;
};

/// The masking settings of a config (masking.strategy / p / num).
struct MaskSettings {
  QString strategy = "attention_guided";
  double p = 0.1;
  int num = 8;
};

/// The settings a run or a checkpoint trained with: a checkpoint (.pt) from its stored config,
/// a run folder or run.h5 from its /config json. MstError naming the file when unreadable.
MaskSettings readMaskSettings(const QString& run_or_checkpoint);
/// The settings of an experiment's JSON text (unset keys take their defaults). MstError when the
/// text is not a valid config.
MaskSettings maskSettingsOfJson(const QString& json);

/// What a run's training snapshots are drawn with (Trainer::run's snapshot): the images
/// train.probe_images, the mask seed train.seed and masking.*.
struct SnapshotSettings {
  MaskSettings masking;
  QVector<qint64> probe_images;  ///< train.probe_images as configured
  bool default_probes = true;    ///< the default list, which the trainer cuts to the data set
  qint64 seed = 0;               ///< train.seed: every snapshot's mask draw
  /// The training images of a snapshot of `count` images: the configured list, or the default
  /// list's first `count` (the trainer drops its indices past a smaller data set); empty when
  /// the count fits neither (the snapshot is not of this config).
  QVector<qint64> indicesFor(int count) const;
};
/// The snapshot settings of a run folder or run.h5 (/config json); MstError naming the file.
SnapshotSettings readSnapshotSettings(const QString& run);
/// The same from an experiment's JSON text (a live run whose log is not written yet).
SnapshotSettings snapshotSettingsOfJson(const QString& json);

/// Distinct training-image indices below `dataset_size`, `count` of them (all when the data set
/// is smaller), ascending, the same for the same seed.
QVector<qint64> randomImageIndices(qint64 dataset_size, int count, quint64 seed);

/// Result of a probe.
struct ProbeResult {
  qint64 id = 0;
  qint64 step = -1;  ///< training step of the weights
  QVector<ProbeImage> images;
  QVector<qint64> indices;  ///< the training images shown (empty for a folder)
  QString error;
};

/// Runs probes from checkpoints on a worker thread; requests are served newest first (one that is
/// superseded before it starts is dropped). Thread-safe to call from the GUI thread.
class InspectService : public QObject {
  Q_OBJECT
 public:
  explicit InspectService(QObject* parent = nullptr);
  ~InspectService() override;
  /// `checkpoint`: an MST checkpoint; `experiment_json`: the config used when the checkpoint
  /// is empty (fresh weights from its seed), and for the data set.
  void request(const QString& checkpoint, const QString& experiment_json, const ProbeRequest& r);
  bool busy() const;

 signals:
  void ready(const mst::ProbeResult& result);

 private:
  struct Pending;
  void serve();
  std::mutex mutex_;
  std::unique_ptr<Pending> pending_;
  std::atomic<bool> running_{false};
  class QThread* thread_ = nullptr;
};

/// Serves probe requests on the training thread between steps (TrainObserver::betweenSteps): the
/// run's current weights, no copy. Thread-safe `post`; `serve` runs on the training thread.
class LiveProbe {
 public:
  void post(const ProbeRequest& request, const QString& experiment_json);
  /// Runs the newest pending request, if any; returns false when there was none.
  bool serve(Engine& engine, ProbeResult* result);

 private:
  std::mutex mutex_;
  bool has_ = false;
  ProbeRequest request_;
  QString experiment_json_;
};

/// Writes probe images in the `mst inspect` layout (DESIGN.md): /inspect/attention from each
/// image's `attention` (pass the mean over heads, as computed), /inspect/attention_heads when every
/// image has its per-head maps; the settings as json (p, num, strategy, seed, images, folder,
/// checkpoint = `source`), then each key of `overrides` replaces or adds one (null = not known).
void writeInspectFileFromImages(const QString& path, const QVector<ProbeImage>& images,
                                const ProbeRequest& settings, const QString& source,
                                const QJsonObject& overrides = {});

}  // namespace mst

Q_DECLARE_METATYPE(mst::ProbeResult)
