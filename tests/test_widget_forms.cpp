/// @brief Experiment widgets: config form (editors, JSON, validation, filter), run list, device
/// picker and run controls.
#include <QCheckBox>
#include <QComboBox>
#include <QFile>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QTemporaryDir>
#include <QTreeWidget>
#include <QtTest>

#include "widgets/config_form.h"
#include "widgets/device_picker.h"
#include "widgets/run_controls.h"
#include "widgets/run_list.h"

using namespace mst;

Q_DECLARE_METATYPE(mst::RunState)

namespace {

const QString kRejectP = QStringLiteral("masking.p: must be in [0, 1] (got %1)");

QVector<FieldSpec> sampleFields() {
  return {
      {"data.path", "string", "Data set location.", {}},
      {"data.format",
       "string",
       "Reader for data.path.",
       {"fashion_mnist", "cifar10", "image_folder"}},
      {"data.mean", "number[]", "Per-channel normalisation mean; [] = the data set's own.", {}},
      {"model.decoder_widths", "integer[]", "Channel widths of the decoder stages.", {}},
      {"model.norm_last_layer", "bool", "Freeze the weight-norm gain of the last layer.", {}},
      {"augment.blur_sigma_max", "number", "Gaussian blur sigma range in pixels (max).", {}},
      {"masking.strategy",
       "string",
       "Which patches the student sees as [MASK].",
       {"none", "random", "attention_guided", "attention_high"}},
      {"masking.p", "number", "Masking probability of each candidate patch.", {}},
      {"masking.num", "integer", "The lowest floor(n/num) attention patches are candidates.", {}},
  };
}

QMap<QString, QString> sampleValues() {
  return {{"data.path", "\"/data/fmnist\""},
          {"data.format", "\"fashion_mnist\""},
          {"data.mean", "[]"},
          {"model.decoder_widths", "[32,16]"},
          {"model.norm_last_layer", "true"},
          {"augment.blur_sigma_max", "2.0"},
          {"masking.strategy", "\"attention_guided\""},
          {"masking.p", "0.1"},
          {"masking.num", "8"}};
}

/// A form with the sample fields and values whose validator rejects masking.p outside [0, 1] and
/// records every call, so that tests can tell whether the form asked it at all.
struct FormFixture {
  ConfigForm form;
  QStringList calls;  // "key=json" per validator call
  FormFixture() {
    form.setFields(sampleFields());
    form.setValues(sampleValues());
    form.setValidator([this](const QString& key, const QString& json) {
      calls << key + '=' + json;
      if (key == "masking.p") {
        const double p = json.toDouble();
        if (p < 0 || p > 1) return kRejectP.arg(json);
      }
      return QString();
    });
    form.resize(520, 700);
    form.show();
  }
};

void touch(const QString& path, const QDateTime& modified = QDateTime::currentDateTime()) {
  QDir().mkpath(QFileInfo(path).absolutePath());
  QFile file(path);
  QVERIFY(file.open(QIODevice::WriteOnly));
  file.close();
  QVERIFY(file.open(QIODevice::ReadWrite));  // setFileTime needs an open file
  QVERIFY(file.setFileTime(modified, QFileDevice::FileModificationTime));
}

QString clean(const QString& path) { return QDir::cleanPath(QFileInfo(path).absoluteFilePath()); }

QTreeWidgetItem* itemForRun(RunList& list, const QString& dir) {
  for (int i = 0; i < list.tree()->topLevelItemCount(); ++i)
    if (list.runs().value(i) == dir) return list.tree()->topLevelItem(i);
  return nullptr;
}

QVector<DeviceInfo> threeDevices() {
  return {{"cpu", "CPU (16 threads)", 0},
          {"cuda:0", "NVIDIA H100 80GB HBM3", 85520809984},
          {"cuda:1", "NVIDIA H100 80GB HBM3", 85520809984}};
}

}  // namespace

class TestWidgetForms : public QObject {
  Q_OBJECT

