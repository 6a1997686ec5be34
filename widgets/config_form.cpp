/// @brief ConfigForm: typed editors per key, JSON conversion, validation messages, filtering.
#include "widgets/config_form.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFrame>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonValue>
#include <QLabel>
#include <QLineEdit>
#include <QRegularExpression>
#include <QScrollArea>
#include <QSignalBlocker>
#include <QToolButton>
#include <QVBoxLayout>
#include <cmath>
#include <optional>

namespace mst {

namespace {

constexpr char kErrorColor[] = "#c62828";
constexpr int kNameWidthCap = 130;  ///< px; longer names wrap at an underscore

bool isArrayType(const QString& type) { return type.endsWith(QLatin1String("[]")); }
bool isNumberType(const QString& type) {
  return type == QLatin1String("number") || type == QLatin1String("integer");
}

/// JSON text of one value; Qt serialises doubles in their shortest round-trip form.
QString jsonText(const QJsonValue& value) {
  const QByteArray doc = QJsonDocument(QJsonArray{value}).toJson(QJsonDocument::Compact);
  return QString::fromUtf8(doc.mid(1, doc.size() - 2));
}

/// QJsonDocument only parses objects and arrays, so a scalar travels inside a one-element array.
std::optional<QJsonValue> parseJson(const QString& json) {
  QJsonParseError error{};
  const QJsonDocument doc = QJsonDocument::fromJson(('[' + json + ']').toUtf8(), &error);
  if (error.error != QJsonParseError::NoError || !doc.isArray() || doc.array().size() != 1)
    return std::nullopt;
  return doc.array().at(0);
}

/// A number as JSON: as typed when the text is already a JSON number (so "1e-4" stays "1e-4"),
/// else the shortest form of what it parses to (".5" -> "0.5").
std::optional<QString> numberJson(const QString& text) {
  static const QRegularExpression kJsonNumber(R"(^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$)");
  const QString t = text.trimmed();
  bool ok = false;
  const double value = t.toDouble(&ok);
  if (!ok || !std::isfinite(value)) return std::nullopt;
  if (kJsonNumber.match(t).hasMatch()) return t;
  return QString::number(value, 'g', QLocale::FloatingPointShortest);
}

std::optional<QString> integerJson(const QString& text) {
  static const QRegularExpression kInteger(R"(^[+-]?\d+$)");
  const QString t = text.trimmed();
  if (!kInteger.match(t).hasMatch()) return std::nullopt;
  bool ok = false;
  const qlonglong value = t.toLongLong(&ok);
  if (!ok) return std::nullopt;
  return QString::number(value);
}

std::optional<QString> boolJson(const QString& text) {
  const QString t = text.trimmed().toLower();
  if (t == "true" || t == "1" || t == "yes" || t == "on") return QStringLiteral("true");
  if (t == "false" || t == "0" || t == "no" || t == "off") return QStringLiteral("false");
  return std::nullopt;
}

/// Editor text -> JSON text for `spec`'s type, or the error that names the key.
QString toJson(const FieldSpec& spec, const QString& text, QString* json) {
  const QString& type = spec.type;
  if (type == QLatin1String("number") || type == QLatin1String("integer")) {
    const bool integer = type == QLatin1String("integer");
    const auto value = integer ? integerJson(text) : numberJson(text);
    if (!value)
      return integer ? ConfigForm::tr("%1 expects an integer").arg(spec.key)
                     : ConfigForm::tr("%1 expects a number").arg(spec.key);
    *json = *value;
    return {};
  }
  if (type == QLatin1String("bool")) {
    const auto value = boolJson(text);
    if (!value) return ConfigForm::tr("%1 expects true or false").arg(spec.key);
    *json = *value;
    return {};
  }
  if (type == QLatin1String("string")) {
    if (!spec.choices.isEmpty() && !spec.choices.contains(text))
      return ConfigForm::tr("%1 expects one of: %2").arg(spec.key, spec.choices.join(", "));
    *json = jsonText(QJsonValue(text));
    return {};
  }
  if (isArrayType(type)) {
    const bool integer = type.startsWith(QLatin1String("integer"));
    const QString bad =
        integer ? ConfigForm::tr("%1 expects integers separated by commas (e.g. 64, 32)")
                : ConfigForm::tr("%1 expects numbers separated by commas (e.g. 0.5, 0.25)");
    QString t = text.trimmed();
    if (t.startsWith('[') && t.endsWith(']')) t = t.mid(1, t.size() - 2).trimmed();
    QStringList items;
    if (!t.isEmpty()) {
      for (const QString& part : t.split(',')) {
        const auto value = integer ? integerJson(part) : numberJson(part);
        if (!value) return bad.arg(spec.key);
        items << *value;
      }
    }
    *json = '[' + items.join(',') + ']';
    return {};
  }
  // A type this form does not know: the text must be JSON already.
  if (!parseJson(text)) return ConfigForm::tr("%1 expects a JSON value").arg(spec.key);
  *json = text.trimmed();
  return {};
}

/// JSON text -> what the editor shows ("[64,32]" -> "64, 32", "\"random\"" -> "random").
QString displayText(const QString& type, const QString& json) {
  const auto value = parseJson(json);
  if (!value) return json;
  if (value->isString()) return value->toString();
  if (value->isArray()) {
    QStringList items;
    for (const QJsonValue& item : value->toArray()) items << jsonText(item);
    return items.join(", ");
  }
  if (isNumberType(type)) return json.trimmed();  // keeps "1e-4" as the file has it
  return jsonText(*value);
}

QColor dimColor(const QPalette& palette) {
  const QColor fg = palette.color(QPalette::WindowText), bg = palette.color(QPalette::Window);
  return QColor::fromRgbF(0.6 * fg.redF() + 0.4 * bg.redF(), 0.6 * fg.greenF() + 0.4 * bg.greenF(),
                          0.6 * fg.blueF() + 0.4 * bg.blueF());
}

QString fieldToolTip(const FieldSpec& spec) {
  return QStringLiteral("<b>%1</b> <i>(%2)</i><br>%3")
      .arg(spec.key.toHtmlEscaped(), spec.type.toHtmlEscaped(), spec.help.toHtmlEscaped());
}

}  // namespace

struct ConfigForm::Section {
  QString name;
  QWidget* frame = nullptr;  // header + content; hidden when the filter leaves nothing in it
  QToolButton* header = nullptr;
  QWidget* content = nullptr;
  QVBoxLayout* content_layout = nullptr;
  int count = 0;
};

struct ConfigForm::Field {
  FieldSpec spec;
  Section* section = nullptr;
  QWidget* row = nullptr;
  QLabel* name = nullptr;
  QWidget* editor = nullptr;
  QLabel* error_label = nullptr;
  QString error;
};

ConfigForm::ConfigForm(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->setSpacing(4);

  filter_ = new QLineEdit(this);
  filter_->setPlaceholderText(tr("Filter keys and help (e.g. mask, lr, crop)"));
  filter_->setClearButtonEnabled(true);
  filter_->setToolTip(tr("Shows only the keys whose name or help contains every word typed"));
  connect(filter_, &QLineEdit::textChanged, this, &ConfigForm::applyFilter);
  layout->addWidget(filter_);

  auto* scroll = new QScrollArea(this);
  scroll->setWidgetResizable(true);
  scroll->setFrameShape(QFrame::NoFrame);
  // Normally unused (names wrap, help text wraps); a narrow dock scrolls rather than clipping.
  scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAsNeeded);
  body_ = new QWidget(scroll);
  body_layout_ = new QVBoxLayout(body_);
  body_layout_->setContentsMargins(2, 2, 6, 2);
  body_layout_->setSpacing(2);
  no_match_ = new QLabel(body_);
  no_match_->setAlignment(Qt::AlignCenter);
  no_match_->setWordWrap(true);
  no_match_->hide();
  body_layout_->addWidget(no_match_);
  body_layout_->addStretch(1);
  scroll->setWidget(body_);
  layout->addWidget(scroll, 1);
}

