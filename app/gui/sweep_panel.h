/// @brief The sweep panel: define a grid, launch it in the background, watch the Table-5-style
/// heat map fill in, open a cell's run, export; reopen a sweep folder later.
#pragma once

#include <QVector>
#include <QWidget>

#include "app/gui/sweep_service.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;

namespace mst {

class SweepHeatmap;

class SweepPanel : public QWidget {
  Q_OBJECT
 public:
  explicit SweepPanel(QWidget* parent = nullptr);

  void setExperimentJson(const QString& json) { experiment_json_ = json; }
  void setDevices(const QString& devices) { devices_ = devices; }
  void setGrid(const QStringList& axes);
  QStringList grid() const;
  void setOutDir(const QString& dir);
  void setMaxSteps(qint64 steps);
  qint64 maxSteps() const;  ///< "Steps per cell" (0 = the full schedule)
  void setReadoutLimits(qint64 train_images, qint64 test_images);
  /// What the heat map shows: "knn" or "linear" (both are computed), or from each cell's run log
  /// "mask_ratio", "loss_ce_end" or "loss_rec_end" (see readoutValue).
  void setReadout(const QString& readout);

  bool launch(QString* error = nullptr);
  void stop();
  /// Shows the sweep in `dir` (its grid from sweep.h5, results from each cell's result.json).
  bool open(const QString& dir, QString* error = nullptr);
  /// Applies a cell's state and result to the heat map (the service's signals come here).
  void updateCell(const SweepCellInfo& cell);

  SweepHeatmap* heatmap() const { return heatmap_; }
  SweepService* service() const { return service_; }
  /// Heat-map row and column labels of a cell.
  static void cellLabels(const SweepCellInfo& cell, QString* row, QString* col);
  /// The cell's value for a read-out key (knn, linear, mask_ratio in %, loss_ce_end,
  /// loss_rec_end); NaN when unknown.
  static double readoutValue(const SweepCellInfo& cell, const QString& readout);

 signals:
  void openRun(const QString& run_dir);
  /// open() found what the sweep's cells were trained with (a config JSON): the experiment a
  /// relaunch must use, else the core refuses the cells as trained with another config.
  void experimentFound(const QString& json);
  void message(const QString& text, bool error);

 private:
  SweepRequest request() const;
  void layoutCells(const QVector<SweepCellInfo>& cells);
  void setRunning(bool running);
  /// Names the heat map's read-out and which of its cells is the best.
  void showReadout();

  SweepService* service_ = nullptr;
  QString experiment_json_ = "{}";
  QString devices_ = "cpu";
  QVector<SweepCellInfo> cells_;
  SweepHeatmap* heatmap_ = nullptr;
  QPlainTextEdit* grid_edit_ = nullptr;
  QComboBox* readout_ = nullptr;
  QLineEdit* out_edit_ = nullptr;
  QSpinBox* max_steps_ = nullptr;
  QSpinBox* train_limit_ = nullptr;
  QSpinBox* test_limit_ = nullptr;
  QPushButton* launch_ = nullptr;
  QPushButton* stop_ = nullptr;
  QLabel* status_ = nullptr;
};

}  // namespace mst
