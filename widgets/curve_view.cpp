/// @brief CurvePanel's view of a plot: axis ranges and style, legend placement, series style and
/// the hover read-out (the rest of the panel: curve_panel.cpp).
#include "widgets/curve_panel.h"

#include <qcustomplot.h>

#include <QToolTip>
#include <algorithm>
#include <cmath>
#include <limits>

namespace mst {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kRawAlpha = 60;
constexpr int kLegendRowsPerColumn = 5;
constexpr int kLegendSamples = 400;  // points per curve sampled to find a free legend corner

/// Index of the point of `graph` whose key is nearest `key`, or -1 when it has none.
int nearestIndex(const QCPGraph* graph, double key) {
  const auto data = graph->data();
  if (data->isEmpty()) return -1;
  auto it = data->findBegin(key, false);
  if (it == data->constEnd()) return data->size() - 1;
  int index = int(it - data->constBegin());
  if (index > 0 && std::abs((it - 1)->key - key) < std::abs(it->key - key)) --index;
  return index;
}

/// A linear ticker whose labels carry as many significant digits as the tick step needs: two
/// beyond the digits that separate the step from the axis' largest value (0.9960005 next to
/// 0.996001 on a slowly moving schedule, 6.5 next to 6.6 on a loss), and no more, since the 'g'
/// format drops trailing zeros. A fixed precision printed close ticks alike.
class StepPrecisionTicker : public QCPAxisTicker {
 protected:
  double getTickStep(const QCPRange& range) override {
    step_ = QCPAxisTicker::getTickStep(range);
    magnitude_ = std::max(std::abs(range.lower), std::abs(range.upper));
    return step_;
  }
  QString getTickLabel(double tick, const QLocale& locale, QChar format, int precision) override {
    if (step_ > 0 && magnitude_ > 0)
      precision = std::clamp(int(std::ceil(std::log10(magnitude_ / step_))) + 2, 1, 15);
    return QCPAxisTicker::getTickLabel(tick, locale, format, precision);
  }

 private:
  double step_ = 0, magnitude_ = 0;
};

}  // namespace

void CurvePanel::rescale(int p) {
  double keyMin = kInf, keyMax = -kInf, valueMin = kInf, valueMax = -kInf;
  for (const auto& run : runs_) {
    const Series& series = run->series[p];
    if (series.raw->dataCount() == 0) continue;
    keyMin = std::min(keyMin, series.keyMin);
    keyMax = std::max(keyMax, series.keyMax);
    // A debiased EMA is a convex combination of the raw values, so the raw range covers it.
    valueMin = std::min(valueMin, series.valueMin);
    valueMax = std::max(valueMax, series.valueMax);
  }
  // Every plot spans the runs' logged steps (the loss plot's keys), so that a sparse curve such as
  // the per-epoch k-NN lines up with the losses above it instead of filling its own width.
  if (keyMin <= keyMax && p != 0) {
    for (const auto& run : runs_) {
      const Series& loss = run->series[0];
      if (loss.raw->dataCount() == 0) continue;
      keyMin = std::min(keyMin, loss.keyMin);
      keyMax = std::max(keyMax, loss.keyMax);
    }
  }
  QCustomPlot* plot = plots_[p].widget;
  if (keyMin > keyMax) {
    plot->xAxis->setRange(0, 1);
    plot->yAxis->setRange(logY_ ? QCPRange(0.1, 10) : QCPRange(0, 1));
    return;
  }
  if (keyMin == keyMax) {
    keyMin -= 0.5;
    keyMax += 0.5;
  }
  plot->xAxis->setRange(keyMin, keyMax);
  if (logY_) {
    // 5% head room in decades, and one decade around a constant curve.
    const double decades = std::max(std::log10(valueMax / valueMin), 1e-12);
    const double pad = valueMin == valueMax ? 1.0 : 0.05 * decades;
    plot->yAxis->setRange(valueMin / std::pow(10.0, pad), valueMax * std::pow(10.0, pad));
  } else {
    const double span = valueMax - valueMin;
    const double pad = span > 0 ? 0.05 * span : std::max(std::abs(valueMax) * 0.05, 0.5);
    plot->yAxis->setRange(valueMin - pad, valueMax + pad);
  }
}

