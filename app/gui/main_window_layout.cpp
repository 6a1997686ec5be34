/// @brief MainWindow's construction: the docks (experiment, run, runs) and the menus.
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
#include <QScrollArea>
#include <QStatusBar>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

#include "app/gui/eval_run.h"
#include "app/gui/inspector_panel.h"
#include "app/gui/per_class_dialog.h"
#include "app/gui/process_run.h"
#include "app/gui/run_reader.h"
#include "app/gui/sweep_panel.h"
#include "core/eval/eval_record.h"
#include "core/util/claim.h"
#include "core/util/devices.h"
#include "widgets/config_form.h"
#include "widgets/curve_panel.h"
#include "widgets/device_picker.h"
#include "widgets/run_controls.h"
#include "widgets/run_list.h"

namespace mst {

void MainWindow::buildDocks() {
  // Experiment: file buttons, run folder, devices, the config form.
  auto* exp = new QWidget;
  auto* exp_layout = new QVBoxLayout(exp);
  auto* file_row = new QHBoxLayout;
  auto* load = new QPushButton("Load…");
  auto* save = new QPushButton("Save…");
  auto* reset = new QPushButton("Defaults");
  load->setToolTip("Load an experiment JSON file");
  save->setToolTip("Save the experiment (the keys you set) as JSON");
  reset->setToolTip("Back to the built-in defaults");
  file_row->addWidget(load);
  file_row->addWidget(save);
  file_row->addWidget(reset);
  file_row->addStretch();
  exp_layout->addLayout(file_row);
  auto* folder_row = new QHBoxLayout;
  out_edit_ = new QLineEdit;
  out_edit_->setToolTip(
      "Run folder: run.h5 and checkpoint.pt go here; a folder with a checkpoint is resumed");
  auto* browse = new QToolButton;
  browse->setText("…");
  auto* fresh = new QToolButton;
  fresh->setText("New");
  fresh->setToolTip("A new, time-stamped run folder in the workspace");
  folder_row->addWidget(new QLabel("Run folder"));
  folder_row->addWidget(out_edit_, 1);
  folder_row->addWidget(browse);
  folder_row->addWidget(fresh);
  exp_layout->addLayout(folder_row);
  devices_ = new DevicePicker;
  exp_layout->addWidget(devices_);
  form_ = new ConfigForm;
  exp_layout->addWidget(form_, 1);
  exp->setMinimumWidth(360);  // the form's labels and help text need it
  auto* exp_dock = new QDockWidget("Experiment", this);
  exp_dock->setObjectName("experiment");
  exp_dock->setWidget(exp);
  addDockWidget(Qt::LeftDockWidgetArea, exp_dock);

  form_->setFields(ExperimentModel::fieldSpecs());
  form_->setValidator(
      [this](const QString& key, const QString& value) { return experiment_.check(key, value); });
  connect(form_, &ConfigForm::valueChanged, this, [this](const QString& key, const QString& v) {
    const QString why = experiment_.set(key, v);
    if (!why.isEmpty()) appendLog(why, /*error=*/true);
    if (key == "model.preset") refreshForm();  // the preset changes the architecture keys
    experimentChanged();
  });
  connect(load, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, "Load experiment", "experiments",
                                                      "Experiment (*.json)");
    QString error;
    if (!path.isEmpty() && !loadExperiment(path, &error)) showError("Load experiment", error);
  });
  connect(save, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, "Save experiment", experiment_path_,
                                                      "Experiment (*.json)");
    QString error;
    if (!path.isEmpty() && !saveExperiment(path, &error)) showError("Save experiment", error);
  });
  connect(reset, &QPushButton::clicked, this,
          [this] { replaceExperiment(nlohmann::json::object(), "defaults"); });
  connect(browse, &QToolButton::clicked, this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, "Run folder", outDir());
    if (!dir.isEmpty()) setOutDir(dir);
  });
  connect(fresh, &QToolButton::clicked, this, [this] {
    setOutDir(QDir(runs_->workspace())
                  .filePath(QDateTime::currentDateTime().toString("'run-'yyyyMMdd-HHmmss")));
  });

  // Run: controls and the message log.
  auto* run = new QWidget;
  auto* run_layout = new QVBoxLayout(run);
  controls_ = new RunControls;
  run_layout->addWidget(controls_);
  log_ = new QPlainTextEdit;
  log_->setReadOnly(true);
  log_->setMaximumBlockCount(5000);
  run_layout->addWidget(log_, 1);
  auto* run_dock = new QDockWidget("Run", this);
  run_dock->setObjectName("run");
  run_dock->setWidget(run);
  addDockWidget(Qt::RightDockWidgetArea, run_dock);

  runs_ = new RunList;
  runs_->setLiveCheck(
      [](const QString& dir) { return claimIsLive(QDir(dir).filePath("run.claim").toStdString()); },
      "a training run holds this folder (run.claim)");
  runs_->setReadoutProvider([](const QString& dir) {
    RunList::Readout out;
    const RunReadouts r = readRunReadouts(dir.toStdString());
    const QString damaged = QString::fromStdString(r.error);
    if (!r.knn_top1 && !r.linear_top1) {
      if (!damaged.isEmpty()) out = {"eval.json?", damaged, -1.0};
      return out;
    }
    auto value = [](const std::optional<double>& v) {
      return v ? QString::number(*v, 'f', 1) : QString("–");
    };
    out.text = value(r.knn_top1) + " / " + value(r.linear_top1) + (r.partial ? " ~" : "") +
               (r.stale ? " *" : "");
    out.tooltip = QString("k-NN %1 %, linear probe %2 % (teacher CLS, test split), from %3")
                      .arg(value(r.knn_top1), value(r.linear_top1),
                           QString::fromStdString(r.source));
    if (!r.detail.empty()) out.tooltip += "\n" + QString::fromStdString(r.detail);
    if (r.partial)
      out.tooltip += "\n~ a quick look: fewer images or probe epochs than the paper's protocol";
    if (r.stale) out.tooltip += "\n* the checkpoint is newer than these weights: evaluate again";
    if (!damaged.isEmpty()) out.tooltip += "\n" + damaged;
    if (hasPerClassResults(r)) out.tooltip += "\n\n" + perClassToolTip(r);
    out.sort = r.knn_top1.value_or(r.linear_top1.value_or(-1.0));
    return out;
  });
  runs_->addRunAction("Evaluate (k-NN + linear probe)", [this](const QString& dir) {
    QString error;
    if (!evaluateRun(dir, &error)) showError("Evaluate", error);
  });
  runs_->addRunAction(
      "Per-class results…",
      [this](const QString& dir) {
        QString error;
        if (!showPerClassResults(dir, &error)) showError("Per-class results", error);
      },
      [](const QString& dir) { return hasPerClassResults(readRunReadouts(dir.toStdString())); });
  auto* runs_dock = new QDockWidget("Runs", this);
  runs_dock->setObjectName("runs");
  runs_dock->setWidget(runs_);
  addDockWidget(Qt::RightDockWidgetArea, runs_dock);
  resizeDocks({exp_dock, run_dock}, {430, 360}, Qt::Horizontal);

  step_label_ = new QLabel("idle");
  speed_label_ = new QLabel;
  eta_label_ = new QLabel;
  device_label_ = new QLabel;
  progress_ = new QProgressBar;
  progress_->setMaximumWidth(220);
  progress_->setTextVisible(true);
  statusBar()->addWidget(step_label_);
  statusBar()->addWidget(progress_);
  statusBar()->addPermanentWidget(speed_label_);
  statusBar()->addPermanentWidget(eta_label_);
  statusBar()->addPermanentWidget(device_label_);
}

