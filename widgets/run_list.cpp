/// @brief RunList: workspace scan for run.h5 files, relative times, live markers, context menu.
#include "widgets/run_list.h"

#include <QApplication>
#include <QClipboard>
#include <QDesktopServices>
#include <QDir>
#include <QEvent>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QMenu>
#include <QStackedLayout>
#include <QStyle>
#include <QTimer>
#include <QTreeWidget>
#include <QUrl>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

namespace mst {

namespace {

enum Column { kName = 0, kModified, kSize, kReadout, kLive, kColumnCount };
constexpr int kDirRole = Qt::UserRole;
constexpr int kSortRole = Qt::UserRole + 1;
constexpr int kRescanMs = 2000;
constexpr qint64 kLiveSeconds = 30;
constexpr int kMinNameWidth = 130;
const char kRunFile[] = "run.h5";

QString cleanAbsolute(const QString& path) {
  return QDir::cleanPath(QFileInfo(path).absoluteFilePath());
}

/// "12 s ago", "3 min ago", "5 h ago", "2 d ago", then the date.
QString relativeTime(const QDateTime& when, const QDateTime& now) {
  const qint64 s = std::max<qint64>(0, when.secsTo(now));
  if (s < 60) return RunList::tr("%1 s ago").arg(s);
  if (s < 3600) return RunList::tr("%1 min ago").arg(s / 60);
  if (s < 86400) return RunList::tr("%1 h ago").arg(s / 3600);
  if (s < 7 * 86400) return RunList::tr("%1 d ago").arg(s / 86400);
  return QLocale().toString(when.date(), QLocale::ShortFormat);
}

/// Sorts each column by its raw value (times and sizes as numbers, names case-insensitively).
class RunItem : public QTreeWidgetItem {
 public:
  using QTreeWidgetItem::QTreeWidgetItem;
  bool operator<(const QTreeWidgetItem& other) const override {
    const int column = treeWidget() ? treeWidget()->sortColumn() : kModified;
    const QVariant a = data(column, kSortRole), b = other.data(column, kSortRole);
    if (a.typeId() == QMetaType::QString) return a.toString() < b.toString();
    return a.toLongLong() < b.toLongLong();
  }
};

}  // namespace

RunList::RunList(QWidget* parent) : QWidget(parent) {
  tree_ = new QTreeWidget(this);
  tree_->setColumnCount(kColumnCount);
  tree_->setHeaderLabels({tr("Run"), tr("Modified"), tr("Size"), tr("Top-1"), tr("Status")});
  tree_->setRootIsDecorated(false);
  // Sweep cells share their beginning ("table5/…"): cut names in the middle, where they agree.
  tree_->setTextElideMode(Qt::ElideMiddle);
  tree_->setUniformRowHeights(true);
  tree_->setAlternatingRowColors(true);
  tree_->setSelectionMode(QAbstractItemView::ExtendedSelection);
  tree_->setContextMenuPolicy(Qt::CustomContextMenu);
  tree_->setSortingEnabled(true);
  tree_->sortByColumn(kModified, Qt::DescendingOrder);
  tree_->headerItem()->setToolTip(kName, tr("Checked runs are overlaid in the plots"));
  tree_->headerItem()->setToolTip(
      kReadout, tr("k-NN / linear-probe top-1 % of the run's checkpoint (Evaluate in the run's "
                   "menu, or mst eval --record)"));
  QHeaderView* header = tree_->header();
  header->setStretchLastSection(false);
  // The name takes what the other columns leave, but never less than kMinNameWidth: in a narrow
  // dock the table scrolls sideways rather than squeeze the names to nothing (fitColumns).
  header->setSectionResizeMode(kName, QHeaderView::Interactive);
  connect(header, &QHeaderView::sectionResized, this, [this](int section) {
    if (section != kName) fitColumns();
  });
  tree_->viewport()->installEventFilter(this);
  // Size starts hidden: in the usual narrow dock the read-outs matter more. The header's
  // right-click menu shows or hides any column but the name.
  header->setSectionHidden(kSize, true);
  header->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(header, &QHeaderView::customContextMenuRequested, this, [this](const QPoint& pos) {
    QMenu menu(this);
    QHeaderView* h = tree_->header();
    for (int c = 1; c < kColumnCount; ++c) {
      QAction* a = menu.addAction(tree_->headerItem()->text(c));
      a->setCheckable(true);
      a->setChecked(!h->isSectionHidden(c));
      connect(a, &QAction::toggled, this, [this, c](bool on) {
        tree_->header()->setSectionHidden(c, !on);
        fitColumns();
      });
    }
    menu.exec(h->viewport()->mapToGlobal(pos));
  });
  for (int c : {kModified, kSize, kReadout, kLive})
    header->setSectionResizeMode(c, QHeaderView::ResizeToContents);
  tree_->headerItem()->setTextAlignment(kSize, Qt::AlignRight | Qt::AlignVCenter);
  tree_->headerItem()->setTextAlignment(kReadout, Qt::AlignRight | Qt::AlignVCenter);

  empty_ = new QLabel(this);
  empty_->setAlignment(Qt::AlignCenter);
  empty_->setWordWrap(true);
  empty_->setMargin(12);
  empty_->setForegroundRole(QPalette::PlaceholderText);

  stack_ = new QStackedLayout;
  stack_->addWidget(tree_);
  stack_->addWidget(empty_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addLayout(stack_);

  connect(tree_, &QTreeWidget::itemChanged, this, &RunList::onItemChanged);
  connect(tree_, &QTreeWidget::itemActivated, this, [this](QTreeWidgetItem* item) {
    emit activated(item->data(kName, kDirRole).toString());
  });
  connect(tree_, &QTreeWidget::customContextMenuRequested, this, &RunList::showContextMenu);

  // Polling, not QFileSystemWatcher: a watcher sees neither new files two levels down nor the
  // appends of a writer that keeps run.h5 open, and the scan is a few dozen stat calls.
  timer_ = new QTimer(this);
  timer_->setInterval(kRescanMs);
  connect(timer_, &QTimer::timeout, this, &RunList::rescan);
  timer_->start();
  rescan();
}

RunList::~RunList() = default;

void RunList::fitColumns() {
  QHeaderView* header = tree_->header();
  int others = 0;
  for (int c = 0; c < kColumnCount; ++c)
    if (c != kName && !header->isSectionHidden(c)) others += header->sectionSize(c);
  header->resizeSection(kName, std::max(kMinNameWidth, tree_->viewport()->width() - others));
}

bool RunList::eventFilter(QObject* watched, QEvent* event) {
  if (watched == tree_->viewport() && event->type() == QEvent::Resize) fitColumns();
  return QWidget::eventFilter(watched, event);
}

void RunList::setWorkspace(const QString& dir) {
  workspace_ = dir.isEmpty() ? QString() : cleanAbsolute(dir);
  rescan();
}

QString RunList::workspace() const { return workspace_; }

void RunList::addRun(const QString& run_dir) {
  QFileInfo info(run_dir);
  const QString dir = info.isFile() ? cleanAbsolute(info.absolutePath()) : cleanAbsolute(run_dir);
  if (!external_.contains(dir)) external_ << dir;
  rescan();
}

QVector<RunList::Entry> RunList::scanWorkspace() const {
  QVector<Entry> entries;
  if (workspace_.isEmpty()) return entries;
  auto consider = [&entries](const QString& dir) {
    const QFileInfo log(dir + '/' + kRunFile);
    if (log.isFile()) entries.push_back({dir, log.lastModified(), 0});
  };
  const QDir root(workspace_);
  for (const QString& name : root.entryList(QDir::Dirs | QDir::NoDotAndDotDot)) {
    const QString dir = workspace_ + '/' + name;
    consider(dir);
    for (const QString& cell : QDir(dir).entryList(QDir::Dirs | QDir::NoDotAndDotDot))
      consider(dir + '/' + cell);
  }
  return entries;
}

void RunList::rescan() {
  QMap<QString, Entry> found;
  for (const Entry& e : scanWorkspace()) found.insert(e.dir, e);
  for (const QString& dir : external_) {
    if (found.contains(dir) || !QFileInfo(dir).isDir()) continue;
    const QFileInfo log(dir + '/' + kRunFile);
    found.insert(dir, {dir, log.exists() ? log.lastModified() : QFileInfo(dir).lastModified(), 0});
  }
  for (Entry& e : found) {
    // The folder's files (log, checkpoint, inspect files): what deleting the run would free.
    for (const QFileInfo& file : QDir(e.dir).entryInfoList(QDir::Files | QDir::Hidden))
      e.size += file.size();
  }

  QStringList dropped;
  updating_ = true;
  tree_->setSortingEnabled(false);  // sort once at the end, not once per changed cell
  for (int i = tree_->topLevelItemCount() - 1; i >= 0; --i) {
    const QString dir = tree_->topLevelItem(i)->data(kName, kDirRole).toString();
    if (!found.contains(dir)) {
      delete tree_->takeTopLevelItem(i);
      if (shown_.take(dir)) dropped << dir;
    }
  }
  for (const Entry& e : found) {
    QTreeWidgetItem* item = itemFor(e.dir);
    if (!item) {
      item = new RunItem(tree_);
      item->setData(kName, kDirRole, e.dir);
      item->setCheckState(kName, Qt::Unchecked);
      item->setIcon(kName, style()->standardIcon(QStyle::SP_DirIcon));
      item->setTextAlignment(kSize, Qt::AlignRight | Qt::AlignVCenter);
    }
    updateItem(item, e);
  }
  tree_->setSortingEnabled(true);
  updating_ = false;
  stack_->setCurrentWidget(found.isEmpty() ? static_cast<QWidget*>(empty_) : tree_);
  empty_->setText(workspace_.isEmpty()
                      ? tr("No workspace folder chosen.")
                      : tr("No runs in %1 yet.\nEach sub-folder with a run.h5 shows up here.")
                            .arg(QDir::toNativeSeparators(workspace_)));
  for (const QString& dir : dropped) emit shownChanged(dir, false);
}

void RunList::setLiveCheck(std::function<bool(const QString&)> check, const QString& reason) {
  live_check_ = std::move(check);
  live_reason_ = reason;
}

void RunList::updateItem(QTreeWidgetItem* item, const Entry& e) {
  const QDateTime now = QDateTime::currentDateTime();
  QString name;
  if (!workspace_.isEmpty() && e.dir.startsWith(workspace_ + '/')) {
    name = QDir(workspace_).relativeFilePath(e.dir);
  } else {
    // Outside the workspace: the run folder and its parent (a sweep and its cell, say) tell
    // runs apart where a full path cut at the column's edge would not; the tooltip has the rest.
    const QFileInfo dir(e.dir);
    const QString parent = dir.dir().dirName();
    name = QDir::toNativeSeparators((parent.isEmpty() ? QString() : "…/" + parent + "/") +
                                    dir.fileName());
  }
  item->setText(kName, name);
  item->setToolTip(kName, QDir::toNativeSeparators(e.dir));
  item->setData(kName, kSortRole, name.toLower());

  item->setText(kModified, relativeTime(e.modified, now));
  item->setToolTip(kModified, QLocale().toString(e.modified, QLocale::LongFormat));
  item->setData(kModified, kSortRole, e.modified.toMSecsSinceEpoch());

  item->setText(kSize, QLocale().formattedDataSize(e.size, 1, QLocale::DataSizeTraditionalFormat));
  item->setData(kSize, kSortRole, e.size);

  const Readout readout = readout_ ? readout_(e.dir) : Readout{};
  item->setText(kReadout, readout.text);
  item->setToolTip(kReadout, readout.tooltip);
  item->setTextAlignment(kReadout, Qt::AlignRight | Qt::AlignVCenter);
  item->setData(kReadout, kSortRole, qint64(std::llround(readout.sort * 1000)));

  const qint64 age = e.modified.secsTo(now);
  const bool live =
      live_check_ ? live_check_(e.dir) : age >= -kLiveSeconds && age <= kLiveSeconds;
  item->setText(kLive, live ? tr("● live") : QString());
  item->setForeground(kLive, QColor("#2e7d32"));
  const QString reason =
      live_check_ ? live_reason_ : tr("run.h5 was written in the last %1 s").arg(kLiveSeconds);
  item->setToolTip(kLive, live ? reason : QString());
  item->setData(kLive, kSortRole, live ? e.modified.toMSecsSinceEpoch() : 0);
}

void RunList::setReadoutProvider(std::function<Readout(const QString&)> provider) {
  readout_ = std::move(provider);
  rescan();
}

QString RunList::selectedRun() const {
  const QList<QTreeWidgetItem*> selected = tree_->selectedItems();
  QTreeWidgetItem* item = tree_->currentItem();
  if (!item || !selected.contains(item)) item = selected.isEmpty() ? nullptr : selected.front();
  return item ? item->data(kName, kDirRole).toString() : QString();
}

QString RunList::readoutText(const QString& run_dir) const {
  const QTreeWidgetItem* item = itemFor(cleanAbsolute(run_dir));
  return item ? item->text(kReadout) : QString();
}

QByteArray RunList::saveColumns() const { return tree_->header()->saveState(); }

void RunList::restoreColumns(const QByteArray& state) {
  if (state.isEmpty() || !tree_->header()->restoreState(state)) return;
  tree_->header()->setSectionHidden(kName, false);  // the name is never hidden
  fitColumns();
}

QString RunList::readoutToolTip(const QString& run_dir) const {
  const QTreeWidgetItem* item = itemFor(cleanAbsolute(run_dir));
  return item ? item->toolTip(kReadout) : QString();
}

void RunList::addRunAction(const QString& text, std::function<void(const QString&)> act,
                           std::function<bool(const QString&)> enabled) {
  run_actions_.push_back({text, std::move(act), std::move(enabled)});
}

QTreeWidgetItem* RunList::itemFor(const QString& run_dir) const {
  for (int i = 0; i < tree_->topLevelItemCount(); ++i) {
    QTreeWidgetItem* item = tree_->topLevelItem(i);
    if (item->data(kName, kDirRole).toString() == run_dir) return item;
  }
  return nullptr;
}

int RunList::count() const { return tree_->topLevelItemCount(); }

QStringList RunList::runs() const {
  QStringList out;
  for (int i = 0; i < tree_->topLevelItemCount(); ++i)
    out << tree_->topLevelItem(i)->data(kName, kDirRole).toString();
  return out;
}

QStringList RunList::shownRuns() const {
  QStringList out;
  for (int i = 0; i < tree_->topLevelItemCount(); ++i) {
    const QTreeWidgetItem* item = tree_->topLevelItem(i);
    if (item->checkState(kName) == Qt::Checked) out << item->data(kName, kDirRole).toString();
  }
  return out;
}

void RunList::setShown(const QString& run_dir, bool shown) {
  if (QTreeWidgetItem* item = itemFor(cleanAbsolute(run_dir)))
    item->setCheckState(kName, shown ? Qt::Checked : Qt::Unchecked);  // onItemChanged emits
}

void RunList::onItemChanged(QTreeWidgetItem* item, int column) {
  if (updating_ || column != kName) return;
  const QString dir = item->data(kName, kDirRole).toString();
  const bool shown = item->checkState(kName) == Qt::Checked;
  if (shown_.value(dir, false) == shown) return;
  if (shown)
    shown_.insert(dir, true);
  else
    shown_.remove(dir);
  emit shownChanged(dir, shown);
}

void RunList::showContextMenu(const QPoint& pos) {
  QTreeWidgetItem* item = tree_->itemAt(pos);
  QMenu menu(this);
  if (item) {
    // "Show in plots" acts on the whole selection when the clicked run is part of it.
    QList<QTreeWidgetItem*> targets = tree_->selectedItems();
    if (!targets.contains(item)) targets = {item};
    const QString dir = item->data(kName, kDirRole).toString();
    QAction* show = menu.addAction(tr("Show in plots"));
    show->setCheckable(true);
    show->setChecked(item->checkState(kName) == Qt::Checked);
    connect(show, &QAction::toggled, this, [this, targets](bool on) {
      for (QTreeWidgetItem* t : targets) setShown(t->data(kName, kDirRole).toString(), on);
    });
    menu.addSeparator();
    for (const RunAction& a : run_actions_)
      menu.addAction(a.text, this, [act = a.act, dir] { act(dir); })
          ->setEnabled(!a.enabled || a.enabled(dir));
    if (!run_actions_.isEmpty()) menu.addSeparator();
    menu.addAction(style()->standardIcon(QStyle::SP_DirOpenIcon), tr("Open folder"), this,
                   [dir] { QDesktopServices::openUrl(QUrl::fromLocalFile(dir)); });
    menu.addAction(tr("Copy path"), this,
                   [dir] { QApplication::clipboard()->setText(QDir::toNativeSeparators(dir)); });
    menu.addSeparator();
  }
  menu.addAction(style()->standardIcon(QStyle::SP_BrowserReload), tr("Rescan now"), this,
                 &RunList::rescan);
  menu.exec(tree_->viewport()->mapToGlobal(pos));
}

}  // namespace mst
