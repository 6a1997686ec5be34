/// @brief Inspector grid layout, painting, hit testing, tooltips and figure export (the cells'
/// images: inspector_grid_cells.cpp).
#include "widgets/inspector_grid.h"

#include <QEvent>
#include <QHelpEvent>
#include <QMouseEvent>
#include <QPaintEvent>
#include <QPainter>
#include <QToolTip>
#include <algorithm>
#include <cmath>

namespace mst {
namespace {

constexpr int kMinCell = 16;
constexpr int kFigureFontPixels = 13;
constexpr int kBarHeight = 10;  // the colour bar under the "Attention" title
constexpr int kBarTop = 3;      // gap between the title and the bar
constexpr int kLabelGap = 2;    // gap between the bar and its labels
constexpr int kBandBottom = 4;  // gap between the labels and the first row
constexpr int kCaptionGap = 2;  // caption text height + this under every cell

/// Attention x uniform for the bar and the captions: fixed decimals (2 below 10, 1 below 100), so
/// the ends of a nearly flat map (0.93 .. 1.00) read as such, and labels stay short for a 112-px
/// bar.
QString formatValue(double v) {
  const double a = std::abs(v);
  return QString::number(v, 'f', a < 10 ? 2 : a < 100 ? 1 : 0);
}

int countMasked(const QVector<quint8>& mask) {
  return static_cast<int>(std::count_if(mask.begin(), mask.end(), [](quint8 m) { return m != 0; }));
}

}  // namespace

QRect InspectorGrid::Layout::cell(int row, int column) const {
  return QRect(margin + row_title_width + column * (cell_px + gap),
               margin + header_height + row * (cell_px + caption_height + gap), cell_px, cell_px);
}

QRect InspectorGrid::Layout::caption(int row, int column) const {
  const QRect c = cell(row, column);
  return QRect(c.left(), c.bottom() + 1, cell_px, caption_height);
}

QRect InspectorGrid::Layout::rowTitle(int row) const {
  const QRect c = cell(row, 0);
  return QRect(margin, c.top(), row_title_width - 8, cell_px);
}

QRect InspectorGrid::Layout::rowSpan(int row, int columns) const {
  return QRect(rowTitle(row).topLeft(), caption(row, std::max(columns, 1) - 1).bottomRight());
}

QRect InspectorGrid::Layout::header(int column) const {
  return QRect(margin + row_title_width + column * (cell_px + gap), margin, cell_px,
               title_height - 4);
}

QRect InspectorGrid::Layout::colourBar(int column) const {
  return QRect(margin + row_title_width + column * (cell_px + gap), margin + title_height + kBarTop,
               cell_px, kBarHeight);
}

QRect InspectorGrid::Layout::colourBarLabels(int column) const {
  const QRect bar = colourBar(column);
  // Half a gap either side: the end labels may reach into the space between the columns.
  return QRect(bar.left() - gap / 2, bar.bottom() + 1 + kLabelGap, cell_px + gap,
               band_height - kBarTop - kBarHeight - kLabelGap - kBandBottom);
}

InspectorGrid::InspectorGrid(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);  // row hover highlight
  setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Preferred);
}

void InspectorGrid::setImages(const QVector<ProbeImage>& images) {
  images_ = images;
  hovered_row_ = -1;
  invalidate();
}

const QVector<ProbeImage>& InspectorGrid::images() const { return images_; }

void InspectorGrid::setShowThreshold(bool on) {
  if (on == show_threshold_) return;
  show_threshold_ = on;
  invalidate();
}

bool InspectorGrid::showThreshold() const { return show_threshold_; }

void InspectorGrid::setAttentionOverlay(bool on) {
  if (on == attention_overlay_) return;
  attention_overlay_ = on;
  invalidate();
}

bool InspectorGrid::attentionOverlay() const { return attention_overlay_; }

void InspectorGrid::setHeadsView(bool on) {
  if (on == heads_view_) return;
  heads_view_ = on;
  hovered_row_ = -1;
  invalidate();
}

