/// @brief A sweep folder's record, DIR/sweep.json (see sweep_record.h).
#include "core/eval/sweep_record.h"

#include <filesystem>
#include <fstream>

#include "core/log/log_reader.h"
#include "core/util/error.h"
#include "core/util/files.h"

namespace mst {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

/// [{"key": K, "values": [...]}, ...] (sweep.json's grid, sweep.h5's attribute) as axes;
/// MstError naming `where` when it is not that.
std::vector<SweepAxis> axesFromJson(const json& grid, const std::string& where) {
  if (!grid.is_array() || grid.empty())
    throw MstError(where + ": grid must be a non-empty array of {\"key\", \"values\"}");
  std::vector<SweepAxis> axes;
  for (const auto& item : grid) {
    if (!item.is_object() || !item.contains("key") || !item["key"].is_string() ||
        !item.contains("values") || !item["values"].is_array() || item["values"].empty())
      throw MstError(where + ": grid entry " + item.dump() +
                     " must be {\"key\": \"a.key\", \"values\": [...]}");
    SweepAxis axis;
    axis.key = item["key"].get<std::string>();
    axis.values.assign(item["values"].begin(), item["values"].end());
    axis.source = where;
    axes.push_back(std::move(axis));
  }
  return axes;
}

std::string stepsText(int64_t steps) {
  return std::to_string(steps) + (steps == 0 ? " (the full schedule)" : "");
}

/// 0 (the full schedule) is the most steps a sweep can ask for.
bool fewerSteps(int64_t asked, int64_t stored) {
  if (stored == 0) return asked != 0;
  return asked != 0 && asked < stored;
}

}  // namespace

std::string sweepRecordPath(const std::string& out_dir) {
  return (fs::path(out_dir) / "sweep.json").string();
}

std::optional<SweepRecord> readSweepRecord(const std::string& out_dir) {
  const std::string path = sweepRecordPath(out_dir);
  if (!fs::exists(path)) return std::nullopt;
  std::ifstream in(path);
  if (!in) throw MstError("cannot read the sweep record " + path);
  json file;
  try {
    file = json::parse(in);
  } catch (const json::parse_error& e) {
    throw MstError(path + " is not valid JSON (" + e.what() +
                   "): restore it, or delete it to take the next sweep's grid as the folder's");
  }
  if (!file.is_object() || !file.contains("grid"))
    throw MstError(path + " must be an object with the sweep's grid");
  SweepRecord record;
  record.axes = axesFromJson(file["grid"], path);
  const json steps = file.value("max_steps", json(0));
  if (!steps.is_number_integer() || steps.get<int64_t>() < 0)
    throw MstError(path + ": max_steps must be an integer >= 0, got " + steps.dump());
  record.max_steps = steps.get<int64_t>();
  SweepOptions readouts;
  parseReadouts(file.value("readout", std::string("knn,linear")), path + ": readout", readouts);
  record.knn = readouts.knn;
  record.linear = readouts.linear;
  return record;
}

void writeSweepRecord(const std::string& out_dir, const SweepRecord& record) {
  json grid = json::array();
  for (const auto& axis : record.axes) grid.push_back({{"key", axis.key}, {"values", axis.values}});
  const std::string readout = record.knn && record.linear ? "knn,linear"
                              : record.linear             ? "linear"
                                                          : "knn";
  const json file{{"grid", grid}, {"max_steps", record.max_steps}, {"readout", readout}};
  writeTextAtomically(sweepRecordPath(out_dir), file.dump(2) + "\n");
}

std::string axisSpec(const SweepAxis& axis) {
  std::string spec = axis.key + "=";
  for (size_t i = 0; i < axis.values.size(); ++i) {
    const json& v = axis.values[i];
    std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    const bool plain = !v.is_string() || (!text.empty() &&
                                          text.find_first_of(",\"= ") == std::string::npos &&
                                          !json::accept(text));
    spec += (i ? "," : "") + (plain ? text : v.dump());
  }
  return spec;
}

std::string gridFlags(const std::vector<SweepAxis>& axes) {
  std::string flags;
  for (const auto& axis : axes) flags += (flags.empty() ? "--grid " : " --grid ") + axisSpec(axis);
  return flags;
}

bool sameGrid(const std::vector<SweepAxis>& a, const std::vector<SweepAxis>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].key != b[i].key || a[i].values.size() != b[i].values.size()) return false;
    for (size_t v = 0; v < a[i].values.size(); ++v)
      if (a[i].values[v].dump() != b[i].values[v].dump()) return false;
  }
  return true;
}

std::optional<SweepRecord> checkSweepRecord(const std::vector<SweepAxis>& axes,
                                            const SweepOptions& options) {
  auto record = readSweepRecord(options.out_dir);
  if (!record) return record;
  const std::string folder = "sweep " + options.out_dir;
  if (!sameGrid(record->axes, axes))
    throw MstError(folder + " was run with another grid (its sweep.json: " +
                   gridFlags(record->axes) + "; asked: " + gridFlags(axes) +
                   "); its tables and cells do not answer this sweep: give the same grid (or no "
                   "--grid, to use the folder's), or use a new --out");
  const std::string steps = folder + " was run with --max-steps " +
                            stepsText(record->max_steps) + " (its sweep.json), not " +
                            stepsText(options.max_steps);
  if (!options.run_cells && options.max_steps != record->max_steps)
    throw MstError(steps + ": --status shows a sweep as it was run; leave --max-steps out or "
                           "give " + std::to_string(record->max_steps));
  if (options.run_cells && fewerSteps(options.max_steps, record->max_steps))
    throw MstError(steps + ": fewer steps would mix cells trained to different lengths; give " +
                   std::to_string(record->max_steps) +
                   " or more (or no --max-steps, to use the folder's), or use a new --out");
  return record;
}

std::optional<std::vector<SweepAxis>> readSweepTableGrid(const std::string& out_dir) {
  const std::string path = (fs::path(out_dir) / "sweep.h5").string();
  if (!fs::exists(path)) return std::nullopt;
  try {
    const auto attribute = json::parse(readLogAttribute(path, "/sweep", "json"));
    return axesFromJson(attribute.is_object() ? attribute.value("grid", json()) : attribute,
                        path);
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged table says nothing about the grid
  }
}

}  // namespace mst
