/// @brief Readers of run.h5 and the other HDF5 files, without LibTorch (the GUI includes this).
///
/// Every reader opens the file per call, read-only and in SWMR mode, so it works on a file that
/// another thread or process is still writing; throws MstError naming the file or dataset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mst {

/// Readers (open read-only in SWMR mode, so they work on a file still being written).
std::vector<double> readLogDataset(const std::string& path, const std::string& dataset);
std::vector<std::string> listLogGroup(const std::string& path, const std::string& group);
std::string readLogAttribute(const std::string& path, const std::string& object,
                             const std::string& attribute);
/// Reads a dataset of any rank as float (uint8 converted); shape in `dims`.
std::vector<float> readLogArray(const std::string& path, const std::string& dataset,
                                std::vector<int64_t>* dims);
/// Reads a 1-D string dataset (fixed- or variable-length), e.g. `/events/message`.
std::vector<std::string> readLogStrings(const std::string& path, const std::string& dataset);

}  // namespace mst
