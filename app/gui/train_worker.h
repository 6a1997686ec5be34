/// @brief Runs the trainer on a QThread and turns its observer calls into batched, queued signals.
///
/// Threading: TrainWorker lives in the GUI thread; its TrainJob runs Trainer::run on a QThread of
/// its own. Pause and stop are std::atomic flags checked by the trainer between steps. Rows, status
/// and snapshots reach the GUI through queued signals, at most every 100 ms (rows and status) or
/// per snapshot, so a fast engine cannot flood the event loop. The thread is joined, never
/// detached: the destructor stops the run and waits for its checkpoint.
#pragma once

#include <QObject>
#include <QString>
#include <QThread>
#include <QVector>

#include <atomic>
#include <memory>

#include "app/gui/inspect_service.h"
#include "widgets/curve_table.h"
#include "widgets/probe_image.h"

namespace mst {

/// What to run; the config is the experiment JSON (as `mst train --config` reads it).
struct TrainRequest {
  QString config_json;
  QString out_dir;
  QString device = "cpu";
  bool resume = false;    ///< continue from out_dir/checkpoint.pt when it exists
  bool allow_config_change = false;  ///< resume although the config changes the run
  qint64 max_steps = 0;   ///< stop (with a checkpoint) after this many steps; 0 = whole schedule
};

/// What resuming `checkpoint` with the experiment `config_json` would change (config_diff.h).
struct ResumeCheck {
  QString run_config_json;  ///< the config the run was trained with (empty: unreadable)
  QString changes;          ///< the changes to the run's trajectory, "key a → b, ..."; empty: none
};
ResumeCheck checkResume(const QString& checkpoint, const QString& config_json);

/// Where the run stands, for the status bar.
struct TrainStatus {
  qint64 step = 0, total_steps = 0, target_steps = 0;
  double epoch = 0, img_s = 0, eta_s = 0;
  double loss = 0;
  QString device;
};

class TrainJob;

class TrainWorker : public QObject {
  Q_OBJECT
 public:
  explicit TrainWorker(QObject* parent = nullptr);
  ~TrainWorker() override;

  /// Starts a run on the worker thread; false (and `error`) when one is running already.
  bool start(const TrainRequest& request, QString* error = nullptr);
  void pause();
  void resume();
  /// Asks the run to stop after the current step; it writes a checkpoint, then finished() comes.
  void stop();
  bool isRunning() const;
  bool isPaused() const;
  /// Blocks until the thread has ended (tests, shutdown); false on timeout.
  bool wait(int timeout_ms);
  /// Probes the run's current weights before the next step (also while paused); the answer comes
  /// as probed(). A newer request replaces one not served yet. False when no run is going.
  bool requestProbe(const ProbeRequest& request);

 signals:
  void started(const mst::TrainStatus& status);
  void status(const mst::TrainStatus& status);
  /// New rows of /metrics and /eval since the last signal (wall_s filled).
  void rows(const mst::CurveTable& metrics, const mst::CurveTable& eval);
  void snapshot(qint64 step, const QVector<mst::ProbeImage>& images);
  void message(const QString& text);
  void probed(const mst::ProbeResult& result);
  /// ok = no error; completed = the whole schedule is done (not stopped / cut at max_steps).
  void finished(bool ok, const QString& error, const QString& checkpoint, bool completed);

 private:
  QThread* thread_ = nullptr;
  TrainJob* job_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<bool> pause_{false};
  LiveProbe live_probe_;
};

}  // namespace mst

Q_DECLARE_METATYPE(mst::TrainStatus)
