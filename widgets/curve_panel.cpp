/// @brief CurvePanel: dirty-plot redraws on a 40 ms timer, incremental live appends, zoom that
/// survives redraws (axes, legends, series style and hover: curve_view.cpp; exports:
/// curve_export.cpp).
#include "widgets/curve_panel.h"

#include <qcustomplot.h>

#include <QCheckBox>
#include <QComboBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QMenu>
#include <QSlider>
#include <QTimer>
#include <QToolButton>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <limits>

namespace mst {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kRedrawDelayMs = 40;  // coalesces bursts of appends (PlotJuggler's choice)
constexpr int kSliderSteps = 99;  // slider 0..99 <-> weight 0..0.99
constexpr int kColumns = 3;
constexpr int kMaxScatterPoints = 60;  // markers only while they stay readable

/// What a plot shows. The title is the log's key (scripts and `mst log` use those names); `unit`
/// labels the y axis and is empty where the value has none (losses, schedules); `description`
/// is the title's tooltip. `spanFloor`: the smallest y span autoscaling shows, in the unit
/// (CurvePanel::rescale says why these values).
struct PlotInfo {
  const char* name;
  const char* unit;
  const char* description;
  double spanFloor;
};
const PlotInfo kPlotInfo[] = {
    {"loss", "", QT_TRANSLATE_NOOP("CurvePanel", "Training loss: λ_CE·L_CE + λ_rec·L_rec"), 0},
    {"loss_ce", "", QT_TRANSLATE_NOOP("CurvePanel", "Self-distillation cross-entropy L_CE (Eq. 2)"),
     0},
    {"loss_rec", "",
     QT_TRANSLATE_NOOP("CurvePanel", "Reconstruction loss L_rec: mean absolute pixel error (Eq. 9)"),
     0},
    // At least 1 point of span: seeds differ by about that much, so less would magnify noise.
    {"knn_top1", QT_TRANSLATE_NOOP("CurvePanel", "top-1 %"),
     QT_TRANSLATE_NOOP("CurvePanel", "k-NN top-1 accuracy on the test images, in %"), 1.0},
    {"lr", "", QT_TRANSLATE_NOOP("CurvePanel", "Learning rate (schedule)"), 0},
    {"wd", "", QT_TRANSLATE_NOOP("CurvePanel", "Weight decay (schedule)"), 0},
    {"momentum", "", QT_TRANSLATE_NOOP("CurvePanel", "Teacher EMA momentum (schedule)"), 0},
    {"teacher_temp", "", QT_TRANSLATE_NOOP("CurvePanel", "Teacher softmax temperature (schedule)"),
     0},
    // One patch in a hundred.
    {"mask_ratio", QT_TRANSLATE_NOOP("CurvePanel", "share of patches"),
     QT_TRANSLATE_NOOP("CurvePanel", "Share of the student's patches that were masked"), 0.01},
};

QStringList plotNameList() {
  QStringList names;
  for (const PlotInfo& info : kPlotInfo) names << QString::fromUtf8(info.name);
  return names;
}
const QStringList kPlotNames = plotNameList();

/// matplotlib's tab10: a palette researchers already read, distinguishable in print.
QColor paletteColour(int index) {
  static const QColor kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return kPalette[index % 10];
}

}  // namespace

CurvePanel::CurvePanel(QWidget* parent) : QWidget(parent) {
  redrawTimer_ = new QTimer(this);
  redrawTimer_->setSingleShot(true);
  redrawTimer_->setInterval(kRedrawDelayMs);
  connect(redrawTimer_, &QTimer::timeout, this, &CurvePanel::flushRedraw);

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->setSpacing(2);
  layout->addWidget(buildToolbar());

  hoverLabel_ = new QLabel(this);
  hoverLabel_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  hoverLabel_->setMinimumHeight(hoverLabel_->fontMetrics().height() + 4);
  hoverLabel_->setStyleSheet(QStringLiteral("padding-left: 4px;"));
  layout->addWidget(hoverLabel_);

  auto* grid = new QGridLayout;
  grid->setSpacing(4);
  plots_.resize(kPlotNames.size());
  dirty_.assign(kPlotNames.size(), false);
  for (int i = 0; i < int(plots_.size()); ++i) {
    buildPlot(i);
    grid->addWidget(plots_[i].widget, i / kColumns, i % kColumns);
  }
  layout->addLayout(grid, 1);
  for (int i = 0; i < int(plots_.size()); ++i) {
    applyAxisStyle(i);
    plots_[i].widget->replot();
  }
}

