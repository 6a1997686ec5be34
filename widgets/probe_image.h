/// @brief A probe image with its attention and masks as plain Qt values, and the QImage renderings
/// (image, attention heat map, mask overlays) that the inspector grid composes.
#pragma once

#include <QColor>
#include <QImage>
#include <QSizeF>
#include <QString>
#include <QVector>
#include <functional>

class QPainter;
class QTextStream;

namespace mst {

/// One probe image and its views, as plain values (the app converts from tensors / HDF5).
struct ProbeImage {
  QString title;  // e.g. "#3"
  int channels = 1, height = 0, width = 0;
  QVector<float> image;           // (C,H,W) in [0,1]
  int grid_h = 0, grid_w = 0;     // patch grid
  QVector<float> attention;       // (grid_h*grid_w) teacher CLS attention (non-negative)
  QVector<quint8> mask_random;    // (grid_h*grid_w) 1 = masked
  QVector<quint8> mask_guided;    // (grid_h*grid_w)
  QVector<float> reconstruction;  // (C,H,W) in [0,1], may be empty
  int heads = 0;                   // attention heads in attention_heads (0 = not given)
  QVector<float> attention_heads;  // (heads*grid_h*grid_w) per-head attention; the mean is `attention`
  int blocks = 0;                  // transformer blocks in attention_blocks (0 = not given)
  /// (blocks*heads*grid_h*grid_w) every block's per-head CLS attention, first block first; the
  /// last block's equals attention_heads (the one the mask uses).
  QVector<float> attention_blocks;
};

/// Head `head`'s map (grid_h*grid_w values) from `attention_heads`; empty when the probe has no
/// such head (or no per-head attention).
QVector<float> headAttention(const ProbeImage& p, int head);

/// DINO-style threshold map: 1 for the smallest set of patches holding at least `mass` of the
/// total attention (largest first; ties by lower index). Negative or non-finite attention counts
/// as 0; an all-zero map gives an all-zero mask.
QVector<quint8> attentionThresholdMask(const QVector<float>& attention, double mass = 0.6);

/// (C,H,W) planes in [0,1] as an ARGB32 image: grayscale for C=1, RGB from the first three planes
/// for C>=3 (C=2 shows plane 0). Values are clamped. A null QImage when sizes do not match.
QImage planesToQImage(const QVector<float>& planes, int channels, int height, int width);

/// The probe's input image (grayscale or RGB, ARGB32); null when `p.image` has the wrong size.
QImage imageToQImage(const ProbeImage& p);

/// Attention of patch `i` in multiples of the uniform share: attention[i] * grid_h * grid_w, so
/// 1 = every patch attended equally (the colour scale's unit). NaN for a non-finite value.
double attentionTimesUniform(const ProbeImage& p, int i);

/// Finite min and max of attentionTimesUniform over the probe's patches; false (and *lo, *hi
/// untouched) when there is no finite value or the sizes do not match.
bool attentionRange(const ProbeImage& p, double* lo, double* hi);

/// Per-patch attention as a grid_w x grid_h image in the inferno colour map, normalised min..max
/// over the image (a constant map shows the middle colour). Null when the sizes do not match.
QImage attentionHeatmap(const ProbeImage& p);

/// The same on a given scale: attention x uniform `lo` maps to the darkest colour, `hi` to the
/// brightest (values outside are clamped), so heat maps drawn with one (lo, hi) compare directly.
/// lo >= hi (a constant scale) shows the middle colour; non-finite values the darkest.
QImage attentionHeatmap(const ProbeImage& p, double lo, double hi);

/// The input image with the heat map of attentionHeatmap(p, lo, hi) laid over it at `opacity`
/// (clamped to [0,1]: 0 = the plain image, 1 = the heat map alone), at `scale` pixels per image
/// pixel; a patch's colour covers exactly that patch's pixels (maskOverlay's patch edges), so
/// what is attended reads against the object itself. Null when the image or the attention does
/// not match its size.
QImage attentionOverlay(const ProbeImage& p, double lo, double hi, int scale, double opacity);

/// The image with masked patches drawn over it (semi-transparent fill in `colour` + patch outline),
/// at `scale` pixels per image pixel (nearest neighbour). Pixels of unmasked patches are exactly
/// those of the plain image at that scale. A mask of the wrong size draws no patches.
QImage maskOverlay(const ProbeImage& p, const QVector<quint8>& mask, const QColor& colour,
                   int scale);

/// Black or white, whichever reads better as text on `fill` (relative luminance, WCAG weights).
QColor textOn(const QColor& fill);

/// Writes what `write` puts into the stream to `path` as UTF-8 text, atomically (QSaveFile): on
/// any failure the file that was there stays as it was. False + *error naming the file.
bool writeTextFile(const QString& path, const std::function<void(QTextStream&)>& write,
                   QString* error);

/// `text` as one CSV field: quoted (inner quotes doubled) when it holds a comma, a quote or a
/// line break, else as it is.
QString csvField(const QString& text);

/// Perceptual colour maps sampled at t in [0,1] (clamped), from matplotlib's tables.
QColor viridisColour(double t);
QColor infernoColour(double t);

/// Writes what `paint` draws on a `size` canvas (logical units) to `path`, the format chosen by
/// the suffix: .png (white background, 2x pixels), .pdf (one page of `size` points) or .svg.
/// Shared by the widgets' exportFigure. `description` (what the figure shows: settings, source)
/// goes into the file's metadata: PNG text "Description", the PDF's title, the SVG's <desc>.
/// False + *error (naming the file) on failure.
bool paintToFile(const QString& path, const QSizeF& size,
                 const std::function<void(QPainter&)>& paint, QString* error,
                 const QString& description = QString());

}  // namespace mst
