/// @brief MainWindow: experiment files (load, a rejected file shown in the form, save), run-log
/// copies and the backbone export.
#include "app/gui/main_window.h"
#include <QApplication>
#include <QCloseEvent>
#include <QDateTime>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QTabWidget>
#include <QPushButton>
#include <QScreen>
#include <QScrollArea>
#include <QStatusBar>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>
#include "app/gui/backbone_export.h"
#include "app/gui/inspector_panel.h"
#include "app/gui/process_run.h"
#include "app/gui/run_reader.h"
#include "app/gui/sweep_panel.h"
#include "core/util/claim.h"
#include "core/util/devices.h"
#include "widgets/config_form.h"
#include "widgets/curve_panel.h"
#include "widgets/device_picker.h"
#include "widgets/run_controls.h"
#include "widgets/run_list.h"

namespace mst {

bool MainWindow::loadExperiment(const QString& path, QString* error) {
  try {
    experiment_.load(path);
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    showRejectedExperiment(path);
    return false;
  }
  unloaded_keys_.clear();
  experiment_path_ = path;
  refreshForm();
  experimentChanged();
  appendLog("experiment " + path);
  return true;
}

void MainWindow::showRejectedExperiment(const QString& path) {
  nlohmann::json file;
  try {
    file = loadJsonFile(path.toStdString());
  } catch (const std::exception&) {
    return;  // not JSON at all: the form keeps what it had
  }
  if (!file.is_object()) return;
  experiment_.setJson(nlohmann::json::object(), "defaults");
  refreshForm();
  // Every value of the file at its field; the ones the parser refuses stay there in red, so Start
  // refuses until they are fixed instead of training on the defaults.
  std::vector<std::pair<QString, QString>> pending;
  unloaded_keys_.clear();
  for (const auto& [section, values] : file.items()) {
    if (section.rfind('_', 0) == 0) continue;  // "_comment" and the like
    if (!values.is_object()) {
      unloaded_keys_ << QString::fromStdString(section);
      continue;
    }
    for (const auto& [name, value] : values.items()) {
      if (name.rfind('_', 0) == 0) continue;
      QString text = QString::fromStdString(value.is_string() ? value.get<std::string>() : value.dump());
      if (value.is_array()) text = text.mid(1, text.size() - 2).replace(",", ", ");
      const QString key = QString::fromStdString(section + "." + name);
      // The preset first: it resets the other model keys.
      if (key == "model.preset") pending.insert(pending.begin(), {key, text});
      else pending.emplace_back(key, text);
    }
  }
  // A cross-field rule may refuse a value until its partner is in: retry while values land.
  for (bool landed = true; landed && !pending.empty();) {
    landed = false;
    std::vector<std::pair<QString, QString>> left;
    for (const auto& [key, text] : pending) {
      if (!form_->fieldEditor(key)) {
        unloaded_keys_ << key;
        continue;
      }
      if (form_->editField(key, text).isEmpty())
        landed = true;
      else
        left.emplace_back(key, text);
    }
    pending.swap(left);
  }
  experimentChanged();
}

bool MainWindow::saveExperiment(const QString& path, QString* error) {
  try {
    experiment_.save(path);
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
  experiment_path_ = path;
  return true;
}

bool MainWindow::saveRunLog(const QString& run, const QString& target, QString* error) {
  const QString source = runLogPath(run);
  if (!QFileInfo::exists(source)) {
    if (error) *error = source + ": no such run log";
    return false;
  }
  const QString tmp = target + ".part";
  QFile::remove(tmp);
  if (!QFile::copy(source, tmp)) {
    if (error) *error = "cannot write " + target;
    return false;
  }
  QFile::remove(target);
  if (!QFile::rename(tmp, target)) {
    if (error) *error = "cannot write " + target;
    return false;
  }
  return true;
}

bool MainWindow::exportBackbone(const QString& run, const QString& target, QString* error,
                                QString* result) {
  const QString checkpoint = QFileInfo(runLogPath(run)).dir().filePath("checkpoint.pt");
  if (!QFileInfo::exists(checkpoint)) {
    if (error) *error = checkpoint + ": no checkpoint (a run writes one when it stops or ends)";
    return false;
  }
  try {
    const QString line = exportTeacherBackbone(checkpoint, target);
    if (result) *result = line;
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
}

}  // namespace mst
