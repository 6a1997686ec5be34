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

/// The views of probe images as run.h5's /snapshots and an inspect file's /inspect store them:
/// flat (…, C, H, W) images and reconstructions, (…, h, w) attention and masks.
struct ProbeArrays {
  std::vector<float> images, attention, random, guided, recon;
  int64_t c = 1, h = 0, w = 0, gh = 0, gw = 0;
};

/// Images `first` .. `first + n - 1` of `a`, titled "#0" .. "#n-1"; the reconstruction only when
/// `a.recon` matches the images in size.
QVector<ProbeImage> unpackProbes(const ProbeArrays& a, int64_t first, int64_t n) {
  QVector<ProbeImage> out;
  const int64_t plane = a.c * a.h * a.w, cells = a.gh * a.gw;
  for (int64_t i = 0; i < n; ++i) {
    ProbeImage p;
    p.title = QString("#%1").arg(i);
    p.channels = static_cast<int>(a.c);
    p.height = static_cast<int>(a.h);
    p.width = static_cast<int>(a.w);
    const int64_t img = (first + i) * plane, g = (first + i) * cells;
    p.image = QVector<float>(a.images.begin() + img, a.images.begin() + img + plane);
    if (a.recon.size() == a.images.size())
      p.reconstruction = QVector<float>(a.recon.begin() + img, a.recon.begin() + img + plane);
    p.grid_h = static_cast<int>(a.gh);
    p.grid_w = static_cast<int>(a.gw);
    p.attention = QVector<float>(a.attention.begin() + g, a.attention.begin() + g + cells);
    for (int64_t j = 0; j < cells; ++j) {
      p.mask_random.push_back(static_cast<quint8>(a.random[g + j]));
      p.mask_guided.push_back(static_cast<quint8>(a.guided[g + j]));
    }
    out.push_back(std::move(p));
  }
  return out;
}

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
  ProbeArrays a;
  std::vector<int64_t> di, da, dr, dg, drec;
  a.images = readLogArray(file, "/snapshots/images", &di);
  a.attention = readLogArray(file, "/snapshots/attention", &da);
  a.random = readLogArray(file, "/snapshots/mask_random", &dr);
  a.guided = readLogArray(file, "/snapshots/mask_guided", &dg);
  a.recon = readLogArray(file, "/snapshots/reconstruction", &drec);
  if (di.size() != 5 || da.size() != 4 || index < 0 || index >= di[0]) return {};
  const int64_t n = di[1];
  a.c = di[2], a.h = di[3], a.w = di[4], a.gh = da[2], a.gw = da[3];
  return unpackProbes(a, static_cast<int64_t>(index) * n, n);
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
  std::vector<std::string> names;
  try {
    names = listLogGroup(file, "/inspect");
  } catch (const MstError&) {
    throw MstError(file + ": not an inspect file (no /inspect group; `mst inspect --out` writes one)");
  }
  auto shapeText = [](const std::vector<int64_t>& d) {
    std::string s = "(";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + ")";
  };
  std::vector<int64_t> di, da, dr, dg, drec, dh;
  ProbeArrays a;
  a.images = readLogArray(file, "/inspect/images", &di);
  if (di.size() != 4 || di[1] <= 0 || di[2] <= 0 || di[3] <= 0)
    throw MstError(file + ": /inspect/images is " + shapeText(di) + ", expected (N, C, H, W)");
  const int64_t n = di[0], c = di[1], h = di[2], w = di[3];
  a.attention = readLogArray(file, "/inspect/attention", &da);
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
  a.random = read("mask_random", grid, &dr);
  a.guided = read("mask_guided", grid, &dg);
  a.recon = read("reconstruction", planes, &drec);
  a.c = c, a.h = h, a.w = w, a.gh = gh, a.gw = gw;
  std::vector<float> heads;
  int64_t n_heads = 0;
  if (std::find(names.begin(), names.end(), "attention_heads") != names.end()) {
    heads = readLogArray(file, "/inspect/attention_heads", &dh);
    if (dh.size() != 4 || dh[0] != n || dh[2] != gh || dh[3] != gw)
      throw MstError(file + ": /inspect/attention_heads is " + shapeText(dh) + ", expected (" +
                     std::to_string(n) + ", heads, " + std::to_string(gh) + ", " +
                     std::to_string(gw) + ")");
    n_heads = dh[1];
  }
  std::vector<float> blocks;
  int64_t n_blocks = 0;
  if (n_heads > 0 &&
      std::find(names.begin(), names.end(), "attention_blocks") != names.end()) {
    std::vector<int64_t> db;
    blocks = readLogArray(file, "/inspect/attention_blocks", &db);
    if (db.size() != 5 || db[0] != n || db[1] <= 0 || db[2] != n_heads || db[3] != gh ||
        db[4] != gw)
      throw MstError(file + ": /inspect/attention_blocks is " + shapeText(db) + ", expected (" +
                     std::to_string(n) + ", blocks, " + std::to_string(n_heads) + ", " +
                     std::to_string(gh) + ", " + std::to_string(gw) + ")");
    n_blocks = db[1];
  }
  QString json;
  try {
    json = QString::fromStdString(readLogAttribute(file, "/inspect/config", "json"));
  } catch (const MstError&) {
  }
  if (settings_json) *settings_json = json;
  const QJsonArray indices = QJsonDocument::fromJson(json.toUtf8()).object().value("images").toArray();

  QVector<ProbeImage> out = unpackProbes(a, 0, n);
  const int64_t cells = gh * gw;
  for (int64_t i = 0; i < n; ++i) {
    ProbeImage& p = out[static_cast<int>(i)];
    if (indices.size() == n) p.title = QString("#%1").arg(indices[int(i)].toInteger());
    if (n_heads > 0) {
      p.heads = static_cast<int>(n_heads);
      const int64_t block = n_heads * cells;
      p.attention_heads = QVector<float>(heads.begin() + i * block, heads.begin() + (i + 1) * block);
    }
    if (n_blocks > 0) {
      p.blocks = static_cast<int>(n_blocks);
      const int64_t span = n_blocks * n_heads * cells;
      p.attention_blocks =
          QVector<float>(blocks.begin() + i * span, blocks.begin() + (i + 1) * span);
    }
  }
  return out;
}

}  // namespace mst
