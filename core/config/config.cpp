/// @brief Configs: presets, JSON in and out, overrides, validation, and the key table's public
/// views (the table itself: config_keys.cpp).
#include "core/config/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/config/config_keys.h"
#include "core/util/error.h"

namespace mst {

using config_detail::findKey;
using config_detail::KeyDef;
using config_detail::keyTable;
using json = nlohmann::json;

std::vector<std::string> modelPresetNames() {
  return {"vit_micro28", "vit_tiny28", "vit_small28", "deit_t16", "deit_s16"};
}

ModelConfig modelPreset(const std::string& name) {
  ModelConfig m;
  m.preset = name;
  if (name == "vit_micro28") {  // test-sized: seconds per step on one core
    m.image_size = 28, m.patch_size = 4, m.channels = 1, m.dim = 64, m.depth = 2, m.heads = 2;
    m.head_hidden = 128, m.head_bottleneck = 32, m.out_dim = 256, m.decoder_widths = {32, 16};
  } else if (name == "vit_tiny28") {  // Fashion-MNIST default, sized for 2 CPU cores
    m.image_size = 28, m.patch_size = 4, m.channels = 1, m.dim = 96, m.depth = 4, m.heads = 3;
    m.head_hidden = 512, m.head_bottleneck = 128, m.out_dim = 1024, m.decoder_widths = {64, 32};
  } else if (name == "vit_small28") {  // bench_tiny28's network
    m.image_size = 28, m.patch_size = 4, m.channels = 3, m.dim = 192, m.depth = 6, m.heads = 3;
    m.head_hidden = 1024, m.head_bottleneck = 128, m.out_dim = 4096, m.decoder_widths = {96, 48};
  } else if (name == "deit_t16") {
    m.image_size = 224, m.patch_size = 16, m.channels = 3, m.dim = 192, m.depth = 12, m.heads = 3;
    m.head_hidden = 2048, m.head_bottleneck = 256, m.out_dim = 65536, m.decoder_widths = {};
  } else if (name == "deit_s16") {  // the paper's DeiT-S/16
    m.image_size = 224, m.patch_size = 16, m.channels = 3, m.dim = 384, m.depth = 12, m.heads = 6;
    m.head_hidden = 2048, m.head_bottleneck = 256, m.out_dim = 65536, m.decoder_widths = {};
  } else {
    std::string list;
    for (const auto& n : modelPresetNames()) list += (list.empty() ? "" : ", ") + n;
    throw MstError("config key model.preset: unknown preset '" + name + "' (allowed: " + list +
                   ")");
  }
  return m;
}

Config configFromJson(const json& input, const std::string& source) {
  if (!input.is_object()) throw MstError(source + ": the config must be a JSON object");
  Config config;
  // Flatten {"a": {"b": 1}} to "a.b" so nested and dotted spellings are both accepted.
  std::vector<std::pair<std::string, json>> flat;
  std::function<void(const std::string&, const json&)> walk = [&](const std::string& prefix,
                                                                   const json& node) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it.key().empty() && it.key()[0] == '_') continue;  // "_comment" and friends
      std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
      if (it->is_object())
        walk(key, *it);
      else
        flat.emplace_back(key, *it);
    }
  };
  walk("", input);
  auto apply = [&](const std::string& key, const json& value) {
    const KeyDef* def = findKey(key);
    if (!def) {
      // Suggest the closest known key so a typo is fixed at once.
      std::string section = key.substr(0, key.find('.'));
      std::string known;
      for (const auto& d : keyTable())
        if (d.key.rfind(section + ".", 0) == 0) known += (known.empty() ? "" : ", ") + d.key;
      throw MstError(source + ": unknown config key '" + key + "'" +
                     (known.empty() ? std::string(" (sections: data, model, crops, augment, "
                                                  "masking, loss, optim, train, eval)")
                                    : " (keys of '" + section + "': " + known + ")"));
    }
    try {
      def->set(config, value);
    } catch (const std::invalid_argument& e) {
      throw MstError(source + ": config key " + key + " " + e.what());
    }
  };
  // The preset sets every model.* default; explicit model.* keys then override it.
  for (const auto& [key, value] : flat)
    if (key == "model.preset") {
      apply(key, value);
      config.model = modelPreset(config.model.preset);
    }
  for (const auto& [key, value] : flat)
    if (key != "model.preset") apply(key, value);
  validateConfig(config);
  return config;
}

json configToJson(const Config& config) {
  json out = json::object();
  for (const auto& def : keyTable()) {
    std::string section = def.key.substr(0, def.key.find('.'));
    out[section][def.key.substr(def.key.find('.') + 1)] = def.get(config);
  }
  return out;
}

json loadJsonFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw MstError("config file " + path + " is a directory, not a JSON file");
  std::ifstream in(path);
  if (!in) throw MstError("cannot open config file " + path);
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    throw MstError("config file " + path + " is not valid JSON: " + e.what());
  } catch (const json::exception& e) {  // e.g. a number beyond double's range
    throw MstError("config file " + path + ": " + e.what());
  }
}

void applyOverride(json& target, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw MstError("--set expects key.path=value, got '" + assignment + "'");
  std::string key = assignment.substr(0, eq);
  std::string text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error&) {
    value = text;  // bare words such as attention_guided are strings
  } catch (const json::exception&) {  // 1e400: a number beyond double's range
    throw MstError("config key " + key + ": " + text + " is beyond the range of a number (--set " +
                   assignment + ")");
  }
  if (!findKey(key)) {
    // Let configFromJson produce the one error message format for unknown keys.
    configFromJson(json{{key, value}}, "--set");
  }
  json* node = &target;
  std::stringstream parts(key);
  std::string part;
  std::vector<std::string> path;
  while (std::getline(parts, part, '.')) path.push_back(part);
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (!node->contains(path[i]) || !(*node)[path[i]].is_object()) (*node)[path[i]] = json::object();
    node = &(*node)[path[i]];
  }
  // A dotted key written flat in the file would shadow the nested one: drop it.
  target.erase(key);
  (*node)[path.back()] = value;
}

