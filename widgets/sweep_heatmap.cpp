/// @brief Sweep heat map painting, hit testing, tooltips, figure and CSV export.
#include "widgets/sweep_heatmap.h"

#include <QFile>
#include <QHelpEvent>
#include <QLinearGradient>
#include <QMouseEvent>
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
const QColor kPendingFill(0xE9, 0xEC, 0xEF);
const QColor kPendingText(0x86, 0x8E, 0x96);
const QColor kRunningAccent(0x1C, 0x7E, 0xD6);
const QColor kFailedFill(0xFF, 0xE3, 0xE3);
const QColor kFailedAccent(0xC9, 0x2A, 0x2A);




}  // namespace

QString cellStateName(CellState state) {
  switch (state) {
    case CellState::Pending:
      return QStringLiteral("pending");
    case CellState::Running:
      return QStringLiteral("running");
    case CellState::Done:
      return QStringLiteral("done");
    case CellState::Failed:
      return QStringLiteral("failed");
  }
  return QString();
}

QRect SweepHeatmap::Layout::cell(int row, int col) const {
  return QRect(origin.x() + col * (cell_w + gap), origin.y() + row * (cell_h + gap), cell_w,
               cell_h);
}

SweepHeatmap::SweepHeatmap(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);  // pointing-hand cursor over cells that open a run
  pulse_.setInterval(120);
  connect(&pulse_, &QTimer::timeout, this, [this] {
    dash_phase_ = (dash_phase_ + 1) % 12;
    update();
  });
}

void SweepHeatmap::setAxes(const QString& row_key, const QStringList& rows, const QString& col_key,
                           const QStringList& cols) {
  row_key_ = row_key;
  col_key_ = col_key;
  rows_ = rows;
  cols_ = cols;
  cells_ = QVector<Cell>(rows.size() * cols.size());
  pressed_ = -1;
  updateTimer();
  updateGeometry();
  update();
}

void SweepHeatmap::setReadoutName(const QString& name) {
  readout_ = name;
  updateGeometry();
  update();
}

int SweepHeatmap::indexOf(const QString& row, const QString& col) const {
  const int r = rows_.indexOf(row), c = cols_.indexOf(col);
  return (r < 0 || c < 0) ? -1 : r * cols_.size() + c;
}

void SweepHeatmap::setCell(const QString& row, const QString& col, CellState state, double value,
                           const QString& run_dir, const QStringList& details) {
  const int i = indexOf(row, col);
  if (i < 0) {
    qWarning("SweepHeatmap: no cell %s=%s, %s=%s", qPrintable(row_key_), qPrintable(row),
             qPrintable(col_key_), qPrintable(col));
    return;
  }
  cells_[i] = Cell{state, value, run_dir, details};
  updateTimer();
  update();  // the colour scale spans all finished cells, so any change may recolour them all
}

double SweepHeatmap::value(const QString& row, const QString& col) const {
  const int i = indexOf(row, col);
  return i < 0 ? qQNaN() : cells_[i].value;
}

CellState SweepHeatmap::state(const QString& row, const QString& col) const {
  const int i = indexOf(row, col);
  return i < 0 ? CellState::Pending : cells_[i].state;
}

QString SweepHeatmap::runDir(const QString& row, const QString& col) const {
  const int i = indexOf(row, col);
  return i < 0 ? QString() : cells_[i].run_dir;
}

void SweepHeatmap::setBestCell(BestCell best) {
  best_ = best;
  update();
}

QString SweepHeatmap::formatValue(double value) const {
  double lo = 0, hi = 0;
  int decimals = 2;
  // Enough decimals to show about two significant digits of the spread between the cells.
  if (valueRange(&lo, &hi) && hi > lo)
    decimals = std::clamp(1 - static_cast<int>(std::floor(std::log10(hi - lo))), 2, 4);
  return QString::number(value, 'f', decimals);
}

