/// @brief `mst bench`, `mst doctor`, `mst config`: speed, installation facts, config keys.
#include <iostream>

#include "app/cli/common.h"
#include "core/bench/bench.h"
#include "core/bench/kernel_micro.h"
#include "core/bench/gpu_checks.h"
#include "core/util/error.h"

namespace mst::cli {

Command registerBench(CLI::App& app) {
  struct Options {
    Common common;
    BenchOptions bench;
    bool synthetic = true;
    bool micro = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("bench", "Training-step throughput on synthetic images");
  o->common.add(cmd);
  auto* batch = cmd->add_option("--batch", o->bench.batch, "Images per step")
                    ->check(integerAtLeast(1))
                    ->default_str("the config's train.batch_size");
  cmd->add_option("--steps", o->bench.steps, "Timed steps (after warm-up)")
      ->check(integerAtLeast(1));
  cmd->add_option("--warmup", o->bench.warmup, "Untimed warm-up steps")->check(integerAtLeast(0));
  cmd->add_flag("--synthetic", o->synthetic, "Synthetic images (always measured)");
  cmd->add_option("--data", o->bench.data_dir,
                  "Also measure the real input path on this data set (an ImageFolder root unless "
                  "--set data.format=... says otherwise): the loader alone and loader-fed steps");
  cmd->add_flag("--phases", o->bench.phases,
                "Also time each phase of the step (eager steps, waiting after each phase)");
  cmd->add_option("--kernels", o->bench.kernels,
                  "Also profile a few steps kernel by kernel (LibTorch's profiler; on CUDA the "
                  "device time of each kernel) and report the N kernels with most time and each "
                  "kind's total (matmul, attention, layernorm, elementwise, copy_cast, ...)")
      ->check(integerAtLeast(0));
  cmd->add_option("--data-batches", o->bench.data_batches, "Batches timed with --data")
      ->check(integerAtLeast(1));
  cmd->add_flag("--micro", o->micro,
                "Instead of training steps, time our CUDA kernels alone at the step's shapes "
                "and compare the bandwidth each reaches with a plain copy's");
  return {cmd, [o, batch] {
            auto config = o->common.config();
            // The experiment's own batch unless --batch says otherwise.
            if (batch->count() == 0) o->bench.batch = config.train.batch_size;
            if (o->micro) {
              printResult(runKernelMicro(config, o->common.device(), o->bench.batch));
              return;
            }
            // --data names a folder of images unless the experiment already picked a reader.
            const auto j = o->common.experimentJson();
            const bool names_format = j.contains("data.format") ||
                                      (j.contains("data") && j["data"].is_object() &&
                                       j["data"].contains("format"));
            if (!o->bench.data_dir.empty() && !names_format) config.data.format = "image_folder";
            o->common.applyThreads(config);
            o->bench.device = o->common.device();
            printResult(runBench(config, o->bench));
          }};
}

Command registerGpuCheck(CLI::App& app) {
  auto common = std::make_shared<Common>();
  auto* cmd = app.add_subcommand(
      "gpucheck", "CUDA correctness: CPU vs CUDA losses (fp32, bf16), masks, graph replay vs eager");
  common->add(cmd);
  return {cmd, [common] {
            // The checks' small default experiment, under --config and every --set.
            auto config = common->config(configToJson(gpuCheckConfig()));
            common->applyThreads(config);
            if (!cudaPresent()) {
              printResult({{"skipped", "no CUDA device"}});
              return;
            }
            int failed = 0;
            runGpuChecks(config, [&](const GpuCheck& check) {  // each line as soon as it is known
              failed += check.passed ? 0 : 1;
              printResult({{"check", check.name}, {"passed", check.passed}, {"values", check.values}});
            });
            if (failed > 0) throw MstError(std::to_string(failed) + " GPU check(s) failed");
          }};
}

Command registerDoctor(CLI::App& app) {
  auto common = std::make_shared<Common>();
  auto* cmd = app.add_subcommand("doctor", "LibTorch, BLAS in use, threads, CUDA, HDF5, OpenCV");
  common->add(cmd);
  return {cmd, [common] {
            common->applyThreads(Config{});
            auto info = systemInfo();
            for (auto it = info.begin(); it != info.end(); ++it)
              std::cerr << it.key() << ": "
                        << (it->is_string() ? it->get<std::string>() : it->dump()) << "\n";
            if (!info["blas_is_openblas"].get<bool>())
              std::cerr << "warning: BLAS is not OpenBLAS: install libopenblas0-openmp (about 12x "
                           "faster than the reference BLAS)\n";
            printResult(info);
          }};
}

Command registerConfig(CLI::App& app) {
  struct Options {
    Common common;
    bool keys = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("config", "Print the resolved config, or every key (--keys)");
  o->common.add(cmd);
  cmd->add_flag("--keys", o->keys, "Markdown table of every key, its default and meaning");
  return {cmd, [o] {
            if (o->keys)
              std::cout << configKeysMarkdown();
            else
              printResult(configToJson(o->common.config()));
          }};
}

}  // namespace mst::cli
