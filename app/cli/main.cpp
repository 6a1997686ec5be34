/// @brief `mst`: the headless command line over the same engine as the workbench.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/bench/bench.h"
#include "core/config/config.h"
#include "core/train/trainer.h"
#include "core/util/error.h"

namespace {

using json = nlohmann::json;

/// Options every command shares (DESIGN.md "CLI").
struct Common {
  std::string config_file;
  std::vector<std::string> overrides;
  std::string device = "cpu";
  int threads = -1;

  void add(CLI::App* cmd) {
    cmd->add_option("--config", config_file, "Experiment JSON file");
    cmd->add_option("--set", overrides, "Override a config key: key.path=value (repeatable)");
    cmd->add_option("--device", device, "cpu | cuda | cuda:N");
    cmd->add_option("--threads", threads, "CPU threads (overrides train.threads; 0 = all cores)");
  }

  mst::Config config() const {
    json j = config_file.empty() ? json::object() : mst::loadJsonFile(config_file);
    for (const auto& o : overrides) mst::applyOverride(j, o);
    auto c = mst::configFromJson(j, config_file.empty() ? "--set" : config_file);
    if (threads >= 0) c.train.threads = threads;
    return c;
  }

  torch::Device torchDevice() const {
    if (device == "cpu") return torch::kCPU;
    if (device.rfind("cuda", 0) == 0) {
      if (!torch::cuda::is_available())
        throw mst::MstError("--device " + device + ": this LibTorch build sees no CUDA device");
      if (device.find(',') != std::string::npos)
        throw mst::MstError("--device " + device +
                            ": several GPUs need data-parallel training, not available yet");
      return torch::Device(device);
    }
    throw mst::MstError("--device must be cpu, cuda or cuda:N (got '" + device + "')");
  }
};

void setThreads(int threads) {
  int n = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(n, 1));
}

