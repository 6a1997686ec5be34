/// @brief SweepService (see sweep_service.h).
// LibTorch before any Qt header: Qt's `slots` macro breaks LibTorch's IValue headers.
#include <torch/torch.h>

#include "app/gui/sweep_service.h"

#include <QThread>

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/eval/sweep.h"
#include "core/eval/sweep_record.h"
#include "core/util/device_spec.h"
#include "core/util/error.h"

namespace mst {

namespace {

std::vector<SweepAxis> parseAxes(const QStringList& specs) {
  std::vector<SweepAxis> axes;
  for (const QString& spec : specs)
    if (!spec.trimmed().isEmpty()) {
      axes.push_back(parseAxis(spec.trimmed().toStdString()));
      axes.back().source = "grid";  // the panel's Grid field, not a flag
    }
  if (axes.empty()) throw MstError("the grid is empty: give one axis per line, key=v1,v2,...");
  return axes;
}

QString valueText(const nlohmann::json& v) {
  return v.is_string() ? QString::fromStdString(v.get<std::string>())
                       : QString::fromStdString(v.dump());
}

SweepCellInfo infoOf(const SweepCell& c) {
  SweepCellInfo info;
  info.index = static_cast<int>(c.index);
  for (const auto& v : c.values) info.values << valueText(v);
  info.dir = QString::fromStdString(c.dir);
  info.status = QString::fromStdString(c.status);
  if (c.knn_top1) info.knn = *c.knn_top1;
  if (c.linear_top1) info.linear = *c.linear_top1;
  if (c.mask_ratio) info.mask_ratio = *c.mask_ratio;
  if (c.loss_ce_end) info.loss_ce_end = *c.loss_ce_end;
  if (c.loss_rec_end) info.loss_rec_end = *c.loss_rec_end;
  info.error = QString::fromStdString(c.error);
  return info;
}

class Observer : public SweepObserver {
 public:
  explicit Observer(SweepService* owner) : owner_(owner) {}
  void onCellStarted(const SweepCell& c) override { emit owner_->cellStarted(infoOf(c)); }
  void onCellFinished(const SweepCell& c) override { emit owner_->cellFinished(infoOf(c)); }

 private:
  SweepService* owner_;
};

}  // namespace

SweepService::SweepService(QObject* parent) : QObject(parent) {
  qRegisterMetaType<mst::SweepCellInfo>();
}

SweepService::~SweepService() {
  stop();
  wait(-1);
}

bool SweepService::plan(const SweepRequest& request, QVector<SweepCellInfo>* cells,
                        QString* error) {
  try {
    const auto axes = parseAxes(request.axes);
    const auto base = nlohmann::json::parse(request.experiment_json.toStdString());
    cells->clear();
    // A result counts as done only when it trained as far as this request asks (runSweep's rule
    // for steps); otherwise the cell is pending, without numbers. A missing read-out is shown as
    // missing, not as pending: a finished k-NN-only sweep stays readable.
    SweepOptions wanted;
    wanted.max_steps = request.max_steps;
    wanted.knn = wanted.linear = false;
    for (auto cell : expandGrid(base, axes, request.out_dir.toStdString())) {
      loadAnsweringResult(cell, wanted);
      cells->push_back(infoOf(cell));
    }
  } catch (const std::exception& e) {
    if (error) *error = QString::fromUtf8(e.what());
    return false;
  }
  return true;
}

void SweepService::readSettings(const QVector<SweepCellInfo>& cells, QString* experiment_json,
                                qint64* max_steps) {
  experiment_json->clear();
  *max_steps = 0;
  for (const auto& cell : cells) {
    // The cell's config from the cheapest source it has: result.json, else (results from before
    // configs were stored there) its run.h5 or checkpoint.
    const auto result = readCellResult(cell.dir.toStdString());
    if (!result || !result->is_object()) continue;
    const auto config = storedCellConfig(cell.dir.toStdString());
    if (!config || !config->is_object()) continue;
    *experiment_json = QString::fromStdString(config->dump());
    const auto steps = result->find("steps"), total = result->find("total_steps");
    if (steps != result->end() && total != result->end() && steps->is_number_integer() &&
        total->is_number_integer() && steps->get<int64_t>() < total->get<int64_t>())
      *max_steps = steps->get<int64_t>();
    return;
  }
}

bool SweepService::readAxes(const QString& dir, QStringList* axes, QString* error,
                            qint64* max_steps) {
  if (max_steps) *max_steps = -1;
  try {
    // The folder's record; a folder from before sweep.json has its grid in sweep.h5 only.
    const std::string folder = dir.toStdString();
    std::vector<SweepAxis> grid;
    if (const auto record = readSweepRecord(folder)) {
      grid = record->axes;
      if (max_steps) *max_steps = record->max_steps;
    } else if (auto shown = readSweepTableGrid(folder)) {
      grid = *shown;
    } else {
      throw MstError(folder + " holds no sweep (neither sweep.json nor a readable sweep.h5)");
    }
    axes->clear();
    for (const auto& axis : grid) *axes << QString::fromStdString(axisSpec(axis));
  } catch (const std::exception& e) {
    if (error) *error = QString::fromUtf8(e.what());
    return false;
  }
  return true;
}

bool SweepService::start(const SweepRequest& request, QString* error) {
  if (isRunning()) {
    if (error) *error = "a sweep is already running";
    return false;
  }
  if (thread_) {
    thread_->wait();
    delete thread_;
    thread_ = nullptr;
  }
  std::vector<SweepAxis> axes;
  nlohmann::json base;
  SweepOptions options;
  try {
    axes = parseAxes(request.axes);
    base = nlohmann::json::parse(request.experiment_json.toStdString());
    if (request.out_dir.isEmpty()) throw MstError("choose a sweep folder");
    options.out_dir = request.out_dir.toStdString();
    options.max_steps = request.max_steps;
    options.knn = request.knn;
    options.linear = request.linear;
    options.devices = parseDeviceSpec(request.devices.toStdString(), "device");
    options.eval.train_limit = request.train_limit;
    options.eval.test_limit = request.test_limit;
    expandGrid(base, axes, options.out_dir);  // every cell's config is checked before starting
    checkSweepRecord(axes, options);  // runSweep checks again; this reports it before the thread
  } catch (const std::exception& e) {
    if (error) *error = QString::fromUtf8(e.what());
    return false;
  }
  stop_ = false;
  thread_ = QThread::create([this, base, axes, options] {
    Observer observer(this);
    try {
      runSweep(base, axes, options, &observer, &stop_);
      emit finished(true, QString());
    } catch (const std::exception& e) {
      emit finished(false, QString::fromUtf8(e.what()));
    }
  });
  thread_->setObjectName("mst-sweep");
  thread_->start();
  return true;
}

void SweepService::stop() { stop_ = true; }
bool SweepService::isRunning() const { return thread_ && thread_->isRunning(); }

bool SweepService::wait(int timeout_ms) {
  if (!thread_) return true;
  return timeout_ms < 0 ? thread_->wait() : thread_->wait(QDeadlineTimer(timeout_ms));
}

}  // namespace mst
