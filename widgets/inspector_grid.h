/// @brief Inspector grid: one row per probe image with its input, attention, random and
/// attention-guided masks, reconstruction (and optionally the top-60% attention map), like the
/// paper's Figure 2, with the attention's colour bar and each mask's patch count; exports the same
/// layout as a publication figure.
#pragma once

#include <QColor>
#include <QImage>
#include <QRect>
#include <QVector>
#include <QWidget>

#include "widgets/probe_image.h"

namespace mst {

/// A grid column. `Head` is one attention head's map; it appears once per head in the heads view
/// (setHeadsView), and the calls that draw or describe a cell then take the head's index.
enum class InspectorColumn {
  Input,
  Attention,
  RandomMask,
  GuidedMask,
  Reconstruction,
  Threshold,
  Head
};

/// How the attention heat maps are coloured: each from its own min to max (shows the structure of
/// a nearly flat map), or all from the min to the max over the shown images (colours compare).
enum class AttentionScale { PerImage, Shared };

/// Grid of probe images; paints itself (no child widgets), so it renders offscreen as it does on
/// screen. Meant to sit in a QScrollArea: its size hint is the whole grid at the cell size.
/// Under the "Attention" title a colour bar gives the scale, in multiples of the uniform share
/// (attention x patches: 1 = all patches equal); under each cell a caption gives the numbers a
/// picture hides (the attention's range, "5/49 masked").
class InspectorGrid : public QWidget {
  Q_OBJECT
 public:
  explicit InspectorGrid(QWidget* parent = nullptr);

  /// Replaces the rows; images whose sizes do not match show a "no data" cell for that view.
  void setImages(const QVector<ProbeImage>& images);
  const QVector<ProbeImage>& images() const;

  /// Shows or hides the optional 6th column, the patches holding 60 % of the attention.
  void setShowThreshold(bool on);
  bool showThreshold() const;

  /// Draws the attention column's heat map over the input image (at kAttentionOverlayOpacity)
  /// instead of alone (default off): where the attention sits on the object.
  void setAttentionOverlay(bool on);
  bool attentionOverlay() const;
  /// The heat map's opacity over the input when the overlay is on.
  static constexpr double kAttentionOverlayOpacity = 0.6;

  /// The heads view (default off): each row shows the input, the mean attention (the `attention`
  /// the images carry) and then every head's map (`attention_heads`, as many columns as the
  /// images with the most heads have), on one colour scale: shared over every map shown, or each
  /// map its own (per image). The masks, the reconstruction and the top-60 % map leave the row.
  /// Like DINO's per-head figures: which heads look at the object, which at the background.
  void setHeadsView(bool on);
  bool headsView() const;
  /// Head columns in the heads view (0 when it is off or no image has per-head attention).
  int headColumns() const;

  /// Names where the attention maps come from when it is not the last block (the masks' own),
  /// e.g. "block 3": the attention column's title then says so. Empty (default) = the last block.
  void setAttentionSource(const QString& source);
  QString attentionSource() const;

  /// Per-image or shared colour scale for the attention column (default shared).
  void setAttentionScale(AttentionScale scale);
  AttentionScale attentionScale() const;
  /// The attention range (x uniform) that `row`'s heat map spans from darkest to brightest: its
  /// own min..max, or the shown images' when shared (in the heads view: every map shown, heads
  /// included). `head` >= 0 asks for that head's map instead of the mean. False for an invalid
  /// row or head, or no attention.
  bool colourRange(int row, double* lo, double* hi, int head = -1) const;
  /// The colour bar's end labels: the shared range's min and max, or "min" and "max" (the title
  /// then says "per image"). Empty when no image has attention (no bar is drawn).
  QStringList colourBarLabels() const;
  /// Where the colour bar is drawn: in widget coordinates, or (`figure`) in the exported figure's
  /// logical units (its PNG has twice as many pixels). Empty when no bar is drawn.
  QRect colourBarRect(bool figure = false) const;
  /// The caption under a cell: "5/49 masked" under masks and the top-60 % map, the row's
  /// attention range under the heat map, empty under the input and the reconstruction. For
  /// InspectorColumn::Head, `head` picks the head (its map's range).
  QString cellCaption(int row, InspectorColumn column, int head = -1) const;

  /// Shown when there are no images (say how to get some).
  void setEmptyText(const QString& text);
  QString emptyText() const;

  /// Each cell is `pixels` x `pixels` (default 112, at least 16); images keep their aspect ratio.
  void setCellSize(int pixels);
  int cellSize() const;

  /// The columns currently shown, left to right (`Head` once per head in the heads view).
  QVector<InspectorColumn> columns() const;