bool SweepHeatmap::valueRange(double* lo, double* hi) const {
  bool any = false;
  for (const Cell& cell : cells_) {
    if (cell.state != CellState::Done || !std::isfinite(cell.value)) continue;
    *lo = any ? std::min(*lo, cell.value) : cell.value;
    *hi = any ? std::max(*hi, cell.value) : cell.value;
    any = true;
  }
  return any;
}

SweepHeatmap::Layout SweepHeatmap::layoutFor(const QFont& font) const {
  Layout layout;
  QFont bold = font, italic = font;
  bold.setBold(true);
  italic.setItalic(true);
  const QFontMetrics m(font), mb(bold), mi(italic);
  layout.axis_title = mb.height() + 4;
  int col_label = mi.horizontalAdvance(QStringLiteral("running…")) + 16;
  col_label = std::max(col_label, mb.horizontalAdvance(QStringLiteral("100.00")) + 16);
  for (const QString& c : cols_) col_label = std::max(col_label, m.horizontalAdvance(c) + 12);
  layout.cell_w = std::max(layout.cell_w, col_label);
  layout.cell_h = std::max(layout.cell_h, 2 * m.height() + 6);
  layout.col_label_h = m.height() + 4;
  int row_label = 0;
  for (const QString& r : rows_) row_label = std::max(row_label, m.horizontalAdvance(r));
  layout.row_label_w = row_label + 10;
  layout.bar_label_w = m.horizontalAdvance(QStringLiteral("100.00")) + 6;
  layout.readout_w = m.height() + 6;
  layout.origin = QPoint(layout.margin + layout.axis_title + layout.row_label_w,
                         layout.margin + layout.axis_title + layout.col_label_h);
  const int n_rows = std::max<int>(rows_.size(), 1), n_cols = std::max<int>(cols_.size(), 1);
  const int grid_w = n_cols * layout.cell_w + (n_cols - 1) * layout.gap;
  const int grid_h = n_rows * layout.cell_h + (n_rows - 1) * layout.gap;
  // The colour bar needs room for its labels even on a one-row grid.
  const int bar_h = std::max(grid_h, 4 * m.height());
  layout.bar =
      QRect(layout.origin.x() + grid_w + layout.bar_gap, layout.origin.y(), layout.bar_w, bar_h);
  const int readout_h = m.horizontalAdvance(readout_) + 8;
  // The row key is centred on the rows; a key longer than a short grid is (e.g. masking.num
  // beside two rows) reaches above it, into the empty corner by the column labels, and below.
  layout.row_title_h = std::max(grid_h, mb.horizontalAdvance(row_key_) + 8);
  layout.row_title_top =
      std::max(layout.margin, layout.origin.y() + (grid_h - layout.row_title_h) / 2);
  const int bottom = std::max(layout.origin.y() + std::max({grid_h, bar_h, readout_h}),
                              layout.row_title_top + layout.row_title_h);
  layout.size = QSize(layout.origin.x() + grid_w + layout.bar_gap + layout.bar_w + 4 +
                          layout.bar_label_w + layout.readout_w + layout.margin,
                      bottom + layout.margin);
  return layout;
}

QRect SweepHeatmap::cellRect(const QString& row, const QString& col) const {
  const int r = rows_.indexOf(row), c = cols_.indexOf(col);
  if (r < 0 || c < 0) return QRect();
  return layoutFor(font()).cell(r, c).translated(mapOffset());
}

QRect SweepHeatmap::colourBarRect() const { return layoutFor(font()).bar.translated(mapOffset()); }

QPoint SweepHeatmap::mapOffset() const {
  const QSize map = layoutFor(font()).size;
  return QPoint(std::max(0, (width() - map.width()) / 2),
                std::max(0, (height() - map.height()) / 2));
}

bool SweepHeatmap::hasSpread() const {
  double lo = 0, hi = 0;
  return valueRange(&lo, &hi) && formatValue(lo) != formatValue(hi);
}

QSize SweepHeatmap::sizeHint() const { return layoutFor(font()).size; }
QSize SweepHeatmap::minimumSizeHint() const { return layoutFor(font()).size; }

