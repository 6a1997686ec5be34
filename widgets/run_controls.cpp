/// @brief RunControls: buttons, icons, shortcuts and per-state enabling.
#include "widgets/run_controls.h"

#include <QHBoxLayout>
#include <QKeySequence>
#include <QPushButton>
#include <QShortcut>
#include <QStyle>

namespace mst {

namespace {

QPushButton* makeButton(QWidget* parent, QStyle::StandardPixmap icon, const QString& text,
                        const QString& tip, const QKeySequence& keys) {
  auto* button = new QPushButton(parent->style()->standardIcon(icon), text, parent);
  button->setToolTip(QStringLiteral("%1 (%2)").arg(tip, keys.toString(QKeySequence::NativeText)));
  button->setMinimumWidth(80);
  return button;
}

}  // namespace

RunControls::RunControls(QWidget* parent) : QWidget(parent) {
  const QKeySequence start_keys(Qt::CTRL | Qt::Key_R);
  const QKeySequence pause_keys(Qt::CTRL | Qt::Key_P);
  const QKeySequence stop_keys(Qt::CTRL | Qt::Key_Period);
  start_ = makeButton(this, QStyle::SP_MediaPlay, tr("Start"), tr("Start training"), start_keys);
  pause_ = makeButton(this, QStyle::SP_MediaPause, tr("Pause"), tr("Pause after the current step"),
                      pause_keys);
  resume_ = makeButton(this, QStyle::SP_MediaPlay, tr("Resume"), tr("Resume training"), pause_keys);
  stop_ = makeButton(this, QStyle::SP_MediaStop, tr("Stop"),
                     tr("Stop after the current step and write a checkpoint"), stop_keys);
  start_->setShortcut(start_keys);
  stop_->setShortcut(stop_keys);
  // Pause and Resume share Ctrl+P; one shortcut object avoids an ambiguous key between buttons.
  auto* toggle = new QShortcut(pause_keys, this);
  toggle->setContext(Qt::WindowShortcut);
  connect(toggle, &QShortcut::activated, this, [this] {
    if (pause_->isEnabled())
      pause_->click();
    else if (resume_->isEnabled())
      resume_->click();
  });

  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->setSpacing(6);
  for (QPushButton* b : {start_, pause_, resume_, stop_}) layout->addWidget(b);
  layout->addStretch(1);

  connect(start_, &QPushButton::clicked, this, &RunControls::startClicked);
  connect(pause_, &QPushButton::clicked, this, &RunControls::pauseClicked);
  connect(resume_, &QPushButton::clicked, this, &RunControls::resumeClicked);
  connect(stop_, &QPushButton::clicked, this, &RunControls::stopClicked);
  setState(RunState::Idle);
}

void RunControls::setState(RunState state) {
  state_ = state;
  start_->setEnabled(state == RunState::Idle);
  pause_->setEnabled(state == RunState::Running);
  resume_->setEnabled(state == RunState::Paused);
  stop_->setEnabled(state == RunState::Running || state == RunState::Paused);
  pause_->setVisible(state != RunState::Paused);
  resume_->setVisible(state == RunState::Paused);
  stop_->setText(state == RunState::Stopping ? tr("Stopping…") : tr("Stop"));
}

RunState RunControls::state() const { return state_; }
QPushButton* RunControls::startButton() const { return start_; }
QPushButton* RunControls::pauseButton() const { return pause_; }
QPushButton* RunControls::resumeButton() const { return resume_; }
QPushButton* RunControls::stopButton() const { return stop_; }

}  // namespace mst
