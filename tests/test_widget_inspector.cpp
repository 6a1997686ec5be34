/// @brief Tests of the probe renderings, the inspector grid and the sweep heat map.
#include <QtTest>
#include <cmath>

#include "widgets/inspector_grid.h"
#include "widgets/probe_image.h"
#include "widgets/sweep_heatmap.h"

using mst::CellState;
using mst::InspectorColumn;
using mst::InspectorGrid;
using mst::ProbeImage;
using mst::SweepHeatmap;

namespace {

/// A 28x28 probe on a 7x7 grid (4-px patches): a bright blob on a dark ground, attention following
/// the blob, masks given as sets of patch indices. Grey values stay clear of the overlay colours.
ProbeImage makeProbe(const QString& title, int channels, const QSet<int>& random,
                     const QSet<int>& guided) {
  ProbeImage p;
  p.title = title;
  p.channels = channels;
  p.height = p.width = 28;
  p.grid_h = p.grid_w = 7;
  const int plane = 28 * 28;
  p.image.resize(channels * plane);
  for (int ch = 0; ch < channels; ++ch)
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        const double blob =
            std::exp(-((x - 13.5) * (x - 13.5) / 60.0 + (y - 12) * (y - 12) / 90.0));
        p.image[ch * plane + y * 28 + x] = float(0.15 + 0.6 * blob + 0.01 * ((x + y + ch) % 5));
      }
  p.attention.resize(49);
  for (int i = 0; i < 49; ++i) {
    const int r = i / 7, c = i % 7;
    p.attention[i] = float(std::exp(-((c - 3) * (c - 3) + (r - 3) * (r - 3)) / 4.0) + 0.01 * i);
  }
  p.mask_random.fill(0, 49);
  p.mask_guided.fill(0, 49);
  for (int i : random) p.mask_random[i] = 1;
  for (int i : guided) p.mask_guided[i] = 1;
  p.reconstruction = p.image;
  for (float& v : p.reconstruction) v = 0.9f * v + 0.05f;
  return p;
}

/// Pixels where `a` and `b` differ (same size assumed), as y * width + x.
QSet<int> changedPixels(const QImage& a, const QImage& b) {
  QSet<int> out;
  for (int y = 0; y < a.height(); ++y)
    for (int x = 0; x < a.width(); ++x)
      if (a.pixel(x, y) != b.pixel(x, y)) out.insert(y * a.width() + x);
  return out;
}

QByteArray head(const QString& path, int n) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return {};
  return f.read(n);
}

QStringList readLines(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly | QIODevice::Text)) return {};
  QStringList lines = QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'));
  if (!lines.isEmpty() && lines.last().isEmpty()) lines.removeLast();
  return lines;
}

const QStringList kRows = {"1", "2", "4", "8"};
const QStringList kCols = {"0.05", "0.1", "0.15"};

}  // namespace

Q_DECLARE_METATYPE(CellState)

class TestWidgetInspector : public QObject {
  Q_OBJECT

 private slots:
  void thresholdMask_data() {
    QTest::addColumn<QVector<float>>("attention");
    QTest::addColumn<double>("mass");
    QTest::addColumn<QVector<quint8>>("expected");
    QTest::newRow("largest first")
        << QVector<float>{0.5f, 0.3f, 0.1f, 0.1f} << 0.6 << QVector<quint8>{1, 1, 0, 0};
    QTest::newRow("order of input irrelevant")
        << QVector<float>{0.1f, 0.3f, 0.1f, 0.5f} << 0.6 << QVector<quint8>{0, 1, 0, 1};
    QTest::newRow("ties by lower index")
        << QVector<float>{0.25f, 0.25f, 0.25f, 0.25f} << 0.5 << QVector<quint8>{1, 1, 0, 0};
    QTest::newRow("tie at the boundary")
        << QVector<float>{0.3f, 0.1f, 0.3f, 0.3f} << 0.5 << QVector<quint8>{1, 0, 1, 0};
    QTest::newRow("exact mass stops")
        << QVector<float>{0.5f, 0.25f, 0.25f} << 0.75 << QVector<quint8>{1, 1, 0};
    QTest::newRow("unnormalised") << QVector<float>{2, 6, 1, 1} << 0.6
                                  << QVector<quint8>{0, 1, 0, 0};
    QTest::newRow("mass 1 skips zeros")
        << QVector<float>{0.5f, 0.0f, 0.5f} << 1.0 << QVector<quint8>{1, 0, 1};
    QTest::newRow("all zero") << QVector<float>{0, 0, 0} << 0.6 << QVector<quint8>{0, 0, 0};
    QTest::newRow("nan counts as zero")
        << QVector<float>{float(qQNaN()), 1.0f, 3.0f} << 0.9 << QVector<quint8>{0, 1, 1};
  }
  void thresholdMask() {
    QFETCH(QVector<float>, attention);
    QFETCH(double, mass);
    QFETCH(QVector<quint8>, expected);
    QCOMPARE(mst::attentionThresholdMask(attention, mass), expected);
  }

  void imageConversion() {
    ProbeImage gray = makeProbe("g", 1, {}, {});
    gray.image[5 * 28 + 3] = 1.0f;
    gray.image[0] = -0.5f;  // clamped
    const QImage g = mst::imageToQImage(gray);
    QCOMPARE(g.size(), QSize(28, 28));
    QCOMPARE(g.pixel(3, 5), qRgb(255, 255, 255));
    QCOMPARE(g.pixel(0, 0), qRgb(0, 0, 0));
    ProbeImage rgb = makeProbe("c", 3, {}, {});
    rgb.image[0] = 1.0f, rgb.image[784] = 0.0f, rgb.image[2 * 784] = 0.5f;
    QCOMPARE(mst::imageToQImage(rgb).pixel(0, 0), qRgb(255, 0, 128));
    rgb.image.removeLast();
    QVERIFY(mst::imageToQImage(rgb).isNull());
  }

  void attentionHeatmap() {
    const ProbeImage p = makeProbe("a", 1, {}, {});
    const QImage heat = mst::attentionHeatmap(p);
    QCOMPARE(heat.size(), QSize(7, 7));
    const auto [lo, hi] = std::minmax_element(p.attention.begin(), p.attention.end());
    const int i_lo = int(lo - p.attention.begin()), i_hi = int(hi - p.attention.begin());
    QCOMPARE(heat.pixel(i_hi % 7, i_hi / 7), mst::infernoColour(1.0).rgb());
    QCOMPARE(heat.pixel(i_lo % 7, i_lo / 7), mst::infernoColour(0.0).rgb());
  }

