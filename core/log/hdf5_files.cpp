/// @brief The other HDF5 files (inspect, tables) and the readers shared by every tool.
#include "core/log/run_log.h"

#include "core/log/hdf5_util.h"

namespace mst {
using namespace h5;

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
    // Optional views, written when the probe computed them.
    for (const auto& [name, tensor] : {std::pair<const char*, const torch::Tensor*>{
                                           "attention_heads", &views.attention_heads},
                                       {"attention_blocks", &views.attention_blocks}}) {
      if (!tensor->defined() || tensor->numel() == 0) continue;
      auto t = tensor->detach().to(torch::kCPU, torch::kFloat).contiguous();
      std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
      const std::string what = std::string("cannot write /inspect/") + name;
      SpaceHandle space(check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                              where, what));
      DatasetHandle dset(check(H5Dcreate2(group.get(), name, H5T_IEEE_F32LE, space.get(),
                                          H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                               where, what));
      if (H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
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