void SweepHeatmap::paintMap(QPainter& painter, const Layout& layout, const QFont& font,
                            bool figure) const {
  const QColor text = figure ? QColor(Qt::black) : palette().color(QPalette::WindowText);
  QFont bold = font, italic = font;
  bold.setBold(true);
  italic.setItalic(true);
  const QFontMetrics metrics(font);
  const int n_rows = rows_.size(), n_cols = cols_.size();
  const int grid_w = std::max(n_cols, 1) * layout.cell_w + (std::max(n_cols, 1) - 1) * layout.gap;

  // Axis titles: column key on top, row key reading upwards on the left.
  painter.setPen(text);
  painter.setFont(bold);
  painter.drawText(QRect(layout.origin.x(), layout.margin, grid_w, layout.axis_title),
                   Qt::AlignCenter, col_key_);
  painter.save();
  painter.translate(layout.margin, layout.row_title_top + layout.row_title_h);
  painter.rotate(-90);
  painter.drawText(QRect(0, 0, layout.row_title_h, layout.axis_title), Qt::AlignCenter, row_key_);
  painter.restore();

  painter.setFont(font);
  for (int c = 0; c < n_cols; ++c) {
    const QRect cell = layout.cell(0, c);
    painter.drawText(QRect(cell.left(), layout.origin.y() - layout.col_label_h, cell.width(),
                           layout.col_label_h - 2),
                     Qt::AlignHCenter | Qt::AlignBottom, cols_[c]);
  }
  for (int r = 0; r < n_rows; ++r) {
    const QRect cell = layout.cell(r, 0);
    painter.drawText(QRect(layout.origin.x() - layout.row_label_w, cell.top(),
                           layout.row_label_w - 8, cell.height()),
                     Qt::AlignRight | Qt::AlignVCenter, rows_[r]);
  }

  double lo = 0, hi = 0;
  const bool has_range = valueRange(&lo, &hi);
  // Values that read the same (all cells equal, or apart by less than the shown decimals) get the
  // middle colour and a one-colour bar with one label: a full gradient labelled with the same
  // number at both ends would claim a scale that is not there.
  const bool spread = hasSpread();
  auto colourOf = [&](double v) { return viridisColour(spread ? (v - lo) / (hi - lo) : 0.5); };

  painter.setRenderHint(QPainter::Antialiasing, false);
  for (int r = 0; r < n_rows; ++r) {
    for (int c = 0; c < n_cols; ++c) {
      const Cell& cell = cells_[r * n_cols + c];
      const QRect rect = layout.cell(r, c);
      switch (cell.state) {
        case CellState::Pending:
          painter.fillRect(rect, kPendingFill);
          painter.setFont(font);
          painter.setPen(kPendingText);
          painter.drawText(rect, Qt::AlignCenter, QStringLiteral("pending"));
          break;
        case CellState::Running: {
          painter.fillRect(rect, Qt::white);
          QColor hatch = kRunningAccent;
          hatch.setAlpha(70);
          painter.fillRect(rect, QBrush(hatch, Qt::BDiagPattern));
          QPen border(kRunningAccent, 2, Qt::DashLine);
          border.setDashOffset(-dash_phase_ * 0.5);  // pattern period is 6 pen widths = 12 px
          painter.setPen(border);
          painter.setBrush(Qt::NoBrush);
          painter.drawRect(rect.adjusted(1, 1, -1, -1));
          painter.setFont(italic);
          painter.setPen(kRunningAccent.darker(130));
          QString label = QStringLiteral("running…");
          // A partial value (e.g. the last in-training k-NN) is worth showing while it runs.
          if (std::isfinite(cell.value)) label += QLatin1Char('\n') + formatValue(cell.value);
          painter.drawText(rect, Qt::AlignCenter, label);
          break;
        }
        case CellState::Done: {
          const bool finite = std::isfinite(cell.value);
          const QColor fill = finite ? colourOf(cell.value) : kPendingFill;
          painter.fillRect(rect, fill);
          // The best cell is bold, as the paper's tables mark it.
          const bool best = finite && spread &&
                            ((best_ == BestCell::Highest && cell.value == hi) ||
                             (best_ == BestCell::Lowest && cell.value == lo));
          painter.setFont(best ? bold : font);
          painter.setPen(finite ? textOn(fill) : text);
          painter.drawText(rect, Qt::AlignCenter,
                           finite ? formatValue(cell.value) : QStringLiteral("done"));
          break;
        }
        case CellState::Failed:
          painter.fillRect(rect, kFailedFill);
          painter.setPen(QPen(kFailedAccent, 1));
          painter.setBrush(Qt::NoBrush);
          painter.drawRect(rect.adjusted(0, 0, -1, -1));
          painter.setFont(bold);
          painter.drawText(rect, Qt::AlignCenter, QStringLiteral("failed"));
          break;
      }
    }
  }

  // Colour bar: min at the bottom, max at the top, readout name beside it.
  const QRect bar = layout.bar;
  if (spread) {
    QLinearGradient gradient(bar.bottomLeft(), bar.topLeft());
    for (int i = 0; i <= 10; ++i) gradient.setColorAt(i / 10.0, viridisColour(i / 10.0));
    painter.fillRect(bar, gradient);
  } else if (has_range) {
    painter.fillRect(bar, viridisColour(0.5));
  } else {
    painter.fillRect(bar, kPendingFill);
  }
  painter.setPen(QPen(text, 1));
  painter.setBrush(Qt::NoBrush);
  painter.drawRect(bar.adjusted(0, 0, -1, -1));
  painter.setFont(font);
  const QRect labels(bar.right() + 5, bar.top(), layout.bar_label_w, bar.height());
  if (spread) {
    painter.drawText(labels, Qt::AlignLeft | Qt::AlignTop, formatValue(hi));
    painter.drawText(labels, Qt::AlignLeft | Qt::AlignBottom, formatValue(lo));
    if (bar.height() >= 5 * metrics.height())
      painter.drawText(labels, Qt::AlignLeft | Qt::AlignVCenter, formatValue((lo + hi) / 2));
  } else if (has_range) {
    painter.drawText(labels, Qt::AlignLeft | Qt::AlignVCenter, formatValue(hi));
  } else {
    painter.setPen(kPendingText);
    painter.drawText(labels, Qt::AlignLeft | Qt::AlignVCenter, QStringLiteral("–"));
  }
  painter.setPen(text);
  painter.save();
  painter.translate(labels.right() + 2, bar.bottom() + 1);
  painter.rotate(-90);
  painter.drawText(QRect(0, 0, bar.height(), layout.readout_w), Qt::AlignCenter, readout_);
  painter.restore();
}

