/// @brief ConfigForm: one editor per config key, grouped in collapsible sections, with a filter.
#pragma once

#include <QMap>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>
#include <functional>
#include <memory>
#include <vector>

class QLabel;
class QLineEdit;
class QToolButton;
class QVBoxLayout;

namespace mst {

/// One config key as the form shows it (the app fills these from core's key table: about 70 keys,
/// dotted, e.g. "masking.p"; type is number | integer | bool | string | number[] | integer[]).
struct FieldSpec {
  QString key, type, help;
  QStringList choices;  // non-empty for enumerated strings (combo box)
};

/// "" when `key` = `value_json` is valid on top of the form's other current values, else the
/// one-line message to show at the field (e.g. "masking.p: must be in [0, 1] (got 1.5)").
using FieldValidator = std::function<QString(const QString& key, const QString& value_json)>;

/// Edits an experiment config key by key. Values travel as JSON text so that the form needs no
/// knowledge of core's config structs; the validator (core's checkConfigValue, wrapped by the app)
/// decides what is valid, the form only converts editor text to JSON and shows the verdict.
class ConfigForm : public QWidget {
  Q_OBJECT
 public:
  explicit ConfigForm(QWidget* parent = nullptr);
  ~ConfigForm() override;

  /// Builds one editor per key, grouped by the first path component (data, model, crops, augment,
  /// masking, loss, optim, train, eval, ...) in collapsible sections, with a filter line edit on
  /// top that hides keys not matching (key or help text). Help text as tooltip and a dim caption.
  void setFields(const QVector<FieldSpec>& fields);
  /// The check run on every edit before it is accepted; none means every well-typed value passes.
  void setValidator(FieldValidator validator);
  /// Values as JSON text per key (strings JSON-quoted: "\"attention_guided\"", arrays "[64,32]").
  /// Updates editors without emitting valueChanged, clears errors. Keys not in the map keep theirs.
  void setValues(const QMap<QString, QString>& json_values);
  /// JSON text per key, as accepted (an edit the validator rejected is not in here).
  QMap<QString, QString> values() const;
  /// As if the user typed `text` into the field and pressed enter / left it: converts the
  /// editor text to JSON (strings quoted, "64, 32" -> [64,32], numbers as typed; a number field
  /// with text that is not a number is an error "masking.p expects a number"), runs the validator,
  /// shows the message at the field (red frame + red label under the editor) or accepts it.
  /// Returns the error shown ("" if accepted).
  QString editField(const QString& key, const QString& text);
  /// The message shown at `key`'s field, "" when none.
  QString fieldError(const QString& key) const;
  /// The editor of `key` (QLineEdit, QComboBox or QCheckBox), nullptr for an unknown key.
  QWidget* fieldEditor(const QString& key) const;
  /// The red label under `key`'s editor (hidden while the field has no error).
  QLabel* errorLabel(const QString& key) const;
  /// True while any field shows an error (the app keeps Start disabled then).
  bool hasErrors() const;
  /// Locks every editor while a run is going; the filter stays usable.
  void setReadOnly(bool read_only);
  bool isReadOnly() const { return read_only_; }
  /// The filter line edit (the app may focus it with Ctrl+F).
  QLineEdit* filterEdit() const { return filter_; }
  /// Shows only the keys whose key or help text contains every word of `text`.
  void setFilter(const QString& text);
  /// Whether the filter currently lets `key` through (independent of section collapse).
  bool isFieldShown(const QString& key) const;

 signals:
  /// Emitted for accepted edits only, with the JSON text of the new value.
  void valueChanged(const QString& key, const QString& value_json);

 private:
  struct Field;
  struct Section;

  void clearFields();
  QWidget* makeEditor(Field& field);
  /// Converts, validates and accepts or flags the editor text of `field`; the editor keeps `text`.
  QString commit(Field& field, const QString& text);
  void showError(Field& field, const QString& message);
  /// Puts the JSON value into the editor without emitting anything.
  void showValue(Field& field, const QString& json);
  void applyFilter();
  Field* field(const QString& key) const;

  QLineEdit* filter_ = nullptr;
  QLabel* no_match_ = nullptr;
  QWidget* body_ = nullptr;
  QVBoxLayout* body_layout_ = nullptr;
  std::vector<std::unique_ptr<Field>> fields_;  // in the order of setFields
  std::vector<std::unique_ptr<Section>> sections_;
  QMap<QString, QString> values_;
  FieldValidator validator_;
  bool read_only_ = false;
};

}  // namespace mst
