/// @brief run.h5 → CurveTable / ProbeImage (see run_reader.h).
#include "app/gui/run_reader.h"

#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>

#include <algorithm>
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

QString runLogId(const QString& path) {
  const QFileInfo log(runLogPath(path));
  return QDir::cleanPath(log.fileName() == "run.h5" ? log.absolutePath() : log.absoluteFilePath());
}

RunCurves readRunCurves(const QString& path, int metrics_from, int eval_from) {
  const QString file = runLogPath(path);
  if (!QFileInfo::exists(file)) throw MstError(file.toStdString() + ": no such run log");
  RunCurves run;
  // A run folder's log is the folder; a log saved under another name is itself (runLogId).
  run.id = runLogId(path);
  run.label = QFileInfo(file).fileName() == "run.h5" ? QFileInfo(run.id).fileName()
                                                     : QFileInfo(file).completeBaseName();
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

QStringList readConfigChangesSince(const QString& path, qint64 step) {
  QStringList keys;
  std::vector<double> steps;
  std::vector<std::string> messages;
  try {
    const std::string file = runLogPath(path).toStdString();
    steps = readLogDataset(file, "/events/step");
    messages = readLogStrings(file, "/events/message");
  } catch (const MstError&) {
    return keys;
  }
  static const QString marker = "with a changed config: ";
  static const QRegularExpression key(R"((?:^|, )([a-z_]+\.[a-z_0-9]+) )");
  for (size_t i = 0; i < steps.size() && i < messages.size(); ++i) {
    if (steps[i] < static_cast<double>(step)) continue;
    const QString text = QString::fromStdString(messages[i]);
    const qsizetype at = text.indexOf(marker);
    if (at < 0) continue;
    for (auto it = key.globalMatch(text.mid(at + marker.size())); it.hasNext();)
      keys << it.next().captured(1);
  }
  keys.removeDuplicates();
  return keys;
}

bool isInspectFile(const QString& path) {
  try {
    listLogGroup(path.toStdString(), "/inspect");
    return true;
  } catch (const MstError&) {
    return false;
  }
}

QVector<ProbeImage> readInspectFile(const QString& path, QString* settings_json) {
  const std::string file = path.toStdString();
  if (!isInspectFile(path))
    throw MstError(file + ": not an inspect file (no /inspect group; `mst inspect --out` writes one)");
  auto shapeText = [](const std::vector<int64_t>& d) {
    std::string s = "(";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + ")";
  };
  std::vector<int64_t> di, da, dr, dg, drec, dh;
  const auto images = readLogArray(file, "/inspect/images", &di);
  if (di.size() != 4 || di[1] <= 0 || di[2] <= 0 || di[3] <= 0)
    throw MstError(file + ": /inspect/images is " + shapeText(di) + ", expected (N, C, H, W)");
  const int64_t n = di[0], c = di[1], h = di[2], w = di[3];
  const auto attention = readLogArray(file, "/inspect/attention", &da);
  if (da.size() != 3 || da[0] != n || da[1] <= 0 || da[2] <= 0)
    throw MstError(file + ": /inspect/attention is " + shapeText(da) + ", expected (" +
                   std::to_string(n) + ", h, w) for the " + std::to_string(n) + " images");
  const int64_t gh = da[1], gw = da[2];
  const std::vector<int64_t> grid{n, gh, gw}, planes{n, c, h, w};
  auto read = [&](const char* name, const std::vector<int64_t>& want, std::vector<int64_t>* dims) {
    const std::string dataset = std::string("/inspect/") + name;
    auto values = readLogArray(file, dataset, dims);
    if (*dims != want)
      throw MstError(file + ": " + dataset + " is " + shapeText(*dims) + ", expected " +
                     shapeText(want) + " like /inspect/" +
                     (want.size() == 4 ? "images" : "attention"));
    return values;
  };
  const auto random = read("mask_random", grid, &dr);
  const auto guided = read("mask_guided", grid, &dg);
  const auto recon = read("reconstruction", planes, &drec);
  std::vector<float> heads;
  int64_t n_heads = 0;
  const auto names = listLogGroup(file, "/inspect");
  if (std::find(names.begin(), names.end(), "attention_heads") != names.end()) {
    heads = readLogArray(file, "/inspect/attention_heads", &dh);
    if (dh.size() != 4 || dh[0] != n || dh[2] != gh || dh[3] != gw)
      throw MstError(file + ": /inspect/attention_heads is " + shapeText(dh) + ", expected (" +
                     std::to_string(n) + ", heads, " + std::to_string(gh) + ", " +
                     std::to_string(gw) + ")");
    n_heads = dh[1];
  }
  QString json;
  try {
    json = QString::fromStdString(readLogAttribute(file, "/inspect/config", "json"));
  } catch (const MstError&) {
  }
  if (settings_json) *settings_json = json;
  const QJsonArray indices = QJsonDocument::fromJson(json.toUtf8()).object().value("images").toArray();

  QVector<ProbeImage> out;
  const int64_t plane = c * h * w, cells = gh * gw;
  for (int64_t i = 0; i < n; ++i) {
    ProbeImage p;
    p.title = indices.size() == n ? QString("#%1").arg(indices[int(i)].toInteger())
                                  : QString("#%1").arg(i);
    p.channels = static_cast<int>(c);
    p.height = static_cast<int>(h);
    p.width = static_cast<int>(w);
    p.image = QVector<float>(images.begin() + i * plane, images.begin() + (i + 1) * plane);
    p.reconstruction = QVector<float>(recon.begin() + i * plane, recon.begin() + (i + 1) * plane);
    p.grid_h = static_cast<int>(gh);
    p.grid_w = static_cast<int>(gw);
    p.attention = QVector<float>(attention.begin() + i * cells, attention.begin() + (i + 1) * cells);
    for (int64_t j = 0; j < cells; ++j) {
      p.mask_random.push_back(static_cast<quint8>(random[i * cells + j]));
      p.mask_guided.push_back(static_cast<quint8>(guided[i * cells + j]));
    }
    if (n_heads > 0) {
      p.heads = static_cast<int>(n_heads);
      const int64_t block = n_heads * cells;
      p.attention_heads = QVector<float>(heads.begin() + i * block, heads.begin() + (i + 1) * block);
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace mst