CurvePanel::~CurvePanel() = default;

QWidget* CurvePanel::buildToolbar() {
  auto* bar = new QWidget(this);
  auto* row = new QHBoxLayout(bar);
  row->setContentsMargins(0, 0, 0, 0);

  auto* smoothingLabel = new QLabel(tr("Smoothing"), bar);
  row->addWidget(smoothingLabel);
  smoothingSlider_ = new QSlider(Qt::Horizontal, bar);
  smoothingSlider_->setRange(0, kSliderSteps);
  smoothingSlider_->setFixedWidth(140);
  // The only place that explains the faded curves, so that the plots need no extra legend rows.
  const QString smoothingTip =
      tr("Debiased exponential moving average weight for the loss plots: the smoothed curve is "
         "drawn over the raw values (faded). Schedules and k-NN are drawn raw.");
  smoothingLabel->setToolTip(smoothingTip);
  smoothingSlider_->setToolTip(smoothingTip);
  row->addWidget(smoothingSlider_);
  smoothingValue_ = new QLabel(bar);
  smoothingValue_->setMinimumWidth(smoothingValue_->fontMetrics().horizontalAdvance("0.00") + 4);
  row->addWidget(smoothingValue_);
  connect(smoothingSlider_, &QSlider::valueChanged, this,
          [this](int value) { setSmoothing(value / 100.0); });

  row->addSpacing(12);
  logYBox_ = new QCheckBox(tr("Log y"), bar);
  row->addWidget(logYBox_);
  connect(logYBox_, &QCheckBox::toggled, this, &CurvePanel::setLogY);

  row->addSpacing(12);
  row->addWidget(new QLabel(tr("X axis"), bar));
  xAxisCombo_ = new QComboBox(bar);
  xAxisCombo_->addItem(tr("step"), int(XAxis::Step));
  xAxisCombo_->addItem(tr("epoch"), int(XAxis::Epoch));
  xAxisCombo_->addItem(tr("wall time"), int(XAxis::WallTime));
  row->addWidget(xAxisCombo_);
  connect(xAxisCombo_, &QComboBox::currentIndexChanged, this,
          [this](int index) { setXAxis(XAxis(xAxisCombo_->itemData(index).toInt())); });

  row->addStretch(1);
  auto* exportButton = new QToolButton(bar);
  exportButton->setText(tr("Export"));
  exportButton->setPopupMode(QToolButton::InstantPopup);
  auto* menu = new QMenu(exportButton);
  QAction* figure = menu->addAction(QString());
  QAction* data = menu->addAction(QString());
  menu->addSeparator();
  menu->addAction(tr("All plots as figures…"), this, &CurvePanel::exportAllDialog);
  // The "current" plot is the one last right-clicked, so name it in the menu.
  connect(menu, &QMenu::aboutToShow, this, [this, figure, data] {
    const QString name = plots_[lastMenuPlot_].name;
    figure->setText(tr("Figure of %1…").arg(name));
    data->setText(tr("Data of %1 (CSV)…").arg(name));
  });
  connect(figure, &QAction::triggered, this, [this] { exportFigureDialog(lastMenuPlot_); });
  connect(data, &QAction::triggered, this, [this] { exportCsvDialog(lastMenuPlot_); });
  exportButton->setMenu(menu);
  row->addWidget(exportButton);

  smoothingSlider_->setValue(int(std::lround(smoothing_ * 100)));
  smoothingValue_->setText(QString::number(smoothing_, 'f', 2));
  return bar;
}

