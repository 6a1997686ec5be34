/// @brief Between core's config (key table, checks) and the form widget's plain strings.
#pragma once

#include <QMap>
#include <QString>
#include <QVector>

#include <nlohmann/json.hpp>

#include "core/config/config.h"
#include "widgets/config_form.h"

namespace mst {

/// The experiment a window edits: the JSON the user loaded plus their edits (kept minimal, so that
/// a saved file holds what was chosen, not every default), and the config it resolves to.
class ExperimentModel {
 public:
  ExperimentModel();
  /// Replaces the experiment; MstError naming `source` on a bad file.
  void setJson(const nlohmann::json& json, const std::string& source);
  void load(const QString& path);  ///< MstError naming the file
  void save(const QString& path) const;
  const nlohmann::json& json() const { return json_; }
  const Config& config() const { return config_; }

  static QVector<FieldSpec> fieldSpecs();
  /// Every key's current value as JSON text (for ConfigForm::setValues).
  QMap<QString, QString> formValues() const;
  /// "" when key = value_json is accepted on top of the current config, else the message.
  QString check(const QString& key, const QString& value_json) const;
  /// Applies an accepted edit. Changing model.preset drops the explicit model.* keys, so that the
  /// preset's architecture shows. Returns the message when rejected (nothing changes then).
  QString set(const QString& key, const QString& value_json);

 private:
  nlohmann::json json_;
  Config config_;
};

}  // namespace mst
