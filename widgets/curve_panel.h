/// @brief Live training curves of several runs: a grid of QCustomPlot plots with smoothing, log-y,
/// a choice of x axis, hover read-out and figure/CSV export.
#pragma once

#include <QColor>
#include <QStringList>
#include <QWidget>
#include <memory>
#include <vector>

#include "widgets/curve_table.h"

class QCheckBox;
class QComboBox;
class QCPGraph;
class QCPItemText;
class QCPItemTracer;
class QCPTextElement;
class QCustomPlot;
class QLabel;
class QMouseEvent;
class QSlider;
class QTimer;

namespace mst {

/// Grid of small plots, one per metric, each with one curve per run: the raw values faded and a
/// debiased-EMA smoothed curve over them. Changes only mark plots dirty; a 40 ms single-shot timer
/// redraws the dirty plots, so live appends never cost a redraw per row. A lone point is drawn as
/// a dot. The legend lists the runs drawn in a plot, each under one label in every plot, in the
/// corner that covers no data point, else below the axes. GUI thread only.
class CurvePanel : public QWidget {
  Q_OBJECT

 public:
  explicit CurvePanel(QWidget* parent = nullptr);
  ~CurvePanel() override;

  /// Plot names in display order: loss, loss_ce, loss_rec, knn_top1 (from the eval table), lr,
  /// wd, momentum, teacher_temp, mask_ratio. One small plot each in a grid (3 columns).
  QStringList plotNames() const;
  /// Adds a run, or replaces the curves and label of the run with the same id (keeping its colour).
  void setRun(const RunCurves& run);
  /// Appends live rows to run `id` (a new run labelled `id` when unknown).
  void appendRows(const QString& id, const CurveTable& metrics, const CurveTable& eval);
  /// Removes run `id` from every plot; unknown ids are ignored.
  void removeRun(const QString& id);
  /// Run ids in insertion order.
  QStringList runIds() const;

  /// EMA weight, clamped to 0 .. 0.99; the toolbar slider shows it. k-NN accuracy (sparse) is
  /// never smoothed.
  void setSmoothing(double weight);
  double smoothing() const;
  /// Logarithmic value axes (QCPAxisTickerLog); non-positive values are skipped while on.
  void setLogY(bool on);
  bool logY() const;
  /// Key axis of every plot. Eval rows without their own epoch/wall time take them from the
  /// metrics table by interpolating over step; runs without wall_s have no points in WallTime.
  void setXAxis(XAxis axis);
  XAxis xAxis() const;

  /// Points drawn for `plot` of run `id` (raw curve) after the last redraw; -1 when unknown.
  int pointCount(const QString& plot, const QString& id) const;
  /// Table rows read into plot points since construction, over all plots and runs: a live
  /// append reads only its new rows; a change of smoothing, log-y or x axis reads everything.
  qint64 rowsRead() const { return rowsRead_; }
  /// Redraws the dirty plots now (normally the 40 ms coalescing timer does it).
  void flushRedraw();
  /// The plot widget named `name`, or nullptr.
  QCustomPlot* plot(const QString& name) const;

  /// Writes one plot as .png, .pdf or .svg (by suffix), width x height pixels. False and *error
  /// on a bad suffix, an unknown plot or an unwritable path.
  bool exportFigure(const QString& plot, const QString& path, int width, int height,
                    QString* error = nullptr);
  /// CSV of one plot: header row, then one row per logged value of each run: run label, step,
  /// epoch, wall_s, raw value, smoothed value.
  bool exportCsv(const QString& plot, const QString& path, QString* error = nullptr) const;

 signals:
  /// The read-out under the cursor, e.g. "step 1234 · run-a 0.4123 · run-b 0.3987"; empty when the
  /// cursor leaves a plot.
  void hoverText(const QString& text);

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  /// One run's curve in one plot, with what is needed to extend it by appended rows only.
  struct Series {
    QCPGraph* raw = nullptr;
    QCPGraph* smooth = nullptr;
    int rowsDone = 0;  // table rows already turned into points
    DebiasedEmaState ema;
    bool rebuild = true;  // points must be recomputed from row 0 (smoothing/axis/log change)
    double keyMin, keyMax, valueMin, valueMax;  // of the raw points drawn, for cheap rescaling
  };
  struct Run {
    RunCurves curves;
    QString legendLabel;  // the same in every plot (see legendLabelFor)
    QColor colour;
    std::vector<Series> series;  // by plot index
  };
  struct PlotView {
    QString name;
    QCustomPlot* widget = nullptr;
    QCPItemText* emptyText = nullptr;
    QCPItemTracer* tracer = nullptr;
    QCPTextElement* title = nullptr;
    QString description;      // what the key means, in words: the title's tooltip
    double spanFloor = 0;     // smallest y span autoscaling shows, in the plot's unit (rescale)
    bool userZoomed = false;  // the user dragged or wheeled: keep their range on redraws
    bool legendBelow = false;  // no free corner: the legend sits below the axes
  };

  QWidget* buildToolbar();
  void buildPlot(int index);
  Run* findRun(const QString& id) const;
  int plotIndex(const QString& name) const;
  void markDirty(int plot, bool rebuild);
  void markAllDirty(bool rebuild);
  void redrawPlot(int plot);
  void updateSeries(Run& run, int plot);
  void rescale(int plot);
  void updateLegendEntries(int plot);
  void placeLegend(int plot);
  void setLegendBelow(int plot, bool below);
  QString legendLabelFor(const QString& label) const;
  void applyAxisStyle(int plot);
  void styleSeries(const Run& run, int plot);
  QString keyText(double key) const;
  void hover(int plot, const QPoint& pos);
  void clearHover();
  void showContextMenu(int plot, const QPoint& pos);
  void exportFigureDialog(int plot);
  void exportAllDialog();
  void exportCsvDialog(int plot);

  std::vector<std::unique_ptr<Run>> runs_;  // insertion order
  qint64 rowsRead_ = 0;
  std::vector<PlotView> plots_;             // display order
  std::vector<bool> dirty_;                 // by plot index
  int nextColour_ = 0;
  double smoothing_ = 0.6;
  bool logY_ = false;
  XAxis xAxis_ = XAxis::Step;
  int lastMenuPlot_ = 0;  // plot under the last right-click, for the toolbar's Export menu
  QString lastDir_;       // where the last export went, so the next dialog starts there

  QTimer* redrawTimer_ = nullptr;
  QSlider* smoothingSlider_ = nullptr;
  QLabel* smoothingValue_ = nullptr;
  QCheckBox* logYBox_ = nullptr;
  QComboBox* xAxisCombo_ = nullptr;
  QLabel* hoverLabel_ = nullptr;
};

}  // namespace mst