  /// The cell image of `row` in `column` (for `Head`, of head `head`), cellSize() square, exactly
  /// what the grid shows (transparent where the image does not fill the square). Null for an
  /// invalid row.
  QImage renderCell(int row, InspectorColumn column, int head = -1) const;

  /// The cell's rectangle in widget coordinates; empty when the row or column (head) is not shown.
  QRect cellRect(int row, InspectorColumn column, int head = -1) const;

  /// Publication figure like the paper's Figure 2: column titles ("Input", "Attention (...)",
  /// "Random mask", "Attention-guided mask", "Reconstruction", ["Top-60% attention"]), one row per
  /// image, with the colour bar and the captions as on screen, white background; .png / .pdf /
  /// .svg from the suffix; `description` goes into the file's metadata (paintToFile). False +
  /// *error on failure.
  bool exportFigure(const QString& path, QString* error = nullptr,
                    const QString& description = QString()) const;

  /// Column title; above the grid and in the figure the attention's adds its scale,
  /// "Attention (× uniform)" or "Attention (per image)". `Head` with `head` >= 0 is "Head 1"...
  static QString columnTitle(InspectorColumn column, int head = -1);
  /// Overlay colours, the same in every row and in the figure.
  static QColor randomMaskColour();
  static QColor guidedMaskColour();
  static QColor thresholdColour();

  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;

 signals:
  /// A click anywhere on a row's cells or title.
  void imageClicked(int row);

 protected:
  void paintEvent(QPaintEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void leaveEvent(QEvent* event) override;
  bool event(QEvent* event) override;
  void changeEvent(QEvent* event) override;

 private:
  /// Geometry for one font and cell size, shared by the widget and the figure.
  struct Layout {
    int margin = 8, gap = 6, cell_px = 112;
    int row_title_width = 0;
    int title_height = 0;    ///< column titles
    int band_height = 0;     ///< colour bar and its labels, below the titles
    int caption_height = 0;  ///< under each cell
    int header_height = 0;   ///< title_height + band_height
    QSize size;
    QRect cell(int row, int column) const;
    QRect caption(int row, int column) const;
    QRect rowTitle(int row) const;
    /// A row's title and cells with their captions (the hover highlight and click target).
    QRect rowSpan(int row, int columns) const;
    QRect header(int column) const;
    QRect colourBar(int column) const;
    QRect colourBarLabels(int column) const;
  };
  /// The top-60 % map keeps the patches holding this share of the attention (DINO's figures).
  static constexpr double kThresholdMass = 0.6;
  /// A shown column: its kind and, for `Head`, which head.
  struct GridColumn {
    InspectorColumn kind;
    int head = -1;
    bool operator==(const GridColumn& o) const { return kind == o.kind && head == o.head; }
  };
  QVector<GridColumn> gridColumns() const;
  /// The probe as one attention map shows it: `head` >= 0 puts that head's map in `attention`
  /// (an empty map when the probe has no such head); -1 leaves the mean.
  static ProbeImage withHead(const ProbeImage& p, int head);
  Layout layoutFor(const QFont& font) const;
  /// The cell at `pixels` resolution (the figure renders at twice the screen size).
  QImage renderCellAt(int row, const GridColumn& column, int pixels) const;
  /// Paints titles and cells: the widget's cached cells when `use_cache`, else cells rendered at
  /// `pixels_per_cell` (the figure).
  void paintGrid(QPainter& painter, const Layout& layout, const QFont& font,
                 const QColor& text_colour, int pixels_per_cell, bool use_cache) const;
  QString headerTitle(const GridColumn& column) const;
  void paintColourBar(QPainter& painter, const Layout& layout, int column,
                      const QColor& text_colour) const;
  /// The exported figure's font (pixel-sized: the same layout on every device).
  QFont figureFont() const;
  /// Min and max attention (x uniform) over all images (in the heads view, every head's map
  /// too); false when none has attention.
  bool sharedRange(double* lo, double* hi) const;
  /// Row under `pos` or -1.
  int rowAt(const QPoint& pos) const;
  QString cellToolTip(int row, const GridColumn& column) const;
  void invalidate();

  QVector<ProbeImage> images_;
  bool show_threshold_ = false;
  bool attention_overlay_ = false;
  bool heads_view_ = false;
  QString attention_source_;
  AttentionScale scale_ = AttentionScale::Shared;
  QString empty_text_;
  int cell_size_ = 112;
  int hovered_row_ = -1;
  mutable QVector<QImage> cache_;  // row-major over columns(); rebuilt lazily after changes
};

}  // namespace mst
