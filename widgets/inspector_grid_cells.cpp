/// @brief Inspector grid: the image of each cell (input, attention heat map alone or over the
/// input, mask overlays, reconstruction, top-60 % map), at the screen's or the figure's size.
#include <QPainter>
#include <algorithm>

#include "widgets/inspector_grid.h"

namespace mst {
namespace {

/// A grey square with a short note, for a view the probe does not have.
void paintPlaceholder(QImage& cell, const QRect& area, const QString& note) {
  QPainter painter(&cell);
  painter.fillRect(area, QColor(0xE9, 0xEC, 0xEF));
  QFont font = painter.font();
  font.setPixelSize(std::max(8, area.height() / 9));
  painter.setFont(font);
  painter.setPen(QColor(0x86, 0x8E, 0x96));
  painter.drawText(area, Qt::AlignCenter | Qt::TextWordWrap, note);
}

}  // namespace

QImage InspectorGrid::renderCell(int row, InspectorColumn column, int head) const {
  return renderCellAt(row, GridColumn{column, column == InspectorColumn::Head ? head : -1},
                      cell_size_);
}

QImage InspectorGrid::renderCellAt(int row, const GridColumn& grid_column, int pixels) const {
  const InspectorColumn column = grid_column.kind;
  if (row < 0 || row >= images_.size() || pixels <= 0) return QImage();
  const ProbeImage& p = images_[row];
  QImage cell(pixels, pixels, QImage::Format_ARGB32);
  cell.fill(Qt::transparent);
  if (p.height <= 0 || p.width <= 0) {
    paintPlaceholder(cell, cell.rect(), QStringLiteral("no image"));
    return cell;
  }
  // Whole multiples keep every source pixel the same size (crisp 28-px images); images larger
  // than the cell are shrunk smoothly instead.
  const int scale = pixels / std::max(p.height, p.width);
  const QSize fitted = scale >= 1
                           ? QSize(p.width * scale, p.height * scale)
                           : QSize(p.width, p.height).scaled(pixels, pixels, Qt::KeepAspectRatio);
  const QRect area(QPoint((pixels - fitted.width()) / 2, (pixels - fitted.height()) / 2), fitted);
  const int overlay_scale = std::max(scale, 1);

  QImage content;
  QString missing;
  switch (column) {
    case InspectorColumn::Input:
      content = maskOverlay(p, {}, QColor(), overlay_scale);
      missing = QStringLiteral("no image");
      break;
    case InspectorColumn::Attention:
    case InspectorColumn::Head: {
      const int head = column == InspectorColumn::Head ? std::max(grid_column.head, 0) : -1;
      const ProbeImage map = withHead(p, head);
      double lo = 0.0, hi = 0.0;
      if (!colourRange(row, &lo, &hi, head)) attentionRange(map, &lo, &hi);
      content = attention_overlay_
                    ? mst::attentionOverlay(map, lo, hi, overlay_scale, kAttentionOverlayOpacity)
                    : attentionHeatmap(map, lo, hi);
      // Without the image (sizes that do not match) the heat map alone still shows.
      if (content.isNull()) content = attentionHeatmap(map, lo, hi);
      missing = QStringLiteral("no attention");
      break;
    }
    case InspectorColumn::RandomMask:
      if (p.mask_random.size() == p.grid_h * p.grid_w && p.grid_h > 0)
        content = maskOverlay(p, p.mask_random, randomMaskColour(), overlay_scale);
      missing = QStringLiteral("no mask");
      break;
    case InspectorColumn::GuidedMask:
      if (p.mask_guided.size() == p.grid_h * p.grid_w && p.grid_h > 0)
        content = maskOverlay(p, p.mask_guided, guidedMaskColour(), overlay_scale);
      missing = QStringLiteral("no mask");
      break;
    case InspectorColumn::Reconstruction:
      content = planesToQImage(p.reconstruction, p.channels, p.height, p.width);
      if (!content.isNull())
        content = content.scaled(content.width() * overlay_scale, content.height() * overlay_scale,
                                 Qt::IgnoreAspectRatio, Qt::FastTransformation);
      missing = QStringLiteral("no reconstruction");
      break;
    case InspectorColumn::Threshold:
      if (p.attention.size() == p.grid_h * p.grid_w && p.grid_h > 0)
        content = maskOverlay(p, attentionThresholdMask(p.attention, kThresholdMass),
                              thresholdColour(), overlay_scale);
      missing = QStringLiteral("no attention");
      break;
  }
  if (content.isNull()) {
    paintPlaceholder(cell, area, missing);
    return cell;
  }
  if (content.size() != area.size()) {
    // The patch-grid heat map is always stretched with nearest neighbour so patches stay blocks.
    const bool blocks = content.size() == QSize(p.grid_w, p.grid_h) || scale >= 1;
    content = content.scaled(area.size(), Qt::IgnoreAspectRatio,
                             blocks ? Qt::FastTransformation : Qt::SmoothTransformation);
  }
  QPainter painter(&cell);
  painter.drawImage(area.topLeft(), content);
  return cell;
}

}  // namespace mst