  void attentionHeatmapOnAGivenScale() {
    ProbeImage p = makeProbe("a", 1, {}, {});
    for (int i = 0; i < 49; ++i) p.attention[i] = float(i) / 49.0f / 49.0f;  // i/49 x uniform
    p.attention[48] = 1.0f / 49.0f;                                          // 1 x uniform
    double lo = 0, hi = 0;
    QVERIFY(mst::attentionRange(p, &lo, &hi));
    QCOMPARE(lo, 0.0);
    QVERIFY(std::abs(hi - 1.0) < 1e-6);
    QVERIFY(std::abs(mst::attentionTimesUniform(p, 24) - 24.0 / 49.0) < 1e-6);
    // On the scale 0..2, 1 x uniform is the middle colour and nothing reaches the brightest.
    const QImage heat = mst::attentionHeatmap(p, 0.0, 2.0);
    QCOMPARE(heat.pixel(6, 6), mst::infernoColour(0.5).rgb());
    QCOMPARE(heat.pixel(0, 0), mst::infernoColour(0.0).rgb());
    // Values beyond the scale are clamped; a constant scale shows the middle colour.
    QCOMPARE(mst::attentionHeatmap(p, 0.0, 0.5).pixel(6, 6), mst::infernoColour(1.0).rgb());
    QCOMPARE(mst::attentionHeatmap(p, 3.0, 3.0).pixel(3, 3), mst::infernoColour(0.5).rgb());
  }

  /// Shared: one attention value has one colour in every row, and a nearly flat map stays nearly
  /// one colour; per image: each map spans the whole colour map.
  void sharedScaleComparesImages_data() {
    QTest::addColumn<int>("scale");
    QTest::newRow("shared") << int(mst::AttentionScale::Shared);
    QTest::newRow("per image") << int(mst::AttentionScale::PerImage);
  }
  void sharedScaleComparesImages() {
    QFETCH(int, scale);
    const bool shared = scale == int(mst::AttentionScale::Shared);
    ProbeImage peaked = makeProbe("#0", 1, {}, {});
    ProbeImage flat = makeProbe("#1", 1, {}, {});
    for (int i = 0; i < 49; ++i) flat.attention[i] = (1.0f + 0.02f * (i % 3)) / 49.0f;
    // Patch 10 of both maps holds the same value (the flat map's highest).
    peaked.attention[10] = flat.attention[2];
    InspectorGrid grid;
    grid.setImages({peaked, flat});
    if (!shared) QCOMPARE(grid.attentionScale(), mst::AttentionScale::Shared);  // the default
    grid.setAttentionScale(mst::AttentionScale(scale));
    const QImage a = grid.renderCell(0, InspectorColumn::Attention);
    const QImage b = grid.renderCell(1, InspectorColumn::Attention);
    auto at = [](const QImage& cell, int patch) {  // 112 / 7 = 16 px per patch
      return cell.pixel((patch % 7) * 16 + 8, (patch / 7) * 16 + 8);
    };
    QCOMPARE(at(a, 10) == at(b, 2), shared);
    // The flat map: its darkest and brightest patches.
    const QColor dark(at(b, 0)), bright(at(b, 2));
    const int spread = std::abs(bright.red() - dark.red()) +
                       std::abs(bright.green() - dark.green()) +
                       std::abs(bright.blue() - dark.blue());
    if (shared) {
      QVERIFY2(spread < 40, qPrintable(QString::number(spread)));
    } else {
      QCOMPARE(at(b, 0), mst::infernoColour(0.0).rgb());
      QCOMPARE(at(b, 2), mst::infernoColour(1.0).rgb());
    }
    double lo0, hi0, lo1, hi1;
    QVERIFY(grid.colourRange(0, &lo0, &hi0));
    QVERIFY(grid.colourRange(1, &lo1, &hi1));
    QCOMPARE(lo0 == lo1 && hi0 == hi1, shared);
    // The bar's labels: the shared range's ends in x uniform, or the per-image words.
    const QStringList labels = grid.colourBarLabels();
    QCOMPARE(labels.size(), 2);
    if (shared) {
      double lo = INFINITY, hi = -INFINITY;
      for (const ProbeImage& p : {peaked, flat})
        for (float v : p.attention) lo = std::min(lo, 49.0 * v), hi = std::max(hi, 49.0 * v);
      QCOMPARE(labels[0], QString::number(lo, 'f', 2));  // 2 decimals below 10
      QCOMPARE(labels[1], QString::number(hi, 'f', 1));  // 1 below 100
      QVERIFY(hi >= 10 && hi < 100);
    } else {
      QCOMPARE(labels, QStringList({"min", "max"}));
    }
  }

  void colourBarOnScreenAndInTheFigure() {
    InspectorGrid grid;
    QVERIFY(grid.colourBarRect().isEmpty());  // no attention, no bar
    QVERIFY(grid.colourBarLabels().isEmpty());
    grid.setImages({makeProbe("#0", 1, {1}, {40}), makeProbe("#1", 1, {2}, {41})});
    const QRect bar = grid.colourBarRect();
    const QRect first = grid.cellRect(0, InspectorColumn::Attention);
    QVERIFY(!bar.isEmpty());
    QVERIFY(bar.bottom() < first.top());  // above the column, like its title
    QCOMPARE(bar.left(), first.left());
    grid.resize(grid.sizeHint());
    const QImage shot = grid.grab().toImage();
    const int y = bar.center().y();
    QCOMPARE(shot.pixel(bar.left(), y), mst::infernoColour(0.0).rgb());
    QCOMPARE(shot.pixel(bar.right(), y), mst::infernoColour(1.0).rgb());
    // The figure has the bar too (2 px per unit), and its labels below it.
    QTemporaryDir dir;
    QVERIFY(grid.exportFigure(dir.filePath("f.png")));
    const QImage fig(dir.filePath("f.png"));
    const QRect fbar = grid.colourBarRect(/*figure=*/true);
    QVERIFY(!fbar.isEmpty());
    const int fy = 2 * fbar.center().y();
    QCOMPARE(fig.pixel(2 * fbar.left(), fy), mst::infernoColour(0.0).rgb());
    QCOMPARE(fig.pixel(2 * fbar.right() + 1, fy), mst::infernoColour(1.0).rgb());
    int ink = 0;
    for (int yy = 2 * (fbar.bottom() + 2); yy < 2 * (fbar.bottom() + 16); ++yy)
      for (int x = 2 * fbar.left(); x < 2 * fbar.right(); ++x) ink += qGray(fig.pixel(x, yy)) < 128;
    QVERIFY2(ink > 40, qPrintable(QString::number(ink)));
  }

