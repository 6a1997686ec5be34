/// @brief parseIndexList (see index_list.h).
#include "core/util/index_list.h"

#include <sstream>

#include "core/util/error.h"

namespace mst {
namespace {

std::string trimmed(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

/// The whole of `s` as a non-negative integer, or throws std::invalid_argument.
int64_t index(const std::string& s) {
  size_t used = 0;
  const int64_t v = std::stoll(s, &used);
  if (used != s.size() || v < 0) throw std::invalid_argument(s);
  return v;
}

}  // namespace

std::vector<int64_t> parseIndexList(const std::string& text, const std::string& what,
                                    int64_t max_count) {
  std::vector<int64_t> out;
  std::stringstream parts(text);
  std::string part;
  while (std::getline(parts, part, ',')) {
    part = trimmed(part);
    if (part.empty()) continue;
    int64_t a = 0, b = 0;
    try {
      const auto dash = part.find('-');
      a = index(trimmed(part.substr(0, dash)));
      b = dash == std::string::npos ? a : index(trimmed(part.substr(dash + 1)));
      if (b < a) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw MstError(what + " expects indices like 0-7 or 1,3,5 (got '" + part + "' in '" +
                     text + "')");
    }
    if (b - a + 1 > max_count - static_cast<int64_t>(out.size()))
      throw MstError(what + " names more than " + std::to_string(max_count) + " indices ('" +
                     text + "')");
    for (int64_t i = a; i <= b; ++i) out.push_back(i);
  }
  if (out.empty()) throw MstError(what + " names no index (e.g. 0-7 or 1,3,5)");
  return out;
}

}  // namespace mst
