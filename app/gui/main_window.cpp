/// @brief MainWindow: docks, menus and the wiring between widgets, worker and run logs.
#include "app/gui/main_window.h"

#include <QComboBox>
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
#include <QSettings>
#include <QStatusBar>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

#include "app/gui/backbone_export.h"
#include "app/gui/eval_run.h"
#include "app/gui/inspector_panel.h"
#include "app/gui/per_class_dialog.h"
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

namespace {

QString clockText(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "--:--";
  const qint64 s = static_cast<qint64>(seconds + 0.5);
  return s >= 3600 ? QString("%1:%2:%3")
                         .arg(s / 3600)
                         .arg((s / 60) % 60, 2, 10, QChar('0'))
                         .arg(s % 60, 2, 10, QChar('0'))
                   : QString("%1:%2").arg(s / 60, 2, 10, QChar('0')).arg(s % 60, 2, 10, QChar('0'));
}

}  // namespace

MainWindow::MainWindow(const WorkbenchOptions& options, QWidget* parent)
    : QMainWindow(parent), options_(options) {
  setWindowTitle("MST Workbench");
  setDockNestingEnabled(true);
  worker_ = new TrainWorker(this);
  process_ = new ProcessRun(this);
  eval_ = new EvalRun(this);
  curves_ = new CurvePanel;
  inspector_ = new InspectorPanel;
  sweeps_ = new SweepPanel;
  tabs_ = new QTabWidget;
  tabs_->addTab(curves_, "Curves");
  tabs_->addTab(inspector_, "Inspector");
  tabs_->addTab(sweeps_, "Sweep");
  tabs_->setDocumentMode(true);
  setCentralWidget(tabs_);
  buildDocks();
  buildMenus();

  bool rejected = false;  // the form then holds the file's values, the refused ones in red
  if (!options_.config_path.isEmpty()) {
    QString error;
    if (!loadExperiment(options_.config_path, &error)) {
      rejected = true;
      appendLog(error, /*error=*/true);
      showError("Load experiment", error + "\n\nThe file's values are in the form; the ones "
                                           "refused are shown in red, and Start waits until "
                                           "they are fixed.");
    }
  }
  if (!rejected) refreshForm();
  experimentChanged();

  QString workspace = options_.workspace;
  if (workspace.isEmpty())
    workspace = options_.out_dir.isEmpty() ? QDir::current().filePath("runs")
                                           : QFileInfo(options_.out_dir).absolutePath();
  QDir().mkpath(workspace);
  runs_->setWorkspace(workspace);
  sweeps_->setOutDir(QDir(workspace).filePath("sweep"));
  setOutDir(options_.out_dir.isEmpty()
                ? QDir(workspace).filePath(
                      QDateTime::currentDateTime().toString("'run-'yyyyMMdd-HHmmss"))
                : options_.out_dir);

  QVector<DeviceInfo> devices;
  for (const auto& d : listDevices())
    devices.push_back({QString::fromStdString(d.id), QString::fromStdString(d.name),
                       static_cast<qint64>(d.memory_bytes)});
  devices_->setDevices(devices);
  if (!options_.device.isEmpty())
    devices_->setSelection(options_.device);
  else if (devices.size() > 1)
    devices_->setSelection(devices[1].id);

  connect(worker_, &TrainWorker::started, this, [this](const TrainStatus& s) {
    controls_->setState(RunState::Running);
    onStatus(s);
  });
  connect(worker_, &TrainWorker::status, this, &MainWindow::onStatus);
  connect(worker_, &TrainWorker::rows, this,
          [this](const CurveTable& metrics, const CurveTable& eval) {
            if (!live_id_.isEmpty()) curves_->appendRows(live_id_, metrics, eval);
          });
  connect(worker_, &TrainWorker::message, this, [this](const QString& m) { appendLog(m); });
  connect(eval_, &EvalRun::message, this, [this](const QString& m) {
    appendLog(m);
    if (eval_->isRunning()) statusBar()->showMessage(m);  // until it ends: it takes minutes
  });
  connect(eval_, &EvalRun::result, runs_, &RunList::rescan);
  connect(eval_, &EvalRun::result, this,
          [this](const QString& run_dir) { refreshPerClassResults(run_dir); });
  connect(eval_, &EvalRun::finished, this, [this](bool ok, const QString& error) {
    if (!ok && !error.isEmpty()) appendLog(error, /*error=*/true);
    statusBar()->showMessage(ok ? "evaluation done: " + eval_->runDir() : QString(), 10000);
    runs_->rescan();
  });
  connect(worker_, &TrainWorker::snapshot, inspector_, &InspectorPanel::addLiveSnapshot);
  connect(inspector_, &InspectorPanel::failed, this,
          [this](const QString& e) { appendLog("inspector: " + e, /*error=*/true); });
  connect(sweeps_, &SweepPanel::message, this,
          [this](const QString& m, bool error) { appendLog(m, error); });
  connect(sweeps_, &SweepPanel::openRun, this, [this](const QString& dir) {
    QString error;
    if (!openRun(dir, &error)) {
      appendLog(error, /*error=*/true);
      return;
    }
    inspector_->setRun(runId(dir));
    tabs_->setCurrentWidget(curves_);
  });
  connect(sweeps_, &SweepPanel::experimentFound, this, [this](const QString& json) {
    if (running()) return;  // the form is the running run's; the panel keeps the sweep's
    const QString error =
        replaceExperiment(nlohmann::json::parse(json.toStdString()), "the sweep's cells");
    if (!error.isEmpty()) {
      appendLog(error, /*error=*/true);
      return;
    }
    appendLog("the experiment the sweep's cells were trained with is in the form");
  });
  connect(devices_, &DevicePicker::selectionChanged, sweeps_, &SweepPanel::setDevices);
  sweeps_->setDevices(devices_->selection());
  connect(worker_, &TrainWorker::finished, this, &MainWindow::onFinished);
  connect(process_, &ProcessRun::message, this, [this](const QString& m) { appendLog(m); });
  connect(process_, &ProcessRun::finished, this,
          [this](bool ok, const QString& error, const QString& checkpoint) {
            pollRuns();  // the last rows
            onFinished(ok, error, checkpoint, /*completed=*/false);
          });
  connect(controls_, &RunControls::startClicked, this, &MainWindow::startRun);
  connect(controls_, &RunControls::pauseClicked, this, &MainWindow::pauseRun);
  connect(controls_, &RunControls::resumeClicked, this, &MainWindow::resumeRun);
  connect(controls_, &RunControls::stopClicked, this, &MainWindow::stopRun);
  connect(runs_, &RunList::shownChanged, this, &MainWindow::setRunShown);
  connect(runs_, &RunList::activated, this, [this](const QString& dir) {
    runs_->setShown(dir, true);
    if (runId(dir) != live_id_) inspector_->setRun(runId(dir));
  });
  controls_->setState(RunState::Idle);

  poll_timer_ = new QTimer(this);
  poll_timer_->setInterval(1000);
  connect(poll_timer_, &QTimer::timeout, this, &MainWindow::pollRuns);
  poll_timer_->start();
  // The preferred size, within the screen's free area (a 1280 × 800 laptop included).
  QSize size(1500, 920);
  if (const QScreen* screen = QGuiApplication::primaryScreen()) {
    const QSize free = screen->availableGeometry().size();
    size = size.boundedTo(free);
    // Too narrow for three columns (about 1430 px): Run and Runs become tabs beside Experiment
    // (a drag or View puts them back).
    auto* experiment = findChild<QDockWidget*>("experiment");
    auto* run = findChild<QDockWidget*>("run");
    auto* runs = findChild<QDockWidget*>("runs");
    if (minimumSizeHint().width() > free.width() && experiment && run && runs) {
      tabifyDockWidget(experiment, run);
      tabifyDockWidget(experiment, runs);
      experiment->raise();
    }
  }
  resize(size);
  if (options_.remember_layout) {
    const QSettings settings;
    restoreGeometry(settings.value("window/geometry").toByteArray());
    restoreState(settings.value("window/state").toByteArray());
    runs_->restoreColumns(settings.value("runs/columns").toByteArray());
  }
}

