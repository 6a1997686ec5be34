/// @brief TrainWorker / TrainJob: the trainer on a background thread (see train_worker.h).
// LibTorch before any Qt header: Qt's `slots` macro breaks LibTorch's IValue headers.
#include <torch/torch.h>

#include "app/gui/train_worker.h"

#include "app/gui/inspect_service.h"

#include <QElapsedTimer>
#include <QMetaObject>

#include <nlohmann/json.hpp>

#include "core/config/config.h"
#include "core/config/config_diff.h"
#include "core/eval/evaluate.h"
#include "core/train/trainer.h"
#include "core/util/device_spec.h"
#include "core/util/devices.h"
#include "core/util/error.h"

namespace mst {

ResumeCheck checkResume(const QString& checkpoint, const QString& config_json) {
  ResumeCheck check;
  try {
    const auto then = checkpointConfig(checkpoint.toStdString());
    check.run_config_json = QString::fromStdString(then.dump());
    check.changes = QString::fromStdString(describeChanges(
        configChanges(then, nlohmann::json::parse(config_json.toStdString())), true));
  } catch (const std::exception&) {
    // An unreadable checkpoint: the run itself reports it, naming the file.
  }
  return check;
}

/// Lives on the worker thread; adapts TrainObserver to TrainWorker's signals.
class TrainJob : public QObject, public TrainObserver {
  Q_OBJECT
 public:
  TrainJob(TrainWorker* owner, TrainRequest request, std::atomic<bool>* stop,
           std::atomic<bool>* pause, LiveProbe* probe)
      : owner_(owner), request_(std::move(request)), stop_(stop), pause_(pause), probe_(probe) {}

 public slots:
  void run() {
    bool ok = true, completed = false;
    QString error, checkpoint;
    try {
      Config config = configFromJson(nlohmann::json::parse(request_.config_json.toStdString()),
                                     "experiment");
      setComputeThreads(config.train.threads);  // OpenMP's thread count is per thread: set it here
      TrainerOptions options;
      options.out_dir = request_.out_dir.toStdString();
      options.resume = request_.resume;
      options.allow_config_change = request_.allow_config_change;
      options.max_steps = request_.max_steps;
      // Several devices train in a child process (ProcessRun), never here.
      const auto devices = parseDeviceSpec(request_.device.toStdString(), "device");
      if (devices.size() != 1)
        throw MstError("device '" + request_.device.toStdString() +
                       "': several devices train as a data-parallel child process");
      options.device = devices.front();
      device_ = request_.device;
      Trainer trainer(config, options, this);
      const TrainSummary summary = trainer.run(stop_, pause_);
      checkpoint = QString::fromStdString(summary.checkpoint);
      completed = summary.finished;
      if (summary.corrupt_images > 0)
        emit owner_->message(QString("%1 images could not be decoded and were skipped")
                                 .arg(summary.corrupt_images));
    } catch (const std::exception& e) {
      ok = false;
      error = QString::fromStdString(e.what());
    }
    flushRows(/*force=*/true);
    emit owner_->finished(ok, error, checkpoint, completed);
    emit done();
  }

 signals:
  void done();

 public:
  // TrainObserver, called on this (the worker) thread.
  void onStart(const TrainProgress& p) override {
    emit owner_->started(statusOf(p));
  }
  void onProgress(const TrainProgress& p) override {
    last_ = p;
    if (status_timer_.isValid() && status_timer_.elapsed() < 100) return;
    status_timer_.start();
    emit owner_->status(statusOf(p));
    flushRows(/*force=*/false);
  }
  void onMetrics(int64_t step, double epoch, const std::map<std::string, double>& values) override {
    appendRow(&metrics_, step, epoch, values);
  }
  void onEval(int64_t step, double epoch, const std::map<std::string, double>& values) override {
    appendRow(&eval_, step, epoch, values);
    flushRows(/*force=*/true);  // rare and important: show at once
  }
  void onSnapshot(int64_t step, const ProbeViews& views) override {
    emit owner_->snapshot(step, probeImagesOf(views));
  }
  void betweenSteps(Engine& engine) override {
    ProbeResult result;
    if (probe_->serve(engine, &result)) emit owner_->probed(result);
  }
  void onMessage(const std::string& text) override {
    emit owner_->message(QString::fromStdString(text));
  }

