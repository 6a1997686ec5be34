/// @brief InspectorPanel (see inspector_panel.h).
#include "app/gui/inspector_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRandomGenerator>
#include <QScrollArea>
#include <QSlider>
#include <QSpinBox>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

#include "app/gui/run_reader.h"
#include "app/gui/train_worker.h"
#include "core/util/error.h"
#include "core/util/index_list.h"
#include "widgets/inspector_grid.h"

namespace mst {

InspectorPanel::InspectorPanel(QWidget* parent) : QWidget(parent) {
  service_ = new InspectService(this);
  connect(service_, &InspectService::ready, this, &InspectorPanel::onResult);

  auto* layout = new QVBoxLayout(this);
  auto* row1 = new QHBoxLayout;
  images_edit_ = new QLineEdit("0-7");
  images_edit_->setToolTip("Training-set indices, e.g. 0-7 or 3,17,42");
  images_edit_->setMaximumWidth(120);
  auto* random_images = new QPushButton("Random");
  random_images->setToolTip(
      "Eight training images at random, from the whole training set (the "
      "first data.limit images when the run limits it)");
  auto* folder = new QPushButton("Folder…");
  folder->setToolTip("Your own image files (png, jpg, ...)");
  auto* row0 = new QHBoxLayout;
  row0->addWidget(new QLabel("Images"));
  row0->addWidget(images_edit_);
  row0->addWidget(random_images);
  row0->addWidget(folder);
  row0->addStretch();
  layout->addLayout(row0);
  auto* files_row = row0;  // the checkpoint and export buttons end this row (below)
  strategy_ = new QComboBox;
  strategy_->addItem("attention-guided (low)", "attention_guided");
  strategy_->addItem("attention-high", "attention_high");
  strategy_->addItem("random", "random");
  strategy_->addItem("none", "none");
  strategy_->setToolTip(
      "masking.strategy (the run's unless changed): the mask the reconstruction "
      "is made from. The guided column masks the most attended patches for "
      "attention-high, else the least attended ones (MST)");
  p_ = new QDoubleSpinBox;
  p_->setRange(0, 1);
  p_->setSingleStep(0.05);
  p_->setDecimals(3);  // sweeps use steps like 0.125
  p_->setValue(0.1);
  p_->setToolTip("masking.p: probability of masking each candidate patch");
  num_ = new QSpinBox;
  num_->setRange(1, 4096);
  num_->setValue(8);
  num_->setToolTip("masking.num: candidates are the floor(n/num) lowest-attention patches");
  seed_ = new QSpinBox;
  seed_->setRange(0, 1 << 30);
  seed_->setToolTip("Seed of the one uniform draw both masks share");
  auto* reseed = new QPushButton("Redraw");
  reseed->setToolTip("A new seed: both masks drawn again");
  head_ = new QComboBox;
  head_->addItem("mean", -1);
  head_->setToolTip(
      "Attention map: the mean over heads (what the mask uses), one head, or all heads side by "
      "side (the input, the mean and every head's map on one scale; masks and reconstruction "
      "leave the view)");
  block_ = new QComboBox;
  block_->addItem("last", -1);
  block_->setEnabled(false);
  block_->setToolTip(
      "Whose attention the maps show: the last block's (the one the masks come from) or an "
      "earlier block's, to see how the CLS token's attention forms with depth");
  scale_ = new QComboBox;
  scale_->addItem("shared", static_cast<int>(AttentionScale::Shared));
  scale_->addItem("per image", static_cast<int>(AttentionScale::PerImage));
  scale_->setToolTip(
      "Attention colours: one scale for all the images shown (colours compare "
      "between images), or each image from its own min to max (shows the shape "
      "of a nearly flat map). The bar above the column gives the values, in "
      "multiples of the uniform share (1 = every patch equal)");
  overlay_ = new QCheckBox("On input");
  overlay_->setToolTip(
      "Draw the attention heat map over the input image (60 % opacity) instead of alone: "
      "which parts of the object the teacher's CLS token attends to");
  threshold_ = new QCheckBox("Top-60 % map");
  threshold_->setToolTip("DINO-style: the smallest set of patches holding 60 % of the attention");
  for (auto [label, w] : {std::pair<const char*, QWidget*>{"Strategy", strategy_},
                          {"p", p_},
                          {"num", num_},
                          {"Seed", seed_}}) {
    row1->addWidget(new QLabel(label));
    row1->addWidget(w);
  }
  row1->addWidget(reseed);
  row1->addStretch();
  layout->addLayout(row1);
  // Second row: the attention view and the export buttons; third: the snapshot slider. Three
  // short rows keep the panel narrow enough to sit beside the docks.
  auto* row1b = new QHBoxLayout;
  row1b->addWidget(new QLabel("Block"));
  row1b->addWidget(block_);
  row1b->addWidget(new QLabel("Head"));
  row1b->addWidget(head_);
  row1b->addWidget(new QLabel("Scale"));
  row1b->addWidget(scale_);
  row1b->addWidget(overlay_);
  row1b->addWidget(threshold_);
  row1b->addStretch();
  layout->addLayout(row1b);

  auto* row2 = new QHBoxLayout;
  slider_ = new QSlider(Qt::Horizontal);
  slider_->setEnabled(false);
  slider_->setToolTip("Snapshots logged during training (with the run's mask settings)");
  slider_label_ = new QLabel("no snapshots");
  auto* checkpoint = new QPushButton("Checkpoint…");
  checkpoint->setToolTip("Weights from any checkpoint");
  auto* fig = new QPushButton("Export figure…");
  auto* h5 = new QPushButton("Export HDF5…");
  row2->addWidget(new QLabel("Snapshot"));
  row2->addWidget(slider_, 1);
  row2->addWidget(slider_label_);
  layout->addLayout(row2);
  // On the images row, not beside Head and Scale: one row of everything would set the window's
  // minimum width beyond a 1280-px screen.
  files_row->addWidget(checkpoint);
  files_row->addWidget(fig);
  files_row->addWidget(h5);

  status_ = new QLabel;
  status_->setWordWrap(true);
  layout->addWidget(status_);
  grid_ = new InspectorGrid;
  grid_->setEmptyText(
      "No probe images yet. Redraw computes them from the current weights (Checkpoint… picks "
      "others); Random or Folder… picks other images. A run's snapshots show here once logged.");
  auto* scroll = new QScrollArea;
  scroll->setWidget(grid_);
  scroll->setWidgetResizable(false);
  layout->addWidget(scroll, 1);

  auto redrawSoon = [this] {
    if (!updating_) redraw();
  };
  connect(images_edit_, &QLineEdit::editingFinished, this, [this, redrawSoon] {
    folder_.clear();
    redrawSoon();
  });
  connect(random_images, &QPushButton::clicked, this, [this] { pickRandomImages(8); });
  connect(folder, &QPushButton::clicked, this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, "Image folder");
    if (!dir.isEmpty()) setImageFolder(dir);
  });
  connect(strategy_, &QComboBox::currentIndexChanged, this, redrawSoon);
  connect(p_, &QDoubleSpinBox::valueChanged, this, redrawSoon);
  connect(num_, &QSpinBox::valueChanged, this, redrawSoon);
  connect(seed_, &QSpinBox::valueChanged, this, redrawSoon);
  connect(reseed, &QPushButton::clicked, this,
          [this] { seed_->setValue(QRandomGenerator::global()->bounded(1 << 30)); });
  connect(head_, &QComboBox::currentIndexChanged, this, [this] { applyHead(); });
  connect(block_, &QComboBox::currentIndexChanged, this, [this] { applyHead(); });
  connect(scale_, &QComboBox::currentIndexChanged, this, [this] {
    grid_->setAttentionScale(static_cast<AttentionScale>(scale_->currentData().toInt()));
  });
  connect(threshold_, &QCheckBox::toggled, grid_, &InspectorGrid::setShowThreshold);
  connect(overlay_, &QCheckBox::toggled, grid_, &InspectorGrid::setAttentionOverlay);
  connect(slider_, &QSlider::valueChanged, this, [this](int i) {
    if (updating_) return;
    follow_latest_ = i == slider_->maximum();
    showSnapshot(i);
  });
  connect(checkpoint, &QPushButton::clicked, this, [this] {
    const QString file = QFileDialog::getOpenFileName(this, "Checkpoint", run_dir_,
                                                      "Checkpoint (*.pt)");
    if (!file.isEmpty()) setCheckpoint(file);
  });
  connect(fig, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getSaveFileName(
        this, "Export inspector figure", QDir(exportFolder()).filePath("inspector.pdf"),
        "Figure (*.png *.pdf *.svg)");
    QString error;
    if (!path.isEmpty() && !exportFigure(path, &error)) emit failed(error);
  });
  connect(h5, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getSaveFileName(
        this, "Export inspector data", QDir(exportFolder()).filePath("inspect.h5"),
        "HDF5 (*.h5)");
    QString error;
    if (!path.isEmpty() && !exportHdf5(path, &error)) emit failed(error);
  });
}