ConfigForm::~ConfigForm() = default;

void ConfigForm::clearFields() {
  // Widgets go first and at once (not deleteLater): their lambdas point at the Field structs.
  for (auto& section : sections_) delete section->frame;
  sections_.clear();
  fields_.clear();
}

void ConfigForm::setFields(const QVector<FieldSpec>& fields) {
  clearFields();
  QMap<QString, Section*> by_name;
  const QColor dim = dimColor(palette());
  QFont caption_font = font();
  caption_font.setPointSizeF(font().pointSizeF() * 0.9);
  int name_width = 0;

  for (const FieldSpec& spec : fields) {
    const QString group = spec.key.section('.', 0, 0);
    Section* section = by_name.value(group);
    if (!section) {
      auto owned = std::make_unique<Section>();
      section = owned.get();
      section->name = group;
      section->frame = new QWidget(body_);
      auto* frame_layout = new QVBoxLayout(section->frame);
      frame_layout->setContentsMargins(0, 4, 0, 4);
      frame_layout->setSpacing(2);
      section->header = new QToolButton(section->frame);
      section->header->setCheckable(true);
      section->header->setChecked(true);
      section->header->setAutoRaise(true);
      section->header->setArrowType(Qt::DownArrow);
      section->header->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
      section->header->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
      QFont bold = font();
      bold.setBold(true);
      section->header->setFont(bold);
      auto* line = new QFrame(section->frame);
      line->setFrameShape(QFrame::HLine);
      line->setFrameShadow(QFrame::Sunken);
      section->content = new QWidget(section->frame);
      section->content_layout = new QVBoxLayout(section->content);
      section->content_layout->setContentsMargins(18, 4, 0, 4);
      section->content_layout->setSpacing(8);
      frame_layout->addWidget(section->header);
      frame_layout->addWidget(line);
      frame_layout->addWidget(section->content);
      connect(section->header, &QToolButton::toggled, section->content, [section](bool open) {
        section->content->setVisible(open);
        section->header->setArrowType(open ? Qt::DownArrow : Qt::RightArrow);
      });
      body_layout_->insertWidget(body_layout_->count() - 2, section->frame);  // before no_match_
      by_name.insert(group, section);
      sections_.push_back(std::move(owned));
    }
    ++section->count;

    auto owned = std::make_unique<Field>();
    Field& field = *owned;
    field.spec = spec;
    field.section = section;
    field.row = new QWidget(section->content);
    auto* row_layout = new QHBoxLayout(field.row);
    row_layout->setContentsMargins(0, 0, 0, 0);
    row_layout->setSpacing(10);
    // Long names ("teacher_temp_warmup_epochs") may break after an underscore (a zero-width
    // space), so that the name column need not be as wide as the longest of them.
    QString short_name = spec.key.section('.', 1);
    if (short_name.isEmpty()) short_name = spec.key;
    field.name = new QLabel(QString(short_name).replace('_', QStringLiteral("_\u200B")), field.row);
    field.name->setWordWrap(true);
    field.name->setToolTip(fieldToolTip(spec));
    field.name->setAlignment(Qt::AlignRight | Qt::AlignTop);
    field.name->setContentsMargins(0, 4, 0, 0);  // lines up with the editor's text baseline
    name_width = std::max(name_width, std::min(kNameWidthCap, field.name->fontMetrics().horizontalAdvance(short_name)));
    row_layout->addWidget(field.name);

    auto* column = new QVBoxLayout;
    column->setSpacing(2);
    field.editor = makeEditor(field);
    field.editor->setToolTip(fieldToolTip(spec));
    field.name->setBuddy(field.editor);
    if (isNumberType(spec.type) || spec.type == QLatin1String("bool") || !spec.choices.isEmpty()) {
      // Short values get short editors so that the eye finds them; text and lists take the width.
      auto* line = new QHBoxLayout;
      line->addWidget(field.editor);
      line->addStretch(1);
      column->addLayout(line);
    } else {
      column->addWidget(field.editor);
    }
    field.error_label = new QLabel(field.row);
    field.error_label->setWordWrap(true);
    field.error_label->setStyleSheet(QStringLiteral("color: %1;").arg(kErrorColor));
    field.error_label->setTextInteractionFlags(Qt::TextSelectableByMouse);
    field.error_label->hide();
    column->addWidget(field.error_label);
    if (!spec.help.isEmpty()) {
      auto* caption = new QLabel(spec.help, field.row);
      caption->setWordWrap(true);
      caption->setFont(caption_font);
      QPalette caption_palette = caption->palette();
      caption_palette.setColor(QPalette::WindowText, dim);
      caption->setPalette(caption_palette);
      column->addWidget(caption);
    }
    row_layout->addLayout(column, 1);
    section->content_layout->addWidget(field.row);
    fields_.push_back(std::move(owned));
    const auto stored = values_.constFind(spec.key);
    if (stored != values_.constEnd()) showValue(field, *stored);
  }
  for (auto& field : fields_) field->name->setFixedWidth(name_width);
  for (auto& section : sections_)
    section->header->setText(QStringLiteral("%1  (%2)").arg(section->name).arg(section->count));
  setReadOnly(read_only_);
  applyFilter();
}

