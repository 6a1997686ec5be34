/// @brief Pieces every `mst` command shares: common options, config resolution, devices, output.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/config/config.h"
#include "core/util/index_list.h"

namespace mst::cli {

/// Options every command takes (DESIGN.md "CLI").
struct Common {
  std::string config_file;
  std::vector<std::string> overrides;
  std::string device_spec = "cpu";
  int threads = -1;

  void add(CLI::App* cmd);
  /// The experiment JSON: `base` (e.g. a checkpoint's config) under the --config file under
  /// every --set; the sweep section, if any, is removed into `sweep` when given.
  nlohmann::json experimentJson(const nlohmann::json& base = nlohmann::json::object(),
                      nlohmann::json* sweep = nullptr) const;
  Config config(const nlohmann::json& base = nlohmann::json::object()) const;
  /// All devices named by --device (cuda:0,1 → two); MstError when CUDA is absent.
  std::vector<torch::Device> devices() const;
  /// The one device named by --device; MstError for a list (only `mst train` takes one).
  torch::Device device() const;
  /// Sets LibTorch's thread count: --threads, else the config's train.threads, 0 = all cores.
  void applyThreads(const Config& config) const;
};

/// A registered sub-command and what runs when it is chosen.
struct Command {
  CLI::App* app = nullptr;
  std::function<void()> run;
};

Command registerTrain(CLI::App& app);
Command registerEval(CLI::App& app);
Command registerSweep(CLI::App& app);
Command registerInspect(CLI::App& app);
Command registerBench(CLI::App& app);
Command registerDoctor(CLI::App& app);
Command registerGpuCheck(CLI::App& app);
Command registerConfig(CLI::App& app);
Command registerLog(CLI::App& app);
Command registerExport(CLI::App& app);

/// CLI11 checks of numeric flags, run before the command: "--batch: must be an integer >= 1 (got
/// 0)". Each is one line, which main() prefixes with "mst: error:".
CLI::Validator integerAtLeast(int64_t lo);
CLI::Validator positiveNumber();

/// Checks an output path given by `flag` before any work, so that a typo costs nothing:
/// MstError "--out runs/a: ... " when `path` is a folder or its folder is missing or a file.
void checkOutputFile(const std::string& flag, const std::string& path);
/// The same for an output folder (created by the command): MstError when `path` or a folder
/// above it is a file.
void checkOutputFolder(const std::string& flag, const std::string& path);

/// The final JSON line on stdout.
void printResult(const nlohmann::json& result);
/// "1:02:03" / "02:03" for an ETA.
std::string clockText(double seconds);
/// Set by SIGINT/SIGTERM: commands stop between steps and save.
extern std::atomic<bool> g_stop;
/// SIGINT/SIGTERM set g_stop; a second one quits at once (exit 130, no checkpoint). `announce`:
/// say so on stderr at the first (training commands).
void installStopHandlers(bool announce = false);

}  // namespace mst::cli