void CurvePanel::placeLegend(int p) {
  QCustomPlot* plot = plots_[p].widget;
  QCPLegend* legend = plot->legend;
  if (!legend->visible()) return;
  // Ten runs in one column would fill a small plot; wrap them into columns of five.
  const int wrap = legend->itemCount() > kLegendRowsPerColumn + 1 ? kLegendRowsPerColumn : 0;
  if (legend->wrap() != wrap) {
    legend->setWrap(wrap);
    legend->setFillOrder(QCPLayoutGrid::foColumnsFirst, /*rearrange=*/true);
    legend->setFillOrder(QCPLayoutGrid::foRowsFirst, /*rearrange=*/true);
  }
  const QRect area = plot->axisRect()->rect();
  if (area.width() < 10 || area.height() < 10) return;  // not laid out yet
  // Long run names (sweep cells) would make the legend wider than the plot: compact them (keys
  // without sections, then values only), then elide in the middle, so that the legend keeps to
  // about 60 % of the plot's width. The hover read-out still names the run in full.
  const int columns = wrap > 0 ? (legend->itemCount() + wrap - 1) / wrap : 1;
  const int maxText = std::max(40, area.width() * 3 / 5 / columns - 30);
  const QFontMetrics metrics(legend->font());
  for (const auto& run : runs_) {
    QString name = run->curves.label;
    if (metrics.horizontalAdvance(name) > maxText) name = compactRunLabel(name);
    if (metrics.horizontalAdvance(name) > maxText) name = compactRunLabel(run->curves.label, false);
    if (metrics.horizontalAdvance(name) > maxText)
      name = metrics.elidedText(name, Qt::ElideMiddle, maxText);
    if (run->series[p].smooth->name() != name) run->series[p].smooth->setName(name);
  }
  // Pick the corner that hides the fewest curve points (falling losses leave the top right free,
  // a rising accuracy the bottom right).
  const QSize size = legend->minimumOuterSizeHint().boundedTo(area.size());
  const Qt::Alignment corners[] = {Qt::AlignTop | Qt::AlignRight, Qt::AlignBottom | Qt::AlignRight,
                                   Qt::AlignTop | Qt::AlignLeft, Qt::AlignBottom | Qt::AlignLeft};
  QRect rects[4];
  for (int c = 0; c < 4; ++c) {
    const int x = corners[c] & Qt::AlignRight ? area.right() - size.width() : area.left();
    const int y = corners[c] & Qt::AlignBottom ? area.bottom() - size.height() : area.top();
    rects[c] = QRect(QPoint(x, y), size).adjusted(-8, -8, 8, 8);
  }
  int hidden[4] = {0, 0, 0, 0};
  for (const auto& run : runs_) {
    const Series& series = run->series[p];
    for (const QCPGraph* graph : {series.raw, series.smooth}) {
      const auto data = graph->data();
      const int stride = std::max(1, data->size() / kLegendSamples);
      for (int i = 0; i < data->size(); i += stride) {
        const auto point = data->at(i);
        const QPoint pixel(int(plot->xAxis->coordToPixel(point->key)),
                           int(plot->yAxis->coordToPixel(point->value)));
        for (int c = 0; c < 4; ++c) hidden[c] += rects[c].contains(pixel);
      }
    }
  }
  const int best = int(std::min_element(hidden, hidden + 4) - hidden);
  plot->axisRect()->insetLayout()->setInsetAlignment(0, corners[best]);
}

void CurvePanel::applyAxisStyle(int p) {
  QCustomPlot* plot = plots_[p].widget;
  if (logY_) {
    plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
    plot->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>::create());
    plot->yAxis->setNumberFormat(QStringLiteral("gb"));
    plot->yAxis->setNumberPrecision(3);
  } else {
    plot->yAxis->setScaleType(QCPAxis::stLinear);
    plot->yAxis->setTicker(QSharedPointer<StepPrecisionTicker>::create());
    plot->yAxis->setNumberFormat(QStringLiteral("gb"));
    plot->yAxis->setNumberPrecision(6);  // (replaced per label by the ticker)
  }
  switch (xAxis_) {
    case XAxis::Step:
      plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>::create());
      plot->xAxis->setNumberFormat(QStringLiteral("gb"));
      plot->xAxis->setNumberPrecision(6);
      plot->xAxis->setLabel(tr("step"));
      break;
    case XAxis::Epoch:
      plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>::create());
      plot->xAxis->setNumberFormat(QStringLiteral("gb"));
      plot->xAxis->setNumberPrecision(4);
      plot->xAxis->setLabel(tr("epoch"));
      break;
    case XAxis::WallTime: {
      auto ticker = QSharedPointer<QCPAxisTickerTime>::create();
      ticker->setTimeFormat(QStringLiteral("%h:%m:%s"));
      plot->xAxis->setTicker(ticker);
      plot->xAxis->setLabel(tr("wall time (h:m:s)"));
      break;
    }
  }
}

