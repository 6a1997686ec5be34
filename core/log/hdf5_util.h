/// @brief HDF5 helpers shared by the run log and the other HDF5 files (internal to core/log).
///
/// RAII handles, error reporting as MstError naming the file, string types and row appends.
#pragma once

#include <hdf5.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "core/log/run_log.h"
#include "core/util/error.h"
#include "core/util/files.h"

namespace mst::h5 {

inline constexpr hsize_t kMetricChunkRows = 256;
inline constexpr hsize_t kEventChunkRows = 64;
inline constexpr size_t kEventMessageBytes = 256;  ///< field size: messages keep 255 bytes and a NUL
inline const char* const kSnapshotNames[] = {"images", "attention", "mask_random", "mask_guided",
                                      "reconstruction"};

/// Owns one HDF5 identifier, so that every early throw still closes it.
template <herr_t (*Close)(hid_t)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() { close(); }
  /// Closes now and returns the status, for callers that must report a failed close.
  herr_t close() {
    herr_t status = id_ >= 0 ? Close(id_) : 0;
    id_ = H5I_INVALID_HID;
    return status;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using FileHandle = Handle<H5Fclose>;
using GroupHandle = Handle<H5Gclose>;
using DatasetHandle = Handle<H5Dclose>;
using SpaceHandle = Handle<H5Sclose>;
using TypeHandle = Handle<H5Tclose>;
using PlistHandle = Handle<H5Pclose>;
using AttrHandle = Handle<H5Aclose>;

/// HDF5 prints its error stack to stderr by default; we report failures as MstError instead. The
/// previous handler is restored because the setting is per thread and may belong to the caller.
class ErrorSilencer {
 public:
  ErrorSilencer() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~ErrorSilencer() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  ErrorSilencer(const ErrorSilencer&) = delete;
  ErrorSilencer& operator=(const ErrorSilencer&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

/// The innermost HDF5 error description (where the failure was detected), or "" if none. Must be
/// called right after the failing call: the next API call clears the stack.
inline std::string hdf5Detail() {
  std::string detail;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* err, void* out) -> herr_t {
        if (n == 0 && err->desc) *static_cast<std::string*>(out) = err->desc;
        return 0;
      },
      &detail);
  return detail.empty() ? std::string() : " (HDF5: " + detail + ")";
}

/// `where` names the file ("run log /x/run.h5"); `what` says what failed on it.
[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
  std::string detail = hdf5Detail();
  throw MstError(where + ": " + what + detail);
}

inline hid_t check(hid_t id, const std::string& where, const std::string& what) {
  if (id < 0) fail(where, what);
  return id;
}

inline bool linkExists(hid_t loc, const std::string& name) {
  // H5Lexists fails rather than returning false when an intermediate group is missing.
  std::string prefix;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = name.find('/', pos + 1);
    prefix = name.substr(0, next);
    if (!prefix.empty() && prefix != "/" && H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0)
      return false;
    pos = next;
  }
  return true;
}

inline std::vector<hsize_t> datasetDims(hid_t dset, const std::string& where, const std::string& name) {
  SpaceHandle space(check(H5Dget_space(dset), where, "cannot get the shape of " + name));
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail(where, "cannot get the rank of " + name);
  std::vector<hsize_t> dims(rank);
  if (H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
    fail(where, "cannot get the shape of " + name);
  return dims;
}

inline std::string dimsText(const std::vector<hsize_t>& dims) {
  std::string text = "(";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + ")";
}

/// Fixed-length UTF-8 string type of `bytes` including the terminating NUL: SWMR readers cannot
/// follow variable-length data, and null-terminated strings print cleanly in h5dump.
inline TypeHandle fixedStringType(size_t bytes, const std::string& where) {
  TypeHandle type(check(H5Tcopy(H5T_C_S1), where, "cannot create a string type"));
  if (H5Tset_size(type.get(), bytes) < 0 || H5Tset_strpad(type.get(), H5T_STR_NULLTERM) < 0 ||
      H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
    fail(where, "cannot create a string type");
  return type;
}

inline void writeStringAttribute(hid_t object, const std::string& objectName, const std::string& name,
                          const std::string& value, const std::string& where) {
  const std::string what = "cannot write attribute " + name + " of " + objectName;
  if (H5Aexists(object, name.c_str()) > 0 && H5Adelete(object, name.c_str()) < 0) fail(where, what);
  TypeHandle type = fixedStringType(value.size() + 1, where);
  SpaceHandle space(check(H5Screate(H5S_SCALAR), where, what));
  AttrHandle attr(
      check(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
            where, what));
  if (H5Awrite(attr.get(), type.get(), value.c_str()) < 0) fail(where, what);
}

/// Decodes `count` strings of file type `fileType`; `read` fills the buffer for a memory type.
inline std::vector<std::string> readStrings(hid_t fileType, hid_t space, hsize_t count,
                                     const std::function<herr_t(hid_t, void*)>& read,
                                     const std::string& where, const std::string& what) {
  if (H5Tget_class(fileType) != H5T_STRING) fail(where, what + ": not a string");
  std::vector<std::string> out;
  out.reserve(count);
  if (H5Tis_variable_str(fileType) > 0) {
    TypeHandle memType(check(H5Tcopy(H5T_C_S1), where, what));
    if (H5Tset_size(memType.get(), H5T_VARIABLE) < 0 ||
        H5Tset_cset(memType.get(), H5Tget_cset(fileType)) < 0)
      fail(where, what);
    std::vector<char*> buffer(count, nullptr);
    if (count > 0 && read(memType.get(), buffer.data()) < 0) fail(where, what);
    for (char* s : buffer) out.emplace_back(s ? s : "");
    if (count > 0) H5Dvlen_reclaim(memType.get(), space, H5P_DEFAULT, buffer.data());
    return out;
  }
  size_t size = H5Tget_size(fileType);
  if (size == 0) fail(where, what);
  TypeHandle memType(check(H5Tcopy(fileType), where, what));
  std::vector<char> buffer(count * size, '\0');
  if (count > 0 && read(memType.get(), buffer.data()) < 0) fail(where, what);
  const bool spacePadded = H5Tget_strpad(fileType) == H5T_STR_SPACEPAD;
  for (hsize_t i = 0; i < count; ++i) {
    std::string s(buffer.data() + i * size, size);
    s = s.substr(0, s.find('\0'));
    if (spacePadded) s.erase(s.find_last_not_of(' ') + 1);
    out.push_back(std::move(s));
  }
  return out;
}

/// Cuts to `bytes` without splitting a UTF-8 sequence.
inline std::string truncateUtf8(const std::string& text, size_t bytes) {
  if (text.size() <= bytes) return text;
  size_t end = bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

/// (rows, trailing...) chunked dataset with unlimited rows. `fill` (for floats) is what rows that
/// are extended but never written read as, e.g. earlier rows of a column added on resume.
inline void createColumn(hid_t group, const std::string& name, hid_t type,
                  const std::vector<hsize_t>& trailing, hsize_t rows, hsize_t chunkRows,
                  const double* fill, const std::string& where, const std::string& fullName) {
  const std::string what = "cannot create " + fullName;
  std::vector<hsize_t> dims{rows}, maxDims{H5S_UNLIMITED}, chunk{chunkRows};
  for (hsize_t d : trailing) {
    dims.push_back(d);
    // A chunk dimension must be > 0 and within a fixed maximum, so a zero-size axis (no probes)
    // is made unlimited instead.
    maxDims.push_back(d == 0 ? H5S_UNLIMITED : d);
    chunk.push_back(std::max<hsize_t>(d, 1));
  }
  SpaceHandle space(check(
      H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxDims.data()), where, what));
  PlistHandle dcpl(check(H5Pcreate(H5P_DATASET_CREATE), where, what));
  if (H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0) fail(where, what);
  if (fill && H5Pset_fill_value(dcpl.get(), H5T_NATIVE_DOUBLE, fill) < 0) fail(where, what);
  DatasetHandle dset(check(
      H5Dcreate2(group, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
      where, what));
}

/// Writes one row (all trailing elements) at index `row`, growing the dataset to `row + 1` rows.
inline void writeRow(hid_t dset, hsize_t row, hid_t memType, const void* data, const std::string& where,
              const std::string& name) {
  const std::string what = "cannot append to " + name;
  std::vector<hsize_t> dims = datasetDims(dset, where, name);
  if (dims.empty()) fail(where, what + ": scalar dataset");
  dims[0] = row + 1;
  if (H5Dset_extent(dset, dims.data()) < 0) fail(where, what);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = row;
  count[0] = 1;
  hsize_t elements = 1;
  for (hsize_t c : count) elements *= c;
  if (elements == 0) return;
  SpaceHandle fileSpace(check(H5Dget_space(dset), where, what));
  if (H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                          nullptr) < 0)
    fail(where, what);
  SpaceHandle memSpace(
      check(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), where, what));
  if (H5Dwrite(dset, memType, memSpace.get(), fileSpace.get(), H5P_DEFAULT, data) < 0)
    fail(where, what);
}

inline std::vector<std::string> linkNames(hid_t loc, const std::string& group, const std::string& where) {
  std::vector<std::string> names;
  herr_t status = H5Literate_by_name(
      loc, group.c_str(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->emplace_back(name);
        return 0;
      },
      &names, H5P_DEFAULT);
  if (status < 0) fail(where, "cannot list " + group);
  return names;
}

/// Opens an existing file for reading while a writer may still append (SWMR), or a file that was
/// never written in SWMR mode (older superblock: SWMR read refuses it).
inline FileHandle openForRead(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw MstError(path + ": no such file");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
  if (id < 0) id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) fail(path, "cannot open as HDF5 for reading");
  return FileHandle(id);
}

inline void requireNumeric(hid_t dset, const std::string& path, const std::string& dataset) {
  TypeHandle type(check(H5Dget_type(dset), path, "cannot read " + dataset));
  H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw MstError(path + ": cannot read " + dataset + ": not a numeric dataset");
}

inline DatasetHandle openDataset(hid_t file, const std::string& path, const std::string& dataset) {
  if (!linkExists(file, dataset))
    throw MstError(path + ": cannot read " + dataset + ": no such dataset");
  return DatasetHandle(
      check(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), path, "cannot open dataset " + dataset));
}

