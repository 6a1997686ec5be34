/// @brief CurvePanel and CurveTable properties: EMA by hand, NaN padding, coalesced live redraws,
/// legend, log-y, x axis, zoom that survives appends, hover read-out and every export format.
#include <qcustomplot.h>

#include <QtTest>
#include <cmath>
#include <limits>

#include "widgets/curve_panel.h"
#include "widgets/curve_table.h"
#include "widgets/probe_image.h"
#include "widgets/sweep_heatmap.h"

using mst::CellState;
using mst::CurvePanel;
using mst::CurveTable;
using mst::RunCurves;
using mst::SweepHeatmap;
using mst::XAxis;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// `rows` logged steps of a falling loss; every 4th row lacks loss_ce (NaN); epochs of 10 steps.
CurveTable makeMetrics(int rows, int firstStep = 0, double offset = 0.0) {
  CurveTable table;
  QVector<double> loss, lossCe, lr;
  for (int i = 0; i < rows; ++i) {
    const int step = firstStep + i;
    table.step << step;
    table.epoch << step / 10.0;
    table.wall_s << 2.0 * step;
    loss << 2.0 / (1.0 + 0.01 * step) + offset + 0.05 * std::sin(step);
    lossCe << (step % 4 == 3 ? kNaN : 1.5 - 0.001 * step);
    lr << 1e-3 * (step + 1) / (firstStep + rows);
  }
  table.columns["loss"] = loss;
  table.columns["loss_ce"] = lossCe;
  table.columns["lr"] = lr;
  return table;
}

/// k-NN top-1 every 25 steps, with step only (as /eval logs it).
CurveTable makeEval(int rows, int every = 25) {
  CurveTable table;
  for (int i = 0; i < rows; ++i) {
    table.step << (i + 1) * every;
    table.columns["knn_top1"] << 40.0 + 5.0 * i;
  }
  return table;
}

RunCurves makeRun(const QString& id, int rows, double offset = 0.0) {
  return RunCurves{id, id, makeMetrics(rows, 0, offset), makeEval(rows / 25)};
}

bool sameDouble(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b));
}

/// One logged row of every metric (a run stopped at its first log row) and one k-NN row.
RunCurves makeOneRowRun(const QString& id, double shift) {
  RunCurves run{id, id, {}, {}};
  run.metrics.step = {0};
  run.metrics.epoch = {0};
  run.metrics.wall_s = {1.5};
  const QStringList keys = {"loss", "loss_ce",  "loss_rec",     "lr",
                            "wd",   "momentum", "teacher_temp", "mask_ratio"};
  for (int i = 0; i < keys.size(); ++i) run.metrics.columns[keys[i]] = {0.5 + 0.1 * i + shift};
  run.eval.step = {0};
  run.eval.columns["knn_top1"] = {40.0 + 10 * shift};
  return run;
}

/// The graph a run's curve is seen as: the smoothed one where it has points, else the raw one.
QCPGraph* shownGraph(QCustomPlot* plot, int run) {
  QCPGraph* smooth = plot->graph(2 * run + 1);
  return smooth->dataCount() > 0 ? smooth : plot->graph(2 * run);
}

/// Legend entry texts of `plot`, in order.
QStringList legendNames(QCustomPlot* plot) {
  QStringList names;
  for (int i = 0; i < plot->legend->itemCount(); ++i)
    if (auto* item = qobject_cast<QCPPlottableLegendItem*>(plot->legend->item(i)))
      names << item->plottable()->name();
  return names;
}

/// Data points (every graph, every point) that the legend box of `plot` covers, as last drawn.
int pointsUnderLegend(QCustomPlot* plot) {
  const QRect box = plot->legend->outerRect();
  int covered = 0;
  for (int g = 0; g < plot->graphCount(); ++g) {
    const auto data = plot->graph(g)->data();
    for (auto it = data->constBegin(); it != data->constEnd(); ++it)
      covered += box.contains(QPoint(int(plot->xAxis->coordToPixel(it->key)),
                                     int(plot->yAxis->coordToPixel(it->value))));
  }
  return covered;
}

QByteArray readAll(const QString& path) {
  QFile file(path);
  return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

}  // namespace

class TestWidgetPlots : public QObject {
  Q_OBJECT

 private slots:
  void debiasedEma_data() {
    QTest::addColumn<QVector<double>>("input");
    QTest::addColumn<double>("weight");
    QTest::addColumn<QVector<double>>("expected");
    // w = 0.5 by hand: s = 0.5, 1.25, (NaN skipped), 2.625; debias 1 - 0.5^n = 0.5, 0.75, 0.875.
    QTest::newRow("w0.5 with NaN") << QVector<double>{1, 2, kNaN, 4} << 0.5
                                   << QVector<double>{1.0, 1.25 / 0.75, kNaN, 2.625 / 0.875};
    QTest::newRow("leading NaN") << QVector<double>{kNaN, 2, 6} << 0.5
                                 << QVector<double>{kNaN, 2, (0.5 + 3.0) / 0.75};
    QTest::newRow("w0 identity") << QVector<double>{3, kNaN, -1, 7} << 0.0
                                 << QVector<double>{3, kNaN, -1, 7};
    QTest::newRow("constant stays")
        << QVector<double>{5, 5, 5, 5} << 0.99 << QVector<double>{5, 5, 5, 5};
    QTest::newRow("empty") << QVector<double>{} << 0.6 << QVector<double>{};
  }
  void debiasedEma() {
    QFETCH(QVector<double>, input);
    QFETCH(double, weight);
    QFETCH(QVector<double>, expected);
    const QVector<double> out = mst::debiasedEma(input, weight);
    QCOMPARE(out.size(), expected.size());
    for (int i = 0; i < out.size(); ++i) {
      QVERIFY2(sameDouble(out[i], expected[i]),
               qPrintable(QString("i=%1: %2 vs %3").arg(i).arg(out[i]).arg(expected[i])));
    }
  }