bool InspectorGrid::headsView() const { return heads_view_; }

void InspectorGrid::setAttentionSource(const QString& source) {
  if (source == attention_source_) return;
  attention_source_ = source;
  invalidate();
}

QString InspectorGrid::attentionSource() const { return attention_source_; }

int InspectorGrid::headColumns() const {
  if (!heads_view_) return 0;
  int heads = 0;
  for (const ProbeImage& p : images_) heads = std::max(heads, p.heads);
  return heads;
}

ProbeImage InspectorGrid::withHead(const ProbeImage& p, int head) {
  if (head < 0) return p;
  ProbeImage q = p;  // the planes are shared, not copied (QVector is implicitly shared)
  q.attention = headAttention(p, head);
  return q;
}

void InspectorGrid::setCellSize(int pixels) {
  pixels = std::max(pixels, kMinCell);
  if (pixels == cell_size_) return;
  cell_size_ = pixels;
  invalidate();
}

int InspectorGrid::cellSize() const { return cell_size_; }

void InspectorGrid::setAttentionScale(AttentionScale scale) {
  if (scale == scale_) return;
  scale_ = scale;
  invalidate();
}

AttentionScale InspectorGrid::attentionScale() const { return scale_; }

void InspectorGrid::setEmptyText(const QString& text) {
  empty_text_ = text;
  update();
}

QString InspectorGrid::emptyText() const {
  return empty_text_.isEmpty() ? tr("No probe images yet.") : empty_text_;
}

bool InspectorGrid::sharedRange(double* lo, double* hi) const {
  double a = INFINITY, b = -INFINITY;
  const int heads = headColumns();
  for (const ProbeImage& p : images_) {
    for (int head = -1; head < heads; ++head) {
      double l = 0.0, h = 0.0;
      if (!attentionRange(withHead(p, head), &l, &h)) continue;
      a = std::min(a, l);
      b = std::max(b, h);
    }
  }
  if (a > b) return false;
  *lo = a;
  *hi = b;
  return true;
}

bool InspectorGrid::colourRange(int row, double* lo, double* hi, int head) const {
  if (row < 0 || row >= images_.size()) return false;
  double l = 0.0, h = 0.0;
  if (!attentionRange(withHead(images_[row], head), &l, &h)) return false;
  if (scale_ == AttentionScale::Shared) return sharedRange(lo, hi);
  *lo = l;
  *hi = h;
  return true;
}

QStringList InspectorGrid::colourBarLabels() const {
  double lo = 0.0, hi = 0.0;
  if (!sharedRange(&lo, &hi)) return {};
  if (scale_ == AttentionScale::PerImage) return {tr("min"), tr("max")};
  return {formatValue(lo), formatValue(hi)};
}

QString InspectorGrid::headerTitle(const GridColumn& column) const {
  if (column.kind != InspectorColumn::Attention || colourBarLabels().isEmpty())
    return columnTitle(column.kind, column.head);
  // No-break spaces: a wrapped title breaks before the parenthesis, never inside it. In the heads
  // view the column is the mean of the heads beside it.
  // Another block than the masks' leads the title: "Block 3: attention on input (× uniform)".
  QString what = heads_view_ ? tr("Mean of heads") : tr("Attention");
  if (!attention_source_.isEmpty()) {
    QString source = attention_source_;
    source[0] = source[0].toUpper();
    what = source + ": " + what.toLower();
  }
  const QString where = attention_overlay_ ? tr(" on input") : QString();
  const QString unit = scale_ == AttentionScale::Shared ? tr("×\u00A0uniform") : tr("per\u00A0image");
  return QStringLiteral("%1%2 (%3)").arg(what, where, unit);
}

QRect InspectorGrid::colourBarRect(bool figure) const {
  if (colourBarLabels().isEmpty()) return QRect();
  const int column = gridColumns().indexOf(GridColumn{InspectorColumn::Attention});
  return layoutFor(figure ? figureFont() : font()).colourBar(column);
}

