/// @brief `mst export`: a checkpoint's backbone as a safetensors file for PyTorch / timm.
#include "app/cli/common.h"
#include "core/eval/evaluate.h"
#include "core/model/export.h"
#include "core/train/engine.h"
#include "core/util/error.h"

namespace mst::cli {

Command registerExport(CLI::App& app) {
  struct Options {
    std::string checkpoint, out, network = "teacher", names = "timm";
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "export",
      "A checkpoint's ViT backbone (teacher or student) as a safetensors file with "
      "timm's VisionTransformer names and layouts");
  cmd->add_option("--checkpoint", o->checkpoint, "Checkpoint (DIR/checkpoint.pt)")->required();
  cmd->add_option("--out", o->out, "Output file (.safetensors)")->required();
  cmd->add_option("--network", o->network, "teacher (the one DINO and MST evaluate) or student")
      ->check(CLI::IsMember({"teacher", "student"}));
  cmd->add_option("--names", o->names,
                  "timm (VisionTransformer, no [MASK] token) or mst (the workbench's own names)")
      ->check(CLI::IsMember({"timm", "mst"}));
  return {cmd, [o] {
            const auto base = checkpointConfig(o->checkpoint);
            Config config = configFromJson(base);
            auto engine = makeEvalEngine(config, o->checkpoint, torch::kCPU);
            auto& vit = o->network == "teacher" ? *engine->teacher_vit : *engine->student_vit;
            const bool timm = o->names == "timm";
            const auto tensors = backboneTensors(vit, timm ? ExportNames::Timm : ExportNames::Mst);
            const auto meta = readCheckpointMeta(o->checkpoint);
            const auto kwargs = timmKwargs(config.model);
            std::map<std::string, std::string> metadata{
                {"format", "mst-export-1"},
                {"network", o->network},
                {"names", o->names},
                {"step", std::to_string(meta.value("step", int64_t{0}))},
                {"model", configToJson(config)["model"].dump()},
                {"gelu", config.model.gelu},
                {"timm_kwargs", kwargs.dump()}};
            writeSafetensors(o->out, tensors, metadata);
            int64_t parameters = 0;
            for (const auto& [name, t] : tensors) parameters += t.numel();
            nlohmann::json result{{"out", o->out},
                                  {"network", o->network},
                                  {"names", o->names},
                                  {"tensors", tensors.size()},
                                  {"parameters", parameters},
                                  {"step", meta.value("step", int64_t{0})},
                                  {"timm_kwargs", kwargs}};
            if (config.model.gelu != "erf")
              result["note"] =
                  "model.gelu=tanh: build the timm model with "
                  "act_layer=timm.layers.activations.GELUTanh";
            printResult(result);
          }};
}

}  // namespace mst::cli
