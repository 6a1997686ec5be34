/// @brief `mst inspect`: attention, both masks (one draw) and reconstructions of chosen images.
#include "app/cli/common.h"
#include "core/data/dataset.h"
#include "core/eval/evaluate.h"
#include "core/inspect/inspect.h"
#include "core/log/run_log.h"
#include "core/train/engine.h"
#include "core/util/error.h"

namespace mst::cli {

Command registerInspect(CLI::App& app) {
  struct Options {
    Common common;
    std::string checkpoint, images = "0-7", folder, out;
    int64_t seed = 0;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("inspect",
                                 "Attention map, random and attention-guided masks from the same "
                                 "draw, and reconstruction of training images");
  o->common.add(cmd);
  cmd->add_option("--checkpoint", o->checkpoint,
                  "Checkpoint, or a run folder holding checkpoint.pt; without it, random weights "
                  "from train.seed");
  cmd->add_option("--images", o->images, "Training-set indices, e.g. 0-7 or 1,5,9");
  cmd->add_option("--folder", o->folder,
                  "Your own images (png/jpg/...) instead of training images (--images ignored)");
  cmd->add_option("--seed", o->seed, "Seed of the mask draw");
  cmd->add_option("--out", o->out, "Output HDF5 file (view it: mst-workbench FILE)")->required();
  return {cmd, [o] {
            checkOutputFile("--out", o->out);
            if (!o->checkpoint.empty()) o->checkpoint = checkpointFile(o->checkpoint);
            nlohmann::json base = o->checkpoint.empty() ? nlohmann::json::object()
                                                        : checkpointConfig(o->checkpoint);
            auto config = o->common.config(base);
            o->common.applyThreads(config);
            std::vector<int64_t> indices;
            torch::Tensor images;
            if (o->folder.empty()) {
              indices = parseIndexList(o->images, "--images");
              images = loadProbeImages(config, indices);
            } else {
              images = loadImageFolder(config, o->folder);
            }
            auto engine = makeEvalEngine(config, o->checkpoint, o->common.device());
            auto views = engine->probe(images, static_cast<uint64_t>(o->seed), config.masking,
                                       /*every_block=*/true);
            nlohmann::json meta{{"p", config.masking.p},
                                {"num", config.masking.num},
                                {"strategy", config.masking.strategy},
                                {"seed", o->seed},
                                {"images", indices},
                                {"folder", o->folder},
                                {"checkpoint", o->checkpoint}};
            writeInspectFile(o->out, views, meta.dump());
            printResult({{"out", o->out},
                         {"images", images.size(0)},
                         {"masked_random", views.mask_random.sum().item<int64_t>()},
                         {"masked_guided", views.mask_guided.sum().item<int64_t>()}});
          }};
}

}  // namespace mst::cli
