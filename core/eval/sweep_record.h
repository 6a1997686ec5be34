/// @brief What a sweep folder is (DIR/sweep.json): its grid, step cap and read-outs, so that a
/// later sweep on the folder is checked against it and `mst sweep --status` shows it as it ran.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/eval/sweep.h"

namespace mst {

/// DIR/sweep.json: {"grid": [{"key": K, "values": [...]}, ...], "max_steps": N,
/// "readout": "knn,linear"}. sweep.h5 shows the grid too, but it is a table every sweep and
/// every status pass rewrites; this file is written only by a sweep that runs cells, after it
/// was checked against the file (checkSweepRecord), and so says what the folder's cells are.
struct SweepRecord {
  std::vector<SweepAxis> axes;       ///< in the sweep's order (first key = rows)
  int64_t max_steps = 0;             ///< each cell's step cap; 0 = the full schedule
  bool knn = false, linear = false;  ///< every read-out asked of the folder so far
};

/// out_dir/sweep.json.
std::string sweepRecordPath(const std::string& out_dir);

/// The folder's record; nullopt when it has none (a new folder, or one from before sweep.json).
/// MstError naming the file when it cannot be read or is malformed.
std::optional<SweepRecord> readSweepRecord(const std::string& out_dir);

/// Replaces out_dir/sweep.json atomically (writeTextAtomically).
void writeSweepRecord(const std::string& out_dir, const SweepRecord& record);

/// An axis as a person types it after --grid, "key=v1,v2": parseAxis reads back the same values
/// (a string keeps JSON quotes only where it would otherwise read as JSON or split).
std::string axisSpec(const SweepAxis& axis);
/// The grid as flags: "--grid masking.num=1,2 --grid masking.p=0.1".
std::string gridFlags(const std::vector<SweepAxis>& axes);
/// The same axes, keys and values, in the same order (values compared as written: 1 ≠ 1.0, since
/// they name different cell folders).
bool sameGrid(const std::vector<SweepAxis>& a, const std::vector<SweepAxis>& b);

/// Reads out_dir's record (if any) and refuses, with an MstError naming the folder, the stored
/// value and the asked one, a sweep of `axes` with `options` that does not answer it: another
/// grid; fewer steps than the record's (a sweep that runs cells may ask for more: it continues
/// them); for a status pass (options.run_cells false), any other step cap. Read-outs may differ
/// (a sweep may add one). Returns the record read; nullopt when there is none (anything goes).
std::optional<SweepRecord> checkSweepRecord(const std::vector<SweepAxis>& axes,
                                            const SweepOptions& options);

/// The grid sweep.h5 shows (its /sweep attribute json), for a folder from before sweep.json;
/// nullopt when there is no sweep.h5 or it cannot be read.
std::optional<std::vector<SweepAxis>> readSweepTableGrid(const std::string& out_dir);

}  // namespace mst
