/// @brief RunControls: Start / Pause / Resume / Stop buttons that follow the run's state.
#pragma once

#include <QWidget>

class QPushButton;

namespace mst {

enum class RunState { Idle, Running, Paused, Stopping };

/// The training buttons. They only report clicks: the app starts or stops the run and then
/// calls setState, so the buttons never claim a state the engine is not in.
class RunControls : public QWidget {
  Q_OBJECT
 public:
  explicit RunControls(QWidget* parent = nullptr);
  /// Enables the buttons that make sense: Idle: Start; Running: Pause, Stop; Paused: Resume,
  /// Stop; Stopping: none. Pause and Resume share a place: the one that does not apply is hidden.
  void setState(RunState state);
  RunState state() const;
  QPushButton* startButton() const;
  QPushButton* pauseButton() const;
  QPushButton* resumeButton() const;
  QPushButton* stopButton() const;

 signals:
  void startClicked();
  void pauseClicked();
  void resumeClicked();
  void stopClicked();

 private:
  RunState state_ = RunState::Idle;
  QPushButton* start_ = nullptr;
  QPushButton* pause_ = nullptr;
  QPushButton* resume_ = nullptr;
  QPushButton* stop_ = nullptr;
};

}  // namespace mst