void validateConfig(const Config& c) {
  auto fail = [](const std::string& key, const std::string& why) {
    throw MstError("config key " + key + " " + why);
  };
  const auto& m = c.model;
  if (m.dim % m.heads != 0)
    fail("model.heads", "must divide model.dim (" + std::to_string(m.dim) + "), got " +
                            std::to_string(m.heads));
  if ((m.patch_size & (m.patch_size - 1)) != 0)
    fail("model.patch_size", "must be a power of two, got " + std::to_string(m.patch_size));
  if (m.image_size % m.patch_size != 0)
    fail("model.image_size", "must be divisible by model.patch_size (" +
                                 std::to_string(m.patch_size) + "), got " +
                                 std::to_string(m.image_size));
  int64_t stages = 0;
  for (int64_t p = m.patch_size; p > 1; p >>= 1) ++stages;
  if (!m.decoder_widths.empty() && static_cast<int64_t>(m.decoder_widths.size()) != stages)
    fail("model.decoder_widths", "must have log2(patch_size) = " + std::to_string(stages) +
                                     " entries, got " + std::to_string(m.decoder_widths.size()));
  if (c.crops.global_size % m.patch_size != 0)
    fail("crops.global_size", "must be divisible by model.patch_size (" +
                                  std::to_string(m.patch_size) + "), got " +
                                  std::to_string(c.crops.global_size));
  if (c.crops.local_crops > 0 && c.crops.local_size % m.patch_size != 0)
    fail("crops.local_size", "must be divisible by model.patch_size (" +
                                 std::to_string(m.patch_size) + "), got " +
                                 std::to_string(c.crops.local_size));
  if (c.crops.local_crops > 0 && c.crops.local_size > c.crops.global_size)
    fail("crops.local_size", "must not exceed crops.global_size (" +
                                 std::to_string(c.crops.global_size) + "), got " +
                                 std::to_string(c.crops.local_size));
  if (c.crops.global_scale_min > c.crops.global_scale_max)
    fail("crops.global_scale_min", "must not exceed crops.global_scale_max");
  if (c.crops.local_scale_min > c.crops.local_scale_max)
    fail("crops.local_scale_min", "must not exceed crops.local_scale_max");
  if (c.augment.blur_sigma_min > c.augment.blur_sigma_max)
    fail("augment.blur_sigma_min", "must not exceed augment.blur_sigma_max");
  if (!c.data.mean.empty() && c.data.std.empty())
    fail("data.mean", "needs data.std with as many entries (" + std::to_string(c.data.mean.size()) +
                          "): set both, or neither for the data set's own");
  if (!c.data.mean.empty() && c.data.mean.size() != c.data.std.size())
    fail("data.std", "must have as many entries as data.mean (" +
                         std::to_string(c.data.mean.size()) + "), got " +
                         std::to_string(c.data.std.size()));
  // Eq. 5: floor(n / num) of a global crop's n patches are candidates; num > n masks nothing.
  // Local crops are never masked, so only the global crop's patch count bounds num.
  const bool attention_masking =
      c.masking.strategy == "attention_guided" || c.masking.strategy == "attention_high";
  const int64_t grid = c.crops.global_size / m.patch_size, patches = grid * grid;
  if (attention_masking && c.masking.num > patches)
    fail("masking.num",
         "must not exceed the " + std::to_string(patches) +
             " patches of a global crop ((crops.global_size / model.patch_size)^2 = (" +
             std::to_string(c.crops.global_size) + "/" + std::to_string(m.patch_size) +
             ")^2), got " + std::to_string(c.masking.num) + ": no patch would be a mask candidate");
  if (c.eval.subset > 0 && c.eval.k > c.eval.subset)
    fail("eval.k", "must not exceed eval.subset (" + std::to_string(c.eval.subset) +
                       " images in the k-NN bank), got " + std::to_string(c.eval.k));
}

std::vector<ConfigKeyInfo> configKeys() {
  std::vector<ConfigKeyInfo> out;
  for (const auto& def : keyTable()) out.push_back({def.key, def.type, def.help, def.choices});
  return out;
}

json configValue(const Config& config, const std::string& key) {
  const KeyDef* def = findKey(key);
  if (!def) throw MstError("unknown config key '" + key + "'");
  return def->get(config);
}

std::string checkConfigValue(const Config& config, const std::string& key, const json& value) {
  const KeyDef* def = findKey(key);
  if (!def) return "unknown config key '" + key + "'";
  Config trial = config;
  try {
    def->set(trial, value);
    if (key == "model.preset") trial.model = modelPreset(trial.model.preset);
    validateConfig(trial);
  } catch (const std::invalid_argument& e) {
    return "config key " + key + " " + e.what();
  } catch (const MstError& e) {
    return e.what();
  }
  return "";
}

std::string configKeysMarkdown() {
  Config defaults;
  std::ostringstream out;
  out << "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const auto& def : keyTable()) {
    out << "| `" << def.key << "` | " << def.type << " | `" << def.get(defaults).dump() << "` | "
        << def.help << " |\n";
  }
  return out.str();
}

}  // namespace mst