InspectorPanel::~InspectorPanel() {
  // QWidget's destructor, after this one, closes a top-level panel and so moves the focus out of
  // Images (and the spin boxes): their editingFinished must not redraw from destroyed members.
  for (QObject* child : findChildren<QObject*>()) disconnect(child, nullptr, this, nullptr);
}

void InspectorPanel::setRun(const QString& run_dir, TrainWorker* live_worker) {
  run_dir_ = run_dir;
  checkpoint_.clear();
  setLiveWorker(live_worker);
  loadRunSettings();
  live_snapshots_.clear();
  follow_latest_ = true;
  refreshSnapshots();
}

void InspectorPanel::setLiveWorker(TrainWorker* worker) {
  if (worker_ && worker_ != worker) disconnect(worker_, &TrainWorker::probed, this, nullptr);
  worker_ = worker;
  if (worker)
    connect(worker, &TrainWorker::probed, this, &InspectorPanel::onResult, Qt::UniqueConnection);
  if (!worker) refreshSnapshots();  // the file now holds every snapshot
}

void InspectorPanel::setCheckpoint(const QString& checkpoint) {
  checkpoint_ = checkpoint;
  loadRunSettings();
  redraw();
}

void InspectorPanel::loadRunSettings() {
  run_settings_.reset();
  run_snapshot_.reset();
  checkpoint_settings_.reset();
  if (!run_dir_.isEmpty()) {
    try {
      run_snapshot_ = readSnapshotSettings(run_dir_);
    } catch (const std::exception&) {
      // A live run's log may not be written yet: it trains the experiment's config.
      try {
        if (worker_ && !experiment_json_.isEmpty())
          run_snapshot_ = snapshotSettingsOfJson(experiment_json_);
      } catch (const std::exception&) {
      }
    }
  }
  if (run_snapshot_) run_settings_ = run_snapshot_->masking;
  if (!checkpoint_.isEmpty()) {
    try {
      checkpoint_settings_ = readMaskSettings(checkpoint_);
    } catch (const std::exception&) {
      // The redraw that follows reports an unreadable checkpoint.
    }
  }
  const std::optional<MaskSettings> weights = runMaskSettings();
  if (!weights) return;  // nothing known: the controls keep what they show
  updating_ = true;
  const int i = strategy_->findData(weights->strategy);
  if (i >= 0) strategy_->setCurrentIndex(i);
  p_->setValue(weights->p);
  num_->setValue(weights->num);
  updating_ = false;
}