  void captionsCountMaskedPatches() {
    InspectorGrid grid;
    grid.setShowThreshold(true);
    grid.setImages({makeProbe("#0", 1, {3, 10, 17, 30, 31}, {0}), makeProbe("#1", 1, {}, {})});
    QCOMPARE(grid.cellCaption(0, InspectorColumn::RandomMask), QString("5/49 masked"));
    QCOMPARE(grid.cellCaption(0, InspectorColumn::GuidedMask), QString("1/49 masked"));
    QCOMPARE(grid.cellCaption(1, InspectorColumn::GuidedMask), QString("0/49 masked"));
    QVERIFY(grid.cellCaption(0, InspectorColumn::Input).isEmpty());
    QVERIFY(grid.cellCaption(0, InspectorColumn::Threshold).endsWith("/49 patches"));
    double lo, hi;
    QVERIFY(mst::attentionRange(grid.images()[0], &lo, &hi));
    QCOMPARE(grid.cellCaption(0, InspectorColumn::Attention),
             QString("%1 – %2 ×").arg(QString::number(lo, 'f', 2), QString::number(hi, 'f', 1)));
    // Drawn between a cell and the next row: ink under the masks, none under the input.
    grid.resize(grid.sizeHint());
    const QImage shot = grid.grab().toImage();
    auto inkUnder = [&](InspectorColumn c) {
      const QRect cell = grid.cellRect(0, c), next = grid.cellRect(1, c);
      QSet<QRgb> colours;
      for (int y = cell.bottom() + 1; y < next.top(); ++y)
        for (int x = cell.left(); x <= cell.right(); ++x) colours.insert(shot.pixel(x, y));
      return colours.size() > 1;
    };
    QVERIFY(inkUnder(InspectorColumn::RandomMask));
    QVERIFY(inkUnder(InspectorColumn::GuidedMask));
    QVERIFY(inkUnder(InspectorColumn::Attention));
    QVERIFY(!inkUnder(InspectorColumn::Input));
  }

  void maskOverlay_data() {
    QTest::addColumn<int>("channels");
    QTest::addColumn<int>("scale");
    QTest::addColumn<QSet<int>>("masked");
    QTest::newRow("none, x1") << 1 << 1 << QSet<int>{};
    QTest::newRow("one patch, x1") << 1 << 1 << QSet<int>{24};
    QTest::newRow("corners, x3") << 1 << 3 << QSet<int>{0, 6, 42, 48};
    QTest::newRow("neighbours, x4") << 1 << 4 << QSet<int>{8, 9, 15, 16, 30};
    QTest::newRow("rgb row, x2") << 3 << 2 << QSet<int>{21, 22, 23, 24, 25, 26, 27};
  }
  void maskOverlay() {
    QFETCH(int, channels);
    QFETCH(int, scale);
    QFETCH(QSet<int>, masked);
    const ProbeImage p = makeProbe("m", channels, masked, {});
    const QImage plain = mst::imageToQImage(p).scaled(28 * scale, 28 * scale, Qt::IgnoreAspectRatio,
                                                      Qt::FastTransformation);
    const QImage overlay =
        mst::maskOverlay(p, p.mask_random, InspectorGrid::randomMaskColour(), scale);
    QCOMPARE(overlay.size(), plain.size());
    const int patch = 4 * scale;
    for (int y = 0; y < overlay.height(); ++y) {
      for (int x = 0; x < overlay.width(); ++x) {
        const bool in_masked = masked.contains((y / patch) * 7 + x / patch);
        if (in_masked != (overlay.pixel(x, y) != plain.pixel(x, y)))
          QFAIL(qPrintable(QStringLiteral("pixel (%1,%2) masked=%3 changed=%4")
                               .arg(x)
                               .arg(y)
                               .arg(in_masked)
                               .arg(!in_masked)));
      }
    }
  }

  void maskOverlayKeepsImageReadable() {
    // The fill is translucent: a light and a dark pixel under a masked patch keep a good part of
    // their contrast (the 60 % fill leaves 40 %).
    ProbeImage p = makeProbe("r", 1, {24}, {});
    const QPoint a(13, 13), b(14, 14);  // inside patch 24 (rows/cols 12..15), off the outline
    p.image[a.y() * 28 + a.x()] = 0.9f;
    p.image[b.y() * 28 + b.x()] = 0.2f;
    const QImage overlay = mst::maskOverlay(p, p.mask_random, InspectorGrid::guidedMaskColour(), 4);
    const QImage plain = mst::imageToQImage(p);
    const int plain_contrast = qGray(plain.pixel(a)) - qGray(plain.pixel(b));
    const int overlay_contrast =
        qGray(overlay.pixel(a * 4 + QPoint(1, 1))) - qGray(overlay.pixel(b * 4 + QPoint(1, 1)));
    QVERIFY(plain_contrast > 150);
    QVERIFY2(overlay_contrast >= 0.35 * plain_contrast,
             qPrintable(QString::number(overlay_contrast)));
  }