  void appendPadsMissingColumns() {
    CurveTable a;
    a.step = {0, 1};
    a.epoch = {0, 0};
    a.columns["loss"] = {3, 2};
    CurveTable b;
    b.step = {2, 3, 4};
    b.epoch = {1, 1, 1};
    b.columns["lr"] = {0.1, 0.2, 0.3};
    a.append(b);
    QCOMPARE(a.rows(), 5);
    QCOMPARE(a.step, (QVector<double>{0, 1, 2, 3, 4}));
    QCOMPARE(a.epoch, (QVector<double>{0, 0, 1, 1, 1}));
    QVERIFY(a.wall_s.isEmpty());  // empty on both sides stays empty
    QCOMPARE(a.columns.size(), 2);
    const QVector<double> loss = a.columns["loss"], lr = a.columns["lr"];
    QCOMPARE(loss.size(), 5);
    QCOMPARE(lr.size(), 5);
    QCOMPARE(loss.mid(0, 2), (QVector<double>{3, 2}));
    for (int i = 2; i < 5; ++i) QVERIFY(std::isnan(loss[i]));
    for (int i = 0; i < 2; ++i) QVERIFY(std::isnan(lr[i]));
    QCOMPARE(lr.mid(2), (QVector<double>{0.1, 0.2, 0.3}));
  }

  void evalRowsBorrowEpochAndTimeFromMetrics() {
    CurveTable metrics;
    metrics.step = {0, 100, 200};
    metrics.epoch = {0, 0.5, 1.0};
    metrics.wall_s = {0, 40, 100};
    CurveTable eval;
    eval.step = {150, 300};  // eval rows log only their step
    eval.columns["knn_top1"] = {60, 70};
    QCOMPARE(keyAt(eval, metrics, XAxis::Step, 0), 150.0);
    QCOMPARE(keyAt(eval, metrics, XAxis::Epoch, 0), 0.75);  // halfway between 100 and 200
    QCOMPARE(keyAt(eval, metrics, XAxis::WallTime, 0), 70.0);
    QCOMPARE(keyAt(eval, metrics, XAxis::Epoch, 1), 1.5);  // extrapolated past the last row
    QCOMPARE(keyAt(metrics, metrics, XAxis::Epoch, 1), 0.5);  // a table's own column first
    QVERIFY(std::isnan(keyAt(eval, metrics, XAxis::Epoch, 2)));  // past the end
    QVERIFY(std::isnan(keyAt(eval, CurveTable{}, XAxis::Epoch, 0)));  // nothing to borrow from
    QCOMPARE(mst::valueAt(eval.columns["knn_top1"], 1), 70.0);
    QVERIFY(std::isnan(mst::valueAt(eval.columns["knn_top1"], 2)));
    QVERIFY(mst::isSmoothed("loss_ce"));
    QVERIFY(!mst::isSmoothed(mst::kEvalPlot) && !mst::isSmoothed("lr"));
  }

  void sweepCellLabelsAreCompacted_data() {
    QTest::addColumn<QString>("label");
    QTest::addColumn<QString>("compact");
    QTest::newRow("strategy x seed") << "04_masking.strategy=attention_guided_train.seed=0"
                                     << "strategy=attention_guided seed=0";
    QTest::newRow("p x num") << "03_masking.p=0.1_masking.num=8" << "p=0.1 num=8";
    QTest::newRow("key with _") << "12_crops.local_crops=4" << "local_crops=4";
    QTest::newRow("plain run") << "fashion_mnist" << "fashion_mnist";
    QTest::newRow("digits, no key") << "2024_run" << "2024_run";
  }

  void sweepCellLabelsAreCompacted() {
    QFETCH(QString, label);
    QFETCH(QString, compact);
    QCOMPARE(mst::compactRunLabel(label), compact);
    QCOMPARE(mst::compactRunLabel("03_masking.p=0.1_masking.num=8", false), QString("0.1 8"));
  }

  void legendLabelIsTheSameInEveryPlot() {
    // Sweep cells are named by their folders: every plot lists them with one label, whatever
    // its width, and the legend stays within the plot.
    CurvePanel panel;
    panel.resize(900, 600);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    RunCurves a = makeRun("a", 100), b = makeRun("b", 100, 0.2);
    a.label = "00_masking.p=0.05_masking.num=1";
    b.label = "05_masking.strategy=attention_guided_train.seed=1";
    panel.setRun(a);
    panel.setRun(b);
    panel.flushRedraw();
    const QStringList expected{"p=0.05 num=1", "strategy=attention_guided seed=1"};
    for (const QSize& size : {QSize(900, 600), QSize(700, 600), QSize(2400, 900)}) {
      panel.resize(size);
      QApplication::processEvents();
      panel.flushRedraw();
      for (const QString& name :
           {QStringLiteral("loss"), QStringLiteral("knn_top1"), QStringLiteral("lr")}) {
        QCustomPlot* plot = panel.plot(name);
        plot->replot();
        QVERIFY(plot->legend->visible());
        QCOMPARE(legendNames(plot), expected);
        QVERIFY2(plot->legend->outerRect().width() <= plot->viewport().width(),
                 qPrintable(QString("%1: legend %2 px in a %3 px plot")
                                .arg(name)
                                .arg(plot->legend->outerRect().width())
                                .arg(plot->viewport().width())));
      }
    }
  }