QString MainWindow::actionRun() const {
  if (!live_id_.isEmpty()) return live_id_;
  if (!runs_->selectedRun().isEmpty()) return runs_->selectedRun();
  if (!runs_->shownRuns().isEmpty()) return runs_->shownRuns().front();
  return outDir();
}

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu("&File");
  file->addAction("&Open run log or inspect file…", QKeySequence::Open, this, [this] {
    const QString path = QFileDialog::getOpenFileName(
        this, "Open run log or inspect file", runs_->workspace(),
        "Run log or inspect file (*.h5)");
    QString error;
    if (!path.isEmpty() && !openRun(path, &error)) showError("Open", error);
  });
  file->addAction("Set &workspace…", this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, "Workspace", runs_->workspace());
    if (!dir.isEmpty()) runs_->setWorkspace(dir);
  });
  file->addSeparator();
  file->addAction("Export &plot…", this, [this] { exportPlotDialog(/*csv=*/false); });
  file->addAction("Export plot &data (CSV)…", this, [this] { exportPlotDialog(/*csv=*/true); });
  file->addAction("Save run &log (HDF5) as…", this, [this] {
    const QString run = actionRun();
    const QString target = QFileDialog::getSaveFileName(
        this, "Save run log", QFileInfo(run).fileName() + ".h5", "HDF5 (*.h5)");
    QString error;
    if (!target.isEmpty() && !saveRunLog(run, target, &error)) showError("Save run log", error);
  });
  file->addAction("Export &backbone for timm (safetensors)…", this, [this] {
    const QString run = actionRun();
    const QString target = QFileDialog::getSaveFileName(
        this, "Export the teacher backbone", QFileInfo(run).fileName() + "_teacher.safetensors",
        "safetensors (*.safetensors)");
    if (target.isEmpty()) return;
    QString error, result;
    QApplication::setOverrideCursor(Qt::WaitCursor);
    const bool ok = exportBackbone(run, target, &error, &result);
    QApplication::restoreOverrideCursor();
    if (!ok) showError("Export backbone", error);
    else statusBar()->showMessage("exported " + target + " " + result, 10000);
  });
  file->addSeparator();
  file->addAction("&Quit", QKeySequence::Quit, this, &QWidget::close);

  QMenu* run = menuBar()->addMenu("&Run");
  run->addAction("&Start", this, &MainWindow::startRun);
  run->addAction("&Pause", this, &MainWindow::pauseRun);
  run->addAction("&Resume", this, &MainWindow::resumeRun);
  run->addAction("S&top (with a checkpoint)", this, &MainWindow::stopRun);
  run->addSeparator();
  run->addAction("&Evaluate run (k-NN + linear probe)", this, [this] {
    QString error;
    if (!evaluateRun(actionRun(), &error)) showError("Evaluate", error);
  });
  QAction* stop_eval = run->addAction("Stop e&valuation", this, [this] { eval_->stop(); });
  stop_eval->setEnabled(false);
  QAction* per_class = run->addAction("Per-&class results…", this, [this] {
    QString error;
    if (!showPerClassResults(actionRun(), &error)) showError("Per-class results", error);
  });
  per_class->setEnabled(false);
  connect(run, &QMenu::aboutToShow, this, [this, stop_eval, per_class] {
    stop_eval->setEnabled(eval_->isRunning());
    const QString dir = QFileInfo(runLogPath(actionRun())).absolutePath();
    per_class->setEnabled(hasPerClassResults(readRunReadouts(dir.toStdString())));
  });

  QMenu* view = menuBar()->addMenu("&View");
  for (QDockWidget* dock : findChildren<QDockWidget*>()) view->addAction(dock->toggleViewAction());
}

}  // namespace mst
