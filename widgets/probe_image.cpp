/// @brief Renderings of a probe image: planes to QImage, attention heat map, mask overlays, export.
#include "widgets/probe_image.h"

#include <QSaveFile>
#include <QTextStream>

#include <QFileInfo>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QSvgGenerator>
#include <QtMath>
#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

namespace mst {
namespace {

// 11 evenly spaced samples of matplotlib's maps; linear interpolation between them stays within a
// few levels of the 256-entry tables, which is invisible at patch-grid resolution.
constexpr std::array<QRgb, 11> kViridis = {0x440154, 0x482576, 0x414487, 0x35608D,
                                           0x2A788E, 0x21908C, 0x22A884, 0x43BF71,
                                           0x7AD151, 0xBBDF27, 0xFDE725};
constexpr std::array<QRgb, 11> kInferno = {0x000004, 0x160B39, 0x420A68, 0x6A176E,
                                           0x932667, 0xBC3754, 0xDD513A, 0xF37819,
                                           0xFCA50A, 0xF6D746, 0xFCFFA4};

QColor sampleMap(const std::array<QRgb, 11>& table, double t) {
  if (!std::isfinite(t)) t = 0.0;
  t = std::clamp(t, 0.0, 1.0) * (table.size() - 1);
  const int i = std::min(static_cast<int>(t), static_cast<int>(table.size()) - 2);
  const double f = t - i;
  const QColor a(table[i]), b(table[i + 1]);
  auto mix = [f](int x, int y) { return static_cast<int>(std::lround(x + (y - x) * f)); };
  return QColor(mix(a.red(), b.red()), mix(a.green(), b.green()), mix(a.blue(), b.blue()));
}

int toByte(float v) {
  if (!std::isfinite(v)) return 0;
  return static_cast<int>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f));
}

/// The patch holding pixel `x` of `extent` pixels split into `cells` patches at maskOverlay's
/// integer edges (patch c spans c * extent / cells up to (c + 1) * extent / cells): the largest c
/// with c * extent < (x + 1) * cells.
int patchOf(int x, int extent, int cells) { return ((x + 1) * cells - 1) / extent; }

bool gridMatches(const ProbeImage& p, int size) {
  return p.grid_h > 0 && p.grid_w > 0 && size == p.grid_h * p.grid_w;
}

}  // namespace

QVector<float> headAttention(const ProbeImage& p, int head) {
  const int n = p.grid_h * p.grid_w;
  if (head < 0 || head >= p.heads || n <= 0 || p.attention_heads.size() < (head + 1) * n) return {};
  return p.attention_heads.mid(head * n, n);
}

QVector<quint8> attentionThresholdMask(const QVector<float>& attention, double mass) {
  QVector<quint8> mask(attention.size(), 0);
  QVector<double> a(attention.size());
  for (int i = 0; i < attention.size(); ++i) {
    const float v = attention[i];
    a[i] = (std::isfinite(v) && v > 0.0f) ? v : 0.0;
  }
  const double total = std::accumulate(a.begin(), a.end(), 0.0);
  if (total <= 0.0 || mass <= 0.0) return mask;
  QVector<int> order(a.size());
  std::iota(order.begin(), order.end(), 0);
  // stable_sort keeps the lower index first among equal values, as the tie rule asks.
  std::stable_sort(order.begin(), order.end(), [&a](int x, int y) { return a[x] > a[y]; });
  const double target = std::min(mass, 1.0) * total;
  double held = 0.0;
  for (int i : order) {
    if (held >= target) break;
    mask[i] = 1;
    held += a[i];
  }
  return mask;
}

QImage planesToQImage(const QVector<float>& planes, int channels, int height, int width) {
  if (channels <= 0 || height <= 0 || width <= 0 ||
      planes.size() != static_cast<qsizetype>(channels) * height * width)
    return QImage();
  QImage out(width, height, QImage::Format_ARGB32);
  const qsizetype plane = static_cast<qsizetype>(height) * width;
  const bool rgb = channels >= 3;
  for (int y = 0; y < height; ++y) {
    auto* line = reinterpret_cast<QRgb*>(out.scanLine(y));
    for (int x = 0; x < width; ++x) {
      const qsizetype i = static_cast<qsizetype>(y) * width + x;
      const int r = toByte(planes[i]);
      line[x] =
          rgb ? qRgb(r, toByte(planes[plane + i]), toByte(planes[2 * plane + i])) : qRgb(r, r, r);
    }
  }
  return out;
}

QImage imageToQImage(const ProbeImage& p) {
  return planesToQImage(p.image, p.channels, p.height, p.width);
}