std::string clock(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "--:--";
  auto s = static_cast<int64_t>(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", static_cast<long>(s / 3600),
                  static_cast<long>(s / 60 % 60), static_cast<long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", static_cast<long>(s / 60), static_cast<long>(s % 60));
  return buf;
}

/// Progress bar on stderr: redrawn in place on a terminal, a line every 10 s otherwise.
class ProgressPrinter : public mst::TrainObserver {
 public:
  ProgressPrinter() : tty_(isatty(STDERR_FILENO) != 0) {}
  void onStart(const mst::TrainProgress& p) override { first_ = p.step; }
  void onMessage(const std::string& text) override { std::cerr << "\n" << text << "\n"; }
  void onProgress(const mst::TrainProgress& p) override {
    auto now = std::chrono::steady_clock::now();
    bool last = p.step >= p.target_steps;
    if (!last && now - printed_ < std::chrono::milliseconds(tty_ ? 200 : 10000)) return;
    printed_ = now;
    const int width = 30;
    double frac = p.target_steps > 0 ? static_cast<double>(p.step) / p.target_steps : 1.0;
    int fill = static_cast<int>(frac * width);
    std::string bar(fill, '=');
    if (fill < width) bar += '>' + std::string(width - fill - 1, ' ');
    char line[256];
    std::snprintf(line, sizeof line,
                  "[%s] %3.0f%% step %ld/%ld ep %.2f loss %.4f (ce %.4f rec %.4f) %.1f img/s ETA %s",
                  bar.c_str(), 100 * frac, static_cast<long>(p.step),
                  static_cast<long>(p.target_steps), p.epoch, p.loss, p.loss_ce, p.loss_rec,
                  p.img_s, clock(p.eta_s).c_str());
    std::cerr << (tty_ ? "\r" : "") << line << (tty_ ? "" : "\n") << std::flush;
    if (last && tty_) std::cerr << "\n";
  }

 private:
  bool tty_;
  int64_t first_ = 0;
  std::chrono::steady_clock::time_point printed_{};
};

std::atomic<bool> g_stop{false};

int run(int argc, char** argv) {
  CLI::App app{"MST Workbench command line: train, benchmark and inspect MST models"};
  app.require_subcommand(1);

  Common train_common;
  std::string out_dir;
  int64_t max_steps = 0;
  bool resume = false;
  auto* train = app.add_subcommand("train", "Pre-train MST; writes DIR/run.h5 and DIR/checkpoint.pt");
  train_common.add(train);
  train->add_option("--out", out_dir, "Run folder")->required();
  train->add_option("--max-steps", max_steps, "Stop with a checkpoint once N steps are done");
  train->add_flag("--resume", resume, "Continue from DIR/checkpoint.pt");

  Common bench_common;
  mst::BenchOptions bench_opts;
  bool synthetic = true;
  auto* bench = app.add_subcommand("bench", "Training-step throughput on synthetic images");
  bench_common.add(bench);
  bench->add_option("--batch", bench_opts.batch, "Images per step");
  bench->add_option("--steps", bench_opts.steps, "Timed steps (after warm-up)");
  bench->add_option("--warmup", bench_opts.warmup, "Untimed warm-up steps");
  bench->add_flag("--synthetic", synthetic, "Synthetic images (the only source for now)");

  Common doctor_common;
  auto* doctor = app.add_subcommand("doctor", "LibTorch, BLAS, threads, CUDA, HDF5, OpenCV");
  doctor_common.add(doctor);

  Common config_common;
  bool keys = false;
  auto* config = app.add_subcommand("config", "Print the resolved config, or every key (--keys)");
  config_common.add(config);
  config->add_flag("--keys", keys, "Markdown table of every key, its default and meaning");

  CLI11_PARSE(app, argc, argv);

  if (*train) {
    auto cfg = train_common.config();
    setThreads(cfg.train.threads);
    mst::TrainerOptions to;
    to.out_dir = out_dir;
    to.resume = resume;
    to.max_steps = max_steps;
    to.device = train_common.torchDevice();
    ProgressPrinter printer;
    std::signal(SIGINT, [](int) { g_stop = true; });
    std::signal(SIGTERM, [](int) { g_stop = true; });
    mst::Trainer trainer(cfg, to, &printer);
    auto s = trainer.run(&g_stop);
    json out{{"steps", s.steps},        {"total_steps", s.total_steps}, {"epoch", s.epoch},
             {"loss", s.loss},          {"loss_ce", s.loss_ce},         {"loss_rec", s.loss_rec},
             {"img_s", s.img_s},        {"finished", s.finished},       {"stopped", s.stopped},
             {"corrupt_images", s.corrupt_images}, {"checkpoint", s.checkpoint}, {"log", s.log}};
    std::cout << out.dump() << std::endl;
  } else if (*bench) {
    auto cfg = bench_common.config();
    setThreads(cfg.train.threads);
    bench_opts.device = bench_common.torchDevice();
    std::cout << mst::runBench(cfg, bench_opts).dump() << std::endl;
  } else if (*doctor) {
    setThreads(doctor_common.threads >= 0 ? doctor_common.threads : 0);
    auto info = mst::systemInfo();
    for (auto it = info.begin(); it != info.end(); ++it)
      std::cerr << it.key() << ": " << (it->is_string() ? it->get<std::string>() : it->dump())
                << "\n";
    if (!info["blas_is_openblas"].get<bool>())
      std::cerr << "warning: BLAS is not OpenBLAS; install libopenblas0-openmp (12x faster)\n";
    std::cout << info.dump() << std::endl;
  } else if (*config) {
    if (keys) {
      std::cout << mst::configKeysMarkdown();
    } else {
      std::cout << mst::configToJson(config_common.config()).dump(2) << std::endl;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const mst::MstError& e) {
    std::cerr << "\nmst: error: " << e.what() << std::endl;
  } catch (const c10::Error& e) {
    std::cerr << "\nmst: error: " << e.what_without_backtrace() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "\nmst: error: " << e.what() << std::endl;
  }
  return 1;
}