 private slots:
  // ---------------------------------------------------------------- ConfigForm
  void formBuildsTheRightEditor_data() {
    QTest::addColumn<QString>("key");
    QTest::addColumn<QString>("editor_class");
    QTest::newRow("string") << "data.path"
                            << "QLineEdit";
    QTest::newRow("string with choices") << "data.format"
                                         << "QComboBox";
    QTest::newRow("number[]") << "data.mean"
                              << "QLineEdit";
    QTest::newRow("integer[]") << "model.decoder_widths"
                               << "QLineEdit";
    QTest::newRow("bool") << "model.norm_last_layer"
                          << "QCheckBox";
    QTest::newRow("number") << "masking.p"
                            << "QLineEdit";
    QTest::newRow("integer") << "masking.num"
                             << "QLineEdit";
    QTest::newRow("enumerated strategy") << "masking.strategy"
                                         << "QComboBox";
  }
  void formBuildsTheRightEditor() {
    QFETCH(QString, key);
    QFETCH(QString, editor_class);
    FormFixture f;
    QWidget* editor = f.form.fieldEditor(key);
    QVERIFY(editor);
    QCOMPARE(QString(editor->metaObject()->className()), editor_class);
    QVERIFY(editor->isVisible());
    QVERIFY(f.form.errorLabel(key));
    QVERIFY(!f.form.errorLabel(key)->isVisible());
    QVERIFY(editor->toolTip().contains(key));  // help as tooltip, with the full key
  }

  void formHasAnEditorForEveryField() {
    FormFixture f;
    QSet<QWidget*> editors;
    for (const FieldSpec& spec : sampleFields()) {
      QVERIFY2(f.form.fieldEditor(spec.key), qPrintable(spec.key));
      editors.insert(f.form.fieldEditor(spec.key));
    }
    QCOMPARE(editors.size(), sampleFields().size());
    QVERIFY(!f.form.fieldEditor("masking.q"));
    // Combo boxes offer exactly the choices.
    auto* combo = qobject_cast<QComboBox*>(f.form.fieldEditor("masking.strategy"));
    QCOMPARE(combo->count(), 4);
    QCOMPARE(combo->currentText(), QString("attention_guided"));
  }

  void rejectedEditShowsTheMessage() {
    FormFixture f;
    QSignalSpy spy(&f.form, &ConfigForm::valueChanged);
    const QString error = f.form.editField("masking.p", "1.5");
    QCOMPARE(error, kRejectP.arg("1.5"));
    QCOMPARE(f.calls, QStringList{"masking.p=1.5"});
    QCOMPARE(f.form.fieldError("masking.p"), error);
    QVERIFY(f.form.errorLabel("masking.p")->isVisible());
    QCOMPARE(f.form.errorLabel("masking.p")->text(), error);
    QVERIFY(f.form.fieldEditor("masking.p")->styleSheet().contains("border"));  // red frame
    QVERIFY(f.form.hasErrors());
    QCOMPARE(spy.count(), 0);
    QCOMPARE(f.form.values().value("masking.p"), QString("0.1"));  // the accepted value stays
    // The editor keeps what was typed, so the user can correct it.
    QCOMPARE(qobject_cast<QLineEdit*>(f.form.fieldEditor("masking.p"))->text(), QString("1.5"));
    // Other fields are untouched.
    QVERIFY(f.form.fieldError("masking.num").isEmpty());
  }

