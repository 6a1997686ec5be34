/// @brief `mst sweep`: one run per grid cell, k-NN and linear top-1 per cell, resumable.
#include <fstream>
#include <iostream>
#include <tuple>

#include "app/cli/common.h"
#include "core/eval/sweep.h"
#include "core/eval/sweep_record.h"
#include "core/util/error.h"

namespace mst::cli {
namespace {

class SweepPrinter : public SweepObserver {
 public:
  explicit SweepPrinter(size_t cells) : cells_(cells) {}
  void onCellStarted(const SweepCell& c) override {
    std::cerr << "sweep: cell " << c.index + 1 << "/" << cells_ << " " << c.dir;
    if (!c.outdated.empty()) std::cerr << " (its result: " << c.outdated << ")";
    std::cerr << "\n";
  }
  void onCellFinished(const SweepCell& c) override {
    std::cerr << "sweep: cell " << c.index + 1 << "/" << cells_ << " " << c.status;
    if (c.knn_top1) std::cerr << " knn_top1 " << *c.knn_top1;
    if (c.linear_top1) std::cerr << " linear_top1 " << *c.linear_top1;
    if (!c.error.empty()) std::cerr << " error: " << c.error;
    std::cerr << "\n";
  }

 private:
  size_t cells_;
};

}  // namespace

Command registerSweep(CLI::App& app) {
  struct Options {
    Common common;
    std::vector<std::string> grid;
    std::string out;
    int64_t max_steps = -1;  ///< -1: not given (the file's sweep.max_steps, else 0)
    CLI::Option* max_steps_option = nullptr;
    std::string readout, shard;
    bool status = false, keys = false;
    int64_t train_limit = 0, test_limit = 0, probe_epochs = 100;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "sweep",
      "Grid of runs (default: Table 5, rows masking.num x columns masking.p) with read-outs per "
      "cell. Flags left out take the folder's sweep.json (what its cells were run with), then "
      "the file's sweep object");
  o->common.add(cmd);
  cmd->add_option("--grid", o->grid,
                  "key=v1,v2,... (repeatable; overrides the file's sweep.grid; must match the "
                  "folder's sweep.json once a sweep has run there)");
  // Required unless --keys (checked below).
  cmd->add_option("--out", o->out, "Sweep folder: one run folder per cell, sweep.csv, sweep.h5");
  o->max_steps_option = cmd->add_option("--max-steps", o->max_steps,
                  "Cut each cell's training at N steps (a rerun asking for more continues them; "
                  "fewer than the folder's sweep.json is refused)")
      ->default_str("");  // unset: the file's sweep.max_steps, else the full schedule
  cmd->add_option("--readout", o->readout, "knn, linear or knn,linear (default both)");
  cmd->add_option("--train-limit", o->train_limit, "Training images in the read-outs (0 = all)");
  cmd->add_option("--test-limit", o->test_limit, "Test images in the read-outs (0 = all)");
  cmd->add_option("--probe-epochs", o->probe_epochs, "Linear-probe epochs");
  cmd->add_flag("--keys", o->keys, "Markdown table of the keys of a config file's sweep object");
  cmd->add_flag("--status", o->status,
                "Run nothing: read every cell's folder, rewrite the tables and print sweep.csv on "
                "stdout before the JSON line (done, running while claimed, pending); safe beside "
                "running sweeps");
  cmd->add_option("--shard", o->shard,
                  "I/N: run only the cells whose index % N == I (a fixed split). Without it, "
                  "sweeps started with the same grid and --out already share the cells: each "
                  "claims the next free one");
  return {cmd, [o] {
            if (o->keys) {
              std::cout << sweepKeysMarkdown();
              return;
            }
            if (o->out.empty()) throw MstError("sweep: --out is required (the sweep folder)");
            if (o->max_steps_option->count() > 0 && o->max_steps < 0)
              throw MstError("--max-steps must be >= 0 (0 = the full schedule), got " +
                             std::to_string(o->max_steps));
            // experimentJson drops the file's sweep object; readSweepFile reads it again in the
            // file's key order (the first grid key gives the rows) and checks it.
            auto base = o->common.experimentJson();
            SweepFile file;
            if (!o->common.config_file.empty()) file = readSweepFile(o->common.config_file);
            // What is not given takes the folder's record (sweep.json: what its cells were run
            // with), then the file's sweep object, then the defaults; runSweep refuses flags that
            // do not answer the record.
            const auto record = readSweepRecord(o->out);
            std::vector<SweepAxis> axes;
            for (const auto& spec : o->grid) axes.push_back(parseAxis(spec));
            if (axes.empty() && record) {
              axes = record->axes;
              if (!file.axes.empty() && !sameGrid(file.axes, record->axes))
                std::cerr << "sweep: " << o->out << " keeps the grid of its sweep.json ("
                          << gridFlags(record->axes) << "), not " << o->common.config_file
                          << "'s sweep.grid\n";
            }
            // A folder from before sweep.json keeps the grid its sweep.h5 shows rather than take
            // the file's or the default (the order names the cells' folders: another order would
            // see none of them).
            if (axes.empty() && !record) {
              if (auto table = readSweepTableGrid(o->out)) {
                axes = *table;
                if (!file.axes.empty() && !sameGrid(file.axes, *table))
                  std::cerr << "sweep: " << o->out << " keeps the grid of its sweep.h5 ("
                            << gridFlags(*table) << "), not " << o->common.config_file
                            << "'s sweep.grid\n";
              }
            }
            if (axes.empty()) axes = file.axes;
            if (axes.empty()) axes = defaultGrid();
            auto config = configFromJson(base, o->common.config_file.empty() ? "--set"
                                                                              : o->common.config_file);
            if (o->common.threads >= 0) config.train.threads = o->common.threads;
            o->common.applyThreads(config);
            SweepOptions so;
            so.out_dir = o->out;
            so.max_steps = o->max_steps >= 0 ? o->max_steps
                           : record          ? record->max_steps
                                             : file.max_steps.value_or(0);
            if (!o->readout.empty())
              parseReadouts(o->readout, "--readout", so);
            else if (record)
              so.knn = record->knn, so.linear = record->linear;
            else if (file.readout)
              parseReadouts(*file.readout, o->common.config_file + ": sweep.readout", so);
            so.devices = o->common.devices();
            if (!o->shard.empty()) std::tie(so.shard, so.shards) = parseShard(o->shard);
            so.eval.ks = {config.eval.k};
            so.eval.temperature = config.eval.temperature;
            so.eval.train_limit = o->train_limit;
            so.eval.test_limit = o->test_limit;
            so.eval.linear.epochs = o->probe_epochs;
            so.eval.linear.seed = static_cast<uint64_t>(config.train.seed);
            installStopHandlers(/*announce=*/true);
            so.run_cells = !o->status;
            SweepPrinter printer(expandGrid(base, axes, o->out).size());
            auto cells = runSweep(base, axes, so, &printer, &g_stop);
            // The table before the final JSON line (DESIGN.md: the last line on stdout is JSON;
            // `mst log` prints its CSV on stdout the same way).
            if (o->status) {
              std::ifstream csv(o->out + "/sweep.csv");
              std::cout << csv.rdbuf() << std::flush;
            }
            for (const auto& c : cells)
              if (!c.outdated.empty() && c.status != "done")
                std::cerr << "sweep: cell " << c.index + 1 << "/" << cells.size() << " "
                          << c.status << ", its result does not answer this sweep: "
                          << c.outdated << "\n";
            nlohmann::json out{{"cells", cells.size()},
                               {"csv", o->out + "/sweep.csv"},
                               {"h5", o->out + "/sweep.h5"}};
            int64_t done = 0, failed = 0, running = 0;
            for (const auto& c : cells) {
              done += c.status == "done";
              failed += c.status == "failed";
              running += c.status == "running";
            }
            out["done"] = done;
            out["failed"] = failed;
            out["running"] = running;
            out["pending"] = static_cast<int64_t>(cells.size()) - done - failed - running;
            if (!summarizeSeeds(axes, cells).empty()) out["seeds_csv"] = o->out + "/seeds.csv";
            printResult(out);
            if (failed > 0) throw MstError(std::to_string(failed) + " sweep cells failed: see " +
                                           o->out + "/sweep.csv");
          }};
}

}  // namespace mst::cli
