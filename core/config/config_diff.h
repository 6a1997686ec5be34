/// @brief What changed between two experiment configurations, and whether it changes the run.
///
/// A resumed run continues exactly only with the configuration it was started with. Some keys
/// only say where the data is or how the machine computes (threads, loader, arithmetic, logging,
/// in-training evaluation); every other key changes the trajectory: the batches, the schedules,
/// the loss or the network.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mst {

struct ConfigChange {
  std::string key;     ///< "section.name"
  std::string before;  ///< JSON text of the old value
  std::string after;   ///< JSON text of the new value
  bool trajectory;     ///< false for keys that do not change what the run computes
};

/// True for keys that may differ when a run is resumed: data.path, data.workers, data.prefetch,
/// train.threads, train.log_every, train.checkpoint_every, train.snapshot_every,
/// train.probe_images, the device arithmetic (train.precision, cuda_graph, fused_*,
/// recompute_gelu) and eval.*.
bool isOperationalKey(const std::string& key);

/// Every key whose value differs, in key-table order. Both sides are read through the current
/// parser first, so keys an older file lacks count with the value they had then (the default).
std::vector<ConfigChange> configChanges(const nlohmann::json& before, const nlohmann::json& after);

/// "key before → after, ..." for the changes (only those that change the trajectory when
/// `trajectory_only`); empty when there are none.
std::string describeChanges(const std::vector<ConfigChange>& changes, bool trajectory_only);

}  // namespace mst