  void validEditEmitsJson_data() {
    QTest::addColumn<QString>("key");
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("json");
    QTest::addColumn<QString>("shown");  // the editor text afterwards
    QTest::newRow("choice quoted") << "masking.strategy"
                                   << "random"
                                   << "\"random\""
                                   << "random";
    QTest::newRow("string quoted") << "data.path"
                                   << "/tmp/a \"b\""
                                   << "\"/tmp/a \\\"b\\\"\""  // moc misreads raw strings with \"
                                   << "/tmp/a \"b\"";
    QTest::newRow("integer list") << "model.decoder_widths"
                                  << "64, 32"
                                  << "[64,32]"
                                  << "64, 32";
    QTest::newRow("bracketed list") << "model.decoder_widths"
                                    << "[16,8, 4]"
                                    << "[16,8,4]"
                                    << "16, 8, 4";
    QTest::newRow("empty list") << "model.decoder_widths"
                                << ""
                                << "[]"
                                << "";
    QTest::newRow("number list") << "data.mean"
                                 << "0.5, .25"
                                 << "[0.5,0.25]"
                                 << "0.5, 0.25";
    QTest::newRow("number as typed") << "masking.p"
                                     << "0.25"
                                     << "0.25"
                                     << "0.25";
    QTest::newRow("exponent as typed") << "masking.p"
                                       << "1e-3"
                                       << "1e-3"
                                       << "1e-3";
    QTest::newRow("leading dot") << "masking.p"
                                 << " .5 "
                                 << "0.5"
                                 << "0.5";
    QTest::newRow("integer") << "masking.num"
                             << "4"
                             << "4"
                             << "4";
    QTest::newRow("bool") << "model.norm_last_layer"
                          << "false"
                          << "false"
                          << "";
  }
  void validEditEmitsJson() {
    QFETCH(QString, key);
    QFETCH(QString, text);
    QFETCH(QString, json);
    QFETCH(QString, shown);
    FormFixture f;
    QSignalSpy spy(&f.form, &ConfigForm::valueChanged);
    QCOMPARE(f.form.editField(key, text), QString());
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.at(0).at(0).toString(), key);
    QCOMPARE(spy.at(0).at(1).toString(), json);
    QCOMPARE(f.calls, QStringList{key + '=' + json});  // the validator saw the same JSON
    QCOMPARE(f.form.values().value(key), json);
    QVERIFY(f.form.fieldError(key).isEmpty());
    if (auto* edit = qobject_cast<QLineEdit*>(f.form.fieldEditor(key)))
      QCOMPARE(edit->text(), shown);
    if (auto* box = qobject_cast<QCheckBox*>(f.form.fieldEditor(key)))
      QCOMPARE(box->isChecked(), json == "true");
    if (auto* combo = qobject_cast<QComboBox*>(f.form.fieldEditor(key)))
      QCOMPARE(combo->currentText(), shown);
  }

  void validEditClearsTheError() {
    FormFixture f;
    QSignalSpy spy(&f.form, &ConfigForm::valueChanged);
    QVERIFY(!f.form.editField("masking.p", "-0.5").isEmpty());
    QVERIFY(f.form.errorLabel("masking.p")->isVisible());
    QCOMPARE(f.form.editField("masking.p", "0.5"), QString());
    QVERIFY(f.form.fieldError("masking.p").isEmpty());
    QVERIFY(!f.form.errorLabel("masking.p")->isVisible());
    QVERIFY(f.form.fieldEditor("masking.p")->styleSheet().isEmpty());
    QVERIFY(!f.form.hasErrors());
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.at(0).at(1).toString(), QString("0.5"));
  }

  void sameValueDoesNotEmit() {
    FormFixture f;
    QSignalSpy spy(&f.form, &ConfigForm::valueChanged);
    QCOMPARE(f.form.editField("masking.num", "8"), QString());
    QCOMPARE(spy.count(), 0);
  }

  void badTextSkipsTheValidator_data() {
    QTest::addColumn<QString>("key");
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("error");
    QTest::newRow("number") << "masking.p"
                            << "abc"
                            << "masking.p expects a number";
    QTest::newRow("nan") << "masking.p"
                         << "nan"
                         << "masking.p expects a number";
    QTest::newRow("integer") << "masking.num"
                             << "2.5"
                             << "masking.num expects an integer";
    QTest::newRow("integer list") << "model.decoder_widths"
                                  << "64, x"
                                  << "model.decoder_widths expects integers separated by commas "
                                     "(e.g. 64, 32)";
    QTest::newRow("bool") << "model.norm_last_layer"
                          << "maybe"
                          << "model.norm_last_layer expects true or false";
    QTest::newRow("choice") << "data.format"
                            << "mnist"
                            << "data.format expects one of: fashion_mnist, cifar10, image_folder";
  }
  void badTextSkipsTheValidator() {
    QFETCH(QString, key);
    QFETCH(QString, text);
    QFETCH(QString, error);
    FormFixture f;
    QSignalSpy spy(&f.form, &ConfigForm::valueChanged);
    QCOMPARE(f.form.editField(key, text), error);
    QVERIFY(f.calls.isEmpty());
    QCOMPARE(f.form.fieldError(key), error);
    QVERIFY(f.form.errorLabel(key)->isVisible());
    QCOMPARE(spy.count(), 0);
    QCOMPARE(f.form.values().value(key), sampleValues().value(key));
  }

  void userInputCommits() {
    FormFixture f;
    QSignalSpy spy(&f.form, &ConfigForm::valueChanged);
    auto* edit = qobject_cast<QLineEdit*>(f.form.fieldEditor("masking.num"));
    edit->selectAll();
    QTest::keyClicks(edit, "16");
    QTest::keyClick(edit, Qt::Key_Return);
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.at(0).at(1).toString(), QString("16"));
    auto* combo = qobject_cast<QComboBox*>(f.form.fieldEditor("masking.strategy"));
    combo->setCurrentIndex(1);
    emit combo->activated(1);  // what a pick from the popup sends
    QCOMPARE(spy.count(), 2);
    QCOMPARE(spy.at(1).at(1).toString(), QString("\"random\""));
    qobject_cast<QCheckBox*>(f.form.fieldEditor("model.norm_last_layer"))->click();
    QCOMPARE(spy.count(), 3);
    QCOMPARE(spy.at(2).at(1).toString(), QString("false"));
  }

  void filterHidesNonMatchingFields_data() {
    QTest::addColumn<QString>("filter");
    QTest::addColumn<QStringList>("shown");
    QTest::newRow("key") << "strategy" << QStringList{"masking.strategy"};
    QTest::newRow("group") << "masking."
                           << QStringList{"masking.strategy", "masking.p", "masking.num"};
    QTest::newRow("help text") << "gaussian" << QStringList{"augment.blur_sigma_max"};
    QTest::newRow("two words") << "data mean" << QStringList{"data.mean"};
    QTest::newRow("nothing") << "zzz" << QStringList{};
  }
  void filterHidesNonMatchingFields() {
    QFETCH(QString, filter);
    QFETCH(QStringList, shown);
    FormFixture f;
    f.form.setFilter(filter);
    for (const FieldSpec& spec : sampleFields()) {
      const bool expected = shown.contains(spec.key);
      QVERIFY2(f.form.isFieldShown(spec.key) == expected, qPrintable(spec.key));
      QVERIFY2(f.form.fieldEditor(spec.key)->isVisible() == expected, qPrintable(spec.key));
    }
    f.form.setFilter("");
    for (const FieldSpec& spec : sampleFields())
      QVERIFY2(f.form.fieldEditor(spec.key)->isVisible(), qPrintable(spec.key));
  }

  void setValuesDoesNotEmit() {
    FormFixture f;
    QVERIFY(!f.form.editField("masking.p", "7").isEmpty());  // an error that setValues clears
    QSignalSpy spy(&f.form, &ConfigForm::valueChanged);
    f.form.setValues({{"masking.p", "0.3"},
                      {"masking.strategy", "\"attention_high\""},
                      {"model.decoder_widths", "[16,8]"},
                      {"model.norm_last_layer", "false"},
                      {"data.path", "\"/x\""}});
    QCOMPARE(spy.count(), 0);
    QVERIFY(f.calls.size() == 1);  // setValues trusts its input: no validator calls
    QVERIFY(!f.form.hasErrors());
    QVERIFY(!f.form.errorLabel("masking.p")->isVisible());
    QCOMPARE(qobject_cast<QLineEdit*>(f.form.fieldEditor("masking.p"))->text(), QString("0.3"));
    QCOMPARE(qobject_cast<QComboBox*>(f.form.fieldEditor("masking.strategy"))->currentText(),
             QString("attention_high"));
    QCOMPARE(qobject_cast<QLineEdit*>(f.form.fieldEditor("model.decoder_widths"))->text(),
             QString("16, 8"));
    QVERIFY(!qobject_cast<QCheckBox*>(f.form.fieldEditor("model.norm_last_layer"))->isChecked());
    QCOMPARE(qobject_cast<QLineEdit*>(f.form.fieldEditor("data.path"))->text(), QString("/x"));
    QCOMPARE(f.form.values().value("masking.p"), QString("0.3"));
    QCOMPARE(f.form.values().value("masking.num"), QString("8"));  // not in the map: kept
  }

  void readOnlyLocksEditors() {
    FormFixture f;
    QSignalSpy spy(&f.form, &ConfigForm::valueChanged);
    f.form.setReadOnly(true);
    QVERIFY(qobject_cast<QLineEdit*>(f.form.fieldEditor("masking.p"))->isReadOnly());
    QVERIFY(!f.form.fieldEditor("masking.strategy")->isEnabled());
    QVERIFY(!f.form.fieldEditor("model.norm_last_layer")->isEnabled());
    QVERIFY(!f.form.editField("masking.p", "0.2").isEmpty());
    QCOMPARE(spy.count(), 0);
    QCOMPARE(f.form.values().value("masking.p"), QString("0.1"));
    f.form.setReadOnly(false);
    QVERIFY(f.form.fieldEditor("masking.strategy")->isEnabled());
    QCOMPARE(f.form.editField("masking.p", "0.2"), QString());
    QCOMPARE(spy.count(), 1);
  }

  // ---------------------------------------------------------------- RunList
  void runListFindsRunsAtDepthOneAndTwo() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QDateTime now = QDateTime::currentDateTime();
    touch(dir.filePath("a/run.h5"), now.addSecs(-3 * 3600));
    touch(dir.filePath("sweep/p0.1_num1/run.h5"), now.addSecs(-600));
    touch(dir.filePath("sweep/p0.1_num2/run.h5"), now.addSecs(-5));
    touch(dir.filePath("sweep/sweep.csv"));
    touch(dir.filePath("deep/x/y/run.h5"));   // depth 3: not a run of this workspace
    touch(dir.filePath("notes/readme.txt"));  // no run.h5
    touch(dir.filePath("run.h5"));            // the workspace itself is not a run
    RunList list;
    list.setWorkspace(dir.path());
    QCOMPARE(list.workspace(), clean(dir.path()));
    QCOMPARE(list.count(), 3);
    // Newest first.
    QCOMPARE(list.runs(),
             (QStringList{clean(dir.filePath("sweep/p0.1_num2")),
                          clean(dir.filePath("sweep/p0.1_num1")), clean(dir.filePath("a"))}));
    QTreeWidgetItem* cell = itemForRun(list, clean(dir.filePath("sweep/p0.1_num2")));
    QCOMPARE(cell->text(0), QString("sweep/p0.1_num2"));  // relative to the workspace
    QVERIFY(!cell->text(4).isEmpty());                    // written 5 s ago: live
    QTreeWidgetItem* old = itemForRun(list, clean(dir.filePath("a")));
    QVERIFY(old->text(4).isEmpty());
    QCOMPARE(old->text(1), QString("3 h ago"));
    QCOMPARE(itemForRun(list, clean(dir.filePath("sweep/p0.1_num1")))->text(1),
             QString("10 min ago"));

    // The highlighted run is the one Run-menu actions act on.
    QVERIFY(list.selectedRun().isEmpty());
    list.tree()->setCurrentItem(old);
    QCOMPARE(list.selectedRun(), clean(dir.filePath("a")));

    // With the app's live check (the trainer's claim), the marker follows it, not the clock.
    list.setLiveCheck([&](const QString& run) { return run == clean(dir.filePath("a")); },
                      "held");
    list.rescan();
    QCOMPARE(itemForRun(list, clean(dir.filePath("a")))->text(4).isEmpty(), false);
    QCOMPARE(itemForRun(list, clean(dir.filePath("a")))->toolTip(4), QString("held"));
    QVERIFY(itemForRun(list, clean(dir.filePath("sweep/p0.1_num2")))->text(4).isEmpty());
    list.setLiveCheck([](const QString&) { return false; }, "held");
    list.rescan();
    QVERIFY(itemForRun(list, clean(dir.filePath("a")))->text(4).isEmpty());

    touch(dir.filePath("b/run.h5"));
    QCOMPARE(list.count(), 3);  // not before the next scan
    list.rescan();
    QCOMPARE(list.count(), 4);
    QCOMPARE(list.runs().first(), clean(dir.filePath("b")));

    QVERIFY(QDir(dir.filePath("a")).removeRecursively());
    list.rescan();
    QCOMPARE(list.count(), 3);
    QVERIFY(!list.runs().contains(clean(dir.filePath("a"))));
  }

  void runListRescansByItself() {
    QTemporaryDir dir;
    RunList list;
    list.setWorkspace(dir.path());
    QCOMPARE(list.count(), 0);
    touch(dir.filePath("late/run.h5"));
    QTRY_COMPARE_WITH_TIMEOUT(list.count(), 1, 5000);
  }

  void runListShownRuns() {
    QTemporaryDir dir;
    const QDateTime now = QDateTime::currentDateTime();
    touch(dir.filePath("a/run.h5"), now.addSecs(-100));
    touch(dir.filePath("b/run.h5"), now.addSecs(-50));
    const QString a = clean(dir.filePath("a")), b = clean(dir.filePath("b"));
    RunList list;
    list.setWorkspace(dir.path());
    QSignalSpy spy(&list, &RunList::shownChanged);
    QVERIFY(list.shownRuns().isEmpty());
    list.setShown(a, true);
    QCOMPARE(list.shownRuns(), QStringList{a});
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.at(0).at(0).toString(), a);
    QCOMPARE(spy.at(0).at(1).toBool(), true);
    list.setShown(a, true);  // no change, no signal
    QCOMPARE(spy.count(), 1);
    list.setShown(dir.path() + "/b/", true);  // any spelling of the folder
    QCOMPARE(list.shownRuns(), (QStringList{b, a}));
    QCOMPARE(spy.count(), 2);
    list.rescan();  // a scan keeps the check marks and says nothing
    QCOMPARE(list.shownRuns(), (QStringList{b, a}));
    QCOMPARE(spy.count(), 2);
    list.setShown(a, false);
    QCOMPARE(list.shownRuns(), QStringList{b});
    QCOMPARE(spy.count(), 3);
    QCOMPARE(spy.at(2).at(1).toBool(), false);
    // The user's check box goes the same way.
    itemForRun(list, a)->setCheckState(0, Qt::Checked);
    QCOMPARE(spy.count(), 4);
    QCOMPARE(list.shownRuns(), (QStringList{b, a}));
    // A shown run that disappears is taken out of the plots.
    QVERIFY(QDir(b).removeRecursively());
    list.rescan();
    QCOMPARE(spy.count(), 5);
    QCOMPARE(spy.at(4).at(0).toString(), b);
    QCOMPARE(spy.at(4).at(1).toBool(), false);
    QCOMPARE(list.shownRuns(), QStringList{a});
  }

  void runListAddsOutsideRuns() {
    QTemporaryDir workspace, outside;
    touch(workspace.filePath("a/run.h5"));
    touch(outside.filePath("run.h5"));
    RunList list;
    list.setWorkspace(workspace.path());
    list.addRun(outside.path());
    QCOMPARE(list.count(), 2);
    list.addRun(outside.filePath("run.h5"));  // the log file names the same run
    QCOMPARE(list.count(), 2);
    QTreeWidgetItem* item = itemForRun(list, clean(outside.path()));
    QVERIFY(item);
    // Named by its folder and the one above (two sweep cells elsewhere differ there), the
    // whole path in the tooltip.
    const QFileInfo info(clean(outside.path()));
    QCOMPARE(item->text(0), QString("…/%1/%2").arg(info.dir().dirName(), info.fileName()));
    QCOMPARE(item->toolTip(0), QDir::toNativeSeparators(clean(outside.path())));
    QSignalSpy activated(&list, &RunList::activated);
    emit list.tree()->itemActivated(item, 0);
    QCOMPARE(activated.count(), 1);
    QCOMPARE(activated.at(0).at(0).toString(), clean(outside.path()));
  }

  // ---------------------------------------------------------------- DevicePicker
  void deviceSelection_data() {
    QTest::addColumn<QString>("request");
    QTest::addColumn<QString>("selection");
    QTest::addColumn<QList<bool>>("checked");  // cpu, cuda:0, cuda:1
    QTest::newRow("cpu") << "cpu"
                         << "cpu" << QList<bool>{true, false, false};
    QTest::newRow("one gpu") << "cuda:1"
                             << "cuda:1" << QList<bool>{false, false, true};
    QTest::newRow("two gpus") << "cuda:0,1"
                              << "cuda:0,1" << QList<bool>{false, true, true};
    QTest::newRow("cuda = first gpu") << "cuda"
                                      << "cuda:0" << QList<bool>{false, true, false};
  }
  void deviceSelection() {
    QFETCH(QString, request);
    QFETCH(QString, selection);
    QFETCH(QList<bool>, checked);
    DevicePicker picker;
    picker.setDevices(threeDevices());
    picker.setSelection(request == "cpu" ? "cuda:1" : "cpu");  // start elsewhere
    QSignalSpy spy(&picker, &DevicePicker::selectionChanged);
    QVERIFY(picker.setSelection(request));
    QCOMPARE(picker.selection(), selection);
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.at(0).at(0).toString(), selection);
    const QStringList ids{"cpu", "cuda:0", "cuda:1"};
    for (int i = 0; i < 3; ++i) QCOMPARE(picker.checkBox(ids[i])->isChecked(), checked[i]);
  }

  void deviceSelectionRejectsUnknown_data() {
    QTest::addColumn<QString>("request");
    QTest::newRow("missing gpu") << "cuda:2";
    QTest::newRow("one of two missing") << "cuda:0,3";
    QTest::newRow("other kind") << "tpu";
    QTest::newRow("empty") << "";
  }
  void deviceSelectionRejectsUnknown() {
    QFETCH(QString, request);
    DevicePicker picker;
    picker.setDevices(threeDevices());
    QVERIFY(picker.setSelection("cuda:1"));
    QSignalSpy spy(&picker, &DevicePicker::selectionChanged);
    QVERIFY(!picker.setSelection(request));
    QCOMPARE(picker.selection(), QString("cuda:1"));
    QCOMPARE(spy.count(), 0);
  }

  void deviceClicksKeepCpuAndGpusApart() {
    DevicePicker picker;
    picker.setDevices(threeDevices());
    QCOMPARE(picker.selection(), QString("cuda:0"));  // the first GPU by default
    QSignalSpy spy(&picker, &DevicePicker::selectionChanged);
    picker.checkBox("cuda:1")->click();
    QCOMPARE(picker.selection(), QString("cuda:0,1"));
    picker.checkBox("cpu")->click();
    QCOMPARE(picker.selection(), QString("cpu"));
    QVERIFY(!picker.checkBox("cuda:0")->isChecked());
    QVERIFY(!picker.checkBox("cuda:1")->isChecked());
    picker.checkBox("cuda:1")->click();
    QCOMPARE(picker.selection(), QString("cuda:1"));
    QVERIFY(!picker.checkBox("cpu")->isChecked());
    picker.checkBox("cuda:1")->click();  // unchecking the last device is undone
    QCOMPARE(picker.selection(), QString("cuda:1"));
    QVERIFY(picker.checkBox("cuda:1")->isChecked());
    QCOMPARE(spy.count(), 3);
    QCOMPARE(spy.at(2).at(0).toString(), QString("cuda:1"));
    // New device lists keep a selection that still exists, else fall back.
    picker.setDevices(threeDevices());
    QCOMPARE(picker.selection(), QString("cuda:1"));
    picker.setDevices({{"cpu", "CPU (2 threads)", 0}});
    QCOMPARE(picker.selection(), QString("cpu"));
    QCOMPARE(spy.count(), 4);
  }

  // ---------------------------------------------------------------- RunControls
  void runControlsEnableByState_data() {
    QTest::addColumn<RunState>("state");
    QTest::addColumn<QList<bool>>("enabled");  // start, pause, resume, stop
    QTest::newRow("idle") << RunState::Idle << QList<bool>{true, false, false, false};
    QTest::newRow("running") << RunState::Running << QList<bool>{false, true, false, true};
    QTest::newRow("paused") << RunState::Paused << QList<bool>{false, false, true, true};
    QTest::newRow("stopping") << RunState::Stopping << QList<bool>{false, false, false, false};
  }
  void runControlsEnableByState() {
    QFETCH(RunState, state);
    QFETCH(QList<bool>, enabled);
    RunControls controls;
    controls.setState(state == RunState::Idle ? RunState::Running : RunState::Idle);
    controls.setState(state);
    QCOMPARE(controls.state(), state);
    const QList<QPushButton*> buttons{controls.startButton(), controls.pauseButton(),
                                      controls.resumeButton(), controls.stopButton()};
    for (int i = 0; i < 4; ++i) {
      QVERIFY(!buttons[i]->icon().isNull());
      QCOMPARE(buttons[i]->isEnabled(), enabled[i]);
    }
  }

  void runControlsClicksEmit() {
    RunControls controls;
    QSignalSpy start(&controls, &RunControls::startClicked);
    QSignalSpy pause(&controls, &RunControls::pauseClicked);
    QSignalSpy resume(&controls, &RunControls::resumeClicked);
    QSignalSpy stop(&controls, &RunControls::stopClicked);
    controls.stopButton()->click();  // disabled while idle
    QCOMPARE(stop.count(), 0);
    controls.startButton()->click();
    QCOMPARE(start.count(), 1);
    controls.setState(RunState::Running);
    controls.pauseButton()->click();
    QCOMPARE(pause.count(), 1);
    controls.setState(RunState::Paused);
    controls.resumeButton()->click();
    QCOMPARE(resume.count(), 1);
    controls.stopButton()->click();
    QCOMPARE(stop.count(), 1);
    QCOMPARE(start.count() + pause.count() + resume.count(), 3);
  }

  void runControlsShortcuts() {
    RunControls controls;
    controls.show();
    controls.activateWindow();
    if (!QTest::qWaitForWindowActive(&controls)) QSKIP("no active window on this platform");
    QSignalSpy start(&controls, &RunControls::startClicked);
    QSignalSpy pause(&controls, &RunControls::pauseClicked);
    QSignalSpy resume(&controls, &RunControls::resumeClicked);
    QSignalSpy stop(&controls, &RunControls::stopClicked);
    // Button shortcuts click with a short animation, hence QTRY.
    QTest::keyClick(&controls, Qt::Key_R, Qt::ControlModifier);
    QTRY_COMPARE(start.count(), 1);
    controls.setState(RunState::Running);
    QTest::keyClick(&controls, Qt::Key_P, Qt::ControlModifier);
    QCOMPARE(pause.count(), 1);
    controls.setState(RunState::Paused);
    QTest::keyClick(&controls, Qt::Key_P, Qt::ControlModifier);
    QCOMPARE(resume.count(), 1);
    QCOMPARE(pause.count(), 1);
    QTest::keyClick(&controls, Qt::Key_Period, Qt::ControlModifier);
    QTRY_COMPARE(stop.count(), 1);
  }

  // ---------------------------------------------------------------- Looks
  /// Renders each widget with realistic content to $MST_WIDGET_SNAPSHOTS/*.png (for eyes only).
  void snapshots() {
    const QString out = qEnvironmentVariable("MST_WIDGET_SNAPSHOTS");
    if (out.isEmpty()) QSKIP("set MST_WIDGET_SNAPSHOTS=DIR to render the widgets");
    QDir().mkpath(out);
    // Every key of the generated key table, as the app would pass them.
    QFile doc(QStringLiteral(MST_SOURCE_DIR) + "/docs/config.md");
    QVERIFY(doc.open(QIODevice::ReadOnly));
    QVector<FieldSpec> fields;
    QMap<QString, QString> values;
    const QRegularExpression row(R"(^\| `([^`]+)` \| ([^|]+) \| `([^`]*)` \| (.*) \|$)");
    for (const QString& line : QString::fromUtf8(doc.readAll()).split('\n')) {
      const auto m = row.match(line);
      if (!m.hasMatch()) continue;
      FieldSpec spec{m.captured(1), m.captured(2).trimmed(), m.captured(4), {}};
      if (spec.key == "masking.strategy")
        spec.choices = {"none", "random", "attention_guided", "attention_high"};
      if (spec.key == "data.format") spec.choices = {"fashion_mnist", "cifar10", "image_folder"};
      fields << spec;
      values.insert(spec.key, m.captured(3));
    }
    QVERIFY(fields.size() > 50);
    ConfigForm form;
    form.setFields(fields);
    form.setValues(values);
    form.setValidator([](const QString& key, const QString& json) {
      return key == "masking.p" && json.toDouble() > 1 ? kRejectP.arg(json) : QString();
    });
    form.resize(460, 900);
    form.show();
    form.editField("masking.p", "1.5");
    form.editField("masking.num", "abc");
    form.setFilter("mask");
    QTest::qWait(50);  // let the layouts settle as an event loop would
    QVERIFY(form.grab().save(out + "/config_form_filtered.png"));
    form.setFilter("");
    QTest::qWait(50);
    QVERIFY(form.grab().save(out + "/config_form.png"));

    QTemporaryDir dir;
    const QDateTime now = QDateTime::currentDateTime();
    touch(dir.filePath("fmnist_default/run.h5"), now.addSecs(-2 * 86400));
    touch(dir.filePath("fmnist_random_p0.15/run.h5"), now.addSecs(-3 * 3600));
    touch(dir.filePath("sweep_pnum/p0.05_num1/run.h5"), now.addSecs(-400));
    touch(dir.filePath("sweep_pnum/p0.05_num2/run.h5"), now.addSecs(-4));
    RunList list;
    list.setWorkspace(dir.path());
    list.setShown(dir.filePath("fmnist_default"), true);
    list.resize(520, 200);
    list.show();
    QVERIFY(list.grab().save(out + "/run_list.png"));
    RunList empty;
    empty.setWorkspace(dir.filePath("nothing_here"));
    empty.resize(520, 140);
    QVERIFY(empty.grab().save(out + "/run_list_empty.png"));

    DevicePicker picker;
    picker.setDevices(threeDevices());
    picker.setSelection("cuda:0,1");
    picker.resize(picker.sizeHint());
    QVERIFY(picker.grab().save(out + "/device_picker.png"));

    RunControls controls;
    controls.setState(RunState::Running);
    controls.resize(controls.sizeHint());
    QVERIFY(controls.grab().save(out + "/run_controls_running.png"));
    controls.setState(RunState::Paused);
    QVERIFY(controls.grab().save(out + "/run_controls_paused.png"));
  }
};

QTEST_MAIN(TestWidgetForms)
#include "test_widget_forms.moc"