void CurvePanel::buildPlot(int index) {
  PlotView& view = plots_[index];
  const PlotInfo& info = kPlotInfo[index];
  view.name = kPlotNames[index];
  view.description = tr(info.description);
  view.spanFloor = info.spanFloor;
  auto* plot = new QCustomPlot(this);
  view.widget = plot;
  plot->setMinimumSize(200, 160);  // three columns fit a 1280-px screen beside the docks
  plot->setMouseTracking(true);
  plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  plot->setAutoAddPlottableToLegend(false);
  plot->setNoAntialiasingOnDrag(true);  // keeps panning smooth through 10 x 50k points
  plot->setContextMenuPolicy(Qt::CustomContextMenu);
  plot->installEventFilter(this);

  QFont titleFont = font();
  titleFont.setBold(true);
  plot->plotLayout()->insertRow(0);
  view.title = new QCPTextElement(plot, view.name, titleFont);
  plot->plotLayout()->addElement(0, 0, view.title);

  // Raw curves on their own layer below "main" so that no run's faded raw curve covers another
  // run's smoothed one.
  plot->addLayer(QStringLiteral("raw"), plot->layer(QStringLiteral("main")), QCustomPlot::limBelow);
  // The tracer lives on a buffered layer of its own: hovering replots only that layer.
  plot->layer(QStringLiteral("overlay"))->setMode(QCPLayer::lmBuffered);

  QFont small = font();
  small.setPointSizeF(std::max(7.0, font().pointSizeF() - 1));
  for (QCPAxis* axis : {plot->xAxis, plot->yAxis}) {
    axis->setTickLabelFont(small);
    axis->setLabelFont(small);
  }
  if (*info.unit) plot->yAxis->setLabel(tr(info.unit));
  plot->legend->setFont(small);
  plot->legend->setBrush(QColor(255, 255, 255, 200));
  plot->legend->setBorderPen(QPen(QColor(0, 0, 0, 60)));
  plot->legend->setRowSpacing(0);
  plot->legend->setColumnSpacing(6);
  plot->legend->setIconSize(18, 8);
  plot->legend->setMargins(QMargins(5, 3, 5, 3));
  plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);

  view.emptyText = new QCPItemText(plot);
  view.emptyText->position->setType(QCPItemPosition::ptAxisRectRatio);
  view.emptyText->position->setCoords(0.5, 0.5);
  view.emptyText->setText(tr("no data"));
  view.emptyText->setColor(QColor(150, 150, 150));
  view.emptyText->setFont(small);

  view.tracer = new QCPItemTracer(plot);
  view.tracer->setLayer(QStringLiteral("overlay"));
  view.tracer->setStyle(QCPItemTracer::tsCircle);
  view.tracer->setSize(7);
  view.tracer->setVisible(false);

  connect(plot, &QCustomPlot::mouseMove, this, [this, index](QMouseEvent* event) {
    if (event->buttons() & Qt::LeftButton) plots_[index].userZoomed = true;
    hover(index, event->pos());
  });
  connect(plot, &QCustomPlot::mouseWheel, this,
          [this, index](QWheelEvent*) { plots_[index].userZoomed = true; });
  connect(plot, &QCustomPlot::mouseDoubleClick, this, [this, index](QMouseEvent*) {
    plots_[index].userZoomed = false;
    rescale(index);
    plots_[index].widget->replot();
  });
  connect(plot, &QCustomPlot::customContextMenuRequested, this,
          [this, index](const QPoint& pos) { showContextMenu(index, pos); });
}

QStringList CurvePanel::plotNames() const { return kPlotNames; }

CurvePanel::Run* CurvePanel::findRun(const QString& id) const {
  for (const auto& run : runs_) {
    if (run->curves.id == id) return run.get();
  }
  return nullptr;
}

int CurvePanel::plotIndex(const QString& name) const { return int(kPlotNames.indexOf(name)); }

void CurvePanel::setRun(const RunCurves& curves) {
  Run* run = findRun(curves.id);
  if (!run) {
    runs_.push_back(std::make_unique<Run>());
    run = runs_.back().get();
    run->colour = paletteColour(nextColour_++);
    run->series.resize(plots_.size());
    for (int p = 0; p < int(plots_.size()); ++p) {
      Series& series = run->series[p];
      QCustomPlot* plot = plots_[p].widget;
      series.raw = plot->addGraph();
      series.raw->setLayer(QStringLiteral("raw"));
      // The smoothed graph stands for the run in the legend (one entry per run, not per raw or
      // smoothed graph); updateLegendEntries lists it where the run has points.
      series.smooth = plot->addGraph();
    }
  }
  run->curves = curves;
  run->legendLabel = legendLabelFor(curves.label);
  for (int p = 0; p < int(plots_.size()); ++p) {
    run->series[p].smooth->setName(run->legendLabel);
    styleSeries(*run, p);
  }
  markAllDirty(/*rebuild=*/false);
  for (Series& series : run->series) series.rebuild = true;
}

void CurvePanel::appendRows(const QString& id, const CurveTable& metrics, const CurveTable& eval) {
  Run* run = findRun(id);
  if (!run) {
    setRun(RunCurves{id, id, metrics, eval});
    return;
  }
  run->curves.metrics.append(metrics);
  run->curves.eval.append(eval);
  // Only the new rows are turned into points at the next redraw (Series::rowsDone).
  for (int p = 0; p < int(plots_.size()); ++p) {
    const bool isEval = plots_[p].name == kEvalPlot;
    const CurveTable& rows = isEval ? eval : metrics;
    if (rows.columns.contains(plots_[p].name)) markDirty(p, /*rebuild=*/false);
  }
}