QString InspectorGrid::cellCaption(int row, InspectorColumn column, int head) const {
  if (row < 0 || row >= images_.size()) return QString();
  const ProbeImage& p = images_[row];
  const int n = p.grid_h * p.grid_w;
  auto count = [n](const QVector<quint8>& mask, const QString& what) {
    if (n <= 0 || mask.size() != n) return QString();
    return QStringLiteral("%1/%2 %3").arg(countMasked(mask)).arg(n).arg(what);
  };
  switch (column) {
    case InspectorColumn::Attention:
    case InspectorColumn::Head: {
      if (column == InspectorColumn::Head && head < 0) return QString();
      double lo = 0.0, hi = 0.0;
      if (!attentionRange(withHead(p, column == InspectorColumn::Head ? head : -1), &lo, &hi))
        return QString();
      return QStringLiteral("%1 – %2 ×").arg(formatValue(lo), formatValue(hi));
    }
    case InspectorColumn::RandomMask:
      return count(p.mask_random, tr("masked"));
    case InspectorColumn::GuidedMask:
      return count(p.mask_guided, tr("masked"));
    case InspectorColumn::Threshold:
      if (p.attention.size() != n) return QString();
      return count(attentionThresholdMask(p.attention, kThresholdMass), tr("patches"));
    case InspectorColumn::Input:
    case InspectorColumn::Reconstruction:
      break;
  }
  return QString();
}

QVector<InspectorGrid::GridColumn> InspectorGrid::gridColumns() const {
  if (heads_view_) {
    QVector<GridColumn> out = {{InspectorColumn::Input}, {InspectorColumn::Attention}};
    const int heads = headColumns();
    for (int h = 0; h < heads; ++h) out.append({InspectorColumn::Head, h});
    return out;
  }
  QVector<GridColumn> out = {{InspectorColumn::Input},
                             {InspectorColumn::Attention},
                             {InspectorColumn::RandomMask},
                             {InspectorColumn::GuidedMask},
                             {InspectorColumn::Reconstruction}};
  if (show_threshold_) out.append({InspectorColumn::Threshold});
  return out;
}

QVector<InspectorColumn> InspectorGrid::columns() const {
  QVector<InspectorColumn> out;
  for (const GridColumn& c : gridColumns()) out.append(c.kind);
  return out;
}

QString InspectorGrid::columnTitle(InspectorColumn column, int head) {
  switch (column) {
    case InspectorColumn::Input:
      return QStringLiteral("Input");
    case InspectorColumn::Attention:
      return QStringLiteral("Attention");
    case InspectorColumn::RandomMask:
      return QStringLiteral("Random mask");
    case InspectorColumn::GuidedMask:
      return QStringLiteral("Attention-guided mask");
    case InspectorColumn::Reconstruction:
      return QStringLiteral("Reconstruction");
    case InspectorColumn::Threshold:
      return QStringLiteral("Top-60% attention");
    case InspectorColumn::Head:
      return head >= 0 ? QStringLiteral("Head %1").arg(head + 1) : QStringLiteral("Head");
  }
  return QString();
}

// Orange and blue stay distinct for the common colour-vision deficiencies; purple for the third.
QColor InspectorGrid::randomMaskColour() { return QColor(0xF7, 0x67, 0x07); }
QColor InspectorGrid::guidedMaskColour() { return QColor(0x22, 0x8B, 0xE6); }
QColor InspectorGrid::thresholdColour() { return QColor(0xBE, 0x4B, 0xDB); }

