/// @brief libFuzzer target: the CIFAR-10 binary-batch reader.
#include <vector>

#include "core/config/config.h"
#include "core/data/dataset.h"
#include "fuzz/fuzz_util.h"

// Input layout: [flags][batch file]. flags bit 0: the training split (the same bytes in all five
// data_batch_N.bin), else test_batch.bin; bit 1: inside the tarball's cifar-10-batches-bin folder.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  ++data;
  --size;
  const bool train = flags & 1;
  const auto root = mst::fuzz::scratchDir() / "cifar";
  std::filesystem::remove_all(root);
  const auto dir = (flags & 2) ? root / "cifar-10-batches-bin" : root;
  std::filesystem::create_directories(dir);
  if (train) {
    for (int i = 1; i <= 5; ++i)
      mst::fuzz::writeFile(dir / ("data_batch_" + std::to_string(i) + ".bin"), data, size);
  } else {
    mst::fuzz::writeFile(dir / "test_batch.bin", data, size);
  }

  mst::DataConfig config;
  config.path = root.string();
  config.format = "cifar10";
  config.limit = flags >> 4;
  try {
    auto dataset = mst::openDataset(config, train);
    const mst::ImageShape shape = dataset->shape();
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
