/// @brief DevicePicker: check boxes per device with CPU/GPU exclusion and selection strings.
#include "widgets/device_picker.h"

#include <QCheckBox>
#include <QGridLayout>
#include <QLabel>
#include <QLocale>
#include <QRegularExpression>

namespace mst {

namespace {

const QRegularExpression& cudaIdPattern() {
  static const QRegularExpression kCuda(QStringLiteral(R"(^cuda:(\d+)$)"));
  return kCuda;
}

}  // namespace

DevicePicker::DevicePicker(QWidget* parent) : QWidget(parent) {
  grid_ = new QGridLayout(this);
  grid_->setContentsMargins(0, 0, 0, 0);
  grid_->setHorizontalSpacing(12);
  grid_->setVerticalSpacing(4);
  grid_->setColumnStretch(2, 1);
  none_ = new QLabel(tr("No compute device found."), this);
  none_->setForegroundRole(QPalette::PlaceholderText);
  grid_->addWidget(none_, 0, 0, 1, 3);
}

bool DevicePicker::isCpu(const DeviceInfo& device) { return !device.id.startsWith("cuda"); }

void DevicePicker::setDevices(const QVector<DeviceInfo>& devices) {
  const QString previous = selection();
  qDeleteAll(row_widgets_);
  row_widgets_.clear();
  boxes_.clear();
  devices_ = devices;

  QPalette dim = palette();
  dim.setColor(QPalette::WindowText, palette().color(QPalette::PlaceholderText));
  for (int i = 0; i < devices_.size(); ++i) {
    const DeviceInfo& d = devices_[i];
    auto* box = new QCheckBox(d.name.isEmpty() ? d.id : d.name, this);
    QString detail = d.id;
    if (d.memory_bytes > 0)
      detail += QStringLiteral("  ·  ") +
                QLocale().formattedDataSize(d.memory_bytes, 1, QLocale::DataSizeIecFormat);
    box->setToolTip(
        isCpu(d) ? tr("Train on the CPU (excludes the GPUs)")
                 : tr("Train on %1; check several GPUs for data-parallel training").arg(d.id));
    auto* label = new QLabel(detail, this);
    label->setPalette(dim);
    grid_->addWidget(box, i + 1, 0);
    grid_->addWidget(label, i + 1, 1);
    connect(box, &QCheckBox::clicked, this, [this, i](bool checked) { onToggled(i, checked); });
    boxes_ << box;
    row_widgets_ << box << label;
  }
  none_->setVisible(devices_.isEmpty());

  updating_ = true;  // one announcement at the end, not one per attempt
  bool kept = !previous.isEmpty() && setSelection(previous);
  if (!kept) {
    QVector<bool> checked(devices_.size(), false);
    int pick = -1;
    for (int i = 0; i < devices_.size() && pick < 0; ++i)
      if (!isCpu(devices_[i])) pick = i;
    if (pick < 0 && !devices_.isEmpty()) pick = 0;
    if (pick >= 0) checked[pick] = true;
    setChecked(checked);
  }
  updating_ = false;
  if (selection() != last_) {
    last_ = selection();
    emit selectionChanged(last_);
  }
}

QString DevicePicker::selection() const {
  QStringList ids;
  QStringList cuda_indices;
  for (int i = 0; i < boxes_.size(); ++i) {
    if (!boxes_[i]->isChecked()) continue;
    const QString& id = devices_[i].id;
    if (isCpu(devices_[i])) return id;
    const auto match = cudaIdPattern().match(id);
    if (match.hasMatch()) cuda_indices << match.captured(1);
    ids << id;
  }
  if (!ids.isEmpty() && cuda_indices.size() == ids.size())
    return QStringLiteral("cuda:") + cuda_indices.join(',');
  return ids.join(',');
}

bool DevicePicker::setSelection(const QString& selection) {
  const QString s = selection.trimmed();
  QVector<bool> checked(devices_.size(), false);
  auto check = [&](const QString& id) {
    for (int i = 0; i < devices_.size(); ++i)
      if (devices_[i].id == id) return checked[i] = true;
    return false;
  };
  if (s == QLatin1String("cuda")) {
    int first = -1;
    for (int i = 0; i < devices_.size() && first < 0; ++i)
      if (!isCpu(devices_[i])) first = i;
    if (first < 0) return false;
    checked[first] = true;
  } else if (s.startsWith(QLatin1String("cuda:"))) {
    const QStringList indices = s.mid(5).split(',');
    for (const QString& index : indices)
      if (index.trimmed().isEmpty() || !check(QStringLiteral("cuda:") + index.trimmed()))
        return false;
  } else if (s.isEmpty() || !check(s)) {
    return false;
  }
  setChecked(checked);
  if (!updating_ && this->selection() != last_) {
    last_ = this->selection();
    emit selectionChanged(last_);
  }
  return true;
}

QCheckBox* DevicePicker::checkBox(const QString& id) const {
  for (int i = 0; i < devices_.size(); ++i)
    if (devices_[i].id == id) return boxes_[i];
  return nullptr;
}

void DevicePicker::onToggled(int index, bool checked) {
  QVector<bool> state(boxes_.size());
  for (int i = 0; i < boxes_.size(); ++i) state[i] = boxes_[i]->isChecked();
  if (checked) {
    // The CPU and the GPUs exclude each other: the box just checked wins.
    const bool cpu = isCpu(devices_[index]);
    for (int i = 0; i < state.size(); ++i)
      if (i != index && (cpu || isCpu(devices_[i]))) state[i] = false;
  } else if (!state.contains(true)) {
    state[index] = true;  // a run needs a device
  }
  setChecked(state);
  if (selection() != last_) {
    last_ = selection();
    emit selectionChanged(last_);
  }
}

void DevicePicker::setChecked(const QVector<bool>& checked) {
  for (int i = 0; i < boxes_.size(); ++i) boxes_[i]->setChecked(checked.value(i));
}

}  // namespace mst
