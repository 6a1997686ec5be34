/// @brief The ViT backbone as named tensors for other tools: a safetensors file whose names and
/// layouts are timm's VisionTransformer (or the workbench's own module names).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/config/config.h"
#include "core/model/vit.h"

namespace mst {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Names for an exported backbone.
enum class ExportNames {
  Timm,  ///< timm's VisionTransformer: patch_embed.proj (a P×P convolution), blocks.N.mlp.fcK;
         ///< the [MASK] token, which timm has no place for, is left out
  Mst,   ///< the workbench's own parameter names and shapes, [MASK] token included
};

/// The backbone's parameters as contiguous fp32 CPU tensors, in module order, under `names`.
NamedTensors backboneTensors(VitImpl& vit, ExportNames names);

/// Keyword arguments of timm's VisionTransformer for this backbone (num_classes = 0: the final
/// norm's CLS token is the feature). The GELU is not among them: timm's default is the exact one
/// (model.gelu = erf); a tanh network needs act_layer=timm.layers.activations.GELUTanh there.
nlohmann::json timmKwargs(const ModelConfig& model);

/// Writes a safetensors file (8-byte little-endian header length, JSON header, raw data) with F32
/// tensors and string `metadata`, through a temporary file and a rename, so that an existing file
/// is either replaced whole or left as it was. MstError naming `path` on failure.
void writeSafetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata);

/// Reads a safetensors file of F32 tensors written by writeSafetensors (or any writer); MstError
/// naming `path` when it is not one. `metadata`, when given, receives the __metadata__ strings.
NamedTensors readSafetensors(const std::string& path,
                             std::map<std::string, std::string>* metadata = nullptr);

}  // namespace mst