QWidget* ConfigForm::makeEditor(Field& field) {
  const FieldSpec& spec = field.spec;
  Field* f = &field;
  if (spec.type == QLatin1String("bool")) {
    auto* box = new QCheckBox(field.row);
    connect(box, &QCheckBox::clicked, box,
            [this, f](bool checked) { commit(*f, checked ? "true" : "false"); });
    return box;
  }
  if (!spec.choices.isEmpty()) {
    auto* combo = new QComboBox(field.row);
    combo->addItems(spec.choices);
    combo->setMinimumWidth(160);
    connect(combo, &QComboBox::activated, combo,
            [this, f, combo](int index) { commit(*f, combo->itemText(index)); });
    return combo;
  }
  auto* edit = new QLineEdit(field.row);
  if (isNumberType(spec.type)) {
    edit->setMaximumWidth(160);
    edit->setMinimumWidth(120);
  } else if (isArrayType(spec.type)) {
    // Empty text is the empty list, which several keys use for "the default".
    edit->setPlaceholderText(spec.type.startsWith(QLatin1String("integer"))
                                 ? tr("[]  (e.g. 64, 32)")
                                 : tr("[]  (e.g. 0.5, 0.25)"));
  }
  // editingFinished covers Enter and focus loss; it also fires on focus loss right after an
  // Enter, so text already judged (not modified since) is skipped.
  connect(edit, &QLineEdit::editingFinished, edit, [this, f, edit] {
    if (!edit->isModified()) return;
    edit->setModified(false);
    commit(*f, edit->text());
  });
  return edit;
}

