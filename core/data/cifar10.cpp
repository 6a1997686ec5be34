/// @brief CIFAR-10 binary-version reader: record-size and label checks per batch file.
#include "core/data/cifar10.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "core/util/error.h"

namespace mst {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kImageBytes = 3 * 32 * 32;
constexpr int64_t kRecordBytes = 1 + kImageBytes;

/// The folder holding the .bin files: `folder` itself or its `cifar-10-batches-bin`, the name the
/// official tarball unpacks to.
fs::path batchFolder(const std::string& folder) {
  if (!fs::is_directory(folder)) {
    throw MstError("cifar10: folder " + folder + " does not exist (data.path)");
  }
  const fs::path nested = fs::path(folder) / "cifar-10-batches-bin";
  if (fs::is_directory(nested)) return nested;
  return fs::path(folder);
}

std::vector<uint8_t> readFile(const fs::path& path) {
  if (!fs::is_regular_file(path)) {
    throw MstError("cifar10: missing " + path.string() + " (the binary version of CIFAR-10)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw MstError(path.string() + ": cannot open");
  const auto size = static_cast<size_t>(fs::file_size(path));
  std::vector<uint8_t> bytes(size);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    throw MstError(path.string() + ": read failed after " + std::to_string(in.gcount()) + " of " +
                   std::to_string(size) + " bytes");
  }
  return bytes;
}

}  // namespace

Cifar10::Cifar10(const std::string& folder, bool train) : train_(train) {
  const fs::path dir = batchFolder(folder);
  std::vector<fs::path> files;
  if (train) {
    for (int i = 1; i <= 5; ++i)
      files.push_back(dir / ("data_batch_" + std::to_string(i) + ".bin"));
  } else {
    files.push_back(dir / "test_batch.bin");
  }

  // Read and check every file before allocating the split, so a bad file fails fast and cheaply.
  std::vector<std::vector<uint8_t>> contents;
  int64_t total = 0;
  for (const fs::path& path : files) {
    std::vector<uint8_t> bytes = readFile(path);
    const auto size = static_cast<int64_t>(bytes.size());
    if (size == 0 || size % kRecordBytes != 0) {
      throw MstError(path.string() + ": size " + std::to_string(size) +
                     " bytes is not a positive multiple of the 3073-byte CIFAR-10 record");
    }
    for (int64_t r = 0; r < size / kRecordBytes; ++r) {
      const uint8_t label = bytes[static_cast<size_t>(r * kRecordBytes)];
      if (label > 9) {
        throw MstError(path.string() + ": label " + std::to_string(label) + " in record " +
                       std::to_string(r) + " is outside 0..9");
      }
    }
    total += size / kRecordBytes;
    contents.push_back(std::move(bytes));
  }

  images_ = torch::empty({total, 3, 32, 32}, torch::kUInt8);
  labels_.reserve(static_cast<size_t>(total));
  uint8_t* out = images_.data_ptr<uint8_t>();
  for (const std::vector<uint8_t>& bytes : contents) {
    for (size_t offset = 0; offset < bytes.size(); offset += kRecordBytes) {
      labels_.push_back(bytes[offset]);
      std::memcpy(out, bytes.data() + offset + 1, kImageBytes);
      out += kImageBytes;
    }
  }
}

int64_t Cifar10::label(int64_t index) const {
  TORCH_CHECK(index >= 0 && index < size(), "cifar10: index ", index, " out of range");
  return labels_[static_cast<size_t>(index)];
}

bool Cifar10::read(int64_t index, uint8_t* dst) const {
  TORCH_CHECK(index >= 0 && index < size(), "cifar10: index ", index, " out of range");
  std::memcpy(dst, images_.data_ptr<uint8_t>() + index * kImageBytes, kImageBytes);
  return true;
}

std::vector<std::string> Cifar10::classNames() const {
  // batches.meta.txt of the binary version, in label order.
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

std::string Cifar10::describe() const {
  return std::string("cifar10 ") + (train_ ? "train" : "test") + " (" + std::to_string(size()) +
         " images)";
}

}  // namespace mst
