/// @brief PerClassDialog and the run list's per-class tooltip lines.
#include "app/gui/per_class_dialog.h"

#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMessageBox>
#include <QPushButton>
#include <QScreen>
#include <QScrollArea>
#include <QSplitter>
#include <QTreeWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "widgets/confusion_heatmap.h"

namespace mst {
namespace {

enum Readout { kKnn = 0, kLinear = 1 };
enum Column { kClass = 0, kKnnTop1, kLinearTop1, kImages, kColumnCount };
constexpr int kSortRole = Qt::UserRole;
/// Above this many classes the tooltip lists only the kTooltipWeakest weakest.
constexpr int kTooltipClasses = 20;
constexpr int kTooltipWeakest = 5;

int classCount(const RunReadouts& r) {
  return static_cast<int>(std::max(r.knn_classes.top1.size(), r.linear_classes.top1.size()));
}

/// The data set's class names, else "class 0", "class 1", ...
QStringList classNames(const RunReadouts& r) {
  const int n = classCount(r);
  for (const ClassReadout* c : {&r.knn_classes, &r.linear_classes}) {
    if (static_cast<int>(c->classes.size()) != n) continue;
    QStringList names;
    for (const std::string& name : c->classes) names << QString::fromStdString(name);
    return names;
  }
  QStringList names;
  for (int i = 0; i < n; ++i) names << QStringLiteral("class %1").arg(i);
  return names;
}

std::optional<double> top1Of(const ClassReadout& c, int i) {
  return i < static_cast<int>(c.top1.size()) ? c.top1[i] : std::nullopt;
}

QString percentText(const std::optional<double>& v) {
  return v ? QString::number(*v, 'f', 1) : QStringLiteral("–");
}

/// The mean of the read-outs' top-1 for class `i` (NaN when neither has a value).
double meanTop1(const RunReadouts& r, int i) {
  double sum = 0;
  int n = 0;
  for (const ClassReadout* c : {&r.knn_classes, &r.linear_classes})
    if (auto v = top1Of(*c, i)) sum += *v, ++n;
  return n ? sum / n : qQNaN();
}

/// The images of each class of the test split (a row sum of either matrix); empty without one.
QVector<qint64> imagesPerClass(const RunReadouts& r) {
  for (const ClassReadout* c : {&r.knn_classes, &r.linear_classes}) {
    if (c->confusion.empty()) continue;
    QVector<qint64> out;
    for (const auto& row : c->confusion) out << std::accumulate(row.begin(), row.end(), int64_t{0});
    return out;
  }
  return {};
}

/// Sorts each column by the number kept in kSortRole (the class column by its index).
class ClassItem : public QTreeWidgetItem {
 public:
  using QTreeWidgetItem::QTreeWidgetItem;
  bool operator<(const QTreeWidgetItem& other) const override {
    const int column = treeWidget() ? treeWidget()->sortColumn() : kClass;
    return data(column, kSortRole).toDouble() < other.data(column, kSortRole).toDouble();
  }
};

}  // namespace

bool hasPerClassResults(const RunReadouts& r) {
  return !r.knn_classes.empty() || !r.linear_classes.empty();
}

QString perClassToolTip(const RunReadouts& r) {
  if (!hasPerClassResults(r)) return QString();
  const QStringList names = classNames(r);
  std::vector<int> order(names.size());
  std::iota(order.begin(), order.end(), 0);
  int weakest = -1;
  for (int i : order) {
    const double m = meanTop1(r, i);
    if (std::isfinite(m) && (weakest < 0 || m < meanTop1(r, weakest))) weakest = i;
  }
  QString tip;
  if (names.size() > kTooltipClasses) {
    // The weakest first: a hundred lines would not fit on the screen.
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      const double ma = meanTop1(r, a), mb = meanTop1(r, b);
      return std::isfinite(ma) && (!std::isfinite(mb) || ma < mb);
    });
    order.resize(kTooltipWeakest);
    tip = QStringLiteral(
              "The %1 weakest of %2 classes, k-NN / linear top-1 % (all: Per-class "
              "results… in the run's menu):")
              .arg(kTooltipWeakest)
              .arg(names.size());
  } else {
    tip = QStringLiteral("Per class, k-NN / linear top-1 %:");
  }
  for (int i : order) {
    tip += QStringLiteral("\n%1 %2 / %3")
               .arg(names[i], percentText(top1Of(r.knn_classes, i)),
                    percentText(top1Of(r.linear_classes, i)));
    if (i == weakest) tip += QStringLiteral("   ◀ weakest");
  }
  return tip;
}

