/// @brief Grid sweeps implementation (see sweep.h).
#include "core/eval/sweep.h"

#include <algorithm>
#include <exception>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/config/config.h"
#include "core/config/config_diff.h"
#include "core/eval/sweep_record.h"
#include "core/log/log_reader.h"
#include "core/log/run_log.h"
#include "core/train/engine.h"
#include "core/train/trainer.h"
#include "core/util/claim.h"
#include "core/util/error.h"
#include "core/util/files.h"

namespace mst {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string valueText(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

/// A folder-name-safe label: 03_masking.p=0.1_masking.num=8.
std::string cellName(int64_t index, const std::vector<SweepAxis>& axes,
                     const std::vector<json>& values) {
  std::ostringstream name;
  name << (index < 10 ? "0" : "") << index;
  for (size_t a = 0; a < axes.size(); ++a) {
    name << "_" << axes[a].key << "=";
    for (char ch : valueText(values[a])) name << (std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ? ch : '_');
  }
  return name.str();
}

std::string csvField(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return quoted + "\"";
}

/// The base config with the cell's grid values applied.
json cellJson(const json& base, const std::vector<SweepAxis>& axes,
              const std::vector<json>& values) {
  json config = base;
  for (size_t a = 0; a < axes.size(); ++a)
    applyOverride(config, axes[a].key + "=" + values[a].dump());
  return config;
}

}  // namespace

std::vector<SweepCell> expandGrid(const json& base, const std::vector<SweepAxis>& axes,
                                  const std::string& out_dir) {
  const auto keys = configKeys();
  for (const auto& axis : axes) {
    if (std::none_of(keys.begin(), keys.end(), [&](const auto& k) { return k.key == axis.key; })) {
      // The parser's own message (with the section's keys), labelled with the axis's source.
      configFromJson(json{{axis.key, nullptr}}, axis.source);
      throw MstError(axis.source + ": unknown config key '" + axis.key + "'");
    }
    if (axis.values.empty()) throw MstError(axis.source + " key " + axis.key + " has no values");
  }
  std::vector<SweepCell> cells(1);
  for (const auto& axis : axes) {
    std::vector<SweepCell> next;
    for (const auto& cell : cells)
      for (const auto& v : axis.values) {
        SweepCell c = cell;
        c.values.push_back(v);
        next.push_back(c);
      }
    cells = std::move(next);
  }
  for (size_t i = 0; i < cells.size(); ++i) {
    auto& cell = cells[i];
    cell.index = static_cast<int64_t>(i);
    cell.dir = (fs::path(out_dir) / cellName(cell.index, axes, cell.values)).string();
    // Reject a bad grid before any cell trains.
    std::string label = (axes.empty() ? std::string("sweep") : axes.front().source) + " cell " +
                        std::to_string(i) + " (";
    for (size_t a = 0; a < axes.size(); ++a)
      label += (a ? ", " : "") + axes[a].key + "=" + valueText(cell.values[a]);
    configFromJson(cellJson(base, axes, cell.values), label + ")");
  }
  return cells;
}

namespace {

std::string claimPath(const SweepCell& cell) { return (fs::path(cell.dir) / "claim").string(); }
std::string failurePath(const SweepCell& cell) {
  return (fs::path(cell.dir) / "failed.json").string();
}

std::optional<double> number(const json& object, const char* key) {
  if (!object.contains(key) || !object[key].is_number()) return std::nullopt;
  return object[key].get<double>();
}

/// A cell's values as result.json names them: the columns of sweep.csv and sweep.h5 after the
/// status, in this order.
const std::pair<const char*, std::optional<double> SweepCell::*> kResultColumns[] = {
    {"knn_top1", &SweepCell::knn_top1},       {"linear_top1", &SweepCell::linear_top1},
    {"mask_ratio", &SweepCell::mask_ratio},   {"loss_ce_end", &SweepCell::loss_ce_end},
    {"loss_rec_end", &SweepCell::loss_rec_end}};

/// Marks a cell done with the values a result holds.
void applyResult(SweepCell& cell, const json& result) {
  cell.status = "done";
  cell.outdated.clear();
  for (const auto& [key, field] : kResultColumns) cell.*field = number(result, key);
}

/// `result` with the training summary read from the cell's run.h5 when it lacks it (a result
/// written before the summary was part of it).
json withTrainingSummary(const SweepCell& cell, json result) {
  if (!result.contains("mask_ratio")) {
    const auto log = fs::path(cell.dir) / "run.h5";
    try {
      if (fs::exists(log)) result.update(readTrainingSummary(log.string()));
    } catch (const MstError&) {
      // an unreadable log leaves the summary empty; the read-outs are what the cell is for
    }
  }
  return result;
}

std::optional<int64_t> integer(const json& object, const char* key) {
  if (!object.contains(key) || !object[key].is_number_integer()) return std::nullopt;
  return object[key].get<int64_t>();
}

/// Empty when `result` was trained as far as `options` asks (see runSweep), else why not.
std::string trainingShortfall(const json& result, const SweepOptions& options) {
  const auto steps = integer(result, "steps"), total = integer(result, "total_steps");
  if (!steps) return "its result does not say how many steps it trained";
  if ((total && *steps >= *total) || (options.max_steps > 0 && *steps >= options.max_steps))
    return "";
  const std::string trained = "trained " + std::to_string(*steps) + " of ";
  if (options.max_steps > 0)
    return trained +
           std::to_string(total ? std::min(*total, options.max_steps) : options.max_steps) +
           " steps";
  if (total) return trained + std::to_string(*total) + " steps";
  return "trained " + std::to_string(*steps) +
         " steps, the full schedule asked (its result predates total_steps)";
}

/// A cell as its folder shows it for a sweep run with `options`: done with its read-outs
/// (result.json that answers the sweep), running while a sweep holds its claim, failed
/// (failed.json, with the error), or pending (never started, interrupted, or with a result
/// that does not answer the sweep: `outdated` says why; it continues from its checkpoint).
void loadCellStatus(SweepCell& cell, const SweepOptions& options) {
  if (loadAnsweringResult(cell, options)) return;
  const std::string outdated = cell.outdated;
  for (const auto& [key, field] : kResultColumns) cell.*field = std::nullopt;
  if (claimIsLive(claimPath(cell))) {
    cell.status = "running";
  } else if (fs::exists(failurePath(cell))) {
    cell.status = "failed";
    try {
      std::ifstream in(failurePath(cell));
      cell.error = json::parse(in).value("error", std::string());
    } catch (const std::exception&) {
      cell.error = "see " + failurePath(cell);
    }
  } else {
    cell.status = "pending";
  }
  cell.outdated = outdated;
}

/// Refuses a sweep whose cells on disk were trained with another config (see runSweep). Reads
/// only; called before anything is written.
void checkStoredConfigs(const json& base, const std::vector<SweepAxis>& axes,
                        const std::vector<SweepCell>& cells, const std::string& out_dir) {
  for (const auto& cell : cells) {
    const bool has_result = fs::exists(fs::path(cell.dir) / "result.json");
    if (!has_result && !fs::exists(fs::path(cell.dir) / "checkpoint.pt")) continue;
    const auto stored = storedCellConfig(cell.dir);
    if (!stored) {
      // A checkpoint nobody can read fails the cell in the trainer, with its own message; a
      // result whose config cannot be told must not be reported as this sweep's.
      if (!has_result) continue;
      throw MstError("sweep " + out_dir + ": cell " + cell.dir +
                     " has a result but no record of the config it was trained with (no "
                     "readable run.h5 or checkpoint.pt): it may not answer this sweep; use a new "
                     "--out, or delete the cell's folder to run it again");
    }
    const auto changes = describeChanges(configChanges(*stored, cellJson(base, axes, cell.values)),
                                         /*trajectory_only=*/true);
    if (!changes.empty())
      throw MstError("sweep " + out_dir + ": cell " + cell.dir +
                     " was trained with another config (" + changes +
                     "); its results and checkpoint do not answer this sweep: use a new --out");
  }
}

}  // namespace

std::string resultShortfall(const json& result, const SweepOptions& options) {
  std::string why = trainingShortfall(result, options);
  const auto add = [&](const std::string& text) { why += (why.empty() ? "" : "; ") + text; };
  if (options.knn && !number(result, "knn_top1")) add("no k-NN read-out");
  if (options.linear && !number(result, "linear_top1")) add("no linear read-out");
  return why;
}

bool loadCellResult(SweepCell& cell) {
  auto result = readCellResult(cell.dir);
  if (!result) return false;
  applyResult(cell, withTrainingSummary(cell, *result));
  return true;
}

bool loadAnsweringResult(SweepCell& cell, const SweepOptions& options) {
  cell.outdated.clear();
  const auto result = readCellResult(cell.dir);
  if (!result) return false;
  cell.outdated = resultShortfall(*result, options);
  if (!cell.outdated.empty()) return false;
  applyResult(cell, withTrainingSummary(cell, *result));
  return true;
}

std::vector<SeedGroup> summarizeSeeds(const std::vector<SweepAxis>& axes,
                                      const std::vector<SweepCell>& cells) {
  size_t seed_axis = axes.size();
  for (size_t a = 0; a < axes.size(); ++a)
    if (axes[a].key == "train.seed") seed_axis = a;
  if (seed_axis == axes.size()) return {};
  struct Sample {
    json seed;
    std::optional<double> knn, linear;
  };
  std::vector<SeedGroup> groups;
  std::vector<std::vector<Sample>> samples;  // the finished cells of each group
  for (const auto& cell : cells) {
    std::vector<json> key;
    for (size_t a = 0; a < cell.values.size(); ++a)
      if (a != seed_axis) key.push_back(cell.values[a]);
    size_t g = 0;
    while (g < groups.size() && groups[g].values != key) ++g;
    if (g == groups.size()) {
      groups.push_back(SeedGroup{key});
      samples.emplace_back();
    }
    if (cell.status != "done") continue;
    ++groups[g].done;
    samples[g].push_back({cell.values[seed_axis], cell.knn_top1, cell.linear_top1});
  }
  // Mean and sample standard deviation (n - 1) of the values present.
  auto stats = [](const std::vector<double>& x, double& mean, double& sd) {
    if (x.empty()) return;
    double sum = 0;
    for (double v : x) sum += v;
    mean = sum / static_cast<double>(x.size());
    if (x.size() < 2) return;
    double ss = 0;
    for (double v : x) ss += (v - mean) * (v - mean);
    sd = std::sqrt(ss / static_cast<double>(x.size() - 1));
  };
  using Field = std::optional<double> Sample::*;
  auto values = [](const std::vector<Sample>& group, Field field) {
    std::vector<double> x;
    for (const auto& s : group)
      if (s.*field) x.push_back(*(s.*field));
    return x;
  };
  // This group minus the first one, seed by seed, over the seeds both have finished.
  auto paired = [&](size_t g, Field field) {
    std::vector<double> d;
    for (const auto& s : samples[g])
      for (const auto& base : samples[0])
        if (base.seed == s.seed && s.*field && base.*field) d.push_back(*(s.*field) - *(base.*field));
    return d;
  };
  for (size_t g = 0; g < groups.size(); ++g) {
    auto& group = groups[g];
    stats(values(samples[g], &Sample::knn), group.knn_mean, group.knn_sd);
    stats(values(samples[g], &Sample::linear), group.linear_mean, group.linear_sd);
    if (g == 0) continue;
    for (const auto& s : samples[g])
      for (const auto& base : samples[0]) group.paired += base.seed == s.seed;
    stats(paired(g, &Sample::knn), group.knn_delta_mean, group.knn_delta_sd);
    stats(paired(g, &Sample::linear), group.linear_delta_mean, group.linear_delta_sd);
  }
  return groups;
}

namespace {

/// seeds.csv beside sweep.csv when the grid has a train.seed axis (else nothing).
void writeSeedSummary(const std::string& out_dir, const std::vector<SweepAxis>& axes,
                      const std::vector<SweepCell>& cells) {
  const auto groups = summarizeSeeds(axes, cells);
  if (groups.empty()) return;
  std::ostringstream csv;
  for (const auto& axis : axes)
    if (axis.key != "train.seed") csv << csvField(axis.key) << ",";
  csv << "seeds_done,knn_mean,knn_sd,linear_mean,linear_sd,paired_seeds,knn_delta_mean,"
         "knn_delta_sd,linear_delta_mean,linear_delta_sd\n";
  auto number = [&](double v) {
    if (!std::isnan(v)) csv << v;
  };
  for (const auto& g : groups) {
    for (const auto& v : g.values) csv << csvField(valueText(v)) << ",";
    csv << g.done << ",";
    number(g.knn_mean);
    csv << ",";
    number(g.knn_sd);
    csv << ",";
    number(g.linear_mean);
    csv << ",";
    number(g.linear_sd);
    csv << "," << g.paired;
    for (double v : {g.knn_delta_mean, g.knn_delta_sd, g.linear_delta_mean, g.linear_delta_sd}) {
      csv << ",";
      number(v);
    }
    csv << "\n";
  }
  writeTextAtomically((fs::path(out_dir) / "seeds.csv").string(), csv.str());
}

}  // namespace

void writeSweepTables(const std::string& out_dir, const std::vector<SweepAxis>& axes,
                      const std::vector<SweepCell>& cells) {
  fs::create_directories(out_dir);
  {
    std::ostringstream csv;
    csv << "cell";
    for (const auto& axis : axes) csv << "," << csvField(axis.key);
    csv << ",status";
    for (const auto& [key, field] : kResultColumns) csv << "," << key;
    csv << ",dir\n";
    for (const auto& c : cells) {
      csv << c.index;
      for (const auto& v : c.values) csv << "," << csvField(valueText(v));
      csv << "," << c.status;
      for (const auto& [key, field] : kResultColumns) {
        csv << ",";
        if (c.*field) csv << *(c.*field);
      }
      csv << "," << csvField(c.dir) << "\n";
    }
    writeTextAtomically((fs::path(out_dir) / "sweep.csv").string(), csv.str());
  }

  std::vector<TableColumn> columns;
  TableColumn index{"cell", false, {}, {}}, status{"status", true, {}, {}};
  std::vector<TableColumn> results;
  for (const auto& [key, field] : kResultColumns) {
    results.push_back(TableColumn{key, false, {}, {}});
    for (const auto& c : cells) results.back().numbers.push_back((c.*field).value_or(std::nan("")));
  }
  for (const auto& c : cells) {
    index.numbers.push_back(static_cast<double>(c.index));
    status.strings.push_back(c.status);
  }
  columns.push_back(index);
  json grid = json::array();
  for (size_t a = 0; a < axes.size(); ++a) {
    bool numeric = true;
    for (const auto& v : axes[a].values) numeric = numeric && v.is_number();
    TableColumn col{axes[a].key, !numeric, {}, {}};
    for (const auto& c : cells) {
      if (numeric)
        col.numbers.push_back(c.values[a].get<double>());
      else
        col.strings.push_back(valueText(c.values[a]));
    }
    columns.push_back(col);
    grid.push_back({{"key", axes[a].key}, {"values", axes[a].values}});
  }
  columns.push_back(status);
  columns.insert(columns.end(), results.begin(), results.end());
  writeTableFile((fs::path(out_dir) / "sweep.h5").string(), "sweep", columns,
                 json{{"grid", grid}}.dump());
  writeSeedSummary(out_dir, axes, cells);
}

std::vector<SweepCell> runSweep(const json& base, const std::vector<SweepAxis>& axes,
                                const SweepOptions& options, SweepObserver* observer,
                                const std::atomic<bool>* stop) {
  if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards)
    throw MstError("sweep: shard " + std::to_string(options.shard) + " of " +
                   std::to_string(options.shards) + " does not exist");
  auto cells = expandGrid(base, axes, options.out_dir);
  const auto tables_lock = (fs::path(options.out_dir) / ".tables.lock").string();
  {
    // Under the tables' lock, so that of two sweeps started at once on a new folder with
    // different grids, one records its grid and the other is refused.
    if (options.run_cells) fs::create_directories(options.out_dir);
    std::optional<ScopedFileLock> lock;
    if (fs::exists(options.out_dir)) lock.emplace(tables_lock);
    const auto record = checkSweepRecord(axes, options);
    checkStoredConfigs(base, axes, cells, options.out_dir);
    if (options.run_cells) {
      // A status pass records nothing: only a sweep that runs cells says what the folder is.
      SweepRecord asked{axes, options.max_steps, options.knn, options.linear};
      if (record) asked.knn |= record->knn, asked.linear |= record->linear;
      writeSweepRecord(options.out_dir, asked);
    }
  }
  fs::create_directories(options.out_dir);
  const auto owned = [&](const SweepCell& c) { return c.index % options.shards == options.shard; };
  std::mutex mutex;  // guards `cells`, `taken`, the tables and the observer
  // Cells this call has started (running, done, failed or stopped here): their state is ours; every
  // other cell is read from its folder, since other processes may be working on the same sweep.
  std::vector<bool> taken(cells.size(), false);
  const auto refresh = [&] {
    for (size_t i = 0; i < cells.size(); ++i)
      if (!taken[i] && cells[i].status != "done")  // done stays done
        loadCellStatus(cells[i], options);
  };
  // Whoever writes the tables last has read every folder after the others' writes.
  const auto publish = [&] {
    ScopedFileLock lock(tables_lock);
    refresh();
    writeSweepTables(options.out_dir, axes, cells);
  };
  publish();
  if (!options.run_cells) return cells;
  // Cells that had failed before this call are tried again (the cause may be fixed); one that
  // another sweep sees fail while this one runs is left failed.
  std::vector<bool> retry(cells.size(), false);
  for (size_t i = 0; i < cells.size(); ++i) retry[i] = cells[i].status == "failed";
  // The next cell of this shard that nobody has finished or holds, claimed; nullptr when none is
  // left. Under `mutex`.
  const auto claimNext = [&](std::unique_ptr<Claim>* claim) -> SweepCell* {
    refresh();
    for (size_t i = 0; i < cells.size(); ++i) {
      const bool free = cells[i].status == "pending" || (cells[i].status == "failed" && retry[i]);
      if (taken[i] || !owned(cells[i]) || !free) continue;
      fs::create_directories(cells[i].dir);
      *claim = Claim::tryTake(claimPath(cells[i]));
      if (!*claim) {
        cells[i].status = "running";  // another sweep took it in the meantime
        continue;
      }
      // Another sweep may have finished it between our look and our claim.
      if (auto result = readCellResult(cells[i].dir);
          result && resultShortfall(*result, options).empty()) {
        applyResult(cells[i], withTrainingSummary(cells[i], *result));
        claim->reset();
        continue;
      }
      taken[i] = true;
      return &cells[i];
    }
    return nullptr;
  };

