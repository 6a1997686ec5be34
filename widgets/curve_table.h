/// @brief Plain column tables of logged training curves and the debiased EMA used to smooth them.
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
