/// @brief InspectorPanel's files: an inspect file opened as saved, the figure and HDF5 exports
/// (see inspector_panel.h).
#include "app/gui/inspector_panel.h"

#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QSpinBox>

#include "app/gui/run_reader.h"
#include "widgets/inspector_grid.h"

namespace mst {

bool InspectorPanel::openInspectFile(const QString& path, QString* error) {
  QVector<ProbeImage> images;
  QString json;
  try {
    images = readInspectFile(path, &json);
  } catch (const std::exception& e) {
    if (error) *error = QString::fromUtf8(e.what());
    return false;
  }
  // Shown as saved until the user asks for something else: a probe answer still on its way and
  // the run's next snapshot do not replace it.
  waiting_id_ = 0;
  follow_latest_ = false;
  const QJsonObject meta = QJsonDocument::fromJson(json.toUtf8()).object();
  ProbeRequest saved = currentRequest();
  saved.strategy = meta.value("strategy").toString(saved.strategy);
  saved.p = meta.value("p").toDouble(saved.p);
  saved.num = meta.value("num").toInt(saved.num);
  saved.seed = meta.value("seed").toInteger(saved.seed);
  saved.folder = meta.value("folder").toString();
  saved.indices.clear();
  for (const QJsonValue& v : meta.value("images").toArray()) saved.indices.push_back(v.toInteger());

  // The file's weights for the next Redraw (`mst inspect` records the .pt; a run folder means
  // its checkpoint.pt), so that it reproduces the file.
  const QString weights = meta.value("checkpoint").toString();
  QString file_checkpoint = weights;
  if (!weights.isEmpty() && QFileInfo(weights).isDir())
    file_checkpoint = QDir(weights).filePath("checkpoint.pt");
  if (!weights.isEmpty() && QFileInfo(file_checkpoint).isFile()) {
    checkpoint_ = file_checkpoint;
    loadRunSettings();  // the "trained with" note compares with them; the controls follow below
  }
  // The controls show the file's settings; no redraw now (the file is what is shown).
  updating_ = true;
  const int strategy = strategy_->findData(saved.strategy);
  if (meta.value("strategy").isString() && strategy >= 0) strategy_->setCurrentIndex(strategy);
  if (meta.value("p").isDouble()) p_->setValue(saved.p);
  if (meta.value("num").isDouble()) num_->setValue(saved.num);
  if (meta.value("seed").isDouble()) seed_->setValue(static_cast<int>(saved.seed));
  if (!saved.folder.isEmpty()) {
    folder_ = saved.folder;
  } else if (!saved.indices.isEmpty()) {
    folder_.clear();
    QStringList indices;
    for (qint64 i : saved.indices) indices << QString::number(i);
    images_edit_->setText(indices.join(','));
  }
  updating_ = false;

  QString what = QString("%1 as saved").arg(QFileInfo(path).fileName());
  if (meta.contains("strategy"))
    what += QString(" · %1, seed %2").arg(describe(saved.strategy, saved.p, saved.num)).arg(saved.seed);
  if (!weights.isEmpty())
    what += QString(" · weights: %1").arg(weights);
  else if (meta.value("run").isString())
    what += QString(" · weights: %1 at step %2")
                .arg(meta.value("run").toString())
                .arg(meta.value("step").toInteger());
  else
    what += QString(" · weights: fresh from the config's seed");
  what += QString(" (Redraw computes from %1)").arg(redrawWeightsText());
  shown_request_ = saved;
  shown_source_ = weights;
  shown_overrides_ = meta;  // written back as saved, nulls and all
  showImages(images, -1, what);
  return true;
}

QString InspectorPanel::exportFolder() const {
  if (!checkpoint_.isEmpty()) return QFileInfo(checkpoint_).absolutePath();
  if (!run_dir_.isEmpty()) return QFileInfo(runLogPath(run_dir_)).absolutePath();
  return QDir::currentPath();
}

bool InspectorPanel::exportFigure(const QString& path, QString* error) const {
  // The figure's metadata says what it shows: the status line (weights, strategy, p, num,
  // seed) and the attention view.
  const QString description =
      QString("%1 · attention: block %2, %3, %4 scale%5")
          .arg(status_->text(), block_->currentText(), head_->currentText(),
               scale_->currentText(), grid_->attentionOverlay() ? ", over the input" : "");
  return grid_->exportFigure(path, error, description);
}

bool InspectorPanel::exportHdf5(const QString& path, QString* error) const {
  try {
    // raw_, not shown_: the file holds the mean and every head, whatever the Head choice.
    writeInspectFileFromImages(path, raw_, shown_request_.value_or(currentRequest()),
                               shown_request_ ? shown_source_ : redrawCheckpoint(),
                               shown_overrides_);
  } catch (const std::exception& e) {
    if (error) *error = QString::fromUtf8(e.what());
    return false;
  }
  return true;
}

}  // namespace mst