PerClassDialog::PerClassDialog(const QString& run_dir, const RunReadouts& readouts, QWidget* parent)
    : QDialog(parent), run_dir_(run_dir), readouts_(readouts) {
  setWindowTitle(tr("Per-class results — %1").arg(QFileInfo(run_dir).fileName()));
  setModal(false);

  combo_ = new QComboBox;
  if (!readouts_.knn_classes.empty()) combo_->addItem(tr("k-NN"), kKnn);
  if (!readouts_.linear_classes.empty()) combo_->addItem(tr("Linear probe"), kLinear);
  combo_->setToolTip(tr("The read-out whose confusion matrix is shown"));
  auto* top = new QHBoxLayout;
  top->addWidget(new QLabel(tr("Confusion matrix of")));
  top->addWidget(combo_);
  top->addStretch();

  note_ = new QLabel;
  note_->setWordWrap(true);
  note_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  // The table: every class, both read-outs side by side.
  table_ = new QTreeWidget;
  table_->setColumnCount(kColumnCount);
  table_->setHeaderLabels({tr("Class"), tr("k-NN %"), tr("Linear %"), tr("Images")});
  table_->headerItem()->setToolTip(kImages, tr("Test images of the class"));
  table_->setRootIsDecorated(false);
  table_->setUniformRowHeights(true);
  table_->setAlternatingRowColors(true);
  const QStringList names = classNames(readouts_);
  const QVector<qint64> images = imagesPerClass(readouts_);
  const ClassReadout* per_readout[] = {&readouts_.knn_classes, &readouts_.linear_classes};
  int weakest[2] = {-1, -1};
  for (int k : {kKnn, kLinear})
    for (int i = 0; i < names.size(); ++i) {
      const auto v = top1Of(*per_readout[k], i);
      if (v && (weakest[k] < 0 || *v < *top1Of(*per_readout[k], weakest[k]))) weakest[k] = i;
    }
  for (int i = 0; i < names.size(); ++i) {
    auto* item = new ClassItem(table_);
    item->setText(kClass, names[i]);
    item->setData(kClass, kSortRole, i);
    for (int k : {kKnn, kLinear}) {
      const int column = k == kKnn ? kKnnTop1 : kLinearTop1;
      const auto v = top1Of(*per_readout[k], i);
      item->setText(column, percentText(v));
      item->setData(column, kSortRole, v.value_or(-1.0));
      item->setTextAlignment(column, Qt::AlignRight | Qt::AlignVCenter);
      if (i == weakest[k]) {
        QFont bold = item->font(column);
        bold.setBold(true);
        item->setFont(column, bold);
        item->setForeground(column, QColor(0xC9, 0x2A, 0x2A));
        item->setToolTip(column, tr("the weakest class of this read-out"));
      }
    }
    if (i < images.size()) {
      item->setText(kImages, QString::number(images[i]));
      item->setData(kImages, kSortRole, double(images[i]));
      item->setTextAlignment(kImages, Qt::AlignRight | Qt::AlignVCenter);
    }
  }
  table_->header()->setSectionHidden(kKnnTop1, readouts_.knn_classes.empty());
  table_->header()->setSectionHidden(kLinearTop1, readouts_.linear_classes.empty());
  table_->header()->setSectionHidden(kImages, images.isEmpty());
  for (int c = 0; c < kColumnCount; ++c) table_->resizeColumnToContents(c);
  table_->setSortingEnabled(true);
  table_->sortByColumn(kClass, Qt::AscendingOrder);

  map_ = new ConfusionHeatmap;
  scroll_ = new QScrollArea;
  scroll_->setWidget(map_);
  scroll_->setWidgetResizable(true);
  scroll_->setFrameShape(QFrame::NoFrame);
  scroll_->setBackgroundRole(QPalette::Base);
  auto* split = new QSplitter(Qt::Horizontal);
  split->addWidget(table_);
  split->addWidget(scroll_);
  split->setStretchFactor(1, 1);

  figure_ = new QPushButton(tr("Export figure…"));
  figure_->setToolTip(tr("The heat map as PNG, PDF or SVG"));
  csv_ = new QPushButton(tr("Export CSV…"));
  csv_->setToolTip(tr("The confusion matrix's counts (rows = true class)"));
  auto* close = new QPushButton(tr("Close"));
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(figure_);
  buttons->addWidget(csv_);
  buttons->addStretch();
  buttons->addWidget(close);

  auto* layout = new QVBoxLayout(this);
  layout->addLayout(top);
  layout->addWidget(note_);
  layout->addWidget(split, 1);
  layout->addLayout(buttons);

  connect(combo_, &QComboBox::currentIndexChanged, this,
          [this](int i) { showReadout(combo_->itemData(i).toInt()); });
  connect(figure_, &QPushButton::clicked, this, &PerClassDialog::exportFigure);
  connect(csv_, &QPushButton::clicked, this, &PerClassDialog::exportCsv);
  connect(close, &QPushButton::clicked, this, &QDialog::close);

  if (combo_->count() > 0) showReadout(combo_->itemData(combo_->count() - 1).toInt());
  // Room for the table and a 10-class map; a larger map scrolls.
  QSize want = QSize(table_->sizeHint().width() + map_->sizeHint().width() + 60,
                     map_->sizeHint().height() + 140)
                   .expandedTo(QSize(560, 600));  // a list alone (no matrix) still reads
  if (const QScreen* screen = QGuiApplication::primaryScreen())
    want = want.boundedTo(screen->availableSize() * 0.9);
  resize(want);
}

