/// @brief Plain column tables of logged training curves, the keys of their rows on each x axis,
/// and the debiased EMA used to smooth them.
#pragma once

#include <QMap>
#include <QString>
#include <QVector>

namespace mst {

/// Columns of one run's log group; all of equal length (rows = logged steps). wall_s may be empty.
struct CurveTable {
  QVector<double> step, epoch, wall_s;
  QMap<QString, QVector<double>> columns;  // metric name -> values, NaN = not logged in that row

  /// Number of logged rows: the length of `step`, or of the longest column when `step` is empty.
  int rows() const;
  /// Appends the rows of `more`; a column missing on either side is padded with NaN.
  /// step/epoch/wall_s stay empty only when they are empty on both sides.
  void append(const CurveTable& more);
};

/// The curves of one training run, as read from its HDF5 log.
struct RunCurves {
  QString id;          // unique, e.g. the run folder
  QString label;       // legend text
  CurveTable metrics;  // from /metrics (loss, loss_ce, loss_rec, lr, wd, momentum, ...)
  CurveTable eval;     // from /eval (knn_top1)
};

/// What the key (horizontal) axis of a curve plot shows.
enum class XAxis { Step, Epoch, WallTime };

/// The eval table's plot (k-NN top-1); every other plot reads the metrics table.
inline const QString kEvalPlot = QStringLiteral("knn_top1");

/// Only the per-batch losses are noisy. Schedules (lr, wd, ...) are exact values an EMA would only
/// shift, and k-NN accuracy is logged every few epochs, where an EMA over a handful of points
/// lags and misleads: those are drawn raw.
bool isSmoothed(const QString& plot);

/// y at `x` on the polyline (xs, ys), xs ascending; extrapolates linearly past either end.
double interpolate(const QVector<double>& xs, const QVector<double>& ys, double x);

/// Key of `row` of `table` on `axis`. Eval rows usually log only their step, so they borrow epoch
/// and wall time from the metrics table by interpolating over step.
double keyAt(const CurveTable& table, const CurveTable& metrics, XAxis axis, int row);

/// column[row], NaN past its end.
double valueAt(const QVector<double>& column, int row);

/// A run label short enough for a legend: a sweep cell's folder name such as
/// "04_masking.strategy=attention_guided_train.seed=0" becomes "strategy=attention_guided seed=0"
/// (cell index and key sections dropped), or with `keys` false only the values,
/// "attention_guided 0"; any other label is returned unchanged.
QString compactRunLabel(const QString& label, bool keys = true);

/// Incremental form of debiasedEma, so that live appends continue a smoothed curve without
/// recomputing it from the first row.
class DebiasedEmaState {
 public:
  explicit DebiasedEmaState(double weight = 0.0);
  /// Feeds one value and returns its smoothed value; a non-finite input returns NaN and leaves the
  /// state unchanged.
  double push(double value);
  double weight() const { return weight_; }

 private:
  double weight_;
  double state_ = 0.0;
  double decay_ = 1.0;  // weight^n, n = finite values seen; 1 - decay_ undoes the zero start bias
};

/// Debiased exponential moving average (TensorBoard-style): s_i = w*s_{i-1} + (1-w)*x_i over the
/// finite values, output s_i / (1 - w^n) with n = number of finite values so far; NaN inputs give
/// NaN outputs and do not update s. w = 0 returns the input.
QVector<double> debiasedEma(const QVector<double>& values, double weight);

}  // namespace mst
