/// @brief libFuzzer target: the checkpoint loader (readCheckpointMeta, Engine::loadCheckpoint).
#include <fuzzer/FuzzedDataProvider.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/config/config.h"
#include "core/train/engine.h"
#include "fuzz/fuzz_util.h"

namespace {

/// The engine every input is loaded into. Its architecture is scripts/fuzz.sh's seed checkpoint's
/// (keep the two in sync): vit_micro28 shrunk so that the whole checkpoint is a ~100 KB input that
/// libFuzzer mutates in full (its default size cap is 1 MB; vit_micro28's is 2.5 MB).
mst::Engine& engine() {
  static mst::Engine* e = [] {
    at::set_num_threads(1);
    mst::Config c = mst::configFromJson({{"model",
                                          {{"preset", "vit_micro28"},
                                           {"dim", 16},
                                           {"depth", 1},
                                           {"heads", 2},
                                           {"head_hidden", 16},
                                           {"head_bottleneck", 8},
                                           {"out_dim", 16},
                                           {"decoder_widths", {8, 8}}}}});
    mst::EngineOptions o;
    o.mean = {0.3};
    o.std = {0.35};
    return new mst::Engine(c, o);  // lives for the whole run: construction costs a second
  }();
  return *e;
}

/// A tensor of fuzzed dtype, shape and layout; `numel` is the count the loader expects, which the
/// fuzzer gets right often enough to reach the copy.
torch::Tensor fuzzedTensor(FuzzedDataProvider& in, int64_t numel) {
  static const torch::ScalarType kTypes[] = {torch::kFloat,       torch::kDouble, torch::kHalf,
                                             torch::kInt64,       torch::kUInt8,  torch::kBool,
                                             torch::kComplexFloat};
  const auto type = kTypes[in.ConsumeIntegralInRange<size_t>(0, std::size(kTypes) - 1)];
  int64_t n = in.ConsumeBool() ? numel : in.ConsumeIntegralInRange<int64_t>(0, 2 * numel + 4);
  torch::Tensor t = torch::zeros({n}, torch::TensorOptions().dtype(type));
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      break;
    case 1:  // a 2-D shape with the same numel
      if (n % 2 == 0 && n > 0) t = t.view({2, n / 2});
      break;
    case 2:  // non-contiguous: view() cannot reshape it
      if (n % 2 == 0 && n > 0) t = t.view({2, n / 2}).t();
      break;
    case 3:  // a strided view that shares a larger storage
      t = torch::zeros({2 * n}, torch::TensorOptions().dtype(type)).slice(0, 0, 2 * n, 2);
      break;
  }
  return t;
}

/// A well-formed archive whose meta record and tensors are fuzzed: what a checkpoint of another
/// version, another architecture or a hand-edited meta looks like. Raw bytes rarely get this far,
/// because the zip's CRCs reject almost every mutation inside the entries.
void writeStructured(FuzzedDataProvider& in, const std::string& path) {
  mst::Engine& e = engine();
  nlohmann::json meta;
  meta["format"] = "mst-checkpoint-1";
  meta["step"] = 7;
  meta["model"] = mst::configToJson(e.config())["model"];
  meta["config"] = mst::configToJson(e.config());
  meta["extra"] = nlohmann::json::object();
  const int edits = in.ConsumeIntegralInRange<int>(0, 3);
  static const char* kFields[] = {"format", "step", "model", "config", "extra"};
  for (int i = 0; i < edits; ++i) {
    const std::string field = kFields[in.ConsumeIntegralInRange<size_t>(0, 4)];
    // Values of the wrong type or range are what a foreign writer produces; random text rarely
    // parses as JSON, so offer them directly as well.
    static const char* kValues[] = {"-1",
                                    "\"7\"",
                                    "null",
                                    "1e300",
                                    "[]",
                                    "{}",
                                    "true",
                                    "9223372036854775807",
                                    "18446744073709551615",
                                    "0.5"};
    const std::string value =
        in.ConsumeBool() ? kValues[in.ConsumeIntegralInRange<size_t>(0, std::size(kValues) - 1)]
                         : in.ConsumeRandomLengthString(64);
    if (in.ConsumeBool()) {
      meta.erase(field);
    } else {
      meta[field] = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
      if (meta[field].is_discarded()) meta[field] = value;
    }
  }
  torch::serialize::OutputArchive archive;
  // The fuzzed strings may be invalid UTF-8, which dump() refuses; the saver never writes those.
  const std::string text = meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  archive.write("meta", c10::IValue(in.ConsumeBool() ? text : in.ConsumeRandomLengthString(64)));
  // One entry is tampered with (or none): with each entry drawn independently, 11 of them would
  // almost never all be intact, and the checks after the tensors would go unexercised.
  std::vector<std::pair<std::string, torch::Tensor>> entries{{"student", e.student.values()},
                                                             {"teacher", e.teacher.values()},
                                                             {"exp_avg", e.exp_avg},
                                                             {"exp_avg_sq", e.exp_avg_sq},
                                                             {"center", e.center}};
  for (const auto& b : e.decoder->named_buffers())
    entries.emplace_back("decoder." + b.key(), b.value());
  const size_t victim = in.ConsumeIntegralInRange<size_t>(0, entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& [key, like] = entries[i];
    switch (i == victim ? in.ConsumeIntegralInRange<int>(1, 3) : 0) {
      // As saved, but offset: a load that copies it changes the engine, so the harness can tell
      // a failed load that copied some entries before giving up.
      case 0:
        archive.write(key, like.cpu() + 1);
        break;
      case 1:
        break;  // missing
      case 2:
        archive.write(key, fuzzedTensor(in, like.numel()));
        break;
      case 3:
        archive.write(key, c10::IValue(in.ConsumeIntegral<int64_t>()));
        break;  // not a tensor
    }
  }
  archive.save_to(path);
}

}  // namespace

// Input layout: [mode][rest]. mode bit 0 clear: the rest is the checkpoint file's bytes; set: the
// rest drives writeStructured.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  mst::Engine& e = engine();
  const std::string path = (mst::fuzz::scratchDir() / "checkpoint.pt").string();
  if (data[0] & 1) {
    FuzzedDataProvider in(data + 1, size - 1);
    writeStructured(in, path);
  } else {
    mst::fuzz::writeFile(path, data + 1, size - 1);
  }
  try {
    mst::readCheckpointMeta(path);
  } catch (const std::exception& ex) {
    mst::fuzz::checkMessage(ex);
  }
  const torch::Tensor weights = e.student.values().clone();
  const torch::Tensor moments = e.exp_avg_sq.clone();
  const int64_t step = e.step();
  try {
    e.loadCheckpoint(path);
    // A checkpoint that loaded is trained on next: the step indexes the schedules.
    if (e.step() < 0) {
      std::fprintf(stderr, "loaded a negative step %lld\n", static_cast<long long>(e.step()));
      std::abort();
    }
  } catch (const std::exception& ex) {
    mst::fuzz::checkMessage(ex);
    // A failed load must leave the engine as it was (the trainer may report and go on with it).
    // Bitwise, so that NaN weights from an earlier input still compare equal.
    auto same = [](const torch::Tensor& a, const torch::Tensor& b) {
      return torch::equal(a.view(torch::kInt32), b.view(torch::kInt32));
    };
    if (e.step() != step || !same(e.student.values(), weights) || !same(e.exp_avg_sq, moments)) {
      std::fprintf(stderr, "a failed load changed the engine: %s\n", ex.what());
      std::abort();
    }
  }
  return 0;
}