const ClassReadout& PerClassDialog::current() const {
  return combo_->currentData().toInt() == kKnn ? readouts_.knn_classes : readouts_.linear_classes;
}

void PerClassDialog::showReadout(int readout) {
  const int index = combo_->findData(readout);
  if (index < 0) return;
  if (combo_->currentIndex() != index) {
    combo_->setCurrentIndex(index);  // currentIndexChanged comes back here
    return;
  }
  const ClassReadout& c = current();
  const QString name = readout == kKnn ? tr("k-NN") : tr("Linear probe");
  QStringList notes;
  if (c.confusion.empty()) {
    map_->setMatrix({}, {});
    notes << tr("%1: no confusion matrix was recorded (mst eval leaves it out above 100 classes); "
                "the table lists each class's top-1.")
                 .arg(name);
  } else {
    QVector<QVector<qint64>> counts;
    for (const auto& row : c.confusion) counts << QVector<qint64>(row.begin(), row.end());
    map_->setMatrix(classNames(readouts_), counts);
    map_->setTitle(tr("%1: rows = true class, each in % of that class's test images").arg(name));
  }
  scroll_->setVisible(!c.confusion.empty());
  figure_->setEnabled(!c.confusion.empty());
  csv_->setEnabled(!c.confusion.empty());
  auto overall = [](const std::optional<double>& v) {
    return v ? QString::number(*v, 'f', 2) + " %" : QStringLiteral("–");
  };
  notes << tr("Top-1 over all classes: k-NN %1, linear probe %2.")
               .arg(overall(readouts_.knn_top1), overall(readouts_.linear_top1));
  if (readouts_.partial)
    notes << tr("~ a quick look: fewer images or probe epochs than the paper's protocol.");
  if (readouts_.stale)
    notes << tr("* the checkpoint is newer than these results: evaluate the run again.");
  notes << tr("From %1").arg(QDir::toNativeSeparators(QString::fromStdString(readouts_.source)));
  note_->setText(notes.join('\n'));
}

QString PerClassDialog::fileStem() const {
  return QDir(run_dir_).filePath(QFileInfo(run_dir_).fileName() +
                                 (combo_->currentData().toInt() == kKnn ? "_knn" : "_linear") +
                                 "_confusion");
}

void PerClassDialog::exportFigure() {
  const QString path =
      QFileDialog::getSaveFileName(this, tr("Export the confusion matrix"), fileStem() + ".png",
                                   tr("PNG image (*.png);;PDF (*.pdf);;SVG (*.svg)"));
  QString error;
  if (!path.isEmpty() && !map_->exportFigure(path, &error))
    QMessageBox::warning(this, tr("Export figure"), error);
}

void PerClassDialog::exportCsv() {
  const QString path = QFileDialog::getSaveFileName(this, tr("Export the confusion counts"),
                                                    fileStem() + ".csv", tr("CSV (*.csv)"));
  QString error;
  if (!path.isEmpty() && !map_->exportCsv(path, &error))
    QMessageBox::warning(this, tr("Export CSV"), error);
}

}  // namespace mst
