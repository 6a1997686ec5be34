/// @brief The mask-strategy inspector: probe images with attention, random and attention-guided
/// masks from one draw, reconstructions; redrawn from the current weights or browsed through the
/// run's snapshots.
#pragma once

#include <QMap>
#include <QPointer>
#include <QWidget>
#include <optional>

#include "app/gui/inspect_service.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QSlider;
class QSpinBox;

namespace mst {

class InspectorGrid;
class TrainWorker;

class InspectorPanel : public QWidget {
  Q_OBJECT
 public:
  explicit InspectorPanel(QWidget* parent = nullptr);
  ~InspectorPanel() override;

  /// The run whose snapshots the slider browses and whose checkpoint.pt gives the weights when no
  /// training is live; `live` = that run is being trained by `worker` (probes use its weights).
  /// Strategy, p and num take the run's values (its run.h5 /config; for a live run whose log is
  /// not written yet, the experiment's); the user may change them afterwards.
  void setRun(const QString& run_dir, TrainWorker* live_worker = nullptr);
  /// Weights from this checkpoint instead of a run's (empty = back to the run); strategy, p and
  /// num take the checkpoint's config values (or the run's), then it redraws.
  void setCheckpoint(const QString& checkpoint);
  /// Config for fresh weights when there is neither a run nor a checkpoint.
  void setExperimentJson(const QString& json);
  /// A snapshot that the live run just logged (follows the newest unless the user moved away).
  void addLiveSnapshot(qint64 step, const QVector<ProbeImage>& images);
  /// Training ended: probes use the checkpoint from now on.
  void setLiveWorker(TrainWorker* worker);

  // Controls (the same as the user's widgets; setters redraw).
  void setImageIndices(const QString& spec);  ///< "0-7", "1,5,9"
  void setImageFolder(const QString& folder);
  /// `count` training images at random, below the data set's size after data.limit (what the
  /// Random button does); the images field shows the ones picked once they are drawn.
  void pickRandomImages(int count = 8);
  void setMaskSettings(const QString& strategy, double p, int num);
  void setSeed(qint64 seed);
  void setHead(int head);  ///< -1 = mean over heads, kAllHeads = every head side by side
  /// setHead's value for the heads view (InspectorGrid::setHeadsView).
  static constexpr int kAllHeads = -2;
  /// Whose attention the maps show: block `block` (0 = the first) or -1, the last block (the one
  /// the masks come from). Other blocks need images computed here or an inspect file that has
  /// them (attention_blocks); snapshots have the last block only.
  void setBlock(int block);
  void setShowThreshold(bool on);
  /// The attention column over the input image (the "On input" box).
  void setAttentionOverlay(bool on);
  /// Recomputes from the weights now.
  void redraw();

  InspectorGrid* grid() const { return grid_; }
  ProbeRequest currentRequest() const;
  /// Masking settings of the weights' run or checkpoint, when known (what setRun /
  /// setCheckpoint put in the controls).
  std::optional<MaskSettings> runMaskSettings() const;
  /// What the grid shows (after the head choice).
  const QVector<ProbeImage>& shownImages() const;
  QString statusText() const;

  /// Shows an `mst inspect` file (or this panel's HDF5 export) as it was saved: images, attention
  /// (per head when saved), masks, reconstructions, its settings in the status line. It stays
  /// until Redraw, a control change or the snapshot slider asks for other views. The controls
  /// (strategy, p, num, seed, images or folder) take the file's values without redrawing, and
  /// the file's checkpoint, when it exists, becomes the weights of the next Redraw, which then
  /// reproduces the file. False + *error naming the file when it is not an inspect file or its
  /// shapes do not fit.
  bool openInspectFile(const QString& path, QString* error = nullptr);

  bool exportFigure(const QString& path, QString* error = nullptr) const;
  /// What `mst inspect` writes for the images shown: the mean attention and every head, whatever
  /// the Head choice; their images, seed, mask settings and checkpoint (a snapshot's: the run's
  /// probe images and train.seed, no checkpoint file; null where a value is not known).
  bool exportHdf5(const QString& path, QString* error = nullptr) const;

 signals:
  /// The grid changed (a probe answer or a snapshot); `step` of the weights.
  void updated(qint64 step);
  void failed(const QString& error);

 private:
  void onResult(const ProbeResult& result);
  void send(ProbeRequest request);
  /// Reads the settings of the run and of the checkpoint, then puts the weights' in the controls.
  void loadRunSettings();
  /// "attention_guided, p = 0.1, num = 8"
  static QString describe(const QString& strategy, double p, int num);
  void showImages(const QVector<ProbeImage>& images, qint64 step, const QString& what);
  void applyHead();
  void refreshSnapshots();
  void showSnapshot(int index);
  QVector<qint64> parseIndices(QString* error) const;
  /// Where the export dialogs start: the folder of the weights shown (checkpoint, else run).
  QString exportFolder() const;
  /// The checkpoint file a probe from a checkpoint would use now: the chosen one, else the run's
  /// checkpoint.pt when it exists; empty = fresh weights from the experiment's config.
  QString redrawCheckpoint() const;
  /// Which weights a Redraw would use now, for the status line.
  QString redrawWeightsText() const;

  InspectService* service_ = nullptr;
  QPointer<TrainWorker> worker_;
  QString run_dir_, checkpoint_, experiment_json_, folder_;
  qint64 next_id_ = 1, waiting_id_ = 0;
  ProbeRequest sent_;  ///< the request waiting_id_ names: what its masks were drawn with
  QString sent_checkpoint_;  ///< the checkpoint file it was sent with ("" = fresh weights)
  bool sent_live_ = false;   ///< sent to the running training (weights in no file)
  std::optional<MaskSettings> run_settings_;         ///< the run's (its snapshots use them)
  std::optional<SnapshotSettings> run_snapshot_;     ///< what the run's snapshots are drawn with
  std::optional<MaskSettings> checkpoint_settings_;  ///< the chosen checkpoint's
  /// What the shown images were drawn with and the checkpoint file of their weights; an HDF5
  /// export records these, with shown_overrides_ replacing keys of its json (null where a value
  /// is not known, e.g. the weights of a snapshot; an opened file's json whole).
  std::optional<ProbeRequest> shown_request_;
  QString shown_source_;
  QJsonObject shown_overrides_;
  QVector<ProbeImage> raw_;    ///< as computed (all heads)
  QVector<ProbeImage> shown_;  ///< after the head choice
  QVector<qint64> snapshot_steps_;
  QMap<qint64, QVector<ProbeImage>> live_snapshots_;
  bool follow_latest_ = true;
  bool updating_ = false;

  InspectorGrid* grid_ = nullptr;
  QLineEdit* images_edit_ = nullptr;
  QComboBox* strategy_ = nullptr;
  QDoubleSpinBox* p_ = nullptr;
  QSpinBox* num_ = nullptr;
  QSpinBox* seed_ = nullptr;
  QComboBox* head_ = nullptr;
  QComboBox* block_ = nullptr;
  QComboBox* scale_ = nullptr;
  QCheckBox* threshold_ = nullptr;
  QCheckBox* overlay_ = nullptr;
  QSlider* slider_ = nullptr;
  QLabel* slider_label_ = nullptr;
  QLabel* status_ = nullptr;
};

}  // namespace mst
