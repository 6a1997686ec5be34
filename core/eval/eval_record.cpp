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
/// a JSON object.
std::optional<nlohmann::json> readObject(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object())
    throw MstError(path.string() + ": not a JSON object (left as it is; move it away to record "
                                   "new results)");
  return j;
}

std::optional<double> number(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

}  // namespace

std::string evalRecordKey(const std::string& readout, const std::string& features, int blocks) {
  if (features == "pixels" || features == "patches") return readout + "_" + features;
  return blocks >= 4 ? readout + "_4blocks" : readout;
}

std::string recordEvaluation(const std::string& checkpoint, const std::string& key,
                             nlohmann::json result) {
  const fs::path ckpt(checkpoint);
  const fs::path path = ckpt.parent_path() / "eval.json";
  result["recorded_at"] = utcNow();
  result["checkpoint_mtime"] = mtimeSeconds(ckpt);
  ScopedFileLock lock(path.string() + ".lock");
  nlohmann::json record = readObject(path).value_or(nlohmann::json::object());
  record[key] = std::move(result);
  writeTextAtomically(path.string(), record.dump(2) + "\n");
  return path.string();
}

RunReadouts readRunReadouts(const std::string& run_dir) {
  RunReadouts out;
  const fs::path dir(run_dir);
  const int64_t ckpt = mtimeSeconds(dir / "checkpoint.pt");
  try {
    if (auto record = readObject(dir / "eval.json")) {
      for (const char* key : {"knn", "linear"}) {
        if (!record->contains(key)) continue;
        const nlohmann::json& r = (*record)[key];
        auto value = number(r, key == std::string("knn") ? "knn_top1" : "linear_top1");
        if (!value) continue;
        (key == std::string("knn") ? out.knn_top1 : out.linear_top1) = value;
        const auto recorded = number(r, "checkpoint_mtime");
        if (recorded && ckpt > *recorded) out.stale = true;
      }
      if (out.knn_top1 || out.linear_top1) {
        out.source = (dir / "eval.json").string();
        return out;
      }
    }
  } catch (const MstError&) {
    // A damaged eval.json shows no results here; `mst eval --record` names it.
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