double attentionTimesUniform(const ProbeImage& p, int i) {
  const float v = p.attention[i];
  return std::isfinite(v) ? double(v) * p.grid_h * p.grid_w : qQNaN();
}

bool attentionRange(const ProbeImage& p, double* lo, double* hi) {
  if (!gridMatches(p, p.attention.size())) return false;
  double a = INFINITY, b = -INFINITY;
  for (int i = 0; i < p.attention.size(); ++i) {
    const double v = attentionTimesUniform(p, i);
    if (!std::isfinite(v)) continue;
    a = std::min(a, v);
    b = std::max(b, v);
  }
  if (a > b) return false;
  *lo = a;
  *hi = b;
  return true;
}

QImage attentionHeatmap(const ProbeImage& p) {
  double lo = 0.0, hi = 0.0;
  attentionRange(p, &lo, &hi);
  return attentionHeatmap(p, lo, hi);
}

QImage attentionHeatmap(const ProbeImage& p, double lo, double hi) {
  if (!gridMatches(p, p.attention.size())) return QImage();
  QImage out(p.grid_w, p.grid_h, QImage::Format_ARGB32);
  for (int r = 0; r < p.grid_h; ++r) {
    for (int c = 0; c < p.grid_w; ++c) {
      const double v = attentionTimesUniform(p, r * p.grid_w + c);
      const double t = !std::isfinite(v) ? 0.0 : hi > lo ? (v - lo) / (hi - lo) : 0.5;
      out.setPixel(c, r, infernoColour(t).rgb());
    }
  }
  return out;
}

QImage attentionOverlay(const ProbeImage& p, double lo, double hi, int scale, double opacity) {
  const QImage base = imageToQImage(p);
  const QImage heat = attentionHeatmap(p, lo, hi);
  if (base.isNull() || heat.isNull()) return QImage();
  scale = std::max(scale, 1);
  const double a = std::clamp(opacity, 0.0, 1.0);
  QImage out(base.width() * scale, base.height() * scale, QImage::Format_ARGB32);
  auto mix = [a](int under, int over) { return int(std::lround((1.0 - a) * under + a * over)); };
  for (int y = 0; y < out.height(); ++y) {
    const auto* src = reinterpret_cast<const QRgb*>(base.constScanLine(y / scale));
    const int r = patchOf(y, out.height(), p.grid_h);
    const auto* hot = reinterpret_cast<const QRgb*>(heat.constScanLine(r));
    auto* line = reinterpret_cast<QRgb*>(out.scanLine(y));
    for (int x = 0; x < out.width(); ++x) {
      const QRgb u = src[x / scale], o = hot[patchOf(x, out.width(), p.grid_w)];
      line[x] = qRgb(mix(qRed(u), qRed(o)), mix(qGreen(u), qGreen(o)), mix(qBlue(u), qBlue(o)));
    }
  }
  return out;
}

QImage maskOverlay(const ProbeImage& p, const QVector<quint8>& mask, const QColor& colour,
                   int scale) {
  const QImage base = imageToQImage(p);
  if (base.isNull()) return base;
  scale = std::max(scale, 1);
  QImage out = base.scaled(base.width() * scale, base.height() * scale, Qt::IgnoreAspectRatio,
                           Qt::FastTransformation);
  if (!gridMatches(p, mask.size())) return out;
  QPainter painter(&out);
  painter.setRenderHint(QPainter::Antialiasing, false);
  QColor fill = colour;
  fill.setAlphaF(0.6f);  // strong enough to see at a glance, weak enough to read the image below
  QPen outline(colour);
  outline.setWidth(1);
  outline.setCosmetic(true);
  for (int r = 0; r < p.grid_h; ++r) {
    for (int c = 0; c < p.grid_w; ++c) {
      if (!mask[r * p.grid_w + c]) continue;
      // Integer edges from the image size so that patches tile the image even when the patch
      // size does not divide it; every pixel belongs to exactly one patch.
      const int x0 = c * out.width() / p.grid_w, x1 = (c + 1) * out.width() / p.grid_w;
      const int y0 = r * out.height() / p.grid_h, y1 = (r + 1) * out.height() / p.grid_h;
      const QRect cell(x0, y0, x1 - x0, y1 - y0);
      if (cell.isEmpty()) continue;
      painter.fillRect(cell, fill);
      painter.setPen(outline);
      painter.setBrush(Qt::NoBrush);
      // An outline inside the patch keeps neighbouring unmasked patches untouched.
      painter.drawRect(cell.adjusted(0, 0, -1, -1));
    }
  }
  return out;
}

