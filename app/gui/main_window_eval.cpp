/// @brief MainWindow: evaluating a run (child `mst eval` processes) and its per-class results
/// dialogs.
#include <QComboBox>
#include <QDir>
#include <QFileInfo>
#include <QPointer>

#include "app/gui/eval_run.h"
#include "app/gui/main_window.h"
#include "app/gui/per_class_dialog.h"
#include "app/gui/run_reader.h"
#include "core/eval/eval_record.h"
#include "core/util/claim.h"
#include "widgets/device_picker.h"

namespace mst {

bool MainWindow::evaluateRun(const QString& run, QString* error) {
  const QString dir = QDir::cleanPath(QFileInfo(runLogPath(run)).absolutePath());
  QString why;
  if (claimIsLive(QDir(dir).filePath("run.claim").toStdString()))
    why = "run " + dir + " is training; evaluate its checkpoint once the run has stopped";
  else if (eval_->start(dir, devices_->selection(), /*threads=*/0, &why))
    return true;
  if (error) *error = why;
  return false;
}

PerClassDialog* MainWindow::refreshPerClassResults(const QString& run) {
  const QString dir = QDir::cleanPath(QFileInfo(runLogPath(run)).absolutePath());
  QPointer<PerClassDialog> open = per_class_.value(dir);
  if (!open) return nullptr;
  const QRect where = open->geometry();
  const QString readout = open->readoutCombo()->currentText();
  PerClassDialog* fresh = showPerClassResults(dir);
  if (!fresh) return nullptr;
  fresh->setGeometry(where);
  const int i = fresh->readoutCombo()->findText(readout);
  if (i >= 0) fresh->readoutCombo()->setCurrentIndex(i);
  return fresh;
}

PerClassDialog* MainWindow::showPerClassResults(const QString& run, QString* error) {
  const QString dir = QDir::cleanPath(QFileInfo(runLogPath(run)).absolutePath());
  // Read afresh, so that a dialog opened after another evaluation shows the new results.
  const RunReadouts readouts = readRunReadouts(dir.toStdString());
  if (!hasPerClassResults(readouts)) {
    if (error)
      *error = "run " + dir + " has no per-class results: evaluate it (k-NN + linear probe)" +
               (readouts.error.empty() ? QString() : "\n" + QString::fromStdString(readouts.error));
    return nullptr;
  }
  if (QPointer<PerClassDialog> open = per_class_.value(dir)) open->close();
  auto* dialog = new PerClassDialog(dir, readouts, this);
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  per_class_.insert(dir, dialog);
  dialog->show();
  dialog->raise();
  dialog->activateWindow();
  return dialog;
}

}  // namespace mst
