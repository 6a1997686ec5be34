/// @brief run.h5 → CurveTable / ProbeImage (see run_reader.h).
#include "app/gui/run_reader.h"

#include <QDir>
#include <QFileInfo>

#include <cmath>

#include "core/log/log_reader.h"
#include "core/util/error.h"

namespace mst {

namespace {

QVector<double> tail(const std::vector<double>& values, int from, int rows) {
  QVector<double> out;
  out.reserve(std::max(0, rows - from));
  for (int i = from; i < rows; ++i)
    out.push_back(i < static_cast<int>(values.size()) ? values[i] : std::nan(""));
  return out;
}

CurveTable readGroup(const std::string& file, const std::string& group, int from) {
  CurveTable table;
  std::vector<std::string> names;
  try {
    names = listLogGroup(file, group);
  } catch (const MstError&) {
    return table;  // an older or foreign log without this group
  }
  const auto step = readLogDataset(file, group + "/step");
  const int rows = static_cast<int>(step.size());
  if (from >= rows) return table;
  table.step = tail(step, from, rows);
  for (const auto& name : names) {
    if (name == "step") continue;
    const auto values = readLogDataset(file, group + "/" + name);
    if (name == "epoch")
      table.epoch = tail(values, from, rows);
    else if (name == "wall_s")
      table.wall_s = tail(values, from, rows);
    else
      table.columns[QString::fromStdString(name)] = tail(values, from, rows);
  }
  if (table.epoch.isEmpty()) table.epoch = QVector<double>(table.step.size(), std::nan(""));
  return table;
}

}  // namespace

QString runLogPath(const QString& path) {
  // By name, not by what exists: a run folder that is not created yet is still a folder.
  return path.endsWith(".h5", Qt::CaseInsensitive) ? path : QDir(path).filePath("run.h5");
}

RunCurves readRunCurves(const QString& path, int metrics_from, int eval_from) {
  const QString file = runLogPath(path);
  if (!QFileInfo::exists(file)) throw MstError(file.toStdString() + ": no such run log");
  RunCurves run;
  run.id = QFileInfo(file).absolutePath();
  run.label = QFileInfo(run.id).fileName();
  run.metrics = readGroup(file.toStdString(), "/metrics", metrics_from);
  run.eval = readGroup(file.toStdString(), "/eval", eval_from);
  // /eval has no wall time of its own: take the newest metrics row at or before each eval step.
  if (run.eval.wall_s.isEmpty() && !run.metrics.wall_s.isEmpty() && metrics_from == 0) {
    for (double s : run.eval.step) {
      double w = std::nan("");
      for (int i = 0; i < run.metrics.step.size() && run.metrics.step[i] <= s; ++i)
        w = run.metrics.wall_s[i];
      run.eval.wall_s.push_back(w);
    }
  }
  return run;
}

QVector<qint64> readSnapshotSteps(const QString& path) {
  QVector<qint64> out;
  try {
    for (double s : readLogDataset(runLogPath(path).toStdString(), "/snapshots/step"))
      out.push_back(static_cast<qint64>(s));
  } catch (const MstError&) {
  }
  return out;
}

QVector<ProbeImage> readSnapshot(const QString& path, int index) {
  const std::string file = runLogPath(path).toStdString();
  std::vector<int64_t> di, da, dr, dg, drec;
  const auto images = readLogArray(file, "/snapshots/images", &di);
  const auto attention = readLogArray(file, "/snapshots/attention", &da);
  const auto random = readLogArray(file, "/snapshots/mask_random", &dr);
  const auto guided = readLogArray(file, "/snapshots/mask_guided", &dg);
  const auto recon = readLogArray(file, "/snapshots/reconstruction", &drec);
  QVector<ProbeImage> out;
  if (di.size() != 5 || da.size() != 4 || index < 0 || index >= di[0]) return out;
  const int64_t n = di[1], c = di[2], h = di[3], w = di[4], gh = da[2], gw = da[3];
  for (int64_t i = 0; i < n; ++i) {
    ProbeImage p;
    p.title = QString("#%1").arg(i);
    p.channels = static_cast<int>(c);
    p.height = static_cast<int>(h);
    p.width = static_cast<int>(w);
    const int64_t img = (static_cast<int64_t>(index) * n + i) * c * h * w;
    p.image = QVector<float>(images.begin() + img, images.begin() + img + c * h * w);
    if (recon.size() == images.size())
      p.reconstruction = QVector<float>(recon.begin() + img, recon.begin() + img + c * h * w);
    p.grid_h = static_cast<int>(gh);
    p.grid_w = static_cast<int>(gw);
    const int64_t g = (static_cast<int64_t>(index) * n + i) * gh * gw;
    p.attention = QVector<float>(attention.begin() + g, attention.begin() + g + gh * gw);
    for (int64_t j = 0; j < gh * gw; ++j) {
      p.mask_random.push_back(static_cast<quint8>(random[g + j]));
      p.mask_guided.push_back(static_cast<quint8>(guided[g + j]));
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace mst
