/// @brief What a sweep cell's folder says about it: its result.json, the config it was trained
/// with, the training summary read from its run.h5 (see sweep.h).
#include "core/eval/sweep.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/eval/evaluate.h"
#include "core/log/log_reader.h"

namespace mst {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::optional<json> readCellResult(const std::string& dir) {
  const auto path = fs::path(dir) / "result.json";
  if (!fs::exists(path)) return std::nullopt;
  std::ifstream in(path);
  json result;
  try {
    result = json::parse(in);
  } catch (const json::parse_error&) {
    return std::nullopt;  // an unreadable result is redone, not trusted
  }
  // A result from before total_steps was recorded: its run.h5 says whether the cell trained its
  // whole schedule (the last logged epoch reaches the config's train.epochs), which is what a
  // full-schedule sweep asks. Without that evidence the result stays as it is.
  if (result.is_object() && !result.contains("total_steps") && result.contains("steps") &&
      result["steps"].is_number_integer()) {
    const auto log = (fs::path(dir) / "run.h5").string();
    try {
      if (fs::exists(log)) {
        const auto epochs = readLogDataset(log, "/metrics/epoch");
        const json config = json::parse(readLogAttribute(log, "/config", "json"));
        const double target = config.at("train").at("epochs").get<double>();
        if (!epochs.empty() && epochs.back() >= target - 1e-9)
          result["total_steps"] = result["steps"];
      }
    } catch (const std::exception&) {
      // an unreadable log proves nothing: the result keeps asking for a rerun
    }
  }
  return result;
}

std::optional<json> storedCellConfig(const std::string& dir) {
  if (auto result = readCellResult(dir))
    if (result->contains("config") && (*result)["config"].is_object()) return (*result)["config"];
  const auto log = fs::path(dir) / "run.h5";
  if (fs::exists(log)) {
    try {
      auto config = json::parse(readLogAttribute(log.string(), "/config", "json"));
      if (config.is_object()) return config;
    } catch (const std::exception&) {
      // a log being created or damaged: the checkpoint says the same
    }
  }
  const auto checkpoint = fs::path(dir) / "checkpoint.pt";
  if (fs::exists(checkpoint)) {
    try {
      return checkpointConfig(checkpoint.string());
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

json readTrainingSummary(const std::string& run_h5) {
  const auto names = listLogGroup(run_h5, "/metrics");
  const auto has = [&](const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  // Mean over [from, end) of the rows that hold a value (a metric not logged at a step is NaN).
  const auto mean = [](const std::vector<double>& x, size_t from) -> std::optional<double> {
    double sum = 0;
    size_t n = 0;
    for (size_t i = from; i < x.size(); ++i)
      if (std::isfinite(x[i])) sum += x[i], ++n;
    if (n == 0) return std::nullopt;
    return sum / static_cast<double>(n);
  };
  json summary = json::object();
  if (has("mask_ratio"))
    if (auto m = mean(readLogDataset(run_h5, "/metrics/mask_ratio"), 0)) summary["mask_ratio"] = *m;
  for (const auto& [metric, key] : {std::pair<std::string, std::string>{"loss_ce", "loss_ce_end"},
                                    {"loss_rec", "loss_rec_end"}}) {
    if (!has(metric)) continue;
    const auto x = readLogDataset(run_h5, "/metrics/" + metric);
    const size_t tail = std::max<size_t>(1, x.size() / 10);
    if (auto m = mean(x, x.size() - std::min(tail, x.size()))) summary[key] = *m;
  }
  return summary;
}

}  // namespace mst