void CurvePanel::removeRun(const QString& id) {
  auto it = std::find_if(runs_.begin(), runs_.end(),
                         [&id](const auto& run) { return run->curves.id == id; });
  if (it == runs_.end()) return;
  for (int p = 0; p < int(plots_.size()); ++p) {
    plots_[p].widget->removeGraph((*it)->series[p].raw);
    plots_[p].widget->removeGraph((*it)->series[p].smooth);
  }
  runs_.erase(it);
  clearHover();
  markAllDirty(/*rebuild=*/false);
}

QStringList CurvePanel::runIds() const {
  QStringList ids;
  for (const auto& run : runs_) ids << run->curves.id;
  return ids;
}

void CurvePanel::setSmoothing(double weight) {
  weight = std::clamp(weight, 0.0, kSliderSteps / 100.0);
  {
    const QSignalBlocker blocker(smoothingSlider_);
    smoothingSlider_->setValue(int(std::lround(weight * 100)));
  }
  smoothingValue_->setText(QString::number(weight, 'f', 2));
  if (weight == smoothing_) return;
  smoothing_ = weight;
  markAllDirty(/*rebuild=*/true);
}

double CurvePanel::smoothing() const { return smoothing_; }

void CurvePanel::setLogY(bool on) {
  {
    const QSignalBlocker blocker(logYBox_);
    logYBox_->setChecked(on);
  }
  if (on == logY_) return;
  logY_ = on;
  for (int p = 0; p < int(plots_.size()); ++p) {
    plots_[p].userZoomed = false;  // a linear range means nothing on a log axis
    applyAxisStyle(p);
  }
  markAllDirty(/*rebuild=*/true);
}

bool CurvePanel::logY() const { return logY_; }

void CurvePanel::setXAxis(XAxis axis) {
  {
    const QSignalBlocker blocker(xAxisCombo_);
    xAxisCombo_->setCurrentIndex(xAxisCombo_->findData(int(axis)));
  }
  if (axis == xAxis_) return;
  xAxis_ = axis;
  for (int p = 0; p < int(plots_.size()); ++p) {
    plots_[p].userZoomed = false;
    applyAxisStyle(p);
  }
  markAllDirty(/*rebuild=*/true);
}

XAxis CurvePanel::xAxis() const { return xAxis_; }

int CurvePanel::pointCount(const QString& plot, const QString& id) const {
  const int p = plotIndex(plot);
  const Run* run = findRun(id);
  if (p < 0 || !run) return -1;
  return run->series[p].raw->dataCount();
}

QCustomPlot* CurvePanel::plot(const QString& name) const {
  const int p = plotIndex(name);
  return p < 0 ? nullptr : plots_[p].widget;
}

void CurvePanel::markDirty(int plot, bool rebuild) {
  dirty_[plot] = true;
  if (rebuild) {
    clearHover();  // the tracer would point at a value that is about to move
    for (auto& run : runs_) run->series[plot].rebuild = true;
  }
  if (!redrawTimer_->isActive()) redrawTimer_->start();
}

void CurvePanel::markAllDirty(bool rebuild) {
  for (int p = 0; p < int(plots_.size()); ++p) markDirty(p, rebuild);
}

void CurvePanel::flushRedraw() {
  redrawTimer_->stop();
  for (int p = 0; p < int(plots_.size()); ++p) {
    if (dirty_[p]) redrawPlot(p);
    dirty_[p] = false;
  }
}

void CurvePanel::redrawPlot(int p) {
  PlotView& view = plots_[p];
  bool anyPoints = false;
  for (auto& run : runs_) {
    updateSeries(*run, p);
    anyPoints = anyPoints || run->series[p].raw->dataCount() > 0;
  }
  QCustomPlot* plot = view.widget;
  updateLegendEntries(p);
  view.emptyText->setVisible(!anyPoints);
  // An empty plot stays quiet: no made-up 0..1 tick labels next to "no data".
  plot->xAxis->setTickLabels(anyPoints);
  plot->yAxis->setTickLabels(anyPoints);
  if (!view.userZoomed) rescale(p);
  placeLegend(p);
  plot->replot();
}

