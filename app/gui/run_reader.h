/// @brief Reads a run log (run.h5) into the plots' plain tables, also while another process writes it.
#pragma once

#include <QString>

#include "widgets/curve_table.h"
#include "widgets/probe_image.h"

namespace mst {

/// `path`: a run folder or an .h5 run log (a name ending in .h5 is the log itself).
QString runLogPath(const QString& path);

/// Rows of /metrics from `metrics_from` on and of /eval from `eval_from` on. The `step` column
/// decides how many rows exist (the writer extends it last), so a row being written is never read.
/// id = the run folder, label = its name. Throws MstError naming the file.
RunCurves readRunCurves(const QString& path, int metrics_from = 0, int eval_from = 0);

/// Steps of the snapshots in the log (empty when it has none).
QVector<qint64> readSnapshotSteps(const QString& path);
/// The probe images of snapshot `index` (0-based along /snapshots/step).
QVector<ProbeImage> readSnapshot(const QString& path, int index);

}  // namespace mst
