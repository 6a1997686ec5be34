/// @brief File → Export backbone: the one call into LibTorch the main window needs, kept in a
/// translation unit of its own (LibTorch's headers must come before any Qt header).
#pragma once

#include <QString>

namespace mst {

/// `mst export` with its defaults (teacher, timm names): `checkpoint` to `target`. Returns the
/// result line as JSON text; throws std::exception with the message naming the bad file.
QString exportTeacherBackbone(const QString& checkpoint, const QString& target);

}  // namespace mst