QColor viridisColour(double t) { return sampleMap(kViridis, t); }
QColor infernoColour(double t) { return sampleMap(kInferno, t); }

/// Black or white, whichever reads better on `fill` (relative luminance, WCAG weights).
bool writeTextFile(const QString& path, const std::function<void(QTextStream&)>& write,
                   QString* error) {
  QSaveFile file(path);
  if (file.open(QIODevice::WriteOnly | QIODevice::Text)) {
    QTextStream out(&file);
    write(out);
    out.flush();
    if (out.status() == QTextStream::Ok && file.commit()) return true;
  }
  if (error) *error = QStringLiteral("cannot write %1: %2").arg(path, file.errorString());
  return false;
}

QColor textOn(const QColor& fill) {
  const double luminance = 0.2126 * fill.redF() + 0.7152 * fill.greenF() + 0.0722 * fill.blueF();
  return luminance > 0.45 ? Qt::black : Qt::white;
}

QString csvField(const QString& s) {
  if (!s.contains(QLatin1Char(',')) && !s.contains(QLatin1Char('"')) &&
      !s.contains(QLatin1Char('\n')))
    return s;
  QString quoted = s;
  quoted.replace(QLatin1String("\""), QLatin1String("\"\""));
  return QLatin1Char('"') + quoted + QLatin1Char('"');
}

bool paintToFile(const QString& path, const QSizeF& size,
                 const std::function<void(QPainter&)>& paint, QString* error,
                 const QString& description) {
  auto fail = [&](const QString& why) {
    if (error) *error = why;
    return false;
  };
  const QString suffix = QFileInfo(path).suffix().toLower();
  if (size.isEmpty()) return fail(QStringLiteral("nothing to export to %1").arg(path));
  if (suffix == QLatin1String("png")) {
    // Twice the logical size: crisp text and pixels when the figure is placed at its width.
    constexpr int kRatio = 2;
    QImage image(qCeil(size.width()) * kRatio, qCeil(size.height()) * kRatio,
                 QImage::Format_ARGB32);
    image.setDevicePixelRatio(kRatio);
    image.fill(Qt::white);
    {
      QPainter painter(&image);
      painter.setRenderHint(QPainter::Antialiasing);
      painter.setRenderHint(QPainter::TextAntialiasing);
      paint(painter);
    }
    image.setText(QStringLiteral("Software"), QStringLiteral("MST Workbench"));
    if (!description.isEmpty()) image.setText(QStringLiteral("Description"), description);
    if (!image.save(path, "PNG")) return fail(QStringLiteral("cannot write %1").arg(path));
    return true;
  }
  if (suffix == QLatin1String("pdf")) {
    QPdfWriter writer(path);
    writer.setCreator(QStringLiteral("MST Workbench"));
    if (!description.isEmpty()) writer.setTitle(description);
    writer.setResolution(72);  // one logical unit = one point
    // ExactMatch: the default fuzzy match would snap the page to the nearest paper size.
    writer.setPageSize(QPageSize(size, QPageSize::Point, QString(), QPageSize::ExactMatch));
    writer.setPageMargins(QMarginsF(0, 0, 0, 0));
    QPainter painter;
    if (!painter.begin(&writer)) return fail(QStringLiteral("cannot write %1").arg(path));
    painter.fillRect(QRectF(QPointF(0, 0), size), Qt::white);
    paint(painter);
    painter.end();
  } else if (suffix == QLatin1String("svg")) {
    QSvgGenerator generator;
    generator.setFileName(path);
    generator.setSize(size.toSize());
    generator.setViewBox(QRectF(QPointF(0, 0), size));
    generator.setTitle(QFileInfo(path).completeBaseName());
    generator.setDescription(description.isEmpty() ? QStringLiteral("MST Workbench figure")
                                                   : description);
    QPainter painter;
    if (!painter.begin(&generator)) return fail(QStringLiteral("cannot write %1").arg(path));
    painter.fillRect(QRectF(QPointF(0, 0), size), Qt::white);
    paint(painter);
    painter.end();
  } else {
    return fail(QStringLiteral("unsupported figure format '%1' for %2 (use .png, .pdf or .svg)")
                    .arg(suffix, path));
  }
  // PDF and SVG painters report some open failures only through a missing or empty file.
  const QFileInfo written(path);
  if (!written.exists() || written.size() == 0)
    return fail(QStringLiteral("cannot write %1").arg(path));
  return true;
}

}  // namespace mst
