/// @brief ConfusionHeatmap painting, tooltips, figure and CSV export.
#include "widgets/confusion_heatmap.h"

#include <QEvent>
#include <QHelpEvent>
#include <QLinearGradient>
#include <QPainter>
#include <QSaveFile>
#include <QTextStream>
#include <QToolTip>
#include <algorithm>
#include <cmath>

#include "widgets/probe_image.h"

namespace mst {
namespace {

constexpr int kFigureFontPixels = 13;
/// Up to this many classes the cells are big enough for "100.0"; above, they shrink so that the
/// grid stays about kGridTarget pixels wide.
constexpr int kFullSizeClasses = 12;
constexpr int kGridTarget = 640;
constexpr int kMinCell = 6;
const QColor kNoImagesFill(0xE9, 0xEC, 0xEF);
const QColor kDiagonal(0xE0, 0x6C, 0x00);  // orange: reads on white and on dark blue

/// matplotlib's "Blues": white for 0 %, dark blue for 100 %, so that a mostly empty matrix is
/// light and its confusions stand out.
const QColor kBlues[] = {
    QColor(0xF7, 0xFB, 0xFF), QColor(0xDE, 0xEB, 0xF7), QColor(0xC6, 0xDB, 0xEF),
    QColor(0x9E, 0xCA, 0xE1), QColor(0x6B, 0xAE, 0xD6), QColor(0x42, 0x92, 0xC6),
    QColor(0x21, 0x71, 0xB5), QColor(0x08, 0x51, 0x9C), QColor(0x08, 0x30, 0x6B)};



/// Every `step`-th label is drawn when the cells are lower than a line of text.
int labelStep(int cell, const QFontMetrics& m) {
  return std::max(1, static_cast<int>(std::ceil(double(m.height()) / std::max(cell, 1))));
}

}  // namespace

ConfusionHeatmap::ConfusionHeatmap(QWidget* parent) : QWidget(parent) {}

void ConfusionHeatmap::setMatrix(const QStringList& classes,
                                 const QVector<QVector<qint64>>& counts) {
  const bool square = counts.size() == classes.size() &&
                      std::all_of(counts.begin(), counts.end(), [&](const QVector<qint64>& row) {
                        return row.size() == classes.size() &&
                               std::all_of(row.begin(), row.end(), [](qint64 n) { return n >= 0; });
                      });
  if (square) {
    classes_ = classes;
    counts_ = counts;
  } else {
    qWarning("ConfusionHeatmap: a %lld x ? matrix of counts for %lld classes (or a negative count)",
             static_cast<long long>(counts.size()), static_cast<long long>(classes.size()));
    classes_.clear();
    counts_.clear();
  }
  updateGeometry();
  update();
}

void ConfusionHeatmap::setTitle(const QString& title) {
  title_ = title;
  updateGeometry();
  update();
}

qint64 ConfusionHeatmap::count(int t, int p) const {
  if (t < 0 || p < 0 || t >= counts_.size() || p >= counts_.size()) return -1;
  return counts_[t][p];
}

qint64 ConfusionHeatmap::rowTotal(int t) const {
  qint64 total = 0;
  for (qint64 n : counts_[t]) total += n;
  return total;
}

double ConfusionHeatmap::percent(int t, int p) const {
  const qint64 n = count(t, p);
  if (n < 0) return qQNaN();
  const qint64 total = rowTotal(t);
  return total > 0 ? 100.0 * double(n) / double(total) : qQNaN();
}

QString ConfusionHeatmap::textFor(int t, int p, int decimals) const {
  if (decimals < 0 || count(t, p) <= 0) return QString();
  return QString::number(percent(t, p), 'f', decimals);
}

QString ConfusionHeatmap::cellText(int t, int p) const {
  return textFor(t, p, layoutFor(font()).decimals);
}

QColor ConfusionHeatmap::colourFor(double percent) {
  if (!std::isfinite(percent)) return kNoImagesFill;
  constexpr int last = int(std::size(kBlues)) - 1;
  const double x = std::clamp(percent / 100.0, 0.0, 1.0) * last;
  const int i = std::min(static_cast<int>(x), last - 1);
  const double f = x - i;
  const QColor &a = kBlues[i], &b = kBlues[i + 1];
  // 8 bits a channel, as painted.
  return QColor(QColor::fromRgbF(a.redF() + f * (b.redF() - a.redF()),
                                 a.greenF() + f * (b.greenF() - a.greenF()),
                                 a.blueF() + f * (b.blueF() - a.blueF()))
                    .rgb());
}

ConfusionHeatmap::Layout ConfusionHeatmap::layoutFor(const QFont& font) const {
  Layout layout;
  QFont bold = font;
  bold.setBold(true);
  const QFontMetrics m(font), mb(bold);
  const int n = std::max<int>(classes_.size(), 1);
  layout.title_h = title_.isEmpty() ? 0 : mb.height() + 8;
  layout.axis_title = mb.height() + 4;
  // Bold on the diagonal: the widest number is a bold "100.0".
  const int one_decimal = mb.horizontalAdvance(QStringLiteral("100.0")) + 8;
  const int no_decimal = mb.horizontalAdvance(QStringLiteral("100")) + 6;
  layout.cell = n <= kFullSizeClasses ? std::max(one_decimal, 2 * m.height() + 4)
                                      : std::max(kMinCell, std::min(one_decimal, kGridTarget / n));
  if (layout.cell >= m.height() + 2)
    layout.decimals = layout.cell >= one_decimal ? 1 : layout.cell >= no_decimal ? 0 : -1;
  int label = 0;
  for (const QString& c : classes_) label = std::max(label, m.horizontalAdvance(c));
  layout.rotate_cols = label + 6 > layout.cell;
  layout.col_label_h = layout.rotate_cols ? label + 8 : m.height() + 4;
  layout.row_label_w = label + 10;
  // The images per class, right of the grid, while every row has its label.
  if (labelStep(layout.cell, m) == 1 && !counts_.isEmpty()) {
    int widest = m.horizontalAdvance(QStringLiteral("images"));
    for (int t = 0; t < counts_.size(); ++t)
      widest = std::max(widest, m.horizontalAdvance(QString::number(rowTotal(t))));
    layout.total_w = widest + 14;
  }
  layout.bar_label_w = m.horizontalAdvance(QStringLiteral("100 %")) + 6;
  layout.origin = QPoint(layout.margin + layout.axis_title + layout.row_label_w,
                         layout.margin + layout.title_h + layout.axis_title + layout.col_label_h);
  const int grid = n * layout.cell;
  const int bar_h = std::max(grid, 5 * m.height());
  layout.bar = QRect(layout.origin.x() + grid + layout.total_w + layout.bar_gap, layout.origin.y(),
                     layout.bar_w, bar_h);
  const int width = std::max(layout.bar.right() + 5 + layout.bar_label_w + layout.margin,
                             2 * layout.margin + mb.horizontalAdvance(title_));
  layout.size = QSize(width, layout.origin.y() + bar_h + layout.margin);
  return layout;
}

QPoint ConfusionHeatmap::mapOffset() const {
  const QSize map = layoutFor(font()).size;
  return QPoint(std::max(0, (width() - map.width()) / 2),
                std::max(0, (height() - map.height()) / 2));
}

QRect ConfusionHeatmap::cellRect(int t, int p) const {
  if (count(t, p) < 0) return QRect();
  return layoutFor(font()).cellAt(t, p).translated(mapOffset());
}

QSize ConfusionHeatmap::sizeHint() const { return layoutFor(font()).size; }
QSize ConfusionHeatmap::minimumSizeHint() const { return layoutFor(font()).size; }

void ConfusionHeatmap::paintMap(QPainter& painter, const Layout& layout, const QFont& font,
                                bool figure) const {
  const QColor text = figure ? QColor(Qt::black) : palette().color(QPalette::WindowText);
  QFont bold = font;
  bold.setBold(true);
  const QFontMetrics m(font);
  const int n = classes_.size();
  const int grid = std::max(n, 1) * layout.cell;
  const int step = labelStep(layout.cell, m);

  painter.setPen(text);
  painter.setFont(bold);
  if (!title_.isEmpty())
    painter.drawText(QRect(layout.margin, layout.margin, layout.size.width() - 2 * layout.margin,
                           layout.title_h),
                     Qt::AlignLeft | Qt::AlignTop, title_);
  const int col_title_top = layout.margin + layout.title_h;
  painter.drawText(QRect(layout.origin.x(), col_title_top, grid, layout.axis_title),
                   Qt::AlignCenter, tr("predicted class"));
  painter.save();
  painter.translate(layout.margin, layout.origin.y() + grid);
  painter.rotate(-90);
  painter.drawText(QRect(0, 0, grid, layout.axis_title), Qt::AlignCenter, tr("true class"));
  painter.restore();

  painter.setFont(font);
  for (int i = 0; i < n; i += step) {
    const QRect cell = layout.cellAt(i, i);
    // Column labels above the grid (reading upwards when wider than a cell), row labels left.
    if (layout.rotate_cols) {
      painter.save();
      painter.translate(cell.left(), layout.origin.y() - 4);
      painter.rotate(-90);
      painter.drawText(QRect(0, 0, layout.col_label_h - 4, layout.cell),
                       Qt::AlignLeft | Qt::AlignVCenter, classes_[i]);
      painter.restore();
    } else {
      painter.drawText(QRect(cell.left(), layout.origin.y() - layout.col_label_h, cell.width(),
                             layout.col_label_h - 2),
                       Qt::AlignHCenter | Qt::AlignBottom, classes_[i]);
    }
    painter.drawText(QRect(layout.origin.x() - layout.row_label_w, cell.top(),
                           layout.row_label_w - 6, cell.height()),
                     Qt::AlignRight | Qt::AlignVCenter, classes_[i]);
  }

  painter.setRenderHint(QPainter::Antialiasing, false);
  const bool lines = layout.cell >= 12;  // a white line between cells while they are large
  for (int t = 0; t < n; ++t) {
    for (int p = 0; p < n; ++p) {
      const QRect rect = layout.cellAt(t, p);
      const QColor fill = colourFor(percent(t, p));
      painter.fillRect(lines ? rect.adjusted(0, 0, -1, -1) : rect, fill);
      const QString label = textFor(t, p, layout.decimals);
      if (label.isEmpty()) continue;
      painter.setFont(t == p ? bold : font);
      painter.setPen(textOn(fill));
      painter.drawText(rect.adjusted(0, 0, -1, -1), Qt::AlignCenter, label);
    }
  }
  // The diagonal (each class's top-1) outlined, so that it reads at any colour.
  if (layout.cell >= 8) {
    painter.setPen(QPen(kDiagonal, layout.cell >= 24 ? 2 : 1));
    painter.setBrush(Qt::NoBrush);
    for (int i = 0; i < n; ++i) {
      const QRect r = layout.cellAt(i, i).adjusted(0, 0, -1, -1);
      painter.drawRect(layout.cell >= 24 ? r.adjusted(1, 1, -1, -1) : r);
    }
  }
  painter.setPen(QPen(text, 1));
  painter.setBrush(Qt::NoBrush);
  if (n > 0) painter.drawRect(QRect(layout.origin, QSize(grid, grid)).adjusted(-1, -1, 0, 0));

  if (layout.total_w > 0) {
    painter.setFont(font);
    painter.setPen(text);
    const int left = layout.origin.x() + grid + 6;
    painter.drawText(
        QRect(left, layout.origin.y() - m.height() - 2, layout.total_w - 6, m.height()),
        Qt::AlignRight | Qt::AlignBottom, tr("images"));
    for (int t = 0; t < n; ++t)
      painter.drawText(QRect(left, layout.cellAt(t, 0).top(), layout.total_w - 6, layout.cell),
                       Qt::AlignRight | Qt::AlignVCenter, QString::number(rowTotal(t)));
  }

  // Colour bar: the fixed 0–100 % scale, 0 at the bottom.
  const QRect bar = layout.bar;
  QLinearGradient gradient(bar.bottomLeft(), bar.topLeft());
  for (int i = 0; i <= 20; ++i) gradient.setColorAt(i / 20.0, colourFor(5.0 * i));
  painter.fillRect(bar, gradient);
  painter.setPen(QPen(text, 1));
  painter.drawRect(bar.adjusted(0, 0, -1, -1));
  painter.setFont(font);
  const QRect labels(bar.right() + 5, bar.top(), layout.bar_label_w, bar.height());
  painter.drawText(labels, Qt::AlignLeft | Qt::AlignTop, QStringLiteral("100 %"));
  painter.drawText(labels, Qt::AlignLeft | Qt::AlignVCenter, QStringLiteral("50 %"));
  painter.drawText(labels, Qt::AlignLeft | Qt::AlignBottom, QStringLiteral("0 %"));
}

void ConfusionHeatmap::paintEvent(QPaintEvent*) {
  QPainter painter(this);
  painter.setRenderHint(QPainter::TextAntialiasing);
  painter.translate(mapOffset());
  paintMap(painter, layoutFor(font()), font(), false);
}

bool ConfusionHeatmap::cellUnder(const QPoint& pos, int* t, int* p) const {
  const Layout layout = layoutFor(font());
  const QPoint at = pos - mapOffset() - layout.origin;
  const int n = classes_.size();
  if (at.x() < 0 || at.y() < 0 || at.x() >= n * layout.cell || at.y() >= n * layout.cell)
    return false;
  *t = at.y() / layout.cell;
  *p = at.x() / layout.cell;
  return true;
}

QString ConfusionHeatmap::toolTipFor(int t, int p) const {
  if (count(t, p) < 0) return QString();
  const qint64 total = rowTotal(t);
  if (total == 0) return tr("no test images of %1").arg(classes_[t]);
  return tr("true: %1\npredicted: %2\n%3 of %4 images (%5 %)")
      .arg(classes_[t], classes_[p])
      .arg(count(t, p))
      .arg(total)
      .arg(percent(t, p), 0, 'f', 1);
}

bool ConfusionHeatmap::event(QEvent* event) {
  if (event->type() == QEvent::ToolTip) {
    const auto* help = static_cast<QHelpEvent*>(event);
    int t = 0, p = 0;
    if (!cellUnder(help->pos(), &t, &p)) {
      QToolTip::hideText();
      event->ignore();
      return true;
    }
    QToolTip::showText(help->globalPos(), toolTipFor(t, p), this, cellRect(t, p));
    return true;
  }
  return QWidget::event(event);
}

void ConfusionHeatmap::changeEvent(QEvent* event) {
  if (event->type() == QEvent::FontChange) updateGeometry();
  QWidget::changeEvent(event);
}

bool ConfusionHeatmap::exportFigure(const QString& path, QString* error) const {
  QFont font = this->font();
  font.setPixelSize(kFigureFontPixels);  // the same layout on every device
  const Layout layout = layoutFor(font);
  return paintToFile(
      path, layout.size, [&](QPainter& painter) { paintMap(painter, layout, font, true); }, error,
      title_);
}

bool ConfusionHeatmap::exportCsv(const QString& path, QString* error) const {
  return writeTextFile(
      path,
      [&](QTextStream& out) {
        out << "true \\ predicted";
        for (const QString& c : classes_) out << ',' << csvField(c);
        out << '\n';
        for (int t = 0; t < counts_.size(); ++t) {
          out << csvField(classes_[t]);
          for (qint64 n : counts_[t]) out << ',' << n;
          out << '\n';
        }
      },
      error);
}

}  // namespace mst
