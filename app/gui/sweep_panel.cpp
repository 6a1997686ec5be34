/// @brief SweepPanel (see sweep_panel.h).
#include "app/gui/sweep_panel.h"

#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include <cmath>

#include "widgets/sweep_heatmap.h"

namespace mst {

namespace {

CellState stateOf(const QString& status) {
  if (status == "done") return CellState::Done;
  if (status == "running") return CellState::Running;
  if (status == "failed") return CellState::Failed;
  return CellState::Pending;
}

QString axisKey(const QString& spec) { return spec.section('=', 0, 0).trimmed(); }

}  // namespace

SweepPanel::SweepPanel(QWidget* parent) : QWidget(parent) {
  service_ = new SweepService(this);
  auto* layout = new QHBoxLayout(this);
  auto* left = new QWidget;
  left->setMaximumWidth(340);
  auto* form = new QFormLayout(left);
  grid_edit_ = new QPlainTextEdit("masking.num=1,2,4,8\nmasking.p=0.05,0.1,0.15");
  grid_edit_->setToolTip("One axis per line: key=v1,v2,... (any config key). Rows of the heat "
                         "map = the first axis; columns = the others.");
  grid_edit_->setMaximumHeight(90);
  form->addRow("Grid", grid_edit_);
  readout_ = new QComboBox;
  readout_->addItem("k-NN top-1 %", "knn");
  readout_->addItem("linear top-1 %", "linear");
  readout_->addItem("masked share of patches %", "mask_ratio");
  readout_->addItem("L_CE, last tenth of training", "loss_ce_end");
  readout_->addItem("L_rec, last tenth of training", "loss_rec_end");
  readout_->setToolTip("What the heat map shows: a read-out of the trained network, or what the "
                       "run log says about its training (the masked share explains a mask grid: "
                       "how many patches each p and num actually hid).");
  form->addRow("Read-out", readout_);
  auto* folder_row = new QHBoxLayout;
  out_edit_ = new QLineEdit(QDir::current().filePath("runs/sweep"));
  auto* browse = new QPushButton("…");
  browse->setMaximumWidth(30);
  folder_row->addWidget(out_edit_);
  folder_row->addWidget(browse);
  form->addRow("Folder", folder_row);
  max_steps_ = new QSpinBox;
  max_steps_->setRange(0, 100000000);
  max_steps_->setSpecialValueText("full schedule");
  max_steps_->setToolTip("Cut each cell's training at this many steps");
  form->addRow("Steps per cell", max_steps_);
  // Which cells count as done depends on the steps asked for: the map follows the box.
  connect(max_steps_, &QSpinBox::valueChanged, this, [this] {
    if (service_->isRunning()) return;
    QString ignored;
    QVector<SweepCellInfo> cells;
    if (SweepService::plan(request(), &cells, &ignored)) layoutCells(cells);
  });
  train_limit_ = new QSpinBox;
  train_limit_->setRange(0, 100000000);
  train_limit_->setSpecialValueText("all");
  train_limit_->setToolTip("Training images in the k-NN bank and the linear probe");
  form->addRow("Read-out train images", train_limit_);
  test_limit_ = new QSpinBox;
  test_limit_->setRange(0, 100000000);
  test_limit_->setSpecialValueText("all");
  form->addRow("Read-out test images", test_limit_);
  auto* buttons = new QHBoxLayout;
  launch_ = new QPushButton("Launch");
  launch_->setToolTip("Run the cells not finished yet (a sweep folder resumes)");
  stop_ = new QPushButton("Stop");
  stop_->setEnabled(false);
  auto* open_button = new QPushButton("Open…");
  buttons->addWidget(launch_);
  buttons->addWidget(stop_);
  buttons->addWidget(open_button);
  form->addRow(buttons);
  auto* exports = new QHBoxLayout;
  auto* fig = new QPushButton("Export figure…");
  auto* csv = new QPushButton("Export CSV…");
  exports->addWidget(fig);
  exports->addWidget(csv);
  form->addRow(exports);
  status_ = new QLabel("Define a grid and launch, or open a sweep folder.");
  status_->setWordWrap(true);
  form->addRow(status_);
  layout->addWidget(left);
  heatmap_ = new SweepHeatmap;
  layout->addWidget(heatmap_, 1);

  connect(service_, &SweepService::cellStarted, this, &SweepPanel::updateCell);
  connect(service_, &SweepService::cellFinished, this, &SweepPanel::updateCell);
  connect(service_, &SweepService::finished, this, [this](bool ok, const QString& error) {
    setRunning(false);
    status_->setText(ok ? "Sweep finished (or stopped); the CSV and HDF5 tables are in the folder."
                        : "Sweep failed: " + error);
    emit message(ok ? "sweep " + out_edit_->text() + " finished" : error, !ok);
  });
  connect(heatmap_, &SweepHeatmap::cellActivated, this, &SweepPanel::openRun);
  connect(readout_, &QComboBox::currentIndexChanged, this, [this] {
    showReadout();
    for (const auto& c : cells_) updateCell(c);
  });
  connect(launch_, &QPushButton::clicked, this, [this] {
    QString error;
    if (!launch(&error)) emit message(error, true);
  });
  connect(stop_, &QPushButton::clicked, this, &SweepPanel::stop);
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, "Sweep folder", out_edit_->text());
    if (!dir.isEmpty()) out_edit_->setText(dir);
  });
  connect(open_button, &QPushButton::clicked, this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, "Open sweep", out_edit_->text());
    QString error;
    if (!dir.isEmpty() && !open(dir, &error)) emit message(error, true);
  });
  connect(fig, &QPushButton::clicked, this, [this] {
    const QString path =
        QFileDialog::getSaveFileName(this, "Export heat map",
                                     QDir(out_edit_->text()).filePath("sweep.pdf"),
                                     "Figure (*.png *.pdf *.svg)");
    QString error;
    if (!path.isEmpty() && !heatmap_->exportFigure(path, &error)) emit message(error, true);
  });
  connect(csv, &QPushButton::clicked, this, [this] {
    const QString path =
        QFileDialog::getSaveFileName(this, "Export heat map table",
                                     QDir(out_edit_->text()).filePath("sweep_heatmap.csv"),
                                     "CSV (*.csv)");
    QString error;
    if (!path.isEmpty() && !heatmap_->exportCsv(path, &error)) emit message(error, true);
  });
  showReadout();
  QString ignored;
  QVector<SweepCellInfo> cells;
  if (SweepService::plan(request(), &cells, &ignored)) layoutCells(cells);
}