InspectorGrid::Layout InspectorGrid::layoutFor(const QFont& font) const {
  Layout layout;
  layout.cell_px = cell_size_;
  const QFontMetrics metrics(font);
  int header = metrics.height();
  const QVector<GridColumn> cols = gridColumns();
  for (const GridColumn& c : cols) {
    const QRect r = metrics.boundingRect(QRect(0, 0, layout.cell_px, 1000),
                                         Qt::AlignHCenter | Qt::TextWordWrap, headerTitle(c));
    header = std::max(header, r.height());
  }
  layout.title_height = header + 4;
  layout.band_height = kBarTop + kBarHeight + kLabelGap + metrics.height() + kBandBottom;
  layout.header_height = layout.title_height + layout.band_height;
  layout.caption_height = metrics.height() + kCaptionGap;
  int title = 0;
  for (const ProbeImage& p : images_) title = std::max(title, metrics.horizontalAdvance(p.title));
  layout.row_title_width = std::max(title, metrics.horizontalAdvance(QStringLiteral("#00"))) + 8;
  const int n_cols = cols.size(), n_rows = std::max<int>(images_.size(), 1);
  layout.size =
      QSize(2 * layout.margin + layout.row_title_width + n_cols * layout.cell_px +
                (n_cols - 1) * layout.gap,
            2 * layout.margin + layout.header_height +
                n_rows * (layout.cell_px + layout.caption_height) + (n_rows - 1) * layout.gap);
  return layout;
}

QRect InspectorGrid::cellRect(int row, InspectorColumn column, int head) const {
  const int index =
      gridColumns().indexOf(GridColumn{column, column == InspectorColumn::Head ? head : -1});
  if (row < 0 || row >= images_.size() || index < 0) return QRect();
  return layoutFor(font()).cell(row, index);
}

QSize InspectorGrid::sizeHint() const { return layoutFor(font()).size; }

QSize InspectorGrid::minimumSizeHint() const {
  // One row is enough to be useful; a scroll area shows the rest.
  const Layout layout = layoutFor(font());
  return QSize(layout.size.width(),
               2 * layout.margin + layout.header_height + layout.cell_px + layout.caption_height);
}

void InspectorGrid::paintGrid(QPainter& painter, const Layout& layout, const QFont& font,
                              const QColor& text_colour, int pixels_per_cell,
                              bool use_cache) const {
  const QVector<GridColumn> cols = gridColumns();
  painter.setFont(font);
  painter.setPen(text_colour);
  for (int c = 0; c < cols.size(); ++c) {
    painter.drawText(layout.header(c), Qt::AlignHCenter | Qt::AlignBottom | Qt::TextWordWrap,
                     headerTitle(cols[c]));
    if (cols[c].kind == InspectorColumn::Attention)
      paintColourBar(painter, layout, c, text_colour);
  }
  if (use_cache && cache_.size() != images_.size() * cols.size()) {
    cache_.clear();
    for (int r = 0; r < images_.size(); ++r)
      for (const GridColumn& c : cols) cache_.append(renderCellAt(r, c, cell_size_));
  }
  painter.setRenderHint(QPainter::SmoothPixmapTransform, false);
  for (int r = 0; r < images_.size(); ++r) {
    painter.setPen(text_colour);
    painter.drawText(layout.rowTitle(r), Qt::AlignRight | Qt::AlignVCenter, images_[r].title);
    for (int c = 0; c < cols.size(); ++c) {
      const QImage cell =
          use_cache ? cache_[r * cols.size() + c] : renderCellAt(r, cols[c], pixels_per_cell);
      painter.drawImage(QRectF(layout.cell(r, c)), cell);
      const QString caption = cellCaption(r, cols[c].kind, cols[c].head);
      if (caption.isEmpty()) continue;
      // A mask's count in the mask's own colour (darkened to read as text) ties it to the overlay.
      QColor colour = text_colour;
      if (cols[c].kind == InspectorColumn::RandomMask) colour = randomMaskColour().darker(135);
      if (cols[c].kind == InspectorColumn::GuidedMask) colour = guidedMaskColour().darker(135);
      if (cols[c].kind == InspectorColumn::Threshold) colour = thresholdColour().darker(135);
      painter.setPen(colour);
      painter.drawText(layout.caption(r, c), Qt::AlignHCenter | Qt::AlignBottom, caption);
    }
  }
}

