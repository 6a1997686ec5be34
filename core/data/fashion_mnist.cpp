/// @brief Fashion-MNIST IDX reader: gzip or plain files, every header field and byte count checked.
#include "core/data/fashion_mnist.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <torch/torch.h>

#include "core/util/error.h"

namespace mst {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kImageMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelMagic = 0x00000801;  // unsigned byte, 1 dimension
// Bounds a garbage header before it turns into a multi-terabyte expected size.
constexpr uint32_t kMaxSide = 4096;

uint32_t bigEndian32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}

/// Decompressed content, but at most `limit` + 1 bytes: the header's promise bounds the read, so a
/// small .gz that inflates without end (or a header-less stream of zeros) cannot exhaust memory
/// before the byte-count check reports it; one byte past `limit` is enough to say "trailing data".
/// gzread passes plain files through unchanged, so the uncompressed fallback needs no second path.
std::vector<uint8_t> readAll(const std::string& path, uint64_t limit) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw MstError(path + ": cannot open (" + std::strerror(errno) + ")");
  gzbuffer(file, 1 << 18);
  std::vector<uint8_t> bytes;
  constexpr size_t kChunk = size_t(1) << 20;
  for (;;) {
    const size_t old_size = bytes.size();
    if (old_size > limit) break;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, limit + 1 - old_size));
    bytes.resize(old_size + want);
    const int got = gzread(file, bytes.data() + old_size, static_cast<unsigned>(want));
    if (got < 0) {
      int code = Z_OK;
      const std::string message = gzerror(file, &code);
      bytes.resize(old_size);
      // A cut-off gzip stream is a truncated file; the byte-count check below says what is missing.
      if (code == Z_BUF_ERROR) break;
      gzclose(file);
      throw MstError(path + ": corrupt gzip data (" + message + ")");
    }
    bytes.resize(old_size + static_cast<size_t>(got));
    if (got == 0) break;
  }
  gzclose(file);
  return bytes;
}

/// `<folder>/<stem>.gz`, else `<folder>/<stem>`; MstError naming the expected file otherwise.
std::string locate(const std::string& folder, const std::string& stem) {
  const fs::path base = fs::path(folder) / stem;
  const fs::path gz = fs::path(base.string() + ".gz");
  if (fs::is_regular_file(gz)) return gz.string();
  if (fs::is_regular_file(base)) return base.string();
  throw MstError("fashion_mnist: missing " + gz.string() + " (or uncompressed " + base.string() +
                 "); set data.path to the Fashion-MNIST folder");
}

void checkByteCount(const std::string& path, const std::string& promise, uint64_t expected,
                    uint64_t found) {
  if (found < expected) {
    throw MstError(path + ": truncated IDX file: header promises " + promise + " (" +
                   std::to_string(expected) + " bytes), found " + std::to_string(found) + " bytes");
  }
  if (found > expected) {  // readAll stops one byte past `expected`: the true size is unknown
    throw MstError(path + ": IDX file has more than the " + std::to_string(expected) +
                   " bytes expected for " + promise + " (trailing data)");
  }
}

/// Checks an IDX file's header length and magic number; `kind` is "image" or "label".
void checkIdxHeader(const std::string& path, const std::vector<uint8_t>& bytes, size_t header,
                    uint32_t magic, const std::string& kind) {
  if (bytes.size() < header) {
    throw MstError(path + ": truncated IDX file: expected a " + std::to_string(header) +
                   "-byte header, found " + std::to_string(bytes.size()) + " bytes");
  }
  const uint32_t found = bigEndian32(bytes.data());
  if (found != magic) {
    throw MstError(path + ": not an IDX " + kind + " file (magic " + hex32(found) +
                   ", expected " + hex32(magic) + ")");
  }
}

}  // namespace

FashionMnist::FashionMnist(const std::string& folder, bool train) : train_(train) {
  if (!fs::is_directory(folder)) {
    throw MstError("fashion_mnist: folder " + folder + " does not exist (data.path)");
  }
  const std::string prefix = train ? "train" : "t10k";
  const std::string image_path = locate(folder, prefix + "-images-idx3-ubyte");
  const std::string label_path = locate(folder, prefix + "-labels-idx1-ubyte");

  // The header first, then no more than it promises (see readAll).
  const std::vector<uint8_t> image_header = readAll(image_path, 16);
  checkIdxHeader(image_path, image_header, 16, kImageMagic, "image");
  const uint32_t count = bigEndian32(image_header.data() + 4);
  const uint32_t rows = bigEndian32(image_header.data() + 8);
  const uint32_t cols = bigEndian32(image_header.data() + 12);
  if (count == 0 || rows == 0 || cols == 0 || rows > kMaxSide || cols > kMaxSide) {
    throw MstError(image_path + ": implausible IDX dimensions " + std::to_string(count) + "x" +
                   std::to_string(rows) + "x" + std::to_string(cols));
  }
  const uint64_t pixel_bytes = uint64_t(count) * rows * cols;
  const std::vector<uint8_t> image_bytes = readAll(image_path, 16 + pixel_bytes);
  checkByteCount(
      image_path,
      std::to_string(count) + " images of " + std::to_string(rows) + "x" + std::to_string(cols),
      16 + pixel_bytes, image_bytes.size());

  const std::vector<uint8_t> label_header = readAll(label_path, 8);
  checkIdxHeader(label_path, label_header, 8, kLabelMagic, "label");
  const uint32_t label_count = bigEndian32(label_header.data() + 4);
  const std::vector<uint8_t> label_bytes = readAll(label_path, 8 + uint64_t(label_count));
  checkByteCount(label_path, std::to_string(label_count) + " labels", 8 + uint64_t(label_count),
                 label_bytes.size());
  if (label_count != count) {
    throw MstError(label_path + " has " + std::to_string(label_count) + " labels but " +
                   image_path + " has " + std::to_string(count) + " images");
  }
  labels_.assign(label_bytes.begin() + 8, label_bytes.end());
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (labels_[i] > 9) {
      throw MstError(label_path + ": label " + std::to_string(labels_[i]) + " at index " +
                     std::to_string(i) + " is outside 0..9");
    }
  }

  images_ = torch::empty({int64_t(count), 1, int64_t(rows), int64_t(cols)}, torch::kUInt8);
  std::memcpy(images_.data_ptr<uint8_t>(), image_bytes.data() + 16, pixel_bytes);
}

ImageShape FashionMnist::shape() const { return {1, images_.size(2), images_.size(3)}; }

int64_t FashionMnist::label(int64_t index) const {
  TORCH_CHECK(index >= 0 && index < size(), "fashion_mnist: index ", index, " out of range");
  return labels_[static_cast<size_t>(index)];
}

bool FashionMnist::read(int64_t index, uint8_t* dst) const {
  TORCH_CHECK(index >= 0 && index < size(), "fashion_mnist: index ", index, " out of range");
  const int64_t bytes = shape().bytes();
  std::memcpy(dst, images_.data_ptr<uint8_t>() + index * bytes, static_cast<size_t>(bytes));
  return true;
}

std::vector<std::string> FashionMnist::classNames() const {
  // The labels' meaning as Zalando's README gives it.
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

std::string FashionMnist::describe() const {
  return std::string("fashion_mnist ") + (train_ ? "train" : "test") + " (" +
         std::to_string(size()) + " images)";
}

}  // namespace mst
