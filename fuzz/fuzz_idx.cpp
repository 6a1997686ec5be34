/// @brief libFuzzer target: the Fashion-MNIST IDX reader (plain and gzipped image + label files).
#include <zlib.h>

#include <cstring>
#include <vector>

#include "core/config/config.h"
#include "core/data/dataset.h"
#include "fuzz/fuzz_util.h"

namespace {

/// gzip of `data` (level 1: the fuzzer wants executions, not ratio).
std::vector<uint8_t> gzip(const uint8_t* data, size_t size) {
  z_stream z{};
  deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::vector<uint8_t> out(deflateBound(&z, size) + 32);
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

// Input layout: [flags][images length, 4 bytes little-endian][images][labels].
// flags bit 0: test split; bit 1: gzip the images; bit 2: gzip the labels. Without a gzip bit the
// bytes are written under the plain name, where a mutated gzip stream still reaches zlib (gzread
// sniffs the magic), so corrupt-compressed input is covered as well as corrupt content.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  const uint8_t flags = data[0];
  uint32_t image_len;
  std::memcpy(&image_len, data + 1, 4);
  data += 5;
  size -= 5;
  image_len = size == 0 ? 0 : image_len % (size + 1);
  const bool train = (flags & 1) == 0;

  const auto dir = mst::fuzz::scratchDir() / "idx";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string prefix = train ? "train" : "t10k";
  auto put = [&](const std::string& stem, const uint8_t* bytes, size_t n, bool gz) {
    if (gz) {
      const auto packed = gzip(bytes, n);
      mst::fuzz::writeFile(dir / (stem + ".gz"), packed.data(), packed.size());
    } else {
      mst::fuzz::writeFile(dir / stem, bytes, n);
    }
  };
  put(prefix + "-images-idx3-ubyte", data, image_len, flags & 2);
  put(prefix + "-labels-idx1-ubyte", data + image_len, size - image_len, flags & 4);

  mst::DataConfig config;
  config.path = dir.string();
  config.format = "fashion_mnist";
  config.limit = flags >> 4;  // also exercise the data.limit prefix view
  try {
    auto dataset = mst::openDataset(config, train);
    // A data set that opened must serve every index it claims.
    const mst::ImageShape shape = dataset->shape();
    if (shape.channels != 1 || shape.height < 1 || shape.width < 1) std::abort();
    std::vector<uint8_t> image(static_cast<size_t>(shape.bytes()));
    for (int64_t i = 0; i < dataset->size(); ++i) {
      const int64_t label = dataset->label(i);
      if (label < 0 || label >= dataset->numClasses()) std::abort();
      if (!dataset->read(i, image.data())) std::abort();
    }
  } catch (const std::exception& e) {
    mst::fuzz::checkMessage(e);
  }
  return 0;
}