std::optional<MaskSettings> InspectorPanel::runMaskSettings() const {
  return checkpoint_.isEmpty() ? run_settings_ : checkpoint_settings_;
}

QString InspectorPanel::describe(const QString& strategy, double p, int num) {
  return QString("%1, p = %2, num = %3").arg(strategy).arg(p).arg(num);
}

void InspectorPanel::setExperimentJson(const QString& json) { experiment_json_ = json; }

void InspectorPanel::addLiveSnapshot(qint64 step, const QVector<ProbeImage>& images) {
  live_snapshots_.insert(step, images);
  refreshSnapshots();
}

void InspectorPanel::setImageIndices(const QString& spec) {
  folder_.clear();
  images_edit_->setText(spec);
  redraw();
}

void InspectorPanel::setImageFolder(const QString& folder) {
  folder_ = folder;
  redraw();
}

void InspectorPanel::pickRandomImages(int count) {
  folder_.clear();
  ProbeRequest r = currentRequest();
  r.indices.clear();
  r.random_count = std::clamp(count, 1, 256);  // the images field's limit
  r.random_seed = QRandomGenerator::global()->generate64();
  send(r);
}

void InspectorPanel::setMaskSettings(const QString& strategy, double p, int num) {
  updating_ = true;
  const int i = strategy_->findData(strategy);
  if (i >= 0) strategy_->setCurrentIndex(i);
  p_->setValue(p);
  num_->setValue(num);
  updating_ = false;
  redraw();
}

