/// @brief This process's rows of a global batch, and random draws shaped by the global batch.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace mst {

/// Rows [offset, offset + local) of every block of `global` rows. A step's tensors are `groups`
/// such blocks stacked (g1 then g2; or local crop 1..N), each sharded alike.
///
/// Why: N ranks × batch B must draw exactly what one process draws for the batch N×B, so every
/// random tensor of a step is drawn at its global shape from the step's generator (which all
/// ranks seed alike) and this rank keeps its own rows. The default shard is the whole batch and
/// draws exactly what torch::rand draws: single-process runs are unchanged bit for bit.
struct BatchShard {
  int64_t offset = 0;  ///< this rank's first row inside each block
  int64_t global = 0;  ///< rows of one block in the global batch; 0 = this rank has them all
  int64_t groups = 1;  ///< blocks stacked along dim 0

  bool whole() const { return global == 0; }
  /// The same shard of a tensor made of `g` blocks.
  BatchShard grouped(int64_t g) const {
    BatchShard s = *this;
    s.groups = g;
    return s;
  }
  /// Uniform [0, 1) of this rank's `shape` (rows first: groups × local rows): the rows it would
  /// hold of torch::rand drawn for the global batch, (groups × global, shape[1:]...).
  torch::Tensor rand(at::IntArrayRef shape, at::Generator& gen,
                     const torch::TensorOptions& options) const;
};

/// The shard of rank `rank` among `world` ranks of `local` rows each.
inline BatchShard shardOf(int rank, int world, int64_t local) {
  if (world <= 1) return {};
  return {rank * local, world * local, 1};
}

}  // namespace mst
