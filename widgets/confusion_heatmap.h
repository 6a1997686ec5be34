/// @brief ConfusionHeatmap: a classifier's confusion matrix as a heat map, each row normalised to
/// percent of that true class's images, with class names on both axes, figure and CSV export.
#pragma once

#include <QRect>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

namespace mst {

/// Rows = true class, columns = predicted class; a cell shows the share (percent) of the row's
/// images that were predicted as the column's class, so that each row with images sums to 100
/// and the diagonal is each class's top-1. Colour on a fixed 0–100 % scale (white to dark blue),
/// the diagonal outlined; the numbers are written in the cells while they fit (up to about 25
/// classes), the tooltip gives every cell's count. Paints itself, so it renders offscreen as on
/// screen.
class ConfusionHeatmap : public QWidget {
  Q_OBJECT
 public:
  explicit ConfusionHeatmap(QWidget* parent = nullptr);

  /// `counts[t][p]`: images of true class t predicted as p, C x C with C = classes.size(). A
  /// matrix of another shape (or a negative count) clears the map, with a warning.
  void setMatrix(const QStringList& classes, const QVector<QVector<qint64>>& counts);
  /// The line above the map (e.g. "k-NN: % of each true class's test images").
  void setTitle(const QString& title);
  QString title() const { return title_; }
  int classCount() const { return classes_.size(); }

  /// Images of true class `t` predicted as `p`; -1 outside the matrix.
  qint64 count(int t, int p) const;
  /// count(t, p) in percent of the images of class `t`; NaN outside the matrix or for a class
  /// without images.
  double percent(int t, int p) const;
  /// The text written in cell (t, p): percent(t, p) with one decimal (none when the cells are
  /// narrow), empty for a cell without images predicted there or when the cells are too small.
  QString cellText(int t, int p) const;
  /// The fill of a cell showing `percent` (fixed scale: 0 white, 100 dark blue).
  static QColor colourFor(double percent);

  /// Cell (t, p) in widget coordinates; empty outside the matrix.
  QRect cellRect(int t, int p) const;
  /// Plain-text tooltip of a cell: true and predicted class, count, share of the row.
  QString toolTipFor(int t, int p) const;

  bool exportFigure(const QString& path, QString* error = nullptr) const;  // png/pdf/svg
  /// CSV of the counts: header `true \ predicted,<class>,...`, then one line per true class with
  /// its name and C counts. False + *error on failure.
  bool exportCsv(const QString& path, QString* error = nullptr) const;

  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;

 protected:
  void paintEvent(QPaintEvent* event) override;
  bool event(QEvent* event) override;
  void changeEvent(QEvent* event) override;

 private:
  /// Geometry for one font, shared by the widget and the figure.
  struct Layout {
    int margin = 10, title_h = 0, axis_title = 0;
    int row_label_w = 0, col_label_h = 0;
    int cell = 0, decimals = -1;  // decimals < 0: no numbers in the cells
    bool rotate_cols = false;     // column labels read upwards when they are wider than a cell
    int total_w = 0;              // the "images" column right of the grid
    int bar_gap = 18, bar_w = 14, bar_label_w = 0;
    QPoint origin;  // top-left of cell (0, 0)
    QRect bar;
    QSize size;
    QRect cellAt(int t, int p) const {
      return QRect(origin.x() + p * cell, origin.y() + t * cell, cell, cell);
    }
  };
  Layout layoutFor(const QFont& font) const;
  QPoint mapOffset() const;
  void paintMap(QPainter& painter, const Layout& layout, const QFont& font, bool figure) const;
  qint64 rowTotal(int t) const;
  QString textFor(int t, int p, int decimals) const;
  /// (t, p) of the cell under `pos`, or false.
  bool cellUnder(const QPoint& pos, int* t, int* p) const;

  QString title_;
  QStringList classes_;
  QVector<QVector<qint64>> counts_;
};

}  // namespace mst
