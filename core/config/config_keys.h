/// @brief Inside core/config: the key table that config.cpp parses, prints and documents with
/// (config_keys.cpp holds it, with the typed readers and range checks of its entries).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config/config.h"

namespace mst::config_detail {

using json = nlohmann::json;

/// One documented key. `set` parses and range-checks the JSON value, throwing a message without
/// the key (the caller adds it); `get` returns the current value as JSON.
struct KeyDef {
  std::string key;
  std::string type;
  std::string help;
  std::function<json(const Config&)> get;
  std::function<void(Config&, const json&)> set;
  std::vector<std::string> choices;  ///< enumerated strings (for forms)
};

/// Every key, in the order the documentation lists them.
const std::vector<KeyDef>& keyTable();
/// The entry for a dotted key, or nullptr.
const KeyDef* findKey(const std::string& key);

}  // namespace mst::config_detail
