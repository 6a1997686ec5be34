/// @brief The workbench window: lays out the panels and wires them to the worker and the run logs.
#pragma once

#include <functional>

#include <QStringList>

#include <QHash>
#include <QMainWindow>
#include <QPointer>

#include "app/gui/config_bridge.h"
#include "app/gui/train_worker.h"

class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QProgressBar;
class QTabWidget;
class QTimer;

namespace mst {

class ConfigForm;
class CurvePanel;
class DevicePicker;
class EvalRun;
class InspectorPanel;
class PerClassDialog;
class ProcessRun;
class RunControls;
class SweepPanel;
class RunList;

struct WorkbenchOptions {
  QString config_path;  ///< experiment JSON (empty = built-in defaults)
  QString out_dir;      ///< run folder (empty = a new folder in the workspace)
  QString workspace;    ///< folder whose runs are listed (empty = parent of out_dir, else ./runs)
  QString device;       ///< "cpu", "cuda:0", ... (empty = the first GPU if any, else cpu)
  qint64 max_steps = 0;
  int cpu_ranks = 1;  ///< > 1: data-parallel CPU processes (as `mst train --ranks N`)
  /// Restore the window's size, docks and run-list columns from the last session (QSettings)
  /// and save them on close. The program sets it; tests and screenshots keep the built-in
  /// layout.
  bool remember_layout = false;
};

/// The answer to "this experiment changes the run being resumed".
enum class ResumeChoice { RunSettings, Change, Cancel };

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(const WorkbenchOptions& options, QWidget* parent = nullptr);
  ~MainWindow() override;

  CurvePanel* curves() const { return curves_; }
  ConfigForm* form() const { return form_; }
  RunList* runList() const { return runs_; }
  RunControls* controls() const { return controls_; }
  TrainWorker* worker() const { return worker_; }
  InspectorPanel* inspector() const { return inspector_; }
  SweepPanel* sweeps() const { return sweeps_; }
  QTabWidget* tabs() const { return tabs_; }
  DevicePicker* devicePicker() const { return devices_; }
  ExperimentModel& experiment() { return experiment_; }
  QString outDir() const;
  void setOutDir(const QString& dir);
  /// The id (absolute run folder) plots use for the run in `path`.
  static QString runId(const QString& path);
  /// Shows a run log in the plots and follows it while it grows; an inspect file (`mst inspect
  /// --out`, the inspector's HDF5 export) opens in the Inspector tab instead. False + *error on
  /// a bad file.
  bool openRun(const QString& path, QString* error = nullptr);
  /// A line in the Run dock's log (red for an error), time-stamped.
  void appendLog(const QString& text, bool error = false);
  bool loadExperiment(const QString& path, QString* error = nullptr);
  bool saveExperiment(const QString& path, QString* error = nullptr);
  /// Copies the run log of `run` (a folder or run.h5) to `target`.
  bool saveRunLog(const QString& run, const QString& target, QString* error = nullptr);
  /// Writes the teacher backbone of `run`'s checkpoint (a folder or run.h5 beside it) to `target`
  /// as safetensors with timm's names (what `mst export` writes); the result line in *result.
  bool exportBackbone(const QString& run, const QString& target, QString* error = nullptr,
                      QString* result = nullptr);
  /// Evaluates `run`'s checkpoint (a folder or its run.h5): k-NN, then the linear probe, in child
  /// `mst eval --record` processes on the selected device, so that the results land in the run's
  /// eval.json and its "Top-1" column. False + *error when refused: a training holds the folder,
  /// there is no checkpoint, or an evaluation is going.
  bool evaluateRun(const QString& run, QString* error = nullptr);
  EvalRun* evaluation() const { return eval_; }
  /// Opens the non-modal per-class dialog for `run` (a folder or its run.h5): each class's top-1
  /// and the confusion matrices from its eval.json, read now (one already open for the run is
  /// replaced, so that it shows the latest results). Null + *error when the run has no per-class
  /// results (not evaluated, or evaluated before `mst eval` reported them).
  PerClassDialog* showPerClassResults(const QString& run, QString* error = nullptr);
  /// A per-class dialog open for `run` shows its eval.json afresh, in the same place and on the
  /// same read-out (an evaluation of the run just recorded a result); none open: nothing. Returns
  /// the dialog now showing, or null.
  PerClassDialog* refreshPerClassResults(const QString& run);
  /// Start on a folder whose checkpoint was trained with other settings asks (a modal dialog):
  /// the run's own settings (loaded into the form), go on with the change (recorded in run.h5),
  /// or cancel. Tests answer instead, given the changes ("key a → b, ...").
  void setResumePromptForTesting(std::function<ResumeChoice(const QString&)> prompt) {
    resume_prompt_ = std::move(prompt);
  }

