/// @brief HDF5 run log (SWMR writer, truncating resume), inspect file writer, and readers.
#include "core/log/run_log.h"

#include <hdf5.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <system_error>
#include <utility>

#include "core/util/error.h"

namespace mst {
namespace {

constexpr hsize_t kMetricChunkRows = 256;
constexpr hsize_t kEventChunkRows = 64;
constexpr size_t kEventMessageBytes = 256;  ///< field size: messages keep 255 bytes and a NUL
const char* const kSnapshotNames[] = {"images", "attention", "mask_random", "mask_guided",
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
std::string hdf5Detail() {
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
[[noreturn]] void fail(const std::string& where, const std::string& what) {
  std::string detail = hdf5Detail();
  throw MstError(where + ": " + what + detail);
}

hid_t check(hid_t id, const std::string& where, const std::string& what) {
  if (id < 0) fail(where, what);
  return id;
}

bool linkExists(hid_t loc, const std::string& name) {
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

std::vector<hsize_t> datasetDims(hid_t dset, const std::string& where, const std::string& name) {
  SpaceHandle space(check(H5Dget_space(dset), where, "cannot get the shape of " + name));
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail(where, "cannot get the rank of " + name);
  std::vector<hsize_t> dims(rank);
  if (H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
    fail(where, "cannot get the shape of " + name);
  return dims;
}

std::string dimsText(const std::vector<hsize_t>& dims) {
  std::string text = "(";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + ")";
}

/// Fixed-length UTF-8 string type of `bytes` including the terminating NUL: SWMR readers cannot
/// follow variable-length data, and null-terminated strings print cleanly in h5dump.
TypeHandle fixedStringType(size_t bytes, const std::string& where) {
  TypeHandle type(check(H5Tcopy(H5T_C_S1), where, "cannot create a string type"));
  if (H5Tset_size(type.get(), bytes) < 0 || H5Tset_strpad(type.get(), H5T_STR_NULLTERM) < 0 ||
      H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
    fail(where, "cannot create a string type");
  return type;
}

void writeStringAttribute(hid_t object, const std::string& objectName, const std::string& name,
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
std::vector<std::string> readStrings(hid_t fileType, hid_t space, hsize_t count,
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
std::string truncateUtf8(const std::string& text, size_t bytes) {
  if (text.size() <= bytes) return text;
  size_t end = bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

/// (rows, trailing...) chunked dataset with unlimited rows. `fill` (for floats) is what rows that
/// are extended but never written read as, e.g. earlier rows of a column added on resume.
void createColumn(hid_t group, const std::string& name, hid_t type,
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
void writeRow(hid_t dset, hsize_t row, hid_t memType, const void* data, const std::string& where,
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

std::vector<std::string> linkNames(hid_t loc, const std::string& group, const std::string& where) {
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
FileHandle openForRead(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw MstError(path + ": no such file");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
  if (id < 0) id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) fail(path, "cannot open as HDF5 for reading");
  return FileHandle(id);
}

void requireNumeric(hid_t dset, const std::string& path, const std::string& dataset) {
  TypeHandle type(check(H5Dget_type(dset), path, "cannot read " + dataset));
  H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw MstError(path + ": cannot read " + dataset + ": not a numeric dataset");
}

DatasetHandle openDataset(hid_t file, const std::string& path, const std::string& dataset) {
  if (!linkExists(file, dataset))
    throw MstError(path + ": cannot read " + dataset + ": no such dataset");
  return DatasetHandle(
      check(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), path, "cannot open dataset " + dataset));
}

/// Detached, contiguous CPU copy in `type` with exactly `sizes`, for writing.
torch::Tensor hostTensor(const torch::Tensor& t, torch::ScalarType type,
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
SnapshotArrays hostViews(const ProbeViews& v, int64_t n, int64_t c, int64_t h, int64_t w,
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

bool isMaskName(const std::string& name) { return name == "mask_random" || name == "mask_guided"; }

/// Rows of one group: the datasets that share its `step` column.
struct RowGroup {
  std::string name;                    ///< "/metrics"
  std::vector<std::string> columns;    ///< every dataset except step, in write order
  std::vector<DatasetHandle> handles;  ///< parallel to columns
  DatasetHandle step;
  hsize_t rows = 0;
};

/// Builds a fresh HDF5 file at `path` + ".tmp" with `fill(file)`, then renames it over `path`, so a
/// reader never sees half a file and a failure leaves any previous file untouched.
void writeFileAtomically(const std::string& path, const std::string& where,
                         const std::function<void(hid_t)>& fill) {
  ErrorSilencer silence;
  const std::string tmp = path + ".tmp";
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


}  // namespace

struct RunLog::Impl {
  std::string path;
  std::string where;  ///< "run log <path>", the prefix of every error
  RunLogShape shape;
  FileHandle file;  // declared first: closed after the datasets below
  RowGroup metrics, eval, snapshots, events;

  std::vector<hsize_t> snapshotTrailing(const std::string& name) const {
    if (name == "images" || name == "reconstruction")
      return {hsize_t(shape.probes), hsize_t(shape.channels), hsize_t(shape.height),
              hsize_t(shape.width)};
    return {hsize_t(shape.probes), hsize_t(shape.grid_h), hsize_t(shape.grid_w)};
  }

  void validateShape() const {
    auto checkNames = [&](const std::vector<std::string>& names, const char* group) {
      for (size_t i = 0; i < names.size(); ++i) {
        const std::string& n = names[i];
        if (n.empty() || n == "step" || n == "epoch" || n.find('/') != std::string::npos ||
            std::find(names.begin(), names.begin() + i, n) != names.begin() + i)
          throw MstError(where + ": invalid or duplicate " + group + " name '" + n + "'");
      }
    };
    checkNames(shape.metrics, "metrics");
    checkNames(shape.evals, "eval");
    if (shape.probes < 0 || shape.channels <= 0 || shape.height <= 0 || shape.width <= 0 ||
        shape.grid_h <= 0 || shape.grid_w <= 0)
      throw MstError(where + ": invalid snapshot shape");
  }

  /// Creates every group and dataset that is missing, with `rows` rows for new datasets of a
  /// group that already has rows (their values read as NaN, or 0 for masks and steps).
  void ensureLayout(const std::map<std::string, hsize_t>& groupRows) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (const char* g : {"/config", "/metrics", "/eval", "/snapshots", "/events"}) {
      if (linkExists(file.get(), g)) continue;
      GroupHandle created(check(H5Gcreate2(file.get(), g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                where, std::string("cannot create ") + g));
    }
    auto rowsOf = [&](const std::string& g) {
      auto it = groupRows.find(g);
      return it == groupRows.end() ? hsize_t(0) : it->second;
    };
    auto scalarColumns = [&](const std::string& g, const std::vector<std::string>& names) {
      GroupHandle group(
          check(H5Gopen2(file.get(), g.c_str(), H5P_DEFAULT), where, "cannot open " + g));
      if (!linkExists(group.get(), "step"))
        createColumn(group.get(), "step", H5T_STD_I64LE, {}, rowsOf(g), kMetricChunkRows, nullptr,
                     where, g + "/step");
      if (!linkExists(group.get(), "epoch"))
        createColumn(group.get(), "epoch", H5T_IEEE_F64LE, {}, rowsOf(g), kMetricChunkRows, &nan,
                     where, g + "/epoch");
      for (const std::string& n : names)
        if (!linkExists(group.get(), n))
          createColumn(group.get(), n, H5T_IEEE_F32LE, {}, rowsOf(g), kMetricChunkRows, &nan, where,
                       g + "/" + n);
    };
    scalarColumns("/metrics", shape.metrics);
    scalarColumns("/eval", shape.evals);

    GroupHandle snap(
        check(H5Gopen2(file.get(), "/snapshots", H5P_DEFAULT), where, "cannot open /snapshots"));
    const hsize_t snapRows = rowsOf("/snapshots");
    if (!linkExists(snap.get(), "step"))
      createColumn(snap.get(), "step", H5T_STD_I64LE, {}, snapRows, kMetricChunkRows, nullptr,
                   where, "/snapshots/step");
    for (const char* n : kSnapshotNames) {
      const std::string full = std::string("/snapshots/") + n;
      std::vector<hsize_t> trailing = snapshotTrailing(n);
      // One snapshot per chunk: a reader fetches one snapshot with one chunk read.
      if (!linkExists(snap.get(), n))
        createColumn(snap.get(), n, isMaskName(n) ? H5T_STD_U8LE : H5T_IEEE_F32LE, trailing,
                     snapRows, 1, isMaskName(n) ? nullptr : &nan, where, full);
    }

    GroupHandle ev(
        check(H5Gopen2(file.get(), "/events", H5P_DEFAULT), where, "cannot open /events"));
    const hsize_t eventRows = rowsOf("/events");
    if (!linkExists(ev.get(), "step"))
      createColumn(ev.get(), "step", H5T_STD_I64LE, {}, eventRows, kEventChunkRows, nullptr, where,
                   "/events/step");
    if (!linkExists(ev.get(), "message")) {
      TypeHandle str = fixedStringType(kEventMessageBytes, where);
      createColumn(ev.get(), "message", str.get(), {}, eventRows, kEventChunkRows, nullptr, where,
                   "/events/message");
    }
  }

  /// Refuses, before anything is modified, a file whose snapshots or events this run could not
  /// append to: unknown datasets there, or snapshots of other probe dimensions.
  void validateExisting() const {
    const std::vector<std::string> snapshotNames(std::begin(kSnapshotNames),
                                                 std::end(kSnapshotNames));
    for (const std::string& n : linkNames(file.get(), "/snapshots", where)) {
      const std::string full = "/snapshots/" + n;
      if (n == "step") continue;
      if (std::find(snapshotNames.begin(), snapshotNames.end(), n) == snapshotNames.end())
        throw MstError(where + ": unexpected dataset " + full + ": not an MST run log");
      DatasetHandle d(
          check(H5Dopen2(file.get(), full.c_str(), H5P_DEFAULT), where, "cannot open " + full));
      std::vector<hsize_t> dims = datasetDims(d.get(), where, full);
      std::vector<hsize_t> have(dims.begin() + std::min<size_t>(1, dims.size()), dims.end());
      if (have != snapshotTrailing(n))
        throw MstError(where + ": " + full + " holds snapshots of shape " + dimsText(have) +
                       " but this run writes " + dimsText(snapshotTrailing(n)));
    }
    for (const std::string& n : linkNames(file.get(), "/events", where))
      if (n != "step" && n != "message")
        throw MstError(where + ": unexpected dataset /events/" + n + ": not an MST run log");
  }

  /// Drops rows whose step is > resumeStep in every dataset of `group` and returns the row count
  /// kept. Steps are appended in increasing order, so the rows kept are those before the first
  /// larger step; a row that a killed writer wrote to only some columns is dropped too.
  hsize_t truncateGroup(const std::string& group, int64_t resumeStep) {
    const std::string stepName = group + "/step";
    DatasetHandle step(check(H5Dopen2(file.get(), stepName.c_str(), H5P_DEFAULT), where,
                             "cannot open " + stepName));
    std::vector<hsize_t> stepDims = datasetDims(step.get(), where, stepName);
    if (stepDims.size() != 1) throw MstError(where + ": " + stepName + " is not 1-D");
    std::vector<int64_t> steps(stepDims[0]);
    if (!steps.empty() &&
        H5Dread(step.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps.data()) < 0)
      fail(where, "cannot read " + stepName);
    hsize_t keep =
        std::find_if(steps.begin(), steps.end(), [&](int64_t s) { return s > resumeStep; }) -
        steps.begin();

    std::vector<std::pair<std::string, DatasetHandle>> all;
    for (const std::string& n : linkNames(file.get(), group, where)) {
      const std::string full = group + "/" + n;
      DatasetHandle d(check(H5Dopen2(file.get(), full.c_str(), H5P_DEFAULT), where,
                            "cannot open " + full + " (groups hold datasets only)"));
      std::vector<hsize_t> dims = datasetDims(d.get(), where, full);
      if (dims.empty()) throw MstError(where + ": " + full + " is scalar, not a column");
      keep = std::min(keep, dims[0]);
      all.emplace_back(full, std::move(d));
    }
    for (auto& [full, d] : all) {
      std::vector<hsize_t> dims = datasetDims(d.get(), where, full);
      if (dims[0] == keep) continue;
      dims[0] = keep;
      if (H5Dset_extent(d.get(), dims.data()) < 0) fail(where, "cannot truncate " + full);
    }
    return keep;
  }

  /// Opens `group`'s datasets for appending: `preferred` columns first, then, if `keepOthers`,
  /// any others the file has (from an earlier run; they receive NaN). Without `keepOthers` an
  /// unknown dataset is an error, since no value could be written to keep it aligned.
  void openGroup(RowGroup* g, const std::string& name, const std::vector<std::string>& preferred,
                 bool keepOthers) {
    g->name = name;
    g->columns = preferred;
    for (const std::string& n : linkNames(file.get(), name, where)) {
      if (n == "step" || std::find(g->columns.begin(), g->columns.end(), n) != g->columns.end())
        continue;
      if (!keepOthers)
        throw MstError(where + ": unexpected dataset " + name + "/" + n + ": not an MST run log");
      g->columns.push_back(n);
    }
    for (const std::string& n : g->columns) {
      const std::string full = name + "/" + n;
      g->handles.emplace_back(
          check(H5Dopen2(file.get(), full.c_str(), H5P_DEFAULT), where, "cannot open " + full));
    }
    const std::string stepName = name + "/step";
    g->step = DatasetHandle(check(H5Dopen2(file.get(), stepName.c_str(), H5P_DEFAULT), where,
                                  "cannot open " + stepName));
    g->rows = datasetDims(g->step.get(), where, stepName).at(0);
  }

  void appendStep(RowGroup* g, int64_t step) {
    writeRow(g->step.get(), g->rows, H5T_NATIVE_INT64, &step, where, g->name + "/step");
    ++g->rows;
    // SWMR readers in other processes see rows only once they are flushed.
    for (DatasetHandle& h : g->handles)
      if (H5Dflush(h.get()) < 0) fail(where, "cannot flush " + g->name);
    if (H5Dflush(g->step.get()) < 0) fail(where, "cannot flush " + g->name + "/step");
    // Dataset flushes leave the superblock's end-of-file address stale; a writer killed now
    // would leave a file whose new rows lie past it and cannot be read until repaired.
    if (H5Fflush(file.get(), H5F_SCOPE_LOCAL) < 0) fail(where, "cannot flush");
  }

  void appendScalars(RowGroup* g, int64_t step, double epoch,
                     const std::map<std::string, double>& values) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (size_t i = 0; i < g->columns.size(); ++i) {
      double v = nan;
      if (g->columns[i] == "epoch") {
        v = epoch;
      } else if (auto it = values.find(g->columns[i]); it != values.end()) {
        v = it->second;
      }
      writeRow(g->handles[i].get(), g->rows, H5T_NATIVE_DOUBLE, &v, where,
               g->name + "/" + g->columns[i]);
    }
    appendStep(g, step);
  }
};

RunLog::RunLog(const std::string& path, const std::string& config_json, const RunLogShape& shape,
               bool resume, int64_t resume_step)
    : impl_(std::make_unique<Impl>()) {
  ErrorSilencer silence;
  Impl& d = *impl_;
  d.path = path;
  d.where = "run log " + path;
  d.shape = shape;
  d.validateShape();

  PlistHandle fapl(check(H5Pcreate(H5P_FILE_ACCESS), d.where, "cannot create access properties"));
  // SWMR needs the 1.10 file format (superblock v3, SWMR-safe chunk indexes).
  if (H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0)
    fail(d.where, "cannot select the latest file format");

  std::error_code ec;
  const bool reopen = resume && std::filesystem::exists(path, ec);
  std::map<std::string, hsize_t> groupRows;
  if (reopen) {
    if (H5Fis_hdf5(path.c_str()) <= 0)
      throw MstError("run log " + path + " is not an HDF5 file: not an MST run log");
    hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get());
    if (id < 0) {
      // A killed SWMR writer leaves the superblock marked as open for writing. SWMR keeps the
      // file consistent at every flush, so clearing the mark is safe (what `h5clear -s` does);
      // "clear_status_flags" is the access property h5clear itself sets.
      std::string detail = hdf5Detail();
      PlistHandle clearing(H5Pcopy(fapl.get()));
      hbool_t clear = true;
      if (clearing.valid() && H5Pset(clearing.get(), "clear_status_flags", &clear) >= 0)
        id = H5Fopen(path.c_str(), H5F_ACC_RDWR, clearing.get());
      if (id < 0) throw MstError(d.where + ": cannot open for resuming" + detail);
      // Space the killed writer had allocated may lie past the recorded end of file; new
      // allocations start beyond it, with h5clear's default margin (`h5clear -m`).
      if (H5Fincrement_filesize(id, hsize_t(1) << 20) < 0) {
        H5Fclose(id);
        fail(d.where, "cannot repair the end-of-file address left by a killed writer");
      }
    }
    d.file = FileHandle(id);
    for (const char* required : {"/metrics/step", "/metrics/epoch", "/eval/step", "/snapshots/step",
                                 "/events/step", "/events/message"})
      if (!linkExists(d.file.get(), required))
        throw MstError("run log " + path + " does not have " + required + ": not an MST run log");
    d.validateExisting();
    for (const char* g : {"/metrics", "/eval", "/snapshots", "/events"})
      groupRows[g] = d.truncateGroup(g, resume_step);
    d.ensureLayout(groupRows);
    GroupHandle config(
        check(H5Gopen2(d.file.get(), "/config", H5P_DEFAULT), d.where, "cannot open /config"));
    writeStringAttribute(config.get(), "/config", "json", config_json, d.where);
  } else {
    // Built beside `path` and renamed over it once the layout is complete, so a failed start
    // never destroys the previous run's log (nor a reader's view of it).
    const std::string tmp = path + ".tmp";
    try {
      d.file = FileHandle(check(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()),
                                "run log " + tmp, "cannot create"));
      d.ensureLayout(groupRows);
      GroupHandle config(
          check(H5Gopen2(d.file.get(), "/config", H5P_DEFAULT), d.where, "cannot open /config"));
      writeStringAttribute(config.get(), "/config", "json", config_json, d.where);
      config.reset();
      if (H5Fflush(d.file.get(), H5F_SCOPE_LOCAL) < 0) fail(d.where, "cannot flush " + tmp);
      // POSIX rename keeps the open descriptor valid: HDF5 goes on writing the renamed file.
      if (std::rename(tmp.c_str(), path.c_str()) != 0)
        throw MstError(d.where + ": cannot rename " + tmp + " to it");
    } catch (...) {
      d.file.reset();
      std::remove(tmp.c_str());
      throw;
    }
  }

  // SWMR write mode forbids creating objects and attributes, so the whole layout exists by now.
  if (H5Fstart_swmr_write(d.file.get()) < 0) fail(d.where, "cannot start SWMR writing");

  std::vector<std::string> metricColumns{"epoch"}, evalColumns{"epoch"};
  metricColumns.insert(metricColumns.end(), shape.metrics.begin(), shape.metrics.end());
  evalColumns.insert(evalColumns.end(), shape.evals.begin(), shape.evals.end());
  d.openGroup(&d.metrics, "/metrics", metricColumns, true);
  d.openGroup(&d.eval, "/eval", evalColumns, true);
  d.openGroup(&d.snapshots, "/snapshots",
              std::vector<std::string>(std::begin(kSnapshotNames), std::end(kSnapshotNames)),
              false);
  d.openGroup(&d.events, "/events", {"message"}, false);
}

RunLog::~RunLog() {
  if (!impl_) return;
  ErrorSilencer silence;
  // Errors are ignored: a destructor cannot report them, and closing still releases the file.
  if (impl_->file.valid()) H5Fflush(impl_->file.get(), H5F_SCOPE_LOCAL);
  impl_.reset();  // closes datasets, then the file, while HDF5's error printing is still off
}

void RunLog::appendMetrics(int64_t step, double epoch,
                           const std::map<std::string, double>& values) {
  ErrorSilencer silence;
  impl_->appendScalars(&impl_->metrics, step, epoch, values);
}

void RunLog::appendEval(int64_t step, double epoch, const std::map<std::string, double>& values) {
  ErrorSilencer silence;
  impl_->appendScalars(&impl_->eval, step, epoch, values);
}

void RunLog::appendSnapshot(int64_t step, const ProbeViews& views) {
  Impl& d = *impl_;
  const RunLogShape& s = d.shape;
  SnapshotArrays host =
      hostViews(views, s.probes, s.channels, s.height, s.width, s.grid_h, s.grid_w);
  ErrorSilencer silence;
  RowGroup& g = d.snapshots;
  // The columns are exactly kSnapshotNames, in that order (openGroup without keepOthers).
  for (size_t i = 0; i < g.columns.size(); ++i) {
    const std::string& n = g.columns[i];
    writeRow(g.handles[i].get(), g.rows, isMaskName(n) ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT,
             host[static_cast<int>(i)].data_ptr(), d.where, "/snapshots/" + n);
  }
  d.appendStep(&g, step);
}

void RunLog::appendEvent(int64_t step, const std::string& message) {
  ErrorSilencer silence;
  Impl& d = *impl_;
  TypeHandle type = fixedStringType(kEventMessageBytes, d.where);
  std::string buffer = truncateUtf8(message, kEventMessageBytes - 1);
  buffer.resize(kEventMessageBytes, '\0');
  RowGroup& g = d.events;  // one column: message (openGroup without keepOthers)
  writeRow(g.handles.at(0).get(), g.rows, type.get(), buffer.data(), d.where, "/events/message");
  d.appendStep(&g, step);
}

void RunLog::flush() {
  ErrorSilencer silence;
  if (H5Fflush(impl_->file.get(), H5F_SCOPE_LOCAL) < 0) fail(impl_->where, "cannot flush");
}

void writeInspectFile(const std::string& path, const ProbeViews& views,
                      const std::string& config_json) {
  TORCH_CHECK(views.images.defined() && views.images.dim() == 4, "images must be (N, C, H, W)");
  TORCH_CHECK(views.attention.defined() && views.attention.dim() == 3,
              "attention must be (N, h, w)");
  const int64_t n = views.images.size(0);
  SnapshotArrays host =
      hostViews(views, n, views.images.size(1), views.images.size(2), views.images.size(3),
                views.attention.size(1), views.attention.size(2));

  const std::string where = "inspect file " + path;
  writeFileAtomically(path, where, [&](hid_t file) {
    GroupHandle group(check(H5Gcreate2(file, "/inspect", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            where, "cannot create /inspect"));
    for (int i = 0; i < 5; ++i) {
      const std::string name = kSnapshotNames[i];
      const torch::Tensor& t = host[i];
      const bool mask = isMaskName(name);
      std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
      const std::string what = "cannot write /inspect/" + name;
      SpaceHandle space(check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                              where, what));
      DatasetHandle dset(check(H5Dcreate2(group.get(), name.c_str(),
                                          mask ? H5T_STD_U8LE : H5T_IEEE_F32LE, space.get(),
                                          H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                               where, what));
      if (t.numel() > 0 && H5Dwrite(dset.get(), mask ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT,
                                    H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
        fail(where, what);
    }
    // DESIGN.md: the settings live in attribute `json` of /inspect/config.
    GroupHandle config(check(
        H5Gcreate2(group.get(), "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), where,
        "cannot create /inspect/config"));
    writeStringAttribute(config.get(), "/inspect/config", "json", config_json, where);
  });
}

void writeTableFile(const std::string& path, const std::string& group_name,
                    const std::vector<TableColumn>& columns, const std::string& json) {
  const std::string where = "table file " + path;
  const std::string group_path = "/" + group_name;
  writeFileAtomically(path, where, [&](hid_t file) {
    GroupHandle group(check(
        H5Gcreate2(file, group_path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), where,
        "cannot create " + group_path));
    for (const auto& column : columns) {
      const std::string what = "cannot write " + group_path + "/" + column.name;
      const hsize_t rows = column.is_string ? column.strings.size() : column.numbers.size();
      SpaceHandle space(check(H5Screate_simple(1, &rows, nullptr), where, what));
      size_t width = 1;
      for (const auto& text : column.strings) width = std::max(width, text.size() + 1);
      TypeHandle text_type = fixedStringType(width, where);
      const hid_t file_type = column.is_string ? text_type.get() : H5T_IEEE_F64LE;
      const hid_t memory_type = column.is_string ? text_type.get() : H5T_NATIVE_DOUBLE;
      std::vector<char> text(column.is_string ? rows * width : 0, '\0');
      for (size_t i = 0; column.is_string && i < rows; ++i)
        std::copy(column.strings[i].begin(), column.strings[i].end(), text.begin() + i * width);
      const void* data = column.is_string ? static_cast<const void*>(text.data())
                                          : static_cast<const void*>(column.numbers.data());
      DatasetHandle dset(check(H5Dcreate2(group.get(), column.name.c_str(), file_type, space.get(),
                                          H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                               where, what));
      if (rows > 0 && H5Dwrite(dset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        fail(where, what);
    }
    writeStringAttribute(group.get(), group_path, "json", json, where);
  });
}

std::vector<double> readLogDataset(const std::string& path, const std::string& dataset) {
  ErrorSilencer silence;
  FileHandle file = openForRead(path);
  DatasetHandle dset = openDataset(file.get(), path, dataset);
  requireNumeric(dset.get(), path, dataset);
  std::vector<hsize_t> dims = datasetDims(dset.get(), path, dataset);
  if (dims.size() != 1)
    throw MstError(path + ": cannot read " + dataset + " as a column: shape " + dimsText(dims));
  std::vector<double> out(dims[0]);
  if (!out.empty() &&
      H5Dread(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail(path, "cannot read " + dataset);
  return out;
}

std::vector<std::string> listLogGroup(const std::string& path, const std::string& group) {
  ErrorSilencer silence;
  FileHandle file = openForRead(path);
  if (!linkExists(file.get(), group)) throw MstError(path + ": no group " + group);
  return linkNames(file.get(), group, path);
}

std::string readLogAttribute(const std::string& path, const std::string& object,
                             const std::string& attribute) {
  ErrorSilencer silence;
  FileHandle file = openForRead(path);
  const std::string what = "cannot read attribute " + attribute + " of " + object;
  if (!linkExists(file.get(), object) ||
      H5Aexists_by_name(file.get(), object.c_str(), attribute.c_str(), H5P_DEFAULT) <= 0)
    throw MstError(path + ": " + what + ": no such attribute");
  AttrHandle attr(check(
      H5Aopen_by_name(file.get(), object.c_str(), attribute.c_str(), H5P_DEFAULT, H5P_DEFAULT),
      path, what));
  TypeHandle type(check(H5Aget_type(attr.get()), path, what));
  SpaceHandle space(check(H5Aget_space(attr.get()), path, what));
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    throw MstError(path + ": " + what + ": not a single string");
  std::vector<std::string> values = readStrings(
      type.get(), space.get(), 1,
      [&](hid_t memType, void* buf) { return H5Aread(attr.get(), memType, buf); }, path, what);
  return values.at(0);
}

std::vector<std::string> readLogStrings(const std::string& path, const std::string& dataset) {
  ErrorSilencer silence;
  FileHandle file = openForRead(path);
  DatasetHandle dset = openDataset(file.get(), path, dataset);
  std::vector<hsize_t> dims = datasetDims(dset.get(), path, dataset);
  if (dims.size() != 1)
    throw MstError(path + ": cannot read " + dataset + " as strings: shape " + dimsText(dims));
  TypeHandle type(check(H5Dget_type(dset.get()), path, "cannot read " + dataset));
  SpaceHandle space(check(H5Dget_space(dset.get()), path, "cannot read " + dataset));
  return readStrings(
      type.get(), space.get(), dims[0],
      [&](hid_t memType, void* buf) {
        return H5Dread(dset.get(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
      },
      path, "cannot read " + dataset);
}

std::vector<float> readLogArray(const std::string& path, const std::string& dataset,
                                std::vector<int64_t>* dims) {
  ErrorSilencer silence;
  FileHandle file = openForRead(path);
  DatasetHandle dset = openDataset(file.get(), path, dataset);
  requireNumeric(dset.get(), path, dataset);
  std::vector<hsize_t> shape = datasetDims(dset.get(), path, dataset);
  hsize_t count = 1;
  for (hsize_t s : shape) count *= s;
  std::vector<float> out(count);
  if (count > 0 &&
      H5Dread(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail(path, "cannot read " + dataset);
  if (dims) dims->assign(shape.begin(), shape.end());
  return out;
}

}  // namespace mst