void CurvePanel::updateSeries(Run& run, int p) {
  Series& series = run.series[p];
  const bool isEval = plots_[p].name == kEvalPlot;
  const bool smoothed = isSmoothed(plots_[p].name);
  const CurveTable& table = isEval ? run.curves.eval : run.curves.metrics;
  if (series.rebuild) {
    series.raw->data()->clear();
    series.smooth->data()->clear();
    series.rowsDone = 0;
    series.ema = DebiasedEmaState(smoothed ? smoothing_ : 0.0);
    series.keyMin = series.valueMin = kInf;
    series.keyMax = series.valueMax = -kInf;
    series.rebuild = false;
  }
  const QVector<double> values = table.columns.value(plots_[p].name);
  const int rows = table.rows();
  QVector<double> rawKeys, rawValues, smoothKeys, smoothValues;
  rawKeys.reserve(rows - series.rowsDone);
  rawValues.reserve(rows - series.rowsDone);
  for (int row = series.rowsDone; row < rows; ++row) {
    const double value = valueAt(values, row);
    if (!std::isfinite(value)) continue;
    const double smoothedValue =
        series.ema.push(value);  // before the key/log checks: same EMA always
    const double key = keyAt(table, run.curves.metrics, xAxis_, row);
    if (!std::isfinite(key)) continue;
    if (!logY_ || value > 0) {
      rawKeys.append(key);
      rawValues.append(value);
      series.keyMin = std::min(series.keyMin, key);
      series.keyMax = std::max(series.keyMax, key);
      series.valueMin = std::min(series.valueMin, value);
      series.valueMax = std::max(series.valueMax, value);
    }
    if (smoothed && (!logY_ || smoothedValue > 0)) {
      smoothKeys.append(key);
      smoothValues.append(smoothedValue);
    }
  }
  rowsRead_ += std::max(0, rows - series.rowsDone);
  series.rowsDone = rows;
  // Logged steps are ascending, so QCustomPlot appends instead of re-sorting 50k points.
  series.raw->addData(rawKeys, rawValues, std::is_sorted(rawKeys.begin(), rawKeys.end()));
  series.smooth->addData(smoothKeys, smoothValues,
                         std::is_sorted(smoothKeys.begin(), smoothKeys.end()));
  // A line needs two points: a lone point (a run stopped at its first log row, a sweep cell that
  // logged once) is drawn as a dot, or it would be listed in the legend and drawn nowhere. Sparse
  // k-NN rows keep hollow markers while they stay readable. The marker goes on the curve the eye
  // follows (the smoothed one where there is one); the legend entry (the smoothed graph) copies
  // it so that its icon matches.
  QCPGraph* shown = series.smooth->dataCount() > 0 ? series.smooth : series.raw;
  const int points = shown->dataCount();
  QCPScatterStyle marker;
  if (points < 2)
    marker = QCPScatterStyle(QCPScatterStyle::ssDisc, run.colour, 7);
  else if (isEval && points <= kMaxScatterPoints)
    marker = QCPScatterStyle(QCPScatterStyle::ssCircle, run.colour, 5);
  series.raw->setScatterStyle(shown == series.raw ? marker : QCPScatterStyle());
  series.smooth->setScatterStyle(marker);
}

bool CurvePanel::eventFilter(QObject* watched, QEvent* event) {
  if (event->type() == QEvent::Leave) clearHover();
  // The title (the log's key) explains itself in a tooltip; the rest of the plot has none, so
  // that nothing pops up over the curves while reading them.
  if (event->type() == QEvent::ToolTip) {
    const auto* help = static_cast<QHelpEvent*>(event);
    for (const PlotView& view : plots_) {
      if (view.widget != watched) continue;
      const QRect title = view.title->outerRect();
      if (title.contains(help->pos())) {
        QToolTip::showText(help->globalPos(), view.description, view.widget, title);
      } else {
        QToolTip::hideText();
      }
      return true;
    }
  }
  // A resized plot re-fits its legend (names and corner) at the next coalesced redraw.
  if (event->type() == QEvent::Resize)
    for (int p = 0; p < int(plots_.size()); ++p)
      if (plots_[p].widget == watched) markDirty(p, /*rebuild=*/false);
  return QWidget::eventFilter(watched, event);
}

void CurvePanel::showContextMenu(int p, const QPoint& pos) {
  lastMenuPlot_ = p;
  QMenu menu(this);
  menu.addAction(tr("Export figure…"), this, [this, p] { exportFigureDialog(p); });
  menu.addAction(tr("Export data (CSV)…"), this, [this, p] { exportCsvDialog(p); });
  menu.addSeparator();
  menu.addAction(tr("Reset zoom"), this, [this, p] {
    plots_[p].userZoomed = false;
    rescale(p);
    plots_[p].widget->replot();
  });
  menu.exec(plots_[p].widget->mapToGlobal(pos));
}

}  // namespace mst
