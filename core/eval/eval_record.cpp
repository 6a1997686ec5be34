/// @brief eval.json (see eval_record.h).
#include "core/eval/eval_record.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

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

/// Little-endian unsigned integer of `bytes` bytes at `p`.
uint64_t readLe(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
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

std::string checkpointFingerprint(const std::string& checkpoint) {
  std::ifstream in(checkpoint, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const int64_t size = static_cast<int64_t>(in.tellg());
  // The end-of-central-directory record: 22 bytes and a comment of up to 65,535 bytes.
  constexpr int64_t kEocd = 22;
  const int64_t tail = std::min<int64_t>(size, kEocd + 65535);
  if (tail < kEocd) return {};
  std::vector<unsigned char> buffer(static_cast<size_t>(tail));
  in.seekg(size - tail);
  if (!in.read(reinterpret_cast<char*>(buffer.data()), tail)) return {};
  for (int64_t at = tail - kEocd; at >= 0; --at) {
    const unsigned char* e = buffer.data() + at;
    if (readLe(e, 4) != 0x06054b50) continue;
    const uint64_t cd_size = readLe(e + 12, 4), cd_offset = readLe(e + 16, 4);
    // 0xFFFFFFFF: the sizes live in a ZIP64 record (files over 4 GB); not read here.
    if (cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu ||
        cd_offset + cd_size > static_cast<uint64_t>(size - tail + at))
      return {};
    std::vector<char> directory(cd_size);
    in.seekg(static_cast<std::streamoff>(cd_offset));
    if (cd_size > 0 && !in.read(directory.data(), static_cast<std::streamsize>(cd_size))) return {};
    uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bit
    for (char c : directory) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    char text[40];
    std::snprintf(text, sizeof(text), "%016llx-%llu", static_cast<unsigned long long>(hash),
                  static_cast<unsigned long long>(cd_size));
    return text;
  }
  return {};
}

void checkEvalRecord(const std::string& checkpoint) { readObject(recordPath(checkpoint)); }

std::string recordEvaluation(const std::string& checkpoint, const std::string& key,
                             nlohmann::json result, int64_t mtime,
                             const std::string& fingerprint) {
  const fs::path path = recordPath(checkpoint);
  result["recorded_at"] = utcNow();
  result["checkpoint_mtime"] = mtime;
  if (!fingerprint.empty()) result["checkpoint_fingerprint"] = fingerprint;
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
      std::optional<std::string> fingerprint;
      for (const char* key : {"knn", "linear"}) {
        if (!record->contains(key) || !(*record)[key].is_object()) continue;
        const nlohmann::json& r = (*record)[key];
        const bool knn = key == std::string("knn");
        auto value = number(r, knn ? "knn_top1" : "linear_top1");
        if (!value) continue;
        (knn ? out.knn_top1 : out.linear_top1) = value;
        (knn ? out.knn_classes : out.linear_classes) = classReadout(r);
        const auto recorded = number(r, "checkpoint_mtime");
        if (recorded && ckpt > *recorded) {
          // A newer file: other weights, unless it holds the same records (a copied folder).
          // The checkpoint's fingerprint is read once, for whichever read-out asks first.
          bool same = false;
          if (r.contains("checkpoint_fingerprint") && r["checkpoint_fingerprint"].is_string()) {
            if (!fingerprint)
              fingerprint = checkpointFingerprint((dir / "checkpoint.pt").string());
            same = r["checkpoint_fingerprint"].get<std::string>() == *fingerprint;
          }
          if (!same) out.stale = true;
        }
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
