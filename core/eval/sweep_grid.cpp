/// @brief Sweep grids as given: --grid axes, the read-out list, the `sweep` object of an
/// experiment file, the default grid and --shard (see sweep.h).
#include <algorithm>
#include <cctype>
#include <fstream>

#include "core/config/config.h"
#include "core/eval/sweep.h"
#include "core/util/error.h"

namespace mst {
using json = nlohmann::json;

SweepAxis parseAxis(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 >= spec.size())
    throw MstError("--grid expects key=v1,v2,... (got '" + spec + "')");
  SweepAxis axis;
  axis.key = spec.substr(0, eq);
  std::stringstream values(spec.substr(eq + 1));
  std::string item;
  while (std::getline(values, item, ',')) {
    if (item.empty()) throw MstError("--grid " + axis.key + ": empty value in '" + spec + "'");
    try {
      axis.values.push_back(json::parse(item));
    } catch (const json::parse_error&) {
      axis.values.push_back(item);
    }
  }
  return axis;
}

void parseReadouts(const std::string& text, const std::string& where, SweepOptions& options) {
  const auto bad = [&] {
    return MstError(where + " must name knn, linear or both, e.g. knn,linear (got '" + text + "')");
  };
  bool knn = false, linear = false;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    const auto first = item.find_first_not_of(' '), last = item.find_last_not_of(' ');
    item = first == std::string::npos ? std::string() : item.substr(first, last - first + 1);
    if (item == "knn")
      knn = true;
    else if (item == "linear")
      linear = true;
    else
      throw bad();
  }
  if (!knn && !linear) throw bad();
  options.knn = knn;
  options.linear = linear;
}

namespace {

/// The keys of the `sweep` object: name, value, default, meaning (docs/config.md).
struct SweepKey {
  const char* key;
  const char* value;
  const char* default_text;
  const char* help;
};
const SweepKey kSweepKeys[] = {
    {"grid", "object of arrays", "Table 5: rows masking.num, columns masking.p",
     "One axis per key: a config key and the values it takes, e.g. {\"masking.p\": [0.05, 0.1]}. "
     "The first key gives the heat map's rows, the last varies fastest; cells are numbered in that "
     "order. An empty object is an error. `--grid key=v1,v2` (repeatable) replaces the whole "
     "grid. A folder a sweep has run in keeps its own grid (its sweep.json) over this one."},
    {"readout", "string", "knn,linear",
     "Read-outs of each cell's teacher: knn, linear or knn,linear. `--readout` overrides it; a "
     "folder a sweep has run in keeps those asked of it (its sweep.json) over this one."},
    {"max_steps", "integer", "0 (the full schedule)",
     "Cut each cell's training at this many steps; a rerun asking for more continues the cells "
     "from their checkpoints. `--max-steps` overrides it; a folder a sweep has run in keeps its "
     "own (its sweep.json) over this one."},
};

}  // namespace

std::string sweepKeysMarkdown() {
  std::ostringstream out;
  out << "| key | value | default | meaning |\n|---|---|---|---|\n";
  for (const auto& k : kSweepKeys)
    out << "| `sweep." << k.key << "` | " << k.value << " | " << k.default_text << " | " << k.help
        << " |\n";
  return out.str();
}

SweepFile readSweepFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw MstError("cannot open config file " + path);
  nlohmann::ordered_json file;
  try {
    file = nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::ordered_json::parse_error& e) {
    throw MstError("config file " + path + " is not valid JSON: " + e.what());
  }
  SweepFile out;
  if (!file.is_object() || !file.contains("sweep")) return out;
  const auto& sweep = file["sweep"];
  if (!sweep.is_object()) throw MstError(path + ": sweep must be an object");
  std::string known;
  for (const auto& k : kSweepKeys) known += (known.empty() ? "" : ", ") + std::string(k.key);
  for (auto it = sweep.begin(); it != sweep.end(); ++it) {
    const std::string& key = it.key();
    if (!key.empty() && key[0] == '_') continue;  // "_comment" and friends, as in the config
    if (key == "grid") {
      const std::string where = path + ": sweep.grid";
      if (!it->is_object()) throw MstError(where + " must be an object of arrays");
      if (it->empty())
        throw MstError(where + " is empty: give at least one key with its values, or leave "
                               "sweep.grid out for Table 5's masking.num × masking.p");
      for (auto axis = it->begin(); axis != it->end(); ++axis) {
        if (!axis->is_array())
          throw MstError(where + " key " + axis.key() + " must be an array of values");
        SweepAxis a;
        a.key = axis.key();
        a.source = where;
        for (const auto& v : *axis) a.values.emplace_back(v);  // ordered_json → json
        out.axes.push_back(std::move(a));
      }
    } else if (key == "readout") {
      const std::string where = path + ": sweep.readout";
      if (!it->is_string()) throw MstError(where + " must be a string, e.g. \"knn,linear\"");
      SweepOptions check;
      parseReadouts(it->get<std::string>(), where, check);
      out.readout = it->get<std::string>();
    } else if (key == "max_steps") {
      if (!it->is_number_integer() || it->get<int64_t>() < 0)
        throw MstError(path + ": sweep.max_steps must be an integer >= 0 (0 = the full "
                              "schedule), got " + it->dump());
      out.max_steps = it->get<int64_t>();
    } else {
      throw MstError(path + ": unknown key sweep." + key + " (sweep keys: " + known + ")");
    }
  }
  return out;
}

std::vector<SweepAxis> defaultGrid() {
  return {{"masking.num", {1, 2, 4, 8}}, {"masking.p", {0.05, 0.1, 0.15}}};
}

std::pair<int64_t, int64_t> parseShard(const std::string& spec) {
  const auto bad = [&] {
    return MstError("--shard expects I/N with 0 <= I < N, e.g. 0/2 (got '" + spec + "')");
  };
  const auto slash = spec.find('/');
  if (slash == std::string::npos) throw bad();
  const std::string left = spec.substr(0, slash), right = spec.substr(slash + 1);
  const auto digits = [](const std::string& t) {
    return !t.empty() && t.size() <= 9 &&
           std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c); });
  };
  if (!digits(left) || !digits(right)) throw bad();
  const int64_t shard = std::stoll(left), shards = std::stoll(right);
  if (shards < 1 || shard >= shards) throw bad();
  return {shard, shards};
}

}  // namespace mst
