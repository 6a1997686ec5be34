/// @brief DevicePicker: choose the CPU, one GPU or several GPUs to train on.
#pragma once

#include <QString>
#include <QVector>
#include <QWidget>

class QCheckBox;
class QGridLayout;
class QLabel;

namespace mst {

/// One compute device as the picker lists it (the app converts core's DeviceDescription).
struct DeviceInfo {
  QString id;               // "cpu", "cuda:0", ...
  QString name;             // "CPU (16 threads)", "NVIDIA H100 80GB HBM3"
  qint64 memory_bytes = 0;  // 0 = not shown
};

/// One check box per device. The CPU and the GPUs exclude each other; several GPUs may be checked
/// together (data parallel). Never empty while there is a device: unchecking the last one is
/// undone.
class DevicePicker : public QWidget {
  Q_OBJECT
 public:
  explicit DevicePicker(QWidget* parent = nullptr);

  /// Lists `devices`; keeps the current selection when it still exists, else picks the first GPU
  /// (the CPU when there is none).
  void setDevices(const QVector<DeviceInfo>& devices);
  /// "cpu", "cuda:0" or "cuda:0,1" (several GPUs checked); CPU excludes GPUs. "" with no devices.
  QString selection() const;
  /// Accepts what selection() returns, and "cuda" for the first GPU (as the CLI's --device does).
  /// False, changing nothing, when a named device is not listed.
  bool setSelection(const QString& selection);
  /// The check box of device `id` (nullptr when not listed).
  QCheckBox* checkBox(const QString& id) const;

 signals:
  /// Emitted whenever selection() changes, by the user or by the calls above.
  void selectionChanged(const QString& selection);

 private:
  void onToggled(int index, bool checked);
  void setChecked(const QVector<bool>& checked);
  static bool isCpu(const DeviceInfo& device);

  QVector<DeviceInfo> devices_;
  QVector<QCheckBox*> boxes_;
  QVector<QWidget*> row_widgets_;  // check boxes and detail labels, deleted by setDevices
  QGridLayout* grid_ = nullptr;
  QLabel* none_ = nullptr;
  QString last_;  // selection() as last announced
  bool updating_ = false;
};

}  // namespace mst