  void renderCellMasks_data() {
    QTest::addColumn<QSet<int>>("random");
    QTest::addColumn<QSet<int>>("guided");
    QTest::newRow("different") << QSet<int>{3, 10, 17} << QSet<int>{0, 1, 48};
    QTest::newRow("overlapping") << QSet<int>{3, 10, 17} << QSet<int>{3, 10};
    QTest::newRow("equal") << QSet<int>{5, 12, 40} << QSet<int>{5, 12, 40};
    QTest::newRow("both empty") << QSet<int>{} << QSet<int>{};
  }
  void renderCellMasks() {
    QFETCH(QSet<int>, random);
    QFETCH(QSet<int>, guided);
    InspectorGrid grid;
    grid.setImages({makeProbe("#0", 1, random, guided)});
    const QImage input = grid.renderCell(0, InspectorColumn::Input);
    const QImage r = grid.renderCell(0, InspectorColumn::RandomMask);
    const QImage g = grid.renderCell(0, InspectorColumn::GuidedMask);
    QCOMPARE(r.size(), QSize(112, 112));
    QCOMPARE(g.size(), QSize(112, 112));
    // Same masks -> the same patches drawn over (in each mask's own colour); different -> not.
    const QSet<int> changed_r = changedPixels(input, r), changed_g = changedPixels(input, g);
    QCOMPARE(changed_r == changed_g, random == guided);
    if (random != guided) QVERIFY(r != g);
    if (random.isEmpty() && guided.isEmpty()) {
      QCOMPARE(r, input);
      QCOMPARE(g, input);
    }
    // 112 / 28 = 4 pixels per image pixel: every masked patch is a 16 x 16 block of the cell.
    QCOMPARE(changed_g.size(), guided.size() * 16 * 16);
  }

  void renderCellInputIsCrisp() {
    InspectorGrid grid;
    const ProbeImage p = makeProbe("#0", 1, {}, {});
    grid.setImages({p});
    const QImage expected =
        mst::imageToQImage(p).scaled(112, 112, Qt::IgnoreAspectRatio, Qt::FastTransformation);
    QCOMPARE(grid.renderCell(0, InspectorColumn::Input), expected);
    grid.setCellSize(64);  // 64 / 28 -> 2 px per image pixel, centred with a transparent margin
    const QImage small = grid.renderCell(0, InspectorColumn::Input);
    QCOMPARE(small.size(), QSize(64, 64));
    QCOMPARE(qAlpha(small.pixel(0, 0)), 0);
    QCOMPARE(small.pixel(4, 4), mst::imageToQImage(p).pixel(0, 0));
  }

  void renderCellMissingViews() {
    ProbeImage p = makeProbe("#0", 1, {}, {});
    p.reconstruction.clear();
    p.attention.clear();
    InspectorGrid grid;
    grid.setImages({p});
    grid.setShowThreshold(true);
    for (InspectorColumn c : grid.columns()) {
      const QImage cell = grid.renderCell(0, c);
      QCOMPARE(cell.size(), QSize(112, 112));  // a placeholder, never a null cell
    }
    QVERIFY(grid.renderCell(1, InspectorColumn::Input).isNull());
  }

  void thresholdColumn() {
    InspectorGrid grid;
    const ProbeImage p = makeProbe("#0", 1, {}, {});
    grid.setImages({p, p});
    QCOMPARE(grid.columns().size(), 5);
    QVERIFY(grid.cellRect(0, InspectorColumn::Threshold).isEmpty());
    const int width5 = grid.sizeHint().width();
    grid.setShowThreshold(true);
    QCOMPARE(grid.columns().size(), 6);
    QCOMPARE(grid.columns().last(), InspectorColumn::Threshold);
    const QRect rect = grid.cellRect(1, InspectorColumn::Threshold);
    QVERIFY(!rect.isEmpty());
    QVERIFY(rect.left() > grid.cellRect(1, InspectorColumn::Reconstruction).right());
    QVERIFY(grid.sizeHint().width() >= width5 + grid.cellSize());
    // The threshold cell draws over exactly the patches holding 60 % of the attention.
    const QVector<quint8> top = mst::attentionThresholdMask(p.attention, 0.6);
    const int n_top = int(std::count(top.begin(), top.end(), quint8(1)));
    QVERIFY(n_top > 0 && n_top < 49);
    const QSet<int> changed = changedPixels(grid.renderCell(0, InspectorColumn::Input),
                                            grid.renderCell(0, InspectorColumn::Threshold));
    QCOMPARE(changed.size(), n_top * 16 * 16);
    grid.setShowThreshold(false);
    QCOMPARE(grid.columns().size(), 5);
    QCOMPARE(grid.sizeHint().width(), width5);
  }

  void attentionOverlayBlendsHeatmapPerPatch_data() {
    QTest::addColumn<int>("size");
    QTest::addColumn<int>("scale");
    QTest::addColumn<int>("channels");
    QTest::newRow("28 px, patches divide it") << 28 << 2 << 1;
    QTest::newRow("30 px, patches do not divide it") << 30 << 1 << 3;
    QTest::newRow("30 px at 3x") << 30 << 3 << 1;
  }

  void attentionOverlayBlendsHeatmapPerPatch() {
    QFETCH(int, size);
    QFETCH(int, scale);
    QFETCH(int, channels);
    ProbeImage p = makeProbe("#0", channels, {}, {});
    p.height = p.width = size;
    p.image.fill(0.0f, channels * size * size);
    for (int i = 0; i < p.image.size(); ++i) p.image[i] = float(0.2 + 0.5 * ((i * 7) % 11) / 10.0);
    double lo = 0.0, hi = 0.0;
    QVERIFY(mst::attentionRange(p, &lo, &hi));
    const QImage heat = mst::attentionHeatmap(p, lo, hi);
    const QImage plain = mst::maskOverlay(p, {}, QColor(), scale);
    QCOMPARE(mst::attentionOverlay(p, lo, hi, scale, 0.0), plain);
    const QImage full = mst::attentionOverlay(p, lo, hi, scale, 1.0);
    const QImage half = mst::attentionOverlay(p, lo, hi, scale, 0.5);
    QCOMPARE(full.size(), QSize(size * scale, size * scale));
    // Every pixel of patch (r, c), as the mask overlay draws that patch, carries the patch's
    // heat colour: the two views' patches line up even where 4-px patches do not tile 30 px.
    int covered = 0;
    for (int i = 0; i < 49; ++i) {
      QVector<quint8> one(49, 0);
      one[i] = 1;
      const QSet<int> pixels =
          changedPixels(plain, mst::maskOverlay(p, one, InspectorGrid::guidedMaskColour(), scale));
      QVERIFY(!pixels.isEmpty());
      covered += pixels.size();
      const QRgb hot = heat.pixel(i % 7, i / 7);
      for (int xy : pixels) {
        const int x = xy % full.width(), y = xy / full.width();
        QCOMPARE(full.pixel(x, y), hot);
        const QRgb under = plain.pixel(x, y), mixed = half.pixel(x, y);
        QVERIFY(std::abs(qRed(mixed) - (qRed(under) + qRed(hot)) / 2.0) <= 0.5);
        QVERIFY(std::abs(qBlue(mixed) - (qBlue(under) + qBlue(hot)) / 2.0) <= 0.5);
      }
    }
    QCOMPARE(covered, full.width() * full.height());
    p.attention.removeLast();
    QVERIFY(mst::attentionOverlay(p, lo, hi, scale, 0.5).isNull());
  }