void CurvePanel::styleSeries(const Run& run, int p) {
  const Series& series = run.series[p];
  QColor faded = run.colour;
  faded.setAlpha(kRawAlpha);
  if (!isSmoothed(plots_[p].name)) {
    series.raw->setPen(QPen(run.colour, 1.6));
  } else {
    series.raw->setPen(QPen(faded, 1.0));
  }
  series.smooth->setPen(QPen(run.colour, 1.6));
}

QString CurvePanel::keyText(double key) const {
  switch (xAxis_) {
    case XAxis::Step:
      return tr("step %1").arg(qint64(std::llround(key)));
    case XAxis::Epoch:
      return tr("epoch %1").arg(key, 0, 'f', 2);
    case XAxis::WallTime: {
      const qint64 seconds = std::llround(key);
      return tr("time %1:%2:%3")
          .arg(seconds / 3600)
          .arg(seconds / 60 % 60, 2, 10, QLatin1Char('0'))
          .arg(seconds % 60, 2, 10, QLatin1Char('0'));
    }
  }
  return {};
}

void CurvePanel::hover(int p, const QPoint& pos) {
  PlotView& view = plots_[p];
  QCustomPlot* plot = view.widget;
  if (!plot->axisRect()->rect().contains(pos)) {
    clearHover();
    return;
  }
  // The drawn (smoothed when present) curve is what the eye follows, so read it out.
  auto shown = [p](const Run& run) {
    const Series& series = run.series[p];
    return series.smooth->dataCount() > 0 ? series.smooth : series.raw;
  };
  const double cursorKey = plot->xAxis->pixelToCoord(pos.x());
  const Run* nearestRun = nullptr;
  double nearestKey = 0, nearestValue = 0, nearestPixels = kInf;
  for (const auto& run : runs_) {
    const QCPGraph* graph = shown(*run);
    const int index = nearestIndex(graph, cursorKey);
    if (index < 0) continue;
    const auto point = graph->data()->at(index);
    const double pixels = std::abs(plot->xAxis->coordToPixel(point->key) - pos.x()) +
                          std::abs(plot->yAxis->coordToPixel(point->value) - pos.y());
    if (pixels < nearestPixels) {
      nearestPixels = pixels;
      nearestRun = run.get();
      nearestKey = point->key;
      nearestValue = point->value;
    }
  }
  if (!nearestRun) {
    clearHover();
    return;
  }
  QStringList parts{keyText(nearestKey)};
  for (const auto& run : runs_) {
    const QCPGraph* graph = shown(*run);
    const int index = nearestIndex(graph, nearestKey);
    if (index < 0) continue;
    parts << QStringLiteral("%1 %2")
                 .arg(run->curves.label)
                 .arg(graph->data()->at(index)->value, 0, 'g', 4);
  }
  const QString text = parts.join(QStringLiteral(" · "));
  view.tracer->position->setCoords(nearestKey, nearestValue);
  view.tracer->setPen(QPen(nearestRun->colour, 1.5));
  view.tracer->setBrush(Qt::white);
  view.tracer->setVisible(true);
  plot->layer(QStringLiteral("overlay"))->replot();
  for (int other = 0; other < int(plots_.size()); ++other) {
    if (other != p && plots_[other].tracer->visible()) {
      plots_[other].tracer->setVisible(false);
      plots_[other].widget->layer(QStringLiteral("overlay"))->replot();
    }
  }
  if (text != hoverLabel_->text()) {
    hoverLabel_->setText(text);
    emit hoverText(text);
  }
}

void CurvePanel::clearHover() {
  for (PlotView& view : plots_) {
    if (!view.tracer->visible()) continue;
    view.tracer->setVisible(false);
    view.widget->layer(QStringLiteral("overlay"))->replot();
  }
  if (!hoverLabel_->text().isEmpty()) {
    hoverLabel_->clear();
    emit hoverText(QString());
  }
}

}  // namespace mst
