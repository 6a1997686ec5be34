/// @brief Shared CLI pieces (see common.h).
#include "app/cli/common.h"

#include <cmath>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include "core/util/device_spec.h"
#include "core/util/devices.h"
#include "core/util/error.h"

namespace mst::cli {

std::atomic<bool> g_stop{false};

namespace {
std::atomic<bool> g_announce_stop{false};
}  // namespace

void installStopHandlers(bool announce) {
  // One announcement per run: ranks started by `mst train --ranks` get the same signal quietly.
  g_announce_stop = announce && std::getenv("MST_LOCAL_RANK_CHILD") == nullptr;
  // The first signal stops after the current step, with a checkpoint. A rank waiting for its
  // peers (a rendezvous, a hung collective) does not reach that point until its timeout, so a
  // second signal quits at once, without one (only async-signal-safe calls here).
  const auto handler = [](int) {
    if (g_stop.exchange(true)) {
      static const char quit[] = "\nmst: second stop request: quitting now, without a checkpoint\n";
      (void)!::write(STDERR_FILENO, quit, sizeof quit - 1);
      ::_exit(130);
    }
    static const char first[] =
        "\nmst: stopping after this step (a checkpoint follows); stop again to quit at once\n";
    if (g_announce_stop) (void)!::write(STDERR_FILENO, first, sizeof first - 1);
  };
  std::signal(SIGINT, handler);
  std::signal(SIGTERM, handler);
}

CLI::Validator integerAtLeast(int64_t lo) {
  return CLI::Validator(
      [lo](std::string& text) {
        int64_t v = 0;
        if (!CLI::detail::lexical_cast(text, v))
          return "expects an integer >= " + std::to_string(lo) + " (got '" + text + "')";
        if (v < lo) return "must be >= " + std::to_string(lo) + " (got " + text + ")";
        return std::string();
      },
      ">= " + std::to_string(lo));
}

CLI::Validator positiveNumber() {
  return CLI::Validator(
      [](std::string& text) {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v))
          return "expects a number > 0 (got '" + text + "')";
        if (!(v > 0)) return "must be > 0 (got " + text + ")";
        return std::string();
      },
      "> 0");
}

void Common::add(CLI::App* cmd) {
  cmd->add_option("--config", config_file, "Experiment JSON file");
  cmd->add_option("--set", overrides, "Override a config key: key.path=value (repeatable)");
  cmd->add_option("--device", device_spec, "cpu | cuda | cuda:N | cuda:0,1");
  cmd->add_option("--threads", threads, "CPU threads (overrides train.threads; 0 = all cores)")
      ->check(integerAtLeast(0))
      ->default_str("");  // unset: train.threads decides
}

nlohmann::json Common::experimentJson(const nlohmann::json& base, nlohmann::json* sweep) const {
  nlohmann::json j = base.is_object() ? base : nlohmann::json::object();
  if (!config_file.empty()) {
    auto file = loadJsonFile(config_file);
    if (!file.is_object()) throw MstError("config file " + config_file + " is not a JSON object");
    if (file.contains("sweep")) {
      if (sweep) *sweep = file["sweep"];
      file.erase("sweep");
    }
    j.merge_patch(file);
  }
  for (const auto& o : overrides) applyOverride(j, o);
  return j;
}

Config Common::config(const nlohmann::json& base) const {
  auto c = configFromJson(experimentJson(base), config_file.empty() ? "--set" : config_file);
  if (threads >= 0) c.train.threads = threads;
  return c;
}

std::vector<torch::Device> Common::devices() const {
  return parseDeviceSpec(device_spec, "--device");
}

torch::Device Common::device() const {
  auto all = devices();
  if (all.size() > 1)
    throw MstError("--device " + device_spec +
                   ": this command runs on one device (only `mst train` trains on several)");
  return all.front();
}

void Common::applyThreads(const Config& config) const {
  setComputeThreads(threads >= 0 ? threads : config.train.threads);
}

void checkOutputFile(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec))
    throw MstError(flag + " " + path + " is a folder; give a file name in it");
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  if (!fs::exists(parent, ec))
    throw MstError(flag + " " + path + ": folder " + parent.string() + " does not exist");
  if (!fs::is_directory(parent, ec))
    throw MstError(flag + " " + path + ": " + parent.string() + " is a file, not a folder");
}

void checkOutputFolder(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // The nearest part of the path that exists must be a folder (create_directories makes the rest).
  for (fs::path p(path); !p.empty(); p = p.parent_path()) {
    if (fs::exists(p, ec)) {
      if (!fs::is_directory(p, ec))
        throw MstError(flag + " " + path +
                       (p == fs::path(path) ? std::string() : ": " + p.string()) +
                       " is a file, not a folder");
      return;
    }
    if (p == p.parent_path()) return;
  }
}

void printResult(const nlohmann::json& result) { std::cout << result.dump() << std::endl; }

std::string clockText(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "--:--";
  auto s = static_cast<long>(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace mst::cli