void SweepPanel::setGrid(const QStringList& axes) { grid_edit_->setPlainText(axes.join('\n')); }
QStringList SweepPanel::grid() const {
  QStringList out;
  for (const QString& line : grid_edit_->toPlainText().split('\n'))
    if (!line.trimmed().isEmpty()) out << line.trimmed();
  return out;
}
void SweepPanel::setOutDir(const QString& dir) { out_edit_->setText(dir); }
void SweepPanel::setMaxSteps(qint64 steps) { max_steps_->setValue(static_cast<int>(steps)); }
qint64 SweepPanel::maxSteps() const { return max_steps_->value(); }
void SweepPanel::setReadoutLimits(qint64 train_images, qint64 test_images) {
  train_limit_->setValue(static_cast<int>(train_images));
  test_limit_->setValue(static_cast<int>(test_images));
}
void SweepPanel::setReadout(const QString& readout) {
  readout_->setCurrentIndex(std::max(0, readout_->findData(readout)));
}

SweepRequest SweepPanel::request() const {
  SweepRequest r;
  r.experiment_json = experiment_json_;
  r.axes = grid();
  r.out_dir = out_edit_->text();
  r.devices = devices_;
  r.max_steps = max_steps_->value();
  r.train_limit = train_limit_->value();
  r.test_limit = test_limit_->value();
  return r;
}

double SweepPanel::readoutValue(const SweepCellInfo& cell, const QString& readout) {
  if (readout == "linear") return cell.linear;
  if (readout == "mask_ratio") return 100.0 * cell.mask_ratio;
  if (readout == "loss_ce_end") return cell.loss_ce_end;
  if (readout == "loss_rec_end") return cell.loss_rec_end;
  return cell.knn;
}

void SweepPanel::showReadout() {
  const QString readout = readout_->currentData().toString();
  heatmap_->setReadoutName(readout_->currentText());
  heatmap_->setBestCell(readout.startsWith("loss") ? BestCell::Lowest
                        : readout == "mask_ratio"  ? BestCell::None
                                                   : BestCell::Highest);
}