void InspectorGrid::paintColourBar(QPainter& painter, const Layout& layout, int column,
                                   const QColor& text_colour) const {
  const QStringList labels = colourBarLabels();
  if (labels.size() != 2) return;
  // An image of the colour map with one sample per device pixel, so its ends are exactly the heat
  // maps' darkest and brightest colours (a vector image in PDF / SVG).
  const QRect bar = layout.colourBar(column);
  const qreal ratio = painter.device() ? painter.device()->devicePixelRatioF() : 1.0;
  QImage strip(std::max(2, qRound(bar.width() * ratio)), 1, QImage::Format_ARGB32);
  for (int x = 0; x < strip.width(); ++x)
    strip.setPixel(x, 0, infernoColour(x / double(strip.width() - 1)).rgb());
  const bool smooth = painter.testRenderHint(QPainter::SmoothPixmapTransform);
  painter.setRenderHint(QPainter::SmoothPixmapTransform, false);
  painter.drawImage(QRectF(bar), strip);
  painter.setRenderHint(QPainter::SmoothPixmapTransform, smooth);
  const QRect text = layout.colourBarLabels(column);
  painter.setPen(text_colour);
  painter.drawText(text, Qt::AlignLeft | Qt::AlignTop, labels[0]);
  painter.drawText(text, Qt::AlignRight | Qt::AlignTop, labels[1]);
}

QFont InspectorGrid::figureFont() const {
  QFont font = this->font();
  font.setPixelSize(kFigureFontPixels);
  return font;
}

void InspectorGrid::paintEvent(QPaintEvent*) {
  QPainter painter(this);
  painter.setRenderHint(QPainter::TextAntialiasing);
  const Layout layout = layoutFor(font());
  if (images_.isEmpty()) {
    paintGrid(painter, layout, font(), palette().color(QPalette::WindowText), cell_size_, true);
    painter.setPen(palette().color(QPalette::PlaceholderText));
    const QRect body(layout.margin + layout.row_title_width, layout.margin + layout.header_height,
                     layout.size.width() - 2 * layout.margin - layout.row_title_width,
                     layout.cell_px);
    painter.drawText(body, Qt::AlignCenter | Qt::TextWordWrap, emptyText());
    return;
  }
  if (hovered_row_ >= 0 && hovered_row_ < images_.size()) {
    const QRect span = layout.rowSpan(hovered_row_, columns().size());
    QColor highlight = palette().color(QPalette::Highlight);
    highlight.setAlpha(40);
    painter.setRenderHint(QPainter::Antialiasing);
    painter.setPen(Qt::NoPen);
    painter.setBrush(highlight);
    painter.drawRoundedRect(span.adjusted(-4, -3, 3, 3), 4, 4);
    painter.setRenderHint(QPainter::Antialiasing, false);
  }
  paintGrid(painter, layout, font(), palette().color(QPalette::WindowText), cell_size_, true);
}

int InspectorGrid::rowAt(const QPoint& pos) const {
  const Layout layout = layoutFor(font());
  const int n_cols = columns().size();
  for (int r = 0; r < images_.size(); ++r)
    if (layout.rowSpan(r, n_cols).contains(pos)) return r;
  return -1;
}

void InspectorGrid::mousePressEvent(QMouseEvent* event) {
  if (event->button() == Qt::LeftButton) {
    const int row = rowAt(event->position().toPoint());
    if (row >= 0) emit imageClicked(row);
  }
  QWidget::mousePressEvent(event);
}

void InspectorGrid::mouseMoveEvent(QMouseEvent* event) {
  const int row = rowAt(event->position().toPoint());
  if (row != hovered_row_) {
    hovered_row_ = row;
    setCursor(row >= 0 ? Qt::PointingHandCursor : Qt::ArrowCursor);
    update();
  }
  QWidget::mouseMoveEvent(event);
}

void InspectorGrid::leaveEvent(QEvent* event) {
  if (hovered_row_ >= 0) {
    hovered_row_ = -1;
    update();
  }
  QWidget::leaveEvent(event);
}