  void legendCoversNoDataPoint_data() {
    QTest::addColumn<QString>("plot");
    QTest::addColumn<bool>("zigzag");
    QTest::newRow("falling loss") << "loss" << false;
    QTest::newRow("rising k-NN") << "knn_top1" << false;
    QTest::newRow("schedule") << "lr" << false;
    QTest::newRow("every corner taken") << "loss" << true;
  }
  void legendCoversNoDataPoint() {
    // Checked on the plot as drawn (after the rescale and the replot): the legend sits in a
    // corner without data points, or below the axes when no corner is free.
    QFETCH(QString, plot);
    QFETCH(bool, zigzag);
    CurvePanel panel;
    panel.resize(900, 600);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    for (int r = 0; r < 3; ++r) {
      RunCurves run = makeRun(QString("run-%1").arg(r), 200, 0.2 * r);
      run.eval = makeEval(8);
      for (double& v : run.eval.columns["knn_top1"]) v += r;
      if (zigzag) {
        QVector<double>& loss = run.metrics.columns["loss"];
        for (int i = 0; i < loss.size(); ++i) loss[i] = (i / 5) % 2 ? 3.0 - 0.01 * r : 0.5 + r;
      }
      panel.setRun(run);
    }
    panel.flushRedraw();
    QCustomPlot* widget = panel.plot(plot);
    widget->replot();
    QVERIFY(widget->legend->visible());
    QCOMPARE(pointsUnderLegend(widget), 0);
    const bool below =
        widget->legend->outerRect().top() >= widget->axisRect()->outerRect().bottom();
    QCOMPARE(below, zigzag);
    if (!below) QVERIFY(widget->axisRect()->rect().contains(widget->legend->outerRect()));
  }

  void onePointPerRunIsVisibleInEveryPlot() {
    // A run stopped at its first log row: one point per plot, which no line can draw.
    CurvePanel panel;
    panel.resize(1000, 700);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    panel.setRun(makeOneRowRun("a", 0.0));
    panel.setRun(makeOneRowRun("b", 0.3));
    panel.flushRedraw();
    const QColor colours[] = {panel.plot("loss")->graph(1)->pen().color(),
                              panel.plot("loss")->graph(3)->pen().color()};
    for (const QString& name : panel.plotNames()) {
      QCustomPlot* plot = panel.plot(name);
      QCOMPARE(legendNames(plot), (QStringList{"a", "b"}));
      QVERIFY2(pointsUnderLegend(plot) == 0, qPrintable(name));
      const QImage image = plot->toPixmap(plot->width(), plot->height()).toImage();
      for (int run = 0; run < 2; ++run) {
        const QCPGraph* graph = shownGraph(plot, run);
        QCOMPARE(graph->dataCount(), 1);
        QVERIFY2(graph->scatterStyle().shape() != QCPScatterStyle::ssNone, qPrintable(name));
        // The point's pixel has the run's colour.
        const auto point = graph->data()->at(0);
        const QPoint at(int(std::lround(plot->xAxis->coordToPixel(point->key))),
                        int(std::lround(plot->yAxis->coordToPixel(point->value))));
        const QColor seen = image.pixelColor(at * image.devicePixelRatio());
        const int distance = std::abs(seen.red() - colours[run].red()) +
                             std::abs(seen.green() - colours[run].green()) +
                             std::abs(seen.blue() - colours[run].blue());
        QVERIFY2(distance < 60, qPrintable(QString("%1 run %2: %3 at (%4, %5), expected %6")
                                               .arg(name)
                                               .arg(run)
                                               .arg(seen.name())
                                               .arg(at.x())
                                               .arg(at.y())
                                               .arg(colours[run].name())));
      }
    }
    // Two points make a line: the dot goes, the sparse k-NN keeps its hollow markers.
    panel.appendRows("a", makeMetrics(1, 1), makeEval(1));
    panel.flushRedraw();
    QCOMPARE(shownGraph(panel.plot("loss"), 0)->scatterStyle().shape(), QCPScatterStyle::ssNone);
    QCOMPARE(shownGraph(panel.plot("knn_top1"), 0)->scatterStyle().shape(),
             QCPScatterStyle::ssCircle);
  }

  void legendListsOnlyRunsDrawnInThePlot() {
    CurvePanel panel;
    panel.setRun(makeRun("with-knn", 100));
    panel.setRun(makeRun("no-knn", 10));  // fewer than 25 steps: no k-NN row
    panel.flushRedraw();
    QCOMPARE(legendNames(panel.plot("loss")), (QStringList{"with-knn", "no-knn"}));
    QCOMPARE(legendNames(panel.plot("knn_top1")), QStringList{"with-knn"});
    panel.appendRows("no-knn", makeMetrics(20, 10), makeEval(1));
    panel.flushRedraw();
    QCOMPARE(legendNames(panel.plot("knn_top1")), (QStringList{"with-knn", "no-knn"}));
  }

  void axesSayWhatTheyShow() {
    CurvePanel panel;
    panel.resize(900, 600);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    QCOMPARE(panel.plot("knn_top1")->yAxis->label(), QString("top-1 %"));
    QCOMPARE(panel.plot("mask_ratio")->yAxis->label(), QString("share of patches"));
    for (const QString& name : {"loss", "loss_ce", "lr", "wd", "teacher_temp"})
      QVERIFY2(panel.plot(name)->yAxis->label().isEmpty(), qPrintable(name));
    // The title stays the log's key; it explains itself in a tooltip.
    QCustomPlot* knn = panel.plot("knn_top1");
    auto* title = qobject_cast<QCPTextElement*>(knn->plotLayout()->element(0, 0));
    QVERIFY(title);
    QCOMPARE(title->text(), QString("knn_top1"));
    const QPoint onTitle = title->outerRect().center();
    QHelpEvent help(QEvent::ToolTip, onTitle, knn->mapToGlobal(onTitle));
    QApplication::sendEvent(knn, &help);
    QTRY_VERIFY2(QToolTip::text().contains("k-NN"), qPrintable(QToolTip::text()));
    // The smoothing control says what the faded curve is.
    auto* slider = panel.findChild<QSlider*>();
    QVERIFY(slider);
    QVERIFY2(slider->toolTip().contains("raw") && slider->toolTip().contains("faded"),
             qPrintable(slider->toolTip()));
  }

