/// @brief Config differences (see config_diff.h).
#include "core/config/config_diff.h"

#include <nlohmann/json.hpp>

#include "core/config/config.h"
#include "core/config/config_keys.h"

namespace mst {

bool isOperationalKey(const std::string& key) {
  static const char* const kOperational[] = {
      "data.path",          "data.workers",       "data.prefetch",     "train.threads",
      "train.log_every",    "train.checkpoint_every", "train.snapshot_every",
      "train.probe_images", "train.precision",    "train.cuda_graph",  "train.fused_norm",
      "train.fused_augment", "train.fused_loss", "train.fused_optimizer", "train.fused_decoder",
      "train.recompute_gelu", "train.fused_mlp",
      "train.attention_kernel", "train.attention_kernel_short"};
  if (key.rfind("eval.", 0) == 0) return true;
  for (const char* k : kOperational)
    if (key == k) return true;
  return false;
}

namespace {

/// `json` as the current parser reads it (defaults filled in), or as it is when the parser
/// refuses it (a file from another version): its keys are then compared as they stand.
Config normalised(const nlohmann::json& json, bool* parsed) {
  try {
    *parsed = true;
    return configFromJson(json, "config");
  } catch (const std::exception&) {
    *parsed = false;
    return Config{};
  }
}

nlohmann::json valueAt(const nlohmann::json& json, const std::string& key) {
  const auto dot = key.find('.');
  const auto section = json.find(key.substr(0, dot));
  if (section == json.end() || !section->is_object()) return nullptr;
  const auto value = section->find(key.substr(dot + 1));
  return value == section->end() ? nlohmann::json(nullptr) : *value;
}

}  // namespace

std::vector<ConfigChange> configChanges(const nlohmann::json& before, const nlohmann::json& after) {
  bool parsed_before = false, parsed_after = false;
  const Config b = normalised(before, &parsed_before), a = normalised(after, &parsed_after);
  std::vector<ConfigChange> changes;
  for (const auto& def : config_detail::keyTable()) {
    const nlohmann::json vb = parsed_before ? def.get(b) : valueAt(before, def.key);
    const nlohmann::json va = parsed_after ? def.get(a) : valueAt(after, def.key);
    if (vb == va) continue;
    changes.push_back({def.key, vb.dump(), va.dump(), !isOperationalKey(def.key)});
  }
  return changes;
}

std::string describeChanges(const std::vector<ConfigChange>& changes, bool trajectory_only) {
  std::string text;
  for (const auto& c : changes) {
    if (trajectory_only && !c.trajectory) continue;
    if (!text.empty()) text += ", ";
    text += c.key + " " + c.before + " → " + c.after;
  }
  return text;
}

}  // namespace mst