QString ConfigForm::commit(Field& field, const QString& text) {
  const QString& key = field.spec.key;
  if (read_only_) return tr("%1 cannot change while a run is going").arg(key);
  QString json;
  QString error = toJson(field.spec, text, &json);
  if (error.isEmpty() && validator_) error = validator_(key, json);
  showError(field, error);
  if (!error.isEmpty()) return error;
  const auto previous = values_.constFind(key);
  const bool changed = previous == values_.constEnd() || *previous != json;
  values_.insert(key, json);
  showValue(field, json);  // normalises the text ("64,32" -> "64, 32")
  if (changed) emit valueChanged(key, json);
  return {};
}

void ConfigForm::showError(Field& field, const QString& message) {
  field.error = message;
  field.error_label->setText(message);
  field.error_label->setVisible(!message.isEmpty());
  if (message.isEmpty()) {
    field.editor->setStyleSheet({});
    return;
  }
  const char* type = qobject_cast<QLineEdit*>(field.editor)   ? "QLineEdit"
                     : qobject_cast<QComboBox*>(field.editor) ? "QComboBox"
                                                              : "QCheckBox";
  field.editor->setStyleSheet(
      QStringLiteral("%1 { border: 1px solid %2; border-radius: 3px; padding: 2px 4px; }")
          .arg(QLatin1String(type), QLatin1String(kErrorColor)));
}

void ConfigForm::showValue(Field& field, const QString& json) {
  const QSignalBlocker blocker(field.editor);
  const QString text = displayText(field.spec.type, json);
  if (auto* box = qobject_cast<QCheckBox*>(field.editor)) {
    box->setChecked(json.trimmed() == QLatin1String("true"));
  } else if (auto* combo = qobject_cast<QComboBox*>(field.editor)) {
    int index = combo->findText(text);
    if (index < 0) {  // a value outside the list (an older config): show it rather than hide it
      combo->addItem(text);
      index = combo->count() - 1;
    }
    combo->setCurrentIndex(index);
  } else if (auto* edit = qobject_cast<QLineEdit*>(field.editor)) {
    edit->setText(text);
    edit->setModified(false);
  }
}