  void autoscaleKeepsAMinimumSpan_data() {
    QTest::addColumn<QString>("plot");
    QTest::addColumn<QVector<double>>("values");
    QTest::addColumn<double>("floor");
    // The researcher's k-NN curve: 0.04 points of noise must not fill the plot.
    QTest::newRow("k-NN within 0.04 points")
        << "knn_top1" << QVector<double>{40.59, 40.63, 40.61, 40.62} << 1.0;
    QTest::newRow("constant loss") << "loss" << QVector<double>(30, 6.64) << 6.64e-3;
    QTest::newRow("loss within 1e-6") << "loss_ce" << QVector<double>{2.0, 2.000001, 2.0} << 2e-3;
    QTest::newRow("mask share") << "mask_ratio" << QVector<double>{0.3, 0.301, 0.3} << 0.01;
    QTest::newRow("all zero") << "wd" << QVector<double>(5, 0.0) << 1.0;
    // A real change is not widened: the data spans the axis, with 5 % head room.
    QTest::newRow("k-NN rising") << "knn_top1" << QVector<double>{40, 55, 70} << 0.0;
  }
  void autoscaleKeepsAMinimumSpan() {
    QFETCH(QString, plot);
    QFETCH(QVector<double>, values);
    QFETCH(double, floor);
    RunCurves run{"run", "run", {}, {}};
    CurveTable& table = plot == mst::kEvalPlot ? run.eval : run.metrics;
    for (int i = 0; i < values.size(); ++i) table.step << 10 * i;
    table.columns[plot] = values;
    CurvePanel panel;
    panel.setRun(run);
    panel.flushRedraw();
    const QCPRange range = panel.plot(plot)->yAxis->range();
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    QVERIFY(range.contains(*lo) && range.contains(*hi));
    if (floor > 0) {
      QVERIFY2(range.size() >= floor,
               qPrintable(
                   QString("%1 .. %2").arg(range.lower, 0, 'g', 10).arg(range.upper, 0, 'g', 10)));
      QVERIFY(range.size() <= 1.2 * floor);  // widened to the floor, not beyond
      // Centred on the data.
      QVERIFY(std::abs(range.center() - 0.5 * (*lo + *hi)) <= 1e-9 * std::max(1.0, *hi));
    } else {
      QVERIFY(sameDouble(range.size(), 1.1 * (*hi - *lo)));
    }
  }

  void heatmapWithEqualValuesShowsOneColour() {
    SweepHeatmap map;
    const QStringList rows{"1", "2"}, cols{"0.05", "0.1"};
    map.setAxes("masking.num", rows, "masking.p", cols);
    for (const QString& r : rows)
      for (const QString& c : cols) map.setCell(r, c, CellState::Done, 70.0);
    map.setCell("2", "0.1", CellState::Done, 70.0000001);  // reads the same: 70.00
    map.resize(map.sizeHint());
    QVERIFY(!map.hasSpread());
    auto colours = [&map] {
      const QImage shot = map.grab().toImage();
      const qreal dpr = shot.devicePixelRatio();
      const QRect bar = map.colourBarRect();
      auto at = [&](QPoint p) { return shot.pixelColor(p * dpr).rgb(); };
      return QVector<QRgb>{at(bar.topLeft() + QPoint(4, 4)), at(bar.bottomLeft() + QPoint(4, -4)),
                           at(map.cellRect("1", "0.05").topLeft() + QPoint(3, 3)),
                           at(map.cellRect("2", "0.1").topLeft() + QPoint(3, 3))};
    };
    const QRgb middle = mst::viridisColour(0.5).rgb();
    QCOMPARE(colours(), (QVector<QRgb>{middle, middle, middle, middle}));
    // One cell apart: the full scale again.
    map.setCell("2", "0.1", CellState::Done, 72.0);
    QVERIFY(map.hasSpread());
    const QVector<QRgb> spread = colours();
    QVERIFY(spread[0] != spread[1]);  // a gradient
    QCOMPARE(spread[2], mst::viridisColour(0.0).rgb());
    QCOMPARE(spread[3], mst::viridisColour(1.0).rgb());
  }

  void heatmapIsCentredInItsSpace() {
    SweepHeatmap map;
    map.setAxes("masking.num", {"1", "2"}, "masking.p", {"0.05", "0.1"});
    map.setCell("2", "0.1", CellState::Done, 70.0, "/runs/x");
    const QSize hint = map.sizeHint();
    map.resize(hint + QSize(300, 200));
    map.show();
    QVERIFY(QTest::qWaitForWindowExposed(&map));
    map.resize(hint);
    const QRect tight = map.cellRect("2", "0.1");
    map.resize(hint + QSize(300, 200));
    QCOMPARE(map.cellRect("2", "0.1"), tight.translated(150, 100));
    // Clicks and the colour bar follow the map.
    QVERIFY(map.colourBarRect().left() > tight.right() + 150);
    QSignalSpy spy(&map, &SweepHeatmap::cellActivated);
    QTest::mouseClick(&map, Qt::LeftButton, {}, map.cellRect("2", "0.1").center());
    QCOMPARE(spy.count(), 1);
    QTest::mouseClick(&map, Qt::LeftButton, {}, tight.center());  // where it was: empty now
    QCOMPARE(spy.count(), 1);
  }

