/// @brief `mst train`: pre-train with a progress bar; DIR/run.h5 + DIR/checkpoint.pt.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "app/cli/common.h"
#include "core/train/trainer.h"

namespace mst::cli {
namespace {

/// Progress bar on stderr: redrawn in place on a terminal, one line every 10 s otherwise.
class ProgressPrinter : public TrainObserver {
 public:
  ProgressPrinter() : tty_(isatty(STDERR_FILENO) != 0) {}
  void onMessage(const std::string& text) override { std::cerr << (tty_ ? "\n" : "") << text << "\n"; }
  void onEval(int64_t step, double epoch, const std::map<std::string, double>& values) override {
    char line[128];
    std::snprintf(line, sizeof line, "k-NN top-1 at step %ld (epoch %.2f): %.2f%%",
                  static_cast<long>(step), epoch, values.at("knn_top1"));
    std::cerr << (tty_ ? "\n" : "") << line << "\n";
  }
  void onProgress(const TrainProgress& p) override {
    auto now = std::chrono::steady_clock::now();
    const bool last = p.step >= p.target_steps;
    if (!last && now - printed_ < std::chrono::milliseconds(tty_ ? 200 : 10000)) return;
    printed_ = now;
    const int width = 30;
    const double frac = p.target_steps > 0 ? static_cast<double>(p.step) / p.target_steps : 1.0;
    const int fill = static_cast<int>(frac * width);
    std::string bar(fill, '=');
    if (fill < width) bar += '>' + std::string(width - fill - 1, ' ');
    char line[256];
    std::snprintf(line, sizeof line,
                  "[%s] %3.0f%% step %ld/%ld ep %.2f loss %.4f (ce %.4f rec %.4f) %.1f img/s ETA %s",
                  bar.c_str(), 100 * frac, static_cast<long>(p.step),
                  static_cast<long>(p.target_steps), p.epoch, p.loss, p.loss_ce, p.loss_rec,
                  p.img_s, clockText(p.eta_s).c_str());
    std::cerr << (tty_ ? "\r" : "") << line << (tty_ ? "" : "\n") << std::flush;
    if (last && tty_) std::cerr << "\n";
  }

 private:
  bool tty_;
  std::chrono::steady_clock::time_point printed_{};
};

}  // namespace

Command registerTrain(CLI::App& app) {
  struct Options {
    Common common;
    std::string out;
    int64_t max_steps = 0;
    bool resume = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("train", "Pre-train MST: DIR/run.h5 (log) and DIR/checkpoint.pt");
  o->common.add(cmd);
  cmd->add_option("--out", o->out, "Run folder")->required();
  cmd->add_option("--max-steps", o->max_steps, "Stop with a checkpoint once N steps are done");
  cmd->add_flag("--resume", o->resume, "Continue exactly from DIR/checkpoint.pt");
  return {cmd, [o] {
            auto config = o->common.config();
            o->common.applyThreads(config);
            TrainerOptions to;
            to.out_dir = o->out;
            to.resume = o->resume;
            to.max_steps = o->max_steps;
            to.device = o->common.device();
            ProgressPrinter printer;
            installStopHandlers();
            auto s = Trainer(config, to, &printer).run(&g_stop);
            printResult({{"steps", s.steps}, {"total_steps", s.total_steps}, {"epoch", s.epoch},
                         {"loss", s.loss}, {"loss_ce", s.loss_ce}, {"loss_rec", s.loss_rec},
                         {"img_s", s.img_s}, {"finished", s.finished}, {"stopped", s.stopped},
                         {"corrupt_images", s.corrupt_images}, {"checkpoint", s.checkpoint},
                         {"log", s.log}});
          }};
}

}  // namespace mst::cli