/// Detached, contiguous CPU copy in `type` with exactly `sizes`, for writing.
inline torch::Tensor hostTensor(const torch::Tensor& t, torch::ScalarType type,
                         const std::vector<int64_t>& sizes, const char* name) {
  TORCH_CHECK(t.defined(), name, " is undefined");
  TORCH_CHECK(t.sizes() == torch::IntArrayRef(sizes), name, " has shape ", t.sizes(), ", expected ",
              torch::IntArrayRef(sizes));
  return t.detach().to(torch::kCPU, type).contiguous();
}

struct SnapshotArrays {
  torch::Tensor images, attention, mask_random, mask_guided, reconstruction;
  const torch::Tensor& operator[](int i) const {
    const torch::Tensor* all[] = {&images, &attention, &mask_random, &mask_guided, &reconstruction};
    return *all[i];
  }
};

/// Converts and checks views against (N, C, H, W) and (N, h, w).
inline SnapshotArrays hostViews(const ProbeViews& v, int64_t n, int64_t c, int64_t h, int64_t w,
                         int64_t gh, int64_t gw) {
  SnapshotArrays out;
  out.images = hostTensor(v.images, torch::kFloat32, {n, c, h, w}, "images");
  out.attention = hostTensor(v.attention, torch::kFloat32, {n, gh, gw}, "attention");
  out.mask_random = hostTensor(v.mask_random, torch::kUInt8, {n, gh, gw}, "mask_random");
  out.mask_guided = hostTensor(v.mask_guided, torch::kUInt8, {n, gh, gw}, "mask_guided");
  out.reconstruction =
      hostTensor(v.reconstruction, torch::kFloat32, {n, c, h, w}, "reconstruction");
  return out;
}

inline bool isMaskName(const std::string& name) { return name == "mask_random" || name == "mask_guided"; }

/// Rows of one group: the datasets that share its `step` column.
struct RowGroup {
  std::string name;                    ///< "/metrics"
  std::vector<std::string> columns;    ///< every dataset except step, in write order
  std::vector<DatasetHandle> handles;  ///< parallel to columns
  DatasetHandle step;
  hsize_t rows = 0;
};

/// Builds a fresh HDF5 file at a temporary sibling of `path` (temporarySibling) with `fill(file)`,
/// then renames it over `path`, so a reader never sees half a file and a failure leaves any
/// previous file untouched.
inline void writeFileAtomically(const std::string& path, const std::string& where,
                         const std::function<void(hid_t)>& fill) {
  ErrorSilencer silence;
  const std::string tmp = temporarySibling(path);
  try {
    {
      FileHandle file(check(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                            where + " (" + tmp + ")", "cannot create"));
      fill(file.get());
      // Closed explicitly (not by the destructor) so that a failed final write is reported.
      if (file.close() < 0) fail(where, "cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw MstError(where + ": cannot rename " + tmp + " to it");
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace mst::h5
