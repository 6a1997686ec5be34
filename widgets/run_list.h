/// @brief RunList: the runs of a workspace folder (found by file name only), checkable for plots.
#pragma once

#include <QDateTime>
#include <QMap>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

#include <functional>

class QLabel;
class QStackedLayout;
class QTimer;
class QTreeWidget;
class QTreeWidgetItem;

namespace mst {

/// The runs of a workspace folder: every DIR/*/run.h5 and DIR/*/*/run.h5 (sweep cells), found by
/// the file system only (no HDF5 here), rescanned every 2 s; plus runs added from elsewhere.
/// Columns: check box + name (path relative to the workspace), last modified, size of the run
/// folder's files (hidden at first; the header's menu shows it), the read-outs (k-NN / linear
/// top-1, from the app's provider), and a "live" marker (by default while run.h5 was written in
/// the last 30 s, or as a live check given by the app says: setLiveCheck). Newest first.
class RunList : public QWidget {
  Q_OBJECT
 public:
  explicit RunList(QWidget* parent = nullptr);
  ~RunList() override;

  /// Lists the runs under `dir` (absolute or relative) and keeps rescanning it every 2 s.
  void setWorkspace(const QString& dir);
  QString workspace() const;
  /// A run opened from outside the workspace (its folder, or its run.h5); kept while it exists.
  void addRun(const QString& run_dir);
  /// Reads the folders again now: new runs appear, vanished ones go, times and sizes refresh.
  void rescan();
  int count() const;
  /// Run folders (absolute, cleaned paths), in the order listed.
  QStringList runs() const;
  /// The run highlighted in the list (the current item; empty when none is).
  QString selectedRun() const;
  /// The checked runs (overlaid in the plots), in the order listed.
  QStringList shownRuns() const;
  /// Checks or unchecks `run_dir`; emits shownChanged when that changes something.
  void setShown(const QString& run_dir, bool shown);
  /// Decides the "live" marker from now on (at the next scan): `check(run_dir)` says whether a
  /// run is training in that folder, `reason` is the marker's tooltip. The app passes the
  /// trainer's claim (core/util/claim), which ends the moment a run stops, where the default rule
  /// (run.h5 written in the last 30 s) lingers.
  void setLiveCheck(std::function<bool(const QString& run_dir)> check, const QString& reason);
  /// What a run's "Top-1" column says: text (e.g. "64.3 / 73.1") and its tooltip; empty text
  /// when the run has no read-outs. Called for each run at every scan; the app reads the run's
  /// results (eval.json, a sweep cell's result.json). Without a provider the column stays empty.
  struct Readout {
    QString text, tooltip;
    double sort = -1.0;  ///< the column sorts by this (runs without read-outs last)
  };
  void setReadoutProvider(std::function<Readout(const QString& run_dir)> provider);
  /// The text the "Top-1" column shows for `run_dir` (empty when not listed or no read-outs).
  QString readoutText(const QString& run_dir) const;
  /// The columns' widths, order and visibility (QHeaderView::saveState), to keep between
  /// sessions; restoreColumns ignores data it cannot read.
  QByteArray saveColumns() const;
  void restoreColumns(const QByteArray& state);
  /// The tooltip of the "Top-1" column for `run_dir` (empty when not listed or no read-outs).
  QString readoutToolTip(const QString& run_dir) const;
  /// Adds an entry to a run's context menu; `act` gets the run folder. With `enabled`, the entry
  /// is greyed out for a run where `enabled(run_dir)` is false (asked as the menu opens).
  void addRunAction(const QString& text, std::function<void(const QString& run_dir)> act,
                    std::function<bool(const QString& run_dir)> enabled = {});
  /// The tree itself, for the app to size or style it.
  QTreeWidget* tree() const { return tree_; }

 signals:
  void shownChanged(const QString& run_dir, bool shown);
  void activated(const QString& run_dir);  // double-click / Enter

 private:
  bool eventFilter(QObject* watched, QEvent* event) override;
  /// Gives the name column the width the others leave (at least a readable minimum).
  void fitColumns();
  struct Entry {
    QString dir;
    QDateTime modified;
    qint64 size = 0;
  };
  QVector<Entry> scanWorkspace() const;
  void updateItem(QTreeWidgetItem* item, const Entry& entry);
  QTreeWidgetItem* itemFor(const QString& run_dir) const;
  void showContextMenu(const QPoint& pos);
  void onItemChanged(QTreeWidgetItem* item, int column);

  QString workspace_;
  QStringList external_;       // addRun folders outside the workspace scan
  QMap<QString, bool> shown_;  // what shownChanged last said, per run folder
  QTreeWidget* tree_ = nullptr;
  QLabel* empty_ = nullptr;
  QStackedLayout* stack_ = nullptr;
  QTimer* timer_ = nullptr;
  bool updating_ = false;  // item changes made by the code, not by the user
  std::function<bool(const QString&)> live_check_;
  std::function<Readout(const QString&)> readout_;
  struct RunAction {
    QString text;
    std::function<void(const QString&)> act;
    std::function<bool(const QString&)> enabled;
  };
  QVector<RunAction> run_actions_;
  QString live_reason_;
};

}  // namespace mst
