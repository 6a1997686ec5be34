/// @brief exportTeacherBackbone (see backbone_export.h).
// LibTorch before any Qt header: Qt's `slots` macro breaks LibTorch's IValue headers.
#include <torch/torch.h>

#include "app/gui/backbone_export.h"

#include "core/eval/evaluate.h"

namespace mst {

QString exportTeacherBackbone(const QString& checkpoint, const QString& target) {
  const auto line = exportBackbone(checkpoint.toStdString(), target.toStdString(),
                                   /*teacher=*/true, /*timm_names=*/true);
  return QString::fromStdString(line.dump());
}

}  // namespace mst
