/// @brief `mst export`: a checkpoint's backbone as a safetensors file for PyTorch / timm.
#include "app/cli/common.h"
#include "core/eval/evaluate.h"

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
  cmd->add_option("--checkpoint", o->checkpoint,
                  "Checkpoint: DIR/checkpoint.pt, or the run folder DIR")
      ->required();
  cmd->add_option("--out", o->out, "Output file (.safetensors)")->required();
  cmd->add_option("--network", o->network, "teacher (the one DINO and MST evaluate) or student")
      ->check(CLI::IsMember({"teacher", "student"}));
  cmd->add_option("--names", o->names,
                  "timm (VisionTransformer, no [MASK] token) or mst (the workbench's own names)")
      ->check(CLI::IsMember({"timm", "mst"}));
  return {cmd, [o] {
            checkOutputFile("--out", o->out);
            printResult(exportBackbone(checkpointFile(o->checkpoint), o->out,
                                       o->network == "teacher", o->names == "timm"));
          }};
}

}  // namespace mst::cli