 public slots:
  void startRun();
  void pauseRun();
  void resumeRun();
  void stopRun();
  /// Reads the rows that followed runs gained since the last poll (the 1 s timer calls it).
  void pollRuns();

 signals:
  void runFinished(bool ok, const QString& error);

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  struct Followed {
    int metrics_rows = 0, eval_rows = 0;
    qint64 size = -1;
    qint64 mtime_ms = -1;
  };

  /// The run that File and Run menu actions act on: the live one, else the first shown in the
  /// plots, else the run folder of the form.
  QString actionRun() const;
  void buildMenus();
  void buildDocks();
  void refreshForm();
  /// Replaces the experiment with `json` and shows it (form, panels); the parser's message
  /// (naming `source`) when it refuses, the form then unchanged.
  QString replaceExperiment(const nlohmann::json& json, const std::string& source);
  /// After a failed load: the file's values put into the form one by one (refused ones in red,
  /// unknown keys in unloaded_keys_), so that Start cannot train on the defaults by mistake.
  void showRejectedExperiment(const QString& path);
  void showError(const QString& title, const QString& text);
  void setRunShown(const QString& path, bool shown);
  void onStatus(const TrainStatus& status);
  void onFinished(bool ok, const QString& error, const QString& checkpoint, bool completed);
  void exportPlotDialog(bool csv);
  void experimentChanged();
  void updateStatusFromRows(const CurveTable& metrics);
  bool running() const;

  WorkbenchOptions options_;
  ExperimentModel experiment_;
  QString experiment_path_;
  TrainWorker* worker_ = nullptr;
  CurvePanel* curves_ = nullptr;
  InspectorPanel* inspector_ = nullptr;
  SweepPanel* sweeps_ = nullptr;
  QTabWidget* tabs_ = nullptr;
  ProcessRun* process_ = nullptr;  ///< data-parallel runs: `mst train` in a child process
  EvalRun* eval_ = nullptr;        ///< read-outs of a checkpoint in child `mst eval` processes
  ConfigForm* form_ = nullptr;
  RunList* runs_ = nullptr;
  RunControls* controls_ = nullptr;
  DevicePicker* devices_ = nullptr;
  QLineEdit* out_edit_ = nullptr;
  QPlainTextEdit* log_ = nullptr;
  QLabel* step_label_ = nullptr;
  QLabel* speed_label_ = nullptr;
  QLabel* eta_label_ = nullptr;
  QLabel* device_label_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QTimer* poll_timer_ = nullptr;
  QHash<QString, Followed> followed_;
  QHash<QString, QPointer<PerClassDialog>> per_class_;  ///< open per-class dialogs, by run folder
  QString live_id_;  ///< the run the worker is training (fed by signals, not polled)
  std::function<ResumeChoice(const QString&)> resume_prompt_;
  QStringList unloaded_keys_;  ///< keys of a rejected experiment file the form has no field for
  ResumeChoice askResumeChange(const QString& dir, const QString& changes);
};

}  // namespace mst