  void plotNamesInOrder() {
    CurvePanel panel;
    QCOMPARE(panel.plotNames(), (QStringList{"loss", "loss_ce", "loss_rec", "knn_top1", "lr", "wd",
                                             "momentum", "teacher_temp", "mask_ratio"}));
    for (const QString& name : panel.plotNames()) QVERIFY(panel.plot(name));
    QVERIFY(!panel.plot("nope"));
  }

  void setRunDrawsEveryLoggedRow() {
    CurvePanel panel;
    panel.setRun(makeRun("run-a", 200));
    panel.flushRedraw();
    QCOMPARE(panel.pointCount("loss", "run-a"), 200);
    QCOMPARE(panel.pointCount("loss_ce", "run-a"), 150);  // NaN rows are not logged points
    QCOMPARE(panel.pointCount("knn_top1", "run-a"), 8);
    QCOMPARE(panel.pointCount("wd", "run-a"), 0);
    QCOMPARE(panel.pointCount("loss", "nope"), -1);
    QCOMPARE(panel.runIds(), QStringList{"run-a"});
  }

  void replacingKeepsOneRun() {
    CurvePanel panel;
    panel.setRun(makeRun("run-a", 200));
    panel.flushRedraw();
    RunCurves shorter = makeRun("run-a", 50);
    shorter.label = "renamed";
    panel.setRun(shorter);
    panel.flushRedraw();
    QCOMPARE(panel.runIds(), QStringList{"run-a"});
    QCOMPARE(panel.pointCount("loss", "run-a"), 50);
    QCOMPARE(panel.plot("loss")->graphCount(), 2);  // raw + smoothed, not doubled
    QCOMPARE(panel.plot("loss")->legend->itemCount(), 1);
    auto* item = qobject_cast<QCPPlottableLegendItem*>(panel.plot("loss")->legend->item(0));
    QVERIFY(item);
    QCOMPARE(item->plottable()->name(), QString("renamed"));
  }

  void appendRowsWaitsForRedraw() {
    CurvePanel panel;
    panel.setRun(makeRun("run-a", 100));
    panel.flushRedraw();
    panel.appendRows("run-a", makeMetrics(30, 100), makeEval(1, 125));
    QCOMPARE(panel.pointCount("loss", "run-a"), 100);  // coalesced: nothing drawn per append
    panel.appendRows("run-a", makeMetrics(20, 130), CurveTable{});
    QCOMPARE(panel.pointCount("loss", "run-a"), 100);
    panel.flushRedraw();
    QCOMPARE(panel.pointCount("loss", "run-a"), 150);
    QCOMPARE(panel.pointCount("knn_top1", "run-a"), 5);
    // The timer alone also redraws.
    panel.appendRows("run-a", makeMetrics(10, 150), CurveTable{});
    QCOMPARE(panel.pointCount("loss", "run-a"), 150);
    QTRY_COMPARE(panel.pointCount("loss", "run-a"), 160);
  }

  void incrementalSmoothingMatchesFullRecompute() {
    CurvePanel panel;
    panel.setSmoothing(0.9);
    panel.setRun(makeRun("run-a", 120));
    panel.flushRedraw();
    panel.appendRows("run-a", makeMetrics(80, 120), CurveTable{});
    panel.flushRedraw();
    const QVector<double> loss = makeMetrics(200).columns["loss"];
    const QVector<double> expected = mst::debiasedEma(loss, 0.9);
    const auto data = panel.plot("loss")->graph(1)->data();  // graph 0 raw, graph 1 smoothed
    QCOMPARE(data->size(), 200);
    for (int i = 0; i < 200; ++i) {
      QVERIFY2(sameDouble(data->at(i)->value, expected[i]), qPrintable(QString::number(i)));
      QCOMPARE(data->at(i)->key, double(i));
    }
    // Schedules are exact values: drawn raw in full colour, never smoothed.
    QCOMPARE(panel.plot("lr")->graph(0)->dataCount(), 200);
    QCOMPARE(panel.plot("lr")->graph(1)->dataCount(), 0);
    QCOMPARE(panel.plot("lr")->graph(0)->pen().color().alpha(), 255);
    // Changing the weight recomputes everything from row 0.
    panel.setSmoothing(0.5);
    panel.flushRedraw();
    QVERIFY(sameDouble(panel.plot("loss")->graph(1)->data()->at(199)->value,
                       mst::debiasedEma(loss, 0.5)[199]));
    QCOMPARE(panel.smoothing(), 0.5);
    panel.setSmoothing(5.0);
    QCOMPARE(panel.smoothing(), 0.99);
  }

  void unknownIdOnAppendAddsRun() {
    CurvePanel panel;
    panel.appendRows("live", makeMetrics(10), CurveTable{});
    panel.flushRedraw();
    QCOMPARE(panel.runIds(), QStringList{"live"});
    QCOMPARE(panel.pointCount("loss", "live"), 10);
  }