void SweepPanel::cellLabels(const SweepCellInfo& cell, QString* row, QString* col) {
  *row = cell.values.value(0);
  QStringList rest = cell.values.mid(1);
  *col = rest.isEmpty() ? QString("top-1") : rest.join(" · ");
}

void SweepPanel::layoutCells(const QVector<SweepCellInfo>& cells) {
  cells_ = cells;
  const QStringList axes = grid();
  QStringList rows, cols;
  for (const auto& c : cells) {
    QString row, col;
    cellLabels(c, &row, &col);
    if (!rows.contains(row)) rows << row;
    if (!cols.contains(col)) cols << col;
  }
  QStringList col_keys;
  for (int i = 1; i < axes.size(); ++i) col_keys << axisKey(axes[i]);
  heatmap_->setAxes(axes.isEmpty() ? QString() : axisKey(axes[0]), rows,
                    col_keys.isEmpty() ? QString("read-out") : col_keys.join(" · "), cols);
  for (const auto& c : cells) updateCell(c);
}

void SweepPanel::updateCell(const SweepCellInfo& cell) {
  for (auto& c : cells_)
    if (c.index == cell.index) c = cell;
  QString row, col;
  cellLabels(cell, &row, &col);
  const QString shown = readout_->currentData().toString();
  QStringList details;  // every other read-out the cell has, for its tooltip
  for (int i = 0; i < readout_->count(); ++i) {
    const QString key = readout_->itemData(i).toString();
    const double v = readoutValue(cell, key);
    if (key != shown && std::isfinite(v))
      details << readout_->itemText(i) + ": " + QString::number(v, 'f', key.startsWith("loss") ? 4 : 2);
  }
  heatmap_->setCell(row, col, stateOf(cell.status), readoutValue(cell, shown), cell.dir, details);
  if (cell.status == "failed") emit message("sweep cell " + cell.dir + ": " + cell.error, true);
  int done = 0;
  for (const auto& c : cells_) done += c.status == "done" ? 1 : 0;
  if (service_->isRunning())
    status_->setText(QString("%1 of %2 cells done").arg(done).arg(cells_.size()));
}

bool SweepPanel::launch(QString* error) {
  const SweepRequest r = request();
  QVector<SweepCellInfo> cells;
  if (!SweepService::plan(r, &cells, error)) return false;
  // Started first: a folder whose record refuses this grid keeps the heat map it showed.
  if (!service_->start(r, error)) return false;
  layoutCells(cells);
  setRunning(true);
  status_->setText(QString("running %1 cells in %2 on %3").arg(cells.size()).arg(r.out_dir, r.devices));
  return true;
}

void SweepPanel::stop() {
  service_->stop();
  status_->setText("stopping after the running cells' current step…");
}

bool SweepPanel::open(const QString& dir, QString* error) {
  QStringList axes;
  qint64 recorded_steps = -1;  // from sweep.json; a folder from before it: read off its cells
  if (!SweepService::readAxes(dir, &axes, error, &recorded_steps)) return false;
  setGrid(axes);
  out_edit_->setText(dir);
  QVector<SweepCellInfo> cells;
  if (!SweepService::plan(request(), &cells, error)) return false;
  // The sweep's own settings, so that the heat map and a relaunch follow its cells.
  QString found;
  qint64 max_steps = 0;
  SweepService::readSettings(cells, &found, &max_steps);
  if (recorded_steps >= 0) max_steps = recorded_steps;
  if (!found.isEmpty()) {
    experiment_json_ = found;
    emit experimentFound(found);
  }
  if (!found.isEmpty() || recorded_steps >= 0) {
    setMaxSteps(max_steps);
    if (!SweepService::plan(request(), &cells, error)) return false;
  }
  layoutCells(cells);
  int done = 0;
  for (const auto& c : cells) done += c.status == "done" ? 1 : 0;
  status_->setText(QString("%1: %2 of %3 cells finished").arg(dir).arg(done).arg(cells.size()));
  return true;
}

void SweepPanel::setRunning(bool running) {
  launch_->setEnabled(!running);
  stop_->setEnabled(running);
  grid_edit_->setReadOnly(running);
}

}  // namespace mst
