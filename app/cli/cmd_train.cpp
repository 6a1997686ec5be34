/// @brief `mst train`: pre-train with a progress bar; DIR/run.h5 + DIR/checkpoint.pt; one rank of
/// a data-parallel run (torchrun/SLURM environment) or the launcher of one rank per local device.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "app/cli/common.h"
#include "core/dist/dist_context.h"
#include "core/eval/evaluate.h"
#include "core/train/trainer.h"
#include "core/util/devices.h"
#include "core/util/error.h"

extern char** environ;

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
    char losses[96] = "loss --";  // until the first logged step
    if (p.has_loss)
      std::snprintf(losses, sizeof losses, "loss %.4f (ce %.4f rec %.4f)", p.loss, p.loss_ce,
                    p.loss_rec);
    char line[256];
    std::snprintf(line, sizeof line, "[%s] %3.0f%% step %ld/%ld ep %.2f %s %.1f img/s ETA %s",
                  bar.c_str(), 100 * frac, static_cast<long>(p.step),
                  static_cast<long>(p.target_steps), p.epoch, losses, p.img_s,
                  clockText(p.eta_s).c_str());
    std::cerr << (tty_ ? "\r" : "") << line << (tty_ ? "" : "\n") << std::flush;
    if (last && tty_) std::cerr << "\n";
  }

 private:
  bool tty_;
  std::chrono::steady_clock::time_point printed_{};
};

/// This process's own argv, for starting more ranks of the same command.
std::vector<std::string> ownCommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  if (args.empty()) throw MstError("cannot read this process's command line to start more ranks");
  return args;
}

/// Ranks 1..world-1 of a one-machine run as child processes running this same command with the
/// torchrun variables set; this process is rank 0. Children are killed if rank 0 fails.
class LocalRanks {
 public:
  LocalRanks(int world, int port) {
    const auto args = ownCommandLine();
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const char* ours[] = {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=",
                          "MASTER_ADDR=", "MASTER_PORT=", "MST_LOCAL_RANK_CHILD="};
    std::vector<std::string> base;
    for (char** e = environ; *e; ++e) {
      bool replaced = false;
      for (const char* o : ours) replaced |= std::strncmp(*e, o, std::strlen(o)) == 0;
      if (!replaced) base.emplace_back(*e);
    }
    for (int rank = 1; rank < world; ++rank) {
      std::vector<std::string> env = base;
      for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
               {"RANK", std::to_string(rank)},
               {"WORLD_SIZE", std::to_string(world)},
               {"LOCAL_RANK", std::to_string(rank)},
               {"LOCAL_WORLD_SIZE", std::to_string(world)},
               {"MASTER_ADDR", "127.0.0.1"},
               {"MASTER_PORT", std::to_string(port)},
               {"MST_LOCAL_RANK_CHILD", "1"}})
        env.push_back(k + "=" + v);
      std::vector<char*> envp;
      for (auto& e : env) envp.push_back(e.data());
      envp.push_back(nullptr);
      pid_t pid = 0;
      // posix_spawn, not fork: LibTorch's threads make anything but exec unsafe in a fork child.
      if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) != 0) {
        killAll();
        throw MstError("cannot start data-parallel rank " + std::to_string(rank));
      }
      pids_.push_back(pid);
    }
  }
  ~LocalRanks() { killAll(); }

  /// After rank 0 succeeded: every child's exit; MstError naming the first that failed.
  void join() {
    std::string failed;
    for (size_t i = 0; i < pids_.size(); ++i) {
      int status = 0;
      if (waitpid(pids_[i], &status, 0) < 0) continue;
      if ((!WIFEXITED(status) || WEXITSTATUS(status) != 0) && failed.empty())
        failed = "data-parallel rank " + std::to_string(i + 1) + " failed (" +
                 (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                      : "exit status " + std::to_string(WEXITSTATUS(status))) +
                 ")";
    }
    pids_.clear();
    if (!failed.empty()) throw MstError(failed);
  }

 private:
  void killAll() {
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);
    for (pid_t pid : pids_) waitpid(pid, nullptr, 0);
    pids_.clear();
  }
  std::vector<pid_t> pids_;
};

}  // namespace