void ConfigForm::setValidator(FieldValidator validator) { validator_ = std::move(validator); }

void ConfigForm::setValues(const QMap<QString, QString>& json_values) {
  for (auto it = json_values.constBegin(); it != json_values.constEnd(); ++it)
    values_.insert(it.key(), it.value());
  for (auto& field : fields_) {
    const auto value = values_.constFind(field->spec.key);
    if (json_values.contains(field->spec.key) || !field->error.isEmpty()) {
      if (value != values_.constEnd()) showValue(*field, *value);
      showError(*field, {});
    }
  }
}

QMap<QString, QString> ConfigForm::values() const { return values_; }

ConfigForm::Field* ConfigForm::field(const QString& key) const {
  for (const auto& f : fields_)
    if (f->spec.key == key) return f.get();
  return nullptr;
}

QString ConfigForm::editField(const QString& key, const QString& text) {
  Field* f = field(key);
  if (!f) return tr("%1: unknown key").arg(key);
  if (read_only_) return tr("%1 cannot change while a run is going").arg(key);
  {
    const QSignalBlocker blocker(f->editor);
    if (auto* edit = qobject_cast<QLineEdit*>(f->editor)) {
      edit->setText(text);
      edit->setModified(false);
    } else if (auto* combo = qobject_cast<QComboBox*>(f->editor)) {
      const int index = combo->findText(text);
      if (index >= 0) combo->setCurrentIndex(index);
    } else if (auto* box = qobject_cast<QCheckBox*>(f->editor)) {
      if (const auto value = boolJson(text)) box->setChecked(*value == QLatin1String("true"));
    }
  }
  return commit(*f, text);
}

QString ConfigForm::fieldError(const QString& key) const {
  const Field* f = field(key);
  return f ? f->error : QString();
}

QWidget* ConfigForm::fieldEditor(const QString& key) const {
  const Field* f = field(key);
  return f ? f->editor : nullptr;
}

QLabel* ConfigForm::errorLabel(const QString& key) const {
  const Field* f = field(key);
  return f ? f->error_label : nullptr;
}

bool ConfigForm::hasErrors() const {
  for (const auto& f : fields_)
    if (!f->error.isEmpty()) return true;
  return false;
}

void ConfigForm::setReadOnly(bool read_only) {
  read_only_ = read_only;
  for (auto& f : fields_) {
    if (auto* edit = qobject_cast<QLineEdit*>(f->editor))
      edit->setReadOnly(read_only);
    else
      f->editor->setEnabled(!read_only);
  }
}

void ConfigForm::setFilter(const QString& text) { filter_->setText(text); }

bool ConfigForm::isFieldShown(const QString& key) const {
  const Field* f = field(key);
  if (!f) return false;
  const QStringList words = filter_->text().split(' ', Qt::SkipEmptyParts);
  const QString haystack = f->spec.key + ' ' + f->spec.help;
  for (const QString& word : words)
    if (!haystack.contains(word, Qt::CaseInsensitive)) return false;
  return true;
}

void ConfigForm::applyFilter() {
  const bool filtering = !filter_->text().trimmed().isEmpty();
  QMap<Section*, int> shown;
  for (auto& f : fields_) {
    const bool match = isFieldShown(f->spec.key);
    f->row->setVisible(match);
    if (match) ++shown[f->section];
  }
  for (auto& section : sections_) {
    const int n = shown.value(section.get());
    section->frame->setVisible(n > 0);
    // A match inside a collapsed section would otherwise stay out of sight.
    if (filtering && n > 0) section->header->setChecked(true);
  }
  const bool none = !fields_.empty() && shown.isEmpty();
  no_match_->setText(tr("No key matches “%1”.").arg(filter_->text().trimmed()));
  no_match_->setVisible(none);
}

}  // namespace mst