void SweepHeatmap::paintEvent(QPaintEvent*) {
  QPainter painter(this);
  painter.setRenderHint(QPainter::TextAntialiasing);
  painter.translate(mapOffset());  // centred in the space the panel gives it
  paintMap(painter, layoutFor(font()), font(), false);
}

int SweepHeatmap::cellAt(const QPoint& pos) const {
  const Layout layout = layoutFor(font());
  const QPoint map = pos - mapOffset();
  for (int r = 0; r < rows_.size(); ++r)
    for (int c = 0; c < cols_.size(); ++c)
      if (layout.cell(r, c).contains(map)) return r * cols_.size() + c;
  return -1;
}

void SweepHeatmap::mousePressEvent(QMouseEvent* event) {
  pressed_ = event->button() == Qt::LeftButton ? cellAt(event->position().toPoint()) : -1;
  QWidget::mousePressEvent(event);
}

void SweepHeatmap::mouseReleaseEvent(QMouseEvent* event) {
  // Press and release on the same cell, like a button, so a drag off the cell cancels.
  const int i = cellAt(event->position().toPoint());
  if (event->button() == Qt::LeftButton && i >= 0 && i == pressed_ && !cells_[i].run_dir.isEmpty())
    emit cellActivated(cells_[i].run_dir);
  pressed_ = -1;
  QWidget::mouseReleaseEvent(event);
}

