/// @brief eval.json (see eval_record.h).
#include "core/eval/eval_record.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>

#include "core/util/error.h"
#include "core/util/files.h"

namespace mst {
namespace fs = std::filesystem;

namespace {

/// Seconds since the epoch of a file's last write (stat's, exact from call to call); 0 when it
/// cannot be read.
int64_t mtimeSeconds(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtime);
}

std::string utcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

/// The JSON object in `path`; nullopt when there is no file; MstError naming it when it is not
/// valid JSON or not an object.
std::optional<nlohmann::json> readObject(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    throw MstError(path.string() + ": not valid JSON (left as it is; fix it or move it away to "
                                   "record new results)");
  if (!j.is_object())
    throw MstError(path.string() + ": not a JSON object (left as it is; fix it or move it away "
                                   "to record new results)");
  return j;
}

fs::path recordPath(const std::string& checkpoint) {
  return fs::path(checkpoint).parent_path() / "eval.json";
}

std::optional<double> number(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

/// The per-class keys of a recorded result; each key that is missing or not of the shape
/// `mst eval` writes is left empty, so that an old or hand-edited record still shows its top-1.
ClassReadout classReadout(const nlohmann::json& r) {
  ClassReadout out;
  if (!r.contains("per_class_top1") || !r["per_class_top1"].is_array()) return out;
  for (const auto& v : r["per_class_top1"]) {
    if (v.is_null())
      out.top1.emplace_back(std::nullopt);
    else if (v.is_number())
      out.top1.emplace_back(v.get<double>());
    else
      return ClassReadout{};
  }
  const size_t n = out.top1.size();
  if (r.contains("confusion") && r["confusion"].is_array() && r["confusion"].size() == n) {
    for (const auto& row : r["confusion"]) {
      if (!row.is_array() || row.size() != n) break;
      std::vector<int64_t> counts;
      for (const auto& c : row) {
        if (!c.is_number_integer() || c.get<int64_t>() < 0) break;
        counts.push_back(c.get<int64_t>());
      }
      if (counts.size() != n) break;
      out.confusion.push_back(std::move(counts));
    }
    if (out.confusion.size() != n) out.confusion.clear();
  }
  if (r.contains("classes") && r["classes"].is_array() && r["classes"].size() == n) {
    for (const auto& name : r["classes"]) {
      if (!name.is_string()) break;
      out.classes.push_back(name.get<std::string>());
    }
    if (out.classes.size() != n) out.classes.clear();
  }
  return out;
}

}  // namespace

std::string evalRecordKey(const std::string& readout, const std::string& features, int blocks) {
  if (features == "pixels" || features == "patches") return readout + "_" + features;
  return blocks >= 4 ? readout + "_4blocks" : readout;
}

int64_t checkpointMtime(const std::string& checkpoint) { return mtimeSeconds(checkpoint); }

void checkEvalRecord(const std::string& checkpoint) { readObject(recordPath(checkpoint)); }

std::string recordEvaluation(const std::string& checkpoint, const std::string& key,
                             nlohmann::json result, int64_t mtime) {
  const fs::path path = recordPath(checkpoint);
  result["recorded_at"] = utcNow();
  result["checkpoint_mtime"] = mtime;
  // A hidden lock file beside the record (flock needs a file that is not replaced).
  ScopedFileLock lock((path.parent_path() / ".eval.json.lock").string());
  nlohmann::json record = readObject(path).value_or(nlohmann::json::object());
  record[key] = std::move(result);
  writeTextAtomically(path.string(), record.dump(2) + "\n");
  return path.string();
}

RunReadouts readRunReadouts(const std::string& run_dir) {
  RunReadouts out;
  const fs::path dir(run_dir);
  const int64_t ckpt = mtimeSeconds(dir / "checkpoint.pt");
  auto count = [](const nlohmann::json& r, const char* key) {
    return r.contains(key) && r[key].is_number() ? std::to_string(r[key].get<int64_t>())
                                                 : std::string("?");
  };
  try {
    if (auto record = readObject(dir / "eval.json")) {
      std::string detail;
      for (const char* key : {"knn", "linear"}) {
        if (!record->contains(key) || !(*record)[key].is_object()) continue;
        const nlohmann::json& r = (*record)[key];
        const bool knn = key == std::string("knn");
        auto value = number(r, knn ? "knn_top1" : "linear_top1");
        if (!value) continue;
        (knn ? out.knn_top1 : out.linear_top1) = value;
        (knn ? out.knn_classes : out.linear_classes) = classReadout(r);
        const auto recorded = number(r, "checkpoint_mtime");
        if (recorded && ckpt > *recorded) out.stale = true;
        if (r.contains("full_protocol") && r["full_protocol"] == false) out.partial = true;
        detail += std::string(detail.empty() ? "" : "; ") +
                  (knn ? "k-NN: k = " + count(r, "knn_k") + ", bank " + count(r, "train")
                       : "linear: " + count(r, "epochs") + " epochs, " + count(r, "train") +
                             " training images") +
                  ", test " + count(r, "test");
      }
      if (out.knn_top1 || out.linear_top1) {
        out.source = (dir / "eval.json").string();
        out.detail = detail;
        return out;
      }
    }
  } catch (const MstError& e) {
    out.error = e.what();  // shown beside the sweep's values, if any
  }
  try {
    if (auto result = readObject(dir / "result.json")) {
      out.knn_top1 = number(*result, "knn_top1");
      out.linear_top1 = number(*result, "linear_top1");
      if (out.knn_top1 || out.linear_top1) out.source = (dir / "result.json").string();
    }
  } catch (const MstError&) {
  }
  return out;
}

}  // namespace mst
