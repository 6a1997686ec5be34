/// @brief `mst log`: a run log's metrics as CSV, readable while the run is writing it (SWMR).
#include <chrono>
#include <cmath>
#include <iostream>
#include <sstream>
#include <thread>

#include "app/cli/common.h"
#include "core/log/run_log.h"
#include "core/util/error.h"

namespace mst::cli {
namespace {

/// Prints rows [from, rows) of the chosen columns of `group`; returns the row count.
size_t printRows(const std::string& path, const std::string& group,
                 const std::vector<std::string>& names, size_t from, bool header) {
  std::vector<std::vector<double>> columns;
  size_t rows = 0;
  for (const auto& name : names) {
    columns.push_back(readLogDataset(path, "/" + group + "/" + name));
    rows = columns.size() == 1 ? columns.back().size() : std::min(rows, columns.back().size());
  }
  if (header) {
    for (size_t i = 0; i < names.size(); ++i) std::cout << (i ? "," : "") << names[i];
    std::cout << "\n";
  }
  for (size_t r = from; r < rows; ++r) {
    for (size_t i = 0; i < columns.size(); ++i) {
      double v = columns[i][r];
      std::cout << (i ? "," : "");
      if (std::isfinite(v)) std::cout << v;
    }
    std::cout << "\n";
  }
  std::cout << std::flush;
  return rows;
}

}  // namespace

Command registerLog(CLI::App& app) {
  struct Options {
    std::string path, metrics, group = "metrics";
    bool follow = false, events = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "log", "Print a run log's metrics (or eval rows, or events) as CSV, also while it is written");
  cmd->add_option("run", o->path, "DIR/run.h5 or the run folder")->required();
  cmd->add_option("--metrics", o->metrics, "Columns, e.g. loss,loss_ce,knn_top1 (default all)");
  cmd->add_option("--group", o->group, "metrics | eval")->check(CLI::IsMember({"metrics", "eval"}));
  cmd->add_flag("--events", o->events, "Print the warnings and errors the run recorded");
  cmd->add_flag("--follow", o->follow, "Keep printing new rows until interrupted");
  return {cmd, [o] {
            std::string path = o->path;
            if (path.size() < 3 || path.substr(path.size() - 3) != ".h5") path += "/run.h5";
            if (o->events) {
              auto steps = readLogDataset(path, "/events/step");
              auto messages = readLogStrings(path, "/events/message");
              for (size_t i = 0; i < std::min(steps.size(), messages.size()); ++i)
                std::cout << static_cast<int64_t>(steps[i]) << ": " << messages[i] << "\n";
              return;
            }
            std::vector<std::string> names{"step", "epoch"};
            if (o->metrics.empty()) {
              for (const auto& n : listLogGroup(path, "/" + o->group))
                if (n != "step" && n != "epoch") names.push_back(n);
            } else {
              std::stringstream list(o->metrics);
              for (std::string n; std::getline(list, n, ',');) names.push_back(n);
            }
            installStopHandlers();
            size_t rows = printRows(path, o->group, names, 0, true);
            while (o->follow && !g_stop.load()) {
              std::this_thread::sleep_for(std::chrono::seconds(2));
              rows = printRows(path, o->group, names, rows, false);
            }
          }};
}

}  // namespace mst::cli
