/// @brief mst-workbench: parses the command line and shows the main window.
#include <QApplication>
#include <QCommandLineParser>
#include <QTimer>

#include <optional>

#include <QFileInfo>

#include <atomic>
#include <csignal>
#include <QTabWidget>

#include "app/gui/inspector_panel.h"
#include "app/gui/main_window.h"
#include "app/gui/sweep_panel.h"
#include "widgets/curve_panel.h"

namespace {
// SIGINT / SIGTERM (Ctrl-C in the terminal, a session ending, `kill`): close the window the normal
// way, so that a run going stops after its step and writes its checkpoint. The handler only sets a
// flag; a timer on the GUI thread acts on it.
std::atomic<bool> g_quit_requested{false};
void requestQuit(int) { g_quit_requested = true; }
}  // namespace

int main(int argc, char** argv) {
  QCommandLineParser cli;
  cli.setApplicationDescription("MST Workbench: train and study Masked Self-Supervised Transformers");
  cli.addHelpOption();
  cli.addVersionOption();
  cli.addPositionalArgument(
      "files", "Run logs (run.h5 or run folders) to plot, or inspect files (mst inspect --out) to view",
      "[files...]");
  const QCommandLineOption config({"c", "config"}, "Experiment JSON file.", "file");
  const QCommandLineOption out({"o", "out"}, "Run folder (resumed when it has a checkpoint).", "dir");
  const QCommandLineOption workspace("workspace", "Folder whose runs are listed.", "dir");
  const QCommandLineOption device("device", "cpu | cuda:N", "device");
  const QCommandLineOption max_steps("max-steps", "Stop a run (with a checkpoint) after N steps.", "N");
  const QCommandLineOption start("start", "Start training at once.");
  const QCommandLineOption ranks("ranks", "Data-parallel CPU processes (as mst train --ranks).", "N");
  const QCommandLineOption screenshot(
      "screenshot",
      "When the run ends, save PNGs of the window (FILE, and FILE-inspector.png, "
      "FILE-sweep.png for the other tabs), then quit.",
      "file");
  const QCommandLineOption sweep("sweep", "Open the sweep in this folder in the Sweep tab.", "dir");
  cli.addOptions({config, out, workspace, device, max_steps, start, ranks, screenshot, sweep});
  // --help and --version print and exit without a window, so they need no display.
  for (int i = 1; i < argc; ++i) {
    const QByteArray arg(argv[i]);
    if (arg == "-h" || arg == "--help" || arg == "--help-all" || arg == "-v" || arg == "--version") {
      QCoreApplication core(argc, argv);
      QCoreApplication::setApplicationName("mst-workbench");
      QCoreApplication::setApplicationVersion("0.1.0");
      cli.process(core);
    }
  }
  QApplication app(argc, argv);
  QApplication::setOrganizationName("mst-workbench");  // QSettings: ~/.config/mst-workbench/
  QApplication::setApplicationName("mst-workbench");
  QApplication::setApplicationVersion("0.1.0");
  cli.process(app);

  mst::WorkbenchOptions options;
  options.config_path = cli.value(config);
  options.out_dir = cli.value(out);
  options.workspace = cli.value(workspace);
  options.device = cli.value(device);
  options.max_steps = cli.value(max_steps).toLongLong();
  options.cpu_ranks = std::max(1, cli.value(ranks).toInt());
  // A person's layout is kept between sessions; a screenshot shows the built-in one.
  options.remember_layout = !cli.isSet(screenshot);
  mst::MainWindow window(options);
  window.show();
  std::signal(SIGINT, requestQuit);
  std::signal(SIGTERM, requestQuit);
  QTimer quit_watch;
  QObject::connect(&quit_watch, &QTimer::timeout, &window, [&window] {
    if (g_quit_requested.exchange(false)) window.close();
  });
  quit_watch.start(200);
  for (const QString& run : cli.positionalArguments()) {
    QString error;
    if (!window.openRun(run, &error)) {
      qWarning("%s", qPrintable(error));
      window.appendLog(error, /*error=*/true);
    }
  }
  if (cli.isSet(screenshot)) {
    const QString file = cli.value(screenshot);
    const QString stem = QFileInfo(file).path() + "/" + QFileInfo(file).completeBaseName();
    QObject::connect(&window, &mst::MainWindow::runFinished, &window, [&window, file, stem] {
      QTimer::singleShot(600, &window, [&window, file, stem] {  // let the last redraw land
        window.curves()->flushRedraw();
        window.grab().save(file);
        // The inspector from the final weights, then the sweep tab.
        window.tabs()->setCurrentWidget(window.inspector());
        QObject::connect(window.inspector(), &mst::InspectorPanel::updated, &window,
                         [&window, stem] {
                           QTimer::singleShot(300, &window, [&window, stem] {
                             window.grab().save(stem + "-inspector.png");
                             window.tabs()->setCurrentWidget(window.sweeps());
                             QTimer::singleShot(300, &window, [&window, stem] {
                               window.grab().save(stem + "-sweep.png");
                               QApplication::quit();
                             });
                           });
                         });
        window.inspector()->redraw();
      });
    });
  }
  const bool start_now = cli.isSet(start) || cli.isSet(screenshot);
  if (start_now) QTimer::singleShot(0, &window, &mst::MainWindow::startRun);
  if (cli.isSet(sweep)) {
    // After Start, and silently when --config is given: the form keeps the experiment given
    // and the sweep's own experiment stays with the Sweep tab (opened from the window, a sweep
    // brings its experiment into the form).
    const bool keep_form = cli.isSet(config);
    QTimer::singleShot(start_now ? 1 : 0, &window, [&window, keep_form, dir = cli.value(sweep)] {
      QString error;
      std::optional<QSignalBlocker> quiet;
      if (keep_form) quiet.emplace(window.sweeps());
      if (!window.sweeps()->open(dir, &error)) {
        qWarning("%s", qPrintable(error));
        window.appendLog(error, /*error=*/true);
      }
    });
  }
  return QApplication::exec();
}
