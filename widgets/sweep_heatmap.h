/// @brief Sweep heat map: a Table 5 style grid of one readout (e.g. k-NN top-1) over two config
/// keys, with each cell's run state, a colour bar, figure and CSV export.
#pragma once

#include <QRect>
#include <QString>
#include <QStringList>
#include <QTimer>
#include <QVector>
#include <QWidget>
#include <QtNumeric>

namespace mst {

enum class CellState { Pending, Running, Done, Failed };

/// Lower-case name used in CSV files and tooltips: "pending", "running", "done", "failed".
QString cellStateName(CellState state);

/// Which done cell is drawn bold, as the paper's tables mark the best one.
enum class BestCell { Highest, Lowest, None };

/// Table 5 style grid: rows = values of one key (e.g. masking.num), columns = another (masking.p).
/// Paints itself (no child widgets), so it renders offscreen as on screen. Row and column values
/// are matched as exact strings.
class SweepHeatmap : public QWidget {
  Q_OBJECT
 public:
  explicit SweepHeatmap(QWidget* parent = nullptr);

  /// Sets both axes; every cell becomes Pending with no value and no run.
  void setAxes(const QString& row_key, const QStringList& rows, const QString& col_key,
               const QStringList& cols);
  /// Name of the value shown in the cells, for the colour bar and the CSV tooltip.
  void setReadoutName(const QString& name);  // e.g. "k-NN top-1 %"
  /// Highest (accuracies, the default), Lowest (losses) or None (e.g. a masked share).
  void setBestCell(BestCell best);

  /// A value as the cells, colour bar and tooltips show it: two decimals, more when the done
  /// cells' values are too close for two to tell apart (up to four).
  QString formatValue(double value) const;

  /// Updates one cell; an unknown row or column is ignored with a warning.
  /// `details`: more about the cell for its tooltip, one "name: value" per entry (e.g. every
  /// read-out, not only the one coloured).
  void setCell(const QString& row, const QString& col, CellState state, double value = qQNaN(),
               const QString& run_dir = QString(), const QStringList& details = {});
  /// NaN for an unknown cell or one without a value.
  double value(const QString& row, const QString& col) const;
  /// Pending for an unknown cell.
  CellState state(const QString& row, const QString& col) const;
  /// Empty for an unknown cell or one without a run.
  QString runDir(const QString& row, const QString& col) const;

  /// The tooltip of a cell (rich text): its grid values, state, value, details and run folder;
  /// empty for an unknown cell.
  QString toolTipFor(const QString& row, const QString& col) const;

  /// The cell's rectangle in widget coordinates; empty for an unknown cell.
  QRect cellRect(const QString& row, const QString& col) const;
  /// The colour bar's rectangle in widget coordinates (labels beside it, not included).
  QRect colourBarRect() const;
  /// Whether the done cells' values differ as shown (formatValue): otherwise every done cell
  /// and the whole colour bar take the middle colour, and the bar has a single label.
  bool hasSpread() const;

  bool exportFigure(const QString& path, QString* error = nullptr) const;  // png/pdf/svg
  /// CSV with header `<row_key>,<col_key>,state,value,run_dir`, then one line per cell in row-major
  /// order; a missing value is an empty field. False + *error on failure.
  bool exportCsv(const QString& path, QString* error = nullptr) const;

  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;

 signals:
  void cellActivated(const QString& run_dir);  // click on a cell that has a run

 protected:
  void paintEvent(QPaintEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  bool event(QEvent* event) override;
  void showEvent(QShowEvent* event) override;
  void hideEvent(QHideEvent* event) override;
  void changeEvent(QEvent* event) override;

 private:
  struct Cell {
    CellState state = CellState::Pending;
    double value = qQNaN();
    QString run_dir;
    QStringList details;
  };
  QString toolTipAt(int index) const;
  /// Geometry for one font, shared by the widget and the figure.
  struct Layout {
    int margin = 10, cell_w = 84, cell_h = 40, gap = 3;
    int axis_title = 0, row_label_w = 0, col_label_h = 0, bar_gap = 18, bar_w = 14;
    int bar_label_w = 0, readout_w = 0;
    QPoint origin;  // top-left of cell (0, 0)
    QRect bar;      // the colour bar
    int row_title_top = 0, row_title_h = 0;  // span of the row key, which reads upwards
    QSize size;
    QRect cell(int row, int col) const;
  };
  Layout layoutFor(const QFont& font) const;
  /// Where the map's top-left corner sits in the widget: the map is centred in a larger widget.
  QPoint mapOffset() const;
  void paintMap(QPainter& painter, const Layout& layout, const QFont& font, bool figure) const;
  int indexOf(const QString& row, const QString& col) const;
  /// Index of the cell under `pos`, or -1.
  int cellAt(const QPoint& pos) const;
  /// Min and max over finite values of Done cells; false when there are none.
  bool valueRange(double* lo, double* hi) const;
  void updateTimer();

  QString row_key_, col_key_, readout_ = QStringLiteral("value");
  BestCell best_ = BestCell::Highest;
  QStringList rows_, cols_;
  QVector<Cell> cells_;  // row-major
  int pressed_ = -1;
  int dash_phase_ = 0;  // advances while cells run, so running cells visibly march
  QTimer pulse_;
};

}  // namespace mst
