/// @brief ExperimentModel (see config_bridge.h).
#include "app/gui/config_bridge.h"

#include <fstream>

#include "core/util/error.h"
#include "core/util/files.h"

namespace mst {

namespace {

/// Sets a dotted key inside a nested JSON object.
void setDotted(nlohmann::json& root, const std::string& key, const nlohmann::json& value) {
  nlohmann::json* node = &root;
  size_t start = 0;
  for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
    node = &(*node)[key.substr(start, dot - start)];
    if (!node->is_object()) *node = nlohmann::json::object();
    start = dot + 1;
  }
  (*node)[key.substr(start)] = value;
}

}  // namespace

ExperimentModel::ExperimentModel() : json_(nlohmann::json::object()), config_(configFromJson(json_)) {}

void ExperimentModel::setJson(const nlohmann::json& json, const std::string& source) {
  Config config = configFromJson(json, source);  // throws before anything changes
  json_ = json;
  config_ = std::move(config);
}

void ExperimentModel::load(const QString& path) {
  setJson(loadJsonFile(path.toStdString()), path.toStdString());
}

void ExperimentModel::save(const QString& path) const {
  writeTextAtomically(path.toStdString(), json_.dump(2) + "\n");
}

QVector<FieldSpec> ExperimentModel::fieldSpecs() {
  QVector<FieldSpec> out;
  for (const auto& k : configKeys()) {
    FieldSpec f;
    f.key = QString::fromStdString(k.key);
    f.type = QString::fromStdString(k.type);
    f.help = QString::fromStdString(k.help);
    for (const auto& c : k.choices) f.choices << QString::fromStdString(c);
    out.push_back(f);
  }
  return out;
}

QMap<QString, QString> ExperimentModel::formValues() const {
  QMap<QString, QString> out;
  for (const auto& k : configKeys())
    out[QString::fromStdString(k.key)] = QString::fromStdString(configValue(config_, k.key).dump());
  return out;
}

QString ExperimentModel::check(const QString& key, const QString& value_json) const {
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(value_json.toStdString());
  } catch (const std::exception&) {
    return key + ": not a valid value (" + value_json + ")";
  }
  return QString::fromStdString(checkConfigValue(config_, key.toStdString(), value));
}

QString ExperimentModel::set(const QString& key, const QString& value_json) {
  const QString why = check(key, value_json);
  if (!why.isEmpty()) return why;
  nlohmann::json next = json_;
  const std::string k = key.toStdString();
  if (k == "model.preset" && next.contains("model") && next["model"].is_object()) {
    nlohmann::json model = nlohmann::json::object();
    next["model"] = model;
  }
  setDotted(next, k, nlohmann::json::parse(value_json.toStdString()));
  try {
    setJson(next, "experiment");
  } catch (const std::exception& e) {
    return QString::fromStdString(e.what());
  }
  return QString();
}

}  // namespace mst