  void legendHasOneEntryPerRun() {
    CurvePanel panel;
    panel.setRun(makeRun("run-a", 100));
    panel.flushRedraw();
    QCustomPlot* loss = panel.plot("loss");
    QVERIFY(!loss->legend->visible());  // one run: the title says enough
    panel.setRun(makeRun("run-b", 100, 0.2));
    panel.flushRedraw();
    QCOMPARE(loss->graphCount(), 4);
    QCOMPARE(loss->legend->itemCount(), 2);
    QVERIFY(loss->legend->visible());
    // Different runs, different colours; raw is the same colour, faded.
    const QColor a = loss->graph(1)->pen().color(), b = loss->graph(3)->pen().color();
    QVERIFY(a != b);
    QCOMPARE(loss->graph(0)->pen().color().rgb(), a.rgb());
    QVERIFY(loss->graph(0)->pen().color().alpha() < 100);
    panel.removeRun("run-a");
    panel.flushRedraw();
    QCOMPARE(panel.runIds(), QStringList{"run-b"});
    QCOMPARE(loss->graphCount(), 2);
    QCOMPARE(loss->legend->itemCount(), 1);
    QVERIFY(!loss->legend->visible());
    QCOMPARE(loss->graph(1)->pen().color(), b);  // colours stay with their runs
  }

  void logYSwitchesScaleAndSkipsNonPositive() {
    CurvePanel panel;
    RunCurves run = makeRun("run-a", 40);
    run.metrics.columns["loss_rec"] = QVector<double>(40, 1.0);
    run.metrics.columns["loss_rec"][3] = 0.0;
    run.metrics.columns["loss_rec"][7] = -2.0;
    panel.setRun(run);
    panel.flushRedraw();
    QCOMPARE(panel.pointCount("loss_rec", "run-a"), 40);
    QCOMPARE(panel.plot("loss")->yAxis->scaleType(), QCPAxis::stLinear);
    panel.setLogY(true);
    QVERIFY(panel.logY());
    panel.flushRedraw();
    for (const QString& name : panel.plotNames()) {
      QCOMPARE(panel.plot(name)->yAxis->scaleType(), QCPAxis::stLogarithmic);
      QVERIFY(panel.plot(name)->yAxis->ticker().dynamicCast<QCPAxisTickerLog>());
    }
    QCOMPARE(panel.pointCount("loss_rec", "run-a"), 38);
    QVERIFY(panel.plot("loss_rec")->yAxis->range().lower > 0);
    panel.setLogY(false);
    panel.flushRedraw();
    QCOMPARE(panel.plot("loss")->yAxis->scaleType(), QCPAxis::stLinear);
    QVERIFY(!panel.plot("loss")->yAxis->ticker().dynamicCast<QCPAxisTickerLog>());
    QCOMPARE(panel.pointCount("loss_rec", "run-a"), 40);
  }

  void closeTicksGetDistinctLabels() {
    // A schedule that moves in the fourth decimal (momentum 0.996 .. 0.998 over a few steps):
    // every tick label of its axis differs (a fixed 3-digit precision would print 0.996 twice),
    // and a coarse axis keeps short labels.
    CurvePanel panel;
    RunCurves run = makeRun("run-a", 40);
    QVector<double> momentum;
    for (int i = 0; i < 40; ++i) momentum << 0.996 + 0.002 * i / 39.0;
    run.metrics.columns["momentum"] = momentum;
    panel.setRun(run);
    panel.flushRedraw();
    for (const QString& name : {QStringLiteral("momentum"), QStringLiteral("loss")}) {
      QCustomPlot* plot = panel.plot(name);
      plot->replot();
      const QVector<QString> labels = plot->yAxis->tickVectorLabels();
      QVERIFY2(labels.size() >= 3, qPrintable(name));
      QCOMPARE(QSet<QString>(labels.begin(), labels.end()).size(), labels.size());
      if (name == "loss")
        for (const QString& label : labels) QVERIFY2(label.size() <= 6, qPrintable(label));
    }
  }

  void xAxisPutsEpochOnKeys() {
    CurvePanel panel;
    const RunCurves run = makeRun("run-a", 100);
    panel.setRun(run);
    panel.flushRedraw();
    panel.setXAxis(XAxis::Epoch);
    QCOMPARE(panel.xAxis(), XAxis::Epoch);
    panel.flushRedraw();
    const auto loss = panel.plot("loss")->graph(0)->data();
    QCOMPARE(loss->size(), 100);
    for (int i = 0; i < 100; ++i) QCOMPARE(loss->at(i)->key, run.metrics.epoch[i]);
    QCOMPARE(panel.plot("loss")->xAxis->range().upper, run.metrics.epoch.last());
    // /eval logs only its step: epochs come from the metrics table (10 steps per epoch here).
    const auto knn = panel.plot("knn_top1")->graph(0)->data();
    QCOMPARE(knn->size(), 4);
    QCOMPARE(knn->at(0)->key, 2.5);
    QCOMPARE(knn->at(3)->key, 10.0);  // step 100, one past the last metrics row: extrapolated
    panel.setXAxis(XAxis::WallTime);
    panel.flushRedraw();
    QCOMPARE(panel.plot("loss")->graph(0)->data()->at(10)->key, 20.0);
    QVERIFY(panel.plot("loss")->xAxis->ticker().dynamicCast<QCPAxisTickerTime>());
  }