void InspectorPanel::setSeed(qint64 seed) {
  updating_ = true;
  seed_->setValue(static_cast<int>(seed));
  updating_ = false;
  redraw();
}

void InspectorPanel::setHead(int head) {
  const int i = head_->findData(head);
  if (i >= 0) head_->setCurrentIndex(i);
  applyHead();
}

void InspectorPanel::setBlock(int block) {
  const int i = block_->findData(block);
  if (i >= 0) block_->setCurrentIndex(i);
  applyHead();
}

void InspectorPanel::setShowThreshold(bool on) { threshold_->setChecked(on); }

void InspectorPanel::setAttentionOverlay(bool on) { overlay_->setChecked(on); }

QVector<qint64> InspectorPanel::parseIndices(QString* error) const {
  try {
    // At most 256 images: the grid draws a row per image.
    const auto indices = parseIndexList(images_edit_->text().toStdString(), "Images", 256);
    return QVector<qint64>(indices.begin(), indices.end());
  } catch (const MstError& e) {
    *error = QString::fromStdString(e.what());
    return {};
  }
}

ProbeRequest InspectorPanel::currentRequest() const {
  ProbeRequest r;
  QString error;
  r.indices = parseIndices(&error);
  r.folder = folder_;
  r.seed = seed_->value();
  r.strategy = strategy_->currentData().toString();
  r.p = p_->value();
  r.num = num_->value();
  return r;
}

void InspectorPanel::redraw() {
  QString error;
  ProbeRequest r = currentRequest();
  if (folder_.isEmpty()) parseIndices(&error);
  if (!error.isEmpty()) {
    status_->setText(error);
    emit failed(error);
    return;
  }
  send(r);
}

void InspectorPanel::send(ProbeRequest r) {
  r.id = next_id_++;
  waiting_id_ = r.id;
  sent_ = r;
  sent_checkpoint_.clear();
  // A chosen checkpoint (or an opened file's) wins over the running training's weights.
  sent_live_ = checkpoint_.isEmpty() && worker_ && worker_->requestProbe(r);
  if (sent_live_) {
    status_->setText("computing from the current weights of the running training…");
    return;
  }
  const QString checkpoint = redrawCheckpoint();
  sent_checkpoint_ = checkpoint;
  QString json = experiment_json_;
  if (checkpoint.isEmpty() && json.isEmpty()) json = "{}";
  status_->setText(checkpoint.isEmpty() ? "computing with fresh weights (no checkpoint)…"
                                        : "computing from " + checkpoint + "…");
  service_->request(checkpoint, json, r);
}