MainWindow::~MainWindow() {
  worker_->stop();
  worker_->wait(-1);
}

QString MainWindow::outDir() const { return out_edit_->text(); }
void MainWindow::setOutDir(const QString& dir) { out_edit_->setText(QDir::cleanPath(dir)); }

QString MainWindow::runId(const QString& path) { return runLogId(path); }

void MainWindow::refreshForm() { form_->setValues(experiment_.formValues()); }

QString MainWindow::replaceExperiment(const nlohmann::json& json, const std::string& source) {
  try {
    experiment_.setJson(json, source);
  } catch (const std::exception& e) {
    return QString::fromStdString(e.what());
  }
  unloaded_keys_.clear();
  refreshForm();
  experimentChanged();
  return {};
}

bool MainWindow::openRun(const QString& path, QString* error) {
  if (QFileInfo(path).isFile() && isInspectFile(path)) {
    if (!inspector_->openInspectFile(path, error)) return false;
    tabs_->setCurrentWidget(inspector_);
    return true;
  }
  const QString id = runId(path);
  try {
    readRunCurves(id, 0, 0);  // a bad file gets its message here, before the list changes
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
  runs_->addRun(id);
  runs_->setShown(id, true);
  if (!curves_->runIds().contains(id)) setRunShown(id, true);
  return true;
}

void MainWindow::setRunShown(const QString& path, bool shown) {
  const QString id = runId(path);
  if (!shown) {
    followed_.remove(id);
    if (id != live_id_) curves_->removeRun(id);
    return;
  }
  if (id == live_id_ || followed_.contains(id)) return;
  followed_.insert(id, Followed{});
  pollRuns();
}

void MainWindow::pollRuns() {
  for (auto it = followed_.begin(); it != followed_.end(); ++it) {
    const QString& id = it.key();
    if (id == live_id_) continue;
    Followed& f = it.value();
    const QFileInfo info(runLogPath(id));
    if (!info.exists()) continue;
    const qint64 mtime = info.lastModified().toMSecsSinceEpoch();
    if (mtime == f.mtime_ms && info.size() == f.size) continue;
    try {
      RunCurves run = readRunCurves(id, f.metrics_rows, f.eval_rows);
      if (f.mtime_ms < 0) {
        curves_->setRun(run);
      } else if (run.metrics.rows() > 0 || run.eval.rows() > 0) {
        curves_->appendRows(id, run.metrics, run.eval);
      }
      if (process_->isRunning() && id == runId(process_->runDir()) && run.metrics.rows() > 0)
        updateStatusFromRows(run.metrics);
      f.metrics_rows += run.metrics.rows();
      f.eval_rows += run.eval.rows();
      f.mtime_ms = mtime;
      f.size = info.size();
    } catch (const std::exception& e) {
      // A file in the middle of being created: try again on the next tick, say it once.
      if (f.mtime_ms != -2) appendLog(QString::fromStdString(e.what()), /*error=*/true);
      f.mtime_ms = -2;
    }
  }
}

bool MainWindow::running() const {
  return worker_->isRunning() || process_->isRunning();
}

void MainWindow::experimentChanged() {
  const QString json = QString::fromStdString(experiment_.json().dump());
  inspector_->setExperimentJson(json);
  sweeps_->setExperimentJson(json);
}

void MainWindow::startRun() {
  if (running()) return;
  if (form_->hasErrors()) {
    showError("Start", "The experiment has fields with errors (shown in red); fix them first.");
    return;
  }
  if (!unloaded_keys_.isEmpty()) {
    showError("Start", "The experiment file had keys the workbench does not know (" +
                           unloaded_keys_.join(", ") +
                           "); fix the file and load it again, or press Defaults.");
    return;
  }
  const QString dir = outDir();
  if (dir.isEmpty()) {
    showError("Start", "Choose a run folder first.");
    return;
  }
  const QString id = runId(dir);
  if (eval_->isRunning() && runId(eval_->runDir()) == id) {
    showError("Start", "The run in " + dir + " is being evaluated; training it now would replace "
                       "the checkpoint under the read-outs. Wait for the evaluation, or stop it "
                       "(Run → Stop evaluation).");
    return;
  }
  const bool has_checkpoint = QFileInfo::exists(QDir(dir).filePath("checkpoint.pt"));
  // A run stopped before its first checkpoint (run.h5 only) starts afresh in its folder, as
  // `mst train --resume` does: it has nothing to continue from.
  const bool resume = has_checkpoint || QFileInfo::exists(runLogPath(dir));
  // A resumed run goes on with its own trajectory unless the user chooses the change.
  bool allow_change = false;
  if (has_checkpoint) {
    const auto check = checkResume(QDir(dir).filePath("checkpoint.pt"),
                                   QString::fromStdString(experiment_.json().dump()));
    if (!check.changes.isEmpty()) {
      switch (askResumeChange(dir, check.changes)) {
        case ResumeChoice::RunSettings: {
          const QString error =
              replaceExperiment(nlohmann::json::parse(check.run_config_json.toStdString()),
                                "the checkpoint in " + dir.toStdString());
          if (!error.isEmpty()) {
            showError("Start", error);
            return;
          }
          appendLog("the run's own settings are in the form");
          break;
        }
        case ResumeChoice::Change:
          allow_change = true;
          break;
        case ResumeChoice::Cancel:
          return;
      }
    }
  }
  QDir().mkpath(dir);  // so that the run list shows (and ticks) the run from the start
  // The live run's curves come from the worker; rows already in the file (a resumed run) first.
  followed_.remove(id);
  curves_->removeRun(id);
  RunCurves start;
  if (has_checkpoint && QFileInfo::exists(runLogPath(dir))) {
    try {
      start = readRunCurves(dir);
    } catch (const std::exception& e) {
      appendLog(QString::fromStdString(e.what()), /*error=*/true);
    }
  }
  start.id = id;
  start.label = QFileInfo(id).fileName();
  curves_->setRun(start);

  TrainRequest request;
  request.config_json = QString::fromStdString(experiment_.json().dump());
  request.out_dir = dir;
  request.device = devices_->selection();
  request.resume = resume;
  request.allow_config_change = allow_change;
  request.max_steps = options_.max_steps;
  QString error;
  if (request.device.contains(',') || options_.cpu_ranks > 1) {
    if (!process_->start(request, options_.cpu_ranks, &error)) {
      showError("Start", error);
      return;
    }
    followed_.insert(id, Followed{});
    inspector_->setRun(id);
    device_label_->setText(request.device);
  } else {
    live_id_ = id;
    if (!worker_->start(request, &error)) {
      live_id_.clear();
      showError("Start", error);
      return;
    }
    inspector_->setRun(id, worker_);
  }
  form_->setReadOnly(true);
  devices_->setEnabled(false);
  out_edit_->setEnabled(false);
  controls_->setState(RunState::Running);
  appendLog((resume ? "resuming " : "starting ") + dir + " on " + request.device);
  runs_->addRun(id);
  runs_->setShown(id, true);
}

void MainWindow::pauseRun() {
  if (process_->isRunning()) {
    appendLog("a data-parallel run cannot pause (its ranks would time each other out); Stop "
              "writes a checkpoint and Start resumes it",
              /*error=*/true);
    return;
  }
  if (!worker_->isRunning()) return;
  worker_->pause();
  controls_->setState(RunState::Paused);
  step_label_->setText(step_label_->text() + " (paused)");
}

void MainWindow::resumeRun() {
  if (!worker_->isRunning()) return;
  worker_->resume();
  controls_->setState(RunState::Running);
}

void MainWindow::stopRun() {
  if (process_->isRunning()) {
    process_->stop();  // SIGTERM: every rank stops after the same step, with a checkpoint
    controls_->setState(RunState::Stopping);
    appendLog("stopping the data-parallel run (a checkpoint is written)…");
    return;
  }
  if (!worker_->isRunning()) return;
  worker_->stop();
  controls_->setState(RunState::Stopping);
  appendLog("stopping after the current step (a checkpoint is written)…");
}

void MainWindow::onStatus(const TrainStatus& s) {
  step_label_->setText(QString("step %1 / %2 · epoch %3")
                           .arg(s.step)
                           .arg(s.target_steps)
                           .arg(s.epoch, 0, 'f', 2));
  progress_->setRange(0, static_cast<int>(std::max<qint64>(1, s.target_steps)));
  progress_->setValue(static_cast<int>(s.step));
  speed_label_->setText(QString("%1 img/s").arg(s.img_s, 0, 'f', 1));
  eta_label_->setText("ETA " + clockText(s.eta_s));
  device_label_->setText(s.device);
}

void MainWindow::onFinished(bool ok, const QString& error, const QString& checkpoint,
                            bool completed) {
  const QString id = live_id_;
  live_id_.clear();
  form_->setReadOnly(false);
  devices_->setEnabled(true);
  out_edit_->setEnabled(true);
  controls_->setState(RunState::Idle);
  worker_->wait(-1);
  inspector_->setLiveWorker(nullptr);
  runs_->rescan();  // the run's claim is gone: no "live" marker until the next scan
  if (ok) {
    appendLog(completed ? "finished; checkpoint " + checkpoint
                        : "stopped; checkpoint " + checkpoint + " (Start resumes it)");
    step_label_->setText(step_label_->text().remove(" (paused)") +
                         (completed ? " · finished" : " · stopped"));
  } else {
    appendLog(error, /*error=*/true);
    step_label_->setText("error");
    showError("Training stopped", error);
  }
  // From now on the run is an ordinary log: follow it from the file (it may be resumed elsewhere).
  if (!id.isEmpty() && runs_->shownRuns().contains(id)) {
    Followed f;
    try {
      const RunCurves run = readRunCurves(id);
      curves_->setRun(run);
      const QFileInfo info(runLogPath(id));
      f.metrics_rows = run.metrics.rows();
      f.eval_rows = run.eval.rows();
      f.mtime_ms = info.lastModified().toMSecsSinceEpoch();
      f.size = info.size();
    } catch (const std::exception&) {
    }
    followed_.insert(id, f);
  }
  emit runFinished(ok, error);
}

void MainWindow::updateStatusFromRows(const CurveTable& metrics) {
  const int last = metrics.rows() - 1;
  TrainStatus s;
  s.step = static_cast<qint64>(metrics.step[last]);
  s.epoch = metrics.epoch.value(last);
  s.img_s = metrics.columns.value("img_s").value(last);
  s.target_steps = std::max<qint64>(progress_->maximum(), s.step);
  QStringList ranks;
  for (int r = 0; metrics.columns.contains(QString("img_s_rank%1").arg(r)); ++r)
    ranks << QString("rank %1: %2").arg(r).arg(metrics.columns[QString("img_s_rank%1").arg(r)].value(last), 0, 'f', 0);
  s.device = devices_->selection() + (ranks.isEmpty() ? QString() : " · " + ranks.join(" · ") + " img/s");
  onStatus(s);
}

void MainWindow::exportPlotDialog(bool csv) {
  bool picked = false;
  const QString plot = QInputDialog::getItem(this, "Export", "Plot", curves_->plotNames(), 0,
                                             /*editable=*/false, &picked);
  if (!picked) return;
  const QString path = QFileDialog::getSaveFileName(
      this, csv ? "Export plot data" : "Export plot", plot + (csv ? ".csv" : ".pdf"),
      csv ? "CSV (*.csv)" : "Figure (*.png *.pdf *.svg)");
  if (path.isEmpty()) return;
  QString error;
  bool done = false;
  if (csv) {
    done = curves_->exportCsv(plot, path, &error);
  } else {
    const int w = QInputDialog::getInt(this, "Export", "Width (px)", 800, 100, 10000);
    const int h = QInputDialog::getInt(this, "Export", "Height (px)", 500, 100, 10000);
    done = curves_->exportFigure(plot, path, w, h, &error);
  }
  if (!done) showError("Export", error);
}

void MainWindow::appendLog(const QString& text, bool error) {
  const QString time = QDateTime::currentDateTime().toString("HH:mm:ss");
  log_->appendHtml(QString("<span style='color:%1'>%2 %3</span>")
                       .arg(error ? "#c62828" : "palette(text)", time, text.toHtmlEscaped()));
  if (error) statusBar()->showMessage(text, 10000);
}

ResumeChoice MainWindow::askResumeChange(const QString& dir, const QString& changes) {
  if (resume_prompt_) return resume_prompt_(changes);
  QMessageBox box(QMessageBox::Question, "Resume with other settings?",
                  "The run in " + dir + " was trained with other settings. The experiment "
                  "changes: " + changes + ".\n\nResuming with them does not continue the run "
                  "exactly; the change is recorded in run.h5's events.",
                  QMessageBox::NoButton, this);
  auto* own = box.addButton("Use the run's settings", QMessageBox::AcceptRole);
  auto* change = box.addButton("Resume with the changes", QMessageBox::DestructiveRole);
  box.addButton(QMessageBox::Cancel);
  box.setDefaultButton(own);
  box.exec();
  if (box.clickedButton() == own) return ResumeChoice::RunSettings;
  if (box.clickedButton() == change) return ResumeChoice::Change;
  return ResumeChoice::Cancel;
}

void MainWindow::showError(const QString& title, const QString& text) {
  // Non-modal: the window (and a test's event loop) keeps running while it is shown.
  auto* box = new QMessageBox(QMessageBox::Warning, title, text, QMessageBox::Ok, this);
  box->setAttribute(Qt::WA_DeleteOnClose);
  box->setObjectName("errorBox");
  box->open();
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (eval_->isRunning()) appendLog("stopping the evaluation before closing…");
  eval_->abandon();  // silently: its signals would reach a window being destroyed
  if (options_.remember_layout) {
    QSettings settings;
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState());
    settings.setValue("runs/columns", runs_->saveColumns());
  }
  if (process_->isRunning()) {
    appendLog("stopping the data-parallel run before closing (a checkpoint is written)…");
    process_->stop();
    process_->wait(120000);
  }
  if (worker_->isRunning()) {
    appendLog("stopping the run before closing (a checkpoint is written)…");
    worker_->stop();
    worker_->wait(-1);
  }
  event->accept();
}

}  // namespace mst