  void gridAttentionOverlay() {
    InspectorGrid grid;
    const ProbeImage p = makeProbe("#0", 1, {}, {});
    grid.setImages({p});
    const QImage alone = grid.renderCell(0, InspectorColumn::Attention);
    QVERIFY(!grid.attentionOverlay());
    grid.setAttentionOverlay(true);
    const QImage over = grid.renderCell(0, InspectorColumn::Attention);
    QVERIFY(over != alone);
    double lo = 0.0, hi = 0.0;
    QVERIFY(grid.colourRange(0, &lo, &hi));
    // The cell is the overlay at the grid's whole-multiple scale (112 / 28 = 4).
    QCOMPARE(over, mst::attentionOverlay(p, lo, hi, 4, InspectorGrid::kAttentionOverlayOpacity));
    // The input shows through: the overlay's pixels follow the image inside one patch, where
    // the heat map alone is flat.
    // (Image pixels (0, 0) and (3, 0), both in the first patch, are 4 cell pixels wide.)
    QVERIFY(over.pixel(0, 0) != over.pixel(12, 0));
    QCOMPARE(alone.pixel(0, 0), alone.pixel(12, 0));
    QCOMPARE(grid.columns().size(), 5);
    grid.setAttentionOverlay(false);
    QCOMPARE(grid.renderCell(0, InspectorColumn::Attention), alone);
  }

  void headsViewShowsEveryHead() {
    // Four heads that look at different places; the mean is their average.
    ProbeImage p = makeProbe("#0", 1, {1}, {40});
    p.heads = 4;
    p.attention_heads.resize(4 * 49);
    for (int h = 0; h < 4; ++h)
      for (int i = 0; i < 49; ++i)
        p.attention_heads[h * 49 + i] = (i == 12 * h ? 0.4f : 0.01f) + 0.001f * ((i + h) % 7);
    p.attention_heads[1 * 49 + 48] = 0.5f;  // the largest value anywhere: head 2, last patch
    for (int i = 0; i < 49; ++i) {
      float sum = 0.0f;
      for (int h = 0; h < 4; ++h) sum += p.attention_heads[h * 49 + i];
      p.attention[i] = sum / 4.0f;
    }
    ProbeImage no_heads = makeProbe("#1", 1, {}, {});  // heads = 0: a log without them
    auto head_map = [](const ProbeImage& probe, int h) {
      ProbeImage q = probe;
      q.attention = probe.attention_heads.mid(h * 49, 49);
      return q;
    };
    auto at = [](const QImage& cell, int patch) {  // 112 / 7 = 16 px per patch
      return cell.pixel((patch % 7) * 16 + 8, (patch / 7) * 16 + 8);
    };

    InspectorGrid grid;
    grid.setImages({p, no_heads});
    QCOMPARE(grid.headColumns(), 0);
    const QImage mean_cell = grid.renderCell(0, InspectorColumn::Attention);
    const int width_masks = grid.sizeHint().width();
    grid.setHeadsView(true);
    QCOMPARE(grid.columns(),
             QVector<InspectorColumn>({InspectorColumn::Input, InspectorColumn::Attention,
                                       InspectorColumn::Head, InspectorColumn::Head,
                                       InspectorColumn::Head, InspectorColumn::Head}));
    QCOMPARE(grid.headColumns(), 4);
    QVERIFY(grid.sizeHint().width() > width_masks);  // 6 columns instead of 5
    QVERIFY(grid.cellRect(0, InspectorColumn::RandomMask).isEmpty());
    QVERIFY(grid.cellRect(0, InspectorColumn::Head, 4).isEmpty());
    QVERIFY(grid.cellRect(0, InspectorColumn::Head, 2).left() >
            grid.cellRect(0, InspectorColumn::Head, 1).right());
    QCOMPARE(InspectorGrid::columnTitle(InspectorColumn::Head, 2), QString("Head 3"));

    // One shared scale over every map shown: the means and all heads of all images.
    double lo = INFINITY, hi = -INFINITY;
    for (float v : p.attention_heads) lo = std::min(lo, 49.0 * v), hi = std::max(hi, 49.0 * v);
    for (const ProbeImage& q : {p, no_heads})
      for (float v : q.attention) lo = std::min(lo, 49.0 * v), hi = std::max(hi, 49.0 * v);
    double l = 0.0, h = 0.0;
    QVERIFY(grid.colourRange(0, &l, &h, 3));
    QCOMPARE(l, lo);
    QCOMPARE(h, hi);
    QCOMPARE(grid.colourBarLabels()[1], QString::number(hi, 'f', 1));
    // Each head's cell is that head's map on that scale; the Attention column stays the mean.
    for (int head = 0; head < 4; ++head) {
      const QImage cell = grid.renderCell(0, InspectorColumn::Head, head);
      const QImage expected = mst::attentionHeatmap(head_map(p, head), lo, hi);
      for (int i = 0; i < 49; ++i)
        QVERIFY2(at(cell, i) == expected.pixel(i % 7, i / 7),
                 qPrintable(QString("head %1 patch %2").arg(head).arg(i)));
      // The caption gives the head's own range (2 decimals below 10, 1 below 100).
      const auto [mn, mx] = std::minmax_element(p.attention_heads.begin() + head * 49,
                                                p.attention_heads.begin() + head * 49 + 49);
      auto fmt = [](double v) { return QString::number(v, 'f', v < 10 ? 2 : 1); };
      QCOMPARE(grid.cellCaption(0, InspectorColumn::Head, head),
               QString("%1 – %2 ×").arg(fmt(49.0 * *mn), fmt(49.0 * *mx)));
    }
    // The scale's low end is a head's (0.49 x uniform, below every mean's 0.54): heads count.
    QVERIFY(lo < 0.5);
    const QImage mean_expected = mst::attentionHeatmap(p, lo, hi);
    const QImage mean_now = grid.renderCell(0, InspectorColumn::Attention);
    for (int i = 0; i < 49; ++i) QCOMPARE(at(mean_now, i), mean_expected.pixel(i % 7, i / 7));
    // The image without heads has none to show: a placeholder, not another image's map.
    const QImage missing = grid.renderCell(1, InspectorColumn::Head, 0);
    QCOMPARE(at(missing, 0), QColor(0xE9, 0xEC, 0xEF).rgb());  // a corner, away from the note
    QVERIFY(grid.cellCaption(1, InspectorColumn::Head, 0).isEmpty());

    // Per image: each map from its own min to its own max.
    grid.setAttentionScale(mst::AttentionScale::PerImage);
    for (int head = 0; head < 4; ++head) {
      const QImage cell = grid.renderCell(0, InspectorColumn::Head, head);
      const QVector<float> m = p.attention_heads.mid(head * 49, 49);
      const int argmax = int(std::max_element(m.begin(), m.end()) - m.begin());
      const int argmin = int(std::min_element(m.begin(), m.end()) - m.begin());
      QCOMPARE(at(cell, argmax), mst::infernoColour(1.0).rgb());
      QCOMPARE(at(cell, argmin), mst::infernoColour(0.0).rgb());
    }
    // The figure has the heads' columns too.
    QTemporaryDir dir;
    QString error;
    QVERIFY2(grid.exportFigure(dir.filePath("heads.png"), &error), qPrintable(error));
    const QImage figure(dir.filePath("heads.png"));
    grid.setHeadsView(false);
    QCOMPARE(grid.columns().size(), 5);
    QCOMPARE(grid.renderCell(0, InspectorColumn::Attention).size(), mean_cell.size());
    QVERIFY(grid.exportFigure(dir.filePath("masks.png"), &error));
    QVERIFY(figure.width() > QImage(dir.filePath("masks.png")).width());
  }

