/// @brief HDF5 run log: SWMR writer with a truncating resume.
#include "core/log/run_log.h"

#include "core/log/hdf5_util.h"

namespace mst {
using namespace h5;

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

}  // namespace mst
