/// @brief CurveTable row appends with NaN padding, and the debiased EMA smoother.
#include "widgets/curve_table.h"

#include <QRegularExpression>

#include <algorithm>
#include <cmath>
#include <limits>

namespace mst {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Appends `more` (padded to `more_rows`) to `column` (padded to `rows` first), so that both
/// sides keep one value per row even when a metric was only logged by one of them.
void appendPadded(QVector<double>& column, int rows, const QVector<double>& more, int more_rows) {
  column.reserve(rows + more_rows);
  while (column.size() < rows) column.append(kNaN);
  column.resize(std::min<int>(column.size(), rows));
  column.append(more.mid(0, more_rows));
  while (column.size() < rows + more_rows) column.append(kNaN);
}

}  // namespace

QString compactRunLabel(const QString& label, bool keys) {
  // A config key always starts with its section, which anchors the match: values may contain
  // '_' (attention_guided) and so may keys (local_crops).
  static const QRegularExpression key(
      QStringLiteral("(^|_)(?:data|model|crops|augment|masking|loss|optim|train|eval)\\."
                     "([A-Za-z0-9_]+)="));
  static const QRegularExpression index(QStringLiteral("^\\d+_"));
  QString text = label;
  if (!text.contains(index) || !key.match(text.mid(text.indexOf('_'))).hasMatch()) return label;
  text.remove(index);
  QString out;
  int from = 0;
  for (auto it = key.globalMatch(text); it.hasNext();) {
    const auto m = it.next();
    out += text.mid(from, m.capturedStart() - from);
    if (!out.isEmpty()) out += ' ';
    if (keys) out += m.captured(2) + '=';
    from = m.capturedEnd();
  }
  return out + text.mid(from);
}

bool isSmoothed(const QString& plot) { return plot.startsWith(QLatin1String("loss")); }

double interpolate(const QVector<double>& xs, const QVector<double>& ys, double x) {
  const int n = std::min(xs.size(), ys.size());
  if (n == 0 || !std::isfinite(x)) return kNaN;
  if (n == 1) return ys[0];
  int hi = int(std::lower_bound(xs.begin(), xs.begin() + n, x) - xs.begin());
  hi = std::clamp(hi, 1, n - 1);
  const double x0 = xs[hi - 1], x1 = xs[hi];
  if (x1 == x0) return ys[hi];
  return ys[hi - 1] + (ys[hi] - ys[hi - 1]) * (x - x0) / (x1 - x0);
}

double keyAt(const CurveTable& table, const CurveTable& metrics, XAxis axis, int row) {
  const QVector<double>& own = axis == XAxis::Step    ? table.step
                               : axis == XAxis::Epoch ? table.epoch
                                                      : table.wall_s;
  if (row < own.size()) return own[row];
  if (axis == XAxis::Step) return table.step.isEmpty() ? double(row) : kNaN;
  if (&table == &metrics || row >= table.step.size()) return kNaN;
  return interpolate(metrics.step, axis == XAxis::Epoch ? metrics.epoch : metrics.wall_s,
                     table.step[row]);
}

double valueAt(const QVector<double>& column, int row) {
  return row < column.size() ? column[row] : kNaN;
}

int CurveTable::rows() const {
  if (!step.isEmpty()) return step.size();
  int longest = 0;
  for (const QVector<double>& column : columns) longest = std::max<int>(longest, column.size());
  return longest;
}

void CurveTable::append(const CurveTable& more) {
  const int own_rows = rows();
  const int more_rows = more.rows();
  if (more_rows == 0) return;
  for (auto [own, theirs] : {std::pair{&step, &more.step}, std::pair{&epoch, &more.epoch},
                             std::pair{&wall_s, &more.wall_s}}) {
    if (own->isEmpty() && theirs->isEmpty()) continue;
    appendPadded(*own, own_rows, *theirs, more_rows);
  }
  for (auto it = more.columns.cbegin(); it != more.columns.cend(); ++it) {
    appendPadded(columns[it.key()], own_rows, it.value(), more_rows);
  }
  // Columns that `more` did not log still need one (NaN) value per new row.
  for (auto it = columns.begin(); it != columns.end(); ++it) {
    if (!more.columns.contains(it.key())) appendPadded(it.value(), own_rows, {}, more_rows);
  }
}

DebiasedEmaState::DebiasedEmaState(double weight) : weight_(weight) {}

double DebiasedEmaState::push(double value) {
  if (!std::isfinite(value)) return kNaN;
  // w = 0 must return the input bit-for-bit, which the general formula only does approximately.
  if (weight_ == 0.0) return value;
  state_ = weight_ * state_ + (1.0 - weight_) * value;
  decay_ *= weight_;
  return state_ / (1.0 - decay_);
}

QVector<double> debiasedEma(const QVector<double>& values, double weight) {
  DebiasedEmaState ema(weight);
  QVector<double> out;
  out.reserve(values.size());
  for (double value : values) out.append(ema.push(value));
  return out;
}

}  // namespace mst
