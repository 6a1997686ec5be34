/// @brief A data-parallel run for the window: `mst train` in a child process that starts one rank
/// per device (or `ranks` CPU processes); the window follows its run.h5 like any other log.
#pragma once

#include <QObject>
#include <QString>

#include "app/gui/train_worker.h"

class QProcess;

namespace mst {

/// The `mst` command line built beside this program (every child process the window starts).
QString mstProgram();

class ProcessRun : public QObject {
  Q_OBJECT
 public:
  explicit ProcessRun(QObject* parent = nullptr);
  /// Stops a run still going (with its checkpoint) and waits for it.
  ~ProcessRun() override;

  /// request.device "cuda:0,1,..." (one rank per GPU) or "cpu" with `cpu_ranks` > 1. Writes the
  /// experiment as RUN/experiment.json. False + *error when the process cannot start.
  bool start(const TrainRequest& request, int cpu_ranks, QString* error);
  /// SIGTERM: the ranks vote, all stop after the same step, rank 0 writes the checkpoint.
  void stop();
  bool isRunning() const;
  bool wait(int timeout_ms);
  /// The run folder of the current (or last) run.
  QString runDir() const { return run_dir_; }

 signals:
  void message(const QString& text);
  /// ok = exit code 0; error = the process's last line otherwise.
  void finished(bool ok, const QString& error, const QString& checkpoint);

 private:
  QProcess* process_ = nullptr;
  QString run_dir_;
  QString last_line_;
};

}  // namespace mst
