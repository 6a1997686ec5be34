/// @brief A grid sweep (core's runSweep) on a background thread, reported cell by cell.
#pragma once

#include <QObject>
#include <QStringList>
#include <QVector>

#include <atomic>

class QThread;

namespace mst {

struct SweepRequest {
  QString experiment_json = "{}";  ///< the base experiment every cell starts from
  QStringList axes;                ///< "key=v1,v2,..." per axis; rows = first, columns = the rest
  QString out_dir;
  QString devices = "cpu";         ///< cells run one at a time per device ("cuda:0,1" = two)
  qint64 max_steps = 0;            ///< cut each cell's training (0 = the full schedule)
  bool knn = true, linear = true;
  qint64 train_limit = 0, test_limit = 0;  ///< read-out images (0 = all)
};

struct SweepCellInfo {
  int index = 0;
  QStringList values;  ///< one per axis, as text
  QString dir;
  QString status = "pending";  ///< pending | running | done | failed
  double knn = qQNaN(), linear = qQNaN();
  double mask_ratio = qQNaN(), loss_ce_end = qQNaN(), loss_rec_end = qQNaN();  ///< see SweepCell
  QString error;
};

class SweepService : public QObject {
  Q_OBJECT
 public:
  explicit SweepService(QObject* parent = nullptr);
  ~SweepService() override;

  /// The cells of the grid with the results already on disk (finished cells have result.json);
  /// keys and values checked. False + *error naming the axis or key on bad input.
  static bool plan(const SweepRequest& request, QVector<SweepCellInfo>* cells, QString* error);
  /// The axes ("key=v1,v2") of the sweep in `dir` (from its sweep.json, else, for a folder from
  /// before it, its sweep.h5) and in *max_steps the step cap sweep.json records (-1 without
  /// one); false + *error otherwise.
  static bool readAxes(const QString& dir, QStringList* axes, QString* error,
                       qint64* max_steps = nullptr);
  /// What the cells in `cells` were trained with, from the first result.json that records it:
  /// the cell's config (JSON text, "" when none does) and, for cells cut short of their
  /// schedule, the steps they were cut at (0 = the full schedule).
  static void readSettings(const QVector<SweepCellInfo>& cells, QString* experiment_json,
                           qint64* max_steps);

  bool start(const SweepRequest& request, QString* error = nullptr);
  /// Stops after the running cells' current step (each keeps its checkpoint; a relaunch resumes).
  void stop();
  bool isRunning() const;
  bool wait(int timeout_ms);

 signals:
  void cellStarted(const mst::SweepCellInfo& cell);
  void cellFinished(const mst::SweepCellInfo& cell);
  void finished(bool ok, const QString& error);

 private:
  QThread* thread_ = nullptr;
  std::atomic<bool> stop_{false};
};

}  // namespace mst