QString InspectorGrid::cellToolTip(int row, const GridColumn& grid_column) const {
  const InspectorColumn column = grid_column.kind;
  const ProbeImage p = withHead(images_[row], column == InspectorColumn::Head ? grid_column.head : -1);
  const int n = p.grid_h * p.grid_w;
  auto masked = [n](const QVector<quint8>& mask) {
    if (mask.size() != n || n == 0) return QStringLiteral("no mask");
    const int k = countMasked(mask);
    return QStringLiteral("%1 of %2 patches masked (%3 %)")
        .arg(k)
        .arg(n)
        .arg(100.0 * k / n, 0, 'f', 1);
  };
  QString detail;
  switch (column) {
    case InspectorColumn::Input:
      detail = QStringLiteral("%1 x %2, %3 channel(s), %4 x %5 patches")
                   .arg(p.width)
                   .arg(p.height)
                   .arg(p.channels)
                   .arg(p.grid_w)
                   .arg(p.grid_h);
      break;
    case InspectorColumn::Attention:
    case InspectorColumn::Head:
      if (p.attention.size() == n && n > 0) {
        const auto [lo, hi] = std::minmax_element(p.attention.begin(), p.attention.end());
        const QString which = column == InspectorColumn::Head
                                  ? QStringLiteral(" of head %1").arg(grid_column.head + 1)
                                  : QString();
        detail = QStringLiteral("teacher CLS attention%6 %1 .. %2 (%3 .. %4 x uniform, %5 scale)")
                     .arg(*lo, 0, 'g', 3)
                     .arg(*hi, 0, 'g', 3)
                     .arg(double(*lo) * n, 0, 'g', 3)
                     .arg(double(*hi) * n, 0, 'g', 3)
                     .arg(scale_ == AttentionScale::Shared ? QStringLiteral("shared")
                                                           : QStringLiteral("per-image"))
                     .arg(which);
      }
      break;
    case InspectorColumn::RandomMask:
      detail = masked(p.mask_random);
      break;
    case InspectorColumn::GuidedMask:
      detail = masked(p.mask_guided);
      break;
    case InspectorColumn::Reconstruction:
      detail = p.reconstruction.isEmpty() ? QStringLiteral("no reconstruction")
                                          : QStringLiteral("decoder output");
      break;
    case InspectorColumn::Threshold:
      if (p.attention.size() == n && n > 0)
        detail = QStringLiteral("%1 of %2 patches hold 60 % of the attention")
                     .arg(countMasked(attentionThresholdMask(p.attention, kThresholdMass)))
                     .arg(n);
      break;
  }
  return QStringLiteral("<b>%1</b> %2<br>%3")
      .arg(p.title.toHtmlEscaped(), columnTitle(column, grid_column.head), detail.toHtmlEscaped());
}

bool InspectorGrid::event(QEvent* event) {
  if (event->type() == QEvent::ToolTip) {
    const auto* help = static_cast<QHelpEvent*>(event);
    const Layout layout = layoutFor(font());
    const QVector<GridColumn> cols = gridColumns();
    for (int r = 0; r < images_.size(); ++r) {
      for (int c = 0; c < cols.size(); ++c) {
        const QRect rect = layout.cell(r, c);
        if (rect.contains(help->pos())) {
          QToolTip::showText(help->globalPos(), cellToolTip(r, cols[c]), this, rect);
          return true;
        }
      }
    }
    QToolTip::hideText();
    event->ignore();
    return true;
  }
  return QWidget::event(event);
}

void InspectorGrid::changeEvent(QEvent* event) {
  if (event->type() == QEvent::FontChange) invalidate();
  QWidget::changeEvent(event);
}

void InspectorGrid::invalidate() {
  cache_.clear();
  updateGeometry();
  update();
}

bool InspectorGrid::exportFigure(const QString& path, QString* error,
                                 const QString& description) const {
  if (images_.isEmpty()) {
    if (error) *error = QStringLiteral("no probe images to export to %1").arg(path);
    return false;
  }
  const QFont font = figureFont();
  const Layout layout = layoutFor(font);
  return paintToFile(
      path, layout.size,
      [&](QPainter& painter) {
        paintGrid(painter, layout, font, Qt::black, 2 * cell_size_, false);
      },
      error, description);
}

}  // namespace mst