  void textFilesAreWrittenWholeOrNotAtAll() {
    QTemporaryDir dir;
    const QString path = dir.filePath("table.csv");
    QString error;
    QVERIFY2(mst::writeTextFile(path, [](QTextStream& out) { out << "a,b\n1,2\n"; }, &error),
             qPrintable(error));
    QCOMPARE(readLines(path), QStringList({"a,b", "1,2"}));
    // A write that fails half way leaves the file that was there.
    QVERIFY(!mst::writeTextFile(
        path,
        [](QTextStream& out) {
          out << "x,y\n";
          out.setStatus(QTextStream::WriteFailed);
        },
        &error));
    QVERIFY2(error.contains(path), qPrintable(error));
    QCOMPARE(readLines(path), QStringList({"a,b", "1,2"}));
    QVERIFY(!mst::writeTextFile(dir.filePath("no/such/folder/t.csv"),
                                [](QTextStream& out) { out << "x"; }, &error));
    QVERIFY2(error.contains("no/such/folder/t.csv"), qPrintable(error));
    QCOMPARE(mst::csvField("plain"), QString("plain"));
    QCOMPARE(mst::csvField("a,\"b\"\nc"), QString("\"a,\"\"b\"\"\nc\""));
  }

  void gridClickEmitsRow() {
    InspectorGrid grid;
    grid.setImages(
        {makeProbe("#0", 1, {}, {}), makeProbe("#1", 1, {}, {}), makeProbe("#2", 1, {}, {})});
    grid.resize(grid.sizeHint());
    grid.show();
    QVERIFY(QTest::qWaitForWindowExposed(&grid));
    QSignalSpy spy(&grid, &InspectorGrid::imageClicked);
    QTest::mouseClick(&grid, Qt::LeftButton, {},
                      grid.cellRect(2, InspectorColumn::Attention).center());
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.takeFirst().at(0).toInt(), 2);
    QTest::mouseClick(&grid, Qt::LeftButton, {}, QPoint(1, 1));  // margin: no row
    QCOMPARE(spy.count(), 0);
  }

  void gridExport_data() {
    QTest::addColumn<QString>("suffix");
    QTest::addColumn<QByteArray>("signature");
    QTest::newRow("png") << "png" << QByteArray("\x89PNG");
    QTest::newRow("pdf") << "pdf" << QByteArray("%PDF");
    QTest::newRow("svg") << "svg" << QByteArray("<svg");
  }
  void gridExport() {
    QFETCH(QString, suffix);
    QFETCH(QByteArray, signature);
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    InspectorGrid grid;  // never shown: export must not need a window
    grid.setImages({makeProbe("#0", 1, {1, 2}, {40}), makeProbe("#1", 3, {7}, {48})});
    grid.setShowThreshold(true);
    const QString path = dir.filePath("figure." + suffix);
    QString error;
    const QString what = "weights at step 7 · attention_guided, p = 0.1, num = 8, seed 3";
    QVERIFY2(grid.exportFigure(path, &error, what), qPrintable(error));
    const QByteArray bytes = head(path, 4096);
    // What the figure shows travels in its metadata.
    if (suffix == "png") QCOMPARE(QImage(path).text("Description"), what);
    if (suffix == "svg") QVERIFY(bytes.contains(what.toUtf8()));
    if (suffix == "svg")
      QVERIFY(bytes.contains(signature));  // after the XML declaration
    else
      QVERIFY(bytes.startsWith(signature));
    QVERIFY(QFileInfo(path).size() > 1000);
  }

  void gridExportPngLooksLikeAFigure() {
    QTemporaryDir dir;
    InspectorGrid grid;
    grid.setImages({makeProbe("#0", 1, {1}, {40})});
    const QString five = dir.filePath("five.png"), six = dir.filePath("six.png");
    QVERIFY(grid.exportFigure(five));
    grid.setShowThreshold(true);
    QVERIFY(grid.exportFigure(six));
    const QImage a(five), b(six);
    QVERIFY(!a.isNull() && !b.isNull());
    QCOMPARE(a.pixel(0, 0), qRgb(255, 255, 255));  // white background
    QVERIFY(b.width() > a.width());
    QCOMPARE(b.height(), a.height());
  }

  void gridExportErrors() {
    QTemporaryDir dir;
    InspectorGrid grid;
    QString error;
    QVERIFY(!grid.exportFigure(dir.filePath("empty.png"), &error));  // no images
    QVERIFY(!error.isEmpty());
    grid.setImages({makeProbe("#0", 1, {}, {})});
    error.clear();
    QVERIFY(!grid.exportFigure(dir.filePath("figure.bmp"), &error));
    QVERIFY(error.contains("bmp"));
    error.clear();
    QVERIFY(!grid.exportFigure(dir.filePath("missing/figure.png"), &error));
    QVERIFY(error.contains("missing"));
    QVERIFY(!QFile::exists(dir.filePath("missing/figure.png")));
  }

  void heatmapStoresOneCell() {
    SweepHeatmap map;
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    map.setCell("4", "0.1", CellState::Done, 71.25, "/runs/sweep/num4_p0.1");
    for (const QString& r : kRows) {
      for (const QString& c : kCols) {
        if (r == "4" && c == "0.1") continue;
        QVERIFY2(std::isnan(map.value(r, c)), qPrintable(r + "," + c));
        QCOMPARE(map.state(r, c), CellState::Pending);
        QVERIFY(map.runDir(r, c).isEmpty());
      }
    }
    QCOMPARE(map.value("4", "0.1"), 71.25);
    QCOMPARE(map.state("4", "0.1"), CellState::Done);
    QCOMPARE(map.runDir("4", "0.1"), QString("/runs/sweep/num4_p0.1"));
    // Transposed labels are a different cell, and unknown labels are ignored.
    QVERIFY(std::isnan(map.value("0.1", "4")));
    QTest::ignoreMessage(QtWarningMsg, QRegularExpression("no cell"));
    map.setCell("16", "0.1", CellState::Failed);
    QCOMPARE(map.state("4", "0.1"), CellState::Done);
    QCOMPARE(map.state("16", "0.1"), CellState::Pending);
    // New axes start over.
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    QVERIFY(std::isnan(map.value("4", "0.1")));
  }

  void heatmapStateChanges_data() {
    QTest::addColumn<CellState>("state");
    QTest::addColumn<double>("value");
    QTest::newRow("running") << CellState::Running << double(qQNaN());
    QTest::newRow("running with partial value") << CellState::Running << 40.0;
    QTest::newRow("done") << CellState::Done << 80.5;
    QTest::newRow("failed") << CellState::Failed << double(qQNaN());
    QTest::newRow("back to pending") << CellState::Pending << double(qQNaN());
  }
  void heatmapStateChanges() {
    QFETCH(CellState, state);
    QFETCH(double, value);
    SweepHeatmap map;
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    map.setCell("8", "0.15", CellState::Done, 12.0);
    map.setCell("8", "0.15", state, value);
    QCOMPARE(map.state("8", "0.15"), state);
    QCOMPARE(std::isnan(map.value("8", "0.15")), std::isnan(value));
    if (!std::isnan(value)) QCOMPARE(map.value("8", "0.15"), value);
    // Each state paints differently: a grab of the cell changes with it.
    const QImage before = map.grab(map.cellRect("8", "0.15")).toImage();
    map.setCell("8", "0.15", state == CellState::Done ? CellState::Failed : CellState::Done, 50.0);
    QVERIFY(map.grab(map.cellRect("8", "0.15")).toImage() != before);
  }

  void heatmapCsv() {
    QTemporaryDir dir;
    SweepHeatmap map;
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    map.setCell("1", "0.05", CellState::Done, 70.125, "/runs/a");
    map.setCell("8", "0.1", CellState::Failed, qQNaN(), "/runs/b,c");
    map.setCell("2", "0.15", CellState::Running);
    const QString path = dir.filePath("sweep.csv");
    QString error;
    QVERIFY2(map.exportCsv(path, &error), qPrintable(error));
    const QStringList lines = readLines(path);
    QCOMPARE(lines.size(), 1 + kRows.size() * kCols.size());
    QCOMPARE(lines[0], QString("masking.num,masking.p,state,value,run_dir"));
    QSet<QString> pairs;
    for (int i = 1; i < lines.size(); ++i) pairs.insert(lines[i].section(',', 0, 1));
    QCOMPARE(pairs.size(), kRows.size() * kCols.size());
    for (const QString& r : kRows)
      for (const QString& c : kCols) QVERIFY(pairs.contains(r + "," + c));
    QVERIFY(lines.contains("1,0.05,done,70.125,/runs/a"));
    QVERIFY(lines.contains("8,0.1,failed,,\"/runs/b,c\""));
    QVERIFY(lines.contains("2,0.15,running,,"));
    QVERIFY(lines.contains("4,0.1,pending,,"));
    QVERIFY(!map.exportCsv(dir.filePath("missing/sweep.csv"), &error));
    QVERIFY(!error.isEmpty());
  }

  void heatmapClick_data() {
    QTest::addColumn<CellState>("state");
    QTest::addColumn<QString>("run_dir");
    QTest::addColumn<bool>("emits");
    QTest::newRow("done with run") << CellState::Done << "/runs/x" << true;
    QTest::newRow("running with run") << CellState::Running << "/runs/x" << true;
    QTest::newRow("done without run") << CellState::Done << "" << false;
    QTest::newRow("pending") << CellState::Pending << "" << false;
  }
  void heatmapClick() {
    QFETCH(CellState, state);
    QFETCH(QString, run_dir);
    QFETCH(bool, emits);
    SweepHeatmap map;
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    map.setCell("2", "0.1", state, 65.0, run_dir);
    map.setCell("1", "0.05", CellState::Done, 60.0, "/runs/other");
    map.resize(map.sizeHint());
    map.show();
    QVERIFY(QTest::qWaitForWindowExposed(&map));
    QSignalSpy spy(&map, &SweepHeatmap::cellActivated);
    const QRect rect = map.cellRect("2", "0.1");
    QVERIFY(!rect.isEmpty());
    QVERIFY(map.rect().contains(rect));
    QTest::mouseClick(&map, Qt::LeftButton, {}, rect.center());
    QCOMPARE(spy.count(), emits ? 1 : 0);
    if (emits) QCOMPARE(spy.first().at(0).toString(), run_dir);
    QTest::mouseClick(&map, Qt::LeftButton, {}, QPoint(1, 1));  // outside every cell
    QCOMPARE(spy.count(), emits ? 1 : 0);
  }

  void heatmapExport_data() { gridExport_data(); }
  void heatmapExport() {
    QFETCH(QString, suffix);
    QFETCH(QByteArray, signature);
    QTemporaryDir dir;
    SweepHeatmap map;
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    map.setReadoutName("k-NN top-1 %");
    map.setCell("8", "0.1", CellState::Done, 74.2, "/runs/a");
    map.setCell("1", "0.1", CellState::Done, 70.1, "/runs/b");
    map.setCell("2", "0.1", CellState::Running);
    map.setCell("4", "0.1", CellState::Failed);
    const QString path = dir.filePath("sweep." + suffix);
    QString error;
    QVERIFY2(map.exportFigure(path, &error), qPrintable(error));
    const QByteArray bytes = head(path, 4096);
    QVERIFY(suffix == "svg" ? bytes.contains(signature) : bytes.startsWith(signature));
    QVERIFY(!map.exportFigure(dir.filePath("sweep.jpg"), &error));
  }

  void heatmapColourScale() {
    // The cell with the largest finished value gets the top of the map, the smallest the bottom.
    SweepHeatmap map;
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    map.setCell("1", "0.05", CellState::Done, 60.0);
    map.setCell("8", "0.15", CellState::Done, 80.0);
    map.setCell("2", "0.1", CellState::Done, 70.0);
    map.resize(map.sizeHint());
    const QImage shot = map.grab().toImage();
    const qreal dpr = shot.devicePixelRatio();
    auto corner = [&](const QString& r, const QString& c) {
      return shot.pixelColor((map.cellRect(r, c).topLeft() + QPoint(3, 3)) * dpr).rgb();
    };
    QCOMPARE(corner("8", "0.15"), mst::viridisColour(1.0).rgb());
    QCOMPARE(corner("1", "0.05"), mst::viridisColour(0.0).rgb());
    QCOMPARE(corner("2", "0.1"), mst::viridisColour(0.5).rgb());
  }

  void heatmapDecimalsFollowTheSpread() {
    SweepHeatmap map;
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    QCOMPARE(map.formatValue(64.256), QString("64.26"));  // no done cells yet: two decimals
    map.setCell("1", "0.05", CellState::Done, 64.25);
    map.setCell("2", "0.05", CellState::Done, 65.39);
    QCOMPARE(map.formatValue(64.256), QString("64.26"));  // a spread of 1.1 points
    // Losses that differ in the third decimal stay apart.
    map.setCell("1", "0.05", CellState::Done, 6.6403);
    map.setCell("2", "0.05", CellState::Done, 6.6451);
    QCOMPARE(map.formatValue(6.6403), QString("6.6403"));
    QCOMPARE(map.formatValue(6.6451), QString("6.6451"));
    map.setCell("2", "0.05", CellState::Done, 6.6603);
    QCOMPARE(map.formatValue(6.6403), QString("6.640"));
  }

  void heatmapBoldsTheBestCellItIsToldTo() {
    SweepHeatmap map;
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    map.setCell("1", "0.05", CellState::Done, 0.25);
    map.setCell("8", "0.15", CellState::Done, 0.75);
    map.resize(map.sizeHint());
    auto shot = [&](mst::BestCell best, const QString& row, const QString& col) {
      map.setBestCell(best);
      return map.grab(map.cellRect(row, col)).toImage();
    };
    // The highest value is bold by default (accuracies); the lowest for losses; none for a share.
    const QImage high_bold = shot(mst::BestCell::Highest, "8", "0.15");
    const QImage low_plain = shot(mst::BestCell::Highest, "1", "0.05");
    QVERIFY(shot(mst::BestCell::Lowest, "8", "0.15") != high_bold);
    QVERIFY(shot(mst::BestCell::Lowest, "1", "0.05") != low_plain);
    QCOMPARE(shot(mst::BestCell::None, "8", "0.15"), shot(mst::BestCell::Lowest, "8", "0.15"));
    QCOMPARE(shot(mst::BestCell::None, "1", "0.05"), low_plain);
  }

  /// Renders both widgets as a user sees them; MST_WIDGET_SHOTS=DIR keeps the PNGs for review.
  void renderForReview() {
    InspectorGrid grid;
    QVector<ProbeImage> probes;
    for (int i = 0; i < 3; ++i)
      probes.append(makeProbe(QString("#%1").arg(i), i == 2 ? 3 : 1, {i, 9 + i, 20, 33 + i},
                              {0, 6, 42, 48 - i}));
    grid.setImages(probes);
    grid.setShowThreshold(true);
    grid.resize(grid.sizeHint());
    const QImage g = grid.grab().toImage();
    QVERIFY(!g.isNull());
    SweepHeatmap map;
    map.setAxes("masking.num", kRows, "masking.p", kCols);
    map.setReadoutName("k-NN top-1 %");
    double v = 70.0;
    for (const QString& r : kRows)
      for (const QString& c : kCols)
        map.setCell(r, c, CellState::Done, v += 0.37, "/runs/" + r + c);
    map.setCell("8", "0.15", CellState::Running);
    map.setCell("4", "0.15", CellState::Pending);
    map.setCell("2", "0.15", CellState::Failed, qQNaN(), "/runs/f");
    map.resize(map.sizeHint());
    const QImage m = map.grab().toImage();
    QVERIFY(!m.isNull());
    const QString out = qEnvironmentVariable("MST_WIDGET_SHOTS");
    if (!out.isEmpty()) {
      g.save(out + "/inspector_grid.png");
      m.save(out + "/sweep_heatmap.png");
      QVERIFY(grid.exportFigure(out + "/inspector_figure.png"));
      QVERIFY(grid.exportFigure(out + "/inspector_figure.pdf"));
      grid.setAttentionScale(mst::AttentionScale::PerImage);
      QVERIFY(grid.exportFigure(out + "/inspector_figure_per_image.png"));
      grid.setAttentionScale(mst::AttentionScale::Shared);
      grid.setAttentionOverlay(true);
      QVERIFY(grid.exportFigure(out + "/inspector_figure_overlay.png"));
      QVERIFY(map.exportFigure(out + "/sweep_figure.png"));
      QVERIFY(map.exportFigure(out + "/sweep_figure.svg"));
    }
  }
};

QTEST_MAIN(TestWidgetInspector)
#include "test_widget_inspector.moc"