Command registerTrain(CLI::App& app) {
  struct Options {
    Common common;
    std::string out;
    int64_t max_steps = 0;
    bool resume = false;
    bool allow_config_change = false;
    double dist_timeout = 600;
    int ranks = 0;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("train", "Pre-train MST: DIR/run.h5 (log) and DIR/checkpoint.pt");
  o->common.add(cmd);
  cmd->add_option("--out", o->out, "Run folder")->required();
  cmd->add_option("--max-steps", o->max_steps,
                  "Stop with a checkpoint once N steps (of the whole run) are done")
      ->check(integerAtLeast(1))
      ->default_str("");  // unset: the whole schedule
  cmd->add_flag("--resume", o->resume,
                "Continue exactly from DIR/checkpoint.pt, with the run's own config under any "
                "--config / --set (a change to the run's trajectory is refused)");
  cmd->add_flag("--allow-config-change", o->allow_config_change,
                "With --resume: go on although --config / --set change the run (batch size, "
                "schedule, loss...); each change is recorded in run.h5's events");
  cmd->add_option("--dist-timeout", o->dist_timeout,
                  "Data parallel: seconds a rank waits for a dead or hung peer before the run "
                  "stops with an error")
      ->check(CLI::Range(1.0, 86400.0));
  cmd->add_option("--ranks", o->ranks,
                  "Data-parallel ranks on this machine's CPU, one process each (a --device list "
                  "starts one rank per GPU)")
      ->check(CLI::Range(1, 256))
      ->default_str("");  // unset: one process (or one per --device entry)
  return {cmd, [o] {
            installStopHandlers(/*announce=*/true);  // first: a rendezvous may wait long
            if (o->allow_config_change && !o->resume)
              throw MstError("--allow-config-change only applies with --resume");
            // Resuming: the run's own config is the base that --config and --set change.
            nlohmann::json base = nlohmann::json::object();
            const std::string ckpt = (std::filesystem::path(o->out) / "checkpoint.pt").string();
            if (o->resume && std::filesystem::exists(ckpt)) {
              base = checkpointConfig(ckpt);
              // A preset given now stands for its whole architecture, not under the run's keys.
              const auto given = o->common.experimentJson();
              if (given.contains("model") && given["model"].is_object() &&
                  given["model"].contains("preset") && base.contains("model"))
                base.erase("model");
            }
            auto config = o->common.config(base);
            TrainerOptions to;
            to.out_dir = o->out;
            to.resume = o->resume;
            to.allow_config_change = o->allow_config_change;
            to.max_steps = o->max_steps;
            const auto devices = o->common.devices();
            const auto timeout = std::chrono::milliseconds(
                static_cast<int64_t>(std::llround(o->dist_timeout * 1000.0)));
            std::unique_ptr<LocalRanks> children;
            if (auto env = distContextFromEnv(); env && env->distributed()) {
              // One rank of a torchrun/SLURM (or our own) launch: a device list or a bare "cuda"
              // means the entry / GPU of this machine's LOCAL_RANK.
              if (o->ranks > 0 && o->ranks != env->world_size)
                throw MstError("--ranks " + std::to_string(o->ranks) +
                               " disagrees with the environment (" + env->source +
                               "), which makes this process rank " + std::to_string(env->rank) +
                               " of " + std::to_string(env->world_size) +
                               ": unset those variables to start the ranks here, or leave "
                               "--ranks out under torchrun or srun");
              if (env->rank == 0 && std::getenv("MST_LOCAL_RANK_CHILD") == nullptr)
                std::cerr << "mst: data-parallel rank 0 of " << env->world_size
                          << " (the environment has " << env->source << ")" << std::endl;
              to.dist = *env;
              if (devices.size() > 1) {
                if (env->local_rank >= static_cast<int>(devices.size()))
                  throw MstError("LOCAL_RANK " + std::to_string(env->local_rank) +
                                 " has no entry in --device " + o->common.device_spec);
                to.device = devices[env->local_rank];
              } else if (o->common.device_spec == "cuda") {
                to.device = torch::Device(torch::kCUDA,
                                          static_cast<c10::DeviceIndex>(env->local_rank));
              } else {
                to.device = devices.front();
              }
            } else if (devices.size() > 1 || o->ranks > 1) {
              const int world = devices.size() > 1 ? static_cast<int>(devices.size()) : o->ranks;
              if (devices.size() > 1 && o->ranks > 0 && o->ranks != world)
                throw MstError("--ranks " + std::to_string(o->ranks) + " disagrees with the " +
                               std::to_string(world) + " devices of --device " +
                               o->common.device_spec);
              to.dist.world_size = world;
              to.dist.master_port = freeTcpPort();
              to.device = devices.front();
              children = std::make_unique<LocalRanks>(world, to.dist.master_port);
            } else {
              to.device = devices.front();
            }
            to.dist.timeout = timeout;
            // CPU ranks sharing a machine share its cores (torchrun's LOCAL_WORLD_SIZE).
            if (to.dist.distributed() && to.device.is_cpu() && o->common.threads < 0 &&
                config.train.threads == 0) {
              const char* local_world = std::getenv("LOCAL_WORLD_SIZE");
              const int share = children ? to.dist.world_size
                                         : (local_world ? std::max(1, std::atoi(local_world)) : 1);
              config.train.threads =
                  std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / share);
            }
            o->common.applyThreads(config);
            const bool rank0 = to.dist.rank == 0;
            ProgressPrinter printer;
            auto s = Trainer(config, to, rank0 ? &printer : nullptr).run(&g_stop);
            if (children) children->join();
            if (!rank0) return;  // one run, one result line: rank 0's
            // A run resumed after its last step ran none: no loss or speed to report.
            const auto ran = [&](double v) {
              return s.steps_run > 0 ? nlohmann::json(v) : nlohmann::json();
            };
            printResult({{"steps", s.steps}, {"steps_run", s.steps_run},
                         {"total_steps", s.total_steps}, {"epoch", s.epoch},
                         {"loss", ran(s.loss)}, {"loss_ce", ran(s.loss_ce)},
                         {"loss_rec", ran(s.loss_rec)}, {"img_s", ran(s.img_s)},
                         {"finished", s.finished}, {"stopped", s.stopped},
                         {"corrupt_images", s.corrupt_images}, {"checkpoint", s.checkpoint},
                         {"log", s.log}, {"world_size", to.dist.world_size}});
          }};
}

}  // namespace mst::cli
