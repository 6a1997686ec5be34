/// @brief libFuzzer target: config files (loadJsonFile, --set overrides, configFromJson,
/// validation).
#include <nlohmann/json.hpp>
#include <string>

#include "core/config/config.h"
#include "core/util/error.h"
#include "fuzz/fuzz_util.h"

// Input layout: one `--set` assignment per leading line that starts with '=' (the '=' dropped),
// then the config file's text. An input without such lines is a plain config file.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  while (!text.empty() && text[0] == '=') {
    const size_t end = text.find('\n');
    overrides.push_back(text.substr(1, end == std::string::npos ? std::string::npos : end - 1));
    text = end == std::string::npos ? std::string() : text.substr(end + 1);
  }
  const auto path = mst::fuzz::scratchDir() / "config.json";
  mst::fuzz::writeFile(path, reinterpret_cast<const uint8_t*>(text.data()), text.size());

  mst::Config config;
  try {
    nlohmann::json json = mst::loadJsonFile(path.string());
    for (const auto& assignment : overrides) mst::applyOverride(json, assignment);
    config = mst::configFromJson(json, path.string());
  } catch (const std::exception& e) {
    mst::fuzz::checkMessage(e);
    return 0;
  }
  // A config that was accepted is saved as config.json in its run folder and read back on
  // --resume: it must round-trip to the same values, or a resumed run would silently differ.
  const nlohmann::json saved = mst::configToJson(config);
  mst::Config reread;
  try {
    reread = mst::configFromJson(nlohmann::json::parse(saved.dump()), "round trip");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "accepted config does not round-trip: %s\n", e.what());
    std::abort();
  }
  if (mst::configToJson(reread) != saved) {
    std::fprintf(stderr, "round trip changed the config:\n%s\n%s\n", saved.dump().c_str(),
                 mst::configToJson(reread).dump().c_str());
    std::abort();
  }
  // The form check must agree with the parser on every value the parser accepted.
  for (const auto& key : mst::configKeys()) {
    // Choosing a preset in the form resets every model.* key, so it is not a pure value check.
    if (key.key == "model.preset") continue;
    const std::string why =
        mst::checkConfigValue(config, key.key, mst::configValue(config, key.key));
    if (!why.empty()) {
      std::fprintf(stderr, "checkConfigValue rejects an accepted value: %s\n", why.c_str());
      std::abort();
    }
  }
  return 0;
}
