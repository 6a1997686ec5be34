/// @brief Small helpers the end-to-end tests share (data present, JSON files, file signatures).
#pragma once

#include <QByteArray>
#include <QFile>
#include <QString>

#include <filesystem>

#include <nlohmann/json.hpp>

namespace mst::test {

/// Debian's dataset-fashion-mnist package is installed (tests that train skip without it).
inline bool fashionMnistPresent() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

/// Writes `json` to `path` and returns the path.
inline QString writeJson(const QString& path, const nlohmann::json& json) {
  QFile f(path);
  if (f.open(QIODevice::WriteOnly)) f.write(QByteArray::fromStdString(json.dump(2)));
  return path;
}

/// The first `n` bytes of a file (empty when it cannot be read): for format signatures.
inline QByteArray fileHead(const QString& path, int n) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return {};
  return f.read(n);
}

}  // namespace mst::test