 private:
  TrainStatus statusOf(const TrainProgress& p) const {
    TrainStatus s;
    s.step = p.step;
    s.total_steps = p.total_steps;
    s.target_steps = p.target_steps;
    s.epoch = p.epoch;
    s.img_s = p.img_s;
    s.eta_s = p.eta_s;
    s.loss = p.loss;
    s.device = device_;
    return s;
  }

  void appendRow(CurveTable* table, int64_t step, double epoch,
                 const std::map<std::string, double>& values) {
    CurveTable row;
    row.step = {static_cast<double>(step)};
    row.epoch = {epoch};
    auto wall = values.find("wall_s");
    // /eval has no wall_s: take the time of the newest metrics row.
    const double wall_s = wall != values.end() ? wall->second : last_wall_;
    if (wall != values.end()) last_wall_ = wall->second;
    row.wall_s = {wall_s};
    for (const auto& [name, value] : values)
      if (name != "wall_s") row.columns[QString::fromStdString(name)] = {value};
    table->append(row);
  }

  void flushRows(bool force) {
    if (metrics_.rows() == 0 && eval_.rows() == 0) return;
    if (!force && rows_timer_.isValid() && rows_timer_.elapsed() < 100) return;
    rows_timer_.start();
    emit owner_->rows(metrics_, eval_);
    metrics_ = CurveTable();
    eval_ = CurveTable();
  }

  TrainWorker* owner_;
  TrainRequest request_;
  std::atomic<bool>* stop_;
  std::atomic<bool>* pause_;
  LiveProbe* probe_;
  QString device_;
  TrainProgress last_;
  CurveTable metrics_, eval_;
  double last_wall_ = 0;
  QElapsedTimer status_timer_, rows_timer_;
};

TrainWorker::TrainWorker(QObject* parent) : QObject(parent) {
  qRegisterMetaType<mst::TrainStatus>();
  qRegisterMetaType<mst::CurveTable>();
  qRegisterMetaType<QVector<mst::ProbeImage>>();
  qRegisterMetaType<mst::ProbeResult>();
}

TrainWorker::~TrainWorker() {
  stop();
  wait(-1);
}

bool TrainWorker::start(const TrainRequest& request, QString* error) {
  if (isRunning()) {
    if (error) *error = "a run is already going";
    return false;
  }
  if (thread_) {
    thread_->wait();
    delete thread_;
    thread_ = nullptr;
  }
  stop_ = false;
  pause_ = false;
  thread_ = new QThread();
  thread_->setObjectName("mst-train");
  job_ = new TrainJob(this, request, &stop_, &pause_, &live_probe_);
  job_->moveToThread(thread_);
  connect(thread_, &QThread::started, job_, &TrainJob::run);
  // Direct: quit() is thread-safe, and a queued call would wait for the GUI thread, which may be
  // blocked in wait().
  connect(job_, &TrainJob::done, thread_, &QThread::quit, Qt::DirectConnection);
  connect(thread_, &QThread::finished, job_, &QObject::deleteLater);
  thread_->start();
  return true;
}

void TrainWorker::pause() { pause_ = true; }
void TrainWorker::resume() { pause_ = false; }
void TrainWorker::stop() {
  stop_ = true;
  pause_ = false;
}
bool TrainWorker::requestProbe(const ProbeRequest& request) {
  if (!isRunning()) return false;
  live_probe_.post(request, QString());
  return true;
}

bool TrainWorker::isRunning() const { return thread_ && thread_->isRunning(); }
bool TrainWorker::isPaused() const { return pause_.load(); }

bool TrainWorker::wait(int timeout_ms) {
  if (!thread_) return true;
  const bool ended = timeout_ms < 0 ? thread_->wait() : thread_->wait(QDeadlineTimer(timeout_ms));
  if (ended) {
    delete thread_;
    thread_ = nullptr;
    job_ = nullptr;
  }
  return ended;
}

}  // namespace mst

#include "train_worker.moc"