  void userZoomSurvivesAppendsUntilDoubleClick() {
    CurvePanel panel;
    panel.resize(900, 700);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    panel.setRun(makeRun("run-a", 100));
    panel.flushRedraw();
    QCustomPlot* loss = panel.plot("loss");
    QCOMPARE(loss->xAxis->range().upper, 99.0);
    const QPoint centre = loss->axisRect()->rect().center();
    QWheelEvent wheel(centre, loss->mapToGlobal(centre), QPoint(), QPoint(0, 120), Qt::NoButton,
                      Qt::NoModifier, Qt::NoScrollPhase, false);
    QApplication::sendEvent(loss, &wheel);
    const QCPRange zoomed = loss->xAxis->range();
    QVERIFY(zoomed.size() < 99.0);
    panel.appendRows("run-a", makeMetrics(100, 100), CurveTable{});
    panel.flushRedraw();
    QCOMPARE(loss->xAxis->range(), zoomed);
    QCOMPARE(panel.plot("lr")->xAxis->range().upper, 199.0);  // other plots still follow
    // Sent directly: QTest::mouseDClick leaves the offscreen window system's button state behind.
    QMouseEvent dclick(QEvent::MouseButtonDblClick, centre, loss->mapToGlobal(centre),
                       Qt::LeftButton, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(loss, &dclick);
    QCOMPARE(loss->xAxis->range().upper, 199.0);
  }

  void hoverReadsOutEveryRun() {
    CurvePanel panel;
    panel.resize(900, 700);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    panel.setRun(makeRun("run-a", 100));
    panel.setRun(makeRun("run-b", 100, 0.5));
    panel.flushRedraw();
    QSignalSpy spy(&panel, &CurvePanel::hoverText);
    QCustomPlot* loss = panel.plot("loss");
    const QPoint at(int(loss->xAxis->coordToPixel(40.2)), loss->axisRect()->rect().center().y());
    QTest::mouseMove(loss, at);
    QTRY_VERIFY(!spy.isEmpty());
    const QString text = spy.last().first().toString();
    QVERIFY2(text.startsWith("step 40 · run-a "), qPrintable(text));
    QVERIFY2(text.contains(" · run-b "), qPrintable(text));
  }

  void exportFigureFormats_data() {
    QTest::addColumn<QString>("suffix");
    QTest::addColumn<QByteArray>("magic");
    QTest::newRow("png") << "png" << QByteArray("\x89PNG");
    QTest::newRow("pdf") << "pdf" << QByteArray("%PDF");
    QTest::newRow("svg") << "svg" << QByteArray("<svg");
  }
  void exportFigureFormats() {
    QFETCH(QString, suffix);
    QFETCH(QByteArray, magic);
    QTemporaryDir dir;
    CurvePanel panel;
    panel.setRun(makeRun("run-a", 100));
    panel.setRun(makeRun("run-b", 100, 0.3));
    const QString path = dir.filePath("loss." + suffix);
    QString error;
    QVERIFY2(panel.exportFigure("loss", path, 800, 500, &error), qPrintable(error));
    const QByteArray bytes = readAll(path);
    QVERIFY(bytes.size() > 200);
    if (suffix == "svg") {
      QVERIFY(bytes.contains(magic));
      QVERIFY(bytes.contains("width=\"800"));  // the pixel size was honoured
    } else {
      QVERIFY(bytes.startsWith(magic));
    }
    if (suffix == "png") QCOMPARE(QImage(path).size(), QSize(800, 500));
  }

  void exportFigureRejectsBadInput_data() {
    QTest::addColumn<QString>("plot");
    QTest::addColumn<QString>("file");
    QTest::newRow("suffix") << "loss"
                            << "loss.jpg";
    QTest::newRow("no suffix") << "loss"
                               << "loss";
    QTest::newRow("plot") << "nope"
                          << "nope.png";
    QTest::newRow("folder") << "loss"
                            << "missing/dir/loss.png";
  }
  void exportFigureRejectsBadInput() {
    QFETCH(QString, plot);
    QFETCH(QString, file);
    QTemporaryDir dir;
    CurvePanel panel;
    panel.setRun(makeRun("run-a", 10));
    QString error;
    QVERIFY(!panel.exportFigure(plot, dir.filePath(file), 800, 500, &error));
    QVERIFY(!error.isEmpty());
    QVERIFY(!QFileInfo::exists(dir.filePath(file)));
  }

  void exportCsvHasOneLinePerRowPerRun() {
    QTemporaryDir dir;
    CurvePanel panel;
    panel.setSmoothing(0.6);
    RunCurves a = makeRun("run-a", 30);
    a.label = "run a, long";  // needs quoting
    panel.setRun(a);
    panel.setRun(makeRun("run-b", 20));
    const QString path = dir.filePath("loss.csv");
    QString error;
    QVERIFY2(panel.exportCsv("loss", path, &error), qPrintable(error));
    const QStringList lines = QString::fromUtf8(readAll(path)).split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.first(), QString("run,step,epoch,wall_s,loss,loss_smoothed"));
    QCOMPARE(lines.size(), 1 + 30 + 20);
    QVERIFY(lines[1].startsWith("\"run a, long\",0,0,0,"));
    const QStringList last = lines.last().split(',');
    QCOMPARE(last.size(), 6);
    QCOMPARE(last[0], QString("run-b"));
    QCOMPARE(last[1].toDouble(), 19.0);
    QCOMPARE(last[2].toDouble(), 1.9);
    QCOMPARE(last[3].toDouble(), 38.0);
    const QVector<double> loss = makeMetrics(20).columns["loss"];
    QVERIFY(sameDouble(last[4].toDouble(), loss[19]));
    QVERIFY(sameDouble(last[5].toDouble(), mst::debiasedEma(loss, 0.6)[19]));
    // NaN rows are not logged values: loss_ce skips every 4th row.
    QVERIFY(panel.exportCsv("loss_ce", path));
    QCOMPARE(QString::fromUtf8(readAll(path)).split('\n', Qt::SkipEmptyParts).size(), 1 + 23 + 15);
    QVERIFY(!panel.exportCsv("loss", dir.filePath("missing/x.csv"), &error));
    QVERIFY(!error.isEmpty());
  }

  void emptyPlotSaysNoData() {
    CurvePanel panel;
    panel.setRun(makeRun("run-a", 10));  // fewer than 25 steps: no k-NN row yet
    panel.flushRedraw();
    auto texts = [&](const QString& name) {
      QCustomPlot* plot = panel.plot(name);
      for (int i = 0; i < plot->itemCount(); ++i) {
        auto* text = qobject_cast<QCPItemText*>(plot->item(i));
        if (text && text->text() == "no data") return text->visible();
      }
      return false;
    };
    QVERIFY(texts("knn_top1"));
    QVERIFY(!texts("loss"));
  }