  // An error outside a cell (a folder that cannot be written) ends every device's loop; the
  // first one is rethrown once all have stopped.
  std::atomic<bool> aborted{false};
  std::exception_ptr first_error;
  auto loop = [&](torch::Device device) {
    while (true) {
      SweepCell* cell = nullptr;
      std::unique_ptr<Claim> claim;  // released when this iteration ends, after result.json
      {
        std::lock_guard<std::mutex> lock(mutex);
        if ((stop && stop->load()) || aborted) return;
        cell = claimNext(&claim);
        if (!cell) return;
        cell->status = "running";
        publish();
        if (observer) observer->onCellStarted(*cell);
      }
      json result;
      try {
        Config c = configFromJson(cellJson(base, axes, cell->values),
                                  "sweep cell " + std::to_string(cell->index));
        const auto previous = readCellResult(cell->dir);
        std::string checkpoint = (fs::path(cell->dir) / "checkpoint.pt").string();
        if (previous && trainingShortfall(*previous, options).empty()) {
          result = *previous;  // trained far enough: only read-outs are missing
        } else {
          TrainerOptions to;
          to.out_dir = cell->dir;
          to.resume = true;  // a cell interrupted or cut at fewer steps continues where it stopped
          to.max_steps = options.max_steps;
          to.device = device;
          auto summary = Trainer(c, to).run(stop);
          if (summary.stopped) {
            claim.reset();  // free for the sweep that resumes it
            std::lock_guard<std::mutex> lock(mutex);
            cell->status = "pending";
            publish();
            return;
          }
          // The same steps as the result on disk (a result that did not say it was finished):
          // the same weights, so its read-outs stand; otherwise every read-out is redone.
          if (previous && integer(*previous, "steps") == summary.steps) result = *previous;
          result["cell"] = cell->index;
          result["grid"] = json::object();
          for (size_t a = 0; a < axes.size(); ++a) result["grid"][axes[a].key] = cell->values[a];
          result["steps"] = summary.steps;
          result["total_steps"] = summary.total_steps;
          if (summary.steps_run > 0 || !result.contains("loss")) result["loss"] = summary.loss;
          try {
            result.update(readTrainingSummary((fs::path(cell->dir) / "run.h5").string()));
          } catch (const MstError&) {
            // without its summary the cell still has its read-outs; loadCellResult retries the log
          }
          checkpoint = summary.checkpoint;
        }
        // What the cell was trained with, so that a later sweep can tell whether it answers it.
        result["config"] = configToJson(c);
        const bool knn = options.knn && !number(result, "knn_top1");
        const bool linear = options.linear && !number(result, "linear_top1");
        if (knn || linear) {
          if (!fs::exists(checkpoint))
            throw MstError("cell " + cell->dir + " has no checkpoint.pt to read out " +
                           (knn ? "k-NN" : "linear") + " top-1 from");
          auto engine = makeEvalEngine(c, checkpoint, device);
          EvalOptions eo = options.eval;
          eo.device = device;
          if (knn) result.update(evaluateKnn(*engine, c, FeatureKind::TeacherCls, eo));
          if (linear) {
            auto probe = evaluateLinear(*engine, c, FeatureKind::TeacherCls, eo);
            result["linear_top1"] = probe["linear_top1"];
            result["linear_train_top1"] = probe["linear_train_top1"];
          }
        }
        writeTextAtomically((fs::path(cell->dir) / "result.json").string(),
                            result.dump(2) + "\n");
        std::error_code ignored;
        fs::remove(failurePath(*cell), ignored);
        std::lock_guard<std::mutex> lock(mutex);
        applyResult(*cell, result);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex);
        cell->status = "failed";
        cell->error = e.what();
        try {  // so that other sweeps on the folder show it failed rather than retry it
          writeTextAtomically(failurePath(*cell), json{{"error", cell->error}}.dump() + "\n");
        } catch (const MstError&) {
        }
      }
      claim.reset();
      std::lock_guard<std::mutex> lock(mutex);
      publish();
      if (observer) observer->onCellFinished(*cell);
    }
  };
  auto work = [&](torch::Device device) {
    try {
      loop(device);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!first_error) first_error = std::current_exception();
      aborted = true;
    }
  };
  std::vector<std::thread> threads;
  for (size_t d = 1; d < options.devices.size(); ++d) threads.emplace_back(work, options.devices[d]);
  work(options.devices.empty() ? torch::Device(torch::kCPU) : options.devices.front());
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
  return cells;
}

}  // namespace mst
