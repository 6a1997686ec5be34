/// @brief EvalRun (see eval_run.h).
#include "app/gui/eval_run.h"

#include <QDir>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>

#include "app/gui/process_run.h"

namespace mst {

EvalRun::EvalRun(QObject* parent) : QObject(parent) {}

EvalRun::~EvalRun() { abandon(); }

void EvalRun::abandon() {
  // Silent: the receivers (a window being closed) may be half destroyed already.
  blockSignals(true);
  pending_.clear();
  if (!isRunning()) return;
  stopping_ = true;
  process_->disconnect(this);
  process_->kill();
  process_->waitForFinished(10000);
}

bool EvalRun::start(const QString& run_dir, const QString& device, int threads, QString* error,
                    const EvalLimits& limits, const QString& binary) {
  if (isRunning()) {
    *error = "an evaluation of " + run_dir_ + " is going; stop it first";
    return false;
  }
  const QString checkpoint = QDir(run_dir).filePath("checkpoint.pt");
  if (!QFileInfo(checkpoint).isFile()) {
    *error = "no checkpoint to evaluate: " + checkpoint + " does not exist";
    return false;
  }
  run_dir_ = run_dir;
  device_ = device.section(',', 0, 0);  // a read-out runs on one device
  threads_ = threads;
  limits_ = limits;
  binary_ = binary.isEmpty() ? mstProgram() : binary;
  if (!QFileInfo(binary_).isExecutable()) {
    *error = "cannot run " + binary_ + " (the mst command line, built beside the workbench)";
    return false;
  }
  pending_ = {"knn", "linear"};
  stopping_ = false;
  blockSignals(false);
  next();
  return true;
}

void EvalRun::next() {
  if (pending_.isEmpty()) {
    emit finished(true, QString());
    return;
  }
  current_ = pending_.takeFirst();
  // Not deleted here: next() runs inside the previous process's own finished() handler.
  if (process_) process_->deleteLater();
  process_ = new QProcess(this);
  stdout_.clear();
  last_error_line_.clear();
  QStringList args{"eval", current_, "--checkpoint", QDir(run_dir_).filePath("checkpoint.pt"),
                   "--device", device_, "--threads", QString::number(threads_), "--record"};
  if (limits_.train_limit > 0) args << "--train-limit" << QString::number(limits_.train_limit);
  if (limits_.test_limit > 0) args << "--test-limit" << QString::number(limits_.test_limit);
  if (current_ == "linear") args << "--epochs" << QString::number(limits_.linear_epochs);
  process_->setProgram(binary_);
  process_->setArguments(args);
  connect(process_, &QProcess::readyReadStandardOutput, this,
          [this] { stdout_ += process_->readAllStandardOutput(); });
  connect(process_, &QProcess::readyReadStandardError, this, [this] {
    for (const QString& line : QString::fromUtf8(process_->readAllStandardError()).split('\n')) {
      const QString text = line.section('\r', -1).trimmed();
      if (!text.isEmpty()) last_error_line_ = text;
    }
  });
  connect(process_, &QProcess::finished, this, [this](int code, QProcess::ExitStatus status) {
    const QString what = current_ == "knn" ? "k-NN" : "linear probe";
    if (stopping_) {
      pending_.clear();
      emit message("evaluation of " + run_dir_ + " stopped; results recorded before stay");
      emit finished(false, QString());
      return;
    }
    if (status != QProcess::NormalExit || code != 0) {
      pending_.clear();
      emit finished(false, what + " of " + run_dir_ + " failed: " +
                               (last_error_line_.isEmpty() ? "mst eval exited with code " +
                                                                 QString::number(code)
                                                           : last_error_line_));
      return;
    }
    // The command's last stdout line is its result.
    const QList<QByteArray> lines = stdout_.trimmed().split('\n');
    const QJsonObject out =
        QJsonDocument::fromJson(lines.isEmpty() ? QByteArray() : lines.back()).object();
    const QString key = current_ + "_top1";
    if (!out.value(key).isDouble()) {
      pending_.clear();
      emit finished(false, what + " of " + run_dir_ + ": no " + key + " in mst eval's output");
      return;
    }
    emit result(run_dir_, key, out.value(key).toDouble());
    emit message(QString("%1 of %2: top-1 %3 % (recorded in %4)")
                     .arg(what, run_dir_)
                     .arg(out.value(key).toDouble(), 0, 'f', 2)
                     .arg(out.value("recorded_in").toString()));
    next();
  });
  connect(process_, &QProcess::errorOccurred, this, [this](QProcess::ProcessError e) {
    if (e != QProcess::FailedToStart) return;  // the others end in finished()
    pending_.clear();
    emit finished(false, "cannot start " + binary_ + ": " + process_->errorString());
  });
  process_->start();
  const QString what = current_ == "knn"
                           ? QString("k-NN (the run's eval.k)")
                           : QString("linear probe (%1 epochs)").arg(limits_.linear_epochs);
  emit message(QString("evaluating %1: %2 on %3").arg(run_dir_, what, device_));
}

void EvalRun::stop() {
  if (!isRunning()) return;
  stopping_ = true;
  process_->kill();  // nothing to save mid-read-out; what is recorded stays
}

bool EvalRun::isRunning() const {
  return process_ && process_->state() != QProcess::NotRunning;
}

}  // namespace mst