  void staysFastWithTenLongRuns() {
    CurvePanel panel;
    panel.resize(1200, 800);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    QElapsedTimer timer;
    timer.start();
    for (int r = 0; r < 10; ++r) panel.setRun(makeRun(QString("run-%1").arg(r), 50000, 0.1 * r));
    panel.flushRedraw();
    const qint64 loadMs = timer.elapsed();
    QCOMPARE(panel.pointCount("loss", "run-9"), 50000);
    QVERIFY(panel.rowsRead() >= 10 * 50000);
    // A live tick: a few rows for one run read only those rows (no recomputation of the 500k
    // points already drawn). The time is reported, not asserted: it depends on the machine.
    const qint64 readBefore = panel.rowsRead();
    timer.restart();
    for (int tick = 0; tick < 10; ++tick) {
      panel.appendRows("run-3", makeMetrics(5, 50000 + 5 * tick, 0.3), CurveTable{});
      panel.flushRedraw();
    }
    const qint64 tickMs = timer.elapsed() / 10;
    qInfo("10 runs x 50k rows: load + first redraw %lld ms, one live tick %lld ms", loadMs, tickMs);
    QCOMPARE(panel.pointCount("loss", "run-3"), 50050);
    const qint64 plots = panel.plotNames().size();
    QVERIFY2(panel.rowsRead() - readBefore <= 10 * 5 * plots,
             qPrintable(QString("%1 rows read for 50 new ones").arg(panel.rowsRead() - readBefore)));
    // A change of smoothing redraws from scratch: every row again (the counter counts what it says).
    const qint64 beforeSmoothing = panel.rowsRead();
    panel.setSmoothing(0.5);
    panel.flushRedraw();
    QVERIFY(panel.rowsRead() - beforeSmoothing >= 10 * 50000);
    if (qEnvironmentVariableIsSet("MST_SCREENSHOT_DIR")) {
      panel.setSmoothing(0.9);
      panel.flushRedraw();
      panel.grab().save(QDir(qEnvironmentVariable("MST_SCREENSHOT_DIR")).filePath("curves10.png"));
    }
  }

  void screenshot() {
    if (!qEnvironmentVariableIsSet("MST_SCREENSHOT_DIR")) QSKIP("set MST_SCREENSHOT_DIR to look");
    const QDir out(qEnvironmentVariable("MST_SCREENSHOT_DIR"));
    CurvePanel panel;
    panel.resize(1100, 760);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    panel.setRun(makeRun("baseline", 400));
    panel.setRun(makeRun("attention-guided p=0.1", 300, -0.15));
    panel.flushRedraw();
    QCustomPlot* loss = panel.plot("loss");
    QTest::mouseMove(
        loss, QPoint(int(loss->xAxis->coordToPixel(150)), int(loss->yAxis->coordToPixel(1.0))));
    QTest::qWait(50);
    panel.grab().save(out.filePath("curves.png"));
    panel.setLogY(true);
    panel.setXAxis(XAxis::WallTime);
    panel.flushRedraw();
    panel.grab().save(out.filePath("curves_log_wall.png"));
    for (const char* suffix : {"png", "svg", "pdf"}) {
      QVERIFY(panel.exportFigure("loss", out.filePath(QString("loss_export.") + suffix), 800, 500));
    }
    CurvePanel single;
    single.resize(1100, 760);
    single.setRun(makeRun("only", 20));
    single.flushRedraw();
    single.grab().save(out.filePath("curves_single.png"));
    // Sweep cells that logged once, with their folder names as labels.
    CurvePanel cells;
    cells.resize(1100, 760);
    cells.show();
    QVERIFY(QTest::qWaitForWindowExposed(&cells));
    for (int i = 0; i < 3; ++i) {
      RunCurves run = makeOneRowRun(QString("cell-%1").arg(i), 0.05 * i);
      run.label = QString("%1_masking.p=0.%2_masking.num=%3")
                      .arg(i, 2, 10, QChar('0'))
                      .arg(5 * i + 5)
                      .arg(1 << i);
      cells.setRun(run);
    }
    cells.flushRedraw();
    cells.grab().save(out.filePath("curves_one_row.png"));
    // Curves in every corner: the legend goes below the axes.
    CurvePanel busy;
    busy.resize(1100, 760);
    busy.show();
    QVERIFY(QTest::qWaitForWindowExposed(&busy));
    for (int r = 0; r < 4; ++r) {
      RunCurves run = makeRun(QString("seed-%1").arg(r), 200, 0.2 * r);
      QVector<double>& loss = run.metrics.columns["loss"];
      for (int i = 0; i < loss.size(); ++i) loss[i] = (i / 5) % 2 ? 3.0 - 0.01 * r : 0.5 + r;
      busy.setRun(run);
    }
    busy.flushRedraw();
    busy.grab().save(out.filePath("curves_legend_below.png"));
    SweepHeatmap map;
    map.setAxes("masking.num", {"1", "2"}, "masking.p", {"0.05", "0.1", "0.15"});
    map.setReadoutName("k-NN top-1 %");
    for (const QString& r : {"1", "2"})
      for (const QString& c : {"0.05", "0.1", "0.15"}) map.setCell(r, c, CellState::Done, 40.61);
    map.resize(map.sizeHint() + QSize(200, 120));
    map.grab().save(out.filePath("heatmap_equal.png"));
  }
};

QTEST_MAIN(TestWidgetPlots)
#include "test_widget_plots.moc"
