/// @brief ConfusionHeatmap: rows are true classes, columns predictions, each row in percent of its
/// class's images, on screen, in the tooltip, the figure and the CSV of counts.
#include <QtTest>
#include <cmath>

#include "widgets/confusion_heatmap.h"

using mst::ConfusionHeatmap;

namespace {

/// Not symmetric, so that swapped axes fail: class a: 1 right, 1 taken for b; class b: 4 right;
/// class c: 2 taken for a, 1 right; class d: no images.
const QStringList kClasses{"a", "b", "c", "d"};
const QVector<QVector<qint64>> kCounts{{1, 1, 0, 0}, {0, 4, 0, 0}, {2, 0, 1, 0}, {0, 0, 0, 0}};

/// The colour painted inside cell (t, p), away from its text and outline.
QRgb paintedColour(const QImage& image, const QRect& cell) {
  return image.pixel(cell.left() + 6, cell.top() + 6);
}

}  // namespace

class TestWidgetConfusion : public QObject {
  Q_OBJECT

 private slots:
  void rowsAreTrueClassesInPercentOfTheirImages() {
    ConfusionHeatmap map;
    map.setMatrix(kClasses, kCounts);
    QCOMPARE(map.classCount(), 4);
    QCOMPARE(map.count(2, 0), qint64(2));
    QCOMPARE(map.count(0, 2), qint64(0));
    QCOMPARE(map.percent(2, 0), 200.0 / 3.0);  // 2 of class c's 3 images
    QCOMPARE(map.percent(0, 2), 0.0);
    QCOMPARE(map.percent(0, 1), 50.0);
    QCOMPARE(map.percent(1, 1), 100.0);
    QVERIFY(std::isnan(map.percent(3, 3)));  // no images: unknown, not 0
    QCOMPARE(map.count(4, 0), qint64(-1));
    for (int t = 0; t < 3; ++t) {  // each row with images sums to 100
      double sum = 0;
      for (int p = 0; p < 4; ++p) sum += map.percent(t, p);
      QVERIFY(std::abs(sum - 100.0) < 1e-9);
    }
    QCOMPARE(map.cellText(2, 0), QString("66.7"));
    QCOMPARE(map.cellText(0, 2), QString());  // nothing predicted there: left blank
    QCOMPARE(map.cellText(2, 2), QString("33.3"));
    const QString tip = map.toolTipFor(2, 0);
    QVERIFY2(tip.contains("true: c") && tip.contains("predicted: a") && tip.contains("2 of 3"),
             qPrintable(tip));
    QVERIFY(map.toolTipFor(3, 0).contains("no test images of d"));
  }

  void theCellOfTrueTAndPredictedPIsPaintedInRowTColumnP() {
    ConfusionHeatmap map;
    map.setMatrix(kClasses, kCounts);
    map.resize(map.sizeHint());
    // True classes go down, predictions across.
    QCOMPARE(map.cellRect(2, 0).left(), map.cellRect(0, 0).left());
    QVERIFY(map.cellRect(2, 0).top() > map.cellRect(1, 0).top());
    QCOMPARE(map.cellRect(0, 2).top(), map.cellRect(0, 0).top());
    QVERIFY(map.cellRect(0, 2).left() > map.cellRect(0, 1).left());
    const QImage image = map.grab().toImage();
    const qreal dpr = image.devicePixelRatio();
    auto colourAt = [&](int t, int p) {
      const QRect cell = map.cellRect(t, p);
      return paintedColour(image, QRect(cell.topLeft() * dpr, cell.size() * dpr));
    };
    QCOMPARE(colourAt(2, 0), ConfusionHeatmap::colourFor(200.0 / 3.0).rgb());
    QCOMPARE(colourAt(0, 2), ConfusionHeatmap::colourFor(0.0).rgb());
    QCOMPARE(colourAt(0, 1), ConfusionHeatmap::colourFor(50.0).rgb());
    QVERIFY(ConfusionHeatmap::colourFor(200.0 / 3.0) != ConfusionHeatmap::colourFor(0.0));
    QCOMPARE(colourAt(3, 3), ConfusionHeatmap::colourFor(qQNaN()).rgb());  // no images: grey
    QVERIFY(ConfusionHeatmap::colourFor(qQNaN()) != ConfusionHeatmap::colourFor(0.0));
  }

  void aMatrixOfTheWrongShapeIsRefused() {
    ConfusionHeatmap map;
    map.setMatrix(kClasses, kCounts);
    QTest::ignoreMessage(QtWarningMsg, QRegularExpression("ConfusionHeatmap: .*"));
    map.setMatrix({"a", "b"}, {{1, 0}, {0}});
    QCOMPARE(map.classCount(), 0);
    QCOMPARE(map.count(0, 0), qint64(-1));
  }

  void manyClassesShrinkTheCellsAndDropTheNumbers() {
    const int n = 100;
    QStringList classes;
    QVector<QVector<qint64>> counts(n, QVector<qint64>(n, 0));
    for (int i = 0; i < n; ++i) {
      classes << QString("class %1").arg(i);
      counts[i][i] = 9;
      counts[i][(i + 1) % n] = 1;
    }
    ConfusionHeatmap map;
    map.setMatrix(classes, counts);
    QCOMPARE(map.percent(99, 0), 10.0);
    QCOMPARE(map.cellText(5, 5), QString());  // too small for text: the tooltip has it
    QVERIFY(map.toolTipFor(5, 5).contains("9 of 10 images (90.0 %)"));
    QVERIFY(map.sizeHint().width() < 1200);
  }

  void exportsTheFigureAndTheCounts() {
    QTemporaryDir dir;
    ConfusionHeatmap map;
    map.setMatrix({"T-shirt/top", "b, quoted", "c", "d"}, kCounts);
    map.setTitle("k-NN: rows = true class");
    for (const char* suffix : {"png", "pdf", "svg"}) {
      const QString path = dir.filePath(QString("confusion.") + suffix);
      QString error;
      QVERIFY2(map.exportFigure(path, &error), qPrintable(error));
      QVERIFY(QFileInfo(path).size() > 0);
    }
    const QImage png(dir.filePath("confusion.png"));
    QVERIFY(!png.isNull() && png.width() > 200 && png.height() > 200);

    QString error;
    QVERIFY2(map.exportCsv(dir.filePath("counts.csv"), &error), qPrintable(error));
    QFile csv(dir.filePath("counts.csv"));
    QVERIFY(csv.open(QIODevice::ReadOnly | QIODevice::Text));
    const QStringList lines = QString::fromUtf8(csv.readAll()).split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 5);
    QCOMPARE(lines[0], QString("true \\ predicted,T-shirt/top,\"b, quoted\",c,d"));
    QCOMPARE(lines[1], QString("T-shirt/top,1,1,0,0"));  // row = true class: its counts
    QCOMPARE(lines[3], QString("c,2,0,1,0"));
    QVERIFY(!map.exportCsv(dir.filePath("missing/counts.csv"), &error));
    QVERIFY(error.contains("missing/counts.csv"));
  }
};

QTEST_MAIN(TestWidgetConfusion)
#include "test_widget_confusion.moc"
