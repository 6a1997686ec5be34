/// @brief Reads a run log (run.h5) into the plots' plain tables, also while another process writes it.
#pragma once

#include <QString>
#include <QStringList>

#include "widgets/curve_table.h"
#include "widgets/probe_image.h"

namespace mst {

/// `path`: a run folder or an .h5 run log (a name ending in .h5 is the log itself).
QString runLogPath(const QString& path);

/// The id plots and the run list use for the run log in `path`: the absolute run folder for a
/// folder or its run.h5, the absolute file for a log saved under another name ("Save run log
/// as…"), which readRunCurves then reads itself.
QString runLogId(const QString& path);

/// Rows of /metrics from `metrics_from` on and of /eval from `eval_from` on. The `step` column
/// decides how many rows exist (the writer extends it last), so a row being written is never read.
/// id = the run folder, label = its name. Throws MstError naming the file.
RunCurves readRunCurves(const QString& path, int metrics_from = 0, int eval_from = 0);

/// Steps of the snapshots in the log (empty when it has none).
QVector<qint64> readSnapshotSteps(const QString& path);
/// The probe images of snapshot `index` (0-based along /snapshots/step).
QVector<ProbeImage> readSnapshot(const QString& path, int index);

/// Config keys that a resume at `step` or later changed (the trainer's event "resumed at step N
/// with a changed config: key before → after, ..."): what a snapshot at `step` or before may not
/// have been drawn with. Empty when there were none or the log has no events.
QStringList readConfigChangesSince(const QString& path, qint64 step);

/// Whether `path` is an HDF5 file with an /inspect group: an `mst inspect` file or the
/// inspector's HDF5 export, rather than a run log.
bool isInspectFile(const QString& path);
/// The probe images of an inspect file (DESIGN.md's layout), with the per-head attention when the
/// file has /inspect/attention_heads; rows are titled "#index" from the settings' "images" list
/// when it has one per image. *settings_json = attribute json of /inspect/config ("" when absent).
/// Throws MstError naming the file and the dataset whose shape does not fit the others.
QVector<ProbeImage> readInspectFile(const QString& path, QString* settings_json = nullptr);

}  // namespace mst
