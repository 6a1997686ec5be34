/// @brief CurvePanel's view of a plot: axis ranges and style, legend placement, series style and
/// the hover read-out (the rest of the panel: curve_panel.cpp).
#include <qcustomplot.h>

#include <QToolTip>
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "widgets/curve_panel.h"

namespace mst {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kRawAlpha = 60;
constexpr int kLegendRowsPerColumn = 5;
constexpr int kLegendSamples = 400;  // points per curve sampled to find a free legend corner
constexpr int kLegendClearance = 4;  // pixels kept between a legend and the nearest data point
constexpr int kLegendBelowInset = 6;
constexpr int kLegendTextWidth = 200;        // pixels of a run's legend label, at most
constexpr double kRelativeSpanFloor = 1e-3;  // see CurvePanel::rescale

/// Whether the segment a-b crosses `rect` (either end inside, or through an edge).
bool segmentCrosses(const QRectF& rect, const QPointF& a, const QPointF& b) {
  if (rect.contains(a) || rect.contains(b)) return true;
  const QLineF line(a, b);
  const QLineF edges[] = {{rect.topLeft(), rect.topRight()},
                          {rect.topRight(), rect.bottomRight()},
                          {rect.bottomRight(), rect.bottomLeft()},
                          {rect.bottomLeft(), rect.topLeft()}};
  for (const QLineF& edge : edges)
    if (line.intersects(edge, nullptr) == QLineF::BoundedIntersection) return true;
  return false;
}

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
  // Autoscaling never spans less than a floor, so that differences too small to mean anything
  // are not stretched over the plot's height (a k-NN curve moving between 40.59 and 40.63 looked
  // like a swing). The floor is the larger of the plot's own (in its unit: 1 point of k-NN
  // top-1, about the spread between seeds; 1 % of the patches for the masked share) and
  // kRelativeSpanFloor of the largest magnitude shown: a 0.1 % change of a loss or a schedule is
  // below its step-to-step noise or rounding. Values that are all 0 get a span of 1.
  double floor = std::max(plots_[p].spanFloor,
                          kRelativeSpanFloor * std::max(std::abs(valueMin), std::abs(valueMax)));
  if (floor <= 0) floor = 1.0;
  double lo = valueMin, hi = valueMax;
  if (hi - lo < floor) {
    const double mid = 0.5 * (lo + hi);
    lo = mid - 0.5 * floor;
    hi = mid + 0.5 * floor;
  }
  if (logY_) {
    // The floor's span where it stays positive; otherwise (a small value with a large absolute
    // floor) at least one decade around a constant curve. 5 % head room, in decades.
    if (lo <= 0) {
      lo = valueMin;
      hi = valueMax;
    }
    const double decades = std::max(std::log10(hi / lo), 1e-12);
    const double pad = lo == hi ? 1.0 : 0.05 * decades;
    plot->yAxis->setRange(lo / std::pow(10.0, pad), hi * std::pow(10.0, pad));
  } else {
    const double pad = 0.05 * (hi - lo);
    plot->yAxis->setRange(lo - pad, hi + pad);
  }
}

QString CurvePanel::legendLabelFor(const QString& label) const {
  // One label per run in every plot, so that a run reads the same everywhere (compaction by each
  // plot's width made "p=0.05 num=1" in one plot "0.05 1" in another). Sweep cells lose their
  // index and key sections; what is still too long is elided in the middle to a fixed width.
  // The hover read-out names the run in full.
  const QFontMetrics metrics(plots_.front().widget->legend->font());
  return metrics.elidedText(compactRunLabel(label), Qt::ElideMiddle, kLegendTextWidth);
}

void CurvePanel::updateLegendEntries(int p) {
  // Only runs drawn in this plot are listed, in run order.
  QCPLegend* legend = plots_[p].widget->legend;
  QList<QCPAbstractPlottable*> wanted, listed;
  for (const auto& run : runs_)
    if (run->series[p].raw->dataCount() > 0) wanted << run->series[p].smooth;
  for (int i = 0; i < legend->itemCount(); ++i)
    if (auto* item = qobject_cast<QCPPlottableLegendItem*>(legend->item(i)))
      listed << item->plottable();
  if (listed != wanted) {
    legend->clearItems();
    for (QCPAbstractPlottable* graph : wanted) graph->addToLegend(legend);
  }
  legend->setVisible(runs_.size() > 1 && !wanted.isEmpty());  // one run: the title says enough
}

