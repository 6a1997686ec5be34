/// @brief Read-outs of a run's checkpoint from the window: `mst eval knn` then `mst eval linear`
/// with --record, in child processes (the window stays free; Stop kills them), so each result
/// lands in the run's eval.json and the run list shows it.
#pragma once

#include <QObject>
#include <QString>
#include <QStringList>

class QProcess;

namespace mst {

/// How much of the data the read-outs use (the defaults are the paper's protocol: every image,
/// 100 probe epochs); smaller values give a quick look.
struct EvalLimits {
  int train_limit = 0;  ///< training images (the k-NN bank, the probe's training set); 0 = all
  int test_limit = 0;   ///< test images; 0 = all
  int linear_epochs = 100;
};

class EvalRun : public QObject {
  Q_OBJECT
 public:
  explicit EvalRun(QObject* parent = nullptr);
  /// Kills an evaluation still going (results recorded so far stay).
  ~EvalRun() override;

  /// Evaluates RUN/checkpoint.pt on `device` ("cpu", "cuda:0"; one device: the first of a list)
  /// with `threads` CPU threads (0 = all cores): k-NN (the run's eval.k, full bank) then the
  /// linear probe (its defaults). `binary` is the `mst` to run (default: beside this program). False +
  /// *error when one is already going, the run has no checkpoint, or `mst` cannot start.
  bool start(const QString& run_dir, const QString& device, int threads, QString* error,
             const EvalLimits& limits = {}, const QString& binary = QString());
  /// Kills the child: finished(false, "") follows, with a message; results recorded stay.
  void stop();
  /// Kills the child without a signal (the window is closing).
  void abandon();
  bool isRunning() const;
  QString runDir() const { return run_dir_; }

 signals:
  void message(const QString& text);
  /// One read-out finished: "knn_top1" or "linear_top1", in percent.
  void result(const QString& run_dir, const QString& name, double top1);
  /// Both done (ok), or the first failure (error says what) or a stop (error empty).
  void finished(bool ok, const QString& error);

 private:
  void next();

  QProcess* process_ = nullptr;
  QString run_dir_, device_, binary_;
  int threads_ = 0;
  EvalLimits limits_;
  QStringList pending_;  ///< read-outs still to run: "knn", "linear"
  QString current_, last_error_line_;
  QByteArray stdout_;
  bool stopping_ = false;
};

}  // namespace mst
