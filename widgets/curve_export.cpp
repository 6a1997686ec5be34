/// @brief CurvePanel's exports: one plot as PNG/PDF/SVG at a chosen size, all plots at once, and
/// one plot's raw and smoothed values as CSV.
#include <qcustomplot.h>

#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QMessageBox>
#include <QSpinBox>
#include <QSvgGenerator>
#include <QTextStream>
#include <cmath>

#include "widgets/curve_panel.h"
#include "widgets/probe_image.h"

namespace mst {
namespace {


QString csvNumber(double value) {
  // Shortest text that reads back to the same double: exact, and still short for 0.1 or 1500.
  return std::isfinite(value) ? QString::number(value, 'g', QLocale::FloatingPointShortest)
                              : QString();
}

/// Asks for an export size in pixels (default 800 x 500); false when cancelled.
bool askFigureSize(QWidget* parent, QSize* size) {
  QDialog dialog(parent);
  dialog.setWindowTitle(QObject::tr("Figure size"));
  auto* width = new QSpinBox(&dialog);
  auto* height = new QSpinBox(&dialog);
  for (QSpinBox* box : {width, height}) {
    box->setRange(100, 8000);
    box->setSuffix(QObject::tr(" px"));
  }
  width->setValue(size->width());
  height->setValue(size->height());
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, &dialog);
  QObject::connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
  QObject::connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
  auto* form = new QFormLayout(&dialog);
  form->addRow(QObject::tr("Width"), width);
  form->addRow(QObject::tr("Height"), height);
  form->addRow(buttons);
  if (dialog.exec() != QDialog::Accepted) return false;
  *size = QSize(width->value(), height->value());
  return true;
}

}  // namespace

bool CurvePanel::exportFigure(const QString& plotName, const QString& path, int width, int height,
                              QString* error) {
  auto fail = [error](const QString& message) {
    if (error) *error = message;
    return false;
  };
  const int p = plotIndex(plotName);
  if (p < 0) return fail(tr("no plot named \"%1\"").arg(plotName));
  const QString suffix = QFileInfo(path).suffix().toLower();
  if (suffix != "png" && suffix != "pdf" && suffix != "svg") {
    return fail(tr("cannot export \"%1\": use a .png, .pdf or .svg file name").arg(path));
  }
  if (width <= 0 || height <= 0) return fail(tr("figure size must be positive"));
  QFile file(path);
  // QSvgGenerator and QPrinter do not report unwritable paths, so probe the file first.
  if (!file.open(QIODevice::WriteOnly)) {
    return fail(tr("cannot write %1: %2").arg(path, file.errorString()));
  }
  flushRedraw();
  clearHover();  // the tracer belongs to the screen, not to the figure
  QCustomPlot* plot = plots_[p].widget;
  bool ok = true;
  if (suffix == "svg") {
    QSvgGenerator generator;
    generator.setOutputDevice(&file);
    generator.setSize(QSize(width, height));
    generator.setViewBox(QRect(0, 0, width, height));
    generator.setTitle(plotName);
    QCPPainter painter(&generator);
    plot->toPainter(&painter, width, height);
    ok = painter.end();
  } else {
    file.close();
    ok = suffix == "png" ? plot->savePng(path, width, height)
                         : plot->savePdf(path, width, height, QCP::epNoCosmetic);
  }
  if (!ok) return fail(tr("writing %1 failed").arg(path));
  return true;
}

bool CurvePanel::exportCsv(const QString& plotName, const QString& path, QString* error) const {
  auto fail = [error](const QString& message) {
    if (error) *error = message;
    return false;
  };
  const int p = plotIndex(plotName);
  if (p < 0) return fail(tr("no plot named \"%1\"").arg(plotName));
  // Written whole or not at all: a failed export leaves the file that was there.
  return writeTextFile(
      path,
      [&](QTextStream& out) {
        out << "run,step,epoch,wall_s," << plotName << ',' << plotName << "_smoothed\n";
        const bool isEval = plotName == kEvalPlot;
        for (const auto& run : runs_) {
          const CurveTable& table = isEval ? run->curves.eval : run->curves.metrics;
          const QVector<double> values = table.columns.value(plotName);
          DebiasedEmaState ema(isSmoothed(plotName) ? smoothing_ : 0.0);
          const QString label = csvField(run->curves.label);
          for (int row = 0; row < table.rows(); ++row) {
            const double value = valueAt(values, row);
            if (!std::isfinite(value)) continue;
            const double smoothed = ema.push(value);
            const CurveTable& metrics = run->curves.metrics;
            out << label << ',' << csvNumber(keyAt(table, metrics, XAxis::Step, row)) << ','
                << csvNumber(keyAt(table, metrics, XAxis::Epoch, row)) << ','
                << csvNumber(keyAt(table, metrics, XAxis::WallTime, row)) << ','
                << csvNumber(value) << ',' << csvNumber(smoothed) << '\n';
          }
        }
      },
      error);
}

void CurvePanel::exportFigureDialog(int p) {
  const QString name = plots_[p].name;
  QString filter;
  QString path = QFileDialog::getSaveFileName(
      this, tr("Export figure of %1").arg(name), QDir(lastDir_).filePath(name + ".png"),
      tr("PNG image (*.png);;PDF document (*.pdf);;SVG drawing (*.svg)"), &filter);
  if (path.isEmpty()) return;
  if (QFileInfo(path).suffix().isEmpty()) {
    path += filter.contains("pdf") ? ".pdf" : filter.contains("svg") ? ".svg" : ".png";
  }
  lastDir_ = QFileInfo(path).absolutePath();
  QSize size(800, 500);
  if (!askFigureSize(this, &size)) return;
  QString error;
  if (!exportFigure(name, path, size.width(), size.height(), &error)) {
    QMessageBox::warning(this, tr("Export figure"), error);
  }
}

void CurvePanel::exportAllDialog() {
  QString filter;
  const QString base = QFileDialog::getSaveFileName(
      this, tr("Export all plots (one file per plot, name_<plot>.ext)"),
      QDir(lastDir_).filePath("curves.pdf"),
      tr("PDF document (*.pdf);;PNG image (*.png);;SVG drawing (*.svg)"), &filter);
  if (base.isEmpty()) return;
  QFileInfo info(base);
  QString suffix = info.suffix();
  if (suffix.isEmpty())
    suffix = filter.contains("png") ? "png" : filter.contains("svg") ? "svg" : "pdf";
  lastDir_ = info.absolutePath();
  QSize size(800, 500);
  if (!askFigureSize(this, &size)) return;
  QStringList errors;
  for (const PlotView& view : plots_) {
    const QString path = QDir(info.absolutePath())
                             .filePath(info.completeBaseName() + '_' + view.name + '.' + suffix);
    QString error;
    if (!exportFigure(view.name, path, size.width(), size.height(), &error)) errors << error;
  }
  if (!errors.isEmpty()) QMessageBox::warning(this, tr("Export figures"), errors.join('\n'));
}

void CurvePanel::exportCsvDialog(int p) {
  const QString name = plots_[p].name;
  const QString path =
      QFileDialog::getSaveFileName(this, tr("Export data of %1").arg(name),
                                   QDir(lastDir_).filePath(name + ".csv"), tr("CSV table (*.csv)"));
  if (path.isEmpty()) return;
  lastDir_ = QFileInfo(path).absolutePath();
  QString error;
  if (!exportCsv(name, path, &error)) QMessageBox::warning(this, tr("Export data"), error);
}

}  // namespace mst
