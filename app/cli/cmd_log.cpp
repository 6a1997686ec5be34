/// @brief `mst log`: a run log's metrics as CSV, readable while the run is writing it (SWMR).
#include <algorithm>
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

/// Columns of `group` in the log, or none when the log has no such group (older logs).
std::vector<std::string> columnsOf(const std::string& path, const std::string& group) {
  try {
    return listLogGroup(path, "/" + group);
  } catch (const MstError&) {
    return {};
  }
}

/// A CSV field (RFC 4180): quoted, with its quotes doubled, when it holds a comma, a quote or a
/// line break; as it is otherwise.
std::string csvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return quoted + "\"";
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names)
    if (n != "step" && n != "epoch") out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

/// The group whose rows --metrics asks for: --group when given, else the one that holds every
/// named column (metrics rows are logged steps, eval rows are k-NN read-outs: they do not share
/// rows). MstError naming the column that neither holds, or the mix.
std::string groupFor(const std::string& path, const std::vector<std::string>& names,
                     const std::string& given) {
  // A run log always has /metrics: reading it names an unreadable file.
  const auto metrics = listLogGroup(path, "/metrics"), eval = columnsOf(path, "eval");
  const auto has = [](const std::vector<std::string>& list, const std::string& n) {
    return std::find(list.begin(), list.end(), n) != list.end();
  };
  std::string in_metrics, in_eval;
  for (const auto& n : names) {
    if (n == "step" || n == "epoch") continue;
    const bool m = has(metrics, n), e = has(eval, n);
    if (!m && !e)
      throw MstError(path + ": no column '" + n + "' (--metrics); metrics: " + joined(metrics) +
                     "; eval: " + joined(eval));
    if (!given.empty() && !has(given == "eval" ? eval : metrics, n))
      throw MstError(path + ": '" + n + "' is a column of /" + (m ? "metrics" : "eval") +
                     ", not of /" + given + " (--group " + given + ")");
    if (m) in_metrics = n;
    if (!m && e) in_eval = n;
  }
  if (!given.empty()) return given;
  if (!in_metrics.empty() && !in_eval.empty())
    throw MstError("--metrics: " + in_metrics + " is a training metric and " + in_eval +
                   " an eval column (rows of other steps): print them with two mst log calls");
  return in_eval.empty() ? "metrics" : "eval";
}

}  // namespace

Command registerLog(CLI::App& app) {
  struct Options {
    std::string path, metrics, group;
    bool follow = false, events = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "log", "Print a run log's metrics (or eval rows, or events) as CSV, also while it is written");
  cmd->add_option("run", o->path, "DIR/run.h5 or the run folder")->required();
  cmd->add_option("--metrics", o->metrics,
                  "Columns, e.g. loss,loss_ce,loss_rec (default all); eval columns such as "
                  "knn_top1 print the eval rows");
  cmd->add_option("--group", o->group,
                  "metrics | eval (default: the group of the --metrics columns, else metrics)")
      ->check(CLI::IsMember({"metrics", "eval"}));
  cmd->add_flag("--events", o->events,
                "Print the warnings and errors the run recorded: CSV with columns step,message");
  cmd->add_flag("--follow", o->follow, "Keep printing new rows until interrupted");
  return {cmd, [o] {
            std::string path = o->path;
            if (path.size() < 3 || path.substr(path.size() - 3) != ".h5") path += "/run.h5";
            if (o->events) {
              auto steps = readLogDataset(path, "/events/step");
              auto messages = readLogStrings(path, "/events/message");
              std::cout << "step,message\n";
              for (size_t i = 0; i < std::min(steps.size(), messages.size()); ++i)
                std::cout << static_cast<int64_t>(steps[i]) << "," << csvField(messages[i])
                          << "\n";
              std::cout << std::flush;
              return;
            }
            std::vector<std::string> names{"step", "epoch"};
            const auto add = [&](std::string n) {  // step and epoch come first, once
              n.erase(0, n.find_first_not_of(" \t"));
              n.erase(n.find_last_not_of(" \t") + 1);
              if (!n.empty() && std::find(names.begin(), names.end(), n) == names.end())
                names.push_back(n);
            };
            std::string group = o->group.empty() ? "metrics" : o->group;
            if (o->metrics.empty()) {
              for (const auto& n : listLogGroup(path, "/" + group)) add(n);
            } else {
              std::stringstream list(o->metrics);
              for (std::string n; std::getline(list, n, ',');) add(n);
              group = groupFor(path, names, o->group);
            }
            installStopHandlers();
            size_t rows = printRows(path, group, names, 0, true);
            while (o->follow && !g_stop.load()) {
              std::this_thread::sleep_for(std::chrono::seconds(2));
              rows = printRows(path, group, names, rows, false);
            }
          }};
}

}  // namespace mst::cli