void CurvePanel::setLegendBelow(int p, bool below) {
  PlotView& view = plots_[p];
  QCustomPlot* plot = view.widget;
  QCPLegend* legend = plot->legend;
  if (below != view.legendBelow) {
    // addElement takes the legend out of the layout that holds it.
    if (below) {
      plot->plotLayout()->addElement(2, 0, legend);
      plot->plotLayout()->setRowStretchFactor(2, 0.001);
    } else {
      plot->axisRect()->insetLayout()->addElement(legend, Qt::AlignTop | Qt::AlignRight);
      plot->plotLayout()->simplify();  // drops the emptied row below the axes
    }
    view.legendBelow = below;
  }
  // Inside, a framed box; ten runs in one column would fill a small plot, so wrap them into
  // columns of five. Below, a frameless strip of as many entries per row as fit.
  int wrap = legend->itemCount() > kLegendRowsPerColumn + 1 ? kLegendRowsPerColumn : 0;
  QCPLayoutGrid::FillOrder order = QCPLayoutGrid::foRowsFirst;
  if (below) {
    int widest = 1;
    for (int i = 0; i < legend->itemCount(); ++i)
      widest = std::max(widest, legend->item(i)->minimumOuterSizeHint().width());
    const int width = plot->viewport().width() - legend->margins().left() -
                      legend->margins().right() - 2 * kLegendBelowInset;
    wrap = std::max(1, (width + legend->columnSpacing()) / (widest + legend->columnSpacing()));
    order = QCPLayoutGrid::foColumnsFirst;
  }
  if (legend->wrap() != wrap || legend->fillOrder() != order) {
    legend->setWrap(wrap);
    // Switching the order rearranges the items by the new wrap (same order twice would not).
    legend->setFillOrder(order == QCPLayoutGrid::foRowsFirst ? QCPLayoutGrid::foColumnsFirst
                                                             : QCPLayoutGrid::foRowsFirst,
                         /*rearrange=*/true);
    legend->setFillOrder(order, /*rearrange=*/true);
  }
  legend->setBorderPen(below ? QPen(Qt::NoPen) : QPen(QColor(0, 0, 0, 60)));
  legend->setBrush(below ? QBrush(Qt::NoBrush) : QBrush(QColor(255, 255, 255, 200)));
}

void CurvePanel::placeLegend(int p) {
  QCustomPlot* plot = plots_[p].widget;
  QCPLegend* legend = plot->legend;
  // Measured inside the axes, where the legend would cover data.
  setLegendBelow(p, false);
  if (!legend->visible()) return;
  // Lay the plot out for the ranges just set: tick labels of another width move the axis rect,
  // so pixels taken from the last replot would be stale.
  for (auto phase :
       {QCPLayoutElement::upPreparation, QCPLayoutElement::upMargins, QCPLayoutElement::upLayout})
    plot->plotLayout()->update(phase);
  const QRect area = plot->axisRect()->rect();
  if (area.width() < 10 || area.height() < 10) return;  // not laid out yet
  const QSize size = legend->minimumOuterSizeHint();
  if (size.width() <= area.width() && size.height() <= area.height()) {
    // The corner that covers the fewest data points (falling losses leave the top right free, a
    // rising accuracy the bottom right); among free corners the one fewest lines cross.
    const Qt::Alignment corners[] = {Qt::AlignTop | Qt::AlignRight,
                                     Qt::AlignBottom | Qt::AlignRight, Qt::AlignTop | Qt::AlignLeft,
                                     Qt::AlignBottom | Qt::AlignLeft};
    QRectF rects[4];
    for (int c = 0; c < 4; ++c) {
      const int x = corners[c] & Qt::AlignRight ? area.right() + 1 - size.width() : area.left();
      const int y = corners[c] & Qt::AlignBottom ? area.bottom() + 1 - size.height() : area.top();
      rects[c] =
          QRectF(x, y, size.width(), size.height())
              .adjusted(-kLegendClearance, -kLegendClearance, kLegendClearance, kLegendClearance);
    }
    int points[4] = {0, 0, 0, 0}, crossings[4] = {0, 0, 0, 0};
    for (const auto& run : runs_) {
      const Series& series = run->series[p];
      for (const QCPGraph* graph : {series.raw, series.smooth}) {
        const auto data = graph->data();
        const int n = data->size();
        const int stride = std::max(1, n / kLegendSamples);
        QPointF previous;
        bool hasPrevious = false;
        auto visit = [&](int i) {
          const auto point = data->at(i);
          const QPointF pixel(plot->xAxis->coordToPixel(point->key),
                              plot->yAxis->coordToPixel(point->value));
          if (!std::isfinite(pixel.x()) || !std::isfinite(pixel.y())) return;
          for (int c = 0; c < 4; ++c) {
            if (rects[c].contains(pixel))
              ++points[c];
            else if (hasPrevious && segmentCrosses(rects[c], previous, pixel))
              ++crossings[c];
          }
          previous = pixel;
          hasPrevious = true;
        };
        for (int i = 0; i < n; i += stride) visit(i);
        if (n > 0 && (n - 1) % stride != 0) visit(n - 1);  // the latest point, always
      }
    }
    int best = 0;
    for (int c = 1; c < 4; ++c)
      if (std::make_pair(points[c], crossings[c]) < std::make_pair(points[best], crossings[best]))
        best = c;
    if (points[best] == 0) {
      plot->axisRect()->insetLayout()->setInsetAlignment(0, corners[best]);
      return;
    }
  }
  // No corner is free (or the legend is larger than the axes): below them, covering nothing.
  setLegendBelow(p, true);
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
