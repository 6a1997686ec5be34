/// @brief PerClassDialog: a run's per-class read-outs (eval.json): each class's top-1 for k-NN
/// and the linear probe, and the chosen read-out's confusion matrix as a row-normalised heat map.
#pragma once

#include <QDialog>
#include <QString>

#include "core/eval/eval_record.h"

class QComboBox;
class QLabel;
class QPushButton;
class QScrollArea;
class QTreeWidget;

namespace mst {

class ConfusionHeatmap;

/// Whether `r` holds per-class results for either read-out (records from before `mst eval`
/// reported them hold none).
bool hasPerClassResults(const RunReadouts& r);

/// The run list's tooltip lines for the per-class top-1 (empty without per-class results): a
/// heading, then one line per class, "Shirt 37.1 / 39.2" (k-NN / linear, "–" where one is
/// missing), the weakest class (lowest mean of the two) marked. Above 20 classes only the 5
/// weakest are listed.
QString perClassToolTip(const RunReadouts& r);

/// Non-modal: the per-class table (both read-outs side by side, the weakest class of each in
/// bold) and, for the read-out chosen in the combo, the confusion matrix (rows = true class,
/// columns = predicted, in % of each true class's images), with figure and CSV export. Without a
/// matrix (more than 100 classes) a note says why and only the table is shown.
class PerClassDialog : public QDialog {
  Q_OBJECT
 public:
  PerClassDialog(const QString& run_dir, const RunReadouts& readouts, QWidget* parent = nullptr);

  QString runDir() const { return run_dir_; }
  /// 0 = k-NN, 1 = linear probe (the combo offers only those with per-class results).
  void showReadout(int readout);
  QComboBox* readoutCombo() const { return combo_; }
  ConfusionHeatmap* heatmap() const { return map_; }
  QTreeWidget* classTable() const { return table_; }
  QLabel* note() const { return note_; }

 private:
  const ClassReadout& current() const;
  void exportFigure();
  void exportCsv();
  QString fileStem() const;

  QString run_dir_;
  RunReadouts readouts_;
  QComboBox* combo_ = nullptr;
  ConfusionHeatmap* map_ = nullptr;
  QScrollArea* scroll_ = nullptr;
  QTreeWidget* table_ = nullptr;
  QLabel* note_ = nullptr;
  QPushButton* figure_ = nullptr;
  QPushButton* csv_ = nullptr;
};

}  // namespace mst