void SweepHeatmap::mouseMoveEvent(QMouseEvent* event) {
  const int i = cellAt(event->position().toPoint());
  setCursor(i >= 0 && !cells_[i].run_dir.isEmpty() ? Qt::PointingHandCursor : Qt::ArrowCursor);
  QWidget::mouseMoveEvent(event);
}

QString SweepHeatmap::toolTipFor(const QString& row, const QString& col) const {
  const int i = indexOf(row, col);
  return i < 0 ? QString() : toolTipAt(i);
}

QString SweepHeatmap::toolTipAt(int i) const {
  const Cell& cell = cells_[i];
  const QString row = rows_[i / cols_.size()], col = cols_[i % cols_.size()];
  QString tip = QStringLiteral("<b>%1 = %2, %3 = %4</b><br>%5")
                    .arg(row_key_.toHtmlEscaped(), row.toHtmlEscaped(), col_key_.toHtmlEscaped(),
                         col.toHtmlEscaped(), cellStateName(cell.state));
  if (std::isfinite(cell.value))
    tip += QStringLiteral("<br>%1: %2").arg(readout_.toHtmlEscaped(), formatValue(cell.value));
  for (const QString& line : cell.details) tip += QStringLiteral("<br>") + line.toHtmlEscaped();
  tip += cell.run_dir.isEmpty() ? QStringLiteral("<br><i>no run folder yet</i>")
                                : QStringLiteral("<br>run: <tt>%1</tt><br><i>click to open</i>")
                                      .arg(cell.run_dir.toHtmlEscaped());
  return tip;
}

bool SweepHeatmap::event(QEvent* event) {
  if (event->type() == QEvent::ToolTip) {
    const auto* help = static_cast<QHelpEvent*>(event);
    const int i = cellAt(help->pos());
    if (i < 0) {
      QToolTip::hideText();
      event->ignore();
      return true;
    }
    QToolTip::showText(
        help->globalPos(), toolTipAt(i), this,
        layoutFor(font()).cell(i / cols_.size(), i % cols_.size()).translated(mapOffset()));
    return true;
  }
  return QWidget::event(event);
}

void SweepHeatmap::updateTimer() {
  const bool running = std::any_of(cells_.begin(), cells_.end(), [](const Cell& cell) {
    return cell.state == CellState::Running;
  });
  if (running && isVisible()) {
    if (!pulse_.isActive()) pulse_.start();
  } else {
    pulse_.stop();
  }
}

void SweepHeatmap::showEvent(QShowEvent* event) {
  updateTimer();
  QWidget::showEvent(event);
}

void SweepHeatmap::hideEvent(QHideEvent* event) {
  pulse_.stop();  // no repaints for a hidden tab
  QWidget::hideEvent(event);
}

void SweepHeatmap::changeEvent(QEvent* event) {
  if (event->type() == QEvent::FontChange) updateGeometry();
  QWidget::changeEvent(event);
}

bool SweepHeatmap::exportFigure(const QString& path, QString* error) const {
  QFont font = this->font();
  font.setPixelSize(kFigureFontPixels);  // the same layout on every device
  const Layout layout = layoutFor(font);
  return paintToFile(
      path, layout.size, [&](QPainter& painter) { paintMap(painter, layout, font, true); }, error);
}

bool SweepHeatmap::exportCsv(const QString& path, QString* error) const {
  return writeTextFile(
      path,
      [&](QTextStream& out) {
        out << csvField(row_key_) << ',' << csvField(col_key_) << ",state,value,run_dir\n";
        for (int r = 0; r < rows_.size(); ++r) {
          for (int c = 0; c < cols_.size(); ++c) {
            const Cell& cell = cells_[r * cols_.size() + c];
            out << csvField(rows_[r]) << ',' << csvField(cols_[c]) << ','
                << cellStateName(cell.state) << ','
                << (std::isfinite(cell.value) ? QString::number(cell.value, 'g', 10) : QString())
                << ',' << csvField(cell.run_dir) << '\n';
          }
        }
      },
      error);
}

}  // namespace mst