void InspectorPanel::onResult(const ProbeResult& result) {
  if (result.id != waiting_id_) return;  // superseded
  if (!result.error.isEmpty()) {
    status_->setText(result.error);
    emit failed(result.error);
    return;
  }
  ProbeRequest r = sent_;  // what these masks were drawn with
  if (r.random_count > 0) {
    r.indices = result.indices;  // the images picked
    r.random_count = 0;
    QStringList picks;
    for (qint64 i : result.indices) picks << QString::number(i);
    if (!picks.isEmpty()) images_edit_->setText(picks.join(','));  // emits no editingFinished
  }
  QString what = QString("weights at step %1 · %2, seed %3")
                     .arg(result.step)
                     .arg(describe(r.strategy, r.p, r.num))
                     .arg(r.seed);
  const std::optional<MaskSettings> run = runMaskSettings();
  if (run && (run->strategy != r.strategy || std::abs(run->p - r.p) > 1e-9 || run->num != r.num))
    what += QString(" (trained with %1)").arg(describe(run->strategy, run->p, run->num));
  shown_request_ = r;
  shown_source_ = sent_checkpoint_;
  shown_overrides_ = {};
  if (sent_live_)  // the running training's weights, in no file
    shown_overrides_ = {{"checkpoint", QJsonValue::Null}, {"run", run_dir_}, {"step", result.step}};
  showImages(result.images, result.step, what);
}

void InspectorPanel::showImages(const QVector<ProbeImage>& images, qint64 step,
                                const QString& what) {
  raw_ = images;
  const int heads = images.isEmpty() ? 0 : images.front().heads;
  if (head_->count() != heads + 1 + (heads > 1 ? 1 : 0)) {
    const int keep = head_->currentData().toInt();
    head_->blockSignals(true);
    head_->clear();
    head_->addItem("mean", -1);
    for (int h = 0; h < heads; ++h) head_->addItem(QString("head %1").arg(h + 1), h);
    if (heads > 1) head_->addItem("all heads", kAllHeads);
    head_->setCurrentIndex(std::max(0, head_->findData(keep)));
    head_->blockSignals(false);
  }
  // Blocks: "last (L)" first, then the earlier ones, when the images carry every block's maps.
  const int blocks = images.isEmpty() ? 0 : images.front().blocks;
  const QString last = blocks > 0 ? QString("last (%1)").arg(blocks) : QString("last");
  if (block_->count() != std::max(blocks, 1) || block_->itemText(0) != last) {
    const int keep = block_->currentData().toInt();
    block_->blockSignals(true);
    block_->clear();
    block_->addItem(last, -1);
    for (int b = 0; b + 1 < blocks; ++b) block_->addItem(QString::number(b + 1), b);
    block_->setCurrentIndex(std::max(0, block_->findData(keep)));
    block_->blockSignals(false);
  }
  block_->setEnabled(blocks > 1);
  status_->setText(what);
  applyHead();
  emit updated(step);
}

void InspectorPanel::applyHead() {
  const int head = head_->currentData().toInt();
  const int block = block_->currentData().toInt();
  shown_ = raw_;
  // An earlier block: its heads and their mean take the place of the last block's.
  bool from_block = false;
  if (block >= 0) {
    for (ProbeImage& p : shown_) {
      const int n = p.grid_h * p.grid_w, span = p.heads * n;
      if (block >= p.blocks || p.heads <= 0 || p.attention_blocks.size() < (block + 1) * span)
        continue;
      p.attention_heads = p.attention_blocks.mid(block * span, span);
      p.attention.resize(n);
      for (int i = 0; i < n; ++i) {
        double sum = 0.0;
        for (int h = 0; h < p.heads; ++h) sum += p.attention_heads[h * n + i];
        p.attention[i] = static_cast<float>(sum / p.heads);
      }
      from_block = true;
    }
  }
  grid_->setAttentionSource(from_block ? QString("block %1").arg(block + 1) : QString());
  // The heads view draws the mean and every head itself, from the images as computed.
  grid_->setHeadsView(head == kAllHeads);
  threshold_->setEnabled(head != kAllHeads);
  if (head >= 0) {
    for (ProbeImage& p : shown_)
      if (QVector<float> map = headAttention(p, head); !map.isEmpty()) p.attention = std::move(map);
  }
  grid_->setImages(shown_);
  grid_->adjustSize();
}

