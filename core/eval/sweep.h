/// @brief Grid sweeps over config keys (Tables 4 and 5): one run per cell, k-NN / linear read-outs.
#pragma once

#include <atomic>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/eval/evaluate.h"

namespace mst {

struct SweepAxis {
  std::string key;                    ///< a config key, e.g. masking.p
  std::vector<nlohmann::json> values;
  /// Where the axis was given, for error messages: "--grid", or "FILE: sweep.grid".
  std::string source = "--grid";
};

struct SweepCell {
  int64_t index = 0;
  std::vector<nlohmann::json> values;  ///< one per axis
  std::string dir;                     ///< the cell's run folder
  std::string status = "pending";      ///< pending | running | done | failed
  std::optional<double> knn_top1, linear_top1;
  /// From the cell's run log (see readTrainingSummary): the mean masked share of the global
  /// crops' patches, and L_CE and L_rec at the end of training.
  std::optional<double> mask_ratio, loss_ce_end, loss_rec_end;
  std::string error;
  /// Why the result in the cell's folder does not answer this sweep (fewer steps than it asks
  /// for, a read-out it lacks); the cell is then pending, not done. Empty otherwise.
  std::string outdated;
};

struct SweepOptions {
  std::string out_dir;
  int64_t max_steps = 0;  ///< cut each cell's training at N steps; 0 = the full schedule
  bool knn = true, linear = true;
  std::vector<torch::Device> devices{torch::kCPU};  ///< one cell at a time per device
  /// This call runs only the cells whose index % shards == shard (a fixed split). Without it,
  /// sweeps of the same grid started on the same folder (processes on one machine, or machines
  /// sharing the folder) already share the cells: each claims the next free one (runSweep).
  int64_t shard = 0, shards = 1;
  /// false: run nothing, only read the folders and rewrite the tables (`mst sweep --status`).
  bool run_cells = true;
  EvalOptions eval;
};

/// Parses "I/N" (0 <= I < N); MstError naming --shard otherwise.
std::pair<int64_t, int64_t> parseShard(const std::string& spec);

/// Parses "key=v1,v2,..." (values as JSON, else strings); MstError naming the key on bad input.
SweepAxis parseAxis(const std::string& spec);

/// Parses a read-out list ("knn", "linear", "knn,linear") into options.knn / options.linear;
/// MstError naming `where` (the flag, or "FILE: sweep.readout") otherwise.
void parseReadouts(const std::string& text, const std::string& where, SweepOptions& options);

/// The `sweep` object of an experiment file (docs/config.md, "The sweep object").
struct SweepFile {
  std::vector<SweepAxis> axes;  ///< sweep.grid in the file's key order (first key = rows); empty
                                ///< when the file has no grid
  std::optional<int64_t> max_steps;
  std::optional<std::string> readout;
};
/// Reads the `sweep` object of the experiment file `path`, keeping the grid's keys in the file's
/// order (nlohmann::json would sort them). Unknown keys (other than "_comment"-style ones), an
/// empty or malformed grid, a grid key that is no config key, a bad readout or max_steps are
/// MstErrors naming the file and the key. An absent object gives an empty SweepFile.
SweepFile readSweepFile(const std::string& path);

/// Markdown table of the keys of the `sweep` object (`mst sweep --keys`, docs/config.md).
std::string sweepKeysMarkdown();
/// The paper's Table 5 grid, rows masking.num ∈ {1, 2, 4, 8} × columns masking.p ∈ {0.05, 0.1,
/// 0.15} (as experiments/table5_p_num.json and the workbench's default grid).
std::vector<SweepAxis> defaultGrid();
/// Cartesian product, the last axis varying fastest; every cell's config is validated first
/// (errors name the axis's source: an unknown key, an axis without values, a bad cell).
std::vector<SweepCell> expandGrid(const nlohmann::json& base, const std::vector<SweepAxis>& axes,
                                  const std::string& out_dir);

class SweepObserver {
 public:
  virtual ~SweepObserver() = default;
  virtual void onCellStarted(const SweepCell&) {}
  virtual void onCellFinished(const SweepCell&) {}
};

/// Runs every cell of this shard that is neither done nor held by another sweep, rewriting
/// out_dir/sweep.csv and out_dir/sweep.h5 after each. Before a cell starts it is claimed (Claim,
/// the file `claim` in its folder, released when it ends), so any number of sweeps of the same
/// grid on one folder, in one process or many, on one machine or several, split the cells between
/// them, and a late one joins in; a cell whose holder died is taken over and resumes from its
/// checkpoint. Cells this call does not run are read from their folders each time (done with
/// results, running while claimed, failed, or pending). A failing cell is recorded (failed.json
/// in its folder, so other sweeps do not retry it) and the sweep goes on; a later sweep tries it
/// again. Returns the cells with their results.
///
/// A cell is done for this call when its result.json answers it (resultShortfall): trained at
/// least min(max_steps, the full schedule) steps (or the full schedule when max_steps is 0) and
/// holding every read-out asked for. A cell trained fewer steps continues from its checkpoint
/// and is read out again; a cell trained enough but lacking a read-out gets it from its
/// checkpoint, keeping the read-outs it has. A status pass (run_cells false) applies the same rule.
///
/// Before anything is written, every cell with a result or a checkpoint is compared with the
/// config this call would give it (the stored one from result.json, else run.h5, else the
/// checkpoint): a difference in a key that changes the trajectory (config_diff.h) is an MstError
/// naming the sweep folder, the first such cell and the changed keys, and nothing runs. So is a
/// sweep that does not answer the folder's record, out_dir/sweep.json (checkSweepRecord: another
/// grid, fewer steps, or for a status pass another step cap). A sweep that runs cells then
/// records its grid, max_steps and read-outs (with those asked before) there; a status pass
/// records nothing.
std::vector<SweepCell> runSweep(const nlohmann::json& base, const std::vector<SweepAxis>& axes,
                                const SweepOptions& options, SweepObserver* observer = nullptr,
                                const std::atomic<bool>* stop = nullptr);

/// Writes sweep.csv (one row per cell: index, grid values, status, knn_top1, linear_top1,
/// mask_ratio, loss_ce_end, loss_rec_end, dir; an unknown value is an empty field) and
/// sweep.h5 (/sweep/<column> datasets, /sweep attribute json with the grid); with a train.seed
/// axis also seeds.csv (summarizeSeeds: one row per setting, n, mean and sd of each read-out,
/// and the paired difference to the first setting: paired_seeds, knn_delta_mean/_sd,
/// linear_delta_mean/_sd).
void writeSweepTables(const std::string& out_dir, const std::vector<SweepAxis>& axes,
                      const std::vector<SweepCell>& cells);

/// One row of the seed summary: the cells that differ only in train.seed.
struct SeedGroup {
  std::vector<nlohmann::json> values;  ///< one per axis other than train.seed
  int64_t done = 0;                    ///< finished cells in the group (seeds with a result)
  double knn_mean = NAN, knn_sd = NAN, linear_mean = NAN, linear_sd = NAN;  ///< sd: n - 1
  /// This setting minus the grid's first setting (the baseline: "none" in Table 4), paired by
  /// seed over the seeds both have finished; `paired` counts them. Seeds move every setting
  /// alike (the probe's initialisation and shuffling follow train.seed), so a paired difference
  /// is far less noisy than the difference of two means. NaN / 0 on the first setting itself.
  int64_t paired = 0;
  double knn_delta_mean = NAN, knn_delta_sd = NAN, linear_delta_mean = NAN,
         linear_delta_sd = NAN;
};

/// Groups the cells of a grid that has a train.seed axis by the other axes' values (in grid
/// order) with the mean and sample standard deviation of each read-out over the finished seeds,
/// and its paired difference to the first setting. Empty when the grid has no train.seed axis.
std::vector<SeedGroup> summarizeSeeds(const std::vector<SweepAxis>& axes,
                                      const std::vector<SweepCell>& cells);

/// Reads a finished cell's result.json, if any. Besides the read-outs and the training summary it
/// holds `steps`, `total_steps` (the full schedule's) and `config`, the cell's config.
std::optional<nlohmann::json> readCellResult(const std::string& dir);

/// Why `result` (a cell's result.json) does not answer a sweep run with `options` ("trained 3 of
/// 6 steps", "no linear read-out"; see runSweep); empty when it does.
std::string resultShortfall(const nlohmann::json& result, const SweepOptions& options);

/// The config a cell was trained with, from the cheapest source its folder has: result.json's
/// `config`, run.h5's /config (rewritten by every run that resumes the cell), else the
/// checkpoint's meta record. nullopt when none of them can be read.
std::optional<nlohmann::json> storedCellConfig(const std::string& dir);

/// What a run log says about how a cell trained, for reading a mask grid: `mask_ratio`, the mean
/// over every logged step of the share of global-crop patches the student saw masked, and
/// `loss_ce_end` / `loss_rec_end`, the mean L_CE and L_rec over the last tenth of the logged steps
/// (at least one). Keys whose metric the log lacks are left out; MstError naming the file when
/// it cannot be read.
nlohmann::json readTrainingSummary(const std::string& run_h5);

/// Fills a cell from its folder when it has a result (result.json), whatever the sweep asks for
/// (a view of the folder; runSweep also checks the result against its request): status "done",
/// the read-outs, and the training summary (from result.json, or from run.h5 for results written
/// before the summary was part of them). Returns false, leaving the cell as it was, otherwise.
bool loadCellResult(SweepCell& cell);

/// The same for a result that answers a sweep run with `options` (resultShortfall is empty):
/// otherwise `cell.outdated` says why, the cell is left without numbers and false is returned.
bool loadAnsweringResult(SweepCell& cell, const SweepOptions& options);

}  // namespace mst
