/// @brief ProcessRun (see process_run.h).
#include "app/gui/process_run.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QProcess>

#include <nlohmann/json.hpp>

#include "core/config/config.h"
#include "core/util/claim.h"

namespace mst {

QString mstProgram() { return QDir(QCoreApplication::applicationDirPath()).filePath("mst"); }

ProcessRun::ProcessRun(QObject* parent) : QObject(parent) {}

ProcessRun::~ProcessRun() {
  if (isRunning()) {
    stop();
    wait(120000);
  }
}

bool ProcessRun::start(const TrainRequest& request, int cpu_ranks, QString* error) {
  if (isRunning()) {
    *error = "a run is already going";
    return false;
  }
  // Another run training this folder keeps it: refuse before experiment.json is replaced.
  const std::string claim = QDir(request.out_dir).filePath("run.claim").toStdString();
  if (claimIsLive(claim)) {
    *error = "run folder " + request.out_dir + " is being trained by another run (" +
             QString::fromStdString(claimHolder(claim)) + "); stop it first, or use a new folder";
    return false;
  }
  // Every key written out: a resumed child reads the run's own config under this file, and the
  // run must go on with exactly the experiment shown (a key left at its default included).
  QByteArray resolved;
  try {
    resolved = QByteArray::fromStdString(
        configToJson(configFromJson(nlohmann::json::parse(request.config_json.toStdString()),
                                    "experiment"))
            .dump(2));
  } catch (const std::exception& e) {
    *error = QString::fromStdString(e.what());
    return false;
  }
  QDir().mkpath(request.out_dir);
  const QString config = QDir(request.out_dir).filePath("experiment.json");
  {
    QFile f(config);
    if (!f.open(QIODevice::WriteOnly) || f.write(resolved) < 0) {
      *error = "cannot write " + config;
      return false;
    }
  }
  QStringList args{"train", "--config", config, "--out", request.out_dir, "--device",
                   request.device};
  if (cpu_ranks > 1) args << "--ranks" << QString::number(cpu_ranks);
  if (request.resume) args << "--resume";
  if (request.allow_config_change) args << "--allow-config-change";
  if (request.max_steps > 0) args << "--max-steps" << QString::number(request.max_steps);
  delete process_;
  process_ = new QProcess(this);
  process_->setProgram(mstProgram());
  process_->setArguments(args);
  run_dir_ = request.out_dir;
  last_line_.clear();
  connect(process_, &QProcess::readyReadStandardError, this, [this] {
    for (const QString& line : QString::fromUtf8(process_->readAllStandardError()).split('\n')) {
      const QString text = line.section('\r', -1).trimmed();  // the last state of a progress bar
      if (text.isEmpty()) continue;
      last_line_ = text;
      if (!text.contains("img/s")) emit message(text);  // progress comes from the log instead
    }
  });
  connect(process_, &QProcess::finished, this, [this](int code, QProcess::ExitStatus status) {
    const bool ok = status == QProcess::NormalExit && code == 0;
    emit finished(ok, ok ? QString() : (last_line_.isEmpty() ? "mst train failed" : last_line_),
                  QDir(run_dir_).filePath("checkpoint.pt"));
  });
  process_->start();
  if (!process_->waitForStarted(10000)) {
    *error = "cannot start " + process_->program() + ": " + process_->errorString();
    return false;
  }
  return true;
}

void ProcessRun::stop() {
  if (isRunning()) process_->terminate();
}

bool ProcessRun::isRunning() const {
  return process_ && process_->state() != QProcess::NotRunning;
}

bool ProcessRun::wait(int timeout_ms) {
  return !isRunning() || process_->waitForFinished(timeout_ms);
}

}  // namespace mst