const QVector<ProbeImage>& InspectorPanel::shownImages() const { return shown_; }
QString InspectorPanel::statusText() const { return status_->text(); }

void InspectorPanel::refreshSnapshots() {
  QVector<qint64> steps = live_snapshots_.keys().toVector();
  if (!run_dir_.isEmpty() && live_snapshots_.isEmpty()) steps = readSnapshotSteps(run_dir_);
  snapshot_steps_ = steps;
  updating_ = true;
  slider_->setEnabled(steps.size() > 0);
  slider_->setRange(0, std::max<int>(0, static_cast<int>(steps.size()) - 1));
  if (follow_latest_) slider_->setValue(slider_->maximum());
  updating_ = false;
  if (steps.isEmpty()) {
    slider_label_->setText("no snapshots");
    return;
  }
  if (follow_latest_) showSnapshot(slider_->maximum());
}

void InspectorPanel::showSnapshot(int index) {
  if (index < 0 || index >= snapshot_steps_.size()) return;
  const qint64 step = snapshot_steps_[index];
  slider_label_->setText(QString("step %1").arg(step));
  QVector<ProbeImage> images = live_snapshots_.value(step);
  if (images.isEmpty() && !run_dir_.isEmpty()) {
    try {
      images = readSnapshot(run_dir_, index);
    } catch (const std::exception& e) {
      status_->setText(QString::fromUtf8(e.what()));
      return;
    }
  }
  // What the trainer drew the snapshot with: the run's probe images, train.seed and masking,
  // not the controls. Weights of a past step are in no file. A value a later resume changed, or
  // one not known at all, is recorded as null rather than guessed.
  ProbeRequest drawn;
  shown_overrides_ = {{"checkpoint", QJsonValue::Null}, {"run", run_dir_}, {"step", step}};
  if (run_snapshot_) {
    drawn.strategy = run_snapshot_->masking.strategy;
    drawn.p = run_snapshot_->masking.p;
    drawn.num = run_snapshot_->masking.num;
    drawn.seed = run_snapshot_->seed;
    drawn.indices = run_snapshot_->indicesFor(static_cast<int>(images.size()));
    const QStringList changed =
        run_dir_.isEmpty() ? QStringList() : readConfigChangesSince(run_dir_, step);
    if (drawn.indices.isEmpty() || changed.contains("train.probe_images"))
      shown_overrides_["images"] = QJsonValue::Null;
    if (changed.contains("train.seed")) shown_overrides_["seed"] = QJsonValue::Null;
    for (const char* key : {"strategy", "p", "num"})
      if (changed.contains(QString("masking.") + key)) shown_overrides_[key] = QJsonValue::Null;
    if (!shown_overrides_.contains("images"))
      for (int i = 0; i < images.size(); ++i)
        images[i].title = QString("#%1").arg(drawn.indices[i]);
  } else {
    for (const char* key : {"images", "seed", "strategy", "p", "num"})
      shown_overrides_[key] = QJsonValue::Null;
  }
  shown_request_ = drawn;
  shown_source_.clear();
  showImages(images, step,
             run_settings_
                 ? QString("snapshot at step %1 · %2 (the run's settings)")
                       .arg(step)
                       .arg(describe(run_settings_->strategy, run_settings_->p, run_settings_->num))
                 : QString("snapshot at step %1 (the run's mask settings)").arg(step));
}

QString InspectorPanel::redrawCheckpoint() const {
  if (!checkpoint_.isEmpty()) return checkpoint_;
  if (!run_dir_.isEmpty()) {
    const QString candidate = QDir(run_dir_).filePath("checkpoint.pt");
    if (QFileInfo::exists(candidate)) return candidate;
  }
  return {};
}

QString InspectorPanel::redrawWeightsText() const {
  if (checkpoint_.isEmpty() && worker_) return "the running training's current weights";
  const QString checkpoint = redrawCheckpoint();
  return checkpoint.isEmpty() ? QString("fresh weights, no checkpoint") : checkpoint;
}

}  // namespace mst
